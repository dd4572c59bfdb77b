// SPDX-License-Identifier: Apache-2.0
// Issue 21 for the Chroma backend. Item 6: a collection records its embedding model and refuses
// another (real Chroma server). Item 10: answers of the wrong shape from a server (a small
// httplib server on a free loopback port) give an Error, never an exception. Item 19: the store
// and the migration reader resolve a collection's space by the same rule.
#include <gtest/gtest.h>

#include <httplib.h>

#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chroma/chroma_remote.hpp"
#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using testing::ChromaServer;

constexpr int k_dim = 8;
constexpr const char* k_collections = "/api/v2/tenants/default_tenant/databases/default_database/collections";
constexpr const char* k_id = "0b5f3c0e-1d2a-4c4b-9f6e-7a8b9c0d1e2f";

Config chroma_config(const std::string& url, const std::string& collection) {
  Config cfg;
  cfg.backend = BackendKind::chromadb;
  cfg.chroma_url = url;
  cfg.chroma_collection = collection;
  cfg.embedding_dim = k_dim;
  cfg.embedding_provider = "hash";
  return cfg;
}

ArticleVector item(const std::string& uri, const std::string& model, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.embedding.resize(k_dim);
  for (float& f : a.embedding) f = dist(rng);
  a.embedding_model = model;
  return a;
}

// A Chroma look-alike that answers each path with a scripted JSON body.
class FakeChroma {
 public:
  FakeChroma() {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(m_mutex);
      auto it = m_answers.find(req.path);
      if (it == m_answers.end()) {
        res.status = 404;
        res.set_content(R"({"error":"NotFoundError","message":"no such path"})", "application/json");
        return;
      }
      res.status = it->second.first;
      res.set_content(it->second.second, "application/json");
    };
    m_server.Get(".*", handler);
    m_server.Post(".*", handler);
    m_server.Put(".*", handler);
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    while (!m_server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    answer("/api/v2/heartbeat", R"({"nanosecond heartbeat": 1})");
    answer("/api/v2/pre-flight-checks", R"({"max_batch_size": 100})");
    answer("/api/v2/version", R"("1.0.0")");
  }
  ~FakeChroma() {
    m_server.stop();
    m_thread.join();
  }
  FakeChroma(const FakeChroma&) = delete;
  FakeChroma& operator=(const FakeChroma&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
  void answer(const std::string& path, std::string body, int status = 200) {
    std::lock_guard lock(m_mutex);
    m_answers[path] = {status, std::move(body)};
  }
  // The collection `name` described by `description` (an id is added).
  void collection(const std::string& name, json description) {
    description["id"] = k_id;
    description["name"] = name;
    answer(std::string(k_collections) + "/" + name, description.dump());
  }
  // A record operation's answer on the collection.
  void record(const std::string& op, const std::string& body) {
    answer(std::string(k_collections) + "/" + k_id + "/" + op, body);
  }

 private:
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
  std::mutex m_mutex;
  std::map<std::string, std::pair<int, std::string>> m_answers;
};

const json k_default_hnsw = {{"space", "l2"},         {"ef_construction", 100}, {"ef_search", 100},
                             {"max_neighbors", 16},   {"resize_factor", 1.2},   {"sync_threshold", 1000}};

// ---- item 6 ---------------------------------------------------------------------------------

TEST(Issue21Chroma, Item6TheCollectionRecordsItsModelAndRefusesAnother) {
  const Config cfg = chroma_config(ChromaServer::shared().url(), testing::unique_collection("model"));
  chroma::ChromaOptions options;
  options.create_collection = true;
  auto store = chroma::ChromaStore::open(cfg, options);
  ASSERT_TRUE(store) << store.error().to_string();
  const std::vector<ArticleVector> first = {item("m:1", "model-a", 1), item("m:2", "model-a", 2)};
  ASSERT_TRUE((*store)->upsert(first));

  const std::vector<std::string> ids = {"m:1", "m:2", "m:absent"};
  auto models = (*store)->vector_models(ids);
  ASSERT_TRUE(models) << models.error().to_string();
  EXPECT_EQ(*models, (std::map<std::string, std::string>{{"m:1", "model-a"}, {"m:2", "model-a"}}))
      << "vector_models must give the collection's model, or ingest never re-embeds after a model change";

  const ArticleVector other = item("m:3", "model-b", 3);
  auto refused = (*store)->upsert(std::span(&other, 1));
  ASSERT_FALSE(refused) << "vectors of another model were mixed into the collection";
  EXPECT_EQ(refused.error().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(refused.error().message(), fmt::format("chroma collection {} holds vectors of model model-a, refusing "
                                                   "vectors of model model-b",
                                                   cfg.chroma_collection));
  SearchOptions query;
  query.top_k = 2;
  query.model = "model-b";
  auto search = (*store)->search(first[0].embedding, query);
  ASSERT_FALSE(search) << "a query of another model was answered";
  EXPECT_EQ(search.error().message(), fmt::format("the query was embedded with model model-b, but chroma collection {} "
                                                  "holds vectors of model model-a",
                                                  cfg.chroma_collection));
  query.model = "model-a";
  EXPECT_TRUE((*store)->search(first[0].embedding, query));

  // The model lives on the collection: a store opened later (another process) knows it.
  auto again = chroma::ChromaStore::open(cfg);
  ASSERT_TRUE(again) << again.error().to_string();
  auto refused_again = (*again)->upsert(std::span(&other, 1));
  ASSERT_FALSE(refused_again);
  EXPECT_EQ(refused_again.error().message(), refused.error().message());
  auto health = (*again)->health();
  ASSERT_TRUE(health);
  EXPECT_EQ((*health)["embedding_model"], "model-a");
}

TEST(Issue21Chroma, Item6PgvectorRefusesAnotherModelWithTheSameWords) {
  const std::string db = testing::PgServer::instance().create_database("i21model");
  Config cfg = testing::test_config(db, k_dim);
  ASSERT_TRUE(schema_up(db, cfg));
  auto store = open_pg_store(db, cfg);
  ASSERT_TRUE(store) << store.error().to_string();
  const ArticleVector first = item("p:1", "model-a", 1);
  ASSERT_TRUE((*store)->upsert(std::span(&first, 1)));
  const ArticleVector other = item("p:2", "model-b", 2);
  auto refused = (*store)->upsert(std::span(&other, 1));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message(),
            fmt::format("table {} holds vectors of model model-a, refusing vectors of model model-b", cfg.table));
  store->reset();
  testing::PgServer::instance().drop_database(db);
}

// ---- item 19 --------------------------------------------------------------------------------

// The store and the migration reader give one space for a collection, by the rule of
// ARCHITECTURE.md: the stored configuration, unless it is all defaults and hnsw:space differs;
// else hnsw:space; else l2.
TEST(Issue21Chroma, Item19TheStoreAndTheReaderResolveTheSpaceByOneRule) {
  FakeChroma fake;
  json config_only_hnsw = k_default_hnsw;
  config_only_hnsw["space"] = "ip";
  fake.collection("configonly", {{"configuration_json", {{"hnsw", config_only_hnsw}}}, {"metadata", nullptr}});
  // A collection from before 1.x configurations: an all-default l2 config beside hnsw:space.
  fake.collection("legacy", {{"configuration_json", {{"hnsw", k_default_hnsw}}}, {"metadata", {{"hnsw:space", "cosine"}}}});
  fake.collection("nothing", {{"configuration_json", nullptr}, {"metadata", nullptr}});
  const std::map<std::string, std::string> expected = {{"configonly", "ip"}, {"legacy", "cosine"}, {"nothing", "l2"}};
  chroma::RemoteOptions remote_options;
  remote_options.http.base_url = fake.url();
  auto remote = chroma::ChromaRemote::open(remote_options);
  ASSERT_TRUE(remote) << remote.error().to_string();
  for (const auto& [name, space] : expected) {
    auto store = chroma::ChromaStore::open(chroma_config(fake.url(), name));
    ASSERT_TRUE(store) << name << ": " << store.error().to_string();
    auto info = remote->collection(name);
    ASSERT_TRUE(info) << name << ": " << info.error().to_string();
    EXPECT_EQ(info->space, space) << name;
    const chroma::Space store_space = (*store)->test_space();
    const std::string store_name = store_space == chroma::Space::cosine ? "cosine"
                                   : store_space == chroma::Space::ip   ? "ip"
                                                                        : "l2";
    EXPECT_EQ(store_name, space) << name << ": the store and the reader disagree on the space";
  }
}

// ---- item 10 --------------------------------------------------------------------------------

class Issue21ChromaHostile : public ::testing::Test {
 protected:
  void SetUp() override {
    json hnsw = k_default_hnsw;
    hnsw["space"] = "cosine";
    m_fake.collection("hostile", {{"configuration_json", {{"hnsw", hnsw}}}, {"metadata", nullptr}, {"dimension", k_dim}});
    auto store = chroma::ChromaStore::open(chroma_config(m_fake.url(), "hostile"));
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
  }
  Result<std::vector<SearchHit>> search() {
    SearchOptions options;
    options.top_k = 2;
    const std::vector<float> query(k_dim, 0.5f);
    return m_store->search(query, options);
  }

  FakeChroma m_fake;
  std::unique_ptr<chroma::ChromaStore> m_store;
};

TEST_F(Issue21ChromaHostile, Item10QueryAnswersOfTheWrongShapeGiveAnError) {
  const std::vector<std::string> answers = {
      R"({"ids": [[1, 2]], "distances": [[0.1, 0.2]], "metadatas": [[{}, {}]]})",
      R"({"ids": [["a", "b"]], "distances": [["near", 0.2]], "metadatas": [[{}, {}]]})",
      R"({"ids": [["a"]], "distances": [[1e999]], "metadatas": [[{}]]})",
      R"({"ids": [["a"]], "distances": [[0.1]], "metadatas": [["not an object"]]})",
      R"({"ids": "a", "distances": [[0.1]]})",
      R"([1, 2, 3])",
  };
  for (const auto& body : answers) {
    m_fake.record("query", body);
    Result<std::vector<SearchHit>> hits = fail(ErrorCode::internal, "not run");
    EXPECT_NO_THROW(hits = search()) << body;
    EXPECT_FALSE(hits) << "accepted: " << body;
  }
}

TEST_F(Issue21ChromaHostile, Item10L2QueryEmbeddingsOfTheWrongShapeGiveAnError) {
  json hnsw = k_default_hnsw;
  m_fake.collection("hostile-l2", {{"configuration_json", {{"hnsw", hnsw}}}, {"metadata", nullptr}});
  auto store = chroma::ChromaStore::open(chroma_config(m_fake.url(), "hostile-l2"));
  ASSERT_TRUE(store) << store.error().to_string();
  const std::vector<std::string> answers = {
      R"({"ids": [["a"]], "distances": [[0.1]], "embeddings": [[["x", 1, 1, 1, 1, 1, 1, 1]]]})",
      R"({"ids": [["a"]], "distances": [[0.1]], "embeddings": [["not a vector"]]})",
      R"({"ids": [["a"]], "distances": [[0.1]], "embeddings": [[[1e300, 1, 1, 1, 1, 1, 1, 1]]]})",
  };
  SearchOptions options;
  options.top_k = 1;
  const std::vector<float> query(k_dim, 0.5f);
  for (const auto& body : answers) {
    m_fake.record("query", body);
    Result<std::vector<SearchHit>> hits = fail(ErrorCode::internal, "not run");
    EXPECT_NO_THROW(hits = (*store)->search(query, options)) << body;
    EXPECT_FALSE(hits) << "accepted: " << body;
  }
}

TEST_F(Issue21ChromaHostile, Item10GetAndCountAnswersOfTheWrongShapeGiveAnError) {
  const std::vector<std::string> gets = {
      R"({"ids": [7], "embeddings": [[1, 1, 1, 1, 1, 1, 1, 1]], "metadatas": [{}]})",
      R"({"ids": ["a"], "embeddings": [["1", 1, 1, 1, 1, 1, 1, 1]], "metadatas": [{}]})",
      R"({"ids": ["a"], "embeddings": "none"})",
      R"({"ids": ["a"], "embeddings": [[1, 1, 1, 1, 1, 1, 1, 1]], "metadatas": [7]})",
  };
  for (const auto& body : gets) {
    m_fake.record("get", body);
    Result<VectorBatch> batch = fail(ErrorCode::internal, "not run");
    EXPECT_NO_THROW(batch = m_store->get_vectors(std::nullopt, std::nullopt)) << body;
    EXPECT_FALSE(batch) << "accepted: " << body;
    Result<std::map<std::string, std::string>> models = fail(ErrorCode::internal, "not run");
    const std::vector<std::string> ids = {"a"};
    EXPECT_NO_THROW(models = m_store->vector_models(ids)) << body;
  }
  for (const std::string body : {R"("12")", "-5", "18446744073709551615", "1e30", "{}"}) {
    m_fake.record("count", body);
    Result<StoreCounts> counts = fail(ErrorCode::internal, "not run");
    EXPECT_NO_THROW(counts = m_store->count()) << body;
    EXPECT_FALSE(counts) << "accepted a count of " << body;
  }
}

TEST(Issue21ChromaHostileOpen, Item10CollectionDescriptionsOfTheWrongShapeGiveAnError) {
  FakeChroma fake;
  fake.collection("dimtext", {{"dimension", "8"}});
  fake.collection("dimhuge", {{"dimension", 18446744073709551615ull}});
  fake.collection("spacenum", {{"configuration_json", {{"hnsw", {{"space", 3}}}}}});
  fake.collection("mdarray", {{"metadata", json::array({1, 2})}});
  fake.answer(std::string(k_collections) + "/noid", R"({"id": 12, "name": "noid"})");
  for (const std::string name : {"dimtext", "dimhuge", "spacenum", "mdarray", "noid"}) {
    Result<std::unique_ptr<chroma::ChromaStore>> store = fail(ErrorCode::internal, "not run");
    EXPECT_NO_THROW(store = chroma::ChromaStore::open(chroma_config(fake.url(), name))) << name;
    EXPECT_FALSE(store) << "opened a collection described oddly: " << name;
    chroma::RemoteOptions remote_options;
    remote_options.http.base_url = fake.url();
    auto remote = chroma::ChromaRemote::open(remote_options);
    ASSERT_TRUE(remote);
    Result<chroma::CollectionInfo> info = fail(ErrorCode::internal, "not run");
    EXPECT_NO_THROW(info = remote->collection(name)) << name;
    EXPECT_FALSE(info) << "the reader accepted a collection described oddly: " << name;
  }
}

}  // namespace
}  // namespace vstore
