// SPDX-License-Identifier: Apache-2.0
// Issue 21, item 3: the dual store's outbox against real PostgreSQL and Chroma servers. Two
// stores with their own connections write the same uris at once and end with the same vector in
// both backends; a row committed while a drain runs is applied later, never deleted unapplied;
// a drain stuck on a slow secondary does not hold up writers.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/dual_store.hpp"
#include "chroma/chroma_store.hpp"
#include "pg/pg_conn.hpp"
#include "support/chroma_fixture.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using nlohmann::json;

constexpr int k_dim = 8;

ArticleVector make_item(const std::string& uri, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.embedding.resize(k_dim);
  for (float& f : a.embedding) f = dist(rng);
  a.embedding_model = "vstore-hash-v1";
  return a;
}

// The outbox payload of an upsert of `item`, as the dual store writes it.
std::string payload_of(const ArticleVector& item) {
  json vec = json::array();
  for (float f : item.embedding) vec.push_back(f);
  return json{{"article", {{"uri", item.article.uri}, {"title", *item.article.title}}},
              {"embedding", vec},
              {"model", item.embedding_model}}
      .dump();
}

std::map<std::string, std::vector<float>> vectors_of(VectorStore& store) {
  std::map<std::string, std::vector<float>> out;
  auto batch = store.get_vectors(std::nullopt, std::nullopt);
  EXPECT_TRUE(batch) << batch.error().to_string();
  if (!batch) return out;
  for (std::size_t i = 0; i < batch->ids.size(); ++i) {
    out[batch->ids[i]] = std::vector<float>(batch->data.begin() + static_cast<std::ptrdiff_t>(i * batch->dim),
                                            batch->data.begin() + static_cast<std::ptrdiff_t>((i + 1) * batch->dim));
  }
  return out;
}

class Issue21Dual : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = testing::PgServer::instance().create_database("i21dual");
    m_cfg = testing::test_config(m_db, k_dim);
    m_cfg.backend = BackendKind::dual;
    m_cfg.chroma_url = m_chroma.url();
    m_cfg.chroma_collection = testing::unique_collection("i21dual");
    auto st = schema_up(m_db, m_cfg);
    ASSERT_TRUE(st) << st.error().to_string();
  }
  void TearDown() override { testing::PgServer::instance().drop_database(m_db); }

  // A dual store (pgvector primary) with its own connections and, unless asked, no background drain.
  std::unique_ptr<api::DualStore> open_dual(bool background) {
    auto pg = open_pg_store(m_db, m_cfg);
    EXPECT_TRUE(pg) << pg.error().to_string();
    chroma::ChromaOptions co;
    co.create_collection = true;
    auto ch = chroma::ChromaStore::open(m_cfg, co);
    EXPECT_TRUE(ch) << ch.error().to_string();
    if (!pg || !ch) return nullptr;
    api::DualOptions options;
    options.background_drain = background;
    auto dual = api::DualStore::open(std::move(*pg), std::unique_ptr<VectorStore>(std::move(*ch)), "chromadb", {}, m_db,
                                     m_cfg, options);
    EXPECT_TRUE(dual) << dual.error().to_string();
    return dual ? std::move(*dual) : nullptr;
  }

  // Inserts an outbox row for `item` on `conn` (in whatever transaction it is in).
  void insert_outbox_row(pg::Connection& conn, const ArticleVector& item) {
    const std::string payload = payload_of(item);
    pg::Param p[] = {pg::Param::text(m_cfg.table), pg::Param::text(item.article.uri), pg::Param::text(payload)};
    auto done = conn.exec_params("INSERT INTO vstore_outbox (table_name, target, op, uri, payload) "
                                 "VALUES ($1, 'chromadb', 'upsert', $2, $3::jsonb)",
                                 p);
    ASSERT_TRUE(done) << done.error().to_string();
  }

  testing::ChromaServer m_chroma;
  std::string m_db;
  Config m_cfg;
};

TEST_F(Issue21Dual, Item3ConcurrentWritersOfOneUriEndWithTheSameVectorInBothStores) {
  auto a = open_dual(true);
  auto b = open_dual(true);
  ASSERT_TRUE(a && b);
  constexpr int k_rounds = 40;
  const std::vector<std::string> uris = {"c:0", "c:1", "c:2", "c:3", "c:4"};
  auto writer = [&](api::DualStore& store, unsigned seed) {
    std::mt19937 rng(seed);
    for (int round = 0; round < k_rounds; ++round) {
      std::vector<ArticleVector> items;
      for (const auto& uri : uris) items.push_back(make_item(uri, rng));
      auto done = store.upsert(items);
      EXPECT_TRUE(done) << done.error().to_string();
    }
  };
  std::thread ta(writer, std::ref(*a), 1u);
  std::thread tb(writer, std::ref(*b), 2u);
  ta.join();
  tb.join();
  auto drained = a->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  auto pending = a->outbox_pending();
  ASSERT_TRUE(pending) << pending.error().to_string();
  EXPECT_EQ(*pending, 0);
  auto secondary = a->secondary();
  ASSERT_TRUE(secondary) << secondary.error().to_string();
  const auto pg = vectors_of(a->primary());
  const auto ch = vectors_of(**secondary);
  ASSERT_EQ(pg.size(), uris.size());
  ASSERT_EQ(ch.size(), uris.size());
  for (const auto& uri : uris) {
    ASSERT_EQ(pg.at(uri).size(), ch.at(uri).size());
    for (std::size_t d = 0; d < pg.at(uri).size(); ++d) {
      EXPECT_NEAR(pg.at(uri)[d], ch.at(uri)[d], 1e-5) << "the backends diverged on " << uri;
    }
  }
}

TEST_F(Issue21Dual, Item3WithChromaPrimaryConcurrentWritersEndWithTheSameVectorInBothStores) {
  m_cfg.primary = BackendKind::chromadb;
  OpenOptions options;
  options.create = true;
  auto a = open_store(m_cfg, options);
  auto b = open_store(m_cfg, options);
  ASSERT_TRUE(a && b);
  auto* dual_a = dynamic_cast<api::DualStore*>(a->get());
  ASSERT_NE(dual_a, nullptr);
  const std::vector<std::string> uris = {"k:0", "k:1", "k:2"};
  auto writer = [&](VectorStore& store, unsigned seed) {
    std::mt19937 rng(seed);
    for (int round = 0; round < 25; ++round) {
      std::vector<ArticleVector> items;
      for (const auto& uri : uris) items.push_back(make_item(uri, rng));
      auto done = store.upsert(items);
      EXPECT_TRUE(done) << done.error().to_string();
    }
  };
  std::thread ta(writer, std::ref(**a), 3u);
  std::thread tb(writer, std::ref(**b), 4u);
  ta.join();
  tb.join();
  auto drained = dual_a->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  auto secondary = dual_a->secondary();
  ASSERT_TRUE(secondary) << secondary.error().to_string();
  const auto ch = vectors_of(dual_a->primary());
  const auto pg = vectors_of(**secondary);
  ASSERT_EQ(ch.size(), uris.size());
  ASSERT_EQ(pg.size(), uris.size());
  for (const auto& uri : uris) {
    for (std::size_t d = 0; d < ch.at(uri).size(); ++d) {
      EXPECT_NEAR(ch.at(uri)[d], pg.at(uri)[d], 1e-5) << "the backends diverged on " << uri;
    }
  }
}

// Two stores (two processes) write one uri around a Chroma outage: the older version must not
// reach Chroma after the newer one.
TEST_F(Issue21Dual, Item3TwoStoresWritingOneUriAroundAnOutageEndWithTheNewestVector) {
  auto a = open_dual(false);
  auto b = open_dual(false);
  ASSERT_TRUE(a && b);
  std::mt19937 rng(21);
  const ArticleVector warm_up = make_item("w:other", rng);
  ASSERT_TRUE(b->upsert(std::span(&warm_up, 1)));
  ASSERT_TRUE(b->drain_outbox());
  m_chroma.stop();
  const ArticleVector older = make_item("w:one", rng);
  ASSERT_TRUE(a->upsert(std::span(&older, 1)));
  m_chroma.start();
  const ArticleVector newer = make_item("w:one", rng);
  ASSERT_TRUE(b->upsert(std::span(&newer, 1)));
  auto drained = a->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  ASSERT_TRUE(b->drain_outbox());
  auto secondary = a->secondary();
  ASSERT_TRUE(secondary) << secondary.error().to_string();
  const auto pg = vectors_of(a->primary());
  const auto ch = vectors_of(**secondary);
  ASSERT_TRUE(pg.contains("w:one") && ch.contains("w:one"));
  EXPECT_NEAR(pg.at("w:one")[0], newer.embedding[0], 1e-5);
  EXPECT_NEAR(ch.at("w:one")[0], newer.embedding[0], 1e-5) << "chroma holds the older version of w:one";
}

TEST_F(Issue21Dual, Item3ARowCommittedDuringADrainIsAppliedLaterNotDeleted) {
  auto store = open_dual(false);
  ASSERT_TRUE(store);
  auto writer = pg::Connection::connect(m_db);
  auto late_writer = pg::Connection::connect(m_db);
  ASSERT_TRUE(writer && late_writer);
  std::mt19937 rng(11);
  const ArticleVector first = make_item("o:first", rng);
  const ArticleVector late = make_item("o:late", rng);
  const ArticleVector last = make_item("o:last", rng);
  // Ids first < late < last, but `late` commits only once the drain has taken its rows.
  insert_outbox_row(*writer, first);
  ASSERT_TRUE(late_writer->exec("BEGIN"));
  insert_outbox_row(*late_writer, late);
  insert_outbox_row(*writer, last);
  int taken = 0;
  store->test_set_on_drain_taken([&] {
    if (taken++ == 0) {
      ASSERT_TRUE(late_writer->exec("COMMIT"));
    }
  });
  auto drained = store->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  // The late row is applied by this drain's next step or the next drain, never dropped.
  auto again = store->drain_outbox();
  ASSERT_TRUE(again) << again.error().to_string();
  EXPECT_EQ(*drained + *again, 3);
  auto pending = store->outbox_pending();
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, 0);
  auto secondary = store->secondary();
  ASSERT_TRUE(secondary) << secondary.error().to_string();
  const auto ch = vectors_of(**secondary);
  ASSERT_TRUE(ch.contains("o:late")) << "a row committed during a drain was deleted without being applied";
  EXPECT_NEAR(ch.at("o:late")[0], late.embedding[0], 1e-5);
  EXPECT_TRUE(ch.contains("o:first") && ch.contains("o:last"));
}

TEST_F(Issue21Dual, Item3ADrainWaitingOnASlowSecondaryDoesNotBlockWriters) {
  auto store = open_dual(false);
  ASSERT_TRUE(store);
  auto conn = pg::Connection::connect(m_db);
  ASSERT_TRUE(conn);
  std::mt19937 rng(5);
  insert_outbox_row(*conn, make_item("s:waiting", rng));
  std::atomic<bool> in_drain{false};
  store->test_set_on_drain_taken([&] {
    in_drain = true;
    std::this_thread::sleep_for(std::chrono::seconds(3));  // a secondary that takes its time
  });
  std::thread drain([&] { (void)store->drain_outbox(); });
  while (!in_drain) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const ArticleVector item = make_item("s:new", rng);
  const auto start = std::chrono::steady_clock::now();
  auto done = store->upsert(std::span(&item, 1));
  const auto took = std::chrono::steady_clock::now() - start;
  drain.join();
  ASSERT_TRUE(done) << done.error().to_string();
  EXPECT_LT(took, std::chrono::milliseconds(1500)) << "a writer waited for a drain of the secondary";
  store->test_set_on_drain_taken({});
  auto drained = store->drain_outbox();
  ASSERT_TRUE(drained) << drained.error().to_string();
  auto secondary = store->secondary();
  ASSERT_TRUE(secondary);
  const auto ch = vectors_of(**secondary);
  EXPECT_TRUE(ch.contains("s:new") && ch.contains("s:waiting"));
}

TEST_F(Issue21Dual, Item10AnOutboxRowOfTheWrongShapeGivesAnErrorAndStays) {
  auto store = open_dual(false);
  ASSERT_TRUE(store);
  auto conn = pg::Connection::connect(m_db);
  ASSERT_TRUE(conn);
  pg::Param p[] = {pg::Param::text(m_cfg.table)};
  ASSERT_TRUE(conn->exec_params("INSERT INTO vstore_outbox (table_name, target, op, uri, payload) VALUES ($1, 'chromadb', "
                                "'upsert', 'b:1', '{\"article\": {\"uri\": \"b:1\"}, \"embedding\": [\"x\", 1, 1, 1, 1, 1, 1, "
                                "1], \"model\": \"m\"}')",
                                p));
  Result<std::int64_t> drained = fail(ErrorCode::internal, "not run");
  EXPECT_NO_THROW(drained = store->drain_outbox());
  ASSERT_FALSE(drained) << "a drain applied a row whose embedding holds a string";
  EXPECT_EQ(drained.error().code(), ErrorCode::corruption) << drained.error().to_string();
  auto pending = store->outbox_pending();
  ASSERT_TRUE(pending);
  EXPECT_EQ(*pending, 1);
}

}  // namespace
}  // namespace vstore
