// SPDX-License-Identifier: Apache-2.0
// pca_layout(): the rows projected on their first two principal components. The covariance
// (dim x dim) of the centred rows comes from one cblas_ssyrk call, then a block power iteration in
// double (4 vectors, re-orthonormalised by Gram-Schmidt at every step) finds its two leading
// eigenvectors; the extra vectors speed convergence when the leading eigenvalues are close.
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <random>

#include <fmt/format.h>

#include "map/map_internal.hpp"
#include "vstore/collection_map.hpp"

namespace vstore {
namespace {

constexpr std::size_t k_block_vectors = 4;
constexpr int k_max_iterations = 3000;
constexpr double k_converged = 1e-12;

// Orthonormalises the columns of `v` (dim x cols, column-major by vector) in place; a vector
// that vanishes is replaced by the next unit axis orthogonal enough to the others.
void orthonormalise(std::vector<std::vector<double>>& v) {
  const std::size_t dim = v.front().size();
  for (std::size_t c = 0; c < v.size(); ++c) {
    for (std::size_t pass = 0; pass < 2; ++pass) {  // twice is enough (Kahan's "twice is enough")
      for (std::size_t p = 0; p < c; ++p) {
        double dot = 0.0;
        for (std::size_t j = 0; j < dim; ++j) dot += v[c][j] * v[p][j];
        for (std::size_t j = 0; j < dim; ++j) v[c][j] -= dot * v[p][j];
      }
    }
    double norm = 0.0;
    for (double x : v[c]) norm += x * x;
    norm = std::sqrt(norm);
    if (norm < 1e-300) {
      std::fill(v[c].begin(), v[c].end(), 0.0);
      v[c][c % dim] = 1.0;
      continue;
    }
    for (double& x : v[c]) x /= norm;
  }
}

}  // namespace

Result<std::vector<float>> pca_layout(std::span<const float> data, std::size_t n, std::size_t dim) {
  if (n == 0 || dim == 0) return fail(ErrorCode::invalid_argument, fmt::format("pca_layout needs vectors, got {} x {}", n, dim));
  VS_TRY(map::check_matrix("pca_layout", data, n, dim));
  std::vector<double> mean(dim, 0.0);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < dim; ++j) mean[j] += data[i * dim + j];
  }
  for (double& m : mean) m /= static_cast<double>(n);
  std::vector<float> centred(n * dim);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < dim; ++j) centred[i * dim + j] = static_cast<float>(data[i * dim + j] - mean[j]);
  }
  std::vector<float> cov(dim * dim, 0.0F);
  openblas_set_num_threads(1);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(dim), static_cast<blasint>(n), 1.0F,
              centred.data(), static_cast<blasint>(dim), 0.0F, cov.data(), static_cast<blasint>(dim));
  std::vector<double> c(dim * dim);
  for (std::size_t r = 0; r < dim; ++r) {
    for (std::size_t q = r; q < dim; ++q) c[r * dim + q] = c[q * dim + r] = cov[r * dim + q];
  }

  const std::size_t cols = std::min(k_block_vectors, dim);
  std::vector<std::vector<double>> v(cols, std::vector<double>(dim));
  std::mt19937_64 rng(0x9e3779b97f4a7c15ULL);  // a fixed start: the result must not depend on a seed
  for (auto& vec : v) {
    for (double& x : vec) x = static_cast<double>(rng() >> 11) * 0x1.0p-53 - 0.5;
  }
  orthonormalise(v);
  std::vector<std::vector<double>> next(cols, std::vector<double>(dim));
  for (int iter = 0; iter < k_max_iterations; ++iter) {
    for (std::size_t col = 0; col < cols; ++col) {
      for (std::size_t r = 0; r < dim; ++r) {
        double sum = 0.0;
        for (std::size_t q = 0; q < dim; ++q) sum += c[r * dim + q] * v[col][q];
        next[col][r] = sum;
      }
    }
    orthonormalise(next);
    double change = 0.0;
    for (std::size_t col = 0; col < std::min<std::size_t>(2, cols); ++col) {
      double dot = 0.0;
      for (std::size_t j = 0; j < dim; ++j) dot += next[col][j] * v[col][j];
      change = std::max(change, 1.0 - std::abs(dot));
    }
    std::swap(v, next);
    if (change < k_converged) break;
  }
  // The sign: each axis's largest loading is positive.
  for (auto& vec : v) {
    std::size_t top = 0;
    for (std::size_t j = 1; j < dim; ++j) {
      if (std::abs(vec[j]) > std::abs(vec[top])) top = j;
    }
    if (vec[top] < 0.0) {
      for (double& x : vec) x = -x;
    }
  }
  std::vector<float> out(n * 2, 0.0F);
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t axis = 0; axis < std::min<std::size_t>(2, cols); ++axis) {
      double sum = 0.0;
      for (std::size_t j = 0; j < dim; ++j) sum += static_cast<double>(centred[i * dim + j]) * v[axis][j];
      out[i * 2 + axis] = static_cast<float>(sum);
    }
  }
  return out;
}

}  // namespace vstore
