// SPDX-License-Identifier: Apache-2.0
// Issue 24 (operations), the first slice: `vstore search --explain` says how a search was
// planned and shows PostgreSQL's EXPLAIN (ANALYZE, BUFFERS), with the query vector as $1.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;

class Issue24Ops : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    m_conninfo = vstore::testing::PgServer::instance().create_database("issue24ops");
    ASSERT_EQ(run("schema up").code, 0);
    std::ofstream out(m_tmp.path / "articles.jsonl");
    for (int i = 0; i < 200; ++i) {
      out << json{{"uri", "x:" + std::to_string(i)},
                  {"title", "report " + std::to_string(i) + (i % 2 ? " on crude oil prices" : " on wheat harvests")},
                  {"topic", i % 2 ? "crude" : "grain"}}
                 .dump()
          << "\n";
    }
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_conninfo); }
  CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(m_tmp.path.string(), args, "DATABASE_URL='" + m_conninfo + "' " + env);
  }

  vstore::testing::TempDir m_tmp;
  std::string m_conninfo;
};

TEST_F(Issue24Ops, Item6SearchExplainShowsThePlanTheEstimateAndPostgresTiming) {
  ASSERT_EQ(run("ingest articles.jsonl").code, 0);
  vstore::testing::sql_value(m_conninfo, "ANALYZE articles");  // the estimates below are then exact
  // Unfiltered: vstore means the vector index, with the configured ef_search (on 200 rows
  // PostgreSQL may still rather scan and sort: that is what the plan lines show).
  CmdResult plain = run("search 'crude oil' --top-k 3 --explain --json", "PGVECTOR_HNSW_EF_SEARCH=55");
  ASSERT_EQ(plain.code, 0) << plain.err;
  const json p = json::parse(plain.out);
  EXPECT_EQ(p["explain"]["plan"], "index");
  EXPECT_EQ(p["explain"]["ef_search"], 55);
  EXPECT_TRUE(p["explain"]["estimated_rows"].is_null());
  EXPECT_EQ(p["results"].size(), 3U);
  const std::string lines = p["explain"]["explain"].dump();
  EXPECT_NE(lines.find("Limit"), std::string::npos) << lines;
  EXPECT_EQ(p["explain"]["vector_index_used"].get<bool>(), lines.find("Index Scan using") != std::string::npos) << lines;
  EXPECT_NE(lines.find("Execution Time"), std::string::npos) << lines;
  EXPECT_NE(lines.find("Buffers: shared"), std::string::npos) << lines;
  EXPECT_NE(lines.find("<=> $1"), std::string::npos) << lines;
  EXPECT_EQ(lines.find("::vector"), std::string::npos) << "the query vector is shown as $1";

  // Filtered to 100 of 200 rows: ranked exactly, with the filter's estimated selectivity.
  CmdResult filtered = run("search 'crude oil' --top-k 3 --where '{\"topic\": \"crude\"}' --explain");
  ASSERT_EQ(filtered.code, 0) << filtered.err;
  EXPECT_NE(filtered.out.find("vstore's plan: exact"), std::string::npos) << filtered.out;
  EXPECT_NE(filtered.out.find("filter: about 100 of 200 rows match (selectivity 0.5000"), std::string::npos)
      << filtered.out;
  EXPECT_NE(filtered.out.find("EXPLAIN (ANALYZE, BUFFERS):"), std::string::npos);
  EXPECT_NE(filtered.out.find("crude"), filtered.out.rfind("Execution Time")) << "the results follow the plan";

  // Chroma has no query plan: a clear refusal that says what to set.
  const std::string chroma_env = "VECTOR_BACKEND=chromadb CHROMA_URL='" + vstore::testing::ChromaServer::shared().url() +
                                 "' CHROMA_COLLECTION=" + vstore::testing::unique_collection("explain");
  ASSERT_EQ(run("ingest articles.jsonl", chroma_env).code, 0);
  CmdResult chroma = run("search oil --explain", chroma_env);
  EXPECT_EQ(chroma.code, 1);
  EXPECT_NE(chroma.err.find("explaining a search needs PostgreSQL"), std::string::npos) << chroma.err;
  EXPECT_NE(chroma.err.find("VECTOR_BACKEND=pgvector"), std::string::npos) << chroma.err;
}

}  // namespace
