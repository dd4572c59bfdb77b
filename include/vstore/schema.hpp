// SPDX-License-Identifier: Apache-2.0
/// Versioned schema migrations of the pgvector side (`vstore schema up|down|status`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/result.hpp"

namespace vstore {

/// One migration and whether it is applied.
struct MigrationState {
  int version = 0;
  std::string name;
  bool applied = false;
  std::string applied_at;   ///< ISO 8601, empty when not applied
  nlohmann::json details;   ///< what the migration did (created table, added columns, index)
};

/// The schema as `vstore schema status` reports it.
struct SchemaStatus {
  int current_version = 0;
  int latest_version = 0;
  std::string table;
  bool table_exists = false;
  std::vector<MigrationState> migrations;
  std::vector<std::string> notes;  ///< things the last up/down chose not to do, and why
};

/// Applies every pending migration, each in its own transaction under an advisory lock.
/// With no `articles` table it creates one; with an application-owned table it only adds the
/// vector columns (`embedding vector(dim)`, `embedding_model`, `vector_metadata`,
/// `publication_date_ts`) and indexes, leaving every existing row and column as it was. Then
/// builds the filter and vector indexes vstore recorded that are missing (after a killed bulk load).
/// Errors: conflict (the table has no unique `uri`, or an existing `embedding` column has
/// another dimension than EMBEDDING_DIM), unavailable, internal.
[[nodiscard]] Result<SchemaStatus> schema_up(const std::string& conninfo, const Config& config);

/// The newest schema version; a store needs every migration up to it.
inline constexpr int k_latest_schema_version = 7;

/// Reverts migrations down to `target_version` (0..k_latest_schema_version; 0 = all), newest
/// first. Only what vstore added is removed: a table vstore created is dropped only when it
/// holds no rows (otherwise it is kept and a note says so); an application-owned table keeps all
/// its own columns and rows. A column vstore added that holds data in some row (the embedding
/// and its companions) is dropped only when `force` is true; otherwise nothing of that
/// migration is reverted and the error says how many rows hold data in which column.
/// Errors: invalid_argument (target out of range), conflict (data in a column to drop without
/// `force`, or writes waiting in the dual-mode outbox), unavailable, internal.
[[nodiscard]] Result<SchemaStatus> schema_down(const std::string& conninfo, const Config& config,
                                               int target_version = 0, bool force = false);

/// Reads the applied versions without changing anything.
[[nodiscard]] Result<SchemaStatus> schema_status(const std::string& conninfo, const Config& config);

}  // namespace vstore

namespace vstore {

/// The name of the vector index migration 3 created (whether or not it exists now); empty when
/// it created none (the table already had one, or the index type is none). Errors: unavailable.
[[nodiscard]] Result<std::string> recorded_vector_index(const std::string& conninfo, const Config& config);

/// For a bulk load: drops the vector index that migration 3 created (an index the application
/// made is never touched) and returns its name; empty when there was none to drop. Until
/// restore_vector_index() runs, searches are exact scans. Errors: unavailable, internal.
[[nodiscard]] Result<std::string> suspend_vector_index(const std::string& conninfo, const Config& config);

/// The B-tree filter indexes migration 2 created that exist now (what suspend_filter_indexes()
/// would drop). Errors: unavailable.
[[nodiscard]] Result<std::vector<std::string>> present_filter_indexes(const std::string& conninfo, const Config& config);

/// For a bulk load into an empty table: drops the B-tree filter indexes migration 2 created
/// (indexes the application made are never touched), in one transaction, and returns their
/// names; restore_filter_indexes() builds them again. Errors: unavailable, internal.
[[nodiscard]] Result<std::vector<std::string>> suspend_filter_indexes(const std::string& conninfo, const Config& config);

/// Creates the filter indexes migration 2 recorded that are missing (all at once, one connection
/// each, without parallel workers) and returns their names. schema_up() does the same, so an interrupted bulk
/// load is repaired by `vstore schema up`. Errors: unavailable, internal.
[[nodiscard]] Result<std::vector<std::string>> restore_filter_indexes(const std::string& conninfo, const Config& config);

/// Recreates the vector index recorded by migration 3 when it is missing and the table has no
/// other vector index on `embedding` (one the application made instead is left to serve), with the recorded
/// type and parameters, then ANALYZEs the table; returns whether it built one. schema_up() does
/// the same, so an interrupted bulk load is repaired by `vstore schema up`. `progress`, when
/// set, is called about every half second during the build with the rows the build has taken
/// in and the rows with a vector (from the server's pg_stat_progress_create_index, polled on a
/// second connection, from that poller's thread), and once at the end.
using IndexBuildProgress = std::function<void(std::int64_t done, std::int64_t total)>;
[[nodiscard]] Result<bool> restore_vector_index(const std::string& conninfo, const Config& config,
                                                const IndexBuildProgress& progress = {});

}  // namespace vstore
