// SPDX-License-Identifier: Apache-2.0
// embedding_projection(): three separated groups come out as three clusters, the same every
// run; the inputs scikit-learn refused are refused with a message that names them.
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
      // x and y are the raw first two dimensions.
      EXPECT_FLOAT_EQ(static_cast<float>(pt.x), data[static_cast<std::size_t>((g * 5 + i) * 4)]);
      EXPECT_FLOAT_EQ(static_cast<float>(pt.y), data[static_cast<std::size_t>((g * 5 + i) * 4 + 1)]);
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

TEST(Projection, RefusesTooFewVectorsOneDimensionAndNaN) {
  const std::vector<float> two = {1, 2, 3, 4};
  auto few = vstore::embedding_projection(two, 2, 2);
  ASSERT_FALSE(few);
  EXPECT_EQ(few.error().code(), vstore::ErrorCode::invalid_argument);
  EXPECT_NE(few.error().message().find("at least 3 vectors"), std::string::npos) << few.error().message();

  const std::vector<float> flat = {1, 2, 3};
  auto one_dim = vstore::embedding_projection(flat, 3, 1);
  ASSERT_FALSE(one_dim);
  EXPECT_NE(one_dim.error().message().find("2 dimensions"), std::string::npos);

  std::vector<float> nan = three_groups();
  nan[9] = std::nanf("");
  auto bad = vstore::embedding_projection(nan, 15, 4);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("vector 2"), std::string::npos) << bad.error().message();

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
