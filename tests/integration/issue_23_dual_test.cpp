// SPDX-License-Identifier: Apache-2.0
// Issue 23, items 10-14 and the health part of 22: dual mode a user can see. The built binary
// runs against the shared PostgreSQL server and a Chroma server of this suite (stopped where a
// scenario needs "Chroma down"); each scenario has its own table and collection. Checked: health
// reports both stores, the drift, the outbox and the shadow totals and creates nothing; ingest
// says how many writes wait in the outbox; shadow comparisons add up across processes; `vstore
// sync` copies, repairs and removes, and a rerun finds nothing; a Chroma primary's short
// filtered search is ranked again exactly and says so; health --json has every key everywhere.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include <nlohmann/json.hpp>

#include "api/dual_store.hpp"
#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CmdResult;

constexpr const char* k_health_keys[] = {"healthy",   "reasons", "backend",        "server_version", "extension_version",
                                         "dimension", "rows",    "with_embedding", "coverage_pct",   "embedding_model",
                                         "index"};

void expect_every_health_key(const json& h, const std::string& what) {
  for (const char* key : k_health_keys) EXPECT_TRUE(h.contains(key)) << what << " lacks " << key << ": " << h.dump();
  ASSERT_TRUE(h["index"].is_object()) << what;
  for (const char* key : {"type", "name", "valid", "params"}) EXPECT_TRUE(h["index"].contains(key)) << what << " index." << key;
  EXPECT_TRUE(h["healthy"].is_boolean()) << what;
  EXPECT_TRUE(h["reasons"].is_array()) << what;
}

class Issue23Dual : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_chroma = std::make_unique<testing::ChromaServer>();
    s_db = testing::PgServer::instance().create_database("i23dual");
  }
  static void TearDownTestSuite() {
    s_chroma.reset();
    testing::PgServer::instance().drop_database(s_db);
  }

  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    m_dir = m_tmp.path.string();
    if (!s_chroma->running()) s_chroma->start();
    static int table_no = 0;
    m_table = "dual" + std::to_string(++table_no);
    m_collection = testing::unique_collection("i23dual");
  }

  // The environment of a store of this scenario: its table, its collection, the suite's servers.
  std::string env(const std::string& backend, const std::string& more = "") const {
    return "DATABASE_URL='" + s_db + "' VECTOR_BACKEND=" + backend + " CHROMA_URL='" + s_chroma->url() +
           "' CHROMA_COLLECTION='" + m_collection + "' VSTORE_TABLE=" + m_table + " EMBEDDING_DIM=64 " + more;
  }
  CmdResult run(const std::string& backend, const std::string& args, const std::string& more = "") {
    return testing::run_vstore(m_dir, args, env(backend, more));
  }
  // `n` Reuters articles from `first` on (vectors made by the hash embedder at ingest).
  std::string articles(const std::string& name, int first, int n) {
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    EXPECT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA (set by CTest)";
    std::ifstream in(fs::path(shared ? shared : "") / "reuters21578" / "articles.jsonl");
    std::ofstream out(fs::path(m_dir) / name);
    std::string line;
    for (int i = 0; i < first + n && std::getline(in, line); ++i) {
      if (i >= first) out << line << "\n";
    }
    return name;
  }
  Config config() const {
    Config cfg = testing::test_config(s_db, 64);
    cfg.table = m_table;
    cfg.chroma_url = s_chroma->url();
    cfg.chroma_collection = m_collection;
    return cfg;
  }
  json health_json(const std::string& backend, int expected_code) {
    CmdResult h = run(backend, "health --json");
    EXPECT_EQ(h.code, expected_code) << h.out << h.err;
    return json::parse(h.out, nullptr, false);
  }

  static inline std::unique_ptr<testing::ChromaServer> s_chroma;
  static inline std::string s_db;
  testing::TempDir m_tmp;
  std::string m_dir;
  std::string m_table;
  std::string m_collection;
};

// Items 10, 13 and 22: PostgreSQL holds 30 articles, Chroma nothing (no collection even).
TEST_F(Issue23Dual, Item10HealthReportsBothStoresAndCreatesNothingThenSyncCopiesTheDrift) {
  ASSERT_EQ(run("pgvector", "schema up").code, 0);
  const std::string file = articles("a.jsonl", 0, 30);
  CmdResult ingest = run("pgvector", "ingest " + file);
  ASSERT_EQ(ingest.code, 0) << ingest.err;

  json h = health_json("dual", 1);
  ASSERT_FALSE(h.is_discarded());
  expect_every_health_key(h, "dual health");
  EXPECT_EQ(h["backend"], "dual");
  EXPECT_FALSE(h["healthy"].get<bool>());
  EXPECT_EQ(h["with_embedding"], 30);
  expect_every_health_key(h["secondary"], "the secondary's health");
  EXPECT_EQ(h["secondary"]["rows"], 0) << h["secondary"].dump();
  EXPECT_NE(h["secondary"]["reasons"].dump().find(m_collection), std::string::npos) << h["secondary"].dump();
  EXPECT_EQ(h["drift"]["primary_vectors"], 30);
  EXPECT_EQ(h["drift"]["secondary_vectors"], 0);
  EXPECT_EQ(h["drift"]["difference"], 30);
  EXPECT_EQ(h["outbox"]["pending"], 0);
  EXPECT_TRUE(h["outbox"]["oldest_age_s"].is_null());
  EXPECT_TRUE(h.contains("secondary_last_error"));
  // No side effect: the collection still does not exist.
  auto opened = chroma::ChromaStore::open(config());
  ASSERT_FALSE(opened) << "health created collection " << m_collection;
  EXPECT_EQ(opened.error().code(), ErrorCode::not_found) << opened.error().to_string();

  CmdResult text = run("dual", "health");
  EXPECT_EQ(text.code, 1);
  EXPECT_NE(text.out.find("UNHEALTHY: dual (primary pgvector)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("secondary chromadb: UNHEALTHY, 0 rows"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("drift: 30 vectors in pgvector, 0 in chromadb, difference 30"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("outbox: 0 pending"), std::string::npos) << text.out;

  // A dry run reports and writes nothing (still no collection).
  CmdResult dry = run("dual", "sync --dry-run --json");
  ASSERT_EQ(dry.code, 0) << dry.out << dry.err;
  json d = json::parse(dry.out);
  EXPECT_EQ(d["missing"], 30);
  EXPECT_EQ(d["copied"], 0);
  EXPECT_EQ(d["drift_before"], 30);
  EXPECT_EQ(d["drift_after"], 30);
  EXPECT_FALSE(chroma::ChromaStore::open(config())) << "a dry run created the collection";

  CmdResult sync = run("dual", "sync --json --page 7");
  ASSERT_EQ(sync.code, 0) << sync.out << sync.err;
  json s = json::parse(sync.out);
  EXPECT_EQ(s["checked"], 30);
  EXPECT_EQ(s["missing"], 30);
  EXPECT_EQ(s["copied"], 30);
  EXPECT_EQ(s["deleted"], 0);
  EXPECT_EQ(s["already_equal"], 0);
  EXPECT_EQ(s["drift_before"], 30);
  EXPECT_EQ(s["drift_after"], 0);

  h = health_json("dual", 0);
  EXPECT_TRUE(h["healthy"].get<bool>()) << h["reasons"].dump();
  EXPECT_EQ(h["secondary"]["rows"], 30);
  EXPECT_EQ(h["drift"]["difference"], 0);

  // The copy is what PostgreSQL stores: searches of both backends agree.
  CmdResult pg_hits = run("pgvector", "search 'cocoa harvest' --top-k 5 --json");
  CmdResult ch_hits = run("chromadb", "search 'cocoa harvest' --top-k 5 --json");
  ASSERT_EQ(pg_hits.code, 0) << pg_hits.err;
  ASSERT_EQ(ch_hits.code, 0) << ch_hits.err;
  json a = json::parse(pg_hits.out);
  json b = json::parse(ch_hits.out);
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (std::size_t i = 0; i < 5; ++i) EXPECT_EQ(a[i]["id"], b[i]["id"]) << i;

  // Safe to rerun: nothing left to do.
  CmdResult again = run("dual", "sync");
  ASSERT_EQ(again.code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("30 checked, 30 already equal; drift 0 (0 missing, 0 changed, 0 extra)"), std::string::npos)
      << again.out;
  EXPECT_NE(again.out.find("copied 0, deleted 0; drift after: 0"), std::string::npos) << again.out;

  // Drift of the other kinds: a vector changed behind the dual store, and an id only Chroma has.
  {
    auto store = chroma::ChromaStore::open(config());
    ASSERT_TRUE(store) << store.error().to_string();
    auto all = (*store)->get_vectors(1, std::nullopt);
    ASSERT_TRUE(all && all->ids.size() == 1);
    ArticleVector changed;
    changed.article.uri = all->ids[0];
    changed.article.title = "changed behind vstore's back";
    changed.embedding.assign(64, 0.5f);
    changed.embedding_model = "vstore-hash-v2";
    ArticleVector extra = changed;
    extra.article.uri = "stray:1";
    const std::vector<ArticleVector> items = {changed, extra};
    auto written = (*store)->upsert(items);
    ASSERT_TRUE(written) << written.error().to_string();
  }
  h = health_json("dual", 1);
  EXPECT_EQ(h["drift"]["difference"], -1) << h["drift"].dump();
  CmdResult repair = run("dual", "sync --json");
  ASSERT_EQ(repair.code, 0) << repair.out << repair.err;
  s = json::parse(repair.out);
  EXPECT_EQ(s["changed"], 1);
  EXPECT_EQ(s["extra"], 1);
  EXPECT_EQ(s["copied"], 1);
  EXPECT_EQ(s["deleted"], 1);
  EXPECT_EQ(s["already_equal"], 29);
  EXPECT_EQ(s["drift_before"], 2);
  EXPECT_EQ(s["drift_after"], 0);
  h = health_json("dual", 0);
  EXPECT_EQ(h["secondary"]["rows"], 30);
}

// Item 11, and the outbox part of item 10: Chroma down while ingesting.
TEST_F(Issue23Dual, Item11IngestSaysHowManyWritesWaitInTheOutboxWhileChromaIsDown) {
  ASSERT_EQ(run("dual", "schema up").code, 0);
  CmdResult up = run("dual", "ingest " + articles("a.jsonl", 100, 4));
  ASSERT_EQ(up.code, 0) << up.err;
  EXPECT_NE(up.out.find("0 writes queued for chromadb (outbox)"), std::string::npos) << up.out;

  s_chroma->stop();
  CmdResult down = run("dual", "ingest " + articles("b.jsonl", 104, 3));
  EXPECT_EQ(down.code, 0) << "the primary took the writes: " << down.err;
  EXPECT_NE(down.out.find("3 upserted"), std::string::npos) << down.out;
  EXPECT_NE(down.out.find("3 writes queued for chromadb (outbox)"), std::string::npos) << down.out;
  EXPECT_NE(down.out.find("vstore outbox drain"), std::string::npos) << down.out;
  CmdResult down_json = run("dual", "ingest --json " + articles("c.jsonl", 107, 1));
  ASSERT_EQ(down_json.code, 0) << down_json.err;
  const json summary = json::parse(down_json.out);
  EXPECT_EQ(summary["secondary"]["backend"], "chromadb");
  EXPECT_EQ(summary["secondary"]["queued"], 4);
  EXPECT_TRUE(summary["secondary"]["error"].is_string()) << down_json.out;

  json h = health_json("dual", 1);
  expect_every_health_key(h, "dual health, Chroma down");
  EXPECT_EQ(h["with_embedding"], 8);
  EXPECT_EQ(h["outbox"]["pending"], 4);
  EXPECT_TRUE(h["outbox"]["oldest_age_s"].is_number()) << h["outbox"].dump();
  EXPECT_TRUE(h["outbox"]["last_error"].is_string()) << h["outbox"].dump();
  ASSERT_TRUE(h["secondary_last_error"].is_object()) << h.dump();
  EXPECT_TRUE(h["secondary_last_error"]["at"].is_string());
  EXPECT_FALSE(h["secondary"]["healthy"].get<bool>());
  EXPECT_TRUE(h["secondary"]["rows"].is_null()) << "unknown while Chroma is down";

  s_chroma->start();
  CmdResult drain = run("dual", "outbox drain --json");
  ASSERT_EQ(drain.code, 0) << drain.err;
  EXPECT_EQ(json::parse(drain.out)["drained"], 4);
  h = health_json("dual", 0);
  EXPECT_EQ(h["secondary"]["rows"], 8);
  EXPECT_EQ(h["outbox"]["pending"], 0);
}

// Item 12: each comparison is kept in PostgreSQL, so the totals add up across processes.
TEST_F(Issue23Dual, Item12ShadowComparisonsAreKeptAndReportedByHealth) {
  ASSERT_EQ(run("dual", "schema up").code, 0);
  ASSERT_EQ(run("dual", "ingest " + articles("a.jsonl", 200, 20)).code, 0);
  CmdResult flag = run("dual", "search 'oil prices' --top-k 5 --shadow-compare");
  ASSERT_EQ(flag.code, 0) << flag.err;
  EXPECT_NE(flag.err.find("shadow compare: chromadb returned 5 of these 5 results (overlap@5 1.00)"), std::string::npos)
      << flag.err;
  EXPECT_EQ(flag.err.find('{'), std::string::npos) << "no raw JSON: " << flag.err;
  CmdResult env = run("dual", "search 'wheat exports' --top-k 3", "VSTORE_SHADOW_COMPARE=1");
  ASSERT_EQ(env.code, 0) << env.err;
  EXPECT_NE(env.err.find("shadow compare: chromadb returned 3 of these 3 results"), std::string::npos) << env.err;
  CmdResult plain = run("dual", "search 'wheat exports' --top-k 3");
  EXPECT_EQ(plain.err.find("shadow compare"), std::string::npos) << plain.err;

  json h = health_json("dual", 0);
  EXPECT_EQ(h["shadow"]["reads"], 2) << h["shadow"].dump();
  EXPECT_EQ(h["shadow"]["failures"], 0);
  EXPECT_DOUBLE_EQ(h["shadow"]["mean_overlap"].get<double>(), 1.0);
  EXPECT_TRUE(h["shadow"]["last_at"].is_string());
  CmdResult text = run("dual", "health");
  EXPECT_NE(text.out.find("shadow: 2 reads compared, 0 failures, mean overlap 1.00"), std::string::npos) << text.out;

  s_chroma->stop();
  CmdResult failed = run("dual", "search 'oil' --top-k 3 --shadow-compare");
  EXPECT_EQ(failed.code, 0) << "a secondary outage never fails a read: " << failed.err;
  EXPECT_NE(failed.err.find("shadow compare: chromadb could not answer"), std::string::npos) << failed.err;
  h = health_json("dual", 1);
  EXPECT_EQ(h["shadow"]["reads"], 2);
  EXPECT_EQ(h["shadow"]["failures"], 1);
}

// Item 14: a Chroma primary whose filtered search comes back short. Chroma's walk rarely stops
// short on small data, so the test hook cuts the primary's answer as a short walk would.
TEST_F(Issue23Dual, Item14AShortFilteredSearchOfAChromaPrimaryIsRankedExactlyAndSaysSo) {
  Config cfg = config();
  cfg.backend = BackendKind::dual;
  cfg.primary = BackendKind::chromadb;
  auto migrated = schema_up(s_db, cfg);
  ASSERT_TRUE(migrated) << migrated.error().to_string();
  OpenOptions options;
  options.create = true;
  auto opened = open_store(cfg, options);
  ASSERT_TRUE(opened) << opened.error().to_string();
  auto* dual = dynamic_cast<api::DualStore*>(opened->get());
  ASSERT_NE(dual, nullptr);
  std::mt19937 rng(23);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<ArticleVector> items;
  for (int i = 0; i < 40; ++i) {
    ArticleVector a;
    a.article.uri = "s:" + std::to_string(i);
    a.article.title = "Article " + std::to_string(i);
    a.article.topic = i % 4 == 0 ? "grain" : "other";
    a.embedding.resize(64);
    for (float& f : a.embedding) f = dist(rng);
    a.embedding_model = cfg.embedding_model;
    items.push_back(std::move(a));
  }
  ASSERT_TRUE((*opened)->upsert(items));
  SearchOptions search;
  search.top_k = 8;
  auto where = parse_filter(std::string_view(R"({"topic": "grain"})"));
  ASSERT_TRUE(where);
  search.where = *where;
  auto full = (*opened)->search(items[0].embedding, search);
  ASSERT_TRUE(full) << full.error().to_string();
  ASSERT_EQ(full->size(), 8u);
  EXPECT_EQ(dual->last_search_note(), "");

  dual->test_set_primary_hits_cap(3);
  auto cut = (*opened)->search(items[0].embedding, search);
  ASSERT_TRUE(cut) << cut.error().to_string();
  ASSERT_EQ(cut->size(), 8u) << "ranked exactly over the 10 matching articles";
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ((*cut)[i].id, (*full)[i].id) << i;
    EXPECT_NEAR((*cut)[i].score, (*full)[i].score, 1e-5) << i;
    EXPECT_EQ((*cut)[i].metadata.value("topic", ""), "grain");
  }
  EXPECT_EQ(dual->last_search_note(),
            "chromadb answered the filtered search with 3 of 8 hits although 10 articles match the filter; ranked the "
            "matching articles exactly instead");
  // Fewer matches than top_k is no shortfall: the answer has them all, and no note.
  search.top_k = 20;
  auto all = (*opened)->search(items[0].embedding, search);
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), 10u);
  dual->test_set_primary_hits_cap(std::nullopt);
  auto uncut = (*opened)->search(items[0].embedding, search);
  ASSERT_TRUE(uncut);
  EXPECT_EQ(uncut->size(), 10u);
  EXPECT_EQ(dual->last_search_note(), "");
}

// Item 22 (health): every key on every backend, and when the store cannot be opened.
TEST_F(Issue23Dual, Item22HealthJsonCarriesEveryKeyOnEveryBackendAndWhenTheStoreCannotOpen) {
  ASSERT_EQ(run("pgvector", "schema up").code, 0);
  ASSERT_EQ(run("dual", "ingest " + articles("a.jsonl", 300, 3)).code, 0);
  for (const char* backend : {"pgvector", "chromadb", "dual"}) {
    json h = health_json(backend, 0);
    ASSERT_FALSE(h.is_discarded()) << backend;
    expect_every_health_key(h, backend);
    EXPECT_EQ(h["backend"], backend);
    EXPECT_EQ(h["rows"], 3) << backend;
  }
  // A collection that does not exist: chromadb cannot open; the keys are there, null.
  json missing = json::parse(run("chromadb", "health --json", "CHROMA_COLLECTION=nothing-here").out, nullptr, false);
  ASSERT_FALSE(missing.is_discarded());
  expect_every_health_key(missing, "chromadb without its collection");
  EXPECT_FALSE(missing["healthy"].get<bool>());
  EXPECT_TRUE(missing["rows"].is_null());
  EXPECT_TRUE(missing["index"]["type"].is_null());
  EXPECT_NE(missing["reasons"].dump().find("nothing-here"), std::string::npos) << missing.dump();
  // A table schema up never saw: pgvector cannot open.
  CmdResult bare = run("pgvector", "health --json", "VSTORE_TABLE=never_migrated");
  EXPECT_EQ(bare.code, 1);
  json b = json::parse(bare.out, nullptr, false);
  ASSERT_FALSE(b.is_discarded()) << bare.out;
  expect_every_health_key(b, "pgvector without its table");
  EXPECT_EQ(b["backend"], "pgvector");
  EXPECT_NE(b["reasons"].dump().find("schema up"), std::string::npos) << bare.out;
  // The text says the same words.
  CmdResult text = run("chromadb", "health", "CHROMA_COLLECTION=nothing-here");
  EXPECT_EQ(text.code, 1);
  EXPECT_NE(text.out.find("UNHEALTHY: chromadb"), std::string::npos) << text.out << text.err;
  EXPECT_NE(text.out.find("reason: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("nothing-here"), std::string::npos) << text.out;
  EXPECT_NE(text.err.find("vstore: "), std::string::npos) << "the one-line reason on stderr: " << text.err;
}

}  // namespace
}  // namespace vstore
