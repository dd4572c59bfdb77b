// SPDX-License-Identifier: Apache-2.0
// Internal to the query benchmarks (pgvector and Chroma): one workload, one timed search loop and
// one set of latency figures, so that both backends are measured and reported the same way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "macro/bench.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::bench_search {

/// Every query asks for this many neighbours; recall is recall@10.
inline constexpr int k_top_k = 10;

/// What a query benchmark runs: the generated set (warm-up queries first, then the timed ones),
/// the topic of every row ("t<id % 100>", or "sel" for the rows a selectivity's filter matches)
/// and those rows' ids, sorted (empty without a selectivity).
struct Workload {
  ClusteredSet set;
  std::vector<std::string> topics;
  std::vector<std::uint32_t> matching;
  std::size_t warmup = 0;
  std::size_t timed = 0;
};

/// Checks the options every backend uses (n, dim, queries, warmup, ef_search, clusters, m,
/// ef_construction, selectivity). Errors: invalid_argument naming the option and its range.
[[nodiscard]] Result<void> check_query_options(const BenchQueryOptions& options);

/// Generates the workload of checked `options`, reporting the "generate" phase. Thread-safe.
[[nodiscard]] Workload make_workload(const BenchQueryOptions& options);

/// The search of every query: top 10 and, with a selectivity, the filter {"topic": "sel"}.
[[nodiscard]] Result<SearchOptions> search_options(const BenchQueryOptions& options);

/// Latencies (sorted, ms) and recall of the timed queries.
struct SearchRun {
  std::vector<double> latencies_ms;
  double loop_s = 0;
  double recall_sum = 0;
  std::size_t rows_sum = 0;
  std::size_t short_results = 0;
};

/// Runs the warm-up queries untimed, then every timed query through `store.search()` one by one
/// (steady clock around each call), scored against `truth` (exact top 10 of every query, warm-up
/// ones included). `after_each` (may be empty) runs after each timed search, outside its timing.
/// Hit ids must be decimal row ids. Errors: those of search(), naming the query.
[[nodiscard]] Result<SearchRun> time_searches(VectorStore& store, const Workload& workload, const SearchOptions& search,
                                              const std::vector<std::vector<std::uint32_t>>& truth,
                                              const BenchProgress& progress,
                                              const std::function<void()>& after_each = {});

/// p50_ms, p95_ms, p99_ms, mean_ms, qps, recall_at_10, rows_returned_avg and short_results of `run`.
[[nodiscard]] nlohmann::json search_figures(const SearchRun& run);

/// What the run measured, for the report: n, dim, index, index_params, ef_search, queries,
/// selectivity, matching_rows, data, data_params.
[[nodiscard]] nlohmann::json workload_figures(const BenchQueryOptions& options, const Workload& workload);

/// Row ids of `hits` (UINT32_MAX for an id that is not a decimal row id).
[[nodiscard]] std::vector<std::uint32_t> ids_of(const std::vector<SearchHit>& hits);

}  // namespace vstore::bench_search
