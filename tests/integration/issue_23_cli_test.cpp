// SPDX-License-Identifier: Apache-2.0
// Issue 23, the first slice: `config show`, `version`, unknown commands and `help`, global
// options after the subcommand, exit 2 for usage errors, `db stop --json`. Each scenario runs
// the built binary and checks the exit code, the stream and the words or the JSON keys.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

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

// Without VSTORE_DATA_DIR, every command finds the data directory set-up recorded, whatever the
// current directory, and db start prints where it created the cluster.
TEST_F(Issue23Cli, Item1TheDataDirectoryDoesNotDependOnTheCurrentDirectory) {
  const fs::path home = fs::path(m_dir) / "home";
  const fs::path data = fs::path(m_dir) / "recorded";
  for (const char* sub : {"a", "b/c"}) fs::create_directories(fs::path(m_dir) / sub);
  auto vstore_in = [&](const std::string& sub, const std::string& args) {
    return vstore::testing::run_shell(
        (fs::path(m_dir) / sub).string(),
        "env -u VSTORE_DATA_DIR -u XDG_CONFIG_HOME -u XDG_DATA_HOME -u DATABASE_URL -u VECTOR_BACKEND HOME='" +
            home.string() + "' EMBEDDING_PROVIDER=hash '" + vstore::testing::vstore_bin() + "' " + args);
  };
  // No record: $HOME/.local/share/vstore from both directories.
  for (const char* sub : {"a", "b/c"}) {
    CmdResult shown = vstore_in(sub, "config show --json");
    ASSERT_EQ(shown.code, 0) << shown.err;
    const json j = json::parse(shown.out)["settings"]["VSTORE_DATA_DIR"];
    EXPECT_EQ(j["value"], (home / ".local" / "share" / "vstore").string()) << sub;
    EXPECT_EQ(j["source"], "default");
  }
  // Set-up's record: both directories reach the one cluster, and db start says where it made it.
  fs::create_directories(home / ".config" / "vstore");
  std::ofstream(home / ".config" / "vstore" / "data_dir") << data.string() << "\n";
  CmdResult started = vstore_in("a", "db start");
  ASSERT_EQ(started.code, 0) << started.err;
  EXPECT_NE(started.out.find("created a new cluster in " + (data / "pg").string()), std::string::npos) << started.out;
  CmdResult status = vstore_in("b/c", "db status --json");
  EXPECT_EQ(status.code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["running"], true) << status.out;
  CmdResult shown = vstore_in("b/c", "config show");
  EXPECT_NE(shown.out.find(data.string() + "  [" + (home / ".config" / "vstore" / "data_dir").string() + "]"),
            std::string::npos)
      << shown.out;
  EXPECT_EQ(vstore_in("b/c", "db stop").code, 0);
  EXPECT_FALSE(fs::exists(home / ".local" / "share" / "vstore"));
}

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
  EXPECT_NE(nothing.out.find("nothing was pending: table articles is at version 7 of 7"), std::string::npos)
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
  EXPECT_EQ(lines, static_cast<std::size_t>(vstore::k_latest_schema_version)) << status.out;
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

// The same option means the same thing on search and similar (item 18), and the JSON of both is
// consistent (item 22): the words of ingest, scores, a metadata key named like a result key.
class Issue23Options : public Issue23Cli {
 protected:
  void SetUp() override {
    Issue23Cli::SetUp();
    m_conninfo = vstore::testing::PgServer::instance().create_database("issue23opts");
    m_env = "DATABASE_URL='" + m_conninfo + "'";
    ASSERT_EQ(run("schema up", m_env).code, 0);
    std::string lines;
    const char* topics[] = {"crude", "grain"};
    for (int i = 0; i < 12; ++i) {
      lines += json{{"uri", "o:" + std::to_string(i)},
                    {"title", "oil and wheat report " + std::to_string(i)},
                    {"summary", "prices of oil and wheat moved in week " + std::to_string(i)},
                    {"topic", topics[i % 2]}}
                   .dump() +
               "\n";
    }
    write("articles.jsonl", lines);
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_conninfo); }
  CmdResult run_db(const std::string& args) { return run(args, m_env); }

  std::string m_conninfo;
  std::string m_env;
};

TEST_F(Issue23Options, Item18SimilarTakesTheSearchTopKRangeAndWhere) {
  CmdResult ingested = run_db("ingest articles.jsonl");
  ASSERT_EQ(ingested.code, 0) << ingested.err;
  // Filtered: only the other grain articles, never the article itself.
  CmdResult grain = run_db("similar o:1 --top-k 100 --where '{\"topic\": \"grain\"}' --json");
  ASSERT_EQ(grain.code, 0) << grain.err;
  const json hits = json::parse(grain.out);
  ASSERT_EQ(hits.size(), 5U) << grain.out;
  for (const auto& h : hits) {
    EXPECT_EQ(h["metadata"]["topic"], "grain");
    EXPECT_NE(h["id"], "o:1");
  }
  // The largest top_k of search is the largest of similar.
  CmdResult widest = run_db("similar o:1 --top-k 100000 --json");
  ASSERT_EQ(widest.code, 0) << widest.err;
  EXPECT_EQ(json::parse(widest.out).size(), 11U);
  EXPECT_EQ(run_db("similar o:1 --top-k 100001").code, 2);
  CmdResult bad_where = run_db("similar o:1 --where '{\"topic\": {\"$like\": 1}}'");
  EXPECT_EQ(bad_where.code, 2);
  EXPECT_NE(bad_where.err.find("--where"), std::string::npos) << bad_where.err;
}

TEST_F(Issue23Options, Item22TextAndJsonUseTheSameWordsAndKeepEveryKey) {
  ASSERT_EQ(run_db("ingest articles.jsonl").code, 0);
  // The same state twice: the text and the JSON of a rerun.
  CmdResult text = run_db("ingest articles.jsonl");
  ASSERT_EQ(text.code, 0) << text.err;
  CmdResult again = run_db("ingest articles.jsonl --json");
  ASSERT_EQ(again.code, 0) << again.err;
  const json summary = json::parse(again.out);
  // Every count of the JSON that is not zero appears, with its key's words, in the text
  // summary (which leaves out zero counts to stay short, and gives elapsed_s as "in X s").
  for (const auto& [key, value] : summary.items()) {
    if (!value.is_number() || value == 0 || key == "elapsed_s") continue;
    std::string words = key;
    std::replace(words.begin(), words.end(), '_', ' ');
    EXPECT_NE(text.out.find(words), std::string::npos) << key << " in: " << text.out;
  }
  EXPECT_EQ(summary["skipped_existing"], 12);

  // A stored metadata key named like a result key stays in the metadata.
  vstore::testing::sql_value(m_conninfo, "UPDATE articles SET vector_metadata = vector_metadata || "
                                         "'{\"score\": \"high\", \"id\": \"other\"}'::jsonb WHERE uri = 'o:3'");
  CmdResult found = run_db("similar o:2 --top-k 11 --json");
  ASSERT_EQ(found.code, 0) << found.err;
  bool seen = false;
  for (const auto& h : json::parse(found.out)) {
    EXPECT_TRUE(h["score"].is_number()) << h.dump();
    if (h["id"] != "o:3") continue;
    seen = true;
    EXPECT_EQ(h["metadata"]["score"], "high") << h.dump();
    EXPECT_EQ(h["metadata"]["id"], "other") << h.dump();
  }
  EXPECT_TRUE(seen) << found.out;

  // Scores are the shortest decimals of their float32 values, as Chroma's are: at most 9
  // significant digits (a double printed whole has up to 17).
  for (const auto& h : json::parse(found.out)) {
    std::string digits = h["score"].dump();
    digits = digits.substr(0, digits.find_first_of("eE"));
    std::erase_if(digits, [](char c) { return c == '.' || c == '-'; });
    digits.erase(0, digits.find_first_not_of('0'));
    EXPECT_LE(digits.size(), 9U) << h["score"].dump();
  }
}

}  // namespace

