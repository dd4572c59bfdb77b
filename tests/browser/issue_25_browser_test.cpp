// SPDX-License-Identifier: Apache-2.0
// Issue 25, item 3: the web page in a real browser. The 20,841 Reuters articles are loaded into
// a database of the test PostgreSQL (with the lexical hash embedder: the local model would take
// about 8 minutes on this machine to embed them all, which the test command's time cannot hold;
// the page does not depend on the embedder), `vstore serve` builds the map, and
// tests/browser/page_test.mjs drives Debian's headless chromium through playwright-core:
// map with points and cluster labels, search with a topic filter, similar articles, a click on
// a point opening the side panel, links keeping the state, no console errors. Screenshots go
// to <build>/browser-shots.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "support/serve_process.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;

std::string required_env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') {
    ADD_FAILURE() << name << " must be set (by CTest, tests/CMakeLists.txt)";
    return {};
  }
  return v;
}

TEST(Issue25Browser, ThePageSearchesShowsSimilarArticlesAndTheMapInChromium) {
  const std::string modules = required_env("VSTORE_TEST_BROWSER_MODULES");
  const std::string script = required_env("VSTORE_TEST_BROWSER_SCRIPT");
  const std::string shots = required_env("VSTORE_TEST_BROWSER_SHOTS");
  const std::string shared = required_env("VSTORE_TEST_SHARED_DATA");
  ASSERT_FALSE(HasFailure());
  ASSERT_TRUE(fs::exists(fs::path(modules) / "playwright-core" / "package.json"))
      << "playwright-core is not installed in " << modules << ": run scripts/setup_browser.sh";
  ASSERT_TRUE(fs::exists("/usr/bin/chromium")) << "Debian's chromium is not installed: run scripts/setup_browser.sh";

  vstore::testing::TempDir tmp;
  chmod(tmp.path.c_str(), 0755);
  const std::string db = vstore::testing::PgServer::instance().create_database("issue25browser");
  const std::string env = "DATABASE_URL='" + db + "'";
  ASSERT_EQ(vstore::testing::run_vstore(tmp.path.string(), "schema up", env).code, 0);
  const auto t0 = std::chrono::steady_clock::now();
  CmdResult ingested = vstore::testing::run_vstore(
      tmp.path.string(), fmt::format("ingest '{}'", (fs::path(shared) / "reuters21578" / "articles.jsonl").string()), env);
  ASSERT_EQ(ingested.code, 0) << ingested.err;
  ASSERT_TRUE(ingested.out.contains("20841 records")) << ingested.out;

  // The service, on a free port, building its map of the collection.
  vstore::testing::ServeProcess serve(tmp.path, env, "--no-access-log");
  const int port = serve.port();
  ASSERT_GT(port, 0) << serve.out() << serve.log();
  // The map is built in the background; the page shows a "being built" line until then. The
  // test waits for it so that the page's first request already gets the map.
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(120, 0);
  int status = 0;
  for (int i = 0; i < 600 && status != 200; ++i) {
    auto res = client.Get("/v1/map");
    status = res ? res->status : 0;
    if (status != 200) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  ASSERT_EQ(status, 200) << serve.log();
  const double ready_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("loaded 20,841 articles and built the map in %.1f s\n", ready_s);

  const std::string command =
      fmt::format("node '{}' --url http://127.0.0.1:{} --modules '{}' --shots '{}' --query 'cocoa prices' --topic cocoa 2>&1",
                  script, port, modules, shots);
  CmdResult page = vstore::testing::run_shell(tmp.path.string(), command);
  std::printf("%s", page.out.c_str());
  EXPECT_EQ(page.code, 0) << page.out << page.err;
  EXPECT_TRUE(page.out.contains("ok: all checks passed")) << page.out;
  EXPECT_FALSE(page.out.contains("FAIL:")) << page.out;
  vstore::testing::PgServer::instance().drop_database(db);
}

}  // namespace
