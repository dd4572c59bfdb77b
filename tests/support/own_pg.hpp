// SPDX-License-Identifier: Apache-2.0
// Test support: a PostgreSQL 15 + pgvector cluster of a test's own, listening on 127.0.0.1 with
// scram-sha-256 passwords beside its private socket, for tests that log in with a password or
// change server settings (TLS, pg_hba.conf) that the shared server must not get.
#pragma once

#include <filesystem>
#include <string>

namespace vstore::testing {

/// One cluster (vstore's EmbeddedPostgres with `tcp`) under a root directory. Not thread-safe.
class OwnPgServer {
 public:
  /// Starts a cluster under `root` (created when missing; it must lie in a directory the
  /// server user can reach). `error()` says why when it did not start.
  explicit OwnPgServer(std::filesystem::path root);
  /// Stops the cluster and removes `root`.
  ~OwnPgServer();
  OwnPgServer(const OwnPgServer&) = delete;
  OwnPgServer& operator=(const OwnPgServer&) = delete;

  [[nodiscard]] bool running() const { return m_running; }
  [[nodiscard]] const std::string& error() const { return m_error; }
  [[nodiscard]] int port() const { return m_port; }
  [[nodiscard]] const std::filesystem::path& root() const { return m_root; }
  [[nodiscard]] std::filesystem::path data_dir() const { return m_root / "data"; }
  [[nodiscard]] std::filesystem::path log_path() const { return m_root / "postgres.log"; }
  /// The superuser `vstore`'s generated password (the root's password file).
  [[nodiscard]] std::string superuser_password() const;

  /// Conninfo of the superuser `vstore` over the private socket (no password) to `dbname`.
  [[nodiscard]] std::string admin_conninfo(const std::string& dbname = "postgres") const;
  /// postgresql://USER:PASSWORD@HOST:PORT/DBNAME[?QUERY], user and password percent-encoded.
  [[nodiscard]] std::string url(const std::string& user, const std::string& password, const std::string& dbname,
                                const std::string& query = "", const std::string& host = "127.0.0.1") const;

  /// Runs SQL as the superuser on `dbname`; "" on success, else the error's text.
  [[nodiscard]] std::string admin_sql(const std::string& dbname, const std::string& sql) const;
  /// Creates a LOGIN role with `password` and no other attribute (no SUPERUSER, CREATEDB,
  /// CREATEROLE, REPLICATION, BYPASSRLS). Only its scram-sha-256 verifier is sent to the server.
  /// "" on success, else the error's text.
  [[nodiscard]] std::string create_login_role(const std::string& role, const std::string& password) const;

  /// Stops the cluster (fast shutdown). "" on success, else the error's text.
  std::string stop();

 private:
  std::filesystem::path m_root;
  std::string m_socket_dir;
  int m_port = 0;
  bool m_running = false;
  std::string m_error;
};

/// `text` percent-encoded as a URL component: every byte but A-Z a-z 0-9 - . _ ~ as %XX
/// (upper-case hex).
std::string percent_encode(const std::string& text);

}  // namespace vstore::testing
