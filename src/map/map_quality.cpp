// SPDX-License-Identifier: Apache-2.0
// trustworthiness() (Venna & Kaski 2001), computed as scikit-learn's
// sklearn.manifold.trustworthiness with the Euclidean metric.
//
// For each point i: its k nearest neighbours in the layout (exact, squared distances in double,
// itself excluded, a tie to the lower index), then the rank of each of them among i's
// neighbours in the input space, 1 for the nearest, counting the points nearer than it and, at an
// equal distance, those of lower index (a stable sort's order). Input distances are
// |x|^2 + |y|^2 - 2 x.y from blocked matrix products (map_knn.cpp), one block of rows at a time,
// so no n x n matrix is ever held. Per-row penalties are summed in row order at the end.
#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "map/map_internal.hpp"
#include "vstore/collection_map.hpp"

namespace vstore {

Result<double> trustworthiness(std::span<const float> high, std::span<const float> low, std::size_t n, std::size_t dim,
                               int k, int threads) {
  if (n == 0 || dim == 0) return fail(ErrorCode::invalid_argument, fmt::format("trustworthiness needs vectors, got {} x {}", n, dim));
  VS_TRY(map::check_matrix("trustworthiness (input)", high, n, dim));
  VS_TRY(map::check_matrix("trustworthiness (layout)", low, n, 2));
  if (k < 1 || static_cast<double>(k) >= static_cast<double>(n) / 2.0) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("trustworthiness needs k from 1 to below n / 2 ({} points), not {}", n, k));
  }
  const auto kk = static_cast<std::size_t>(k);
  // The layout's neighbours.
  std::vector<std::uint32_t> near(n * kk);
  {
    std::vector<double> best(kk);
    for (std::size_t i = 0; i < n; ++i) {
      std::fill(best.begin(), best.end(), std::numeric_limits<double>::infinity());
      std::size_t filled = 0;
      for (std::size_t j = 0; j < n; ++j) {
        if (j == i) continue;
        const double dx = static_cast<double>(low[i * 2]) - low[j * 2];
        const double dy = static_cast<double>(low[i * 2 + 1]) - low[j * 2 + 1];
        const double d = dx * dx + dy * dy;
        if (filled == kk && !(d < best[kk - 1])) continue;
        std::size_t pos = filled < kk ? filled++ : kk - 1;
        while (pos > 0 && d < best[pos - 1]) {
          best[pos] = best[pos - 1];
          near[i * kk + pos] = near[i * kk + pos - 1];
          --pos;
        }
        best[pos] = d;
        near[i * kk + pos] = static_cast<std::uint32_t>(j);
      }
    }
  }
  std::vector<double> norms(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    float sum = 0.0F;
    for (std::size_t j = 0; j < dim; ++j) sum += high[i * dim + j] * high[i * dim + j];
    norms[i] = sum;
  }
  std::vector<double> penalty(n, 0.0);
  map::for_each_product_block(high.data(), n, high.data(), n, dim, threads,
                              [&](std::size_t first, std::size_t rows, const float* products) {
    std::vector<float> d(n);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t i = first + r;
      const float* row = products + r * n;
      for (std::size_t j = 0; j < n; ++j) d[j] = static_cast<float>(norms[i] + norms[j]) - 2.0F * row[j];
      // The layout's neighbours by their input distance; one pass counts, for each, the points
      // nearer than it (most points are farther than all of them: one comparison each).
      std::vector<std::pair<float, std::uint32_t>> targets(kk);
      for (std::size_t m = 0; m < kk; ++m) targets[m] = {d[near[i * kk + m]], near[i * kk + m]};
      std::sort(targets.begin(), targets.end());
      // hist[p]: points nearer than targets[p] and not nearer than targets[p - 1]; ties[m]: points
      // at targets[m]'s distance with a lower index (ahead of it in a stable sort's order).
      std::vector<std::size_t> hist(kk + 1, 0);
      std::vector<std::size_t> ties(kk, 0);
      const float farthest = targets.back().first;
      for (std::size_t j = 0; j < n; ++j) {
        if (j == i || d[j] > farthest) continue;
        std::size_t p = 0;
        while (p < kk && !(d[j] < targets[p].first)) {
          if (d[j] == targets[p].first && j < targets[p].second) ++ties[p];
          ++p;
        }
        ++hist[p];
      }
      double sum = 0.0;
      std::size_t less = 0;
      for (std::size_t m = 0; m < kk; ++m) {
        less += hist[m];
        const auto rank = static_cast<double>(less + ties[m] + 1);
        if (rank > static_cast<double>(kk)) sum += rank - static_cast<double>(kk);
      }
      penalty[i] = sum;
    }
  });
  double total = 0.0;
  for (double p : penalty) total += p;
  const double nn = static_cast<double>(n);
  const double kd = static_cast<double>(kk);
  return 1.0 - total * (2.0 / (nn * kd * (2.0 * nn - 3.0 * kd - 1.0)));
}

}  // namespace vstore
