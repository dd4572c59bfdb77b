// SPDX-License-Identifier: Apache-2.0
// The README's examples stay true (issue 23): every `build/src/vstore ...` line of the code
// blocks README.md marks with `<!-- readme_test: run -->` runs, in order, from the repository
// root against a data directory of its own, and must exit 0; a line with --json must print JSON.
// The embedder is the lexical `hash` one, so that loading the Reuters articles takes seconds.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"

namespace {

namespace fs = std::filesystem;

// The command lines of the marked blocks, in order, without their trailing comments.
std::vector<std::string> marked_commands(const fs::path& readme) {
  std::ifstream in(readme);
  std::vector<std::string> out;
  std::string line;
  bool marked = false;
  bool in_block = false;
  while (std::getline(in, line)) {
    if (!in_block && line == "<!-- readme_test: run -->") {
      marked = true;
      continue;
    }
    if (line.starts_with("```")) {
      in_block = !in_block;
      if (!in_block) marked = false;
      continue;
    }
    if (!in_block || !marked || !line.starts_with("build/src/vstore ")) continue;
    // A comment starts at " # " outside quotes.
    bool single = false;
    bool dbl = false;
    std::size_t cut = line.size();
    for (std::size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\'' && !dbl) single = !single;
      if (line[i] == '"' && !single) dbl = !dbl;
      if (!single && !dbl && line.compare(i, 3, " # ") == 0) {
        cut = i;
        break;
      }
    }
    line.resize(cut);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out.push_back(line.substr(std::string_view("build/src/vstore ").size()));
  }
  return out;
}

TEST(ReadmeExamples, EveryMarkedCommandRunsAndItsJsonParses) {
  const char* source = std::getenv("VSTORE_SOURCE_DIR");
  ASSERT_NE(source, nullptr) << "VSTORE_SOURCE_DIR is set by CTest";
  const std::vector<std::string> commands = marked_commands(fs::path(source) / "README.md");
  // The two marked blocks: start, schema, load, status; then the reads and the stop.
  ASSERT_GE(commands.size(), 12U) << "README.md lost its marked examples";
  EXPECT_EQ(commands.front(), "db start");
  EXPECT_EQ(commands.back(), "db stop");

  vstore::testing::TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  chmod(tmp.path.c_str(), 0755);
  const std::string data = (tmp.path / "data").string();
  for (const std::string& args : commands) {
    const vstore::testing::CmdResult r = vstore::testing::run_shell(
        tmp.path.string(), "cd '" + std::string(source) +
                               "' && env -u DATABASE_URL -u VECTOR_BACKEND -u CHROMA_URL VSTORE_DATA_DIR='" + data +
                               "' EMBEDDING_PROVIDER=hash EMBEDDING_DIM=384 '" + vstore::testing::vstore_bin() + "' " +
                               args);
    EXPECT_EQ(r.code, 0) << "vstore " << args << "\n" << r.err;
    EXPECT_FALSE(r.out.empty()) << "vstore " << args;
    if (args.find("--json") != std::string::npos) {
      EXPECT_TRUE(nlohmann::json::accept(r.out)) << "vstore " << args << " printed:\n" << r.out;
    }
    if (r.code != 0 && args.starts_with("db start")) break;
  }
  if (HasFailure()) {
    vstore::testing::run_shell(tmp.path.string(), "env VSTORE_DATA_DIR='" + data + "' '" +
                                                      vstore::testing::vstore_bin() + "' db stop");
  }
}

}  // namespace
