// SPDX-License-Identifier: Apache-2.0
// ReadReplicas: the PostgreSQL streaming replicas of DATABASE_READ_URLS, each with a pool of its
// own, checked in the background so that reads go only to a replica that is up, is a standby,
// and replays within DATABASE_READ_MAX_LAG of its primary. Internal to src/pg.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "pg/pg_pool.hpp"
#include "vstore/config.hpp"
#include "vstore/error.hpp"

namespace vstore::pg {

/// What one check of a replica found.
struct ReplicaCheck {
  bool reachable = false;
  bool standby = false;           ///< pg_is_in_recovery()
  std::optional<double> lag_s;    ///< replay lag; nullopt when it cannot be known
  std::string problem;            ///< why the replica is not usable ("" when it is)
};

/// The replay lag of the server on `conn` and whether it is usable under `max_lag`: it must be in
/// recovery (a standby), and its lag is 0 while its WAL receiver runs and it has replayed all it
/// received, else the time since the last transaction it replayed (unknown when it replayed
/// none: not usable). Errors: those of the query (the caller counts the replica unreachable).
[[nodiscard]] Result<ReplicaCheck> check_replica(Connection& conn, std::chrono::milliseconds max_lag);

/// The replicas of one store. Thread-safe. A monitor thread checks every replica once a second
/// (check_replica() on a connection of its pool); until a replica's first check passes, and
/// whenever one fails, reads skip it. A read that fails on a replica because the server is gone
/// marks it unusable at once (mark_failed), until a later check passes.
class ReadReplicas {
 public:
  ReadReplicas(const std::vector<std::string>& urls, const PoolConfig& pool, std::chrono::milliseconds max_lag);
  ~ReadReplicas();
  ReadReplicas(const ReadReplicas&) = delete;
  ReadReplicas& operator=(const ReadReplicas&) = delete;

  /// A usable replica's pool, taken in turn, or nullptr when none is usable.
  [[nodiscard]] Pool* pick();
  /// Counts the replica of `pool` unusable after `error` (a read on it found the server gone).
  void mark_failed(Pool* pool, const Error& error);
  /// Each replica: {url (redacted), usable, standby, lag_s (null when unknown), problem
  /// (null when usable), checked (false before its first check)}.
  [[nodiscard]] nlohmann::json states() const;

 private:
  struct Replica {
    std::string shown_url;
    std::unique_ptr<Pool> pool;
    std::atomic<bool> usable{false};
    ReplicaCheck last;   // guarded by m_mutex
    bool checked = false;  // guarded by m_mutex
  };
  void check(Replica& replica);
  void monitor();

  std::chrono::milliseconds m_max_lag;
  std::vector<std::unique_ptr<Replica>> m_replicas;
  std::atomic<std::size_t> m_next{0};
  mutable std::mutex m_mutex;
  std::condition_variable m_wake;
  bool m_stopping = false;  // guarded by m_mutex
  std::thread m_monitor;
};

}  // namespace vstore::pg
