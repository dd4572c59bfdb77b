// SPDX-License-Identifier: Apache-2.0
// migrate-chroma --from-dir on a directory written by the npm Chroma server (chromadb 3.0.12 +
// chromadb-js-bindings 1.0.5, the Rust 1.0.19 code) over HTTP API v2: cosine, l2 and ip
// collections with adds, updates, upserts, deletes and re-adds, part flushed into the HNSW
// files and the last writes only in the log. The test models when the server persists the
// index (every sync_threshold log rows, counted per write request) and which log rows it
// purges, checks the reader's statistics against that model, and expects every live id with
// the bytes the reader can know: the client's bytes from the log and from l2/ip slots, and
// for cosine slots (stored normalised, their log rows purged) the server's own reconstruction.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <httplib.h>

#include "chroma/chroma_dir.hpp"
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
using vstore::chroma::VectorSource;
using vstore::testing::ChromaServer;
using vstore::testing::PgServer;
using vstore::testing::float_bits_hex;
using vstore::testing::random_float;
using vstore::testing::same_typed;
using vstore::testing::sql_value;

constexpr int k_dim = 16;
constexpr const char* k_spaces[] = {"cosine", "l2", "ip"};
constexpr const char* k_v2 = "/api/v2/tenants/default_tenant/databases/default_database";

// What the test knows of one live record.
struct Expected {
  std::vector<float> sent;     // the vector of the last write that carried one
  std::int64_t vector_seq = 0;  // the log sequence number of that write
  json metadata = json::object();
  std::optional<std::string> document;
};

// One collection written over HTTP, with a model of the server's log: every record of a write
// request is one embeddings_queue row, numbered by a counter shared by all collections of the
// server; the vector segment persists after the request that brings the rows since the last
// persist to sync_threshold or more.
class Writer {
 public:
  Writer(vstore::chroma::ChromaHttp& http, std::int64_t& seq, std::string name, json body, std::int64_t sync_threshold)
      : m_http(http), m_seq(seq), m_name(std::move(name)), m_sync_threshold(sync_threshold) {
    body["name"] = m_name;
    auto made = m_http.post(fmt::format("{}/collections", k_v2), body, vstore::chroma::Retry::write);
    if (!made) {
      ADD_FAILURE() << made.error().to_string();
      return;
    }
    m_id = (*made)["id"].get<std::string>();
    m_configuration = (*made)["configuration_json"];
  }

  // Adds, updates or upserts `ids`. `vectors`: a seed to draw new vectors from, or none (an
  // update of metadata only). `metadata`: per index, null for none. `documents`: likewise.
  void write(const std::string& op, const std::vector<std::string>& ids, std::optional<std::uint32_t> seed,
             const std::vector<json>& metadatas, const std::vector<std::optional<std::string>>& documents) {
    json body = {{"ids", ids}};
    std::vector<std::vector<float>> vectors;
    if (seed) {
      std::mt19937 rng(*seed);
      json embeddings = json::array();
      for (std::size_t n = 0; n < ids.size(); ++n) {
        std::vector<float> v(k_dim);
        for (float& f : v) f = random_float(rng, -12, 11);
        if (n % 40 == 0) {
          v[0] = -0.0f;
          v[1] = std::numeric_limits<float>::denorm_min();
          v[2] = 1.0f / 3.0f;
          v[3] = 0.1f;
        }
        json row = json::array();
        for (float f : v) row.push_back(f);  // the double of each float, exactly
        embeddings.push_back(std::move(row));
        vectors.push_back(std::move(v));
      }
      body["embeddings"] = std::move(embeddings);
    }
    if (!metadatas.empty()) body["metadatas"] = metadatas;
    if (!documents.empty()) {
      json docs = json::array();
      for (const auto& d : documents) docs.push_back(d ? json(*d) : json(nullptr));
      body["documents"] = std::move(docs);
    }
    auto done = m_http.post(fmt::format("{}/collections/{}/{}", k_v2, m_id, op), body, vstore::chroma::Retry::write);
    ASSERT_TRUE(done) << op << ": " << done.error().to_string();
    for (std::size_t n = 0; n < ids.size(); ++n) {
      const std::int64_t seq = ++m_seq;
      auto it = m_live.find(ids[n]);
      const bool present = it != m_live.end();
      if (op == "add" || (op == "upsert" && !present)) {
        ASSERT_FALSE(present) << ids[n];
        Expected rec;
        rec.sent = vectors.at(n);
        rec.vector_seq = seq;
        if (!metadatas.empty() && !metadatas[n].is_null()) rec.metadata = metadatas[n];
        if (!documents.empty()) rec.document = documents[n];
        m_live[ids[n]] = std::move(rec);
        m_deleted.erase(ids[n]);
      } else {
        ASSERT_TRUE(present) << ids[n];
        if (seed) {
          it->second.sent = vectors.at(n);
          it->second.vector_seq = seq;
        }
        // Metadata merges key by key; null deletes a key.
        if (!metadatas.empty() && metadatas[n].is_object()) {
          for (const auto& [k, v] : metadatas[n].items()) {
            if (v.is_null()) {
              it->second.metadata.erase(k);
            } else {
              it->second.metadata[k] = v;
            }
          }
        }
        if (!documents.empty() && documents[n]) it->second.document = documents[n];
      }
    }
    count_rows(ids.size());
  }

  void remove(const std::vector<std::string>& ids) {
    auto done = m_http.post(fmt::format("{}/collections/{}/delete", k_v2, m_id), json{{"ids", ids}},
                            vstore::chroma::Retry::write);
    ASSERT_TRUE(done) << done.error().to_string();
    for (const auto& id : ids) {
      ++m_seq;
      ASSERT_EQ(m_live.erase(id), 1U) << id;
      m_deleted.insert(id);
    }
    count_rows(ids.size());
  }

  // Reads every live record back from the server: vectors from the raw JSON text with
  // std::from_chars (decimal straight to the nearest float32), metadata and documents parsed.
  void read_back(const std::string& url) {
    httplib::Client http(url);
    std::vector<std::string> all;
    for (const auto& [id, rec] : m_live) all.push_back(id);
    for (std::size_t start = 0; start < all.size(); start += 500) {
      const std::vector<std::string> chunk(all.begin() + static_cast<std::ptrdiff_t>(start),
                                           all.begin() + static_cast<std::ptrdiff_t>(std::min(all.size(), start + 500)));
      const json body = {{"ids", chunk}, {"include", json::array({"embeddings", "metadatas", "documents"})}};
      auto res = http.Post(fmt::format("{}/collections/{}/get", k_v2, m_id), body.dump(), "application/json");
      ASSERT_TRUE(res && res->status == 200) << "get by ids failed";
      const json parsed = json::parse(res->body);
      for (std::size_t row = 0; row < parsed["ids"].size(); ++row) {
        const std::string id = parsed["ids"][row].get<std::string>();
        m_served_metadata[id] = parsed["metadatas"][row].is_null() ? json::object() : parsed["metadatas"][row];
        m_served_document[id] = parsed["documents"][row].is_null()
                                    ? std::nullopt
                                    : std::optional<std::string>(parsed["documents"][row].get<std::string>());
      }
      const std::string bad = vstore::testing::served_embeddings(res->body, m_served);
      ASSERT_TRUE(bad.empty()) << bad;
    }
  }

  [[nodiscard]] const std::string& name() const { return m_name; }
  [[nodiscard]] const json& configuration() const { return m_configuration; }
  [[nodiscard]] const std::map<std::string, Expected>& live() const { return m_live; }
  [[nodiscard]] const std::set<std::string>& deleted() const { return m_deleted; }
  [[nodiscard]] const std::map<std::string, std::vector<float>>& served() const { return m_served; }
  [[nodiscard]] const std::map<std::string, json>& served_metadata() const { return m_served_metadata; }
  [[nodiscard]] const std::map<std::string, std::optional<std::string>>& served_document() const {
    return m_served_document;
  }
  /// The sequence number up to which the model says the HNSW files hold the log (-1: never).
  [[nodiscard]] std::int64_t persisted_seq() const { return m_persisted_seq; }
  [[nodiscard]] std::int64_t last_seq() const { return m_last_seq; }
  [[nodiscard]] std::int64_t rows() const { return m_rows; }
  [[nodiscard]] std::int64_t rows_persisted() const { return m_rows_persisted; }
  [[nodiscard]] std::int64_t persists() const { return m_persists; }

 private:
  void count_rows(std::size_t n) {
    m_rows += static_cast<std::int64_t>(n);
    m_last_seq = m_seq;
    m_since_persist += static_cast<std::int64_t>(n);
    if (m_since_persist >= m_sync_threshold) {
      m_persisted_seq = m_seq;
      m_rows_persisted = m_rows;
      m_since_persist = 0;
      ++m_persists;
    }
  }

  vstore::chroma::ChromaHttp& m_http;
  std::int64_t& m_seq;
  std::string m_name;
  std::int64_t m_sync_threshold;
  std::string m_id;
  json m_configuration;
  std::map<std::string, Expected> m_live;
  std::set<std::string> m_deleted;
  std::map<std::string, std::vector<float>> m_served;
  std::map<std::string, json> m_served_metadata;
  std::map<std::string, std::optional<std::string>> m_served_document;
  std::int64_t m_since_persist = 0;
  std::int64_t m_persisted_seq = -1;
  std::int64_t m_rows_persisted = 0;
  std::int64_t m_rows = 0;
  std::int64_t m_last_seq = 0;
  std::int64_t m_persists = 0;
};

std::vector<std::string> id_range(const std::string& prefix, int from, int to) {
  std::vector<std::string> out;
  for (int n = from; n < to; ++n) out.push_back(fmt::format("{}{:04d}", prefix, n));
  return out;
}

std::vector<json> metadatas(const std::vector<std::string>& for_ids, const std::string& tag) {
  std::vector<json> out;
  for (std::size_t n = 0; n < for_ids.size(); ++n) {
    const int k = std::stoi(for_ids[n].substr(for_ids[n].size() - 4));
    if (k % 11 == 3) {
      out.emplace_back(nullptr);
    } else {
      out.push_back({{"i", k}, {"f", k + 0.25}, {"whole", 2.0}, {"b", k % 2 == 0}, {"s", fmt::format("{} \u00e9 {}", tag, k % 7)}});
    }
  }
  return out;
}

std::vector<std::optional<std::string>> documents(const std::vector<std::string>& for_ids, const std::string& tag) {
  std::vector<std::optional<std::string>> out;
  for (const auto& id : for_ids) {
    const int k = std::stoi(id.substr(id.size() - 4));
    if (k % 13 == 5) {
      out.emplace_back(std::nullopt);
    } else {
      out.emplace_back(fmt::format("{} {} \u2713 with a\nnewline", tag, id));
    }
  }
  return out;
}

// The same history for every collection: 1,140 rows, then 255 after them.
void write_history(Writer& w, std::uint32_t seed) {
  for (int start = 0; start < 600; start += 200) {
    auto batch = id_range("a-", start, start + 200);
    w.write("add", batch, seed++, metadatas(batch, "first"), documents(batch, "first"));
  }
  w.remove(id_range("a-", 500, 520));
  {
    auto batch = id_range("a-", 10, 30);
    w.write("update", batch, seed++, metadatas(batch, "early update"), documents(batch, "early update"));
  }
  for (int start = 600; start < 1100; start += 100) {
    auto batch = id_range("a-", start, start + 100);
    w.write("add", batch, seed++, metadatas(batch, "second"), documents(batch, "second"));
  }
  {
    auto batch = id_range("a-", 0, 50);
    w.write("update", batch, seed++, metadatas(batch, "late update"), documents(batch, "late update"));
  }
  {
    // Metadata only: keys merged, "b" deleted (null), documents untouched.
    auto batch = id_range("a-", 100, 120);
    std::vector<json> md(batch.size(), json{{"s", "meta only"}, {"n", -3}, {"b", nullptr}});
    w.write("update", batch, std::nullopt, md, {});
  }
  {
    auto batch = id_range("a-", 200, 215);
    for (auto& id : id_range("u-", 0, 15)) batch.push_back(id);
    w.write("upsert", batch, seed++, metadatas(batch, "upserted"), documents(batch, "upserted"));
  }
  w.remove(id_range("a-", 300, 340));
  {
    auto batch = id_range("a-", 300, 310);
    w.write("add", batch, seed++, metadatas(batch, "re-added"), documents(batch, "re-added"));
  }
  {
    auto batch = id_range("a-", 500, 505);
    w.write("add", batch, seed++, metadatas(batch, "back"), documents(batch, "back"));
  }
}

// The directory, written once per test binary by a real npm Chroma server, then stopped.
class NpmDirectory {
 public:
  static NpmDirectory& instance() {
    static NpmDirectory dir;
    return dir;
  }

  [[nodiscard]] std::string path() const { return m_server->data_dir(); }
  [[nodiscard]] const Writer& collection(const std::string& space) const { return *m_writers.at(space); }
  /// What ChromaDir::open said while the server was still running.
  [[nodiscard]] const std::optional<vstore::Error>& refused_while_running() const { return m_refused; }

 private:
  NpmDirectory() {
    m_server = std::make_unique<ChromaServer>();
    vstore::chroma::HttpOptions options;
    options.base_url = m_server->url();
    auto http = vstore::chroma::ChromaHttp::create(options);
    if (!http) {
      std::fprintf(stderr, "%s\n", http.error().to_string().c_str());
      std::abort();
    }
    // cosine through the legacy `hnsw:space` metadata with the default sync_threshold (1000);
    // l2 and ip through `configuration`, ip with a sync_threshold of 250 (persists 5 times).
    const json cosine = {{"metadata", {{"hnsw:space", "cosine"}, {"owner", "tests"}}}};
    const json l2 = {{"metadata", {{"owner", "tests"}}}, {"configuration", {{"hnsw", {{"space", "l2"}}}}}};
    const json ip = {{"metadata", {{"owner", "tests"}}},
                     {"configuration", {{"hnsw", {{"space", "ip"}, {"sync_threshold", 250}}}}}};
    m_writers["cosine"] = std::make_unique<Writer>(**http, m_seq, "npm_cosine", cosine, 1000);
    m_writers["l2"] = std::make_unique<Writer>(**http, m_seq, "npm_l2", l2, 1000);
    m_writers["ip"] = std::make_unique<Writer>(**http, m_seq, "npm_ip", ip, 250);
    std::uint32_t seed = 100;
    for (const char* space : k_spaces) {
      write_history(*m_writers[space], seed);
      seed += 100;
    }
    for (const char* space : k_spaces) m_writers[space]->read_back(m_server->url());
    auto open = vstore::chroma::ChromaDir::open(path());
    if (!open) m_refused = open.error();
    m_server->stop();
  }

  std::unique_ptr<ChromaServer> m_server;
  std::int64_t m_seq = 0;
  std::map<std::string, std::unique_ptr<Writer>> m_writers;
  std::optional<vstore::Error> m_refused;
};

// How the reader must have obtained one record's vector, and the bytes it must hold.
struct Expectation {
  VectorSource source;
  std::vector<float> vector;
};

// The log keeps the rows from the vector segment's sequence number on (older ones are purged),
// so: a vector written after the last persist comes from the log, as sent; a vector flushed
// into the files is as sent for l2/ip, and for cosine Chroma's de-normalised reconstruction,
// unless its row is the one at the persisted sequence number, which the log still holds.
Expectation expect_vector(const Writer& w, const std::string& space, const std::string& id) {
  const Expected& rec = w.live().at(id);
  const std::int64_t persisted = w.persisted_seq();
  if (rec.vector_seq > persisted) return {VectorSource::wal, rec.sent};
  if (space == "cosine") {
    if (rec.vector_seq == persisted) return {VectorSource::wal, rec.sent};
    return {VectorSource::hnsw, w.served().at(id)};
  }
  return {VectorSource::hnsw, rec.sent};
}

vstore::Result<vstore::chroma::Snapshot> read_collection(const std::string& dir, const std::string& name) {
  VS_TRY_ASSIGN(auto d, vstore::chroma::ChromaDir::open(dir));
  VS_TRY_ASSIGN(auto cols, d.collections());
  for (const auto& c : cols) {
    if (c.name == name) return d.read(c);
  }
  return vstore::fail(vstore::ErrorCode::not_found, "no collection " + name);
}

std::string space_name(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

TEST(NpmChromaDirectory, TheServerHeldItWhileRunningAndLetGoWhenStopped) {
  const auto& dir = NpmDirectory::instance();
  ASSERT_TRUE(dir.refused_while_running().has_value()) << "a directory the live server holds must be refused";
  EXPECT_EQ(dir.refused_while_running()->code(), vstore::ErrorCode::conflict);
  EXPECT_NE(dir.refused_while_running()->message().find("copy"), std::string::npos);
  auto d = vstore::chroma::ChromaDir::open(dir.path());
  ASSERT_TRUE(d.has_value()) << d.error().to_string();
  // The Rust 1.0.19 schema: sysdb up to 00009, metadb 00005 (INTEGER seq ids).
  EXPECT_EQ(d->schema_version(), "sysdb 9, metadb 5, embeddings_queue 2");
  auto cols = d->collections();
  ASSERT_TRUE(cols.has_value()) << cols.error().to_string();
  ASSERT_EQ(cols->size(), 3U);
  for (const auto& c : *cols) {
    const std::string space = c.name.substr(4);
    EXPECT_EQ(c.space, space) << c.name;
    EXPECT_EQ(c.dimension.value_or(-1), k_dim) << c.name;
    EXPECT_FALSE(c.embedding_model.has_value()) << c.name;
  }
  const json& configuration = dir.collection("ip").configuration();
  ASSERT_TRUE(configuration.contains("hnsw")) << configuration.dump();
  EXPECT_EQ(configuration["hnsw"].value("sync_threshold", 0), 250) << "the server took the configuration";
}

class NpmDirSpaceTest : public ::testing::TestWithParam<std::string> {};

TEST_P(NpmDirSpaceTest, ReaderFindsTheFlushedAndTheLoggedRecordsWhereTheServerPutThem) {
  const std::string space = GetParam();
  const auto& dir = NpmDirectory::instance();
  const Writer& w = dir.collection(space);
  ASSERT_GT(w.persisted_seq(), 0) << "the history is long enough for at least one persist";
  ASSERT_LT(w.persisted_seq(), w.last_seq()) << "and the last writes come after it";
  auto snap = read_collection(dir.path(), w.name());
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  const auto& stats = snap->stats;
  EXPECT_EQ(snap->collection.space, space);
  EXPECT_EQ(snap->dimension, static_cast<std::size_t>(k_dim));
  EXPECT_EQ(stats.label_map_format, "rust");
  EXPECT_EQ(stats.vector_max_seq_id, w.persisted_seq()) << "the server persists after the request that reaches "
                                                            "sync_threshold rows since the last persist";
  EXPECT_EQ(stats.metadata_max_seq_id, w.last_seq()) << "the metadata segment applies every write at once";
  // Purged up to, not including, the persisted sequence number; the rest is replayed.
  EXPECT_EQ(stats.wal_rows, w.rows() - w.rows_persisted() + 1);
  EXPECT_EQ(stats.wal_replayed, w.rows() - w.rows_persisted());
  EXPECT_GT(stats.hnsw_slots, 0);
  EXPECT_GE(stats.hnsw_deleted, 20) << "the deletes before the first persist are tombstones in the files";

  ASSERT_EQ(snap->records.size(), w.live().size());
  std::map<VectorSource, int> by_source;
  int cosine_reconstructed_differs = 0;
  int exact_from_log = 0;
  for (const auto& rec : snap->records) {
    ASSERT_TRUE(w.live().contains(rec.id)) << rec.id << " is not live";
    const Expectation want = expect_vector(w, space, rec.id);
    EXPECT_EQ(rec.source, want.source) << rec.id;
    EXPECT_EQ(float_bits_hex(rec.vector), float_bits_hex(want.vector)) << rec.id << " from " << (want.source == VectorSource::wal ? "log" : "hnsw");
    ++by_source[rec.source];
    const Expected& sent = w.live().at(rec.id);
    if (want.source == VectorSource::hnsw && space == "cosine") {
      cosine_reconstructed_differs += float_bits_hex(rec.vector) != float_bits_hex(sent.sent) ? 1 : 0;
      double norm = 0;
      for (float f : sent.sent) norm += static_cast<double>(f) * f;
      for (std::size_t i = 0; i < rec.vector.size(); ++i) {
        EXPECT_NEAR(rec.vector[i], sent.sent[i], 1e-6 * std::sqrt(norm)) << rec.id << " element " << i;
      }
    }
    if (space == "cosine" && sent.vector_seq == w.persisted_seq()) ++exact_from_log;
    EXPECT_TRUE(same_typed(rec.metadata, w.served_metadata().at(rec.id)))
        << rec.id << ": " << rec.metadata.dump() << " vs " << w.served_metadata().at(rec.id).dump();
    EXPECT_TRUE(same_typed(rec.metadata, sent.metadata)) << rec.id << ": " << rec.metadata.dump() << " vs "
                                                         << sent.metadata.dump();
    EXPECT_EQ(rec.document, w.served_document().at(rec.id)) << rec.id;
    EXPECT_EQ(rec.document, sent.document) << rec.id;
    EXPECT_FALSE(rec.uri.has_value()) << rec.id;
  }
  for (const auto& gone : w.deleted()) {
    EXPECT_FALSE(std::any_of(snap->records.begin(), snap->records.end(), [&](const auto& r) { return r.id == gone; }))
        << gone;
  }
  EXPECT_FALSE(w.deleted().empty());
  EXPECT_GT(by_source[VectorSource::hnsw], 0);
  EXPECT_GT(by_source[VectorSource::wal], 0);
  EXPECT_EQ(stats.exact_from_log, exact_from_log);
  if (space == "cosine") {
    EXPECT_GT(cosine_reconstructed_differs, 0) << "the files hold normalised vectors, so some reconstructions differ";
    // The persisting request ends with an add, so exactly one flushed slot gets the bytes sent
    // back from the one log row the purge keeps.
    EXPECT_EQ(exact_from_log, 1);
  }
  std::printf("[ figures  ] %s: %zu live, %d from the HNSW files, %d from the log, persisted at seq %lld of %lld "
              "(%lld persists), %lld log rows kept, %lld slots, %lld dead; cosine reconstructions that differ from "
              "the bytes sent: %d\n",
              w.name().c_str(), w.live().size(), by_source[VectorSource::hnsw], by_source[VectorSource::wal],
              static_cast<long long>(w.persisted_seq()), static_cast<long long>(w.last_seq()),
              static_cast<long long>(w.persists()), static_cast<long long>(stats.wal_rows),
              static_cast<long long>(stats.hnsw_slots), static_cast<long long>(stats.hnsw_deleted),
              cosine_reconstructed_differs);
}

class NpmDirMigrateTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { m_target.open("migrate_npm", k_dim); }
  void TearDown() override { m_target.close(); }

  vstore::testing::MigrateTarget m_target;
  std::string& m_conninfo = m_target.conninfo;
  vstore::Config& m_config = m_target.config;
  fs::path& m_data = m_target.data;
};

TEST_P(NpmDirMigrateTest, EveryLiveIdArrivesWithTheBytesTheDirectoryHoldsAndDeletedIdsDoNot) {
  const std::string space = GetParam();
  const auto& dir = NpmDirectory::instance();
  const Writer& w = dir.collection(space);
  vstore::MigrateOptions opts;
  opts.from_dir = dir.path();
  opts.collection = w.name();
  opts.model = "test-model";
  opts.insert_missing = true;
  opts.verify = true;
  opts.batch_size = 400;  // several batches, the last one partial
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(report->source_kind, "directory");
  ASSERT_EQ(report->collections.size(), 1U);
  const auto& c = report->collections[0];
  const auto live = static_cast<std::int64_t>(w.live().size());
  EXPECT_EQ(c.count, live);
  EXPECT_EQ(c.migrated, live);
  EXPECT_EQ(c.inserted, live);
  EXPECT_EQ(c.skipped, 0);
  EXPECT_EQ(c.errors, 0);
  EXPECT_EQ(c.metric, space);
  EXPECT_EQ(c.model_source, "--model");
  EXPECT_TRUE(c.verify.value("passed", false)) << c.verify.dump(1);
  EXPECT_EQ(c.verify.value("rows_checked", 0), live);
  EXPECT_EQ(c.verify.value("vector_mismatch", -1), 0);
  EXPECT_GE(c.verify.value("overlap_at_10", 0.0), 0.95);

  auto conn = vstore::pg::Connection::connect(m_conninfo);
  ASSERT_TRUE(conn.has_value()) << conn.error().to_string();
  auto res = conn->exec_params("SELECT uri, embedding, vector_metadata::text, raw, embedding_model FROM articles", {}, true);
  ASSERT_TRUE(res.has_value()) << res.error().to_string();
  EXPECT_EQ(res->rows(), live);
  std::set<std::string> seen;
  std::int64_t exact = 0;
  for (int r = 0; r < res->rows(); ++r) {
    const std::string id = res->text(r, 0);
    seen.insert(id);
    ASSERT_TRUE(w.live().contains(id)) << id << " is not live";
    ASSERT_FALSE(res->is_null(r, 1)) << id;
    std::vector<float> got;
    ASSERT_TRUE(vstore::pg::decode_vector(res->get(r, 1), got, k_dim).has_value()) << id;
    const Expectation want = expect_vector(w, space, id);
    EXPECT_EQ(float_bits_hex(got), float_bits_hex(want.vector)) << id;
    exact += float_bits_hex(got) == float_bits_hex(want.vector) ? 1 : 0;
    const json metadata = res->is_null(r, 2) ? json() : json::parse(res->get(r, 2));
    EXPECT_TRUE(same_typed(metadata, w.served_metadata().at(id))) << id << ": " << metadata.dump() << " vs "
                                                                  << w.served_metadata().at(id).dump();
    const std::optional<std::string> raw = res->is_null(r, 3) ? std::nullopt : std::optional<std::string>(res->text(r, 3));
    EXPECT_EQ(raw, w.served_document().at(id)) << id;
    EXPECT_EQ(res->text(r, 4), "test-model") << id;
  }
  EXPECT_EQ(exact, live);
  EXPECT_EQ(seen.size(), w.live().size());
  for (const auto& gone : w.deleted()) EXPECT_FALSE(seen.contains(gone)) << gone;
}

INSTANTIATE_TEST_SUITE_P(AllSpaces, NpmDirSpaceTest, ::testing::Values("cosine", "l2", "ip"), space_name);
INSTANTIATE_TEST_SUITE_P(AllSpaces, NpmDirMigrateTest, ::testing::Values("cosine", "l2", "ip"), space_name);

}  // namespace
