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

/// A borrowed connection; returns it to the pool when destroyed. A connection that is broken,
/// that an error poisoned, or that is still inside a transaction (or a COPY) is closed instead
/// of returned, so the next caller never inherits a session in an unknown state.
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
/// Connections older than `recycle`, and idle ones the server has closed (a restart), are
/// replaced at checkout. Every connection runs under `statement_timeout`.
class Pool {
 public:
  /// `on_connect` runs once on every new connection (e.g. session settings).
  Pool(std::string conninfo, PoolConfig config, std::function<Result<void>(Connection&)> on_connect = {});
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  [[nodiscard]] Result<Lease> acquire();
  /// Runs `read` (a function of Connection& returning Result<T>) on a leased connection. When it
  /// fails because the connection broke (Error::connection_poisoned()), the idle connections
  /// are dropped and it runs once more on a fresh connection. Only for statements that change
  /// nothing: a write whose connection broke may or may not have been applied, and is never
  /// repeated here. Errors: those of acquire() and of `read`.
  template <typename Read>
  auto read(Read&& read) -> decltype(read(std::declval<Connection&>())) {
    for (int attempt = 0;; ++attempt) {
      auto lease = acquire();
      if (!lease) return fail(lease.error());
      auto result = read(**lease);
      if (result || attempt > 0 || !result.error().connection_poisoned()) return result;
      close_idle();  // they most likely died with this one (a server restart)
    }
  }
  [[nodiscard]] const std::string& conninfo() const { return m_conninfo; }
  /// Connections currently open (idle + leased).
  [[nodiscard]] int open_count();
  /// Open connections waiting in the pool (not leased).
  [[nodiscard]] int idle_count();
  [[nodiscard]] const PoolConfig& config() const { return m_config; }
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
