// SPDX-License-Identifier: Apache-2.0
// Issue 26, least privilege: every step of a deployment (schema up, ingest, search, reindex,
// validate, migrate-chroma, cleanup-chroma, schema down) runs as a role that logs in with a
// password and is no superuser, may not create databases or roles, and owns nothing but the
// tables vstore makes; the pgvector extension is one an administrator created. Each privilege
// the role needs is first withheld: the step fails naming it and writes nothing; granted, the
// step passes. docs/security.md has the resulting table.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "support/cli_runner.hpp"
#include "support/own_pg.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::OwnPgServer;

constexpr const char* k_role = "vs_app";
constexpr const char* k_password = "app pw/Pr1v@26";  // needs percent-encoding in the URL
constexpr const char* k_db = "news";
constexpr int k_articles = 20;  // at least 16: an ingest that updates that many rows stages them

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A small Chroma directory written by chromadb 0.6.3: collection "articles" (cosine, 384
// dimensions, no embedding function) with three records whose ids no article has yet.
constexpr const char* k_make_chroma = R"PY(
import sys
import chromadb
from chromadb.config import Settings
client = chromadb.PersistentClient(path=sys.argv[1], settings=Settings(anonymized_telemetry=False))
col = client.create_collection(name="articles", metadata={"hnsw:space": "cosine"}, embedding_function=None)
vectors = [[1.0 if d % 3 == k else 0.25 for d in range(384)] for k in range(3)]
col.add(ids=["chroma:%d" % k for k in range(3)], embeddings=vectors,
        metadatas=[{"title": "Chroma article %d" % k, "topic": "grain"} for k in range(3)],
        documents=["Chroma document number %d about grain exports" % k for k in range(3)])
)PY";

class Issue26Privilege : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    ASSERT_NE(venvs, nullptr) << "VSTORE_TEST_CHROMA_PY must be set (by CTest)";
    std::string tmpl = (fs::temp_directory_path() / "vstore-i26priv-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    chmod(tmpl.c_str(), 0755);  // the server user must reach the cluster's directory
    s_dir = tmpl;
    {
      std::ofstream py(s_dir / "make_chroma.py");
      py << k_make_chroma;
    }
    // chromadb writes the directory while the cluster starts (both take seconds).
    const std::string cmd = fmt::format("'{}/0.6.3/bin/python' '{}' '{}' >'{}' 2>&1", venvs,
                                        (s_dir / "make_chroma.py").string(), (s_dir / "chromadb").string(),
                                        (s_dir / "make_chroma.log").string());
    FILE* python = popen(cmd.c_str(), "r");
    ASSERT_NE(python, nullptr);
    s_pg = std::make_unique<OwnPgServer>(s_dir / "pg");
    const int status = pclose(python);
    ASSERT_TRUE(s_pg->running()) << s_pg->error();
    ASSERT_EQ(status, 0) << "chromadb 0.6.3 did not write its directory: " << (s_dir / "make_chroma.log");
  }
  static void TearDownTestSuite() {
    s_pg.reset();
    std::error_code ec;
    fs::remove_all(s_dir, ec);
  }

  // `vstore ARGS` as the role, through a URL with its password, over TCP.
  CmdResult run(const std::string& args) {
    const std::string url = s_pg->url(k_role, k_password, k_db);
    return vstore::testing::run_vstore(s_dir.string(), args,
                                       fmt::format("DATABASE_URL='{}' CHROMA_DB_DIR='{}'", url, (s_dir / "chromadb").string()));
  }
  // SQL as the superuser on the test's database; fails the test on error.
  void admin(const std::string& sql, const std::string& dbname = k_db) {
    const std::string error = s_pg->admin_sql(dbname, sql);
    ASSERT_EQ(error, "") << sql;
  }
  // The first value of a query run as the superuser.
  std::string admin_value(const std::string& sql) {
    auto conn = vstore::pg::Connection::connect(s_pg->admin_conninfo(k_db));
    if (!conn) return "connect failed: " + conn.error().to_string();
    auto res = conn->exec(sql);
    if (!res) return "query failed: " + res.error().to_string();
    return res->rows() == 0 || res->is_null(0, 0) ? "" : res->text(0, 0);
  }
  // What the role owns in the database (relations, with their kind), and every article row:
  // equal digests, nothing written.
  std::string owned() {
    return admin_value(fmt::format("SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname) FROM pg_class "
                                   "WHERE relowner = '{}'::regrole AND relnamespace = 'public'::regnamespace",
                                   k_role));
  }
  std::string rows_digest() {
    return admin_value(
        "SELECT md5(string_agg(uri || ':' || coalesce(raw, '-') || ':' || coalesce(md5(embedding::text), '-') || ':' || "
        "coalesce(embedding_model, '-') || ':' || coalesce(encode(embedding_text_hash, 'hex'), '-'), ',' ORDER BY uri)) "
        "FROM articles");
  }

  static inline fs::path s_dir;
  static inline std::unique_ptr<OwnPgServer> s_pg;
};

TEST_F(Issue26Privilege, EveryStepRunsAsAPlainRoleAndAWithheldPrivilegeIsNamedWithNothingWritten) {
  // The database admits nobody by default (CONNECT and TEMPORARY are revoked from PUBLIC); the
  // role logs in with a password and has no other attribute.
  admin(fmt::format("CREATE DATABASE {}", k_db), "postgres");
  admin(fmt::format("REVOKE ALL ON DATABASE {} FROM PUBLIC", k_db), "postgres");
  ASSERT_EQ(s_pg->create_login_role(k_role, k_password), "");
  EXPECT_EQ(admin_value(fmt::format("SELECT concat_ws(',', rolsuper, rolcreatedb, rolcreaterole, rolreplication, "
                                    "rolbypassrls, rolcanlogin) FROM pg_roles WHERE rolname = '{}'",
                                    k_role)),
            "f,f,f,f,f,t");
  // PostgreSQL 15: nobody but the database owner may create in schema public.
  EXPECT_EQ(admin_value(fmt::format("SELECT has_schema_privilege('{}', 'public', 'CREATE')::text", k_role)), "false");

  // ---- connecting: CONNECT on the database --------------------------------------------------
  CmdResult r = run("schema up");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, fmt::format("permission denied for database {}", k_db))) << r.err;
  EXPECT_TRUE(contains(r.err, "CONNECT")) << r.err;
  admin(fmt::format("GRANT CONNECT ON DATABASE {} TO {}", k_db, k_role));

  // ---- schema up: CREATE on the schema -------------------------------------------------------
  r = run("schema up");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "permission denied for schema public")) << r.err;
  EXPECT_EQ(owned(), "");
  admin(fmt::format("GRANT CREATE ON SCHEMA public TO {}", k_role));

  // ---- schema up: the extension, which only a superuser may create -----------------------------
  r = run("schema up");
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_TRUE(contains(r.err, "permission denied to create extension")) << r.err;
  EXPECT_TRUE(contains(r.err, "CREATE EXTENSION vector")) << "the error should say what the administrator runs: " << r.err;
  EXPECT_EQ(owned(), "");
  admin("CREATE EXTENSION vector");
  r = run("schema up");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "schema up:")) << r.out;
  EXPECT_TRUE(contains(owned(), "articles:r")) << owned();
  EXPECT_EQ(admin_value("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'vector'"), "vstore");
  // Once the schema is up, `schema up` with nothing pending needs no CREATE on the schema.
  admin(fmt::format("REVOKE CREATE ON SCHEMA public FROM {}", k_role));
  r = run("schema up");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "nothing was pending")) << r.out;
  admin(fmt::format("GRANT CREATE ON SCHEMA public TO {}", k_role));  // migrate-chroma makes its checkpoint table

  // ---- ingest of new articles: COPY straight into the table, no more privileges -------------
  auto write_articles = [&](const std::string& file, const std::string& edition) {
    std::ofstream out(s_dir / file);
    for (int k = 0; k < k_articles; ++k) {
      out << json{{"uri", fmt::format("priv:{:02}", k)},
                  {"title", fmt::format("Wheat export report {}", k)},
                  {"raw", fmt::format("Wheat and grain exports rose in week {} as shipments to Asia grew{}", k, edition)},
                  {"topic", k % 2 == 0 ? "grain" : "wheat"},
                  {"publication_date", fmt::format("1987-03-{:02}", k + 1)}}
                 .dump()
          << "\n";
    }
  };
  write_articles("articles.jsonl", "");
  write_articles("articles-revised.jsonl", " (revised)");
  r = run("ingest articles.jsonl");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, fmt::format("{} upserted", k_articles))) << r.out;

  // ---- the steps that stage rows in temporary tables: TEMPORARY on the database -------------
  // (an ingest that updates 16 or more rows the table holds in one batch, migrate-chroma, and
  // reindex when it has rows to embed)
  struct Step {
    std::string args;
    std::string what;  // what success prints
  };
  const Step temp_steps[] = {
      {"ingest --reembed articles-revised.jsonl", fmt::format("{} upserted", k_articles)},
      {"migrate-chroma --from-dir chromadb --model vstore-hash-v2 --insert-missing", "Migration complete"},
      {"reindex --force", "3 processed"},  // the migrated rows: vectors that came without their text's hash
  };
  const std::string temp_refusal = fmt::format("permission denied to create temporary tables in database \"{}\"", k_db);
  for (const Step& step : temp_steps) {
    SCOPED_TRACE(step.args);
    const std::string before = rows_digest();
    r = run(step.args);
    EXPECT_EQ(r.code, 1) << r.out << r.err;
    EXPECT_TRUE(contains(r.err, temp_refusal)) << r.err;
    EXPECT_EQ(rows_digest(), before) << "a step refused for want of TEMPORARY wrote rows";
    admin(fmt::format("GRANT TEMPORARY ON DATABASE {} TO {}", k_db, k_role));
    r = run(step.args);
    EXPECT_EQ(r.code, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, step.what)) << r.out;
    EXPECT_NE(rows_digest(), before) << "the step wrote nothing";
    admin(fmt::format("REVOKE TEMPORARY ON DATABASE {} FROM {}", k_db, k_role));
  }
  EXPECT_EQ(admin_value("SELECT count(*) FROM articles WHERE embedding IS NOT NULL AND raw LIKE '%(revised)'"),
            std::to_string(k_articles));
  EXPECT_EQ(admin_value("SELECT count(*) FROM articles WHERE embedding_text_hash IS NOT NULL"), std::to_string(k_articles + 3));
  // The refused runs are in the operations log, as failed.
  EXPECT_EQ(admin_value("SELECT string_agg(kind || ':' || status, ',' ORDER BY id) FROM vstore_operations"),
            "migrate-chroma:failed,migrate-chroma:succeeded,reindex:failed,reindex:succeeded");

  // ---- the steps that need nothing more than owning vstore's tables --------------------------
  r = run("search 'wheat exports' --top-k 3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out, nullptr, false).size(), 3U) << r.out;
  r = run("health --json");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(json::parse(r.out, nullptr, false).value("healthy", false)) << r.out;
  r = run("validate --no-chroma --sample 5 --json");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(json::parse(r.out, nullptr, false).value("passed", false)) << r.out;
  r = run("cleanup-chroma --confirm --no-backup");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_FALSE(fs::exists(s_dir / "chromadb"));

  // ---- schema down: the role drops what it made but the records of what was done (the
  // migrations' versions, migrate-chroma's checkpoints); the administrator's extension stays ---
  auto as_role = vstore::pg::Connection::connect(s_pg->url(k_role, k_password, k_db));
  ASSERT_TRUE(as_role) << as_role.error().to_string();
  ASSERT_TRUE(as_role->exec("DELETE FROM articles"));
  r = run("schema down");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(owned(), "vstore_chroma_checkpoints:r,vstore_chroma_checkpoints_pkey:i,vstore_schema_migrations:r,"
                     "vstore_schema_migrations_pkey:i");
  EXPECT_EQ(admin_value("SELECT count(*) FROM pg_extension WHERE extname = 'vector'"), "1");

  // Nothing above made the role more than it was.
  EXPECT_EQ(admin_value(fmt::format("SELECT concat_ws(',', rolsuper, rolcreatedb, rolcreaterole) FROM pg_roles "
                                    "WHERE rolname = '{}'",
                                    k_role)),
            "f,f,f");
}

}  // namespace
