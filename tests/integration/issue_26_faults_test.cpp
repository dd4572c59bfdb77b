// SPDX-License-Identifier: Apache-2.0
// Issue 26, item 1: faults. PostgreSQL killed (immediate shutdown, SIGQUIT to the postmaster:
// what `pg_ctl stop -m immediate` sends) and vstore killed (SIGKILL) in the middle of ingest,
// of reindex and of library writes; the rerun or resume then ends with exactly the rows and
// vector bytes of an uninterrupted run (a digest over uri, vector bytes, text hash and model),
// no duplicates, and no half-written batch visible at any moment (a watcher polls the table on
// its own connection while the run goes). Pooled connections broken under the library recover
// without a restart, and no acknowledged write is lost. Each test runs its own cluster, so a
// crash here disturbs no other test.
//
// Elsewhere: migrate-chroma killed by SIGKILL and under an immediate shutdown
// (migrate_chroma_test.cpp), reindex killed by SIGKILL (issue_24_reindex_test.cpp), a search
// and a write after a restart (issue_21_pgconn_test.cpp).
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/embedder.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

constexpr int k_dim = 384;

// ---- a cluster of the test's own -----------------------------------------------------------

class OwnCluster {
 public:
  explicit OwnCluster(const fs::path& root) : m_root(root), m_pg(root / "pg") {
    fs::create_directories(root);
    fs::permissions(root, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    // A crash of the server's processes (not of the machine) leaves what they wrote in the OS
    // page cache, so fsync is not what these tests exercise; with it on, crash recovery first
    // fsyncs the whole data directory, which takes minutes on a busy 2-core machine.
    m_options.fsync = false;
    m_options.shared_buffers = "64MB";
    start();
  }
  ~OwnCluster() {
    (void)m_pg.stop();
    (void)m_pg.destroy();
  }
  OwnCluster(const OwnCluster&) = delete;
  OwnCluster& operator=(const OwnCluster&) = delete;

  void start() {
    auto started = m_pg.start(m_options);
    ASSERT_TRUE(started.has_value()) << started.error().to_string();
    m_conninfo = started->conninfo;
    m_options.port = started->port;
  }
  // Immediate shutdown: the postmaster gets SIGQUIT, every backend quits at once without a
  // checkpoint, and the next start replays the WAL (crash recovery).
  void crash() {
    pid_t pid = 0;
    std::ifstream(m_root / "pg" / "data" / "postmaster.pid") >> pid;
    ASSERT_GT(pid, 0);
    ASSERT_EQ(kill(pid, SIGQUIT), 0);
    for (int i = 0; i < 2000 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_NE(kill(pid, 0), 0) << "the server did not go down";
  }
  // A new database on this cluster; its conninfo.
  std::string create_database(const std::string& name) {
    auto conn = vstore::pg::Connection::connect(m_conninfo);
    EXPECT_TRUE(conn.has_value());
    if (!conn) return {};
    auto made = conn->exec("CREATE DATABASE " + vstore::pg::Connection::quote_ident(name));
    EXPECT_TRUE(made.has_value()) << made.error().to_string();
    const auto pos = m_conninfo.rfind("dbname=");
    return m_conninfo.substr(0, pos) + "dbname=" + name;
  }
  [[nodiscard]] const std::string& conninfo() const { return m_conninfo; }
  [[nodiscard]] std::string log() const {
    std::ifstream in(m_root / "pg" / "postgres.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  [[nodiscard]] fs::path data_dir() const { return m_root / "pg" / "data"; }
  vstore::EmbeddedPostgres& pg() { return m_pg; }

 private:
  fs::path m_root;
  vstore::EmbeddedPostgres m_pg;
  vstore::EmbeddedOptions m_options;
  std::string m_conninfo;
};

// Every row's uri, vector bytes, text hash and model in one digest: equal digests, equal states.
std::string state_digest(const std::string& conninfo) {
  return sql_value(conninfo,
                   "SELECT count(*) || ' rows, ' || count(DISTINCT uri) || ' uris, ' || "
                   "COALESCE(md5(string_agg(uri || ':' || COALESCE(md5(vector_send(embedding)), '-') || ':' || "
                   "COALESCE(encode(embedding_text_hash, 'hex'), '-') || ':' || COALESCE(embedding_model, '-'), ',' "
                   "ORDER BY uri)), '-') FROM articles");
}

// The table's vector index, "name valid|invalid", or "" when there is none.
std::string vector_index(const std::string& conninfo) {
  return sql_value(conninfo,
                   "SELECT string_agg(c.relname || ' ' || CASE WHEN i.indisvalid THEN 'valid' ELSE 'invalid' END, ', ') "
                   "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
                   "WHERE i.indrelid = 'articles'::regclass AND a.amname IN ('hnsw', 'ivfflat')");
}

// Polls `count_sql` on a connection of its own every few milliseconds while a run goes, and
// keeps every value it saw; it stops at the first error (the server went away) or on stop().
class Watcher {
 public:
  Watcher(std::string conninfo, std::string count_sql)
      : m_thread([this, conninfo = std::move(conninfo), sql = std::move(count_sql)] {
          auto conn = vstore::pg::Connection::connect(conninfo);
          if (!conn) return;
          while (!m_stop.load()) {
            auto res = conn->exec(sql);
            if (!res) return;
            const long long n = std::stoll(res->text(0, 0));
            {
              std::lock_guard lock(m_mutex);
              m_seen.insert(n);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
          }
        }) {}
  ~Watcher() { stop(); }
  Watcher(const Watcher&) = delete;
  Watcher& operator=(const Watcher&) = delete;
  void stop() {
    m_stop = true;
    if (m_thread.joinable()) m_thread.join();
  }
  [[nodiscard]] std::set<long long> seen() {
    std::lock_guard lock(m_mutex);
    return m_seen;
  }

 private:
  std::atomic<bool> m_stop{false};
  std::mutex m_mutex;
  std::set<long long> m_seen;
  std::thread m_thread;
};

// Every value is a whole number of batches, or the total; and the watcher saw the run move.
void expect_whole_batches(const std::set<long long>& seen, long long batch, long long total) {
  EXPECT_GE(seen.size(), 3u) << "the watcher saw too little of the run to check it";
  for (long long n : seen) EXPECT_TRUE(n % batch == 0 || n == total) << n << " rows visible: a batch was seen half-written";
}

// A child `vstore ARGS` (shell text for the arguments) with DATABASE_URL and the hash embedder,
// started in `dir`: its pid, exit code in NAME.code and streams in NAME.out / NAME.err.
pid_t start_vstore(const fs::path& dir, const std::string& name, const std::string& conninfo, const std::string& args,
                   const std::string& env = "") {
  CmdResult started = vstore::testing::run_shell(
      dir.string(),
      fmt::format("rm -f {0}.code {0}.pid; (env -u VECTOR_BACKEND -u CHROMA_URL VSTORE_DATA_DIR=data EMBEDDING_DIM={1} "
                  "EMBEDDING_PROVIDER=hash DATABASE_URL='{2}' {5} '{3}' {4} >{0}.out 2>{0}.err & "
                  "echo $! >{0}.pid.tmp; mv {0}.pid.tmp {0}.pid; wait $!; echo $? >{0}.code) </dev/null >/dev/null 2>&1 &",
                  name, k_dim, conninfo, vstore::testing::vstore_bin(), args, env));
  EXPECT_EQ(started.code, 0) << started.err;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!fs::exists(dir / (name + ".pid")) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  pid_t pid = 0;
  std::ifstream(dir / (name + ".pid")) >> pid;
  return pid;
}

// The exit code the child wrote to NAME.code (waits up to `seconds`); -1 if none came.
int wait_code(const fs::path& dir, const std::string& name, int seconds = 60) {
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    std::ifstream in(dir / (name + ".code"));
    int code = -1;
    if (in >> code) return code;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Waits until `sql` counts at least `rows` (at most 30 s); the last count.
long long wait_for_rows(const std::string& conninfo, const std::string& sql, long long rows) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  long long n = 0;
  while ((n = std::stoll(sql_value(conninfo, sql))) < rows && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return n;
}

class Issue26Faults : public ::testing::Test {
 protected:
  static constexpr int k_articles = 1500;
  static constexpr int k_batch = 50;

  void SetUp() override {
    chmod(m_dir.path.c_str(), 0755);
    std::ofstream out(m_dir.path / "articles.jsonl");
    for (int i = 0; i < k_articles; ++i) {
      out << json{{"uri", fmt::format("fault:{:05d}", i)},
                  {"title", fmt::format("Article {} on cocoa, grain and oil", i)},
                  {"raw", fmt::format("Prices of cocoa, grain and oil moved in week {} of the season; report {}.", i % 52, i)},
                  {"topic", std::array{"cocoa", "grain", "oil"}[i % 3]}}
                 .dump()
          << "\n";
    }
  }

  CmdResult run(const std::string& conninfo, const std::string& args) {
    return vstore::testing::run_vstore(m_dir.path.string(), args, "DATABASE_URL='" + conninfo + "'");
  }
  // A database holding what one uninterrupted `ingest --batch-size k_batch` writes.
  std::string reference(OwnCluster& cluster) {
    const std::string db = cluster.create_database("reference");
    EXPECT_EQ(run(db, "schema up").code, 0);
    CmdResult r = run(db, fmt::format("ingest articles.jsonl --batch-size {}", k_batch));
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(sql_value(db, "SELECT count(*) FROM articles"), std::to_string(k_articles));
    return db;
  }

  // After an interrupted ingest: fewer than all rows, whole batches only (now and at every
  // moment the watcher saw); then the same command again ends in the state of an uninterrupted
  // run, vector index included. Returns the rows there before the rerun.
  long long expect_whole_batches_then_exact_rerun(const std::string& db, Watcher& watcher, const std::string& expected,
                                                  const std::string& expected_index) {
    const long long after = std::stoll(sql_value(db, "SELECT count(*) FROM articles"));
    EXPECT_LT(after, k_articles) << "the fault did not fall mid-run";
    EXPECT_EQ(after % k_batch, 0) << "a batch was left half-written";
    expect_whole_batches(watcher.seen(), k_batch, k_articles);
    CmdResult rerun = run(db, fmt::format("ingest articles.jsonl --batch-size {}", k_batch));
    EXPECT_EQ(rerun.code, 0) << rerun.err;
    EXPECT_EQ(state_digest(db), expected);
    EXPECT_EQ(vector_index(db), expected_index) << "the vector index dropped for the bulk load is back and valid";
    return after;
  }

  vstore::testing::TempDir m_dir;
};

// ---- ingest -------------------------------------------------------------------------------------

// PostgreSQL goes down mid-ingest: the run fails with an error naming the lost server; after
// crash recovery exactly the batches that committed are there, whole; the same command run
// again ends in the state of an uninterrupted run, with its vector index.
TEST_F(Issue26Faults, IngestUnderAnImmediateShutdownKeepsWholeBatchesAndTheRerunEndsExact) {
  OwnCluster cluster(m_dir.path / "cluster");
  const std::string expected = state_digest(reference(cluster));
  const std::string db = cluster.create_database("crashed");
  ASSERT_EQ(run(db, "schema up").code, 0);
  const std::string expected_index = vector_index(db);
  ASSERT_FALSE(expected_index.empty());

  Watcher watcher(db, "SELECT count(*) FROM articles");
  const pid_t pid = start_vstore(m_dir.path, "ingest", db, fmt::format("ingest articles.jsonl --batch-size {}", k_batch));
  ASSERT_GT(pid, 0);
  const long long at_crash = wait_for_rows(db, "SELECT count(*) FROM articles", 300);
  ASSERT_GE(at_crash, 300);
  cluster.crash();
  watcher.stop();
  const int code = wait_code(m_dir.path, "ingest");
  EXPECT_NE(code, 0) << "ingest went on without its server";
  EXPECT_NE(code, -1) << "ingest did not end after its server went away";
  const std::string err = read_file(m_dir.path / "ingest.err");
  // e.g. "the load stopped with 500 records stored and 2500 of 3000 not: batch at record 501,
  // line 501 (500 records stored before it): postgresql: server closed the connection unexpectedly"
  EXPECT_NE(err.find("the load stopped with"), std::string::npos) << err;
  EXPECT_NE(err.find("server closed the connection"), std::string::npos) << err;

  cluster.start();
  EXPECT_GE(expect_whole_batches_then_exact_rerun(db, watcher, expected, expected_index), at_crash)
      << "a committed batch was lost in the crash";
}

// vstore itself killed (SIGKILL) mid-ingest: the same guarantees.
TEST_F(Issue26Faults, IngestKilledBySigkillKeepsWholeBatchesAndTheRerunEndsExact) {
  OwnCluster cluster(m_dir.path / "cluster");
  const std::string expected = state_digest(reference(cluster));
  const std::string db = cluster.create_database("killed");
  ASSERT_EQ(run(db, "schema up").code, 0);
  const std::string expected_index = vector_index(db);

  Watcher watcher(db, "SELECT count(*) FROM articles");
  const pid_t pid = start_vstore(m_dir.path, "ingest", db, fmt::format("ingest articles.jsonl --batch-size {}", k_batch));
  ASSERT_GT(pid, 0);
  ASSERT_GE(wait_for_rows(db, "SELECT count(*) FROM articles", 300), 300);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  EXPECT_EQ(wait_code(m_dir.path, "ingest"), 128 + SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the server ends the killed session
  watcher.stop();
  expect_whole_batches_then_exact_rerun(db, watcher, expected, expected_index);
}

// ---- reindex ------------------------------------------------------------------------------------

// PostgreSQL goes down mid-reindex: whole batches only, and the rerun ends exact.
TEST_F(Issue26Faults, ReindexUnderAnImmediateShutdownKeepsWholeBatchesAndTheRerunEndsExact) {
  OwnCluster cluster(m_dir.path / "cluster");
  const std::string db = reference(cluster);
  const std::string expected = state_digest(db);
  const std::string expected_index = vector_index(db);
  sql_value(db, "WITH d AS (UPDATE articles SET embedding = NULL, embedding_model = NULL, embedding_text_hash = NULL "
                "RETURNING 1) SELECT count(*) FROM d");
  constexpr int batch = 50;
  const std::string counted = "SELECT count(embedding) FROM articles";
  Watcher watcher(db, counted);
  const pid_t pid = start_vstore(m_dir.path, "reindex", db, fmt::format("reindex --batch-size {}", batch),
                                 "VSTORE_TEST_REINDEX_PAUSE_MS=5");
  ASSERT_GT(pid, 0);
  const long long at_crash = wait_for_rows(db, counted, 200);
  ASSERT_GE(at_crash, 200);
  cluster.crash();
  watcher.stop();
  const int code = wait_code(m_dir.path, "reindex");
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1) << "reindex did not end after its server went away";

  cluster.start();
  const long long after = std::stoll(sql_value(db, counted));
  EXPECT_GE(after, at_crash);
  EXPECT_LT(after, k_articles) << "the crash did not fall mid-run";
  EXPECT_EQ(after % batch, 0) << "a batch survived the crash half-written";
  expect_whole_batches(watcher.seen(), batch, k_articles);

  CmdResult rerun = run(db, fmt::format("reindex --json --batch-size {}", batch));
  ASSERT_EQ(rerun.code, 0) << rerun.err;
  const json summary = json::parse(rerun.out, nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << rerun.out;
  EXPECT_EQ(summary["processed"], k_articles - after);
  EXPECT_EQ(state_digest(db), expected);
  EXPECT_EQ(vector_index(db), expected_index);
}

// ---- the library ---------------------------------------------------------------------------------

// Four threads upsert through one ArticleStore while PostgreSQL crashes and comes back. While it
// is down every call ends with an error (none hangs); once it is back the same store (the same
// pool, never reopened) writes again; and every write that was acknowledged is there with the
// vector an uninterrupted run stores, with no duplicates.
TEST_F(Issue26Faults, LibraryWritersThroughACrashLoseNothingAcknowledgedAndThePoolRecovers) {
  OwnCluster cluster(m_dir.path / "cluster");
  const std::string db = cluster.create_database("library");
  auto config = vstore::testing::test_config(db, k_dim);
  config.pool.size = 4;
  ASSERT_TRUE(vstore::schema_up(db, config).has_value());
  auto opened = vstore::open_store(config);
  ASSERT_TRUE(opened.has_value()) << opened.error().to_string();
  vstore::ArticleStore store(std::move(*opened), vstore::make_hash_embedder(k_dim), 2);

  enum Phase { before, down, restarting, after };
  std::atomic<int> phase{before};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<vstore::Article> acknowledged;
  std::map<int, int> ok_by_phase, failed_by_phase;
  double slowest_failure_s = 0;
  std::string first_failure;
  auto writer = [&](int t) {
    for (int i = 0; !stop.load(); ++i) {
      vstore::Article a;
      a.uri = fmt::format("lib:{}:{:06d}", t, i);
      a.title = fmt::format("Writer {} article {}", t, i);
      a.raw = fmt::format("Grain and cocoa report {} from writer {}.", i, t);
      const int p = phase.load();
      const auto started = Clock::now();
      auto r = store.upsert_article(a);
      const double took = std::chrono::duration<double>(Clock::now() - started).count();
      std::lock_guard lock(mutex);
      if (r && *r) {
        acknowledged.push_back(a);
        ++ok_by_phase[phase.load() == p ? p : -1];
      } else {
        ++failed_by_phase[p];
        slowest_failure_s = std::max(slowest_failure_s, took);
        if (first_failure.empty() && !r) first_failure = r.error().to_string();
      }
      if (!r) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(writer, t);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  cluster.crash();
  phase = down;  // after the server is gone: a write that began before may still commit
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  phase = restarting;  // the server accepts connections before start() returns
  cluster.start();
  phase = after;
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (auto& t : threads) t.join();

  EXPECT_GT(ok_by_phase[before], 0);
  EXPECT_GT(failed_by_phase[down], 0) << "no write ran while the server was down";
  EXPECT_EQ(ok_by_phase[down], 0) << "a write was acknowledged while the server was down";
  EXPECT_GT(ok_by_phase[after], 0) << "the store did not recover once the server was back: " << first_failure;
  EXPECT_LT(slowest_failure_s, 30.0) << "a failing call took too long";
  EXPECT_FALSE(first_failure.empty());
  EXPECT_EQ(first_failure.find("password"), std::string::npos);

  // Every acknowledged write is there, with the vector an uninterrupted run stores.
  std::string uris;
  for (const auto& a : acknowledged) uris += (uris.empty() ? "'" : ",'") + a.uri + "'";
  const std::string present_digest =
      sql_value(db, "SELECT count(*) || ':' || md5(string_agg(uri || md5(vector_send(embedding)), ',' ORDER BY uri)) "
                    "FROM articles WHERE uri IN (" + uris + ")");
  EXPECT_EQ(sql_value(db, "SELECT count(*) = count(DISTINCT uri) FROM articles"), "t");
  const std::string ref = cluster.create_database("library_reference");
  ASSERT_TRUE(vstore::schema_up(ref, vstore::testing::test_config(ref, k_dim)).has_value());
  {
    auto ref_store = vstore::open_store(vstore::testing::test_config(ref, k_dim));
    ASSERT_TRUE(ref_store.has_value());
    vstore::ArticleStore clean(std::move(*ref_store), vstore::make_hash_embedder(k_dim), 1);
    auto stored = clean.upsert_articles(acknowledged);
    ASSERT_TRUE(stored.has_value()) << stored.error().to_string();
  }
  const std::string expected_digest =
      sql_value(ref, "SELECT count(*) || ':' || md5(string_agg(uri || md5(vector_send(embedding)), ',' ORDER BY uri)) "
                     "FROM articles");
  EXPECT_EQ(present_digest, expected_digest) << acknowledged.size() << " acknowledged";
}

// ---- dual mode ------------------------------------------------------------------------------------

// Every vector of a store, by id, as raw float bytes.
std::map<std::string, std::string> vectors_of(const vstore::Config& config) {
  std::map<std::string, std::string> out;
  auto store = vstore::open_store(config);
  EXPECT_TRUE(store.has_value()) << store.error().to_string();
  if (!store) return out;
  auto batch = (*store)->get_vectors(std::nullopt, std::nullopt);
  EXPECT_TRUE(batch.has_value()) << batch.error().to_string();
  if (!batch) return out;
  for (std::size_t i = 0; i < batch->ids.size(); ++i) {
    const auto* bytes = reinterpret_cast<const char*>(batch->data.data() + i * batch->dim);
    EXPECT_TRUE(out.emplace(batch->ids[i], std::string(bytes, batch->dim * sizeof(float))).second)
        << batch->ids[i] << " twice";
  }
  return out;
}

// The ids whose vectors differ between two stores (or that only one holds). Chroma keeps a
// cosine collection's vectors normalised, so its copy may differ from PostgreSQL's in the last
// bit of a float (1.5e-8 seen): equal within sync's own tolerance (1e-6 relative), the same as
// `vstore sync` counts "already_equal". `example` describes the first difference; `bit_exact`
// counts the ids equal to the bit.
std::vector<std::string> differing_ids(const std::map<std::string, std::string>& primary,
                                       const std::map<std::string, std::string>& secondary, std::string& example,
                                       std::size_t& bit_exact) {
  std::vector<std::string> differ;
  bit_exact = 0;
  for (const auto& [id, bytes] : primary) {
    auto it = secondary.find(id);
    if (it == secondary.end() || it->second.size() != bytes.size()) {
      differ.push_back(id);
      continue;
    }
    bit_exact += it->second == bytes ? 1 : 0;
    const auto* x = reinterpret_cast<const float*>(bytes.data());
    const auto* y = reinterpret_cast<const float*>(it->second.data());
    for (std::size_t i = 0; i < bytes.size() / sizeof(float); ++i) {
      if (std::fabs(x[i] - y[i]) > 1e-6f * std::max(1.0f, std::fabs(x[i]))) {
        differ.push_back(id);
        break;
      }
    }
  }
  for (const auto& [id, bytes] : secondary) {
    if (!primary.contains(id)) differ.push_back(id);
  }
  if (!differ.empty()) {
    const std::string& id = differ.front();
    auto a = primary.find(id);
    auto b = secondary.find(id);
    if (a == primary.end() || b == secondary.end()) {
      example = id + (a == primary.end() ? " only in the second store" : " only in the first store");
    } else {
      const auto* x = reinterpret_cast<const float*>(a->second.data());
      const auto* y = reinterpret_cast<const float*>(b->second.data());
      double worst = 0;
      std::size_t at = 0;
      for (std::size_t i = 0; i < a->second.size() / sizeof(float) && i < b->second.size() / sizeof(float); ++i) {
        if (std::fabs(x[i] - y[i]) > worst) worst = std::fabs(x[i] - y[i]), at = i;
      }
      example = fmt::format("{}: largest difference {} at [{}] ({} vs {})", id, worst, at, x[at], y[at]);
    }
  }
  return differ;
}

// The Chroma server is killed (SIGKILL) while a dual-mode ingest writes to both stores: the
// ingest goes on (PostgreSQL, the primary, takes every write; the secondary's writes wait in the
// outbox), and once Chroma is back, `outbox drain` and `sync` leave both stores holding exactly
// the same ids and vector bytes, none twice.
TEST_F(Issue26Faults, DualIngestThroughAChromaKillEndsWithBothStoresEqual) {
  vstore::testing::ChromaServer chroma;
  const std::string db = vstore::testing::PgServer::instance().create_database("i26dual");
  const std::string collection = vstore::testing::unique_collection("i26dual");
  const std::string env =
      fmt::format("VECTOR_BACKEND=dual CHROMA_URL='{}' CHROMA_COLLECTION='{}'", chroma.url(), collection);
  auto dual = [&](const std::string& args) {
    return vstore::testing::run_vstore(m_dir.path.string(), args, "DATABASE_URL='" + db + "' " + env);
  };
  ASSERT_EQ(dual("schema up").code, 0);
  const pid_t pid = start_vstore(m_dir.path, "dual", db, fmt::format("ingest articles.jsonl --batch-size {}", k_batch),
                                 "VECTOR_BACKEND=dual CHROMA_URL='" + chroma.url() + "' CHROMA_COLLECTION='" + collection + "'");
  ASSERT_GT(pid, 0);
  const long long at_kill = wait_for_rows(db, "SELECT count(*) FROM articles", 300);
  ASSERT_GE(at_kill, 300);
  chroma.kill_now();
  ASSERT_EQ(wait_code(m_dir.path, "dual"), 0) << "the primary takes the writes while the secondary is down: "
                                               << read_file(m_dir.path / "dual.err");
  const std::string out = read_file(m_dir.path / "dual.out");
  EXPECT_NE(out.find("writes queued for chromadb (outbox)"), std::string::npos) << out;
  EXPECT_EQ(sql_value(db, "SELECT count(*) FROM articles"), std::to_string(k_articles));
  const long long queued = std::stoll(sql_value(db, "SELECT count(*) FROM vstore_outbox"));
  EXPECT_GT(queued, 0) << "the kill did not fall mid-run";

  chroma.start();
  CmdResult drained = dual("outbox drain --json");
  ASSERT_EQ(drained.code, 0) << drained.err << drained.out;
  CmdResult synced = dual("sync --json");
  ASSERT_EQ(synced.code, 0) << synced.err << synced.out;
  EXPECT_EQ(sql_value(db, "SELECT count(*) FROM vstore_outbox"), "0");

  auto config = vstore::testing::test_config(db, k_dim);
  config.chroma_url = chroma.url();
  config.chroma_collection = collection;
  config.backend = vstore::BackendKind::pgvector;
  const auto primary = vectors_of(config);
  config.backend = vstore::BackendKind::chromadb;
  const auto secondary = vectors_of(config);
  EXPECT_EQ(primary.size(), static_cast<std::size_t>(k_articles));
  EXPECT_EQ(secondary.size(), primary.size());
  std::string example;
  std::size_t bit_exact = 0;
  const std::vector<std::string> differ = differing_ids(primary, secondary, example, bit_exact);
  RecordProperty("bit_exact_in_chroma", static_cast<int>(bit_exact));
  EXPECT_TRUE(differ.empty()) << differ.size() << " ids differ after drain and sync, e.g. " << example
                              << "; drain: " << drained.out << "; sync: " << synced.out;
  vstore::testing::PgServer::instance().drop_database(db);
}

// Dual mode with Chroma as the primary: PostgreSQL (which holds the outbox) is stopped at once
// under four writing threads and started again. While it is down every write fails and none is
// acknowledged (a write takes its outbox rows in a PostgreSQL transaction before it writes
// Chroma); the same store writes again once it is back; and after `outbox drain` and `sync` both
// stores hold the same ids and vectors, every acknowledged write among them.
TEST_F(Issue26Faults, DualWritesWithAChromaPrimaryThroughAPostgresqlCrashEndWithBothStoresEqual) {
  OwnCluster cluster(m_dir.path / "cluster");
  vstore::testing::ChromaServer chroma;
  const std::string db = cluster.create_database("dual_chroma_primary");
  const std::string collection = vstore::testing::unique_collection("i26dualc");
  auto config = vstore::testing::test_config(db, k_dim);
  config.backend = vstore::BackendKind::dual;
  config.primary = vstore::BackendKind::chromadb;
  config.chroma_url = chroma.url();
  config.chroma_collection = collection;
  config.pool.size = 4;
  ASSERT_TRUE(vstore::schema_up(db, config).has_value());

  enum Phase { before, down, restarting, after };
  std::atomic<int> phase{before};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::set<std::string> acknowledged;
  std::map<int, int> ok_by_phase, failed_by_phase;
  std::string first_failure;
  {
    auto opened = vstore::open_store(config, vstore::OpenOptions{.create = true});
    ASSERT_TRUE(opened.has_value()) << opened.error().to_string();
    vstore::ArticleStore store(std::move(*opened), vstore::make_hash_embedder(k_dim), 2);
    auto writer = [&](int t) {
      for (int i = 0; !stop.load(); ++i) {
        vstore::Article a;
        a.uri = fmt::format("dualc:{}:{:06d}", t, i);
        a.title = fmt::format("Writer {} article {}", t, i);
        a.raw = fmt::format("Copper and tin report {} from writer {}.", i, t);
        const int p = phase.load();
        auto r = store.upsert_article(a);
        std::lock_guard lock(mutex);
        if (r && *r) {
          acknowledged.insert(a.uri);
          ++ok_by_phase[phase.load() == p ? p : -1];
        } else {
          ++failed_by_phase[p];
          if (first_failure.empty() && !r) first_failure = r.error().to_string();
        }
        if (!r) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back(writer, t);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    cluster.crash();
    phase = down;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    phase = restarting;
    cluster.start();
    phase = after;
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    stop = true;
    for (auto& t : threads) t.join();
    store.shutdown();
  }
  EXPECT_GT(ok_by_phase[before], 0);
  EXPECT_GT(failed_by_phase[down], 0) << "no write ran while PostgreSQL was down";
  EXPECT_EQ(ok_by_phase[down], 0) << "a write was acknowledged while PostgreSQL (the outbox) was down";
  EXPECT_GT(ok_by_phase[after], 0) << "the store did not recover once PostgreSQL was back: " << first_failure;

  const std::string env = fmt::format("DATABASE_URL=\"{}\" VECTOR_BACKEND=dual VECTOR_PRIMARY=chromadb CHROMA_URL='{}' "
                                      "CHROMA_COLLECTION='{}'",
                                      db, chroma.url(), collection);
  CmdResult drained = vstore::testing::run_vstore(m_dir.path.string(), "outbox drain --json", env);
  ASSERT_EQ(drained.code, 0) << drained.err << drained.out;
  CmdResult synced = vstore::testing::run_vstore(m_dir.path.string(), "sync --json", env);
  ASSERT_EQ(synced.code, 0) << synced.err << synced.out;
  EXPECT_EQ(sql_value(db, "SELECT count(*) FROM vstore_outbox"), "0");

  config.backend = vstore::BackendKind::chromadb;
  const auto in_chroma = vectors_of(config);
  config.backend = vstore::BackendKind::pgvector;
  const auto in_postgresql = vectors_of(config);
  std::string example;
  std::size_t bit_exact = 0;
  const std::vector<std::string> differ = differing_ids(in_chroma, in_postgresql, example, bit_exact);
  EXPECT_TRUE(differ.empty()) << differ.size() << " ids differ after drain and sync, e.g. " << example
                              << "; drain: " << drained.out << "; sync: " << synced.out;
  std::size_t missing = 0;
  for (const auto& uri : acknowledged) missing += in_postgresql.contains(uri) && in_chroma.contains(uri) ? 0 : 1;
  EXPECT_EQ(missing, 0U) << "of " << acknowledged.size() << " acknowledged writes";
  EXPECT_EQ(sql_value(db, "SELECT count(*) = count(DISTINCT uri) FROM articles"), "t");
}

// ---- a full disk ----------------------------------------------------------------------------------

// PostgreSQL's WAL directory on a 40 MB tmpfs, filled by large articles written through the
// library. The write that finds the disk full fails with an error (PostgreSQL stops the server
// when it cannot write its WAL: a PANIC), no later write is acknowledged, and once the disk has
// room again the server recovers with every write that had been acknowledged, byte for byte.
TEST_F(Issue26Faults, AFullWalDiskFailsWritesClearlyAndLosesNothingAcknowledged) {
  const fs::path wal = m_dir.path / "wal";
  fs::create_directories(wal);
  ASSERT_EQ(mount("tmpfs", wal.c_str(), "tmpfs", 0, "size=40m,mode=0700"), 0)
      << "mounting a tmpfs needs root (CI runs as root): " << std::strerror(errno);
  struct Unmount {
    fs::path dir;
    ~Unmount() { umount2(dir.c_str(), MNT_DETACH); }
  } unmount{wal};
  std::optional<OwnCluster> cluster;
  cluster.emplace(m_dir.path / "cluster");
  ASSERT_TRUE(cluster->pg().stop().has_value());
  // Move pg_wal onto the tmpfs, owned like the rest of the cluster.
  CmdResult moved = vstore::testing::run_shell(
      m_dir.path.string(),
      fmt::format("cp -a '{0}/pg_wal/.' '{1}/' && chown --reference='{0}/pg_wal' '{1}' && rm -rf '{0}/pg_wal' && "
                  "ln -s '{1}' '{0}/pg_wal' && chown -h --reference='{0}' '{0}/pg_wal'",
                  cluster->data_dir().string(), wal.string()));
  ASSERT_EQ(moved.code, 0) << moved.err;
  cluster->start();
  const std::string db = cluster->create_database("full");
  auto config = vstore::testing::test_config(db, k_dim);
  ASSERT_TRUE(vstore::schema_up(db, config).has_value());

  std::vector<vstore::Article> acknowledged;
  std::string first_error;
  int failures = 0;
  std::vector<double> failure_seconds;
  {
    auto opened = vstore::open_store(config);
    ASSERT_TRUE(opened.has_value()) << opened.error().to_string();
    vstore::ArticleStore store(std::move(*opened), vstore::make_hash_embedder(k_dim), 1);
    std::mt19937_64 rng(26);
    const std::string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .";
    // Up to 120 articles of 1 MB of random text (PostgreSQL cannot compress it): 120 MB of WAL,
    // well past the 40 MB the disk holds.
    for (int i = 0; i < 120 && failures < 2; ++i) {
      vstore::Article a;
      a.uri = fmt::format("full:{:04d}", i);
      a.title = fmt::format("Large article {}", i);
      std::string body(1 << 20, ' ');
      for (std::size_t k = 0; k + 8 <= body.size(); k += 8) {
        std::uint64_t bits = rng();
        for (int b = 0; b < 8; ++b, bits >>= 6) body[k + b] = alphabet[bits & 63];
      }
      a.raw = std::move(body);
      const auto started = Clock::now();
      auto r = store.upsert_article(a);
      if (r && *r) {
        EXPECT_EQ(failures, 0) << a.uri << " was acknowledged after a write had failed for a full disk";
        acknowledged.push_back(std::move(a));
      } else {
        ++failures;
        failure_seconds.push_back(std::chrono::duration<double>(Clock::now() - started).count());
        if (first_error.empty() && !r) first_error = r.error().to_string();
      }
    }
  }
  RecordProperty("acknowledged", static_cast<int>(acknowledged.size()));
  std::fprintf(stderr, "full disk: %zu acknowledged, failures took %s s: %s\n", acknowledged.size(),
               fmt::format("{}", fmt::join(failure_seconds, ", ")).c_str(), first_error.c_str());
  ASSERT_GT(failures, 0) << "the disk never filled";
  for (double took : failure_seconds) EXPECT_LT(took, 10.0) << "a failing write took long to fail: " << first_error;
  ASSERT_GT(acknowledged.size(), 10u);
  EXPECT_LT(acknowledged.size(), 120u);
  // The error says what failed; PostgreSQL's own log names the full disk.
  EXPECT_TRUE(first_error.find("No space left on device") != std::string::npos ||
              first_error.find("connection") != std::string::npos || first_error.find("server") != std::string::npos)
      << first_error;
  EXPECT_NE(cluster->log().find("No space left on device"), std::string::npos);

  // Room again: the server recovers, and every acknowledged write is there, whole.
  ASSERT_EQ(mount("tmpfs", wal.c_str(), "tmpfs", MS_REMOUNT, "size=512m,mode=0700"), 0) << std::strerror(errno);
  auto stopped = cluster->pg().stop();
  ASSERT_TRUE(stopped.has_value()) << stopped.error().to_string() << "\n" << [&] {
    const std::string log = cluster->log();
    return log.substr(log.size() > 6000 ? log.size() - 6000 : 0);
  }();
  cluster->start();
  // Every acknowledged article is there with its text, byte for byte, and a vector.
  auto conn = vstore::pg::Connection::connect(db);
  ASSERT_TRUE(conn.has_value()) << conn.error().to_string();
  long long same = 0;
  for (const auto& a : acknowledged) {
    const std::array<vstore::pg::Param, 2> params{vstore::pg::Param::text(a.uri), vstore::pg::Param::text(*a.raw)};
    auto r = conn->exec_params("SELECT count(*) FROM articles WHERE uri = $1 AND raw = $2 AND embedding IS NOT NULL",
                               params);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    same += std::stoll(r->text(0, 0));
  }
  EXPECT_EQ(same, static_cast<long long>(acknowledged.size())) << "an acknowledged write was lost";
  EXPECT_EQ(sql_value(db, "SELECT count(*) = count(DISTINCT uri) FROM articles"), "t");
  cluster.reset();
}

}  // namespace
