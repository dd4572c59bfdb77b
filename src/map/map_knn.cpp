// SPDX-License-Identifier: Apache-2.0
// Exact nearest neighbours for the collection map, by blocked matrix products through OpenBLAS.
//
// The rows are cut into fixed blocks of k_block_rows; a block's products with every row come
// from one cblas_sgemm call (BLAS itself on one thread), and worker threads claim blocks from an
// atomic counter. OpenBLAS may round a product differently depending on where it falls in the
// matrix, so the fixed partition is what makes every result independent of the number of
// threads and of which thread ran a block. Each block's rows are then reduced (top k, ranks)
// by the thread that computed it, into slots that belong to those rows only.
//
// Cost at 20,841 x 384: 2 n^2 dim = 334 GFLOP of products (the time of the neighbour search) and
// n^2 comparisons for the selection; the buffers are k_block_rows x n floats per thread
// (21 MB at that size).
#include "map/map_internal.hpp"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace vstore::map {
namespace {

void blas_on_one_thread() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

Result<void> check_matrix(std::string_view what, std::span<const float> data, std::size_t n, std::size_t dim) {
  if (data.size() != n * dim) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("{}: expected {} x {} = {} values, got {}", what, n, dim, n * dim, data.size()));
  }
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (!std::isfinite(data[i])) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("{}: vector {} holds a non-finite value at dimension {}", what, i / dim, i % dim));
    }
  }
  return {};
}

std::vector<float> unit_rows(std::span<const float> data, std::size_t n, std::size_t dim) {
  std::vector<float> out(data.begin(), data.end());
  for (std::size_t i = 0; i < n; ++i) {
    double norm = 0.0;
    for (std::size_t j = 0; j < dim; ++j) norm += static_cast<double>(out[i * dim + j]) * out[i * dim + j];
    if (norm <= 0.0) continue;
    const double scale = 1.0 / std::sqrt(norm);
    for (std::size_t j = 0; j < dim; ++j) out[i * dim + j] = static_cast<float>(out[i * dim + j] * scale);
  }
  return out;
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
}

void for_each_product_block(const float* a, std::size_t m, const float* b, std::size_t nb, std::size_t dim, int threads,
                            const std::function<void(std::size_t, std::size_t, const float*)>& fn,
                            const std::atomic<bool>* cancel) {
  blas_on_one_thread();
  const std::size_t blocks = (m + k_block_rows - 1) / k_block_rows;
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    std::vector<float> products(k_block_rows * nb);
    for (std::size_t block = next++; block < blocks && !cancelled(cancel); block = next++) {
      const std::size_t first = block * k_block_rows;
      const std::size_t rows = std::min(k_block_rows, m - first);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(rows), static_cast<blasint>(nb),
                  static_cast<blasint>(dim), 1.0F, a + first * dim, static_cast<blasint>(dim), b,
                  static_cast<blasint>(dim), 0.0F, products.data(), static_cast<blasint>(nb));
      fn(first, rows, products.data());
    }
  };
  const auto workers = static_cast<std::size_t>(std::max(1, std::min(resolve_threads(threads), static_cast<int>(blocks))));
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < workers; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

Neighbours cosine_knn(const std::vector<float>& unit, std::size_t n, std::size_t dim, std::size_t k, int threads,
                      const std::atomic<bool>* cancel) {
  Neighbours out;
  out.k = k;
  out.index.assign(n * k, 0);
  out.distance.assign(n * k, 0.0F);
  if (k == 0) return out;
  for_each_product_block(unit.data(), n, unit.data(), n, dim, threads, [&](std::size_t first, std::size_t rows, const float* products) {
    std::vector<float> best(k);
    std::vector<std::uint32_t> best_index(k);
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t i = first + r;
      const float* row = products + r * n;
      std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
      std::fill(best_index.begin(), best_index.end(), 0U);
      std::size_t filled = 0;
      for (std::size_t j = 0; j < n; ++j) {
        const float s = row[j];
        // Strictly greater: an equal similarity keeps the earlier (lower) index.
        if (j == i || (filled == k && !(s > best[k - 1]))) continue;
        std::size_t pos = filled < k ? filled++ : k - 1;
        while (pos > 0 && s > best[pos - 1]) {
          best[pos] = best[pos - 1];
          best_index[pos] = best_index[pos - 1];
          --pos;
        }
        best[pos] = s;
        best_index[pos] = static_cast<std::uint32_t>(j);
      }
      for (std::size_t m = 0; m < k; ++m) {
        out.index[i * k + m] = best_index[m];
        out.distance[i * k + m] = std::max(0.0F, 1.0F - best[m]);
      }
    }
  }, cancel);
  return out;
}

SmoothDistance smooth_knn_distance(std::span<const float> distances, int neighbors, double mean_fallback) {
  constexpr int k_steps = 64;
  constexpr double k_tolerance = 1e-5;
  constexpr double k_min_scale = 1e-3;
  SmoothDistance s;
  const double target = std::log2(static_cast<double>(neighbors));
  for (float d : distances) {
    if (d > 0.0F) {
      s.rho = d;  // distances are ascending: the first positive one is the nearest
      break;
    }
  }
  double lo = 0.0;
  double hi = std::numeric_limits<double>::infinity();
  double mid = 1.0;
  for (int step = 0; step < k_steps; ++step) {
    double sum = 0.0;
    for (float d : distances) {
      const double excess = d - s.rho;
      sum += excess > 0.0 ? std::exp(-excess / mid) : 1.0;
    }
    if (std::abs(sum - target) < k_tolerance) break;
    if (sum > target) {
      hi = mid;
      mid = (lo + hi) / 2.0;
    } else {
      lo = mid;
      mid = std::isinf(hi) ? mid * 2.0 : (lo + hi) / 2.0;
    }
  }
  s.sigma = mid;
  // umap-learn's MIN_K_DIST_SCALE: the mean over the neighbourhood, the point itself (at 0) included.
  double mean = 0.0;
  for (float d : distances) mean += d;
  mean /= static_cast<double>(distances.size() + 1);
  if (s.rho > 0.0) {
    s.sigma = std::max(s.sigma, k_min_scale * mean);
  } else {
    s.sigma = std::max(s.sigma, k_min_scale * mean_fallback);
  }
  return s;
}

double membership(double distance, const SmoothDistance& s) {
  const double excess = distance - s.rho;
  if (excess <= 0.0 || s.sigma <= 0.0) return 1.0;
  return std::exp(-excess / s.sigma);
}

}  // namespace vstore::map
