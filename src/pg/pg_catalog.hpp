// SPDX-License-Identifier: Apache-2.0
// Catalog look-ups shared by the schema migrations, the store and the benchmarks.
#pragma once

#include <string>

#include "pg/pg_conn.hpp"

namespace vstore::pg {

/// The HNSW or IVFFlat index on `table`.embedding: its name, access method ("hnsw" or
/// "ivfflat") and oid; empty (oid 0) when there is none. A valid index is preferred. Look the
/// index up again by `oid`: its name, given to to_regclass(), would be parsed as SQL (case folds).
struct VectorIndex {
  std::string name;
  std::string method;
  unsigned int oid = 0;
};

[[nodiscard]] Result<VectorIndex> find_vector_index(Connection& conn, const std::string& table);

}  // namespace vstore::pg
