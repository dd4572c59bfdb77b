// SPDX-License-Identifier: Apache-2.0
// DualStore: VECTOR_BACKEND=dual. Writes go to both stores, reads to the primary; a failed
// secondary write waits in the PostgreSQL outbox until drain_outbox() applies it. Internal;
// callers use vstore::open_store().
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <memory>
#include <mutex>
#include <string>

#include "vstore/vector_store.hpp"

namespace vstore::pg {
class Pool;
}

namespace vstore::api {

/// Dual-mode settings.
struct DualOptions {
  bool shadow_compare = false;    ///< run each search on the secondary too and record overlap@k. Default off.
  std::size_t drain_batch = 1000; ///< outbox rows applied per drain step. Default 1000.
};

/// What the dual store has seen since it opened.
struct DualStats {
  std::int64_t secondary_write_failures = 0;  ///< secondary writes that failed and went to the outbox
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
  /// `conninfo` is the PostgreSQL database holding the outbox (migration 4).
  /// Errors: conflict (outbox table missing: run `vstore schema up`), unavailable.
  [[nodiscard]] static Result<std::unique_ptr<DualStore>> open(std::unique_ptr<VectorStore> primary,
                                                               std::unique_ptr<VectorStore> secondary,
                                                               std::string secondary_name, SecondaryOpener reopen,
                                                               const std::string& conninfo, const Config& config,
                                                               DualOptions options = {});

  ~DualStore() override;
  [[nodiscard]] std::string_view backend_name() const override { return "dual"; }
  [[nodiscard]] int dimension() const override { return m_primary->dimension(); }
  /// Writes the primary (its error is returned), then the secondary; a secondary failure, or
  /// rows still waiting in the outbox (to keep the order of writes), puts the items in the
  /// outbox instead and still succeeds. Errors: the primary's, or internal when the outbox
  /// itself cannot be written (the primary holds the data; the message says so).
  [[nodiscard]] Result<void> upsert(std::span<const ArticleVector> items) override;
  [[nodiscard]] Result<std::vector<SearchHit>> search(std::span<const float> query, const SearchOptions& options) override;
  [[nodiscard]] Result<std::vector<SearchHit>> similar(std::string_view uri, int top_k) override;
  [[nodiscard]] Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit,
                                                const std::optional<FilterNode>& where) override;
  /// Removes from the primary, then the secondary (or the outbox, as upsert does).
  /// The primary's answer.
  [[nodiscard]] Result<std::map<std::string, std::string>> vector_models(std::span<const std::string> ids) override {
    return m_primary->vector_models(ids);
  }
  [[nodiscard]] Result<std::int64_t> remove(std::span<const std::string> ids) override;
  [[nodiscard]] Result<StoreCounts> count() override;
  /// The primary's health plus `primary`, `secondary` (its health or error), `outbox_pending`
  /// and `shadow` (reads compared, mean overlap@k).
  [[nodiscard]] Result<nlohmann::json> health() override;

  /// Applies waiting outbox rows to the secondary in order, deleting each batch once applied;
  /// stops at the first failure (the rows stay, with attempts and last_error updated).
  /// Returns how many rows were applied. Errors: the secondary's error when nothing could be
  /// applied and rows are waiting; unavailable (PostgreSQL). Serialised by a mutex.
  [[nodiscard]] Result<std::int64_t> drain_outbox();
  /// Rows waiting in the outbox for this table and secondary.
  [[nodiscard]] Result<std::int64_t> outbox_pending();
  [[nodiscard]] DualStats stats() const;
  [[nodiscard]] VectorStore& primary() { return *m_primary; }
  /// The secondary store, opened now if it was not yet. Errors: the last open error.
  [[nodiscard]] Result<VectorStore*> secondary();

 private:
  DualStore(std::unique_ptr<VectorStore> primary, std::unique_ptr<VectorStore> secondary, std::string secondary_name,
            SecondaryOpener reopen, const std::string& conninfo, const Config& config, DualOptions options);
  [[nodiscard]] Result<void> enqueue_upserts(std::span<const ArticleVector> items, const std::string& reason);
  [[nodiscard]] Result<void> enqueue_removes(std::span<const std::string> ids, const std::string& reason);
  [[nodiscard]] Result<std::int64_t> drain_locked();

  std::unique_ptr<VectorStore> m_primary;
  std::mutex m_secondary_mutex;
  std::unique_ptr<VectorStore> m_secondary;  ///< null until opened; guarded by m_secondary_mutex
  SecondaryOpener m_reopen;
  std::optional<Error> m_open_error;                        ///< guarded by m_secondary_mutex
  std::chrono::steady_clock::time_point m_next_open{};      ///< guarded by m_secondary_mutex
  Config m_config;
  DualOptions m_options;
  std::unique_ptr<pg::Pool> m_pool;  ///< to the database holding the outbox
  std::string m_target;  ///< the secondary's backend name, the outbox's `target`
  std::mutex m_drain_mutex;  ///< serialises drains and secondary writes, which keeps their order
  std::chrono::steady_clock::time_point m_retry_at{};  ///< no drain before this; guarded by m_drain_mutex
  bool m_outbox_empty = false;  ///< known empty (skips a query per write); guarded by m_drain_mutex
  mutable std::mutex m_stats_mutex;
  DualStats m_stats;  ///< guarded by m_stats_mutex
};

}  // namespace vstore::api
