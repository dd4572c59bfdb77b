// SPDX-License-Identifier: Apache-2.0
/// migrate-chroma: copies a Chroma collection's embeddings (a persistent directory or a running
/// server) into the pgvector table.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/result.hpp"

namespace vstore {

/// Called on long phases: phase name ("read", "copy", "verify"), units done and total.
using MigrateProgress = std::function<void(std::string_view phase, std::int64_t done, std::int64_t total)>;

/// What to migrate and how.
struct MigrateOptions {
  std::string from_dir;                    ///< Chroma persistent directory (stopped, or a copy)
  /// A running Chroma server, http(s)://HOST[:PORT][/PATH], read over its HTTP API (v2, or v1
  /// for Chroma 0.4/0.5) with Config::chroma_token (CHROMA_TOKEN). Exactly one of from_dir and
  /// from_url is required.
  std::string from_url;
  /// Collection name. A directory: required when it holds several. A server: default
  /// Config::chroma_collection (CHROMA_COLLECTION, "articles").
  std::optional<std::string> collection;
  std::string tenant = "default_tenant";      ///< server tenant (from_url only). Default "default_tenant".
  std::string database = "default_database";  ///< server database (from_url only). Default "default_database".
  /// Records per `get` request to a server, never more than its max_batch_size; 0 = that
  /// limit, or fewer for wide vectors (answers near 16 MB). Default 0.
  std::int64_t page_size = 0;
  bool dry_run = false;                    ///< plan only: read everything, compare with the table, write nothing
  bool verify = false;                     ///< after writing, compare every row and run the overlap check
  bool insert_missing = false;             ///< create rows for ids without an article row (else: skipped)
  bool resume = false;                     ///< continue after the last committed batch of an earlier run
  bool bulk_index = true;                  ///< drop vstore's vector index (and, into an empty table, its filter
                                           ///< B-tree indexes) for a large load, build them once after
  std::int64_t bulk_min_rows = 5000;       ///< a load is large from this many rows (and > 2x the table's vectors). Default 5000.
  std::optional<std::string> model;        ///< embedding_model when Chroma stored no embedding function
  std::size_t batch_size = 5000;           ///< records per COPY + merge transaction. Default 5000. Range 1..1000000.
  /// Connections that write batches at once (each its own transaction; the batches still commit
  /// in order, so the checkpoint stays a prefix). Default 2. Range 1..8.
  int writers = 2;
  int verify_queries = 50;                 ///< sample queries for overlap@10. Default 50.
  MigrateProgress progress;                ///< optional
  /// For tests only: stop (as if killed) after this many committed batches; 0 = never.
  std::size_t test_stop_after_batches = 0;
  /// For tests only: sleep this long after each committed batch, so a test can kill the run.
  int test_batch_delay_ms = 0;
};

/// The plan and outcome for one collection. A dry run fills the outcome counts (migrated,
/// unchanged, changed, inserted, skipped, errors) with what a real run from the same state would
/// report, found the same way (the same write checks, the same comparison with the table).
struct CollectionReport {
  std::string name;
  std::string id;
  std::int64_t count = 0;          ///< live records in Chroma (chromadb_total)
  std::size_t dimension = 0;
  std::string metric;              ///< Chroma space: cosine, l2 or ip
  std::string operator_class;      ///< vector_cosine_ops, vector_l2_ops or vector_ip_ops
  std::string distance_operator;   ///< <=>, <-> or <#>
  std::string embedding_model;
  std::string model_source;        ///< "chroma" (stored embedding function) or "--model"
  nlohmann::json source_stats;     ///< HNSW slots, tombstones, log rows replayed, sequence numbers
  std::int64_t to_update = 0;      ///< ids with an article row (dry run and real run)
  std::int64_t to_insert = 0;      ///< ids without a row, created with --insert-missing
  std::int64_t to_skip = 0;        ///< ids without a row, left alone
  /// False when the counts below are unknown: a dry run that could not compare with the table
  /// (no database, or a check of the table that a real run would fail on; notes say which).
  bool counted = true;
  /// A dry run: the error a real run would stop with before writing anything (dimension, model
  /// or a value too long for its column); empty when none. The counts are then unknown.
  std::string refusal;
  std::int64_t migrated = 0;       ///< rows that now hold the Chroma vector (unchanged + changed + inserted)
  std::int64_t unchanged = 0;      ///< existing rows whose vector, model and metadata already equalled Chroma's
  std::int64_t changed = 0;        ///< existing rows whose embedding, model or metadata changed in this run
  std::int64_t inserted = 0;       ///< rows created (--insert-missing)
  std::int64_t skipped = 0;        ///< ids without an article row, left alone (no --insert-missing)
  std::int64_t errors = 0;         ///< records refused by the write checks (write_check.hpp), not written
  std::int64_t resumed_after = 0;  ///< records already committed by an earlier run (--resume)
  std::vector<std::string> error_ids;      ///< the first 100 refused records, in id order
  std::vector<std::string> error_reasons;  ///< why each of error_ids was refused (uri, field, what)
  /// Date column values read_date() cannot read (stored NULL; the text stays in vector_metadata),
  /// counted, and the first 100 described (record, field, value).
  std::int64_t unreadable_dates = 0;
  std::vector<std::string> date_notes;
  std::vector<std::string> notes;
  nlohmann::json verify;           ///< null unless verified
  nlohmann::json timings = nlohmann::json::object();  ///< seconds per phase: read_s, classify_s, copy_s, index_build_s, verify_s
};

/// The whole run.
struct MigrateReport {
  std::string source;              ///< directory path, or the server URL with secrets redacted
  std::string source_kind;         ///< "directory" or "server"
  /// A directory: the Chroma migrations applied, e.g. "sysdb 9, metadb 4, embeddings_queue 2";
  /// a server: its API, e.g. "api v2, chroma 1.0.0, max_batch_size 5461".
  std::string schema_version;
  std::string table;               ///< the target table (Config::table)
  bool dry_run = false;
  /// A dry run without a database: why none was reached (empty when one was).
  std::string database_error;
  /// What a dry run without a database could not check, in words (empty when it checked all).
  std::vector<std::string> not_checked;
  /// A dry run: the error a real run would stop with about the source as a whole (several
  /// collections and none chosen); empty when none.
  std::string refusal;
  std::vector<CollectionReport> collections;
  std::string report_path;         ///< JSON file written (empty for a dry run)
  /// Why the run is not a success (for a dry run: why the planned run would not be), one
  /// sentence each: the collection choice, an unknown model (a dry run), a check of the table that failed (a dry run's
  /// refusal), records refused, a failed verification, a collection of which nothing was
  /// migrated because no id had an article row (naming --insert-missing). Empty on success.
  [[nodiscard]] std::vector<std::string> failures() const;
  /// True when failures() is empty.
  [[nodiscard]] bool ok() const;
  /// Why `c` skipped ids, naming the flag that would write them; empty when it skipped none.
  [[nodiscard]] std::string skip_reason(const CollectionReport& c) const;
  [[nodiscard]] nlohmann::json to_json() const;
};

/// Opens the source and checks everything cheap first: the collection choice (a directory with
/// several needs one named, except on a dry run), that the model is known (stored by Chroma or
/// `options.model`), the target table (it exists, its dimension equals the collection's, it holds
/// no vectors of another model). Then reads the collection(s) from `options.from_dir` offline, or
/// one collection from the server at `options.from_url` (paged `get` of ids, embeddings,
/// documents, metadatas and uris past max_batch_size, float32 exactly as the server sent it),
/// into memory, and, unless dry_run, writes their
/// vectors into `config.table` in batches: binary COPY into a temporary staging table, then one
/// merge per batch that sets embedding, embedding_model and vector_metadata of existing rows
/// (a row already equal is not rewritten, and counted unchanged) and, with insert_missing,
/// inserts the rest. Each batch
/// commits with a checkpoint row in `vstore_chroma_checkpoints`, so `resume` continues after a
/// kill and a repeated run changes nothing. A large load (>= 5,000 rows, more than doubling the
/// table's vectors) drops the vector index vstore created and rebuilds it at the end (with
/// bulk_index), and into an empty table does the same with the B-tree filter indexes vstore
/// created; missing recorded indexes are rebuilt after every run. Writes the JSON report under
/// `config.data_dir/reports/` in a file of its own (the time to the microsecond and the process
/// id, never an existing file). A dry run writes nothing persistent, no report either: it
/// compares the records with the table in temporary tables and gives the counts a real run
/// would; a database it cannot reach (unavailable, timeout) is reported in database_error and
/// not_checked instead of failing it. Errors: not_found (directory, collection, table),
/// conflict (directory
/// in use, unknown Chroma schema, dimension differs from the table, a server collection written
/// to while it was read), invalid_argument (neither or both sources, several collections and
/// none chosen, no model known), corruption (damaged Chroma files or server answers; nothing
/// is written), unavailable/timeout (database, or the Chroma server, named by its redacted URL;
/// nothing is written). Not thread-safe with another migration of the same table.
[[nodiscard]] Result<MigrateReport> migrate_chroma(const std::string& conninfo, const Config& config,
                                                   const MigrateOptions& options);

/// The dry run of migrate_chroma() when there is no database to ask (`why`, e.g. the error of
/// resolve_conninfo()): everything about the source is checked and read, database_error is
/// `why`'s message and not_checked lists the checks of the table left out; the counts are
/// unknown (CollectionReport::counted false) except errors. Errors: invalid_argument when
/// `options.dry_run` is false, and those of migrate_chroma() about the source.
[[nodiscard]] Result<MigrateReport> plan_chroma_without_database(const Config& config, const MigrateOptions& options,
                                                                 const Error& why);

/// The pgvector operator class and distance operator for a Chroma space ("cosine", "l2", "ip").
/// Errors: invalid_argument for any other space.
[[nodiscard]] Result<std::pair<std::string, std::string>> pgvector_operator_for(std::string_view space);

}  // namespace vstore
