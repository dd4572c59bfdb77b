// SPDX-License-Identifier: Apache-2.0
// BertModel: loading BERT weights from safetensors and the fp32 encoder forward pass.
//
// Design
// ------
// Loading: config.json gives the shapes. model.safetensors is memory-mapped; its header (8-byte
// little-endian length, then JSON {name: {dtype, shape, data_offsets}}) is parsed with nlohmann,
// and every tensor the encoder needs is checked (F32, shape, offsets inside the file) and copied
// into vectors owned by the model; the map is released before load() returns. Query, key and
// value weights are stacked into one [3H, H] matrix (one GEMM instead of three) and token type
// embedding 0 is folded into the position table. The pooler is unused.
//
// Forward pass, per chunk of sequences (packed, not padded):
//   1. hidden[t] = LayerNorm(word[id] + position_and_type[pos])       [T, H]
//   2. per layer (post-LayerNorm BERT):
//        qkv    = hidden Wqkv^T + bqkv                                   [T, 3H]   sgemm
//        ctx    = per sequence, per head: softmax(Q K^T / sqrt(d)) V     [T, H]    2 sgemm per head
//        hidden = LayerNorm(hidden + ctx Wo^T + bo)                      [T, H]    sgemm, beta = 1
//        inter  = GELU(hidden Wi^T + bi)                                 [T, I]    sgemm
//        hidden = LayerNorm(hidden + inter Wo2^T + bo2)                  [T, H]    sgemm, beta = 1
//   3. embedding = L2-normalise(mean of the sequence's rows of hidden)
// The tokens of all sequences in a chunk sit back to back in one [T, H] matrix, so the dense
// layers (almost all of the work) run as a few large GEMMs and waste nothing on padding.
// Attention runs per sequence over exactly its own tokens, which is what a padded batch with an
// attention mask computes for the real tokens. Bias adds are fused: the GEMM output is first
// filled with the bias (or the residual plus the bias) and the GEMM accumulates into it.
//
// Threads and determinism: OpenBLAS is set to one thread once per process (it would otherwise
// start its own pool and oversubscribe; limit_blas_threads() also stops the workers it started
// at load). embed() cuts the batch into chunks of roughly k_chunk_tokens tokens, a cut that
// depends only on the batch, never on the thread count; the chunks are the parts of one job on
// the process's EmbedPool (embed_pool.hpp), run by the caller and up to `threads` - 1 idle pool
// workers, each with its thread's own workspace. No call starts a thread, so concurrent calls
// do not oversubscribe the cores. OpenBLAS rounds a row differently depending on where it falls
// in the matrix, so fixed chunks are what make the result independent of `threads` and of which
// thread runs a chunk. The model is immutable after load(); nothing mutable is shared between
// calls or threads.
//
// Kernels: LayerNorm, GELU and softmax have an AVX2+FMA version chosen at run time when the CPU
// has it (the build sets no -march) and a portable scalar one; GELU uses a rational erf
// approximation accurate to a few float ulps, softmax a Cephes-style exp. A chunk of at most
// k_small_rows tokens (a search query) runs its Linear layers through an unpacked AVX2
// dot-product kernel instead of BLAS: with so few rows the time goes into streaming the 42 MB
// of weights, and BLAS would also copy them into its packed layout on every call.
#include "embed/embed_bert.hpp"

#include "embed/embed_pool.hpp"

#include <cblas.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <immintrin.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

namespace vstore::embed {
namespace {

using nlohmann::json;

// Target tokens per chunk: enough rows for OpenBLAS to run near its peak, small enough that a
// batch of 32 short texts still gives every thread work.
constexpr std::size_t k_chunk_tokens = 256;
// Up to this many tokens, Linear layers use the unpacked dot-product kernel instead of BLAS,
// whose packing of the weights costs more than the product itself for a handful of rows.
constexpr std::size_t k_small_rows = 32;

// ---------------------------------------------------------------------------------------------
// Element-wise kernels
// ---------------------------------------------------------------------------------------------

void layer_norm_scalar(float* x, std::size_t rows, std::size_t width, const float* gamma, const float* beta,
                       float eps) {
  for (std::size_t row = 0; row < rows; ++row) {
    float* v = x + row * width;
    float sum = 0.0F;
    for (std::size_t i = 0; i < width; ++i) sum += v[i];
    const float mean = sum / static_cast<float>(width);
    float sq = 0.0F;
    for (std::size_t i = 0; i < width; ++i) sq += (v[i] - mean) * (v[i] - mean);
    const float inv = 1.0F / std::sqrt(sq / static_cast<float>(width) + eps);
    for (std::size_t i = 0; i < width; ++i) v[i] = (v[i] - mean) * inv * gamma[i] + beta[i];
  }
}

void gelu_scalar(float* x, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) x[i] = 0.5F * x[i] * (1.0F + std::erf(x[i] * 0.70710678118654752F));
}

void softmax_scalar(float* x, std::size_t rows, std::size_t width) {
  for (std::size_t row = 0; row < rows; ++row) {
    float* v = x + row * width;
    float max = v[0];
    for (std::size_t i = 1; i < width; ++i) max = std::max(max, v[i]);
    float sum = 0.0F;
    for (std::size_t i = 0; i < width; ++i) {
      v[i] = std::exp(v[i] - max);
      sum += v[i];
    }
    const float inv = 1.0F / sum;
    for (std::size_t i = 0; i < width; ++i) v[i] *= inv;
  }
}

[[gnu::target("avx2,fma")]] inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

[[gnu::target("avx2,fma")]] inline float hmax256(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) for x in about [-87, 88] (inputs are clamped), Cephes polynomial, ~1 ulp.
[[gnu::target("avx2,fma")]] inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3F)), _mm256_set1_ps(88.3F));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341F)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375F), x);
  x = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4F), x);
  __m256 y = _mm256_set1_ps(1.9875691500e-4F);
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3F));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3F));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2F));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1F));
  y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1F));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0F)));
  const __m256i pow2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(pow2));
}

// erf(x): odd rational approximation on [-4, 4] (outside it erf is +-1 in float), as in Eigen.
[[gnu::target("avx2,fma")]] inline __m256 erf256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0F)), _mm256_set1_ps(4.0F));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-2.72614225801306e-10F);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.77068142495902e-08F));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06F));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05F));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04F));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03F));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02F));
  p = _mm256_mul_ps(p, x);
  __m256 q = _mm256_set1_ps(-1.45660718464996e-05F);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-2.13374055278905e-04F));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03F));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03F));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02F));
  return _mm256_div_ps(p, q);
}

[[gnu::target("avx2,fma")]] void layer_norm_avx2(float* x, std::size_t rows, std::size_t width, const float* gamma,
                                                 const float* beta, float eps) {
  const std::size_t vec_end = width / 16 * 16;
  const float inv_width = 1.0F / static_cast<float>(width);
  for (std::size_t row = 0; row < rows; ++row) {
    float* v = x + row * width;
    __m256 s0 = _mm256_setzero_ps();
    __m256 s1 = _mm256_setzero_ps();
    std::size_t i = 0;
    for (; i < vec_end; i += 16) {
      s0 = _mm256_add_ps(s0, _mm256_loadu_ps(v + i));
      s1 = _mm256_add_ps(s1, _mm256_loadu_ps(v + i + 8));
    }
    float sum = hsum256(_mm256_add_ps(s0, s1));
    for (; i < width; ++i) sum += v[i];
    const float mean = sum * inv_width;
    const __m256 vmean = _mm256_set1_ps(mean);
    s0 = _mm256_setzero_ps();
    s1 = _mm256_setzero_ps();
    for (i = 0; i < vec_end; i += 16) {
      const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(v + i), vmean);
      const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(v + i + 8), vmean);
      s0 = _mm256_fmadd_ps(d0, d0, s0);
      s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float sq = hsum256(_mm256_add_ps(s0, s1));
    for (; i < width; ++i) sq += (v[i] - mean) * (v[i] - mean);
    const float inv = 1.0F / std::sqrt(sq * inv_width + eps);
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i + 8 <= width; i += 8) {
      const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(v + i), vmean), vinv);
      _mm256_storeu_ps(v + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(gamma + i), _mm256_loadu_ps(beta + i)));
    }
    for (; i < width; ++i) v[i] = (v[i] - mean) * inv * gamma[i] + beta[i];
  }
}

[[gnu::target("avx2,fma")]] void gelu_avx2(float* x, std::size_t n) {
  const __m256 half = _mm256_set1_ps(0.5F);
  const __m256 one = _mm256_set1_ps(1.0F);
  const __m256 inv_sqrt2 = _mm256_set1_ps(0.70710678118654752F);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, erf256(_mm256_mul_ps(v, inv_sqrt2))));
    _mm256_storeu_ps(x + i, _mm256_mul_ps(v, cdf));
  }
  gelu_scalar(x + i, n - i);
}

[[gnu::target("avx2,fma")]] void softmax_avx2(float* x, std::size_t rows, std::size_t width) {
  const std::size_t vec_end = width / 8 * 8;
  for (std::size_t row = 0; row < rows; ++row) {
    float* v = x + row * width;
    float max = v[0];
    std::size_t i = 0;
    if (vec_end > 0) {
      __m256 m = _mm256_loadu_ps(v);
      for (i = 8; i < vec_end; i += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(v + i));
      max = hmax256(m);
    }
    for (; i < width; ++i) max = std::max(max, v[i]);
    const __m256 vmax = _mm256_set1_ps(max);
    __m256 s = _mm256_setzero_ps();
    for (i = 0; i < vec_end; i += 8) {
      const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(v + i), vmax));
      _mm256_storeu_ps(v + i, e);
      s = _mm256_add_ps(s, e);
    }
    float sum = hsum256(s);
    for (; i < width; ++i) {
      v[i] = std::exp(v[i] - max);
      sum += v[i];
    }
    const float inv = 1.0F / sum;
    const __m256 vinv = _mm256_set1_ps(inv);
    for (i = 0; i < vec_end; i += 8) _mm256_storeu_ps(v + i, _mm256_mul_ps(_mm256_loadu_ps(v + i), vinv));
    for (; i < width; ++i) v[i] *= inv;
  }
}

// One MR x NR tile of C += A W^T in dot-product form: MR rows of A against NR rows of W, both
// read along k. No packing, so it wins over BLAS when A has only a few rows (a short query).
template <int MR, int NR>
[[gnu::target("avx2,fma")]] inline void dot_tile(std::size_t k, const float* a, std::size_t lda, const float* w,
                                                 std::size_t ldw, float* c, std::size_t ldc) {
  // The unroll pragmas keep the MR x NR accumulators in registers.
  __m256 acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_setzero_ps();
  }
  std::size_t kk = 0;
  for (; kk + 8 <= k; kk += 8) {
    __m256 wv[NR];
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      const float* w_row = w + static_cast<std::size_t>(j) * ldw;
      wv[j] = _mm256_loadu_ps(w_row + kk);
      // The weights stream from memory once; fetch the next block's rows meanwhile.
      _mm_prefetch(reinterpret_cast<const char*>(w_row + NR * ldw + kk), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_loadu_ps(a + static_cast<std::size_t>(i) * lda + kk);
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm256_fmadd_ps(av, wv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NR; ++j) {
      float sum = hsum256(acc[i][j]);
      for (std::size_t t = kk; t < k; ++t) {
        sum += a[static_cast<std::size_t>(i) * lda + t] * w[static_cast<std::size_t>(j) * ldw + t];
      }
      c[static_cast<std::size_t>(i) * ldc + static_cast<std::size_t>(j)] += sum;
    }
  }
}

template <int MR>
[[gnu::target("avx2,fma")]] inline void dot_row_block(std::size_t n, std::size_t k, const float* a, std::size_t lda,
                                                      const float* w, std::size_t ldw, float* c, std::size_t ldc,
                                                      std::size_t n0) {
  switch (std::min<std::size_t>(3, n - n0)) {
    case 3: dot_tile<MR, 3>(k, a, lda, w + n0 * ldw, ldw, c + n0, ldc); break;
    case 2: dot_tile<MR, 2>(k, a, lda, w + n0 * ldw, ldw, c + n0, ldc); break;
    default: dot_tile<MR, 1>(k, a, lda, w + n0 * ldw, ldw, c + n0, ldc); break;
  }
}

// C[m x n] += A[m x k] W^T, W stored [n x k]. Blocks of 3 rows of W stay in L1 while every row
// of A passes over them.
[[gnu::target("avx2,fma")]] void small_gemm_nt_avx2(std::size_t m, std::size_t n, std::size_t k, const float* a,
                                                    std::size_t lda, const float* w, std::size_t ldw, float* c,
                                                    std::size_t ldc) {
  for (std::size_t n0 = 0; n0 < n; n0 += 3) {
    for (std::size_t m0 = 0; m0 < m; m0 += 4) {
      const float* a_tile = a + m0 * lda;
      float* c_tile = c + m0 * ldc;
      switch (std::min<std::size_t>(4, m - m0)) {
        case 4: dot_row_block<4>(n, k, a_tile, lda, w, ldw, c_tile, ldc, n0); break;
        case 3: dot_row_block<3>(n, k, a_tile, lda, w, ldw, c_tile, ldc, n0); break;
        case 2: dot_row_block<2>(n, k, a_tile, lda, w, ldw, c_tile, ldc, n0); break;
        default: dot_row_block<1>(n, k, a_tile, lda, w, ldw, c_tile, ldc, n0); break;
      }
    }
  }
}

struct Kernels {
  void (*layer_norm)(float*, std::size_t, std::size_t, const float*, const float*, float);
  void (*gelu)(float*, std::size_t);
  void (*softmax)(float*, std::size_t, std::size_t);
  // C += A W^T for a few rows of A, or nullptr (then BLAS does every product).
  void (*small_gemm_nt)(std::size_t, std::size_t, std::size_t, const float*, std::size_t, const float*, std::size_t,
                        float*, std::size_t);
};

const Kernels& kernels() {
  static const Kernels chosen = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
      return Kernels{layer_norm_avx2, gelu_avx2, softmax_avx2, small_gemm_nt_avx2};
    }
    return Kernels{layer_norm_scalar, gelu_scalar, softmax_scalar, nullptr};
  }();
  return chosen;
}

// Copies `row` into each of the `rows` rows of `dst` (row length = row.size()).
void fill_rows(float* dst, std::size_t rows, std::span<const float> row) {
  for (std::size_t r = 0; r < rows; ++r) std::memcpy(dst + r * row.size(), row.data(), row.size_bytes());
}

// Adds `row` to each of the `rows` rows of `dst`.
void add_rows(float* dst, std::size_t rows, std::span<const float> row) {
  const std::size_t width = row.size();
  for (std::size_t r = 0; r < rows; ++r) {
    float* d = dst + r * width;
    for (std::size_t i = 0; i < width; ++i) d[i] += row[i];
  }
}

// C[m x n] (+)= alpha * A[m x k] * B^T, with B stored [n x k] (a torch Linear weight).
void gemm_nt(std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a, std::size_t lda,
             const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

// C[m x n] += A[m x k] W^T for a Linear layer (W stored [n x k]): the small-rows kernel for a
// few rows, else BLAS. Which one runs depends on m only, so it is the same for every thread count.
void linear_acc(const Kernels& k_ops, std::size_t m, std::size_t n, std::size_t k, const float* a, const float* w,
                float* c) {
  if (k_ops.small_gemm_nt != nullptr && m <= k_small_rows) {
    k_ops.small_gemm_nt(m, n, k, a, k, w, k, c, n);
  } else {
    gemm_nt(m, n, k, 1.0F, a, k, w, k, 1.0F, c, n);
  }
}

// C[m x n] = A[m x k] * B[k x n].
void gemm_nn(std::size_t m, std::size_t n, std::size_t k, const float* a, std::size_t lda, const float* b,
             std::size_t ldb, float* c, std::size_t ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), 1.0F, a, static_cast<blasint>(lda), b, static_cast<blasint>(ldb), 0.0F, c,
              static_cast<blasint>(ldc));
}

void init_blas_once() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

std::string blas_description() {
  const char* config = openblas_get_config();
  return config != nullptr ? std::string(config) : std::string("OpenBLAS");
}

void limit_blas_threads() {
  static std::once_flag once;
  std::call_once(once, [] {
    init_blas_once();
    // Debian's pthread OpenBLAS starts its workers when the library is loaded, before main;
    // they spin for a while and then sleep, and BLAS runs on one thread here anyway. The
    // function is looked up because OpenBLAS builds without a thread server do not have it.
    using Shutdown = int (*)();
    if (void* symbol = dlsym(RTLD_DEFAULT, "blas_thread_shutdown_")) reinterpret_cast<Shutdown>(symbol)();
  });
}

namespace {

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

Result<std::string> read_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return fail(ErrorCode::not_found, fmt::format("model file {} not found", path.string()));
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  if (!in) return fail(ErrorCode::corruption, fmt::format("cannot read {}", path.string()));
  return std::move(data).str();
}

// A read-only memory map of a whole file, unmapped on destruction.
class MappedFile {
 public:
  static Result<MappedFile> open(const std::filesystem::path& path) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      return fail(ErrorCode::not_found, fmt::format("model file {} not found", path.string()));
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return fail(ErrorCode::corruption, fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    }
    struct stat st {};
    MappedFile file;
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      file.m_size = static_cast<std::size_t>(st.st_size);
      void* addr = ::mmap(nullptr, file.m_size, PROT_READ, MAP_PRIVATE, fd, 0);
      file.m_addr = addr == MAP_FAILED ? nullptr : addr;
    }
    const int saved_errno = errno;
    ::close(fd);
    if (file.m_addr == nullptr && file.m_size > 0) {
      return fail(ErrorCode::corruption, fmt::format("cannot map {}: {}", path.string(), std::strerror(saved_errno)));
    }
    return file;
  }
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept
      : m_addr(std::exchange(other.m_addr, nullptr)), m_size(std::exchange(other.m_size, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    std::swap(m_addr, other.m_addr);
    std::swap(m_size, other.m_size);
    return *this;
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (m_addr != nullptr) ::munmap(m_addr, m_size);
  }
  std::string_view bytes() const {
    return m_addr == nullptr ? std::string_view() : std::string_view(static_cast<const char*>(m_addr), m_size);
  }

 private:
  void* m_addr = nullptr;
  std::size_t m_size = 0;
};

Result<int> config_int(const json& cfg, const char* key, int fallback, const std::filesystem::path& path) {
  if (!cfg.contains(key)) return fallback;
  const json& v = cfg[key];
  if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 1'000'000) {
    return fail(ErrorCode::invalid_argument, fmt::format("{}: {} must be an integer in 1..1000000, not {}",
                                                         path.string(), key, v.dump()));
  }
  return v.get<int>();
}

Result<BertConfig> parse_config(const std::filesystem::path& path) {
  VS_TRY_ASSIGN(const std::string text, read_file(path));
  const json cfg = json::parse(text, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) {
    return fail(ErrorCode::corruption, fmt::format("{} is not a JSON object", path.string()));
  }
  BertConfig c;
  VS_TRY_ASSIGN(c.vocab_size, config_int(cfg, "vocab_size", c.vocab_size, path));
  VS_TRY_ASSIGN(c.hidden_size, config_int(cfg, "hidden_size", c.hidden_size, path));
  VS_TRY_ASSIGN(c.num_layers, config_int(cfg, "num_hidden_layers", c.num_layers, path));
  VS_TRY_ASSIGN(c.num_heads, config_int(cfg, "num_attention_heads", c.num_heads, path));
  VS_TRY_ASSIGN(c.intermediate_size, config_int(cfg, "intermediate_size", c.intermediate_size, path));
  VS_TRY_ASSIGN(c.max_positions, config_int(cfg, "max_position_embeddings", c.max_positions, path));
  VS_TRY_ASSIGN(c.type_vocab_size, config_int(cfg, "type_vocab_size", c.type_vocab_size, path));
  if (cfg.contains("layer_norm_eps")) {
    const json& eps = cfg["layer_norm_eps"];
    if (!eps.is_number() || !(eps.get<double>() > 0.0) || eps.get<double>() > 1.0) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("{}: layer_norm_eps must be a number in (0, 1], not {}", path.string(), eps.dump()));
    }
    c.layer_norm_eps = eps.get<float>();
  }
  if (cfg.contains("hidden_act") && cfg["hidden_act"] != "gelu") {
    return fail(ErrorCode::invalid_argument, fmt::format("{}: hidden_act {} is not supported, only \"gelu\"",
                                                         path.string(), cfg["hidden_act"].dump()));
  }
  if (cfg.contains("position_embedding_type") && cfg["position_embedding_type"] != "absolute") {
    return fail(ErrorCode::invalid_argument,
                fmt::format("{}: position_embedding_type {} is not supported, only \"absolute\"", path.string(),
                            cfg["position_embedding_type"].dump()));
  }
  if (c.hidden_size % c.num_heads != 0) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("{}: hidden_size {} is not a multiple of num_attention_heads {}", path.string(),
                            c.hidden_size, c.num_heads));
  }
  return c;
}

// The safetensors file: its bytes and the parsed header.
class SafeTensors {
 public:
  static Result<SafeTensors> open(const std::filesystem::path& path) {
    SafeTensors st;
    st.m_path = path;
    VS_TRY_ASSIGN(st.m_file, MappedFile::open(path));
    st.m_bytes = st.m_file.bytes();
    if (st.m_bytes.size() < 8) {
      return fail(ErrorCode::corruption, fmt::format("{}: {} bytes is too short for a safetensors file",
                                                     path.string(), st.m_bytes.size()));
    }
    std::uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) {
      header_len = (header_len << 8U) | static_cast<unsigned char>(st.m_bytes[static_cast<std::size_t>(i)]);
    }
    if (header_len > st.m_bytes.size() - 8) {
      return fail(ErrorCode::corruption, fmt::format("{}: header length {} exceeds the file size {}", path.string(),
                                                     header_len, st.m_bytes.size()));
    }
    st.m_header = json::parse(st.m_bytes.substr(8, header_len), nullptr, false);
    if (st.m_header.is_discarded() || !st.m_header.is_object()) {
      return fail(ErrorCode::corruption, fmt::format("{}: the header is not a JSON object", path.string()));
    }
    st.m_data_start = 8 + header_len;
    return st;
  }

  bool has(const std::string& name) const { return m_header.contains(name); }

  // Copies tensor `name` (F32, exactly `shape`) into a new vector.
  Result<std::vector<float>> read(const std::string& name, std::vector<std::int64_t> shape) const {
    const auto expected = [&] { return fmt::format("F32 [{}]", fmt::join(shape, ", ")); };
    if (!m_header.contains(name)) {
      return fail(ErrorCode::corruption, fmt::format("{}: tensor {} is missing (expected {})", m_path.string(), name,
                                                     expected()));
    }
    const json& info = m_header[name];
    if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets")) {
      return fail(ErrorCode::corruption, fmt::format("{}: tensor {} has a malformed header entry {}",
                                                     m_path.string(), name, info.dump()));
    }
    std::vector<std::int64_t> got_shape;
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
    try {
      got_shape = info["shape"].get<std::vector<std::int64_t>>();
      const auto offsets = info["data_offsets"].get<std::vector<std::uint64_t>>();
      if (offsets.size() != 2) throw json::other_error::create(501, "data_offsets needs 2 numbers", nullptr);
      begin = offsets[0];
      end = offsets[1];
    } catch (const json::exception&) {
      return fail(ErrorCode::corruption, fmt::format("{}: tensor {} has a malformed header entry {}",
                                                     m_path.string(), name, info.dump()));
    }
    if (info["dtype"] != "F32" || got_shape != shape) {
      return fail(ErrorCode::corruption,
                  fmt::format("{}: tensor {} is {} [{}], expected {}", m_path.string(), name,
                              info["dtype"].is_string() ? info["dtype"].get<std::string>() : info["dtype"].dump(),
                              fmt::join(got_shape, ", "), expected()));
    }
    std::uint64_t count = 1;
    for (const std::int64_t dim : shape) count *= static_cast<std::uint64_t>(dim);
    const std::uint64_t available = m_bytes.size() - m_data_start;
    if (begin > end || end > available || end - begin != count * sizeof(float)) {
      return fail(ErrorCode::corruption,
                  fmt::format("{}: tensor {} has data_offsets [{}, {}], expected {} bytes within {}", m_path.string(),
                              name, begin, end, count * sizeof(float), available));
    }
    std::vector<float> out(count);
    std::memcpy(out.data(), m_bytes.data() + m_data_start + begin, count * sizeof(float));
    return out;
  }

 private:
  std::filesystem::path m_path;
  MappedFile m_file;
  std::string_view m_bytes;  // the whole file, mapped by m_file
  json m_header;
  std::uint64_t m_data_start = 0;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// BertModel
// ---------------------------------------------------------------------------------------------

Result<std::shared_ptr<const BertModel>> BertModel::load(const std::filesystem::path& model_dir) {
  init_blas_once();
  VS_TRY_ASSIGN(const BertConfig cfg, parse_config(model_dir / "config.json"));
  VS_TRY_ASSIGN(const SafeTensors st, SafeTensors::open(model_dir / "model.safetensors"));
  // Checkpoints saved from BertForXxx models carry a "bert." prefix.
  const std::string prefix = st.has("embeddings.word_embeddings.weight") ? "" : "bert.";

  const std::int64_t h = cfg.hidden_size;
  const std::int64_t inter = cfg.intermediate_size;
  auto model = std::make_shared<BertModel>(PrivateTag{});
  model->m_config = cfg;
  const auto read = [&](const std::string& name, std::vector<std::int64_t> shape) {
    return st.read(prefix + name, std::move(shape));
  };

  VS_TRY_ASSIGN(model->m_word_embeddings, read("embeddings.word_embeddings.weight", {cfg.vocab_size, h}));
  VS_TRY_ASSIGN(model->m_position_embeddings, read("embeddings.position_embeddings.weight", {cfg.max_positions, h}));
  VS_TRY_ASSIGN(const std::vector<float> token_types,
                read("embeddings.token_type_embeddings.weight", {cfg.type_vocab_size, h}));
  add_rows(model->m_position_embeddings.data(), static_cast<std::size_t>(cfg.max_positions),
           std::span(token_types).first(static_cast<std::size_t>(h)));
  VS_TRY_ASSIGN(model->m_embed_ln_gamma, read("embeddings.LayerNorm.weight", {h}));
  VS_TRY_ASSIGN(model->m_embed_ln_beta, read("embeddings.LayerNorm.bias", {h}));

  for (int layer_idx = 0; layer_idx < cfg.num_layers; ++layer_idx) {
    const std::string p = fmt::format("encoder.layer.{}.", layer_idx);
    Layer layer;
    layer.qkv_weight.reserve(static_cast<std::size_t>(3 * h * h));
    layer.qkv_bias.reserve(static_cast<std::size_t>(3 * h));
    for (const char* part : {"query", "key", "value"}) {
      VS_TRY_ASSIGN(const std::vector<float> w, read(p + "attention.self." + part + ".weight", {h, h}));
      VS_TRY_ASSIGN(const std::vector<float> b, read(p + "attention.self." + part + ".bias", {h}));
      layer.qkv_weight.insert(layer.qkv_weight.end(), w.begin(), w.end());
      layer.qkv_bias.insert(layer.qkv_bias.end(), b.begin(), b.end());
    }
    VS_TRY_ASSIGN(layer.attn_out_weight, read(p + "attention.output.dense.weight", {h, h}));
    VS_TRY_ASSIGN(layer.attn_out_bias, read(p + "attention.output.dense.bias", {h}));
    VS_TRY_ASSIGN(layer.attn_ln_gamma, read(p + "attention.output.LayerNorm.weight", {h}));
    VS_TRY_ASSIGN(layer.attn_ln_beta, read(p + "attention.output.LayerNorm.bias", {h}));
    VS_TRY_ASSIGN(layer.ffn_in_weight, read(p + "intermediate.dense.weight", {inter, h}));
    VS_TRY_ASSIGN(layer.ffn_in_bias, read(p + "intermediate.dense.bias", {inter}));
    VS_TRY_ASSIGN(layer.ffn_out_weight, read(p + "output.dense.weight", {h, inter}));
    VS_TRY_ASSIGN(layer.ffn_out_bias, read(p + "output.dense.bias", {h}));
    VS_TRY_ASSIGN(layer.ffn_ln_gamma, read(p + "output.LayerNorm.weight", {h}));
    VS_TRY_ASSIGN(layer.ffn_ln_beta, read(p + "output.LayerNorm.bias", {h}));
    model->m_layers.push_back(std::move(layer));
  }
  return std::shared_ptr<const BertModel>(std::move(model));
}

// Scratch buffers of one thread, grown to the largest chunk it meets and reused.
struct BertModel::Workspace {
  std::vector<float> hidden;  // [T, H]
  std::vector<float> qkv;     // [T, 3H]
  std::vector<float> ctx;     // [T, H]
  std::vector<float> inter;   // [T, I]
  std::vector<float> scores;  // [L, L] of one head
  std::vector<std::size_t> offsets;

  void reserve(std::size_t tokens, std::size_t longest, const BertConfig& cfg) {
    const auto h = static_cast<std::size_t>(cfg.hidden_size);
    const auto i = static_cast<std::size_t>(cfg.intermediate_size);
    if (hidden.size() < tokens * h) {
      hidden.resize(tokens * h);
      qkv.resize(tokens * 3 * h);
      ctx.resize(tokens * h);
      inter.resize(tokens * i);
    }
    if (scores.size() < longest * longest) scores.resize(longest * longest);
  }
};

Result<void> BertModel::encode_chunk(std::span<const std::vector<std::int32_t>> seqs, Workspace& ws,
                                     std::span<std::vector<float>> out, int column_parts) const {
  const Kernels& k = kernels();
  // C[m x n] += A W^T; a short chunk with column_parts > 1 splits the n output columns between
  // up to that many threads of the pool (every element is the same dot product whichever
  // thread computes it).
  const auto linear = [&](std::size_t m, std::size_t n, std::size_t kdim, const float* a, const float* w,
                          float* c) -> Result<void> {
    if (column_parts <= 1 || k.small_gemm_nt == nullptr || m > k_small_rows) {
      linear_acc(k, m, n, kdim, a, w, c);
      return {};
    }
    const auto parts = static_cast<std::size_t>(column_parts);
    return EmbedPool::shared().run(parts, column_parts, [&](std::size_t part) {
      const std::size_t n0 = n * part / parts;
      const std::size_t n1 = n * (part + 1) / parts;
      if (n1 > n0) k.small_gemm_nt(m, n1 - n0, kdim, a, kdim, w + n0 * kdim, kdim, c + n0, n);
    });
  };
  const auto h = static_cast<std::size_t>(m_config.hidden_size);
  const auto h3 = 3 * h;
  const auto inter = static_cast<std::size_t>(m_config.intermediate_size);
  const auto heads = static_cast<std::size_t>(m_config.num_heads);
  const std::size_t head_dim = h / heads;
  const float scale = 1.0F / std::sqrt(static_cast<float>(head_dim));
  const float eps = m_config.layer_norm_eps;

  ws.offsets.assign(1, 0);
  std::size_t longest = 0;
  for (const auto& seq : seqs) {
    ws.offsets.push_back(ws.offsets.back() + seq.size());
    longest = std::max(longest, seq.size());
  }
  const std::size_t tokens = ws.offsets.back();
  ws.reserve(tokens, longest, m_config);
  float* hidden = ws.hidden.data();
  float* qkv = ws.qkv.data();
  float* ctx = ws.ctx.data();
  float* ffn = ws.inter.data();
  float* scores = ws.scores.data();

  // Embeddings: word + (position + token type 0), then LayerNorm.
  for (std::size_t seq_idx = 0; seq_idx < seqs.size(); ++seq_idx) {
    const auto& seq = seqs[seq_idx];
    for (std::size_t pos = 0; pos < seq.size(); ++pos) {
      float* row = hidden + (ws.offsets[seq_idx] + pos) * h;
      const float* word = m_word_embeddings.data() + static_cast<std::size_t>(seq[pos]) * h;
      const float* position = m_position_embeddings.data() + pos * h;
      for (std::size_t i = 0; i < h; ++i) row[i] = word[i] + position[i];
    }
  }
  k.layer_norm(hidden, tokens, h, m_embed_ln_gamma.data(), m_embed_ln_beta.data(), eps);

  for (const Layer& layer : m_layers) {
    // Q, K, V for every token in one GEMM.
    fill_rows(qkv, tokens, layer.qkv_bias);
    VS_TRY(linear(tokens, h3, h, hidden, layer.qkv_weight.data(), qkv));

    // Attention, per sequence and head, over the sequence's own tokens only.
    for (std::size_t seq_idx = 0; seq_idx < seqs.size(); ++seq_idx) {
      const std::size_t len = seqs[seq_idx].size();
      const float* base = qkv + ws.offsets[seq_idx] * h3;
      float* ctx_base = ctx + ws.offsets[seq_idx] * h;
      for (std::size_t head = 0; head < heads; ++head) {
        const float* q = base + head * head_dim;
        const float* kk = base + h + head * head_dim;
        const float* v = base + 2 * h + head * head_dim;
        gemm_nt(len, len, head_dim, scale, q, h3, kk, h3, 0.0F, scores, len);
        k.softmax(scores, len, len);
        gemm_nn(len, head_dim, len, scores, len, v, h3, ctx_base + head * head_dim, h);
      }
    }

    // Output projection into the residual (hidden + bias), then LayerNorm.
    add_rows(hidden, tokens, layer.attn_out_bias);
    VS_TRY(linear(tokens, h, h, ctx, layer.attn_out_weight.data(), hidden));
    k.layer_norm(hidden, tokens, h, layer.attn_ln_gamma.data(), layer.attn_ln_beta.data(), eps);

    // Feed-forward: GELU(hidden Wi^T + bi) Wo^T + bo, into the residual, then LayerNorm.
    fill_rows(ffn, tokens, layer.ffn_in_bias);
    VS_TRY(linear(tokens, inter, h, hidden, layer.ffn_in_weight.data(), ffn));
    k.gelu(ffn, tokens * inter);
    add_rows(hidden, tokens, layer.ffn_out_bias);
    VS_TRY(linear(tokens, h, inter, ffn, layer.ffn_out_weight.data(), hidden));
    k.layer_norm(hidden, tokens, h, layer.ffn_ln_gamma.data(), layer.ffn_ln_beta.data(), eps);
  }

  // Mean pooling over each sequence's tokens, then L2 normalisation.
  std::vector<double> sum(h);
  for (std::size_t seq_idx = 0; seq_idx < seqs.size(); ++seq_idx) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (std::size_t t = ws.offsets[seq_idx]; t < ws.offsets[seq_idx + 1]; ++t) {
      const float* row = hidden + t * h;
      for (std::size_t i = 0; i < h; ++i) sum[i] += static_cast<double>(row[i]);
    }
    double norm = 0.0;
    for (const double v : sum) norm += v * v;
    // The mean's 1/len cancels in the normalisation.
    const double inv = norm > 0.0 ? 1.0 / std::sqrt(norm) : 0.0;
    std::vector<float>& dst = out[seq_idx];
    dst.resize(h);
    for (std::size_t i = 0; i < h; ++i) dst[i] = static_cast<float>(sum[i] * inv);
  }
  return {};
}

Result<std::vector<std::vector<float>>> BertModel::embed(std::span<const std::vector<std::int32_t>> batch,
                                                         int threads) const {
  if (threads < 1) return fail(ErrorCode::invalid_argument, fmt::format("threads must be >= 1, not {}", threads));
  for (std::size_t seq_idx = 0; seq_idx < batch.size(); ++seq_idx) {
    const auto& seq = batch[seq_idx];
    if (seq.empty() || seq.size() > static_cast<std::size_t>(m_config.max_positions)) {
      return fail(ErrorCode::invalid_argument, fmt::format("sequence {} has {} tokens, expected 1..{}", seq_idx,
                                                           seq.size(), m_config.max_positions));
    }
    for (const std::int32_t id : seq) {
      if (id < 0 || id >= m_config.vocab_size) {
        return fail(ErrorCode::invalid_argument, fmt::format("sequence {} has token id {}, expected 0..{}", seq_idx,
                                                             id, m_config.vocab_size - 1));
      }
    }
  }
  std::vector<std::vector<float>> out(batch.size());
  if (batch.empty()) return out;

  // Chunk boundaries depend on the batch only: consecutive sequences, with a cut after the
  // sequence that reaches each multiple of total / n_target tokens so the chunks come out even.
  std::size_t total = 0;
  for (const auto& seq : batch) total += seq.size();
  const std::size_t n_target = std::max<std::size_t>(1, (total + k_chunk_tokens / 2) / k_chunk_tokens);
  std::vector<std::size_t> bounds{0};
  std::size_t cumulative = 0;
  for (std::size_t seq_idx = 0; seq_idx + 1 < batch.size(); ++seq_idx) {
    cumulative += batch[seq_idx].size();
    if (cumulative * n_target >= bounds.size() * total) bounds.push_back(seq_idx + 1);
  }
  bounds.push_back(batch.size());
  const std::size_t n_chunks = bounds.size() - 1;

  EmbedPool& pool = EmbedPool::shared();
  // One short chunk (a search query) would leave every thread but one idle: its Linear layers
  // are split between the pool's threads instead.
  if (n_chunks == 1 && threads > 1 && total <= k_small_rows) {
    Workspace ws;
    VS_TRY(encode_chunk(batch, ws, std::span(out), std::min(threads, pool.threads())));
    return out;
  }

  // Each chunk is one part of a pool job, run on this thread or a worker with that thread's
  // workspace (kept for the thread's lifetime, so a pool worker allocates it once).
  std::vector<Result<void>> chunk_results(n_chunks);
  VS_TRY(pool.run(n_chunks, threads, [&](std::size_t chunk) {
    thread_local Workspace ws;
    const std::size_t first = bounds[chunk];
    const std::size_t last = bounds[chunk + 1];
    chunk_results[chunk] =
        encode_chunk(batch.subspan(first, last - first), ws, std::span(out).subspan(first, last - first), 0);
  }));
  for (auto& result : chunk_results) VS_TRY(result);
  return out;
}

}  // namespace vstore::embed
