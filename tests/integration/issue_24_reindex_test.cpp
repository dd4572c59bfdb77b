// SPDX-License-Identifier: Apache-2.0
// Issue 24, item 1: `vstore reindex` on the embedded PostgreSQL with 200 Reuters articles and
// the hash embedder. From empty, from partial, after edits (only the edited rows change, the
// others keep their vector bytes), resume after SIGKILL (the same final state as a clean run),
// a row edited between read and write, a failing article, an invalid index rebuilt
// concurrently, the filters, and bad options.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

constexpr int k_articles = 200;

class Issue24Reindex : public ::testing::Test {
 protected:
  // The articles file is written once; every test gets its own database with them ingested
  // (vectors and hashes made by ingest, the upsert path).
  static void SetUpTestSuite() {
    s_dir = new vstore::testing::TempDir();
    chmod(s_dir->path.c_str(), 0755);
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    ASSERT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA must be set (by CTest)";
    std::ifstream in(fs::path(shared) / "reuters21578" / "articles.jsonl");
    ASSERT_TRUE(in);
    std::ofstream out(s_dir->path / "articles.jsonl");
    std::string line;
    for (int n = 0; n < k_articles && std::getline(in, line); ++n) out << line << "\n";
  }
  static void TearDownTestSuite() {
    delete s_dir;
    s_dir = nullptr;
  }

  void SetUp() override {
    m_conninfo = vstore::testing::PgServer::instance().create_database("issue24reindex");
    ASSERT_EQ(run("schema up").code, 0);
    CmdResult ingest = run("ingest articles.jsonl");
    ASSERT_EQ(ingest.code, 0) << ingest.err;
    ASSERT_EQ(sql("SELECT count(embedding_text_hash) FROM articles"), std::to_string(k_articles));
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_conninfo); }

  CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(s_dir->path.string(), args, "DATABASE_URL='" + m_conninfo + "' " + env);
  }
  std::string sql(const std::string& statement) { return sql_value(m_conninfo, statement); }
  json reindex_json(const std::string& args = "", int expected_code = 0, const std::string& env = "") {
    CmdResult r = run("reindex --json " + args, env);
    EXPECT_EQ(r.code, expected_code) << r.err << r.out;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j;
  }
  // Every row's uri, vector bytes and hash, in one digest: equal digests, equal states.
  std::string state_digest() {
    return sql("SELECT md5(string_agg(uri || ':' || COALESCE(md5(vector_send(embedding)), '-') || ':' || "
               "COALESCE(encode(embedding_text_hash, 'hex'), '-') || ':' || COALESCE(embedding_model, '-'), ',' "
               "ORDER BY uri)) FROM articles");
  }
  // The digest of one row's vector bytes.
  std::string vector_digest(const std::string& where) {
    return sql("SELECT string_agg(uri || '=' || md5(vector_send(embedding)), ',' ORDER BY uri) FROM articles WHERE " + where);
  }
  void drop_vectors(const std::string& where) {
    sql("UPDATE articles SET embedding = NULL, embedding_model = NULL, embedding_text_hash = NULL WHERE " + where +
        " RETURNING 1");
  }
  // Rows whose stored hash is SHA-256 of model, NUL, and the text upsert_article embeds (raw,
  // else summary, else title), computed here by PostgreSQL itself.
  std::string rows_with_their_text_hash() {
    return sql("SELECT count(*) FROM articles WHERE embedding_text_hash = sha256(convert_to(embedding_model, 'UTF8') "
               "|| '\\x00'::bytea || convert_to(CASE WHEN raw ~ '\\S' THEN raw WHEN summary ~ '\\S' THEN summary "
               "ELSE title END, 'UTF8'))");
  }
  // Starts `vstore ARGS` in the background (shell text; the test-only pause between batches in
  // ms); its exit code goes to NAME.code, its streams to NAME.out and NAME.err. Returns its pid.
  pid_t start_background(const std::string& name, const std::string& args, int pause_ms) {
    CmdResult started = vstore::testing::run_shell(
        s_dir->path.string(),
        fmt::format("rm -f {0}.code {0}.pid; (env -u VECTOR_BACKEND VSTORE_DATA_DIR=data EMBEDDING_DIM=384 "
                    "EMBEDDING_PROVIDER=hash VSTORE_TEST_REINDEX_PAUSE_MS={1} DATABASE_URL='{2}' '{3}' {4} >{0}.out "
                    "2>{0}.err & echo $! >{0}.pid.tmp; mv {0}.pid.tmp {0}.pid; wait $!; echo $? >{0}.code) "
                    "</dev/null >/dev/null 2>&1 &",
                    name, pause_ms, m_conninfo, vstore::testing::vstore_bin(), args));
    EXPECT_EQ(started.code, 0) << started.err;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!fs::exists(s_dir->path / (name + ".pid")) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    pid_t pid = 0;
    std::ifstream(s_dir->path / (name + ".pid")) >> pid;
    return pid;
  }
  // Waits until at least `rows` rows hold a vector (at most 20 s).
  void wait_for_vectors(int rows) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::stoi(sql("SELECT count(embedding) FROM articles")) < rows && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  std::string read_file(const std::string& name) {
    std::ifstream in(s_dir->path / name);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  static vstore::testing::TempDir* s_dir;
  std::string m_conninfo;
};

vstore::testing::TempDir* Issue24Reindex::s_dir = nullptr;

// Ingest (the upsert path) stores the hash, so a reindex right after has nothing to do; from no
// vectors at all it makes exactly the vectors and hashes ingest made.
TEST_F(Issue24Reindex, FromEmptyMakesWhatIngestMadeAndSkipsCurrentRows) {
  EXPECT_EQ(rows_with_their_text_hash(), std::to_string(k_articles));
  const std::string ingested = state_digest();
  json nothing = reindex_json();
  EXPECT_EQ(nothing["processed"], 0);
  EXPECT_EQ(nothing["skipped"], k_articles);
  EXPECT_EQ(nothing["failed"], 0);
  EXPECT_EQ(nothing["index_rebuilt"], false);

  drop_vectors("TRUE");
  CmdResult text = run("reindex");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("reindex: 200 rows, 200 processed, 0 skipped, 0 failed"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" s\n"), std::string::npos) << text.out;
  EXPECT_EQ(state_digest(), ingested);
  // The run is in the operations log, with its counts.
  EXPECT_EQ(sql("SELECT status || ' ' || (summary->>'processed') FROM vstore_operations WHERE kind = 'reindex' "
                "ORDER BY id DESC LIMIT 1"),
            "succeeded 200");
}

TEST_F(Issue24Reindex, FromPartialEmbedsOnlyTheRowsWithoutAVector) {
  const std::string kept = vector_digest("uri NOT LIKE '%3'");
  drop_vectors("uri LIKE '%3'");
  const std::string dropped = sql("SELECT count(*) FROM articles WHERE embedding IS NULL");
  ASSERT_NE(dropped, "0");
  json j = reindex_json("--batch-size 7");
  EXPECT_EQ(j["processed"].dump(), dropped);
  EXPECT_EQ(j["skipped"], k_articles - std::stoi(dropped));
  EXPECT_EQ(j["total"], k_articles);
  EXPECT_EQ(sql("SELECT count(*) FROM articles WHERE embedding IS NULL"), "0");
  EXPECT_EQ(vector_digest("uri NOT LIKE '%3'"), kept);
}

// Only the rows whose embedded text changed are re-embedded; a change to a field the text does
// not come from (the title of an article with a body) changes nothing.
TEST_F(Issue24Reindex, AfterEditsOnlyTheEditedTextsAreReembedded) {
  const std::string edit = "uri LIKE '%7' AND COALESCE(raw, '') ~ '\\S'";
  const std::string before_untouched = vector_digest("NOT (" + edit + ")");
  const std::string before_edited = vector_digest(edit);
  const std::string edited = sql("WITH e AS (UPDATE articles SET raw = raw || ' (corrected)' WHERE " + edit +
                                 " RETURNING 1) SELECT count(*) FROM e");
  ASSERT_GT(std::stoi(edited), 5);
  sql("UPDATE articles SET title = title || ' (retitled)' WHERE uri LIKE '%9' AND COALESCE(raw, '') ~ '\\S' RETURNING 1");
  json j = reindex_json();
  EXPECT_EQ(j["processed"].dump(), edited);
  EXPECT_EQ(j["skipped"], k_articles - std::stoi(edited));
  EXPECT_EQ(vector_digest("NOT (" + edit + ")"), before_untouched);
  EXPECT_NE(vector_digest(edit), before_edited);
  EXPECT_EQ(rows_with_their_text_hash(), std::to_string(k_articles));
  EXPECT_EQ(reindex_json()["processed"], 0);
}

// Vectors vstore cannot vouch for (no hash: migrated, or ingested ready-made) are left alone
// unless --force; --force then re-embeds those and nothing else.
TEST_F(Issue24Reindex, ForceAlsoReembedsVectorsWithoutAHash) {
  sql("UPDATE articles SET embedding_text_hash = NULL WHERE uri LIKE '%5' RETURNING 1");
  const std::string unhashed = sql("SELECT count(*) FROM articles WHERE embedding_text_hash IS NULL");
  json plain = reindex_json();
  EXPECT_EQ(plain["processed"], 0);
  EXPECT_EQ(sql("SELECT count(*) FROM articles WHERE embedding_text_hash IS NULL"), unhashed);
  json forced = reindex_json("--force");
  EXPECT_EQ(forced["processed"].dump(), unhashed);
  EXPECT_EQ(rows_with_their_text_hash(), std::to_string(k_articles));
}

// A run killed after some batches committed keeps them; the same command run again continues
// and ends in exactly the state a clean run reaches.
TEST_F(Issue24Reindex, ResumeAfterSigkillReachesTheCleanRunsState) {
  drop_vectors("TRUE");
  ASSERT_EQ(run("reindex --batch-size 16").code, 0);
  const std::string clean = state_digest();
  drop_vectors("TRUE");

  const pid_t pid = start_background("killed", "reindex --batch-size 16", 150);
  ASSERT_GT(pid, 0);
  // Kill it once at least two batches are committed.
  wait_for_vectors(32);
  ASSERT_EQ(kill(pid, SIGKILL), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the server ends the killed sessions
  const int done = std::stoi(sql("SELECT count(embedding) FROM articles"));
  ASSERT_GE(done, 32);
  ASSERT_LT(done, k_articles) << "the run was not killed mid-way";
  EXPECT_EQ(done % 16, 0) << "a batch is written whole or not at all";
  // The killed run's log entry never finished.
  EXPECT_EQ(sql("SELECT status FROM vstore_operations WHERE kind = 'reindex' ORDER BY id DESC LIMIT 1"), "running");

  json resumed = reindex_json("--batch-size 16");
  EXPECT_EQ(resumed["processed"], k_articles - done);
  EXPECT_EQ(resumed["skipped"], done);
  EXPECT_EQ(state_digest(), clean);
}

// A row whose text changes after the reader read it is not written with the stale vector: it is
// read again at the end and embedded from its new text.
TEST_F(Issue24Reindex, ARowEditedBetweenReadAndWriteIsReadAgain) {
  drop_vectors("TRUE");
  // The 40th row in uri order is in the third batch of 16: read (the reader runs ahead by whole
  // batches) but not yet written while the writer pauses after the first batch.
  const std::string uri = sql("SELECT uri FROM articles ORDER BY uri OFFSET 39 LIMIT 1");
  const pid_t pid = start_background("edited", "reindex --json --limit 64 --batch-size 16", 400);
  ASSERT_GT(pid, 0);
  wait_for_vectors(16);
  ASSERT_EQ(sql("SELECT count(embedding) FROM articles"), "16") << "the edit must fall between read and write";
  sql("UPDATE articles SET raw = 'Cocoa exports rose sharply in the week, traders said.' WHERE uri = '" + uri +
      "' RETURNING 1");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fs::exists(s_dir->path / "edited.code") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(read_file("edited.code"), "0\n") << read_file("edited.err");
  const json j = json::parse(read_file("edited.out"));
  EXPECT_EQ(j["requeued"], 1);
  EXPECT_EQ(j["processed"], 64);
  // The row's vector is the one of its new text.
  EXPECT_EQ(sql("SELECT count(*) FROM articles WHERE uri = '" + uri + "' AND embedding IS NOT NULL"), "1");
  EXPECT_EQ(rows_with_their_text_hash(), "64");
}

TEST_F(Issue24Reindex, AFailingArticleIsLoggedWithItsUriAndTheRunGoesOn) {
  const std::string uri = sql("SELECT uri FROM articles ORDER BY uri OFFSET 10 LIMIT 1");
  drop_vectors("uri LIKE '%1'");
  sql("UPDATE articles SET raw = '  ', summary = NULL, title = E'\\t' WHERE uri = '" + uri + "' RETURNING 1");
  drop_vectors("uri = '" + uri + "'");
  const int without = std::stoi(sql("SELECT count(*) FROM articles WHERE embedding IS NULL"));
  CmdResult r = run("reindex --json --batch-size 8");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("reindex: article \"" + uri + "\" failed: raw, summary and title hold no text to embed"),
            std::string::npos)
      << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["failed_uris"], json::array({uri}));
  EXPECT_EQ(j["processed"], without - 1);
  EXPECT_EQ(sql("SELECT count(*) FROM articles WHERE embedding IS NULL"), "1");
  EXPECT_EQ(sql("SELECT status FROM vstore_operations WHERE kind = 'reindex' ORDER BY id DESC LIMIT 1"), "failed");
}

TEST_F(Issue24Reindex, AnInvalidVectorIndexIsRebuiltConcurrently) {
  const std::string index = sql("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am "
                                "ON am.oid = c.relam WHERE i.indrelid = 'articles'::regclass AND am.amname = 'hnsw'");
  ASSERT_FALSE(index.empty());
  const std::string oid = sql("SELECT '" + index + "'::regclass::oid");
  sql("UPDATE pg_index SET indisvalid = false WHERE indexrelid = " + oid + " RETURNING 1");
  ASSERT_EQ(sql("SELECT indisvalid FROM pg_index WHERE indexrelid = '" + index + "'::regclass"), "f");
  json j = reindex_json();
  EXPECT_EQ(j["index_rebuilt"], true);
  EXPECT_EQ(j["index"], index);
  EXPECT_EQ(sql("SELECT indisvalid FROM pg_index WHERE indexrelid = '" + index + "'::regclass"), "t");
  // REINDEX CONCURRENTLY builds a new index and swaps it in: a new relfilenode, the same name.
  EXPECT_NE(sql("SELECT '" + index + "'::regclass::oid"), "0");
  EXPECT_EQ(reindex_json()["index_rebuilt"], false);
  EXPECT_EQ(reindex_json("--reindex-index")["index_rebuilt"], true);
}

TEST_F(Issue24Reindex, FiltersLimitTheRowsConsidered) {
  drop_vectors("TRUE");
  const std::string earn = sql("SELECT count(*) FROM articles WHERE topic = 'earn'");
  json topic = reindex_json("--topic earn");
  EXPECT_EQ(topic["processed"].dump(), earn);
  EXPECT_EQ(topic["total"].dump(), earn);
  const std::string late = sql("SELECT count(*) FROM articles WHERE publication_date >= '1987-02-26T17:00:00Z' AND "
                               "embedding IS NULL");
  ASSERT_NE(late, "0");
  json since = reindex_json("--since 1987-02-26T17:00:00Z");
  EXPECT_EQ(since["processed"].dump(), late);
  json limited = reindex_json("--limit 5");
  EXPECT_EQ(limited["processed"], 5);
}

TEST_F(Issue24Reindex, BadOptionsExitTwoNamingTheValue) {
  CmdResult zero = run("reindex --batch-size 0");
  EXPECT_EQ(zero.code, 2);
  EXPECT_NE(zero.err.find("--batch-size"), std::string::npos) << zero.err;
  EXPECT_NE(zero.err.find("0"), std::string::npos) << zero.err;
  CmdResult since = run("reindex --since yesterdayish");
  EXPECT_EQ(since.code, 2);
  EXPECT_NE(since.err.find("--since: \"yesterdayish\" is not a date"), std::string::npos) << since.err;
  EXPECT_EQ(sql("SELECT count(*) FROM vstore_operations WHERE kind = 'reindex'"), "0");
}

}  // namespace
