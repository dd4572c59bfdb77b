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

/// What the dual store has seen since it opened.
struct DualStats {
  std::int64_t secondary_write_failures = 0;  ///< drain steps whose write to the secondary failed
  std::int64_t outbox_enqueued = 0;           ///< outbox rows written
  std::int64_t outbox_drained = 0;            ///< outbox rows applied to the secondary and deleted
  std::int64_t shadow_reads = 0;              ///< searches compared with the secondary
  std::int64_t shadow_failures = 0;           ///< comparisons the secondary could not answer
  double shadow_overlap_sum = 0.0;            ///< sum of overlap@k over shadow_reads
};

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
  /// The primary's health plus `primary`, `secondary` (its health or error), `outbox_pending`,
  /// `outbox_last_error` (of the last failed drain, or null) and `shadow` (reads compared,
  /// mean overlap@k).
  [[nodiscard]] Result<nlohmann::json> health() override;

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
  [[nodiscard]] VectorStore& primary() { return *m_primary; }
  /// The secondary store, opened now if it was not yet. Errors: the last open error.
  [[nodiscard]] Result<VectorStore*> secondary();

  // ---- for tests only ----
  /// Called by a drain step once it has taken its rows from the outbox, before it applies them
  /// (set before the store is used from several threads).
  void test_set_on_drain_taken(std::function<void()> hook) { m_test_on_drain_taken = std::move(hook); }

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

  std::mutex m_wake_mutex;
  std::condition_variable m_wake;
  bool m_woken = false;                ///< a write happened since the last drain; guarded by m_wake_mutex
  std::atomic<bool> m_stopping{false};
  std::atomic<bool> m_last_drain_failed{false};
  std::thread m_drainer;               ///< the background drain, when enabled

  mutable std::mutex m_stats_mutex;
  DualStats m_stats;                       ///< guarded by m_stats_mutex
  std::optional<std::string> m_last_error;  ///< of the last failed drain; guarded by m_stats_mutex
};

}  // namespace vstore::api
