// SPDX-License-Identifier: Apache-2.0
/// The collection map: a neighbour-preserving 2-D layout of vectors (UMAP), PCA for comparison,
/// trustworthiness, k-means clusters, cluster labels from titles, and placement of new points.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>


#include <nlohmann/json.hpp>

#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// How umap_layout() runs. The defaults are umap-learn's.
struct LayoutOptions {
  /// Size of the local neighbourhood, counting the point itself as umap-learn does (14 others).
  /// Default 15. Range 2..200; fewer points than that use all of them.
  int neighbors = 15;
  /// Smallest distance between points in the layout, against `spread`. Default 0.1. Range 0..spread.
  double min_dist = 0.1;
  /// Scale of the layout. Default 1.0. Range (0, 100].
  double spread = 1.0;
  /// Passes of the optimisation; 0 picks umap-learn's: 500 up to 10,000 points, 200 above. Range 0..10000.
  int epochs = 0;
  /// Seeds the initial noise and the negative samples. The same rows in the same order and the
  /// same seed give the same layout, bit for bit.
  std::uint64_t seed = 42;
  /// Threads of the exact neighbour search; 0 = one per core. The result does not depend on it.
  int threads = 0;
  /// When set and it becomes true, a layout or map build in progress stops early and returns
  /// unavailable ("cancelled"): a service that is stopping does not wait for a long build.
  const std::atomic<bool>* cancel = nullptr;
};

/// A UMAP layout (McInnes, Healy, Melville 2018, arXiv:1802.03426) of `n` row-major vectors of
/// `dim` floats, compared by cosine distance: returns n x 2 floats, row-major, in input order.
/// The neighbour graph is exact (blocked matrix products); the initialisation is PCA; the
/// optimisation runs on one thread. The layout depends on the rows' order (the graph's edges
/// are visited in row order): build_map() sorts by id first, so a collection gives one layout
/// whatever order its rows arrive in. Errors: invalid_argument (n == 0, dim == 0, data.size()
/// != n * dim, a non-finite value named by row and column, options out of range).
/// Thread-safe (no shared state).
[[nodiscard]] Result<std::vector<float>> umap_layout(std::span<const float> data, std::size_t n, std::size_t dim,
                                                     const LayoutOptions& options = {});

/// The first two principal components of the rows (centred, unscaled): n x 2 floats, row-major.
/// Each axis's sign makes its largest loading positive, so the result does not depend on the
/// solver's start. Errors: invalid_argument as umap_layout(). Thread-safe.
[[nodiscard]] Result<std::vector<float>> pca_layout(std::span<const float> data, std::size_t n, std::size_t dim);

/// Trustworthiness of a layout (Venna & Kaski 2001), as scikit-learn's
/// sklearn.manifold.trustworthiness(high, low, n_neighbors=k) computes it with the Euclidean
/// metric: 1 - 2 / (n k (2n - 3k - 1)) * sum over points i and over the k nearest neighbours j
/// of i in `low` of max(0, r(i, j) - k), where r(i, j) is j's rank among i's neighbours in
/// `high`. 1 means the layout brings no point near that is not near in the input. `high` is
/// n x dim, `low` n x 2, both row-major. Input distances are ranked in float32 (scikit-learn ranks
/// in float64): a near tie may order differently, which moves T by 2 / (n k (2n - 3k - 1)) per
/// rank. Cost: n^2 dim multiply-adds (blocked matrix products
/// on `threads` threads, 0 = one per core) and n^2 for the layout's neighbours. Errors:
/// invalid_argument (sizes, non-finite values, k < 1 or k >= n / 2, which scikit-learn refuses).
[[nodiscard]] Result<double> trustworthiness(std::span<const float> high, std::span<const float> low, std::size_t n,
                                             std::size_t dim, int k, int threads = 0);

/// k-means clusters of vectors.
struct KMeansResult {
  std::vector<int> labels;           ///< labels[i] in 0..k-1, per input row
  std::vector<double> centres;       ///< k x dim, row-major: the mean of each cluster's rows
  std::vector<std::int64_t> sizes;   ///< sizes[c] = rows in cluster c
};

/// k-means of `n` row-major vectors of `dim` floats: k-means++ seeding from `seed`, then Lloyd
/// iterations until no row changes cluster (at most 300). Distances are squared Euclidean;
/// assignments use blocked matrix products, means are summed in double; a tie goes to the lower
/// cluster. An emptied cluster keeps its centre. Deterministic for a seed. Errors:
/// invalid_argument (k < 1, n < k, sizes, non-finite values).
[[nodiscard]] Result<KMeansResult> kmeans(std::span<const float> data, std::size_t n, std::size_t dim, int k,
                                          std::uint64_t seed = 42);

/// The number of clusters a map of `n` points gets when none is asked for: the cube root of n,
/// rounded, kept within 2..24 (24 labels still read on one screen) and at most n.
[[nodiscard]] int auto_cluster_count(std::size_t n);

/// The words of a title that labels are made of: lower-cased (ASCII; other bytes are kept as
/// they are), split at anything that is not a letter, a digit or a byte of a multi-byte UTF-8
/// character; words of one character, words holding a digit and English stop words dropped.
[[nodiscard]] std::vector<std::string> title_words(std::string_view title);

/// Each cluster's `terms` most distinctive title words by class-based TF-IDF: a word's share of
/// the cluster's words (a title counts a word once) times log(1 + A / f), where f is the word's
/// count in every cluster and A the mean number of words per cluster. Ties go to the word
/// that sorts first. `labels[i]` is titles[i]'s cluster, -1 to leave a title out. A cluster
/// with fewer words than `terms` gets what it has. Errors: invalid_argument (sizes differ, a
/// label outside -1..clusters-1, clusters < 1, terms < 1).
[[nodiscard]] Result<std::vector<std::vector<std::string>>> cluster_terms(std::span<const std::string> titles,
                                                                          std::span<const int> labels, int clusters,
                                                                          int terms = 3);

/// One labelled cluster of a map.
struct MapCluster {
  int cluster = 0;
  std::string label;               ///< the terms joined by " · "
  std::vector<std::string> terms;  ///< most distinctive first
  std::int64_t size = 0;
  float x = 0.0F;  ///< where to draw the label: the median of its points' x
  float y = 0.0F;  ///< and of their y
};

/// How build_map() runs.
struct MapOptions {
  LayoutOptions layout;
  int clusters = 0;     ///< k of the k-means; 0 = auto_cluster_count(n). Range 0..1000, at most n.
  int label_terms = 3;  ///< title words per label. Range 1..20.
};

/// A built map, in the order of the input rows.
struct BuiltMap {
  std::vector<float> xy;        ///< n x 2, row-major: the UMAP layout
  std::vector<int> cluster;     ///< per row
  std::vector<double> centres;  ///< clusters x dim: the k-means centres in the vectors' space
  std::vector<MapCluster> clusters;
};

/// The map of a set of vectors: the rows are put in `ids` order first, then laid out by
/// umap_layout(), clustered by kmeans() on the unit-length vectors (clusters of meaning, not of
/// the layout's shapes, which UMAP distorts), and each cluster labelled by cluster_terms() of
/// `titles` and placed at its points' median. The result is given back in input order and
/// does not depend on it. Errors: invalid_argument (sizes, duplicate ids, a zero or non-finite
/// vector, options out of range). Thread-safe.
[[nodiscard]] Result<BuiltMap> build_map(std::span<const std::string> ids, std::span<const float> data, std::size_t dim,
                                         std::span<const std::string> titles, const MapOptions& options = {});

/// A point of a map near a new vector: its index in the map and its cosine distance.
struct MapNeighbour {
  std::size_t index = 0;
  double distance = 0.0;
};

/// Where a new vector goes in a map, and its cluster.
struct Placement {
  float x = 0.0F;
  float y = 0.0F;
  int cluster = 0;
};

/// Places a new vector into a map without recomputing it, as UMAP's transform initialises a new
/// point: the mean of its neighbours' positions weighted by their fuzzy membership strengths
/// exp(-(d - rho) / sigma) (rho the nearest distance, sigma found as for the layout's graph),
/// then moved, as UMAP's transform optimises a new point against its neighbours, to the nearest
/// stationary point of its attraction to them under the layout's curve (min_dist 0.1), so that
/// it lands in the clump most of its weight lies in rather than between clumps; its cluster is the one with the largest total weight among them (the lower on a tie). `xy` and
/// `clusters` are the map's positions (n x 2) and clusters. Errors: invalid_argument (no
/// neighbour, an index outside the map, a negative or non-finite distance).
[[nodiscard]] Result<Placement> place_point(std::span<const MapNeighbour> neighbours, std::span<const float> xy,
                                            std::span<const int> clusters);

/// The map of stored articles, in columns: what `GET /v1/map` serves (docs/http.md) and
/// `vstore project` prints. Not thread-safe; the service guards it.
struct ArticleMap {
  std::string built_at;  ///< when the layout was made: UTC, "2026-12-07T15:00:00Z"
  std::string method = "umap";
  std::uint64_t seed = 42;
  std::vector<MapCluster> clusters;
  std::vector<std::string> ids;
  std::vector<float> x;
  std::vector<float> y;
  std::vector<int> cluster;
  std::vector<nlohmann::json> titles;  ///< a string, or null where the article has none
  std::vector<char> placed;            ///< 1 where the point was placed after the build (place_point)
  /// Every scalar metadata key of the points except title, raw and summary, sorted; fields[f][i]
  /// is point i's value of field_names[f], or null.
  std::vector<std::string> field_names;
  std::vector<std::vector<nlohmann::json>> fields;
  std::size_t dim = 0;          ///< of the vectors the map was built from
  std::vector<double> centres;  ///< clusters x dim: the k-means centres (not in map_json())

  [[nodiscard]] std::size_t size() const { return ids.size(); }
  [[nodiscard]] std::int64_t placed_count() const;
};

/// The map of `batch` (the stored vectors and their metadata) by build_map(), stamped with the
/// current time. Errors: those of build_map().
[[nodiscard]] Result<ArticleMap> map_articles(const VectorBatch& batch, const MapOptions& options = {});

/// The map as `GET /v1/map` answers it: {"count", "built_at", "method", "seed", "placed",
/// "clusters": [{"cluster", "label", "terms", "size", "x", "y"}], "points": {"id", "x", "y",
/// "cluster", "title"} (columns of equal length), "fields": {KEY: [value or null, ...]}}, numbers
/// at float32 precision.
[[nodiscard]] nlohmann::json map_json(const ArticleMap& map);

/// Reads map_json()'s form back (the centres are not in it). Errors: corruption naming what is
/// missing or of the wrong type or length.
[[nodiscard]] Result<ArticleMap> map_from_json(const nlohmann::json& value);

/// Puts article `id` at `where` in the map, marked placed: a new point is appended (every field
/// gets its value from `metadata` or null, new keys become new fields), a known one moves. The
/// clusters' sizes follow. Returns whether the point is new.
bool place_article(ArticleMap& map, const std::string& id, const nlohmann::json& metadata, const Placement& where);

}  // namespace vstore
