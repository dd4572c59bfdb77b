// SPDX-License-Identifier: Apache-2.0
// Issue 21, item 19: the one cosine (core/cosine.hpp) that the Chroma store, the migration's
// verification and `bench embed` use.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/cosine.hpp"

namespace vstore {
namespace {

TEST(Issue21Cosine, Item19OneCosineGivesTheDistanceEveryBackendRanksBy) {
  const std::vector<float> x = {1.0F, 0.0F, 0.0F};
  const std::vector<float> y = {0.0F, 2.0F, 0.0F};
  const std::vector<float> minus_x = {-3.0F, 0.0F, 0.0F};
  EXPECT_DOUBLE_EQ(cosine_similarity(x, x), 1.0);
  EXPECT_DOUBLE_EQ(cosine_distance(x, x), 0.0);
  EXPECT_DOUBLE_EQ(cosine_distance(x, y), 1.0);
  EXPECT_DOUBLE_EQ(cosine_distance(x, minus_x), 2.0);
  // Scale-free, and summed in double: 1e-3 and 1e3 give the same direction.
  const std::vector<float> small = {1e-3F, 2e-3F, -2e-3F};
  const std::vector<float> large = {1e3F, 2e3F, -2e3F};
  EXPECT_NEAR(cosine_distance(small, large), 0.0, 1e-12);
  const std::vector<float> a = {0.6F, 0.8F};
  const std::vector<float> b = {0.8F, 0.6F};
  EXPECT_NEAR(cosine_similarity(a, b), 0.96, 1e-7);
}

TEST(Issue21Cosine, Item19AZeroVectorHasNoDirectionAndDistanceOne) {
  const std::vector<float> zero = {0.0F, 0.0F};
  const std::vector<float> x = {1.0F, 1.0F};
  EXPECT_EQ(cosine_similarity(zero, x), 0.0);
  EXPECT_EQ(cosine_distance(x, zero), 1.0);
  EXPECT_FALSE(std::isnan(cosine_distance(zero, zero)));
}

}  // namespace
}  // namespace vstore
