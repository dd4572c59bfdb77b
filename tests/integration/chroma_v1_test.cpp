// SPDX-License-Identifier: Apache-2.0
// ChromaStore against a server that speaks only the v1 API (PyPI chromadb 0.5.5, started by the
// fixture): the API is detected by probing, and the same operations give the same answers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "vstore/article.hpp"

namespace vstore {
namespace {

using chroma::ChromaOptions;
using chroma::ChromaStore;

constexpr int k_dim = 8;

class ChromaV1Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { s_server = std::make_unique<testing::ChromaServer>(testing::ChromaFlavor::python_v1); }
  static void TearDownTestSuite() { s_server.reset(); }

  void SetUp() override {
    m_cfg.backend = BackendKind::chromadb;
    m_cfg.chroma_url = s_server->url();
    m_cfg.chroma_collection = testing::unique_collection("v1");
    m_cfg.embedding_dim = k_dim;
    ChromaOptions options;
    options.create_collection = true;
    auto store = ChromaStore::open(m_cfg, options);
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
    std::mt19937 rng(21);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (int i = 0; i < 30; ++i) {
      ArticleVector a;
      a.article.uri = "v:" + std::to_string(i);
      a.article.title = "Title " + std::to_string(i);
      a.article.topic = i % 3 == 0 ? "crude" : "grain";
      a.article.publication_date = "2025-01-05";
      a.embedding.resize(k_dim);
      for (float& f : a.embedding) f = dist(rng);
      a.embedding_model = "test-model";
      m_items.push_back(std::move(a));
    }
    auto done = m_store->upsert(m_items);
    ASSERT_TRUE(done) << done.error().to_string();
  }

  static inline std::unique_ptr<testing::ChromaServer> s_server;
  Config m_cfg;
  std::unique_ptr<ChromaStore> m_store;
  std::vector<ArticleVector> m_items;
};

double cosine_distance(std::span<const float> a, std::span<const float> b) {
  double dot = 0, na = 0, nb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    dot += static_cast<double>(a[i]) * b[i];
    na += static_cast<double>(a[i]) * a[i];
    nb += static_cast<double>(b[i]) * b[i];
  }
  return 1.0 - dot / std::sqrt(na * nb);
}

TEST_F(ChromaV1Test, DetectsTheV1ApiAndStoresTheSameRecords) {
  EXPECT_EQ(m_store->test_api(), chroma::ApiVersion::v1);
  EXPECT_EQ(m_store->test_space(), chroma::Space::cosine);
  EXPECT_GT(m_store->test_max_batch(), 0);
  auto counts = m_store->count();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->rows, 30);
  auto batch = m_store->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(batch) << batch.error().to_string();
  ASSERT_EQ(batch->ids.size(), 30u);
  for (std::size_t row = 0; row < batch->ids.size(); ++row) {
    const auto it = std::find_if(m_items.begin(), m_items.end(), [&](const auto& a) { return a.article.uri == batch->ids[row]; });
    ASSERT_NE(it, m_items.end());
    EXPECT_EQ(batch->metadatas[row], build_metadata(it->article));
    EXPECT_NEAR(batch->data[row * k_dim], it->embedding[0], 1e-5);
  }
  auto h = m_store->health();
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ((*h)["api"], "v1");
  EXPECT_EQ((*h)["server_version"], "0.5.5");
  EXPECT_EQ((*h)["healthy"], true);
}

TEST_F(ChromaV1Test, SearchFilterSimilarAndRemoveWorkOverV1) {
  const Embedding& q = m_items[4].embedding;
  auto filter = parse_filter(std::string_view(R"({"topic": "crude"})"));
  ASSERT_TRUE(filter);
  SearchOptions opts;
  opts.top_k = 4;
  opts.where = *filter;
  auto hits = m_store->search(q, opts);
  ASSERT_TRUE(hits) << hits.error().to_string();
  std::vector<std::pair<double, std::string>> exact;
  for (const auto& a : m_items) {
    if (a.article.topic == "crude") exact.emplace_back(cosine_distance(q, a.embedding), a.article.uri);
  }
  std::sort(exact.begin(), exact.end());
  ASSERT_EQ(hits->size(), 4u);
  for (std::size_t i = 0; i < hits->size(); ++i) {
    EXPECT_EQ((*hits)[i].id, exact[i].second);
    EXPECT_NEAR((*hits)[i].score, exact[i].first, 1e-5);
  }
  auto similar = m_store->similar("v:4", {.top_k = 3});
  ASSERT_TRUE(similar) << similar.error().to_string();
  ASSERT_EQ(similar->size(), 3u);
  for (const auto& h : *similar) EXPECT_NE(h.id, "v:4");
  const std::vector<std::string> ids = {"v:0", "v:1", "nope"};
  auto removed = m_store->remove(ids);
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_EQ(*removed, 2);
  auto counts = m_store->count();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->rows, 28);
}

TEST_F(ChromaV1Test, UpsertReplacesMetadataOnV1Too) {
  ArticleVector a = m_items[2];
  a.article.summary = "a summary";
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  a.article.summary.reset();
  a.article.topic = "changed";
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  auto filter = parse_filter(std::string_view(R"({"topic": "changed"})"));
  ASSERT_TRUE(filter);
  auto batch = m_store->get_vectors(std::nullopt, *filter);
  ASSERT_TRUE(batch) << batch.error().to_string();
  ASSERT_EQ(batch->ids.size(), 1u);
  EXPECT_EQ(batch->metadatas[0], build_metadata(a.article));
}

TEST_F(ChromaV1Test, AMissingCollectionIsNotFoundOnV1Too) {
  Config cfg = m_cfg;
  cfg.chroma_collection = testing::unique_collection("v1-missing");
  auto store = ChromaStore::open(cfg);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::not_found) << store.error().to_string();
}

class ChromaToken : public ::testing::TestWithParam<const char*> {};

TEST_P(ChromaToken, TheTokenReachesTheServerAndNeverAppearsInErrors) {
  const std::string token = "tok-9f3e1b7c";
  testing::ChromaServer server(testing::ChromaFlavor::python_v1, token, GetParam());
  Config cfg;
  cfg.backend = BackendKind::chromadb;
  cfg.chroma_url = server.url();
  cfg.chroma_collection = "articles";
  cfg.embedding_dim = k_dim;
  ChromaOptions options;
  options.create_collection = true;

  cfg.chroma_token = token;
  auto store = ChromaStore::open(cfg, options);
  ASSERT_TRUE(store) << store.error().to_string();
  ArticleVector a;
  a.article.uri = "t:1";
  a.embedding = Embedding(k_dim, 0.5f);
  a.embedding_model = "test-model";
  ASSERT_TRUE((*store)->upsert(std::span(&a, 1)));
  auto counts = (*store)->count();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->rows, 1);

  cfg.chroma_token = "wrong-secret-value";
  auto wrong = ChromaStore::open(cfg, options);
  ASSERT_FALSE(wrong);
  EXPECT_NE(wrong.error().message().find("HTTP 403"), std::string::npos) << wrong.error().message();
  EXPECT_NE(wrong.error().message().find("check CHROMA_TOKEN"), std::string::npos) << wrong.error().message();
  EXPECT_NE(wrong.error().message().find(server.url()), std::string::npos);
  EXPECT_EQ(wrong.error().message().find("wrong-secret-value"), std::string::npos);

  cfg.chroma_token.clear();
  auto none = ChromaStore::open(cfg, options);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("CHROMA_TOKEN is not set"), std::string::npos) << none.error().message();
}

INSTANTIATE_TEST_SUITE_P(Headers, ChromaToken, ::testing::Values("X-Chroma-Token", "Authorization"),
                         [](const auto& info) { return std::string(info.param) == "Authorization" ? "bearer" : "x_chroma_token"; });

}  // namespace
}  // namespace vstore
