// SPDX-License-Identifier: Apache-2.0
/// EmbeddedPostgres: vstore's own PostgreSQL 15 + pgvector cluster in a directory of its own.
#pragma once

#include <filesystem>
#include <string>

#include "vstore/result.hpp"

namespace vstore {

/// What `vstore db status` reports.
struct EmbeddedStatus {
  bool running = false;
  int port = 0;                      ///< TCP port (with `tcp`), and the number in the socket's name
  bool tcp = false;                  ///< also listens on 127.0.0.1:port (password required)
  std::filesystem::path root;        ///< <data dir>/pg
  std::filesystem::path socket_dir;  ///< private unix socket directory (mode 0700)
  std::filesystem::path password_file;  ///< with `tcp`: root/password (mode 0600), else empty
  /// libpq connection string for database "vstore": the socket, or with `tcp` 127.0.0.1 and the
  /// password (a secret: show it only through redact_url()).
  std::string conninfo;
};

/// Starting options. Defaults suit the demo and tests on a 2-core, 24 GiB machine.
struct EmbeddedOptions {
  int port = 0;                            ///< 0 = the port saved by the last start if free, else a free port
  /// Default false: the server listens only on a unix socket in a private directory (root/run,
  /// or a mkdtemp directory under /tmp when that path is too long for a socket). True: also on
  /// 127.0.0.1:port, where every connection needs the generated password (scram-sha-256) kept in
  /// root/password with mode 0600.
  bool tcp = false;
  std::string shared_buffers = "512MB";    ///< PostgreSQL shared_buffers
  std::string maintenance_work_mem = "1GB";
  bool fsync = true;                       ///< false only for throwaway test clusters
};

/// Controls one cluster under `root` (data in root/data, log in root/postgres.log, state in
/// root/state.json). When the process runs as root, the server runs as the system user
/// `postgres` (PostgreSQL refuses root) and `root` is owned by it. Only the socket's directory
/// owner (and root) can connect through the socket; nobody connects over TCP without the
/// password. Not thread-safe; separate instances over different roots are independent.
class EmbeddedPostgres {
 public:
  explicit EmbeddedPostgres(std::filesystem::path root);

  /// initdb when needed, then start; returns the running status. Starting a running cluster
  /// returns its status (conflict when it runs with the other `tcp` setting). Errors: not_found (PostgreSQL 15 binaries or pgvector missing, with
  /// the install step to run), unavailable (server did not start; the log's tail is included).
  [[nodiscard]] Result<EmbeddedStatus> start(const EmbeddedOptions& options = {});
  /// Makes this root a streaming replica of the running cluster under `primary_root` (a base
  /// backup over its socket with pg_basebackup -R, then a start as a hot standby that keeps
  /// streaming its WAL), or starts the standby made before. With `tcp` the standby takes the
  /// primary's password file (its roles are the primary's). Errors: unavailable (the primary is
  /// not running, pg_basebackup failed), conflict (this root holds a cluster that is not a
  /// standby), and those of start().
  [[nodiscard]] Result<EmbeddedStatus> start_standby(const std::filesystem::path& primary_root,
                                                     const EmbeddedOptions& options = {});
  /// Stops the cluster (fast shutdown). Stopping a stopped cluster succeeds.
  [[nodiscard]] Result<void> stop();
  /// Whether it runs, and where.
  [[nodiscard]] Result<EmbeddedStatus> status() const;
  /// Removes the whole root directory (the cluster must be stopped).
  [[nodiscard]] Result<void> destroy();

  /// The PostgreSQL 15 server binary directory. Errors: not_found with the setup hint.
  [[nodiscard]] static Result<std::filesystem::path> find_bindir();

 private:
  std::filesystem::path m_root;
};

}  // namespace vstore
