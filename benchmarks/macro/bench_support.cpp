// SPDX-License-Identifier: Apache-2.0
#include "macro/bench_support.hpp"

#include <string_view>

#include <fmt/format.h>

#include "pg/pg_conn.hpp"

namespace vstore::bench_support {

using pg::Connection;

std::string with_dbname(const std::string& conninfo, const std::string& dbname) {
  for (std::string_view scheme : {"postgresql://", "postgres://"}) {
    if (!conninfo.starts_with(scheme)) continue;
    const std::size_t path = conninfo.find_first_of("/?", scheme.size());
    if (path == std::string::npos) return conninfo + "/" + dbname;
    const std::size_t query = conninfo.find('?', path);
    return conninfo.substr(0, path) + "/" + dbname + (query == std::string::npos ? "" : conninfo.substr(query));
  }
  return conninfo + (conninfo.empty() ? "" : " ") + "dbname=" + dbname;
}

ScratchDatabase::~ScratchDatabase() {
  if (!m_created) return;
  if (auto conn = Connection::connect(m_admin)) {
    (void)conn->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", Connection::quote_ident(m_name)));
  }
}

Result<std::string> ScratchDatabase::create() {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(m_admin));
  auto made = conn.exec(fmt::format("CREATE DATABASE {}", Connection::quote_ident(m_name)));
  if (!made) return fail(made.error().with_context(fmt::format("cannot create benchmark database {}", m_name)));
  m_created = true;
  return with_dbname(m_admin, m_name);
}

}  // namespace vstore::bench_support
