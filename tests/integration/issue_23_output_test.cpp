// SPDX-License-Identifier: Apache-2.0
// Issue 23, the output people read: progress lines (rates that mean something, only on a
// terminal, silenced by --quiet), the summary line with the elapsed time of long commands,
// the result table of search and similar (cut to the terminal, whole in a pipe), ties broken
// by uri, shell completion and the man page. The terminal checks run the binary in tmux on a
// pane of 80 columns; the rest run it through a pipe. One embedded cluster serves the suite.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "vstore/schema.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;

constexpr const char* k_long_title =
    "Zambia copper output falls as the smelters of the Copperbelt\\nwait for spare parts and power, "
    "the mines ministry says in its report on the third quarter of the year";
constexpr const char* k_long_title_folded =
    "Zambia copper output falls as the smelters of the Copperbelt wait for spare parts and power, "
    "the mines ministry says in its report on the third quarter of the year";

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string last_line(const std::string& text) {
  const auto lines = lines_of(text);
  return lines.empty() ? std::string() : lines.back();
}

class Issue23Output : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::temp_directory_path() / "vstore-output-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    chmod(tmpl.c_str(), 0755);
    s_dir = tmpl;
    s_start = run("db start");
    ASSERT_EQ(s_start.code, 0) << s_start.err;
    s_schema = run("schema up");
    ASSERT_EQ(s_schema.code, 0) << s_schema.err;
    // 40 Reuters articles and a title over several lines; then three articles of one text (so
    // of one vector), ingested one at a time in the order b, c, a (an ingest writes its batch in
    // uri order, so only separate runs put the table's rows out of uri order).
    const char* shared = std::getenv("VSTORE_TEST_SHARED_DATA");
    ASSERT_NE(shared, nullptr) << "VSTORE_TEST_SHARED_DATA is set by CTest";
    std::ifstream reuters(fs::path(shared) / "reuters21578" / "articles.jsonl");
    std::ofstream out(fs::path(s_dir) / "articles.jsonl");
    std::string line;
    for (int i = 0; i < 40 && std::getline(reuters, line); ++i) out << line << "\n";
    out << "{\"uri\": \"long:1\", \"title\": \"" << k_long_title
        << "\", \"topic\": \"copper\", \"publication_date\": \"1987-03-02T10:00:00Z\"}\n";
    out.close();
    s_ingest = run("ingest articles.jsonl");
    ASSERT_EQ(s_ingest.code, 0) << s_ingest.err;
    for (const char* uri : {"tie:b", "tie:c", "tie:a"}) {
      write("tie.jsonl", std::string("{\"uri\": \"") + uri +
                             "\", \"title\": \"Peru zinc smelter strike ends\", \"topic\": \"zinc\"}\n");
      CmdResult tie = run("ingest tie.jsonl");
      ASSERT_EQ(tie.code, 0) << tie.err;
    }
  }
  static void TearDownTestSuite() {
    run("db stop");
    std::error_code ec;
    fs::remove_all(s_dir, ec);
  }

  // `vstore ARGS` through a pipe, with a clean configuration and an empty $COLUMNS (no width)
  // unless ENV sets it.
  static CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(s_dir, args, "COLUMNS= " + env);
  }

  static void write(const std::string& name, const std::string& text) { std::ofstream(fs::path(s_dir) / name) << text; }

  // Runs SCRIPT (shell text) in tmux, on a pane of 80 x 60 whose stdout and stderr are the
  // terminal, and returns what the pane shows, wrapped lines joined (so a line wider than the
  // pane shows as one line over 80 columns).
  static std::string on_terminal(const std::string& script) {
    const std::string socket = "vstore-output-" + std::to_string(getpid());
    const fs::path done = fs::path(s_dir) / "tmux.done";
    fs::remove(done);
    write("tmux.sh", "cd '" + s_dir + "'\nexport VSTORE_DATA_DIR='" + s_dir +
                         "/data' EMBEDDING_DIM=384 EMBEDDING_PROVIDER=hash\n"
                         "unset DATABASE_URL VECTOR_BACKEND CHROMA_URL COLUMNS\n"
                         "vstore() { '" + vstore::testing::vstore_bin() + "' \"$@\"; }\n" +
                         script + "\ntouch '" + done.string() + "'\nsleep 600\n");
    const std::string tmux = "tmux -L " + socket + " -f /dev/null ";
    const CmdResult started =
        vstore::testing::run_shell(s_dir, tmux + "new-session -d -x 80 -y 60 'bash --norc --noprofile " + s_dir + "/tmux.sh'");
    EXPECT_EQ(started.code, 0) << started.err;
    for (int i = 0; i < 600 && !fs::exists(done); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    EXPECT_TRUE(fs::exists(done)) << "the script in tmux did not finish";
    const CmdResult shown = vstore::testing::run_shell(s_dir, tmux + "capture-pane -p -J -S 0 -E 59");
    vstore::testing::run_shell(s_dir, tmux + "kill-server");
    EXPECT_EQ(shown.code, 0) << shown.err;
    return shown.out;
  }

  static inline std::string s_dir;
  static inline CmdResult s_start;
  static inline CmdResult s_schema;
  static inline CmdResult s_ingest;
};

// Item 20 and item 8 on a real terminal of 80 columns: the table fits (the long title is cut),
// the progress line is drawn on stderr with no rate before a second has passed, and --quiet
// silences it.
TEST_F(Issue23Output, OnAnEightyColumnTerminalTheTableFitsAndProgressIsDrawn) {
  write("more.jsonl", "{\"uri\": \"more:1\", \"title\": \"Tin prices\"}\n{\"uri\": \"more:2\", \"title\": \"Oil\"}\n");
  write("quiet.jsonl", "{\"uri\": \"quiet:1\", \"title\": \"Gold\"}\n");
  const std::string screen = on_terminal(
      "vstore search 'Zambia copper output falls' --top-k 4\necho '== ingest'\nvstore ingest more.jsonl\n"
      "echo '== quiet'\nvstore ingest quiet.jsonl --quiet\necho '== similar'\nvstore similar long:1 --top-k 2\n"
      "echo '== end'");
  const auto lines = lines_of(screen);
  ASSERT_FALSE(lines.empty()) << screen;
  for (const auto& line : lines) EXPECT_LE(line.size(), 80U) << "wider than the pane: " << line << "\n" << screen;
  // The header, and the long title cut with "..." on the row of long:1.
  EXPECT_TRUE(std::regex_search(screen, std::regex(R"(#  distance  uri +title +date +topic)"))) << screen;
  std::smatch row;
  ASSERT_TRUE(std::regex_search(screen, row, std::regex(R"(long:1 +Zambia copper output falls[^\n]*)"))) << screen;
  const std::string row_line = row.str();
  EXPECT_NE(row_line.find("...  1987-03-02  copper"), std::string::npos) << row_line;
  EXPECT_EQ(screen.find("quarter of the year"), std::string::npos) << screen;

  // Progress: the finished line of the 2 records, without a rate made of a near-zero time.
  const std::size_t ingest = screen.find("== ingest");
  const std::size_t quiet = screen.find("== quiet");
  const std::size_t similar = screen.find("== similar");
  ASSERT_TRUE(ingest != std::string::npos && quiet != std::string::npos && similar != std::string::npos) << screen;
  const std::string progress = screen.substr(ingest, quiet - ingest);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(progress, m, std::regex(R"(ingest: 2/2 \(100%\) in ([0-9.]+) s(, ([0-9.]+)/s)?)")))
      << progress;
  if (m[3].matched) {
    // A rate appears only after a second, so it is at most the 2 records over 1 s.
    EXPECT_LE(std::stod(m[3].str()), 2.0) << progress;
    EXPECT_GE(std::stod(m[1].str()), 1.0) << progress;
  }
  EXPECT_NE(progress.find("ingest: more.jsonl: 2 records, 2 upserted in "), std::string::npos) << progress;
  // --quiet: the summary, and no progress line.
  const std::string quieted = screen.substr(quiet, similar - quiet);
  EXPECT_EQ(quieted.find("(100%)"), std::string::npos) << quieted;
  EXPECT_NE(quieted.find("ingest: quiet.jsonl: 1 records, 1 upserted in "), std::string::npos) << quieted;
  // similar names the article it started from (cut to the pane) above its table.
  const std::string sim = screen.substr(similar);
  EXPECT_NE(sim.find("similar to long:1: Zambia copper output"), std::string::npos) << sim;
  EXPECT_NE(sim.find("#  distance  uri"), std::string::npos) << sim;
}

// Item 20 through a pipe: whole titles, folded onto one line; with $COLUMNS, cut to it.
TEST_F(Issue23Output, APipeGetsWholeTitlesAndColumnsCutsThem) {
  CmdResult piped = run("search 'Zambia copper output falls' --top-k 3");
  ASSERT_EQ(piped.code, 0) << piped.err;
  const auto lines = lines_of(piped.out);
  ASSERT_EQ(lines.size(), 4U) << piped.out;
  EXPECT_TRUE(std::regex_search(lines[0], std::regex(R"(^ *#  distance  uri +title +date +topic$)"))) << piped.out;
  EXPECT_TRUE(std::regex_search(lines[1], std::regex(R"(^ *1  +0\.[0-9]{4}  long:1 +Zambia)"))) << piped.out;
  EXPECT_NE(lines[1].find(std::string(k_long_title_folded) + "  1987-03-02  copper"), std::string::npos) << piped.out;
  // Columns line up: the title starts in the same column on every line.
  const std::size_t title_col = lines[0].find("title");
  for (std::size_t i = 1; i < lines.size(); ++i) {
    ASSERT_GT(lines[i].size(), title_col) << piped.out;
    EXPECT_EQ(lines[i].substr(title_col - 2, 2), "  ") << piped.out;
    EXPECT_NE(lines[i][title_col], ' ') << piped.out;
  }
  EXPECT_EQ(lines[1].find("Zambia"), title_col) << piped.out;

  CmdResult narrow = run("search 'Zambia copper output falls' --top-k 3", "COLUMNS=70");
  ASSERT_EQ(narrow.code, 0) << narrow.err;
  for (const auto& line : lines_of(narrow.out)) EXPECT_LE(line.size(), 70U) << line;
  EXPECT_NE(narrow.out.find("..."), std::string::npos) << narrow.out;

  CmdResult none = run("search 'oil prices' --where '{\"topic\": \"no-such-topic\"}'");
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_EQ(none.out, "no results\n");
}

// Item 20: ties are broken by uri, so --top-k does not change which row comes first.
TEST_F(Issue23Output, TiesAreBrokenByUriWhateverTheTopK) {
  for (const char* k : {"1", "2", "3"}) {
    CmdResult hits = run(std::string("search 'Peru zinc smelter strike ends' --json --top-k ") + k);
    ASSERT_EQ(hits.code, 0) << hits.err;
    const json j = json::parse(hits.out);
    ASSERT_FALSE(j.empty());
    EXPECT_EQ(j[0]["id"], "tie:a") << "top-k " << k << ": " << hits.out;
    if (j.size() >= 2) {
      EXPECT_EQ(j[1]["id"], "tie:b") << hits.out;
    }
  }
  for (const char* k : {"1", "2"}) {
    CmdResult near = run(std::string("similar tie:c --json --top-k ") + k);
    ASSERT_EQ(near.code, 0) << near.err;
    const json j = json::parse(near.out);
    ASSERT_FALSE(j.empty());
    EXPECT_EQ(j[0]["id"], "tie:a") << "top-k " << k << ": " << near.out;
  }
}

// The same through the Chroma backend: its query picks among equal distances as it likes, so
// the store asks for more until the tie is whole.
TEST_F(Issue23Output, TiesAreBrokenByUriInChromaToo) {
  const std::string env = "VECTOR_BACKEND=chromadb CHROMA_URL='" + vstore::testing::ChromaServer::shared().url() +
                          "' CHROMA_COLLECTION='" + vstore::testing::unique_collection("output") + "'";
  std::string file;
  for (int i = 0; i < 30; ++i) file += "{\"uri\": \"other:" + std::to_string(i) + "\", \"title\": \"Other news " + std::to_string(i) + "\"}\n";
  for (const char* uri : {"tie:e", "tie:d", "tie:b", "tie:c", "tie:a"}) {
    file += "{\"uri\": \"" + std::string(uri) + "\", \"title\": \"Peru zinc smelter strike ends\"}\n";
  }
  write("chroma.jsonl", file);
  CmdResult ingest = run("ingest chroma.jsonl", env);
  ASSERT_EQ(ingest.code, 0) << ingest.err;
  for (const char* k : {"1", "2", "4"}) {
    CmdResult hits = run(std::string("search 'Peru zinc smelter strike ends' --json --top-k ") + k, env);
    ASSERT_EQ(hits.code, 0) << hits.err;
    const json j = json::parse(hits.out);
    ASSERT_FALSE(j.empty());
    EXPECT_EQ(j[0]["id"], "tie:a") << "top-k " << k << ": " << hits.out;
  }
}

// Item 21: long commands end with a one-line summary and the elapsed time; with --json the
// JSON carries elapsed_s; a pipe gets no progress line.
TEST_F(Issue23Output, LongCommandsEndWithASummaryAndTheirElapsedTime) {
  const std::regex elapsed(R"( in [0-9]+\.[0-9] s$)");
  EXPECT_TRUE(last_line(s_start.out).starts_with("db start: created a new cluster in " + s_dir + "/data/pg and started it"))
      << s_start.out;
  EXPECT_TRUE(std::regex_search(last_line(s_start.out), elapsed)) << s_start.out;
  EXPECT_TRUE(last_line(s_schema.out)
                  .starts_with("schema up: " + std::to_string(vstore::k_latest_schema_version) + " migrations applied in "))
      << s_schema.out;
  EXPECT_TRUE(last_line(s_ingest.out).starts_with("ingest: articles.jsonl: 41 records, 41 upserted in ")) << s_ingest.out;
  EXPECT_TRUE(std::regex_search(last_line(s_ingest.out), elapsed)) << s_ingest.out;
  // Off a terminal there is no progress line.
  EXPECT_EQ(s_ingest.err.find("(100%)"), std::string::npos) << s_ingest.err;
  EXPECT_EQ(s_ingest.err.find("/s"), std::string::npos) << s_ingest.err;

  CmdResult again = run("schema up");
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_TRUE(last_line(again.out).starts_with("schema up: nothing was pending in ")) << again.out;
  CmdResult up_json = run("schema up --json");
  ASSERT_EQ(up_json.code, 0) << up_json.err;
  const json up = json::parse(up_json.out);
  EXPECT_TRUE(up["elapsed_s"].is_number()) << up_json.out;
  EXPECT_EQ(up["current_version"], vstore::k_latest_schema_version);
  CmdResult ingest_json = run("ingest articles.jsonl --json");
  ASSERT_EQ(ingest_json.code, 0) << ingest_json.err;
  const json in = json::parse(ingest_json.out);
  EXPECT_GE(in["elapsed_s"].get<double>(), 0.0) << ingest_json.out;
  EXPECT_EQ(in["skipped_existing"], 41);
  CmdResult start_json = run("db start --json");
  ASSERT_EQ(start_json.code, 0) << start_json.err;
  EXPECT_TRUE(json::parse(start_json.out)["elapsed_s"].is_number()) << start_json.out;

  // migrate-chroma from a Chroma server into this cluster: the summary line, and elapsed_s.
  const std::string collection = vstore::testing::unique_collection("output_migrate");
  const std::string chroma_env = "VECTOR_BACKEND=chromadb CHROMA_URL='" + vstore::testing::ChromaServer::shared().url() +
                                 "' CHROMA_COLLECTION='" + collection + "'";
  write("migrate.jsonl", "{\"uri\": \"mig:1\", \"title\": \"Sugar\"}\n{\"uri\": \"mig:2\", \"title\": \"Coffee\"}\n");
  ASSERT_EQ(run("ingest migrate.jsonl", chroma_env).code, 0);
  const std::string from = "migrate-chroma --insert-missing --model vstore-hash-v2 --from-url '" +
                           vstore::testing::ChromaServer::shared().url() + "' --collection '" + collection + "'";
  CmdResult migrated = run(from);
  ASSERT_EQ(migrated.code, 0) << migrated.err;
  EXPECT_TRUE(last_line(migrated.out).starts_with("migrate-chroma: 2 of 2 records migrated, 0 skipped, 0 errors in "))
      << migrated.out;
  EXPECT_EQ(migrated.err.find("(100%)"), std::string::npos) << migrated.err;
  CmdResult migrated_json = run(from + " --json");
  ASSERT_EQ(migrated_json.code, 0) << migrated_json.err;
  EXPECT_TRUE(json::parse(migrated_json.out)["elapsed_s"].is_number()) << migrated_json.out;
}

// Item 23: completion scripts made from the command tree, for bash and zsh.
TEST_F(Issue23Output, CompletionForBashAndZshOffersCommandsOptionsAndChoices) {
  ASSERT_EQ(run("completion bash > vstore.bash").code, 0);
  // COMP_WORDS as bash fills them for `vstore WORDS...`, the cursor on the last one.
  auto bash = [](const std::string& words) {
    return vstore::testing::run_shell(
        s_dir, "bash --norc --noprofile -c 'source ./vstore.bash; COMP_WORDS=(vstore " + words +
                   "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _vstore; echo \"${COMPREPLY[*]}\"'");
  };
  EXPECT_EQ(bash("db st").out, "start stop status\n");
  const std::string commands = bash("\"\"").out;
  for (const char* name : {"migrate-chroma", "search", "similar", "completion", "help"}) {
    EXPECT_NE(commands.find(name), std::string::npos) << name << ": " << commands;
  }
  EXPECT_EQ(bash("search oil --to").out, "--top-k\n");
  EXPECT_EQ(bash("ingest --bulk \"\"").out, "auto on off\n");
  EXPECT_EQ(bash("--env-file x.env db sta").out, "start status\n");  // an option's value is not a command
  EXPECT_EQ(bash("health --env").out, "--env-file\n");               // global options after the command
  EXPECT_EQ(bash("outbox \"\"").out, "status drain\n");              // a positional's choices
  EXPECT_EQ(bash("migrate-chroma --test").out, "\n");                // hidden options are not offered

  ASSERT_EQ(run("completion zsh > _vstore").code, 0);
  // zsh's completion functions stubbed: compadd prints what it would offer.
  auto zsh = [](const std::string& words) {
    return vstore::testing::run_shell(
        s_dir, "zsh -f -c 'compdef() { :; }; compadd() { [[ $1 == -- ]] && shift; print -r -- \"$*\"; }; "
               "_files() { print files; }; source ./_vstore; words=(vstore " + words +
                   "); CURRENT=${#words}; _vstore'");
  };
  EXPECT_EQ(zsh("db st").out, "start stop status\n");
  EXPECT_NE(zsh("search oil --to").out.find("--top-k"), std::string::npos) << zsh("search oil --to").out;
  EXPECT_EQ(zsh("ingest --bulk \"\"").out, "auto on off\n");
  EXPECT_EQ(zsh("ingest \"\"").out, "files\n");
  EXPECT_EQ(run("completion fish").code, 2);
}

// Item 23: the man page, made from --help, renders without warnings.
TEST_F(Issue23Output, TheManPageIsMadeFromHelpAndRenders) {
  ASSERT_EQ(run("man > vstore.1").code, 0);
  CmdResult groff = vstore::testing::run_shell(s_dir, "groff -man -Tutf8 -ww -z vstore.1");
  EXPECT_EQ(groff.code, 0);
  EXPECT_EQ(groff.err, "") << "groff warnings";
  CmdResult page = vstore::testing::run_shell(s_dir, "MANWIDTH=80 MANPAGER=cat man -l vstore.1 | col -b");
  ASSERT_EQ(page.code, 0) << page.err;
  for (const char* text : {"NAME", "vstore - an article vector store", "vstore migrate-chroma", "--top-k",
                           "vstore db start", "--from-dir", "EXIT STATUS", "vstore completion SHELL"}) {
    EXPECT_NE(page.out.find(text), std::string::npos) << text << "\n" << page.out;
  }
  EXPECT_EQ(page.out.find("--test-batch-delay-ms"), std::string::npos);  // hidden: for tests only
}

}  // namespace
