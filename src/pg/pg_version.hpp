// SPDX-License-Identifier: Apache-2.0
// The installed pgvector's version, the fixes it lacks, and index builds that respect both.
#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pg/pg_conn.hpp"

namespace vstore::pg {

/// A pgvector release number such as 0.8.0.
struct ExtensionVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  auto operator<=>(const ExtensionVersion&) const = default;
};

/// The first pgvector whose parallel HNSW build is safe (CVE-2026-3172 fixed).
inline constexpr ExtensionVersion k_pgvector_parallel_hnsw_fixed{0, 8, 2};
/// The first pgvector with every HNSW fix vstore knows of (vacuum under concurrent inserts).
inline constexpr ExtensionVersion k_pgvector_recommended{0, 8, 4};

/// Parses "0.8.0" or "0.8" (patch 0); nullopt for anything else. Never fails otherwise.
[[nodiscard]] std::optional<ExtensionVersion> parse_extension_version(std::string_view text);

/// Whether vstore lets PostgreSQL build an HNSW index with parallel workers on this pgvector:
/// only from 0.8.2, which fixed CVE-2026-3172 (an overflow in parallel HNSW builds). An
/// unreadable version counts as too old.
[[nodiscard]] bool parallel_hnsw_build_safe(std::string_view version_text);

/// The warnings `health` gives for the pgvector `version_text`, one per group of fixes it lacks;
/// empty from 0.8.4. Thread-safe.
[[nodiscard]] std::vector<std::string> pgvector_warnings(std::string_view version_text);

/// The pgvector of a server: the installed files (`pg_available_extensions.default_version`,
/// the library new sessions load, which is where the fixes are) and the SQL objects of the
/// connection's database (`pg_extension.extversion`, behind until ALTER EXTENSION vector
/// UPDATE). Each is "" when absent.
struct PgvectorVersions {
  std::string library;
  std::string sql;
};

/// Reads both versions. Errors: those of the query (unavailable, ...).
[[nodiscard]] Result<PgvectorVersions> installed_pgvector(Connection& conn);

/// pgvector_warnings() for the server's library, plus a note when the database's SQL objects
/// are older than it (ALTER EXTENSION vector UPDATE). Errors: those of installed_pgvector().
[[nodiscard]] Result<std::vector<std::string>> pgvector_health_warnings(Connection& conn);

/// Runs `create_index_sql` (a CREATE INDEX) as maintenance work: with `SET LOCAL
/// statement_timeout = 0` (a build may outlast VSTORE_STATEMENT_TIMEOUT), and for an HNSW index
/// (`hnsw`) on a pgvector older than 0.8.2 with `SET LOCAL max_parallel_maintenance_workers =
/// 0`. Runs in the caller's transaction when one is open, else in a transaction of its own.
/// Every vstore HNSW build goes through here. Errors: those of the statements.
[[nodiscard]] Result<void> build_index(Connection& conn, const std::string& create_index_sql, bool hnsw);

}  // namespace vstore::pg
