// SPDX-License-Identifier: Apache-2.0
// bench_query_chroma(): bench_query's measurement against a Chroma server. Phases: generate
// the same clustered set and filter rows as bench_query (same seed, same "sel" topic rows),
// upsert into a fresh collection with the same HNSW parameters, exact ground truth in C++,
// warm-up, timed searches one by one through ChromaStore (so the HTTP round trip and JSON are
// part of every figure, as a client sees them), then delete the collection.
#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <unistd.h>

#include "chroma/chroma_store.hpp"
#include "macro/bench.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int k_top = 10;

double nearest_rank(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double rounded(double v, int digits) {
  const double f = std::pow(10.0, digits);
  return std::round(v * f) / f;
}

void tell(const BenchProgress& progress, std::string_view phase, double fraction) {
  if (progress) progress(phase, fraction);
}

Result<void> check(std::string_view name, double value, double lo, double hi) {
  if (value < lo || value > hi) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} must be from {} to {}, not {}", name, lo, hi, value));
  }
  return {};
}

}  // namespace

Result<json> bench_query_chroma(const Config& config, const BenchQueryOptions& options) {
  VS_TRY(check("n", static_cast<double>(options.n), 1000, 10000000));
  VS_TRY(check("dim", options.dim, 2, 2000));
  VS_TRY(check("queries", options.queries, 1, 100000));
  VS_TRY(check("warmup", options.warmup, 0, 100000));
  VS_TRY(check("ef_search", options.ef_search, 1, 1000));
  VS_TRY(check("m", options.m, 2, 100));
  VS_TRY(check("ef_construction", options.ef_construction, 4, 1000));
  VS_TRY(check("clusters", options.clusters, 1, static_cast<double>(options.n)));
  const auto n = static_cast<std::size_t>(options.n);
  std::size_t selected = 0;
  if (options.selectivity) {
    const double f = *options.selectivity;
    if (!(f > 0.0 && f <= 1.0)) return fail(ErrorCode::invalid_argument, fmt::format("selectivity must be in (0, 1], not {}", f));
    selected = static_cast<std::size_t>(std::llround(f * static_cast<double>(n)));
    if (selected < static_cast<std::size_t>(k_top)) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("selectivity {} matches {} of {} rows; a filter must match at least {}", f, selected, n, k_top));
    }
  }
  const BenchProgress& progress = options.progress;
  const json machine = bench_machine_info();

  Config cfg = config;
  cfg.embedding_dim = options.dim;
  cfg.chroma_collection = fmt::format("vstore-bench-{}", getpid());
  chroma::ChromaOptions chroma_options;
  chroma_options.create_collection = true;
  chroma_options.create_m = options.m;
  chroma_options.create_ef_construction = options.ef_construction;
  chroma_options.create_ef_search = options.ef_search;
  VS_TRY_ASSIGN(auto store, chroma::ChromaStore::open(cfg, chroma_options));
  struct Dropper {
    chroma::ChromaStore* store;
    ~Dropper() { (void)store->drop_collection(); }
  } dropper{store.get()};

  tell(progress, "generate", 0.0);
  const auto warmup = static_cast<std::size_t>(options.warmup);
  const auto timed = static_cast<std::size_t>(options.queries);
  const ClusteredSet set = generate_clustered(n, warmup + timed, options.dim, options.clusters, options.seed);
  std::vector<std::string> topics(n);
  for (std::size_t i = 0; i < n; ++i) topics[i] = fmt::format("t{}", i % 100);
  std::vector<std::uint32_t> matching;
  if (options.selectivity) {
    const auto perm = seeded_permutation(n, options.seed);
    matching.assign(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(selected));
    std::sort(matching.begin(), matching.end());
    for (std::uint32_t id : matching) topics[id] = "sel";
  }
  tell(progress, "generate", 1.0);

  // Upsert in the server's batch size; the vectors are indexed as they arrive.
  tell(progress, "load", 0.0);
  const auto load_start = Clock::now();
  const auto batch = static_cast<std::size_t>(std::max<std::int64_t>(1, store->test_max_batch()));
  for (std::size_t start = 0; start < n; start += batch) {
    std::vector<ArticleVector> items;
    for (std::size_t row = start; row < std::min(n, start + batch); ++row) {
      ArticleVector item;
      item.article.uri = std::to_string(row);
      item.article.topic = topics[row];
      const auto vec = set.row(row);
      item.embedding.assign(vec.begin(), vec.end());
      item.embedding_model = "bench-clustered";
      items.push_back(std::move(item));
    }
    VS_TRY(store->upsert(items));
    tell(progress, "load", static_cast<double>(start + items.size()) / static_cast<double>(n));
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - load_start).count();

  tell(progress, "ground_truth", 0.0);
  const auto truth = exact_top_k(set, k_top, matching, 2);
  tell(progress, "ground_truth", 1.0);

  SearchOptions search;
  search.top_k = k_top;
  if (options.selectivity) {
    VS_TRY_ASSIGN(search.where, parse_filter(json{{"topic", "sel"}}));
  }
  for (std::size_t query_idx = 0; query_idx < warmup; ++query_idx) {
    VS_TRY(store->search(set.query(query_idx), search));
    if (query_idx % 10 == 0) tell(progress, "warmup", static_cast<double>(query_idx) / static_cast<double>(warmup));
  }
  tell(progress, "warmup", 1.0);

  std::vector<double> latencies_ms;
  latencies_ms.reserve(timed);
  double recall_sum = 0;
  std::size_t rows_sum = 0;
  std::size_t short_results = 0;
  const auto loop_start = Clock::now();
  for (std::size_t i = 0; i < timed; ++i) {
    const std::size_t query_idx = warmup + i;
    const auto start = Clock::now();
    auto hits = store->search(set.query(query_idx), search);
    const auto stop = Clock::now();
    if (!hits) return fail(hits.error().with_context(fmt::format("query {}", i)));
    latencies_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    std::vector<std::uint32_t> ids;
    for (const auto& h : *hits) ids.push_back(static_cast<std::uint32_t>(std::stoul(h.id)));
    recall_sum += recall_of(truth[query_idx], ids);
    rows_sum += hits->size();
    if (hits->size() < static_cast<std::size_t>(k_top)) ++short_results;
    if (i % 20 == 0) tell(progress, "query", static_cast<double>(i) / static_cast<double>(timed));
  }
  const double loop_s = std::chrono::duration<double>(Clock::now() - loop_start).count();
  tell(progress, "query", 1.0);
  std::sort(latencies_ms.begin(), latencies_ms.end());

  json out;
  out["backend"] = "chromadb";
  out["n"] = options.n;
  out["dim"] = options.dim;
  out["index"] = "hnsw";
  out["index_params"] = {{"m", options.m}, {"ef_construction", options.ef_construction}};
  out["ef_search"] = options.ef_search;
  out["queries"] = options.queries;
  out["p50_ms"] = rounded(nearest_rank(latencies_ms, 0.50), 3);
  out["p95_ms"] = rounded(nearest_rank(latencies_ms, 0.95), 3);
  out["p99_ms"] = rounded(nearest_rank(latencies_ms, 0.99), 3);
  out["mean_ms"] = rounded(loop_s * 1000.0 / static_cast<double>(timed), 3);
  out["qps"] = rounded(static_cast<double>(timed) / loop_s, 1);
  out["recall_at_10"] = rounded(recall_sum / static_cast<double>(timed), 4);
  out["rows_returned_avg"] = rounded(static_cast<double>(rows_sum) / static_cast<double>(timed), 3);
  out["short_results"] = short_results;
  out["selectivity"] = options.selectivity ? json(*options.selectivity) : json(nullptr);
  out["matching_rows"] = options.selectivity ? json(selected) : json(nullptr);
  out["load_s"] = rounded(load_s, 2);
  auto version = store->server_version();
  out["server_version"] = version ? json(*version) : json(nullptr);
  out["data"] = "generated clustered, as performance.md";
  out["data_params"] = {{"clusters", options.clusters}, {"seed", options.seed}, {"warmup", options.warmup}};
  out["machine"] = machine;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
