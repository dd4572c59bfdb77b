// SPDX-License-Identifier: Apache-2.0
// Issue 25, item 1: `vstore serve`, the JSON API over the library, run as the real binary on a
// free loopback port against the embedded PostgreSQL: every route, each limit, bad input (nothing
// written), bearer-token auth, and a SIGTERM that finishes the request in flight.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "support/serve_process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

constexpr int k_articles = 200;

using vstore::testing::Answer;
using vstore::testing::call;
using vstore::testing::post;
using Server = vstore::testing::ServeProcess;

// One sample of a /metrics page: its name, its labels written back in order ("k=v,k=v"), value.
struct Sample {
  std::string name;
  std::string labels;
  double value = 0.0;
};

// Parses a Prometheus text page strictly: every line is a HELP, a TYPE, or a sample whose
// family was typed before it; label values are quoted with \\, \" and \n escapes. Fails the
// test at the first line that is none of these.
std::vector<Sample> parse_metrics(const std::string& page) {
  std::vector<Sample> out;
  std::map<std::string, std::string> types;
  const std::regex help(R"(^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+$)");
  const std::regex type(R"(^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$)");
  const std::regex sample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? ([-+]?(?:[0-9.eE+-]+|Inf|NaN))$)");
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, help)) continue;
    if (std::regex_match(line, m, type)) {
      EXPECT_FALSE(types.contains(m[1])) << "TYPE twice: " << line;
      types[m[1]] = m[2];
      continue;
    }
    if (!std::regex_match(line, m, sample)) {
      ADD_FAILURE() << "not a Prometheus text line: \"" << line << "\"";
      continue;
    }
    std::string family = m[1];
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (family.ends_with(suffix) && types.contains(family.substr(0, family.size() - std::strlen(suffix))) &&
          types[family.substr(0, family.size() - std::strlen(suffix))] == "histogram") {
        family = family.substr(0, family.size() - std::strlen(suffix));
      }
    }
    EXPECT_TRUE(types.contains(family)) << "a sample before its TYPE: " << line;
    const std::string v = m[4];
    out.push_back({m[1], m[3], v == "+Inf" ? INFINITY : std::stod(v)});
  }
  return out;
}

// The value of `name` with exactly `labels`, or 0 when the page has no such sample (a counter
// not yet counted).
double metric(const std::vector<Sample>& page, const std::string& name, const std::string& labels = "") {
  for (const auto& s : page) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return 0.0;
}

bool has_metric(const std::vector<Sample>& page, const std::string& name) {
  return std::any_of(page.begin(), page.end(), [&](const Sample& s) { return s.name == name; });
}

class Issue25Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_tmp = std::make_unique<vstore::testing::TempDir>();
    chmod(s_tmp->path.c_str(), 0755);
    s_db = vstore::testing::PgServer::instance().create_database("issue25serve");
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    ASSERT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA must be set (by CTest)";
    std::ifstream in(fs::path(shared) / "reuters21578" / "articles.jsonl");
    std::ofstream out(s_tmp->path / "articles.jsonl");
    std::string line;
    int kept = 0;
    while (kept < k_articles && std::getline(in, line)) {
      const json a = json::parse(line);
      if (!a["topic"].is_string() || !a["title"].is_string()) continue;
      out << line << "\n";
      ++kept;
    }
    out.close();
    ASSERT_EQ(vstore::testing::run_vstore(s_tmp->path.string(), "schema up", env()).code, 0);
    CmdResult ingested = vstore::testing::run_vstore(s_tmp->path.string(), "ingest articles.jsonl", env());
    ASSERT_EQ(ingested.code, 0) << ingested.err;
    s_server = std::make_unique<Server>(s_tmp->path, env(), "--max-body-bytes 200000 --max-batch 5 --max-top-k 50");
    ASSERT_GT(s_server->port(), 0) << s_server->out() << s_server->log();
  }
  static void TearDownTestSuite() {
    s_server.reset();
    vstore::testing::PgServer::instance().drop_database(s_db);
    s_tmp.reset();
  }
  static std::string env() { return "DATABASE_URL='" + s_db + "'"; }
  static int port() { return s_server->port(); }
  static std::string rows() { return sql_value(s_db, "SELECT count(*) || '/' || count(embedding) FROM articles"); }

  static std::unique_ptr<vstore::testing::TempDir> s_tmp;
  static std::string s_db;
  static std::unique_ptr<Server> s_server;
};

std::unique_ptr<vstore::testing::TempDir> Issue25Serve::s_tmp;
std::string Issue25Serve::s_db;
std::unique_ptr<Server> Issue25Serve::s_server;

TEST_F(Issue25Serve, SearchByTextAndVectorWithFilterAndExplainAgreeWithTheCli) {
  Answer a = post(port(), "/v1/search", {{"query", "cocoa harvest in Bahia"}, {"top_k", 5}});
  ASSERT_EQ(a.status, 200) << a.raw;
  ASSERT_EQ(a.body["results"].size(), 5U);
  const json cli = json::parse(vstore::testing::run_vstore(s_tmp->path.string(), "search 'cocoa harvest in Bahia' --top-k 5 --json", env()).out);
  ASSERT_EQ(cli.size(), 5U);
  for (std::size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(a.body["results"][i]["id"], cli[i]["id"]);
    EXPECT_EQ(a.body["results"][i]["score"], cli[i]["score"]);
  }
  // By vector: the stored vector of the first hit finds it first, at distance 0.
  const std::string first = a.body["results"][0]["id"];
  Answer v = post(port(), "/v1/vectors", {{"where", {{"uri", first}}}});
  ASSERT_EQ(v.status, 200) << v.raw;
  ASSERT_EQ(v.body["ids"].size(), 1U);
  Answer by_vector = post(port(), "/v1/search", {{"vector", v.body["vectors"][0]}, {"top_k", 3}});
  ASSERT_EQ(by_vector.status, 200) << by_vector.raw;
  EXPECT_EQ(by_vector.body["results"][0]["id"], first);
  EXPECT_LT(std::abs(by_vector.body["results"][0]["score"].get<double>()), 1e-5);
  // A filter, and the plan.
  Answer filtered = post(port(), "/v1/search", {{"query", "prices"}, {"where", {{"topic", "cocoa"}}}, {"explain", true}});
  ASSERT_EQ(filtered.status, 200) << filtered.raw;
  ASSERT_FALSE(filtered.body["results"].empty());
  for (const auto& h : filtered.body["results"]) EXPECT_EQ(h["metadata"]["topic"], "cocoa");
  EXPECT_TRUE(filtered.body["explain"].contains("plan")) << filtered.body["explain"];
}

TEST_F(Issue25Serve, SimilarUpsertBatchVectorsProjectionAndHealth) {
  Answer sim = post(port(), "/v1/similar", {{"uri", "reuters21578:1"}, {"top_k", 4}});
  ASSERT_EQ(sim.status, 200) << sim.raw;
  ASSERT_EQ(sim.body["results"].size(), 4U);
  for (const auto& h : sim.body["results"]) EXPECT_NE(h["id"], "reuters21578:1");
  EXPECT_EQ(post(port(), "/v1/similar", {{"uri", "no:such"}}).status, 404);

  Answer one = post(port(), "/v1/articles", {{"article", {{"uri", "serve:1"}, {"title", "Zinc smelter strike ends"}, {"topic", "zinc"}}}});
  ASSERT_EQ(one.status, 200) << one.raw;
  EXPECT_EQ(one.body["stored"], true);
  Answer found = post(port(), "/v1/search", {{"query", "Zinc smelter strike ends"}, {"top_k", 1}});
  EXPECT_EQ(found.body["results"][0]["id"], "serve:1");
  Answer batch = post(port(), "/v1/articles/batch",
                      {{"articles", {{{"uri", "serve:2"}, {"title", "Nickel output rises"}}, {{"uri", "serve:3"}, {"summary", "Tin talks resume"}},
                                     {{"uri", "serve:4"}}}}});
  ASSERT_EQ(batch.status, 200) << batch.raw;
  EXPECT_EQ(batch.body["received"], 3);
  EXPECT_EQ(batch.body["stored"], 2);
  EXPECT_EQ(batch.body["skipped_without_text"], 1);

  Answer vectors = post(port(), "/v1/vectors", {{"where", {{"topic", "zinc"}}}, {"include_vectors", false}});
  ASSERT_EQ(vectors.status, 200) << vectors.raw;
  EXPECT_FALSE(vectors.body.contains("vectors"));
  EXPECT_NE(std::find(vectors.body["ids"].begin(), vectors.body["ids"].end(), "serve:1"), vectors.body["ids"].end());

  Answer projection = post(port(), "/v1/projection", {{"limit", 100}, {"clusters", 4}});
  ASSERT_EQ(projection.status, 200) << projection.raw;
  EXPECT_EQ(projection.body["points"].size(), 100U);
  EXPECT_EQ(projection.body["centroids"].size(), 4U);
  Answer again = post(port(), "/v1/projection", {{"limit", 100}, {"clusters", 4}});
  EXPECT_EQ(again.body, projection.body) << "deterministic for a seed";

  Answer health = call(port(), "GET", "/health");
  EXPECT_EQ(health.status, 200) << health.raw;
  EXPECT_EQ(health.body["healthy"], true);
  EXPECT_EQ(health.body["backend"], "pgvector");
}

TEST_F(Issue25Serve, EmbeddingsAreOpenAiShapedInFloatAndBase64) {
  Answer f = post(port(), "/v1/embeddings", {{"input", {"crude oil", "wheat"}}});
  ASSERT_EQ(f.status, 200) << f.raw;
  EXPECT_EQ(f.body["object"], "list");
  ASSERT_EQ(f.body["data"].size(), 2U);
  EXPECT_EQ(f.body["data"][1]["index"], 1);
  ASSERT_EQ(f.body["data"][0]["embedding"].size(), 384U);
  Answer b = post(port(), "/v1/embeddings", {{"input", "crude oil"}, {"encoding_format", "base64"}, {"model", f.body["model"]}});
  ASSERT_EQ(b.status, 200) << b.raw;
  const std::string text = b.body["data"][0]["embedding"];
  std::string bytes(text.size(), '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes.data()), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  ASSERT_GE(n, static_cast<int>(384 * sizeof(float)));
  for (int i = 0; i < 384; ++i) {
    float x = 0;
    std::memcpy(&x, bytes.data() + i * sizeof(float), sizeof(float));
    EXPECT_EQ(x, f.body["data"][0]["embedding"][i].get<float>()) << i;
  }
  EXPECT_EQ(post(port(), "/v1/embeddings", {{"input", "x"}, {"model", "text-embedding-3-small"}}).status, 400);
  EXPECT_EQ(post(port(), "/v1/embeddings", {{"input", {1, 2, 3}}}).status, 400);
  EXPECT_EQ(post(port(), "/v1/embeddings", {{"input", {"a", "b", "c", "d", "e", "f"}}}).status, 413);
}

TEST_F(Issue25Serve, BadInputIsAClearFourHundredAndWritesNothing) {
  const std::string before = rows();
  struct Case {
    std::string path;
    std::string body;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"/v1/search", "{not json", 400, "not JSON"},
      {"/v1/search", "[1, 2]", 400, "must be a JSON object"},
      {"/v1/search", R"({"query": "oil", "topk": 3})", 400, "unknown field \"topk\""},
      {"/v1/search", R"({"query": 7})", 400, "\"query\" must be a string"},
      {"/v1/search", R"({"query": "oil", "top_k": "3"})", 400, "\"top_k\" must be an integer"},
      {"/v1/search", R"({"query": "oil", "top_k": 51})", 400, "from 1 to 50, not 51"},
      {"/v1/search", R"({"query": "oil", "vector": [1]})", 400, "either"},
      {"/v1/search", R"({"vector": [1, 2]})", 400, "has 2 numbers; the store's vectors have 384"},
      {"/v1/search", R"({"query": "oil", "where": {"topic": {"$foo": 1}}})", 400, "$foo"},
      {"/v1/articles", R"({"article": {"title": "no uri"}})", 400, "uri"},
      {"/v1/articles", R"({"article": {"uri": "serve:bad", "title": "t"}, "extra": 1})", 400, "unknown field \"extra\""},
      {"/v1/articles/batch", R"({"articles": [{"uri": "serve:b1", "title": "fine"}, {"title": "no uri"}]})", 400, "\"articles\"[1]"},
      {"/v1/articles/batch", R"({"articles": [{"uri": "a", "title": "t"}, {"uri": "b", "title": "t"}, {"uri": "c", "title": "t"}, {"uri": "d", "title": "t"}, {"uri": "e", "title": "t"}, {"uri": "f", "title": "t"}]})", 413, "the limit is 5"},
      {"/v1/vectors", R"({"limit": -1})", 400, "\"limit\""},
      {"/v1/nowhere", "{}", 404, "no route POST /v1/nowhere"},
  };
  for (const auto& c : cases) {
    Answer a = call(port(), "POST", c.path, c.body);
    EXPECT_EQ(a.status, c.status) << c.path << " " << c.body << ": " << a.raw;
    ASSERT_TRUE(a.body.is_object()) << a.raw;
    EXPECT_TRUE(a.body["error"]["message"].get<std::string>().contains(c.says)) << c.body << ": " << a.raw;
  }
  // A body over --max-body-bytes.
  Answer big = call(port(), "POST", "/v1/articles", json{{"article", {{"uri", "serve:big"}, {"raw", std::string(300000, 'x')}}}}.dump());
  EXPECT_EQ(big.status, 413) << big.raw;
  EXPECT_TRUE(big.body["error"]["message"].get<std::string>().contains("200000 bytes")) << big.raw;
  EXPECT_EQ(rows(), before) << "nothing was written";
  EXPECT_EQ(sql_value(s_db, "SELECT count(*) FROM articles WHERE uri IN ('serve:b1', 'serve:bad', 'serve:big', 'a')"), "0");
}

TEST_F(Issue25Serve, TheOpenApiDocumentDescribesEveryRoute) {
  Answer a = call(port(), "GET", "/openapi.json");
  ASSERT_EQ(a.status, 200);
  EXPECT_EQ(a.body["openapi"], "3.0.3");
  for (const char* route : {"/health", "/openapi.json", "/v1/search", "/v1/similar", "/v1/articles", "/v1/articles/batch",
                            "/v1/vectors", "/v1/projection", "/v1/map", "/v1/map/rebuild", "/v1/embeddings"}) {
    EXPECT_TRUE(a.body["paths"].contains(route)) << route;
  }
  // The access log: one JSON line per request, with its route and status (written just after
  // the answer is sent).
  std::string log;
  for (int i = 0; i < 100 && !log.contains(R"("path":"/openapi.json")"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    log = s_server->log();
  }
  EXPECT_TRUE(log.contains(R"("path":"/openapi.json")")) << log;
  EXPECT_TRUE(log.contains(R"("status":200)")) << log;
}

TEST_F(Issue25Serve, ABearerTokenGuardsEveryRouteAndIsNeverLogged) {
  const std::string token = "s3cr3t-token-of-the-test";
  Server guarded(s_tmp->path, env() + " VSTORE_API_TOKEN='" + token + "'", "", "guarded");
  ASSERT_GT(guarded.port(), 0) << guarded.log();
  EXPECT_TRUE(guarded.out().contains("bearer token required"));
  for (const char* path : {"/health", "/openapi.json", "/metrics", "/v1/map"}) {
    EXPECT_EQ(call(guarded.port(), "GET", path).status, 401) << path;
    EXPECT_EQ(call(guarded.port(), "GET", path, "", "wrong").status, 401) << path;
    EXPECT_EQ(call(guarded.port(), "GET", path, "", token).status, 200) << path;
  }
  Answer refused = post(guarded.port(), "/v1/articles", {{"article", {{"uri", "serve:guarded"}, {"title", "t"}}}}, token + "x");
  EXPECT_EQ(refused.status, 401);
  EXPECT_EQ(sql_value(s_db, "SELECT count(*) FROM articles WHERE uri = 'serve:guarded'"), "0");
  EXPECT_EQ(post(guarded.port(), "/v1/search", {{"query", "oil"}}, token).status, 200);
  EXPECT_FALSE(guarded.log().contains(token)) << "the token is never logged";
  // The page's own files hold no data: a browser opens them without the token, and the page
  // asks for it when the API refuses.
  for (const char* path : {"/", "/app.js", "/style.css"}) EXPECT_EQ(call(guarded.port(), "GET", path).status, 200) << path;
  EXPECT_EQ(call(guarded.port(), "GET", "/index.html").status, 401) << "only the page's own paths are open";

  // Off loopback the service refuses to start without a token.
  CmdResult open = vstore::testing::run_vstore(s_tmp->path.string(), "serve --addr 0.0.0.0:0", env());
  EXPECT_EQ(open.code, 1);
  EXPECT_TRUE(open.err.contains("0.0.0.0:0 is not loopback: set VSTORE_API_TOKEN")) << open.err;
  CmdResult bad = vstore::testing::run_vstore(s_tmp->path.string(), "serve --addr nowhere", env());
  EXPECT_NE(bad.code, 0);
  EXPECT_TRUE(bad.err.contains("nowhere")) << bad.err;
}

TEST_F(Issue25Serve, ThePageIsServedAtTheRootWithItsScriptAndStylesheet) {
  httplib::Client client("127.0.0.1", port());
  struct File {
    const char* path;
    const char* type;
    const char* holds;
  };
  for (const File& f : {File{"/", "text/html", "<canvas id=\"map\""}, File{"/app.js", "text/javascript", "/v1/map"},
                        File{"/style.css", "text/css", "#map"}}) {
    auto res = client.Get(f.path);
    ASSERT_TRUE(res) << f.path;
    EXPECT_EQ(res->status, 200) << f.path;
    EXPECT_TRUE(res->get_header_value("Content-Type").starts_with(f.type)) << f.path << ": " << res->get_header_value("Content-Type");
    EXPECT_TRUE(res->body.contains(f.holds)) << f.path;
    EXPECT_TRUE(res->get_header_value("Content-Security-Policy").contains("default-src 'self'")) << f.path;
    EXPECT_EQ(res->get_header_value("X-Content-Type-Options"), "nosniff") << f.path;
  }
  // The page is the repository's web/index.html, byte for byte.
  const char* source = std::getenv("VSTORE_SOURCE_DIR");
  ASSERT_NE(source, nullptr);
  auto page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->body, vstore::testing::read_text(fs::path(source) / "web" / "index.html"));
}

TEST_F(Issue25Serve, MetricsCountRequestsByRouteAndStatusWithLatencyEmbeddingsAndThePool) {
  Answer first = call(port(), "GET", "/metrics");
  ASSERT_EQ(first.status, 200) << first.raw;
  const std::vector<Sample> before = parse_metrics(first.raw);
  for (const char* q : {"copper mine output", "wheat exports", "central bank rates"}) {
    ASSERT_EQ(post(port(), "/v1/search", {{"query", q}, {"top_k", 3}}).status, 200);
  }
  ASSERT_EQ(call(port(), "POST", "/v1/search", "{not json").status, 400);
  ASSERT_EQ(call(port(), "GET", "/no/such/page").status, 404);
  httplib::Client client("127.0.0.1", port());
  auto scraped = client.Get("/metrics");
  ASSERT_TRUE(scraped);
  EXPECT_TRUE(scraped->get_header_value("Content-Type").starts_with("text/plain; version=0.0.4")) << scraped->get_header_value("Content-Type");
  const std::vector<Sample> after = parse_metrics(scraped->body);
  ASSERT_FALSE(HasFailure()) << scraped->body;

  auto delta = [&](const std::string& name, const std::string& labels = "") {
    return metric(after, name, labels) - metric(before, name, labels);
  };
  EXPECT_EQ(delta("vstore_http_requests_total", R"(route="/v1/search",method="POST",status="200")"), 3);
  EXPECT_EQ(delta("vstore_http_requests_total", R"(route="/v1/search",method="POST",status="400")"), 1);
  EXPECT_EQ(delta("vstore_http_requests_total", R"(route="other",method="GET",status="404")"), 1) << "unknown paths share one label";
  EXPECT_EQ(delta("vstore_http_request_duration_seconds_count", R"(route="/v1/search")"), 4);
  EXPECT_GT(delta("vstore_http_request_duration_seconds_sum", R"(route="/v1/search")"), 0.0);
  // The buckets are cumulative and the last one, +Inf, holds every request of the route.
  double previous = 0.0;
  for (const auto& smp : after) {
    if (smp.name != "vstore_http_request_duration_seconds_bucket" || !smp.labels.starts_with(R"(route="/v1/search")")) continue;
    EXPECT_GE(smp.value, previous) << smp.labels;
    previous = smp.value;
  }
  EXPECT_EQ(previous, metric(after, "vstore_http_request_duration_seconds_count", R"(route="/v1/search")"));
  // The three queries were embedded (nothing else embeds while this test runs).
  EXPECT_EQ(delta("vstore_embed_texts_total"), 3);
  EXPECT_EQ(delta("vstore_embed_calls_total"), 3);
  EXPECT_GT(delta("vstore_embed_seconds_total"), 0.0);
  // The pool, and what the service is.
  EXPECT_GE(metric(after, "vstore_db_pool_open_connections"), 1);
  EXPECT_EQ(metric(after, "vstore_db_pool_size"), 20) << "DB_POOL_SIZE's default";
  EXPECT_EQ(metric(after, "vstore_store_gauges_up"), 1);
  EXPECT_EQ(metric(after, "vstore_http_requests_in_flight"), 1) << "the scrape itself";
  EXPECT_TRUE(std::any_of(after.begin(), after.end(), [](const Sample& smp) {
    return smp.name == "vstore_info" && smp.labels.contains(R"(backend="pgvector")") && smp.value == 1;
  })) << scraped->body;
  EXPECT_FALSE(has_metric(after, "vstore_outbox_pending")) << "no outbox outside dual mode";
  Answer spec = call(port(), "GET", "/openapi.json");
  EXPECT_TRUE(spec.body["paths"].contains("/metrics"));
}

TEST_F(Issue25Serve, ABodyThatStopsArrivingIsA408AfterTheTimeoutAndWritesNothing) {
  Server quick(s_tmp->path, env(), "--timeout 1", "quick");
  ASSERT_GT(quick.port(), 0) << quick.log();
  const std::string before = rows();
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(quick.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  const std::string head =
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
      R"({"article": {"uri": "serve:slow", "title": "Tin)";
  ASSERT_EQ(::send(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  const auto sent = std::chrono::steady_clock::now();
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string answer;
  std::array<char, 4096> buf{};
  // Until the JSON error has arrived (the server then waits for the client to close).
  for (ssize_t n = 0; !answer.ends_with("}}") && (n = ::recv(fd, buf.data(), buf.size(), 0)) > 0;) {
    answer.append(buf.data(), static_cast<std::size_t>(n));
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  ::close(fd);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 408")) << answer;
  EXPECT_TRUE(answer.contains(R"("code":"request_timeout")")) << answer;
  EXPECT_TRUE(answer.contains("within 1 s (--timeout)")) << answer;
  EXPECT_GE(waited, 0.9);
  EXPECT_LT(waited, 4.0);
  EXPECT_TRUE(answer.contains("Connection: close\r\n")) << "the rest of the body must not be read as a request";
  EXPECT_EQ(rows(), before) << "nothing was written";
}

TEST_F(Issue25Serve, SigtermFinishesTheRequestInFlightThenExits) {
  Server slow(s_tmp->path, env() + " VSTORE_TEST_SERVE_DELAY_MS=1500", "", "slow");
  ASSERT_GT(slow.port(), 0) << slow.log();
  auto in_flight = std::async(std::launch::async, [&] {
    return post(slow.port(), "/v1/articles", {{"article", {{"uri", "serve:inflight"}, {"title", "Copper in flight"}}}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  ASSERT_EQ(::kill(slow.pid(), SIGTERM), 0);
  const Answer a = in_flight.get();
  EXPECT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["stored"], true);
  EXPECT_EQ(sql_value(s_db, "SELECT count(embedding) FROM articles WHERE uri = 'serve:inflight'"), "1");
  EXPECT_TRUE(slow.wait_exit(20)) << slow.log();
  EXPECT_TRUE(slow.log().contains("SIGTERM received")) << slow.log();
  EXPECT_TRUE(slow.out().contains("serve: stopped")) << slow.out();
  // No new connection is accepted once it stopped.
  EXPECT_EQ(call(slow.port(), "GET", "/health").status, 0);
}

}  // namespace
