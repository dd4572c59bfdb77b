// SPDX-License-Identifier: Apache-2.0
// Parity of the two backends (issue 4's check): the same 5,000 Reuters articles with the same
// vectors in PgVectorStore and ChromaStore; 200 unfiltered and 200 filtered queries (topic
// equality, $in, publication_date_ts ranges, $and, $or) must agree: mean overlap@10 >= 0.99,
// scores within 1e-4 for common ids, identical metadata.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <set>

#include <fmt/format.h>

#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/article.hpp"
#include "vstore/embedder.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using nlohmann::json;

constexpr int k_dim = 384;
constexpr std::size_t k_stored = 5000;
constexpr std::size_t k_queries = 200;
constexpr int k_top = 10;
// HNSW settings of both sides: wide enough candidate lists that approximate search finds the
// same top 10 as exact search on this collection (see docs/benchmarks.md for what they cost).
constexpr int k_ef_search = 500;
constexpr int k_ef_construction = 400;
constexpr int k_m = 32;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Corpus {
  std::vector<ArticleVector> stored;
  std::vector<ArticleVector> queries;  // articles after the stored ones: their vectors are queries
};

Corpus read_corpus() {
  const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
  EXPECT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA must be set (by CTest)";
  Corpus corpus;
  if (shared == nullptr) return corpus;
  std::ifstream in(std::string(shared) + "/reuters21578/articles.jsonl");
  EXPECT_TRUE(in) << "cannot read " << shared << "/reuters21578/articles.jsonl";
  auto embedder = make_hash_embedder(k_dim);
  std::string line;
  std::vector<Article> articles;
  while (articles.size() < k_stored + k_queries && std::getline(in, line)) {
    auto article = article_from_json(json::parse(line));
    EXPECT_TRUE(article) << article.error().to_string();
    if (!article || document_text(*article).empty()) continue;
    articles.push_back(std::move(*article));
  }
  std::vector<std::string> texts;
  for (const auto& a : articles) texts.emplace_back(document_text(a));
  auto vecs = embedder->embed(texts);
  EXPECT_TRUE(vecs) << vecs.error().to_string();
  if (!vecs) return corpus;
  for (std::size_t i = 0; i < articles.size(); ++i) {
    ArticleVector item{articles[i], (*vecs)[i], std::string(embedder->model())};
    (i < k_stored ? corpus.stored : corpus.queries).push_back(std::move(item));
  }
  return corpus;
}

// 200 filters over what the stored articles hold: 40 each of topic equality, $in, date range,
// $and (topic and date) and $or (two topics).
std::vector<std::string> filters(const Corpus& corpus) {
  std::vector<std::string> topics;
  std::map<std::string, int> counts;
  for (const auto& a : corpus.stored) {
    if (a.article.topic) ++counts[*a.article.topic];
  }
  for (const auto& [topic, n] : counts) {
    if (n >= 20) topics.push_back(topic);
  }
  std::mt19937 rng(1987);
  auto topic = [&] { return topics[std::uniform_int_distribution<std::size_t>(0, topics.size() - 1)(rng)]; };
  const std::int64_t march1 = *publication_date_ts("1987-03-01");
  auto day = [&] { return march1 + 86400 * std::uniform_int_distribution<std::int64_t>(0, 27)(rng); };
  std::vector<std::string> out;
  for (int i = 0; i < 40; ++i) out.push_back(fmt::format(R"({{"topic": "{}"}})", topic()));
  for (int i = 0; i < 40; ++i) out.push_back(fmt::format(R"({{"topic": {{"$in": ["{}", "{}", "{}"]}}}})", topic(), topic(), topic()));
  for (int i = 0; i < 40; ++i) {
    const std::int64_t from = day();
    out.push_back(fmt::format(R"({{"$and": [{{"publication_date_ts": {{"$gte": {}}}}}, {{"publication_date_ts": {{"$lt": {}}}}}]}})",
                              from, from + 86400 * std::uniform_int_distribution<std::int64_t>(1, 5)(rng)));
  }
  for (int i = 0; i < 40; ++i) {
    out.push_back(fmt::format(R"({{"$and": [{{"topic": "{}"}}, {{"publication_date_ts": {{"$gte": {}}}}}]}})", topic(), day()));
  }
  for (int i = 0; i < 40; ++i) out.push_back(fmt::format(R"({{"$or": [{{"topic": "{}"}}, {{"topic": "{}"}}]}})", topic(), topic()));
  return out;
}

struct Agreement {
  double overlap_sum = 0;
  int queries = 0;
  double max_score_diff = 0;
  int metadata_mismatches = 0;
  int size_mismatches = 0;
  std::string first_problem;
};

void compare(const std::vector<SearchHit>& pg, const std::vector<SearchHit>& ch, Agreement& agreement, const std::string& what) {
  std::map<std::string, const SearchHit*> by_id;
  for (const auto& h : pg) by_id[h.id] = &h;
  std::size_t common = 0;
  for (const auto& h : ch) {
    auto it = by_id.find(h.id);
    if (it == by_id.end()) continue;
    ++common;
    agreement.max_score_diff = std::max(agreement.max_score_diff, std::abs(it->second->score - h.score));
    if (it->second->metadata != h.metadata) {
      ++agreement.metadata_mismatches;
      if (agreement.first_problem.empty()) {
        agreement.first_problem = fmt::format("{}: metadata of {} differs: pgvector {} chroma {}", what, h.id,
                                              it->second->metadata.dump(), h.metadata.dump());
      }
    }
  }
  if (pg.size() != ch.size()) {
    ++agreement.size_mismatches;
    if (agreement.first_problem.empty()) {
      agreement.first_problem = fmt::format("{}: pgvector returned {} hits, chroma {}", what, pg.size(), ch.size());
    }
  }
  const std::size_t denom = std::max(pg.size(), ch.size());
  agreement.overlap_sum += denom == 0 ? 1.0 : static_cast<double>(common) / static_cast<double>(denom);
  ++agreement.queries;
}

TEST(BackendParity, SameArticlesAndVectorsGiveTheSameResultsInPgvectorAndChroma) {
  auto t0 = std::chrono::steady_clock::now();
  const Corpus corpus = read_corpus();
  ASSERT_EQ(corpus.stored.size(), k_stored);
  ASSERT_EQ(corpus.queries.size(), k_queries);
  std::printf("parity: read and embedded %zu articles (hash embedder, %d dims) in %.1f s\n",
              corpus.stored.size() + corpus.queries.size(), k_dim, seconds_since(t0));

  const std::string db = testing::PgServer::instance().create_database("parity");
  Config cfg = testing::test_config(db, k_dim);
  cfg.pgvector.hnsw_m = k_m;
  cfg.pgvector.hnsw_ef_construction = k_ef_construction;
  cfg.pgvector.hnsw_ef_search = k_ef_search;
  cfg.chroma_url = testing::ChromaServer::shared().url();
  cfg.chroma_collection = testing::unique_collection("parity");
  ASSERT_TRUE(schema_up(db, cfg));
  auto pg = open_pg_store(db, cfg);
  ASSERT_TRUE(pg) << pg.error().to_string();
  chroma::ChromaOptions options;
  options.create_collection = true;
  options.create_ef_search = k_ef_search;
  options.create_ef_construction = k_ef_construction;
  options.create_m = k_m;
  auto ch = chroma::ChromaStore::open(cfg, options);
  ASSERT_TRUE(ch) << ch.error().to_string();

  // As `vstore ingest` bulk-loads: drop the vector index, COPY, build the index once.
  t0 = std::chrono::steady_clock::now();
  auto suspended = suspend_vector_index(db, cfg);
  ASSERT_TRUE(suspended && !suspended->empty());
  auto pg_loaded = (*pg)->upsert(corpus.stored);
  ASSERT_TRUE(pg_loaded) << pg_loaded.error().to_string();
  auto rebuilt = restore_vector_index(db, cfg);
  ASSERT_TRUE(rebuilt && *rebuilt);
  const double pg_load = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  auto ch_loaded = (*ch)->upsert(corpus.stored);
  ASSERT_TRUE(ch_loaded) << ch_loaded.error().to_string();
  const double ch_load = seconds_since(t0);
  std::printf("parity: loaded %zu vectors: pgvector %.1f s, chroma %.1f s\n", k_stored, pg_load, ch_load);
  auto pg_count = (*pg)->count();
  auto ch_count = (*ch)->count();
  ASSERT_TRUE(pg_count && ch_count);
  ASSERT_EQ(ch_count->rows, static_cast<std::int64_t>(k_stored));
  ASSERT_EQ(pg_count->with_embedding, static_cast<std::int64_t>(k_stored));

  Agreement unfiltered;
  double pg_secs = 0;
  double ch_secs = 0;
  for (std::size_t q = 0; q < k_queries; ++q) {
    SearchOptions opts;
    opts.top_k = k_top;
    t0 = std::chrono::steady_clock::now();
    auto a = (*pg)->search(corpus.queries[q].embedding, opts);
    pg_secs += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    auto b = (*ch)->search(corpus.queries[q].embedding, opts);
    ch_secs += seconds_since(t0);
    ASSERT_TRUE(a) << a.error().to_string();
    ASSERT_TRUE(b) << b.error().to_string();
    ASSERT_EQ(a->size(), static_cast<std::size_t>(k_top));
    compare(*a, *b, unfiltered, fmt::format("unfiltered query {}", q));
    // VSTORE_PARITY_DEBUG=1 prints, per query that misses, each side's recall against exact search.
    if (std::getenv("VSTORE_PARITY_DEBUG") != nullptr) {
      std::vector<std::pair<double, std::string>> exact;
      const auto& qv = corpus.queries[q].embedding;
      for (const auto& s : corpus.stored) {
        double dot = 0;
        for (int d = 0; d < k_dim; ++d) dot += static_cast<double>(qv[d]) * s.embedding[d];
        exact.emplace_back(1 - dot, s.article.uri);
      }
      std::sort(exact.begin(), exact.end());
      std::set<std::string> truth;
      for (int i = 0; i < k_top; ++i) truth.insert(exact[i].second);
      std::size_t ra = 0, rb = 0;
      for (const auto& h : *a) ra += truth.count(h.id);
      for (const auto& h : *b) rb += truth.count(h.id);
      if (ra < truth.size() || rb < truth.size()) {
        std::printf("q%zu recall pg %zu chroma %zu; 10th %.6f 11th %.6f 12th %.6f; pg last %.6f chroma last %.6f\n", q, ra, rb,
                    exact[9].first, exact[10].first, exact[11].first, a->back().score, b->back().score);
      }
    }
  }
  const auto where = filters(corpus);
  ASSERT_EQ(where.size(), k_queries);
  Agreement filtered;
  std::size_t filtered_hits = 0;
  for (std::size_t q = 0; q < k_queries; ++q) {
    auto filter = parse_filter(std::string_view(where[q]));
    ASSERT_TRUE(filter) << where[q];
    SearchOptions opts;
    opts.top_k = k_top;
    opts.where = *filter;
    t0 = std::chrono::steady_clock::now();
    auto a = (*pg)->search(corpus.queries[q].embedding, opts);
    pg_secs += seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    auto b = (*ch)->search(corpus.queries[q].embedding, opts);
    ch_secs += seconds_since(t0);
    ASSERT_TRUE(a) << where[q] << ": " << a.error().to_string();
    ASSERT_TRUE(b) << where[q] << ": " << b.error().to_string();
    filtered_hits += a->size();
    compare(*a, *b, filtered, where[q]);
  }
  const double overlap_unfiltered = unfiltered.overlap_sum / unfiltered.queries;
  const double overlap_filtered = filtered.overlap_sum / filtered.queries;
  std::printf("parity: mean overlap@%d unfiltered %.4f, filtered %.4f (%zu filtered hits); max |score diff| %.2e / %.2e; "
              "query time pgvector %.1f ms, chroma %.1f ms (mean of %zu)\n",
              k_top, overlap_unfiltered, overlap_filtered, filtered_hits, unfiltered.max_score_diff, filtered.max_score_diff,
              1000 * pg_secs / (2 * k_queries), 1000 * ch_secs / (2 * k_queries), 2 * k_queries);
  ::testing::Test::RecordProperty("overlap_unfiltered", fmt::format("{:.4f}", overlap_unfiltered));
  ::testing::Test::RecordProperty("overlap_filtered", fmt::format("{:.4f}", overlap_filtered));
  EXPECT_GE(overlap_unfiltered, 0.99) << unfiltered.first_problem;
  EXPECT_GE(overlap_filtered, 0.99) << filtered.first_problem;
  EXPECT_GT(filtered_hits, k_queries * 5) << "the filters should match enough articles to be a test";
  EXPECT_LE(unfiltered.max_score_diff, 1e-4);
  EXPECT_LE(filtered.max_score_diff, 1e-4);
  EXPECT_EQ(unfiltered.metadata_mismatches + filtered.metadata_mismatches, 0)
      << unfiltered.first_problem << " " << filtered.first_problem;

  // The stored records themselves: same ids, same vectors, same metadata.
  auto pg_all = (*pg)->get_vectors(std::nullopt, std::nullopt);
  auto ch_all = (*ch)->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(pg_all && ch_all);
  ASSERT_EQ(pg_all->ids.size(), ch_all->ids.size());
  std::map<std::string, std::size_t> ch_row;
  for (std::size_t i = 0; i < ch_all->ids.size(); ++i) ch_row[ch_all->ids[i]] = i;
  int vector_mismatches = 0;
  int metadata_mismatches = 0;
  for (std::size_t i = 0; i < pg_all->ids.size(); ++i) {
    auto it = ch_row.find(pg_all->ids[i]);
    ASSERT_NE(it, ch_row.end()) << pg_all->ids[i];
    if (pg_all->metadatas[i] != ch_all->metadatas[it->second]) ++metadata_mismatches;
    for (int d = 0; d < k_dim; ++d) {
      const float x = pg_all->data[i * k_dim + static_cast<std::size_t>(d)];
      const float y = ch_all->data[it->second * k_dim + static_cast<std::size_t>(d)];
      if (std::abs(x - y) > 1e-6f) {
        ++vector_mismatches;
        break;
      }
    }
  }
  EXPECT_EQ(metadata_mismatches, 0);
  EXPECT_EQ(vector_mismatches, 0);
  testing::PgServer::instance().drop_database(db);
}

}  // namespace
}  // namespace vstore
