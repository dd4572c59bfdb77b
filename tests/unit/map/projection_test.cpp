// SPDX-License-Identifier: Apache-2.0
// embedding_projection(): three separated groups come out as three clusters and three places in
// the layout, the same every run; the inputs scikit-learn refused are refused with a message that
// names them.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "vstore/projection.hpp"

namespace {

// 3 groups of 5 points in 4 dimensions around (10,0,..), (0,10,..) and (-10,-10,..).
std::vector<float> three_groups() {
  const float centres[3][2] = {{10, 0}, {0, 10}, {-10, -10}};
  std::vector<float> v;
  for (int g = 0; g < 3; ++g) {
    for (int i = 0; i < 5; ++i) {
      v.push_back(centres[g][0] + 0.1f * static_cast<float>(i));
      v.push_back(centres[g][1] - 0.1f * static_cast<float>(i));
      v.push_back(0.01f * static_cast<float>(i));
      v.push_back(1.0f);
    }
  }
  return v;
}

TEST(Projection, SeparatedGroupsBecomeTheClusters) {
  const auto data = three_groups();
  auto p = vstore::embedding_projection(data, 15, 4);
  ASSERT_TRUE(p) << p.error().to_string();
  ASSERT_EQ(p->points.size(), 15U);
  ASSERT_EQ(p->centroids.size(), 3U);
  ASSERT_EQ(p->sizes.size(), 3U);
  std::set<int> labels_seen;
  for (int g = 0; g < 3; ++g) {
    const int label = p->points[static_cast<std::size_t>(g * 5)].cluster;
    labels_seen.insert(label);
    for (int i = 0; i < 5; ++i) {
      const auto& pt = p->points[static_cast<std::size_t>(g * 5 + i)];
      EXPECT_EQ(pt.cluster, label) << "point " << g * 5 + i;
      EXPECT_EQ(pt.size, 5);
      // x and y are the layout: the nearest other point there is of the same group.
      double best = 1e300;
      int nearest = -1;
      for (int j = 0; j < 15; ++j) {
        if (j == g * 5 + i) continue;
        const auto& other = p->points[static_cast<std::size_t>(j)];
        const double d = std::hypot(pt.x - other.x, pt.y - other.y);
        if (d < best) {
          best = d;
          nearest = j;
        }
      }
      EXPECT_EQ(nearest / 5, g) << "point " << g * 5 + i;
    }
    // The centre of a group is its mean.
    const auto& c = p->centroids[static_cast<std::size_t>(label)];
    ASSERT_EQ(c.size(), 4U);
    EXPECT_NEAR(c[3], 1.0, 1e-9);
    EXPECT_EQ(p->sizes[static_cast<std::size_t>(label)], 5);
  }
  EXPECT_EQ(labels_seen.size(), 3U);
}

TEST(Projection, SameInputSameLabels) {
  const auto data = three_groups();
  auto a = vstore::embedding_projection(data, 15, 4);
  auto b = vstore::embedding_projection(data, 15, 4);
  ASSERT_TRUE(a && b);
  for (std::size_t i = 0; i < 15; ++i) EXPECT_EQ(a->points[i].cluster, b->points[i].cluster);
}

TEST(Projection, RefusesTooFewVectorsAndNaN) {
  const std::vector<float> two = {1, 2, 3, 4};
  auto few = vstore::embedding_projection(two, 2, 2);
  ASSERT_FALSE(few);
  EXPECT_EQ(few.error().code(), vstore::ErrorCode::invalid_argument);
  EXPECT_NE(few.error().message().find("at least 3 vectors"), std::string::npos) << few.error().message();

  const std::vector<float> empty;
  auto no_dim = vstore::embedding_projection(empty, 3, 0);
  ASSERT_FALSE(no_dim);
  EXPECT_NE(no_dim.error().message().find("at least one dimension"), std::string::npos);

  std::vector<float> nan = three_groups();
  nan[9] = std::nanf("");
  auto bad = vstore::embedding_projection(nan, 15, 4);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("vector 2 holds a non-finite value at dimension 1"), std::string::npos)
      << bad.error().message();

  auto wrong_size = vstore::embedding_projection(two, 3, 2);
  ASSERT_FALSE(wrong_size);
}

TEST(Projection, IdenticalPointsStillGiveThreeClustersOfValidLabels) {
  const std::vector<float> same(3 * 5 * 2, 0.5f);
  auto p = vstore::embedding_projection(same, 15, 2);
  ASSERT_TRUE(p) << p.error().to_string();
  std::int64_t total = 0;
  for (auto s : p->sizes) total += s;
  EXPECT_EQ(total, 15);
  for (const auto& pt : p->points) EXPECT_TRUE(pt.cluster >= 0 && pt.cluster < 3);
}

}  // namespace
