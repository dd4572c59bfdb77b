// SPDX-License-Identifier: Apache-2.0
// migrate-chroma against real Chroma directories written by each pinned chromadb (0.4.24,
// 0.5.23, 0.6.3, 1.0.19, 1.5.9, venvs from scripts/setup_chroma_py.sh) and the real PostgreSQL
// fixture: every live id, bit-exact vectors, equal metadata (1.5.9: array values too) and
// documents, deleted ids absent, for every version and space; the space Chroma searches with
// however it was set (configuration, hnsw:space, both); a 1.0.19 directory that 1.5.9 opened (schema
// upgraded) read as 1.5.9 returns it; skip vs --insert-missing; idempotent re-runs;
// SIGKILL + --resume; corrupt and live directories refused with nothing written.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <limits>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chroma/chroma_dir.hpp"
#include "macro/bench.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "support/migrate_checks.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::PgServer;
using vstore::testing::same_typed;
using vstore::testing::sql_value;

constexpr const char* k_versions[] = {"0.4.24", "0.5.23", "0.6.3", "1.0.19", "1.5.9"};
constexpr const char* k_spaces[] = {"cosine", "l2", "ip"};
constexpr int k_dim = 16;

int shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The directories, written once per test binary into one temporary root.
class ChromaDirs {
 public:
  static ChromaDirs& instance() {
    static ChromaDirs dirs;
    return dirs;
  }
  fs::path dir(const std::string& version) const { return m_root / ("chroma-" + version); }
  const json& truth(const std::string& version) const { return m_truth.at(version); }
  fs::path root() const { return m_root; }
  ~ChromaDirs() {
    std::error_code ec;
    fs::remove_all(m_root, ec);
  }

 private:
  ChromaDirs() {
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    const char* src = std::getenv("VSTORE_SOURCE_DIR");
    if (!venvs || !src) {
      std::fprintf(stderr, "VSTORE_TEST_CHROMA_PY and VSTORE_SOURCE_DIR must be set (by CTest)\n");
      std::abort();
    }
    std::string tmpl = (fs::temp_directory_path() / "vstore-chroma-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    m_root = tmpl;
    std::string cmd;
    for (const char* v : k_versions) {
      const fs::path python = fs::path(venvs) / v / "bin" / "python";
      if (!fs::exists(python)) {
        std::fprintf(stderr, "no chromadb %s venv at %s: run scripts/setup.sh\n", v, python.c_str());
        std::abort();
      }
      // The writers run in parallel; each is a separate process that exits before reading.
      cmd += fmt::format("( '{}' '{}/tests/support/make_chroma_dir.py' '{}' '{}.json' >'{}.log' 2>&1 || echo "
                         "'chromadb {} failed' ) & ",
                         python.string(), src, dir(v).string(), dir(v).string(), dir(v).string(), v);
    }
    cmd += "wait";
    FILE* pipe = popen(cmd.c_str(), "r");
    std::array<char, 512> buf{};
    std::string out;
    while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    pclose(pipe);
    for (const char* v : k_versions) {
      std::ifstream in(dir(v).string() + ".json");
      if (!in) {
        std::ifstream log(dir(v).string() + ".log");
        std::string text((std::istreambuf_iterator<char>(log)), {});
        std::fprintf(stderr, "chromadb %s did not write its directory: %s\n%s\n", v, out.c_str(), text.c_str());
        std::abort();
      }
      m_truth[v] = json::parse(in);
    }
  }
  fs::path m_root;
  std::map<std::string, json> m_truth;
};

std::string hex(const std::vector<float>& v) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * 4; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

const json& truth_collection(const json& truth, const std::string& name) {
  for (const auto& c : truth["collections"]) {
    if (c["name"] == name) return c;
  }
  static const json none;
  return none;
}

// The live records of a collection in the truth file of a version (more than 100 here).
std::int64_t live_count(const std::string& version, const std::string& name) {
  const auto n = static_cast<std::int64_t>(truth_collection(ChromaDirs::instance().truth(version), name)["live"].size());
  EXPECT_GT(n, 100);
  return n;
}

// After a run that stopped part-way: the table at `conninfo` holds `rows` rows and the
// checkpoint names exactly them (rows_done, and last_id = the greatest uri in byte order).
void expect_checkpoint_at(const std::string& conninfo, std::int64_t rows) {
  EXPECT_EQ(sql_value(conninfo, "SELECT count(*) FROM articles"), std::to_string(rows));
  EXPECT_EQ(sql_value(conninfo, "SELECT rows_done FROM vstore_chroma_checkpoints"), std::to_string(rows));
  EXPECT_EQ(sql_value(conninfo, "SELECT max(uri COLLATE \"C\") FROM articles"),
            sql_value(conninfo, "SELECT last_id FROM vstore_chroma_checkpoints"));
}

vstore::Result<vstore::chroma::Snapshot> read_collection(const fs::path& dir, const std::string& name,
                                                         bool defer_hnsw_vectors = false) {
  VS_TRY_ASSIGN(auto d, vstore::chroma::ChromaDir::open(dir.string()));
  VS_TRY_ASSIGN(auto cols, d.collections());
  for (const auto& c : cols) {
    if (c.name == name) return d.read(c, {}, defer_hnsw_vectors);
  }
  return vstore::fail(vstore::ErrorCode::not_found, "no collection " + name);
}

struct Case {
  std::string version;
  std::string space;
};

void PrintTo(const Case& c, std::ostream* os) { *os << "chromadb " << c.version << " " << c.space; }

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string v = info.param.version;
  std::replace(v.begin(), v.end(), '.', '_');
  return "chromadb_" + v + "_" + info.param.space;
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const char* v : k_versions) {
    for (const char* s : k_spaces) out.push_back({v, s});
  }
  return out;
}

class ChromaVersionTest : public ::testing::TestWithParam<Case> {};

TEST_P(ChromaVersionTest, ReaderReturnsExactlyTheLiveRecordsChromaReturns) {
  const auto& [version, space] = GetParam();
  auto& dirs = ChromaDirs::instance();
  const json& truth = truth_collection(dirs.truth(version), "c_" + space);
  ASSERT_FALSE(truth.is_null());
  auto snap = read_collection(dirs.dir(version), "c_" + space);
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  EXPECT_EQ(snap->collection.space, space);
  EXPECT_EQ(snap->dimension, static_cast<std::size_t>(k_dim));
  ASSERT_EQ(snap->records.size(), truth["live"].size());
  std::set<std::string> ids;
  int from_wal = 0;
  int from_hnsw = 0;
  for (std::size_t i = 0; i < snap->records.size(); ++i) {
    const auto& rec = snap->records[i];
    const auto& want = truth["live"][i];
    ids.insert(rec.id);
    ASSERT_EQ(rec.id, want["id"].get<std::string>());
    // Bytes the client sent, where Chroma still holds them (the log, and HNSW for l2/ip, which
    // store vectors unchanged); Chroma's own get() bytes for cosine slots (stored normalised).
    const bool exact_input = rec.source == vstore::chroma::VectorSource::wal || space != "cosine";
    const std::string expected = exact_input ? want["input"].get<std::string>() : want["chroma"].get<std::string>();
    EXPECT_EQ(hex(rec.vector), expected) << rec.id << " from " << (exact_input ? "input" : "chroma get");
    EXPECT_TRUE(same_typed(rec.metadata, want["metadata"])) << rec.id << ": " << rec.metadata.dump() << " vs "
                                                            << want["metadata"].dump();
    const std::optional<std::string> doc =
        want["document"].is_null() ? std::nullopt : std::optional<std::string>(want["document"].get<std::string>());
    EXPECT_EQ(rec.document, doc) << rec.id;
    (rec.source == vstore::chroma::VectorSource::wal ? from_wal : from_hnsw)++;
  }
  for (const auto& gone : truth["deleted"]) EXPECT_FALSE(ids.contains(gone.get<std::string>())) << gone;
  EXPECT_FALSE(truth["deleted"].empty());
  // The directory mixes flushed HNSW slots and records that are only in the log.
  EXPECT_GT(snap->stats.hnsw_slots, 0);
  EXPECT_GT(from_wal, 0);
  if (space == "cosine" && version == "0.4.24") {
    // 0.4.x never purges the log, so every normalised cosine slot gets the client's bytes back.
    EXPECT_EQ(from_hnsw, 0);
    EXPECT_GT(snap->stats.exact_from_log, 100);
  } else {
    EXPECT_GT(from_hnsw, 0);
  }
  EXPECT_GT(snap->stats.wal_replayed, 0);
}

// migrate-chroma reads with the HNSW vectors deferred and lets its writers copy them record by
// record: read through vector_of, and filled in two halves on two threads, they must be the
// bytes of a read that copies them at once (which the test above checks against Chroma).
TEST_P(ChromaVersionTest, DeferredVectorsReadOnTwoThreadsAreTheBytesOfAnEagerRead) {
  const auto& [version, space] = GetParam();
  auto& dirs = ChromaDirs::instance();
  auto eager = read_collection(dirs.dir(version), "c_" + space);
  auto deferred = read_collection(dirs.dir(version), "c_" + space, /*defer_hnsw_vectors=*/true);
  ASSERT_TRUE(eager.has_value()) << eager.error().to_string();
  ASSERT_TRUE(deferred.has_value()) << deferred.error().to_string();
  ASSERT_EQ(deferred->records.size(), eager->records.size());
  std::size_t waiting = 0, hnsw = 0;
  for (const auto& rec : deferred->records) {
    hnsw += rec.source == vstore::chroma::VectorSource::hnsw ? 1 : 0;
    waiting += rec.vector.empty() ? 1 : 0;
    // Only HNSW slots wait; vectors from the log (and cosine slots whose log bytes were found) are there.
    if (rec.vector.empty()) {
      EXPECT_EQ(rec.source, vstore::chroma::VectorSource::hnsw) << rec.id;
    }
  }
  EXPECT_LE(waiting, hnsw);  // (a cosine slot compared with older log bytes that differ has its vector already)
  if (space != "cosine") {
    EXPECT_EQ(waiting, hnsw);
  }
  if (hnsw > 0) {
    EXPECT_GT(waiting, 0U) << "nothing was deferred";
  }
  // What a migration writer does: each record's vector through vector_of, one scratch buffer
  // per thread, two threads on two halves; the records themselves stay as they are.
  const std::size_t half = deferred->records.size() / 2;
  std::vector<std::string> seen(deferred->records.size());
  auto look = [&](std::size_t from, std::size_t to) {
    std::vector<float> scratch;
    for (std::size_t i = from; i < to; ++i) {
      const auto vec = deferred->vector_of(i, scratch);
      seen[i] = hex(std::vector<float>(vec.begin(), vec.end()));
    }
  };
  std::thread other([&] { look(half, deferred->records.size()); });
  look(0, half);
  other.join();
  std::size_t still_waiting = 0;
  for (const auto& rec : deferred->records) still_waiting += rec.vector.empty() ? 1 : 0;
  EXPECT_EQ(still_waiting, waiting) << "vector_of must not fill the records";
  for (std::size_t i = 0; i < eager->records.size(); ++i) {
    EXPECT_EQ(seen[i], hex(eager->records[i].vector)) << eager->records[i].id;
  }
  // Filled in two halves on two threads (what the verification and the id table use), they
  // are the same bytes.
  std::thread second([&] { deferred->fill_vectors(half, deferred->records.size()); });
  deferred->fill_vectors(0, half);
  second.join();
  deferred->fill_vectors(0, deferred->records.size());  // a second fill changes nothing
  for (std::size_t i = 0; i < eager->records.size(); ++i) {
    const auto& a = eager->records[i];
    const auto& b = deferred->records[i];
    ASSERT_EQ(a.id, b.id);
    EXPECT_EQ(hex(b.vector), hex(a.vector)) << a.id;
    EXPECT_EQ(b.source, a.source) << a.id;
    EXPECT_EQ(b.metadata, a.metadata) << a.id;
    EXPECT_EQ(b.document, a.document) << a.id;
  }
  EXPECT_EQ(deferred->stats.exact_from_log, eager->stats.exact_from_log);
}

INSTANTIATE_TEST_SUITE_P(AllVersionsAndSpaces, ChromaVersionTest, ::testing::ValuesIn(all_cases()), case_name);


// ---- migration into PostgreSQL --------------------------------------------------------------

// A fresh database with a vector(16) `articles` table, a data dir for reports, and helpers.
class MigrateTest : public ::testing::Test {
 protected:
  void SetUp() override { m_target.open("migrate", k_dim); }
  void TearDown() override { m_target.close(); }

  vstore::MigrateOptions options(const std::string& version, const std::string& collection) const {
    vstore::MigrateOptions o;
    o.from_dir = ChromaDirs::instance().dir(version).string();
    o.collection = collection;
    o.model = "test-model";
    return o;
  }

  // --insert-missing from `dir`, a copy of the directory of `version` that the test changed.
  vstore::MigrateOptions copy_options(const std::string& version, const std::string& collection, const fs::path& dir) const {
    auto o = options(version, collection);
    o.from_dir = dir.string();
    o.insert_missing = true;
    return o;
  }

  // Finishes a stopped run of `opts` with --resume --verify; the run must succeed and be ok.
  std::optional<vstore::MigrateReport> finish_resumed(vstore::MigrateOptions opts) const {
    opts.test_stop_after_batches = 0;
    opts.resume = true;
    opts.verify = true;
    auto done = vstore::migrate_chroma(m_conninfo, m_config, opts);
    if (!done) {
      ADD_FAILURE() << done.error().to_string();
      return std::nullopt;
    }
    EXPECT_TRUE(done->ok()) << done->to_json().dump(1);
    return std::move(*done);
  }

  // --insert-missing in batches of 20 with `writers` connections.
  vstore::MigrateOptions small_batches(const std::string& version, const std::string& name, int writers) const {
    auto opts = options(version, name);
    opts.insert_missing = true;
    opts.writers = writers;
    opts.batch_size = 20;
    return opts;
  }

  void expect_checkpoint_at(std::int64_t rows) const { ::expect_checkpoint_at(m_conninfo, rows); }

  // finish_resumed(), then: `expected` rows, each once, all migrated without errors, verified.
  void expect_resumed_to(const vstore::MigrateOptions& opts, std::int64_t expected) const {
    auto done = finish_resumed(opts);
    ASSERT_TRUE(done.has_value());
    EXPECT_EQ(count(), expected);
    EXPECT_EQ(sql_value(m_conninfo, "SELECT count(DISTINCT uri) FROM articles"), std::to_string(expected));
    EXPECT_EQ(done->collections[0].migrated, expected);
    EXPECT_EQ(done->collections[0].errors, 0);
    EXPECT_TRUE(done->collections[0].verify.value("passed", false)) << done->collections[0].verify.dump(1);
  }

  std::int64_t count(const std::string& where = "true") const {
    return std::stoll(sql_value(m_conninfo, "SELECT count(*) FROM articles WHERE " + where));
  }

  // uri -> (embedding bytes as hex of float32 little-endian, vector_metadata, raw, model)
  struct Row {
    std::string vector_hex;
    json metadata;
    std::optional<std::string> raw;
    std::string model;
  };
  std::map<std::string, Row> rows() const {
    auto conn = vstore::pg::Connection::connect(m_conninfo);
    EXPECT_TRUE(conn.has_value());
    auto res = conn->exec_params("SELECT uri, embedding, vector_metadata::text, raw, embedding_model FROM articles", {}, true);
    EXPECT_TRUE(res.has_value());
    std::map<std::string, Row> out;
    for (int r = 0; r < res->rows(); ++r) {
      Row row;
      std::vector<float> v;
      if (!res->is_null(r, 1)) {
        EXPECT_TRUE(vstore::pg::decode_vector(res->get(r, 1), v, k_dim).has_value());
      }
      row.vector_hex = hex(v);
      row.metadata = res->is_null(r, 2) ? json() : json::parse(res->get(r, 2));
      if (!res->is_null(r, 3)) row.raw = res->text(r, 3);
      row.model = res->text(r, 4);
      out[res->text(r, 0)] = std::move(row);
    }
    return out;
  }

  vstore::testing::MigrateTarget m_target;
  std::string& m_conninfo = m_target.conninfo;
  vstore::Config& m_config = m_target.config;
  fs::path& m_data = m_target.data;
};

class MigrateVersionTest : public MigrateTest, public ::testing::WithParamInterface<Case> {};

TEST_P(MigrateVersionTest, EveryLiveIdArrivesBitExactWithMetadataAndDocument) {
  const auto& [version, space] = GetParam();
  const std::string name = "c_" + space;
  const json& truth = truth_collection(ChromaDirs::instance().truth(version), name);
  auto snap = read_collection(ChromaDirs::instance().dir(version), name);
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  auto opts = options(version, name);
  opts.insert_missing = true;
  opts.verify = true;
  opts.batch_size = 37;  // several batches, the last one partial
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  ASSERT_EQ(report->collections.size(), 1U);
  const auto& c = report->collections[0];
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(c.count, static_cast<std::int64_t>(truth["live"].size()));
  EXPECT_EQ(c.migrated, c.count);
  EXPECT_EQ(c.inserted, c.count);
  EXPECT_EQ(c.skipped, 0);
  EXPECT_EQ(c.errors, 0);
  EXPECT_EQ(c.metric, space);
  EXPECT_TRUE(c.verify.value("passed", false)) << c.verify.dump(1);
  EXPECT_GE(c.verify.value("overlap_at_10", 0.0), 0.95);
  EXPECT_TRUE(fs::exists(report->report_path));

  const auto stored = rows();
  ASSERT_EQ(stored.size(), truth["live"].size());
  for (std::size_t i = 0; i < truth["live"].size(); ++i) {
    const auto& want = truth["live"][i];
    const auto& rec = snap->records[i];
    auto it = stored.find(want["id"].get<std::string>());
    ASSERT_NE(it, stored.end()) << want["id"];
    const bool exact_input = rec.source == vstore::chroma::VectorSource::wal || space != "cosine";
    EXPECT_EQ(it->second.vector_hex, exact_input ? want["input"].get<std::string>() : want["chroma"].get<std::string>())
        << want["id"];
    EXPECT_TRUE(same_typed(it->second.metadata, want["metadata"])) << it->second.metadata.dump();
    const std::optional<std::string> doc =
        want["document"].is_null() ? std::nullopt : std::optional<std::string>(want["document"].get<std::string>());
    EXPECT_EQ(it->second.raw, doc);
    EXPECT_EQ(it->second.model, "test-model");
  }
  for (const auto& gone : truth["deleted"]) EXPECT_FALSE(stored.contains(gone.get<std::string>())) << gone;
}

INSTANTIATE_TEST_SUITE_P(AllVersionsAndSpaces, MigrateVersionTest, ::testing::ValuesIn(all_cases()), case_name);

// The JSON type names of the array elements in `metadata` ("string", "int", "float", "boolean").
std::set<std::string> array_element_kinds(const json& metadata) {
  std::set<std::string> kinds;
  for (const auto& [k, v] : metadata.items()) {
    if (!v.is_array()) continue;
    for (const auto& e : v) kinds.insert(e.is_number_integer() ? "int" : e.is_number_float() ? "float" : e.type_name());
  }
  return kinds;
}

TEST_F(MigrateTest, ArrayMetadataOfChroma15ArrivesAsTypedArraysAndVerifyComparesThem) {
  const json& truth = truth_collection(ChromaDirs::instance().truth("1.5.9"), "c_l2");
  // The directory really holds arrays of all four element types, in the order Chroma returns.
  std::set<std::string> kinds;
  std::int64_t with_ws = 0;
  for (const auto& r : truth["live"]) {
    const auto k = array_element_kinds(r["metadata"]);
    kinds.insert(k.begin(), k.end());
    if (r["metadata"].contains("ws")) ++with_ws;
  }
  EXPECT_EQ(kinds, (std::set<std::string>{"boolean", "float", "int", "string"}));
  ASSERT_GT(with_ws, 200);
  {
    auto d = vstore::chroma::ChromaDir::open(ChromaDirs::instance().dir("1.5.9").string());
    ASSERT_TRUE(d.has_value()) << d.error().to_string();
    EXPECT_EQ(d->schema_version(), "sysdb 10, metadb 6, embeddings_queue 2");
  }
  auto snap = read_collection(ChromaDirs::instance().dir("1.5.9"), "c_l2");
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  std::map<std::string, json> read;
  for (const auto& rec : snap->records) read[rec.id] = rec.metadata;
  EXPECT_EQ(read.at("r012").dump(), R"({"b":true,"f":12.5,"flags":[false,false,true],"i":12,"n":[-3,3],"s":"meta only",)"
                                    R"("tags":["t0","all","t0"],"ws":[12.25,12.0]})");
  EXPECT_EQ(read.at("r000")["s"], json::array({"updated", "as", "array"})) << "a scalar turned into an array";
  EXPECT_EQ(read.at("r000")["tags"], "one tag") << "an array turned into a scalar";
  EXPECT_FALSE(read.at("r010").contains("ks")) << "an array key deleted by None";

  auto opts = options("1.5.9", "c_l2");
  opts.insert_missing = true;
  opts.verify = true;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(count("jsonb_typeof(vector_metadata->'ws') = 'array'"), with_ws);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT vector_metadata->>'ws' FROM articles WHERE uri = 'r012'"), "[12.25, 12.0]");
  EXPECT_EQ(sql_value(m_conninfo, "SELECT vector_metadata->>'flags' FROM articles WHERE uri = 'r012'"),
            "[false, false, true]");

  // Rows whose arrays PostgreSQL changes on the way in (an integral float stored as an int, an
  // array reversed) must fail --verify: element types and order count.
  sql_value(m_conninfo, "TRUNCATE articles, vstore_chroma_checkpoints");
  sql_value(m_conninfo,
            "CREATE FUNCTION mangle() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.uri IN ('r012', 'r013') THEN NEW.vector_metadata := jsonb_set(NEW.vector_metadata, '{ws,1}', "
            "to_jsonb((NEW.vector_metadata->'ws'->>1)::numeric::bigint)); END IF; "
            "IF NEW.uri = 'r014' THEN NEW.vector_metadata := jsonb_set(NEW.vector_metadata, '{tags}', "
            "'[\"t2\", \"t2\", \"all\"]'); END IF; RETURN NEW; END $$; "
            "CREATE TRIGGER mangle BEFORE INSERT OR UPDATE ON articles FOR EACH ROW EXECUTE FUNCTION mangle()");
  auto mangled = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(mangled.has_value()) << mangled.error().to_string();
  EXPECT_FALSE(mangled->ok());
  const auto& v = mangled->collections[0].verify;
  EXPECT_FALSE(v.value("passed", true)) << v.dump(1);
  EXPECT_EQ(v.value("metadata_mismatch", 0), 3) << v.dump(1);
}

TEST_F(MigrateTest, TheSpaceIsTheOneChromaSearchesWithHoweverItWasSet) {
  const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
  ASSERT_NE(venvs, nullptr);
  // Collections whose space comes from the configuration alone, or from a configuration and an
  // hnsw:space that disagree; the expected space is the one Chroma's own query uses, told apart
  // by the distance from [1, 0] to [3, 4]: l2 20, cosine 0.4, ip -2. 1.0 keeps the space in
  // collections.config_json_str; 1.5 writes that as {} and keeps it (and the embedding
  // function) in collections.schema_str. A 0.6.3 collection with hnsw:space that 1.5.9 then
  // opened keeps its 0.x config (which says l2) and is searched by the metadata's space.
  const std::string make = fmt::format(
      "import json, sys, chromadb; from chromadb.config import Settings\n"
      "c = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))\n"
      "made = {{'cfg_ip': ({{}}, {{'space': 'ip'}}), 'cfg_default_ef': ({{}}, {{'space': 'cosine'}}),\n"
      "        'meta_cos_cfg_ip': ({{'hnsw:space': 'cosine'}}, {{'space': 'ip'}}),\n"
      "        'meta_cos_cfg_l2': ({{'hnsw:space': 'cosine'}}, {{'space': 'l2'}}),\n"
      "        'meta_cos_cfg_l2_ef200': ({{'hnsw:space': 'cosine'}}, {{'space': 'l2', 'ef_construction': 200}})}}\n"
      "if len(sys.argv) > 2:\n"
      "    made = {{'old_cos': ({{'hnsw:space': 'cosine'}}, None)}}\n"
      "for name, (md, hnsw) in made.items():\n"
      "    kw = {{'embedding_function': None}} if name != 'cfg_default_ef' else {{}}\n"
      "    if hnsw: kw['configuration'] = {{'hnsw': hnsw}}\n"
      "    col = c.create_collection(name=name, metadata=md or None, **kw)\n"
      "    col.add(ids=['a', 'b'], embeddings=[[1.0, 0.0], [3.0, 4.0]])\n");
  const std::string ask = fmt::format(
      "import json, sys, chromadb; from chromadb.config import Settings\n"
      "c = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))\n"
      "out = {{}}\n"
      "for col in c.list_collections():\n"
      "    d = col.query(query_embeddings=[[1.0, 0.0]], n_results=2, include=['distances'])['distances'][0]\n"
      "    far = max(d)\n"
      "    out[col.name] = 'l2' if abs(far - 20) < 1e-4 else 'cosine' if abs(far - 0.4) < 1e-4 else 'ip' if abs(min(d) + 2) < 1e-4 else str(d)\n"
      "json.dump(out, open(sys.argv[2], 'w'))\n");
  std::ofstream(m_data / "make.py") << make;
  std::ofstream(m_data / "ask.py") << ask;
  auto python = [&](const std::string& version, const std::string& args) {
    return shell(fmt::format("'{}/{}/bin/python' {} >>'{}' 2>&1", venvs, version, args, (m_data / "python.log").string()));
  };
  for (const char* version : {"1.0.19", "1.5.9", "0.6.3"}) {
    const fs::path dir = m_data / fmt::format("configured-{}", version);
    const fs::path answer = m_data / fmt::format("spaces-{}.json", version);
    if (std::string(version) == "0.6.3") {
      ASSERT_EQ(python(version, fmt::format("'{}' '{}' old", (m_data / "make.py").string(), dir.string())), 0);
      ASSERT_EQ(python("1.5.9", fmt::format("'{}' '{}' '{}'", (m_data / "ask.py").string(), dir.string(), answer.string())), 0);
    } else {
      ASSERT_EQ(python(version, fmt::format("'{}' '{}'", (m_data / "make.py").string(), dir.string())), 0) << version;
      ASSERT_EQ(python(version, fmt::format("'{}' '{}' '{}'", (m_data / "ask.py").string(), dir.string(), answer.string())), 0);
    }
    const json chroma_space = json::parse(std::ifstream(answer));
    auto d = vstore::chroma::ChromaDir::open(dir.string());
    ASSERT_TRUE(d.has_value()) << d.error().to_string();
    auto cols = d->collections();
    ASSERT_TRUE(cols.has_value()) << cols.error().to_string();
    ASSERT_EQ(cols->size(), chroma_space.size()) << version;
    for (const auto& c : *cols) {
      EXPECT_EQ(c.space, chroma_space.value(c.name, "?")) << version << " " << c.name;
      EXPECT_EQ(c.embedding_model, c.name == "cfg_default_ef" ? std::optional<std::string>("all-MiniLM-L6-v2") : std::nullopt)
          << version << " " << c.name;
      auto snap = d->read(c);
      ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
      EXPECT_EQ(snap->records.size(), 2U);
    }
    std::printf("[ figures  ] chromadb %s searches with: %s\n", version, chroma_space.dump().c_str());
  }
  // What Chroma does, written down: the configuration wins unless it is all defaults.
  const json v15 = json::parse(std::ifstream(m_data / "spaces-1.5.9.json"));
  EXPECT_EQ(v15, (json{{"cfg_ip", "ip"}, {"cfg_default_ef", "cosine"}, {"meta_cos_cfg_ip", "ip"}, {"meta_cos_cfg_l2", "cosine"},
                       {"meta_cos_cfg_l2_ef200", "l2"}}));
  EXPECT_EQ(json::parse(std::ifstream(m_data / "spaces-0.6.3.json")), (json{{"old_cos", "cosine"}}));
}

TEST_F(MigrateTest, IdsWithoutAnArticleRowAreSkippedUnlessInsertMissing) {
  // 50 of the ids have article rows of the application; the rest have none.
  sql_value(m_conninfo, "INSERT INTO articles (uri, title) SELECT 'r' || lpad(g::text, 3, '0'), 'own title ' || g "
                        "FROM generate_series(100, 149) g");
  auto plan_opts = options("0.6.3", "c_l2");
  plan_opts.dry_run = true;
  auto plan = vstore::migrate_chroma(m_conninfo, m_config, plan_opts);
  ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
  const auto total = plan->collections[0].count;
  EXPECT_EQ(plan->collections[0].to_update, 50);
  EXPECT_EQ(plan->collections[0].to_skip, total - 50);
  EXPECT_EQ(count("embedding IS NOT NULL"), 0) << "a dry run writes nothing";

  auto opts = options("0.6.3", "c_l2");
  opts.verify = true;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  const auto& c = report->collections[0];
  EXPECT_EQ(c.migrated, 50);
  EXPECT_EQ(c.skipped, total - 50);
  EXPECT_EQ(c.inserted, 0);
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(count(), 50);
  EXPECT_EQ(count("embedding IS NOT NULL"), 50);
  EXPECT_EQ(count("title LIKE 'own title %'"), 50) << "the application's columns are kept";
}

TEST_F(MigrateTest, ASecondFullRunChangesNothing) {
  auto opts = options("1.0.19", "c_cosine");
  opts.insert_missing = true;
  auto first = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(first.has_value()) << first.error().to_string();
  const std::string before = sql_value(m_conninfo, "SELECT string_agg(uri || ctid::text || xmin::text, ',' ORDER BY uri) FROM articles");
  auto second = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(second.has_value()) << second.error().to_string();
  EXPECT_EQ(second->collections[0].changed, 0);
  EXPECT_EQ(second->collections[0].inserted, 0);
  EXPECT_EQ(second->collections[0].migrated, first->collections[0].migrated);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT string_agg(uri || ctid::text || xmin::text, ',' ORDER BY uri) FROM articles"), before);
}

// An article row the application inserts while the migration runs, for an id of a later batch:
// that batch's direct COPY meets a unique violation, rolls back and is redone through the merge,
// which gives the application's row its vector and keeps its columns. No row is lost or doubled.
TEST_F(MigrateTest, ARowInsertedByTheApplicationMidRunIsUpdatedNotDuplicated) {
  const json& live = truth_collection(ChromaDirs::instance().truth("0.6.3"), "c_l2")["live"];
  std::vector<std::string> ids;
  for (const auto& rec : live) ids.push_back(rec["id"].get<std::string>());
  std::sort(ids.begin(), ids.end());
  ASSERT_GT(ids.size(), 100U);
  const std::string raced = ids.back();  // in the last batch
  std::string raced_input;
  for (const auto& rec : live) {
    if (rec["id"] == raced) raced_input = rec["input"].get<std::string>();  // l2: the client's bytes
  }
  auto opts = options("0.6.3", "c_l2");
  opts.insert_missing = true;
  opts.verify = true;
  opts.batch_size = 20;
  opts.test_batch_delay_ms = 40;
  vstore::Result<vstore::MigrateReport> report = vstore::fail(vstore::ErrorCode::internal, "not run");
  std::thread run([&] { report = vstore::migrate_chroma(m_conninfo, m_config, opts); });
  // Wait for the first committed batch, then insert the row the migration will meet later.
  for (int i = 0; i < 500 && count("embedding IS NOT NULL") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(count("embedding IS NOT NULL"), 0);
  EXPECT_EQ(count(fmt::format("uri = '{}'", raced)), 0) << "the migration got there first; the test needs a slower run";
  sql_value(m_conninfo, fmt::format("INSERT INTO articles (uri, title) VALUES ('{}', 'the application''s title')", raced));
  run.join();
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  const auto& c = report->collections[0];
  const auto total = static_cast<std::int64_t>(ids.size());
  EXPECT_EQ(c.migrated, total);
  EXPECT_EQ(c.inserted, total - 1) << "the raced id was updated, not inserted";
  EXPECT_EQ(c.verify["documents_checked"], total - 1) << "the rows the merge inserted are checked too";
  EXPECT_EQ(c.errors, 0);
  EXPECT_EQ(count(), total);
  EXPECT_EQ(count("embedding IS NOT NULL"), total);
  EXPECT_EQ(sql_value(m_conninfo, fmt::format("SELECT title FROM articles WHERE uri = '{}'", raced)),
            "the application's title");
  const auto stored = rows();
  EXPECT_EQ(stored.at(raced).vector_hex, raced_input);
}

TEST_F(MigrateTest, ResumeAfterAStopAtSeveralPointsEndsWithExactlyTheRightRows) {
  const auto expected = static_cast<std::int64_t>(truth_collection(ChromaDirs::instance().truth("0.5.23"), "c_ip")["live"].size());
  for (std::size_t stop_after : {1U, 4U, 9U}) {
    auto opts = options("0.5.23", "c_ip");
    opts.insert_missing = true;
    opts.batch_size = 20;
    opts.test_stop_after_batches = stop_after;
    auto stopped = vstore::migrate_chroma(m_conninfo, m_config, opts);
    ASSERT_FALSE(stopped.has_value());
    // Whole batches only: the rows done so far are what the checkpoint says.
    EXPECT_EQ(count(), static_cast<std::int64_t>(20 * stop_after));
    opts.test_stop_after_batches = 0;
    opts.resume = true;
    opts.verify = true;
    auto resumed = vstore::migrate_chroma(m_conninfo, m_config, opts);
    ASSERT_TRUE(resumed.has_value()) << resumed.error().to_string();
    EXPECT_EQ(resumed->collections[0].resumed_after, static_cast<std::int64_t>(20 * stop_after));
    EXPECT_EQ(resumed->collections[0].migrated, expected);
    EXPECT_TRUE(resumed->ok()) << resumed->to_json().dump(1);
    EXPECT_EQ(count(), expected);
    EXPECT_EQ(sql_value(m_conninfo, "SELECT count(DISTINCT uri) FROM articles"), std::to_string(expected));
    sql_value(m_conninfo, "TRUNCATE articles, vstore_chroma_checkpoints");
  }
}

// Runs the vstore binary in the background; returns its pid.
pid_t spawn_vstore(const std::vector<std::string>& args, const std::string& conninfo, const fs::path& data) {
  const char* bin = std::getenv("VSTORE_BIN");
  EXPECT_NE(bin, nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    setenv("DATABASE_URL", conninfo.c_str(), 1);
    setenv("VSTORE_DATA_DIR", data.c_str(), 1);
    setenv("EMBEDDING_DIM", "16", 1);
    setenv("EMBEDDING_PROVIDER", "hash", 1);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(bin));
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::freopen("/dev/null", "w", stdout);
    std::freopen("/dev/null", "w", stderr);
    execv(bin, argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(MigrateTest, SigkillAtSeveralPointsThenResumeGivesExactlyTheRightRowsAndNoDuplicates) {
  const auto expected = static_cast<std::int64_t>(truth_collection(ChromaDirs::instance().truth("0.4.24"), "c_cosine")["live"].size());
  const std::string dir = ChromaDirs::instance().dir("0.4.24").string();
  const std::vector<std::string> base = {"migrate-chroma", "--from-dir", dir, "--collection", "c_cosine", "--model",
                                         "test-model", "--insert-missing", "--batch-size", "10"};
  std::int64_t last_done = 0;
  for (std::int64_t kill_at : {10, 60, 150}) {
    auto args = base;
    args.insert(args.end(), {"--resume", "--test-batch-delay-ms", "100"});
    const pid_t pid = spawn_vstore(args, m_conninfo, m_data);
    std::int64_t done = 0;
    for (int i = 0; i < 3000 && done < kill_at; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      if (sql_value(m_conninfo, "SELECT to_regclass('vstore_chroma_checkpoints') IS NOT NULL") != "t") continue;
      const std::string v = sql_value(m_conninfo, "SELECT max(rows_done) FROM vstore_chroma_checkpoints");
      done = v.empty() ? 0 : std::stoll(v);
    }
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    EXPECT_EQ(wait_exit(pid), -1) << "the run must still have been going when killed";
    done = std::stoll(sql_value(m_conninfo, "SELECT rows_done FROM vstore_chroma_checkpoints"));
    EXPECT_GE(done, kill_at);
    EXPECT_LT(done, expected);
    EXPECT_GT(done, last_done);
    last_done = done;
    // Every committed batch is whole and nothing past the checkpoint is visible.
    EXPECT_EQ(count(), done);
  }
  auto args = base;
  args.insert(args.end(), {"--resume", "--verify"});
  EXPECT_EQ(wait_exit(spawn_vstore(args, m_conninfo, m_data)), 0);
  EXPECT_EQ(count(), expected);
  EXPECT_EQ(count("embedding IS NOT NULL AND embedding_model = 'test-model'"), expected);
  // A second full run (no --resume) changes nothing.
  const std::string before = sql_value(m_conninfo, "SELECT string_agg(uri || ctid::text, ',' ORDER BY uri) FROM articles");
  args = base;
  args.push_back("--verify");
  EXPECT_EQ(wait_exit(spawn_vstore(args, m_conninfo, m_data)), 0);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT string_agg(uri || ctid::text, ',' ORDER BY uri) FROM articles"), before);
}

// A private copy of one version's directory to damage.
fs::path copy_dir(const std::string& version, const fs::path& into) {
  const fs::path dst = into / ("copy-" + version);
  fs::remove_all(dst);
  fs::copy(ChromaDirs::instance().dir(version), dst, fs::copy_options::recursive);
  return dst;
}

std::string vector_segment_of(const fs::path& dir, const std::string& name) {
  auto d = vstore::chroma::ChromaDir::open(dir.string());
  EXPECT_TRUE(d.has_value());
  auto cols = d->collections();
  EXPECT_TRUE(cols.has_value());
  for (const auto& c : *cols) {
    if (c.name == name) return c.vector_segment;
  }
  return "";
}

TEST_F(MigrateTest, TruncatedDataLevel0IsRefusedAndWritesNothing) {
  const fs::path dir = copy_dir("0.6.3", m_data);
  const fs::path level0 = dir / vector_segment_of(dir, "c_l2") / "data_level0.bin";
  ASSERT_TRUE(fs::exists(level0));
  fs::resize_file(level0, 1000);
  auto opts = copy_options("0.6.3", "c_l2", dir);
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::corruption);
  EXPECT_NE(report.error().message().find("truncated"), std::string::npos) << report.error().message();
  EXPECT_NE(report.error().message().find("data_level0.bin"), std::string::npos) << report.error().message();
  EXPECT_EQ(count(), 0);
}

// A vector that is not finite (here: the first element of every HNSW slot overwritten with a
// NaN; a record whose vector the log replaces keeps the log's) is counted as an error and not
// written; every other record arrives, and the run reports failure.
TEST_F(MigrateTest, NonFiniteVectorsAreErrorsThatWriteNothingForThatIdAndFailTheRun) {
  const fs::path dir = copy_dir("0.6.3", m_data);
  const fs::path seg = dir / vector_segment_of(dir, "c_l2");
  std::string header(100, '\0');
  std::ifstream(seg / "header.bin", std::ios::binary).read(header.data(), 100);
  std::uint64_t count_slots = 0, stride = 0, offset_data = 0;
  std::memcpy(&count_slots, header.data() + 20, 8);
  std::memcpy(&stride, header.data() + 28, 8);
  std::memcpy(&offset_data, header.data() + 44, 8);
  ASSERT_GT(count_slots, 0U);
  {
    std::fstream level0(seg / "data_level0.bin", std::ios::binary | std::ios::in | std::ios::out);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (std::uint64_t i = 0; i < count_slots; ++i) {
      level0.seekp(static_cast<std::streamoff>(i * stride + offset_data));
      level0.write(reinterpret_cast<const char*>(&nan), sizeof nan);
    }
    ASSERT_TRUE(level0.good());
  }
  auto snap = read_collection(dir, "c_l2");
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  std::set<std::string> bad;
  for (const auto& rec : snap->records) {
    if (std::isnan(rec.vector[0])) bad.insert(rec.id);
  }
  ASSERT_FALSE(bad.empty());
  ASSERT_LT(bad.size(), snap->records.size()) << "the test wants some vectors from the log";
  auto opts = copy_options("0.6.3", "c_l2", dir);
  opts.verify = true;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  const auto& c = report->collections[0];
  EXPECT_EQ(c.errors, static_cast<std::int64_t>(bad.size()));
  // The report names the first 100 of them, in id order.
  std::vector<std::string> first(bad.begin(), bad.end());
  first.resize(std::min<std::size_t>(first.size(), 100));
  EXPECT_EQ(c.error_ids, first);
  EXPECT_FALSE(report->ok());
  EXPECT_EQ(count(), static_cast<std::int64_t>(snap->records.size() - bad.size()));
  for (const auto& id : bad) EXPECT_EQ(count(fmt::format("uri = '{}'", id)), 0) << id;
  EXPECT_TRUE(c.verify.value("passed", false)) << "the rows written are exact: " << c.verify.dump();
}

TEST_F(MigrateTest, APickleOfNeitherFormatIsRefusedAndWritesNothing) {
  const fs::path dir = copy_dir("1.0.19", m_data);
  const fs::path pickle = dir / vector_segment_of(dir, "c_cosine") / "index_metadata.pickle";
  ASSERT_TRUE(fs::exists(pickle));
  {
    // pickle.dumps([1, 2], protocol=4): a list, which neither writer produces.
    std::ofstream out(pickle, std::ios::binary | std::ios::trunc);
    const unsigned char bytes[] = {0x80, 0x04, 0x95, 0x09, 0, 0, 0, 0, 0, 0, 0, ']', 0x94, '(', 'K', 1, 'K', 2, 'e', '.'};
    out.write(reinterpret_cast<const char*>(bytes), sizeof bytes);
  }
  auto opts = copy_options("1.0.19", "c_cosine", dir);
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::corruption);
  EXPECT_NE(report.error().message().find("index_metadata.pickle"), std::string::npos) << report.error().message();
  EXPECT_NE(report.error().message().find("opcode 0x5d"), std::string::npos) << report.error().message();
  EXPECT_EQ(count(), 0);
}

TEST_F(MigrateTest, AnUnknownChromaSchemaIsRefusedAndWritesNothing) {
  const fs::path dir = copy_dir("0.5.23", m_data);
  ASSERT_EQ(shell(fmt::format("python3 -c \"import sqlite3; c = sqlite3.connect('{}'); c.execute(\\\"INSERT INTO "
                              "migrations (dir, version, filename, sql, hash) VALUES ('sysdb', 99, '00099-x.sql', '', "
                              "'')\\\"); c.commit()\"",
                              (dir / "chroma.sqlite3").string())),
            0);
  auto opts = copy_options("0.5.23", "c_l2", dir);
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::conflict);
  EXPECT_NE(report.error().message().find("unknown chroma schema"), std::string::npos) << report.error().message();
  EXPECT_NE(report.error().message().find("sysdb/00099"), std::string::npos) << report.error().message();
  EXPECT_EQ(count(), 0);

  // An SQLite file that is not Chroma's at all.
  const fs::path other = m_data / "other";
  fs::create_directories(other);
  ASSERT_EQ(shell(fmt::format("python3 -c \"import sqlite3; c = sqlite3.connect('{}'); c.execute('CREATE TABLE t (x)'); "
                              "c.commit()\"",
                              (other / "chroma.sqlite3").string())),
            0);
  opts.from_dir = other.string();
  report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::invalid_argument);
  EXPECT_NE(report.error().message().find("not a Chroma database"), std::string::npos) << report.error().message();
}

TEST_F(MigrateTest, ArrayMetadataChromaCannotHaveWrittenIsRefusedAndWritesNothing) {
  struct Damage {
    std::string sql;
    std::string message;
  };
  // The array rows of c_l2's records.
  const std::string l2_rows =
      "FROM embedding_metadata_array WHERE id IN (SELECT e.id FROM embeddings e JOIN segments s ON s.id = e.segment_id "
      "JOIN collections c ON c.id = s.collection WHERE c.name = 'c_l2')";
  const std::vector<Damage> damages = {
      {"UPDATE embedding_metadata_array SET int_value = 1 WHERE rowid = (SELECT min(rowid) " + l2_rows +
           " AND string_value IS NOT NULL)",
       "has 2 typed values, not one"},
      {"INSERT INTO embedding_metadata_array (id, key, string_value) SELECT id, key, 'x' " + l2_rows +
           " AND key = 'ks' LIMIT 1",
       "is an array of mixed types"},
      {"INSERT INTO embedding_metadata_array (id, key, int_value) SELECT id, 'i', 1 " + l2_rows + " AND key = 'ks' LIMIT 1",
       "is both a scalar and an array"},
      {"UPDATE embeddings_queue SET metadata = '{\"nested\": {\"x\": 1}}' WHERE seq_id = (SELECT max(seq_id) FROM "
       "embeddings_queue WHERE topic LIKE '%' || (SELECT id FROM collections WHERE name = 'c_l2'))",
       "metadata Chroma does not write: key nested holds a JSON object"},
      {"UPDATE embeddings_queue SET metadata = '{\"a\": [[1]]}' WHERE seq_id = (SELECT max(seq_id) FROM "
       "embeddings_queue WHERE topic LIKE '%' || (SELECT id FROM collections WHERE name = 'c_l2'))",
       "key a holds an array that is not of one type"},
  };
  for (const auto& damage : damages) {
    const fs::path dir = copy_dir("1.5.9", m_data);
    const fs::path py = m_data / "damage.py";
    std::ofstream(py) << fmt::format("import sqlite3\nc = sqlite3.connect('{}')\nc.execute(r\"\"\"{}\"\"\")\nc.commit()\n",
                                     (dir / "chroma.sqlite3").string(), damage.sql);
    ASSERT_EQ(shell(fmt::format("python3 '{}'", py.string())), 0) << damage.sql;
    auto opts = copy_options("1.5.9", "c_l2", dir);
    auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
    ASSERT_FALSE(report.has_value()) << damage.sql;
    EXPECT_EQ(report.error().code(), vstore::ErrorCode::corruption) << report.error().message();
    EXPECT_NE(report.error().message().find(damage.message), std::string::npos) << report.error().message();
    EXPECT_EQ(count(), 0);
  }
}

// The metadata segment is read as two scans joined by embeddings.id: ids far apart (a table
// over their range would be too large, so they are looked up in a sorted list) must give the
// same records, and the rows of the directory's other collections must stay out. The
// metadata rows of a large table are scanned in two halves of their row ids on two
// connections; spreading the row ids makes the split happen here, with every document and
// every other key in the upper half, so that records are put together from both halves.
TEST_F(MigrateTest, RowIdsFarApartInSqliteGiveTheSameRecords) {
  struct Variant {
    std::string name;
    std::string sql;
  };
  const std::vector<Variant> variants = {
      {"embedding ids far apart",
       "for t in ('embeddings', 'embedding_metadata', 'embedding_metadata_array'):\n"
       "    c.execute('UPDATE ' + t + ' SET id = id * 1000003 + 7')\n"},
      {"metadata rows in two halves",
       "c.execute(\"UPDATE embedding_metadata SET rowid = rowid + 100000000 WHERE key = 'chroma:document' OR rowid % 2 = "
       "0\")\n"},
  };
  for (const auto& variant : variants) {
    SCOPED_TRACE(variant.name);
    const fs::path dir = copy_dir("1.5.9", m_data);
    const fs::path py = m_data / "spread.py";
    std::ofstream(py) << fmt::format("import sqlite3\nc = sqlite3.connect('{}')\n{}c.commit()\n",
                                     (dir / "chroma.sqlite3").string(), variant.sql);
    ASSERT_EQ(shell(fmt::format("python3 '{}'", py.string())), 0);
    for (const char* space : k_spaces) {
      const std::string name = std::string("c_") + space;
      auto want = read_collection(ChromaDirs::instance().dir("1.5.9"), name);
      auto got = read_collection(dir, name);
      ASSERT_TRUE(want.has_value()) << want.error().to_string();
      ASSERT_TRUE(got.has_value()) << got.error().to_string();
      ASSERT_EQ(got->records.size(), want->records.size()) << name;
      std::size_t with_metadata = 0, with_document = 0;
      for (std::size_t i = 0; i < want->records.size(); ++i) {
        const auto& a = want->records[i];
        const auto& b = got->records[i];
        ASSERT_EQ(b.id, a.id) << name;
        EXPECT_EQ(hex(b.vector), hex(a.vector)) << a.id;
        EXPECT_TRUE(same_typed(b.metadata, a.metadata)) << a.id << ": " << b.metadata.dump() << " vs " << a.metadata.dump();
        EXPECT_EQ(b.document, a.document) << a.id;
        with_metadata += a.metadata.size() > 1 ? 1 : 0;
        with_document += a.document ? 1 : 0;
      }
      EXPECT_GT(with_metadata, want->records.size() / 2) << name;
      EXPECT_GT(with_document, want->records.size() / 2) << name;
    }
  }
}

TEST_F(MigrateTest, NewRowsWithoutAValueGetNullAlsoWhereTheColumnHasADefault) {
  // The direct COPY of new rows names only the optional columns a batch gives a value, and the
  // columns with a default: those keep getting an explicit NULL for a record without the value,
  // as before, rather than the default (the fixture's records have no topic and no
  // publication_date_ts; `summary` gets no default and is left out of the COPY).
  sql_value(m_conninfo, "ALTER TABLE articles ALTER COLUMN topic SET DEFAULT 'unset', ALTER COLUMN "
                        "publication_date_ts SET DEFAULT 7");
  auto opts = options("1.5.9", "c_cosine");
  opts.insert_missing = true;
  opts.verify = true;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  const std::int64_t live = live_count("1.5.9", "c_cosine");
  EXPECT_EQ(report->collections[0].inserted, live);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT count(*) FROM articles"), std::to_string(live));
  EXPECT_EQ(sql_value(m_conninfo, "SELECT count(*) FROM articles WHERE topic IS NOT NULL OR publication_date_ts IS NOT "
                                  "NULL OR summary IS NOT NULL"),
            "0");
  // The documents the records have went into raw; a row inserted by hand still gets the default.
  EXPECT_NE(sql_value(m_conninfo, "SELECT count(raw) FROM articles"), "0");
  sql_value(m_conninfo, "INSERT INTO articles (uri) VALUES ('by hand')");
  EXPECT_EQ(sql_value(m_conninfo, "SELECT topic || ' ' || publication_date_ts FROM articles WHERE uri = 'by hand'"),
            "unset 7");
}

TEST_F(MigrateTest, AnIdTwiceInTheMetadataSegmentIsRefused) {
  // Chroma's schema makes (segment_id, embedding_id) unique; a damaged copy without that
  // constraint may hold an id twice, which the reader must refuse rather than merge or drop.
  const fs::path dir = copy_dir("1.5.9", m_data);
  const fs::path py = m_data / "twice.py";
  std::ofstream(py) << fmt::format(
      "import sqlite3\nc = sqlite3.connect('{}')\n"
      "c.execute('CREATE TABLE e2 AS SELECT * FROM embeddings')\n"
      "c.execute('DROP TABLE embeddings')\n"
      "c.execute('ALTER TABLE e2 RENAME TO embeddings')\n"
      "c.execute(\"INSERT INTO embeddings SELECT id + 1000000, segment_id, embedding_id, seq_id, created_at FROM "
      "embeddings WHERE embedding_id = 'r020'\")\n"
      "c.commit()\n",
      (dir / "chroma.sqlite3").string());
  ASSERT_EQ(shell(fmt::format("python3 '{}'", py.string())), 0);
  for (const char* space : k_spaces) {
    const std::string name = std::string("c_") + space;
    auto got = read_collection(dir, name);
    ASSERT_FALSE(got.has_value()) << name << ": read " << got->records.size() << " records";
    EXPECT_EQ(got.error().code(), vstore::ErrorCode::corruption) << got.error().to_string();
    EXPECT_NE(got.error().message().find("an embedding id is in the metadata segment twice"), std::string::npos)
        << got.error().to_string();
  }
}

TEST_F(MigrateTest, ADirectoryChroma15OpenedAfter10ReadsAsChroma15ReturnsIt) {
  // Users upgrade chromadb, open their directory once, then migrate: 1.5.9 applies metadb/00006
  // and sysdb/00010 (schema_str stays NULL; config_json_str keeps the 1.0 form).
  const fs::path dir = copy_dir("1.0.19", m_data);
  const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
  ASSERT_NE(venvs, nullptr);
  const fs::path truth_path = m_data / "upgraded.json";
  const std::string script = fmt::format(
      "import json, chromadb, numpy as np; from chromadb.config import Settings\n"
      "c = chromadb.PersistentClient(path='{}', settings=Settings(anonymized_telemetry=False))\n"
      "out = {{}}\n"
      "for name in ('c_cosine', 'c_l2', 'c_ip'):\n"
      "    g = c.get_collection(name).get(include=['embeddings', 'metadatas', 'documents'])\n"
      "    out[name] = {{i: {{'chroma': np.asarray(e, dtype=np.float32).tobytes().hex(), 'metadata': m or {{}}, "
      "'document': d}} for i, e, m, d in zip(g['ids'], g['embeddings'], g['metadatas'], g['documents'])}}\n"
      "json.dump(out, open('{}', 'w'))\n",
      dir.string(), truth_path.string());
  const fs::path py = m_data / "upgrade.py";
  std::ofstream(py) << script;
  ASSERT_EQ(shell(fmt::format("'{}/1.5.9/bin/python' '{}' >/dev/null 2>&1", venvs, py.string())), 0);
  const json served = json::parse(std::ifstream(truth_path));
  auto d = vstore::chroma::ChromaDir::open(dir.string());
  ASSERT_TRUE(d.has_value()) << d.error().to_string();
  EXPECT_EQ(d->schema_version(), "sysdb 10, metadb 6, embeddings_queue 2");
  for (const char* space : k_spaces) {
    const std::string name = std::string("c_") + space;
    const json& before = truth_collection(ChromaDirs::instance().truth("1.0.19"), name);
    auto snap = read_collection(dir, name);
    ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
    EXPECT_EQ(snap->collection.space, space);
    ASSERT_EQ(snap->records.size(), served[name].size()) << name;
    ASSERT_EQ(snap->records.size(), before["live"].size()) << name;
    for (std::size_t i = 0; i < snap->records.size(); ++i) {
      const auto& rec = snap->records[i];
      ASSERT_TRUE(served[name].contains(rec.id)) << name << " " << rec.id;
      const json& want = served[name][rec.id];
      ASSERT_EQ(before["live"][i]["id"], rec.id);
      const bool exact_input = rec.source == vstore::chroma::VectorSource::wal || std::string(space) != "cosine";
      EXPECT_EQ(hex(rec.vector), exact_input ? before["live"][i]["input"].get<std::string>() : want["chroma"].get<std::string>())
          << name << " " << rec.id;
      EXPECT_TRUE(same_typed(rec.metadata, want["metadata"])) << name << " " << rec.id << ": " << rec.metadata.dump();
      EXPECT_EQ(rec.document, want["document"].is_null() ? std::nullopt
                                                         : std::optional<std::string>(want["document"].get<std::string>()))
          << name << " " << rec.id;
    }
  }
  auto opts = copy_options("1.0.19", "c_ip", dir);
  opts.verify = true;
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(report->collections[0].migrated, static_cast<std::int64_t>(served["c_ip"].size()));
}

TEST_F(MigrateTest, ADirectoryALiveProcessHoldsIsRefusedWithHowToCopy) {
  const fs::path dir = copy_dir("0.6.3", m_data);
  const pid_t holder = fork();
  if (holder == 0) {
    const std::string cmd = "exec 3<'" + (dir / "chroma.sqlite3").string() + "'; exec sleep 30";
    execl("/bin/bash", "bash", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  bool refused = false;
  std::string message;
  for (int i = 0; i < 200 && !refused; ++i) {
    auto d = vstore::chroma::ChromaDir::open(dir.string());
    if (!d) {
      refused = d.error().code() == vstore::ErrorCode::conflict;
      message = d.error().message();
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  EXPECT_TRUE(refused);
  EXPECT_NE(message.find(fmt::format("process {}", holder)), std::string::npos) << message;
  EXPECT_NE(message.find("copy"), std::string::npos) << message;
  EXPECT_TRUE(vstore::chroma::ChromaDir::open(dir.string()).has_value()) << "usable again once the holder is gone";

  std::ofstream(dir / "chroma.sqlite3-journal") << "x";
  auto d = vstore::chroma::ChromaDir::open(dir.string());
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code(), vstore::ErrorCode::conflict);
  EXPECT_NE(d.error().message().find("chroma.sqlite3-journal"), std::string::npos) << d.error().message();
}

TEST_F(MigrateTest, CollectionsComeFromSqliteNotFromOrphanFolders) {
  bool saw_orphan = false;
  for (const char* v : k_versions) {
    const fs::path dir = ChromaDirs::instance().dir(v);
    auto d = vstore::chroma::ChromaDir::open(dir.string());
    ASSERT_TRUE(d.has_value()) << d.error().to_string();
    auto cols = d->collections();
    ASSERT_TRUE(cols.has_value()) << cols.error().to_string();
    std::vector<std::string> names;
    std::set<std::string> segments;
    for (const auto& c : *cols) {
      names.push_back(c.name);
      segments.insert(c.vector_segment);
    }
    EXPECT_EQ(names, (std::vector<std::string>{"c_cosine", "c_ip", "c_l2"})) << v;
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.is_directory() && !segments.contains(entry.path().filename().string())) saw_orphan = true;
    }
  }
  EXPECT_TRUE(saw_orphan) << "the dropped collection should have left an orphan folder in some version";
}

TEST_F(MigrateTest, SeveralCollectionsNeedAChoiceAndAModelMustBeKnown) {
  auto opts = options("0.6.3", "c_l2");
  opts.collection.reset();
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::invalid_argument);
  EXPECT_NE(report.error().message().find("c_cosine, c_ip, c_l2"), std::string::npos) << report.error().message();

  opts = options("0.6.3", "c_l2");
  opts.model.reset();
  report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_NE(report.error().message().find("--model"), std::string::npos) << report.error().message();

  opts = options("0.6.3", "c_nope");
  report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::not_found);
  EXPECT_EQ(count(), 0);
}

TEST_F(MigrateTest, ADimensionOtherThanTheTablesIsRefused) {
  sql_value(m_conninfo, "DROP TABLE articles; DELETE FROM vstore_schema_migrations");
  auto cfg = m_config;
  cfg.embedding_dim = 8;
  ASSERT_TRUE(vstore::schema_up(m_conninfo, cfg).has_value());
  auto report = vstore::migrate_chroma(m_conninfo, cfg, options("0.6.3", "c_l2"));
  ASSERT_FALSE(report.has_value());
  EXPECT_EQ(report.error().code(), vstore::ErrorCode::conflict);
  EXPECT_NE(report.error().message().find("16 dimensions"), std::string::npos) << report.error().message();
  EXPECT_NE(report.error().message().find("vector(8)"), std::string::npos) << report.error().message();
}

TEST_F(MigrateTest, ALargeLoadDropsTheVectorIndexAndBuildsItOnceEvenAfterAStop) {
  auto index_exists = [&] {
    return sql_value(m_conninfo, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE "
                                 "c.relname = 'articles' AND i.indexrelid::regclass::text LIKE '%embedding%'") != "0";
  };
  ASSERT_TRUE(index_exists());
  auto opts = options("0.6.3", "c_cosine");
  opts.insert_missing = true;
  opts.bulk_min_rows = 100;  // the collection's 243 rows count as a large load here
  opts.batch_size = 50;
  opts.test_stop_after_batches = 2;
  ASSERT_FALSE(vstore::migrate_chroma(m_conninfo, m_config, opts).has_value());
  EXPECT_TRUE(index_exists()) << "a failed run builds the index it dropped";
  // A killed run (simulated: drop it as the bulk load would, then stop) leaves it missing.
  ASSERT_TRUE(vstore::suspend_vector_index(m_conninfo, m_config).has_value());
  ASSERT_FALSE(index_exists());
  auto done = finish_resumed(opts);
  ASSERT_TRUE(done.has_value());
  EXPECT_TRUE(index_exists()) << "the run that finishes builds the missing index";
  EXPECT_TRUE(done->collections[0].timings.contains("index_build_s"));
  EXPECT_TRUE(done->collections[0].verify["index_overlap_at_10"].is_number());

  // From scratch: the note says the index was dropped for the load; every phase reports
  // progress, each rising to its whole (the index build from the server's progress view).
  sql_value(m_conninfo, "TRUNCATE articles, vstore_chroma_checkpoints");
  opts.test_stop_after_batches = 0;
  opts.verify = true;
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> calls;
  opts.progress = [&calls](std::string_view phase, std::int64_t done, std::int64_t total) {
    calls[std::string(phase)].emplace_back(done, total);
  };
  auto fresh = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(fresh.has_value()) << fresh.error().to_string();
  const auto rows = std::stoll(sql_value(m_conninfo, "SELECT count(embedding) FROM articles"));
  ASSERT_GT(rows, 0);
  for (const char* phase : {"read c_cosine", "copy", "index build"}) {
    ASSERT_TRUE(calls.contains(phase)) << phase;
    const auto& seen = calls[phase];
    for (std::size_t i = 0; i < seen.size(); ++i) {
      EXPECT_LE(seen[i].first, seen[i].second) << phase;
      if (i > 0) {
        EXPECT_GE(seen[i].first, seen[i - 1].first) << phase << " goes back";
      }
    }
    EXPECT_EQ(seen.back().first, seen.back().second) << phase << " ends at its whole";
  }
  EXPECT_EQ(calls["index build"].back().second, rows);
  EXPECT_EQ(calls["copy"].back().second, fresh->collections[0].count);
  EXPECT_GE(calls["read c_cosine"].back().second, fresh->collections[0].count) << "the read counts every record";
  std::string notes;
  for (const auto& n : fresh->collections[0].notes) notes += n + "\n";
  EXPECT_NE(notes.find("vector index articles_embedding_hnsw_idx dropped for the bulk load and rebuilt"), std::string::npos)
      << notes;
  EXPECT_TRUE(index_exists());
  EXPECT_TRUE(fresh->ok()) << fresh->to_json().dump(1);
}

// The plan says what a bulk load does to the vector index: vstore's own is dropped and rebuilt
// (a dry run drops nothing); one the application made, or vstore's with --keep-index, is kept
// and the note says every row will update it.
TEST_F(MigrateTest, ThePlanSaysWhetherABulkLoadDropsTheVectorIndexOrKeepsItAndWhatThatCosts) {
  auto index_names = [&] {
    return sql_value(m_conninfo, "SELECT coalesce(string_agg(indexrelid::regclass::text, ',' ORDER BY 1), '') FROM "
                                 "pg_index i JOIN pg_am am ON am.oid = (SELECT relam FROM pg_class WHERE oid = "
                                 "i.indexrelid) WHERE indrelid = 'articles'::regclass AND am.amname = 'hnsw'");
  };
  const std::string ours = index_names();
  ASSERT_FALSE(ours.empty());
  auto opts = options("0.6.3", "c_cosine");
  opts.insert_missing = true;
  opts.bulk_min_rows = 100;  // the collection's rows count as a large load here
  auto notes_of = [&](const vstore::MigrateOptions& o) {
    auto r = vstore::migrate_chroma(m_conninfo, m_config, o);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    std::string all;
    if (r) {
      for (const auto& n : r->collections[0].notes) all += n + "\n";
    }
    return all;
  };
  auto plan = opts;
  plan.dry_run = true;
  std::string notes = notes_of(plan);
  EXPECT_NE(notes.find("vector index " + ours + " would be dropped for the bulk load"), std::string::npos) << notes;
  EXPECT_EQ(index_names(), ours) << "a dry run drops nothing";

  auto keep = opts;
  keep.bulk_index = false;
  keep.dry_run = true;
  notes = notes_of(keep);
  EXPECT_NE(notes.find("vector index " + ours + " is kept during this load"), std::string::npos) << notes;
  EXPECT_NE(notes.find("--keep-index"), std::string::npos) << notes;

  sql_value(m_conninfo, "DROP INDEX " + ours + "; CREATE INDEX app_own_hnsw ON articles USING hnsw (embedding vector_cosine_ops)");
  notes = notes_of(opts);
  EXPECT_NE(notes.find("vector index app_own_hnsw is kept during this load"), std::string::npos) << notes;
  EXPECT_NE(notes.find("vstore did not create it"), std::string::npos) << notes;
  EXPECT_EQ(notes.find("dropped for the bulk load and rebuilt"), std::string::npos) << notes;
  EXPECT_EQ(index_names(), "app_own_hnsw") << "the application's index is kept, and vstore's is not brought back beside it";
  EXPECT_GT(count("embedding IS NOT NULL"), 100);
}

// Into an empty table the B-tree filter indexes vstore created are dropped for a large load and
// built once after it: also after a failed run, by the run that finishes after a killed one, and
// by `schema up`. A dry run drops nothing; a table that holds rows, --keep-index, and indexes
// the application made are left alone.
TEST_F(MigrateTest, ALoadIntoAnEmptyTableBuildsTheFilterIndexesOnceAfterIt) {
  const std::string filters = "articles_publication_date_idx,articles_publication_date_ts_idx,articles_topic_analyzed_idx";
  auto btrees = [&] {
    return sql_value(m_conninfo, "SELECT coalesce(string_agg(c.relname, ',' ORDER BY c.relname), '') FROM pg_index i "
                                 "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam WHERE "
                                 "i.indrelid = 'articles'::regclass AND am.amname = 'btree' AND NOT i.indisprimary "
                                 "AND i.indisvalid");
  };
  sql_value(m_conninfo, "CREATE INDEX app_title_idx ON articles (title)");  // the application's own
  const std::string all = "app_title_idx," + filters;
  ASSERT_EQ(btrees(), all);
  auto opts = options("0.6.3", "c_cosine");
  opts.insert_missing = true;
  opts.bulk_min_rows = 100;  // the collection's rows count as a large load here
  opts.batch_size = 50;
  auto notes_of = [](const vstore::MigrateReport& r) {
    std::string out;
    for (const auto& n : r.collections[0].notes) out += n + "\n";
    return out;
  };
  const std::string dropped_note =
      "filter indexes articles_topic_analyzed_idx, articles_publication_date_idx, articles_publication_date_ts_idx "
      "dropped for the bulk load into the empty table";

  auto plan = opts;
  plan.dry_run = true;
  auto planned = vstore::migrate_chroma(m_conninfo, m_config, plan);
  ASSERT_TRUE(planned.has_value()) << planned.error().to_string();
  EXPECT_NE(notes_of(*planned).find("filter indexes articles_topic_analyzed_idx, articles_publication_date_idx, "
                                    "articles_publication_date_ts_idx would be dropped"),
            std::string::npos)
      << notes_of(*planned);
  EXPECT_EQ(btrees(), all) << "a dry run drops nothing";

  auto keep = opts;
  keep.bulk_index = false;
  keep.dry_run = true;
  auto kept = vstore::migrate_chroma(m_conninfo, m_config, keep);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(notes_of(*kept).find("filter indexes"), std::string::npos) << "--keep-index keeps them too";

  auto stopping = opts;
  stopping.test_stop_after_batches = 2;
  ASSERT_FALSE(vstore::migrate_chroma(m_conninfo, m_config, stopping).has_value());
  EXPECT_EQ(btrees(), all) << "a failed run builds the indexes it dropped";

  // A killed run (simulated: drop them as the load does, then stop) leaves them missing;
  // `schema up` builds them, and so does the run that finishes.
  auto suspended = vstore::suspend_filter_indexes(m_conninfo, m_config);
  ASSERT_TRUE(suspended.has_value()) << suspended.error().to_string();
  EXPECT_EQ(suspended->size(), 3U);
  EXPECT_EQ(btrees(), "app_title_idx") << "only the indexes vstore created are dropped";
  ASSERT_TRUE(vstore::schema_up(m_conninfo, m_config).has_value());
  EXPECT_EQ(btrees(), all);
  ASSERT_TRUE(vstore::suspend_filter_indexes(m_conninfo, m_config).has_value());
  auto done = finish_resumed(opts);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(btrees(), all);
  EXPECT_TRUE(done->collections[0].timings.contains("filter_index_build_s"));
  EXPECT_EQ(notes_of(*done).find("filter indexes"), std::string::npos) << "the table held rows: nothing more dropped";

  // From an empty table: dropped, built once afterwards, and the filters find the same rows.
  sql_value(m_conninfo, "TRUNCATE articles, vstore_chroma_checkpoints");
  opts.verify = true;
  auto fresh = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(fresh.has_value()) << fresh.error().to_string();
  EXPECT_NE(notes_of(*fresh).find(dropped_note), std::string::npos) << notes_of(*fresh);
  EXPECT_TRUE(fresh->collections[0].timings.contains("filter_index_build_s"));
  EXPECT_EQ(btrees(), all);
  EXPECT_TRUE(fresh->ok()) << fresh->to_json().dump(1);
  // The rebuilt index serves a filter and finds every row the table holds.
  EXPECT_EQ(sql_value(m_conninfo, "SET enable_seqscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM articles "
                                  "WHERE publication_date_ts IS NULL"),
            sql_value(m_conninfo, "SELECT count(*) FROM articles WHERE publication_date_ts IS NULL"));
  EXPECT_NE(sql_value(m_conninfo, "SET enable_seqscan = off; SET enable_bitmapscan = off; EXPLAIN (FORMAT JSON) SELECT count(*) FROM "
                                  "articles WHERE publication_date_ts IS NULL")
                .find("articles_publication_date_ts_idx"),
            std::string::npos);
  sql_value(m_conninfo, "DROP INDEX app_title_idx");
}

// The database drops every connection of the migration after its second committed batch (as
// when the server restarts): the run fails with the server's reason, the table holds exactly
// the whole batches committed before (a prefix in id order, matching the checkpoint), and
// --resume finishes with every row exact and none twice.
TEST_F(MigrateTest, ConnectionsTheServerDropsMidCopyLeaveWholeBatchesAndResumeFinishes) {
  const auto expected = live_count("0.6.3", "c_cosine");
  auto opts = small_batches("0.6.3", "c_cosine", 2);
  opts.test_batch_delay_ms = 20;
  bool dropped = false;
  opts.progress = [&](std::string_view phase, std::int64_t done, std::int64_t) {
    if (phase != "copy" || dropped || done < 40) return;
    dropped = true;
    sql_value(m_conninfo, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = "
                          "current_database() AND pid <> pg_backend_pid()");
  };
  auto report = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(dropped);
  ASSERT_FALSE(report.has_value()) << "the run went on without its connections";
  EXPECT_NE(report.error().message().find("terminat"), std::string::npos) << report.error().message();
  const std::int64_t kept = count();
  EXPECT_GE(kept, 40);
  EXPECT_EQ(kept % 20, 0) << "whole batches only";
  expect_checkpoint_at(kept);
  opts.progress = nullptr;
  expect_resumed_to(opts, expected);
}

// The server itself crashes (immediate shutdown) after the fourth committed batch, on a cluster
// of its own with fsync on, like a real one, and recovers from its WAL: what survives is whole
// batches in id order, each with its checkpoint row, exactly the four that had committed (each
// commit waited for its WAL to reach the disk), and --resume finishes with every row exact and
// none twice.
TEST(MigrateCrashTest, AServerCrashMidCopyLeavesWholeBatchesMatchingTheCheckpointAndResumeFinishes) {
  std::string tmpl = (fs::temp_directory_path() / "vstore-crash-XXXXXX").string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  const fs::path root = tmpl;
  fs::permissions(root, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  vstore::EmbeddedPostgres pg(root / "pg");
  struct StopAndRemove {  // also when an assertion ends the test early
    vstore::EmbeddedPostgres& pg;
    fs::path root;
    ~StopAndRemove() {
      (void)pg.stop();
      std::error_code ec;
      fs::remove_all(root, ec);
    }
  } stop_and_remove{pg, root};
  vstore::EmbeddedOptions pg_opts;
  pg_opts.fsync = true;
  pg_opts.shared_buffers = "64MB";
  auto started = pg.start(pg_opts);
  ASSERT_TRUE(started.has_value()) << started.error().to_string();
  const std::string conninfo = started->conninfo;
  auto config = vstore::testing::test_config(conninfo, k_dim);
  config.data_dir = root / "data";
  ASSERT_TRUE(vstore::schema_up(conninfo, config).has_value());
  auto rows = [&](const std::string& sql) { return std::stoll(sql_value(conninfo, sql)); };
  const auto expected = live_count("0.6.3", "c_cosine");

  vstore::MigrateOptions opts;
  opts.from_dir = ChromaDirs::instance().dir("0.6.3").string();
  opts.collection = "c_cosine";
  opts.model = "test-model";
  opts.insert_missing = true;
  opts.batch_size = 20;
  opts.writers = 2;
  std::int64_t committed_at_crash = -1;
  opts.progress = [&](std::string_view phase, std::int64_t done, std::int64_t) {
    if (phase != "copy" || committed_at_crash >= 0 || done < 80) return;
    committed_at_crash = done;
    std::ifstream pid_file(root / "pg" / "data" / "postmaster.pid");
    pid_t pid = 0;
    pid_file >> pid;
    ASSERT_GT(pid, 0);
    ASSERT_EQ(kill(pid, SIGQUIT), 0);  // immediate shutdown
    for (int i = 0; i < 1000 && kill(pid, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    ASSERT_NE(kill(pid, 0), 0) << "the server did not go down";
  };
  auto crashed = vstore::migrate_chroma(conninfo, config, opts);
  ASSERT_EQ(committed_at_crash, 80);
  ASSERT_FALSE(crashed.has_value()) << "the run went on without its server";

  started = pg.start(pg_opts);  // crash recovery replays the WAL that reached the disk
  ASSERT_TRUE(started.has_value()) << started.error().to_string();
  // Every batch reported as committed survived the crash, whole, with its checkpoint.
  expect_checkpoint_at(conninfo, committed_at_crash);
  opts.progress = nullptr;
  opts.resume = true;
  opts.verify = true;
  auto resumed = vstore::migrate_chroma(conninfo, config, opts);
  ASSERT_TRUE(resumed.has_value()) << resumed.error().to_string();
  EXPECT_TRUE(resumed->ok()) << resumed->to_json().dump(1);
  EXPECT_EQ(resumed->collections[0].migrated, expected);
  EXPECT_EQ(rows("SELECT count(*) FROM articles"), expected);
  EXPECT_EQ(rows("SELECT count(DISTINCT uri) FROM articles"), expected);
  EXPECT_TRUE(pg.stop().has_value());
}

// Several writers store batches at once but commit them in order: a stop after n batches
// leaves exactly the first n batches (in id order) and a checkpoint at the last of them.
TEST_F(MigrateTest, SeveralWritersCommitInOrderSoAStopLeavesAPrefixOfWholeBatches) {
  const auto expected = live_count("0.6.3", "c_cosine");
  auto opts = small_batches("0.6.3", "c_cosine", 3);
  opts.test_stop_after_batches = 4;
  ASSERT_FALSE(vstore::migrate_chroma(m_conninfo, m_config, opts).has_value());
  expect_checkpoint_at(80);
  expect_resumed_to(opts, expected);

  // The same directory with one writer gives the same rows, byte for byte.
  const std::string many = sql_value(m_conninfo, "SELECT md5(string_agg(uri || embedding::text || vector_metadata::text "
                                                 "|| coalesce(raw, ''), ',' ORDER BY uri COLLATE \"C\")) FROM articles");
  sql_value(m_conninfo, "TRUNCATE articles, vstore_chroma_checkpoints");
  opts.writers = 1;
  opts.test_stop_after_batches = 0;
  opts.verify = true;
  auto one = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(one.has_value()) << one.error().to_string();
  EXPECT_TRUE(one->ok()) << one->to_json().dump(1);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT md5(string_agg(uri || embedding::text || vector_metadata::text || "
                                  "coalesce(raw, ''), ',' ORDER BY uri COLLATE \"C\")) FROM articles"),
            many);
}

// `bench migrate` on a small real directory: every side ran every repeat on the collection's
// rows, the ratios are those of the rates, and the scratch database is gone afterwards.
TEST_F(MigrateTest, BenchMigrateTimesEverySideInEveryRepeatAndDropsItsDatabase) {
  const auto expected =
      static_cast<std::int64_t>(truth_collection(ChromaDirs::instance().truth("0.6.3"), "c_l2")["live"].size());
  vstore::BenchMigrateOptions b;
  b.from_dir = ChromaDirs::instance().dir("0.6.3").string();
  b.collection = "c_l2";
  b.batch_size = 50;
  b.repeats = 2;
  auto j = vstore::bench_migrate(m_conninfo, b);
  ASSERT_TRUE(j.has_value()) << j.error().to_string();
  EXPECT_EQ((*j)["rows"].get<std::int64_t>(), expected);
  EXPECT_EQ((*j)["dim"].get<int>(), k_dim);
  for (const char* key : {"rows_per_s", "copy_rows_per_s", "copy_same_rows_rows_per_s"}) {
    EXPECT_GT((*j)[key].get<double>(), 0.0) << key;
  }
  for (const char* key : {"rows_per_s_runs", "copy_rows_per_s_runs", "copy_same_rows_rows_per_s_runs", "ratio_runs"}) {
    EXPECT_EQ((*j)[key].size(), 2u) << key;
  }
  EXPECT_NEAR((*j)["ratio"].get<double>(), (*j)["rows_per_s"].get<double>() / (*j)["copy_rows_per_s"].get<double>(), 0.01);
  EXPECT_TRUE((*j)["migrate_timings"].contains("copy_s"));
  EXPECT_EQ(sql_value(m_conninfo, "SELECT count(*) FROM pg_database WHERE datname LIKE 'vstore_bench_migrate_%'"), "0");
  EXPECT_EQ((*j)["warmup"].get<int>(), 1);  // the default warm-up round ran and is not among the runs
  b.repeats = 0;
  auto refused = vstore::bench_migrate(m_conninfo, b);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("repeats must be from 1 to 20, not 0"), std::string::npos);
  b.repeats = 1;
  b.warmup = 6;
  refused = vstore::bench_migrate(m_conninfo, b);
  ASSERT_FALSE(refused.has_value());
  EXPECT_NE(refused.error().message().find("warm-up rounds must be from 0 to 5, not 6"), std::string::npos);
}

// A table holds one model's vectors: a collection of another model is refused before anything
// is written (a dry run says so in its notes), and the table's own rows stay as they were.
TEST_F(MigrateTest, VectorsOfAnotherModelInTheTableStopTheMigrationBeforeItWrites) {
  std::string vec = "[";
  for (int i = 0; i < k_dim; ++i) vec += (i ? "," : "") + std::to_string(i + 1);
  vec += "]";
  sql_value(m_conninfo, fmt::format("INSERT INTO articles (uri, title, embedding, embedding_model) VALUES ('app:1', "
                                    "'kept', '{}', 'other-model')",
                                    vec));
  auto opts = options("0.6.3", "c_cosine");
  opts.insert_missing = true;
  auto r = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), vstore::ErrorCode::conflict);
  const std::string& msg = r.error().message();
  EXPECT_NE(msg.find("holds vectors of model other-model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vectors of model test-model (from --model)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("--model other-model"), std::string::npos) << msg;
  EXPECT_EQ(count(), 1);
  EXPECT_EQ(sql_value(m_conninfo, "SELECT title || ' ' || embedding::text FROM articles"), "kept " + vec);

  opts.dry_run = true;
  auto plan = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(plan.has_value()) << plan.error().to_string();
  ASSERT_FALSE(plan->collections[0].notes.empty());
  EXPECT_NE(plan->collections[0].notes.back().find("holds vectors of model other-model"), std::string::npos);

  // Rows of the same model, or without a recorded one, do not stop it.
  sql_value(m_conninfo, "UPDATE articles SET embedding_model = NULL");
  opts.dry_run = false;
  auto done = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_TRUE(done.has_value()) << done.error().to_string();
  EXPECT_TRUE(done->ok()) << done->to_json().dump(1);
}

TEST_F(MigrateTest, WritersOutsideOneToEightAreRefused) {
  auto opts = options("0.6.3", "c_cosine");
  opts.writers = 0;
  auto r = vstore::migrate_chroma(m_conninfo, m_config, opts);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), vstore::ErrorCode::invalid_argument);
  EXPECT_NE(r.error().message().find("writers must be from 1 to 8, not 0"), std::string::npos) << r.error().message();
  EXPECT_EQ(count(), 0);
}

TEST_F(MigrateTest, NewRowsGetArticleColumnsFromMetadataInTheirOwnTypes) {
  // A small directory whose metadata carries the article fields, dates in several forms.
  const fs::path dir = m_data / "dated";
  const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
  ASSERT_NE(venvs, nullptr);
  const std::string script = fmt::format(
      "import chromadb; from chromadb.config import Settings\n"
      "c = chromadb.PersistentClient(path='{}', settings=Settings(anonymized_telemetry=False))\n"
      "col = c.create_collection(name='dated', metadata={{'hnsw:space': 'cosine'}}, embedding_function=None)\n"
      "dates = ['2024-03-05', '2024-03-05T10:20:30Z', '2024-03-05T10:20:30.123456+02:00', '2024-03-05 10:20:30-0530',"
      " '2024-03-05T10:20:30', 'March 5, 2024']\n"
      "col.add(ids=['a%d' % i for i in range(6)], embeddings=[[1.0 + i, 2.0, 3.0] for i in range(6)],"
      " metadatas=[{{'publication_date': d, 'title': 'title %d' % i, 'topic': 'tech'}} for i, d in enumerate(dates)],"
      " documents=['body %d' % i for i in range(6)])\n",
      dir.string());
  const fs::path py = m_data / "dated.py";
  std::ofstream(py) << script;
  ASSERT_EQ(shell(fmt::format("'{}/1.0.19/bin/python' '{}' >/dev/null 2>&1", venvs, py.string())), 0);
  sql_value(m_conninfo, "DROP TABLE articles; DELETE FROM vstore_schema_migrations");
  // A server time zone other than UTC: plain dates must still be midnight UTC (as the store
  // writes them), zoned values exact, and values without a zone UTC (read_date, the reader
  // ingest uses too: issue 21 item 13b), whatever the server's zone.
  sql_value(m_conninfo, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone = %L', current_database(), "
                        "'America/New_York'); END $$");
  auto cfg = m_config;
  cfg.embedding_dim = 3;
  ASSERT_TRUE(vstore::schema_up(m_conninfo, cfg).has_value());
  vstore::MigrateOptions opts;
  opts.from_dir = dir.string();
  opts.model = "m";
  opts.insert_missing = true;
  opts.verify = true;
  auto report = vstore::migrate_chroma(m_conninfo, cfg, opts);
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  EXPECT_TRUE(report->ok()) << report->to_json().dump(1);
  EXPECT_EQ(report->collections[0].inserted, 6);
  EXPECT_EQ(count("title = 'title ' || substr(uri, 2) AND topic = 'tech' AND raw = 'body ' || substr(uri, 2)"), 6);
  // Each value as read_date() reads it; a date alone (also "March 5, 2024") is midnight UTC.
  const std::string expected =
      "VALUES ('a0', '2024-03-05 00:00:00+00'::timestamptz), ('a1', '2024-03-05T10:20:30Z'), "
      "('a2', '2024-03-05T10:20:30.123456+02:00'), ('a3', '2024-03-05 10:20:30-0530'), ('a4', '2024-03-05T10:20:30Z'), "
      "('a5', '2024-03-05 00:00:00+00')";
  EXPECT_EQ(sql_value(m_conninfo, "SELECT count(*) FROM articles a JOIN (" + expected +
                                      ") e(uri, ts) ON e.uri = a.uri WHERE a.publication_date IS NOT DISTINCT FROM e.ts"),
            "6")
      << sql_value(m_conninfo, "SELECT string_agg(uri || '=' || COALESCE(publication_date::text, 'null'), ' ') FROM articles");
}

TEST_F(MigrateTest, TheCommandPrintsThePlanAndTheOneScreenSummary) {
  const char* bin = std::getenv("VSTORE_BIN");
  ASSERT_NE(bin, nullptr);
  auto run = [&](const std::string& args, int& code) {
    const std::string cmd = fmt::format("env DATABASE_URL='{}' VSTORE_DATA_DIR='{}' EMBEDDING_DIM=16 EMBEDDING_PROVIDER=hash "
                                        "'{}' {} 2>/dev/null",
                                        m_conninfo, m_data.string(), bin, args);
    FILE* pipe = popen(cmd.c_str(), "r");
    std::string out;
    std::array<char, 4096> buf{};
    while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    const int status = pclose(pipe);
    code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  };
  const std::string dir = ChromaDirs::instance().dir("0.5.23").string();
  const auto live = truth_collection(ChromaDirs::instance().truth("0.5.23"), "c_l2")["live"].size();
  int code = -1;
  std::string out = run("migrate-chroma --from-dir '" + dir + "' --dry-run", code);
  EXPECT_EQ(code, 0) << out;
  for (const char* name : {"c_cosine", "c_l2", "c_ip"}) EXPECT_NE(out.find(std::string("collection ") + name), std::string::npos) << out;
  EXPECT_NE(out.find("metric l2 -> vector_l2_ops (<->)"), std::string::npos) << out;
  EXPECT_NE(out.find(fmt::format("would be: migrated 0, unchanged 0, changed 0, inserted 0, skipped {}", live)),
            std::string::npos)
      << out;
  EXPECT_EQ(count(), 0);

  out = run("migrate-chroma --from-dir '" + dir + "' --collection c_l2 --model m --insert-missing --verify", code);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find(fmt::format("chromadb_total: {}\n  migrated: {}\n  skipped: 0\n  errors: 0", live, live)),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("verify: passed"), std::string::npos) << out;
  EXPECT_NE(out.find("report: " + (m_data / "reports").string()), std::string::npos) << out;

  out = run("migrate-chroma --from-dir '" + dir + "' --model m", code);
  EXPECT_EQ(code, 1) << "several collections and none chosen";
}

}  // namespace
