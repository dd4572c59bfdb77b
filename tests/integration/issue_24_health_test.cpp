// SPDX-License-Identifier: Apache-2.0
// Issue 24, item 4: `vstore health` reports the index's size against shared_buffers and memory,
// the pool, a latency probe and the last validation, and an invalid index makes it unhealthy.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/operations.hpp"

namespace {

using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class Issue24Health : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    m_db = vstore::testing::PgServer::instance().create_database("i24health");
    m_cfg = vstore::testing::test_config(m_db, 384);
    ASSERT_EQ(run("schema up").code, 0);
    std::ofstream out(m_tmp.path / "articles.jsonl");
    for (int i = 0; i < 120; ++i) {
      out << json{{"uri", "h:" + std::to_string(i)}, {"title", "story " + std::to_string(i) + " about grain"}}.dump() << "\n";
    }
    out.close();
    ASSERT_EQ(run("ingest articles.jsonl").code, 0);
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_db); }
  CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(m_tmp.path.string(), args, "DATABASE_URL='" + m_db + "' " + env);
  }
  void record(const std::string& kind, std::optional<bool> passed) {
    auto id = vstore::begin_operation(m_db, m_cfg, kind);
    ASSERT_TRUE(id) << id.error().to_string();
    ASSERT_TRUE(vstore::finish_operation(m_db, *id, true, passed, kind == "validate" ? "/r/validate.json" : "", {}));
  }

  vstore::testing::TempDir m_tmp;
  std::string m_db;
  vstore::Config m_cfg;
};

TEST_F(Issue24Health, ReportsIndexSizeMemoryPoolLatencyAndTheLastValidation) {
  CmdResult r = run("health --json", "DB_POOL_SIZE=3 DB_MAX_OVERFLOW=2");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  json h = json::parse(r.out);
  EXPECT_TRUE(h["healthy"].get<bool>());
  const json& index = h["index"];
  EXPECT_EQ(index["valid"], true);
  EXPECT_EQ(index["size_bytes"].get<std::int64_t>(),
            std::stoll(sql_value(m_db, "SELECT pg_relation_size('articles_embedding_hnsw_idx')")));
  EXPECT_EQ(index["shared_buffers_bytes"].get<std::int64_t>(),
            std::stoll(sql_value(m_db, "SELECT pg_size_bytes(current_setting('shared_buffers'))")));
  EXPECT_GT(index["host_ram_bytes"].get<std::int64_t>(), 0);
  EXPECT_EQ(h["pool"]["size"], 3);
  EXPECT_EQ(h["pool"]["max_overflow"], 2);
  EXPECT_GE(h["pool"]["in_use"].get<int>(), 1);  // the check's own connection
  EXPECT_EQ(h["pool"]["open"].get<int>(), h["pool"]["in_use"].get<int>() + h["pool"]["idle"].get<int>());
  EXPECT_GT(h["latency_ms"]["roundtrip"].get<double>(), 0.0);
  EXPECT_GT(h["latency_ms"]["search"].get<double>(), 0.0);
  EXPECT_TRUE(h["last_validation"].is_null());
  CmdResult text = run("health");
  EXPECT_TRUE(contains(text.out, "  index articles_embedding_hnsw_idx: valid, ")) << text.out;
  EXPECT_TRUE(contains(text.out, "  latency: round trip ")) << text.out;
  EXPECT_TRUE(contains(text.out, "  last validation: none")) << text.out;

  // A passing validation, then a migration after it: reported stale, with a warning, still healthy.
  record("validate", true);
  h = json::parse(run("health --json").out);
  EXPECT_EQ(h["last_validation"]["passed"], true);
  EXPECT_EQ(h["last_validation"]["stale"], false);
  EXPECT_EQ(h["last_validation"]["report_path"], "/r/validate.json");
  record("migrate-chroma", std::nullopt);
  r = run("health --json");
  EXPECT_EQ(r.code, 0);
  h = json::parse(r.out);
  EXPECT_EQ(h["last_validation"]["stale"], true);
  EXPECT_TRUE(contains(h["warnings"].dump(), "is older than the last vector write")) << r.out;
  record("validate", false);
  text = run("health");
  EXPECT_TRUE(contains(text.out, "did not pass")) << text.out;
}

TEST_F(Issue24Health, AnInvalidIndexIsUnhealthyWithExitOne) {
  sql_value(m_db, "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'articles_embedding_hnsw_idx'::regclass");
  CmdResult r = run("health --json");
  EXPECT_EQ(r.code, 1) << r.out;
  json h = json::parse(r.out);
  EXPECT_FALSE(h["healthy"].get<bool>());
  EXPECT_EQ(h["index"]["valid"], false);
  EXPECT_TRUE(contains(h["reasons"].dump(), "vector index articles_embedding_hnsw_idx is not valid")) << r.out;
  CmdResult text = run("health");
  EXPECT_EQ(text.code, 1);
  EXPECT_TRUE(contains(text.out, "UNHEALTHY")) << text.out;
  EXPECT_TRUE(contains(text.out, "NOT VALID")) << text.out;
}

// A cluster of its own at PostgreSQL's smallest shared_buffers (16 pages, 128 kB), which the
// vector index of a few hundred articles outgrows: health warns, and stays healthy.
TEST(Issue24HealthMemory, AnIndexLargerThanSharedBuffersIsAWarning) {
  vstore::testing::TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  chmod(tmp.path.c_str(), 0755);
  vstore::EmbeddedPostgres pg(tmp.path / "pg");
  vstore::EmbeddedOptions options;
  options.fsync = false;
  options.shared_buffers = "128kB";
  options.maintenance_work_mem = "64MB";
  auto started = pg.start(options);
  ASSERT_TRUE(started) << started.error().to_string();
  struct Stop {
    vstore::EmbeddedPostgres& pg;
    ~Stop() { static_cast<void>(pg.stop()); }
  } stop_at_exit{pg};
  const std::string env = "DATABASE_URL='" + started->conninfo + "'";
  auto run = [&](const std::string& args) { return vstore::testing::run_vstore(tmp.path.string(), args, env); };
  ASSERT_EQ(run("schema up").code, 0);
  {
    std::ofstream out(tmp.path / "articles.jsonl");
    for (int i = 0; i < 400; ++i) {
      out << json{{"uri", "m:" + std::to_string(i)}, {"title", "story " + std::to_string(i) + " about tin"}}.dump() << "\n";
    }
  }
  CmdResult ingested = run("ingest articles.jsonl");
  ASSERT_EQ(ingested.code, 0) << ingested.err;
  CmdResult r = run("health --json");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  const json h = json::parse(r.out);
  EXPECT_TRUE(h["healthy"].get<bool>()) << r.out;
  EXPECT_EQ(h["index"]["shared_buffers_bytes"], 131072);
  EXPECT_GT(h["index"]["size_bytes"].get<std::int64_t>(), 131072) << r.out;
  bool warned = false;
  for (const auto& w : h["warnings"]) warned = warned || contains(w.get<std::string>(), "is larger than shared_buffers");
  EXPECT_TRUE(warned) << r.out;
  CmdResult text = run("health");
  EXPECT_TRUE(contains(text.out + text.err, "raise shared_buffers")) << text.out << text.err;
}

}  // namespace
