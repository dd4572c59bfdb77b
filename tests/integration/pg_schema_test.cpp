// SPDX-License-Identifier: Apache-2.0
// Schema migrations against a real PostgreSQL + pgvector: fresh install, application-owned
// table, up/down/up equivalence (pg_dump --schema-only), dimension conflicts.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "support/pg_fixture.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using testing::PgServer;
using testing::sql_value;
using testing::test_config;

std::string pg_dump_schema(const std::string& conninfo) {
  auto bindir = EmbeddedPostgres::find_bindir();
  EXPECT_TRUE(bindir.has_value());
  const std::string cmd = (*bindir / "pg_dump").string() + " --schema-only --no-owner --restrict-key=vstoretest '--dbname=" + conninfo + "'";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf{};
  while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe.get())) out.append(buf.data(), n);
  return out;
}

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override { m_db = PgServer::instance().create_database("schema"); }
  void TearDown() override { PgServer::instance().drop_database(m_db); }
  std::string m_db;
};

TEST_F(SchemaTest, UpCreatesTableColumnsAndHnswIndexOnEmptyDatabase) {
  auto st = schema_up(m_db, test_config(m_db, 8));
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(st->current_version, st->latest_version);
  EXPECT_TRUE(st->table_exists);
  EXPECT_EQ(sql_value(m_db, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'articles'::regclass AND attname = 'embedding'"),
            "vector(8)");
  EXPECT_EQ(sql_value(m_db, "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = "
                            "'articles_embedding_hnsw_idx'"),
            "hnsw");
  EXPECT_EQ(sql_value(m_db, "SELECT extversion FROM pg_extension WHERE extname = 'vector'"), "0.8.0");
}

// The build reports the rows it has taken in while it runs (polled from the server's progress
// view on a second connection), rising, and the whole at the end. 12,000 8-d vectors take a
// few seconds to index here (about 5,000 rows/s), several poll intervals.
TEST_F(SchemaTest, AnIndexBuildReportsItsProgressWhileItRuns) {
  auto cfg = test_config(m_db, 8);
  ASSERT_TRUE(schema_up(m_db, cfg));
  auto dropped = suspend_vector_index(m_db, cfg);
  ASSERT_TRUE(dropped && !dropped->empty());
  sql_value(m_db, "INSERT INTO articles (uri, embedding) SELECT 'u' || g, (SELECT array_agg(random())::real[]::vector(8) "
                  "FROM generate_series(1, 8) WHERE g > 0) FROM generate_series(1, 12000) g");
  std::vector<std::pair<std::int64_t, std::int64_t>> calls;
  auto built = restore_vector_index(m_db, cfg, [&calls](std::int64_t done, std::int64_t total) { calls.emplace_back(done, total); });
  ASSERT_TRUE(built) << built.error().to_string();
  EXPECT_TRUE(*built);
  ASSERT_FALSE(calls.empty());
  EXPECT_EQ(calls.back(), (std::pair<std::int64_t, std::int64_t>{12000, 12000}));
  std::size_t during = 0;
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].second, 12000);
    EXPECT_LE(calls[i].first, calls[i].second);
    if (i > 0) {
      EXPECT_GE(calls[i].first, calls[i - 1].first);
    }
    if (i + 1 < calls.size() && calls[i].first < 12000) ++during;
  }
  EXPECT_GE(during, 1U) << "no report while the build ran (" << calls.size() << " calls)";
  // Nothing to build: no call at all.
  calls.clear();
  auto again = restore_vector_index(m_db, cfg, [&calls](std::int64_t done, std::int64_t total) { calls.emplace_back(done, total); });
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  EXPECT_TRUE(calls.empty());
}

TEST_F(SchemaTest, UpIsIdempotent) {
  auto cfg = test_config(m_db, 8);
  ASSERT_TRUE(schema_up(m_db, cfg));
  const std::string before = pg_dump_schema(m_db);
  ASSERT_TRUE(schema_up(m_db, cfg));
  EXPECT_EQ(pg_dump_schema(m_db), before);
}

TEST_F(SchemaTest, UpDownUpGivesTheSameSchemaAsUp) {
  auto cfg = test_config(m_db, 8);
  ASSERT_TRUE(schema_up(m_db, cfg));
  const std::string once = pg_dump_schema(m_db);
  auto down = schema_down(m_db, cfg);
  ASSERT_TRUE(down) << down.error().to_string();
  EXPECT_EQ(down->current_version, 0);
  EXPECT_FALSE(down->table_exists);
  ASSERT_TRUE(schema_up(m_db, cfg));
  EXPECT_EQ(pg_dump_schema(m_db), once);
}

TEST_F(SchemaTest, UpOnApplicationOwnedTableKeepsEveryRowAndColumn) {
  auto cfg = test_config(m_db, 8);
  sql_value(m_db,
            "CREATE TABLE articles (uri text PRIMARY KEY, title text, publication_date text, topic text, "
            "confidence_score real, owner_note text NOT NULL DEFAULT 'x'); "
            "INSERT INTO articles VALUES ('a:1', 'One', '2025-01-02', 'AI', 0.5, 'keep'), "
            "('a:2', 'Two', 'July 03, 2025', NULL, NULL, 'me')");
  const std::string rows_before =
      sql_value(m_db, "SELECT string_agg(t::text, '|' ORDER BY uri) FROM articles t");
  auto st = schema_up(m_db, cfg);
  ASSERT_TRUE(st) << st.error().to_string();
  EXPECT_EQ(sql_value(m_db, "SELECT string_agg((uri, title, publication_date, topic, confidence_score, owner_note)::text, "
                            "'|' ORDER BY uri) FROM articles"),
            rows_before);
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'articles'::regclass AND attnum > 0 "
                            "AND NOT attisdropped"),
            "11");  // 6 own + 5 added (migration 2: four; migration 7: embedding_text_hash)
  // Down removes only what vstore added, and keeps the owned table and its rows.
  auto down = schema_down(m_db, cfg);
  ASSERT_TRUE(down) << down.error().to_string();
  EXPECT_TRUE(down->table_exists);
  EXPECT_EQ(sql_value(m_db, "SELECT string_agg(t::text, '|' ORDER BY uri) FROM articles t"), rows_before);
}

TEST_F(SchemaTest, UpOnOwnedTableUpDownUpGivesTheSameSchema) {
  auto cfg = test_config(m_db, 8);
  sql_value(m_db, "CREATE TABLE articles (uri text PRIMARY KEY, title text, topic text); "
                  "INSERT INTO articles VALUES ('a:1', 'One', 'AI')");
  ASSERT_TRUE(schema_up(m_db, cfg));
  const std::string once = pg_dump_schema(m_db);
  ASSERT_TRUE(schema_down(m_db, cfg));
  ASSERT_TRUE(schema_up(m_db, cfg));
  EXPECT_EQ(pg_dump_schema(m_db), once);
}

// Migration 5: the embedding column vstore added keeps its vectors in the row (STORAGE MAIN),
// so an article row with a long text moves the text to TOAST, not the vector; down restores
// pgvector's default. A column the application made keeps its own storage.
TEST_F(SchemaTest, TheEmbeddingColumnVstoreAddedKeepsItsVectorInTheRow) {
  auto cfg = test_config(m_db, 384);
  ASSERT_TRUE(schema_up(m_db, cfg));
  auto storage = [&] {
    return sql_value(m_db, "SELECT attstorage FROM pg_attribute WHERE attrelid = 'articles'::regclass AND attname = "
                           "'embedding'");
  };
  EXPECT_EQ(storage(), "m");
  // A row of about 3 kB (1,400 bytes of text that does not compress, and the 1,544-byte
  // vector) must lose one value to TOAST: with MAIN it is the text, so the heap tuple still
  // holds the vector; with pgvector's default it would be the vector (the larger value).
  auto insert_and_tuple_length = [&](const std::string& uri) {
    sql_value(m_db, fmt::format("INSERT INTO articles (uri, raw, embedding) SELECT '{}', string_agg(md5(i::text || "
                                "'{}'), ''), (SELECT array_agg(j::real / 384)::vector(384) FROM generate_series(1, 384) "
                                "j) FROM generate_series(1, 44) i",
                                uri, uri));
    return std::stoi(sql_value(m_db, fmt::format("SELECT p.lp_len FROM articles a, heap_page_items(get_raw_page("
                                                 "'articles', (a.ctid::text::point)[0]::int)) p WHERE a.uri = '{}' AND "
                                                 "p.t_ctid = a.ctid",
                                                 uri)));
  };
  sql_value(m_db, "CREATE EXTENSION IF NOT EXISTS pageinspect");
  EXPECT_GT(insert_and_tuple_length("a:main"), 1544);
  ASSERT_TRUE(schema_down(m_db, cfg, 4));
  EXPECT_EQ(storage(), "e");
  EXPECT_LT(insert_and_tuple_length("a:external"), 1544);  // the default moves the vector out
  ASSERT_TRUE(schema_up(m_db, cfg));
  EXPECT_EQ(storage(), "m");

  // A vector too large to stay in a row (1536 dimensions, 6,152 bytes) keeps pgvector's storage.
  const std::string wide = PgServer::instance().create_database("schema_wide");
  ASSERT_TRUE(schema_up(wide, test_config(wide, 1536)));
  EXPECT_EQ(sql_value(wide, "SELECT attstorage FROM pg_attribute WHERE attrelid = 'articles'::regclass AND attname = "
                            "'embedding'"),
            "e");
  EXPECT_NE(sql_value(wide, "SELECT details->>'reason' FROM vstore_schema_migrations WHERE version = 5")
                .find("vector(1536) takes 6152 bytes"),
            std::string::npos);
  PgServer::instance().drop_database(wide);

  // An application table that brought its own embedding column.
  const std::string other = PgServer::instance().create_database("schema_own");
  sql_value(other, "CREATE EXTENSION vector; CREATE TABLE articles (uri text PRIMARY KEY, embedding vector(384))");
  ASSERT_TRUE(schema_up(other, test_config(other, 384)));
  EXPECT_EQ(sql_value(other, "SELECT attstorage FROM pg_attribute WHERE attrelid = 'articles'::regclass AND attname = "
                             "'embedding'"),
            "e");
  PgServer::instance().drop_database(other);
}

TEST_F(SchemaTest, UpRefusesExistingEmbeddingColumnOfAnotherDimension) {
  sql_value(m_db, "CREATE EXTENSION vector; CREATE TABLE articles (uri text PRIMARY KEY, embedding vector(1536))");
  auto st = schema_up(m_db, test_config(m_db, 384));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::conflict);
  EXPECT_NE(st.error().message().find("vector(1536)"), std::string::npos) << st.error().message();
  EXPECT_NE(st.error().message().find("EMBEDDING_DIM=384"), std::string::npos) << st.error().message();
}

TEST_F(SchemaTest, UpRefusesTableWithoutUniqueUri) {
  sql_value(m_db, "CREATE TABLE articles (uri text, title text)");
  auto st = schema_up(m_db, test_config(m_db, 8));
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::conflict);
  EXPECT_NE(st.error().message().find("uri"), std::string::npos);
}

TEST_F(SchemaTest, IvfflatAndNoIndexFollowTheConfiguration) {
  auto cfg = test_config(m_db, 8);
  cfg.pgvector.index_type = IndexType::ivfflat;
  cfg.pgvector.ivfflat_lists = 7;
  ASSERT_TRUE(schema_up(m_db, cfg));
  EXPECT_EQ(sql_value(m_db, "SELECT array_to_string(reloptions, ',') FROM pg_class WHERE relname = "
                            "'articles_embedding_ivfflat_idx'"),
            "lists=7");
  ASSERT_TRUE(schema_down(m_db, cfg));
  cfg.pgvector.index_type = IndexType::none;
  ASSERT_TRUE(schema_up(m_db, cfg));
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE am.amname IN "
                            "('hnsw','ivfflat')"),
            "0");
}

TEST_F(SchemaTest, DownKeepsATableVstoreCreatedWhenItHoldsArticles) {
  auto cfg = test_config(m_db, 8);
  ASSERT_TRUE(schema_up(m_db, cfg));
  sql_value(m_db, "INSERT INTO articles (uri, title) VALUES ('k:1', 'kept')");
  auto down = schema_down(m_db, cfg);
  ASSERT_TRUE(down) << down.error().to_string();
  EXPECT_TRUE(down->table_exists);
  ASSERT_FALSE(down->notes.empty());
  EXPECT_EQ(sql_value(m_db, "SELECT title FROM articles WHERE uri = 'k:1'"), "kept");
}

}  // namespace
}  // namespace vstore
