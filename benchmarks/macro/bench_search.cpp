// SPDX-License-Identifier: Apache-2.0
// The parts of `vstore bench query` that do not depend on the backend: the options' checks, the
// generated workload, the timed loop of searches and the latency figures.
#include "macro/bench_search.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "macro/bench_support.hpp"
#include "vstore/filter.hpp"

namespace vstore::bench_search {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
using bench_support::check_range;
using bench_support::percentile;
using bench_support::report;
using bench_support::round_to;
using bench_support::seconds_since;

// The number of rows a selectivity's filter matches.
std::size_t selected_rows(const BenchQueryOptions& options) {
  if (!options.selectivity) return 0;
  return static_cast<std::size_t>(std::llround(*options.selectivity * static_cast<double>(options.n)));
}

}  // namespace

Result<void> check_query_options(const BenchQueryOptions& options) {
  VS_TRY(check_range("n", static_cast<double>(options.n), 1000, 10000000));
  VS_TRY(check_range("dim", options.dim, 2, 2000));
  VS_TRY(check_range("queries", options.queries, 1, 100000));
  VS_TRY(check_range("warmup", options.warmup, 0, 100000));
  VS_TRY(check_range("ef_search", options.ef_search, 1, 1000));
  VS_TRY(check_range("clusters", options.clusters, 1, static_cast<double>(options.n)));
  VS_TRY(bench_support::check_index_params(options.m, options.ef_construction));
  if (options.selectivity) {
    const double f = *options.selectivity;
    if (!(f > 0.0 && f <= 1.0)) {
      return fail(ErrorCode::invalid_argument, fmt::format("selectivity must be in (0, 1], not {}", f));
    }
    const std::size_t selected = selected_rows(options);
    if (selected < static_cast<std::size_t>(k_top_k)) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("selectivity {} matches {} of {} rows; a filter must match at least {}", f, selected,
                              options.n, k_top_k));
    }
  }
  return {};
}

Workload make_workload(const BenchQueryOptions& options) {
  report(options.progress, "generate", 0.0);
  Workload w;
  const auto n = static_cast<std::size_t>(options.n);
  w.warmup = static_cast<std::size_t>(options.warmup);
  w.timed = static_cast<std::size_t>(options.queries);
  w.set = generate_clustered(n, w.warmup + w.timed, options.dim, options.clusters, options.seed);
  w.topics.resize(n);
  for (std::size_t i = 0; i < n; ++i) w.topics[i] = fmt::format("t{}", i % 100);
  if (options.selectivity) {
    const auto perm = seeded_permutation(n, options.seed);
    w.matching.assign(perm.begin(), perm.begin() + static_cast<std::ptrdiff_t>(selected_rows(options)));
    std::sort(w.matching.begin(), w.matching.end());
    for (std::uint32_t id : w.matching) w.topics[id] = "sel";
  }
  report(options.progress, "generate", 1.0);
  return w;
}

Result<SearchOptions> search_options(const BenchQueryOptions& options) {
  SearchOptions search;
  search.top_k = k_top_k;
  search.ef_search = options.ef_search;
  if (options.selectivity) {
    VS_TRY_ASSIGN(search.where, parse_filter(json{{"topic", "sel"}}));
  }
  return search;
}

Result<SearchRun> time_searches(VectorStore& store, const Workload& workload, const SearchOptions& search,
                                const std::vector<std::vector<std::uint32_t>>& truth, const BenchProgress& progress,
                                const std::function<void()>& after_each) {
  for (std::size_t query_idx = 0; query_idx < workload.warmup; ++query_idx) {
    VS_TRY(store.search(workload.set.query(query_idx), search));
    if (query_idx % 10 == 0) {
      report(progress, "warmup", static_cast<double>(query_idx) / static_cast<double>(workload.warmup));
    }
  }
  report(progress, "warmup", 1.0);

  SearchRun run;
  run.latencies_ms.reserve(workload.timed);
  const auto loop_start = Clock::now();
  for (std::size_t i = 0; i < workload.timed; ++i) {
    const std::size_t query_idx = workload.warmup + i;
    const auto start = Clock::now();
    auto hits = store.search(workload.set.query(query_idx), search);
    const auto stop = Clock::now();
    if (!hits) return fail(hits.error().with_context(fmt::format("query {}", i)));
    run.latencies_ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
    if (after_each) after_each();
    run.recall_sum += recall_of(truth[query_idx], ids_of(*hits));
    run.rows_sum += hits->size();
    if (hits->size() < static_cast<std::size_t>(k_top_k)) ++run.short_results;
    if (i % 20 == 0) report(progress, "query", static_cast<double>(i) / static_cast<double>(workload.timed));
  }
  run.loop_s = seconds_since(loop_start);
  report(progress, "query", 1.0);
  std::sort(run.latencies_ms.begin(), run.latencies_ms.end());
  return run;
}

json search_figures(const SearchRun& run) {
  const auto timed = static_cast<double>(run.latencies_ms.size());
  return json{{"p50_ms", round_to(percentile(run.latencies_ms, 0.50), 3)},
              {"p95_ms", round_to(percentile(run.latencies_ms, 0.95), 3)},
              {"p99_ms", round_to(percentile(run.latencies_ms, 0.99), 3)},
              {"mean_ms", round_to(run.loop_s * 1000.0 / timed, 3)},
              {"qps", round_to(timed / run.loop_s, 1)},
              {"recall_at_10", round_to(run.recall_sum / timed, 4)},
              {"rows_returned_avg", round_to(static_cast<double>(run.rows_sum) / timed, 3)},
              {"short_results", run.short_results}};
}

json workload_figures(const BenchQueryOptions& options, const Workload& workload) {
  return json{{"n", options.n},
              {"dim", options.dim},
              {"index", "hnsw"},
              {"index_params", {{"m", options.m}, {"ef_construction", options.ef_construction}}},
              {"ef_search", options.ef_search},
              {"queries", options.queries},
              {"selectivity", options.selectivity ? json(*options.selectivity) : json(nullptr)},
              {"matching_rows", options.selectivity ? json(workload.matching.size()) : json(nullptr)},
              {"data", "generated clustered, as performance.md"},
              {"data_params", {{"clusters", options.clusters}, {"seed", options.seed}, {"warmup", options.warmup}}}};
}

std::vector<std::uint32_t> ids_of(const std::vector<SearchHit>& hits) {
  std::vector<std::uint32_t> out;
  out.reserve(hits.size());
  for (const auto& hit : hits) {
    std::uint32_t id = 0;
    auto [ptr, ec] = std::from_chars(hit.id.data(), hit.id.data() + hit.id.size(), id);
    out.push_back(ec == std::errc() && ptr == hit.id.data() + hit.id.size() ? id : UINT32_MAX);
  }
  return out;
}

}  // namespace vstore::bench_search
