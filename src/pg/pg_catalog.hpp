// SPDX-License-Identifier: Apache-2.0
// Catalog look-ups shared by the schema migrations, the store and the benchmarks.
#pragma once

#include <string>

#include "pg/pg_conn.hpp"

namespace vstore::pg {

/// The HNSW or IVFFlat index on `table`.embedding: its name and access method ("hnsw" or
/// "ivfflat"); both empty when there is none.
struct VectorIndex {
  std::string name;
  std::string method;
};

[[nodiscard]] Result<VectorIndex> find_vector_index(Connection& conn, const std::string& table);

}  // namespace vstore::pg
