// SPDX-License-Identifier: Apache-2.0
// Issue 24, item 3: `vstore cleanup-chroma` removes ChromaDB only after a passing validation that
// is newer than the last vector write, writes a checksummed backup first, and `vstore
// restore-chroma` puts it back byte for byte: a directory written by the real chromadb package,
// and a collection on a real Chroma server.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chroma/chroma_remote.hpp"
#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/operations.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::sql_value;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Every file under `dir` with its bytes.
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

class Issue24Cleanup : public ::testing::Test {
 protected:
  // One directory written by chromadb 0.6.3 (tests/support/make_chroma_dir.py), copied per test.
  static void SetUpTestSuite() {
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    const char* src = std::getenv("VSTORE_SOURCE_DIR");
    ASSERT_TRUE(venvs && src) << "VSTORE_TEST_CHROMA_PY and VSTORE_SOURCE_DIR must be set (by CTest)";
    std::string tmpl = (fs::temp_directory_path() / "vstore-i24cleanup-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    s_root = tmpl;
    const fs::path dir = s_root / "chroma";
    const std::string cmd = fmt::format("'{}/0.6.3/bin/python' '{}/tests/support/make_chroma_dir.py' '{}' '{}.json' >'{}.log' 2>&1",
                                        venvs, src, dir.string(), dir.string(), dir.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "chromadb 0.6.3 did not write its directory: " << dir << ".log";
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(s_root, ec);
  }

  void SetUp() override {
    ASSERT_FALSE(m_tmp.path.empty());
    chmod(m_tmp.path.c_str(), 0755);
    m_db = vstore::testing::PgServer::instance().create_database("i24cleanup");
    m_cfg = vstore::testing::test_config(m_db, 384);
    ASSERT_EQ(run("schema up").code, 0);
  }
  void TearDown() override { vstore::testing::PgServer::instance().drop_database(m_db); }

  CmdResult run(const std::string& args, const std::string& env = "") {
    return vstore::testing::run_vstore(m_tmp.path.string(), args, "DATABASE_URL='" + m_db + "' " + env);
  }
  // A finished validation in the operations log, as `vstore validate` records one.
  void record_validation(bool passed) {
    auto id = vstore::begin_operation(m_db, m_cfg, "validate");
    ASSERT_TRUE(id) << id.error().to_string();
    ASSERT_TRUE(vstore::finish_operation(m_db, *id, true, passed, "/reports/validate.json", {{"overlap_at_k", passed ? 1.0 : 0.5}}));
  }
  void record_migration() {
    auto id = vstore::begin_operation(m_db, m_cfg, "migrate-chroma");
    ASSERT_TRUE(id && vstore::finish_operation(m_db, *id, true, std::nullopt, "", {}));
  }
  std::string backups() const { return (m_tmp.path / "data" / "backups").string(); }

  static inline fs::path s_root;
  vstore::testing::TempDir m_tmp;
  std::string m_db;
  vstore::Config m_cfg;
};

TEST_F(Issue24Cleanup, DirectoryIsRemovedOnlyAfterAFreshPassingValidationAndRestoredByteForByte) {
  const fs::path chroma = m_tmp.path / "chromadb";  // the plan's chromadb/, CHROMA_DB_DIR's default
  fs::copy(s_root / "chroma", chroma, fs::copy_options::recursive);
  const auto before = files_of(chroma);
  ASSERT_GE(before.size(), 4U);

  // Nothing on record: the dry run lists and says why --confirm would refuse; --confirm refuses.
  CmdResult dry = run("cleanup-chroma --dry-run --json");
  ASSERT_EQ(dry.code, 0) << dry.err;
  json d = json::parse(dry.out);
  EXPECT_EQ(d["kind"], "directory");
  EXPECT_EQ(d["target"], fs::canonical(chroma).string());
  EXPECT_EQ(d["files"], before.size());
  EXPECT_EQ(d["collections"], json::array({"c_cosine", "c_ip", "c_l2"})) << dry.out;
  EXPECT_FALSE(d["allowed"].get<bool>());
  EXPECT_TRUE(contains(d["refusals"].dump(), "no validation of table articles is on record")) << dry.out;
  CmdResult text = run("cleanup-chroma --dry-run");
  EXPECT_TRUE(contains(text.out, "--confirm would refuse: no validation")) << text.out;
  EXPECT_TRUE(contains(text.out, "dry run: nothing was removed")) << text.out;

  CmdResult refused = run("cleanup-chroma --confirm");
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(contains(refused.err, "run `vstore validate` first")) << refused.err;
  EXPECT_EQ(files_of(chroma), before);
  EXPECT_FALSE(fs::exists(backups()));

  // A validation that did not pass; then one that passed but a migration came after it.
  record_validation(false);
  refused = run("cleanup-chroma --confirm");
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(contains(refused.err, "did not pass")) << refused.err;
  record_validation(true);
  record_migration();
  refused = run("cleanup-chroma --confirm");
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(contains(refused.err, "is older than the last vector write")) << refused.err;
  // A passing one after it, but the backend still reads Chroma.
  record_validation(true);
  refused = run("cleanup-chroma --confirm", "VECTOR_BACKEND=dual CHROMA_URL=");
  EXPECT_EQ(refused.code, 1);
  EXPECT_TRUE(contains(refused.err, "VECTOR_BACKEND=dual still uses ChromaDB")) << refused.err;
  EXPECT_EQ(files_of(chroma), before);

  CmdResult done = run("cleanup-chroma --confirm --json");
  ASSERT_EQ(done.code, 0) << done.err;
  json j = json::parse(done.out);
  EXPECT_TRUE(j["removed"].get<bool>());
  EXPECT_FALSE(fs::exists(chroma));
  const std::string backup = j["backup"];
  ASSERT_TRUE(fs::exists(backup)) << done.out;
  EXPECT_TRUE(backup.starts_with(backups() + "/chroma-")) << backup;
  EXPECT_TRUE(backup.ends_with(".tar.gz")) << backup;
  std::ifstream manifest_in(j["manifest"].get<std::string>());
  const json manifest = json::parse(manifest_in);
  EXPECT_EQ(manifest["archive_sha256"], j["sha256"]);
  EXPECT_EQ(manifest["files"].size(), before.size());
  EXPECT_EQ(manifest["source"], fs::weakly_canonical(chroma).string());
  // The run is on record.
  auto logged = vstore::latest_operation(m_db, m_cfg, "cleanup-chroma");
  ASSERT_TRUE(logged && logged->has_value());
  EXPECT_EQ((*logged)->status, "succeeded");

  // A damaged copy is refused before anything is written.
  const fs::path bad = m_tmp.path / "bad";
  fs::create_directories(bad);
  fs::copy_file(backup, bad / fs::path(backup).filename());
  fs::copy_file(j["manifest"].get<std::string>(), bad / fs::path(j["manifest"].get<std::string>()).filename());
  {
    std::fstream f(bad / fs::path(backup).filename(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(backup) / 2));
    f.put('\x5a');
  }
  CmdResult damaged = run("restore-chroma '" + (bad / fs::path(backup).filename()).string() + "'");
  EXPECT_EQ(damaged.code, 1);
  EXPECT_TRUE(contains(damaged.err, "it is damaged; nothing was restored")) << damaged.err;
  EXPECT_FALSE(fs::exists(chroma));

  CmdResult restored = run("restore-chroma '" + backup + "'");
  ASSERT_EQ(restored.code, 0) << restored.err;
  EXPECT_TRUE(contains(restored.out, "restore-chroma: restored " + fs::weakly_canonical(chroma).string())) << restored.out;
  EXPECT_EQ(files_of(chroma), before);

  CmdResult again = run("restore-chroma '" + backup + "'");
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(contains(again.err, "exists and is not empty")) << again.err;
  EXPECT_EQ(files_of(chroma), before);
}

TEST_F(Issue24Cleanup, ServerCollectionIsBackedUpRemovedAndRestoredWithTheSameRecords) {
  const std::string url = vstore::testing::ChromaServer::shared().url();
  const std::string collection = vstore::testing::unique_collection("i24cleanup");
  const std::string chroma_env = fmt::format("CHROMA_URL='{}' CHROMA_COLLECTION={} CHROMA_DB_DIR=none", url, collection);
  {
    std::ofstream out(m_tmp.path / "articles.jsonl");
    for (int i = 0; i < 60; ++i) {
      out << json{{"uri", fmt::format("https://news.example/{}", i)},
                  {"title", fmt::format("report {} on {}", i, i % 2 ? "crude oil" : "wheat")},
                  {"summary", "a summary"},
                  {"topic", i % 2 ? "crude" : "grain"}}
                 .dump()
          << "\n";
    }
  }
  ASSERT_EQ(run("ingest articles.jsonl", "VECTOR_BACKEND=chromadb " + chroma_env).code, 0);
  auto snapshot = [&]() {
    vstore::chroma::RemoteOptions options;
    options.http.base_url = url;
    auto remote = vstore::chroma::ChromaRemote::open(options);
    EXPECT_TRUE(remote) << remote.error().to_string();
    auto info = remote->collection(collection);
    if (!info) {
      EXPECT_EQ(info.error().code(), vstore::ErrorCode::not_found) << info.error().to_string();
      return json(nullptr);
    }
    auto snap = remote->read(*info);
    EXPECT_TRUE(snap) << snap.error().to_string();
    json out = json::array();
    for (const auto& r : snap->records) {
      std::string bits(reinterpret_cast<const char*>(r.vector.data()), r.vector.size() * sizeof(float));
      out.push_back({r.id, json::binary_t(std::vector<std::uint8_t>(bits.begin(), bits.end())), r.metadata,
                     r.document ? json(*r.document) : json(nullptr), info->space});
    }
    return out;
  };
  const json before = snapshot();
  ASSERT_EQ(before.size(), 60U);

  CmdResult dry = run("cleanup-chroma --dry-run --server --json", chroma_env);
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_EQ(json::parse(dry.out)["records"], 60);
  record_validation(true);
  CmdResult done = run("cleanup-chroma --confirm --server --json", chroma_env);
  ASSERT_EQ(done.code, 0) << done.err;
  const json j = json::parse(done.out);
  EXPECT_TRUE(snapshot().is_null()) << "the collection is gone";

  CmdResult restored = run("restore-chroma '" + j["backup"].get<std::string>() + "' --json", chroma_env);
  ASSERT_EQ(restored.code, 0) << restored.err;
  EXPECT_EQ(json::parse(restored.out)["records"], 60);
  EXPECT_EQ(snapshot(), before);
  // Restoring over the collection it made is refused.
  CmdResult again = run("restore-chroma '" + j["backup"].get<std::string>() + "'", chroma_env);
  EXPECT_EQ(again.code, 1);
  EXPECT_TRUE(contains(again.err, "already has a collection " + collection)) << again.err;

  // Both a directory and a server configured: the user chooses.
  fs::create_directories(m_tmp.path / "chromadb");
  CmdResult both = run("cleanup-chroma --dry-run", fmt::format("CHROMA_URL='{}' CHROMA_COLLECTION={}", url, collection));
  EXPECT_EQ(both.code, 1);
  EXPECT_TRUE(contains(both.err, "choose one with --dir or --server")) << both.err;
  CmdResult neither = run("cleanup-chroma --dry-run --confirm");
  EXPECT_EQ(neither.code, 2) << neither.err;
}

}  // namespace
