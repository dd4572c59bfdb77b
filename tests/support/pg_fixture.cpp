// SPDX-License-Identifier: Apache-2.0
// Test support implementation: the shared PostgreSQL server and small SQL helpers.
#include "support/pg_fixture.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <utility>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "pg/pg_conn.hpp"
#include "vstore/embedded_pg.hpp"

namespace vstore::testing {
namespace {

PgServer* g_server = nullptr;  // the running server, stopped by die() so an abort leaves none behind

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "test fixture: %s\n", why.c_str());
  std::fflush(stderr);
  if (PgServer* s = std::exchange(g_server, nullptr)) s->shutdown();
  std::abort();
}

class StopServer : public ::testing::Environment {
 public:
  void TearDown() override { PgServer::instance().shutdown(); }
};

}  // namespace

PgServer::PgServer() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "vstore-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) die("mkdtemp failed");
  chmod(tmpl.c_str(), 0755);  // the server user must reach it when we run as root
  m_root = tmpl;
  EmbeddedPostgres pg(std::filesystem::path(m_root) / "pg");
  EmbeddedOptions opts;
  opts.fsync = false;
  opts.shared_buffers = "256MB";
  auto st = pg.start(opts);
  if (!st) die("cannot start postgresql: " + st.error().to_string());
  m_port = st->port;
  m_socket_dir = st->socket_dir.string();
  m_running = true;
}

PgServer& PgServer::instance() {
  static PgServer* server = [] {
    auto* s = new PgServer();
    g_server = s;
    ::testing::AddGlobalTestEnvironment(new StopServer());
    return s;
  }();
  return *server;
}

std::string PgServer::admin_conninfo() const {
  return fmt::format("host={} port={} user=vstore dbname=postgres", m_socket_dir, m_port);
}

std::string PgServer::create_database(const std::string& prefix) {
  const std::string name = fmt::format("{}_{}_{}", prefix, getpid(), m_next_db++);
  auto conn = pg::Connection::connect(admin_conninfo());
  if (!conn) die(conn.error().to_string());
  auto res = conn->exec(fmt::format("CREATE DATABASE {}", pg::Connection::quote_ident(name)));
  if (!res) die(res.error().to_string());
  return fmt::format("host={} port={} user=vstore dbname={}", m_socket_dir, m_port, name);
}

void PgServer::drop_database(const std::string& conninfo) {
  const auto pos = conninfo.rfind("dbname=");
  if (pos == std::string::npos) return;
  const std::string name = conninfo.substr(pos + 7);
  auto conn = pg::Connection::connect(admin_conninfo());
  if (!conn) return;
  (void)conn->exec(fmt::format("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg::Connection::quote_ident(name)));
}

void PgServer::shutdown() {
  if (!m_running) return;
  m_running = false;
  EmbeddedPostgres pg(std::filesystem::path(m_root) / "pg");
  (void)pg.stop();
  (void)pg.destroy();
  std::error_code ec;
  std::filesystem::remove_all(m_root, ec);
}

void PgServer::restart() {
  EmbeddedPostgres pg(std::filesystem::path(m_root) / "pg");
  if (auto stopped = pg.stop(); !stopped) die("cannot stop postgresql: " + stopped.error().to_string());
  EmbeddedOptions opts;
  opts.fsync = false;
  opts.shared_buffers = "256MB";
  opts.port = m_port;
  auto st = pg.start(opts);
  if (!st) die("cannot restart postgresql: " + st.error().to_string());
}

std::string PgServer::log_path() const { return (std::filesystem::path(m_root) / "pg" / "postgres.log").string(); }

Config test_config(const std::string& conninfo, int dim) {
  Config cfg;
  cfg.database_url = conninfo;
  cfg.embedding_dim = dim;
  cfg.embedding_provider = "hash";
  cfg.pool.size = 4;
  return cfg;
}

std::string sql_value(const std::string& conninfo, const std::string& sql) {
  auto conn = pg::Connection::connect(conninfo);
  if (!conn) die(conn.error().to_string());
  auto res = conn->exec(sql);
  if (!res) die(fmt::format("{}: {}", sql, res.error().to_string()));
  if (res->rows() == 0 || res->cols() == 0 || res->is_null(0, 0)) return "";
  return res->text(0, 0);
}

}  // namespace vstore::testing
