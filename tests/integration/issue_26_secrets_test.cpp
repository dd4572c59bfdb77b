// SPDX-License-Identifier: Apache-2.0
// Issue 26, secrets: with distinctive secrets set (a database password, the embedded cluster's
// generated password, OPENAI_API_KEY, VSTORE_API_TOKEN, CHROMA_TOKEN), commands that succeed
// and commands that fail (wrong password, unreachable server, malformed URLs holding the
// password, an embeddings server that echoes the key back, refused and accepted service
// requests) print text, JSON, reports and logs; every captured stdout and stderr, every written
// report, the service's access log, the server's log and vstore's own tables are searched for
// each secret, as given and percent-encoded. None may appear.
#include <httplib.h>

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/own_pg.hpp"
#include "support/serve_process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::OwnPgServer;
using vstore::testing::percent_encode;

constexpr const char* k_role = "vs_sec";
constexpr const char* k_db = "secdb";
// Every secret holds "Sq26", which nothing else in this test does, and characters that
// percent-encoding changes, so that both forms and any piece cut at a special character show.
constexpr const char* k_db_password = "Sq26dbpw@x/y:z";
constexpr const char* k_openai_key = "sk-Sq26oaikey+4f1e";
constexpr const char* k_api_token = "Sq26apitok/77ab";
constexpr const char* k_chroma_token = "Sq26chrtok=90cd";
constexpr const char* k_marker = "Sq26";

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// An OpenAI-compatible embeddings endpoint that refuses every request with 401 and, as some
// proxies do, quotes the Authorization header it got in its error message.
class EchoingEmbeddings {
 public:
  EchoingEmbeddings() {
    m_server.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth == std::string("Bearer ") + k_openai_key) ++m_saw_key;
      res.status = 401;
      res.set_content(json{{"error", {{"message", "Incorrect API key provided: " + auth.substr(auth.find(' ') + 1)},
                                      {"type", "invalid_request_error"}}}}
                          .dump(),
                      "application/json");
    });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    while (!m_server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~EchoingEmbeddings() {
    m_server.stop();
    m_thread.join();
  }
  EchoingEmbeddings(const EchoingEmbeddings&) = delete;
  EchoingEmbeddings& operator=(const EchoingEmbeddings&) = delete;
  [[nodiscard]] std::string url() const { return fmt::format("http://127.0.0.1:{}", m_port); }
  [[nodiscard]] int saw_key() const { return m_saw_key; }

 private:
  httplib::Server m_server;
  std::thread m_thread;
  int m_port = 0;
  std::atomic<int> m_saw_key{0};
};

class Issue26Secrets : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    // The cluster lives where `vstore db status` looks for VSTORE_DATA_DIR=DIR/data.
    m_pg = std::make_unique<OwnPgServer>(m_tmp.path / "data" / "pg");
    ASSERT_TRUE(m_pg->running()) << m_pg->error();
    ASSERT_EQ(m_pg->admin_sql("postgres", fmt::format("CREATE DATABASE {}", k_db)), "");
    ASSERT_EQ(m_pg->create_login_role(k_role, k_db_password), "");
    ASSERT_EQ(m_pg->admin_sql(k_db, fmt::format("CREATE EXTENSION vector; GRANT CREATE ON SCHEMA public TO {}", k_role)), "");
    m_secrets = {k_db_password, k_openai_key, k_api_token, k_chroma_token, m_pg->superuser_password()};
    ASSERT_GE(m_secrets.back().size(), 16U) << "the embedded cluster's password file";
    std::ofstream(m_tmp.path / "articles.jsonl")
        << R"({"uri": "sec:1", "title": "Wheat exports rise", "raw": "Wheat exports rose this week", "topic": "grain"})"
           "\n"
        << R"({"uri": "sec:2", "title": "Copper output falls", "raw": "Copper output fell in Zambia", "topic": "copper"})"
           "\n"
        << R"({"uri": "sec:3", "title": "Cocoa review", "raw": "Showers continued in the Bahia cocoa zone", "topic": "cocoa"})"
           "\n";
    m_closed_port = vstore::testing::free_loopback_port();
  }

  [[nodiscard]] std::string good_url(const std::string& query = "") const {
    return m_pg->url(k_role, k_db_password, k_db, query);
  }
  // Every secret in the environment, with DATABASE_URL as given (unset when empty).
  [[nodiscard]] std::string env_with(const std::string& database_url, const std::string& more = "") const {
    std::string env = fmt::format("OPENAI_API_KEY='{}' VSTORE_API_TOKEN='{}' CHROMA_TOKEN='{}'", k_openai_key,
                                  k_api_token, k_chroma_token);
    if (!database_url.empty()) env += fmt::format(" DATABASE_URL='{}'", database_url);
    return env + " " + more;
  }
  // Runs `vstore ARGS` and keeps what it printed for the final search.
  CmdResult run(const std::string& label, const std::string& args, const std::string& env) {
    CmdResult r = vstore::testing::run_vstore(m_tmp.path.string(), args, env);
    m_captured.emplace_back(label + " (stdout)", r.out);
    m_captured.emplace_back(label + " (stderr)", r.err);
    return r;
  }
  void keep(const std::string& label, const std::string& text) { m_captured.emplace_back(label, text); }

  // Every captured text and every file under DIR (reports, logs, the service's output, the
  // server's log), searched for every secret as given and percent-encoded, and for the marker
  // that every secret of this test holds.
  void expect_no_secret_anywhere() {
    std::vector<std::pair<std::string, std::string>> texts = m_captured;
    for (const auto& entry : fs::recursive_directory_iterator(m_tmp.path, fs::directory_options::skip_permission_denied)) {
      if (!entry.is_regular_file()) continue;
      const fs::path& p = entry.path();
      // The secrets' own homes: the settings file written above, the cluster's password file
      // and its data files (whose catalog holds only the SCRAM verifiers).
      if (p.filename() == "password" || p.filename() == "bad.env" || contains(p.string(), "/data/pg/data/")) continue;
      texts.emplace_back(p.string(), vstore::testing::read_text(p));
    }
    ASSERT_GT(texts.size(), 60U) << "too little was captured for the search to mean anything";
    for (const auto& [label, text] : texts) {
      for (const std::string& secret : m_secrets) {
        for (const std::string& form : {secret, percent_encode(secret)}) {
          const std::size_t at = text.find(form);
          EXPECT_EQ(at, std::string::npos)
              << label << " shows a secret: ..." << text.substr(at == std::string::npos ? 0 : (at > 80 ? at - 80 : 0), 200);
        }
      }
      const std::size_t at = text.find(k_marker);
      EXPECT_EQ(at, std::string::npos) << label << " shows part of a secret: ..."
                                       << text.substr(at == std::string::npos ? 0 : (at > 80 ? at - 80 : 0), 200);
    }
  }

  vstore::testing::TempDir m_tmp;
  std::unique_ptr<OwnPgServer> m_pg;
  std::vector<std::string> m_secrets;
  std::vector<std::pair<std::string, std::string>> m_captured;
  int m_closed_port = 0;
};

TEST_F(Issue26Secrets, NoSecretAppearsInOutputErrorsReportsOrLogs) {
  const std::string good = good_url();

  // ---- commands that succeed ------------------------------------------------------------------
  for (const char* args : {"config show", "config show --json", "version --json", "schema up --json",
                           "ingest articles.jsonl --json", "search wheat --json", "search wheat --explain",
                           "health --json", "schema status", "validate --no-chroma --sample 3 --json",
                           "validate --no-chroma --sample 3"}) {
    CmdResult r = run(args, args, env_with(good));
    EXPECT_EQ(r.code, 0) << args << "\n" << r.out << r.err;
  }
  // A Chroma server that does not answer, with its token: validate and migrate-chroma fail.
  const std::string chroma = fmt::format("http://127.0.0.1:{}", m_closed_port);
  CmdResult r = run("validate, chroma down", "validate --sample 3 --json", env_with(good, "CHROMA_URL=" + chroma));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out + r.err, chroma)) << r.out << r.err;
  r = run("migrate-chroma, chroma down", "migrate-chroma --from-url " + chroma + " --json", env_with(good));
  EXPECT_NE(r.code, 0) << r.out;

  // ---- the database refuses, or is not there --------------------------------------------------
  const std::string wrong = m_pg->url(k_role, std::string(k_db_password) + "-wrong", k_db);
  for (const char* args : {"health --json", "version --json", "schema up", "search wheat --json", "config show --json"}) {
    r = run(std::string("wrong password: ") + args, args, env_with(wrong));
    if (std::string(args) != "config show --json" && std::string(args) != "version --json") {
      EXPECT_NE(r.code, 0) << args << "\n" << r.out;
      EXPECT_TRUE(contains(r.out + r.err, "password authentication failed for user vs_sec")) << args << "\n" << r.out << r.err;
    }
  }
  const std::string unreachable = fmt::format("postgresql://{}:{}@127.0.0.1:{}/{}", k_role, percent_encode(k_db_password),
                                              m_closed_port, k_db);
  for (const char* args : {"health --json", "version --json", "search wheat"}) {
    r = run(std::string("unreachable: ") + args, args, env_with(unreachable));
  }
  EXPECT_TRUE(contains(r.err, "connection refused")) << r.err;

  // ---- connection strings libpq or vstore refuse, each holding the password ------------------
  const std::string pw = percent_encode(k_db_password);
  const std::string host = fmt::format("127.0.0.1:{}", m_pg->port());
  const std::vector<std::string> bad_urls = {
      fmt::format("postgresql://{}:{}%zz@{}/{}", k_role, pw, host, k_db),
      fmt::format("postgresql://{}:{}@{}/{}?nosuchoption=1", k_role, pw, host, k_db),
      fmt::format("postgresql://{}:{}@{}/{}?sslmode=bogus", k_role, pw, host, k_db),
      fmt::format("postgresql://{}:{}@{}/{}?sslmode=require", k_role, pw, host, k_db),  // the server has no TLS
      fmt::format("postgresql://{}:{}@{}/{}?sslmode=verify-full&sslrootcert=/nonexistent/root.crt", k_role, pw, host, k_db),
      fmt::format("postgresql://{}:{}@{}/{}?sslmode=require&sslpassword=Sq26sslpw&sslkey=/nonexistent/client.key",
                  k_role, pw, host, k_db),
      fmt::format("postgresql://{}:{}@[::1/{}", k_role, pw, k_db),
      fmt::format("host=127.0.0.1 port={} user={} password='{}' dbname={} sslmode=require", m_pg->port(), k_role,
                  k_db_password, k_db),
      fmt::format("host=127.0.0.1 port={} user={} password={} dbname={} nosuchkey=1", m_pg->port(), k_role, pw, k_db),
      fmt::format("host=127.0.0.1 port={} user={} password='{}' dbname={} connect_timeout=x", m_pg->port(), k_role,
                  k_db_password, k_db),
      fmt::format("mysql://{}:{}@{}/{}", k_role, pw, host, k_db),
  };
  for (std::size_t url_idx = 0; url_idx < bad_urls.size(); ++url_idx) {
    for (const char* args : {"health --json", "schema up", "config show"}) {
      r = run(fmt::format("bad URL {}: {}", url_idx, args), args, env_with(bad_urls[url_idx]));
      // (config show only reads the settings: it fails for the URLs vstore itself refuses)
      if (std::string(args) != "config show") {
        EXPECT_NE(r.code, 0) << bad_urls[url_idx] << " " << args;
      }
    }
  }
  // The same in a .env file, with a line the parser refuses after it.
  {
    std::ofstream env(m_tmp.path / "bad.env");
    env << "DATABASE_URL=postgresql://" << k_role << ":" << pw << "@" << host << "/" << k_db << "?sslmode=bogus\n"
        << "OPENAI_API_KEY=\"" << k_openai_key << "\n"
        << "VSTORE_API_TOKEN " << k_api_token << "\n";
  }
  r = run(".env with errors", "--env-file bad.env config show --json", "");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "bad.env")) << r.err;

  // ---- an embeddings server that quotes the key back -----------------------------------------
  {
    EchoingEmbeddings openai;
    const std::string provider = fmt::format("EMBEDDING_PROVIDER=openai EMBEDDING_MODEL=text-embedding-3-small "
                                             "EMBEDDING_DIM=384 OPENAI_BASE_URL={}",
                                             openai.url());
    for (const char* args : {"embed hello", "embed hello --json", "search wheat --json", "config show"}) {
      r = run(std::string("openai echoes the key: ") + args, args, env_with(good, provider));
      if (std::string(args) != "config show") {
        EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
        EXPECT_TRUE(contains(r.out + r.err, "HTTP 401")) << args << "\n" << r.out << r.err;
      }
    }
    EXPECT_GE(openai.saw_key(), 3) << "the key was not sent, so its absence proves nothing";
  }

  // ---- the embedded cluster: its generated password -------------------------------------------
  for (const char* args : {"db status", "db status --json", "config show", "config show --json", "health --json",
                           "version --json"}) {
    r = run(std::string("embedded cluster: ") + args, args, env_with(""));
    // (health fails: the cluster's database has no schema; it still connects with the password)
    if (!std::string(args).starts_with("health")) {
      EXPECT_EQ(r.code, 0) << args << "\n" << r.out << r.err;
    }
  }
  EXPECT_TRUE(contains(r.out, "\"postgresql\"")) << r.out;

  // ---- the service: refused and accepted requests, and one whose database refuses -----------
  {
    vstore::testing::ServeProcess serve(m_tmp.path, env_with(good), "", "serve-good");
    ASSERT_GT(serve.port(), 0) << serve.log();
    const auto refused = vstore::testing::call(serve.port(), "GET", "/health", "", "Sq26-not-the-token");
    EXPECT_EQ(refused.status, 401) << refused.raw;
    const auto unauthenticated = vstore::testing::call(serve.port(), "GET", "/health");
    EXPECT_EQ(unauthenticated.status, 401) << unauthenticated.raw;
    const auto accepted = vstore::testing::call(serve.port(), "GET", "/health", "", k_api_token);
    EXPECT_EQ(accepted.status, 200) << accepted.raw;
    const auto searched = vstore::testing::post(serve.port(), "/v1/search", {{"query", "wheat"}, {"top_k", 2}}, k_api_token);
    EXPECT_EQ(searched.status, 200) << searched.raw;
    // A token sent in the query string instead of the header: refused, and not logged.
    const auto in_query = vstore::testing::call(serve.port(), "GET", "/health?token=" + percent_encode(k_api_token));
    EXPECT_EQ(in_query.status, 401) << in_query.raw;
    for (const auto* a : {&refused, &unauthenticated, &accepted, &searched, &in_query}) keep("serve answer", a->raw);
    ::kill(serve.pid(), SIGTERM);
    EXPECT_TRUE(serve.wait_exit(20));
    EXPECT_TRUE(contains(serve.log(), "\"status\":401")) << serve.log();
    EXPECT_TRUE(contains(serve.log(), "\"status\":200")) << serve.log();
  }
  // A database that refuses the password: the service does not start, and says why.
  r = run("serve, wrong password", "serve --addr 127.0.0.1:0", env_with(wrong));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "password authentication failed for user vs_sec")) << r.err;
  // Off loopback without a token the service refuses to start; with one it would need it.
  r = run("serve off loopback", "serve --addr 0.0.0.0:0", env_with(good, "VSTORE_API_TOKEN="));
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_TRUE(contains(r.err, "VSTORE_API_TOKEN")) << r.err;

  // ---- what vstore wrote into its database, and what the server logged -----------------------
  auto conn = vstore::pg::Connection::connect(m_pg->admin_conninfo(k_db));
  ASSERT_TRUE(conn) << conn.error().to_string();
  for (const char* table : {"vstore_operations", "vstore_schema_migrations"}) {
    auto rows = conn->exec(fmt::format("SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM {} t", table));
    ASSERT_TRUE(rows) << rows.error().to_string();
    keep(table, rows->text(0, 0));
  }
  ASSERT_TRUE(fs::exists(m_pg->log_path()));
  EXPECT_TRUE(fs::exists(m_tmp.path / "data" / "reports"));

  expect_no_secret_anywhere();
}

}  // namespace
