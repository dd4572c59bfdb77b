// SPDX-License-Identifier: Apache-2.0
// Issue 26, item 2: load. The short soak of the test command: `vstore bench soak` for a few
// seconds per phase against the fixture's server (the hash embedder): 8 writers and 8 readers
// through the library, then 8 writers over HTTP beside wrk's 8 connections searching, with zero
// errors and a table equal to every acknowledged write (count, vector bytes and checksum). And
// the check itself: soak_verify() reports a lost, a changed, an unexpected and a duplicated row.
// The long soak runs by hand (docs/robustness.md, "Load").
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "macro/bench.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::PgServer;
using vstore::testing::sql_value;

class Issue26Soak : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_tmp = std::make_unique<vstore::testing::TempDir>();
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    ASSERT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA must be set (by CTest)";
    const fs::path reuters = fs::path(shared) / "reuters21578";
    std::ifstream in(reuters / "articles.jsonl");
    std::ofstream out(s_tmp->path / "articles.jsonl");
    std::string line;
    for (int kept = 0; kept < 2000 && std::getline(in, line); ++kept) out << line << "\n";
    std::ifstream qin(reuters / "queries-dev.tsv");
    std::ofstream qout(s_tmp->path / "queries.tsv");
    for (int kept = 0; kept < 40 && std::getline(qin, line); ++kept) qout << line << "\n";
  }
  static void TearDownTestSuite() { s_tmp.reset(); }
  static std::unique_ptr<vstore::testing::TempDir> s_tmp;
};

std::unique_ptr<vstore::testing::TempDir> Issue26Soak::s_tmp;

void expect_calls(const json& cell, const std::string& what) {
  ASSERT_TRUE(cell.is_object()) << what;
  EXPECT_GT(cell["requests"].get<std::int64_t>(), 0) << what;
  EXPECT_GT(cell["p99_ms"].get<double>(), 0.0) << what;
  EXPECT_GE(cell["p99_ms"].get<double>(), cell["p50_ms"].get<double>()) << what;
  EXPECT_GE(cell["max_ms"].get<double>(), cell["p99_ms"].get<double>()) << what;
}

TEST_F(Issue26Soak, EightWritersAndEightReadersLoseNothingThroughTheLibraryAndTheService) {
  const CmdResult run = vstore::testing::run_vstore(
      s_tmp->path.string(),
      "bench soak --duration 4 --writers 8 --readers 8 --seed 500 --data articles.jsonl --query-file queries.tsv --json",
      fmt::format("DATABASE_URL='{}'", PgServer::instance().admin_conninfo()));
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  const json r = json::parse(run.out, nullptr, false);
  ASSERT_TRUE(r.is_object()) << run.out;
  EXPECT_EQ(r["errors"], 0) << r["first_error"];
  EXPECT_EQ(r["writers"], 8);
  EXPECT_EQ(r["readers"], 8);
  for (const char* kind : {"writes", "search", "similar", "vectors"}) expect_calls(r["library"][kind], kind);
  expect_calls(r["service"]["writes"], "HTTP writes");
  expect_calls(r["service"]["search"], "wrk searches");
  EXPECT_EQ(r["service"]["search"]["wrk_errors"], 0);
  // The service logged every search wrk made and every write, all answered 200.
  const json& answered = r["service"]["answered"];
  EXPECT_EQ(answered["search"]["by_status"].size(), 1u) << answered.dump();
  EXPECT_GE(answered["search"]["by_status"].value("200", 0), r["service"]["search"]["requests"].get<std::int64_t>());
  EXPECT_EQ(answered["articles"]["by_status"].size(), 1u) << answered.dump();
  EXPECT_EQ(answered["articles"]["by_status"].value("200", 0), r["service"]["writes"]["requests"].get<std::int64_t>());
  EXPECT_EQ(r["service"]["exit"]["clean"], true) << r["service"]["exit"];

  const json& v = r["verify"];
  const std::int64_t written = r["library"]["writes"]["requests"].get<std::int64_t>() +
                               r["service"]["writes"]["requests"].get<std::int64_t>();
  // Rewrites (one write in four) do not add rows: 500 seeds plus at least the new uris.
  EXPECT_GE(v["expected_rows"].get<std::int64_t>(), 500 + written / 2) << v.dump();
  EXPECT_LE(v["expected_rows"].get<std::int64_t>(), 500 + written) << v.dump();
  EXPECT_EQ(v["rows"], v["expected_rows"]) << v.dump();
  EXPECT_EQ(v["lost"], 0);
  EXPECT_EQ(v["changed"], 0);
  EXPECT_EQ(v["unexpected"], 0);
  EXPECT_EQ(v["duplicates"], 0);
  EXPECT_EQ(v["checksum_stored"], v["checksum_expected"]);
  EXPECT_EQ(v["equal"], true);
  EXPECT_EQ(sql_value(PgServer::instance().admin_conninfo(),
                      "SELECT count(*) FROM pg_database WHERE datname LIKE 'vstore\\_bench\\_soak\\_%'"),
            "0");
}

TEST_F(Issue26Soak, TheCheckReportsLostChangedAndUnexpectedRows) {
  const std::string db = PgServer::instance().create_database("soak_verify");
  auto config = vstore::testing::test_config(db, 64);
  ASSERT_TRUE(vstore::schema_up(db, config).has_value());
  auto opened = vstore::open_store(config);
  ASSERT_TRUE(opened.has_value()) << opened.error().to_string();
  vstore::ArticleStore store(std::move(*opened), vstore::make_hash_embedder(64), 1);
  vstore::SoakAcknowledged acknowledged;
  const std::array<const char*, 5> commodities = {"cocoa", "coffee", "sugar", "copper", "wheat"};
  for (int i = 0; i < 5; ++i) {
    vstore::Article a;
    a.uri = fmt::format("soak:check:{}", i);
    a.raw = fmt::format("{} prices rose on the exchange.", commodities[static_cast<std::size_t>(i)]);
    auto stored = store.upsert_article(a);
    ASSERT_TRUE(stored.has_value() && *stored);
    acknowledged[a.uri] = a;
  }
  auto clean = vstore::soak_verify(store, acknowledged);
  ASSERT_TRUE(clean.has_value()) << clean.error().to_string();
  EXPECT_EQ((*clean)["equal"], true) << clean->dump();
  EXPECT_EQ((*clean)["rows"], 5);

  // soak:check:1 lost, soak:check:2 holds another vector, soak:check:9 was never acknowledged.
  sql_value(db, "DELETE FROM articles WHERE uri = 'soak:check:1' RETURNING 1");
  sql_value(db, "UPDATE articles SET embedding = (SELECT embedding FROM articles WHERE uri = 'soak:check:3') "
                "WHERE uri = 'soak:check:2' RETURNING 1");
  vstore::Article extra;
  extra.uri = "soak:check:9";
  extra.raw = "A write nobody acknowledged.";
  ASSERT_TRUE(store.upsert_article(extra).has_value());
  auto damaged = vstore::soak_verify(store, acknowledged);
  ASSERT_TRUE(damaged.has_value()) << damaged.error().to_string();
  const json& v = *damaged;
  EXPECT_EQ(v["equal"], false);
  EXPECT_EQ(v["lost"], 1);
  EXPECT_EQ(v["changed"], 1);
  EXPECT_EQ(v["unexpected"], 1);
  EXPECT_EQ(v["examples"]["lost"], json::array({"soak:check:1"}));
  EXPECT_EQ(v["examples"]["changed"], json::array({"soak:check:2"}));
  EXPECT_EQ(v["examples"]["unexpected"], json::array({"soak:check:9"}));
  EXPECT_NE(v["checksum_stored"], v["checksum_expected"]);
  store.shutdown();
  PgServer::instance().drop_database(db);
}

}  // namespace
