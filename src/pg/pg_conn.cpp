// SPDX-License-Identifier: Apache-2.0
// Connection implementation. Errors are classified once, here, from the SQLSTATE: class 08 and
// admin shutdown poison the connection (the pool drops it); serialization failures and
// deadlocks are retryable; data exceptions are the caller's input.
#include "pg/pg_conn.hpp"

#include <charconv>
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

Connection::Connection(PGconn* conn) : m_conn(conn), m_created(std::chrono::steady_clock::now()) {}

Result<Connection> Connection::connect(const std::string& conninfo, int connect_timeout_s) {
  // Keyword/value arrays with expand_dbname so that conninfo may be a URL or key=value string,
  // while the timeout and application name are ours.
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
  const std::string options = user_options.empty() ? "-c TimeZone=UTC" : user_options + " -c TimeZone=UTC";
  const char* keys[] = {"dbname", "connect_timeout", "application_name", "options", nullptr};
  const char* values[] = {conninfo.c_str(), timeout.c_str(), "vstore", options.c_str(), nullptr};
  PGconn* raw = PQconnectdbParams(keys, values, 1);
  if (raw == nullptr) {
    return fail(ErrorCode::internal, "postgresql: out of memory creating a connection");
  }
  Connection conn(raw);
  if (PQstatus(raw) != CONNECTION_OK) {
    std::string msg = trim_message(PQerrorMessage(raw));
    return fail(Error(ErrorCode::unavailable,
                      fmt::format("cannot connect to postgresql at {}: {}", redact_url(conninfo), msg), true));
  }
  // Quiet NOTICEs (e.g. "relation already exists, skipping") from reaching stderr.
  PQsetNoticeProcessor(raw, [](void*, const char*) {}, nullptr);
  return conn;
}

bool Connection::ok() const { return m_conn && PQstatus(m_conn.get()) == CONNECTION_OK; }

int Connection::server_version() const { return m_conn ? PQserverVersion(m_conn.get()) : 0; }

void Connection::forget_session_state() {
  m_prepared.clear();
  m_gucs.clear();
}

std::string Connection::quote_ident(std::string_view ident) { return quote_sql_identifier(ident); }

Result<PgResult> Connection::check(PGresult* res, std::string_view what) {
  const auto status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_COPY_IN ||
      status == PGRES_EMPTY_QUERY) {
    return PgResult(res);
  }
  Error err = error_from_pg(m_conn.get(), res, what);
  if (res) PQclear(res);
  return fail(std::move(err));
}

Result<PgResult> Connection::exec(std::string_view sql) {
  std::string text(sql);
  return check(PQexec(m_conn.get(), text.c_str()), "postgresql");
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
  std::vector<std::string> storage;
  ParamArrays a = to_arrays(params, storage);
  PGresult* res = PQexecParams(m_conn.get(), sql.c_str(), static_cast<int>(params.size()), a.types.data(),
                               a.values.data(), a.lengths.data(), a.formats.data(), binary_result ? 1 : 0);
  return check(res, "postgresql");
}

Result<PgResult> Connection::exec_prepared(const std::string& sql, std::span<const Param> params,
                                           bool binary_result) {
  auto it = m_prepared.find(sql);
  if (it == m_prepared.end()) {
    std::string name = fmt::format("vs_{}", m_prepared.size());
    std::vector<Oid> types;
    for (const Param& p : params) types.push_back(p.type);
    VS_TRY(check(PQprepare(m_conn.get(), name.c_str(), sql.c_str(), static_cast<int>(params.size()),
                           types.data()),
                 "postgresql prepare"));
    it = m_prepared.emplace(sql, std::move(name)).first;
  }
  std::vector<std::string> storage;
  ParamArrays a = to_arrays(params, storage);
  PGresult* res = PQexecPrepared(m_conn.get(), it->second.c_str(), static_cast<int>(params.size()),
                                 a.values.data(), a.lengths.data(), a.formats.data(), binary_result ? 1 : 0);
  return check(res, "postgresql");
}

Result<void> Connection::set_guc(const std::string& name, const std::string& value) {
  auto it = m_gucs.find(name);
  if (it != m_gucs.end() && it->second == value) return {};
  Param params[] = {Param::text(name), Param::text(value)};
  VS_TRY(exec_params("SELECT set_config($1, $2, false)", params));
  m_gucs[name] = value;
  return {};
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

namespace {
// Sends `data` to a COPY in progress, in chunks libpq accepts.
bool put_copy_data(PGconn* conn, std::string_view data) {
  constexpr std::size_t k_chunk = 1 << 20;
  for (std::size_t off = 0; off < data.size(); off += k_chunk) {
    const std::size_t len = std::min(k_chunk, data.size() - off);
    if (PQputCopyData(conn, data.data() + off, static_cast<int>(len)) != 1) return false;
  }
  return true;
}
}  // namespace

Result<std::int64_t> Connection::copy_in(const std::string& copy_sql, std::string_view data) {
  VS_TRY(check(PQexec(m_conn.get(), copy_sql.c_str()), "postgresql copy"));
  if (!put_copy_data(m_conn.get(), data)) return fail(error_from_pg(m_conn.get(), nullptr, "postgresql copy"));
  return copy_finish(nullptr);
}

Result<std::string> Connection::copy_out(const std::string& copy_sql) {
  PGresult* started = PQexec(m_conn.get(), copy_sql.c_str());
  if (PQresultStatus(started) != PGRES_COPY_OUT) {
    Error e = error_from_pg(m_conn.get(), started, "postgresql copy out");
    PQclear(started);
    return fail(std::move(e));
  }
  PQclear(started);
  std::string out;
  char* buf = nullptr;
  int n = 0;
  while ((n = PQgetCopyData(m_conn.get(), &buf, 0)) > 0) {
    out.append(buf, static_cast<std::size_t>(n));
    PQfreemem(buf);
  }
  std::optional<Error> first_error;
  if (n == -2) first_error = error_from_pg(m_conn.get(), nullptr, "postgresql copy out");
  while (PGresult* res = PQgetResult(m_conn.get())) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && !first_error) {
      first_error = error_from_pg(m_conn.get(), res, "postgresql copy out");
    }
    PQclear(res);
  }
  if (first_error) return fail(std::move(*first_error));
  return out;
}

Result<std::int64_t> Connection::copy_stream(const std::string& copy_sql,
                                             const std::function<Result<bool>(CopyWriter&)>& fill) {
  VS_TRY(check(PQexec(m_conn.get(), copy_sql.c_str()), "postgresql copy"));
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
    if (!put_copy_data(m_conn.get(), slice)) return fail(error_from_pg(m_conn.get(), nullptr, "postgresql copy"));
    if (last) break;
  }
  return copy_finish(nullptr);
}

Result<std::int64_t> Connection::copy_finish(const char* abort_message) {
  if (PQputCopyEnd(m_conn.get(), abort_message) != 1) {
    return fail(error_from_pg(m_conn.get(), nullptr, "postgresql copy"));
  }
  std::int64_t rows = 0;
  std::optional<Error> first_error;
  while (PGresult* res = PQgetResult(m_conn.get())) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
      if (!first_error) first_error = error_from_pg(m_conn.get(), res, "postgresql copy");
    } else {
      rows += PgResult(res).affected();
      continue;  // PgResult took ownership
    }
    PQclear(res);
  }
  if (first_error) return fail(std::move(*first_error));
  return rows;
}

}  // namespace vstore::pg
