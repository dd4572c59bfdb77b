// SPDX-License-Identifier: Apache-2.0
// check_vector(): dimension, finiteness and non-zero checks shared by every backend.
#include "vstore/vector_check.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include <fmt/format.h>

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

}  // namespace vstore
