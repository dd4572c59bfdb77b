// SPDX-License-Identifier: Apache-2.0
// k-means for embedding_projection(): k-means++ seeding, then Lloyd iterations, in double.
#include "vstore/projection.hpp"

#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

namespace vstore {
namespace {

double squared_distance(std::span<const float> row, const std::vector<double>& centre) {
  double sum = 0.0;
  for (std::size_t j = 0; j < row.size(); ++j) {
    const double d = static_cast<double>(row[j]) - centre[j];
    sum += d * d;
  }
  return sum;
}

// A draw in [0, 1) from the generator's bits (std::uniform_real_distribution is not specified
// bit for bit across standard libraries; this is).
double unit_draw(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

}  // namespace

Result<Projection> embedding_projection(std::span<const float> data, std::size_t n, std::size_t dim, int clusters,
                                        std::uint64_t seed) {
  if (clusters < 1) return fail(ErrorCode::invalid_argument, fmt::format("clusters must be at least 1, not {}", clusters));
  const auto k = static_cast<std::size_t>(clusters);
  if (n < k) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("embedding_projection needs at least {} vectors (one per cluster), got {}", k, n));
  }
  if (dim < 2) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("embedding_projection needs vectors of at least 2 dimensions (x and y), got {}", dim));
  }
  if (data.size() != n * dim) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("expected {} x {} = {} values, got {}", n, dim, n * dim, data.size()));
  }
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (!std::isfinite(data[i])) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("vector {} holds a non-finite value at dimension {}", i / dim, i % dim));
    }
  }
  auto row = [&](std::size_t i) { return data.subspan(i * dim, dim); };
  auto as_centre = [&](std::size_t i) {
    std::vector<double> c(dim);
    for (std::size_t j = 0; j < dim; ++j) c[j] = row(i)[j];
    return c;
  };

  // k-means++: the first centre uniformly, each next one with probability proportional to the
  // squared distance to the nearest centre chosen so far.
  std::mt19937_64 rng(seed);
  std::vector<std::vector<double>> centres;
  centres.push_back(as_centre(static_cast<std::size_t>(rng() % n)));
  std::vector<double> nearest(n, std::numeric_limits<double>::infinity());
  while (centres.size() < k) {
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      nearest[i] = std::min(nearest[i], squared_distance(row(i), centres.back()));
      total += nearest[i];
    }
    std::size_t pick = 0;
    if (total > 0.0) {
      double target = unit_draw(rng) * total;
      for (pick = 0; pick + 1 < n; ++pick) {
        if (target < nearest[pick]) break;
        target -= nearest[pick];
      }
    } else {
      pick = static_cast<std::size_t>(rng() % n);  // every point sits on a centre already
    }
    centres.push_back(as_centre(pick));
  }

  std::vector<int> labels(n, -1);
  constexpr int k_max_iterations = 300;
  for (int iter = 0; iter < k_max_iterations; ++iter) {
    bool moved = false;
    for (std::size_t i = 0; i < n; ++i) {
      int best = 0;
      double best_d = std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < k; ++c) {
        const double d = squared_distance(row(i), centres[c]);
        if (d < best_d) {
          best_d = d;
          best = static_cast<int>(c);
        }
      }
      if (labels[i] != best) {
        labels[i] = best;
        moved = true;
      }
    }
    if (!moved) break;
    std::vector<std::vector<double>> sums(k, std::vector<double>(dim, 0.0));
    std::vector<std::size_t> counts(k, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::size_t>(labels[i]);
      ++counts[c];
      for (std::size_t j = 0; j < dim; ++j) sums[c][j] += row(i)[j];
    }
    for (std::size_t c = 0; c < k; ++c) {
      if (counts[c] == 0) continue;  // an emptied cluster keeps its centre
      for (std::size_t j = 0; j < dim; ++j) centres[c][j] = sums[c][j] / static_cast<double>(counts[c]);
    }
  }

  Projection out;
  out.sizes.assign(k, 0);
  for (int label : labels) ++out.sizes[static_cast<std::size_t>(label)];
  out.points.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto c = static_cast<std::size_t>(labels[i]);
    out.points.push_back({row(i)[0], row(i)[1], labels[i], out.sizes[c]});
  }
  out.centroids = std::move(centres);
  return out;
}

}  // namespace vstore
