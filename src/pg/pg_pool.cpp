// SPDX-License-Identifier: Apache-2.0
// Pool implementation. Invariant: m_open counts idle + leased connections and never exceeds
// size + max_overflow; a slot is reserved (m_open++) before connecting outside the lock and
// given back if the connect fails.
#include "pg/pg_pool.hpp"

#include <fmt/format.h>

namespace vstore::pg {

Lease::~Lease() {
  if (m_pool && m_conn) {
    // ok() is false once an error poisoned the connection; a transaction left open (or an
    // aborted one, or a COPY) would leak its locks and settings to the next caller.
    const bool bad = m_discard || !m_conn->ok() || m_conn->in_transaction();
    m_pool->release(std::move(*m_conn), bad);
  }
}

Pool::Pool(std::string conninfo, PoolConfig config, std::function<Result<void>(Connection&)> on_connect)
    : m_conninfo(std::move(conninfo)), m_config(config), m_on_connect(std::move(on_connect)) {}

Result<Lease> Pool::acquire() {
  const auto deadline = std::chrono::steady_clock::now() + m_config.timeout;
  const int max_open = m_config.size + m_config.max_overflow;
  std::unique_lock lock(m_mutex);
  while (true) {
    while (!m_idle.empty()) {
      Connection conn = std::move(m_idle.front());
      m_idle.pop_front();
      const bool expired = m_config.recycle.count() >= 0 &&
                           std::chrono::steady_clock::now() - conn.created_at() > m_config.recycle;
      if (!expired && conn.still_alive()) {
        return Lease(this, std::move(conn));
      }
      --m_open;  // dropped: closed when `conn` goes out of scope
    }
    if (m_open < max_open) {
      ++m_open;
      lock.unlock();
      auto conn = Connection::connect(m_conninfo, 10, m_config.statement_timeout);
      if (conn && m_on_connect) {
        if (auto setup = m_on_connect(*conn); !setup) {
          conn = fail(setup.error());
        }
      }
      if (!conn) {
        lock.lock();
        --m_open;
        m_cv.notify_one();
        return fail(conn.error());
      }
      return Lease(this, std::move(*conn));
    }
    if (m_cv.wait_until(lock, deadline) == std::cv_status::timeout && m_idle.empty() && m_open >= max_open) {
      return fail(ErrorCode::timeout,
                  fmt::format("no database connection free within {} s (DB_POOL_SIZE={}, DB_MAX_OVERFLOW={})",
                              m_config.timeout.count(), m_config.size, m_config.max_overflow));
    }
  }
}

void Pool::release(Connection conn, bool discard) {
  std::lock_guard lock(m_mutex);
  if (discard || static_cast<int>(m_idle.size()) >= m_config.size) {
    --m_open;  // closed when `conn` is destroyed
  } else {
    m_idle.push_back(std::move(conn));
  }
  m_cv.notify_one();
}

int Pool::open_count() {
  std::lock_guard lock(m_mutex);
  return m_open;
}

int Pool::idle_count() {
  std::lock_guard lock(m_mutex);
  return static_cast<int>(m_idle.size());
}

void Pool::close_idle() {
  std::lock_guard lock(m_mutex);
  m_open -= static_cast<int>(m_idle.size());
  m_idle.clear();
}

}  // namespace vstore::pg
