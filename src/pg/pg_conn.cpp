// SPDX-License-Identifier: Apache-2.0
// Connection implementation. Errors are classified once, here, from the SQLSTATE: class 08 and
// admin shutdown poison the connection (the pool drops it); serialization failures and
// deadlocks are retryable; data exceptions are the caller's input.
#include "pg/pg_conn.hpp"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <utility>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <fmt/format.h>

#include "pg/pg_filter.hpp"
#include "vstore/config.hpp"

namespace vstore::pg {
namespace {

std::string trim_message(const char* msg) {
  std::string out = msg ? msg : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return out;
}

}  // namespace

std::int64_t PgResult::affected() const {
  if (!m_res) return 0;
  const char* tuples = PQcmdTuples(m_res.get());
  std::int64_t n = 0;
  if (tuples && *tuples) {
    std::from_chars(tuples, tuples + std::strlen(tuples), n);
  }
  return n;
}

Error error_from_pg(PGconn* conn, const PGresult* res, std::string_view what) {
  const bool broken = conn == nullptr || PQstatus(conn) == CONNECTION_BAD;
  std::string sqlstate;
  std::string msg;
  if (res) {
    const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    sqlstate = state ? state : "";
    const char* primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    msg = primary ? primary : trim_message(PQresultErrorMessage(res));
    const char* detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    if (detail) {
      msg += fmt::format(" ({})", detail);
    }
  }
  if (msg.empty() && conn) {
    msg = trim_message(PQerrorMessage(conn));
  }
  if (msg.empty()) msg = "unknown error";
  std::string text = fmt::format("{}: {}", what, msg);
  if (!sqlstate.empty()) text += fmt::format(" [sqlstate {}]", sqlstate);

  ErrorCode code = ErrorCode::internal;
  bool poisoned = broken;
  if (broken || sqlstate.starts_with("08") || sqlstate == "57P01" || sqlstate == "57P02" ||
      sqlstate == "57P03") {
    code = ErrorCode::unavailable;
    poisoned = true;
  } else if (sqlstate == "57014") {
    code = ErrorCode::timeout;
  } else if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03") {
    code = ErrorCode::unavailable;
  } else if (sqlstate == "23505") {
    code = ErrorCode::conflict;
  } else if (sqlstate.starts_with("22") || sqlstate.starts_with("23")) {
    code = ErrorCode::invalid_argument;
  } else if (sqlstate == "42P01" || sqlstate == "42703" || sqlstate == "3D000" || sqlstate == "42704") {
    code = ErrorCode::not_found;
  } else if (sqlstate == "XX001" || sqlstate == "XX002") {
    code = ErrorCode::corruption;
  }
  return Error(code, std::move(text), poisoned);
}

namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string lower_case(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The pieces of a connection string that may be shown (never the password), or nothing when
// libpq cannot parse it.
struct ConnPieces {
  bool parsed = false;
  std::string user;
  std::string dbname;
  std::string host;
  std::string sslrootcert;
  std::string password;
};

ConnPieces conn_pieces(const std::string& conninfo) {
  ConnPieces pieces;
  char* parse_error = nullptr;
  PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (parse_error != nullptr) PQfreemem(parse_error);
  if (parsed == nullptr) return pieces;
  pieces.parsed = true;
  for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const std::string_view key = o->keyword;
    if (key == "user") pieces.user = o->val;
    if (key == "dbname") pieces.dbname = o->val;
    if (key == "host") pieces.host = o->val;
    if (key == "sslrootcert") pieces.sslrootcert = o->val;
    if (key == "password") pieces.password = o->val;
  }
  PQconninfoFree(parsed);
  return pieces;
}

// A name for messages: a value holding an '@' may hold the end of a password ("u:p@ss@host"
// gives the host "ss@host"), so everything up to its last '@' is hidden.
std::string shown_name(std::string_view value, std::string_view fallback) {
  if (value.empty()) return std::string(fallback);
  if (const std::size_t at = value.rfind('@'); at != std::string_view::npos) {
    return fmt::format("***{}", value.substr(at));
  }
  return std::string(value);
}

// The first line of libpq's text with every double-quoted part and every occurrence of the
// password replaced, for failures the table in connect_error() does not know.
std::string scrubbed(std::string_view libpq_message, const ConnPieces& pieces) {
  std::string line(libpq_message.substr(0, libpq_message.find('\n')));
  std::string out;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      out += quoted ? "***\"" : "\"";
      quoted = !quoted;
    } else if (!quoted) {
      out += c;
    }
  }
  if (quoted) out += "***";
  if (!pieces.password.empty()) {
    for (std::size_t pos = out.find(pieces.password); pos != std::string::npos; pos = out.find(pieces.password, pos)) {
      out.replace(pos, pieces.password.size(), "***");
      pos += 3;
    }
  }
  return out;
}

}  // namespace

Error connect_error(const std::string& conninfo, std::string_view libpq_message) {
  const ConnPieces pieces = conn_pieces(conninfo);
  const std::string where = fmt::format("cannot connect to postgresql at {}", redact_url(conninfo));
  const std::string text = lower_case(libpq_message);
  if (!pieces.parsed) {
    // libpq quotes the string (or the bad part of it) in these messages: only our own words.
    std::string_view why = "libpq cannot parse it (its message is not shown, as it quotes the string)";
    if (contains(text, "percent-encoded token")) {
      why = "a malformed percent-encoding (write a literal % as %25)";
    } else if (contains(text, "%00")) {
      why = "%00 is not allowed in a value";
    } else if (contains(text, "ipv6 host address")) {
      why = "an IPv6 host address without its closing \"]\"";
    } else if (contains(text, "missing \"=\"")) {
      why = "a word without \"=\" (a value that holds spaces must be quoted: password='a b')";
    } else if (contains(text, "unterminated quoted string")) {
      why = "an unterminated quoted value";
    } else if (contains(text, "invalid connection option") || contains(text, "invalid uri query parameter")) {
      why = "an unknown keyword or query parameter";
    } else if (contains(text, "extra key/value separator")) {
      why = "a query parameter with two \"=\"";
    }
    return Error(ErrorCode::invalid_argument, fmt::format("{}: the connection string is invalid: {}", where, why), true);
  }
  const std::string user = shown_name(pieces.user, "the default user");
  const std::string dbname = shown_name(pieces.dbname, "the default database");
  const std::string rootcert =
      pieces.sslrootcert.empty() ? "~/.postgresql/root.crt, libpq's default" : shown_name(pieces.sslrootcert, "");
  std::string why;
  if (contains(text, "permission denied for database")) {
    why = fmt::format("permission denied for database {}: user {} lacks the CONNECT privilege on it (an administrator "
                      "grants it: GRANT CONNECT ON DATABASE {} TO {})",
                      dbname, user, dbname, user);
  } else if (contains(text, "certificate verify failed")) {
    why = fmt::format("the server's TLS certificate could not be verified (certificate verify failed): no certificate "
                      "in sslrootcert ({}) signed it; set sslrootcert to the certificate of the authority that did",
                      rootcert);
  } else if (contains(text, "does not match host name")) {
    why = fmt::format("the server's TLS certificate does not match host name {} (sslmode=verify-full checks it): "
                      "connect by a name the certificate holds, or use sslmode=verify-ca",
                      shown_name(pieces.host, "the default host"));
  } else if (contains(text, "root certificate file") && contains(text, "does not exist")) {
    why = fmt::format("sslmode=verify-ca and verify-full need the certificate of the authority that signed the "
                      "server's, and the root certificate file {} does not exist; set sslrootcert to it",
                      rootcert);
  } else if (contains(text, "server does not support ssl")) {
    why = "the server does not support SSL, but sslmode asks for it (require, verify-ca or verify-full)";
  } else if (contains(text, "password authentication failed")) {
    why = fmt::format("password authentication failed for user {}", user);
  } else if (contains(text, "no password supplied")) {
    why = "the server asks for a password and none was given";
  } else if (contains(text, "connection refused")) {
    why = "connection refused (is the server running and accepting connections at this host and port?)";
  } else if (contains(text, "could not translate host name") || contains(text, "name or service not known")) {
    why = "the host name cannot be resolved";
  } else if (contains(text, "no such file or directory")) {
    why = "no server socket there (is the server running, and is the socket directory right?)";
  } else if (contains(text, "timeout expired")) {
    why = "the connection timed out";
  } else if (contains(text, "database") && contains(text, "does not exist")) {
    why = fmt::format("database {} does not exist", dbname);
  } else if (contains(text, "role") && contains(text, "does not exist")) {
    why = fmt::format("role {} does not exist", user);
  } else if (contains(text, "no pg_hba.conf entry")) {
    why = fmt::format("the server's pg_hba.conf allows no connection for user {} to database {} from here", user, dbname);
  } else if (contains(text, "too many clients") || contains(text, "remaining connection slots")) {
    why = "the server has no free connection slot";
  } else if (contains(text, "starting up") || contains(text, "shutting down") || contains(text, "recovery mode")) {
    why = "the server is starting up or shutting down";
  } else if (contains(text, "permission denied")) {
    why = "permission denied";
  } else {
    why = scrubbed(trim_message(std::string(libpq_message).c_str()), pieces);
  }
  return Error(ErrorCode::unavailable, fmt::format("{}: {}", where, why), true);
}

Connection::Connection(PGconn* conn) : m_conn(conn), m_created(std::chrono::steady_clock::now()) {}

Result<Connection> Connection::connect(const std::string& conninfo, int connect_timeout_s,
                                       std::chrono::milliseconds statement_timeout) {
  // Keyword/value arrays with expand_dbname so that conninfo may be a URL or key=value string.
  // libpq lets the conninfo override the entries before `dbname` and lets the entries after it
  // override the conninfo: the timeout and the application name are defaults that a
  // connect_timeout or application_name in the conninfo replaces; the options are merged below.
  std::string timeout = std::to_string(connect_timeout_s);
  // Sessions run in UTC so that date strings without a zone in filters mean UTC.
  // The session options keep what the user gave (the conninfo's `options`, else PGOPTIONS),
  // which the keyword below would otherwise replace, with the time zone after them.
  std::string user_options;
  char* parse_error = nullptr;
  if (PQconninfoOption* parsed = PQconninfoParse(conninfo.c_str(), &parse_error)) {
    for (PQconninfoOption* o = parsed; o->keyword != nullptr; ++o) {
      if (std::string_view(o->keyword) == "options" && o->val != nullptr) user_options = o->val;
    }
    PQconninfoFree(parsed);
  }
  if (parse_error != nullptr) PQfreemem(parse_error);  // (PQconnectdbParams reports it below)
  if (user_options.empty()) {
    if (const char* env = std::getenv("PGOPTIONS")) user_options = env;
  }
  // vstore's statement timeout goes first, so that one the user gives wins.
  std::string options = fmt::format("-c statement_timeout={}", statement_timeout.count());
  if (!user_options.empty()) options += " " + user_options;
  options += " -c TimeZone=UTC";
  // TCP keep-alives (libpq ignores them on a Unix socket): a first probe after 60 s of silence,
  // then every 10 s, and the connection is given up after 6 unanswered ones, so a peer that
  // vanished is found within about two minutes even in a command with no reply limit.
  const char* keys[] = {"connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "dbname", "options", nullptr};
  const char* values[] = {timeout.c_str(), "vstore", "1", "60", "10", "6", conninfo.c_str(), options.c_str(), nullptr};
  PGconn* raw = PQconnectdbParams(keys, values, 1);
  if (raw == nullptr) {
    return fail(ErrorCode::internal, "postgresql: out of memory creating a connection");
  }
  Connection conn(raw);
  if (PQstatus(raw) != CONNECTION_OK) return fail(connect_error(conninfo, PQerrorMessage(raw)));
  // Quiet NOTICEs (e.g. "relation already exists, skipping") from reaching stderr.
  PQsetNoticeProcessor(raw, [](void*, const char*) {}, nullptr);
  // Every wait is a poll with the reply limit (Connection's comment).
  if (PQsetnonblocking(raw, 1) != 0) {
    return fail(ErrorCode::internal, "postgresql: cannot make the connection non-blocking");
  }
  conn.m_statement_timeout = statement_timeout;
  conn.m_reply_limit = reply_limit_for(statement_timeout);
  if (user_options.find("statement_timeout") != std::string::npos) {
    // The user's statement_timeout won: the limit follows the server's setting (in ms).
    VS_TRY_ASSIGN(PgResult shown, conn.exec("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'"));
    long long ms = 0;
    const std::string_view text = shown.rows() == 1 ? shown.get(0, 0) : std::string_view();
    if (std::from_chars(text.data(), text.data() + text.size(), ms).ec == std::errc()) {
      conn.m_statement_timeout = std::chrono::milliseconds(ms);
      conn.m_reply_limit = reply_limit_for(conn.m_statement_timeout);
    }
  }
  return conn;
}

std::chrono::milliseconds reply_limit_for(std::chrono::milliseconds statement_timeout) {
  using std::chrono::milliseconds;
  if (statement_timeout.count() <= 0) return milliseconds(0);
  return statement_timeout + std::clamp(statement_timeout, milliseconds(1000), milliseconds(10000));
}

std::chrono::milliseconds Connection::set_reply_limit(std::chrono::milliseconds limit) {
  return std::exchange(m_reply_limit, limit);
}

Connection::Clock::time_point Connection::deadline() const {
  if (m_reply_limit.count() <= 0) return Clock::time_point::max();
  return Clock::now() + m_reply_limit;
}

Result<void> Connection::usable(std::string_view what) const {
  if (!m_gave_up) return {};
  return fail(Error(ErrorCode::unavailable,
                    fmt::format("{}: the connection was given up after the server did not reply in time", what), true));
}

Error Connection::gave_up(std::string_view what) {
  m_gave_up = true;
  m_poisoned = true;
  // Closed now: a server that wakes up ends the session (and whatever it held) at once.
  m_conn.reset();
  const auto seconds = [](std::chrono::milliseconds ms) { return fmt::format("{:g} s", static_cast<double>(ms.count()) / 1000.0); };
  return Error(ErrorCode::timeout,
               fmt::format("{}: no reply from the server within {} (the statement timeout, {}, plus a grace of {}); "
                           "the server may be stopped or unreachable, and the connection is given up",
                           what, seconds(m_reply_limit), seconds(m_statement_timeout),
                           seconds(m_reply_limit - m_statement_timeout)),
               true);
}

int Connection::wait_socket(short events, Clock::time_point until) const {
  pollfd pfd{};
  pfd.fd = PQsocket(m_conn.get());
  pfd.events = events;
  if (pfd.fd < 0) return -1;
  for (;;) {
    int wait_ms = -1;
    if (until != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now()).count();
      if (left <= 0) return 0;
      wait_ms = static_cast<int>(std::min<long long>(left, 60'000));
    }
    const int ready = poll(&pfd, 1, wait_ms);
    if (ready > 0) return 1;
    if (ready < 0 && errno != EINTR) return -1;
  }
}

Result<void> Connection::flush(std::string_view what) {
  const Clock::time_point until = deadline();
  for (;;) {
    const int left = PQflush(m_conn.get());
    if (left == 0) return {};
    if (left < 0) return fail(failure(nullptr, what));
    const int ready = wait_socket(POLLOUT | POLLIN, until);
    if (ready == 0) return fail(gave_up(what));
    // Reading what arrived keeps a server that is itself waiting to send from blocking both.
    if (ready < 0 || PQconsumeInput(m_conn.get()) == 0) return fail(failure(nullptr, what));
  }
}

Result<PgResult> Connection::collect(std::string_view what) {
  VS_TRY(flush(what));
  PgResult last;
  for (;;) {
    const Clock::time_point until = deadline();
    while (PQisBusy(m_conn.get()) != 0) {
      const int ready = wait_socket(POLLIN, until);
      if (ready == 0) return fail(gave_up(what));
      if (ready < 0) return fail(failure(nullptr, what));
      // A server that ends the session sends its error, then closes: the read fails with the
      // connection marked bad, and PQgetResult below still gives the error it sent.
      if (PQconsumeInput(m_conn.get()) == 0 && PQstatus(m_conn.get()) != CONNECTION_BAD) {
        return fail(failure(nullptr, what));
      }
    }
    PGresult* res = PQgetResult(m_conn.get());
    if (res == nullptr) break;
    last = PgResult(res);
    const auto status = PQresultStatus(res);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH ||
        PQstatus(m_conn.get()) == CONNECTION_BAD) {
      break;
    }
  }
  if (last.raw() == nullptr) return fail(failure(nullptr, what));
  return last;
}

bool Connection::ok() const { return m_conn && !m_poisoned && PQstatus(m_conn.get()) == CONNECTION_OK; }

bool Connection::in_transaction() const {
  return m_conn && PQtransactionStatus(m_conn.get()) != PQTRANS_IDLE;
}

bool Connection::still_alive() {
  // An idle session only hears from the server when it ends the session (an error, then EOF)
  // or for notifications; reading what arrived makes libpq notice a closed socket. Twice, for
  // an end of file that arrives just after the error.
  for (int read_idx = 0; read_idx < 2; ++read_idx) {
    if (!ok()) return false;
    pollfd pfd{};
    pfd.fd = PQsocket(m_conn.get());
    pfd.events = POLLIN;
    if (pfd.fd < 0) return false;
    if (poll(&pfd, 1, 0) <= 0) return true;  // nothing arrived: nothing says it is gone
    if ((pfd.revents & (POLLHUP | POLLERR)) != 0 || PQconsumeInput(m_conn.get()) == 0) return false;
    while (PGnotify* note = PQnotifies(m_conn.get())) PQfreemem(note);
  }
  return ok();
}

Error Connection::failure(const PGresult* res, std::string_view what) {
  Error err = error_from_pg(m_conn.get(), res, what);
  if (err.connection_poisoned()) m_poisoned = true;
  return err;
}

int Connection::server_version() const { return m_conn ? PQserverVersion(m_conn.get()) : 0; }

void Connection::forget_session_state() {
  m_prepared.clear();
  m_gucs.clear();
}

std::string Connection::quote_ident(std::string_view ident) { return quote_sql_identifier(ident); }

Result<PgResult> Connection::check(Result<PgResult> collected, std::string_view what) {
  if (!collected) return collected;
  PGresult* res = collected->raw();
  const auto status = PQresultStatus(res);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_IN ||
      status == PGRES_EMPTY_QUERY) {
    return collected;
  }
  return fail(failure(res, what));
}

Result<PgResult> Connection::exec(std::string_view sql) {
  VS_TRY(usable("postgresql"));
  std::string text(sql);
  if (PQsendQuery(m_conn.get(), text.c_str()) != 1) return fail(failure(nullptr, "postgresql"));
  return check(collect("postgresql"), "postgresql");
}

namespace {
struct ParamArrays {
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
  std::vector<Oid> types;
};

ParamArrays to_arrays(std::span<const Param> params, std::vector<std::string>& storage) {
  ParamArrays arrays;
  storage.reserve(params.size());
  for (const Param& p : params) {
    if (p.null) {
      arrays.values.push_back(nullptr);
      arrays.lengths.push_back(0);
    } else if (p.binary) {
      arrays.values.push_back(p.data.data());
      arrays.lengths.push_back(static_cast<int>(p.data.size()));
    } else {
      // Text parameters must be NUL-terminated.
      storage.emplace_back(p.data);
      arrays.values.push_back(storage.back().c_str());
      arrays.lengths.push_back(static_cast<int>(p.data.size()));
    }
    arrays.formats.push_back(p.binary ? 1 : 0);
    arrays.types.push_back(p.type);
  }
  return arrays;
}
}  // namespace

Result<PgResult> Connection::exec_params(const std::string& sql, std::span<const Param> params,
                                         bool binary_result) {
  VS_TRY(usable("postgresql"));
  std::vector<std::string> storage;
  ParamArrays a = to_arrays(params, storage);
  if (PQsendQueryParams(m_conn.get(), sql.c_str(), static_cast<int>(params.size()), a.types.data(), a.values.data(),
                        a.lengths.data(), a.formats.data(), binary_result ? 1 : 0) != 1) {
    return fail(failure(nullptr, "postgresql"));
  }
  return check(collect("postgresql"), "postgresql");
}

Result<PgResult> Connection::exec_prepared(const std::string& sql, std::span<const Param> params,
                                           bool binary_result) {
  VS_TRY(usable("postgresql"));
  auto it = m_prepared.find(sql);
  if (it == m_prepared.end()) {
    std::string name = fmt::format("vs_{}", m_prepared.size());
    std::vector<Oid> types;
    for (const Param& p : params) types.push_back(p.type);
    if (PQsendPrepare(m_conn.get(), name.c_str(), sql.c_str(), static_cast<int>(params.size()), types.data()) != 1) {
      return fail(failure(nullptr, "postgresql prepare"));
    }
    VS_TRY(check(collect("postgresql prepare"), "postgresql prepare"));
    it = m_prepared.emplace(sql, std::move(name)).first;
  }
  std::vector<std::string> storage;
  ParamArrays a = to_arrays(params, storage);
  if (PQsendQueryPrepared(m_conn.get(), it->second.c_str(), static_cast<int>(params.size()), a.values.data(),
                          a.lengths.data(), a.formats.data(), binary_result ? 1 : 0) != 1) {
    return fail(failure(nullptr, "postgresql"));
  }
  return check(collect("postgresql"), "postgresql");
}

Result<void> Connection::set_guc(const std::string& name, const std::string& value) {
  auto it = m_gucs.find(name);
  if (it != m_gucs.end() && it->second == value) return {};
  Param params[] = {Param::text(name), Param::text(value)};
  VS_TRY(exec_params("SELECT set_config($1, $2, false)", params));
  m_gucs[name] = value;
  return {};
}

Result<std::string> Connection::encrypt_password(const std::string& user, const std::string& password) {
  char* verifier = PQencryptPasswordConn(m_conn.get(), password.c_str(), user.c_str(), "scram-sha-256");
  if (verifier == nullptr) {
    return fail(ErrorCode::internal,
                fmt::format("cannot make the scram-sha-256 verifier of role {}: {}", user, trim_message(PQerrorMessage(m_conn.get()))));
  }
  std::string out = verifier;
  PQfreemem(verifier);
  return out;
}

Result<Oid> Connection::type_oid(const std::string& type_name) {
  if (auto it = m_types.find(type_name); it != m_types.end()) return it->second;
  Param params[] = {Param::text(type_name)};
  VS_TRY_ASSIGN(PgResult res, exec_params("SELECT to_regtype($1)::oid", params));
  if (res.rows() != 1 || res.is_null(0, 0)) {
    return fail(ErrorCode::not_found, fmt::format("postgresql type {} does not exist", type_name));
  }
  Oid oid = 0;
  std::string_view v = res.get(0, 0);
  std::from_chars(v.data(), v.data() + v.size(), oid);
  m_types[type_name] = oid;
  return oid;
}

Result<void> Connection::put_copy_data(std::string_view data, std::string_view what) {
  // In non-blocking mode libpq queues what it cannot send yet; each chunk is flushed before
  // the next, so no more than a chunk waits in memory (as in blocking mode) and a server that
  // stopped reading is found within the reply limit.
  constexpr std::size_t k_chunk = 1 << 20;
  for (std::size_t off = 0; off < data.size(); off += k_chunk) {
    const std::size_t len = std::min(k_chunk, data.size() - off);
    const Clock::time_point until = deadline();
    for (;;) {
      const int queued = PQputCopyData(m_conn.get(), data.data() + off, static_cast<int>(len));
      if (queued == 1) break;
      if (queued < 0) return fail(failure(nullptr, what));
      const int ready = wait_socket(POLLOUT, until);
      if (ready == 0) return fail(gave_up(what));
      if (ready < 0) return fail(failure(nullptr, what));
    }
    VS_TRY(flush(what));
  }
  return {};
}

Result<std::int64_t> Connection::copy_in(const std::string& copy_sql, std::string_view data) {
  VS_TRY(exec(copy_sql));
  VS_TRY(put_copy_data(data, "postgresql copy"));
  return copy_finish(nullptr);
}

Result<std::string> Connection::copy_out(const std::string& copy_sql) {
  VS_TRY(usable("postgresql copy out"));
  if (PQsendQuery(m_conn.get(), copy_sql.c_str()) != 1) return fail(failure(nullptr, "postgresql copy out"));
  VS_TRY_ASSIGN(PgResult started, collect("postgresql copy out"));
  if (PQresultStatus(started.raw()) != PGRES_COPY_OUT) return fail(failure(started.raw(), "postgresql copy out"));
  std::string out;
  std::optional<Error> first_error;
  Clock::time_point until = deadline();
  for (;;) {
    char* buf = nullptr;
    const int n = PQgetCopyData(m_conn.get(), &buf, 1);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      PQfreemem(buf);
      until = deadline();
      continue;
    }
    if (n == -1) break;  // the end of the data
    if (n == -2) {
      first_error = failure(nullptr, "postgresql copy out");
      break;
    }
    const int ready = wait_socket(POLLIN, until);
    if (ready == 0) return fail(gave_up("postgresql copy out"));
    if (ready < 0 || PQconsumeInput(m_conn.get()) == 0) return fail(failure(nullptr, "postgresql copy out"));
  }
  if (first_error) return fail(std::move(*first_error));
  VS_TRY_ASSIGN(PgResult ended, collect("postgresql copy out"));
  if (PQresultStatus(ended.raw()) != PGRES_COMMAND_OK) return fail(failure(ended.raw(), "postgresql copy out"));
  return out;
}

Result<std::int64_t> Connection::copy_stream(const std::string& copy_sql,
                                             const std::function<Result<bool>(CopyWriter&)>& fill) {
  VS_TRY(exec(copy_sql));
  CopyWriter writer;
  std::string slice;  // the slice being sent; its memory becomes the writer's for the next one
  for (;;) {
    Result<bool> more = fill(writer);
    if (!more) {
      // Abort the COPY on the server; the caller's error is the one that counts.
      (void)copy_finish("the client stopped the copy");
      return fail(std::move(more.error()));
    }
    const bool last = !*more;
    if (last) {
      slice = writer.finish();
    } else {
      writer.take(slice);
    }
    VS_TRY(put_copy_data(slice, "postgresql copy"));
    if (last) break;
  }
  return copy_finish(nullptr);
}

Result<std::int64_t> Connection::copy_finish(const char* abort_message) {
  VS_TRY(usable("postgresql copy"));
  const Clock::time_point until = deadline();
  for (;;) {
    const int queued = PQputCopyEnd(m_conn.get(), abort_message);
    if (queued == 1) break;
    if (queued < 0) return fail(failure(nullptr, "postgresql copy"));
    const int ready = wait_socket(POLLOUT, until);
    if (ready == 0) return fail(gave_up("postgresql copy"));
    if (ready < 0) return fail(failure(nullptr, "postgresql copy"));
  }
  // A COPY sends one result (its rows, or its error); collect() waits for it within the limit.
  VS_TRY_ASSIGN(PgResult res, collect("postgresql copy"));
  if (PQresultStatus(res.raw()) != PGRES_COMMAND_OK) return fail(failure(res.raw(), "postgresql copy"));
  return res.affected();
}

}  // namespace vstore::pg
