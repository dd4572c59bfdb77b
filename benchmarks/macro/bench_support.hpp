// SPDX-License-Identifier: Apache-2.0
// Internal to the benchmarks: a stopwatch, the statistics and rounding of every report, option
// checks, the conninfo of another database on the same server, and a scratch database that
// guards every destructive statement and is dropped when it goes out of scope.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "macro/bench.hpp"
#include "vstore/config.hpp"
#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore::pg {
class Connection;
}

namespace vstore::bench_support {

/// The embedding_model of every generated row.
inline constexpr std::string_view k_bench_model = "bench-clustered";

/// Seconds since `start` on the steady clock.
[[nodiscard]] inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The median of `runs` (the upper one of an even count); `runs` must not be empty.
[[nodiscard]] inline double median(std::vector<double> runs) {
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

/// The nearest-rank percentile `p` (0..1) of `sorted` (ascending); 0 when it is empty.
[[nodiscard]] double percentile(const std::vector<double>& sorted, double p);

/// `value` rounded to `digits` decimal places (the precision of every reported figure).
[[nodiscard]] double round_to(double value, int digits);

/// Success when lo <= value <= hi. Errors: invalid_argument "<name> must be from <lo> to <hi>, not <value>".
[[nodiscard]] Result<void> check_range(std::string_view name, double value, double lo, double hi);

/// HNSW m in 2..100, ef_construction in 4..1000 and at least 2 * m. Errors: invalid_argument.
[[nodiscard]] Result<void> check_index_params(int m, int ef_construction);

/// Calls `progress` when it is set.
inline void report(const BenchProgress& progress, std::string_view phase, double fraction) {
  if (progress) progress(phase, fraction);
}

/// Runs CHECKPOINT on `conn`, so that the next timed load starts with no dirty pages of the
/// last one. Errors: those of the server (it needs superuser or the pg_checkpoint role), with
/// that said; a benchmark that claims clean checkpoints fails rather than run without them.
[[nodiscard]] Result<void> checkpoint(pg::Connection& conn);

/// The Config of a benchmark's table: defaults, `database_url` = conninfo, the model
/// k_bench_model, an HNSW index with these parameters, and a pool of 2 connections.
[[nodiscard]] Config bench_config(const std::string& conninfo, int dim, int m, int ef_construction, int ef_search);

/// The name of the vector index on `table`.embedding, empty if none. Errors: the server's.
[[nodiscard]] Result<std::string> vector_index_name(pg::Connection& conn, const std::string& table);

/// The server's version, pgvector's, and the settings that shape the figures (shared_buffers,
/// maintenance_work_mem, parallel workers, fsync), as the "server" object of a report.
[[nodiscard]] Result<nlohmann::json> server_info(pg::Connection& conn);

/// `conninfo` pointed at database `dbname`. A URI gets `dbname` as its path, and every `dbname`
/// parameter of its query string is removed (libpq applies those after the path, so one would
/// win); a key=value conninfo gets a trailing `dbname=` (there the last occurrence wins).
/// `dbname` must be a plain identifier (letters, digits, underscores).
[[nodiscard]] std::string with_dbname(const std::string& conninfo, const std::string& dbname);

class ScratchDatabase;

/// A private temporary directory (mode 0700) `<tmp>/<prefix>-XXXXXX`, removed with its files
/// when it goes out of scope; path() is empty when it could not be made.
class PrivateDir {
 public:
  explicit PrivateDir(const std::string& prefix);
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  ~PrivateDir();
  [[nodiscard]] const std::filesystem::path& path() const { return m_path; }

 private:
  std::filesystem::path m_path;
};

/// The first `n` records of an article JSON Lines file (the Reuters set), blank lines skipped.
/// Errors: not_found (the file cannot be opened), invalid_argument (a line that is not JSON or
/// not an article, naming the file and the line).
[[nodiscard]] Result<std::vector<Article>> read_article_file(const std::filesystem::path& path, std::int64_t n);

/// The query texts of a queries-dev.tsv style file: the text after the first tab of each line
/// (the whole line without a tab), blank ones skipped. Errors: not_found, invalid_argument (no
/// query in the file).
[[nodiscard]] Result<std::vector<std::string>> read_query_file(const std::filesystem::path& path);

/// `articles` into the scratch database `db` (reached by `conninfo`), as `vstore ingest` loads
/// them: schema_up; the vector index suspended (only after `db` checked the connection is its
/// own); the articles embedded by `cfg`'s embedder and upserted through ArticleStore, reporting
/// the phase "embed"; then restore_vector_index() (cfg's index and parameters), reporting
/// "index". Returns {rows (stored), embed_upsert_s, index_build_s}. Errors: those of the steps.
[[nodiscard]] Result<nlohmann::json> load_articles(const ScratchDatabase& db, const std::string& conninfo,
                                                   const Config& cfg, std::span<const Article> articles,
                                                   const BenchProgress& progress);

/// A database of the benchmark's own: create() makes it and checks that its conninfo really
/// reaches it; the destructor drops it WITH (FORCE), also after a failure. A benchmark runs every
/// statement that drops, truncates or deletes through exec_destructive(), which first checks
/// `current_database()`, so it never touches a database it did not create. Not thread-safe.
class ScratchDatabase {
 public:
  ScratchDatabase(std::string admin_conninfo, std::string name)
      : m_admin(std::move(admin_conninfo)), m_name(std::move(name)) {}
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;
  ~ScratchDatabase();
  /// Creates it; returns its conninfo after connecting with it and finding this database.
  /// Errors: as the server's CREATE DATABASE, with the name; conflict when the conninfo leads
  /// to another database (which is then not touched).
  [[nodiscard]] Result<std::string> create();
  /// Success when `conn` is connected to this database. Errors: conflict naming both
  /// databases; those of the query.
  [[nodiscard]] Result<void> check(pg::Connection& conn) const;
  /// Runs `sql` (a DROP, TRUNCATE or DELETE) on `conn` after check(). Errors: those of check()
  /// (nothing is run), then the statement's.
  [[nodiscard]] Result<void> exec_destructive(pg::Connection& conn, std::string_view sql) const;
  [[nodiscard]] const std::string& name() const { return m_name; }

 private:
  std::string m_admin;
  std::string m_name;
  bool m_created = false;
};

}  // namespace vstore::bench_support
