// SPDX-License-Identifier: Apache-2.0
/// check_vector(): the one validation every backend applies to a vector before storing or searching it.
#pragma once

#include <span>
#include <string_view>

#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// Success when `vec` has `dim` elements, all finite, not all zero (cosine distance needs a
/// direction). Errors: invalid_argument naming `what`, the value and what was expected
/// ("query vector: expected 384 dimensions, not 768"). Pure function; thread-safe.
[[nodiscard]] Result<void> check_vector(std::span<const float> vec, int dim, std::string_view what);

/// Whether every element of `vec` is finite (no NaN, no infinity); true for an empty span. A
/// branch-free pass over the bits, for checking many vectors (a migration's). Pure; thread-safe.
[[nodiscard]] bool all_finite(std::span<const float> vec);

/// Success when every item of `items` names the same, non-empty embedding model (an empty
/// span passes). Errors: invalid_argument ("article u: the embedding model is not named", "one
/// batch mixes embedding models a and b"). Pure; thread-safe.
[[nodiscard]] Result<void> check_batch_model(std::span<const ArticleVector> items);

/// The refusal every store gives to vectors of `model` when it holds vectors of `stored`;
/// `holder` names the store ("table articles", "chroma collection news"): invalid_argument
/// "table articles holds vectors of model a, refusing vectors of model b".
[[nodiscard]] Error model_refused(std::string_view holder, std::string_view stored, std::string_view model);

/// The refusal of a query embedded with `model` by a store holding vectors of `stored`:
/// invalid_argument "the query was embedded with model b, but table articles holds vectors of model a".
[[nodiscard]] Error query_model_refused(std::string_view holder, std::string_view stored, std::string_view model);

}  // namespace vstore
