// SPDX-License-Identifier: Apache-2.0
// The bulk-load lock and the repair of what a killed bulk load left behind. Design:
// - A bulk load (ingest --bulk, migrate-chroma) drops the vector index migration 3 created and
//   builds it at the end. Killed in between, it leaves the index dropped; killed during the
//   build, the server goes on running its CREATE INDEX (it only notices the client is gone when
//   the statement ends), and a next run that builds the index too collides with it
//   (pg_class_relname_nsp_index) or waits behind it.
// - The table's bulk-load lock is a session advisory lock (k_bulk_lock_key, hashtext(table))
//   taken on a connection of its own that only waits: when the client dies, the server sees that
//   idle connection close at once and releases the lock, whatever its other backends still run.
//   A load holds it from before it drops the index until just before it rebuilds it; every build
//   of the index (restore_vector_index(): end of a load, `schema up`, repair) holds it while it runs.
// - Whoever holds the lock knows that any CREATE INDEX of the recorded index that another backend
//   runs belongs to a client that died: it cancels it (pg_cancel_backend, then
//   pg_terminate_backend if it does not end), waits for it to end, and drops an invalid index of
//   that name left behind, before it builds the index itself.
#include "pg/pg_bulk_index.hpp"

#include <chrono>
#include <thread>

#include <fmt/format.h>

#include "vstore/bulk_load.hpp"

namespace vstore {
namespace pg {
namespace {

constexpr std::int32_t k_bulk_lock_key = 0x76736c64;  // "vsld"
constexpr auto k_cancel_wait = std::chrono::seconds(30);

// The backends other than this one running a CREATE INDEX of `index` on `table`.
Result<std::vector<std::string>> orphan_builds(Connection& conn, const std::string& table, const std::string& index) {
  Param p[] = {Param::text(table), Param::text(index)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("SELECT a.pid::text FROM pg_stat_activity a WHERE a.pid <> "
                                               "pg_backend_pid() AND a.datname = current_database() AND a.state = "
                                               "'active' AND a.query ~* '^\\s*create\\s+index' AND position($2 in a.query) > 0 "
                                               "AND EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.relation = "
                                               "to_regclass(quote_ident($1))) ORDER BY a.pid",
                                               p));
  std::vector<std::string> pids;
  for (int r = 0; r < res.rows(); ++r) pids.push_back(res.text(r, 0));
  return pids;
}

}  // namespace

Result<std::optional<BulkLoadLock>> BulkLoadLock::acquire(const std::string& conninfo, const Config& config, bool wait) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  const std::string key = std::to_string(k_bulk_lock_key);
  Param p[] = {Param::text(key), Param::text(config.table)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params(wait ? "SELECT pg_advisory_lock($1::int, hashtext($2))::text, true"
                                                    : "SELECT '', pg_try_advisory_lock($1::int, hashtext($2))",
                                               p));
  if (res.get(0, 1) != "t") return std::optional<BulkLoadLock>();
  return std::optional<BulkLoadLock>(BulkLoadLock(std::move(conn)));
}

Result<std::int64_t> clear_orphaned_builds(Connection& conn, const Config& config, const std::string& index) {
  if (index.empty()) return 0;
  VS_TRY_ASSIGN(std::vector<std::string> pids, orphan_builds(conn, config.table, index));
  for (const auto& pid : pids) {
    Param p[] = {Param::text(pid)};
    VS_TRY(conn.exec_params("SELECT pg_cancel_backend($1::int)", p));
  }
  const auto deadline = std::chrono::steady_clock::now() + k_cancel_wait;
  bool terminated = false;
  while (!pids.empty()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    VS_TRY_ASSIGN(std::vector<std::string> left, orphan_builds(conn, config.table, index));
    if (left.empty()) break;
    if (!terminated && std::chrono::steady_clock::now() > deadline) {
      for (const auto& pid : left) {
        Param p[] = {Param::text(pid)};
        VS_TRY(conn.exec_params("SELECT pg_terminate_backend($1::int)", p));
      }
      terminated = true;
    } else if (terminated && std::chrono::steady_clock::now() > deadline + k_cancel_wait) {
      return fail(ErrorCode::conflict, fmt::format("the build of index {} by backend {} could not be stopped; stop it "
                                                   "with pg_terminate_backend({}) and retry",
                                                   index, left.front(), left.front()));
    }
  }
  // A build that ended without finishing may leave an invalid index of that name (CREATE INDEX
  // CONCURRENTLY does): it would take the name and serve no query.
  Param p[] = {Param::text(config.table), Param::text(index)};
  VS_TRY_ASSIGN(PgResult invalid, conn.exec_params("SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE "
                                                   "i.indrelid = to_regclass(quote_ident($1)) AND c.relname = $2 AND NOT "
                                                   "i.indisvalid",
                                                   p));
  if (invalid.rows() > 0) VS_TRY(conn.exec(fmt::format("DROP INDEX IF EXISTS {}", Connection::quote_ident(index))));
  return static_cast<std::int64_t>(pids.size());
}

}  // namespace pg

struct BulkLoad::Impl {
  std::string conninfo;
  Config config;
  std::optional<pg::BulkLoadLock> lock;
  std::string dropped;
};

BulkLoad::BulkLoad(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
BulkLoad::BulkLoad(BulkLoad&&) noexcept = default;
BulkLoad& BulkLoad::operator=(BulkLoad&&) noexcept = default;
BulkLoad::~BulkLoad() = default;

const std::string& BulkLoad::dropped_index() const { return m_impl->dropped; }

Result<BulkLoad> BulkLoad::begin(const std::string& conninfo, const Config& config) {
  auto impl = std::make_unique<Impl>();
  impl->conninfo = conninfo;
  impl->config = config;
  VS_TRY_ASSIGN(impl->lock, pg::BulkLoadLock::acquire(conninfo, config, false));
  if (!impl->lock) {
    return fail(ErrorCode::conflict, fmt::format("another vstore bulk load of table {} is running; wait for it to finish",
                                                 config.table));
  }
  VS_TRY_ASSIGN(const std::string recorded, recorded_vector_index(conninfo, config));
  VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo));
  VS_TRY(pg::clear_orphaned_builds(conn, config, recorded));
  VS_TRY_ASSIGN(impl->dropped, suspend_vector_index(conninfo, config));
  return BulkLoad(std::move(impl));
}

Result<bool> BulkLoad::finish(const IndexBuildProgress& progress) {
  m_impl->lock.reset();  // restore_vector_index takes it on a connection of its own
  return restore_vector_index(m_impl->conninfo, m_impl->config, progress);
}

Result<bool> repair_vector_index(const std::string& conninfo, const Config& config, const IndexBuildProgress& progress) {
  {
    VS_TRY_ASSIGN(std::optional<pg::BulkLoadLock> probe, pg::BulkLoadLock::acquire(conninfo, config, false));
    if (!probe) return false;  // a live bulk load: it builds the index when it is done
  }
  return restore_vector_index(conninfo, config, progress);
}

}  // namespace vstore
