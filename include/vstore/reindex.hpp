// SPDX-License-Identifier: Apache-2.0
/// reindex(): (re)makes the vectors of the articles whose vector is missing or no longer
/// describes their text, on a live PostgreSQL table, and embedding_text_hash(), the per-row
/// content hash that tells the two apart.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vstore/config.hpp"
#include "vstore/embedder.hpp"
#include "vstore/result.hpp"

namespace vstore {

/// The content hash stored in `embedding_text_hash` when vstore makes a vector from text:
/// SHA-256 of the model name, one NUL byte and the text (document_text() of the article), as 32
/// raw bytes. A vector of another model, or of other text, has another hash. Thread-safe.
[[nodiscard]] std::string embedding_text_hash(std::string_view model, std::string_view text);

/// What reindex() does. Every field has its CLI flag of the same name.
struct ReindexOptions {
  /// Also re-embed rows whose vector vstore cannot vouch for: a NULL hash (a vector that arrived
  /// ready-made) or a vector of another model. Default false: only rows without a vector and
  /// rows whose text changed since their vector was made (their stored hash, of this model,
  /// differs from the hash of their current text). Rows whose hash matches are always skipped.
  bool force = false;
  /// At most this many rows to embed (candidates); rows skipped do not count. Default: none.
  std::optional<std::int64_t> limit;
  /// Only rows whose `topic` column equals this. Default: every topic.
  std::optional<std::string> topic;
  /// Only rows published on or after this date (any form read_date() reads). Default: none.
  std::optional<std::string> since;
  /// Articles per embedding batch and per write transaction. Default 64. Range 1..10000.
  int batch_size = 64;
  /// Rebuild the vector index (REINDEX INDEX CONCURRENTLY) after the run even when it is valid.
  /// Default false: it is rebuilt only when invalid, or after a --force run that rewrote more
  /// than half of the rows under an IVFFlat index (whose lists were trained on the old vectors).
  bool rebuild_index = false;

  // ---- for tests only ----
  /// Pause after each committed batch (so a test can kill the process mid-run). Default 0.
  int test_pause_after_batch_ms = 0;
};

/// Checks the options without touching the database: batch_size in range, limit not negative,
/// `since` a date read_date() reads. Errors: invalid_argument naming the option and its value.
[[nodiscard]] Result<void> check_reindex_options(const ReindexOptions& options);

/// Counts of a run; also what the progress callback sees while it runs.
struct ReindexCounts {
  std::int64_t rows = 0;       ///< rows matching the filters when the run started (the progress total)
  std::int64_t examined = 0;   ///< rows read so far (a row read again after a concurrent change counts twice)
  std::int64_t processed = 0;  ///< rows given a new vector
  std::int64_t skipped = 0;    ///< rows left as they were (their hash matches, or not a candidate, or changed twice)
  std::int64_t failed = 0;     ///< rows that could not be embedded (each reported to on_failure)
};

/// The result of a run.
struct ReindexReport {
  ReindexCounts counts;
  /// processed + skipped + failed: every row the run decided about.
  [[nodiscard]] std::int64_t total() const { return counts.processed + counts.skipped + counts.failed; }
  std::vector<std::string> failed_uris;  ///< the first 100 failed rows' uris
  /// Rows whose text changed between the read and the write: read again once at the end (and
  /// then counted once, by what that second look found).
  std::int64_t requeued = 0;
  double elapsed_s = 0;
  double rate_per_s = 0;  ///< processed / elapsed_s
  bool index_rebuilt = false;
  std::string index_name;  ///< the vector index, or empty when the table has none
  std::string model;       ///< the embedder's model
  std::int64_t operation_id = 0;  ///< the run's row in the operations log
};

/// Called on the calling thread after each written batch.
using ReindexProgressFn = std::function<void(const ReindexCounts&)>;
/// Called on the calling thread for each article that failed: its uri and the reason.
using ReindexFailureFn = std::function<void(const std::string& uri, const std::string& reason)>;

/// Gives a vector (made by `embedder` from document_text()) to each row of the configured table
/// that needs one (see ReindexOptions::force), and records the run in the operations log (kind
/// "reindex", summary = the counts). The table must be at the latest schema version.
///
/// A pipeline of three stages over bounded queues: a reader thread reads the rows through a
/// server-side cursor in short transactions, the calling thread's helper embeds each batch on
/// the engine's threads, and the calling thread writes each batch by binary COPY into a
/// temporary table merged with one UPDATE per transaction. Row locks only; no transaction
/// spans the run, so a killed run keeps every batch it committed, and running it again
/// continues where it stopped.
///
/// An article that fails (no text, an embedding error) is reported to `on_failure` and counted;
/// the run goes on. Errors (the run stops; batches already written stay): invalid_argument
/// (a bad option, naming the value), conflict (schema not at the latest version; the table
/// holds vectors of another model and `force` is off; the embedder's dimension is not the
/// table's), unavailable. Thread-safe: runs may overlap (each write is guarded as above); the
/// embedder is called from one thread at a time.
[[nodiscard]] Result<ReindexReport> reindex(const std::string& conninfo, const Config& config, Embedder& embedder,
                                            const ReindexOptions& options, const ReindexProgressFn& on_progress = {},
                                            const ReindexFailureFn& on_failure = {});

}  // namespace vstore
