// SPDX-License-Identifier: Apache-2.0
/// check_vector(): the one validation every backend applies to a vector before storing or searching it.
#pragma once

#include <span>
#include <string_view>

#include "vstore/result.hpp"

namespace vstore {

/// Success when `vec` has `dim` elements, all finite, not all zero (cosine distance needs a
/// direction). Errors: invalid_argument naming `what`, the value and what was expected
/// ("query vector: expected 384 dimensions, not 768"). Pure function; thread-safe.
[[nodiscard]] Result<void> check_vector(std::span<const float> vec, int dim, std::string_view what);

/// Whether every element of `vec` is finite (no NaN, no infinity); true for an empty span. A
/// branch-free pass over the bits, for checking many vectors (a migration's). Pure; thread-safe.
[[nodiscard]] bool all_finite(std::span<const float> vec);

}  // namespace vstore
