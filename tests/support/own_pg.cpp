// SPDX-License-Identifier: Apache-2.0
// Test support implementation: OwnPgServer over vstore's EmbeddedPostgres.
#include "support/own_pg.hpp"

#include <fstream>
#include <iterator>
#include <system_error>
#include <utility>

#include <fmt/format.h>

#include "pg/pg_conn.hpp"
#include "vstore/embedded_pg.hpp"

namespace vstore::testing {

std::string percent_encode(const std::string& text) {
  std::string out;
  for (const char c : text) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                       c == '.' || c == '_' || c == '~';
    if (plain) {
      out += c;
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned>(static_cast<unsigned char>(c)));
    }
  }
  return out;
}

OwnPgServer::OwnPgServer(std::filesystem::path root) : m_root(std::move(root)) {
  EmbeddedOptions opts;
  opts.tcp = true;
  opts.fsync = false;
  opts.shared_buffers = "32MB";
  opts.maintenance_work_mem = "64MB";
  EmbeddedPostgres pg(m_root);
  auto st = pg.start(opts);
  if (!st) {
    m_error = st.error().to_string();
    return;
  }
  m_port = st->port;
  m_socket_dir = st->socket_dir.string();
  m_running = true;
}

OwnPgServer::~OwnPgServer() {
  (void)stop();
  EmbeddedPostgres pg(m_root);
  (void)pg.destroy();
  std::error_code ec;
  std::filesystem::remove_all(m_root, ec);
}

std::string OwnPgServer::stop() {
  if (!m_running) return "";
  m_running = false;
  EmbeddedPostgres pg(m_root);
  auto stopped = pg.stop();
  return stopped ? "" : stopped.error().to_string();
}

std::string OwnPgServer::superuser_password() const {
  std::ifstream in(m_root / "password");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

std::string OwnPgServer::admin_conninfo(const std::string& dbname) const {
  return fmt::format("host='{}' port={} user=vstore dbname='{}'", m_socket_dir, m_port, dbname);
}

std::string OwnPgServer::url(const std::string& user, const std::string& password, const std::string& dbname,
                             const std::string& query, const std::string& host) const {
  return fmt::format("postgresql://{}:{}@{}:{}/{}{}{}", percent_encode(user), percent_encode(password), host, m_port,
                     percent_encode(dbname), query.empty() ? "" : "?", query);
}

std::string OwnPgServer::admin_sql(const std::string& dbname, const std::string& sql) const {
  auto conn = pg::Connection::connect(admin_conninfo(dbname));
  if (!conn) return conn.error().to_string();
  auto res = conn->exec(sql);
  return res ? "" : res.error().to_string();
}

std::string OwnPgServer::create_login_role(const std::string& role, const std::string& password) const {
  auto conn = pg::Connection::connect(admin_conninfo());
  if (!conn) return conn.error().to_string();
  auto verifier = conn->encrypt_password(role, password);
  if (!verifier) return verifier.error().to_string();
  if (verifier->find_first_of("'\\") != std::string::npos) return "the verifier holds a quote or a backslash";
  auto res = conn->exec(fmt::format("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                                    "NOBYPASSRLS PASSWORD '{}'",
                                    pg::Connection::quote_ident(role), *verifier));
  return res ? "" : res.error().to_string();
}

}  // namespace vstore::testing
