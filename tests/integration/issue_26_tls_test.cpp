// SPDX-License-Identifier: Apache-2.0
// Issue 26, TLS: a PostgreSQL 15 server of this test's own with ssl on, a self-signed
// certificate made here with the openssl command, and a pg_hba.conf that admits TCP sessions
// only over TLS. vstore passes DATABASE_URL's libpq options through: sslmode=require works,
// verify-full works with the certificate as sslrootcert and the host name it names, and fails
// clearly (never showing the password) with another root certificate or another host name;
// pg_stat_ssl shows the session encrypted; application_name reaches pg_stat_activity.
#include <gtest/gtest.h>

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "support/cli_runner.hpp"
#include "support/own_pg.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::pg::Connection;
using vstore::testing::CmdResult;
using vstore::testing::OwnPgServer;

constexpr const char* k_role = "vs_tls";
constexpr const char* k_password = "tls-Pw/7q@x";
constexpr const char* k_db = "tlsdb";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A self-signed certificate for `name` (also its subjectAltName) and its key, in `dir`.
bool make_certificate(const fs::path& dir, const std::string& stem, const std::string& name) {
  const std::string cmd = fmt::format(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj '/CN={}' "
      "-addext 'subjectAltName=DNS:{}' -keyout '{}/{}.key' -out '{}/{}.crt' >'{}/{}.log' 2>&1",
      name, name, dir.string(), stem, dir.string(), stem, dir.string(), stem);
  return std::system(cmd.c_str()) == 0;
}

class Issue26Tls : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "vstore-i26tls-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    chmod(tmpl.c_str(), 0755);
    s_dir = tmpl;
    ASSERT_TRUE(make_certificate(s_dir, "server", "localhost")) << "openssl failed: " << (s_dir / "server.log");
    ASSERT_TRUE(make_certificate(s_dir, "other", "localhost")) << "openssl failed: " << (s_dir / "other.log");
    s_pg = std::make_unique<OwnPgServer>(s_dir / "pg");
    ASSERT_TRUE(s_pg->running()) << s_pg->error();

    // The key and certificate go into the data directory, owned by the server's user with mode
    // 0600 (PostgreSQL refuses a key others can read).
    const fs::path data = s_pg->data_dir();
    for (const char* file : {"server.crt", "server.key"}) {
      fs::copy_file(s_dir / file, data / file, fs::copy_options::overwrite_existing);
      chmod((data / file).c_str(), 0600);
      if (geteuid() == 0) {
        const passwd* pw = getpwnam("postgres");
        ASSERT_NE(pw, nullptr);
        ASSERT_EQ(chown((data / file).c_str(), pw->pw_uid, pw->pw_gid), 0);
      }
    }
    // TCP only over TLS; the socket as before. Written over the file vstore wrote at start.
    {
      std::ofstream hba(data / "pg_hba.conf", std::ios::trunc);
      hba << "local all all trust\n"
             "hostssl all all 127.0.0.1/32 scram-sha-256\n";
    }
    ASSERT_EQ(s_pg->admin_sql("postgres", "ALTER SYSTEM SET ssl_cert_file = 'server.crt'"), "");
    ASSERT_EQ(s_pg->admin_sql("postgres", "ALTER SYSTEM SET ssl_key_file = 'server.key'"), "");
    ASSERT_EQ(s_pg->admin_sql("postgres", "ALTER SYSTEM SET ssl = on"), "");
    ASSERT_EQ(s_pg->admin_sql("postgres", "SELECT pg_reload_conf()"), "");
    // The postmaster reloads on its own time; new sessions see the new setting.
    std::string ssl;
    for (int attempt = 0; attempt < 100 && ssl != "on"; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      auto conn = Connection::connect(s_pg->admin_conninfo());
      ASSERT_TRUE(conn) << conn.error().to_string();
      auto res = conn->exec("SHOW ssl");
      ASSERT_TRUE(res) << res.error().to_string();
      ssl = res->text(0, 0);
    }
    ASSERT_EQ(ssl, "on") << "the server did not turn ssl on; its log: " << s_pg->log_path();

    ASSERT_EQ(s_pg->admin_sql("postgres", fmt::format("CREATE DATABASE {}", k_db)), "");
    ASSERT_EQ(s_pg->create_login_role(k_role, k_password), "");
    ASSERT_EQ(s_pg->admin_sql(k_db, fmt::format("CREATE EXTENSION vector; GRANT CREATE ON SCHEMA public TO {}", k_role)), "");
  }
  static void TearDownTestSuite() {
    // The server stops at the end: afterwards its port answers nobody.
    if (s_pg && s_pg->running()) {
      const int port = s_pg->port();
      EXPECT_EQ(s_pg->stop(), "");
      auto after = Connection::connect(fmt::format("host=127.0.0.1 port={} user=vstore dbname=postgres sslmode=disable", port), 2);
      EXPECT_FALSE(after) << "the server still answers on port " << port << " after it was stopped";
    }
    s_pg.reset();
    std::error_code ec;
    fs::remove_all(s_dir, ec);
  }

  static std::string url(const std::string& query, const std::string& host = "127.0.0.1",
                         const std::string& password = k_password) {
    return s_pg->url(k_role, password, k_db, query, host);
  }
  CmdResult run(const std::string& database_url, const std::string& args) {
    return vstore::testing::run_vstore(s_dir.string(), args, fmt::format("DATABASE_URL='{}'", database_url));
  }
  // What the session's own row of pg_stat_ssl says: "true TLSv1.3" when encrypted.
  static std::string session_ssl(Connection& conn) {
    auto res = conn.exec("SELECT ssl::text || ' ' || coalesce(version, '-') FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    if (!res) return res.error().to_string();
    return res->text(0, 0);
  }
  // The password must appear in no form, nor the URL that holds it.
  static void expect_no_password(const std::string& text) {
    for (const std::string& secret : {std::string(k_password), vstore::testing::percent_encode(k_password)}) {
      EXPECT_FALSE(contains(text, secret)) << "the password shows: " << text;
    }
  }

  static inline fs::path s_dir;
  static inline std::unique_ptr<OwnPgServer> s_pg;
};

TEST_F(Issue26Tls, SslmodeRequireEncryptsTheSessionAndTheCliWorksOverIt) {
  const std::string require = url("sslmode=require");
  auto conn = Connection::connect(require);
  ASSERT_TRUE(conn) << conn.error().to_string();
  EXPECT_TRUE(session_ssl(*conn).starts_with("true TLSv1.")) << session_ssl(*conn);

  // The CLI through the same URL: the server admits TCP only over TLS, so each success was
  // encrypted.
  CmdResult up = run(require, "schema up");
  ASSERT_EQ(up.code, 0) << up.out << up.err;
  CmdResult health = run(require, "health --json");
  EXPECT_EQ(health.code, 0) << health.out << health.err;
  EXPECT_TRUE(json::parse(health.out, nullptr, false).value("healthy", false)) << health.out;

  // Without TLS the server admits nobody over TCP, and the error says where it came from.
  CmdResult plain = run(url("sslmode=disable"), "health");
  EXPECT_EQ(plain.code, 1) << plain.out;
  EXPECT_TRUE(contains(plain.err, "pg_hba.conf")) << plain.err;
  expect_no_password(plain.out + plain.err);
}

TEST_F(Issue26Tls, VerifyFullWorksWithTheCertificateAndHostItNamesAndFailsClearlyOtherwise) {
  const std::string root = (s_dir / "server.crt").string();
  // The right root certificate and the host name in the certificate (hostaddr skips the name
  // lookup, which could also give ::1, where the server does not listen).
  const std::string good = url(fmt::format("sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1", root), "localhost");
  auto conn = Connection::connect(good);
  ASSERT_TRUE(conn) << conn.error().to_string();
  EXPECT_TRUE(session_ssl(*conn).starts_with("true TLSv1.")) << session_ssl(*conn);
  CmdResult status = run(good, "schema status --json");
  EXPECT_EQ(status.code, 0) << status.out << status.err;

  // Another root certificate: the server's certificate cannot be verified.
  const std::string other = (s_dir / "other.crt").string();
  CmdResult wrong_root =
      run(url(fmt::format("sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1", other), "localhost"), "health");
  EXPECT_EQ(wrong_root.code, 1) << wrong_root.out;
  EXPECT_TRUE(contains(wrong_root.err, "the server's TLS certificate could not be verified (certificate verify failed)"))
      << wrong_root.err;
  EXPECT_TRUE(contains(wrong_root.err, fmt::format("no certificate in sslrootcert ({}) signed it", other)))
      << "the error should name the setting and file to check: " << wrong_root.err;
  expect_no_password(wrong_root.out + wrong_root.err);

  // The right root certificate, but a host name the certificate does not name.
  CmdResult wrong_host = run(url(fmt::format("sslmode=verify-full&sslrootcert={}", root), "127.0.0.1"), "health");
  EXPECT_EQ(wrong_host.code, 1) << wrong_host.out;
  EXPECT_TRUE(contains(wrong_host.err, "the server's TLS certificate does not match host name 127.0.0.1")) << wrong_host.err;
  expect_no_password(wrong_host.out + wrong_host.err);

  // verify-ca checks the signature only: the same address passes.
  auto ca = Connection::connect(url(fmt::format("sslmode=verify-ca&sslrootcert={}", root), "127.0.0.1"));
  ASSERT_TRUE(ca) << ca.error().to_string();
  EXPECT_TRUE(session_ssl(*ca).starts_with("true TLSv1.")) << session_ssl(*ca);

  // A wrong password over TLS: refused, and the password is not in the error.
  CmdResult bad_password =
      run(url(fmt::format("sslmode=verify-full&sslrootcert={}&hostaddr=127.0.0.1", root), "localhost", "not-" + std::string(k_password)),
          "health --json");
  EXPECT_EQ(bad_password.code, 1) << bad_password.out;
  EXPECT_TRUE(contains(bad_password.out + bad_password.err, "password authentication failed for user vs_tls"))
      << bad_password.out << bad_password.err;
  expect_no_password(bad_password.out + bad_password.err);
}

TEST_F(Issue26Tls, OtherLibpqOptionsInTheUrlReachTheServer) {
  // application_name and connect_timeout from the URL win over vstore's own defaults.
  auto conn = Connection::connect(url("sslmode=require&application_name=vstore-i26-app&connect_timeout=7"));
  ASSERT_TRUE(conn) << conn.error().to_string();
  auto res = conn->exec("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()");
  ASSERT_TRUE(res) << res.error().to_string();
  EXPECT_EQ(res->text(0, 0), "vstore-i26-app");
  // Without one, sessions still say they are vstore's.
  auto plain = Connection::connect(url("sslmode=require"));
  ASSERT_TRUE(plain) << plain.error().to_string();
  auto name = plain->exec("SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()");
  ASSERT_TRUE(name) << name.error().to_string();
  EXPECT_EQ(name->text(0, 0), "vstore");
  // `options` passes session settings (vstore keeps its statement timeout and time zone beside them).
  auto opts = Connection::connect(url("sslmode=require&options=-c%20work_mem%3D7MB"));
  ASSERT_TRUE(opts) << opts.error().to_string();
  auto mem = opts->exec("SHOW work_mem");
  ASSERT_TRUE(mem) << mem.error().to_string();
  EXPECT_EQ(mem->text(0, 0), "7MB");
}

}  // namespace
