// SPDX-License-Identifier: Apache-2.0
// bench_query_chroma(): bench_query's measurement against a Chroma server. Phases: generate
// the same workload as bench_query (bench_search: same seed, same "sel" topic rows), upsert into
// a fresh collection with the same HNSW parameters, exact ground truth in C++, warm-up and
// timed searches one by one through ChromaStore (so the HTTP round trip and JSON are part of
// every figure, as a client sees them), then delete the collection.
#include <unistd.h>

#include <algorithm>
#include <chrono>

#include <fmt/format.h>

#include "chroma/chroma_store.hpp"
#include "macro/bench.hpp"
#include "macro/bench_search.hpp"
#include "macro/bench_support.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using bench_search::k_top_k;
using bench_support::report;
using bench_support::round_to;
using bench_support::seconds_since;

// Upserts the workload's rows in the server's batch size (the vectors are indexed as they
// arrive); returns the seconds it took.
Result<double> load_collection(chroma::ChromaStore& store, const bench_search::Workload& workload,
                               const BenchProgress& progress) {
  report(progress, "load", 0.0);
  const auto load_start = std::chrono::steady_clock::now();
  const std::size_t n = workload.set.size();
  const auto batch = static_cast<std::size_t>(std::max<std::int64_t>(1, store.test_max_batch()));
  for (std::size_t start = 0; start < n; start += batch) {
    std::vector<ArticleVector> items;
    for (std::size_t row = start; row < std::min(n, start + batch); ++row) {
      ArticleVector item;
      item.article.uri = std::to_string(row);
      item.article.topic = workload.topics[row];
      const auto vec = workload.set.row(row);
      item.embedding.assign(vec.begin(), vec.end());
      item.embedding_model = "bench-clustered";
      items.push_back(std::move(item));
    }
    VS_TRY(store.upsert(items));
    report(progress, "load", static_cast<double>(start + items.size()) / static_cast<double>(n));
  }
  return seconds_since(load_start);
}

}  // namespace

Result<json> bench_query_chroma(const Config& config, const BenchQueryOptions& options) {
  VS_TRY(bench_search::check_query_options(options));
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

  const bench_search::Workload workload = bench_search::make_workload(options);
  VS_TRY_ASSIGN(const double load_s, load_collection(*store, workload, progress));

  report(progress, "ground_truth", 0.0);
  const auto truth = exact_top_k(workload.set, k_top_k, workload.matching, 2);
  report(progress, "ground_truth", 1.0);

  VS_TRY_ASSIGN(SearchOptions search, bench_search::search_options(options));
  search.ef_search.reset();  // a collection setting in Chroma (hnsw:search_ef above), not a per-query one
  VS_TRY_ASSIGN(const bench_search::SearchRun run, bench_search::time_searches(*store, workload, search, truth, progress));

  json out = bench_search::workload_figures(options, workload);
  out["backend"] = "chromadb";
  out.update(bench_search::search_figures(run));
  out["load_s"] = round_to(load_s, 2);
  auto version = store->server_version();
  out["server_version"] = version ? json(*version) : json(nullptr);
  out["machine"] = machine;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
