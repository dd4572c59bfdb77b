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
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <system_error>

#include <fmt/format.h>

#include "core/process.hpp"
#include "macro/bench.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

using bench_support::check_range;
using bench_support::report;
using bench_support::round_to;
using bench_support::ScratchDatabase;
using bench_support::seconds_since;

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

// The first `n` records of the article file.
Result<std::vector<Article>> read_articles(const fs::path& path, std::int64_t n) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open the article file {}", path.string()));
  std::vector<Article> articles;
  std::string line;
  std::int64_t line_no = 0;
  while (static_cast<std::int64_t>(articles.size()) < n && std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json record = json::parse(line, nullptr, false);
    if (record.is_discarded()) {
      return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: not valid JSON", path.string(), line_no));
    }
    auto article = article_from_json(record);
    if (!article) return fail(article.error().with_context(fmt::format("{}:{}", path.string(), line_no)));
    articles.push_back(std::move(*article));
  }
  return articles;
}

// The query texts of a queries-dev.tsv style file: the text after the first tab of each line.
Result<std::vector<std::string>> read_queries(const fs::path& path) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open the query file {}", path.string()));
  std::vector<std::string> queries;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::size_t tab = line.find('\t');
    std::string text = tab == std::string::npos ? line : line.substr(tab + 1);
    if (text.find_first_not_of(" \t") != std::string::npos) queries.push_back(std::move(text));
  }
  if (queries.empty()) return fail(ErrorCode::invalid_argument, fmt::format("{} holds no queries", path.string()));
  return queries;
}

// Phase 1: the articles embedded and stored, the vector index built after them. Returns
// {rows, embed_upsert_s, index_build_s}.
Result<json> load_articles(const ScratchDatabase& db, const std::string& conninfo, const Config& cfg,
                           const BenchPythonOptions& options) {
  VS_TRY_ASSIGN(std::vector<Article> articles, read_articles(options.data, options.n));
  VS_TRY(schema_up(conninfo, cfg));
  {
    // Suspending the vector index drops it: only ever in the scratch database.
    VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo));
    VS_TRY(db.check(conn));
  }
  VS_TRY(suspend_vector_index(conninfo, cfg));
  json out;
  const auto load_start = Clock::now();
  {
    OpenOptions open;
    open.create = true;
    VS_TRY_ASSIGN(std::unique_ptr<VectorStore> store, open_store(cfg, open));
    VS_TRY_ASSIGN(std::unique_ptr<Embedder> embedder, make_embedder(cfg));
    ArticleStore articles_store(std::move(store), std::move(embedder), 1);
    const double total = static_cast<double>(articles.size());
    VS_TRY_ASSIGN(const std::size_t stored,
                  articles_store.upsert_articles(articles, [&](std::size_t done) {
                    report(options.progress, "embed", static_cast<double>(done) / total);
                  }));
    articles_store.shutdown();
    out["rows"] = stored;
  }
  out["embed_upsert_s"] = round_to(seconds_since(load_start), 3);
  report(options.progress, "index", 0.0);
  const auto index_start = Clock::now();
  VS_TRY(restore_vector_index(conninfo, cfg));
  out["index_build_s"] = round_to(seconds_since(index_start), 3);
  report(options.progress, "index", 1.0);
  return out;
}

// A private temporary directory (mode 0700), removed with its files when it goes out of scope.
class PrivateDir {
 public:
  PrivateDir() {
    std::string pattern = (fs::temp_directory_path() / "vstore-bench-python-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) m_path = pattern;
  }
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  ~PrivateDir() {
    std::error_code ec;
    if (!m_path.empty()) fs::remove_all(m_path, ec);
  }
  [[nodiscard]] const fs::path& path() const { return m_path; }

 private:
  fs::path m_path;
};

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
  const PrivateDir dir;
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
  VS_TRY_ASSIGN(const std::vector<std::string> queries, read_queries(options.query_file));
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
  VS_TRY_ASSIGN(json load, load_articles(db, conninfo, cfg, options));

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
