// SPDX-License-Identifier: Apache-2.0
// `vstore bench python`: the Python module against its own C++ call and against a pure Python store.
// Design:
// - Phase 1 (here, in C++): a scratch database (vstore_bench_python_<pid>) on the configured
//   server, checked with current_database() before the one destructive step (suspending the
//   vector index); schema_up; the first `n` articles of the data file embedded by the local
//   engine and upserted through ArticleStore as `vstore ingest` does, with the vector index
//   suspended; then restore_vector_index() (HNSW, config's m and ef_construction) and ANALYZE.
// - Phase 2 (benchmarks/python/bench_module.py under the given interpreter): both sides search
//   that one table. The script gets a spec file (conninfo, queries, sizes, and the environment
//   the module reads its configuration from) in a private temporary directory and writes its
//   figures to a file there; its stdout is discarded (ours may be JSON), its stderr is ours, so
//   a Python traceback reaches the user as it is. No shell is involved (run_process).
// - Phase 3: the script's figures are checked (every figure this command promises is present)
//   and merged with the load's, the machine's and the server's.
#include <unistd.h>

#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "core/process.hpp"
#include "macro/bench.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/types.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using bench_support::check_range;
using bench_support::report;
using bench_support::ScratchDatabase;

Result<void> check_options(const BenchPythonOptions& options) {
  VS_TRY(check_range("n", static_cast<double>(options.n), 100, 1000000));
  VS_TRY(check_range("queries", options.queries, 10, 1000000));
  VS_TRY(check_range("clients", options.clients, 2, 64));
  VS_TRY(check_range("repeats", options.repeats, 1, 20));
  VS_TRY(check_range("overhead_calls", options.overhead_calls, 10, 1000000));
  VS_TRY(check_range("overhead_block", options.overhead_block, 1, options.overhead_calls));
  VS_TRY(check_range("ef_search", options.ef_search, 1, 1000));
  VS_TRY(check_range("top_k", options.top_k, 1, 100));
  if (options.config.embedding_provider != "local") {
    return fail(ErrorCode::invalid_argument,
                fmt::format("bench python compares the local embedding engine with ONNX Runtime on the same weights; "
                            "EMBEDDING_PROVIDER is {}, not local",
                            options.config.embedding_provider));
  }
  for (const auto& [what, path] : {std::pair{"article file", options.data}, std::pair{"query file", options.query_file},
                                   std::pair{"benchmark script", options.script}, std::pair{"Python interpreter", options.python}}) {
    if (!fs::exists(path)) return fail(ErrorCode::not_found, fmt::format("{} {} not found", what, path.string()));
  }
  return {};
}

// The variables the module's store reads, pointing it at the scratch table with the same
// settings as the load (and nothing from the caller's environment that would send it elsewhere).
json module_environment(const std::string& conninfo, const Config& cfg, const BenchPythonOptions& options) {
  return json{{"DATABASE_URL", conninfo},
              {"DATABASE_READ_URLS", ""},
              {"VECTOR_BACKEND", "pgvector"},
              {"VSTORE_SHADOW_COMPARE", "0"},
              {"VSTORE_TABLE", cfg.table},
              {"EMBEDDING_PROVIDER", "local"},
              {"EMBEDDING_MODEL", cfg.embedding_model},
              {"EMBEDDING_DIM", std::to_string(cfg.embedding_dim)},
              {"VSTORE_MODEL_DIR", options.model_dir.string()},
              {"VSTORE_EMBED_THREADS", std::to_string(cfg.embed_threads)},
              {"PGVECTOR_HNSW_EF_SEARCH", std::to_string(options.ef_search)},
              {"DB_POOL_SIZE", std::to_string(std::max(cfg.pool.size, options.clients + 2))},
              {"VSTORE_STRICT", "1"}};
}

// Phase 2: the script, with a spec file in and a result file out.
Result<json> run_script(const std::string& conninfo, const Config& cfg, const std::vector<std::string>& queries,
                        const BenchPythonOptions& options) {
  const bench_support::PrivateDir dir("vstore-bench-python");
  if (dir.path().empty()) return fail(ErrorCode::internal, "cannot make a temporary directory for the benchmark script");
  const fs::path spec_path = dir.path() / "spec.json";
  const fs::path out_path = dir.path() / "result.json";
  {
    std::ofstream spec(spec_path);
    spec << json{{"conninfo", conninfo},
                 {"table", cfg.table},
                 {"top_k", options.top_k},
                 {"ef_search", options.ef_search},
                 {"queries", queries},
                 {"timed", options.queries},
                 {"clients", options.clients},
                 {"repeats", options.repeats},
                 {"overhead_calls", options.overhead_calls},
                 {"overhead_block", options.overhead_block},
                 {"model_dir", options.model_dir.string()},
                 {"env", module_environment(conninfo, cfg, options)}}
                .dump();
    if (!spec) return fail(ErrorCode::internal, fmt::format("cannot write {}", spec_path.string()));
  }
  const std::vector<std::string> argv = {options.python.string(), options.script.string(), "--spec", spec_path.string(),
                                         "--out", out_path.string()};
  ProcessOptions process;
  process.discard_stdout = true;
  VS_TRY_ASSIGN(const int status, run_process(argv, process));
  if (status != 0) {
    return fail(ErrorCode::internal, fmt::format("the benchmark script {} failed (exit status {}; its error is above)",
                                                 options.script.string(), status));
  }
  std::ifstream in(out_path);
  const json result = json::parse(in, nullptr, false);
  if (result.is_discarded() || !result.is_object()) {
    return fail(ErrorCode::internal, fmt::format("the benchmark script {} wrote no JSON object", options.script.string()));
  }
  return result;
}

// Phase 3: every figure the command promises is in the script's result.
Result<void> check_result(const json& result, int clients) {
  std::vector<std::string> keys = {"cpp_search_us", "py_search_by_vector_us", "overhead_pct", "overlap_by_vector",
                                   "overlap_by_text"};
  for (const char* mode : {"vector", "text"}) {
    for (const int c : {1, clients}) {
      for (const char* figure : {"module_qps", "python_qps", "ratio"}) keys.push_back(fmt::format("{}_{}_{}c", figure, mode, c));
    }
  }
  for (const auto& key : keys) {
    if (!result.contains(key) || !result[key].is_number()) {
      return fail(ErrorCode::internal, fmt::format("the benchmark script's result has no figure {}", key));
    }
  }
  return {};
}

}  // namespace

Result<json> bench_python(const std::string& admin_conninfo, const BenchPythonOptions& options) {
  VS_TRY(check_options(options));
  VS_TRY_ASSIGN(const std::vector<std::string> queries, bench_support::read_query_file(options.query_file));
  const json machine = bench_machine_info();  // before our own load skews the load average
  ScratchDatabase db(admin_conninfo, fmt::format("vstore_bench_python_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, db.create());
  Config cfg = options.config;
  cfg.database_url = conninfo;
  cfg.database_read_urls.clear();
  cfg.backend = BackendKind::pgvector;
  cfg.model_dir = options.model_dir;
  cfg.pgvector.index_type = IndexType::hnsw;
  cfg.pgvector.hnsw_ef_search = options.ef_search;
  VS_TRY_ASSIGN(const std::vector<Article> articles, bench_support::read_article_file(options.data, options.n));
  VS_TRY_ASSIGN(json load, bench_support::load_articles(db, conninfo, cfg, articles, options.progress));

  report(options.progress, "python", 0.0);
  VS_TRY_ASSIGN(json result, run_script(conninfo, cfg, queries, options));
  report(options.progress, "python", 1.0);
  VS_TRY(check_result(result, options.clients));

  VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo));
  VS_TRY_ASSIGN(json server, bench_support::server_info(conn));
  json out;
  out["rows"] = load["rows"];
  out["queries"] = options.queries;
  out["distinct_queries"] = queries.size();
  out["clients"] = options.clients;
  out["repeats"] = options.repeats;
  out["top_k"] = options.top_k;
  out["ef_search"] = options.ef_search;
  out["hnsw_m"] = cfg.pgvector.hnsw_m;
  out["hnsw_ef_construction"] = cfg.pgvector.hnsw_ef_construction;
  out["model"] = cfg.embedding_model;
  out.update(result);
  out["load"] = load;
  out["machine"] = machine;
  out["server"] = server;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
