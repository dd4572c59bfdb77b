// SPDX-License-Identifier: Apache-2.0
// The OpenAI-compatible client against a real local HTTP server that speaks the embeddings
// protocol: batching, ordering by index, retries on 429/5xx with Retry-After, no retry on 4xx,
// timeouts, dimension checks, and the key never appearing in errors.
#include <httplib.h>

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "embed/embed_local.hpp"
#include "embed/embed_openai.hpp"

namespace vstore::embed {
namespace {

using nlohmann::json;
constexpr int k_dim = 64;
constexpr const char* k_key = "sk-test-secret-key";

class EmbeddingsServer {
 public:
  /// Answers with `reference`'s vectors (the hash embedder by default).
  explicit EmbeddingsServer(std::unique_ptr<Embedder> reference = make_hash_embedder(k_dim))
      : m_reference(std::move(reference)) {
    m_server.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); });
    m_port = m_server.bind_to_any_port("127.0.0.1");
    m_thread = std::thread([this] { m_server.listen_after_bind(); });
    while (!m_server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~EmbeddingsServer() {
    m_server.stop();
    m_thread.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(m_port); }
  /// Scripted answers for the next requests: HTTP status (200 = real answer), Retry-After.
  void script(int status, std::string retry_after = "", int delay_ms = 0) {
    std::lock_guard lock(m_mutex);
    m_script.push_back({status, std::move(retry_after), delay_ms});
  }
  int requests() const { return m_requests; }
  std::vector<json> bodies() {
    std::lock_guard lock(m_mutex);
    return m_bodies;
  }
  int answer_dim = k_dim;
  Embedder& reference() { return *m_reference; }

 private:
  struct Step {
    int status;
    std::string retry_after;
    int delay_ms;
  };
  void handle(const httplib::Request& req, httplib::Response& res) {
    ++m_requests;
    Step step{200, "", 0};
    {
      std::lock_guard lock(m_mutex);
      if (!m_script.empty()) {
        step = m_script.front();
        m_script.pop_front();
      }
      m_bodies.push_back(json::parse(req.body, nullptr, false));
    }
    if (step.delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(step.delay_ms));
    if (req.get_header_value("Authorization") != std::string("Bearer ") + k_key) {
      res.status = 401;
      res.set_content(R"({"error": {"message": "bad key"}})", "application/json");
      return;
    }
    if (step.status != 200) {
      res.status = step.status;
      if (!step.retry_after.empty()) res.set_header("Retry-After", step.retry_after);
      res.set_content(R"({"error": {"message": "scripted failure"}})", "application/json");
      return;
    }
    const json body = json::parse(req.body);
    std::vector<std::string> inputs = body["input"].get<std::vector<std::string>>();
    auto vectors = m_reference->embed(inputs);
    json data = json::array();
    // Answer in reverse order: the client must sort by index.
    for (std::size_t i = inputs.size(); i-- > 0;) {
      std::vector<float> v = (*vectors)[i];
      v.resize(static_cast<std::size_t>(answer_dim), 0.01f);
      data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", v}});
    }
    res.set_content(json{{"object", "list"}, {"data", data}, {"model", body["model"]}}.dump(), "application/json");
  }

  std::unique_ptr<Embedder> m_reference;
  httplib::Server m_server;
  int m_port = 0;
  std::thread m_thread;
  std::mutex m_mutex;
  std::deque<Step> m_script;
  std::vector<json> m_bodies;
  std::atomic<int> m_requests{0};
};

OpenAIOptions options_for(const EmbeddingsServer& server) {
  OpenAIOptions opt;
  opt.base_url = server.url();
  opt.api_key = k_key;
  opt.model = "text-embedding-3-small";
  opt.dimension = k_dim;
  opt.backoff_base = std::chrono::milliseconds(10);
  opt.backoff_max = std::chrono::milliseconds(2000);
  opt.max_attempts = 3;
  opt.timeout = std::chrono::seconds(5);
  return opt;
}

std::vector<std::string> texts(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back("article number " + std::to_string(i) + " about markets");
  return out;
}

TEST(OpenAIClient, BatchesRequestsAndReturnsVectorsInInputOrder) {
  EmbeddingsServer server;
  auto embedder = make_openai_embedder(options_for(server));
  ASSERT_TRUE(embedder) << embedder.error().to_string();
  const auto input = texts(600);
  auto out = (*embedder)->embed(input);
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(server.requests(), 3);  // 256 + 256 + 88
  auto expected = server.reference().embed(input);
  ASSERT_EQ(out->size(), 600u);
  for (std::size_t i = 0; i < out->size(); ++i) {
    double dot = 0;
    for (int d = 0; d < k_dim; ++d) dot += (*out)[i][static_cast<std::size_t>(d)] * (*expected)[i][static_cast<std::size_t>(d)];
    EXPECT_NEAR(dot, 1.0, 1e-5) << i;
  }
  const auto bodies = server.bodies();
  EXPECT_EQ(bodies[0]["model"], "text-embedding-3-small");
  EXPECT_EQ(bodies[0]["dimensions"], k_dim);
  EXPECT_EQ(bodies[0]["input"].size(), 256u);
  EXPECT_EQ((*embedder)->model(), "text-embedding-3-small");
}

TEST(OpenAIClient, RetriesTooManyRequestsHonouringRetryAfter) {
  EmbeddingsServer server;
  server.script(429, "1");
  auto embedder = make_openai_embedder(options_for(server));
  const auto start = std::chrono::steady_clock::now();
  auto out = (*embedder)->embed(texts(3));
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(server.requests(), 2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(950));
}

TEST(OpenAIClient, RetriesServerErrorsThenSucceeds) {
  EmbeddingsServer server;
  server.script(503);
  server.script(500);
  auto embedder = make_openai_embedder(options_for(server));
  auto out = (*embedder)->embed(texts(2));
  ASSERT_TRUE(out) << out.error().to_string();
  EXPECT_EQ(server.requests(), 3);
}

TEST(OpenAIClient, GivesUpAfterMaxAttemptsAsUnavailable) {
  EmbeddingsServer server;
  for (int i = 0; i < 3; ++i) server.script(502);
  auto embedder = make_openai_embedder(options_for(server));
  auto out = (*embedder)->embed(texts(1));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::unavailable);
  EXPECT_NE(out.error().message().find("HTTP 502"), std::string::npos) << out.error().message();
  EXPECT_EQ(server.requests(), 3);
}

TEST(OpenAIClient, DoesNotRetryClientErrorsAndNeverShowsTheKey) {
  EmbeddingsServer server;
  server.script(400);
  auto embedder = make_openai_embedder(options_for(server));
  auto out = (*embedder)->embed(texts(1));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(out.error().message().find("scripted failure"), std::string::npos) << out.error().message();
  EXPECT_EQ(out.error().message().find(k_key), std::string::npos);
  EXPECT_EQ(server.requests(), 1);
  auto wrong_key = options_for(server);
  wrong_key.api_key = "sk-wrong-key";
  auto other = make_openai_embedder(wrong_key);
  auto denied = (*other)->embed(texts(1));
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().message().find("401"), std::string::npos);
  EXPECT_EQ(denied.error().message().find("sk-wrong-key"), std::string::npos);
}

TEST(OpenAIClient, ASlowServerTimesOut) {
  EmbeddingsServer server;
  server.script(200, "", 2500);
  server.script(200, "", 2500);
  auto opt = options_for(server);
  opt.timeout = std::chrono::seconds(1);
  opt.max_attempts = 2;
  auto embedder = make_openai_embedder(opt);
  auto out = (*embedder)->embed(texts(1));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::timeout) << out.error().to_string();
}

TEST(OpenAIClient, AnswersOfAnotherDimensionAreRefusedNamingBoth) {
  EmbeddingsServer server;
  server.answer_dim = 32;
  auto embedder = make_openai_embedder(options_for(server));
  auto out = (*embedder)->embed(texts(1));
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), ErrorCode::corruption);
  EXPECT_NE(out.error().message().find("32"), std::string::npos);
  EXPECT_NE(out.error().message().find("64"), std::string::npos);
}

TEST(OpenAIClient, BlankTextsAndMissingKeyAreRefusedBeforeAnyRequest) {
  EmbeddingsServer server;
  auto embedder = make_openai_embedder(options_for(server));
  std::vector<std::string> in = {"fine", "   "};
  auto out = (*embedder)->embed(in);
  ASSERT_FALSE(out);
  EXPECT_NE(out.error().message().find("text 1"), std::string::npos);
  EXPECT_EQ(server.requests(), 0);
  auto no_key = options_for(server);
  no_key.api_key.clear();
  EXPECT_FALSE(make_openai_embedder(no_key));
}

TEST(OpenAIClient, LongTextsAreCutAtASpaceLikeTheOldCode) {
  std::string text;
  while (text.size() < 30000) text += "word ";
  const std::string cut = truncate_for_openai(text);
  EXPECT_LE(cut.size(), 24000u);
  EXPECT_GT(cut.size(), 19200u);
  EXPECT_NE(cut.back(), ' ');
  EXPECT_EQ(truncate_for_openai("short"), "short");
}

// EMBEDDING_PROVIDER=openai end to end: make_embedder() from a Config against a server that
// answers with vstore's own all-MiniLM-L6-v2 engine gives exactly the local engine's vectors.
TEST(OpenAIClient, ConfiguredProviderGetsTheServersLocalEngineVectorsExactly) {
  const char* model_dir = std::getenv("VSTORE_TEST_MODEL_DIR");
  ASSERT_NE(model_dir, nullptr) << "VSTORE_TEST_MODEL_DIR is set by CTest";
  auto served = make_local_embedder(model_dir, "all-MiniLM-L6-v2", 384, 1);
  ASSERT_TRUE(served) << served.error().to_string();
  auto local = make_local_embedder(model_dir, "all-MiniLM-L6-v2", 384, 1);
  ASSERT_TRUE(local) << local.error().to_string();
  EmbeddingsServer server(std::move(*served));
  server.answer_dim = 384;

  Config cfg;
  cfg.embedding_provider = "openai";
  cfg.embedding_model = "all-MiniLM-L6-v2";
  cfg.embedding_dim = 384;
  cfg.openai_base_url = server.url();
  cfg.openai_api_key = k_key;
  auto client = make_embedder(cfg);
  ASSERT_TRUE(client) << client.error().to_string();
  EXPECT_EQ((*client)->model(), "all-MiniLM-L6-v2");
  const std::vector<std::string> input = {"Oil prices rose after the OPEC meeting",
                                          "The central bank cut interest rates",
                                          "Cocoa harvest in Bahia improves after the rains"};
  auto got = (*client)->embed(input);
  ASSERT_TRUE(got) << got.error().to_string();
  auto want = (*local)->embed(input);
  ASSERT_TRUE(want);
  ASSERT_EQ(got->size(), input.size());
  for (std::size_t i = 0; i < input.size(); ++i) EXPECT_EQ((*got)[i], (*want)[i]) << input[i];
  // Not a text-embedding-3 model: no "dimensions" field is sent.
  EXPECT_FALSE(server.bodies().front().contains("dimensions"));
}

}  // namespace
}  // namespace vstore::embed
