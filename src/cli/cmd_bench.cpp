// SPDX-License-Identifier: Apache-2.0
// `vstore bench query|ingest|embed|python|tune|serve|soak`: thin edges over the benchmark library (benchmarks/macro/bench.hpp);
// `bench migrate` is declared beside migrate-chroma (cmd_migrate.cpp). Each creates and drops its own database.
#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "embed/embed_local.hpp"
#include "vstore/article_store.hpp"
#include "macro/bench.hpp"
#include "macro/bench_reindex.hpp"
#include "vstore/reindex.hpp"

namespace vstore::cli {
namespace {

// Progress lines for a phase-by-phase benchmark.
BenchProgress progress_printer() {
  auto current = std::make_shared<std::pair<std::string, std::unique_ptr<Progress>>>();
  return [current](std::string_view phase, double fraction) {
    if (current->first != phase) {
      if (current->second) current->second->finish();
      current->first = std::string(phase);
      current->second = std::make_unique<Progress>("bench " + current->first, 1000, Progress::Unit::fraction);
    }
    current->second->update(static_cast<std::int64_t>(fraction * 1000.0));
    if (fraction >= 1.0) {
      current->second->finish();
      current->second.reset();
      current->first.clear();
    }
  };
}

// The result of `bench NAME`: as JSON with `elapsed_s`, or a line a figure and the summary line.
void print_result(nlohmann::json result, bool json, std::string_view name, std::chrono::steady_clock::time_point started) {
  if (json) {
    result["elapsed_s"] = elapsed_s(started);
    print_json(result);
    return;
  }
  for (const auto& [key, value] : result.items()) {
    if (value.is_object()) continue;
    std::printf("%-22s %s\n", key.c_str(), value.dump().c_str());
  }
  print_done(fmt::format("bench {}", name), "finished", started);
}

// The venv scripts/python_test.sh makes: <build>/py-venv beside the directory of this binary
// (<build>/src/vstore), found from /proc/self/exe.
Result<std::filesystem::path> default_python() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return fail(ErrorCode::not_found, fmt::format("cannot read /proc/self/exe: {}", ec.message()));
  const std::filesystem::path python = exe.parent_path().parent_path() / "py-venv" / "bin" / "python";
  if (!std::filesystem::exists(python, ec)) {
    return fail(ErrorCode::not_found,
                fmt::format("no Python venv at {}: run scripts/python_test.sh (it makes that venv with the vstore "
                            "package, psycopg 3, pgvector, NumPy, onnxruntime and tokenizers), or pass --python with "
                            "an interpreter that has them",
                            python.string()));
  }
  return python;
}

// The readable summary of `bench python`.
void print_python_summary(const nlohmann::json& r) {
  const auto num = [&](const std::string& key) { return r.value(key, 0.0); };
  std::printf("rows %s, %s queries per cell (%s distinct), top %s, ef_search %s, %s repeats\n", r["rows"].dump().c_str(),
              r["queries"].dump().c_str(), r["distinct_queries"].dump().c_str(), r["top_k"].dump().c_str(),
              r["ef_search"].dump().c_str(), r["repeats"].dump().c_str());
  std::printf("overlap@%s with the pure Python store: by vector %.4f, by text %.4f\n", r["top_k"].dump().c_str(),
              num("overlap_by_vector"), num("overlap_by_text"));
  std::printf("search by vector, per call: C++ %.1f us, vstore.vector_store.search_by_vector %.1f us: overhead "
              "%+.2f%% (target < 10%%)\n",
              num("cpp_search_us"), num("py_search_by_vector_us"), num("overhead_pct"));
  std::printf("%-24s %12s %14s %8s\n", "queries/s", "vstore module", "pure Python", "ratio");
  const int clients = r.value("clients", 0);
  for (const char* mode : {"vector", "text"}) {
    for (const int c : {1, clients}) {
      const std::string cell = fmt::format("{}_{}c", mode, c);
      std::printf("%-24s %12.1f %14.1f %7.2fx\n", fmt::format("by {}, {} client{}", mode, c, c == 1 ? "" : "s").c_str(),
                  num("module_qps_" + cell), num("python_qps_" + cell), num("ratio_" + cell));
    }
  }
  std::printf("target: by vector at %d clients at least 3x the pure Python store\n", clients);
}

// What a benchmark that runs this binary as `vstore serve` needs beside its options: the article
// and query files (given, else the Reuters files in ../shared/data beside the source tree), this
// binary, and the local engine's model directory (EMBEDDING_PROVIDER=local; else empty).
struct ServiceInputs {
  std::filesystem::path data;
  std::filesystem::path queries;
  std::filesystem::path vstore;
  std::filesystem::path model_dir;
};

Result<ServiceInputs> service_inputs(const Config& cfg, const std::string& data, const std::string& queries) {
  ServiceInputs in{data, queries, {}, {}};
  if (data.empty() || queries.empty()) {
    VS_TRY_ASSIGN(const std::filesystem::path tree, source_tree());
    const std::filesystem::path reuters = (tree / ".." / "shared" / "data" / "reuters21578").lexically_normal();
    if (data.empty()) in.data = reuters / "articles.jsonl";
    if (queries.empty()) in.queries = reuters / "queries-dev.tsv";
  }
  std::error_code ec;
  in.vstore = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return fail(ErrorCode::not_found, fmt::format("cannot read /proc/self/exe: {}", ec.message()));
  if (cfg.embedding_provider == "local") {
    VS_TRY_ASSIGN(in.model_dir, embed::find_model_dir(cfg, embed::model_dir_records()));
  }
  return in;
}

// --data and --query-file of a benchmark whose defaults are the Reuters files (service_inputs()).
void add_reuters_files(CLI::App* command, std::string& data, std::string& queries) {
  command->add_option("--data", data, "article JSON Lines file (default: the Reuters articles in ../shared/data "
                                      "beside vstore's source tree)");
  command->add_option("--query-file", queries, "queries, one a line: a code, a tab, the text (default: "
                                               "queries-dev.tsv beside the articles)");
}

// The readable summary of `bench soak`.
void print_soak_summary(const nlohmann::json& r) {
  std::printf("%s writers and %s readers, %s s per phase, %s seed articles, embedder %s, pool %s + %s\n",
              r["writers"].dump().c_str(), r["readers"].dump().c_str(), r["duration_s"].dump().c_str(),
              r["seed"].dump().c_str(), r["provider"].get<std::string>().c_str(), r["pool"]["size"].dump().c_str(),
              r["pool"]["max_overflow"].dump().c_str());
  std::printf("%-34s %10s %10s %9s %9s %9s %9s\n", "", "calls", "calls/s", "p50 ms", "p90 ms", "p99 ms", "max ms");
  const auto row = [](const std::string& label, const nlohmann::json& c) {
    std::printf("%-34s %10s %10.1f %9.2f %9.2f %9.2f %9.2f\n", label.c_str(), c["requests"].dump().c_str(),
                c["requests_per_s"].get<double>(), c["p50_ms"].get<double>(), c["p90_ms"].get<double>(),
                c["p99_ms"].get<double>(), c["max_ms"].get<double>());
  };
  row("library: upsert_article", r["library"]["writes"]);
  row("library: search_articles", r["library"]["search"]);
  row("library: similar_articles", r["library"]["similar"]);
  row("library: get_vectors_by_metadata", r["library"]["vectors"]);
  if (!r["service"].is_null()) {
    row("HTTP: POST /v1/articles", r["service"]["writes"]);
    row("HTTP: POST /v1/search (wrk)", r["service"]["search"]);
  }
  const auto& v = r["verify"];
  std::printf("errors %s; table: %s rows for %s acknowledged uris, %s lost, %s changed, %s unexpected, %s duplicated; "
              "checksum %s (stored %s)\n",
              r["errors"].dump().c_str(), v["rows"].dump().c_str(), v["expected_rows"].dump().c_str(),
              v["lost"].dump().c_str(), v["changed"].dump().c_str(), v["unexpected"].dump().c_str(),
              v["duplicates"].dump().c_str(), v["checksum_expected"].get<std::string>().c_str(),
              v["checksum_stored"].get<std::string>().c_str());
}

// The readable summary of `bench serve`.
void print_serve_summary(const nlohmann::json& r) {
  std::printf("%s articles (embedder %s, model %s), %s stored vectors and %s query texts rotated, top %s, ef_search %s\n",
              r["rows"].dump().c_str(), r["provider"].get<std::string>().c_str(), r["model"].get<std::string>().c_str(),
              r["vectors"].dump().c_str(), r["queries"].dump().c_str(), r["top_k"].dump().c_str(),
              r["ef_search"].dump().c_str());
  std::printf("%s connections (wrk %s threads; the library %s threads), %s s per cell after %s s of warm-up; "
              "serve --threads %s, pool %s + %s\n",
              r["connections"].dump().c_str(), r["wrk_threads"].dump().c_str(), r["connections"].dump().c_str(),
              r["duration_s"].dump().c_str(), r["warmup_s"].dump().c_str(), r["serve_threads"].dump().c_str(),
              r["pool"]["size"].dump().c_str(), r["pool"]["max_overflow"].dump().c_str());
  std::printf("%-26s %12s %9s %9s %9s %7s %11s\n", "", "requests/s", "p50 ms", "p99 ms", "max ms", "errors", "cores busy");
  const auto row = [](const char* label, const nlohmann::json& c) {
    std::printf("%-26s %12.1f %9.2f %9.2f %9.2f %7s %11.2f\n", label, c["requests_per_s"].get<double>(),
                c["p50_ms"].get<double>(), c["p99_ms"].get<double>(), c["max_ms"].get<double>(),
                c["error_count"].dump().c_str(), c["cpu"]["cores_busy"].get<double>());
  };
  row("by vector, HTTP (wrk)", r["serve"]["vector"]);
  row("by vector, library", r["library"]["vector"]);
  row("by text, HTTP (wrk)", r["serve"]["text"]);
  row("by text, library", r["library"]["text"]);
  row("embedder alone (text)", r["library"]["embed_only"]);
  std::printf("HTTP / library: by vector %.3f, by text %.3f (target >= 0.8)\n", r["ratio_vector"].get<double>(),
              r["ratio_text"].get<double>());
  std::printf("by vector p99 over HTTP %.2f ms (target <= 20 ms at 32 connections)\n",
              r["serve"]["vector"]["p99_ms"].get<double>());
  for (const char* kind : {"vector", "text"}) {
    const auto& c = r["serve"][kind];
    std::printf("by %s over HTTP: the service logged %s search requests %s\n", kind,
                c["answered"]["requests"].dump().c_str(), c["answered"]["by_status"].dump().c_str());
  }
  std::printf("CPU seconds per cell: wrk, vstore (the service, or this process), postgres (sessions opened), other\n");
  for (const char* side : {"serve", "library"}) {
    for (const char* kind : {"vector", "text"}) {
      const auto& cpu = r[side][kind]["cpu"];
      std::printf("  %-8s by %-7s %s, %s, %s (%s), %s\n", side, kind, cpu["client_s"].dump().c_str(),
                  cpu["vstore_s"].dump().c_str(), cpu["postgres_s"].dump().c_str(),
                  cpu["postgres_sessions"].dump().c_str(), cpu["other_s"].dump().c_str());
    }
  }
}

// `bench reindex`: reindex() against the engine alone (benchmarks/macro/bench_reindex.hpp).
int run_bench_reindex(const Globals& globals, BenchReindexOptions options, const std::string& data, bool json_out) {
  const auto started = std::chrono::steady_clock::now();
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  if (data.empty()) {
    auto tree = source_tree();
    if (!tree) return report(tree.error());
    options.data = (*tree / ".." / "shared" / "data" / "reuters21578" / "articles.jsonl").lexically_normal();
  } else {
    options.data = data;
  }
  auto conninfo = resolve_conninfo(*cfg);
  if (!conninfo) return report(conninfo.error());
  auto embedder = make_embedder(*cfg);
  if (!embedder) return report(embedder.error());
  options.progress = progress_printer();
  auto result = bench_reindex(*conninfo, *cfg, **embedder, options);
  options.progress = {};
  if (!result) return report(result.error());
  if (json_out) {
    (*result)["elapsed_s"] = elapsed_s(started);
    print_json(*result);
    return k_exit_ok;
  }
  const nlohmann::json& r = *result;
  std::printf("%s articles (%s with text), model %s, batch %s\n", r["articles"].dump().c_str(),
              r["with_text"].dump().c_str(), r["model"].get<std::string>().c_str(), r["batch_size"].dump().c_str());
  std::printf("engine alone: %8.1f articles/s (%.1f s)\n", r["engine_rate_per_s"].get<double>(), r["engine_s"].get<double>());
  std::printf("reindex:      %8.1f articles/s (%.1f s)\n", r["reindex_rate_per_s"].get<double>(), r["reindex_s"].get<double>());
  std::printf("ratio %.3f (target >= 0.9); stored vectors against the engine's: min cosine %.6f\n", r["ratio"].get<double>(),
              r["min_cosine"].get<double>());
  print_done("bench reindex", "finished", started);
  return k_exit_ok;
}

}  // namespace

void add_bench_commands(CLI::App& app, const Globals& globals, Action& action) {
  auto* bench = app.add_subcommand("bench", "benchmarks in a database of their own (created and dropped on the server)");
  bench->require_subcommand(1);
  static bool json = false;

  static BenchQueryOptions q;
  static double selectivity = 0;
  auto* query = bench->add_subcommand(
      "query", "search latency and recall@10 on a generated clustered set against exact search, plus the exact scan");
  query->add_option("--rows,--n", q.n, "base vectors")->check(CLI::Range(std::int64_t{1000}, std::int64_t{10000000}))->capture_default_str();
  query->add_option("--dim", q.dim, "dimensions")->check(CLI::Range(2, 2000))->capture_default_str();
  query->add_option("--queries", q.queries, "timed queries")->check(CLI::Range(1, 100000))->capture_default_str();
  query->add_option("--ef-search", q.ef_search, "hnsw.ef_search")->check(CLI::Range(1, 1000))->capture_default_str();
  query->add_option("--selectivity", selectivity, "every query filters on a column unrelated to the vectors that "
                                                  "matches this fraction of rows, e.g. 0.01")
      ->check(CLI::Range(0.0, 1.0));
  query->add_option("--m", q.m, "HNSW m")->check(CLI::Range(2, 100))->capture_default_str();
  query->add_option("--ef-construction", q.ef_construction, "HNSW ef_construction")->check(CLI::Range(4, 1000))->capture_default_str();
  query->add_option("--seed", q.seed, "data seed")->capture_default_str();
  static std::string backend = "pgvector";
  query->add_option("--backend", backend, "pgvector (a database of its own on the configured server) or chromadb "
                                          "(a collection of its own on CHROMA_URL)")
      ->check(CLI::IsMember({"pgvector", "chromadb"}))
      ->capture_default_str();
  query->add_flag("--json", json, "print the result as one JSON object");
  query->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      if (backend == "chromadb") {
        if (selectivity > 0) q.selectivity = selectivity;
        q.progress = progress_printer();
        auto result = bench_query_chroma(*cfg, q);
        if (!result) return report(result.error());
        print_result(*result, json, "query", started);
        return k_exit_ok;
      }
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      if (selectivity > 0) q.selectivity = selectivity;
      q.progress = progress_printer();
      auto result = bench_query(*conninfo, q);
      if (!result) return report(result.error());
      print_result(*result, json, "query", started);
      return k_exit_ok;
    };
  });

  static BenchTuneOptions tu;
  auto* tune = bench->add_subcommand(
      "tune", "vstore tune on a generated clustered set: recall@10 and latency over the ef_search sweep, unfiltered "
              "and filtered, and the recommendation");
  tune->add_option("--rows,--n", tu.n, "base vectors")->check(CLI::Range(std::int64_t{1000}, std::int64_t{10000000}))->capture_default_str();
  tune->add_option("--dim", tu.dim, "dimensions")->check(CLI::Range(2, 2000))->capture_default_str();
  tune->add_option("--queries", tu.queries, "queries per setting")->check(CLI::Range(1, 100000))->capture_default_str();
  tune->add_option("--selectivity", tu.selectivity, "fraction of rows the filtered case matches; 0 = unfiltered only")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  tune->add_option("--target-recall", tu.target_recall, "recall@10 to reach")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  tune->add_option("--m", tu.m, "HNSW m")->check(CLI::Range(2, 100))->capture_default_str();
  tune->add_option("--ef-construction", tu.ef_construction, "HNSW ef_construction")->check(CLI::Range(4, 1000))->capture_default_str();
  tune->add_option("--seed", tu.seed, "data seed")->capture_default_str();
  tune->add_flag("--json", json, "print the result as one JSON object");
  tune->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      tu.progress = progress_printer();
      auto result = bench_tune(*conninfo, tu);
      if (!result) return report(result.error());
      if (json) {
        (*result)["elapsed_s"] = elapsed_s(started);
        print_json(*result);
        return k_exit_ok;
      }
      const nlohmann::json& r = *result;
      std::printf("rows %s, dim %s, HNSW m %s ef_construction %s, %s queries, filter %s (selectivity %s)\n",
                  r["n"].dump().c_str(), r["dim"].dump().c_str(), r["m"].dump().c_str(),
                  r["ef_construction"].dump().c_str(), r["queries"].dump().c_str(), r["filter"].dump().c_str(),
                  r["selectivity"].dump().c_str());
      std::printf("%9s %10s %8s %8s %19s %8s %8s\n", "ef_search", "recall@10", "p50 ms", "p95 ms", "filtered recall@10",
                  "p50 ms", "p95 ms");
      for (const auto& row : r["table"]) {
        const auto& u = row["unfiltered"];
        const auto& f = row["filtered"];
        std::printf("%9d %10.4f %8.3f %8.3f", row["ef_search"].get<int>(), u["recall_at_k"].get<double>(),
                    u["p50_ms"].get<double>(), u["p95_ms"].get<double>());
        if (f.is_object()) {
          std::printf(" %19.4f %8.3f %8.3f", f["recall_at_k"].get<double>(), f["p50_ms"].get<double>(),
                      f["p95_ms"].get<double>());
        }
        std::printf("\n");
      }
      std::printf("recommended ef_search for recall %s: %s\n", r["target_recall"].dump().c_str(),
                  r["recommended"].dump().c_str());
      print_done("bench tune", "finished", started);
      return k_exit_ok;
    };
  });

  static BenchIngestOptions in;
  auto* ingest = bench->add_subcommand("ingest", "the store's batch upsert against a bare binary COPY of the same rows");
  ingest->add_option("--rows", in.rows, "rows")->check(CLI::Range(std::int64_t{1000}, std::int64_t{10000000}))->capture_default_str();
  ingest->add_option("--dim", in.dim, "dimensions")->check(CLI::Range(2, 2000))->capture_default_str();
  ingest->add_option("--batch", in.batch, "rows per upsert call and per COPY")->check(CLI::Range(16, 100000))->capture_default_str();
  ingest->add_option("--seed", in.seed, "data seed")->capture_default_str();
  ingest->add_option("--repeats", in.repeats, "loads per side (the sides interleaved batch by batch; medians reported)")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  ingest->add_flag("--json", json, "print the result as one JSON object");
  ingest->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      in.progress = progress_printer();
      auto result = bench_ingest(*conninfo, in);
      if (!result) return report(result.error());
      print_result(*result, json, "ingest", started);
      return k_exit_ok;
    };
  });

  static BenchEmbedOptions em;
  static std::string data;  // empty: ../shared/data/reuters21578/articles.jsonl beside the source tree
  static std::string peer = "auto";
  auto* embed = bench->add_subcommand(
      "embed", "the local embedding engine (batch throughput at 1 and 2 threads, one-query latency) against ONNX "
               "Runtime on the same texts in the same run");
  embed->add_option("--data", data, "article JSON Lines file (default: the Reuters articles in ../shared/data beside "
                                    "vstore's source tree)");
  embed->add_option("--field", em.field, "text to embed: summary, title or document (raw, else summary, else title)")
      ->check(CLI::IsMember({"summary", "title", "document"}))
      ->capture_default_str();
  embed->add_option("--limit", em.limit, "texts embedded per thread count")
      ->check(CLI::Range(std::int64_t{32}, std::int64_t{1000000}))
      ->capture_default_str();
  embed->add_option("--batch", em.batch, "texts per embed call")->check(CLI::Range(1, 1024))->capture_default_str();
  embed->add_option("--queries", em.queries, "timed one-text queries")->check(CLI::Range(1, 100000))->capture_default_str();
  embed->add_option("--peer", peer, "auto: run scripts/bench_embed_peer.py with the venv of set-up (ONNX Runtime, or "
                                    "the NumPy reference without it); none: vstore only")
      ->check(CLI::IsMember({"auto", "none"}))
      ->capture_default_str();
  embed->add_flag("--json", json, "print the result as one JSON object");
  embed->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      std::optional<std::filesystem::path> tree;
      if (data.empty() || peer == "auto") {
        auto found = source_tree();
        if (!found) return report(found.error());
        tree = *found;
      }
      em.data = data.empty() ? (*tree / ".." / "shared" / "data" / "reuters21578" / "articles.jsonl").lexically_normal().string()
                             : data;
      auto model_dir = embed::find_model_dir(*cfg, embed::model_dir_records());
      if (!model_dir) return report(model_dir.error());
      em.model_dir = *model_dir;
      em.model_name = cfg->embedding_model;
      em.threads = cfg->embed_threads;
      if (peer == "auto") {
        em.python = cfg->data_dir / "venv" / "bin" / "python";
        em.peer_script = *tree / "scripts" / "bench_embed_peer.py";
        if (!std::filesystem::exists(em.python)) {
          return report(Error(ErrorCode::not_found, fmt::format("no Python venv at {}: run scripts/setup.sh, or pass "
                                                                "--peer none", em.python.string())));
        }
        em.cross_check = static_cast<int>(std::min<std::int64_t>(200, em.limit));
      } else {
        em.cross_check = 0;
      }
      em.progress = progress_printer();
      auto result = bench_embed(em);
      if (!result) return report(result.error());
      print_result(*result, json, "embed", started);
      return k_exit_ok;
    };
  });

  static BenchPythonOptions py;
  static std::string py_data;     // empty: the Reuters articles in ../shared/data beside the source tree
  static std::string py_queries;  // empty: queries-dev.tsv beside them
  static std::string py_python;   // empty: <build>/py-venv/bin/python
  auto* python = bench->add_subcommand(
      "python", "the Python module: its per-call overhead over the C++ search, and its throughput against a pure "
                "Python store (psycopg 3 + pgvector-python, ONNX Runtime for text) on the same table");
  python->add_option("--rows,--n", py.n, "Reuters articles loaded (embedded once by the local engine)")
      ->check(CLI::Range(std::int64_t{100}, std::int64_t{1000000}))
      ->capture_default_str();
  python->add_option("--queries", py.queries, "queries per throughput cell (the query texts cycled)")
      ->check(CLI::Range(10, 1000000))
      ->capture_default_str();
  python->add_option("--clients", py.clients, "threads of the concurrent cells (each pure Python one with its own "
                                              "connection)")
      ->check(CLI::Range(2, 64))
      ->capture_default_str();
  python->add_option("--repeats", py.repeats, "rounds of all cells, order rotated; medians reported")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  python->add_option("--overhead-calls", py.overhead_calls, "searches per kind for the per-call overhead")
      ->check(CLI::Range(10, 1000000))
      ->capture_default_str();
  python->add_option("--ef-search", py.ef_search, "hnsw.ef_search on both sides")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  python->add_option("--python", py_python, "the interpreter: a venv with the vstore package, psycopg 3, pgvector, "
                                            "NumPy, onnx, onnxruntime and tokenizers (default: the venv "
                                            "scripts/python_test.sh makes, <build>/py-venv/bin/python)");
  python->add_option("--data", py_data, "article JSON Lines file (default: the Reuters articles in ../shared/data "
                                        "beside vstore's source tree)");
  python->add_option("--query-file", py_queries, "queries, one a line: a code, a tab, the text (default: "
                                                 "queries-dev.tsv beside the articles)");
  python->add_flag("--json", json, "print the result as one JSON object");
  python->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      auto tree = source_tree();
      if (!tree) return report(tree.error());
      const std::filesystem::path reuters = (*tree / ".." / "shared" / "data" / "reuters21578").lexically_normal();
      py.data = py_data.empty() ? reuters / "articles.jsonl" : std::filesystem::path(py_data);
      py.query_file = py_queries.empty() ? reuters / "queries-dev.tsv" : std::filesystem::path(py_queries);
      py.script = *tree / "benchmarks" / "python" / "bench_module.py";
      if (py_python.empty()) {
        auto found = default_python();
        if (!found) return report(found.error());
        py.python = *found;
      } else {
        py.python = py_python;
      }
      auto model_dir = embed::find_model_dir(*cfg, embed::model_dir_records());
      if (!model_dir) return report(model_dir.error());
      py.model_dir = *model_dir;
      py.config = *cfg;
      py.overhead_block = std::min(50, py.overhead_calls);
      py.progress = progress_printer();
      auto result = bench_python(*conninfo, py);
      if (!result) return report(result.error());
      if (json) {
        (*result)["elapsed_s"] = elapsed_s(started);
        print_json(*result);
      } else {
        print_python_summary(*result);
        print_done("bench python", "finished", started);
      }
      return k_exit_ok;
    };
  });

  static BenchServeOptions sv;
  static std::string sv_data;     // empty: the Reuters articles in ../shared/data beside the source tree
  static std::string sv_queries;  // empty: queries-dev.tsv beside them
  auto* serve = bench->add_subcommand(
      "serve", "vstore serve under wrk (POST /v1/search by vector, then by text) against the same searches through "
               "the library at the same concurrency, in a database of its own");
  serve->add_option("--rows,--n", sv.n, "Reuters articles loaded (embedded once by the configured embedder)")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{1000000}))
      ->capture_default_str();
  serve->add_option("--duration", sv.duration_s, "seconds of each timed run (by vector and by text, over HTTP and "
                                                 "through the library)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  serve->add_option("--connections", sv.connections, "wrk's connections, and the library's threads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  serve->add_option("--warmup", sv.warmup_s, "untimed seconds before each timed run")->check(CLI::Range(0, 600))->capture_default_str();
  serve->add_option("--vectors", sv.vectors, "stored vectors searched by vector, rotated per request")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  serve->add_option("--top-k", sv.top_k, "results per search")->check(CLI::Range(1, 1000))->capture_default_str();
  serve->add_option("--wrk-threads", sv.wrk_threads, "wrk's threads (at most --connections)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  serve->add_option("--timeout", sv.timeout_s, "seconds before wrk counts a request as timed out (an error)")
      ->check(CLI::Range(1, 600))
      ->capture_default_str();
  serve->add_option("--serve-threads", sv.serve_threads, "vstore serve --threads")->check(CLI::Range(1, 4096))->capture_default_str();
  serve->add_option("--serve-arg", sv.serve_args, "a further option for vstore serve, e.g. --serve-arg=--no-access-log "
                                                  "(repeatable)")
      ->allow_extra_args(false);
  add_reuters_files(serve, sv_data, sv_queries);
  serve->add_flag("--json", json, "print the result as one JSON object");
  serve->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      if (sv.wrk_threads > sv.connections) {
        return report_usage(Error(ErrorCode::invalid_argument,
                                  fmt::format("--wrk-threads {} is more than --connections {}; wrk needs a connection "
                                              "per thread",
                                              sv.wrk_threads, sv.connections)));
      }
      auto inputs = service_inputs(*cfg, sv_data, sv_queries);
      if (!inputs) return report(inputs.error());
      sv.data = inputs->data;
      sv.query_file = inputs->queries;
      sv.vstore = inputs->vstore;
      sv.model_dir = inputs->model_dir;
      sv.config = *cfg;
      sv.progress = progress_printer();
      auto result = bench_serve(*conninfo, sv);
      if (!result) return report(result.error());
      if (json) {
        (*result)["elapsed_s"] = elapsed_s(started);
        print_json(*result);
      } else {
        print_serve_summary(*result);
      }
      const std::int64_t errors = (*result)["errors"].get<std::int64_t>();
      if (errors > 0) {
        // With --json the result is already stdout's one JSON document: the reason goes to stderr.
        set_json_errors(false);
        const auto& r = *result;
        print_error("failed",
                    fmt::format("bench serve: {} errors: by vector over HTTP {} (answers by status {}), by text over "
                                "HTTP {} (answers by status {}), through the library {} by vector, {} by text",
                                errors, r["serve"]["vector"]["errors"].dump(), r["serve"]["vector"]["answered"]["by_status"].dump(),
                                r["serve"]["text"]["errors"].dump(), r["serve"]["text"]["answered"]["by_status"].dump(),
                                r["library"]["vector"]["error_count"].dump(), r["library"]["text"]["error_count"].dump()));
        return k_exit_failure;
      }
      if (!json) print_done("bench serve", "finished", started);
      return k_exit_ok;
    };
  });

  static BenchSoakOptions so;
  static std::string so_data;     // empty: the Reuters articles in ../shared/data beside the source tree
  static std::string so_queries;  // empty: queries-dev.tsv beside them
  static bool so_no_service = false;
  auto* soak = bench->add_subcommand(
      "soak", "writers and readers at once for a bounded time, through the library and then through vstore serve "
              "under wrk, in a database of its own; then every acknowledged write checked in the table");
  soak->add_option("--duration", so.duration_s, "seconds of each phase (library, then service)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  soak->add_option("--writers", so.writers, "writer threads")->check(CLI::Range(1, 256))->capture_default_str();
  soak->add_option("--readers", so.readers, "reader threads (and wrk's connections in the service phase)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  soak->add_option("--seed", so.seed, "Reuters articles stored before the writers start")
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{100000}))
      ->capture_default_str();
  soak->add_option("--top-k", so.top_k, "results per search")->check(CLI::Range(1, 1000))->capture_default_str();
  soak->add_flag("--no-service", so_no_service, "skip the phase against vstore serve (which needs wrk)");
  soak->add_option("--serve-arg", so.serve_args, "a further option for vstore serve, e.g. --serve-arg=--no-map (repeatable)")
      ->allow_extra_args(false);
  add_reuters_files(soak, so_data, so_queries);
  soak->add_flag("--json", json, "print the result as one JSON object");
  soak->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      auto inputs = service_inputs(*cfg, so_data, so_queries);
      if (!inputs) return report(inputs.error());
      so.data = inputs->data;
      so.query_file = inputs->queries;
      so.vstore = inputs->vstore;
      so.model_dir = inputs->model_dir;
      so.service = !so_no_service;
      so.config = *cfg;
      so.progress = progress_printer();
      auto result = bench_soak(*conninfo, so);
      if (!result) return report(result.error());
      if (json) {
        (*result)["elapsed_s"] = elapsed_s(started);
        print_json(*result);
      } else {
        print_soak_summary(*result);
      }
      const auto& r = *result;
      const std::int64_t errors = r["errors"].get<std::int64_t>();
      const auto& v = r["verify"];
      if (errors > 0 || !v["equal"].get<bool>()) {
        // With --json the result is already stdout's one JSON document: the reason goes to stderr.
        set_json_errors(false);
        print_error("failed",
                    fmt::format("bench soak: {} errors (the first: {}); the table against the acknowledged writes: "
                                "{} lost, {} changed, {} unexpected, {} duplicated (examples {})",
                                errors, r["first_error"].is_null() ? "none" : r["first_error"].get<std::string>(),
                                v["lost"].dump(), v["changed"].dump(), v["unexpected"].dump(), v["duplicates"].dump(),
                                v["examples"].dump()));
        return k_exit_failure;
      }
      if (!json) print_done("bench soak", "finished", started);
      return k_exit_ok;
    };
  });

  static BenchReindexOptions re;
  static std::string bench_data;  // empty: ../shared/data/reuters21578/articles.jsonl beside the source tree
  auto* reindex = bench->add_subcommand(
      "reindex", "reindex throughput (articles/s) against the embedding engine's own on the same texts in the same run, "
                 "in a database of its own");
  reindex->add_option("--data", bench_data, "article JSON Lines file (default: the Reuters articles in ../shared/data "
                                              "beside vstore's source tree)");
  reindex->add_option("--limit", re.limit, "articles read (0: all)")->check(CLI::NonNegativeNumber)->capture_default_str();
  reindex->add_option("--batch-size", re.batch_size, "reindex batch size and texts per embed call")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  reindex->add_flag("--json", json, "print the result as one JSON object");
  reindex->callback([&] { action = [&] { return run_bench_reindex(globals, re, bench_data, json); }; });
}

}  // namespace vstore::cli
