// SPDX-License-Identifier: Apache-2.0
// DualStore: VECTOR_BACKEND=dual. Writes go to the primary together with outbox rows that a
// background drain applies to the secondary; reads go to the primary. Internal; callers use
// vstore::open_store().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "vstore/vector_store.hpp"

namespace vstore::pg {
class Connection;
class Pool;
class PgVectorStore;
}  // namespace vstore::pg

namespace vstore::api {

/// Dual-mode settings.
struct DualOptions {
  bool shadow_compare = false;    ///< run each search on the secondary too and record overlap@k. Default off.
  std::size_t drain_batch = 1000; ///< outbox rows taken per drain step (one transaction). Default 1000.
  bool background_drain = true;   ///< drain in a background thread of the store. Default on (tests turn it off).
  /// How often the background drain looks for rows other processes wrote. Default 1 s.
  std::chrono::milliseconds drain_interval{1000};
};

/// One shadow comparison: a search asked of the secondary too.
struct ShadowOutcome {
  bool failed = false;         ///< the secondary could not answer (`error` says why)
  std::string error;
  std::size_t primary_hits = 0;
  std::size_t secondary_hits = 0;
  std::size_t common = 0;      ///< ids in both answers
  double overlap = 0.0;        ///< common / max(primary_hits, secondary_hits); 1 when both are empty
};

/// How `vstore sync` runs.
struct SyncOptions {
  bool dry_run = false;     ///< compare and count only; queue nothing. Default off.
  bool keep_extra = false;  ///< leave ids the primary lacks in the secondary. Default off (they are removed).
  std::size_t page = 500;   ///< ids compared per step. Default 500.
};

/// What `vstore sync` found and did. Drift is counted in ids: missing + changed + extra.
struct SyncReport {
  std::int64_t checked = 0;        ///< the primary's ids with a vector
  std::int64_t missing = 0;        ///< of those, absent from the secondary
  std::int64_t changed = 0;        ///< present in both with another vector or metadata
  std::int64_t extra = 0;          ///< in the secondary only
  std::int64_t already_equal = 0;  ///< present in both and the same
  std::int64_t copied = 0;         ///< missing + changed written to the secondary (0 in a dry run)
  std::int64_t deleted = 0;        ///< extra removed from the secondary (0 in a dry run or with keep_extra)
  std::int64_t drift_before = 0;
  std::int64_t drift_after = 0;    ///< counted again after the copy (the same as before in a dry run)
};

/// What the dual store has seen since it opened.
struct DualStats {
  std::int64_t secondary_write_failures = 0;  ///< drain steps whose write to the secondary failed
  std::int64_t outbox_enqueued = 0;           ///< outbox rows written
  std::int64_t outbox_drained = 0;            ///< outbox rows applied to the secondary and deleted
  std::int64_t shadow_reads = 0;              ///< searches compared with the secondary
  std::int64_t shadow_failures = 0;           ///< comparisons the secondary could not answer
  std::int64_t shadow_unrecorded = 0;         ///< comparisons that could not be added to vstore_dual_stats
  double shadow_overlap_sum = 0.0;            ///< sum of overlap@k over shadow_reads
};

/// Every key `vstore health --json` always carries (docs/product.md), null where unknown, with
/// `healthy` false and `reasons` empty: what a store that cannot be opened reports, once a
/// reason is added.
[[nodiscard]] nlohmann::json health_skeleton(std::string_view backend);

class DualStore final : public VectorStore {
 public:
  /// Opens the secondary store on demand (it may be down when the dual store opens).
  using SecondaryOpener = std::function<Result<std::unique_ptr<VectorStore>>()>;

  /// Takes the primary and, when it could be opened, the secondary; `secondary_name` is the
  /// secondary's backend_name() (the outbox's target) and `reopen` opens it later when
  /// `secondary` is null (tried at most once a second; until then its calls count as failed).
  /// `conninfo` is the PostgreSQL database holding the outbox (migration 4). Starts the
  /// background drain when `options.background_drain`.
  /// Errors: conflict (outbox table missing: run `vstore schema up`), unavailable.
  [[nodiscard]] static Result<std::unique_ptr<DualStore>> open(std::unique_ptr<VectorStore> primary,
                                                               std::unique_ptr<VectorStore> secondary,
                                                               std::string secondary_name, SecondaryOpener reopen,
                                                               const std::string& conninfo, const Config& config,
                                                               DualOptions options = {});

  /// Stops the background drain, then drains once more what waits unless the secondary failed
  /// in the last attempt (rows left stay in the outbox for the next drain, of any process).
  ~DualStore() override;
  [[nodiscard]] std::string_view backend_name() const override { return "dual"; }
  [[nodiscard]] int dimension() const override { return m_primary->dimension(); }
  /// Writes the primary and one outbox row per item, which commit together (pgvector primary:
  /// one transaction; other primary: the outbox rows commit once the primary accepted the write),
  /// then wakes the background drain. Never calls the secondary. Errors: the primary's, or the
  /// outbox's (nothing written; with a Chroma primary, internal when the outbox rows could not
  /// commit after the primary took the write, which the message says).
  [[nodiscard]] Result<void> upsert(std::span<const ArticleVector> items) override;
  [[nodiscard]] Result<std::vector<SearchHit>> search(std::span<const float> query, const SearchOptions& options) override;
  [[nodiscard]] Result<std::vector<SearchHit>> similar(std::string_view uri, const SearchOptions& options) override;
  [[nodiscard]] Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit,
                                                const std::optional<FilterNode>& where) override;
  /// The primary's answer.
  [[nodiscard]] Result<std::map<std::string, std::string>> vector_models(std::span<const std::string> ids) override {
    return m_primary->vector_models(ids);
  }
  /// Removes from the primary with outbox rows, as upsert() writes (a pgvector primary enqueues
  /// only the uris that lost a vector).
  [[nodiscard]] Result<std::int64_t> remove(std::span<const std::string> ids) override;
  [[nodiscard]] Result<StoreCounts> count() override;
  /// The primary's health (every key of health_skeleton()) plus `primary` (its name),
  /// `secondary` (its health, or the skeleton with the reason it could not be opened; a missing
  /// Chroma collection is reported with rows 0, never created), `drift` (both stores' vector
  /// counts and their difference), `outbox` (`pending`, `oldest_age_s`, `last_error`),
  /// `outbox_pending` and `outbox_last_error` (the same two, kept for older readers),
  /// `secondary_last_error` (`{"message", "at"}` of the last failed drain of any process, or
  /// null) and `shadow` (the comparisons of every process, from vstore_dual_stats). Unhealthy
  /// when the secondary is, or when the counts differ with nothing in the outbox to explain it.
  /// Writes nothing. Errors: the primary's, unavailable (PostgreSQL).
  [[nodiscard]] Result<nlohmann::json> health() override;
  /// The primary's gauges plus the outbox's `outbox_pending` and `outbox_oldest_age_s` (0 when
  /// empty) for this table and the secondary.
  [[nodiscard]] Result<nlohmann::json> gauges() override;
  /// The primary's plan.
  [[nodiscard]] Result<nlohmann::json> explain(std::span<const float> query, const SearchOptions& options) override {
    return m_primary->explain(query, options);
  }

  /// Applies waiting outbox rows to the secondary, one step (transaction) of at most
  /// `drain_batch` rows at a time, until the outbox is empty or a step fails; waits for a drain
  /// of another process or thread to finish its step first. Returns the rows applied.
  /// Errors: the secondary's error when nothing could be applied and rows are waiting (the rows
  /// stay, with attempts and last_error updated); corruption (an outbox row that cannot be
  /// read, named by id); unavailable (PostgreSQL). Thread-safe.
  [[nodiscard]] Result<std::int64_t> drain_outbox();
  /// Stops the background drain (waiting for a step it is in); the store then drains only when
  /// asked (drain_outbox), and not when it closes. For `vstore outbox`, which reports what it did.
  void stop_background_drain();
  /// Rows waiting in the outbox for this table and secondary.
  [[nodiscard]] Result<std::int64_t> outbox_pending();
  [[nodiscard]] DualStats stats() const;
  /// The outcome of the last shadow comparison this store ran (null before the first, or without
  /// shadow compare). Each comparison is also added to vstore_dual_stats, which health() reads.
  [[nodiscard]] std::optional<ShadowOutcome> last_shadow() const;
  /// What the last search of this store has to say about its answer, or empty: with a Chroma
  /// primary, a filtered search that came back with fewer than top_k hits while more articles
  /// match was ranked again exactly over the matching articles, and this says so.
  [[nodiscard]] std::string last_search_note() const;
  /// The secondary's backend name ("chromadb" or "pgvector").
  [[nodiscard]] const std::string& secondary_name() const { return m_target; }
  /// Brings the secondary up to the primary: drains the outbox (not in a dry run, which also
  /// takes a missing Chroma collection for an empty one), then compares the primary's
  /// ids with a vector against the secondary in pages of `options.page` (presence, the vector
  /// within 1e-6, and the metadata keys vstore writes), queues the missing and changed ones in
  /// the outbox with the primary's stored vector (read under the writers' locks, so a
  /// concurrent write of the same uri is never overtaken by an older copy), queues removes for
  /// ids only the secondary has (unless `keep_extra`), drains, and compares again. Nothing is
  /// re-embedded. Safe to rerun: a second run finds nothing to do. Errors: the secondary's
  /// (when it cannot be opened or written), unavailable (PostgreSQL), those of the stores' reads.
  [[nodiscard]] Result<SyncReport> sync(const SyncOptions& options);
  [[nodiscard]] VectorStore& primary() { return *m_primary; }
  /// The secondary store, opened now if it was not yet. Errors: the last open error.
  [[nodiscard]] Result<VectorStore*> secondary();

  // ---- for tests only ----
  /// Called by a drain step once it has taken its rows from the outbox, before it applies them
  /// (set before the store is used from several threads).
  void test_set_on_drain_taken(std::function<void()> hook) { m_test_on_drain_taken = std::move(hook); }
  /// Keeps at most `cap` of the primary's search hits, as a search whose walk stopped short
  /// would return (null: all). Set before the store is used from several threads.
  void test_set_primary_hits_cap(std::optional<std::size_t> cap) { m_test_hits_cap = cap; }

 private:
  /// What one drain step did.
  struct DrainStep {
    std::int64_t applied = 0;    ///< rows applied and deleted
    bool busy = false;           ///< another drainer holds the lock (only when not waiting)
    std::optional<Error> error;  ///< the secondary refused the rows (they stay in the outbox)
  };

  DualStore(std::unique_ptr<VectorStore> primary, std::unique_ptr<VectorStore> secondary, std::string secondary_name,
            SecondaryOpener reopen, const std::string& conninfo, const Config& config, DualOptions options);
  [[nodiscard]] Result<void> enqueue_upserts(pg::Connection& conn, std::span<const ArticleVector> items);
  [[nodiscard]] Result<void> enqueue_removes(pg::Connection& conn, std::span<const std::string> ids);
  // A primary other than pgvector: `write` runs inside a PostgreSQL transaction that holds an
  // advisory lock per uri and has inserted the outbox rows (`enqueue`); it commits only after
  // `write` succeeded.
  [[nodiscard]] Result<void> write_beside_outbox(std::span<const std::string> uris,
                                                 const std::function<Result<void>(pg::Connection&)>& enqueue,
                                                 const std::function<Result<void>()>& write);
  [[nodiscard]] Result<DrainStep> drain_step(bool wait);
  [[nodiscard]] Result<DrainStep> drain_taken(pg::Connection& conn, bool wait);
  [[nodiscard]] Result<std::int64_t> drain_all(bool wait);
  // Adds one comparison to vstore_dual_stats (a failure to record is counted, never reported).
  void record_shadow(const ShadowOutcome& outcome);
  // Compares every page of the primary with the secondary; fills the counts of `report` and,
  // unless null, the ids to copy and to remove. `allow_missing`: a secondary that does not
  // exist (not_found) counts as empty.
  [[nodiscard]] Result<void> compare_stores(std::size_t page, bool allow_missing, SyncReport& report,
                                            std::vector<std::string>* to_copy, std::vector<std::string>* to_remove);
  // Queues upserts of the primary's current rows of `uris` (those that still hold a vector).
  [[nodiscard]] Result<std::int64_t> enqueue_current(std::span<const std::string> uris);
  // The uris among `uris` the primary holds a vector of now, read under the writers' locks held
  // by the transaction of `conn`.
  [[nodiscard]] Result<std::vector<std::string>> lock_present(pg::Connection& conn, std::span<const std::string> uris);
  // The primary's ids with a vector, sorted.
  [[nodiscard]] Result<std::vector<std::string>> primary_ids();
  void drain_loop();
  void wake_drain();

  std::unique_ptr<VectorStore> m_primary;
  pg::PgVectorStore* m_pg_primary = nullptr;  ///< m_primary when it is pgvector, else null
  std::mutex m_secondary_mutex;
  std::unique_ptr<VectorStore> m_secondary;  ///< null until opened; guarded by m_secondary_mutex
  SecondaryOpener m_reopen;
  std::optional<Error> m_open_error;                    ///< guarded by m_secondary_mutex
  std::chrono::steady_clock::time_point m_next_open{};  ///< guarded by m_secondary_mutex
  Config m_config;
  DualOptions m_options;
  std::unique_ptr<pg::Pool> m_pool;  ///< to the database holding the outbox
  std::string m_target;              ///< the secondary's backend name, the outbox's `target`
  std::function<void()> m_test_on_drain_taken;
  std::optional<std::size_t> m_test_hits_cap;

  std::mutex m_wake_mutex;
  std::condition_variable m_wake;
  bool m_woken = false;                ///< a write happened since the last drain; guarded by m_wake_mutex
  std::atomic<bool> m_stopping{false};
  std::atomic<bool> m_last_drain_failed{false};
  std::thread m_drainer;               ///< the background drain, when enabled

  mutable std::mutex m_stats_mutex;
  DualStats m_stats;                       ///< guarded by m_stats_mutex
  std::optional<std::string> m_last_error;  ///< of the last failed drain; guarded by m_stats_mutex
  std::optional<ShadowOutcome> m_last_shadow;  ///< guarded by m_stats_mutex
  std::string m_last_search_note;              ///< guarded by m_stats_mutex
};

}  // namespace vstore::api
