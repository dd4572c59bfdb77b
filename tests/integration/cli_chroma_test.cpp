// SPDX-License-Identifier: Apache-2.0
// The `vstore` command line with VECTOR_BACKEND=chromadb against a real Chroma server: ingest
// creates the collection; search, similar, vectors and health read it through open_store().
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using testing::CmdResult;

class CliChromaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("VSTORE_BIN");
    ASSERT_NE(bin, nullptr) << "VSTORE_BIN must name the vstore binary (set by CTest)";
    m_bin = bin;
    std::string tmpl = (fs::temp_directory_path() / "vstore-cli-chroma-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    m_dir = tmpl;
    m_collection = testing::unique_collection("cli");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

  CmdResult run(const std::string& args) {
    return testing::run_shell(m_dir, "env -u DATABASE_URL VECTOR_BACKEND=chromadb CHROMA_URL='" +
                                         testing::ChromaServer::shared().url() + "' CHROMA_COLLECTION='" + m_collection +
                                         "' VSTORE_DATA_DIR='" + m_dir + "/data' EMBEDDING_DIM=64 EMBEDDING_PROVIDER=hash '" +
                                         m_bin + "' " + args);
  }

  std::string m_bin;
  std::string m_dir;
  std::string m_collection;
};

TEST_F(CliChromaTest, IngestSearchSimilarVectorsAndHealthUseTheChromaServer) {
  CmdResult before = run("search cocoa");
  EXPECT_EQ(before.code, 1);
  EXPECT_NE(before.err.find("has no collection " + m_collection), std::string::npos) << before.err;

  std::ofstream(fs::path(m_dir) / "a.jsonl")
      << "{\"uri\": \"c:1\", \"title\": \"Cocoa harvest in Bahia\", \"topic\": \"cocoa\", "
         "\"publication_date\": \"1987-02-26T15:01:01Z\", \"tags\": [\"cocoa\", \"brazil\"]}\n"
         "{\"uri\": \"c:2\", \"title\": \"Cocoa exports from Bahia grow\", \"topic\": \"cocoa\"}\n"
         "{\"uri\": \"o:1\", \"title\": \"OPEC oil output quota\", \"topic\": \"crude\"}\n";
  CmdResult ingest = run("ingest a.jsonl --json");
  ASSERT_EQ(ingest.code, 0) << ingest.err;
  EXPECT_EQ(json::parse(ingest.out)["upserted"], 3);

  CmdResult search = run("search 'cocoa Bahia' --top-k 2 --json");
  ASSERT_EQ(search.code, 0) << search.err;
  json hits = json::parse(search.out);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0]["metadata"]["topic"], "cocoa");
  EXPECT_LE(hits[0]["score"].get<double>(), hits[1]["score"].get<double>());
  EXPECT_EQ(hits[0]["metadata"]["tags"].is_string(), true);

  CmdResult filtered = run("search 'cocoa Bahia' --json --where '{\"topic\": \"crude\"}'");
  ASSERT_EQ(filtered.code, 0) << filtered.err;
  ASSERT_EQ(json::parse(filtered.out).size(), 1u);
  EXPECT_EQ(json::parse(filtered.out)[0]["id"], "o:1");

  CmdResult similar = run("similar c:1 --top-k 5 --json");
  ASSERT_EQ(similar.code, 0) << similar.err;
  json sim = json::parse(similar.out);
  ASSERT_EQ(sim.size(), 2u);
  for (const auto& h : sim) EXPECT_NE(h["id"], "c:1");

  CmdResult vectors = run("vectors --json --where '{\"topic\": \"cocoa\"}'");
  ASSERT_EQ(vectors.code, 0) << vectors.err;
  json v = json::parse(vectors.out);
  ASSERT_EQ(v["ids"].size(), 2u);
  ASSERT_EQ(v["vectors"][0].size(), 64u);

  CmdResult health = run("health --json");
  ASSERT_EQ(health.code, 0) << health.err;
  json h = json::parse(health.out);
  EXPECT_EQ(h["backend"], "chromadb");
  EXPECT_EQ(h["rows"], 3);
  EXPECT_EQ(h["healthy"], true);
  CmdResult text = run("health");
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("healthy: chromadb"), std::string::npos) << text.out;
}

}  // namespace
}  // namespace vstore
