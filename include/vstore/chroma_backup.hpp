// SPDX-License-Identifier: Apache-2.0
// The last step of the move: removing ChromaDB once pgvector is validated (`vstore
// cleanup-chroma`), with a compressed, checksummed backup first, and putting a backup back
// (`vstore restore-chroma`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/operations.hpp"
#include "vstore/result.hpp"

namespace vstore {

/// What cleanup-chroma removes: a persistent directory or a collection on a server.
enum class ChromaTarget {
  automatic,  ///< CHROMA_DB_DIR when that directory exists, else the CHROMA_URL collection (both: refused)
  directory,  ///< CHROMA_DB_DIR
  server,     ///< the collection CHROMA_COLLECTION on CHROMA_URL
};

/// What cleanup-chroma found, and whether `--confirm` may remove it.
struct CleanupPlan {
  std::string kind;                      ///< "directory" or "collection"
  std::string target;                    ///< the directory's absolute path, or "<redacted url> collection <name>"
  std::int64_t files = 0;                ///< directory: regular files under it
  std::int64_t bytes = 0;                ///< directory: their total size
  std::vector<std::string> collections;  ///< directory: its collections; server: the one collection
  std::int64_t records = 0;              ///< server: the collection's count; directory: not read (0)
  std::optional<OperationRecord> validation;  ///< the latest finished validation of the table
  std::optional<std::string> last_write;      ///< last_vector_write() of the table
  std::vector<std::string> refusals;     ///< why --confirm would refuse; empty = it may proceed
  [[nodiscard]] bool allowed() const { return refusals.empty(); }
  [[nodiscard]] nlohmann::json to_json() const;
};

/// What a backup holds, as its manifest (`<archive>.json`) records it.
struct BackupManifest {
  std::string format = "vstore-chroma-backup 1";
  std::string kind;             ///< "directory" or "collection"
  std::string source;           ///< the directory's absolute path, or the server URL (redacted)
  std::string collection;       ///< collection kind: its name
  std::string tenant;           ///< collection kind
  std::string database;         ///< collection kind
  std::string created_at;       ///< UTC ISO 8601
  std::string archive;          ///< the archive's file name (beside the manifest)
  std::string archive_sha256;   ///< hex SHA-256 of the archive file
  std::int64_t archive_bytes = 0;
  std::int64_t records = 0;     ///< collection kind
  /// directory kind: every regular file, relative path, size and hex SHA-256.
  struct File {
    std::string path;
    std::int64_t bytes = 0;
    std::string sha256;
  };
  std::vector<File> files;
  [[nodiscard]] nlohmann::json to_json() const;
  /// Errors: corruption naming the field that is missing or of the wrong type.
  [[nodiscard]] static Result<BackupManifest> from_json(const nlohmann::json& j);
};

/// How cleanup-chroma runs.
struct CleanupOptions {
  ChromaTarget target = ChromaTarget::automatic;
  bool backup = true;  ///< write the backup first (--no-backup turns it off). Default on.
};

/// What cleanup-chroma did.
struct CleanupResult {
  CleanupPlan plan;
  bool removed = false;
  std::optional<BackupManifest> backup;
  std::string backup_path;    ///< the archive's absolute path, empty with --no-backup
  std::string manifest_path;  ///< its manifest's absolute path
};

/// Looks at the target and the operations log; changes nothing. `conninfo` is the database of
/// the table whose validation counts. Refusals (in CleanupPlan::refusals, not errors): a
/// VECTOR_BACKEND other than pgvector, writes still queued for Chroma, no validation on record,
/// the latest one failed or did not pass, or it is older than the last migration, reindex or
/// dual-mode write. Errors: invalid_argument (both targets exist with `automatic`, or none is
/// configured), not_found (the directory is missing, or is not a Chroma directory; the
/// collection does not exist), conflict (a live process holds the directory; no migration 7),
/// unavailable.
[[nodiscard]] Result<CleanupPlan> plan_cleanup_chroma(const std::string& conninfo, const Config& config,
                                                      const CleanupOptions& options);

/// plan_cleanup_chroma(), then, when allowed, the backup (unless options.backup is false) and
/// the removal; the run goes into the operations log. A refused plan is an error (conflict)
/// whose message lists the refusals; nothing is written or removed. A failed backup removes
/// nothing.
[[nodiscard]] Result<CleanupResult> cleanup_chroma(const std::string& conninfo, const Config& config,
                                                   const CleanupOptions& options);

/// What restore-chroma did.
struct RestoreResult {
  BackupManifest manifest;
  std::string target;         ///< the directory restored, or "<url> collection <name>"
  std::int64_t files = 0;     ///< directory: files written, each checked against its SHA-256
  std::int64_t records = 0;   ///< collection: records added, and counted back on the server
};

/// Puts the backup `path` (the archive or its manifest) back where it came from: the directory
/// (which must not exist, or be empty), or the collection on CHROMA_URL (which must not
/// exist). Checks the archive's SHA-256 against the manifest before anything is written, and
/// each file's after extraction; a directory is extracted beside its place and renamed into it
/// only once every file checked. `conninfo`, when not empty, gets the run in the operations
/// log. Errors: not_found (no such backup, no manifest), corruption (checksum mismatch, an
/// entry outside the directory, a file missing or extra), conflict (the target exists),
/// invalid_argument (a collection backup without CHROMA_URL), unavailable.
[[nodiscard]] Result<RestoreResult> restore_chroma(const std::string& conninfo, const Config& config,
                                                   const std::string& path);

}  // namespace vstore
