// SPDX-License-Identifier: Apache-2.0
// Issue 24 items 2 and 5: `vstore validate` against the real Chroma server and the embedded
// PostgreSQL on 300 Reuters articles (hash embeddings), passing on identical data and failing on
// different data, each run in the operations log; `vstore tune` recommending an ef_search that
// reaches the target when recall is recomputed here by brute force, and --write-env rewriting one
// line of a .env; bad options named.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/embedder.hpp"
#include "vstore/vector_store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;

constexpr int k_articles = 300;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

class Issue24Validate : public ::testing::Test {
 protected:
  // One database and two Chroma collections for the suite: "same" holds what dual-mode ingest
  // wrote (the same vectors as pgvector), "other" the same uris with each text moved to another
  // uri, so every vector differs from pgvector's for that id.
  static void SetUpTestSuite() {
    s_tmp = std::make_unique<vstore::testing::TempDir>();
    chmod(s_tmp->path.c_str(), 0755);
    s_conninfo = vstore::testing::PgServer::instance().create_database("issue24validate");
    s_chroma_url = vstore::testing::ChromaServer::shared().url();
    s_same = vstore::testing::unique_collection("validate-same");
    s_other = vstore::testing::unique_collection("validate-other");
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    ASSERT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA must be set (by CTest)";
    std::ifstream in(fs::path(shared) / "reuters21578" / "articles.jsonl");
    ASSERT_TRUE(in);
    std::vector<json> rows;
    std::string line;
    // Articles with a topic, so that every sampled query also runs filtered.
    while (rows.size() < static_cast<std::size_t>(k_articles) && std::getline(in, line)) {
      json a = json::parse(line);
      if (a["topic"].is_string() && a["title"].is_string()) rows.push_back(std::move(a));
    }
    ASSERT_EQ(rows.size(), static_cast<std::size_t>(k_articles));
    std::ofstream same(s_tmp->path / "articles.jsonl");
    std::ofstream other(s_tmp->path / "shuffled.jsonl");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      same << rows[i].dump() << "\n";
      json moved = rows[i];
      const json& from = rows[(i + 137) % rows.size()];
      moved["raw"] = from["raw"];
      moved["summary"] = from["summary"];
      other << moved.dump() << "\n";
    }
    same.close();
    other.close();
    // A sparse HNSW graph (m 4), so that a small ef_search really loses recall and tune has
    // something to find.
    ASSERT_EQ(run("schema up", "PGVECTOR_HNSW_M=4 PGVECTOR_HNSW_EF_CONSTRUCTION=8").code, 0);
    CmdResult dual = run("ingest articles.jsonl", "VECTOR_BACKEND=dual " + chroma_env(s_same));
    ASSERT_EQ(dual.code, 0) << dual.err;
    CmdResult chroma = run("ingest shuffled.jsonl", "VECTOR_BACKEND=chromadb " + chroma_env(s_other));
    ASSERT_EQ(chroma.code, 0) << chroma.err;
  }
  static void TearDownTestSuite() {
    vstore::testing::PgServer::instance().drop_database(s_conninfo);
    s_tmp.reset();
  }

  // The suite's index is deliberately sparse (for tune); validate's tests search it with an
  // ef_search wide enough to be near exact, as a user would after tuning.
  static std::string chroma_env(const std::string& collection) {
    return std::string(k_tuned) + " CHROMA_URL='" + s_chroma_url + "' CHROMA_COLLECTION=" + collection;
  }
  static constexpr const char* k_tuned = "PGVECTOR_HNSW_EF_SEARCH=400";
  static CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(s_tmp->path.string(), args, "DATABASE_URL='" + s_conninfo + "' " + env);
  }
  // The newest validate run of the log: "passed|report_path|status".
  static std::string last_validation() {
    return vstore::testing::sql_value(
        s_conninfo,
        "SELECT coalesce(passed::text, 'null') || '|' || report_path || '|' || status FROM vstore_operations "
        "WHERE kind = 'validate' ORDER BY id DESC LIMIT 1");
  }

  static std::unique_ptr<vstore::testing::TempDir> s_tmp;
  static std::string s_conninfo;
  static std::string s_chroma_url;
  static std::string s_same;
  static std::string s_other;
};

std::unique_ptr<vstore::testing::TempDir> Issue24Validate::s_tmp;
std::string Issue24Validate::s_conninfo;
std::string Issue24Validate::s_chroma_url;
std::string Issue24Validate::s_same;
std::string Issue24Validate::s_other;

TEST_F(Issue24Validate, PassesOnIdenticalDataWritesTheReportAndLogsTheRun) {
  CmdResult r = run("validate --sample 25 --json", chroma_env(s_same));
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  for (const char* key : {"queries", "top_k", "overlap_at_k", "jaccard", "rank_correlation", "score_diff",
                          "recall_at_k", "min_overlap", "passed", "worst", "report_path", "elapsed_s"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  EXPECT_EQ(j["queries"], 25);
  EXPECT_EQ(j["top_k"], 10);
  EXPECT_EQ(j["min_overlap"], 0.95);
  EXPECT_TRUE(j["passed"].get<bool>());
  EXPECT_TRUE(j["chroma_compared"].get<bool>());
  EXPECT_GE(j["overlap_at_k"].get<double>(), 0.95);
  EXPECT_GE(j["unfiltered"]["overlap_at_k"].get<double>(), 0.95);
  EXPECT_GE(j["filtered"]["overlap_at_k"].get<double>(), 0.95);
  EXPECT_EQ(j["filtered"]["queries"], 25) << "every sampled article has a topic";
  EXPECT_LT(j["score_diff"]["max"].get<double>(), 1e-4) << "the same float32 vectors in both stores";
  EXPECT_GT(j["rank_correlation"].get<double>(), 0.9);
  EXPECT_GT(j["recall_at_k"].get<double>(), 0.0);
  EXPECT_EQ(j["worst"]["filtered"]["overlap"].size(), 5U);
  // Each worst query names its topic filter.
  EXPECT_TRUE(j["worst"]["filtered"]["overlap"][0]["filter"].contains("topic"));
  const std::string path = j["report_path"].get<std::string>();
  EXPECT_EQ(path.rfind((s_tmp->path / "data" / "reports" / "validate-").string(), 0), 0U) << path;
  EXPECT_EQ(json::parse(read_text(path)), j) << "stdout and the report file hold the same JSON";
  EXPECT_EQ(last_validation(), "true|" + path + "|succeeded");

  // The same sample gives the same queries (fixed seed); the readable report names both cases.
  CmdResult text = run("validate --sample 25", chroma_env(s_same));
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("chroma: compared"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("unfiltered"), std::string::npos);
  EXPECT_NE(text.out.find("worst filtered queries by overlap@10"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("passed: overlap_at_k >= 0.95"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("report: " + (s_tmp->path / "data" / "reports").string()), std::string::npos);
  EXPECT_NE(last_validation().rfind(path, 0), 0U) << "a second run has its own report";
}

TEST_F(Issue24Validate, FailsWithExitOneOnDifferentDataAndLogsTheFailure) {
  CmdResult r = run("validate --sample 20 --json", chroma_env(s_other));
  ASSERT_EQ(r.code, 1) << r.out << r.err;
  const json j = json::parse(r.out);
  EXPECT_FALSE(j["passed"].get<bool>());
  EXPECT_LT(j["overlap_at_k"].get<double>(), 0.95);
  // Unfiltered, the moved texts leave almost nothing in common (a filter matching fewer than k
  // articles returns them all from either store, so the filtered case keeps some overlap).
  EXPECT_LT(j["unfiltered"]["overlap_at_k"].get<double>(), 0.5);
  ASSERT_FALSE(j["failures"].empty());
  EXPECT_NE(j["failures"][0].get<std::string>().find("overlap_at_k"), std::string::npos) << j["failures"];
  EXPECT_NE(r.err.find("overlap_at_k"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("below --min-overlap 0.95"), std::string::npos) << r.err;
  // pgvector itself is fine: the failure is Chroma's, not the index's.
  EXPECT_GT(j["recall_at_k"].get<double>(), 0.5);
  EXPECT_EQ(last_validation(), "false|" + j["report_path"].get<std::string>() + "|succeeded");

  // With the pass mark at 0 the same data passes: the exit code follows --min-overlap.
  CmdResult lenient = run("validate --sample 5 --min-overlap 0 --json", chroma_env(s_other));
  EXPECT_EQ(lenient.code, 0) << lenient.err;
  EXPECT_EQ(last_validation().substr(0, 5), "true|");
}

TEST_F(Issue24Validate, WithoutChromaSaysSkippedAndReadsQueriesFromAFile) {
  std::ofstream(s_tmp->path / "queries.txt") << "# oil and grain\n\ncrude oil prices\n  \nwheat exports\ncocoa harvest\n";
  CmdResult r = run("validate --queries queries.txt --top-k 5 --json", k_tuned);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["queries"], 3);
  EXPECT_EQ(j["top_k"], 5);
  EXPECT_EQ(j["chroma"], "skipped (no CHROMA_URL)");
  EXPECT_FALSE(j["chroma_compared"].get<bool>());
  EXPECT_TRUE(j["overlap_at_k"].is_null());
  EXPECT_EQ(j["passed_on"], "recall_at_k");
  EXPECT_EQ(j["filtered"]["queries"], 3) << "each query filters on its nearest article's topic";
  CmdResult text = run("validate --sample 3 --no-chroma", chroma_env(s_same));
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("chroma: skipped (--no-chroma)"), std::string::npos) << text.out;
}

TEST_F(Issue24Validate, TuneRecommendsAnEfSearchThatReachesTheTargetWhenRechecked) {
  const fs::path env = s_tmp->path / ".env";
  const std::string before = "# vstore settings\nEMBEDDING_DIM=384\n  PGVECTOR_HNSW_EF_SEARCH = 7\nexport FOO='a  b'\n"
                             "PGVECTOR_HNSW_EF_SEARCH=9\nLAST=1";
  std::ofstream(env, std::ios::binary) << before;
  const double target = 0.97;
  CmdResult r = run("tune --sample 40 --target-recall 0.97 --where '{\"topic\": \"earn\"}' --write-env --json");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["parameter"], "ef_search");
  EXPECT_EQ(j["current"], 9) << "the .env before it was rewritten (its later line wins)";
  ASSERT_EQ(j["table"].size(), 8U);
  ASSERT_TRUE(j["recommended"].is_number()) << r.out;
  const int ef = j["recommended"].get<int>();
  // The smallest setting that reaches the target in both cases.
  for (const auto& row : j["table"]) {
    const bool reached = row["unfiltered"]["recall_at_k"].get<double>() >= target &&
                         row["filtered"]["recall_at_k"].get<double>() >= target;
    if (row["ef_search"].get<int>() < ef) {
      EXPECT_FALSE(reached) << row;
    }
    if (row["ef_search"].get<int>() == ef) {
      EXPECT_TRUE(reached) << row;
    }
    EXPECT_GE(row["unfiltered"]["p95_ms"].get<double>(), row["unfiltered"]["p50_ms"].get<double>());
  }
  std::string expected = before;
  const std::string first = "  PGVECTOR_HNSW_EF_SEARCH = 7\n";
  const std::string later = "PGVECTOR_HNSW_EF_SEARCH=9\n";
  expected.replace(expected.find(first), first.size(), "PGVECTOR_HNSW_EF_SEARCH=" + std::to_string(ef) + "\n");
  expected.erase(expected.find(later), later.size());
  EXPECT_EQ(read_text(env), expected) << "only that variable's lines changed";
  EXPECT_EQ(j["env_file"], env.string());

  // Recheck: the store at that ef_search against a brute-force ranking of every stored vector.
  vstore::Config cfg = vstore::testing::test_config(s_conninfo, 384);
  cfg.pgvector.hnsw_ef_search = ef;
  auto store = vstore::open_pg_store(s_conninfo, cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  auto all = (*store)->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->ids.size(), static_cast<std::size_t>(k_articles));
  std::vector<std::string> titles;
  std::ifstream in(s_tmp->path / "articles.jsonl");
  std::string line;
  for (int i = 0; std::getline(in, line); ++i) {
    if (i % 6 == 0) titles.push_back(json::parse(line)["title"].get<std::string>());
  }
  auto embedder = vstore::make_hash_embedder(384);
  auto queries = embedder->embed(titles);
  ASSERT_TRUE(queries);
  double recall = 0;
  for (const auto& q : *queries) {
    std::vector<std::pair<double, std::string>> ranked;
    for (std::size_t row = 0; row < all->ids.size(); ++row) {
      double dot = 0, qq = 0, vv = 0;
      for (std::size_t d = 0; d < all->dim; ++d) {
        const double v = all->data[row * all->dim + d];
        dot += q[d] * v;
        qq += q[d] * q[d];
        vv += v * v;
      }
      ranked.emplace_back(1.0 - dot / std::sqrt(qq * vv), all->ids[row]);
    }
    std::sort(ranked.begin(), ranked.end());
    vstore::SearchOptions so;
    so.top_k = 10;
    auto hits = (*store)->search(q, so);
    ASSERT_TRUE(hits) << hits.error().to_string();
    std::set<std::string> truth;
    const double last = ranked[9].first;
    std::size_t found = 0;
    for (std::size_t i = 0; i < 10; ++i) truth.insert(ranked[i].second);
    for (const auto& h : *hits) {
      // An id tied with the 10th distance is as right as the one it displaced.
      found += truth.contains(h.id) || std::abs(h.score - last) < 1e-5 ? 1 : 0;
    }
    recall += static_cast<double>(found) / 10.0;
  }
  recall /= static_cast<double>(queries->size());
  EXPECT_GE(recall, target) << "ef_search " << ef << " over " << queries->size() << " titles";
}

TEST_F(Issue24Validate, BadOptionsExitTwoNamingTheValue) {
  struct Case {
    const char* args;
    const char* named;
  };
  for (const Case& c : {Case{"validate --min-overlap 1.5", "1.5"}, Case{"validate --top-k 0", "0"},
                        Case{"validate --sample 0", "0"}, Case{"validate --queries nosuch.txt", "nosuch.txt"},
                        Case{"tune --target-recall 2", "2"}, Case{"tune --top-k 1001", "1001"},
                        Case{"tune --where '{\"topic\": '", "--where"}}) {
    CmdResult r = run(c.args);
    EXPECT_EQ(r.code, 2) << c.args << ": " << r.err;
    EXPECT_NE(r.err.find(c.named), std::string::npos) << c.args << ": " << r.err;
  }
}

}  // namespace
