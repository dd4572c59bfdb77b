// SPDX-License-Identifier: Apache-2.0
// Pool: a bounded libpq connection pool with SQLAlchemy's QueuePool semantics (size, overflow,
// checkout timeout, recycle age), handing out RAII leases.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>

#include "pg/pg_conn.hpp"
#include "vstore/config.hpp"

namespace vstore::pg {

class Pool;

/// A borrowed connection; returns it to the pool when destroyed. A connection whose last
/// error poisoned it, or that is broken, is closed instead of returned.
class Lease {
 public:
  Lease(Pool* pool, Connection conn) : m_pool(pool), m_conn(std::move(conn)) {}
  Lease(Lease&& other) noexcept : m_pool(std::exchange(other.m_pool, nullptr)), m_conn(std::move(other.m_conn)) {}
  Lease& operator=(Lease&&) = delete;
  ~Lease();

  Connection* operator->() { return &*m_conn; }
  Connection& operator*() { return *m_conn; }
  /// Marks the connection unusable (it is closed on release).
  void discard() { m_discard = true; }

 private:
  Pool* m_pool;
  std::optional<Connection> m_conn;
  bool m_discard = false;
};

/// Thread-safe pool. At most size + max_overflow connections exist; at most `size` idle ones
/// are kept. acquire() waits up to `timeout` for a free slot (ErrorCode::timeout after).
/// Connections older than `recycle` are replaced at checkout.
class Pool {
 public:
  /// `on_connect` runs once on every new connection (e.g. session settings).
  Pool(std::string conninfo, PoolConfig config, std::function<Result<void>(Connection&)> on_connect = {});
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  [[nodiscard]] Result<Lease> acquire();
  [[nodiscard]] const std::string& conninfo() const { return m_conninfo; }
  /// Connections currently open (idle + leased).
  [[nodiscard]] int open_count();
  /// Closes idle connections; leased ones close when returned.
  void close_idle();

 private:
  friend class Lease;
  void release(Connection conn, bool discard);

  std::string m_conninfo;
  PoolConfig m_config;
  std::function<Result<void>(Connection&)> m_on_connect;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<Connection> m_idle;  // guarded by m_mutex
  int m_open = 0;                 // guarded by m_mutex
};

}  // namespace vstore::pg
