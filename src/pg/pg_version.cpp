// SPDX-License-Identifier: Apache-2.0
// pgvector versions: parsing, the fixes a release lacks, and index builds that avoid what is
// unsafe on it. The one decision (parallel HNSW builds only from 0.8.2) lives in
// parallel_hnsw_build_safe(); build_index() applies it to every HNSW build vstore runs.
#include "pg/pg_version.hpp"

#include <chrono>

#include <charconv>

#include <fmt/format.h>

namespace vstore::pg {
namespace {

std::optional<int> parse_part(std::string_view text) {
  int value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || value < 0) return std::nullopt;
  return value;
}

}  // namespace

std::optional<ExtensionVersion> parse_extension_version(std::string_view text) {
  const std::size_t first = text.find('.');
  if (first == std::string_view::npos) return std::nullopt;
  const std::size_t second = text.find('.', first + 1);
  const auto major = parse_part(text.substr(0, first));
  const auto minor = parse_part(text.substr(first + 1, second == std::string_view::npos ? std::string_view::npos
                                                                                          : second - first - 1));
  const auto patch = second == std::string_view::npos ? std::optional<int>(0) : parse_part(text.substr(second + 1));
  if (!major || !minor || !patch) return std::nullopt;
  return ExtensionVersion{*major, *minor, *patch};
}

bool parallel_hnsw_build_safe(std::string_view version_text) {
  const auto version = parse_extension_version(version_text);
  return version && *version >= k_pgvector_parallel_hnsw_fixed;
}

std::vector<std::string> pgvector_warnings(std::string_view version_text) {
  std::vector<std::string> warnings;
  const auto version = parse_extension_version(version_text);
  if (!version) {
    warnings.push_back(fmt::format("pgvector version \"{}\" cannot be read, so vstore cannot tell which HNSW fixes it "
                                   "has; it builds HNSW indexes without parallel workers",
                                   version_text));
    return warnings;
  }
  if (*version < k_pgvector_parallel_hnsw_fixed) {
    warnings.push_back(fmt::format("pgvector {} lacks the fix for CVE-2026-3172, an overflow in parallel HNSW index "
                                   "builds (fixed in 0.8.2); vstore builds its HNSW indexes without parallel workers",
                                   version_text));
  }
  if (*version < ExtensionVersion{0, 8, 3}) {
    warnings.push_back(fmt::format("pgvector {} lacks the fixes for HNSW index corruption when VACUUM runs during "
                                   "concurrent inserts (fixed in 0.8.3 and 0.8.4); upgrade to 0.8.4 or later",
                                   version_text));
  } else if (*version < k_pgvector_recommended) {
    warnings.push_back(fmt::format("pgvector {} lacks the second fix for HNSW index corruption when VACUUM runs "
                                   "during concurrent inserts (fixed in 0.8.4); upgrade to 0.8.4 or later",
                                   version_text));
  }
  return warnings;
}

Result<PgvectorVersions> installed_pgvector(Connection& conn) {
  VS_TRY_ASSIGN(PgResult res, conn.exec("SELECT (SELECT default_version FROM pg_available_extensions WHERE name = "
                                        "'vector'), (SELECT extversion FROM pg_extension WHERE extname = 'vector')"));
  PgvectorVersions versions;
  if (res.rows() == 1) {
    if (!res.is_null(0, 0)) versions.library = res.text(0, 0);
    if (!res.is_null(0, 1)) versions.sql = res.text(0, 1);
  }
  return versions;
}

Result<std::vector<std::string>> pgvector_health_warnings(Connection& conn) {
  VS_TRY_ASSIGN(const PgvectorVersions versions, installed_pgvector(conn));
  if (versions.library.empty()) return std::vector<std::string>();
  std::vector<std::string> warnings = pgvector_warnings(versions.library);
  const auto library = parse_extension_version(versions.library);
  const auto sql = parse_extension_version(versions.sql);
  if (library && sql && *sql < *library) {
    warnings.push_back(fmt::format("the vector extension of this database is at {} while the server has pgvector {}; "
                                   "run ALTER EXTENSION vector UPDATE",
                                   versions.sql, versions.library));
  }
  return warnings;
}

Result<void> build_index(Connection& conn, const std::string& create_index_sql, bool hnsw) {
  bool serial = false;
  if (hnsw) {
    VS_TRY_ASSIGN(const PgvectorVersions versions, installed_pgvector(conn));
    serial = !parallel_hnsw_build_safe(versions.library.empty() ? versions.sql : versions.library);
  }
  auto run = [&]() -> Result<void> {
    // The build may take hours: neither the server's statement timeout nor the client's reply
    // limit applies to it (TCP keep-alives still find a server that is gone).
    struct ReplyLimitLifted {
      Connection& conn;
      std::chrono::milliseconds kept;
      ~ReplyLimitLifted() { conn.set_reply_limit(kept); }
    } lifted{conn, conn.set_reply_limit(std::chrono::milliseconds(0))};
    VS_TRY(conn.exec("SET LOCAL statement_timeout = 0"));
    if (serial) VS_TRY(conn.exec("SET LOCAL max_parallel_maintenance_workers = 0"));
    VS_TRY(conn.exec(create_index_sql));
    return {};
  };
  if (conn.in_transaction()) return run();
  VS_TRY(conn.exec("BEGIN"));
  if (auto done = run(); !done) {
    (void)conn.exec("ROLLBACK");
    return done;
  }
  VS_TRY(conn.exec("COMMIT"));
  return {};
}

}  // namespace vstore::pg
