// SPDX-License-Identifier: Apache-2.0
// build_map() and place_point(): the map of a set of vectors (layout, clusters, labels) and the
// placement of a new vector into it.
//
// build_map() works on the rows sorted by id, so the input order never changes the result: the
// layout depends on row order (umap_layout's edges are visited in order), the clusters on the
// k-means++ draws over row indices. Clusters are made on the unit-length vectors: they group
// articles by meaning, while UMAP's 2-D shapes stretch and tear, so a cluster of the layout
// would partly describe the layout rather than the articles. The k-means centres keep their
// meaning in the vectors' space (embedding_projection's `centroids`).
#include <algorithm>
#include <cmath>
#include <numeric>

#include <fmt/format.h>

#include "map/map_internal.hpp"
#include "vstore/collection_map.hpp"

namespace vstore {
namespace {

float median(std::vector<float> values) {
  if (values.empty()) return 0.0F;
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  const float upper = values[mid];
  if (values.size() % 2 == 1) return upper;
  const float lower = *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid));
  return (lower + upper) / 2.0F;
}

}  // namespace

Result<BuiltMap> build_map(std::span<const std::string> ids, std::span<const float> data, std::size_t dim,
                           std::span<const std::string> titles, const MapOptions& options) {
  const std::size_t n = ids.size();
  if (titles.size() != n) {
    return fail(ErrorCode::invalid_argument, fmt::format("build_map: {} ids but {} titles", n, titles.size()));
  }
  if (dim == 0) return fail(ErrorCode::invalid_argument, "build_map needs vectors of at least one dimension");
  VS_TRY(map::check_matrix("build_map", data, n, dim));
  if (options.clusters < 0 || options.clusters > 1000) {
    return fail(ErrorCode::invalid_argument, fmt::format("clusters must be from 0 (automatic) to 1000, not {}", options.clusters));
  }
  if (options.label_terms < 1 || options.label_terms > 20) {
    return fail(ErrorCode::invalid_argument, fmt::format("label terms must be from 1 to 20, not {}", options.label_terms));
  }
  if (n > 0 && static_cast<std::size_t>(options.clusters) > n) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("{} clusters need at least {} vectors (one per cluster), got {}", options.clusters, options.clusters, n));
  }
  BuiltMap out;
  if (n == 0) return out;
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ids[a] < ids[b]; });
  for (std::size_t r = 1; r < n; ++r) {
    if (ids[order[r]] == ids[order[r - 1]]) {
      return fail(ErrorCode::invalid_argument, fmt::format("build_map: id \"{}\" appears more than once", ids[order[r]]));
    }
  }
  std::vector<float> sorted(n * dim);
  std::vector<std::string> sorted_titles(n);
  for (std::size_t r = 0; r < n; ++r) {
    std::copy_n(data.data() + order[r] * dim, dim, sorted.data() + r * dim);
    sorted_titles[r] = titles[order[r]];
  }
  std::vector<float> unit = map::unit_rows(sorted, n, dim);
  for (std::size_t r = 0; r < n; ++r) {
    if (std::all_of(unit.begin() + static_cast<std::ptrdiff_t>(r * dim), unit.begin() + static_cast<std::ptrdiff_t>((r + 1) * dim),
                    [](float v) { return v == 0.0F; })) {
      return fail(ErrorCode::invalid_argument, fmt::format("build_map: the vector of \"{}\" is all zeros", ids[order[r]]));
    }
  }
  VS_TRY_ASSIGN(std::vector<float> xy, umap_layout(unit, n, dim, options.layout));
  if (map::cancelled(options.layout.cancel)) return fail(ErrorCode::unavailable, "the map build was cancelled");
  const int k = options.clusters > 0 ? options.clusters : auto_cluster_count(n);
  VS_TRY_ASSIGN(KMeansResult km, kmeans(unit, n, dim, k, options.layout.seed));
  VS_TRY_ASSIGN(auto terms, cluster_terms(sorted_titles, km.labels, k, options.label_terms));

  std::vector<std::vector<float>> xs(static_cast<std::size_t>(k));
  std::vector<std::vector<float>> ys(static_cast<std::size_t>(k));
  for (std::size_t r = 0; r < n; ++r) {
    const auto c = static_cast<std::size_t>(km.labels[r]);
    xs[c].push_back(xy[r * 2]);
    ys[c].push_back(xy[r * 2 + 1]);
  }
  for (std::size_t c = 0; c < static_cast<std::size_t>(k); ++c) {
    MapCluster mc;
    mc.cluster = static_cast<int>(c);
    mc.terms = terms[c];
    for (const auto& t : mc.terms) mc.label += (mc.label.empty() ? "" : " \u00b7 ") + t;
    mc.size = km.sizes[c];
    mc.x = median(std::move(xs[c]));
    mc.y = median(std::move(ys[c]));
    out.clusters.push_back(std::move(mc));
  }
  out.xy.assign(n * 2, 0.0F);
  out.cluster.assign(n, 0);
  for (std::size_t r = 0; r < n; ++r) {
    out.xy[order[r] * 2] = xy[r * 2];
    out.xy[order[r] * 2 + 1] = xy[r * 2 + 1];
    out.cluster[order[r]] = km.labels[r];
  }
  out.centres = std::move(km.centres);
  return out;
}

Result<Placement> place_point(std::span<const MapNeighbour> neighbours, std::span<const float> xy, std::span<const int> clusters) {
  if (neighbours.empty()) return fail(ErrorCode::invalid_argument, "place_point needs at least one neighbour in the map");
  if (xy.size() != clusters.size() * 2) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("place_point: {} positions for {} points", xy.size(), clusters.size()));
  }
  std::vector<MapNeighbour> sorted(neighbours.begin(), neighbours.end());
  for (const auto& nb : sorted) {
    if (nb.index >= clusters.size()) {
      return fail(ErrorCode::invalid_argument, fmt::format("place_point: neighbour {} is outside the map of {} points", nb.index, clusters.size()));
    }
    if (!std::isfinite(nb.distance) || nb.distance < 0.0) {
      return fail(ErrorCode::invalid_argument, fmt::format("place_point: neighbour {} has distance {}", nb.index, nb.distance));
    }
  }
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.distance < b.distance; });
  std::vector<float> distances;
  double mean = 0.0;
  for (const auto& nb : sorted) {
    distances.push_back(static_cast<float>(nb.distance));
    mean += nb.distance;
  }
  mean /= static_cast<double>(sorted.size() + 1);
  // The neighbourhood counts the new point itself, as in the layout's graph.
  const map::SmoothDistance s = map::smooth_knn_distance(distances, static_cast<int>(sorted.size()) + 1, mean);
  double wx = 0.0;
  double wy = 0.0;
  double total = 0.0;
  std::vector<std::pair<int, double>> votes;
  for (std::size_t m = 0; m < sorted.size(); ++m) {
    const double w = map::membership(distances[m], s);
    wx += w * xy[sorted[m].index * 2];
    wy += w * xy[sorted[m].index * 2 + 1];
    total += w;
    const int c = clusters[sorted[m].index];
    auto it = std::find_if(votes.begin(), votes.end(), [c](const auto& v) { return v.first == c; });
    if (it == votes.end()) {
      votes.emplace_back(c, w);
    } else {
      it->second += w;
    }
  }
  // The weighted mean is where UMAP's transform starts a new point; its optimisation then pulls
  // the point towards its neighbours under the layout's curve 1 / (1 + a d^2b). Without the
  // negative samples that is a stationary point of sum w log(1 + a d^2b), reached here by
  // iteratively reweighted means from the start: a neighbour's weight w a b d^(2(b-1)) /
  // (1 + a d^2b) grows as it gets nearer, so the point settles in the clump most of its weight
  // lies in rather than between clumps.
  const auto [a, b] = map::curve_parameters(1.0, 0.1);
  double px = wx / total;
  double py = wy / total;
  for (int iter = 0; iter < 100; ++iter) {
    double sx = 0.0;
    double sy = 0.0;
    double sw = 0.0;
    for (std::size_t m = 0; m < sorted.size(); ++m) {
      const double dx = px - xy[sorted[m].index * 2];
      const double dy = py - xy[sorted[m].index * 2 + 1];
      const double d2 = std::max(dx * dx + dy * dy, 1e-6);
      const double k = map::membership(distances[m], s) * a * b * std::pow(d2, b - 1.0) / (1.0 + a * std::pow(d2, b));
      sx += k * xy[sorted[m].index * 2];
      sy += k * xy[sorted[m].index * 2 + 1];
      sw += k;
    }
    const double nx = sx / sw;
    const double ny = sy / sw;
    const double moved = std::hypot(nx - px, ny - py);
    px = nx;
    py = ny;
    if (moved < 1e-6) break;
  }
  Placement p;
  p.x = static_cast<float>(px);
  p.y = static_cast<float>(py);
  std::sort(votes.begin(), votes.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
  p.cluster = votes.front().first;
  return p;
}

}  // namespace vstore
