// SPDX-License-Identifier: Apache-2.0
// VECTOR_BACKEND=dual against real servers: the Chroma server is stopped in the middle of a
// stream of upserts; every upsert must land in PostgreSQL, the outbox must hold what Chroma did
// not get, and after Chroma is back the outbox drains and both stores hold the same ids, vectors
// and metadata. The background drain is stopped where a test counts what a drain applies.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <random>
#include <set>
#include <thread>

#include "api/dual_store.hpp"
#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

constexpr int k_dim = 8;

ArticleVector item(int n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  ArticleVector a;
  a.article.uri = "d:" + std::to_string(n);
  a.article.title = "Title " + std::to_string(n);
  a.article.topic = n % 2 == 0 ? "even" : "odd";
  a.article.publication_date = "2025-02-03T04:05:06Z";
  a.article.tags = std::vector<std::string>{"t" + std::to_string(n % 3)};
  a.embedding.resize(k_dim);
  for (float& f : a.embedding) f = dist(rng);
  a.embedding_model = "vstore-hash-v1";
  return a;
}

class DualStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = testing::PgServer::instance().create_database("dual");
    m_cfg = testing::test_config(m_db, k_dim);
    m_cfg.backend = BackendKind::dual;
    m_cfg.chroma_url = m_chroma.url();
    m_cfg.chroma_collection = "articles";
    auto st = schema_up(m_db, m_cfg);
    ASSERT_TRUE(st) << st.error().to_string();
    OpenOptions options;
    options.create = true;
    options.shadow_compare = true;
    auto store = open_store(m_cfg, options);
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
    m_dual = dynamic_cast<api::DualStore*>(m_store.get());
    ASSERT_NE(m_dual, nullptr);
  }
  void TearDown() override {
    m_store.reset();
    testing::PgServer::instance().drop_database(m_db);
  }

  // Both stores' records: same ids, vectors within float rounding, same metadata.
  void expect_same_records() {
    auto pg = m_dual->primary().get_vectors(std::nullopt, std::nullopt);
    auto secondary = m_dual->secondary();
    ASSERT_TRUE(secondary) << secondary.error().to_string();
    auto ch = (*secondary)->get_vectors(std::nullopt, std::nullopt);
    ASSERT_TRUE(pg) << pg.error().to_string();
    ASSERT_TRUE(ch) << ch.error().to_string();
    ASSERT_EQ(std::set<std::string>(pg->ids.begin(), pg->ids.end()), std::set<std::string>(ch->ids.begin(), ch->ids.end()));
    std::map<std::string, std::size_t> row;
    for (std::size_t i = 0; i < ch->ids.size(); ++i) row[ch->ids[i]] = i;
    for (std::size_t i = 0; i < pg->ids.size(); ++i) {
      const std::size_t j = row[pg->ids[i]];
      EXPECT_EQ(pg->metadatas[i], ch->metadatas[j]) << pg->ids[i];
      for (std::size_t d = 0; d < static_cast<std::size_t>(k_dim); ++d) {
        EXPECT_NEAR(pg->data[i * k_dim + d], ch->data[j * k_dim + d], 1e-5) << pg->ids[i];
      }
    }
  }

  testing::ChromaServer m_chroma;
  std::string m_db;
  Config m_cfg;
  std::unique_ptr<VectorStore> m_store;
  api::DualStore* m_dual = nullptr;
};

TEST_F(DualStoreTest, ChromaStoppedMidStreamLosesNothingAndTheOutboxDrainsAfterRestart) {
  constexpr int k_batches = 60;
  constexpr int k_batch = 10;
  std::atomic<int> done{0};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    std::mt19937 rng(17);
    for (int b = 0; b < k_batches; ++b) {
      std::vector<ArticleVector> items;
      for (int i = 0; i < k_batch; ++i) items.push_back(item(b * k_batch + i, rng));
      if (!m_store->upsert(items)) ++failures;
      ++done;
      std::this_thread::sleep_for(std::chrono::milliseconds(15));
    }
  });
  while (done.load() < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  m_chroma.stop();
  writer.join();
  EXPECT_EQ(failures.load(), 0) << "a secondary outage must never fail a write";

  auto pg_counts = m_dual->primary().count();
  ASSERT_TRUE(pg_counts) << pg_counts.error().to_string();
  EXPECT_EQ(pg_counts->with_embedding, k_batches * k_batch);
  auto pending = m_dual->outbox_pending();
  ASSERT_TRUE(pending) << pending.error().to_string();
  EXPECT_GE(*pending, (k_batches - 21) * k_batch) << "the batches written after the stop wait in the outbox";
  auto health = m_store->health();
  ASSERT_TRUE(health) << health.error().to_string();
  EXPECT_EQ((*health)["healthy"], false);
  EXPECT_EQ((*health)["outbox_pending"], *pending);

  m_dual->stop_background_drain();
  m_chroma.start();
  auto secondary = m_dual->secondary();
  ASSERT_TRUE(secondary) << secondary.error().to_string();
  auto chroma_before = (*secondary)->count();
  ASSERT_TRUE(chroma_before) << chroma_before.error().to_string();
  EXPECT_LT(chroma_before->rows, k_batches * k_batch);
  auto drained = m_dual->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  EXPECT_EQ(*drained, *pending);
  auto left = m_dual->outbox_pending();
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 0);
  auto chroma_after = (*secondary)->count();
  ASSERT_TRUE(chroma_after);
  EXPECT_EQ(chroma_after->rows, k_batches * k_batch);
  expect_same_records();
  const auto stats = m_dual->stats();
  EXPECT_GT(stats.secondary_write_failures, 0);
  EXPECT_GE(stats.outbox_drained, *pending);
  EXPECT_EQ(stats.outbox_enqueued, k_batches * k_batch);
}

TEST_F(DualStoreTest, RemovesAndUpdatesDuringAnOutageAreAppliedInOrderByTheDrain) {
  std::mt19937 rng(3);
  std::vector<ArticleVector> items;
  for (int i = 0; i < 20; ++i) items.push_back(item(i, rng));
  ASSERT_TRUE(m_store->upsert(items));
  m_dual->stop_background_drain();
  ASSERT_TRUE(m_dual->drain_outbox());
  m_chroma.stop();
  const std::vector<std::string> gone = {"d:1", "d:2", "d:3"};
  auto removed = m_store->remove(gone);
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_EQ(*removed, 3);
  // A new vector for d:4 (pgvector keeps an existing row's article columns on upsert, so the
  // vector is what both stores must agree on).
  ArticleVector changed = item(4, rng);
  ASSERT_TRUE(m_store->upsert(std::span(&changed, 1)));
  auto pending = m_dual->outbox_pending();
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, 4);
  // The service's /metrics reads the same depth, and the pool of the primary, from gauges().
  auto gauges = m_dual->gauges();
  ASSERT_TRUE(gauges) << gauges.error().to_string();
  EXPECT_EQ((*gauges)["outbox_pending"], 4) << *gauges;
  EXPECT_GT((*gauges)["outbox_oldest_age_s"].get<double>(), 0.0) << *gauges;
  EXPECT_GE((*gauges)["pool_open"].get<int>(), 1) << *gauges;
  m_chroma.start();
  ArticleVector later = item(100, rng);
  ASSERT_TRUE(m_store->upsert(std::span(&later, 1)));  // queued behind the outage's rows
  auto drained = m_dual->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  EXPECT_EQ(*drained, 5);
  auto left = m_dual->outbox_pending();
  ASSERT_TRUE(left);
  EXPECT_EQ(*left, 0);
  auto emptied = m_dual->gauges();
  ASSERT_TRUE(emptied) << emptied.error().to_string();
  EXPECT_EQ((*emptied)["outbox_pending"], 0) << *emptied;
  EXPECT_EQ((*emptied)["outbox_oldest_age_s"], 0.0) << *emptied;
  expect_same_records();
  auto secondary = m_dual->secondary();
  ASSERT_TRUE(secondary) << secondary.error().to_string();
  auto ch = (*secondary)->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(ch);
  for (std::size_t i = 0; i < ch->ids.size(); ++i) {
    EXPECT_TRUE(ch->ids[i] != "d:1" && ch->ids[i] != "d:2" && ch->ids[i] != "d:3");
    if (ch->ids[i] == "d:4") {
      EXPECT_NEAR(ch->data[i * k_dim], changed.embedding[0], 1e-5);
    }
  }
}

TEST_F(DualStoreTest, OpensWhileChromaIsDownAndCatchesUpWhenItReturns) {
  m_store.reset();
  m_chroma.stop();
  OpenOptions options;
  options.create = true;
  auto store = open_store(m_cfg, options);
  ASSERT_TRUE(store) << "a secondary outage must not stop the dual store from opening: " << store.error().to_string();
  m_store = std::move(*store);
  m_dual = dynamic_cast<api::DualStore*>(m_store.get());
  ASSERT_NE(m_dual, nullptr);
  m_dual->stop_background_drain();
  std::mt19937 rng(8);
  std::vector<ArticleVector> items;
  for (int i = 0; i < 12; ++i) items.push_back(item(i, rng));
  ASSERT_TRUE(m_store->upsert(items));
  auto pending = m_dual->outbox_pending();
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, 12);
  m_chroma.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // the secondary is reopened at most once a second
  auto drained = m_dual->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  EXPECT_EQ(*drained, 12);
  expect_same_records();
}

TEST_F(DualStoreTest, ReadsComeFromThePrimaryAndShadowCompareRecordsOverlap) {
  std::mt19937 rng(5);
  std::vector<ArticleVector> items;
  for (int i = 0; i < 30; ++i) items.push_back(item(i, rng));
  ASSERT_TRUE(m_store->upsert(items));
  ASSERT_TRUE(m_dual->drain_outbox());  // the secondary is written by the drain, not the write
  SearchOptions opts;
  opts.top_k = 5;
  auto hits = m_store->search(items[0].embedding, opts);
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 5u);
  EXPECT_EQ((*hits)[0].id, "d:0");
  auto stats = m_dual->stats();
  EXPECT_EQ(stats.shadow_reads, 1);
  EXPECT_DOUBLE_EQ(stats.shadow_overlap_sum, 1.0);
  m_chroma.stop();
  auto still = m_store->search(items[0].embedding, opts);
  ASSERT_TRUE(still) << "a secondary outage must not fail a read: " << still.error().to_string();
  EXPECT_EQ(m_dual->stats().shadow_failures, 1);
  auto health = m_store->health();
  ASSERT_TRUE(health);
  EXPECT_EQ((*health)["backend"], "dual");
  EXPECT_EQ((*health)["primary"], "pgvector");
  EXPECT_EQ((*health)["shadow"]["reads"], 1);
}

}  // namespace
}  // namespace vstore
