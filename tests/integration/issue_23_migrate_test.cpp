// SPDX-License-Identifier: Apache-2.0
// Issue 23, items 4-9, for `vstore migrate-chroma`: a run that migrates nothing fails and names
// --insert-missing (4); every run writes its own report and prints its path (5); a rerun says it
// changed nothing and the dry run gives the same counts as the run (6); the collection choice,
// the model and the target table are checked before the source is read, and a dry run needs no
// database (7); the directory's internal schema words only with --verbose (8); the text uses
// the JSON's words (9). Each scenario runs the built binary against a directory written by the
// real chromadb 0.6.3 and a database of the shared PostgreSQL test server.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/migrate_checks.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class Issue23Migrate : public ::testing::Test {
 protected:
  // One chromadb 0.6.3 directory (tests/support/make_chroma_dir.py: c_cosine, c_l2, c_ip of
  // dimension 16, no embedding function stored), and a copy whose HNSW files are cut short, so
  // that reading any collection of it in full fails.
  static void SetUpTestSuite() {
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    const char* src = std::getenv("VSTORE_SOURCE_DIR");
    ASSERT_TRUE(venvs && src) << "VSTORE_TEST_CHROMA_PY and VSTORE_SOURCE_DIR must be set (by CTest)";
    std::string tmpl = (fs::temp_directory_path() / "vstore-i23migrate-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    s_root = tmpl;
    const fs::path dir = s_root / "chroma";
    const std::string cmd = fmt::format("'{}/0.6.3/bin/python' '{}/tests/support/make_chroma_dir.py' '{}' '{}.json' >'{}.log' 2>&1",
                                        venvs, src, dir.string(), dir.string(), dir.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "chromadb 0.6.3 did not write its directory: " << dir << ".log";
    std::ifstream in(dir.string() + ".json");
    const json truth = json::parse(in);
    for (const auto& c : truth["collections"]) {
      if (c["name"] != "c_l2") continue;
      for (const auto& rec : c["live"]) s_ids.push_back(rec["id"].get<std::string>());
    }
    ASSERT_GT(s_ids.size(), 100U);
    fs::copy(dir, s_root / "damaged", fs::copy_options::recursive);
    int cut = 0;
    for (const auto& entry : fs::recursive_directory_iterator(s_root / "damaged")) {
      if (entry.path().filename() == "data_level0.bin") {
        fs::resize_file(entry.path(), 1000);
        ++cut;
      }
    }
    ASSERT_GE(cut, 3);  // one per collection (and the orphan folder of the dropped one)
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(s_root, ec);
  }

  void SetUp() override {
    ASSERT_FALSE(s_root.empty());
    m_target.open("i23migrate", 16);
  }
  void TearDown() override { m_target.close(); }

  static std::string dir() { return (s_root / "chroma").string(); }
  static std::string damaged() { return (s_root / "damaged").string(); }
  static std::int64_t live() { return static_cast<std::int64_t>(s_ids.size()); }

  // `vstore ARGS` against this test's database, with its data directory for the reports.
  CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(m_target.data.string(), args,
                                       "EMBEDDING_DIM=16 DATABASE_URL='" + m_target.conninfo + "' " + env);
  }
  json run_json(const std::string& args, int expected_code, const std::string& env = "") {
    CmdResult r = run(args + " --json", env);
    EXPECT_EQ(r.code, expected_code) << args << "\n" << r.out << r.err;
    return json::parse(r.out, nullptr, false);
  }
  std::string sql(const std::string& query) { return sql_value(m_target.conninfo, query); }
  // A SQL list of the quoted ids [from, to) of c_l2 in id order.
  static std::string id_list(std::size_t from, std::size_t to) {
    std::string out;
    for (std::size_t i = from; i < to; ++i) out += fmt::format("{}'{}'", out.empty() ? "" : ", ", s_ids[i]);
    return out;
  }

  static fs::path s_root;
  static std::vector<std::string> s_ids;  // the live ids of c_l2, sorted
  vstore::testing::MigrateTarget m_target;
};

fs::path Issue23Migrate::s_root;
std::vector<std::string> Issue23Migrate::s_ids;

const std::string k_l2 = " --collection c_l2 --model m";

TEST_F(Issue23Migrate, Item4MigratingNothingFailsAndNamesInsertMissing) {
  const std::string from = "migrate-chroma --from-dir '" + dir() + "'" + k_l2;
  const std::string why = fmt::format("{} ids have no article row in table articles", live());
  CmdResult plan = run(from + " --dry-run");
  EXPECT_EQ(plan.code, 0) << plan.err;
  EXPECT_TRUE(contains(plan.out, fmt::format("skipped {}", live()))) << plan.out;
  EXPECT_TRUE(contains(plan.out, why)) << plan.out;
  EXPECT_TRUE(contains(plan.out, "a real run would fail: nothing would be migrated from collection c_l2")) << plan.out;

  CmdResult text = run(from);
  EXPECT_EQ(text.code, 1) << text.out;
  EXPECT_TRUE(contains(text.err, fmt::format("vstore: nothing migrated from collection c_l2: none of its {} ids has an "
                                             "article row in table articles; pass --insert-missing to create them",
                                             live())))
      << text.err;
  EXPECT_FALSE(contains(text.out, "Migration complete")) << text.out;
  EXPECT_TRUE(contains(text.out, "Migration failed")) << text.out;

  const json j = run_json(from, 1);
  EXPECT_FALSE(j["ok"].get<bool>());
  ASSERT_EQ(j["failures"].size(), 1U) << j.dump(1);
  EXPECT_TRUE(contains(j["failures"][0].get<std::string>(), "--insert-missing")) << j["failures"];
  EXPECT_EQ(j["summary"]["migrated"], 0);
  EXPECT_EQ(j["summary"]["skipped"], live());
  EXPECT_EQ(sql("SELECT count(*) FROM articles"), "0");

  // Some ids with a row: a success that says how many were skipped, why, and the flag.
  sql("INSERT INTO articles (uri) SELECT unnest(ARRAY[" + id_list(0, 40) + "])");
  CmdResult partial = run(from);
  EXPECT_EQ(partial.code, 0) << partial.out << partial.err;
  EXPECT_TRUE(contains(partial.out, fmt::format("migrated 40, unchanged 0, changed 40, inserted 0, skipped {}", live() - 40)))
      << partial.out;
  EXPECT_TRUE(contains(partial.out, fmt::format("skipped: {} ids have no article row in table articles; pass "
                                                "--insert-missing to create them",
                                                live() - 40)))
      << partial.out;
  EXPECT_TRUE(contains(partial.out, "Migration complete")) << partial.out;
  const json again = run_json(from, 0);
  EXPECT_TRUE(again["ok"].get<bool>());
  EXPECT_TRUE(contains(again["collections"][0]["skip_reason"].get<std::string>(), "--insert-missing"));
}

TEST_F(Issue23Migrate, Item5EveryRunWritesItsOwnReportAndPrintsItsPath) {
  // Two runs at once (two databases, one data directory), so that they start within the same
  // second: each report must survive, under its own name.
  const std::string other = vstore::testing::PgServer::instance().create_database("i23migrate");
  ASSERT_TRUE(vstore::schema_up(other, vstore::testing::test_config(other, 16)).has_value());
  const std::string data = m_target.data.string();
  // (A copy for the second: a run refuses a directory another process has open.)
  const std::string copy = data + "/chroma-copy";
  fs::copy(dir(), copy, fs::copy_options::recursive);
  auto command = [&](const std::string& conninfo, const std::string& from, const std::string& collection,
                     const std::string& out) {
    return fmt::format("env -u DATABASE_URL VSTORE_DATA_DIR='{}/data' EMBEDDING_DIM=16 EMBEDDING_PROVIDER=hash "
                       "DATABASE_URL='{}' '{}' migrate-chroma --from-dir '{}' --collection {} --model m --insert-missing "
                       "--json >'{}/{}'",
                       data, conninfo, vstore::testing::vstore_bin(), from, collection, data, out);
  };
  CmdResult both = vstore::testing::run_shell(data, "( " + command(m_target.conninfo, dir(), "c_l2", "a.json") + " & " +
                                                        command(other, copy, "c_ip", "b.json") + "; wait )");
  vstore::testing::PgServer::instance().drop_database(other);
  ASSERT_EQ(both.code, 0) << both.err;
  std::ifstream a_in(m_target.data / "a.json");
  std::ifstream b_in(m_target.data / "b.json");
  const json a = json::parse(a_in, nullptr, false);
  const json b = json::parse(b_in, nullptr, false);
  ASSERT_TRUE(a.is_object() && b.is_object());
  ASSERT_TRUE(a["report_path"].is_string()) << a.dump(1);
  ASSERT_TRUE(b["report_path"].is_string()) << b.dump(1);
  EXPECT_NE(a["report_path"], b["report_path"]);
  for (const json* run : {&a, &b}) {
    const std::string path = (*run)["report_path"].get<std::string>();
    EXPECT_TRUE(path.starts_with(data + "/data/reports/migrate-chroma-")) << path;
    std::ifstream in(path);
    const json file = json::parse(in, nullptr, false);
    ASSERT_TRUE(file.is_object()) << path;
    EXPECT_EQ(file["collections"][0]["name"], (*run)["collections"][0]["name"]) << path;
    EXPECT_EQ(file["report_path"], path);
  }
  CmdResult text = run("migrate-chroma --from-dir '" + dir() + "'" + k_l2);
  ASSERT_EQ(text.code, 0) << text.err;
  const auto at = text.out.find("report: ");
  ASSERT_NE(at, std::string::npos) << text.out;
  const std::string path = text.out.substr(at + 8, text.out.find('\n', at) - at - 8);
  EXPECT_TRUE(fs::exists(path)) << path;
  EXPECT_NE(path, a["report_path"].get<std::string>());
  std::size_t reports = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(m_target.data / "data" / "reports")) ++reports;
  EXPECT_EQ(reports, 3U);
  EXPECT_TRUE(run_json("migrate-chroma --from-dir '" + dir() + "'" + k_l2 + " --dry-run", 0)["report_path"].is_null());
}

TEST_F(Issue23Migrate, Item6ARerunSaysNothingChangedAndTheDryRunGivesTheRunsCounts) {
  const std::string from = "migrate-chroma --from-dir '" + dir() + "'" + k_l2 + " --insert-missing";
  const json first = run_json(from, 0);
  EXPECT_EQ(first["collections"][0]["inserted"], live());

  CmdResult plan = run(from + " --dry-run");
  EXPECT_EQ(plan.code, 0) << plan.err;
  EXPECT_TRUE(contains(plan.out, fmt::format("would leave all {} unchanged", live()))) << plan.out;
  EXPECT_TRUE(contains(plan.out, fmt::format("migrated {}, unchanged {}, changed 0, inserted 0", live(), live()))) << plan.out;
  CmdResult rerun = run(from);
  EXPECT_EQ(rerun.code, 0) << rerun.err;
  EXPECT_TRUE(contains(rerun.out, fmt::format("migrated {}, unchanged {}, changed 0, inserted 0", live(), live()))) << rerun.out;
  EXPECT_TRUE(contains(rerun.out, "nothing changed")) << rerun.out;

  // 5 rows whose metadata differs, 3 rows gone: the dry run predicts exactly what the run does.
  sql("UPDATE articles SET vector_metadata = '{}' WHERE uri IN (" + id_list(0, 5) + ")");
  sql("DELETE FROM articles WHERE uri IN (" + id_list(10, 13) + ")");
  const json planned = run_json(from + " --dry-run", 0);
  const json done = run_json(from, 0);
  const json& p = planned["collections"][0];
  const json& d = done["collections"][0];
  EXPECT_EQ(p["unchanged"], live() - 8) << p.dump(1);
  EXPECT_EQ(p["changed"], 5);
  EXPECT_EQ(p["inserted"], 3);
  for (const char* key : {"migrated", "unchanged", "changed", "inserted", "skipped", "errors"}) {
    EXPECT_EQ(p[key], d[key]) << key;
    EXPECT_EQ(planned["summary"][key], done["summary"][key]) << key;
  }
  EXPECT_EQ(sql("SELECT count(*) FROM articles WHERE vector_metadata = '{}'"), "0");
}

TEST_F(Issue23Migrate, Item7CheapChecksComeBeforeTheSourceIsRead) {
  const std::string from = "migrate-chroma --from-dir '" + damaged() + "'";
  // The damaged directory is only found out by a full read.
  CmdResult read = run(from + k_l2);
  EXPECT_EQ(read.code, 1);
  EXPECT_TRUE(contains(read.err, "truncated")) << read.err;

  auto refused_before_reading = [&](const std::string& args, const std::string& env, const std::string& words) {
    CmdResult r = run(from + args, env);
    EXPECT_EQ(r.code, 1) << args;
    EXPECT_TRUE(contains(r.err, words)) << args << ": " << r.err;
    EXPECT_FALSE(contains(r.err, "truncated")) << args << ": the source was read before " << words;
  };
  refused_before_reading(" --model m", "", "holds 3 collections (c_cosine, c_ip, c_l2); choose one with --collection");
  refused_before_reading(" --collection c_l2", "", "collection c_l2 stored no embedding function, so its model is unknown; "
                                                    "name it with --model");
  refused_before_reading(k_l2, "VSTORE_TABLE=nowhere", "table nowhere does not exist; run `vstore schema up` first");
  ASSERT_EQ(run("schema up", "VSTORE_TABLE=narrow EMBEDDING_DIM=8").code, 0);
  refused_before_reading(k_l2, "VSTORE_TABLE=narrow EMBEDDING_DIM=8",
                         "collection c_l2 has 16 dimensions but table narrow stores vector(8)");
  ASSERT_EQ(run("migrate-chroma --from-dir '" + dir() + "'" + k_l2 + " --insert-missing").code, 0);
  refused_before_reading(" --collection c_l2 --model other", "", "table articles holds vectors of model m");

  // A dry run without any database: everything about the directory, and what it could not check.
  const std::string no_db_dir = (m_target.data / "nodb").string();
  fs::create_directories(no_db_dir);
  CmdResult offline = vstore::testing::run_vstore(no_db_dir, "migrate-chroma --from-dir '" + dir() + "' --dry-run",
                                                  "EMBEDDING_DIM=16");
  EXPECT_EQ(offline.code, 0) << offline.err;
  EXPECT_TRUE(contains(offline.out, "database not reached: the embedded database in " + no_db_dir + "/data/pg is not running"))
      << offline.out;
  EXPECT_TRUE(contains(offline.out, "not checked: that table articles exists")) << offline.out;
  EXPECT_TRUE(contains(offline.out, fmt::format("collection c_l2: {} records, dimension 16", live()))) << offline.out;
  // What a real run would stop at, it names too.
  EXPECT_TRUE(contains(offline.out, "a real run would fail: " + fs::canonical(dir()).string() +
                                        " holds 3 collections (c_cosine, c_ip, c_l2); choose one with --collection"))
      << offline.out;
  EXPECT_TRUE(contains(offline.out, "a real run would fail: collection c_l2 stored no embedding function")) << offline.out;
  CmdResult offline_json = vstore::testing::run_vstore(no_db_dir, "migrate-chroma --from-dir '" + dir() + "' --dry-run --json",
                                                       "EMBEDDING_DIM=16");
  EXPECT_EQ(offline_json.code, 0) << offline_json.err;
  const json j = json::parse(offline_json.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << offline_json.out;
  EXPECT_TRUE(contains(j["database_error"].get<std::string>(), "vstore db start")) << j["database_error"];
  EXPECT_EQ(j["not_checked"].size(), 4U);
  ASSERT_EQ(j["collections"].size(), 3U);
  for (const auto& c : j["collections"]) {
    EXPECT_EQ(c["count"], live());
    EXPECT_FALSE(c["counted"].get<bool>());
    EXPECT_TRUE(c["skipped"].is_null());
    EXPECT_EQ(c["errors"], 0);
  }
  CmdResult real = vstore::testing::run_vstore(no_db_dir, "migrate-chroma --from-dir '" + dir() + "'" + k_l2, "EMBEDDING_DIM=16");
  EXPECT_EQ(real.code, 1);
  EXPECT_TRUE(contains(real.err, "vstore db start")) << real.err;
}

TEST_F(Issue23Migrate, Item8InternalWordsOnlyWithVerbose) {
  const std::string from = "migrate-chroma --from-dir '" + dir() + "'" + k_l2;
  for (const std::string& mode : {std::string(" --dry-run"), std::string(" --insert-missing")}) {
    CmdResult plain = run(from + mode);
    EXPECT_EQ(plain.code, 0) << plain.err;
    EXPECT_FALSE(contains(plain.out, "sysdb")) << plain.out;
    EXPECT_FALSE(contains(plain.out, "hnsw_slots")) << plain.out;
    EXPECT_TRUE(contains(plain.out, "chroma directory " + fs::canonical(dir()).string() + " -> table articles")) << plain.out;
    CmdResult verbose = run(from + mode + " --verbose");
    EXPECT_EQ(verbose.code, 0) << verbose.err;
    EXPECT_TRUE(contains(verbose.out, "(schema: sysdb ")) << verbose.out;
    EXPECT_TRUE(contains(verbose.out, "hnsw_slots")) << verbose.out;
    EXPECT_TRUE(contains(verbose.out, "read_s")) << verbose.out;
  }
}

TEST_F(Issue23Migrate, Item9TheTextUsesTheJsonsWords) {
  const std::string from = "migrate-chroma --from-dir '" + dir() + "'" + k_l2 + " --insert-missing --verify";
  ASSERT_EQ(run(from).code, 0);
  // The rerun: no row created, so no document compared.
  CmdResult text = run(from);
  ASSERT_EQ(text.code, 0) << text.err;
  const json j = run_json(from, 0);
  const json& c = j["collections"][0];
  for (const char* key : {"migrated", "unchanged", "changed", "inserted", "skipped", "errors"}) {
    EXPECT_TRUE(contains(text.out, fmt::format("{} {}", key, c[key].dump()))) << key << "\n" << text.out;
    EXPECT_TRUE(contains(text.out, fmt::format("  {}: {}\n", key, j["summary"][key].dump()))) << key;
  }
  const json& v = c["verify"];
  EXPECT_EQ(v["documents_checked"], 0);
  for (const char* key : {"rows_checked", "missing", "vector_mismatch", "model_mismatch", "metadata_mismatch",
                          "documents_checked"}) {
    EXPECT_TRUE(contains(text.out, fmt::format("{} {}", key, v[key].dump()))) << key << "\n" << text.out;
  }
  EXPECT_FALSE(contains(text.out, "document_mismatch")) << "no document was compared:\n" << text.out;
  EXPECT_FALSE(contains(text.out, "mismatches")) << text.out;
}

}  // namespace
