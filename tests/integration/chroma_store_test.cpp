// SPDX-License-Identifier: Apache-2.0
// ChromaStore against a real Chroma server (npm chromadb 3.0.12, started by the fixture):
// upsert, metadata replacement, search scores and filters, similar, paging, remove, count,
// health, l2/ip collections, and the errors (server down, missing collection, dimension,
// rejected filter).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <functional>
#include <set>

#include <fmt/format.h>

#include "chroma/chroma_http.hpp"
#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "vstore/article.hpp"
#include "vstore/filter.hpp"

namespace vstore {
namespace {

using chroma::ChromaOptions;
using chroma::ChromaStore;
using chroma::Space;
using testing::ChromaServer;
using testing::unique_collection;

constexpr int k_dim = 8;

Embedding random_vector(std::mt19937& rng, bool normalise) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  Embedding e(k_dim);
  for (float& f : e) f = dist(rng);
  double n = 0;
  for (float f : e) n += static_cast<double>(f) * f;
  const double scale = normalise ? 1.0 / std::sqrt(n) : 3.0;
  for (float& f : e) f = static_cast<float>(f * scale);
  return e;
}

double cosine_distance(std::span<const float> a, std::span<const float> b) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return 1.0 - dot / std::sqrt(na * nb);
}

const char* k_topics[] = {"crude", "grain", "earn", "acq"};

ArticleVector item(int n, Embedding vec) {
  ArticleVector a;
  a.article.uri = "u:" + std::to_string(n);
  a.article.title = "Title " + std::to_string(n);
  a.article.summary = "Summary " + std::to_string(n);
  a.article.topic = k_topics[n % 4];
  a.article.news_source = "Reuters";
  a.article.publication_date = fmt::format("2025-01-{:02d}T10:00:00Z", 1 + n % 28);
  a.article.tags = std::vector<std::string>{"x", k_topics[n % 4]};
  a.embedding = std::move(vec);
  a.embedding_model = "test-model";
  return a;
}

Config chroma_config(const std::string& url, const std::string& collection) {
  Config cfg;
  cfg.backend = BackendKind::chromadb;
  cfg.chroma_url = url;
  cfg.chroma_collection = collection;
  cfg.embedding_dim = k_dim;
  cfg.embedding_provider = "hash";
  return cfg;
}

class ChromaStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { open_store_in(Space::cosine); }

  void open_store_in(Space space) {
    m_cfg = chroma_config(ChromaServer::shared().url(), unique_collection("t"));
    ChromaOptions options;
    options.create_collection = true;
    options.create_space = space;
    auto store = ChromaStore::open(m_cfg, options);
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
  }

  // n records with random vectors (seeded), upserted in one call.
  std::vector<ArticleVector> load(int n, bool normalise = true) {
    std::mt19937 rng(42);
    std::vector<ArticleVector> items;
    for (int i = 0; i < n; ++i) items.push_back(item(i, random_vector(rng, normalise)));
    auto done = m_store->upsert(items);
    EXPECT_TRUE(done) << done.error().to_string();
    return items;
  }

  Config m_cfg;
  std::unique_ptr<ChromaStore> m_store;
};

TEST_F(ChromaStoreTest, DetectsApiV2AndBatchLimitOfTheServer) {
  EXPECT_EQ(m_store->test_api(), chroma::ApiVersion::v2);
  EXPECT_EQ(m_store->test_max_batch(), 5461);
  EXPECT_EQ(m_store->test_space(), Space::cosine);
  EXPECT_EQ(m_store->backend_name(), "chromadb");
}

TEST_F(ChromaStoreTest, UpsertThenGetVectorsReturnsTheVectorsAndBuildMetadata) {
  const auto items = load(20);
  auto batch = m_store->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(batch) << batch.error().to_string();
  ASSERT_EQ(batch->ids.size(), 20u);
  ASSERT_EQ(batch->dim, static_cast<std::size_t>(k_dim));
  for (std::size_t row = 0; row < batch->ids.size(); ++row) {
    const auto it = std::find_if(items.begin(), items.end(), [&](const auto& a) { return a.article.uri == batch->ids[row]; });
    ASSERT_NE(it, items.end());
    EXPECT_EQ(batch->metadatas[row], build_metadata(it->article)) << batch->ids[row];
    for (int d = 0; d < k_dim; ++d) {
      EXPECT_NEAR(batch->data[row * k_dim + static_cast<std::size_t>(d)], it->embedding[static_cast<std::size_t>(d)], 1e-6);
    }
  }
  auto counts = m_store->count();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->rows, 20);
  EXPECT_EQ(counts->with_embedding, 20);
}

TEST_F(ChromaStoreTest, UpsertReplacesMetadataInsteadOfMergingIt) {
  std::mt19937 rng(1);
  ArticleVector a = item(1, random_vector(rng, true));
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  a.article.summary.reset();
  a.article.topic = "changed";
  a.embedding = random_vector(rng, true);
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  auto batch = m_store->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(batch) << batch.error().to_string();
  ASSERT_EQ(batch->ids.size(), 1u);
  EXPECT_FALSE(batch->metadatas[0].contains("summary")) << batch->metadatas[0].dump();
  EXPECT_EQ(batch->metadatas[0], build_metadata(a.article));
  EXPECT_NEAR(batch->data[0], a.embedding[0], 1e-6);
}

TEST_F(ChromaStoreTest, SearchScoresAreCosineDistancesInAscendingOrder) {
  const auto items = load(60);
  std::mt19937 rng(7);
  const Embedding q = random_vector(rng, true);
  SearchOptions opts;
  opts.top_k = 10;
  auto hits = m_store->search(q, opts);
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 10u);
  // Exact top 10 by brute force.
  std::vector<std::pair<double, std::string>> exact;
  for (const auto& a : items) exact.emplace_back(cosine_distance(q, a.embedding), a.article.uri);
  std::sort(exact.begin(), exact.end());
  for (std::size_t i = 0; i < hits->size(); ++i) {
    EXPECT_EQ((*hits)[i].id, exact[i].second);
    EXPECT_NEAR((*hits)[i].score, exact[i].first, 1e-5);
    EXPECT_DOUBLE_EQ((*hits)[i].raw_score, (*hits)[i].score);
    if (i > 0) {
      EXPECT_LE((*hits)[i - 1].score, (*hits)[i].score);
    }
  }
}

TEST_F(ChromaStoreTest, FilteredSearchReturnsOnlyMatchingRecordsAndTheExactTopK) {
  const auto items = load(80);
  std::mt19937 rng(9);
  const Embedding q = random_vector(rng, true);
  const std::int64_t day10 = *publication_date_ts("2025-01-10");
  const std::int64_t day20 = *publication_date_ts("2025-01-20");
  struct Case {
    std::string where;
    std::function<bool(const ArticleVector&)> match;
  };
  auto ts = [](const ArticleVector& a) { return *publication_date_ts(*a.article.publication_date); };
  const std::vector<Case> cases = {
      {R"({"topic": "crude"})", [](const auto& a) { return a.article.topic == "crude"; }},
      {R"({"topic": {"$in": ["grain", "earn"]}})", [](const auto& a) { return a.article.topic == "grain" || a.article.topic == "earn"; }},
      {fmt::format(R"({{"$and": [{{"publication_date_ts": {{"$gte": {}}}}}, {{"publication_date_ts": {{"$lt": {}}}}}]}})",
                   day10, day20),
       [&](const auto& a) { return ts(a) >= day10 && ts(a) < day20; }},
      {fmt::format(R"({{"$and": [{{"topic": "acq"}}, {{"publication_date_ts": {{"$gte": {}}}}}]}})", day10),
       [&](const auto& a) { return a.article.topic == "acq" && ts(a) >= day10; }},
      {R"({"$or": [{"topic": "crude"}, {"title": "Title 5"}]})",
       [](const auto& a) { return a.article.topic == "crude" || a.article.title == "Title 5"; }},
      {R"({"publication_date": {"$gte": "2025-01-20"}})", [&](const auto& a) { return ts(a) >= day20; }},
      {R"({"topic": {"$nin": ["crude", "grain", "earn"]}})", [](const auto& a) { return a.article.topic == "acq"; }},
  };
  for (const auto& c : cases) {
    auto filter = parse_filter(std::string_view(c.where));
    ASSERT_TRUE(filter) << c.where;
    SearchOptions opts;
    opts.top_k = 5;
    opts.where = *filter;
    auto hits = m_store->search(q, opts);
    ASSERT_TRUE(hits) << c.where << ": " << hits.error().to_string();
    std::vector<std::pair<double, std::string>> exact;
    for (const auto& a : items) {
      if (c.match(a)) exact.emplace_back(cosine_distance(q, a.embedding), a.article.uri);
    }
    std::sort(exact.begin(), exact.end());
    ASSERT_EQ(hits->size(), std::min<std::size_t>(5, exact.size())) << c.where;
    for (std::size_t i = 0; i < hits->size(); ++i) EXPECT_EQ((*hits)[i].id, exact[i].second) << c.where;
  }
}

TEST_F(ChromaStoreTest, DateRangesChromaCannotAnswerExactlyAreRefused) {
  load(4);
  std::mt19937 rng(3);
  for (const char* where : {R"({"publication_date": {"$gt": "2025-01-02"}})",
                            R"({"publication_date": {"$gte": "2025-01-02T12:00:00Z"}})", R"({"title": {"$gt": "2025-01-02"}})"}) {
    auto filter = parse_filter(std::string_view(where));
    ASSERT_TRUE(filter) << where;
    SearchOptions opts;
    opts.where = *filter;
    auto hits = m_store->search(random_vector(rng, true), opts);
    ASSERT_FALSE(hits) << where;
    EXPECT_EQ(hits.error().code(), ErrorCode::invalid_argument) << hits.error().to_string();
  }
}

TEST_F(ChromaStoreTest, SimilarUsesTheStoredVectorAndExcludesTheArticle) {
  const auto items = load(30);
  auto hits = m_store->similar("u:3", {.top_k = 5});
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 5u);
  std::vector<std::pair<double, std::string>> exact;
  for (const auto& a : items) {
    if (a.article.uri != "u:3") exact.emplace_back(cosine_distance(items[3].embedding, a.embedding), a.article.uri);
  }
  std::sort(exact.begin(), exact.end());
  for (std::size_t i = 0; i < hits->size(); ++i) {
    EXPECT_NE((*hits)[i].id, "u:3");
    EXPECT_EQ((*hits)[i].id, exact[i].second);
  }
  auto missing = m_store->similar("u:nope", {.top_k = 5});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::not_found);
}

TEST_F(ChromaStoreTest, GetVectorsPagesPastTheBatchLimit) {
  m_store->test_set_max_batch(7);
  load(30);  // upserted in 5 requests of at most 7
  auto all = m_store->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->ids.size(), 30u);
  EXPECT_EQ(std::set<std::string>(all->ids.begin(), all->ids.end()).size(), 30u);
  EXPECT_EQ(all->data.size(), 30u * k_dim);
  auto some = m_store->get_vectors(12, std::nullopt);
  ASSERT_TRUE(some);
  EXPECT_EQ(some->ids.size(), 12u);
  auto filter = parse_filter(std::string_view(R"({"topic": "grain"})"));
  ASSERT_TRUE(filter);
  auto grain = m_store->get_vectors(std::nullopt, *filter);
  ASSERT_TRUE(grain);
  EXPECT_EQ(grain->ids.size(), 8u);  // n % 4 == 1 for n < 30
  for (const auto& md : grain->metadatas) EXPECT_EQ(md["topic"], "grain");
  auto none = m_store->get_vectors(0, std::nullopt);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->ids.empty());
}

TEST_F(ChromaStoreTest, RemoveCountsOnlyStoredIds) {
  load(10);
  const std::vector<std::string> ids = {"u:1", "u:2", "u:missing"};
  auto removed = m_store->remove(ids);
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_EQ(*removed, 2);
  auto counts = m_store->count();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->rows, 8);
  auto again = m_store->remove(ids);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, 0);
}

TEST_F(ChromaStoreTest, HealthHasTheProductKeys) {
  load(3);
  auto h = m_store->health();
  ASSERT_TRUE(h) << h.error().to_string();
  for (const char* key : {"healthy", "reasons", "backend", "server_version", "extension_version", "dimension",
                          "embedding_model", "rows", "with_embedding", "coverage_pct", "index"}) {
    EXPECT_TRUE(h->contains(key)) << key;
  }
  EXPECT_EQ((*h)["healthy"], true);
  EXPECT_EQ((*h)["backend"], "chromadb");
  EXPECT_EQ((*h)["rows"], 3);
  EXPECT_EQ((*h)["index"]["params"]["space"], "cosine");
}

TEST_F(ChromaStoreTest, BadInputIsRefusedBeforeTheServer) {
  std::mt19937 rng(5);
  ArticleVector a = item(1, random_vector(rng, true));
  a.embedding.push_back(1.0f);
  auto wrong = m_store->upsert(std::span(&a, 1));
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(wrong.error().message().find("expected 8 dimensions, not 9"), std::string::npos) << wrong.error().message();
  std::vector<ArticleVector> twice = {item(1, random_vector(rng, true)), item(1, random_vector(rng, true))};
  auto dup = m_store->upsert(twice);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::invalid_argument);
  SearchOptions opts;
  opts.top_k = 0;
  auto k0 = m_store->search(random_vector(rng, true), opts);
  ASSERT_FALSE(k0);
  EXPECT_EQ(k0.error().code(), ErrorCode::invalid_argument);
}

class ChromaSpaceTest : public ChromaStoreTest, public ::testing::WithParamInterface<Space> {
 protected:
  void SetUp() override { open_store_in(GetParam()); }
};

TEST_P(ChromaSpaceTest, ScoresAreCosineDistancesAndRawScoresAreChromasDistance) {
  const auto items = load(50, false);  // unnormalised: l2 and ip order differ from cosine order
  ASSERT_EQ(m_store->test_space(), GetParam());
  std::mt19937 rng(11);
  const Embedding q = random_vector(rng, false);
  SearchOptions opts;
  opts.top_k = 5;
  auto hits = m_store->search(q, opts);
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 5u);
  std::vector<std::pair<double, std::string>> exact;
  for (const auto& a : items) exact.emplace_back(cosine_distance(q, a.embedding), a.article.uri);
  std::sort(exact.begin(), exact.end());
  for (std::size_t i = 0; i < hits->size(); ++i) {
    const auto& hit = (*hits)[i];
    EXPECT_EQ(hit.id, exact[i].second);
    EXPECT_NEAR(hit.score, exact[i].first, 1e-5);
    const auto it = std::find_if(items.begin(), items.end(), [&](const auto& a) { return a.article.uri == hit.id; });
    double l2 = 0, dot = 0;
    for (int d = 0; d < k_dim; ++d) {
      const double x = q[static_cast<std::size_t>(d)];
      const double y = it->embedding[static_cast<std::size_t>(d)];
      l2 += (x - y) * (x - y);
      dot += x * y;
    }
    const double expected_raw = GetParam() == Space::l2 ? l2 : 1.0 - dot;
    EXPECT_NEAR(hit.raw_score, expected_raw, 1e-3 * std::max(1.0, std::abs(expected_raw)));
  }
}

INSTANTIATE_TEST_SUITE_P(L2AndIp, ChromaSpaceTest, ::testing::Values(Space::l2, Space::ip),
                         [](const auto& info) { return info.param == Space::l2 ? "l2" : "ip"; });

TEST(ChromaStoreErrors, MissingCollectionIsNotFoundAndNamesTheServer) {
  const Config cfg = chroma_config(ChromaServer::shared().url(), unique_collection("missing"));
  auto store = ChromaStore::open(cfg);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::not_found);
  EXPECT_NE(store.error().message().find(ChromaServer::shared().url()), std::string::npos) << store.error().message();
  EXPECT_NE(store.error().message().find(cfg.chroma_collection), std::string::npos);
}

TEST(ChromaStoreErrors, ServerDownIsUnavailableNamesTheServerAndHidesTheToken) {
  const int port = testing::free_loopback_port();
  Config cfg = chroma_config(fmt::format("http://127.0.0.1:{}", port), "articles");
  cfg.chroma_token = "s3cret-token-value";
  auto store = ChromaStore::open(cfg);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::unavailable);
  EXPECT_TRUE(store.error().retryable());
  EXPECT_NE(store.error().message().find(fmt::format("127.0.0.1:{}", port)), std::string::npos) << store.error().message();
  EXPECT_EQ(store.error().message().find("s3cret"), std::string::npos);
}

TEST(ChromaStoreErrors, NoChromaUrlIsInvalidArgument) {
  const Config cfg = chroma_config("", "articles");
  auto store = ChromaStore::open(cfg);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(store.error().message().find("CHROMA_URL"), std::string::npos);
}

TEST(ChromaStoreErrors, CollectionOfAnotherDimensionIsConflict) {
  const std::string name = unique_collection("dim");
  ChromaOptions options;
  options.create_collection = true;
  {
    auto store = ChromaStore::open(chroma_config(ChromaServer::shared().url(), name), options);
    ASSERT_TRUE(store) << store.error().to_string();
    std::mt19937 rng(2);
    ArticleVector a = item(1, random_vector(rng, true));
    ASSERT_TRUE((*store)->upsert(std::span(&a, 1)));
  }
  Config other = chroma_config(ChromaServer::shared().url(), name);
  other.embedding_dim = 16;
  auto store = ChromaStore::open(other);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::conflict);
  EXPECT_NE(store.error().message().find("8-dimensional"), std::string::npos) << store.error().message();
}

TEST(ChromaStoreErrors, ServerRejectionsMapToErrorCodesWithTheServersMessage) {
  chroma::HttpOptions options;
  options.base_url = ChromaServer::shared().url();
  auto http = chroma::ChromaHttp::create(options);
  ASSERT_TRUE(http);
  ChromaOptions create;
  create.create_collection = true;
  const Config cfg = chroma_config(ChromaServer::shared().url(), unique_collection("rej"));
  auto store = ChromaStore::open(cfg, create);
  ASSERT_TRUE(store) << store.error().to_string();
  auto h = (*store)->health();
  ASSERT_TRUE(h);
  const std::string path = fmt::format("/api/v2/tenants/default_tenant/databases/default_database/collections/{}/query",
                                       (*h)["collection_id"].get<std::string>());
  // A two-key where object: the server's "Invalid where clause".
  const nlohmann::json body = {{"query_embeddings", {std::vector<float>(k_dim, 0.5f)}},
                               {"n_results", 1},
                               {"where", {{"a", 1}, {"b", 2}}}};
  auto rejected = (*http)->post(path, body, chroma::Retry::read);
  ASSERT_FALSE(rejected);
  EXPECT_EQ(rejected.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(rejected.error().message().find("Invalid where clause"), std::string::npos) << rejected.error().message();
  EXPECT_NE(rejected.error().message().find(ChromaServer::shared().url()), std::string::npos);
  // A record operation on a collection id that does not exist.
  auto gone = (*http)->get("/api/v2/tenants/default_tenant/databases/default_database/collections/no-such-collection");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), ErrorCode::not_found);
  // Wrong dimension straight to the server (the store refuses it earlier).
  const nlohmann::json wrong = {{"query_embeddings", {std::vector<float>(3, 0.5f)}}, {"n_results", 1}};
  std::mt19937 rng(4);
  ArticleVector a = item(1, random_vector(rng, true));
  ASSERT_TRUE((*store)->upsert(std::span(&a, 1)));
  auto dim = (*http)->post(path, wrong, chroma::Retry::read);
  ASSERT_FALSE(dim);
  EXPECT_EQ(dim.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(dim.error().message().find("dimension"), std::string::npos) << dim.error().message();
}

// A collection the application wrote itself holds its uris as ids only, not in the metadata:
// the uri filter of dual mode's sync (and any get by uri) must find them by id.
TEST(ChromaStoreUris, AUriFilterFindsRecordsWrittenWithoutUriMetadata) {
  chroma::HttpOptions options;
  options.base_url = ChromaServer::shared().url();
  auto http = chroma::ChromaHttp::create(options);
  ASSERT_TRUE(http);
  ChromaOptions create;
  create.create_collection = true;
  const Config cfg = chroma_config(ChromaServer::shared().url(), unique_collection("appids"));
  auto store = ChromaStore::open(cfg, create);
  ASSERT_TRUE(store) << store.error().to_string();
  auto h = (*store)->health();
  ASSERT_TRUE(h);
  const std::string path = fmt::format("/api/v2/tenants/default_tenant/databases/default_database/collections/{}/add",
                                       (*h)["collection_id"].get<std::string>());
  const nlohmann::json body = {{"ids", {"app:1", "app:2", "app:3"}},
                               {"embeddings", {std::vector<float>(k_dim, 0.1f), std::vector<float>(k_dim, 0.2f),
                                               std::vector<float>(k_dim, 0.3f)}},
                               {"metadatas", {{{"topic", "a"}}, {{"topic", "b"}}, {{"topic", "c"}}}}};
  ASSERT_TRUE((*http)->post(path, body, chroma::Retry::write));
  auto where = parse_filter(std::string_view(R"({"uri": {"$in": ["app:3", "app:1", "app:9"]}})"));
  ASSERT_TRUE(where);
  auto got = (*store)->get_vectors(std::nullopt, *where);
  ASSERT_TRUE(got) << got.error().to_string();
  std::vector<std::string> ids = got->ids;
  std::sort(ids.begin(), ids.end());
  EXPECT_EQ(ids, (std::vector<std::string>{"app:1", "app:3"}));
  auto one = parse_filter(std::string_view(R"({"uri": "app:2"})"));
  ASSERT_TRUE(one);
  auto got_one = (*store)->get_vectors(std::nullopt, *one);
  ASSERT_TRUE(got_one) << got_one.error().to_string();
  ASSERT_EQ(got_one->ids.size(), 1U);
  EXPECT_FLOAT_EQ(got_one->data[0], 0.2f);
  // Other filters still go to Chroma's where.
  auto topic = parse_filter(std::string_view(R"({"topic": "b"})"));
  ASSERT_TRUE(topic);
  auto by_topic = (*store)->get_vectors(std::nullopt, *topic);
  ASSERT_TRUE(by_topic);
  EXPECT_EQ(by_topic->ids, (std::vector<std::string>{"app:2"}));
}

TEST(ChromaStoreErrors, ReadsRetryAndWritesFailAtOnceWhenTheServerStops) {
  ChromaServer server;
  ChromaOptions options;
  options.create_collection = true;
  options.http.read_attempts = 3;
  options.http.backoff_base = std::chrono::milliseconds(20);
  auto store = ChromaStore::open(chroma_config(server.url(), "articles"), options);
  ASSERT_TRUE(store) << store.error().to_string();
  std::mt19937 rng(6);
  ArticleVector a = item(1, random_vector(rng, true));
  ASSERT_TRUE((*store)->upsert(std::span(&a, 1)));
  server.stop();
  auto read = (*store)->count();
  ASSERT_FALSE(read);
  EXPECT_EQ(read.error().code(), ErrorCode::unavailable);
  EXPECT_NE(read.error().message().find("tried 3 times"), std::string::npos) << read.error().message();
  auto write = (*store)->upsert(std::span(&a, 1));
  ASSERT_FALSE(write);
  EXPECT_EQ(write.error().code(), ErrorCode::unavailable);
  EXPECT_EQ(write.error().message().find("tried"), std::string::npos) << write.error().message();
  server.start();
  auto back = (*store)->count();
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->rows, 1);
}

}  // namespace
}  // namespace vstore
