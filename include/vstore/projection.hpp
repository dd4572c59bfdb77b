// SPDX-License-Identifier: Apache-2.0
/// embedding_projection(): the old store's 2-D view of a set of vectors, clustered into three, now
/// a neighbour-preserving layout (see collection_map.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vstore/result.hpp"

namespace vstore {

/// One input vector on the plot: its place in the UMAP layout (the old code plotted the raw
/// first two dimensions), the cluster it fell in and that cluster's size.
struct ProjectedPoint {
  double x = 0.0;
  double y = 0.0;
  int cluster = 0;
  std::int64_t size = 0;
};

/// Points in input order, the cluster centres (clusters x dim) and each cluster's size.
struct Projection {
  std::vector<ProjectedPoint> points;
  std::vector<std::vector<double>> centroids;
  std::vector<std::int64_t> sizes;  ///< sizes[c] = number of points in cluster c
};

/// Lays out `n` row-major vectors of `dim` floats in 2-D with umap_layout() (cosine distance,
/// umap-learn's defaults, `seed`) and clusters the vectors into `clusters` groups with kmeans()
/// (k-means++ from `seed`, then Lloyd iterations): the same rows in the same order and the same
/// seed always give the same result; another order of the rows gives another (equally valid)
/// layout. The old code plotted the raw first two dimensions and used scikit-learn's
/// MiniBatchKMeans (k = 3, random_state 42), whose labels no other implementation reproduces;
/// the keys are kept, `centroids` are still the cluster means in the vectors' space. Errors:
/// invalid_argument when n < clusters (scikit-learn refused that too), dim == 0,
/// data.size() != n * dim, or a NaN/Inf value (named by row and column).
[[nodiscard]] Result<Projection> embedding_projection(std::span<const float> data, std::size_t n, std::size_t dim,
                                                      int clusters = 3, std::uint64_t seed = 42);

}  // namespace vstore
