// SPDX-License-Identifier: Apache-2.0
// kmeans(): k-means++ seeding (Arthur & Vassilvitskii 2007), then Lloyd iterations. Assignment
// takes argmin_c |c|^2 - 2 x.c from one cblas_sgemm of all rows against the centres (BLAS on one
// thread); centres are means summed in double.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <fmt/format.h>

#include "map/map_internal.hpp"
#include "vstore/collection_map.hpp"

namespace vstore {
namespace {

// A draw in [0, 1) from the generator's bits (std::uniform_real_distribution is not specified
// bit for bit across standard libraries; this is).
double unit_draw(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11U) * 0x1.0p-53; }

double squared_distance(const float* row, const double* centre, std::size_t dim) {
  double sum = 0.0;
  for (std::size_t j = 0; j < dim; ++j) {
    const double d = static_cast<double>(row[j]) - centre[j];
    sum += d * d;
  }
  return sum;
}

}  // namespace

int auto_cluster_count(std::size_t n) {
  const auto k = static_cast<std::size_t>(std::llround(std::cbrt(static_cast<double>(n))));
  return static_cast<int>(std::min(n, std::clamp<std::size_t>(k, 2, 24)));
}

Result<KMeansResult> kmeans(std::span<const float> data, std::size_t n, std::size_t dim, int clusters, std::uint64_t seed) {
  if (clusters < 1) return fail(ErrorCode::invalid_argument, fmt::format("clusters must be at least 1, not {}", clusters));
  const auto k = static_cast<std::size_t>(clusters);
  if (n < k) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} clusters need at least {} vectors (one per cluster), got {}", k, k, n));
  }
  if (dim == 0) return fail(ErrorCode::invalid_argument, "kmeans needs vectors of at least one dimension");
  VS_TRY(map::check_matrix("kmeans", data, n, dim));
  const float* x = data.data();

  // k-means++: the first centre uniformly, each next one with probability proportional to the
  // squared distance to the nearest centre chosen so far.
  std::mt19937_64 rng(seed);
  std::vector<double> centres;
  centres.reserve(k * dim);
  auto add_centre = [&](std::size_t i) {
    for (std::size_t j = 0; j < dim; ++j) centres.push_back(x[i * dim + j]);
  };
  add_centre(static_cast<std::size_t>(rng() % n));
  std::vector<double> nearest(n, std::numeric_limits<double>::infinity());
  while (centres.size() < k * dim) {
    const double* last = centres.data() + centres.size() - dim;
    double total = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
      nearest[i] = std::min(nearest[i], squared_distance(x + i * dim, last, dim));
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
    add_centre(pick);
  }

  openblas_set_num_threads(1);
  KMeansResult out;
  out.labels.assign(n, -1);
  std::vector<float> centres_f(k * dim);
  std::vector<float> products(n * k);
  std::vector<double> centre_norm(k);
  constexpr int k_max_iterations = 300;
  for (int iter = 0; iter < k_max_iterations; ++iter) {
    for (std::size_t c = 0; c < k; ++c) {
      double norm = 0.0;
      for (std::size_t j = 0; j < dim; ++j) {
        centres_f[c * dim + j] = static_cast<float>(centres[c * dim + j]);
        norm += static_cast<double>(centres_f[c * dim + j]) * centres_f[c * dim + j];
      }
      centre_norm[c] = norm;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(n), static_cast<blasint>(k),
                static_cast<blasint>(dim), 1.0F, x, static_cast<blasint>(dim), centres_f.data(), static_cast<blasint>(dim), 0.0F,
                products.data(), static_cast<blasint>(k));
    bool moved = false;
    for (std::size_t i = 0; i < n; ++i) {
      int best = 0;
      double best_d = std::numeric_limits<double>::infinity();
      for (std::size_t c = 0; c < k; ++c) {
        const double d = centre_norm[c] - 2.0 * static_cast<double>(products[i * k + c]);
        if (d < best_d) {
          best_d = d;
          best = static_cast<int>(c);
        }
      }
      if (out.labels[i] != best) {
        out.labels[i] = best;
        moved = true;
      }
    }
    if (!moved) break;
    std::vector<double> sums(k * dim, 0.0);
    std::vector<std::size_t> counts(k, 0);
    for (std::size_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::size_t>(out.labels[i]);
      ++counts[c];
      for (std::size_t j = 0; j < dim; ++j) sums[c * dim + j] += x[i * dim + j];
    }
    for (std::size_t c = 0; c < k; ++c) {
      if (counts[c] == 0) continue;  // an emptied cluster keeps its centre
      for (std::size_t j = 0; j < dim; ++j) centres[c * dim + j] = sums[c * dim + j] / static_cast<double>(counts[c]);
    }
  }
  out.sizes.assign(k, 0);
  for (int label : out.labels) ++out.sizes[static_cast<std::size_t>(label)];
  out.centres = std::move(centres);
  return out;
}

}  // namespace vstore
