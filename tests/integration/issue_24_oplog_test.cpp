// SPDX-License-Identifier: Apache-2.0
// Issue 24, schema migration 7 and the operations log: runs recorded, the latest one found, the
// newest vector write known, and `schema down` taking back exactly what migration 7 added.
#include <gtest/gtest.h>

#include <string>

#include "support/pg_fixture.hpp"
#include "vstore/operations.hpp"
#include "vstore/schema.hpp"

namespace {

using vstore::testing::sql_value;

class Issue24OpLog : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = vstore::testing::PgServer::instance().create_database("issue24oplog");
    m_cfg = vstore::testing::test_config(m_db, 8);
    auto up = vstore::schema_up(m_db, m_cfg);
    ASSERT_TRUE(up) << up.error().to_string();
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_db); }
  std::string m_db;
  vstore::Config m_cfg;
};

TEST_F(Issue24OpLog, RunsAreRecordedAndTheLatestFinishedOneIsFound) {
  auto none = vstore::latest_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_FALSE(none->has_value());

  auto first = vstore::begin_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(first) << first.error().to_string();
  ASSERT_TRUE(vstore::finish_operation(m_db, *first, true, false, "/tmp/a.json", {{"overlap_at_k", 0.5}}));
  auto second = vstore::begin_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(second);
  ASSERT_TRUE(vstore::finish_operation(m_db, *second, true, true, "/tmp/b.json", {{"overlap_at_k", 0.99}}));
  // Still running: not a result anyone may rely on.
  ASSERT_TRUE(vstore::begin_operation(m_db, m_cfg, "validate"));

  auto latest = vstore::latest_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(latest && latest->has_value());
  const vstore::OperationRecord& r = **latest;
  EXPECT_EQ(r.id, *second);
  EXPECT_EQ(r.kind, "validate");
  EXPECT_EQ(r.table, "articles");
  EXPECT_EQ(r.status, "succeeded");
  ASSERT_TRUE(r.passed.has_value());
  EXPECT_TRUE(*r.passed);
  EXPECT_EQ(r.report_path, "/tmp/b.json");
  EXPECT_EQ(r.summary.value("overlap_at_k", 0.0), 0.99);
  ASSERT_TRUE(r.finished_at.has_value());
  EXPECT_LE(r.started_at, *r.finished_at);
  EXPECT_EQ(r.finished_at->size(), std::string("2026-12-07T06:41:02.123456Z").size()) << *r.finished_at;
  EXPECT_EQ(r.finished_at->back(), 'Z');

  // A failed run is the latest, unless only successful ones are asked for.
  auto failed = vstore::begin_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(failed);
  ASSERT_TRUE(vstore::finish_operation(m_db, *failed, false, std::nullopt, "", {{"error", "chroma down"}}));
  auto any = vstore::latest_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(any && any->has_value());
  EXPECT_EQ((*any)->id, *failed);
  EXPECT_EQ((*any)->status, "failed");
  EXPECT_FALSE((*any)->passed.has_value());
  EXPECT_TRUE((*any)->report_path.empty());
  auto ok = vstore::latest_operation(m_db, m_cfg, "validate", true);
  ASSERT_TRUE(ok && ok->has_value());
  EXPECT_EQ((*ok)->id, *second);

  EXPECT_FALSE(vstore::finish_operation(m_db, 987654, true, std::nullopt, "", {}));
}

TEST_F(Issue24OpLog, TheLastVectorWriteIsTheNewestMigrationReindexDrainOrQueuedWrite) {
  auto none = vstore::last_vector_write(m_db, m_cfg);
  ASSERT_TRUE(none) << none.error().to_string();
  EXPECT_FALSE(none->has_value());

  // A validation is not a write.
  auto v = vstore::begin_operation(m_db, m_cfg, "validate");
  ASSERT_TRUE(v && vstore::finish_operation(m_db, *v, true, true, "", {}));
  EXPECT_FALSE(vstore::last_vector_write(m_db, m_cfg)->has_value());

  auto m = vstore::begin_operation(m_db, m_cfg, "migrate-chroma");
  ASSERT_TRUE(m && vstore::finish_operation(m_db, *m, true, std::nullopt, "", {}));
  auto after_migrate = vstore::last_vector_write(m_db, m_cfg);
  ASSERT_TRUE(after_migrate && after_migrate->has_value());
  EXPECT_EQ(**after_migrate, *(*vstore::latest_operation(m_db, m_cfg, "migrate-chroma"))->finished_at);

  sql_value(m_db, "INSERT INTO vstore_dual_stats (table_name, target, last_write_at) "
                  "VALUES ('articles', 'chromadb', '2999-01-02 03:04:05+00')");
  EXPECT_EQ(**vstore::last_vector_write(m_db, m_cfg), "2999-01-02T03:04:05.000000Z");
  sql_value(m_db, "INSERT INTO vstore_outbox (table_name, target, op, uri, enqueued_at) "
                  "VALUES ('articles', 'chromadb', 'remove', 'u', '3000-01-01 00:00:00+00')");
  EXPECT_EQ(**vstore::last_vector_write(m_db, m_cfg), "3000-01-01T00:00:00.000000Z");
  // Another table's writes are not this table's.
  sql_value(m_db, "INSERT INTO vstore_outbox (table_name, target, op, uri, enqueued_at) "
                  "VALUES ('other', 'chromadb', 'remove', 'u', '3001-01-01 00:00:00+00')");
  EXPECT_EQ(**vstore::last_vector_write(m_db, m_cfg), "3000-01-01T00:00:00.000000Z");
}

TEST_F(Issue24OpLog, SchemaDownTo6TakesBackTheLogTheHashColumnAndLastWriteAt) {
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'articles'::regclass "
                            "AND attname = 'embedding_text_hash' AND NOT attisdropped"),
            "1");
  auto down = vstore::schema_down(m_db, m_cfg, 6);
  ASSERT_TRUE(down) << down.error().to_string();
  EXPECT_EQ(down->current_version, 6);
  EXPECT_EQ(sql_value(m_db, "SELECT to_regclass('vstore_operations') IS NULL"), "t");
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'articles'::regclass "
                            "AND attname = 'embedding_text_hash' AND NOT attisdropped"),
            "0");
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'vstore_dual_stats'::regclass "
                            "AND attname = 'last_write_at' AND NOT attisdropped"),
            "0");
  auto log = vstore::begin_operation(m_db, m_cfg, "validate");
  ASSERT_FALSE(log);
  EXPECT_NE(log.error().message().find("vstore schema up"), std::string::npos) << log.error().message();
  auto up = vstore::schema_up(m_db, m_cfg);
  ASSERT_TRUE(up) << up.error().to_string();
  EXPECT_EQ(up->current_version, 7);
  EXPECT_TRUE(vstore::begin_operation(m_db, m_cfg, "validate"));
}

}  // namespace
