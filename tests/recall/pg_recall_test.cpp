// SPDX-License-Identifier: Apache-2.0
// Recall of PgVectorStore against exact brute-force search on a real PostgreSQL + pgvector:
// 20,000 clustered 384-d vectors (docs/reference/performance.md "Conditions"), HNSW m=16 /
// ef_construction=64, loaded by COPY then CREATE INDEX; unfiltered and filtered at 0.1%..50%:
// with the plan the store chooses, and with each filtered plan forced in turn (issue 21 item
// 15: at 20,000 rows the estimate picks the exact plan up to 40%, so the HNSW filtered path
// would otherwise never run), each checked with EXPLAIN.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>

#include "pg/pg_store.hpp"
#include "support/pg_fixture.hpp"
#include "macro/bench.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using testing::PgServer;
using testing::test_config;

constexpr std::size_t k_rows = 20000;
constexpr std::size_t k_queries = 200;
constexpr int k_dim = 384;
constexpr int k_top_k = 10;
constexpr double k_min_recall = 0.95;

/// A filter value and the exact fraction of rows that carry it (chosen by a seeded shuffle,
/// so it is unrelated to the clusters). The sets are disjoint; other rows get "t<id % 100>".
struct Selection {
  const char* topic;
  double fraction;
  const char* label;
};
constexpr Selection k_selections[] = {{"sel_0_1", 0.001, "Selectivity0_1Percent"},
                                      {"sel_1", 0.01, "Selectivity1Percent"},
                                      {"sel_10", 0.10, "Selectivity10Percent"},
                                      {"sel_50", 0.50, "Selectivity50Percent"}};

/// The loaded database, the store over it and the exact answers, built once per binary.
struct RecallData {
  std::string conninfo;
  ClusteredSet set;
  std::unique_ptr<pg::PgVectorStore> store;
  std::vector<std::vector<std::uint32_t>> truth;                  // unfiltered
  std::vector<std::vector<std::vector<std::uint32_t>>> filtered;  // per selection
  std::string index_name;
};

std::vector<std::uint32_t> ids_of(const std::vector<SearchHit>& hits) {
  std::vector<std::uint32_t> out;
  for (const auto& hit : hits) out.push_back(static_cast<std::uint32_t>(std::stoul(hit.id)));
  return out;
}

// Builds the shared data; on failure returns the reason.
std::string build(RecallData& data) {
  data.conninfo = PgServer::instance().create_database("recall");
  Config cfg = test_config(data.conninfo, k_dim);
  cfg.pgvector.hnsw_m = 16;
  cfg.pgvector.hnsw_ef_construction = 64;
  if (auto st = schema_up(data.conninfo, cfg); !st) return "schema_up: " + st.error().to_string();

  data.set = generate_clustered(k_rows, k_queries, k_dim, 1000, 7);
  std::vector<std::string> topics(k_rows);
  for (std::size_t i = 0; i < k_rows; ++i) topics[i] = fmt::format("t{}", i % 100);
  const auto perm = seeded_permutation(k_rows, 7);
  std::vector<std::vector<std::uint32_t>> members;
  std::size_t next = 0;
  for (const auto& sel : k_selections) {
    const auto count = static_cast<std::size_t>(sel.fraction * static_cast<double>(k_rows) + 0.5);
    std::vector<std::uint32_t> rows(perm.begin() + static_cast<std::ptrdiff_t>(next),
                                    perm.begin() + static_cast<std::ptrdiff_t>(next + count));
    next += count;
    std::sort(rows.begin(), rows.end());
    for (std::uint32_t id : rows) topics[id] = sel.topic;
    members.push_back(std::move(rows));
  }

  auto loaded = load_clustered(data.conninfo, cfg, data.set, topics);
  if (!loaded) return "load_clustered: " + loaded.error().to_string();
  data.index_name = (*loaded)["index_name"].get<std::string>();
  std::printf("[recall] loaded %zu rows: copy %.2f s, index build %.2f s\n", k_rows,
              (*loaded)["copy_s"].get<double>(), (*loaded)["index_build_s"].get<double>());

  data.truth = exact_top_k(data.set, k_top_k, {}, 2);
  for (const auto& rows : members) data.filtered.push_back(exact_top_k(data.set, k_top_k, rows, 2));

  auto store = pg::PgVectorStore::open(data.conninfo, cfg);
  if (!store) return "open: " + store.error().to_string();
  data.store = std::move(*store);
  return {};
}

RecallData& shared_data() {
  static RecallData data;
  static const std::string error = build(data);
  if (!error.empty()) ADD_FAILURE() << error;
  return data;
}

class PgRecall : public ::testing::Test {
 protected:
  void SetUp() override {
    m_data = &shared_data();
    ASSERT_NE(m_data->store, nullptr) << "the recall data set could not be built";
  }
  RecallData* m_data = nullptr;
};

TEST_F(PgRecall, UnfilteredSearchAtEfSearch100FindsAtLeast95PercentOfTheExactTop10) {
  SearchOptions opts;
  opts.top_k = k_top_k;
  opts.ef_search = 100;
  double recall = 0;
  for (std::size_t query_idx = 0; query_idx < k_queries; ++query_idx) {
    auto hits = m_data->store->search(m_data->set.query(query_idx), opts);
    ASSERT_TRUE(hits) << hits.error().to_string();
    ASSERT_EQ(hits->size(), static_cast<std::size_t>(k_top_k)) << "query " << query_idx;
    EXPECT_EQ(pg::PgVectorStore::test_last_plan(), SearchPlan::index) << "query " << query_idx;
    recall += recall_of(m_data->truth[query_idx], ids_of(*hits));
  }
  recall /= static_cast<double>(k_queries);
  std::printf("[recall] unfiltered, ef_search 100: recall@10 %.4f\n", recall);
  RecordProperty("recall_at_10", fmt::format("{:.4f}", recall));
  EXPECT_GE(recall, k_min_recall);
}

TEST_F(PgRecall, UnfilteredSearchPlanUsesTheHnswIndex) {
  ASSERT_FALSE(m_data->index_name.empty());
  SearchOptions opts;
  opts.top_k = k_top_k;
  opts.ef_search = 100;
  auto plan = m_data->store->test_explain(m_data->set.query(0), opts);
  ASSERT_TRUE(plan) << plan.error().to_string();
  EXPECT_NE(plan->find("Index Scan using " + m_data->index_name), std::string::npos) << *plan;
}

class PgFilteredRecall : public PgRecall, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(PgFilteredRecall, FilteredSearchReturnsTopKRowsWithRecallAtLeast95PercentOfExactFilteredSearch) {
  const Selection& sel = k_selections[GetParam()];
  const auto& truth = m_data->filtered[GetParam()];
  auto where = parse_filter(nlohmann::json{{"topic", sel.topic}});
  ASSERT_TRUE(where) << where.error().to_string();
  SearchOptions opts;
  opts.top_k = k_top_k;
  opts.where = *where;
  double recall = 0;
  std::size_t short_results = 0;
  std::map<SearchPlan, int> plans;
  for (std::size_t query_idx = 0; query_idx < k_queries; ++query_idx) {
    auto hits = m_data->store->search(m_data->set.query(query_idx), opts);
    ASSERT_TRUE(hits) << hits.error().to_string();
    ++plans[pg::PgVectorStore::test_last_plan()];
    if (hits->size() != static_cast<std::size_t>(k_top_k)) ++short_results;
    EXPECT_EQ(hits->size(), static_cast<std::size_t>(k_top_k)) << "query " << query_idx;
    for (const auto& hit : *hits) EXPECT_EQ(hit.metadata.value("topic", ""), sel.topic) << hit.id;
    recall += recall_of(truth[query_idx], ids_of(*hits));
  }
  recall /= static_cast<double>(k_queries);
  std::printf("[recall] filter topic=%s (%.1f%% = %zu rows): recall@10 %.4f, short results %zu, plans index %d / "
              "iterative %d / exact %d\n",
              sel.topic, sel.fraction * 100, static_cast<std::size_t>(sel.fraction * k_rows + 0.5), recall,
              short_results, plans[SearchPlan::index], plans[SearchPlan::index_iterative], plans[SearchPlan::exact]);
  RecordProperty("recall_at_10", fmt::format("{:.4f}", recall));
  EXPECT_EQ(short_results, 0U);
  EXPECT_GE(recall, k_min_recall);
}

INSTANTIATE_TEST_SUITE_P(AtEverySelectivity, PgFilteredRecall,
                         ::testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3}),
                         [](const ::testing::TestParamInfo<std::size_t>& info) {
                           return std::string(k_selections[info.param].label);
                         });

// ---- each filtered plan forced (issue 21, item 15) ------------------------------------------------

// Queries per forced case. A forced HNSW query with the planner's alternatives disabled takes
// 0.5-1 s here (the plan the store picks itself at 50% takes 17 ms), so that path gets fewer to
// keep the suite near 3 minutes on 2 cores.
constexpr std::size_t k_forced_exact_queries = 100;
constexpr std::size_t k_forced_hnsw_queries = 40;
// The HNSW filtered path with relaxed_order returns the first top_k matching rows the graph walk
// meets, not the best top_k among all it visits: measured at 20,000 rows, recall@10 0.93 (0.1%),
// 0.97 (1%), 0.94 (10%) and 0.96 (50%). The store keeps the 0.95 of k_min_recall by choosing
// the exact plan up to 8,000 estimated rows; forced, the path must stay at least here.
constexpr double k_min_recall_forced_hnsw = 0.90;

/// Forces a plan on this thread for the test's lifetime.
class ForcedPlan {
 public:
  explicit ForcedPlan(SearchPlan plan) { pg::PgVectorStore::test_force_plan(plan); }
  ~ForcedPlan() { pg::PgVectorStore::test_force_plan(std::nullopt); }
  ForcedPlan(const ForcedPlan&) = delete;
  ForcedPlan& operator=(const ForcedPlan&) = delete;
};

const char* plan_label(SearchPlan plan) { return plan == SearchPlan::exact ? "Exact" : "HnswIterative"; }

class Issue21ForcedPlanRecall : public PgRecall,
                                public ::testing::WithParamInterface<std::tuple<std::size_t, SearchPlan>> {};

TEST_P(Issue21ForcedPlanRecall, Item15ForcedPlanRunsAsExplainShowsWithRecallAgainstExactFilteredSearch) {
  const auto [selection_idx, plan] = GetParam();
  const Selection& sel = k_selections[selection_idx];
  const auto& truth = m_data->filtered[selection_idx];
  auto where = parse_filter(nlohmann::json{{"topic", sel.topic}});
  ASSERT_TRUE(where) << where.error().to_string();
  SearchOptions opts;
  opts.top_k = k_top_k;
  opts.where = *where;
  const ForcedPlan forced(plan);

  auto explained = m_data->store->test_explain(m_data->set.query(0), opts);
  ASSERT_TRUE(explained) << explained.error().to_string();
  const bool uses_index = explained->find("Index Scan using " + m_data->index_name) != std::string::npos;
  if (plan == SearchPlan::exact) {
    EXPECT_FALSE(uses_index) << *explained;
    EXPECT_NE(explained->find("Sort"), std::string::npos) << *explained;
  } else {
    EXPECT_TRUE(uses_index) << *explained;
  }

  const std::size_t queries = plan == SearchPlan::exact ? k_forced_exact_queries : k_forced_hnsw_queries;
  double recall = 0;
  std::size_t short_results = 0;
  for (std::size_t query_idx = 0; query_idx < queries; ++query_idx) {
    auto hits = m_data->store->search(m_data->set.query(query_idx), opts);
    ASSERT_TRUE(hits) << hits.error().to_string();
    EXPECT_EQ(pg::PgVectorStore::test_last_plan(), plan) << "query " << query_idx;
    if (hits->size() != static_cast<std::size_t>(k_top_k)) ++short_results;
    for (const auto& hit : *hits) EXPECT_EQ(hit.metadata.value("topic", ""), sel.topic) << hit.id;
    recall += recall_of(truth[query_idx], ids_of(*hits));
  }
  recall /= static_cast<double>(queries);
  std::printf("[recall] forced %s, filter topic=%s (%.1f%%): recall@10 %.4f, short results %zu\n", plan_label(plan),
              sel.topic, sel.fraction * 100, recall, short_results);
  RecordProperty("recall_at_10", fmt::format("{:.4f}", recall));
  EXPECT_EQ(short_results, 0U);
  EXPECT_GE(recall, plan == SearchPlan::exact ? 0.999 : k_min_recall_forced_hnsw);
}

INSTANTIATE_TEST_SUITE_P(
    AtEverySelectivityAndPlan, Issue21ForcedPlanRecall,
    ::testing::Combine(::testing::Values(std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3}),
                       ::testing::Values(SearchPlan::index_iterative, SearchPlan::exact)),
    [](const ::testing::TestParamInfo<std::tuple<std::size_t, SearchPlan>>& info) {
      return std::string(k_selections[std::get<0>(info.param)].label) + plan_label(std::get<1>(info.param));
    });

}  // namespace
}  // namespace vstore
