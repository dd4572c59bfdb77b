// SPDX-License-Identifier: Apache-2.0
/// embedding_projection(): the old store's 2-D view of a set of vectors, clustered into three.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "vstore/result.hpp"

namespace vstore {

/// One input vector as the old code plotted it: its raw first two dimensions (not a learned
/// projection), the cluster it fell in and that cluster's size.
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

/// Clusters `n` row-major vectors of `dim` floats into `clusters` groups with k-means (k-means++
/// seeding from `seed`, then Lloyd iterations until no point moves, at most 300): the same
/// input and seed always give the same labels. The old code used scikit-learn's MiniBatchKMeans
/// (k = 3, random_state 42), whose labels no other implementation reproduces; the keys and
/// meaning are kept. Errors: invalid_argument when n < clusters (scikit-learn refused that
/// too), dim < 2 (no y to plot), data.size() != n * dim, or a NaN/Inf value (named by row and
/// column).
[[nodiscard]] Result<Projection> embedding_projection(std::span<const float> data, std::size_t n, std::size_t dim,
                                                      int clusters = 3, std::uint64_t seed = 42);

}  // namespace vstore
