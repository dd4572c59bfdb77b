// SPDX-License-Identifier: Apache-2.0
// Issue 21 items 7, 8, 9, 12 and 13 against real servers: statement timeout, pool hygiene and
// recovery after a server restart; no password in `vstore health`; the embedded cluster's
// private socket and password-protected TCP; schema versions; the pgvector version checks.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "pg/pg_pool.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/config.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pg::Connection;
using pg::Pool;
using testing::PgServer;
using testing::sql_value;
using testing::test_config;

constexpr int k_dim = 8;

ArticleVector item(const std::string& uri, float x) {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.embedding.assign(k_dim, 0.0f);
  a.embedding[0] = x;
  a.embedding[1] = 1.0f;
  a.embedding_model = "test-model";
  return a;
}

struct CmdResult {
  int code = -1;
  std::string out;
  std::string err;
};

std::string read_all(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Runs the vstore binary with exactly `env` (plus PATH and HOME) and no shell in between, so
// that values holding quotes and backslashes arrive as they are.
CmdResult run_vstore(const std::vector<std::string>& args, std::vector<std::string> env) {
  const char* bin = std::getenv("VSTORE_BIN");
  if (bin == nullptr) return {-1, "", "VSTORE_BIN is not set"};
  std::string tmpl = (fs::temp_directory_path() / "vstore-i21-cmd-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return {-1, "", "mkdtemp failed"};
  const fs::path dir = tmpl;
  env.push_back("PATH=/usr/bin:/bin");
  env.push_back("HOME=" + dir.string());
  std::vector<std::string> argv_text = {bin};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    int out = open((dir / "out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open((dir / "err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    if (chdir(dir.c_str()) != 0) _exit(126);
    execve(bin, argv.data(), envp.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CmdResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_all(dir / "out");
  r.err = read_all(dir / "err");
  std::error_code ec;
  fs::remove_all(dir, ec);
  return r;
}

class Issue21Db : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = PgServer::instance().create_database("i21");
    m_cfg = test_config(m_db, k_dim);
  }
  void TearDown() override { PgServer::instance().drop_database(m_db); }
  std::string m_db;
  Config m_cfg;
};

// ---- item 7: connections ------------------------------------------------------------------------

TEST_F(Issue21Db, Item7StatementTimeoutFiresAndGivesTimeout) {
  auto cfg = load_config({{"VSTORE_STATEMENT_TIMEOUT", "1s"}, {"EMBEDDING_PROVIDER", "hash"}});
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  Pool pool(m_db, cfg->pool);
  auto lease = pool.acquire();
  ASSERT_TRUE(lease) << lease.error().to_string();
  const auto start = std::chrono::steady_clock::now();
  auto slept = (*lease)->exec("SELECT pg_sleep(4)");
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(slept) << "pg_sleep(4) ran to the end under VSTORE_STATEMENT_TIMEOUT=1s";
  EXPECT_EQ(slept.error().code(), ErrorCode::timeout) << slept.error().to_string();
  EXPECT_LT(took, std::chrono::milliseconds(3500));
}

TEST_F(Issue21Db, Item7EveryConnectionHasTheDefaultStatementTimeout) {
  auto conn = Connection::connect(m_db);
  ASSERT_TRUE(conn) << conn.error().to_string();
  auto shown = conn->exec("SHOW statement_timeout");
  ASSERT_TRUE(shown) << shown.error().to_string();
  EXPECT_EQ(shown->text(0, 0), "1min");
}

TEST_F(Issue21Db, Item7ConnectionReturnedInsideATransactionIsNotReused) {
  PoolConfig pc;
  pc.size = 1;
  pc.max_overflow = 0;
  Pool pool(m_db, pc);
  std::string first_pid;
  {
    auto lease = pool.acquire();
    ASSERT_TRUE(lease) << lease.error().to_string();
    ASSERT_TRUE((*lease)->exec("BEGIN"));
    ASSERT_TRUE((*lease)->exec("SET LOCAL application_name = 'left_in_a_transaction'"));
    auto pid = (*lease)->exec("SELECT pg_backend_pid()");
    ASSERT_TRUE(pid);
    first_pid = pid->text(0, 0);
  }  // returned to the pool inside the transaction
  auto lease = pool.acquire();
  ASSERT_TRUE(lease) << lease.error().to_string();
  auto state = (*lease)->exec("SELECT current_setting('application_name'), pg_backend_pid()::text");
  ASSERT_TRUE(state) << state.error().to_string();
  EXPECT_EQ(state->text(0, 0), "vstore");
  EXPECT_NE(state->text(0, 1), first_pid);
}

TEST_F(Issue21Db, Item7SearchWorksAgainAfterTheServerRestarts) {
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  auto store = open_pg_store(m_db, m_cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  std::vector<ArticleVector> items = {item("r:1", 0.1f), item("r:2", 0.5f), item("r:3", 0.9f)};
  ASSERT_TRUE((*store)->upsert(items));
  SearchOptions opts;
  opts.top_k = 3;
  ASSERT_TRUE((*store)->search(items[0].embedding, opts));
  PgServer::instance().restart();
  auto hits = (*store)->search(items[0].embedding, opts);
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_EQ(hits->size(), 3u);
  auto counted = (*store)->count();
  ASSERT_TRUE(counted) << counted.error().to_string();
  // The other reads too, after a second restart (each read runs through Pool::read).
  PgServer::instance().restart();
  auto similar = (*store)->similar("r:1", {.top_k = 2});
  ASSERT_TRUE(similar) << similar.error().to_string();
  EXPECT_EQ(similar->size(), 2u);
  PgServer::instance().restart();
  auto vectors = (*store)->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(vectors) << vectors.error().to_string();
  EXPECT_EQ(vectors->ids.size(), 3u);
}

TEST_F(Issue21Db, Item7WriteAfterRestartRunsOnAFreshConnectionAndIsNeverDuplicated) {
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  auto store = open_pg_store(m_db, m_cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  std::vector<ArticleVector> first = {item("w:1", 0.1f)};
  ASSERT_TRUE((*store)->upsert(first));
  PgServer::instance().restart();
  std::vector<ArticleVector> second = {item("w:2", 0.2f), item("w:3", 0.3f)};
  auto written = (*store)->upsert(second);
  // The idle connection died with the server; the write was never sent on it, so it runs on a
  // fresh connection and succeeds.
  ASSERT_TRUE(written) << written.error().to_string();
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles"), "3");
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles WHERE uri IN ('w:2', 'w:3')"), "2");
}

// ---- item 8: secrets ------------------------------------------------------------------------------

TEST(Issue21Secrets, Item8HealthNeverPrintsAPasswordOrTheRawUrl) {
  struct Case {
    std::string url;
    std::vector<std::string> secrets;
  };
  const std::vector<Case> cases = {
      {"postgresql://vstore:S3cr%zz@127.0.0.1:1/vstore", {"S3cr"}},
      {"postgresql://vstore:S3cr%00et@127.0.0.1:1/vstore", {"S3cr", "%00et"}},
      {"postgresql://vstore:S3cret@[::1", {"S3cret"}},
      {"postgresql://vstore:S3c@ret@127.0.0.1:1/vstore", {"S3c", "ret@"}},
      {"postgresql://vstore:S3c%20r%27et%5C@127.0.0.1:1/vstore", {"S3c", "r'et", "%27et"}},
      {"host=127.0.0.1 port=1 user=vstore password='S3c r\\'et\\\\x'", {"S3c", "r\\'et", "r'et"}},
      {"host=127.0.0.1 port=1 user=vstore password=S3c ret", {"S3c", "ret"}},
      {"host=127.0.0.1 port=1 user=vstore password=\"S3c\"ret\"", {"S3c", "ret"}},
  };
  for (const Case& c : cases) {
    for (const bool as_json : {false, true}) {
      SCOPED_TRACE(c.url + (as_json ? " --json" : ""));
      std::vector<std::string> args = {"health"};
      if (as_json) args.emplace_back("--json");
      CmdResult r = run_vstore(args, {"DATABASE_URL=" + c.url, "EMBEDDING_PROVIDER=hash", "EMBEDDING_DIM=8",
                                      "VSTORE_DATA_DIR=/nonexistent-vstore-i21"});
      EXPECT_NE(r.code, 0) << r.out << r.err;
      const std::string all = r.out + r.err;
      EXPECT_FALSE(all.empty());
      for (const std::string& secret : c.secrets) {
        EXPECT_EQ(all.find(secret), std::string::npos) << "the output shows \"" << secret << "\": " << all;
      }
    }
  }
}

// ---- item 9: the embedded cluster ------------------------------------------------------------------

std::string make_root(const std::string& name) {
  std::string tmpl = (fs::temp_directory_path() / (name + "XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) return "";
  chmod(tmpl.c_str(), 0755);
  return tmpl;
}

class Issue21Embedded : public ::testing::Test {
 protected:
  void TearDown() override {
    if (m_root.empty()) return;
    EmbeddedPostgres pg(fs::path(m_root) / "pg");
    (void)pg.stop();
    (void)pg.destroy();
    std::error_code ec;
    fs::remove_all(m_root, ec);
  }
  Result<EmbeddedStatus> start(const std::string& name, EmbeddedOptions opts = {}) {
    m_root = make_root(name);
    opts.fsync = false;
    opts.shared_buffers = "32MB";
    opts.maintenance_work_mem = "64MB";
    EmbeddedPostgres pg(fs::path(m_root) / "pg");
    return pg.start(opts);
  }
  std::string m_root;
};

TEST_F(Issue21Embedded, Item9DefaultStartListensOnlyOnAPrivateUnixSocket) {
  auto st = start("vstore-i21-emb-");
  ASSERT_TRUE(st) << st.error().to_string();
  auto conn = Connection::connect(st->conninfo);
  ASSERT_TRUE(conn) << conn.error().to_string();
  auto listen = conn->exec("SHOW listen_addresses");
  ASSERT_TRUE(listen);
  EXPECT_EQ(listen->text(0, 0), "");
  auto tcp = Connection::connect(fmt::format("host=127.0.0.1 port={} user=vstore dbname=vstore", st->port), 2);
  EXPECT_FALSE(tcp) << "a TCP connection to 127.0.0.1:" << st->port << " succeeded";
  struct stat sb {};
  ASSERT_EQ(stat(st->socket_dir.c_str(), &sb), 0) << st->socket_dir;
  EXPECT_EQ(sb.st_mode & 0777, 0700u) << st->socket_dir;
  EXPECT_TRUE(st->socket_dir.string().starts_with(m_root)) << st->socket_dir;
}

TEST_F(Issue21Embedded, Item9DataDirectoryWithASpaceWorks) {
  auto st = start("vstore i21 space ");
  ASSERT_TRUE(st) << st.error().to_string();
  auto conn = Connection::connect(st->conninfo);
  ASSERT_TRUE(conn) << conn.error().to_string();
  auto one = conn->exec("SELECT 1");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->text(0, 0), "1");
}

TEST_F(Issue21Embedded, Item9TcpModeRefusesAConnectionWithoutThePassword) {
  EmbeddedOptions opts;
  opts.tcp = true;
  auto st = start("vstore-i21-tcp-", opts);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_TRUE(st->tcp);
  ASSERT_FALSE(st->password_file.empty());
  struct stat sb {};
  ASSERT_EQ(stat(st->password_file.c_str(), &sb), 0) << st->password_file;
  EXPECT_EQ(sb.st_mode & 0777, 0600u);
  // The conninfo vstore builds carries the password and connects over TCP.
  auto with = Connection::connect(st->conninfo);
  ASSERT_TRUE(with) << with.error().to_string();
  auto addr = with->exec("SELECT inet_server_addr()::text");
  ASSERT_TRUE(addr);
  EXPECT_EQ(addr->text(0, 0), "127.0.0.1/32");
  ASSERT_EQ(unsetenv("PGPASSWORD"), 0);
  auto without = Connection::connect(
      fmt::format("host=127.0.0.1 port={} user=vstore dbname=vstore passfile=/nonexistent", st->port), 2);
  ASSERT_FALSE(without) << "a TCP connection without the password succeeded";
  EXPECT_EQ(without.error().message().find("connection refused"), std::string::npos) << without.error().message();
  auto wrong = Connection::connect(
      fmt::format("host=127.0.0.1 port={} user=vstore dbname=vstore password=wrong", st->port), 2);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("password authentication failed"), std::string::npos) << wrong.error().message();
  // The socket still works without a password.
  EmbeddedPostgres pg(fs::path(m_root) / "pg");
  auto status = pg.status();
  ASSERT_TRUE(status);
  auto local = Connection::connect(fmt::format("host='{}' port={} user=vstore dbname=vstore", st->socket_dir.string(), st->port));
  ASSERT_TRUE(local) << local.error().to_string();
}

TEST_F(Issue21Embedded, Item9TcpModeOnANamedPortAnotherProcessHoldsSaysSo) {
  testing::HeldPort held;
  ASSERT_TRUE(held.ok());
  EmbeddedOptions opts;
  opts.tcp = true;
  opts.port = held.port();
  auto st = start("vstore-i21-taken-", opts);
  ASSERT_FALSE(st) << "postgresql started on port " << held.port() << ", which another socket holds";
  EXPECT_EQ(st.error().code(), ErrorCode::unavailable);
  EXPECT_NE(st.error().message().find(fmt::format("port {} is taken by another process", held.port())),
            std::string::npos)
      << st.error().message();
}

TEST_F(Issue21Embedded, Item9LongDataDirectoryGetsAPrivateSocketDirectory) {
  m_root = make_root("vstore-i21-long-");
  const fs::path deep = fs::path(m_root) / std::string(60, 'd') / std::string(40, 'e');
  std::error_code ec;
  fs::create_directories(deep, ec);
  ASSERT_FALSE(ec);
  for (fs::path p = deep; p != fs::path(m_root); p = p.parent_path()) chmod(p.c_str(), 0755);
  EmbeddedOptions opts;
  opts.fsync = false;
  opts.shared_buffers = "32MB";
  opts.maintenance_work_mem = "64MB";
  EmbeddedPostgres pg(deep / "pg");
  auto st = pg.start(opts);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_LE(st->socket_dir.string().size() + 15, 107u);
  struct stat sb {};
  ASSERT_EQ(lstat(st->socket_dir.c_str(), &sb), 0);
  EXPECT_TRUE(S_ISDIR(sb.st_mode));
  EXPECT_EQ(sb.st_mode & 0777, 0700u);
  auto conn = Connection::connect(st->conninfo);
  EXPECT_TRUE(conn) << conn.error().to_string();
  (void)pg.stop();
  (void)pg.destroy();
}

// ---- item 12: schema versions ----------------------------------------------------------------------

TEST_F(Issue21Db, Item12StoreRequiresTheLatestSchemaVersion) {
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  ASSERT_TRUE(schema_down(m_db, m_cfg, 3));
  auto store = open_pg_store(m_db, m_cfg);
  ASSERT_FALSE(store) << "a store opened on schema version 3";
  EXPECT_EQ(store.error().code(), ErrorCode::conflict);
  EXPECT_NE(store.error().message().find("version 3"), std::string::npos) << store.error().message();
  // The words of `vstore schema status`: "version 3 of 7".
  EXPECT_NE(store.error().message().find("version 3 of " + std::to_string(k_latest_schema_version)), std::string::npos)
      << store.error().message();
  EXPECT_NE(store.error().message().find("vstore schema up"), std::string::npos) << store.error().message();
}

TEST_F(Issue21Db, Item12DownRefusesToDropAnEmbeddingColumnThatHoldsData) {
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  sql_value(m_db, "INSERT INTO articles (uri, embedding) VALUES ('d:1', '[1,0,0,0,0,0,0,0]'), "
                  "('d:2', '[0,1,0,0,0,0,0,0]'), ('d:3', NULL)");
  auto down = schema_down(m_db, m_cfg);
  ASSERT_FALSE(down) << "down dropped a populated embedding column";
  EXPECT_EQ(down.error().code(), ErrorCode::conflict);
  EXPECT_NE(down.error().message().find("2 rows"), std::string::npos) << down.error().message();
  EXPECT_NE(down.error().message().find("--force"), std::string::npos) << down.error().message();
  EXPECT_EQ(sql_value(m_db, "SELECT count(embedding) FROM articles"), "2");
}

TEST_F(Issue21Db, Item12CliDownToEveryVersionAndForce) {
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  sql_value(m_db, "INSERT INTO articles (uri, embedding) VALUES ('c:1', '[1,0,0,0,0,0,0,0]')");
  const std::vector<std::string> env = {"DATABASE_URL=" + m_db, "EMBEDDING_PROVIDER=hash", "EMBEDDING_DIM=8",
                                        "VSTORE_DATA_DIR=/nonexistent-vstore-i21"};
  for (int to : {5, 4, 3, 2}) {
    CmdResult r = run_vstore({"schema", "down", "--to", std::to_string(to), "--json"}, env);
    ASSERT_EQ(r.code, 0) << "--to " << to << ": " << r.err << r.out;
    EXPECT_EQ(json::parse(r.out)["current_version"].get<int>(), to);
  }
  CmdResult refused = run_vstore({"schema", "down", "--to", "1"}, env);
  EXPECT_NE(refused.code, 0) << refused.out;
  EXPECT_NE(refused.err.find("1 row"), std::string::npos) << refused.err;
  EXPECT_EQ(sql_value(m_db, "SELECT count(embedding) FROM articles"), "1");
  CmdResult forced = run_vstore({"schema", "down", "--to", "1", "--force", "--json"}, env);
  ASSERT_EQ(forced.code, 0) << forced.err << forced.out;
  EXPECT_EQ(json::parse(forced.out)["current_version"].get<int>(), 1);
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'articles'::regclass "
                            "AND attname = 'embedding' AND NOT attisdropped"),
            "0");
}

// ---- item 13: the pgvector version -------------------------------------------------------------------

TEST_F(Issue21Db, Item13HealthWarnsAboutFixesTheInstalledPgvectorLacks) {
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  auto store = open_pg_store(m_db, m_cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  auto h = (*store)->health();
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_TRUE((*h)["healthy"].get<bool>()) << h->dump();
  ASSERT_TRUE(h->contains("warnings")) << h->dump();
  const std::string warnings = (*h)["warnings"].dump();
  // The server's pgvector files (set-up installs the newest Debian source it finds).
  const std::string library = sql_value(m_db, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'");
  if (library == "0.8.0" || library == "0.8.1") {
    EXPECT_NE(warnings.find("pgvector " + library), std::string::npos) << warnings;
    EXPECT_NE(warnings.find("CVE-2026-3172"), std::string::npos) << warnings;
    EXPECT_NE(warnings.find("0.8.2"), std::string::npos) << warnings;
    EXPECT_NE(warnings.find("0.8.4"), std::string::npos) << warnings;
  } else {
    EXPECT_EQ(warnings.find("CVE-2026-3172"), std::string::npos) << library << ": " << warnings;
  }
  // The text output has the same lines.
  CmdResult text = run_vstore({"health"}, {"DATABASE_URL=" + m_db, "EMBEDDING_PROVIDER=hash", "EMBEDDING_DIM=8",
                                           "VSTORE_DATA_DIR=/nonexistent-vstore-i21"});
  EXPECT_EQ(text.code, 0) << text.out << text.err;
  for (const auto& w : (*h)["warnings"]) {
    EXPECT_NE(text.out.find("warning: " + w.get<std::string>()), std::string::npos) << text.out;
  }
}

// The server logs every statement of this database; the HNSW build vstore runs must come after
// a SET of max_parallel_maintenance_workers to 0 in the same session.
TEST_F(Issue21Db, Item13HnswBuildsRunWithoutParallelWorkersOnPgvectorOlderThan082) {
  const std::string dbname = m_db.substr(m_db.rfind("dbname=") + 7);
  sql_value(PgServer::instance().admin_conninfo(),
            fmt::format("ALTER DATABASE {} SET log_statement = 'all'", Connection::quote_ident(dbname)));
  const std::string log = PgServer::instance().log_path();
  const auto offset = static_cast<std::streamoff>(fs::file_size(log));
  ASSERT_TRUE(schema_up(m_db, m_cfg));
  // And the rebuild after a bulk load (vstore's other HNSW build path).
  auto dropped = suspend_vector_index(m_db, m_cfg);
  ASSERT_TRUE(dropped) << dropped.error().to_string();
  ASSERT_FALSE(dropped->empty());
  auto rebuilt = restore_vector_index(m_db, m_cfg);
  ASSERT_TRUE(rebuilt) << rebuilt.error().to_string();
  EXPECT_TRUE(*rebuilt);
  std::ifstream in(log);
  in.seekg(offset);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  auto pid_of = [](const std::string& line) {
    const auto open = line.find('[');
    const auto close = line.find(']', open);
    return open == std::string::npos || close == std::string::npos ? std::string() : line.substr(open, close - open);
  };
  // Parallel HNSW builds are left to PostgreSQL only from pgvector 0.8.2 (CVE-2026-3172).
  const std::string library = sql_value(m_db, "SELECT default_version FROM pg_available_extensions WHERE name = 'vector'");
  const bool old_pgvector = library == "0.8.0" || library == "0.8.1" || library.starts_with("0.7");
  int builds = 0;
  for (std::size_t line_idx = 0; line_idx < lines.size(); ++line_idx) {
    if (lines[line_idx].find("USING hnsw") == std::string::npos || lines[line_idx].find("CREATE INDEX") == std::string::npos) {
      continue;
    }
    ++builds;
    const std::string pid = pid_of(lines[line_idx]);
    bool limited = false;
    for (std::size_t before = 0; before < line_idx; ++before) {
      const std::string& l = lines[before];
      if (pid_of(l) != pid || l.find("max_parallel_maintenance_workers") == std::string::npos) continue;
      limited = l.find("max_parallel_maintenance_workers = 0") != std::string::npos ||
                l.find("max_parallel_maintenance_workers TO 0") != std::string::npos;
    }
    EXPECT_EQ(limited, old_pgvector) << "pgvector " << library << ", SET max_parallel_maintenance_workers = 0 "
                                     << (limited ? "before: " : "missing before: ") << lines[line_idx];
  }
  EXPECT_EQ(builds, 2);
}

// Set-up's choice of pgvector source (scripts/pgvector_newest.sh), on recorded `apt-cache
// madison` answers: the newest Debian version of at least 0.8.0, compared as dpkg does.
TEST(Issue21Setup, Item13SetupPicksTheNewestPgvectorSource) {
  const char* source = std::getenv("VSTORE_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "VSTORE_SOURCE_DIR must name the source tree (set by CTest)";
  const fs::path script = fs::path(source) / "scripts" / "pgvector_newest.sh";
  auto pick = [&](const std::string& madison) {
    const fs::path input = fs::temp_directory_path() / fmt::format("vstore-i21-madison-{}", getpid());
    std::ofstream(input) << madison;
    CmdResult r;
    FILE* pipe = popen(fmt::format("bash '{}' 0.8.0 < '{}'", script.string(), input.string()).c_str(), "r");
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) r.out += buf;
    const int status = pclose(pipe);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    fs::remove(input);
    return r;
  };
  const std::string trixie = "  pgvector |    0.8.0-1 | http://deb.debian.org/debian trixie/main Sources\n";
  CmdResult only_trixie = pick(trixie);
  EXPECT_EQ(only_trixie.code, 0);
  EXPECT_EQ(only_trixie.out, "0.8.0-1 trixie\n");
  CmdResult newer = pick(trixie + "  pgvector |    0.8.7-1 | http://deb.debian.org/debian forky/main Sources\n"
                                  "  pgvector |    0.8.7-1 | http://deb.debian.org/debian sid/main Sources\n");
  EXPECT_EQ(newer.out, "0.8.7-1 forky\n");
  CmdResult tens = pick(trixie + "  pgvector |    0.10.0-1 | http://deb.debian.org/debian sid/main Sources\n"
                                 "  pgvector |    0.9.1-2 | http://deb.debian.org/debian forky/main Sources\n");
  EXPECT_EQ(tens.out, "0.10.0-1 sid\n");
  CmdResult too_old = pick("  pgvector |    0.7.4-1 | http://deb.debian.org/debian bookworm/main Sources\n");
  EXPECT_EQ(too_old.code, 1);
  EXPECT_EQ(too_old.out, "");
}

}  // namespace
}  // namespace vstore
