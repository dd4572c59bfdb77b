// SPDX-License-Identifier: Apache-2.0
// The collection map's pieces (collection_map.hpp): the UMAP curve fit against umap-learn's
// figures, trustworthiness on a case worked by hand, the layout against PCA on blobs PCA cannot
// separate, determinism across seeds, threads and input order, k-means, labels and placement.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "map/map_internal.hpp"
#include "vstore/collection_map.hpp"

namespace {

// `groups` blobs of `per_group` points in `dim` dimensions, blob g centred on 3 * e_g (so no
// two-dimensional linear projection separates them all), with N(0, 0.3) noise from `seed`.
std::vector<float> axis_blobs(std::size_t groups, std::size_t per_group, std::size_t dim, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0F, 0.3F);
  std::vector<float> v;
  for (std::size_t g = 0; g < groups; ++g) {
    for (std::size_t p = 0; p < per_group; ++p) {
      for (std::size_t j = 0; j < dim; ++j) v.push_back((j == g ? 3.0F : 0.0F) + noise(rng));
    }
  }
  return v;
}

TEST(CollectionMap, CurveFitGivesUmapLearnsParameters) {
  // umap-learn's find_ab_params(spread=1.0, min_dist=0.1) gives a = 1.5769, b = 0.8951.
  const auto [a, b] = vstore::map::test_fit_curve(1.0, 0.1);
  EXPECT_NEAR(a, 1.5769, 2e-3);
  EXPECT_NEAR(b, 0.8951, 2e-3);
}

TEST(CollectionMap, TrustworthinessOfACaseWorkedByHand) {
  // Six points on a line at 0..5; the layout puts them at 0, 4, 2, 3, 1, 5. With k = 2 the
  // layout's neighbours (a tie to the lower index) are {4,2} {3,5} {3,4} {1,2} {0,2} {1,3},
  // whose ranks on the line beyond 2 add up to 2 + 4 + 2 + 1 + 4 + 2 = 15, so
  // T = 1 - 15 * 2 / (6 * 2 * (12 - 6 - 1)) = 0.5.
  const std::vector<float> high = {0, 1, 2, 3, 4, 5};
  const std::vector<float> low = {0, 0, 4, 0, 2, 0, 3, 0, 1, 0, 5, 0};
  auto t = vstore::trustworthiness(high, low, 6, 1, 2);
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_DOUBLE_EQ(*t, 0.5);
  // The line itself as its layout: nothing intrudes.
  const std::vector<float> same = {0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0};
  EXPECT_DOUBLE_EQ(*vstore::trustworthiness(high, same, 6, 1, 2), 1.0);
  // k must stay below n / 2, as scikit-learn requires.
  auto refused = vstore::trustworthiness(high, low, 6, 1, 3);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("below n / 2"), std::string::npos) << refused.error().message();
}

TEST(CollectionMap, LayoutPreservesNeighbourhoodsBetterThanPca) {
  const std::size_t groups = 8;
  const std::size_t per = 60;
  const std::size_t dim = 16;
  const std::size_t n = groups * per;
  const auto data = axis_blobs(groups, per, dim, 7);
  auto umap = vstore::umap_layout(data, n, dim);
  ASSERT_TRUE(umap) << umap.error().to_string();
  auto pca = vstore::pca_layout(data, n, dim);
  ASSERT_TRUE(pca) << pca.error().to_string();
  const double t_umap = *vstore::trustworthiness(data, *umap, n, dim, 10);
  const double t_pca = *vstore::trustworthiness(data, *pca, n, dim, 10);
  std::printf("trustworthiness@10 on %zu axis blobs: umap %.4f, pca %.4f\n", groups, t_umap, t_pca);
  EXPECT_GT(t_umap, t_pca + 0.02);
  // Each point's nearest point in the layout is of its own blob.
  std::size_t same_blob = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double best = 1e300;
    std::size_t nearest = 0;
    for (std::size_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const double dx = (*umap)[i * 2] - (*umap)[j * 2];
      const double dy = (*umap)[i * 2 + 1] - (*umap)[j * 2 + 1];
      if (dx * dx + dy * dy < best) {
        best = dx * dx + dy * dy;
        nearest = j;
      }
    }
    same_blob += static_cast<std::size_t>(nearest / per == i / per);
  }
  EXPECT_GE(same_blob, n * 98 / 100);
}

TEST(CollectionMap, SameSeedSameLayoutAtAnyThreadCountAnotherSeedAnother) {
  const auto data = axis_blobs(5, 500, 12, 3);  // 2,500 rows: several blocks of the neighbour search
  vstore::LayoutOptions one;
  one.threads = 1;
  one.epochs = 50;
  vstore::LayoutOptions two = one;
  two.threads = 2;
  auto a = vstore::umap_layout(data, 2500, 12, one);
  auto b = vstore::umap_layout(data, 2500, 12, two);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(*a, *b) << "bit for bit, whatever the thread count";
  vstore::LayoutOptions other = one;
  other.seed = 43;
  auto c = vstore::umap_layout(data, 2500, 12, other);
  ASSERT_TRUE(c);
  EXPECT_NE(*a, *c);
}

TEST(CollectionMap, RefusesBadInputNamingIt) {
  std::vector<float> data = axis_blobs(2, 5, 4, 1);
  data[13] = std::nanf("");
  auto nan = vstore::umap_layout(data, 10, 4);
  ASSERT_FALSE(nan);
  EXPECT_NE(nan.error().message().find("vector 3"), std::string::npos) << nan.error().message();
  vstore::LayoutOptions bad;
  bad.neighbors = 1;
  auto few = vstore::umap_layout(axis_blobs(2, 5, 4, 1), 10, 4, bad);
  ASSERT_FALSE(few);
  EXPECT_NE(few.error().message().find("neighbors must be from 2 to 200, not 1"), std::string::npos);
  EXPECT_FALSE(vstore::umap_layout(data, 11, 4));
  EXPECT_FALSE(vstore::kmeans(axis_blobs(2, 5, 4, 1), 10, 4, 11));
}

TEST(CollectionMap, KMeansFindsTheBlobs) {
  const auto data = axis_blobs(4, 50, 8, 5);
  auto km = vstore::kmeans(data, 200, 8, 4);
  ASSERT_TRUE(km) << km.error().to_string();
  std::set<int> seen;
  for (std::size_t g = 0; g < 4; ++g) {
    const int label = km->labels[g * 50];
    seen.insert(label);
    for (std::size_t p = 0; p < 50; ++p) EXPECT_EQ(km->labels[g * 50 + p], label);
    EXPECT_EQ(km->sizes[static_cast<std::size_t>(label)], 50);
    EXPECT_NEAR(km->centres[static_cast<std::size_t>(label) * 8 + g], 3.0, 0.15);
  }
  EXPECT_EQ(seen.size(), 4U);
  EXPECT_EQ(vstore::auto_cluster_count(20841), 24);
  EXPECT_EQ(vstore::auto_cluster_count(1000), 10);
  EXPECT_EQ(vstore::auto_cluster_count(5), 2);
  EXPECT_EQ(vstore::auto_cluster_count(1), 1);
}

TEST(CollectionMap, TitleWordsDropStopWordsNumbersAndSingleLetters) {
  EXPECT_EQ(vstore::title_words("OPEC says it will cut 1987 crude output by 5 PCT, U.S. sees"),
            (std::vector<std::string>{"opec", "cut", "crude", "output", "pct"}));
  EXPECT_EQ(vstore::title_words("Zürich Café opens"), (std::vector<std::string>{"zürich", "café", "opens"}));
}

TEST(CollectionMap, ALabelNamesTheTopicOfItsCluster) {
  const std::vector<std::string> titles = {
      "OPEC oil output quota talks",     "Crude oil prices rise on OPEC cut", "Oil refinery output falls",
      "Saudi crude oil exports",         "Wheat harvest hit by drought",      "Soviet wheat purchases grow",
      "Corn and wheat export subsidy",   "Grain stocks: wheat and corn",      "Bank raises prime rate",
      "Company reports quarterly profit"};
  const std::vector<int> labels = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2};
  auto terms = vstore::cluster_terms(titles, labels, 3, 3);
  ASSERT_TRUE(terms) << terms.error().to_string();
  ASSERT_EQ(terms->size(), 3U);
  EXPECT_EQ((*terms)[0].front(), "oil");
  EXPECT_NE(std::find((*terms)[0].begin(), (*terms)[0].end(), "crude"), (*terms)[0].end());
  EXPECT_EQ((*terms)[1].front(), "wheat");
  EXPECT_NE(std::find((*terms)[1].begin(), (*terms)[1].end(), "corn"), (*terms)[1].end());
  auto bad = vstore::cluster_terms(titles, std::vector<int>(10, 3), 3, 3);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("label 3; expected -1 to 2"), std::string::npos) << bad.error().message();
}

TEST(CollectionMap, ACancelledBuildStopsWithUnavailable) {
  const std::size_t n = 300;
  const std::size_t dim = 10;
  const auto data = axis_blobs(3, 100, dim, 11);
  std::vector<std::string> ids(n);
  std::vector<std::string> titles(n, "oil report");
  for (std::size_t i = 0; i < n; ++i) ids[i] = "doc:" + std::to_string(i);
  std::atomic<bool> cancel{true};
  vstore::MapOptions options;
  options.layout.cancel = &cancel;
  auto stopped = vstore::build_map(ids, data, dim, titles, options);
  ASSERT_FALSE(stopped);
  EXPECT_EQ(stopped.error().code(), vstore::ErrorCode::unavailable);
  EXPECT_NE(stopped.error().message().find("cancelled"), std::string::npos) << stopped.error().message();
  auto layout = vstore::umap_layout(data, n, dim, options.layout);
  ASSERT_FALSE(layout);
  EXPECT_NE(layout.error().message().find("cancelled"), std::string::npos) << layout.error().message();
  // The same flag, false: the build runs to the end.
  cancel = false;
  options.layout.epochs = 50;
  auto built = vstore::build_map(ids, data, dim, titles, options);
  ASSERT_TRUE(built) << built.error().to_string();
  EXPECT_EQ(built->xy.size(), n * 2);
}

TEST(CollectionMap, BuildMapDoesNotDependOnInputOrder) {
  const std::size_t n = 300;
  const std::size_t dim = 10;
  const auto data = axis_blobs(3, 100, dim, 11);
  std::vector<std::string> ids(n);
  std::vector<std::string> titles(n);
  const char* topic[] = {"oil crude opec", "wheat grain corn", "bank rate money"};
  for (std::size_t i = 0; i < n; ++i) {
    ids[i] = "doc:" + std::to_string(1000 + i);
    titles[i] = std::string(topic[i / 100]) + " report " + std::to_string(i);
  }
  vstore::MapOptions options;
  options.layout.epochs = 100;
  auto a = vstore::build_map(ids, data, dim, titles, options);
  ASSERT_TRUE(a) << a.error().to_string();
  ASSERT_EQ(a->clusters.size(), static_cast<std::size_t>(vstore::auto_cluster_count(n)));
  // The same rows reversed.
  std::vector<std::string> r_ids(ids.rbegin(), ids.rend());
  std::vector<std::string> r_titles(titles.rbegin(), titles.rend());
  std::vector<float> r_data;
  for (std::size_t i = n; i-- > 0;) r_data.insert(r_data.end(), data.begin() + static_cast<long>(i * dim), data.begin() + static_cast<long>((i + 1) * dim));
  auto b = vstore::build_map(r_ids, r_data, dim, r_titles, options);
  ASSERT_TRUE(b) << b.error().to_string();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(a->xy[i * 2], b->xy[(n - 1 - i) * 2]) << i;
    ASSERT_EQ(a->xy[i * 2 + 1], b->xy[(n - 1 - i) * 2 + 1]) << i;
    ASSERT_EQ(a->cluster[i], b->cluster[n - 1 - i]) << i;
  }
  for (std::size_t c = 0; c < a->clusters.size(); ++c) EXPECT_EQ(a->clusters[c].label, b->clusters[c].label);
  // Duplicate ids are refused.
  std::vector<std::string> dup = ids;
  dup[5] = dup[6];
  auto refused = vstore::build_map(dup, data, dim, titles, options);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("more than once"), std::string::npos);
}

TEST(CollectionMap, PlacementIsTheMembershipWeightedMeanOfTheNeighbours) {
  // Four mapped points; a new vector at distance 0 from point 0 and far from the others sits on
  // point 0; one at equal distances from all sits at their mean, in the cluster most of them hold.
  const std::vector<float> xy = {0, 0, 10, 0, 10, 10, 0, 10};
  const std::vector<int> clusters = {0, 1, 1, 2};
  const std::vector<vstore::MapNeighbour> near_zero = {{0, 0.0}, {1, 0.9}, {2, 0.95}, {3, 0.9}};
  auto p = vstore::place_point(near_zero, xy, clusters);
  ASSERT_TRUE(p) << p.error().to_string();
  EXPECT_LT(std::hypot(p->x, p->y), 5.0);
  const std::vector<vstore::MapNeighbour> even = {{0, 0.5}, {1, 0.5}, {2, 0.5}, {3, 0.5}};
  auto q = vstore::place_point(even, xy, clusters);
  ASSERT_TRUE(q);
  EXPECT_NEAR(q->x, 5.0F, 1e-4);
  EXPECT_NEAR(q->y, 5.0F, 1e-4);
  EXPECT_EQ(q->cluster, 1);
  // Neighbours in two clumps, three of them in one: the point lands in that clump, not between.
  const std::vector<float> clumps = {0, 0, 0.2F, 0, 0, 0.2F, 10, 10, 10.2F, 10};
  const std::vector<int> clump_clusters = {0, 0, 0, 1, 1};
  const std::vector<vstore::MapNeighbour> spread = {{0, 0.30}, {1, 0.31}, {2, 0.32}, {3, 0.33}, {4, 0.34}};
  auto r = vstore::place_point(spread, clumps, clump_clusters);
  ASSERT_TRUE(r);
  EXPECT_LT(std::hypot(r->x, r->y), 1.0) << r->x << ", " << r->y;
  EXPECT_EQ(r->cluster, 0);
  EXPECT_FALSE(vstore::place_point(std::span<const vstore::MapNeighbour>(), xy, clusters));
  const std::vector<vstore::MapNeighbour> outside = {{7, 0.1}};
  EXPECT_FALSE(vstore::place_point(outside, xy, clusters));
}

}  // namespace
