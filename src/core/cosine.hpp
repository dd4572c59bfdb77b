// SPDX-License-Identifier: Apache-2.0
// cosine_similarity() / cosine_distance(): the one cosine of vstore (stores, migration checks,
// benchmarks), defined in vector_check.cpp.
#pragma once

#include <span>

namespace vstore {

/// cos(a, b) = a.b / (|a| |b|), summed in double over the first min(|a|, |b|) elements; 0 when
/// either vector is all zeros (no direction). Pure; thread-safe.
[[nodiscard]] double cosine_similarity(std::span<const float> a, std::span<const float> b) noexcept;

/// The cosine distance 1 - cosine_similarity(a, b) that every backend ranks by (1 for a zero
/// vector). Pure; thread-safe.
[[nodiscard]] double cosine_distance(std::span<const float> a, std::span<const float> b) noexcept;

}  // namespace vstore
