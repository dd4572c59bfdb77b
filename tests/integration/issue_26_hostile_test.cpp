// SPDX-License-Identifier: Apache-2.0
// Issue 26, part 3: hostile and broken input through the surfaces users reach (the library, the
// `vstore` command line, `vstore serve`), one test per row of docs/robustness.md's table. Each
// checks the four things the table promises: the error's words (the value and what was
// expected), its status or exit code, that nothing was written (the table's row count and
// checksums over uri + vector bytes and over whole rows unchanged, no file made), and that the
// process lives on (the service answers /health, the library serves a search; a command exits
// with its documented code, not a signal).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <limits>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "support/serve_process.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/filter.hpp"
#include "vstore/vector_store.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::ErrorCode;
using vstore::testing::Answer;
using vstore::testing::call;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

constexpr int k_dim = 384;
constexpr int k_seed_articles = 40;
// The service's limits in this suite (small, so that the limits are cheap to pass).
constexpr int k_max_body = 2'000'000;

// What "nothing was written" compares: the row count, a checksum over each row's uri and vector
// bytes (pgvector's binary form), and one over whole rows (every column, as text).
struct TableState {
  std::string rows;
  std::string uri_vectors;
  std::string whole_rows;
  bool operator==(const TableState&) const = default;
};

void PrintTo(const TableState& s, std::ostream* os) { *os << s.rows << " rows, " << s.uri_vectors << ", " << s.whole_rows; }

TableState table_state(const std::string& db) {
  return {sql_value(db, "SELECT count(*) FROM articles"),
          sql_value(db, "SELECT coalesce(md5(string_agg(convert_to(uri, 'UTF8') || coalesce(vector_send(embedding), "
                        "'\\x'::bytea), '\\x00'::bytea ORDER BY uri COLLATE \"C\")), 'none') FROM articles"),
          sql_value(db, "SELECT coalesce(md5(string_agg(a::text, E'\\n' ORDER BY uri COLLATE \"C\")), 'none') FROM articles a")};
}

// Every word of `words` is in `text`.
::testing::AssertionResult says(const std::string& text, std::initializer_list<std::string_view> words) {
  for (std::string_view w : words) {
    if (!text.contains(w)) return ::testing::AssertionFailure() << "\"" << w << "\" is not in: " << text.substr(0, 2000);
  }
  return ::testing::AssertionSuccess();
}

// A library call refused with `code` and a message holding `words`.
template <typename T>
::testing::AssertionResult refused(const vstore::Result<T>& r, ErrorCode code, std::initializer_list<std::string_view> words) {
  if (r) return ::testing::AssertionFailure() << "the call succeeded";
  if (r.error().code() != code) return ::testing::AssertionFailure() << "code " << r.error().to_string();
  return says(r.error().message(), words);
}

// An HTTP answer with `status`, error code `code` and a message holding `words`.
::testing::AssertionResult answered(const Answer& a, int status, std::string_view code, std::initializer_list<std::string_view> words) {
  if (a.status != status) return ::testing::AssertionFailure() << "status " << a.status << ": " << a.raw.substr(0, 2000);
  if (!a.body.is_object() || !a.body.contains("error")) return ::testing::AssertionFailure() << "not an error object: " << a.raw;
  if (a.body["error"]["code"] != code) return ::testing::AssertionFailure() << "code " << a.body["error"]["code"];
  return says(a.body["error"]["message"].get<std::string>(), words);
}

// A command that ended with exit code `code` (not a signal) and `words` on stderr.
::testing::AssertionResult exited(const CmdResult& r, int code, std::initializer_list<std::string_view> words) {
  if (r.code != code) return ::testing::AssertionFailure() << "exit code " << r.code << "; stderr: " << r.err << "; stdout: " << r.out;
  return says(r.err, words);
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A connected socket to 127.0.0.1:port (-1 on failure) that gives up reading after `seconds`.
int connect_to(int port, int seconds) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// Sends `bytes` as they are and reads until the server closes the connection (or `seconds`).
std::string raw_exchange(int port, const std::string& bytes, int seconds = 10) {
  const int fd = connect_to(port, seconds);
  if (fd < 0) return "";
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<std::size_t>(n);
  }
  std::string answer;
  std::array<char, 4096> buf{};
  for (ssize_t n = 0; (n = ::recv(fd, buf.data(), buf.size(), 0)) > 0;) answer.append(buf.data(), static_cast<std::size_t>(n));
  ::close(fd);
  return answer;
}

// The JSON error of a raw HTTP answer (the body after the first blank line), or null.
json raw_error(const std::string& answer) {
  const auto at = answer.find("\r\n\r\n");
  if (at == std::string::npos) return nullptr;
  const auto end = answer.find("}}", at);
  return json::parse(answer.substr(at + 4, end == std::string::npos ? std::string::npos : end + 2 - (at + 4)), nullptr, false);
}

// Sends `request` (raw bytes) on a new connection to 127.0.0.1:PORT and reads up to the end of
// the first answer's JSON body; "" when it cannot connect or send.
std::string exchange_raw(int port, const std::string& request) {
  const int fd = connect_to(port, 10);
  if (fd < 0) return "";
  std::string answer;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size())) {
    std::array<char, 4096> buf{};
    for (ssize_t n = 0; !answer.ends_with("}}") && (n = ::recv(fd, buf.data(), buf.size(), 0)) > 0;) {
      answer.append(buf.data(), static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return answer;
}

// parse_filter() of JSON text (a string literal would also convert to nlohmann::json).
vstore::Result<vstore::FilterNode> parse_text(std::string_view text) { return vstore::parse_filter(text); }

vstore::Article article(const std::string& uri, const std::string& title) {
  vstore::Article a;
  a.uri = uri;
  a.title = title;
  return a;
}

std::string article_line(const std::string& uri, const std::string& title) {
  return json{{"uri", uri}, {"title", title}, {"topic", "hostile"}}.dump() + "\n";
}

class Issue26Hostile : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_tmp = std::make_unique<vstore::testing::TempDir>();
    chmod(s_tmp->path.c_str(), 0755);
    s_db = vstore::testing::PgServer::instance().create_database("issue26");
    static constexpr std::array<const char*, 4> k_topics = {"cocoa", "crude", "grain", "gold"};
    static constexpr std::array<const char*, 4> k_words = {"Cocoa harvest improves in Bahia", "Crude output falls at refinery",
                                                           "Grain exports rise from port", "Gold price holds near record"};
    std::string lines;
    for (int i = 0; i < k_seed_articles; ++i) {
      lines += json{{"uri", fmt::format("seed:{}", i)},
                    {"title", fmt::format("{} week {}", k_words[static_cast<std::size_t>(i % 4)], i)},
                    {"topic", k_topics[static_cast<std::size_t>(i % 4)]},
                    {"publication_date", fmt::format("1987-03-{:02}", 1 + i % 28)}}
                   .dump() +
               "\n";
    }
    write_file(s_tmp->path / "seed.jsonl", lines);
    ASSERT_EQ(cli("schema up").code, 0);
    const CmdResult seeded = cli("ingest seed.jsonl");
    ASSERT_EQ(seeded.code, 0) << seeded.err;
    auto store = vstore::open_pg_store(s_db, vstore::testing::test_config(s_db, k_dim));
    ASSERT_TRUE(store) << store.error().to_string();
    s_lib = std::make_unique<vstore::ArticleStore>(std::move(*store), vstore::make_hash_embedder(k_dim), 2);
    s_server = std::make_unique<vstore::testing::ServeProcess>(s_tmp->path, env(),
                                                              fmt::format("--max-body-bytes {} --timeout 1", k_max_body));
    ASSERT_GT(s_server->port(), 0) << s_server->out() << s_server->log();
  }
  static void TearDownTestSuite() {
    s_server.reset();
    s_lib.reset();
    vstore::testing::PgServer::instance().drop_database(s_db);
    s_tmp.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(s_lib && s_server && s_server->port() > 0) << "the suite's set-up failed";
    m_before = table_state(s_db);
  }

  static std::string env() { return "DATABASE_URL='" + s_db + "'"; }
  static CmdResult cli(const std::string& args, const std::string& extra_env = "") {
    return vstore::testing::run_vstore(s_tmp->path.string(), args, env() + " " + extra_env);
  }
  static fs::path dir() { return s_tmp->path; }
  static int port() { return s_server->port(); }
  static vstore::ArticleStore& lib() { return *s_lib; }
  static Answer http(const std::string& path, const std::string& body) { return call(port(), "POST", path, body); }
  static Answer http(const std::string& path, const json& body) { return call(port(), "POST", path, body.dump()); }
  static Answer http(const std::string& path, const char* body) { return call(port(), "POST", path, body); }

  // Nothing was written since SetUp, and both processes still serve.
  void expect_unchanged_and_alive() const {
    EXPECT_EQ(table_state(s_db), m_before) << "nothing may be written";
    auto hits = s_lib->search_articles("cocoa harvest in Bahia", 3);
    ASSERT_TRUE(hits) << hits.error().to_string();
    EXPECT_EQ(hits->size(), 3U);
    EXPECT_TRUE(vstore::testing::alive(s_server->pid())) << s_server->log();
    const Answer health = call(port(), "GET", "/health");
    EXPECT_EQ(health.status, 200) << health.raw;
    EXPECT_EQ(health.body.value("healthy", false), true) << health.raw;
  }

  static std::unique_ptr<vstore::testing::TempDir> s_tmp;
  static std::string s_db;
  static std::unique_ptr<vstore::ArticleStore> s_lib;
  static std::unique_ptr<vstore::testing::ServeProcess> s_server;
  TableState m_before;
};

std::unique_ptr<vstore::testing::TempDir> Issue26Hostile::s_tmp;
std::string Issue26Hostile::s_db;
std::unique_ptr<vstore::ArticleStore> Issue26Hostile::s_lib;
std::unique_ptr<vstore::testing::ServeProcess> Issue26Hostile::s_server;

std::string model() { return std::string(vstore::make_hash_embedder(k_dim)->model()); }

// ---- vectors ----------------------------------------------------------------------------

TEST_F(Issue26Hostile, VectorOfWrongDimensionsIsRefused) {
  const vstore::ArticleVector item{article("hostile:dim", "Wrong dimensions"), vstore::Embedding(383, 0.5f), model()};
  EXPECT_TRUE(refused(lib().store().upsert(std::span(&item, 1)), ErrorCode::invalid_argument,
                      {"hostile:dim", "expected 384 dimensions, not 383"}));
  vstore::SearchOptions so;
  so.top_k = 3;
  const std::vector<float> query(768, 0.5f);
  EXPECT_TRUE(refused(lib().store().search(query, so), ErrorCode::invalid_argument, {"expected 384 dimensions, not 768"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"vector", std::vector<float>(383, 0.5f)}}), 400, "invalid_argument",
                       {"\"vector\" has 383 numbers; the store's vectors have 384"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, NanInAVectorIsRefused) {
  vstore::Embedding v(k_dim, 0.5f);
  v[7] = std::numeric_limits<float>::quiet_NaN();
  const vstore::ArticleVector item{article("hostile:nan", "Not a number"), v, model()};
  EXPECT_TRUE(refused(lib().store().upsert(std::span(&item, 1)), ErrorCode::invalid_argument,
                      {"hostile:nan", "element 7 is nan; vectors must hold finite numbers"}));
  vstore::SearchOptions so;
  EXPECT_TRUE(refused(lib().store().search(v, so), ErrorCode::invalid_argument, {"element 7 is nan"}));
  // JSON has no NaN: the literal is not JSON.
  std::string body = R"({"vector": [NaN)";
  for (int i = 1; i < k_dim; ++i) body += ", 0.5";
  body += "]}";
  EXPECT_TRUE(answered(http("/v1/search", body), 400, "invalid_argument", {"the body is not JSON", "invalid literal"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, InfinityInAVectorIsRefused) {
  vstore::Embedding v(k_dim, 0.5f);
  v[0] = -std::numeric_limits<float>::infinity();
  const vstore::ArticleVector item{article("hostile:inf", "Infinite"), v, model()};
  EXPECT_TRUE(refused(lib().store().upsert(std::span(&item, 1)), ErrorCode::invalid_argument,
                      {"hostile:inf", "element 0 is -inf; vectors must hold finite numbers"}));
  // 1e999 overflows a double: it was a 500 ("internal") before the service caught the overflow.
  std::string body = R"({"vector": [1e999)";
  for (int i = 1; i < k_dim; ++i) body += ", 0.5";
  body += "]}";
  EXPECT_TRUE(answered(http("/v1/search", body), 400, "invalid_argument", {"the body is not JSON", "number overflow", "1e999"}));
  // A finite JSON number beyond float32's range would be an infinity as a float32: refused
  // naming the element and the value the client sent.
  std::vector<double> big(k_dim, 0.5);
  big[3] = 1e300;
  EXPECT_TRUE(answered(http("/v1/search", json{{"vector", big}}), 400, "invalid_argument",
                       {"\"vector\"[3] is 1e+300, beyond the float32 range"}));
  // The same in an ingest record's ready-made embedding: refused naming the value sent, not
  // the infinity it would become.
  json record{{"uri", "hostile:big"}, {"title", "Too big"}, {"embedding", big}};
  write_file(dir() / "big.jsonl", record.dump() + "\n");
  EXPECT_TRUE(exited(cli("ingest big.jsonl"), 1, {"big.jsonl:1: embedding[3] is 1e+300, beyond the float32 range"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, VectorOfTheWrongTypeIsRefused) {
  std::vector<json> mixed(k_dim, 0.5);
  mixed[2] = "0.5";
  EXPECT_TRUE(answered(http("/v1/search", json{{"vector", mixed}}), 400, "invalid_argument", {"\"vector\"[2] must be a number, not \"0.5\""}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"vector", "0.5, 0.5"}}), 400, "invalid_argument",
                       {"\"vector\" must be an array of numbers, not string"}));
  expect_unchanged_and_alive();
}

// ---- text -------------------------------------------------------------------------------

TEST_F(Issue26Hostile, EmptyTextIsRefusedOrSkippedNeverStored) {
  EXPECT_TRUE(refused(lib().search_articles("", 3), ErrorCode::invalid_argument, {"the search query is empty"}));
  // An article without text is skipped (false), never stored with a made-up vector.
  auto stored = lib().upsert_article(article("hostile:empty", ""));
  ASSERT_TRUE(stored) << stored.error().to_string();
  EXPECT_FALSE(*stored);
  EXPECT_TRUE(exited(cli("search ''"), 1, {"vstore: the search query is empty"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", ""}}), 400, "invalid_argument", {"\"query\" is blank"}));
  EXPECT_TRUE(answered(http("/v1/embeddings", json{{"input", ""}}), 400, "invalid_argument", {"text 0 is blank; nothing to embed"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, WhitespaceTextIsRefusedOrSkippedNeverStored) {
  // Spaces, a tab, a line break, a no-break space (U+00A0) and a zero-width space (U+200B).
  const std::string blank = " \t\n\u00a0\u200b ";
  EXPECT_TRUE(refused(lib().search_articles(blank, 3), ErrorCode::invalid_argument, {"the search query is empty"}));
  auto stored = lib().upsert_article(article("hostile:blank", blank));
  ASSERT_TRUE(stored) << stored.error().to_string();
  EXPECT_FALSE(*stored);
  EXPECT_TRUE(exited(cli("search \"$(printf ' \\t\\302\\240 ')\""), 1, {"vstore: the search query is empty"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", blank}}), 400, "invalid_argument", {"\"query\": the search query is empty"}));
  write_file(dir() / "blank.jsonl", json{{"uri", "hostile:blank"}, {"title", blank}}.dump() + "\n");
  const CmdResult ingest = cli("ingest blank.jsonl");
  EXPECT_EQ(ingest.code, 0) << ingest.err;
  EXPECT_TRUE(says(ingest.out + ingest.err, {"hostile:blank: skipped: raw, summary and title hold no text to embed"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, InvalidUtf8IsRefusedNamingTheByte) {
  const std::string bad = "Cocoa \xff\xfe prices";
  // Before the write check read UTF-8, PostgreSQL refused the row ("invalid byte sequence for
  // encoding UTF8") without naming the article or the field.
  EXPECT_TRUE(refused(lib().upsert_article(article("hostile:utf8", bad)), ErrorCode::invalid_argument,
                      {"article \"hostile:utf8\"", "field title is not valid UTF-8 at offset 6 (byte 0xFF)"}));
  // Before, the query was embedded and searched as it was.
  EXPECT_TRUE(refused(lib().search_articles(bad, 3), ErrorCode::invalid_argument, {"the search query is not valid UTF-8 at offset 6 (byte 0xFF)"}));
  EXPECT_TRUE(exited(cli("search \"$(printf 'Cocoa \\377 prices')\""), 1, {"the search query is not valid UTF-8 at offset 6 (byte 0xFF)"}));
  write_file(dir() / "utf8.jsonl", "{\"uri\": \"hostile:utf8\", \"title\": \"" + bad + "\"}\n");
  EXPECT_TRUE(exited(cli("ingest utf8.jsonl"), 1, {"utf8.jsonl:1: byte 41 (0xff) is not valid UTF-8"}));
  // Before, the service's answer (a JSON parse error quoting the byte) could not be written as
  // JSON: a bare "HTTP 500".
  EXPECT_TRUE(answered(http("/v1/articles", "{\"article\": {\"uri\": \"hostile:utf8\", \"title\": \"" + bad + "\"}}"), 400,
                       "invalid_argument", {"the body is not JSON", "ill-formed UTF-8 byte"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, NulByteInTextIsRefused) {
  const std::string nul = std::string("Cocoa prices") + '\0' + std::string(" rise again");
  EXPECT_TRUE(refused(lib().upsert_article(article("hostile:nul", nul)), ErrorCode::invalid_argument,
                      {"article \"hostile:nul\"", "field title holds a NUL byte at offset 12, which PostgreSQL cannot store"}));
  write_file(dir() / "nul.jsonl", R"({"uri": "hostile:nul", "title": "Cocoa prices\u0000 rise again"})" "\n");
  EXPECT_TRUE(exited(cli("ingest nul.jsonl"), 1, {"nul.jsonl:1: article \"hostile:nul\": field title holds a NUL byte at offset 12"}));
  EXPECT_TRUE(answered(http("/v1/articles", json{{"article", {{"uri", "hostile:nul"}, {"title", nul}}}}), 400, "invalid_argument",
                       {"field title holds a NUL byte at offset 12"}));
  expect_unchanged_and_alive();
}

// A 10 MB article is not an error: it is stored whole and its vector is made from its first
// tokens (the tokenizer stops at the model's length, so it costs no more than a short one). The
// service bounds what a request may carry: past --max-body-bytes it is a 413 and nothing is
// written.
TEST_F(Issue26Hostile, TenMegabyteArticleIsStoredByTheLibraryAndRefusedPastTheBodyLimit) {
  std::string raw;
  raw.reserve(10'000'000);
  while (raw.size() < 10'000'000) raw += "Cocoa harvest improves in Bahia after the rains. ";
  const json body{{"article", {{"uri", "hostile:10mb"}, {"title", "Ten megabytes"}, {"raw", raw}}}};
  const std::string text = body.dump();
  ASSERT_GT(text.size(), 10'000'000U);
  EXPECT_TRUE(answered(http("/v1/articles", text), 413, "payload_too_large",
                       {fmt::format("the body is larger than the limit of {} bytes (--max-body-bytes)", k_max_body)}));
  expect_unchanged_and_alive();

  vstore::Article a = article("hostile:10mb", "Ten megabytes");
  a.raw = raw;
  const auto started = std::chrono::steady_clock::now();
  auto stored = lib().upsert_article(a);
  ASSERT_TRUE(stored) << stored.error().to_string();
  EXPECT_TRUE(*stored);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 30.0);
  EXPECT_EQ(sql_value(s_db, "SELECT length(raw) || '/' || (embedding IS NOT NULL) FROM articles WHERE uri = 'hostile:10mb'"),
            fmt::format("{}/true", raw.size()));
  auto hits = lib().search_articles("cocoa harvest in Bahia", 3);
  ASSERT_TRUE(hits) << hits.error().to_string();
  sql_value(s_db, "DELETE FROM articles WHERE uri = 'hostile:10mb'");
}

// ---- uris -------------------------------------------------------------------------------

TEST_F(Issue26Hostile, UriOf100KilobytesIsRefusedBeforeTheDatabase) {
  std::string uri;
  for (int i = 0; uri.size() < 100'000; ++i) uri += fmt::format("{:08x}", static_cast<unsigned>(i) * 2654435761U);
  // Before: PostgreSQL refused it inside the write ("index row requires 100016 bytes"), an
  // internal error, and the service answered 500.
  EXPECT_TRUE(refused(lib().upsert_article(article(uri, "Long uri")), ErrorCode::invalid_argument,
                      {"item 0: uri \"" + uri.substr(0, 40) + "...\" is 100000 bytes long; expected at most 2048 bytes"}));
  write_file(dir() / "longuri.jsonl", article_line(uri, "Long uri"));
  EXPECT_TRUE(exited(cli("ingest longuri.jsonl"), 1, {"is 100000 bytes long; expected at most 2048 bytes"}));
  EXPECT_TRUE(answered(http("/v1/articles", json{{"article", {{"uri", uri}, {"title", "Long uri"}}}}), 400, "invalid_argument",
                       {"is 100000 bytes long; expected at most 2048 bytes"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, BlankUriIsRefused) {
  // Before, "  " was stored as an article's uri.
  EXPECT_TRUE(refused(lib().upsert_article(article("  ", "Cocoa prices rise")), ErrorCode::invalid_argument,
                      {"item 0: uri \"  \" is blank; expected a uri with visible characters"}));
  EXPECT_TRUE(answered(http("/v1/articles", json{{"article", {{"uri", "\t "}, {"title", "Cocoa prices rise"}}}}), 400,
                       "invalid_argument", {"uri \"\\t \" is blank"}));
  EXPECT_TRUE(answered(http("/v1/articles", json{{"article", {{"uri", ""}, {"title", "Cocoa prices rise"}}}}), 400,
                       "invalid_argument", {"field uri is required and must be a non-empty string"}));
  expect_unchanged_and_alive();
}

// ---- top_k ------------------------------------------------------------------------------

TEST_F(Issue26Hostile, TopKOfZeroIsRefused) {
  EXPECT_TRUE(refused(lib().search_articles("cocoa", 0), ErrorCode::invalid_argument, {"top_k must be from 1 to", "not 0"}));
  EXPECT_TRUE(refused(lib().similar_articles("seed:1", 0), ErrorCode::invalid_argument, {"not 0"}));
  EXPECT_TRUE(exited(cli("search cocoa --top-k 0"), 2, {"--top-k: Value 0 not in range 1 to 100000"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"top_k", 0}}), 400, "invalid_argument",
                       {"\"top_k\" must be from 1 to 1000, not 0"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, TopKOfMinusOneIsRefused) {
  EXPECT_TRUE(refused(lib().search_articles("cocoa", -1), ErrorCode::invalid_argument, {"top_k must be from 1 to", "not -1"}));
  EXPECT_TRUE(exited(cli("similar seed:1 --top-k -1"), 2, {"--top-k: Value -1 not in range 1 to 100000"}));
  EXPECT_TRUE(answered(http("/v1/similar", json{{"uri", "seed:1"}, {"top_k", -1}}), 400, "invalid_argument",
                       {"\"top_k\" must be from 1 to 1000, not -1"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, TopKOfTenToTheNinthIsRefused) {
  EXPECT_TRUE(refused(lib().search_articles("cocoa", 1'000'000'000), ErrorCode::invalid_argument,
                      {"top_k must be from 1 to 100000, not 1000000000"}));
  EXPECT_TRUE(exited(cli("search cocoa --top-k 1000000000"), 2, {"--top-k: Value 1000000000 not in range 1 to 100000"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"top_k", 1'000'000'000}}), 400, "invalid_argument",
                       {"\"top_k\" must be from 1 to 1000, not 1000000000"}));
  // Beyond int64 too: a number the service cannot hold as an integer.
  EXPECT_TRUE(answered(http("/v1/search", R"({"query": "cocoa", "top_k": 1e30})"), 400, "invalid_argument",
                       {"\"top_k\" must be an integer, not 1e+30"}));
  expect_unchanged_and_alive();
}

// ---- filters ----------------------------------------------------------------------------

TEST_F(Issue26Hostile, FilterWithAnUnknownOperatorIsRefused) {
  EXPECT_TRUE(refused(parse_text(R"({"topic": {"$regex": "co.*"}})"), ErrorCode::invalid_argument,
                      {"where.topic: unknown operator \"$regex\"; expected one of $eq $ne $gt $gte $lt $lte $in $nin"}));
  EXPECT_TRUE(exited(cli(R"(search cocoa --where '{"$and": [{"topic": "cocoa"}, {"topic": {"$like": "%"}}]}')"), 2,
                     {"where.$and[1].topic: unknown operator \"$like\""}));
  EXPECT_TRUE(answered(http("/v1/vectors", json{{"where", {{"topic", {{"$where", "1=1"}}}}}}), 400, "invalid_argument",
                       {"where.topic: unknown operator \"$where\""}));
  expect_unchanged_and_alive();
}

std::string nested_filter(int levels) {
  std::string s;
  for (int i = 0; i < levels; ++i) s += R"({"$and": [)";
  s += R"({"topic": "cocoa"})";
  for (int i = 0; i < levels; ++i) s += "]}";
  return s;
}

TEST_F(Issue26Hostile, FilterNestedTenThousandLevelsIsRefused) {
  const std::string deep = nested_filter(10'000);
  EXPECT_TRUE(refused(parse_text(deep), ErrorCode::invalid_argument, {"where: JSON is nested deeper than 72 levels"}));
  write_file(dir() / "deep.json", deep);
  EXPECT_TRUE(exited(cli("search cocoa --where \"$(cat deep.json)\""), 2, {"--where: where: JSON is nested deeper than 72 levels"}));
  EXPECT_TRUE(answered(http("/v1/search", R"({"query": "cocoa", "where": )" + deep + "}"), 400, "invalid_argument",
                       {"the body is nested deeper than 100 levels"}));
  // Within the body's limit, the filter's own: 40 levels.
  EXPECT_TRUE(answered(http("/v1/search", R"({"query": "cocoa", "where": )" + nested_filter(40) + "}"), 400, "invalid_argument",
                       {"filter is nested deeper than 32 levels"}));
  // JSON nesting alone, 100,000 arrays deep (200 kB). Before the body's depth limit this killed
  // the service: the filter parser's error quoted the value, and writing it recursed 100,000 deep.
  const std::string arrays = std::string(100'000, '[') + std::string(100'000, ']');
  EXPECT_TRUE(answered(http("/v1/search", R"({"query": "cocoa", "where": )" + arrays + "}"), 400, "invalid_argument",
                       {"the body is nested deeper than 100 levels"}));
  EXPECT_TRUE(answered(http("/v1/articles", R"({"article": {"uri": "hostile:deep", "title": "Cocoa", "extra": )" + arrays + "}}"),
                       400, "invalid_argument", {"the body is nested deeper than 100 levels"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, SqlInAFilterKeyIsRefused) {
  const std::string key = "topic'; DROP TABLE articles; --";
  EXPECT_TRUE(refused(vstore::parse_filter(json{{key, "cocoa"}}), ErrorCode::invalid_argument,
                      {"invalid key \"topic'; DROP TABLE articles; --\"; a key is 1 to 128 characters of A-Z a-z 0-9 _ . : -"}));
  EXPECT_TRUE(exited(cli(R"(search cocoa --where '{"topic\") OR 1=1 --": "x"}')"), 2, {"invalid key \"topic\\\") OR 1=1 --\""}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"where", {{key, "cocoa"}}}}), 400, "invalid_argument",
                       {"invalid key \"topic'; DROP TABLE articles; --\""}));
  EXPECT_EQ(sql_value(s_db, "SELECT to_regclass('articles') IS NOT NULL"), "t");
  expect_unchanged_and_alive();
}

// A value is data, never SQL: it is a bound parameter, so it matches no row and changes nothing.
TEST_F(Issue26Hostile, SqlInAFilterValueIsMatchedAsTextAndFindsNothing) {
  const std::string value = "cocoa'; DELETE FROM articles; --";
  auto hits = lib().search_articles("cocoa", 5, *vstore::parse_filter(json{{"topic", value}}));
  ASSERT_TRUE(hits) << hits.error().to_string();
  EXPECT_TRUE(hits->empty());
  const CmdResult r = cli(R"(search cocoa --json --where '{"topic": {"$in": ["x'\'') OR 1=1; --", "cocoa\" OR \"1\"=\"1"]}}')");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out, nullptr, false), json::array()) << r.out;
  const Answer a = http("/v1/vectors", json{{"where", {{"topic", value}}}, {"include_vectors", false}});
  EXPECT_EQ(a.status, 200) << a.raw;
  EXPECT_EQ(a.body["ids"], json::array()) << a.raw;
  EXPECT_EQ(sql_value(s_db, "SELECT count(*) FROM articles WHERE topic = 'cocoa'"), std::to_string(k_seed_articles / 4));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, FilterThatIsNotAnObjectIsRefused) {
  EXPECT_TRUE(refused(vstore::parse_filter(json::array({1, 2})), ErrorCode::invalid_argument, {"where: expected an object, not [1,2]"}));
  EXPECT_TRUE(exited(cli(R"(search cocoa --where '"cocoa"')"), 2, {"--where: where: expected an object, not \"cocoa\""}));
  EXPECT_TRUE(exited(cli("vectors --where 42"), 2, {"--where: where: expected an object, not 42"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"where", json::array({"topic", "cocoa"})}}), 400,
                       "invalid_argument", {"\"where\": where: expected an object, not [\"topic\",\"cocoa\"]"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, FilterValueOfTheWrongTypeIsRefused) {
  EXPECT_TRUE(refused(parse_text(R"({"topic": {"$gt": true}})"), ErrorCode::invalid_argument,
                      {"where.topic.$gt: expected a number or a date string, not true"}));
  EXPECT_TRUE(exited(cli(R"(search cocoa --where '{"topic": {"$in": [1, "cocoa"]}}')"), 2,
                     {"where.topic.$in[1]: expected an integer like the first element, not \"cocoa\""}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"where", {{"topic", {{"$eq", {{"nested", 1}}}}}}}}), 400,
                       "invalid_argument", {"where.topic.$eq"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, InListOfOneHundredThousandItemsIsRefused) {
  json list = json::array();
  for (int i = 0; i < 100'000; ++i) list.push_back(fmt::format("t{}", i));
  const json where{{"topic", {{"$in", list}}}};
  EXPECT_TRUE(refused(vstore::parse_filter(where), ErrorCode::invalid_argument,
                      {"where.topic.$in: list has 100000 elements; at most 10000 are allowed"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"where", where}}), 400, "invalid_argument",
                       {"where.topic.$in: list has 100000 elements; at most 10000 are allowed"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, DateThatIsNotADateIsRefusedInAFilter) {
  EXPECT_TRUE(refused(parse_text(R"({"publication_date": {"$gte": "not a date"}})"), ErrorCode::invalid_argument,
                      {"where.publication_date.$gte: cannot read \"not a date\" as a date", "expected a form such as"}));
  EXPECT_TRUE(exited(cli(R"(search cocoa --where '{"publication_date": {"$lt": "99999-01-01"}}')"), 2,
                     {"cannot read \"99999-01-01\" as a date"}));
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"where", {{"publication_date", {{"$gt", "yesterday"}}}}}}),
                       400, "invalid_argument", {"cannot read \"yesterday\" as a date"}));
  expect_unchanged_and_alive();
}

// ---- JSON Lines files -------------------------------------------------------------------

TEST_F(Issue26Hostile, TruncatedJsonlFileIsRefusedAndNoLineIsStored) {
  // Two whole lines, then one cut in the middle of a string: the whole lines are not stored
  // either (ingest checks every line before it writes).
  const std::string whole = article_line("hostile:t1", "Cocoa arrivals rise") + article_line("hostile:t2", "Crude stocks fall");
  const std::string third = article_line("hostile:t3", "Grain exports steady in March");
  write_file(dir() / "truncated.jsonl", whole + third.substr(0, third.size() / 2));
  EXPECT_TRUE(exited(cli("ingest truncated.jsonl"), 1, {"truncated.jsonl:3: not valid JSON at byte", "missing closing quote"}));
  EXPECT_TRUE(exited(cli("ingest truncated.jsonl --json"), 1, {"truncated.jsonl:3"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, JsonlLineThatIsAnArrayIsRefused) {
  write_file(dir() / "array.jsonl", article_line("hostile:a1", "Cocoa arrivals rise") + "[\"hostile:a2\", \"Crude stocks fall\"]\n");
  EXPECT_TRUE(exited(cli("ingest array.jsonl"), 1, {"array.jsonl:2: an article must be a JSON object, not array"}));
  write_file(dir() / "number.jsonl", "42\n");
  EXPECT_TRUE(exited(cli("ingest number.jsonl"), 1, {"number.jsonl:1: an article must be a JSON object, not number"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, IngestOfWhatIsNotAFileIsRefused) {
  EXPECT_TRUE(exited(cli("ingest no-such-file.jsonl"), 1, {"cannot open no-such-file.jsonl: No such file or directory"}));
  fs::create_directories(dir() / "a-directory");
  EXPECT_TRUE(exited(cli("ingest a-directory"), 1, {"a-directory is a directory; expected a JSON Lines file"}));
  expect_unchanged_and_alive();
}

// A byte order mark and CRLF line ends are how editors on Windows save text: both are read as
// the text they wrap, and the values keep neither.
TEST_F(Issue26Hostile, ByteOrderMarkAndCrlfLineEndsAreReadAsPlainLines) {
  write_file(dir() / "bom-crlf.jsonl", "\xEF\xBB\xBF" R"({"uri": "hostile:bom", "title": "Cocoa arrivals rise"})"
                                       "\r\n" R"({"uri": "hostile:crlf", "title": "Crude stocks fall"})" "\r\n");
  const CmdResult r = cli("ingest bom-crlf.jsonl --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out, nullptr, false).value("upserted", -1), 2) << r.out;
  EXPECT_EQ(sql_value(s_db, "SELECT string_agg(uri || '=' || title, ',' ORDER BY uri) FROM articles WHERE uri LIKE 'hostile:%'"),
            "hostile:bom=Cocoa arrivals rise,hostile:crlf=Crude stocks fall");
  sql_value(s_db, "DELETE FROM articles WHERE uri IN ('hostile:bom', 'hostile:crlf')");
  expect_unchanged_and_alive();
}

// ---- HTTP bodies and requests -----------------------------------------------------------

TEST_F(Issue26Hostile, JsonBodyWithUnknownFieldsIsRefused) {
  EXPECT_TRUE(answered(http("/v1/search", json{{"query", "cocoa"}, {"topK", 3}}), 400, "invalid_argument",
                       {"unknown field \"topK\"; expected query, vector, top_k, where, explain"}));
  EXPECT_TRUE(answered(http("/v1/articles", json{{"article", {{"uri", "hostile:f"}, {"title", "Cocoa"}}}, {"upsert", true}}), 400,
                       "invalid_argument", {"unknown field \"upsert\"; expected article"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, JsonBodyWithADuplicatedKeyIsRefused) {
  // Before, the last value won silently: here a second uri behind the one a proxy may have checked.
  EXPECT_TRUE(answered(http("/v1/articles", R"({"article": {"uri": "hostile:first", "title": "Cocoa", "uri": "hostile:second"}})"),
                       400, "invalid_argument", {"the key \"uri\" appears twice in one object; expected each key once"}));
  EXPECT_TRUE(answered(http("/v1/search", R"({"query": "cocoa", "top_k": 3, "top_k": 1000000})"), 400, "invalid_argument",
                       {"the key \"top_k\" appears twice"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, BodyThatIsNotAJsonObjectIsRefused) {
  EXPECT_TRUE(answered(http("/v1/articles", std::string("{\"article\": ")), 400, "invalid_argument", {"the body is not JSON"}));
  EXPECT_TRUE(answered(http("/v1/articles", std::string("[{\"uri\": \"hostile:arr\", \"title\": \"Cocoa\"}]")), 400, "invalid_argument",
                       {"the body must be a JSON object, not array"}));
  EXPECT_TRUE(answered(http("/v1/articles", std::string("")), 400, "invalid_argument", {"the request needs a JSON object body"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, TenMegabyteBodyOverTheLimitIsA413) {
  // Ten megabytes of one JSON string: refused by its size before it is parsed.
  const std::string body = R"({"query": ")" + std::string(10'000'000, 'a') + "\"}";
  EXPECT_TRUE(answered(http("/v1/search", body), 413, "payload_too_large",
                       {fmt::format("the body is larger than the limit of {} bytes (--max-body-bytes)", k_max_body)}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, JsonSentAsAFormOver8KilobytesNamesTheContentType) {
  // curl -d sends application/x-www-form-urlencoded unless told otherwise; cpp-httplib limits
  // such bodies to 8,192 bytes. Before, the answer named --max-body-bytes, which was not the limit met.
  const std::string body = json{{"article", {{"uri", "hostile:form"}, {"title", "Cocoa"}, {"raw", std::string(9000, 'x')}}}}.dump();
  const std::string request = fmt::format(
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n"
      "Connection: close\r\n\r\n{}",
      body.size(), body);
  const std::string answer = raw_exchange(port(), request);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 413")) << answer;
  const json error = raw_error(answer);
  ASSERT_TRUE(error.is_object()) << answer;
  EXPECT_TRUE(says(error["error"]["message"].get<std::string>(),
                   {"application/x-www-form-urlencoded is limited to 8192 bytes", fmt::format("this one has {}", body.size()),
                    "send JSON as Content-Type: application/json"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, ContentLengthLongerThanTheBodyIsA408AfterTheTimeout) {
  const std::string request =
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"
      R"({"article": {"uri": "hostile:lie-long", "title": "Cocoa)";
  const std::string answer = exchange_raw(port(), request);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 408")) << answer;
  const json error = raw_error(answer);
  ASSERT_TRUE(error.is_object()) << answer;
  EXPECT_EQ(error["error"]["code"], "request_timeout");
  EXPECT_TRUE(says(error["error"]["message"].get<std::string>(), {"did not arrive in full within 1 s (--timeout): 55 of 500 bytes"}));
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, ContentLengthShorterThanTheBodyReadsOnlyThatManyBytes) {
  // The body is cut at 11 bytes ({"article":), which is not JSON; the rest is no request.
  const std::string body = R"({"article": {"uri": "hostile:lie-short", "title": "Cocoa prices rise"}})";
  const std::string request =
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n" + body;
  // Read up to the end of the first answer (the connection then stays open for the next request).
  const std::string answer = exchange_raw(port(), request);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  const json error = raw_error(answer);
  ASSERT_TRUE(error.is_object()) << answer;
  EXPECT_TRUE(says(error["error"]["message"].get<std::string>(), {"the body is not JSON"}));
  EXPECT_EQ(sql_value(s_db, "SELECT count(*) FROM articles WHERE uri = 'hostile:lie-short'"), "0");
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, NegativeContentLengthIsRefusedAtOnce) {
  // Before, cpp-httplib read "-5" as 2^64 - 5, waited --timeout for that body and answered 413.
  const std::string request =
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: -5\r\n"
      "Connection: close\r\n\r\n" R"({"article": {"uri": "hostile:negative", "title": "Cocoa prices rise"}})";
  const auto started = std::chrono::steady_clock::now();
  const std::string answer = raw_exchange(port(), request);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  const json error = raw_error(answer);
  ASSERT_TRUE(error.is_object()) << answer;
  EXPECT_TRUE(says(error["error"]["message"].get<std::string>(),
                   {"Content-Length \"-5\" is not a byte count; expected a decimal number from 0 to 18446744073709551615"}));
  EXPECT_LT(waited, 0.9) << "answered without waiting for --timeout (1 s)";
  for (const char* value : {"12abc", "99999999999999999999999", "+7"}) {
    const std::string again = raw_exchange(
        port(), fmt::format("POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{}}", value));
    EXPECT_TRUE(again.starts_with("HTTP/1.1 400")) << value << ": " << again;
    EXPECT_TRUE(again.contains(fmt::format("Content-Length \\\"{}\\\" is not a byte count", value))) << again;
  }
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, TwoContentLengthsThatDisagreeAreRefused) {
  // Before, the first was used: the body's tail would be read as a second request (smuggling).
  const std::string body = R"({"article": {"uri": "hostile:two-lengths", "title": "Cocoa prices rise"}})";
  const std::string request = fmt::format(
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Content-Length: 11\r\nConnection: close\r\n\r\n{}",
      body.size(), body);
  const std::string answer = raw_exchange(port(), request);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  EXPECT_TRUE(answer.contains(fmt::format("two Content-Length headers that disagree ({} and 11)", body.size()))) << answer;
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, MalformedChunkedBodyIsRefused) {
  const std::string request =
      "POST /v1/articles HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\nzz\r\n" R"({"article": {"uri": "hostile:chunk", "title": "Cocoa"}})" "\r\n0\r\n\r\n";
  const std::string answer = raw_exchange(port(), request);
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 400")) << answer;
  EXPECT_TRUE(answer.contains("the request is not well-formed HTTP/1.1")) << answer;
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, ABadBearerTokenIsRefusedAndNotEchoed) {
  const std::string token = "right-token-26";
  vstore::testing::ServeProcess guarded(dir(), env() + " VSTORE_API_TOKEN='" + token + "'", "", "guarded");
  ASSERT_GT(guarded.port(), 0) << guarded.log();
  const json body{{"article", {{"uri", "hostile:token"}, {"title", "Cocoa prices rise"}}}};
  for (const std::string& wrong : {std::string("wrong-token-26"), std::string(""), token + "x", std::string(5'000, 't')}) {
    const Answer a = call(guarded.port(), "POST", "/v1/articles", body.dump(), wrong);
    EXPECT_TRUE(answered(a, 401, "unauthorized", {"this service needs \"Authorization: Bearer TOKEN\" with the token of VSTORE_API_TOKEN"}))
        << wrong.substr(0, 20);
    if (!wrong.empty()) {
      EXPECT_FALSE(a.raw.contains(wrong)) << "the token sent is not echoed";
    }
  }
  EXPECT_EQ(call(guarded.port(), "GET", "/health", "", token).status, 200);
  EXPECT_TRUE(vstore::testing::alive(guarded.pid()));
  expect_unchanged_and_alive();
}

// ---- configuration ----------------------------------------------------------------------

TEST_F(Issue26Hostile, ConfigurationOutOfRangeStopsEveryCommandBeforeItWrites) {
  write_file(dir() / "config.jsonl", article_line("hostile:config", "Cocoa arrivals rise"));
  struct Case {
    std::string env;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"DB_POOL_SIZE=-1", "DB_POOL_SIZE=\"-1\": expected an integer from 1 to 1000"},
      {"VECTOR_BACKEND=foo", "VECTOR_BACKEND=\"foo\": expected pgvector, chromadb or dual (any case)"},
      {"EMBEDDING_DIM=abc", "EMBEDDING_DIM=\"abc\": expected an integer from 1 to 16000"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(exited(cli("ingest config.jsonl", c.env), 1, {c.says})) << c.env;
    // The service refuses to start rather than run with it (`timeout`, run by env after the
    // settings, ends a service that started after all: exit code 124).
    const CmdResult serve = cli("serve --addr 127.0.0.1:0", c.env + " timeout 30");
    EXPECT_TRUE(exited(serve, 1, {c.says})) << c.env;
  }
  expect_unchanged_and_alive();
}

// ---- model directories ------------------------------------------------------------------

// A copy of the model directory with its small files, and model.safetensors as `safetensors`
// gives: "" links the real one.
fs::path model_copy(const fs::path& to, const std::string& safetensors, bool with_vocab = true) {
  const char* real = std::getenv("VSTORE_TEST_MODEL_DIR");
  EXPECT_NE(real, nullptr) << "VSTORE_TEST_MODEL_DIR must be set (by CTest)";
  if (real == nullptr) return to;
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(real)) {
    if (!e.is_regular_file() || e.path().filename() == "model.safetensors") continue;
    if (!with_vocab && e.path().filename() == "vocab.txt") continue;
    fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
  }
  if (safetensors.empty()) {
    fs::create_symlink(fs::path(real) / "model.safetensors", to / "model.safetensors");
  } else {
    write_file(to / "model.safetensors", safetensors);
  }
  return to;
}

TEST_F(Issue26Hostile, ModelWithAMalformedSafetensorsHeaderIsRefused) {
  write_file(dir() / "model.jsonl", article_line("hostile:model", "Cocoa arrivals rise"));
  struct Case {
    std::string bytes;
    std::string says;
  };
  std::string lying(7, '\xff');
  lying += '\x7f';  // a header of 2^63 - 1 bytes (little-endian)
  std::string not_json(8, '\0');
  not_json[0] = 12;
  const std::vector<Case> cases = {
      {lying + "{}", "header length 9223372036854775807 exceeds the file size 10"},
      {not_json + "not a json!!", "the header is not a JSON object"},
      {"tiny", "model.safetensors"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const fs::path m = model_copy(dir() / fmt::format("model-{}", i), cases[i].bytes);
    const std::string model_env = fmt::format("EMBEDDING_PROVIDER=local VSTORE_MODEL_DIR='{}'", m.string());
    EXPECT_TRUE(exited(cli("ingest model.jsonl", model_env), 1, {"model.safetensors", cases[i].says})) << i;
    EXPECT_TRUE(exited(cli("search cocoa", model_env), 1, {"model.safetensors"})) << i;
  }
  expect_unchanged_and_alive();
}

TEST_F(Issue26Hostile, ModelDirectoryWithoutVocabIsRefused) {
  write_file(dir() / "model.jsonl", article_line("hostile:model", "Cocoa arrivals rise"));
  const fs::path m = model_copy(dir() / "model-novocab", "", false);
  const std::string model_env = fmt::format("EMBEDDING_PROVIDER=local VSTORE_MODEL_DIR='{}'", m.string());
  EXPECT_TRUE(exited(cli("ingest model.jsonl", model_env), 1, {fmt::format("tokenizer file {}/vocab.txt is missing", m.string())}));
  const CmdResult serve = cli("serve --addr 127.0.0.1:0", model_env + " timeout 30");
  EXPECT_TRUE(exited(serve, 1, {"vocab.txt is missing"}));
  expect_unchanged_and_alive();
}

// ---- Chroma directories (migrate-chroma) ------------------------------------------------

// A Chroma 1.0.19 directory (tests/support/make_chroma_dir.py: three collections of 16-d
// vectors, HNSW segments with label-map pickles), written once in the background while the
// other tests run, when this binary will run a test that reads it.
class ChromaSource {
 public:
  static ChromaSource& instance() {
    static ChromaSource source;
    return source;
  }
  void start() {
    if (m_started) return;
    m_started = true;
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    const char* src = std::getenv("VSTORE_SOURCE_DIR");
    if (venvs == nullptr || src == nullptr) return;
    const std::string cmd = fmt::format("'{}/1.0.19/bin/python' '{}/tests/support/make_chroma_dir.py' '{}' '{}.json' >'{}.log' 2>&1",
                                        venvs, src, dir().string(), dir().string(), dir().string());
    m_made = std::async(std::launch::async, [cmd] { return std::system(cmd.c_str()); });
  }
  // The directory once written; empty on failure (the reason in log()).
  fs::path wait() {
    start();
    if (m_made.valid()) m_status = m_made.get();
    return m_status == 0 && fs::exists(dir() / "chroma.sqlite3") ? dir() : fs::path();
  }
  std::string log() const { return vstore::testing::read_text(dir().string() + ".log"); }
  fs::path dir() const { return m_tmp.path / "chroma-1.0.19"; }

 private:
  vstore::testing::TempDir m_tmp;
  bool m_started = false;
  std::future<int> m_made;
  int m_status = -1;
};

// Starts the Chroma fixture at the beginning of the run when this binary (or shard) runs the
// migrate-chroma test.
class StartChromaSource : public ::testing::EmptyTestEventListener {
  void OnTestProgramStart(const ::testing::UnitTest& unit) override {
    for (int i = 0; i < unit.total_test_suite_count(); ++i) {
      const ::testing::TestSuite* suite = unit.GetTestSuite(i);
      for (int j = 0; j < suite->total_test_count(); ++j) {
        const ::testing::TestInfo* t = suite->GetTestInfo(j);
        if (std::string_view(t->test_suite_name()) == "Issue26Hostile" &&
            std::string_view(t->name()) == "DamagedChromaDirectoriesAreRefusedByMigrateChroma" && t->should_run()) {
          ChromaSource::instance().start();
        }
      }
    }
  }
};

[[maybe_unused]] const bool k_chroma_listener = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new StartChromaSource);
  return true;
}();

// The files under `d` (recursively), for "no file was made".
std::set<std::string> files_under(const fs::path& d) {
  std::set<std::string> out;
  std::error_code ec;
  if (!fs::exists(d, ec)) return out;
  for (const auto& e : fs::recursive_directory_iterator(d, ec)) out.insert(e.path().string());
  return out;
}

TEST_F(Issue26Hostile, DamagedChromaDirectoriesAreRefusedByMigrateChroma) {
  const fs::path source = ChromaSource::instance().wait();
  ASSERT_FALSE(source.empty()) << "chromadb 1.0.19 did not write its directory: " << ChromaSource::instance().log();
  // A table of vector(16) in a database of its own, holding three articles.
  const std::string db16 = vstore::testing::PgServer::instance().create_database("issue26chroma");
  const std::string env16 = fmt::format("DATABASE_URL='{}' EMBEDDING_DIM=16", db16);
  ASSERT_EQ(vstore::testing::run_vstore(dir().string(), "schema up", env16).code, 0);
  write_file(dir() / "three.jsonl", article_line("c16:1", "Cocoa arrivals rise") + article_line("c16:2", "Crude stocks fall") +
                                        article_line("c16:3", "Grain exports steady"));
  ASSERT_EQ(vstore::testing::run_vstore(dir().string(), "ingest three.jsonl", env16).code, 0);
  const TableState before = table_state(db16);
  const fs::path reports = dir() / "data";
  const std::set<std::string> files_before = files_under(reports);

  // The vector segment of collection c_cosine (its folder is the one holding header.bin whose
  // id the sqlite names for that collection).
  write_file(dir() / "segment.py", fmt::format("import sqlite3\nc = sqlite3.connect('{}')\nprint(c.execute(\"SELECT s.id FROM segments s "
                                               "JOIN collections c ON c.id = s.collection WHERE c.name = 'c_cosine' AND "
                                               "s.scope = 'VECTOR'\").fetchone()[0])\n",
                                               (source / "chroma.sqlite3").string()));
  const std::string segment = vstore::testing::run_shell(dir().string(), "python3 segment.py").out;
  const std::string seg = segment.substr(0, segment.find_first_of("\r\n"));
  ASSERT_TRUE(fs::exists(source / seg / "header.bin")) << seg;
  ASSERT_TRUE(fs::exists(source / seg / "index_metadata.pickle")) << seg;

  struct Case {
    std::string name;
    std::function<void(const fs::path&)> damage;
    std::string collection;
    std::vector<std::string> says;
  };
  const fs::path pwned = dir() / "PWNED";
  const std::vector<Case> cases = {
      {"truncated data_level0.bin", [&](const fs::path& d) { fs::resize_file(d / seg / "data_level0.bin", 1000); }, "c_cosine",
       {"data_level0.bin has 1000 bytes but its header needs at least", "the file is truncated"}},
      {"corrupted header.bin",
       [&](const fs::path& d) {
         std::fstream f(d / seg / "header.bin", std::ios::binary | std::ios::in | std::ios::out);
         const std::string junk(100, '\xab');
         f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
       },
       "c_cosine", {"header.bin persistence version -1414812757, expected 1"}},
      {"truncated length.bin", [&](const fs::path& d) { fs::resize_file(d / seg / "length.bin", 0); }, "c_cosine",
       {"length.bin has 0 bytes but its header needs at least", "the file is truncated"}},
      {"foreign pickle (a list)",
       [&](const fs::path& d) {
         // pickle.dumps([1, 2], protocol=4)
         write_file(d / seg / "index_metadata.pickle",
                    std::string("\x80\x04\x95\x09\x00\x00\x00\x00\x00\x00\x00]\x94(K\x01K\x02" "e.", 20));
       },
       "c_cosine", {"index_metadata.pickle: opcode 0x5d is not used by either Chroma label-map format"}},
      {"hostile pickle (os.system)",
       [&](const fs::path& d) {
         write_file(d / seg / "index_metadata.pickle", fmt::format("cos\nsystem\n(S'touch {}'\ntR.", pwned.string()));
       },
       "c_cosine", {"index_metadata.pickle: opcode 0x63 is not used by either Chroma label-map format (opcode 0x63 at offset 0)"}},
      {"not a Chroma directory", [&](const fs::path& d) { fs::remove(d / "chroma.sqlite3"); }, "c_cosine",
       {"has no chroma.sqlite3; is it a Chroma persistent directory?"}},
      {"chroma.sqlite3 that is not SQLite", [&](const fs::path& d) { write_file(d / "chroma.sqlite3", "just text, not sqlite\n"); },
       "c_cosine", {"chroma.sqlite3 is not a Chroma database", "file is not a database"}},
      {"chroma.sqlite3 cut to 4 kB", [&](const fs::path& d) { fs::resize_file(d / "chroma.sqlite3", 4096); }, "c_cosine",
       {"chroma.sqlite3 is not a Chroma database", "malformed"}},
      {"directory that does not exist", [](const fs::path& d) { fs::remove_all(d); }, "c_cosine", {"chroma directory", "does not exist"}},
      {"collection that does not exist", [](const fs::path&) {}, "no_such_collection",
       {"no collection no_such_collection in", "(it has: c_cosine, c_ip, c_l2)"}},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    SCOPED_TRACE(c.name);
    const fs::path copy = dir() / fmt::format("chroma-case-{}", i);
    fs::copy(source, copy, fs::copy_options::recursive);
    c.damage(copy);
    const CmdResult r = vstore::testing::run_vstore(
        dir().string(), fmt::format("migrate-chroma --from-dir '{}' --collection {} --model vstore-hash-v2 --insert-missing", copy.string(),
                                    c.collection),
        env16);
    EXPECT_EQ(r.code, 1) << r.err << r.out;
    for (const std::string& w : c.says) EXPECT_TRUE(says(r.err, {w}));
    EXPECT_EQ(table_state(db16), before) << "nothing may be written";
    EXPECT_EQ(files_under(reports), files_before) << "no report or other file is made";
    fs::remove_all(copy);
  }
  EXPECT_FALSE(fs::exists(pwned)) << "the pickle's command must never run";
  // The same command on a sound copy migrates (the fixture is good, the command works).
  const CmdResult good = vstore::testing::run_vstore(
      dir().string(),
      fmt::format("migrate-chroma --from-dir '{}' --collection c_cosine --model vstore-hash-v2 --insert-missing", source.string()), env16);
  EXPECT_EQ(good.code, 0) << good.err << good.out;
  EXPECT_NE(table_state(db16).rows, before.rows);
  vstore::testing::PgServer::instance().drop_database(db16);
  expect_unchanged_and_alive();
}

}  // namespace
