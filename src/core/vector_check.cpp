// SPDX-License-Identifier: Apache-2.0
// check_vector(): dimension, finiteness and non-zero checks shared by every backend; the one
// cosine (core/cosine.hpp).
#include "vstore/vector_check.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>

#include "core/cosine.hpp"

namespace vstore {

Result<void> check_vector(std::span<const float> vec, int dim, std::string_view what) {
  if (static_cast<int>(vec.size()) != dim) {
    return fail(ErrorCode::invalid_argument, fmt::format("{}: expected {} dimensions, not {}", what, dim, vec.size()));
  }
  // The common case in two branch-free passes (a migration checks every record); the element
  // at fault is looked for only when one is there.
  if (!all_finite(vec)) {
    for (std::size_t i = 0; i < vec.size(); ++i) {
      if (!std::isfinite(vec[i])) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{}: element {} is {}; vectors must hold finite numbers", what, i, vec[i]));
      }
    }
  }
  float any = 0.0f;
  for (float f : vec) any = std::max(any, std::fabs(f));
  if (any == 0.0f) {
    return fail(ErrorCode::invalid_argument, fmt::format("{}: the vector is all zeros; cosine distance is undefined", what));
  }
  return {};
}

// A float is NaN or infinite exactly when its exponent bits are all ones; adding one to that
// exponent then carries into the sign bit. One OR over the whole vector, without a branch per
// element, so the compiler can run it in vector registers.
bool all_finite(std::span<const float> vec) {
  std::uint32_t carry = 0;
  for (float f : vec) carry |= (std::bit_cast<std::uint32_t>(f) & 0x7f800000U) + 0x00800000U;
  return (carry & 0x80000000U) == 0;
}

Result<void> check_batch_model(std::span<const ArticleVector> items) {
  if (items.empty()) return {};
  const std::string& model = items.front().embedding_model;
  for (const auto& item : items) {
    if (item.embedding_model.empty()) {
      return fail(ErrorCode::invalid_argument, fmt::format("article {}: the embedding model is not named", item.article.uri));
    }
    if (item.embedding_model != model) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("one batch mixes embedding models {} and {}", model, item.embedding_model));
    }
  }
  return {};
}

Error model_refused(std::string_view holder, std::string_view stored, std::string_view model) {
  return Error(ErrorCode::invalid_argument,
               fmt::format("{} holds vectors of model {}, refusing vectors of model {}", holder, stored, model));
}

Error query_model_refused(std::string_view holder, std::string_view stored, std::string_view model) {
  return Error(ErrorCode::invalid_argument,
               fmt::format("the query was embedded with model {}, but {} holds vectors of model {}", model, holder, stored));
}

double cosine_similarity(std::span<const float> a, std::span<const float> b) noexcept {
  double dot = 0;
  double norm_a = 0;
  double norm_b = 0;
  const std::size_t n = std::min(a.size(), b.size());
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = static_cast<double>(a[i]);
    const auto y = static_cast<double>(b[i]);
    dot += x * y;
    norm_a += x * x;
    norm_b += y * y;
  }
  if (norm_a == 0 || norm_b == 0) return 0.0;
  return dot / (std::sqrt(norm_a) * std::sqrt(norm_b));
}

double cosine_distance(std::span<const float> a, std::span<const float> b) noexcept {
  return 1.0 - cosine_similarity(a, b);
}

}  // namespace vstore
