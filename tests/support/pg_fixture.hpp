// SPDX-License-Identifier: Apache-2.0
// Test support: one real PostgreSQL 15 + pgvector server per test binary, started on a free
// loopback port in a temporary directory and stopped (and removed) when the binary ends.
#pragma once

#include <string>

#include "vstore/config.hpp"

namespace vstore::testing {

/// Starts the shared server on first use. Fails the calling test (ASSERT) if it cannot start.
class PgServer {
 public:
  /// The running server; starts it on first call. Never returns on failure (aborts the binary
  /// with the reason, so that no integration test can silently skip).
  static PgServer& instance();

  /// Creates a new empty database and returns its conninfo.
  std::string create_database(const std::string& prefix);
  /// Drops a database made by create_database (by its conninfo).
  void drop_database(const std::string& conninfo);
  /// Conninfo of the maintenance database "postgres".
  std::string admin_conninfo() const;
  /// Stops and removes the server.
  void shutdown();
  /// Stops the server (fast shutdown, which ends every session) and starts it again on the
  /// same port. Aborts the binary if it cannot.
  void restart();
  /// The server's log file.
  std::string log_path() const;

 private:
  PgServer();
  std::string m_root;
  std::string m_socket_dir;
  int m_port = 0;
  int m_next_db = 0;
  bool m_running = false;
};

/// A Config for tests: defaults, `database_url` = conninfo, the given dimension and hash embedder.
Config test_config(const std::string& conninfo, int dim);

/// Runs SQL on conninfo and returns the first column of the first row ("" if none). Aborts on error.
std::string sql_value(const std::string& conninfo, const std::string& sql);

}  // namespace vstore::testing
