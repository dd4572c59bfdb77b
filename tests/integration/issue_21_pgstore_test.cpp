// SPDX-License-Identifier: Apache-2.0
// Issue 21, the pgvector write side: all-or-nothing batches (2), no silent truncation (4), a
// catalog that follows index changes (5), indexes found by oid (11), upserts of changed article
// text (13c), repair of an index a killed run left behind (13g), the report of a failed bulk
// load (13h) and concurrent writers of the same uris (13i), against the real server.
#include <gtest/gtest.h>

#include <libpq-fe.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <span>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pg/pg_conn.hpp"
#include "pg/pg_store.hpp"
#include "support/cli_runner.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using testing::PgServer;
using testing::sql_value;
using testing::test_config;

constexpr int k_dim = 8;

Embedding vec_of(int seed) {
  Embedding e(k_dim);
  for (int i = 0; i < k_dim; ++i) e[static_cast<std::size_t>(i)] = static_cast<float>(std::sin(seed * 7 + i * 3) + 1.5);
  return e;
}

ArticleVector item(const std::string& uri, int seed = 1) {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.article.topic = "AI";
  a.embedding = vec_of(seed);
  a.embedding_model = "test-model";
  return a;
}

std::vector<ArticleVector> items(const std::string& prefix, int n) {
  std::vector<ArticleVector> out;
  for (int i = 0; i < n; ++i) out.push_back(item(fmt::format("{}{:03}", prefix, i), i));
  return out;
}

class Issue21PgStore : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = PgServer::instance().create_database("i21pg");
    m_cfg = test_config(m_db, k_dim);
  }
  void TearDown() override {
    m_store.reset();
    PgServer::instance().drop_database(m_db);
  }
  // `schema up` (after `app_sql`, the application's own table, when given), then opens the store.
  void open(const std::string& app_sql = "") {
    if (!app_sql.empty()) sql_value(m_db, app_sql);
    auto st = schema_up(m_db, m_cfg);
    ASSERT_TRUE(st) << st.error().to_string();
    auto store = pg::PgVectorStore::open(m_db, m_cfg);
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
  }
  std::string count() { return sql_value(m_db, "SELECT count(*) FROM articles"); }
  std::string index_name() {
    return sql_value(m_db, "SELECT details->>'created_index' FROM vstore_schema_migrations WHERE version = 3");
  }

  std::string m_db;
  Config m_cfg;
  std::unique_ptr<pg::PgVectorStore> m_store;
};

// ---- item 2 -----------------------------------------------------------------------------------

TEST_F(Issue21PgStore, Item2SmallBatchUpsertIsAllOrNothing) {
  open();
  // The server refuses the fourth item (not the client's validation).
  sql_value(m_db, "ALTER TABLE articles ADD CONSTRAINT no_bad CHECK (uri <> 'u:bad')");
  for (int n : {5, 15, 20}) {
    auto batch = items("u:", n);
    batch[3].article.uri = "u:bad";
    auto done = m_store->upsert(batch);
    ASSERT_FALSE(done) << n;
    EXPECT_EQ(count(), "0") << "a batch of " << n << " left rows behind: " << done.error().to_string();
  }
}

// ---- item 13i ---------------------------------------------------------------------------------

TEST_F(Issue21PgStore, Item13iConcurrentUpsertsOfTheSameUrisInOppositeOrdersDoNotFail) {
  open();
  // Two writers as two processes would be: a store each, the same uris in opposite orders.
  auto other = pg::PgVectorStore::open(m_db, m_cfg);
  ASSERT_TRUE(other) << other.error().to_string();
  // Every row update takes a while, so that the two transactions overlap (as large batches do).
  sql_value(m_db, "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.005); "
                  "RETURN NEW; END $$; CREATE TRIGGER slow BEFORE UPDATE ON articles FOR EACH ROW EXECUTE FUNCTION slow()");
  for (int n : {8, 40}) {
    auto forward = items(fmt::format("c{}:", n), n);
    ASSERT_TRUE(m_store->upsert(forward));  // existing rows: every later batch updates them
    for (int i = 0; i < n; ++i) forward[static_cast<std::size_t>(i)].embedding = vec_of(500 + i);
    auto backward = forward;
    std::reverse(backward.begin(), backward.end());
    std::atomic<int> failures{0};
    std::string first_failure;
    std::mutex mutex;
    auto writer = [&](pg::PgVectorStore& store, const std::vector<ArticleVector>& batch) {
      for (int round = 0; round < 10; ++round) {
        if (auto done = store.upsert(batch); !done) {
          std::lock_guard lock(mutex);
          if (failures++ == 0) first_failure = done.error().to_string();
        }
      }
    };
    std::thread a(writer, std::ref(*m_store), std::cref(forward));
    std::thread b(writer, std::ref(**other), std::cref(backward));
    a.join();
    b.join();
    EXPECT_EQ(failures.load(), 0) << "batches of " << n << ": " << first_failure;
    // Every row holds the vector the writers gave (a batch of existing uris is written too).
    auto stored = m_store->get_vectors(std::nullopt, std::nullopt);
    ASSERT_TRUE(stored) << stored.error().to_string();
    int updated = 0;
    for (std::size_t row = 0; row < stored->ids.size(); ++row) {
      for (const auto& a : forward) {
        if (a.article.uri != stored->ids[row]) continue;
        const std::span<const float> got(stored->data.data() + row * stored->dim, stored->dim);
        updated += std::equal(got.begin(), got.end(), a.embedding.begin()) ? 1 : 0;
      }
    }
    EXPECT_EQ(updated, n) << "batches of " << n;
  }
  // Sorted writers never deadlock (the retry is for what ordering cannot prevent).
  EXPECT_EQ(sql_value(m_db, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"), "0");
}

// ---- item 4 -----------------------------------------------------------------------------------

constexpr const char* k_varchar_table =
    "CREATE TABLE articles (uri text PRIMARY KEY, title varchar(10), summary text, raw text, topic character(4))";

TEST_F(Issue21PgStore, Item4AValueLongerThanAVarcharColumnIsAnErrorNamingUriColumnAndLimit) {
  open(k_varchar_table);
  for (int n : {1, 20}) {
    auto batch = items("v:", n);
    for (auto& a : batch) a.article.title = "short";
    batch.back().article.title = "a title of 26 characters!!";
    auto done = m_store->upsert(batch);
    ASSERT_FALSE(done) << "a batch of " << n << " was stored: "
                       << sql_value(m_db, "SELECT string_agg(title, '|') FROM articles");
    EXPECT_EQ(done.error().code(), ErrorCode::invalid_argument);
    const std::string& msg = done.error().message();
    EXPECT_NE(msg.find(batch.back().article.uri), std::string::npos) << msg;
    EXPECT_NE(msg.find("title"), std::string::npos) << msg;
    EXPECT_NE(msg.find("10"), std::string::npos) << msg;
    EXPECT_EQ(count(), "0") << msg;
  }
  // character(n) alike; a value that fits is stored whole (multi-byte characters count once).
  auto batch = items("w:", 1);
  batch[0].article.title = "short";
  batch[0].article.topic = "topic";
  EXPECT_FALSE(m_store->upsert(batch));
  batch[0].article.topic = "éèêë";
  batch[0].article.title = "ééééééééé€";
  ASSERT_TRUE(m_store->upsert(batch));
  EXPECT_EQ(sql_value(m_db, "SELECT title || topic FROM articles"), "ééééééééé€éèêë");
}

TEST_F(Issue21PgStore, Item4AValueLongerThanAVarcharColumnIsAnErrorThroughMigrateChroma) {
  open(k_varchar_table);
  const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
  ASSERT_NE(venvs, nullptr);
  const fs::path python = fs::path(venvs) / "0.4.24" / "bin" / "python";
  const fs::path dir = fs::temp_directory_path() / fmt::format("i21-chroma-{}", getpid());
  fs::remove_all(dir);
  const fs::path script = dir.string() + ".py";
  std::ofstream(script) << "import sys, chromadb\n"
                           "c = chromadb.PersistentClient(path=sys.argv[1])\n"
                           "col = c.create_collection('news', metadata={'hnsw:space': 'cosine'})\n"
                           "col.add(ids=['m:1', 'm:2', 'm:3'], embeddings=[[1,2,3,4,5,6,7,8],[2,1,3,4,5,6,7,8],"
                           "[3,2,1,4,5,6,7,8]], metadatas=[{'title': 'short'}, {'title': 'a title of 26 "
                           "characters!!'}, {'title': 'ok'}], documents=['a', 'b', 'c'])\n";
  ASSERT_EQ(std::system(fmt::format("'{}' '{}' '{}' >/dev/null 2>&1", python.string(), script.string(), dir.string()).c_str()), 0);
  MigrateOptions opts;
  opts.from_dir = dir.string();
  opts.insert_missing = true;
  opts.model = "test-model";
  opts.batch_size = 1;  // the long title is in the second batch: the first must not be kept either
  m_cfg.data_dir = dir / "data";
  auto report = migrate_chroma(m_db, m_cfg, opts);
  fs::remove_all(dir);
  fs::remove(script);
  ASSERT_FALSE(report) << report->to_json().dump(1);
  const std::string& msg = report.error().message();
  EXPECT_NE(msg.find("m:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("title"), std::string::npos) << msg;
  EXPECT_NE(msg.find("10"), std::string::npos) << msg;
  EXPECT_EQ(count(), "0") << msg;
}

// ---- item 11 ----------------------------------------------------------------------------------

TEST_F(Issue21PgStore, Item11AnApplicationIndexNamedMyIdxIsFoundByOidAndHealthIsTrue) {
  open(fmt::format("CREATE EXTENSION IF NOT EXISTS vector; CREATE TABLE articles (uri text PRIMARY KEY, title text, "
                   "embedding vector({})); CREATE INDEX \"MyIdx\" ON articles USING hnsw (embedding vector_cosine_ops)",
                   k_dim));
  auto h = m_store->health();
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_TRUE((*h)["healthy"].get<bool>()) << h->dump(1);
  EXPECT_EQ((*h)["index"]["name"], "MyIdx") << h->dump(1);
  EXPECT_EQ((*h)["index"]["valid"], true) << h->dump(1);
  EXPECT_EQ((*h)["index"]["type"], "hnsw") << h->dump(1);
}

// ---- item 5 -----------------------------------------------------------------------------------

TEST_F(Issue21PgStore, Item5AStoreOpenedWhileTheIndexWasDroppedUsesItOnceItIsRebuilt) {
  auto st = schema_up(m_db, m_cfg);
  ASSERT_TRUE(st) << st.error().to_string();
  auto dropped = suspend_vector_index(m_db, m_cfg);
  ASSERT_TRUE(dropped && !dropped->empty());
  auto store = pg::PgVectorStore::open(m_db, m_cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  m_store = std::move(*store);
  ASSERT_TRUE(m_store->upsert(items("p:", 20)));
  ASSERT_TRUE(m_store->search(vec_of(3), SearchOptions{}));
  EXPECT_EQ(pg::PgVectorStore::test_last_plan(), SearchPlan::exact);  // no index yet

  auto built = restore_vector_index(m_db, m_cfg);
  ASSERT_TRUE(built && *built);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // past the catalog re-check interval
  ASSERT_TRUE(m_store->search(vec_of(3), SearchOptions{}));
  EXPECT_EQ(pg::PgVectorStore::test_last_plan(), SearchPlan::index);
  auto h = m_store->health();
  ASSERT_TRUE(h);
  EXPECT_EQ((*h)["index"]["name"], *dropped) << h->dump(1);

  // And the other way: the index dropped under the open store is noticed too.
  ASSERT_TRUE(suspend_vector_index(m_db, m_cfg));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  ASSERT_TRUE(m_store->search(vec_of(3), SearchOptions{}));
  EXPECT_EQ(pg::PgVectorStore::test_last_plan(), SearchPlan::exact);
}

// ---- item 13c ---------------------------------------------------------------------------------

TEST_F(Issue21PgStore, Item13cAnUpsertOnTheTableVstoreCreatedWritesTheArticleFieldsItIsGiven) {
  open();
  for (int n : {1, 20}) {
    auto batch = items(fmt::format("r{}:", n), n);
    ASSERT_TRUE(m_store->upsert(batch));
    for (auto& a : batch) {
      a.article.title = "New title";
      a.article.raw = "New body";
      a.article.topic = "Energy";
      a.embedding = vec_of(99);
    }
    ASSERT_TRUE(m_store->upsert(batch));
    const std::string uri = batch.front().article.uri;
    EXPECT_EQ(sql_value(m_db, fmt::format("SELECT title || '|' || raw || '|' || topic FROM articles WHERE uri = '{}'", uri)),
              "New title|New body|Energy");
    SearchOptions opts;
    auto where = parse_filter(std::string_view(R"({"topic": "Energy"})"));
    ASSERT_TRUE(where);
    opts.where = *where;
    opts.top_k = 100;
    auto hits = m_store->search(vec_of(99), opts);
    ASSERT_TRUE(hits) << hits.error().to_string();
    EXPECT_EQ(hits->size(), static_cast<std::size_t>(n));
    sql_value(m_db, "DELETE FROM articles");
  }
  // A field the upsert does not give keeps its value.
  auto one = items("k:", 1);
  one[0].article.summary = "kept";
  ASSERT_TRUE(m_store->upsert(one));
  one[0].article.summary.reset();
  one[0].article.title = "changed";
  ASSERT_TRUE(m_store->upsert(one));
  EXPECT_EQ(sql_value(m_db, "SELECT summary || '|' || title FROM articles"), "kept|changed");
}

TEST_F(Issue21PgStore, Item13cAnUpsertOfChangedTextOnAnApplicationTableIsRefusedNamingUriAndField) {
  open("CREATE TABLE articles (uri text PRIMARY KEY, title text, summary text, raw text, topic text)");
  sql_value(m_db, "INSERT INTO articles (uri, title, raw, topic) SELECT 'a:' || lpad(g::text, 3, '0'), 'Old', 'Old body', "
                  "'AI' FROM generate_series(0, 19) g");
  for (int n : {1, 20}) {
    auto batch = items("a:", n);
    for (auto& a : batch) {
      a.article.title = "Old";
      a.article.raw = "Old body";
    }
    batch.back().article.raw = "New body";
    auto done = m_store->upsert(batch);
    ASSERT_FALSE(done) << "a batch of " << n;
    EXPECT_EQ(done.error().code(), ErrorCode::invalid_argument);
    EXPECT_NE(done.error().message().find(batch.back().article.uri), std::string::npos) << done.error().message();
    EXPECT_NE(done.error().message().find("raw"), std::string::npos) << done.error().message();
    EXPECT_EQ(sql_value(m_db, "SELECT count(embedding) FROM articles"), "0");
    // The same text as the row's, or no article fields at all: the vector is written.
    batch.back().article.raw = "Old body";
    ASSERT_TRUE(m_store->upsert(batch)) << n;
    for (auto& a : batch) {
      a.article = Article{};
      a.article.uri = "a:000";
    }
    batch.resize(1);
    ASSERT_TRUE(m_store->upsert(batch)) << n;
    EXPECT_EQ(sql_value(m_db, "SELECT title || '|' || raw || '|' || topic FROM articles WHERE uri = 'a:000'"),
              "Old|Old body|AI");
    sql_value(m_db, "UPDATE articles SET embedding = NULL");
  }
}

// ---- item 13g ---------------------------------------------------------------------------------

TEST_F(Issue21PgStore, Item13gTheRepairCancelsAnOrphanedIndexBuildAndBuildsTheIndex) {
  open();
  ASSERT_TRUE(m_store->upsert(items("g:", 50)));
  const std::string name = index_name();
  auto dropped = suspend_vector_index(m_db, m_cfg);
  ASSERT_TRUE(dropped && *dropped == name);
  // A writer holds the table, so that the build of the killed run waits (as a long build runs).
  auto blocker = pg::Connection::connect(m_db);
  ASSERT_TRUE(blocker);
  ASSERT_TRUE(blocker->exec("BEGIN; LOCK TABLE articles IN ROW EXCLUSIVE MODE"));
  // The killed run: its CREATE INDEX is sent, then the client goes away. The server keeps the
  // statement running.
  PGconn* killed = PQconnectdb(m_db.c_str());
  ASSERT_EQ(PQstatus(killed), CONNECTION_OK);
  const int orphan = PQbackendPID(killed);
  ASSERT_EQ(PQsendQuery(killed, fmt::format("CREATE INDEX \"{}\" ON \"articles\" USING hnsw (embedding vector_cosine_ops) "
                                            "WITH (m = 16, ef_construction = 64)",
                                            name)
                                    .c_str()),
            1);
  const std::string waiting = fmt::format("SELECT count(*) FROM pg_stat_activity WHERE pid = {} AND wait_event_type = 'Lock'", orphan);
  for (int i = 0; i < 100 && sql_value(m_db, waiting) != "1"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(sql_value(m_db, waiting), "1");
  PQfinish(killed);

  // The next run's repair (what `--resume`, a rerun of ingest and `schema up` call).
  Result<bool> repaired = false;
  std::thread repair([&] { repaired = restore_vector_index(m_db, m_cfg); });
  const std::string alive = fmt::format("SELECT count(*) FROM pg_stat_activity WHERE pid = {}", orphan);
  for (int i = 0; i < 100 && sql_value(m_db, alive) != "0"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const std::string orphan_left = sql_value(m_db, alive);
  ASSERT_TRUE(blocker->exec("COMMIT"));
  repair.join();
  EXPECT_EQ(orphan_left, "0") << "the orphaned build was still running";
  ASSERT_TRUE(repaired) << repaired.error().to_string();
  EXPECT_EQ(sql_value(m_db, fmt::format("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                                        "WHERE c.relname = '{}'",
                                        name)),
            "t");
}

// ---- the CLI (items 13g, 13h) -----------------------------------------------------------------

using testing::CmdResult;

class Issue21PgCli : public Issue21PgStore {
 protected:
  void SetUp() override {
    Issue21PgStore::SetUp();
    std::string tmpl = (fs::temp_directory_path() / "i21-cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    m_dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
    Issue21PgStore::TearDown();
  }
  // `n` records with vectors of model test-model, uris h:000.., in a JSON Lines file.
  std::string write_records(int n) {
    const fs::path file = fs::path(m_dir) / "records.jsonl";
    std::ofstream out(file);
    for (int i = 0; i < n; ++i) {
      const Embedding v = vec_of(i);
      out << fmt::format("{{\"uri\": \"h:{:03}\", \"title\": \"t{}\", \"embedding\": [{}]}}\n", i, i, fmt::join(v, ","));
    }
    return file.string();
  }
  CmdResult run(const std::string& args) {
    return testing::run_shell(
        m_dir, fmt::format("env -i PATH=/usr/bin:/bin HOME='{0}' VSTORE_DATA_DIR='{0}/data' DATABASE_URL='{1}' "
                           "EMBEDDING_DIM={2} EMBEDDING_PROVIDER=hash EMBEDDING_MODEL=test-model '{3}' {4}",
                           m_dir, m_db, k_dim, testing::vstore_bin(), args));
  }
  std::string m_dir;
};

TEST_F(Issue21PgCli, Item13gARerunOfAKilledBulkIngestRebuildsTheVectorIndex) {
  open();
  const std::string file = write_records(30);
  CmdResult first = run(fmt::format("ingest '{}' --model test-model", file));
  ASSERT_EQ(first.code, 0) << first.err;
  // The bulk load was killed after it dropped the index.
  auto dropped = suspend_vector_index(m_db, m_cfg);
  ASSERT_TRUE(dropped && !dropped->empty());
  CmdResult again = run(fmt::format("ingest '{}' --model test-model", file));
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_EQ(sql_value(m_db, fmt::format("SELECT count(*) FROM pg_class WHERE relname = '{}'", *dropped)), "1") << again.err;
}

TEST_F(Issue21PgCli, Item13hAFailedBulkLoadIsReportedFirstWithTheCountStored) {
  open();
  // The load fails at record 151 (a value the server refuses) and the index rebuild fails too.
  sql_value(m_db, "ALTER TABLE articles ADD CONSTRAINT no_150 CHECK (uri <> 'h:150')");
  sql_value(m_db, "CREATE FUNCTION no_index() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                  "'index builds are off in this test'; END $$; CREATE EVENT TRIGGER no_index ON ddl_command_start "
                  "WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION no_index()");
  const std::string file = write_records(200);
  CmdResult r = run(fmt::format("ingest '{}' --model test-model --bulk on --batch-size 50", file));
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(count(), "150");
  const std::size_t load = r.err.find("no_150");
  const std::size_t index = r.err.find("index builds are off");
  ASSERT_NE(load, std::string::npos) << r.err;
  EXPECT_NE(index, std::string::npos) << r.err;
  EXPECT_LT(load, index) << r.err;
  EXPECT_NE(r.err.find("150 records stored"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vstore
