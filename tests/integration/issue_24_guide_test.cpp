// SPDX-License-Identifier: Apache-2.0
// Issue 24, item 7: docs/migration-guide.md, run end to end. An application-owned `articles`
// table (its own columns, publication_date as text, rows already in it) and the Chroma directory
// the application wrote with the chromadb package (served by a real Chroma server for the steps
// that query it); then every step of the guide, a rollback to Chroma in dual mode, and a restore
// after the cleanup. At the end the application's rows and columns are as they were and every
// article has its vector.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

constexpr int k_articles = 60;
constexpr int k_not_in_chroma = 5;  // the application never embedded these

// A field of a Reuters article, "" when it is absent or null.
std::string field(const json& a, const char* key) {
  const auto it = a.find(key);
  return it == a.end() || !it->is_string() ? std::string() : it->get<std::string>();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::map<std::string, std::string> files_of(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::ostringstream bytes;
    bytes << in.rdbuf();
    out[e.path().lexically_relative(dir).string()] = bytes.str();
  }
  return out;
}

class Issue24Guide : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    m_db = vstore::testing::PgServer::instance().create_database("i24guide");
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_db); }

  // The guide's .env, as environment: the application's database and table, the Chroma
  // directory and the server that serves its data.
  CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(
        m_tmp.path.string(), args,
        fmt::format("DATABASE_URL='{}' CHROMA_DB_DIR=chromadb CHROMA_URL='{}' CHROMA_COLLECTION=articles {}", m_db,
                    m_chroma ? m_chroma->url() : std::string(), env));
  }
  // The application's own columns of every row, in uri order.
  std::string app_rows() {
    return sql_value(m_db, "SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s', uri, title, summary, topic, "
                           "publication_date, news_source, app_flag), E'\\n' ORDER BY uri) FROM articles");
  }
  std::string app_columns() {
    return sql_value(m_db, "SELECT string_agg(attname || ':' || format_type(atttypid, atttypmod), ',' ORDER BY attnum) "
                           "FROM pg_attribute WHERE attrelid = 'articles'::regclass AND attnum > 0 AND NOT attisdropped "
                           "AND attname IN ('uri', 'title', 'summary', 'raw', 'topic', 'publication_date', "
                           "'news_source', 'app_flag')");
  }

  vstore::testing::TempDir m_tmp;
  std::string m_db;
  std::unique_ptr<vstore::testing::ChromaServer> m_chroma;
};

TEST_F(Issue24Guide, EveryStepOfTheMigrationGuideWithARollbackAndARestore) {
  const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
  const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
  const char* src = std::getenv("VSTORE_SOURCE_DIR");
  ASSERT_TRUE(shared && venvs && src) << "run through CTest";

  // The application's table and rows: its own columns, publication_date as text.
  std::vector<json> articles;
  {
    std::ifstream in(std::string(shared) + "/reuters21578/articles.jsonl");
    std::string line;
    while (static_cast<int>(articles.size()) < k_articles && std::getline(in, line)) {
      json a = json::parse(line);
      if (field(a, "summary").empty() || field(a, "topic").empty()) continue;
      articles.push_back(std::move(a));
    }
  }
  ASSERT_EQ(static_cast<int>(articles.size()), k_articles);
  {
    auto conn = vstore::pg::Connection::connect(m_db);
    ASSERT_TRUE(conn) << conn.error().to_string();
    ASSERT_TRUE(conn->exec("CREATE TABLE articles (uri text PRIMARY KEY, title text NOT NULL, summary text, raw text, "
                           "topic text, publication_date text, news_source text, app_flag boolean NOT NULL DEFAULT true)"));
    for (const auto& a : articles) {
      const std::string uri = field(a, "uri"), title = field(a, "title"), summary = field(a, "summary"),
                        raw = field(a, "raw"), topic = field(a, "topic"), date = field(a, "publication_date"),
                        source = field(a, "news_source");
      vstore::pg::Param p[] = {vstore::pg::Param::text(uri),   vstore::pg::Param::text(title),
                               vstore::pg::Param::text(summary), vstore::pg::Param::text(raw),
                               vstore::pg::Param::text(topic), vstore::pg::Param::text(date),
                               vstore::pg::Param::text(source)};
      ASSERT_TRUE(conn->exec_params("INSERT INTO articles (uri, title, summary, raw, topic, publication_date, news_source) "
                                    "VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                    p));
    }
  }
  const std::string rows_before = app_rows();
  const std::string columns_before = app_columns();

  // The application's Chroma directory: the vectors its vector store made (the same embedder,
  // taken from a scratch store), for all articles but the last few, written by chromadb 1.0.19.
  {
    const std::string scratch = vstore::testing::PgServer::instance().create_database("i24guidesrc");
    std::ofstream out(m_tmp.path / "scratch.jsonl");
    for (const auto& a : articles) out << a.dump() << "\n";
    out.close();
    const std::string env = "DATABASE_URL='" + scratch + "'";
    ASSERT_EQ(vstore::testing::run_vstore(m_tmp.path.string(), "schema up", env).code, 0);
    ASSERT_EQ(vstore::testing::run_vstore(m_tmp.path.string(), "ingest scratch.jsonl", env).code, 0);
    CmdResult vectors = vstore::testing::run_vstore(m_tmp.path.string(), "vectors --limit 1000 --json", env);
    ASSERT_EQ(vectors.code, 0) << vectors.err;
    vstore::testing::PgServer::instance().drop_database(scratch);
    const json v = json::parse(vectors.out);
    ASSERT_EQ(v["ids"].size(), articles.size());
    std::map<std::string, json> by_uri;
    for (const auto& a : articles) by_uri[a["uri"]] = a;
    std::set<std::string> never_embedded;  // the application never embedded the last few
    for (int i = 0; i < k_not_in_chroma; ++i) never_embedded.insert(articles[articles.size() - 1 - i]["uri"]);
    std::ofstream records(m_tmp.path / "records.jsonl");
    for (std::size_t i = 0; i < v["ids"].size(); ++i) {
      const std::string id = v["ids"][i];
      const json& a = by_uri.at(id);
      if (never_embedded.contains(id)) continue;
      records << json{{"id", id},
                      {"embedding", v["vectors"][i]},
                      {"metadata", {{"topic", a["topic"]}, {"title", a["title"]}}},
                      {"document", a["summary"]}}
                     .dump()
              << "\n";
    }
  }
  const fs::path chroma_dir = m_tmp.path / "chromadb";
  const std::string make = fmt::format("'{}/1.0.19/bin/python' '{}/tests/support/make_app_chroma_dir.py' '{}' '{}' >'{}.log' 2>&1",
                                       venvs, src, chroma_dir.string(), (m_tmp.path / "records.jsonl").string(),
                                       chroma_dir.string());
  ASSERT_EQ(std::system(make.c_str()), 0) << "chromadb 1.0.19 did not write the directory: " << chroma_dir << ".log";
  // The same data served over HTTP (`chroma run --path` on a copy), for validate and dual mode.
  m_chroma = std::make_unique<vstore::testing::ChromaServer>();
  m_chroma->stop();
  fs::remove_all(m_chroma->data_dir());
  fs::copy(chroma_dir, m_chroma->data_dir(), fs::copy_options::recursive);
  m_chroma->start();

  // Step 1: pgvector is installed.
  CmdResult version = run("version --json");
  ASSERT_EQ(version.code, 0) << version.err;
  EXPECT_FALSE(json::parse(version.out)["pgvector"].is_null()) << version.out;

  // Step 2: the schema, beside the application's columns.
  CmdResult up = run("schema up");
  ASSERT_EQ(up.code, 0) << up.err;
  EXPECT_EQ(app_rows(), rows_before);
  EXPECT_EQ(app_columns(), columns_before);

  // Step 3: Chroma's vectors, exactly; then the articles Chroma did not have.
  CmdResult migrated = run("migrate-chroma --from-dir chromadb --collection articles --model vstore-hash-v2 --verify --json");
  ASSERT_EQ(migrated.code, 0) << migrated.out << migrated.err;
  EXPECT_EQ(sql_value(m_db, "SELECT count(embedding) FROM articles"), std::to_string(k_articles - k_not_in_chroma));
  CmdResult reindexed = run("reindex --json");
  ASSERT_EQ(reindexed.code, 0) << reindexed.out << reindexed.err;
  EXPECT_EQ(json::parse(reindexed.out)["processed"], k_not_in_chroma) << reindexed.out;
  EXPECT_EQ(sql_value(m_db, "SELECT count(embedding) FROM articles"), std::to_string(k_articles));

  // Step 4: validate against the Chroma server.
  CmdResult validated = run("validate --sample 20 --json");
  ASSERT_EQ(validated.code, 0) << validated.out << validated.err;
  EXPECT_TRUE(json::parse(validated.out)["passed"].get<bool>()) << validated.out;
  EXPECT_EQ(json::parse(validated.out)["articles"]["pgvector_only"], k_not_in_chroma)
      << "the articles Chroma never had are set aside, not compared";

  // Step 5: dual mode; a new article reaches both stores.
  const std::string dual = "VECTOR_BACKEND=dual VECTOR_PRIMARY=pgvector";
  {
    auto conn = vstore::pg::Connection::connect(m_db);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(conn->exec("INSERT INTO articles (uri, title, summary, topic, publication_date, news_source) VALUES "
                           "('app:new', 'Zanzibar clove harvest doubles', 'The clove harvest of Zanzibar doubled.', "
                           "'cloves', 'March 02, 1987', 'Reuters')"));
    std::ofstream out(m_tmp.path / "new.jsonl");
    out << json{{"uri", "app:new"}, {"title", "Zanzibar clove harvest doubles"},
                {"summary", "The clove harvest of Zanzibar doubled."}, {"topic", "cloves"}}
               .dump()
        << "\n";
  }
  // Chroma gets what reindex embedded (it never had those articles), once.
  CmdResult synced = run("sync --json", dual);
  ASSERT_EQ(synced.code, 0) << synced.out << synced.err;
  EXPECT_EQ(json::parse(synced.out)["missing"], k_not_in_chroma) << synced.out;
  EXPECT_EQ(json::parse(synced.out)["changed"], k_articles - k_not_in_chroma)
      << "the application's records get vstore's metadata keys; their vectors are the same";
  EXPECT_EQ(json::parse(synced.out)["drift_after"], 0) << synced.out;
  const std::string rows_with_new = app_rows();
  CmdResult ingested = run("ingest new.jsonl", dual);
  ASSERT_EQ(ingested.code, 0) << ingested.out << ingested.err;
  ASSERT_EQ(run("outbox drain", dual).code, 0);
  // The rollback of step 5: back to Chroma, which dual mode kept current.
  CmdResult on_chroma = run("search 'Zanzibar clove harvest' --top-k 3 --json", "VECTOR_BACKEND=chromadb");
  ASSERT_EQ(on_chroma.code, 0) << on_chroma.err;
  EXPECT_EQ(json::parse(on_chroma.out)[0]["id"], "app:new") << on_chroma.out;
  // And forward again (step 6 is the application's restart: every command here is a new process).
  CmdResult on_dual = run("search 'Zanzibar clove harvest' --top-k 3 --json", dual);
  ASSERT_EQ(on_dual.code, 0) << on_dual.err;
  EXPECT_EQ(json::parse(on_dual.out)[0]["id"], "app:new") << on_dual.out;

  // Step 7: monitor.
  CmdResult health = run("health --json", dual);
  EXPECT_EQ(health.code, 0) << health.out;
  EXPECT_EQ(json::parse(health.out)["last_validation"]["stale"], true) << "dual mode wrote after the validation";

  // Step 8: validate again, switch to pgvector, clean up the server's collection and the
  // directory, each with its backup.
  CmdResult refused = run("cleanup-chroma --confirm --server");
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(contains(refused.err, "older than the last vector write")) << refused.err;
  validated = run("validate --sample 20 --json", dual);
  ASSERT_EQ(validated.code, 0) << validated.out << validated.err;
  const std::string pg_only = "VECTOR_BACKEND=pgvector";
  CmdResult dry = run("cleanup-chroma --dry-run --server --json", pg_only);
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_TRUE(json::parse(dry.out)["allowed"].get<bool>()) << dry.out;
  CmdResult server_gone = run("cleanup-chroma --confirm --server --json", pg_only);
  ASSERT_EQ(server_gone.code, 0) << server_gone.err;
  const auto directory_before = files_of(chroma_dir);
  CmdResult dir_gone = run("cleanup-chroma --confirm --dir --json", pg_only);
  ASSERT_EQ(dir_gone.code, 0) << dir_gone.err;
  EXPECT_FALSE(fs::exists(chroma_dir));
  // pgvector alone serves every article.
  CmdResult alone = run("search 'Zanzibar clove harvest' --top-k 1 --json", pg_only);
  ASSERT_EQ(alone.code, 0) << alone.err;
  EXPECT_EQ(json::parse(alone.out)[0]["id"], "app:new");

  // The rollback of step 8: both backups back, checked.
  CmdResult restored = run("restore-chroma '" + json::parse(dir_gone.out)["backup"].get<std::string>() + "'");
  ASSERT_EQ(restored.code, 0) << restored.err;
  EXPECT_EQ(files_of(chroma_dir), directory_before);
  restored = run("restore-chroma '" + json::parse(server_gone.out)["backup"].get<std::string>() + "' --json");
  ASSERT_EQ(restored.code, 0) << restored.err;
  EXPECT_EQ(json::parse(restored.out)["records"], k_articles + 1);
  on_chroma = run("search 'Zanzibar clove harvest' --top-k 1 --json", "VECTOR_BACKEND=chromadb");
  ASSERT_EQ(on_chroma.code, 0) << on_chroma.err;
  EXPECT_EQ(json::parse(on_chroma.out)[0]["id"], "app:new");

  // The application's rows and columns as they were; every vector arrived.
  EXPECT_EQ(app_rows(), rows_with_new);
  EXPECT_EQ(app_columns(), columns_before);
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles WHERE embedding IS NULL"), "0");
  EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles"), std::to_string(k_articles + 1));
}

}  // namespace
