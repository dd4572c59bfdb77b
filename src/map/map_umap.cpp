// SPDX-License-Identifier: Apache-2.0
// umap_layout(): UMAP (McInnes, Healy, Melville 2018, "UMAP: Uniform Manifold Approximation and
// Projection for Dimension Reduction", arXiv:1802.03426), following the paper's algorithm and the
// defaults of its reference implementation, umap-learn:
//
//  1. Graph. The exact k nearest neighbours by cosine distance (map_knn.cpp; k = neighbors - 1
//     others, umap-learn counting the point itself). Per point, rho (nearest positive distance)
//     and sigma by binary search (smooth_knn_distance); the directed membership strengths
//     exp(-max(0, d - rho) / sigma) are symmetrised by the fuzzy union a + a' - a a'
//     (section 3.1, set_op_mix_ratio 1). Edges weaker than max / epochs are dropped, as
//     umap-learn does, since they would never be sampled.
//  2. Curve. a and b of 1 / (1 + a d^(2b)) fitted by Levenberg-Marquardt least squares to the
//     curve that is 1 below min_dist and exp(-(d - min_dist) / spread) above, on 300 points of
//     [0, 3 spread] (umap-learn's find_ab_params; min_dist 0.1 gives a = 1.577, b = 0.895).
//  3. Start. The first two principal components, scaled to at most 10 in absolute value, with
//     noise of 1e-4 from the seed, then each axis rescaled to [0, 10] (umap-learn's "pca" init
//     and simplicial_set_embedding).
//  4. Optimisation. Stochastic gradient descent on the fuzzy set cross-entropy (section 3.2 and
//     umap-learn's optimize_layout_euclidean): `epochs` passes; an edge of weight w is sampled
//     every w_max / w epochs, attracting both ends with gradient -2ab d^(2(b-1)) / (1 + a d^2b)
//     times their difference; each sample draws 5 negative samples per unit of its sampling
//     rate, uniformly from all points, repelled with 2b / ((0.001 + d^2)(1 + a d^2b)); each
//     gradient component is clipped to [-4, 4] and scaled by the learning rate, which falls
//     linearly from 1 to 0.
//
// Determinism: the neighbour search partitions its work independently of the thread count, and
// the optimisation runs on one thread with a xoshiro256** generator seeded from `seed` (umap-learn
// is reproducible only on one thread too). Edges are visited in (row, column) order.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "map/map_internal.hpp"
#include "vstore/collection_map.hpp"

namespace vstore {
namespace {

// xoshiro256** (Blackman & Vigna), seeded through splitmix64: the draws are specified bit for bit.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& word : m_state) {
      seed += 0x9e3779b97f4a7c15ULL;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
      word = z ^ (z >> 31U);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(m_state[1] * 5, 7) * 9;
    const std::uint64_t t = m_state[1] << 17U;
    m_state[2] ^= m_state[0];
    m_state[3] ^= m_state[1];
    m_state[1] ^= m_state[2];
    m_state[0] ^= m_state[3];
    m_state[2] ^= t;
    m_state[3] = rotl(m_state[3], 45);
    return result;
  }
  double unit() { return static_cast<double>(next() >> 11U) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> m_state{};
};

struct Curve {
  double a = 1.0;
  double b = 1.0;
};

// Least squares fit of 1 / (1 + a x^(2b)) by Levenberg-Marquardt from a = b = 1 (scipy's
// curve_fit starts there too).
Curve fit_curve(double spread, double min_dist) {
  constexpr int k_points = 300;
  std::vector<double> xs(k_points);
  std::vector<double> ys(k_points);
  for (int i = 0; i < k_points; ++i) {
    xs[static_cast<std::size_t>(i)] = 3.0 * spread * i / (k_points - 1);
    const double x = xs[static_cast<std::size_t>(i)];
    ys[static_cast<std::size_t>(i)] = x < min_dist ? 1.0 : std::exp(-(x - min_dist) / spread);
  }
  auto cost = [&](double a, double b) {
    double sum = 0.0;
    for (int i = 0; i < k_points; ++i) {
      const double x = xs[static_cast<std::size_t>(i)];
      const double r = 1.0 / (1.0 + a * std::pow(x, 2.0 * b)) - ys[static_cast<std::size_t>(i)];
      sum += r * r;
    }
    return sum;
  };
  Curve c;
  double lambda = 1e-3;
  double current = cost(c.a, c.b);
  for (int iter = 0; iter < 500; ++iter) {
    double jtj[2][2] = {{0, 0}, {0, 0}};
    double jtr[2] = {0, 0};
    for (int i = 0; i < k_points; ++i) {
      const double x = xs[static_cast<std::size_t>(i)];
      if (x <= 0.0) continue;  // f(0) = 1 whatever a and b: no gradient there
      const double p = std::pow(x, 2.0 * c.b);
      const double denom = 1.0 + c.a * p;
      const double r = 1.0 / denom - ys[static_cast<std::size_t>(i)];
      const double da = -p / (denom * denom);
      const double db = -c.a * p * 2.0 * std::log(x) / (denom * denom);
      jtj[0][0] += da * da;
      jtj[0][1] += da * db;
      jtj[1][1] += db * db;
      jtr[0] += da * r;
      jtr[1] += db * r;
    }
    jtj[1][0] = jtj[0][1];
    bool stepped = false;
    for (int attempt = 0; attempt < 30 && !stepped; ++attempt) {
      const double m00 = jtj[0][0] * (1.0 + lambda);
      const double m11 = jtj[1][1] * (1.0 + lambda);
      const double det = m00 * m11 - jtj[0][1] * jtj[1][0];
      if (std::abs(det) < 1e-300) break;
      const double step_a = -(m11 * jtr[0] - jtj[0][1] * jtr[1]) / det;
      const double step_b = -(m00 * jtr[1] - jtj[1][0] * jtr[0]) / det;
      const double a = c.a + step_a;
      const double b = c.b + step_b;
      const double trial = a > 0.0 && b > 0.0 ? cost(a, b) : std::numeric_limits<double>::infinity();
      if (trial < current) {
        const bool small = std::abs(step_a) < 1e-12 * (1.0 + c.a) && std::abs(step_b) < 1e-12 * (1.0 + c.b);
        c = {a, b};
        current = trial;
        lambda = std::max(lambda / 10.0, 1e-12);
        stepped = true;
        if (small) return c;
      } else {
        lambda *= 10.0;
      }
    }
    if (!stepped) break;
  }
  return c;
}

struct Edge {
  std::uint32_t head = 0;
  std::uint32_t tail = 0;
  float weight = 0.0F;
};

// The symmetric fuzzy graph of step 1, in (head, tail) order, pruned below max / epochs.
std::vector<Edge> fuzzy_graph(const map::Neighbours& knn, std::size_t n, int neighbors, int epochs) {
  const std::size_t k = knn.k;
  double mean_all = 0.0;
  for (float d : knn.distance) mean_all += d;
  mean_all /= static_cast<double>(std::max<std::size_t>(1, knn.distance.size()));
  // Directed strengths, each entered both ways: (i, j, a_ij, 0) and (j, i, 0, a_ij).
  struct Directed {
    std::uint32_t row;
    std::uint32_t col;
    float forward;
    float backward;
  };
  std::vector<Directed> entries;
  entries.reserve(2 * n * k);
  for (std::size_t i = 0; i < n; ++i) {
    const std::span<const float> d(knn.distance.data() + i * k, k);
    const map::SmoothDistance s = map::smooth_knn_distance(d, neighbors, mean_all);
    for (std::size_t m = 0; m < k; ++m) {
      const auto j = knn.index[i * k + m];
      const auto w = static_cast<float>(map::membership(d[m], s));
      entries.push_back({static_cast<std::uint32_t>(i), j, w, 0.0F});
      entries.push_back({j, static_cast<std::uint32_t>(i), 0.0F, w});
    }
  }
  std::sort(entries.begin(), entries.end(), [](const Directed& x, const Directed& y) {
    return x.row != y.row ? x.row < y.row : x.col < y.col;
  });
  std::vector<Edge> edges;
  edges.reserve(entries.size() / 2 + 1);
  float largest = 0.0F;
  for (std::size_t e = 0; e < entries.size();) {
    double forward = 0.0;
    double backward = 0.0;
    std::size_t f = e;
    for (; f < entries.size() && entries[f].row == entries[e].row && entries[f].col == entries[e].col; ++f) {
      forward = std::max(forward, static_cast<double>(entries[f].forward));
      backward = std::max(backward, static_cast<double>(entries[f].backward));
    }
    const auto w = static_cast<float>(forward + backward - forward * backward);
    if (w > 0.0F) {
      edges.push_back({entries[e].row, entries[e].col, w});
      largest = std::max(largest, w);
    }
    e = f;
  }
  const float floor = largest / static_cast<float>(epochs);
  std::erase_if(edges, [floor](const Edge& edge) { return edge.weight < floor; });
  return edges;
}

// Step 3: PCA start, scaled and rescaled to [0, 10] per axis.
Result<std::vector<float>> initial_layout(const std::vector<float>& unit, std::size_t n, std::size_t dim, Rng& rng) {
  VS_TRY_ASSIGN(std::vector<float> xy, pca_layout(unit, n, dim));
  float largest = 0.0F;
  for (float v : xy) largest = std::max(largest, std::abs(v));
  const float expand = largest > 0.0F ? 10.0F / largest : 1.0F;
  for (float& v : xy) {
    // Noise: a centred draw of standard deviation 1e-4 (sum of 12 uniforms less 6).
    double noise = -6.0;
    for (int t = 0; t < 12; ++t) noise += rng.unit();
    v = v * expand + static_cast<float>(1e-4 * noise);
  }
  for (std::size_t axis = 0; axis < 2; ++axis) {
    float lo = std::numeric_limits<float>::infinity();
    float hi = -std::numeric_limits<float>::infinity();
    for (std::size_t i = 0; i < n; ++i) {
      lo = std::min(lo, xy[i * 2 + axis]);
      hi = std::max(hi, xy[i * 2 + axis]);
    }
    const float range = hi - lo;
    for (std::size_t i = 0; i < n; ++i) xy[i * 2 + axis] = range > 0.0F ? 10.0F * (xy[i * 2 + axis] - lo) / range : 0.0F;
  }
  return xy;
}

float clip(double g) { return static_cast<float>(std::clamp(g, -4.0, 4.0)); }

// Step 4, on one thread.
// Returns false when `cancel` stopped it.
bool optimise(std::vector<float>& xy, std::size_t n, const std::vector<Edge>& edges, const Curve& curve, int epochs, Rng& rng,
              const std::atomic<bool>* cancel) {
  constexpr double k_negative_rate = 5.0;
  constexpr double k_gamma = 1.0;
  float largest = 0.0F;
  for (const auto& e : edges) largest = std::max(largest, e.weight);
  std::vector<double> per_sample(edges.size());
  std::vector<double> per_negative(edges.size());
  std::vector<double> next_sample(edges.size());
  std::vector<double> next_negative(edges.size());
  for (std::size_t e = 0; e < edges.size(); ++e) {
    per_sample[e] = static_cast<double>(largest) / edges[e].weight;
    per_negative[e] = per_sample[e] / k_negative_rate;
    next_sample[e] = per_sample[e];
    next_negative[e] = per_negative[e];
  }
  const double a = curve.a;
  const double b = curve.b;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    if (map::cancelled(cancel)) return false;
    const auto alpha = static_cast<float>(1.0 - static_cast<double>(epoch) / epochs);
    for (std::size_t e = 0; e < edges.size(); ++e) {
      if (next_sample[e] > epoch) continue;
      float* current = &xy[static_cast<std::size_t>(edges[e].head) * 2];
      float* other = &xy[static_cast<std::size_t>(edges[e].tail) * 2];
      float dx = current[0] - other[0];
      float dy = current[1] - other[1];
      double d2 = static_cast<double>(dx) * dx + static_cast<double>(dy) * dy;
      if (d2 > 0.0) {
        const double coeff = -2.0 * a * b * std::pow(d2, b - 1.0) / (a * std::pow(d2, b) + 1.0);
        const float gx = clip(coeff * dx);
        const float gy = clip(coeff * dy);
        current[0] += gx * alpha;
        current[1] += gy * alpha;
        other[0] -= gx * alpha;
        other[1] -= gy * alpha;
      }
      next_sample[e] += per_sample[e];
      const auto negatives = static_cast<int>((epoch - next_negative[e]) / per_negative[e]);
      for (int p = 0; p < negatives; ++p) {
        const std::size_t k = rng.next() % n;
        if (k == edges[e].head) continue;
        const float* far = &xy[k * 2];
        dx = current[0] - far[0];
        dy = current[1] - far[1];
        d2 = static_cast<double>(dx) * dx + static_cast<double>(dy) * dy;
        if (d2 <= 0.0) continue;
        const double coeff = 2.0 * k_gamma * b / ((0.001 + d2) * (a * std::pow(d2, b) + 1.0));
        current[0] += clip(coeff * dx) * alpha;
        current[1] += clip(coeff * dy) * alpha;
      }
      next_negative[e] += negatives * per_negative[e];
    }
  }
  return true;
}

}  // namespace

Result<std::vector<float>> umap_layout(std::span<const float> data, std::size_t n, std::size_t dim,
                                       const LayoutOptions& options) {
  if (n == 0 || dim == 0) return fail(ErrorCode::invalid_argument, fmt::format("umap_layout needs vectors, got {} x {}", n, dim));
  if (n > std::numeric_limits<std::uint32_t>::max()) {
    return fail(ErrorCode::invalid_argument, fmt::format("umap_layout takes at most {} vectors, got {}",
                                                         std::numeric_limits<std::uint32_t>::max(), n));
  }
  if (options.neighbors < 2 || options.neighbors > 200) {
    return fail(ErrorCode::invalid_argument, fmt::format("neighbors must be from 2 to 200, not {}", options.neighbors));
  }
  if (!(options.spread > 0.0 && options.spread <= 100.0)) {
    return fail(ErrorCode::invalid_argument, fmt::format("spread must be above 0 and at most 100, not {}", options.spread));
  }
  if (!(options.min_dist >= 0.0 && options.min_dist <= options.spread)) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("min_dist must be from 0 to spread ({}), not {}", options.spread, options.min_dist));
  }
  if (options.epochs < 0 || options.epochs > 10000) {
    return fail(ErrorCode::invalid_argument, fmt::format("epochs must be from 0 to 10000, not {}", options.epochs));
  }
  VS_TRY(map::check_matrix("umap_layout", data, n, dim));
  if (n == 1) return std::vector<float>{0.0F, 0.0F};
  const int epochs = options.epochs > 0 ? options.epochs : (n <= 10000 ? 500 : 200);
  const int neighbors = std::min<int>(options.neighbors, static_cast<int>(std::min<std::size_t>(n, 1000)));
  const std::vector<float> unit = map::unit_rows(data, n, dim);
  const map::Neighbours knn =
      map::cosine_knn(unit, n, dim, static_cast<std::size_t>(neighbors - 1), options.threads, options.cancel);
  if (map::cancelled(options.cancel)) return fail(ErrorCode::unavailable, "the layout was cancelled");
  const std::vector<Edge> edges = fuzzy_graph(knn, n, neighbors, epochs);
  const Curve curve = fit_curve(options.spread, options.min_dist);
  Rng rng(options.seed);
  VS_TRY_ASSIGN(std::vector<float> xy, initial_layout(unit, n, dim, rng));
  if (!optimise(xy, n, edges, curve, epochs, rng, options.cancel)) {
    return fail(ErrorCode::unavailable, "the layout was cancelled");
  }
  return xy;
}

namespace map {
std::pair<double, double> curve_parameters(double spread, double min_dist) {
  static std::mutex mutex;
  static std::map<std::pair<double, double>, Curve> fitted;
  std::lock_guard lock(mutex);
  auto it = fitted.find({spread, min_dist});
  if (it == fitted.end()) it = fitted.emplace(std::pair{spread, min_dist}, fit_curve(spread, min_dist)).first;
  return {it->second.a, it->second.b};
}

// For tests only: the fitted curve's a and b.
std::pair<double, double> test_fit_curve(double spread, double min_dist) {
  const Curve c = fit_curve(spread, min_dist);
  return {c.a, c.b};
}
}  // namespace map

}  // namespace vstore
