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
  double norm = 0;
  for (std::size_t i = 0; i < vec.size(); ++i) {
    if (!std::isfinite(vec[i])) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("{}: element {} is {}; vectors must hold finite numbers", what, i, vec[i]));
    }
    norm += static_cast<double>(vec[i]) * vec[i];
  }
  if (norm == 0.0) {
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
