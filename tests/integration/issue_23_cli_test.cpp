// SPDX-License-Identifier: Apache-2.0
// Issue 23, the first slice: `config show`, `version`, unknown commands and `help`, global
// options after the subcommand, exit 2 for usage errors, `db stop --json`. Each scenario runs
// the built binary and checks the exit code, the stream and the words or the JSON keys.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;

class Issue23Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    m_dir = m_tmp.path.string();
  }
  CmdResult run(const std::string& args, const std::string& env = "") { return vstore::testing::run_vstore(m_dir, args, env); }
  void write(const std::string& name, const std::string& text) { std::ofstream(fs::path(m_dir) / name) << text; }

  vstore::testing::TempDir m_tmp;
  std::string m_dir;
};

TEST_F(Issue23Cli, Item2ConfigShowNamesEachSettingsSource) {
  write(".env", "PGVECTOR_HNSW_M=24\nCHROMA_TOKEN=s3cret-token\nDATABASE_URL=postgresql://u:hunter2@db.example:5432/x\n");
  CmdResult shown = run("config show --json", "PGVECTOR_HNSW_EF_SEARCH=77");
  ASSERT_EQ(shown.code, 0) << shown.err;
  const json j = json::parse(shown.out);
  EXPECT_EQ(j["env_file"], (fs::path(m_dir) / ".env").string());
  const json& s = j["settings"];
  EXPECT_EQ(s["PGVECTOR_HNSW_EF_SEARCH"]["value"], 77);
  EXPECT_EQ(s["PGVECTOR_HNSW_EF_SEARCH"]["source"], "environment");
  EXPECT_EQ(s["PGVECTOR_HNSW_M"]["value"], 24);
  EXPECT_EQ(s["PGVECTOR_HNSW_M"]["source"], (fs::path(m_dir) / ".env").string());
  EXPECT_EQ(s["PGVECTOR_HNSW_EF_CONSTRUCTION"]["source"], "default");
  EXPECT_EQ(s["VSTORE_DATA_DIR"]["value"], m_dir + "/data");
  EXPECT_EQ(s["VSTORE_DATA_DIR"]["source"], "environment");
  for (const char* key : {"DATABASE_URL", "VSTORE_MODEL_DIR", "VECTOR_BACKEND", "CHROMA_URL", "PGVECTOR_INDEX_TYPE",
                          "EMBEDDING_PROVIDER", "DB_POOL_SIZE", "VSTORE_STATEMENT_TIMEOUT"}) {
    EXPECT_TRUE(s.contains(key)) << key;
  }
  // Secrets never appear: neither the token nor the URL's password.
  EXPECT_EQ(shown.out.find("s3cret-token"), std::string::npos) << shown.out;
  EXPECT_EQ(shown.out.find("hunter2"), std::string::npos) << shown.out;
  EXPECT_EQ(s["CHROMA_TOKEN"]["value"], "(set, not shown)");

  CmdResult text = run("config show");
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("PGVECTOR_HNSW_M"), std::string::npos);
  EXPECT_NE(text.out.find("[default]"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find("hunter2"), std::string::npos);

  CmdResult bad = run("config show", "PGVECTOR_HNSW_M=abc");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("PGVECTOR_HNSW_M=\"abc\""), std::string::npos) << bad.err;
}

TEST_F(Issue23Cli, Item3VersionReportsVstoreCommitServerAndBlas) {
  ASSERT_EQ(run("db start").code, 0);
  CmdResult v = run("version --json");
  ASSERT_EQ(v.code, 0) << v.err;
  const json j = json::parse(v.out);
  EXPECT_EQ(j["vstore"], "0.1.0");
  EXPECT_TRUE(j["commit"].is_string() && !j["commit"].get<std::string>().empty());
  EXPECT_TRUE(j["postgresql"].get<std::string>().starts_with("15.")) << v.out;
  EXPECT_TRUE(j["pgvector"].is_string()) << v.out;
  EXPECT_TRUE(j["database_error"].is_null());
  EXPECT_EQ(j["model"], "vstore-hash-v2");
  EXPECT_NE(j["blas"].get<std::string>().find("OpenBLAS"), std::string::npos) << j["blas"];
  CmdResult stopped = run("db stop --json");
  ASSERT_EQ(stopped.code, 0) << stopped.err;
  EXPECT_FALSE(json::parse(stopped.out)["running"].get<bool>());
  // Without a database, version still answers and says why the server's versions are unknown.
  CmdResult offline = run("version --json");
  ASSERT_EQ(offline.code, 0) << offline.err;
  const json o = json::parse(offline.out);
  EXPECT_TRUE(o["postgresql"].is_null());
  EXPECT_NE(o["database_error"].get<std::string>().find("db start"), std::string::npos) << offline.out;
  CmdResult text = run("version");
  EXPECT_EQ(text.code, 0);
  EXPECT_NE(text.out.find("vstore     0.1.0 (commit "), std::string::npos) << text.out;
  EXPECT_EQ(run("-V").out, "0.1.0\n");
}

TEST_F(Issue23Cli, Item15UnknownCommandsAreNamedWithTheNearestOne) {
  CmdResult typo = run("srch oil");
  EXPECT_EQ(typo.code, 2);
  EXPECT_NE(typo.err.find("unknown command \"srch\"; did you mean \"search\"?"), std::string::npos) << typo.err;
  CmdResult far = run("frobnicate");
  EXPECT_EQ(far.code, 2);
  EXPECT_NE(far.err.find("unknown command \"frobnicate\""), std::string::npos) << far.err;
  EXPECT_EQ(far.err.find("did you mean"), std::string::npos) << far.err;

  CmdResult help = run("help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("search"), std::string::npos);
  EXPECT_NE(help.out.find("migrate-chroma"), std::string::npos);
  CmdResult help_cmd = run("help db start");
  EXPECT_EQ(help_cmd.code, 0) << help_cmd.err;
  EXPECT_NE(help_cmd.out.find("--tcp"), std::string::npos) << help_cmd.out;
  CmdResult help_bad = run("help serch");
  EXPECT_EQ(help_bad.code, 2);
  EXPECT_NE(help_bad.err.find("no command \"serch\""), std::string::npos) << help_bad.err;
}

TEST_F(Issue23Cli, Item16GlobalOptionsWorkAfterTheSubcommand) {
  write("other.env", "PGVECTOR_HNSW_M=31\n");
  CmdResult after = run("config show --json --env-file other.env");
  ASSERT_EQ(after.code, 0) << after.err;
  EXPECT_EQ(json::parse(after.out)["settings"]["PGVECTOR_HNSW_M"]["value"], 31);
  CmdResult before = run("--env-file other.env config show --json");
  ASSERT_EQ(before.code, 0) << before.err;
  EXPECT_EQ(json::parse(before.out)["settings"]["PGVECTOR_HNSW_M"]["value"], 31);
  CmdResult missing = run("config show --env-file nowhere.env");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.err.find("nowhere.env"), std::string::npos) << missing.err;
}

TEST_F(Issue23Cli, Item17UsageErrorsExitTwoRuntimeFailuresOne) {
  CmdResult where = run("search oil --where '{\"topic\": '");  // malformed JSON
  EXPECT_EQ(where.code, 2);
  EXPECT_NE(where.err.find("--where"), std::string::npos) << where.err;
  CmdResult op = run("search oil --where '{\"topic\": {\"$like\": \"x\"}}'");
  EXPECT_EQ(op.code, 2);
  EXPECT_EQ(run("search").code, 2);                // missing argument
  EXPECT_EQ(run("search oil --top-k 0").code, 2);  // out of range
  CmdResult down = run("health");                  // runtime: no database running
  EXPECT_EQ(down.code, 1);
}

TEST_F(Issue23Cli, Item21DbStartAndSchemaUpSayWhatTheyDid) {
  CmdResult first = run("db start");
  ASSERT_EQ(first.code, 0) << first.err;
  EXPECT_NE(first.out.find("created a new cluster in " + m_dir + "/data/pg"), std::string::npos) << first.out;
  EXPECT_NE(first.out.find("next: vstore schema up"), std::string::npos) << first.out;
  CmdResult again = run("db start --json");
  ASSERT_EQ(again.code, 0) << again.err;
  const json j = json::parse(again.out);
  EXPECT_FALSE(j["created"].get<bool>());
  EXPECT_TRUE(j["already_running"].get<bool>());

  CmdResult up = run("schema up");
  ASSERT_EQ(up.code, 0) << up.err;
  EXPECT_NE(up.out.find("applied 1 base, 2 vector_columns, 3 vector_index, 4 dual_outbox, 5 embedding_storage, 6 dual_stats"),
            std::string::npos) << up.out;
  CmdResult nothing = run("schema up");
  ASSERT_EQ(nothing.code, 0) << nothing.err;
  EXPECT_NE(nothing.out.find("nothing was pending: table articles is at version 6 of 6"), std::string::npos)
      << nothing.out;
  // The status lines are aligned: "applied" starts in the same column on every line.
  CmdResult status = run("schema status");
  std::size_t column = std::string::npos;
  std::size_t lines = 0;
  std::size_t start = 0;
  while (start < status.out.size()) {
    const std::size_t end = status.out.find('\n', start);
    const std::string line = status.out.substr(start, end - start);
    if (const std::size_t at = line.find(" applied "); at != std::string::npos && line.starts_with("  ")) {
      if (column == std::string::npos) column = at;
      EXPECT_EQ(at, column) << status.out;
      ++lines;
    }
    start = end == std::string::npos ? status.out.size() : end + 1;
  }
  EXPECT_EQ(lines, 6U) << status.out;
  EXPECT_EQ(run("db stop").code, 0);
}

TEST_F(Issue23Cli, Item22JsonErrorsAreJsonOnStdoutWithTheSameExitCodes) {
  CmdResult down = run("search oil --json");  // no database running: a runtime failure
  EXPECT_EQ(down.code, 1);
  json j = json::parse(down.out);
  EXPECT_EQ(j["error"]["code"], "unavailable") << down.out;
  EXPECT_NE(j["error"]["message"].get<std::string>().find("db start"), std::string::npos) << down.out;
  EXPECT_NE(down.err.find("vstore: "), std::string::npos);  // the line for people stays on stderr

  CmdResult where = run("search oil --json --where '{\"topic\": {\"$like\": 1}}'");
  EXPECT_EQ(where.code, 2);
  EXPECT_EQ(json::parse(where.out)["error"]["code"], "invalid_argument") << where.out;

  CmdResult range = run("search oil --top-k 0 --json");
  EXPECT_EQ(range.code, 2);
  EXPECT_EQ(json::parse(range.out)["error"]["code"], "usage") << range.out;

  CmdResult unknown = run("srch --json");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_EQ(json::parse(unknown.out)["error"]["code"], "usage") << unknown.out;

  CmdResult text = run("search oil");  // without --json nothing goes to stdout
  EXPECT_EQ(text.code, 1);
  EXPECT_TRUE(text.out.empty()) << text.out;
}

}  // namespace

