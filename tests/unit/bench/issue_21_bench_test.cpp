// SPDX-License-Identifier: Apache-2.0
// Regression tests of issue 21 for the benchmarks that need no server: where their code lives
// (item 17) and the conninfo of their scratch database (item 1).
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "macro/bench_support.hpp"

namespace {

namespace fs = std::filesystem;

// The source tree to check: VSTORE_SOURCE_DIR (CTest sets it), else the one this file was
// compiled from when its path is absolute.
fs::path source_root() {
  if (const char* root = std::getenv("VSTORE_SOURCE_DIR"); root && *root) return root;
  return fs::path(__FILE__).parent_path().parent_path().parent_path().parent_path();
}

// Every file under `dir` that is benchmark code: a name with "bench" in it, or an identifier of
// the benchmarks (bench_query, BenchIngestOptions, bench_support::..., *_bench) in its text.
// Prose ("for tests and benchmarks") is not code and does not count.
std::vector<std::string> benchmark_code_under(const fs::path& dir) {
  static const std::regex k_symbol(R"(\b(bench_[A-Za-z0-9_]+|Bench[A-Z][A-Za-z0-9_]*|[A-Za-z0-9_]+_bench)\b)");
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (name.find("bench") != std::string::npos) {
      found.push_back(entry.path().string() + " (file name)");
      continue;
    }
    std::ifstream in(entry.path());
    std::ostringstream text;
    text << in.rdbuf();
    const std::string body = text.str();
    std::smatch match;
    if (std::regex_search(body, match, k_symbol)) found.push_back(entry.path().string() + ": " + match.str());
  }
  return found;
}

// Item 17: the product library (src/api) and the public headers (include/vstore) carry no
// benchmark code; the benchmarks live in benchmarks/.
TEST(Issue21Bench, Item17ProductTreeAndPublicHeadersHoldNoBenchmarkCode) {
  const fs::path root = source_root();
  ASSERT_TRUE(fs::is_directory(root / "include" / "vstore")) << root << " (set VSTORE_SOURCE_DIR to the source tree)";
  ASSERT_TRUE(fs::is_directory(root / "src" / "api")) << root;
  for (const char* dir : {"include/vstore", "src/api"}) {
    const std::vector<std::string> found = benchmark_code_under(root / dir);
    std::string listed;
    for (const auto& f : found) listed += "\n  " + f;
    EXPECT_TRUE(found.empty()) << "benchmark code in " << dir << ":" << listed;
  }
  EXPECT_TRUE(fs::is_directory(root / "benchmarks" / "macro")) << "no benchmarks/macro in " << root;
}

// Item 1: a URI's `dbname` query parameters would win over the path libpq is given; the
// scratch database's conninfo drops them (however their key is spelled), keeps the others, and
// a key=value conninfo gets a trailing dbname, where the last one wins.
TEST(Issue21Bench, Item1WithDbnameDropsEveryDbnameOfTheUri) {
  using vstore::bench_support::with_dbname;
  EXPECT_EQ(with_dbname("postgresql://h/?dbname=prod", "scratch"), "postgresql://h/scratch");
  EXPECT_EQ(with_dbname("postgresql://u@h:5/app?sslmode=disable&dbname=prod&connect_timeout=3", "scratch"),
            "postgresql://u@h:5/scratch?sslmode=disable&connect_timeout=3");
  EXPECT_EQ(with_dbname("postgres:///?host=/tmp/s&db%6Eame=prod&DBNAME=x", "scratch"),
            "postgres:///scratch?host=/tmp/s&DBNAME=x");
  EXPECT_EQ(with_dbname("postgresql://h", "scratch"), "postgresql://h/scratch");
  EXPECT_EQ(with_dbname("host=h dbname=prod", "scratch"), "host=h dbname=prod dbname=scratch");
  EXPECT_EQ(with_dbname("", "scratch"), "dbname=scratch");
}

}  // namespace
