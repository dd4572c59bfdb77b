// SPDX-License-Identifier: Apache-2.0
// embedding_projection(): the contract's result shape over the collection map's pieces: the UMAP
// layout (x, y) and k-means clusters of the vectors (labels, centres, sizes).
#include "vstore/projection.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "vstore/collection_map.hpp"

namespace vstore {

Result<Projection> embedding_projection(std::span<const float> data, std::size_t n, std::size_t dim, int clusters,
                                        std::uint64_t seed) {
  if (clusters < 1) return fail(ErrorCode::invalid_argument, fmt::format("clusters must be at least 1, not {}", clusters));
  const auto k = static_cast<std::size_t>(clusters);
  if (n < k) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("embedding_projection needs at least {} vectors (one per cluster), got {}", k, n));
  }
  if (dim == 0) return fail(ErrorCode::invalid_argument, "embedding_projection needs vectors of at least one dimension");
  if (data.size() != n * dim) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("expected {} x {} = {} values, got {}", n, dim, n * dim, data.size()));
  }
  LayoutOptions layout;
  layout.seed = seed;
  VS_TRY_ASSIGN(std::vector<float> xy, umap_layout(data, n, dim, layout));
  VS_TRY_ASSIGN(KMeansResult km, kmeans(data, n, dim, clusters, seed));
  Projection out;
  out.sizes = km.sizes;
  out.points.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::size_t>(km.labels[i]);
    out.points.push_back({xy[i * 2], xy[i * 2 + 1], km.labels[i], km.sizes[c]});
  }
  out.centroids.assign(k, std::vector<double>(dim));
  for (std::size_t c = 0; c < k; ++c) {
    std::copy_n(km.centres.begin() + static_cast<std::ptrdiff_t>(c * dim), dim, out.centroids[c].begin());
  }
  return out;
}

}  // namespace vstore
