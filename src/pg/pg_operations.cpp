// SPDX-License-Identifier: Apache-2.0
// The operations log: rows of vstore_operations (schema migration 7).
#include "vstore/operations.hpp"

#include <fmt/format.h>

#include "pg/pg_conn.hpp"

namespace vstore {
namespace {

using pg::Connection;
using pg::Param;
using pg::PgResult;
using nlohmann::json;

// Times leave PostgreSQL as UTC ISO 8601 whatever the session's TimeZone.
constexpr const char* k_iso = "YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"";

Result<Connection> connect_with_log(const std::string& conninfo) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY_ASSIGN(PgResult exists, conn.exec("SELECT to_regclass('vstore_operations') IS NOT NULL"));
  if (exists.get(0, 0) != "t") {
    return fail(ErrorCode::conflict,
                "the operations log vstore_operations does not exist (schema version 7); run `vstore schema up`");
  }
  return conn;
}

std::string iso(const std::string& column) {
  return fmt::format("to_char({} AT TIME ZONE 'UTC', '{}')", column, k_iso);
}

}  // namespace

Result<std::int64_t> begin_operation(const std::string& conninfo, const Config& config, const std::string& kind) {
  VS_TRY_ASSIGN(Connection conn, connect_with_log(conninfo));
  Param p[] = {Param::text(config.table), Param::text(kind)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("INSERT INTO vstore_operations (table_name, kind) VALUES ($1, $2) "
                                               "RETURNING id",
                                               p));
  return std::stoll(res.text(0, 0));
}

Result<void> finish_operation(const std::string& conninfo, std::int64_t id, bool succeeded, std::optional<bool> passed,
                              const std::string& report_path, const json& summary) {
  VS_TRY_ASSIGN(Connection conn, connect_with_log(conninfo));
  const std::string id_text = std::to_string(id);
  const std::string summary_text = summary.dump();
  Param p[] = {Param::text(id_text), Param::text(succeeded ? "succeeded" : "failed"),
               passed ? Param::text(*passed ? "t" : "f") : Param::null_value(),
               report_path.empty() ? Param::null_value() : Param::text(report_path), Param::text(summary_text)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("UPDATE vstore_operations SET finished_at = clock_timestamp(), "
                                               "status = $2, passed = $3::boolean, report_path = $4, "
                                               "summary = $5::jsonb WHERE id = $1::bigint RETURNING id",
                                               p));
  if (res.rows() == 0) return fail(ErrorCode::not_found, fmt::format("operation {} is not in vstore_operations", id));
  return {};
}

Result<std::optional<OperationRecord>> latest_operation(const std::string& conninfo, const Config& config,
                                                        const std::string& kind, bool succeeded_only) {
  VS_TRY_ASSIGN(Connection conn, connect_with_log(conninfo));
  Param p[] = {Param::text(config.table), Param::text(kind), Param::text(succeeded_only ? "t" : "f")};
  VS_TRY_ASSIGN(PgResult res,
                conn.exec_params(fmt::format("SELECT id, table_name, kind, {}, {}, status, passed, report_path, "
                                             "summary::text FROM vstore_operations WHERE table_name = $1 AND kind = $2 "
                                             "AND finished_at IS NOT NULL AND (NOT $3::boolean OR status = 'succeeded') "
                                             "ORDER BY finished_at DESC, id DESC LIMIT 1",
                                             iso("started_at"), iso("finished_at")),
                                 p));
  if (res.rows() == 0) return std::optional<OperationRecord>();
  OperationRecord r;
  r.id = std::stoll(res.text(0, 0));
  r.table = res.text(0, 1);
  r.kind = res.text(0, 2);
  r.started_at = res.text(0, 3);
  if (!res.is_null(0, 4)) r.finished_at = res.text(0, 4);
  r.status = res.text(0, 5);
  if (!res.is_null(0, 6)) r.passed = res.text(0, 6) == "t";
  if (!res.is_null(0, 7)) r.report_path = res.text(0, 7);
  r.summary = json::parse(res.text(0, 8), nullptr, false);
  if (r.summary.is_discarded()) r.summary = json::object();
  return std::optional<OperationRecord>(std::move(r));
}

Result<std::optional<std::string>> last_vector_write(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, connect_with_log(conninfo));
  Param p[] = {Param::text(config.table)};
  VS_TRY_ASSIGN(
      PgResult res,
      conn.exec_params(fmt::format("SELECT {} FROM (SELECT max(t) AS t FROM ("
                                   "SELECT max(finished_at) AS t FROM vstore_operations WHERE table_name = $1 "
                                   "AND kind IN ('migrate-chroma', 'reindex') AND status = 'succeeded' "
                                   "UNION ALL SELECT max(last_write_at) FROM vstore_dual_stats WHERE table_name = $1 "
                                   "UNION ALL SELECT max(enqueued_at) FROM vstore_outbox WHERE table_name = $1"
                                   ") AS w) AS latest WHERE t IS NOT NULL",
                                   iso("t")),
                       p));
  if (res.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(res.text(0, 0));
}

}  // namespace vstore
