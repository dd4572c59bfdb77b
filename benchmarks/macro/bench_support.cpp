// SPDX-License-Identifier: Apache-2.0
// The benchmarks' scratch databases and the conninfo that reaches them, and the Reuters
// articles and queries that the benchmarks of the whole store (python, serve) load and ask.
#include "macro/bench_support.hpp"

#include <stdlib.h>

#include <cmath>
#include <fstream>

#include <fmt/format.h>

#include "pg/pg_catalog.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::bench_support {
namespace {

using pg::Connection;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A URI query key percent-decoded as libpq decodes it (an invalid escape is kept as written;
// libpq refuses such a URI anyway).
std::string decoded(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

// `query` (the part after '?') without its `dbname` parameters.
std::string without_dbname(std::string_view query) {
  std::string kept;
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (decoded(param.substr(0, param.find('='))) == "dbname") continue;
    if (!kept.empty()) kept += '&';
    kept += param;
  }
  return kept;
}

}  // namespace

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

double round_to(double value, int digits) {
  const double scale = std::pow(10.0, digits);
  return std::round(value * scale) / scale;
}

Result<void> check_range(std::string_view name, double value, double lo, double hi) {
  if (!(value >= lo && value <= hi)) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} must be from {} to {}, not {}", name, lo, hi, value));
  }
  return {};
}

Result<void> check_index_params(int m, int ef_construction) {
  VS_TRY(check_range("m", m, 2, 100));
  VS_TRY(check_range("ef_construction", ef_construction, 4, 1000));
  if (ef_construction < 2 * m) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("ef_construction must be at least 2 * m = {}, not {}", 2 * m, ef_construction));
  }
  return {};
}

Config bench_config(const std::string& conninfo, int dim, int m, int ef_construction, int ef_search) {
  Config cfg;
  cfg.database_url = conninfo;
  cfg.embedding_dim = dim;
  cfg.embedding_model = std::string(k_bench_model);
  cfg.pgvector.index_type = IndexType::hnsw;
  cfg.pgvector.hnsw_m = m;
  cfg.pgvector.hnsw_ef_construction = ef_construction;
  cfg.pgvector.hnsw_ef_search = ef_search;
  cfg.pool.size = 2;
  cfg.pool.max_overflow = 0;
  return cfg;
}

Result<std::string> vector_index_name(Connection& conn, const std::string& table) {
  VS_TRY_ASSIGN(pg::VectorIndex idx, pg::find_vector_index(conn, table));
  return idx.name;
}

Result<nlohmann::json> server_info(Connection& conn) {
  VS_TRY_ASSIGN(pg::PgResult res, conn.exec("SELECT current_setting('server_version'), (SELECT extversion FROM "
                                            "pg_extension WHERE extname = 'vector'), current_setting('shared_buffers'), "
                                            "current_setting('maintenance_work_mem'), "
                                            "current_setting('max_parallel_workers_per_gather'), "
                                            "current_setting('max_parallel_maintenance_workers'), "
                                            "current_setting('fsync')"));
  auto field = [&](int col) { return res.is_null(0, col) ? nlohmann::json(nullptr) : nlohmann::json(res.text(0, col)); };
  return nlohmann::json{{"postgresql", field(0)},
                        {"pgvector", field(1)},
                        {"shared_buffers", field(2)},
                        {"maintenance_work_mem", field(3)},
                        {"max_parallel_workers_per_gather", field(4)},
                        {"max_parallel_maintenance_workers", field(5)},
                        {"fsync", field(6)}};
}

Result<void> checkpoint(Connection& conn) {
  auto done = conn.exec("CHECKPOINT");
  if (!done) {
    return fail(done.error().with_context(
        "cannot run CHECKPOINT (it needs superuser or the pg_checkpoint role), so the benchmark's loads would not "
        "start from a clean checkpoint"));
  }
  return {};
}

std::string with_dbname(const std::string& conninfo, const std::string& dbname) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (!conninfo.starts_with(scheme)) continue;
    const std::size_t path = conninfo.find_first_of("/?", scheme.size());
    if (path == std::string::npos) return conninfo + "/" + dbname;
    std::string out = conninfo.substr(0, path) + "/" + dbname;
    const std::size_t query = conninfo.find('?', path);
    if (query == std::string::npos) return out;
    const std::string kept = without_dbname(std::string_view(conninfo).substr(query + 1));
    return kept.empty() ? out : out + "?" + kept;
  }
  return conninfo + (conninfo.empty() ? "" : " ") + "dbname=" + dbname;
}

PrivateDir::PrivateDir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) != nullptr) m_path = pattern;
}

PrivateDir::~PrivateDir() {
  std::error_code ec;
  if (!m_path.empty()) std::filesystem::remove_all(m_path, ec);
}

Result<std::vector<Article>> read_article_file(const std::filesystem::path& path, std::int64_t n) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open the article file {}", path.string()));
  std::vector<Article> articles;
  std::string line;
  std::int64_t line_no = 0;
  while (static_cast<std::int64_t>(articles.size()) < n && std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    if (record.is_discarded()) {
      return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: not valid JSON", path.string(), line_no));
    }
    auto article = article_from_json(record);
    if (!article) return fail(article.error().with_context(fmt::format("{}:{}", path.string(), line_no)));
    articles.push_back(std::move(*article));
  }
  return articles;
}

Result<std::vector<std::string>> read_query_file(const std::filesystem::path& path) {
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

Result<nlohmann::json> load_articles(const ScratchDatabase& db, const std::string& conninfo, const Config& cfg,
                                     std::span<const Article> articles, const BenchProgress& progress) {
  VS_TRY(schema_up(conninfo, cfg));
  {
    // Suspending the vector index drops it: only ever in the scratch database.
    VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
    VS_TRY(db.check(conn));
  }
  VS_TRY(suspend_vector_index(conninfo, cfg));
  nlohmann::json out;
  const auto load_start = std::chrono::steady_clock::now();
  {
    OpenOptions open;
    open.create = true;
    VS_TRY_ASSIGN(std::unique_ptr<VectorStore> store, open_store(cfg, open));
    VS_TRY_ASSIGN(std::unique_ptr<Embedder> embedder, make_embedder(cfg));
    ArticleStore articles_store(std::move(store), std::move(embedder), 1);
    const double total = static_cast<double>(articles.size());
    VS_TRY_ASSIGN(const std::size_t stored, articles_store.upsert_articles(articles, [&](std::size_t done) {
      report(progress, "embed", static_cast<double>(done) / total);
    }));
    articles_store.shutdown();
    out["rows"] = stored;
  }
  out["embed_upsert_s"] = round_to(seconds_since(load_start), 3);
  report(progress, "index", 0.0);
  const auto index_start = std::chrono::steady_clock::now();
  VS_TRY(restore_vector_index(conninfo, cfg));
  out["index_build_s"] = round_to(seconds_since(index_start), 3);
  report(progress, "index", 1.0);
  return out;
}

ScratchDatabase::~ScratchDatabase() {
  if (!m_created) return;
  if (auto conn = Connection::connect(m_admin)) {
    (void)conn->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", Connection::quote_ident(m_name)));
  }
}

Result<std::string> ScratchDatabase::create() {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(m_admin));
  auto made = conn.exec(fmt::format("CREATE DATABASE {}", Connection::quote_ident(m_name)));
  if (!made) return fail(made.error().with_context(fmt::format("cannot create benchmark database {}", m_name)));
  m_created = true;
  std::string conninfo = with_dbname(m_admin, m_name);
  VS_TRY_ASSIGN(Connection scratch, Connection::connect(conninfo));
  VS_TRY(check(scratch));
  return conninfo;
}

Result<void> ScratchDatabase::check(Connection& conn) const {
  VS_TRY_ASSIGN(pg::PgResult res, conn.exec("SELECT current_database()"));
  const std::string current = res.rows() > 0 ? res.text(0, 0) : std::string();
  if (current != m_name) {
    return fail(ErrorCode::conflict,
                fmt::format("the benchmark is connected to database \"{}\", not to its scratch database \"{}\"; it "
                            "refuses to drop, truncate or delete anything there",
                            current, m_name));
  }
  return {};
}

Result<void> ScratchDatabase::exec_destructive(Connection& conn, std::string_view sql) const {
  VS_TRY(check(conn));
  VS_TRY(conn.exec(sql));
  return {};
}

}  // namespace vstore::bench_support
