// SPDX-License-Identifier: Apache-2.0
// Offline reader for a Chroma persistent directory (chroma.sqlite3 + HNSW segment folders).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/result.hpp"

namespace vstore::chroma {

/// Where a record's vector was read from.
enum class VectorSource {
  hnsw,  ///< the flushed HNSW segment files (cosine: Chroma's own de-normalised float32)
  wal,   ///< the embeddings_queue log (the bytes the client sent), including cosine slots
         ///< whose original bytes older log rows still hold
  server,  ///< a running server's `get` answer (ChromaRemote)
};

/// One collection as the sysdb tables describe it.
struct CollectionInfo {
  std::string id;                 ///< UUID
  std::string name;
  std::string tenant = "default_tenant";
  std::string database = "default_database";
  std::optional<std::int64_t> dimension;  ///< collections.dimension (NULL before the first add)
  std::string space = "l2";       ///< l2, cosine or ip
  std::optional<std::string> embedding_model;  ///< from the stored embedding function config
  std::string metadata_segment;   ///< segment UUID (scope METADATA)
  std::string vector_segment;     ///< segment UUID (scope VECTOR)
};

/// One live record after replay.
struct Record {
  std::string id;
  std::vector<float> vector;
  /// User metadata, chroma:* keys removed: strings, ints, floats, bools and (1.5+) non-empty
  /// arrays of one of those types.
  nlohmann::json metadata = nlohmann::json::object();
  std::optional<std::string> document;
  std::optional<std::string> uri;
  VectorSource source = VectorSource::hnsw;
};

/// Counters of how a snapshot was assembled.
struct SnapshotStats {
  std::int64_t hnsw_slots = 0;          ///< valid slots in data_level0.bin
  std::int64_t hnsw_deleted = 0;        ///< slots with DELETE_MARK or no label in the pickle
  std::int64_t vector_max_seq_id = -1;  ///< the vector segment's persisted sequence number
  std::int64_t metadata_max_seq_id = -1;
  std::int64_t wal_rows = 0;            ///< log rows of this collection
  std::int64_t wal_replayed = 0;        ///< log rows past a segment's sequence number
  std::int64_t exact_from_log = 0;      ///< cosine slots whose exact bytes were found in older log rows
  std::string label_map_format;         ///< "python", "rust" or "none"
};

/// Where the HNSW vectors of a snapshot read with them deferred lie (internal).
class DeferredVectors;

/// The live contents of one collection, sorted by id, plus the ids deletes removed.
struct Snapshot {
  CollectionInfo collection;
  std::size_t dimension = 0;
  std::vector<Record> records;
  SnapshotStats stats;
  /// Set when ChromaDir::read deferred the HNSW vectors: a record whose vector comes from the
  /// HNSW files has an empty vector until fill_vectors() covers it.
  std::shared_ptr<const DeferredVectors> deferred;
  /// Copies the deferred vectors of records [from, to) into them; records that have theirs
  /// are left alone. Calls for disjoint ranges may run on different threads at once; nothing
  /// else may touch those records meanwhile.
  void fill_vectors(std::size_t from, std::size_t to);
  /// The vector of record `i`: the record's own, or for a deferred one a copy out of the HNSW
  /// files into `scratch` (the record stays as it is). What a migration writer encodes, one
  /// record at a time, so the vector is still in cache when it is checked and encoded. The
  /// same thread rules as fill_vectors() (for record i).
  [[nodiscard]] std::span<const float> vector_of(std::size_t i, std::vector<float>& scratch) const;
};

/// Records read so far, records in all (see ChromaDir::read).
using ReadProgress = std::function<void(std::int64_t done, std::int64_t total)>;

/// A Chroma persistent directory opened read-only. Not thread-safe.
class ChromaDir {
 public:
  /// Opens `dir`. Refuses (conflict) a directory a live process holds: a hot rollback
  /// journal or WAL file beside chroma.sqlite3, or any process with the database file open;
  /// the message says how to take a consistent copy. Refuses (invalid_argument) a file that
  /// is not a Chroma database and (conflict) a schema newer than this reader knows, naming
  /// the migration. Errors: not_found (no chroma.sqlite3).
  [[nodiscard]] static Result<ChromaDir> open(const std::string& dir);

  ChromaDir(ChromaDir&&) noexcept;
  ChromaDir& operator=(ChromaDir&&) noexcept;
  ~ChromaDir();

  /// "sysdb 9, metadb 4, embeddings_queue 2": the applied migrations.
  [[nodiscard]] const std::string& schema_version() const;

  /// Every collection, by name, with the space Chroma searches it with: the 1.x index config
  /// (`schema_str`, else `config_json_str`) unless it is all defaults and `hnsw:space` differs,
  /// else `hnsw:space`, else l2. Errors: corruption (missing segments, bad config or schema
  /// JSON, an unknown space).
  [[nodiscard]] Result<std::vector<CollectionInfo>> collections();

  /// Reads one collection: metadata segment rows, HNSW files, then the embeddings_queue tail
  /// replayed (add only if absent, update/upsert replace, delete removes). Array metadata
  /// (1.5+) becomes JSON arrays in Chroma's order. Errors: corruption (truncated files, unknown
  /// encoding, a live id without a vector, array metadata Chroma cannot have written), not_found.
  /// `progress`, when set, is called (from either of the two reading threads, one call at a
  /// time) with the records read so far and the records of the metadata segment: a record
  /// counts once both its metadata rows and its HNSW slot are read, in proportion.
  /// `defer_hnsw_vectors` checks and reads everything else as above but leaves the copying of
  /// the HNSW vectors (the bulk of the work) to Snapshot::fill_vectors, so a caller can do it
  /// batch by batch, on several threads, while it writes: every error read() can give has then
  /// still been given before it returns.
  [[nodiscard]] Result<Snapshot> read(const CollectionInfo& collection, const ReadProgress& progress = {},
                                      bool defer_hnsw_vectors = false);

 private:
  struct Impl;
  explicit ChromaDir(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// The space Chroma 1.x searches a collection with: `config_space` (its stored or served 1.x
/// index config, which took `hnsw:space` into account at creation), unless that config is all
/// defaults (`hnsw`, the config's HNSW values, holds Chroma's defaults: ef_construction 100,
/// ef_search 100, max_neighbors 16, resize_factor 1.2, sync_threshold 1000) with space l2 and
/// `metadata_space` (`hnsw:space`) differs; else `metadata_space`; else l2. Not validated.
[[nodiscard]] std::string effective_space(const std::optional<std::string>& config_space, const nlohmann::json& hnsw,
                                          const std::optional<std::string>& metadata_space);

/// The model a Chroma embedding-function configuration names (`config_json_str` on disk, the
/// vector index config in 1.5's `schema_str`, or `configuration_json` of the HTTP API; all keep
/// it under `embedding_function`):
/// `config.model_name`/`config.model` of a "known" function, all-MiniLM-L6-v2 for Chroma's
/// default, else the function's name; nullopt when none is stored.
[[nodiscard]] std::optional<std::string> embedding_model_from_config(const nlohmann::json& config);

}  // namespace vstore::chroma
