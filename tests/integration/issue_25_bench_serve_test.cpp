// SPDX-License-Identifier: Apache-2.0
// Issue 25, the load test: `vstore bench serve` runs end to end on a small set against the
// fixture's server (the hash embedder, a few seconds per cell): `vstore serve` as a child under
// wrk by vector and by text, the same searches through the library, the figures and their
// ratios, the service's own count of the requests it answered, and a failing run (the service
// refusing the vector bodies) that exits 1 with the errors counted. The scratch database is
// dropped either way.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::PgServer;
using vstore::testing::sql_value;

constexpr int k_articles = 150;
constexpr int k_connections = 4;

class Issue25BenchServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_tmp = std::make_unique<vstore::testing::TempDir>();
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    ASSERT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA must be set (by CTest)";
    const fs::path reuters = fs::path(shared) / "reuters21578";
    std::ifstream in(reuters / "articles.jsonl");
    std::ofstream out(s_tmp->path / "articles.jsonl");
    std::string line;
    for (int kept = 0; kept < k_articles && std::getline(in, line); ++kept) out << line << "\n";
    std::ifstream qin(reuters / "queries-dev.tsv");
    std::ofstream qout(s_tmp->path / "queries.tsv");
    for (int kept = 0; kept < 6 && std::getline(qin, line); ++kept) qout << line << "\n";
  }
  static void TearDownTestSuite() { s_tmp.reset(); }

  // `vstore bench serve` on the small set with `flags`, against the fixture's server.
  static CmdResult bench(const std::string& flags) {
    return vstore::testing::run_vstore(
        s_tmp->path.string(),
        fmt::format("bench serve --rows {} --vectors 20 --duration 2 --warmup 0 --connections {} --wrk-threads 2 "
                    "--data articles.jsonl --query-file queries.tsv --json {}",
                    k_articles, k_connections, flags),
        fmt::format("DATABASE_URL='{}'", PgServer::instance().admin_conninfo()));
  }

  static std::string scratch_databases() {
    return sql_value(PgServer::instance().admin_conninfo(),
                     "SELECT count(*) FROM pg_database WHERE datname LIKE 'vstore\\_bench\\_serve\\_%'");
  }

  static std::unique_ptr<vstore::testing::TempDir> s_tmp;
};

std::unique_ptr<vstore::testing::TempDir> Issue25BenchServe::s_tmp;

TEST_F(Issue25BenchServe, ServesBothKindsUnderWrkAndComparesWithTheLibrary) {
  const CmdResult run = bench("");
  ASSERT_EQ(run.code, 0) << run.out << run.err;
  const json r = json::parse(run.out, nullptr, false);
  ASSERT_TRUE(r.is_object()) << run.out;

  EXPECT_EQ(r["rows"], k_articles);
  EXPECT_EQ(r["vectors"], 20);
  EXPECT_EQ(r["queries"], 6);
  EXPECT_EQ(r["connections"], k_connections);
  EXPECT_EQ(r["duration_s"], 2);
  EXPECT_EQ(r["provider"], "hash");
  EXPECT_EQ(r["errors"], 0);
  EXPECT_TRUE(r["wrk_version"].get<std::string>().contains("4.1.0")) << r["wrk_version"];
  EXPECT_EQ(r["serve_exit"]["clean"], true) << r["serve_exit"];
  for (const char* key : {"no_errors", "vector_p99_ms_at_most_20", "ratio_vector_at_least_0_8", "ratio_text_at_least_0_8"}) {
    EXPECT_TRUE(r["targets"][key].is_boolean()) << key;
  }
  EXPECT_EQ(r["targets"]["no_errors"], true);

  for (const char* kind : {"vector", "text"}) {
    SCOPED_TRACE(kind);
    const json& s = r["serve"][kind];
    const json& l = r["library"][kind];
    const auto requests = s["requests"].get<std::int64_t>();
    EXPECT_GT(requests, 0);
    EXPECT_EQ(s["error_count"], 0) << s["errors"];
    // The service's access log saw every request wrk counted (and at most the ones in flight
    // when wrk stopped besides), all answered 200.
    const auto logged = s["answered"]["requests"].get<std::int64_t>();
    EXPECT_GE(logged, requests);
    EXPECT_LE(logged, requests + k_connections);
    EXPECT_EQ(s["answered"]["by_status"], json({{"200", logged}}));
    EXPECT_GT(s["requests_per_s"].get<double>(), 0.0);
    EXPECT_GT(s["p99_ms"].get<double>(), 0.0);
    EXPECT_LE(s["p50_ms"].get<double>(), s["p99_ms"].get<double>());
    EXPECT_LE(s["p99_ms"].get<double>(), s["max_ms"].get<double>());
    // The service and wrk did the work: both used CPU in the timed window.
    EXPECT_GT(s["cpu"]["vstore_s"].get<double>(), 0.0) << s["cpu"];
    EXPECT_GT(s["cpu"]["client_s"].get<double>(), 0.0) << s["cpu"];
    EXPECT_GT(s["cpu"]["postgres_s"].get<double>(), 0.0) << s["cpu"];

    EXPECT_GT(l["requests"].get<std::int64_t>(), 0);
    EXPECT_EQ(l["error_count"], 0) << l["first_error"];
    EXPECT_LE(l["p50_ms"].get<double>(), l["p99_ms"].get<double>());
    EXPECT_TRUE(l["cpu"]["client_s"].is_null());
    const double ratio = r[fmt::format("ratio_{}", kind)].get<double>();
    EXPECT_NEAR(ratio, s["requests_per_s"].get<double>() / l["requests_per_s"].get<double>(), 0.002);
  }
  EXPECT_GT(r["library"]["embed_only"]["requests"].get<std::int64_t>(), 0);
  EXPECT_EQ(scratch_databases(), "0");
}

TEST_F(Issue25BenchServe, RequestsTheServiceRefusesFailTheRunWithTheirCount) {
  // A body limit below the size of any body of 384 numbers (at least "0," each, 770 bytes): the
  // service answers 413 to every search by vector, and those by text (under 200 bytes) succeed.
  const CmdResult run = bench("--serve-arg=--max-body-bytes=700");
  EXPECT_EQ(run.code, 1) << run.out << run.err;
  const json r = json::parse(run.out, nullptr, false);
  ASSERT_TRUE(r.is_object()) << run.out;
  const json& vector = r["serve"]["vector"];
  EXPECT_GT(vector["errors"]["non_2xx"].get<std::int64_t>(), 0) << vector;
  EXPECT_GT(vector["answered"]["by_status"].value("413", 0), 0) << vector["answered"];
  EXPECT_FALSE(vector["answered"]["by_status"].contains("200")) << vector["answered"];
  EXPECT_EQ(r["serve"]["text"]["error_count"], 0) << r["serve"]["text"];
  EXPECT_EQ(r["targets"]["no_errors"], false);
  EXPECT_GE(r["errors"].get<std::int64_t>(), vector["errors"]["non_2xx"].get<std::int64_t>());
  EXPECT_TRUE(run.err.contains("vstore: bench serve:")) << run.err;
  EXPECT_TRUE(run.err.contains("\"413\"")) << run.err;
  EXPECT_EQ(scratch_databases(), "0");
}

TEST_F(Issue25BenchServe, MoreWrkThreadsThanConnectionsIsAUsageError) {
  const CmdResult run = vstore::testing::run_vstore(s_tmp->path.string(),
                                                    "bench serve --connections 2 --wrk-threads 4 --data articles.jsonl "
                                                    "--query-file queries.tsv",
                                                    fmt::format("DATABASE_URL='{}'", PgServer::instance().admin_conninfo()));
  EXPECT_EQ(run.code, 2) << run.out << run.err;
  EXPECT_TRUE(run.err.contains("--wrk-threads 4 is more than --connections 2")) << run.err;
}

}  // namespace
