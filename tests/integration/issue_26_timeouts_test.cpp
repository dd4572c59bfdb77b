// SPDX-License-Identifier: Apache-2.0
// Issue 26, item 1: every network call has a timeout. Each client of vstore is pointed at a
// silent server: a socket that listens (the kernel completes the connection) but never answers.
// The Chroma client (CHROMA_TIMEOUT), the OpenAI-compatible embedder (OPENAI_TIMEOUT) and
// libpq (connect_timeout; vstore's default when the URL gives none) each fail within their
// limit with a message that says the server gave no answer, and the command exits non-zero.
// A PostgreSQL server that stops answering after the connection is made (its backend process
// stopped with SIGSTOP) is given up after the connection's reply limit: the statement timeout
// plus a grace (pg::reply_limit_for).
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <future>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "pg/pg_version.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using vstore::testing::CmdResult;
using vstore::testing::HeldPort;
using vstore::testing::TempDir;

struct Timed {
  CmdResult result;
  double seconds = 0;
};

Timed timed_vstore(const TempDir& dir, const std::string& args, const std::string& env) {
  const auto start = Clock::now();
  CmdResult result = vstore::testing::run_vstore(dir.path.string(), args, env);
  return {std::move(result), std::chrono::duration<double>(Clock::now() - start).count()};
}

TEST(Issue26Timeouts, AChromaServerThatNeverAnswersTimesOutAfterChromaTimeout) {
  HeldPort silent;
  ASSERT_TRUE(silent.ok());
  TempDir dir;
  const Timed run = timed_vstore(dir, "health",
                                 fmt::format("VECTOR_BACKEND=chromadb CHROMA_URL=http://127.0.0.1:{} CHROMA_TIMEOUT=1",
                                             silent.port()));
  EXPECT_NE(run.result.code, 0) << run.result.out;
  // Four tries of one second each, with back-off between them.
  EXPECT_LT(run.seconds, 20.0) << run.result.err;
  EXPECT_GE(run.seconds, 1.0) << run.result.err;
  const std::string said = run.result.out + run.result.err;
  EXPECT_NE(said.find(fmt::format("127.0.0.1:{}", silent.port())), std::string::npos) << said;
  EXPECT_NE(said.find("timeout"), std::string::npos) << said;
}

TEST(Issue26Timeouts, AnEmbeddingsServerThatNeverAnswersTimesOutAfterOpenAiTimeout) {
  HeldPort silent;
  ASSERT_TRUE(silent.ok());
  TempDir dir;
  const Timed run = timed_vstore(dir, "embed 'grain prices'",
                                 fmt::format("EMBEDDING_PROVIDER=openai EMBEDDING_MODEL=text-embedding-3-small "
                                             "EMBEDDING_DIM=8 OPENAI_API_KEY=sk-test OPENAI_BASE_URL=http://127.0.0.1:{} "
                                             "OPENAI_TIMEOUT=1",
                                             silent.port()));
  EXPECT_NE(run.result.code, 0) << run.result.out;
  // Five tries of one second each, with at most 0.5 + 1 + 2 + 4 s of back-off between them.
  EXPECT_LT(run.seconds, 25.0) << run.result.err;
  EXPECT_GE(run.seconds, 5.0) << run.result.err;
  const std::string said = run.result.out + run.result.err;
  EXPECT_NE(said.find("failed 5 times"), std::string::npos) << said;
  EXPECT_NE(said.find("no answer in time"), std::string::npos) << said;
  EXPECT_EQ(said.find("sk-test"), std::string::npos) << said;
}

TEST(Issue26Timeouts, APostgresqlServerThatNeverAnswersTimesOutAtConnect) {
  HeldPort silent;
  ASSERT_TRUE(silent.ok());
  TempDir dir;
  // The URL's connect_timeout.
  const Timed given = timed_vstore(
      dir, "health", fmt::format("DATABASE_URL='postgresql://vstore@127.0.0.1:{}/vstore?connect_timeout=2'", silent.port()));
  EXPECT_NE(given.result.code, 0) << given.result.out;
  EXPECT_LT(given.seconds, 15.0) << given.result.err;
  EXPECT_GE(given.seconds, 2.0) << given.result.err;
  const std::string said = given.result.out + given.result.err;
  EXPECT_NE(said.find("timeout"), std::string::npos) << said;
  // None given: vstore's own default (10 s) still ends the wait.
  const Timed fallback =
      timed_vstore(dir, "health", fmt::format("DATABASE_URL='postgresql://vstore@127.0.0.1:{}/vstore'", silent.port()));
  EXPECT_NE(fallback.result.code, 0) << fallback.result.out;
  EXPECT_LT(fallback.seconds, 40.0) << fallback.result.err;
  EXPECT_GE(fallback.seconds, 5.0) << fallback.result.err;
}


// ---- PostgreSQL: a server that stops answering after the connection is made ------------------

using std::chrono::milliseconds;
using vstore::ErrorCode;
using vstore::pg::Connection;
using vstore::testing::PgServer;
using vstore::testing::sql_value;

// Stops a backend process (SIGSTOP) and lets it go on (SIGCONT) when destroyed, so that a
// failing test never leaves the shared server with a stopped process.
class StoppedBackend {
 public:
  explicit StoppedBackend(int pid) : m_pid(pid), m_stopped(pid > 0 && ::kill(pid, SIGSTOP) == 0) {}
  ~StoppedBackend() {
    if (m_stopped) ::kill(m_pid, SIGCONT);
  }
  StoppedBackend(const StoppedBackend&) = delete;
  StoppedBackend& operator=(const StoppedBackend&) = delete;
  [[nodiscard]] bool stopped() const { return m_stopped; }

 private:
  int m_pid;
  bool m_stopped;
};

int backend_pid(Connection& conn) {
  auto pid = conn.exec("SELECT pg_backend_pid()");
  return pid && pid->rows() == 1 ? std::stoi(pid->text(0, 0)) : -1;
}

class Issue26PgReplyLimit : public ::testing::Test {
 protected:
  void SetUp() override { m_db = PgServer::instance().create_database("i26rl"); }
  void TearDown() override { PgServer::instance().drop_database(m_db); }
  std::string m_db;
};

TEST(Issue26PgReplyLimitRule, IsTheStatementTimeoutPlusAGraceOfOneToTenSeconds) {
  EXPECT_EQ(vstore::pg::reply_limit_for(milliseconds(0)), milliseconds(0));
  EXPECT_EQ(vstore::pg::reply_limit_for(milliseconds(500)), milliseconds(1500));
  EXPECT_EQ(vstore::pg::reply_limit_for(milliseconds(1000)), milliseconds(2000));
  EXPECT_EQ(vstore::pg::reply_limit_for(milliseconds(4000)), milliseconds(8000));
  EXPECT_EQ(vstore::pg::reply_limit_for(milliseconds(60000)), milliseconds(70000));
}

TEST_F(Issue26PgReplyLimit, AQueryToAStoppedBackendFailsAfterTheReplyLimitAndPoisonsTheConnection) {
  auto conn = Connection::connect(m_db, 10, milliseconds(1000));
  ASSERT_TRUE(conn) << conn.error().to_string();
  EXPECT_EQ(conn->reply_limit(), milliseconds(2000));
  const int pid = backend_pid(*conn);
  ASSERT_GT(pid, 0);
  const auto start = Clock::now();
  std::future<vstore::Result<vstore::pg::PgResult>> asked;
  StoppedBackend stopped(pid);
  ASSERT_TRUE(stopped.stopped());
  asked = std::async(std::launch::async, [&] { return conn->exec("SELECT 1"); });
  ASSERT_EQ(asked.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "the query to a stopped backend was still waiting after 30 s";
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  auto answer = asked.get();
  ASSERT_FALSE(answer) << "a stopped backend answered";
  EXPECT_EQ(answer.error().code(), ErrorCode::timeout) << answer.error().to_string();
  EXPECT_TRUE(answer.error().connection_poisoned());
  EXPECT_NE(answer.error().message().find("no reply from the server within 2 s"), std::string::npos)
      << answer.error().message();
  EXPECT_GE(took, 1.9);
  EXPECT_LT(took, 15.0);
  EXPECT_FALSE(conn->ok());
  // Every later command fails at once instead of waiting for the same server again.
  const auto again_start = Clock::now();
  auto again = conn->exec("ROLLBACK");
  ASSERT_FALSE(again);
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - again_start).count(), 1.0);
  EXPECT_NE(again.error().message().find("given up"), std::string::npos) << again.error().message();
}

TEST_F(Issue26PgReplyLimit, ACopyIntoAStoppedBackendFailsAfterTheReplyLimit) {
  auto conn = Connection::connect(m_db, 10, milliseconds(1000));
  ASSERT_TRUE(conn) << conn.error().to_string();
  ASSERT_TRUE(conn->exec("CREATE TABLE sink (body bytea)"));
  const int pid = backend_pid(*conn);
  ASSERT_GT(pid, 0);
  std::unique_ptr<StoppedBackend> stopped;
  const std::string row(64 * 1024, 'x');
  int calls = 0;
  // The backend stops once the COPY has begun; 64 MB of rows then fill the socket's buffers.
  auto fill = [&](vstore::pg::CopyWriter& writer) -> vstore::Result<bool> {
    if (calls == 0) stopped = std::make_unique<StoppedBackend>(pid);
    for (int i = 0; i < 16; ++i) {
      writer.begin_row(1);
      writer.bytes_field(row);
    }
    return ++calls < 64;
  };
  const auto start = Clock::now();
  auto copied = std::async(std::launch::async, [&] { return conn->copy_stream("COPY sink FROM STDIN BINARY", fill); });
  const bool ready = copied.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  if (!ready) stopped.reset();  // let the backend go on, so that the copy can end
  ASSERT_TRUE(ready) << "the copy into a stopped backend was still waiting after 30 s";
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  auto result = copied.get();
  ASSERT_TRUE(stopped && stopped->stopped());
  ASSERT_FALSE(result) << "a stopped backend took " << *result << " rows";
  EXPECT_EQ(result.error().code(), ErrorCode::timeout) << result.error().to_string();
  EXPECT_NE(result.error().message().find("postgresql copy: no reply from the server"), std::string::npos)
      << result.error().message();
  EXPECT_LT(took, 15.0);
  stopped.reset();
  // Nothing of the copy is in the table.
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM sink"), "0");
}

TEST_F(Issue26PgReplyLimit, AStoreSearchWhoseBackendStopsIsAnsweredOnAFreshConnection) {
  vstore::Config cfg = vstore::testing::test_config(m_db, 8);
  cfg.pool.statement_timeout = milliseconds(1000);
  cfg.pool.size = 1;
  cfg.pool.max_overflow = 0;
  ASSERT_TRUE(vstore::schema_up(m_db, cfg));
  auto store = vstore::open_pg_store(m_db, cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  std::vector<vstore::ArticleVector> items(3);
  for (std::size_t i = 0; i < items.size(); ++i) {
    items[i].article.uri = fmt::format("stop:{}", i);
    items[i].article.title = fmt::format("Article {}", i);
    items[i].embedding.assign(8, 0.0f);
    items[i].embedding[i] = 1.0f;
    items[i].embedding_model = "test-model";
  }
  ASSERT_TRUE((*store)->upsert(items));
  vstore::SearchOptions opts;
  opts.top_k = 3;
  ASSERT_TRUE((*store)->search(items[0].embedding, opts));
  // The pool's one connection is the only other session of this database.
  const std::string pid_text = sql_value(
      m_db, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()");
  ASSERT_FALSE(pid_text.empty());
  const auto start = Clock::now();
  std::future<vstore::Result<std::vector<vstore::SearchHit>>> asked;
  StoppedBackend stopped(std::stoi(pid_text));
  ASSERT_TRUE(stopped.stopped());
  asked = std::async(std::launch::async, [&] { return (*store)->search(items[0].embedding, opts); });
  ASSERT_EQ(asked.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "the search was still waiting for the stopped backend after 30 s";
  const double took = std::chrono::duration<double>(Clock::now() - start).count();
  auto hits = asked.get();
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_EQ(hits->size(), 3u);
  EXPECT_GE(took, 1.9);  // the reply limit ran out on the stopped connection first
  EXPECT_LT(took, 15.0);
}

TEST_F(Issue26PgReplyLimit, AnIndexBuildIsNotCutByTheReplyLimit) {
  auto conn = Connection::connect(m_db, 10, milliseconds(1000));
  ASSERT_TRUE(conn) << conn.error().to_string();
  // An index over an expression that takes 0.5 s a row: six rows take 3 s, past the 2 s limit.
  ASSERT_TRUE(conn->exec("CREATE TABLE slow_rows (n int); INSERT INTO slow_rows SELECT generate_series(1, 6); "
                         "CREATE FUNCTION slow_key(n int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS "
                         "$$ BEGIN PERFORM pg_sleep(0.5); RETURN n; END $$"));
  const auto start = Clock::now();
  auto built = vstore::pg::build_index(*conn, "CREATE INDEX slow_rows_key ON slow_rows ((slow_key(n)))", false);
  ASSERT_TRUE(built) << built.error().to_string();
  EXPECT_GE(std::chrono::duration<double>(Clock::now() - start).count(), 2.5);
  EXPECT_EQ(conn->reply_limit(), milliseconds(2000));
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'slow_rows_key'"), "1");
}

}  // namespace
