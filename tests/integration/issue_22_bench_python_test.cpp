// SPDX-License-Identifier: Apache-2.0
// Issue 22: `vstore bench python` runs end to end on a tiny setting against the fixture's server
// and reports its figures (per-call overhead, the four throughput cells, the overlap of the two
// sides), and drops its scratch database.
//
// The interpreter: scripts/test.sh runs CTest before scripts/python_test.sh makes
// <build>/py-venv, so this test does not use that venv. It runs the dev venv of set-up
// (VSTORE_TEST_VENV: psycopg, pgvector, NumPy, onnx, onnxruntime, tokenizers) with the vstore
// package of this build on PYTHONPATH: a directory holding python/vstore's files and the
// _native module CMake just built (VSTORE_TEST_PY_NATIVE), so it measures this build's module.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::PgServer;
using vstore::testing::TempDir;

std::string env_or_empty(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::string(value) : std::string();
}

// A directory whose vstore/ is the package of this build: python/vstore's files and the built
// _native module, linked in.
bool make_package_dir(const fs::path& root, const fs::path& source_package, const fs::path& native) {
  std::error_code ec;
  fs::create_directories(root / "vstore", ec);
  if (ec) return false;
  for (const auto& entry : fs::directory_iterator(source_package, ec)) {
    if (entry.is_regular_file()) fs::create_symlink(entry.path(), root / "vstore" / entry.path().filename(), ec);
    if (ec) return false;
  }
  fs::create_symlink(native, root / "vstore" / native.filename(), ec);
  return !ec;
}

TEST(Issue22BenchPython, BenchPythonReportsOverheadThroughputAndOverlapOnATinySet) {
  const std::string bin = env_or_empty("VSTORE_BIN");
  const std::string venv = env_or_empty("VSTORE_TEST_VENV");
  const std::string model_dir = env_or_empty("VSTORE_TEST_MODEL_DIR");
  const std::string shared = env_or_empty("VSTORE_TEST_SHARED_DATA");
  const std::string source = env_or_empty("VSTORE_SOURCE_DIR");
  const std::string native = env_or_empty("VSTORE_TEST_PY_NATIVE");
  ASSERT_FALSE(bin.empty() || venv.empty() || model_dir.empty() || shared.empty() || source.empty())
      << "VSTORE_BIN, VSTORE_TEST_VENV, VSTORE_TEST_MODEL_DIR, VSTORE_TEST_SHARED_DATA and VSTORE_SOURCE_DIR are set "
         "by CTest";
  ASSERT_FALSE(native.empty()) << "VSTORE_TEST_PY_NATIVE is set by CTest when the Python module is built: configure "
                                  "with -DVSTORE_BUILD_PYTHON=ON (as scripts/test.sh does)";
  ASSERT_TRUE(fs::exists(native)) << native << " is not built";

  const TempDir tmp;
  ASSERT_FALSE(tmp.path.empty());
  const fs::path pkg = tmp.path / "pkg";
  ASSERT_TRUE(make_package_dir(pkg, fs::path(source) / "python" / "vstore", native));
  const fs::path err = tmp.path / "stderr.txt";
  const std::string reuters = shared + "/reuters21578";
  const std::string cmd = fmt::format(
      "cd '{0}' && env -u DATABASE_READ_URLS -u VECTOR_BACKEND -u VSTORE_TABLE DATABASE_URL='{1}' "
      "VSTORE_DATA_DIR='{0}/data' EMBEDDING_PROVIDER=local VSTORE_MODEL_DIR='{2}' PYTHONPATH='{3}' "
      "'{4}' bench python --n 300 --queries 20 --clients 2 --repeats 1 --overhead-calls 40 --python '{5}/bin/python' "
      "--data '{6}/articles.jsonl' --query-file '{6}/queries-dev.tsv' --json 2>'{7}'",
      tmp.path.string(), PgServer::instance().admin_conninfo(), model_dir, pkg.string(), bin, venv, reuters,
      err.string());
  std::string out;
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::array<char, 4096> buf{};
  while (const std::size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
  const int status = pclose(pipe);
  std::ifstream err_in(err);
  const std::string err_text((std::istreambuf_iterator<char>(err_in)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << cmd << "\n" << err_text;

  const json r = json::parse(out, nullptr, false);
  ASSERT_TRUE(r.is_object()) << out << "\n" << err_text;
  EXPECT_GE(r["rows"].get<int>(), 290);
  EXPECT_EQ(r["queries"], 20);
  EXPECT_EQ(r["clients"], 2);
  EXPECT_EQ(r["top_k"], 10);
  EXPECT_EQ(r["ef_search"], 40);
  // The same vectors, table, index and ef_search: the same top 10.
  EXPECT_GE(r["overlap_by_vector"].get<double>(), 0.99) << r.dump();
  // By text the two engines' vectors differ in the last float digits only.
  EXPECT_GT(r["query_vector_min_cosine"].get<double>(), 0.999) << r.dump();
  EXPECT_GE(r["overlap_by_text"].get<double>(), 0.9) << r.dump();
  EXPECT_GT(r["cpp_search_us"].get<double>(), 0.0);
  EXPECT_GT(r["py_search_by_vector_us"].get<double>(), 0.0);
  EXPECT_TRUE(r["overhead_pct"].is_number());
  for (const char* cell : {"vector_1c", "vector_2c", "text_1c", "text_2c"}) {
    const double module = r[fmt::format("module_qps_{}", cell)].get<double>();
    const double python = r[fmt::format("python_qps_{}", cell)].get<double>();
    EXPECT_GT(module, 0.0) << cell;
    EXPECT_GT(python, 0.0) << cell;
    EXPECT_NEAR(r[fmt::format("ratio_{}", cell)].get<double>(), module / python, 0.01 * module / python) << cell;
  }
  ASSERT_TRUE(r["throughput"].is_array());
  EXPECT_EQ(r["throughput"].size(), 4u);
  EXPECT_TRUE(r["machine"].is_object());
  EXPECT_TRUE(r["server"].is_object());
  EXPECT_EQ(vstore::testing::sql_value(PgServer::instance().admin_conninfo(),
                                       "SELECT count(*) FROM pg_database WHERE datname LIKE 'vstore_bench_python_%'"),
            "0");
}

}  // namespace
