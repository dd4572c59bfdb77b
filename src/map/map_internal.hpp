// SPDX-License-Identifier: Apache-2.0
// Internal pieces the collection map's files share: input checks, the blocked matrix products
// on a fixed partition of rows, the exact cosine k-nearest neighbours, and UMAP's smooth kNN
// distances (used by the layout and by placement).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::map {

/// invalid_argument unless data.size() == n * dim and every value is finite (the first bad one
/// is named by row and column); `what` names the input in the message.
[[nodiscard]] Result<void> check_matrix(std::string_view what, std::span<const float> data, std::size_t n, std::size_t dim);

/// The rows of `data` scaled to unit length (a zero row stays zero).
[[nodiscard]] std::vector<float> unit_rows(std::span<const float> data, std::size_t n, std::size_t dim);

/// `threads`, or one per core when 0.
[[nodiscard]] int resolve_threads(int threads);

/// Rows per block of for_each_product_block().
inline constexpr std::size_t k_block_rows = 256;

/// For each block of k_block_rows consecutive rows of `a` (m x dim), computes the products of
/// those rows with every row of `b` (nb x dim) by cblas_sgemm on one BLAS thread, and calls
/// fn(first_row, rows, products) with products rows x nb, row-major. Blocks are claimed by up to
/// `threads` threads; the partition does not depend on the thread count, so each product is the
/// same whichever thread computes it. `fn` runs concurrently for different blocks and must write
/// only what belongs to its rows. Once `*cancel` is true (when given), no further block starts.
void for_each_product_block(const float* a, std::size_t m, const float* b, std::size_t nb, std::size_t dim, int threads,
                            const std::function<void(std::size_t, std::size_t, const float*)>& fn,
                            const std::atomic<bool>* cancel = nullptr);

/// The k nearest other rows of each row: index and distance, n x k row-major, nearest first (a
/// tie goes to the lower index).
struct Neighbours {
  std::size_t k = 0;
  std::vector<std::uint32_t> index;
  std::vector<float> distance;
};

/// Exact k nearest neighbours by cosine distance 1 - u.v of unit rows `unit` (n x dim), itself
/// excluded; k <= n - 1. Cost: n^2 dim multiply-adds in blocked products, n^2 comparisons.
/// Once `*cancel` is true (when given) it stops early, leaving later rows unfilled.
[[nodiscard]] Neighbours cosine_knn(const std::vector<float>& unit, std::size_t n, std::size_t dim, std::size_t k,
                                    int threads, const std::atomic<bool>* cancel = nullptr);

/// Whether `cancel` is given and true.
inline bool cancelled(const std::atomic<bool>* cancel) {
  return cancel != nullptr && cancel->load(std::memory_order_relaxed);
}

/// UMAP's smooth_knn_dist for one point (McInnes et al. 2018, section 3.1; umap-learn's
/// smooth_knn_dist with local_connectivity 1 and bandwidth 1): `distances` are its neighbours'
/// (itself not included), `neighbors` the neighbourhood size counting the point itself. rho is the
/// smallest positive distance; sigma is found by 64 steps of binary search so that
/// sum exp(-max(0, d - rho) / sigma) = log2(neighbors), then kept at least 1e-3 times the mean
/// distance (`mean_fallback` when rho is 0).
struct SmoothDistance {
  double rho = 0.0;
  double sigma = 1.0;
};
[[nodiscard]] SmoothDistance smooth_knn_distance(std::span<const float> distances, int neighbors, double mean_fallback);

/// The membership strength of a neighbour at `distance` under `s`.
[[nodiscard]] double membership(double distance, const SmoothDistance& s);

/// a and b of UMAP's curve 1 / (1 + a d^(2b)) for `spread` and `min_dist` (fitted once per pair
/// and remembered).
[[nodiscard]] std::pair<double, double> curve_parameters(double spread, double min_dist);

// ---- for tests only ----
/// a and b of UMAP's curve 1 / (1 + a d^(2b)) as umap_layout() fits them.
[[nodiscard]] std::pair<double, double> test_fit_curve(double spread, double min_dist);

}  // namespace vstore::map
