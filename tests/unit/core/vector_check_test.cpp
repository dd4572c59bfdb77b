// SPDX-License-Identifier: Apache-2.0
// all_finite(): every float class, at every position of vectors of several lengths (so both
// the vectorised body and the tail of the loop are exercised).
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <vector>

#include "vstore/vector_check.hpp"

namespace {

TEST(AllFinite, FiniteValuesOfEveryClassPass) {
  const std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, std::numeric_limits<float>::max(),
                                std::numeric_limits<float>::lowest(), std::numeric_limits<float>::min(),
                                std::numeric_limits<float>::denorm_min(), -std::numeric_limits<float>::denorm_min()};
  EXPECT_TRUE(vstore::all_finite(v));
  EXPECT_TRUE(vstore::all_finite({}));
}

TEST(AllFinite, OneNanOrInfinityAnywhereFails) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::signaling_NaN(), std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity(), std::bit_cast<float>(std::uint32_t{0x7f800001U}),
                       std::bit_cast<float>(std::uint32_t{0xffffffffU})};
  for (std::size_t n : {1U, 7U, 8U, 17U, 384U}) {
    for (float b : bad) {
      for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
        std::vector<float> v(n, 0.5f);
        v[at] = b;
        EXPECT_FALSE(vstore::all_finite(v)) << "n " << n << " at " << at << " bits " << std::bit_cast<std::uint32_t>(b);
      }
    }
  }
}

}  // namespace
