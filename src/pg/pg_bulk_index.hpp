// SPDX-License-Identifier: Apache-2.0
// The bulk-load index steps of vstore/schema.hpp on a connection the caller already holds (the
// migration's own), so that a load does not open one more connection per step. Same contracts
// as the conninfo versions; `conninfo` is for the extra connections a build opens. Session
// settings a step changes are reset before it returns, on every connection it used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "pg/pg_conn.hpp"
#include "vstore/schema.hpp"

namespace vstore {

[[nodiscard]] Result<std::vector<std::string>> suspend_filter_indexes(pg::Connection& conn, const Config& config);
/// The filter indexes are built at once, one connection each: `conn`, then the `spare` ones
/// (open, idle connections to the same database the caller holds, such as a load's writers'),
/// then new ones.
[[nodiscard]] Result<std::vector<std::string>> restore_filter_indexes(pg::Connection& conn, std::span<pg::Connection> spare,
                                                                      const std::string& conninfo, const Config& config);

/// The most B-tree filter indexes vstore creates on a table (`schema up`, migration 2).
inline constexpr std::size_t k_filter_indexes = 3;
/// Also repairs what a killed bulk load left first (pg::clear_orphaned_builds), under the
/// table's bulk-load lock, which it waits for.
[[nodiscard]] Result<bool> restore_vector_index(pg::Connection& conn, const std::string& conninfo, const Config& config,
                                                const IndexBuildProgress& progress = {});

namespace pg {

/// The table's bulk-load lock (see pg_bulk_index.cpp), held while this lives: a session
/// advisory lock on a connection of its own. Move-only.
class BulkLoadLock {
 public:
  /// Takes the lock, waiting for it when `wait`; else nullopt when another session holds it.
  /// Errors: unavailable.
  [[nodiscard]] static Result<std::optional<BulkLoadLock>> acquire(const std::string& conninfo, const Config& config,
                                                                   bool wait);

 private:
  explicit BulkLoadLock(Connection conn) : m_conn(std::move(conn)) {}
  Connection m_conn;  // closing it releases the lock
};

/// With the table's bulk-load lock held: cancels the CREATE INDEX of `index` (the recorded
/// vector index) that other backends run on the table (their clients died: a live build holds
/// the lock), waits for them to end, and drops an invalid index of that name they left. Returns
/// how many builds it stopped. Errors: conflict (a build that would not stop), unavailable.
[[nodiscard]] Result<std::int64_t> clear_orphaned_builds(Connection& conn, const Config& config, const std::string& index);

}  // namespace pg

}  // namespace vstore
