// SPDX-License-Identifier: Apache-2.0
// Connection: RAII over one libpq PGconn with SQLSTATE-to-ErrorCode mapping, a prepared
// statement cache, cached session settings and binary COPY. Internal to src/pg.
#pragma once

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pg/pg_binary.hpp"
#include "vstore/config.hpp"
#include "vstore/result.hpp"

namespace vstore::pg {

/// Owns a PGresult.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* res) : m_res(res, &PQclear) {}

  [[nodiscard]] int rows() const { return m_res ? PQntuples(m_res.get()) : 0; }
  [[nodiscard]] int cols() const { return m_res ? PQnfields(m_res.get()) : 0; }
  [[nodiscard]] bool is_null(int row, int col) const { return PQgetisnull(m_res.get(), row, col) != 0; }
  /// Raw bytes of a field (text or binary per the result format).
  [[nodiscard]] std::string_view get(int row, int col) const {
    return {PQgetvalue(m_res.get(), row, col), static_cast<std::size_t>(PQgetlength(m_res.get(), row, col))};
  }
  [[nodiscard]] std::string text(int row, int col) const { return std::string(get(row, col)); }
  /// Number of rows a command touched ("INSERT 0 5" -> 5).
  [[nodiscard]] std::int64_t affected() const;
  [[nodiscard]] PGresult* raw() const { return m_res.get(); }

 private:
  std::shared_ptr<PGresult> m_res;
};

/// One query parameter: text (format 0) or binary (format 1) bytes, or NULL.
struct Param {
  std::string_view data;
  bool binary = false;
  bool null = false;
  Oid type = 0;  ///< 0 = let the server infer from the SQL cast

  static Param text(std::string_view value) { return Param{value, false, false, 0}; }
  static Param null_value() { return Param{{}, false, true, 0}; }
};

/// How long the client waits for a reply from a server whose statements run under
/// `statement_timeout`: that timeout plus a grace of the same length, at least 1 s and at most
/// 10 s (60 s gives 70 s). 0 (no statement timeout) gives 0: no limit.
[[nodiscard]] std::chrono::milliseconds reply_limit_for(std::chrono::milliseconds statement_timeout);

/// A connection. Not thread-safe: one thread uses it at a time (the pool hands it out).
///
/// The server ends a statement that runs past its statement_timeout; a server that stopped
/// answering (a frozen process, a host gone with the connection still open) would leave the
/// client waiting forever, so every command also waits at most reply_limit() for each reply
/// (the socket is non-blocking and polled). When that runs out the command fails with
/// ErrorCode::timeout, the connection is closed and every later command on it fails at once.
class Connection {
 public:
  /// Opens a connection whose statements run under `statement_timeout` (0 = none; a
  /// statement_timeout in the conninfo's `options` or in PGOPTIONS wins, and then sets the reply
  /// limit). Every libpq option of `conninfo` applies (sslmode, sslrootcert, hostaddr, ...); its
  /// connect_timeout, application_name and keepalives_* replace `connect_timeout_s`, "vstore"
  /// and vstore's keep-alive defaults (a TCP connection whose peer is gone is found within
  /// about two minutes). Errors: unavailable (server unreachable), invalid_argument (bad
  /// conninfo); see connect_error() for the message, which never shows a password.
  [[nodiscard]] static Result<Connection> connect(
      const std::string& conninfo, int connect_timeout_s = 10,
      std::chrono::milliseconds statement_timeout = k_default_statement_timeout);

  Connection(Connection&&) noexcept = default;
  Connection& operator=(Connection&&) noexcept = default;
  ~Connection() = default;

  /// Runs SQL text with no parameters (may hold several statements).
  [[nodiscard]] Result<PgResult> exec(std::string_view sql);
  /// Runs one statement with parameters; unnamed statement.
  [[nodiscard]] Result<PgResult> exec_params(const std::string& sql, std::span<const Param> params,
                                             bool binary_result = false);
  /// Runs one statement with parameters through a per-connection prepared statement cache.
  [[nodiscard]] Result<PgResult> exec_prepared(const std::string& sql, std::span<const Param> params,
                                               bool binary_result = false);
  /// Sets a session GUC (`SET name = value`) unless the cached value already equals `value`.
  [[nodiscard]] Result<void> set_guc(const std::string& name, const std::string& value);
  /// Runs `copy_sql` (a COPY ... FROM STDIN) and sends `data` in chunks. Errors leave the
  /// connection usable unless marked poisoned.
  [[nodiscard]] Result<std::int64_t> copy_in(const std::string& copy_sql, std::string_view data);
  /// Runs `copy_sql` (a COPY ... TO STDOUT) and returns everything it sent.
  [[nodiscard]] Result<std::string> copy_out(const std::string& copy_sql);
  /// Runs `copy_sql` (a binary COPY ... FROM STDIN) and streams what `fill` writes: `fill` is
  /// called until it returns false, and after each call the rows written so far go to the
  /// server, so the client encodes the next rows while the server stores these. An error from
  /// `fill` aborts the COPY (nothing of it is kept) and is returned. Returns the rows copied.
  [[nodiscard]] Result<std::int64_t> copy_stream(const std::string& copy_sql,
                                                 const std::function<Result<bool>(CopyWriter&)>& fill);

  /// Quotes an identifier ("my""name").
  [[nodiscard]] static std::string quote_ident(std::string_view ident);

  /// False once the connection is broken, or once an error it returned poisoned it
  /// (Error::connection_poisoned()): such a connection must not be used again.
  [[nodiscard]] bool ok() const;
  /// True while a transaction is open (or failed and not yet rolled back), or a command or COPY
  /// is still in progress: the connection is not in a state to hand to another caller.
  [[nodiscard]] bool in_transaction() const;
  /// For an idle connection: reads whatever the server sent since the last command without
  /// waiting and returns false when that shows the connection is gone (the server restarted
  /// or ended the session). No round trip; a connection that looks alive may still fail.
  [[nodiscard]] bool still_alive();
  [[nodiscard]] std::chrono::steady_clock::time_point created_at() const { return m_created; }
  /// How long a command waits for each reply from the server (0: no limit).
  [[nodiscard]] std::chrono::milliseconds reply_limit() const { return m_reply_limit; }
  /// Replaces the reply limit and returns the one it replaces: for a caller that lifts the
  /// statement timeout (`SET LOCAL statement_timeout = 0`) and restores the limit after.
  std::chrono::milliseconds set_reply_limit(std::chrono::milliseconds limit);
  /// Server version number (e.g. 150020).
  [[nodiscard]] int server_version() const;
  /// Forgets cached prepared statements and GUCs (after DISCARD ALL or a reset).
  void forget_session_state();
  /// The SCRAM-SHA-256 verifier of `password` for role `user`, made on the client, so that
  /// `ALTER ROLE ... PASSWORD 'verifier'` never sends the password itself. Errors: internal.
  [[nodiscard]] Result<std::string> encrypt_password(const std::string& user, const std::string& password);
  /// Oid of a type by name, cached per connection (e.g. "vector"). Errors: not_found.
  [[nodiscard]] Result<Oid> type_oid(const std::string& type_name);

 private:
  // Ends the COPY in progress (aborting it when `abort_message` is set) and collects its result.
  [[nodiscard]] Result<std::int64_t> copy_finish(const char* abort_message);
  using Clock = std::chrono::steady_clock;
  // The time after which a wait that starts now gives up (Clock::time_point::max(): never).
  [[nodiscard]] Clock::time_point deadline() const;
  // Fails at once when an earlier reply limit ran out on this connection.
  [[nodiscard]] Result<void> usable(std::string_view what) const;
  // Waits until the socket is ready for `events`: 1, 0 once `until` passed, -1 on a poll error.
  [[nodiscard]] int wait_socket(short events, Clock::time_point until) const;
  // Sends what libpq holds for the server, reading what arrives meanwhile (as libpq asks).
  [[nodiscard]] Result<void> flush(std::string_view what);
  // Collects the results of the command sent, as PQexec does: the last one, or the first of
  // type COPY IN/OUT. The reply limit applies to each result.
  [[nodiscard]] Result<PgResult> collect(std::string_view what);
  // Sends COPY data within the reply limit.
  [[nodiscard]] Result<void> put_copy_data(std::string_view data, std::string_view what);
  // The error of a wait that ran out: poisons the connection for good.
  [[nodiscard]] Error gave_up(std::string_view what);
  struct Deleter {
    void operator()(PGconn* conn) const { PQfinish(conn); }
  };
  explicit Connection(PGconn* conn);
  [[nodiscard]] Result<PgResult> check(Result<PgResult> collected, std::string_view what);
  // The error of `res` (or of the connection), remembering when it poisons the connection.
  [[nodiscard]] Error failure(const PGresult* res, std::string_view what);

  std::unique_ptr<PGconn, Deleter> m_conn;
  std::unordered_map<std::string, std::string> m_prepared;  // sql -> statement name
  std::unordered_map<std::string, std::string> m_gucs;      // name -> value
  std::unordered_map<std::string, Oid> m_types;
  std::chrono::steady_clock::time_point m_created;
  std::chrono::milliseconds m_statement_timeout{0};
  std::chrono::milliseconds m_reply_limit{0};
  bool m_poisoned = false;
  bool m_gave_up = false;  // a reply limit ran out: the connection's state is unknown
};

/// The error of a failed connect to `conninfo`, for libpq's text `libpq_message`. libpq's text
/// is never passed through: when it cannot parse the string it quotes it (password and all), so
/// the message is built from the redacted string, the user and database names, and a
/// classification of what failed. Errors returned: invalid_argument (the string cannot be
/// parsed), unavailable (anything else); both poison the connection. Thread-safe.
[[nodiscard]] Error connect_error(const std::string& conninfo, std::string_view libpq_message);

/// Maps a libpq error (SQLSTATE and connection status) to an Error.
[[nodiscard]] Error error_from_pg(PGconn* conn, const PGresult* res, std::string_view what);

}  // namespace vstore::pg
