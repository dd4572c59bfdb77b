// SPDX-License-Identifier: Apache-2.0
// PgVectorStore against a real PostgreSQL + pgvector: upsert one and many, search with and
// without filters, similar, vectors, remove, count, health, model identity and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <thread>

#include "support/pg_fixture.hpp"
#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

using testing::PgServer;
using testing::sql_value;
using testing::test_config;

constexpr int k_dim = 8;

Embedding unit(std::initializer_list<float> v) {
  Embedding e(v);
  e.resize(k_dim, 0.0f);
  double n = 0;
  for (float f : e) n += static_cast<double>(f) * f;
  for (float& f : e) f = static_cast<float>(f / std::sqrt(n));
  return e;
}

ArticleVector item(const std::string& uri, Embedding vec, const std::string& topic = "AI",
                   const std::string& date = "2025-01-02T10:00:00Z") {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.article.summary = "Summary " + uri;
  a.article.topic = topic;
  a.article.news_source = "Reuters";
  a.article.publication_date = date;
  a.article.tags = std::vector<std::string>{"x", "y"};
  a.embedding = std::move(vec);
  a.embedding_model = "test-model";
  return a;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = PgServer::instance().create_database("store");
    m_cfg = test_config(m_db, k_dim);
    auto st = schema_up(m_db, m_cfg);
    ASSERT_TRUE(st) << st.error().to_string();
    auto store = open_pg_store(m_db, m_cfg);
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
  }
  void TearDown() override {
    m_store.reset();
    PgServer::instance().drop_database(m_db);
  }
  std::string m_db;
  Config m_cfg;
  std::unique_ptr<VectorStore> m_store;
};

TEST_F(StoreTest, UpsertOneThenSearchReturnsItWithCosineDistanceAndContractMetadata) {
  ArticleVector a = item("u:1", unit({1, 0, 0}));
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  auto hits = m_store->search(unit({1, 1, 0}), SearchOptions{});
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].id, "u:1");
  EXPECT_NEAR((*hits)[0].score, 1.0 - std::sqrt(0.5), 1e-6);
  const auto& md = (*hits)[0].metadata;
  EXPECT_EQ(md["title"], "Title u:1");
  EXPECT_EQ(md["uri"], "u:1");
  EXPECT_EQ(md["topic"], "AI");
  EXPECT_EQ(md["tags"], "x, y");
  EXPECT_EQ(md["publication_date_ts"], 1735812000);  // 2025-01-02T10:00Z: the time is kept (issue 21, 13b)
  EXPECT_EQ(md["publication_date"], "2025-01-02T10:00:00Z");
  EXPECT_FALSE(md.contains("sentiment"));  // absent fields are dropped
}

TEST_F(StoreTest, BatchUpsertUsesCopyAndSearchOrdersByDistance) {
  std::vector<ArticleVector> items;
  for (int i = 0; i < 100; ++i) {
    items.push_back(item("b:" + std::to_string(i), unit({1.0f, static_cast<float>(i) / 10.0f, 0.1f}),
                         i % 2 ? "odd" : "even"));
  }
  auto up = m_store->upsert(items);
  ASSERT_TRUE(up) << up.error().to_string();
  auto counts = m_store->count();
  ASSERT_TRUE(counts);
  EXPECT_EQ(counts->rows, 100);
  EXPECT_EQ(counts->with_embedding, 100);
  auto hits = m_store->search(unit({1, 0, 0.1f}), SearchOptions{.top_k = 5});
  ASSERT_TRUE(hits);
  ASSERT_EQ(hits->size(), 5u);
  EXPECT_EQ((*hits)[0].id, "b:0");
  for (std::size_t i = 1; i < hits->size(); ++i) EXPECT_LE((*hits)[i - 1].score, (*hits)[i].score);
}

// On the table vstore created, an upsert writes the article fields it gives (the row holds the
// text its vector was made from, issue 21 item 13c) and keeps the others.
TEST_F(StoreTest, UpsertOfExistingUriReplacesVectorWritesTheGivenFieldsAndKeepsTheOthers) {
  sql_value(m_db, "INSERT INTO articles (uri, title, sentiment, raw) VALUES ('k:1', 'Owned title', 'positive', 'body')");
  ArticleVector a = item("k:1", unit({0, 1, 0}));
  a.article.title = "Other title";
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  ArticleVector b = item("k:1", unit({0, 0, 1}));
  b.article.title = "Third title";
  ASSERT_TRUE(m_store->upsert(std::span(&b, 1)));
  EXPECT_EQ(sql_value(m_db, "SELECT title || '|' || sentiment || '|' || raw FROM articles WHERE uri = 'k:1'"),
            "Third title|positive|body");
  auto hits = m_store->search(unit({0, 0, 1}), SearchOptions{.top_k = 1});
  ASSERT_TRUE(hits);
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_NEAR((*hits)[0].score, 0.0, 1e-6);
  EXPECT_EQ((*hits)[0].metadata["title"], "Third title");
  // And through the COPY path.
  std::vector<ArticleVector> many;
  for (int i = 0; i < 20; ++i) many.push_back(item("m:" + std::to_string(i), unit({1, 1, static_cast<float>(i)})));
  many.push_back(item("k:1", unit({1, 0, 1})));
  ASSERT_TRUE(m_store->upsert(many));
  EXPECT_EQ(sql_value(m_db, "SELECT title || '|' || sentiment || '|' || raw FROM articles WHERE uri = 'k:1'"),
            "Title k:1|positive|body");
  EXPECT_EQ(sql_value(m_db, "SELECT embedding::text FROM articles WHERE uri = 'k:1'"),
            sql_value(m_db, "SELECT l2_normalize('[1,0,1,0,0,0,0,0]'::vector)::text"));
}

// Two writers load overlapping batches at the same time through one store: each batch is first
// COPYed as if all its uris were new, so the second writer's COPY meets the first one's rows
// (a unique violation once the first commits) and must fall back to the look-up and merge.
// Every batch succeeds, every uri is stored once, with the vector of one of the two writers.
TEST_F(StoreTest, ConcurrentOverlappingBatchesAllSucceedWithEachUriOnce) {
  constexpr int k_rounds = 6;
  constexpr int k_batch = 400;
  auto batch_of = [&](int writer, int round) {
    std::vector<ArticleVector> out;
    // Writer 1's batch of round r overlaps writer 0's batches of rounds r and r + 1 by half.
    const int first = round * k_batch + writer * (k_batch / 2);
    for (int i = first; i < first + k_batch; ++i) {
      out.push_back(item("c:" + std::to_string(i), unit({1, static_cast<float>(writer), static_cast<float>(i)})));
    }
    return out;
  };
  std::vector<std::string> errors[2];
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (int r = 0; r < k_rounds; ++r) {
        auto batch = batch_of(w, r);
        auto done = m_store->upsert(batch);
        if (!done) errors[w].push_back(done.error().to_string());
      }
    });
  }
  for (auto& t : writers) t.join();
  EXPECT_TRUE(errors[0].empty()) << errors[0].front();
  EXPECT_TRUE(errors[1].empty()) << errors[1].front();
  const int distinct = k_rounds * k_batch + k_batch / 2;
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles WHERE uri LIKE 'c:%'"), std::to_string(distinct));
  EXPECT_EQ(sql_value(m_db, "SELECT count(DISTINCT uri) FROM articles WHERE uri LIKE 'c:%'"), std::to_string(distinct));
  // Each stored vector is one of the two writers' for that uri: [1, w, i] normalised.
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles WHERE uri LIKE 'c:%' AND embedding IS NOT NULL AND "
                            "abs((embedding::real[])[3] / (embedding::real[])[1] - substr(uri, 3)::float) < 1e-3 * "
                            "substr(uri, 3)::float + 1e-3 AND (embedding::real[])[2] / (embedding::real[])[1] IN (0, 1)"),
            std::to_string(distinct));
}

// A row vstore inserts keeps in vector_metadata only the keys without a column (the read path
// builds the rest from the columns); an existing row it updates keeps every key, so that a
// NULL column of the application's row still reads the upserted value. Both through the
// batch and the single-row path.
TEST_F(StoreTest, MetadataOfNewRowsComesFromColumnsAndExistingRowsKeepTheUpsertedKeys) {
  sql_value(m_db, "INSERT INTO articles (uri, sentiment) VALUES ('own:1', 'neutral'), ('own:2', 'neutral')");
  std::vector<ArticleVector> batch;
  for (int i = 0; i < 20; ++i) batch.push_back(item("new:" + std::to_string(i), unit({1, 0, static_cast<float>(i)})));
  batch.push_back(item("own:1", unit({0, 1, 0})));
  ASSERT_TRUE(m_store->upsert(batch));
  ArticleVector single = item("own:2", unit({0, 1, 1}));
  ASSERT_TRUE(m_store->upsert(std::span(&single, 1)));
  ArticleVector single_new = item("new:single", unit({0, 0, 1}));
  ASSERT_TRUE(m_store->upsert(std::span(&single_new, 1)));

  EXPECT_EQ(sql_value(m_db, "SELECT vector_metadata::text FROM articles WHERE uri = 'new:0'"), "{}");
  EXPECT_EQ(sql_value(m_db, "SELECT vector_metadata::text FROM articles WHERE uri = 'new:single'"), "{}");
  EXPECT_EQ(sql_value(m_db, "SELECT vector_metadata->>'title' FROM articles WHERE uri = 'own:1'"), "Title own:1");
  EXPECT_EQ(sql_value(m_db, "SELECT vector_metadata->>'title' FROM articles WHERE uri = 'own:2'"), "Title own:2");
  // (The table vstore created: the upsert wrote the title it gave into the NULL column.)
  EXPECT_EQ(sql_value(m_db, "SELECT string_agg(title, '|' ORDER BY uri) FROM articles WHERE uri IN ('own:1', 'own:2')"),
            "Title own:1|Title own:2");

  auto rows = m_store->get_vectors(100, std::nullopt);
  ASSERT_TRUE(rows) << rows.error().to_string();
  std::map<std::string, Metadata> md;
  for (std::size_t i = 0; i < rows->ids.size(); ++i) md[rows->ids[i]] = rows->metadatas[i];
  ASSERT_EQ(md.size(), 23u);
  const Metadata& fresh = md.at("new:0");
  EXPECT_EQ(fresh["title"], "Title new:0");
  EXPECT_EQ(fresh["summary"], "Summary new:0");
  EXPECT_EQ(fresh["topic"], "AI");
  EXPECT_EQ(fresh["news_source"], "Reuters");
  EXPECT_EQ(fresh["tags"], "x, y");
  EXPECT_EQ(fresh["uri"], "new:0");
  EXPECT_EQ(fresh["publication_date"], "2025-01-02T10:00:00Z");
  EXPECT_EQ(fresh["publication_date_ts"], 1735812000);
  EXPECT_EQ(md.at("new:single")["title"], "Title new:single");
  for (const char* own : {"own:1", "own:2"}) {
    EXPECT_EQ(md.at(own)["title"], std::string("Title ") + own) << own;
    EXPECT_EQ(md.at(own)["sentiment"], "neutral") << own;                // the column wins
  }
}

// New rows of a batch go straight into the table by binary COPY in the columns' own types;
// single upserts go through text parameters the server casts. Both must store the same values.
TEST_F(StoreTest, BatchOfNewRowsStoresExactlyWhatSingleUpsertsStore) {
  const std::vector<std::string> dates = {"1987-02-26T15:01:01Z",       "1987-02-26T15:01:01.5+02:00",
                                          "1987-02-26T15:01:01.123456-0330", "1987-02-26T15:01:01",
                                          "1987-02-26T23:59:59+14",      "26 Feb 1987",
                                          "not a date",                  "2024-02-29T00:00:00.000001Z",
                                          "1987-02-26T15:01:01.1234567Z"};
  std::vector<ArticleVector> batch;
  for (int i = 0; i < 36; ++i) {
    ArticleVector a = item("d:" + std::to_string(i), unit({1, static_cast<float>(i), 2}), "t" + std::to_string(i % 3),
                           dates[static_cast<std::size_t>(i) % dates.size()]);
    if (i % 4 == 0) a.article.analyzed = (i % 8 == 0);
    if (i % 5 == 0) a.article.extra = Metadata{{"dateline", "NEW YORK, Feb 26"}, {"n", i}};
    if (i % 6 == 0) a.article.raw = "Body with a quote ' and a backslash \\ and ünïcödé";
    if (i % 7 == 0) a.article.summary.reset();
    batch.push_back(std::move(a));
  }
  ASSERT_TRUE(m_store->upsert(batch));
  for (auto a : batch) {
    a.article.uri = "s" + a.article.uri.substr(1);
    ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  }
  // Every column but uri and the uri inside vector_metadata must agree row by row.
  EXPECT_EQ(sql_value(m_db,
                      "SELECT count(*) FROM articles d JOIN articles s ON s.uri = 's' || substr(d.uri, 2) "
                      "WHERE d.uri LIKE 'd:%' AND (d.title, d.summary, d.raw, d.topic, d.news_source, "
                      "d.publication_date, d.tags, d.analyzed, d.metadata, d.embedding_model, "
                      "d.vector_metadata - 'uri', d.publication_date_ts, d.embedding) IS NOT DISTINCT FROM "
                      "(s.title, s.summary, s.raw, s.topic, s.news_source, s.publication_date, s.tags, s.analyzed, "
                      "s.metadata, s.embedding_model, s.vector_metadata - 'uri', s.publication_date_ts, s.embedding)"),
            "36");
  EXPECT_EQ(sql_value(m_db, "SELECT publication_date FROM articles WHERE uri = 'd:1'"), "1987-02-26 13:01:01.5+00");
  EXPECT_EQ(sql_value(m_db, "SELECT publication_date FROM articles WHERE uri = 'd:2'"),
            "1987-02-26 18:31:01.123456+00");
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles WHERE uri LIKE 'd:%' AND analyzed IS NOT NULL"), "9");
}

TEST_F(StoreTest, FiltersOnColumnsDatesAndMetadataKeys) {
  std::vector<ArticleVector> items;
  for (int i = 0; i < 40; ++i) {
    auto a = item("f:" + std::to_string(i), unit({1.0f, static_cast<float>(i) / 40.0f}), i < 10 ? "AI" : "Energy",
                  i < 20 ? "2024-06-01T00:00:00Z" : "2025-06-01T00:00:00Z");
    items.push_back(a);
  }
  ASSERT_TRUE(m_store->upsert(items));
  auto where = [](const char* json) {
    auto f = parse_filter(std::string_view(json));
    EXPECT_TRUE(f) << json;
    return *f;
  };
  auto ids_of = [&](const char* json, int k) {
    auto hits = m_store->search(unit({1, 0}), SearchOptions{.top_k = k, .where = where(json)});
    EXPECT_TRUE(hits) << json << ": " << hits.error().to_string();
    std::vector<std::string> ids;
    for (const auto& h : *hits) ids.push_back(h.id);
    return ids;
  };
  EXPECT_EQ(ids_of(R"({"topic": "AI"})", 100).size(), 10u);
  EXPECT_EQ(ids_of(R"({"topic": {"$ne": "AI"}})", 100).size(), 30u);
  EXPECT_EQ(ids_of(R"({"topic": {"$in": ["AI", "Energy"]}})", 100).size(), 40u);
  EXPECT_EQ(ids_of(R"({"publication_date_ts": {"$gte": 1717200001}})", 100).size(), 20u);
  EXPECT_EQ(ids_of(R"({"$and": [{"topic": "Energy"}, {"publication_date_ts": {"$lt": 1717200001}}]})", 100).size(), 10u);
  EXPECT_EQ(ids_of(R"({"$or": [{"topic": "AI"}, {"publication_date": {"$gte": "2025-01-01"}}]})", 100).size(), 30u);
  EXPECT_EQ(ids_of(R"({"news_source": "Reuters", "topic": "AI"})", 100).size(), 10u);  // implicit $and
  EXPECT_EQ(ids_of(R"({"tags": "x, y"})", 3).size(), 3u);
  // A key that is not a column reads vector_metadata (here: absent everywhere).
  EXPECT_EQ(ids_of(R"({"dateline": "LONDON"})", 100).size(), 0u);
  EXPECT_EQ(ids_of(R"({"dateline": {"$ne": "LONDON"}})", 100).size(), 40u);
  // Ranking inside the filter is by distance.
  auto ai = ids_of(R"({"topic": "AI"})", 3);
  EXPECT_EQ(ai, (std::vector<std::string>{"f:0", "f:1", "f:2"}));
}

TEST_F(StoreTest, HostileFilterKeysAndValuesAreParametersNotSql) {
  ArticleVector a = item("h:1", unit({1}));
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  auto f = parse_filter(std::string_view(R"({"topic": "x'; DROP TABLE articles; --"})"));
  ASSERT_TRUE(f);
  auto hits = m_store->search(unit({1}), SearchOptions{.where = *f});
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_TRUE(hits->empty());
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles"), "1");
  auto bad_key = parse_filter(std::string_view(R"({"topic\"; DROP TABLE articles; --": "x"})"));
  EXPECT_FALSE(bad_key);
}

TEST_F(StoreTest, SimilarUsesStoredVectorAndExcludesItself) {
  std::vector<ArticleVector> items = {item("s:1", unit({1, 0})), item("s:2", unit({1, 0.1f})),
                                      item("s:3", unit({1, 0.5f})), item("s:4", unit({0, 1}))};
  ASSERT_TRUE(m_store->upsert(items));
  auto hits = m_store->similar("s:1", {.top_k = 2});
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 2u);
  EXPECT_EQ((*hits)[0].id, "s:2");
  EXPECT_EQ((*hits)[1].id, "s:3");
  auto missing = m_store->similar("nope", {.top_k = 2});
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::not_found);
  EXPECT_NE(missing.error().message().find("nope"), std::string::npos);
}

TEST_F(StoreTest, GetVectorsReturnsExactFloatsIdsAndMetadata) {
  std::vector<ArticleVector> items = {item("v:1", unit({1, 2, 3}), "AI"), item("v:2", unit({3, 2, 1}), "Energy")};
  ASSERT_TRUE(m_store->upsert(items));
  auto all = m_store->get_vectors(std::nullopt, std::nullopt);
  ASSERT_TRUE(all) << all.error().to_string();
  ASSERT_EQ(all->ids.size(), 2u);
  EXPECT_EQ(all->dim, static_cast<std::size_t>(k_dim));
  EXPECT_EQ(all->ids[0], "v:1");
  for (int d = 0; d < k_dim; ++d) EXPECT_EQ(all->data[static_cast<std::size_t>(d)], items[0].embedding[static_cast<std::size_t>(d)]);
  EXPECT_EQ(all->metadatas[1]["topic"], "Energy");
  auto f = parse_filter(std::string_view(R"({"topic": "Energy"})"));
  auto some = m_store->get_vectors(1, *f);
  ASSERT_TRUE(some);
  ASSERT_EQ(some->ids.size(), 1u);
  EXPECT_EQ(some->ids[0], "v:2");
}

TEST_F(StoreTest, RemoveClearsVectorsButKeepsArticleRows) {
  std::vector<ArticleVector> items = {item("r:1", unit({1})), item("r:2", unit({0, 1}))};
  ASSERT_TRUE(m_store->upsert(items));
  std::vector<std::string> ids = {"r:1", "r:9"};
  auto n = m_store->remove(ids);
  ASSERT_TRUE(n);
  EXPECT_EQ(*n, 1);
  auto counts = m_store->count();
  EXPECT_EQ(counts->rows, 2);
  EXPECT_EQ(counts->with_embedding, 1);
}

TEST_F(StoreTest, BadVectorsAreRefusedNamingTheValueAndNothingIsWritten) {
  auto wrong_dim = item("x:1", Embedding(5, 0.1f));
  auto r1 = m_store->upsert(std::span(&wrong_dim, 1));
  ASSERT_FALSE(r1);
  EXPECT_EQ(r1.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(r1.error().message().find("expected 8 dimensions, not 5"), std::string::npos) << r1.error().message();

  std::vector<ArticleVector> batch;
  for (int i = 0; i < 30; ++i) batch.push_back(item("n:" + std::to_string(i), unit({1, static_cast<float>(i)})));
  batch[17].embedding[3] = std::nanf("");
  auto r2 = m_store->upsert(batch);
  ASSERT_FALSE(r2);
  EXPECT_NE(r2.error().message().find("n:17"), std::string::npos) << r2.error().message();
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles"), "0");

  auto zero = item("z:1", Embedding(k_dim, 0.0f));
  EXPECT_FALSE(m_store->upsert(std::span(&zero, 1)));
  auto dup = std::vector<ArticleVector>{item("d:1", unit({1})), item("d:1", unit({0, 1}))};
  auto r3 = m_store->upsert(dup);
  ASSERT_FALSE(r3);
  EXPECT_NE(r3.error().message().find("d:1"), std::string::npos);

  auto q = m_store->search(Embedding(3, 1.0f), SearchOptions{});
  ASSERT_FALSE(q);
  EXPECT_NE(q.error().message().find("expected 8 dimensions, not 3"), std::string::npos);
  auto k = m_store->search(unit({1}), SearchOptions{.top_k = 0});
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().message().find("top_k"), std::string::npos);
}

TEST_F(StoreTest, AVectorOfAnotherModelIsRefusedNamingBothModels) {
  auto a = item("m:1", unit({1}));
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  auto b = item("m:2", unit({0, 1}));
  b.embedding_model = "other-model";
  auto r = m_store->upsert(std::span(&b, 1));
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("test-model"), std::string::npos);
  EXPECT_NE(r.error().message().find("other-model"), std::string::npos);
  auto q = m_store->search(unit({1}), SearchOptions{.model = "other-model"});
  ASSERT_FALSE(q);
  EXPECT_NE(q.error().message().find("other-model"), std::string::npos);
}

TEST_F(StoreTest, HealthReportsCountsIndexAndVersions) {
  auto a = item("h:1", unit({1}));
  ASSERT_TRUE(m_store->upsert(std::span(&a, 1)));
  sql_value(m_db, "INSERT INTO articles (uri) VALUES ('h:2')");
  auto h = m_store->health();
  ASSERT_TRUE(h) << h.error().to_string();
  EXPECT_EQ((*h)["healthy"], true);
  EXPECT_EQ((*h)["backend"], "pgvector");
  EXPECT_EQ((*h)["extension_version"], "0.8.0");
  EXPECT_EQ((*h)["rows"], 2);
  EXPECT_EQ((*h)["with_embedding"], 1);
  EXPECT_EQ((*h)["coverage_pct"], 50.0);
  EXPECT_EQ((*h)["embedding_model"], "test-model");
  EXPECT_EQ((*h)["index"]["type"], "hnsw");
  EXPECT_EQ((*h)["index"]["valid"], true);
  EXPECT_EQ((*h)["index"]["params"]["m"], 16);
  sql_value(m_db, "DROP INDEX articles_embedding_hnsw_idx");
  auto h2 = m_store->health();
  ASSERT_TRUE(h2);
  EXPECT_EQ((*h2)["healthy"], false);
  EXPECT_FALSE((*h2)["reasons"].empty());
}

TEST_F(StoreTest, OpenRefusesAnUnmigratedDatabase) {
  const std::string other = PgServer::instance().create_database("bare");
  auto store = open_pg_store(other, test_config(other, k_dim));
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::conflict);
  EXPECT_NE(store.error().message().find("vstore schema up"), std::string::npos);
  PgServer::instance().drop_database(other);
}

TEST_F(StoreTest, ArticleStoreEmbedsTextSkipsArticlesWithoutTextAndRunsAsync) {
  auto store = open_pg_store(m_db, m_cfg);
  ASSERT_TRUE(store);
  ArticleStore articles(std::move(*store), make_hash_embedder(k_dim), 2);
  Article with_text;
  with_text.uri = "t:1";
  with_text.title = "Cocoa prices rise in Bahia";
  Article without;
  without.uri = "t:2";
  without.title = "   ";
  auto r1 = articles.upsert_article(with_text);
  ASSERT_TRUE(r1) << r1.error().to_string();
  EXPECT_TRUE(*r1);
  auto r2 = articles.upsert_article(without);
  ASSERT_TRUE(r2);
  EXPECT_FALSE(*r2);
  auto fut = articles.search_articles_async("cocoa Bahia", 5);
  auto hits = fut.get();
  ASSERT_TRUE(hits) << hits.error().to_string();
  ASSERT_EQ(hits->size(), 1u);
  EXPECT_EQ((*hits)[0].id, "t:1");
  EXPECT_FALSE(articles.search_articles("   ", 5));
  articles.shutdown();
  auto after = articles.similar_articles_async("t:1", 2).get();
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code(), ErrorCode::unavailable);
}

}  // namespace
}  // namespace vstore
