// SPDX-License-Identifier: Apache-2.0
// migrate-chroma --from-url against real Chroma servers (npm chromadb 3.0.12 over API v2, and
// PyPI chromadb 0.5.5 over v1 with a token) and the real PostgreSQL fixture: cosine, l2 and ip
// collections written over HTTP with more records than the server's max_batch_size, updates
// and deletes; every live id arrives bit-exact with metadata and document, deleted ids are
// absent, --verify passes, a second run changes nothing, --resume continues, and a server that
// is down writes nothing; the space is the one the server searches with. Array metadata against
// PyPI chromadb 1.5.9's server, then --from-dir on the directory it wrote.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <httplib.h>

#include "chroma/chroma_http.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "support/chroma_fixture.hpp"
#include "support/migrate_checks.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::ChromaFlavor;
using vstore::testing::ChromaServer;
using vstore::testing::PgServer;
using vstore::testing::float_bits_hex;
using vstore::testing::random_float;
using vstore::testing::same_typed;
using vstore::testing::sql_value;

constexpr int k_dim = 16;
constexpr const char* k_model = "text-embedding-3-small";

// Values whose shortest decimal is the hardest to read back: sub-normals, the extremes,
// decimals that are not exact in binary, and 7.038531e-26 (0x15ae43fd), the one float whose
// shortest decimal rounds wrongly through a plain double-to-float cast.
const std::array<float, 11> k_special = {std::bit_cast<float>(0x15ae43fdU),
                                         0.1f,
                                         1.0f / 3.0f,
                                         -0.0f,
                                         std::numeric_limits<float>::denorm_min(),
                                         std::numeric_limits<float>::min(),
                                         3.0e-39f,
                                         16777215.0f,
                                         1e-7f,
                                         0.3f,
                                         std::nextafter(1.0f, 2.0f)};

// What a record should look like after the migration.
struct Live {
  std::vector<float> vector;
  json metadata = json::object();
  std::optional<std::string> document;
};

// A Chroma collection written over HTTP (the v2 or the v1 API), with the expected live records.
class Collection {
 public:
  Collection(vstore::chroma::ChromaHttp& http, bool v1, std::string name, const std::string& space,
             const json& configuration)
      : m_http(http), m_v1(v1), m_name(std::move(name)) {
    json body = {{"name", m_name}, {"metadata", {{"hnsw:space", space}, {"owner", "tests"}}}};
    if (!configuration.is_null()) body["configuration"] = configuration;
    auto made = m_http.post(collections_path(), body, vstore::chroma::Retry::write);
    EXPECT_TRUE(made) << made.error().to_string();
    if (made) m_id = (*made)["id"].get<std::string>();
  }

  [[nodiscard]] const std::string& name() const { return m_name; }
  [[nodiscard]] const std::map<std::string, Live>& live() const { return m_live; }
  [[nodiscard]] const std::set<std::string>& deleted() const { return m_deleted; }

  // Upserts records `from` .. `to` - 1 (ids "rec-00000" ...), in requests of `batch`.
  void upsert(int from, int to, std::uint32_t seed, int batch) {
    std::mt19937 rng(seed);
    for (int start = from; start < to; start += batch) {
      json ids = json::array(), embeddings = json::array(), metadatas = json::array(), documents = json::array();
      for (int n = start; n < std::min(to, start + batch); ++n) {
        Live rec;
        rec.vector.resize(k_dim);
        for (float& f : rec.vector) f = random_float(rng, -20, 20);
        if (n % 25 == 0) {
          for (std::size_t i = 0; i < k_special.size(); ++i) rec.vector[i] = k_special[i];
        }
        if (n % 11 != 3) {
          rec.metadata = {{"i", n},
                          {"f", n + 0.25},
                          {"whole", 2.0},
                          {"third", 1.0 / 3.0},
                          {"b", n % 2 == 0},
                          {"topic", fmt::format("topic {} \"quoted\" \u00fcml\u00e4ut", n % 7)},
                          {"seed", static_cast<std::int64_t>(seed)}};
        }
        if (n % 13 != 5) rec.document = fmt::format("document {} of {} \u2713 with a\nnewline", n, m_name);
        const std::string id = fmt::format("rec-{:05d}", n);
        ids.push_back(id);
        json vec = json::array();
        for (float f : rec.vector) vec.push_back(f);  // the double of each float, exactly
        embeddings.push_back(std::move(vec));
        metadatas.push_back(rec.metadata.empty() ? json(nullptr) : rec.metadata);
        documents.push_back(rec.document ? json(*rec.document) : json(nullptr));
        // Chroma's upsert merges metadata; every key is sent each time, so this is the result.
        if (auto old = m_live.find(id); old != m_live.end() && rec.metadata.empty()) rec.metadata = old->second.metadata;
        if (auto old = m_live.find(id); old != m_live.end() && !rec.document) rec.document = old->second.document;
        m_live[id] = std::move(rec);
        m_deleted.erase(id);
      }
      const json body = {{"ids", ids}, {"embeddings", embeddings}, {"metadatas", metadatas}, {"documents", documents}};
      auto done = m_http.post(record_path("upsert"), body, vstore::chroma::Retry::write);
      ASSERT_TRUE(done) << done.error().to_string();
    }
  }

  // Deletes every `step`-th live id from `offset`.
  void remove_every(int step, int offset) {
    json ids = json::array();
    int n = 0;
    for (const auto& [id, rec] : m_live) {
      if (n++ % step == offset) ids.push_back(id);
    }
    for (const auto& id : ids) {
      m_live.erase(id.get<std::string>());
      m_deleted.insert(id.get<std::string>());
    }
    auto done = m_http.post(record_path("delete"), json{{"ids", ids}}, vstore::chroma::Retry::write);
    ASSERT_TRUE(done) << done.error().to_string();
  }

  // The vectors the server returns for every live id, read from the raw JSON text of `get` by
  // ids with std::from_chars (decimal straight to the nearest float): an oracle independent of
  // the reader's parse-to-double-then-round path.
  [[nodiscard]] std::map<std::string, std::vector<float>> served(const std::string& url, const std::string& token) const {
    std::map<std::string, std::vector<float>> out;
    httplib::Client http(url);
    httplib::Headers headers;
    if (!token.empty()) {
      headers.emplace("x-chroma-token", token);
      headers.emplace("Authorization", "Bearer " + token);
    }
    std::vector<std::string> all;
    for (const auto& [id, rec] : m_live) all.push_back(id);
    for (std::size_t start = 0; start < all.size(); start += 500) {
      const std::vector<std::string> chunk(all.begin() + static_cast<std::ptrdiff_t>(start),
                                           all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), start + 500)));
      const json body = {{"ids", chunk}, {"include", json::array({"embeddings"})}};
      auto res = http.Post(record_path("get"), headers, body.dump(), "application/json");
      if (!res || res->status != 200) {
        ADD_FAILURE() << "get by ids failed";
        return out;
      }
      if (const std::string bad = vstore::testing::served_embeddings(res->body, out); !bad.empty()) {
        ADD_FAILURE() << bad;
        return out;
      }
    }
    return out;
  }

  [[nodiscard]] std::int64_t server_count() const {
    auto n = m_http.get(record_path("count"));
    EXPECT_TRUE(n) << n.error().to_string();
    return n ? n->get<std::int64_t>() : -1;
  }

 private:
  [[nodiscard]] std::string collections_path() const {
    return m_v1 ? "/api/v1/collections?tenant=default_tenant&database=default_database"
                : "/api/v2/tenants/default_tenant/databases/default_database/collections";
  }
  [[nodiscard]] std::string record_path(std::string_view op) const {
    return m_v1 ? fmt::format("/api/v1/collections/{}/{}", m_id, op)
                : fmt::format("/api/v2/tenants/default_tenant/databases/default_database/collections/{}/{}", m_id, op);
  }

  vstore::chroma::ChromaHttp& m_http;
  bool m_v1;
  std::string m_name;
  std::string m_id;
  std::map<std::string, Live> m_live;
  std::set<std::string> m_deleted;
};

std::unique_ptr<vstore::chroma::ChromaHttp> client(const std::string& url, const std::string& token = "") {
  vstore::chroma::HttpOptions options;
  options.base_url = url;
  options.token = token;
  auto http = vstore::chroma::ChromaHttp::create(options);
  EXPECT_TRUE(http) << http.error().to_string();
  return http ? std::move(*http) : nullptr;
}

std::int64_t max_batch_size(vstore::chroma::ChromaHttp& http, const std::string& prefix) {
  auto checks = http.get(prefix + "/pre-flight-checks");
  EXPECT_TRUE(checks) << checks.error().to_string();
  return checks ? (*checks)["max_batch_size"].get<std::int64_t>() : 0;
}

// The v2 collections, written once per test binary: cosine with a stored embedding function
// and more records than max_batch_size; l2 and ip without one (the model comes from --model).
struct V2Collections {
  std::unique_ptr<vstore::chroma::ChromaHttp> http;
  std::int64_t max_batch = 0;
  std::unique_ptr<Collection> cosine;
  std::unique_ptr<Collection> l2;
  std::unique_ptr<Collection> ip;

  static V2Collections& instance() {
    static V2Collections c;
    return c;
  }

 private:
  V2Collections() {
    http = client(ChromaServer::shared().url());
    max_batch = max_batch_size(*http, "/api/v2");
    const int total = static_cast<int>(max_batch) + 1500;  // > max_batch_size after the deletes
    const json ef = {{"embedding_function", {{"type", "known"}, {"name", "openai"}, {"config", {{"model_name", k_model}}}}}};
    cosine = std::make_unique<Collection>(*http, false, vstore::testing::unique_collection("url-cos"), "cosine", ef);
    cosine->upsert(0, total, 7, 2000);
    cosine->upsert(100, 400, 8, 300);  // updates: new vectors, metadata and documents
    cosine->remove_every(9, 4);
    l2 = std::make_unique<Collection>(*http, false, vstore::testing::unique_collection("url-l2"), "l2", json());
    l2->upsert(0, 2500, 9, 1000);
    l2->upsert(2000, 2600, 10, 600);
    l2->remove_every(7, 2);
    ip = std::make_unique<Collection>(*http, false, vstore::testing::unique_collection("url-ip"), "ip", json());
    ip->upsert(0, 1800, 13, 900);
    ip->upsert(1500, 1900, 14, 400);
    ip->remove_every(8, 5);
  }
};

class MigrateUrlTest : public ::testing::Test {
 protected:
  void SetUp() override { m_target.open("migrate_url", k_dim); }
  void TearDown() override { m_target.close(); }

  [[nodiscard]] std::int64_t count(const std::string& where = "true") const {
    return std::stoll(sql_value(m_conninfo, "SELECT count(*) FROM articles WHERE " + where));
  }

  struct Row {
    std::vector<float> vector;
    json metadata;
    std::optional<std::string> raw;
    std::string model;
  };
  [[nodiscard]] std::map<std::string, Row> rows() const {
    auto conn = vstore::pg::Connection::connect(m_conninfo);
    EXPECT_TRUE(conn.has_value());
    auto res = conn->exec_params("SELECT uri, embedding, vector_metadata::text, raw, embedding_model FROM articles", {}, true);
    EXPECT_TRUE(res.has_value());
    std::map<std::string, Row> out;
    for (int r = 0; r < res->rows(); ++r) {
      Row row;
      if (!res->is_null(r, 1)) {
        EXPECT_TRUE(vstore::pg::decode_vector(res->get(r, 1), row.vector, k_dim));
      }
      row.metadata = res->is_null(r, 2) ? json() : json::parse(res->get(r, 2));
      if (!res->is_null(r, 3)) row.raw = res->text(r, 3);
      row.model = res->text(r, 4);
      out[res->text(r, 0)] = std::move(row);
    }
    return out;
  }

  // The report of a run that inserted every live record of `c` (a fresh table) in `metric`.
  static void expect_all_inserted(const vstore::CollectionReport& r, const Collection& c, const std::string& metric,
                                  const std::string& operator_class) {
    const auto live = static_cast<std::int64_t>(c.live().size());
    EXPECT_EQ(r.count, live);
    EXPECT_EQ(r.migrated, live);
    EXPECT_EQ(r.inserted, live);
    EXPECT_EQ(r.skipped, 0);
    EXPECT_EQ(r.errors, 0);
    EXPECT_EQ(r.metric, metric);
    EXPECT_EQ(r.operator_class, operator_class);
  }

  // Every live id with the server's exact vector (`served`), metadata and document; no deleted
  // id; nothing else. With `input_exact` (l2, and the log) the client's own bytes as well; else
  // (cosine, which Chroma stores normalised) the same vector within float rounding.
  void expect_table_holds(const Collection& c, const std::string& model,
                          const std::map<std::string, std::vector<float>>& served, bool input_exact) const {
    const auto stored = rows();
    EXPECT_EQ(stored.size(), c.live().size());
    EXPECT_EQ(served.size(), c.live().size());
    std::size_t as_served = 0;
    std::size_t as_sent = 0;
    for (const auto& [id, want] : c.live()) {
      auto it = stored.find(id);
      ASSERT_NE(it, stored.end()) << id;
      const std::vector<float>& got = it->second.vector;
      auto from_server = served.find(id);
      ASSERT_NE(from_server, served.end()) << id;
      EXPECT_EQ(float_bits_hex(got), float_bits_hex(from_server->second)) << id << ": not the bytes the server returned";
      as_served += float_bits_hex(got) == float_bits_hex(from_server->second) ? 1 : 0;
      as_sent += float_bits_hex(got) == float_bits_hex(want.vector) ? 1 : 0;
      if (input_exact) {
        EXPECT_EQ(float_bits_hex(got), float_bits_hex(want.vector)) << id << ": not the bytes the client sent";
      } else {
        double norm = 0;
        for (float f : want.vector) norm += static_cast<double>(f) * f;
        ASSERT_EQ(got.size(), want.vector.size()) << id;
        for (std::size_t i = 0; i < got.size(); ++i) {
          EXPECT_NEAR(got[i], want.vector[i], 1e-6 * std::sqrt(norm)) << id << " element " << i;
        }
      }
      EXPECT_TRUE(same_typed(it->second.metadata, want.metadata)) << id << ": " << it->second.metadata.dump() << " vs "
                                                                  << want.metadata.dump();
      EXPECT_EQ(it->second.raw, want.document) << id;
      EXPECT_EQ(it->second.model, model) << id;
    }
    EXPECT_EQ(as_served, c.live().size()) << "vectors bit-exact as the server returns them";
    if (input_exact) {
      EXPECT_EQ(as_sent, c.live().size()) << "vectors bit-exact as the client sent them";
    }
    std::printf("[ figures  ] %s: %zu live, %zu bit-exact as served, %zu bit-exact as sent\n", c.name().c_str(),
                c.live().size(), as_served, as_sent);
    for (const auto& gone : c.deleted()) EXPECT_FALSE(stored.contains(gone)) << gone;
  }

  // --from-url URL --collection NAME --insert-missing --verify.
  [[nodiscard]] static vstore::MigrateOptions url_options(const std::string& url, const std::string& collection) {
    vstore::MigrateOptions o;
    o.from_url = url;
    o.collection = collection;
    o.insert_missing = true;
    o.verify = true;
    return o;
  }

  // The same for a collection of the shared server, in batches of 1,000.
  [[nodiscard]] vstore::MigrateOptions url_options(const Collection& c) const {
    vstore::MigrateOptions o = url_options(ChromaServer::shared().url(), c.name());
    o.batch_size = 1000;
    return o;
  }

  vstore::testing::MigrateTarget m_target;
  std::string& m_conninfo = m_target.conninfo;
  vstore::Config& m_config = m_target.config;
  fs::path& m_data = m_target.data;
};

TEST_F(MigrateUrlTest, ACosineCollectionLargerThanTheBatchLimitArrivesWholeAndBitExact) {
  const auto& cols = V2Collections::instance();
  const Collection& c = *cols.cosine;
  ASSERT_GT(static_cast<std::int64_t>(c.live().size()), cols.max_batch) << "more records than one get may return";
  ASSERT_EQ(c.server_count(), static_cast<std::int64_t>(c.live().size()));
  auto report = vstore::migrate_chroma(m_conninfo, m_config, url_options(c));
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(report->source_kind, "server");
  EXPECT_EQ(report->source, ChromaServer::shared().url());
  EXPECT_NE(report->schema_version.find("api v2"), std::string::npos) << report->schema_version;
  ASSERT_EQ(report->collections.size(), 1U);
  const auto& r = report->collections[0];
  const auto live = static_cast<std::int64_t>(c.live().size());
  expect_all_inserted(r, c, "cosine", "vector_cosine_ops");
  EXPECT_EQ(r.embedding_model, k_model) << "from the collection's embedding function configuration";
  EXPECT_EQ(r.model_source, "chroma");
  EXPECT_EQ(r.source_stats["page_size"], cols.max_batch);
  EXPECT_EQ(r.source_stats["pages"], 2) << r.source_stats.dump();
  EXPECT_TRUE(r.verify.value("passed", false)) << r.verify.dump(1);
  EXPECT_EQ(r.verify.value("rows_checked", 0), live);
  EXPECT_EQ(r.verify.value("vector_mismatch", -1), 0);
  EXPECT_GE(r.verify.value("overlap_at_10", 0.0), 0.95);
  EXPECT_TRUE(fs::exists(report->report_path));
  expect_table_holds(c, k_model, c.served(ChromaServer::shared().url(), ""), false);

  // A second full run changes nothing: no row is rewritten.
  const std::string state = "SELECT string_agg(uri || ctid::text || xmin::text, ',' ORDER BY uri) FROM articles";
  const std::string before = sql_value(m_conninfo, state);
  auto again = vstore::migrate_chroma(m_conninfo, m_config, url_options(c));
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_TRUE(again->ok()) << again->to_json().dump(1);
  EXPECT_EQ(again->collections[0].changed, 0);
  EXPECT_EQ(again->collections[0].inserted, 0);
  EXPECT_EQ(again->collections[0].migrated, live);
  EXPECT_EQ(sql_value(m_conninfo, state), before);
}

TEST_F(MigrateUrlTest, AnL2CollectionReadInSmallPagesArrivesWholeAndBitExact) {
  const Collection& c = *V2Collections::instance().l2;
  auto opts = url_options(c);
  opts.page_size = 250;
  opts.model = "test-model";
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  const auto& r = report->collections[0];
  const auto live = static_cast<std::int64_t>(c.live().size());
  EXPECT_EQ(r.count, live);
  EXPECT_EQ(r.migrated, live);
  EXPECT_EQ(r.metric, "l2");
  EXPECT_EQ(r.operator_class, "vector_l2_ops");
  EXPECT_EQ(r.model_source, "--model");
  EXPECT_EQ(r.source_stats["page_size"], 250);
  EXPECT_EQ(r.source_stats["pages"], live / 250 + 1) << r.source_stats.dump();
  EXPECT_TRUE(r.verify.value("passed", false)) << r.verify.dump(1);
  expect_table_holds(c, "test-model", c.served(ChromaServer::shared().url(), ""), true);
}

TEST_F(MigrateUrlTest, AnIpCollectionArrivesWholeAndBitExactAsSent) {
  const Collection& c = *V2Collections::instance().ip;
  ASSERT_EQ(c.server_count(), static_cast<std::int64_t>(c.live().size()));
  auto opts = url_options(c);
  opts.page_size = 400;
  opts.model = "test-model";
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  ASSERT_EQ(report->collections.size(), 1U);
  const auto& r = report->collections[0];
  const auto live = static_cast<std::int64_t>(c.live().size());
  expect_all_inserted(r, c, "ip", "vector_ip_ops");
  EXPECT_EQ(r.distance_operator, "<#>");
  EXPECT_EQ(r.model_source, "--model");
  EXPECT_EQ(r.source_stats["page_size"], 400);
  EXPECT_EQ(r.source_stats["pages"], live / 400 + 1) << r.source_stats.dump();
  EXPECT_TRUE(r.verify.value("passed", false)) << r.verify.dump(1);
  EXPECT_EQ(r.verify.value("rows_checked", 0), live);
  EXPECT_EQ(r.verify.value("vector_mismatch", -1), 0);
  EXPECT_GE(r.verify.value("overlap_at_10", 0.0), 0.95);
  // ip vectors are stored as sent (only cosine is normalised), so the server returns the
  // client's bytes, flushed or not.
  expect_table_holds(c, "test-model", c.served(ChromaServer::shared().url(), ""), true);
}

TEST_F(MigrateUrlTest, ExistingRowsAreUpdatedOthersSkippedAndAStoppedRunResumes) {
  const Collection& c = *V2Collections::instance().l2;
  const auto live = static_cast<std::int64_t>(c.live().size());
  // 40 of the ids have article rows of the application.
  sql_value(m_conninfo, "INSERT INTO articles (uri, title) SELECT 'rec-' || lpad(g::text, 5, '0'), 'own ' || g FROM "
                        "generate_series(1, 40) g");
  const std::int64_t owned = count();
  auto plan_opts = url_options(c);
  plan_opts.insert_missing = false;
  plan_opts.dry_run = true;
  auto plan = vstore::migrate_chroma(m_conninfo, m_config, plan_opts);
  ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
  const std::int64_t present = std::stoll(sql_value(
      m_conninfo, "SELECT count(*) FROM articles WHERE uri IN ('" + [&] {
        std::string ids;
        for (const auto& [id, rec] : c.live()) ids += (ids.empty() ? "" : "','") + id;
        return ids;
      }() + "')"));
  EXPECT_EQ(plan->collections[0].to_update, present);
  EXPECT_EQ(plan->collections[0].to_skip, live - present);
  EXPECT_EQ(count("embedding IS NOT NULL"), 0) << "a dry run writes nothing";

  auto opts = url_options(c);
  opts.model = "test-model";
  opts.batch_size = 300;
  opts.test_stop_after_batches = 3;
  ASSERT_FALSE(vstore::migrate_chroma(m_conninfo, m_config, opts).has_value());
  EXPECT_GT(count(), owned);
  EXPECT_LT(count(), live);
  opts.test_stop_after_batches = 0;
  opts.resume = true;
  auto resumed = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(resumed.has_value()) << resumed.error().to_string();
  EXPECT_TRUE(resumed->ok()) << resumed->to_json().dump(1);
  EXPECT_EQ(resumed->collections[0].resumed_after, 900);
  EXPECT_EQ(resumed->collections[0].migrated, live);
  EXPECT_EQ(count(), live + owned - present);
  EXPECT_EQ(count("title LIKE 'own %' AND embedding IS NOT NULL"), present) << "the application's rows got their vectors";
  EXPECT_EQ(sql_value(m_conninfo, "SELECT count(DISTINCT uri) FROM articles"), std::to_string(count()));
}

TEST_F(MigrateUrlTest, AServerThatIsDownGivesAClearErrorAndWritesNothing) {
  std::string url;
  {
    ChromaServer server;
    url = server.url();
    auto http = client(url);
    Collection c(*http, false, "down", "l2", json());
    c.upsert(0, 30, 3, 30);
    server.stop();
    m_config.chroma_token = "s3cret-token-value";
    vstore::MigrateOptions opts;
    opts.from_url = url;
    opts.collection = "down";
    opts.insert_missing = true;
    opts.model = "m";
    auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
    ASSERT_FALSE(report.has_value());
    EXPECT_EQ(report.error().code(), vstore::ErrorCode::unavailable) << report.error().to_string();
    EXPECT_NE(report.error().message().find("chroma server " + url), std::string::npos) << report.error().message();
    EXPECT_NE(report.error().message().find("unreachable"), std::string::npos) << report.error().message();
    EXPECT_EQ(report.error().message().find("s3cret"), std::string::npos) << report.error().message();
  }
  EXPECT_EQ(count(), 0);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT to_regclass('vstore_chroma_checkpoints') IS NULL"), "t");
}

// The server stops after the first page of the paged read: the run ends with the same clear
// error, and since everything is read before anything is written, the table is untouched.
// migrate-chroma --from-url of `collection`, read in pages of 50, inserting what is missing.
vstore::MigrateOptions paged_options(const std::string& url, const std::string& collection) {
  vstore::MigrateOptions opts;
  opts.from_url = url;
  opts.collection = collection;
  opts.insert_missing = true;
  opts.model = "m";
  opts.page_size = 50;
  return opts;
}

TEST_F(MigrateUrlTest, AServerThatGoesAwayMidReadGivesAClearErrorAndWritesNothing) {
  ChromaServer server;
  const std::string url = server.url();
  auto http = client(url);
  Collection c(*http, false, "gone", "l2", json());
  c.upsert(0, 300, 7, 100);
  vstore::MigrateOptions opts = paged_options(url, "gone");
  std::vector<std::int64_t> read_calls;
  opts.progress = [&](std::string_view phase, std::int64_t done, std::int64_t total) {
    if (phase != "read") return;
    read_calls.push_back(done);
    if (done > 0 && done < total && server.running()) server.stop();
  };
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value()) << "the read went on without the server";
  EXPECT_FALSE(server.running());
  ASSERT_FALSE(read_calls.empty());
  EXPECT_LT(read_calls.back(), 300) << "the read stopped part-way";
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::unavailable) << report.error().to_string();
  EXPECT_NE(report.error().message().find("chroma server " + url), std::string::npos) << report.error().message();
  EXPECT_EQ(count(), 0);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT to_regclass('vstore_chroma_checkpoints') IS NULL"), "t");
}

// Issue 26, faults: the Chroma server killed (SIGKILL, nothing flushed) part-way through the
// read; once it is back on the same port and directory, the same command ends exact.
TEST_F(MigrateUrlTest, AServerKilledMidReadThenBackTheRerunEndsWholeAndBitExact) {
  ChromaServer server;
  const std::string url = server.url();
  auto http = client(url);
  Collection c(*http, false, "killed", "l2", json());
  c.upsert(0, 300, 11, 100);
  vstore::MigrateOptions opts = paged_options(url, "killed");
  bool killed = false;
  opts.progress = [&](std::string_view phase, std::int64_t done, std::int64_t total) {
    if (phase == "read" && done > 0 && done < total && !killed) {
      server.kill_now();
      killed = true;
    }
  };
  auto first = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(killed);
  ASSERT_FALSE(first.has_value()) << "the read went on without the server";
  EXPECT_NE(first.error().message().find("chroma server " + url), std::string::npos) << first.error().message();
  EXPECT_EQ(count(), 0);

  server.start();
  ASSERT_EQ(server.url(), url);
  opts.progress = nullptr;
  auto again = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(again.has_value()) << again.error().to_string();
  EXPECT_TRUE(again->ok()) << again->to_json().dump(1);
  ASSERT_EQ(again->collections.size(), 1U);
  EXPECT_EQ(again->collections[0].inserted, 300);
  EXPECT_EQ(count(), 300);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT count(DISTINCT uri) FROM articles"), "300");
  expect_table_holds(c, "m", c.served(url, ""), true);
}

TEST_F(MigrateUrlTest, AMissingCollectionIsNamedWithTheOnesThereAre) {
  const Collection& c = *V2Collections::instance().l2;
  auto opts = url_options(c);
  opts.collection = "no-such-collection";
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::not_found) << report.error().to_string();
  EXPECT_NE(report.error().message().find("no collection no-such-collection"), std::string::npos) << report.error().message();
  EXPECT_NE(report.error().message().find(c.name()), std::string::npos) << report.error().message();

  // Without --collection the server path reads CHROMA_COLLECTION.
  opts.collection.reset();
  m_config.chroma_collection = c.name();
  opts.model = "m";
  opts.dry_run = true;
  auto plan = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
  EXPECT_EQ(plan->collections[0].name, c.name());

  opts.from_dir = m_data.string();
  auto both = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(both.has_value());
  EXPECT_EQ(both.error().code(), vstore::ErrorCode::invalid_argument);
  EXPECT_EQ(count(), 0);
}

TEST_F(MigrateUrlTest, TheV1ApiWithATokenMigratesTooAndABadTokenIsRefused) {
  const std::string token = "tok-5a9c2e11";
  ChromaServer server(ChromaFlavor::python_v1, token, "Authorization");
  auto http = client(server.url(), token);
  const std::int64_t max_batch = max_batch_size(*http, "/api/v1");
  ASSERT_GT(max_batch, 0);
  Collection c(*http, true, "v1-l2", "l2", json());
  c.upsert(0, 900, 11, 300);
  c.upsert(850, 950, 12, 100);
  c.remove_every(10, 1);
  vstore::MigrateOptions opts = url_options(server.url(), "v1-l2");
  opts.model = "test-model";
  opts.page_size = 200;

  m_config.chroma_token = "wrong-secret-value";
  auto refused = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find(server.url()), std::string::npos) << refused.error().message();
  EXPECT_NE(refused.error().message().find("CHROMA_TOKEN"), std::string::npos) << refused.error().message();
  EXPECT_EQ(refused.error().message().find("wrong-secret-value"), std::string::npos) << refused.error().message();
  EXPECT_EQ(count(), 0);

  m_config.chroma_token = token;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_NE(report->schema_version.find("api v1, chroma 0.5.5"), std::string::npos) << report->schema_version;
  const auto& r = report->collections[0];
  EXPECT_EQ(r.count, static_cast<std::int64_t>(c.live().size()));
  EXPECT_EQ(r.migrated, r.count);
  EXPECT_EQ(r.source_stats["pages"], r.count / 200 + 1);
  expect_table_holds(c, "test-model", c.served(server.url(), token), true);
}

TEST_F(MigrateUrlTest, ArrayMetadataFromAChroma15ServerArrivesAsServedAndItsStoppedDirectoryAgrees) {
  ChromaServer server(ChromaFlavor::rust_v2_1_5);
  auto http = client(server.url());
  ASSERT_NE(http, nullptr);
  const std::string base = "/api/v2/tenants/default_tenant/databases/default_database/collections";
  auto made = http->post(base, json{{"name", "arrays"}, {"metadata", {{"hnsw:space", "l2"}}}}, vstore::chroma::Retry::write);
  ASSERT_TRUE(made) << made.error().to_string();
  const std::string path = base + "/" + (*made)["id"].get<std::string>();
  std::mt19937 rng(21);
  std::map<std::string, std::vector<float>> sent;
  for (int start = 0; start < 300; start += 100) {
    json ids = json::array(), embeddings = json::array(), metadatas = json::array();
    for (int n = start; n < start + 100; ++n) {
      const std::string id = fmt::format("rec-{:05d}", n);
      std::vector<float> v(k_dim);
      for (float& f : v) f = random_float(rng, -20, 20);
      json md = {{"tags", {fmt::format("t{}", n % 3), "all", fmt::format("t{}", n % 3)}},
                 {"ks", {n, -n, n}},
                 {"ws", {n + 0.25, 2.0}},
                 {"flags", {n % 2 == 0, true}},
                 {"s", "x"}};
      if (n % 10 == 0) md["empty"] = json::array();  // accepted over HTTP, stored as no key
      if (n % 10 == 1) md["mixed"] = {n, 2.5};       // accepted, stored as floats
      ids.push_back(id);
      embeddings.push_back(json(v));
      metadatas.push_back(std::move(md));
      sent[id] = std::move(v);
    }
    auto done = http->post(path + "/upsert", json{{"ids", ids}, {"embeddings", embeddings}, {"metadatas", metadatas}},
                           vstore::chroma::Retry::write);
    ASSERT_TRUE(done) << done.error().to_string();
  }
  // Array -> scalar, scalar -> array, a key deleted by null and one by an empty array.
  json ids = json::array(), metadatas = json::array();
  for (int n = 0; n < 20; ++n) {
    ids.push_back(fmt::format("rec-{:05d}", n));
    metadatas.push_back(json{{"tags", "one"}, {"s", {"now", "array"}}, {"ks", nullptr}, {"ws", json::array()}});
  }
  ASSERT_TRUE(http->post(path + "/update", json{{"ids", ids}, {"metadatas", metadatas}}, vstore::chroma::Retry::write));
  json gone = json::array();
  for (int n = 100; n < 110; ++n) gone.push_back(fmt::format("rec-{:05d}", n));
  ASSERT_TRUE(http->post(path + "/delete", json{{"ids", gone}}, vstore::chroma::Retry::write));

  auto got = http->post(path + "/get", json{{"include", json::array({"metadatas"})}}, vstore::chroma::Retry::read);
  ASSERT_TRUE(got) << got.error().to_string();
  std::map<std::string, json> served;
  for (std::size_t i = 0; i < (*got)["ids"].size(); ++i) served[(*got)["ids"][i].get<std::string>()] = (*got)["metadatas"][i];
  ASSERT_EQ(served.size(), 290U);
  // What Chroma 1.5.9 makes of it (the test fails if a server changes these rules).
  EXPECT_EQ(served.at("rec-00000").dump(), R"({"flags":[true,true],"s":["now","array"],"tags":"one"})");
  EXPECT_TRUE(same_typed(served.at("rec-00021")["mixed"], json{21.0, 2.5})) << served.at("rec-00021").dump();
  EXPECT_FALSE(served.at("rec-00030").contains("empty")) << served.at("rec-00030").dump();
  EXPECT_TRUE(same_typed(served.at("rec-00031")["ws"], json{31.25, 2.0})) << served.at("rec-00031").dump();

  auto expect_rows = [&](const std::string& source) {
    const auto stored = rows();
    EXPECT_EQ(stored.size(), served.size()) << source;
    for (const auto& [id, md] : served) {
      auto it = stored.find(id);
      ASSERT_NE(it, stored.end()) << source << " " << id;
      EXPECT_TRUE(same_typed(it->second.metadata, md)) << source << " " << id << ": " << it->second.metadata.dump()
                                                       << " vs " << md.dump();
      EXPECT_EQ(float_bits_hex(it->second.vector), float_bits_hex(sent.at(id))) << source << " " << id;
    }
  };
  vstore::MigrateOptions opts = url_options(server.url(), "arrays");
  opts.model = "test-model";
  opts.page_size = 64;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  expect_rows("--from-url");

  // The directory the server wrote (its vectors only in the log: fewer than sync_threshold).
  server.stop();
  sql_value(m_conninfo, "TRUNCATE articles, vstore_chroma_checkpoints");
  opts.from_url.clear();
  opts.from_dir = server.data_dir();
  report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  expect_rows("--from-dir");
}

TEST_F(MigrateUrlTest, TheSpaceIsTheOneTheServerSearchesWithHoweverItWasSet) {
  // A configuration alone, or one that disagrees with hnsw:space; the expected space is the one
  // the server's own query uses (distance from [1, 0] to [3, 4]: l2 20, cosine 0.4, ip -2).
  const std::vector<std::pair<json, json>> made = {
      {json::object(), {{"hnsw", {{"space", "ip"}}}}},
      {{{"hnsw:space", "cosine"}}, {{"hnsw", {{"space", "ip"}}}}},
      {{{"hnsw:space", "cosine"}}, {{"hnsw", {{"space", "l2"}}}}},
      {{{"hnsw:space", "cosine"}}, {{"hnsw", {{"space", "l2"}, {"ef_construction", 200}}}}},
  };
  ChromaServer v15(ChromaFlavor::rust_v2_1_5);
  for (const std::string& url : {ChromaServer::shared().url(), v15.url()}) {
    auto http = client(url);
    ASSERT_NE(http, nullptr);
    const std::string base = "/api/v2/tenants/default_tenant/databases/default_database/collections";
    std::vector<std::string> spaces;
    for (const auto& [metadata, configuration] : made) {
      const std::string name = vstore::testing::unique_collection("space");
      json body = {{"name", name}, {"configuration", configuration}};
      if (!metadata.empty()) body["metadata"] = metadata;
      auto col = http->post(base, body, vstore::chroma::Retry::write);
      ASSERT_TRUE(col) << col.error().to_string();
      const std::string path = base + "/" + (*col)["id"].get<std::string>();
      ASSERT_TRUE(http->post(path + "/add", json{{"ids", {"a", "b"}}, {"embeddings", {{1.0, 0.0}, {3.0, 4.0}}}},
                             vstore::chroma::Retry::write));
      auto q = http->post(path + "/query",
                          json{{"query_embeddings", {{1.0, 0.0}}}, {"n_results", 2}, {"include", json::array({"distances"})}},
                          vstore::chroma::Retry::read);
      ASSERT_TRUE(q) << q.error().to_string();
      const double near = (*q)["distances"][0][0].get<double>();
      const double far = (*q)["distances"][0][1].get<double>();
      const std::string expected = std::abs(far - 20) < 1e-4     ? "l2"
                                   : std::abs(far - 0.4) < 1e-4  ? "cosine"
                                   : std::abs(near + 2.0) < 1e-4 ? "ip"
                                                                 : (*q).dump();
      vstore::MigrateOptions opts;
      opts.from_url = url;
      opts.collection = name;
      opts.dry_run = true;
      opts.model = "m";
      auto plan = vstore::migrate_chroma(m_conninfo, m_config, opts);
      ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
      EXPECT_EQ(plan->collections[0].metric, expected) << url << " " << body.dump();
      spaces.push_back(expected);
    }
    // What the servers do, written down: the configuration wins unless it is all defaults.
    EXPECT_EQ(spaces, (std::vector<std::string>{"ip", "ip", "cosine", "l2"})) << url;
  }
}

TEST_F(MigrateUrlTest, TheCommandTakesFromUrlAndPrintsThePlanAndTheSummary) {
  const char* bin = std::getenv("VSTORE_BIN");
  ASSERT_NE(bin, nullptr);
  const Collection& c = *V2Collections::instance().l2;
  auto run = [&](const std::string& args, int& code) {
    const std::string cmd = fmt::format("env DATABASE_URL='{}' VSTORE_DATA_DIR='{}' EMBEDDING_DIM=16 EMBEDDING_PROVIDER=hash "
                                        "CHROMA_COLLECTION='{}' '{}' {} 2>&1",
                                        m_conninfo, m_data.string(), c.name(), bin, args);
    FILE* pipe = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf{};
    while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    const int status = pclose(pipe);
    code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  };
  const std::string url = ChromaServer::shared().url();
  const auto live = c.live().size();
  int code = -1;
  std::string out = run("migrate-chroma --from-url " + url + " --dry-run", code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("chroma server " + url + " (api v2, chroma "), std::string::npos) << out;
  EXPECT_NE(out.find(fmt::format("collection {}: {} records, dimension 16, metric l2 -> vector_l2_ops (<->)", c.name(), live)),
            std::string::npos)
      << out;
  EXPECT_EQ(count(), 0);

  out = run("migrate-chroma --from-url " + url + " --model m --insert-missing --verify", code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(fmt::format("chromadb_total: {}\n  migrated: {}\n  skipped: 0\n  errors: 0", live, live)),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("verify: passed"), std::string::npos) << out;
  EXPECT_EQ(count(), static_cast<std::int64_t>(live));

  out = run("migrate-chroma --from-url " + url + " --from-dir /tmp --model m", code);
  EXPECT_EQ(code, 2) << "both sources is a usage error: " << out;
  out = run("migrate-chroma --model m", code);
  EXPECT_EQ(code, 2) << "no source is a usage error: " << out;
}

}  // namespace
