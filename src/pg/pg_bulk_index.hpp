// SPDX-License-Identifier: Apache-2.0
// The bulk-load index steps of vstore/schema.hpp on a connection the caller already holds (the
// migration's own), so that a load does not open one more connection per step. Same contracts
// as the conninfo versions; `conninfo` is for the extra connections a build opens. Session
// settings a step changes are reset before it returns, on every connection it used.
#pragma once

#include <cstddef>
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
[[nodiscard]] Result<bool> restore_vector_index(pg::Connection& conn, const std::string& conninfo, const Config& config,
                                                const IndexBuildProgress& progress = {});

}  // namespace vstore
