// SPDX-License-Identifier: Apache-2.0
// Catalog look-ups shared by the schema migrations, the store and the benchmarks.
#include "pg/pg_catalog.hpp"

#include <charconv>

namespace vstore::pg {

Result<VectorIndex> find_vector_index(Connection& conn, const std::string& table) {
  Param p[] = {Param::text(table)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params(
                                  "SELECT c.relname, am.amname, c.oid FROM pg_index i JOIN pg_class c ON c.oid = "
                                  "i.indexrelid JOIN pg_am am ON am.oid = c.relam JOIN pg_attribute a ON a.attrelid = "
                                  "i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass(quote_ident($1)) "
                                  "AND a.attname = 'embedding' AND am.amname IN ('hnsw','ivfflat') "
                                  "ORDER BY i.indisvalid DESC, c.oid LIMIT 1",
                                  p));
  if (res.rows() == 0) return VectorIndex{};
  unsigned int oid = 0;
  const std::string_view text = res.get(0, 2);
  std::from_chars(text.data(), text.data() + text.size(), oid);
  return VectorIndex{res.text(0, 0), res.text(0, 1), oid};
}

}  // namespace vstore::pg
