// SPDX-License-Identifier: Apache-2.0
// ReadReplicas implementation: one pool per replica, a monitor thread, and the lag query.
#include "pg/pg_replicas.hpp"

#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "pg/pg_conn.hpp"

namespace vstore::pg {

using nlohmann::json;

namespace {

constexpr auto k_check_interval = std::chrono::seconds(1);

std::string seconds_text(std::chrono::milliseconds ms) {
  return fmt::format("{:g} s", static_cast<double>(ms.count()) / 1000.0);
}

}  // namespace

Result<ReplicaCheck> check_replica(Connection& conn, std::chrono::milliseconds max_lag) {
  // A WAL receiver that runs shows its pid to every role (its other columns need
  // pg_read_all_stats); the replay timestamp is that of the last transaction replayed.
  VS_TRY_ASSIGN(PgResult res,
                conn.exec("SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE pid IS NOT NULL), "
                          "pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn(), "
                          "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8"));
  ReplicaCheck check;
  check.reachable = true;
  check.standby = res.get(0, 0) == "t";
  if (!check.standby) {
    check.problem = "it is not in recovery: a primary, not a streaming replica (its data would not follow DATABASE_URL's)";
    return check;
  }
  const bool streaming = res.get(0, 1) == "t";
  const bool replayed_all = res.get(0, 2) == "t";
  if (streaming && replayed_all) {
    check.lag_s = 0.0;
  } else if (!res.is_null(0, 3)) {
    check.lag_s = std::max(0.0, std::stod(res.text(0, 3)));
  }
  if (!check.lag_s) {
    check.problem = streaming ? "its replay lag is unknown: it has WAL it has not replayed, and has replayed no "
                                "transaction since it started to date the lag by"
                              : "it is not streaming from its primary, and has replayed no transaction since it "
                                "started to date its lag by";
    return check;
  }
  const double limit_s = static_cast<double>(max_lag.count()) / 1000.0;
  if (*check.lag_s > limit_s) {
    check.problem = fmt::format("its replay lags {:.1f} s behind, more than DATABASE_READ_MAX_LAG ({}){}", *check.lag_s,
                                seconds_text(max_lag), streaming ? "" : "; it is not streaming from its primary");
  }
  return check;
}

ReadReplicas::ReadReplicas(const std::vector<std::string>& urls, const PoolConfig& pool,
                           std::chrono::milliseconds max_lag)
    : m_max_lag(max_lag) {
  for (const auto& url : urls) {
    auto replica = std::make_unique<Replica>();
    replica->shown_url = redact_url(url);
    replica->pool = std::make_unique<Pool>(url, pool);
    m_replicas.push_back(std::move(replica));
  }
  if (!m_replicas.empty()) m_monitor = std::thread([this] { monitor(); });
}

ReadReplicas::~ReadReplicas() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  if (m_monitor.joinable()) m_monitor.join();
}

Pool* ReadReplicas::pick() {
  const std::size_t count = m_replicas.size();
  if (count == 0) return nullptr;
  const std::size_t start = m_next.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t i = 0; i < count; ++i) {
    Replica& replica = *m_replicas[(start + i) % count];
    if (replica.usable.load()) return replica.pool.get();
  }
  return nullptr;
}

void ReadReplicas::mark_failed(Pool* pool, const Error& error) {
  for (auto& replica : m_replicas) {
    if (replica->pool.get() != pool) continue;
    std::lock_guard lock(m_mutex);
    replica->usable.store(false);
    replica->last.reachable = false;
    replica->last.problem = fmt::format("a read on it failed: {}", error.message());
  }
  // Idle connections of a server that went away are useless: the next check opens new ones.
  pool->close_idle();
}

void ReadReplicas::check(Replica& replica) {
  ReplicaCheck found;
  auto lease = replica.pool->acquire();
  if (!lease) {
    found.problem = fmt::format("unreachable: {}", lease.error().message());
  } else if (auto checked = check_replica(**lease, m_max_lag)) {
    found = std::move(*checked);
  } else {
    found.problem = fmt::format("the lag check failed: {}", checked.error().message());
  }
  std::lock_guard lock(m_mutex);
  replica.usable.store(found.problem.empty());
  replica.last = std::move(found);
  replica.checked = true;
}

void ReadReplicas::monitor() {
  std::unique_lock lock(m_mutex);
  while (!m_stopping) {
    lock.unlock();
    for (auto& replica : m_replicas) {
      {
        std::lock_guard stopping(m_mutex);
        if (m_stopping) return;
      }
      check(*replica);
    }
    lock.lock();
    m_wake.wait_for(lock, k_check_interval, [this] { return m_stopping; });
  }
}

json ReadReplicas::states() const {
  json out = json::array();
  std::lock_guard lock(m_mutex);
  for (const auto& replica : m_replicas) {
    const ReplicaCheck& last = replica->last;
    out.push_back({{"url", replica->shown_url},
                   {"usable", replica->usable.load()},
                   {"checked", replica->checked},
                   {"standby", replica->checked && last.reachable ? json(last.standby) : json(nullptr)},
                   {"lag_s", last.lag_s ? json(std::round(*last.lag_s * 1000.0) / 1000.0) : json(nullptr)},
                   {"problem", replica->checked && !last.problem.empty() ? json(last.problem)
                               : replica->checked                        ? json(nullptr)
                                                                         : json("not checked yet")}});
  }
  return out;
}

}  // namespace vstore::pg
