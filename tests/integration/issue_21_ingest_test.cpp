// SPDX-License-Identifier: Apache-2.0
// Issue 21, ingest items: NUL bytes refused on every write path (13a), one vector and record
// check on every write path (13d, 19), streamed ingest (13f), dates (13b) and the small things
// of 13j, against the real PostgreSQL and Chroma servers and the `vstore` binary.
#include <gtest/gtest.h>

#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chroma/chroma_dir.hpp"
#include "chroma/chroma_store.hpp"
#include "support/chroma_fixture.hpp"
#include "support/migrate_checks.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::PgServer;
using testing::sql_value;
using testing::test_config;

constexpr int k_dim = 16;

ArticleVector nul_item(const std::string& uri, int n) {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.article.raw = std::string("oil \0 prices", 12);
  a.embedding.assign(k_dim, 0.0f);
  a.embedding[static_cast<std::size_t>(n % k_dim)] = 1.0f;
  a.embedding_model = "test-model";
  return a;
}

ArticleVector plain_item(const std::string& uri, int n) {
  ArticleVector a = nul_item(uri, n);
  a.article.raw = "oil prices";
  return a;
}

// ---- the library upsert of both stores ------------------------------------------------------

class Issue21IngestStore : public ::testing::Test {
 protected:
  void SetUp() override {
    m_db = PgServer::instance().create_database("i21ingest");
    m_cfg = test_config(m_db, k_dim);
    auto up = schema_up(m_db, m_cfg);
    ASSERT_TRUE(up) << up.error().to_string();
    auto store = open_pg_store(m_db, m_cfg);
    ASSERT_TRUE(store) << store.error().to_string();
    m_store = std::move(*store);
  }
  void TearDown() override {
    m_store.reset();
    PgServer::instance().drop_database(m_db);
  }
  std::string m_db;
  Config m_cfg;
  std::unique_ptr<VectorStore> m_store;
};

// One record alone (the small-batch path) and in a batch of 20 (the COPY path) are refused
// alike, with an error that names the uri and the field; nothing is stored.
TEST_F(Issue21IngestStore, Item13aNulInATextFieldIsRefusedNamingUriAndFieldAtEveryBatchSize) {
  for (int n : {1, 20}) {
    std::vector<ArticleVector> items;
    for (int i = 0; i < n; ++i) items.push_back(i == n - 1 ? nul_item("h:nul", i) : plain_item(fmt::format("h:{}", i), i));
    auto done = m_store->upsert(items);
    ASSERT_FALSE(done) << "a batch of " << n << " with a NUL byte was stored";
    EXPECT_EQ(done.error().code(), ErrorCode::invalid_argument);
    EXPECT_NE(done.error().message().find("h:nul"), std::string::npos) << done.error().message();
    EXPECT_NE(done.error().message().find("raw"), std::string::npos) << done.error().message();
    EXPECT_NE(done.error().message().find("NUL"), std::string::npos) << done.error().message();
    EXPECT_EQ(sql_value(m_db, "SELECT count(*) FROM articles"), "0") << "batch of " << n;
  }
  // Tags and extra fields are text too.
  ArticleVector tagged = plain_item("h:tag", 1);
  tagged.article.tags = std::vector<std::string>{"ok", std::string("a\0b", 3)};
  auto done = m_store->upsert(std::span(&tagged, 1));
  ASSERT_FALSE(done);
  EXPECT_NE(done.error().message().find("tags"), std::string::npos) << done.error().message();
  ArticleVector extra = plain_item("h:extra", 2);
  extra.article.extra["dateline"] = std::string("x\0y", 3);
  done = m_store->upsert(std::span(&extra, 1));
  ASSERT_FALSE(done);
  EXPECT_NE(done.error().message().find("dateline"), std::string::npos) << done.error().message();
}

TEST(Issue21ChromaStore, Item13aNulInATextFieldIsRefusedNamingUriAndField) {
  Config cfg;
  cfg.backend = BackendKind::chromadb;
  cfg.chroma_url = testing::ChromaServer::shared().url();
  cfg.chroma_collection = testing::unique_collection("i21nul");
  cfg.embedding_dim = k_dim;
  cfg.embedding_provider = "hash";
  chroma::ChromaOptions options;
  options.create_collection = true;
  auto store = chroma::ChromaStore::open(cfg, options);
  ASSERT_TRUE(store) << store.error().to_string();
  ArticleVector a = nul_item("h:nul", 0);
  auto done = (*store)->upsert(std::span(&a, 1));
  ASSERT_FALSE(done) << "chroma stored a NUL byte that pgvector cannot hold";
  EXPECT_EQ(done.error().code(), ErrorCode::invalid_argument);
  EXPECT_NE(done.error().message().find("h:nul"), std::string::npos) << done.error().message();
  EXPECT_NE(done.error().message().find("raw"), std::string::npos) << done.error().message();
  auto counts = (*store)->count();
  ASSERT_TRUE(counts) << counts.error().to_string();
  EXPECT_EQ(counts->rows, 0);
}

// ---- migrate-chroma -------------------------------------------------------------------------

// One chromadb 0.6.3 directory (tests/support/make_chroma_dir.py), written once per binary.
class Chroma063Dir {
 public:
  static const fs::path& path() {
    static Chroma063Dir dir;
    return dir.m_dir;
  }
  ~Chroma063Dir() {
    std::error_code ec;
    fs::remove_all(m_root, ec);
  }

 private:
  Chroma063Dir() {
    const char* venvs = std::getenv("VSTORE_TEST_CHROMA_PY");
    const char* src = std::getenv("VSTORE_SOURCE_DIR");
    if (!venvs || !src) {
      std::fprintf(stderr, "VSTORE_TEST_CHROMA_PY and VSTORE_SOURCE_DIR must be set (by CTest)\n");
      std::abort();
    }
    std::string tmpl = (fs::temp_directory_path() / "vstore-i21-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) std::abort();
    m_root = tmpl;
    m_dir = m_root / "chroma-0.6.3";
    const std::string cmd = fmt::format("'{}/0.6.3/bin/python' '{}/tests/support/make_chroma_dir.py' '{}' '{}.json' "
                                        ">'{}.log' 2>&1",
                                        venvs, src, m_dir.string(), m_dir.string(), m_dir.string());
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "chromadb 0.6.3 did not write its directory (%s.log)\n", m_dir.c_str());
      std::abort();
    }
  }
  fs::path m_root;
  fs::path m_dir;
};

Result<chroma::Snapshot> read_collection(const fs::path& dir, const std::string& name) {
  VS_TRY_ASSIGN(auto d, chroma::ChromaDir::open(dir.string()));
  VS_TRY_ASSIGN(auto cols, d.collections());
  for (const auto& c : cols) {
    if (c.name == name) return d.read(c, {}, false);
  }
  return fail(ErrorCode::not_found, "no collection " + name);
}

class Issue21Migrate : public ::testing::Test {
 protected:
  void SetUp() override { m_target.open("i21migrate", k_dim); }
  void TearDown() override { m_target.close(); }

  fs::path private_copy() const {
    const fs::path dst = m_target.data / "copy";
    fs::copy(Chroma063Dir::path(), dst, fs::copy_options::recursive);
    return dst;
  }

  MigrateOptions options(const fs::path& dir) const {
    MigrateOptions o;
    o.from_dir = dir.string();
    o.collection = "c_l2";
    o.model = "test-model";
    o.insert_missing = true;
    o.verify = true;
    return o;
  }

  std::int64_t count(const std::string& where = "true") const {
    return std::stoll(sql_value(m_target.conninfo, "SELECT count(*) FROM articles WHERE " + where));
  }

  // Every record of `bad` is an error and absent; every other one arrives; the run fails.
  void expect_errors_exactly(const MigrateReport& report, const std::set<std::string>& bad, std::size_t total) const {
    const auto& c = report.collections.at(0);
    EXPECT_EQ(c.errors, static_cast<std::int64_t>(bad.size()));
    EXPECT_FALSE(report.ok());
    EXPECT_EQ(count(), static_cast<std::int64_t>(total - bad.size()));
    for (const auto& id : bad) EXPECT_EQ(count(fmt::format("uri = '{}'", id)), 0) << id;
    EXPECT_TRUE(c.verify.value("passed", false)) << "the rows written are exact: " << c.verify.dump();
  }

  testing::MigrateTarget m_target;
};

std::string vector_segment_of(const fs::path& dir, const std::string& name) {
  auto d = chroma::ChromaDir::open(dir.string());
  EXPECT_TRUE(d.has_value());
  auto cols = d->collections();
  EXPECT_TRUE(cols.has_value());
  for (const auto& c : *cols) {
    if (c.name == name) return c.vector_segment;
  }
  return "";
}

// An all-zero vector (every HNSW slot's vector overwritten with zeros; the records whose vector
// the log replaces keep the log's) is refused like a NaN: counted under errors, not written.
TEST_F(Issue21Migrate, Item13dAnAllZeroVectorIsAnErrorAndIsNotWritten) {
  const fs::path dir = private_copy();
  const fs::path seg = dir / vector_segment_of(dir, "c_l2");
  std::string header(100, '\0');
  std::ifstream(seg / "header.bin", std::ios::binary).read(header.data(), 100);
  std::uint64_t count_slots = 0, stride = 0, offset_data = 0;
  std::memcpy(&count_slots, header.data() + 20, 8);
  std::memcpy(&stride, header.data() + 28, 8);
  std::memcpy(&offset_data, header.data() + 44, 8);
  ASSERT_GT(count_slots, 0U);
  {
    std::fstream level0(seg / "data_level0.bin", std::ios::binary | std::ios::in | std::ios::out);
    const std::vector<char> zeros(k_dim * sizeof(float), 0);
    for (std::uint64_t i = 0; i < count_slots; ++i) {
      level0.seekp(static_cast<std::streamoff>(i * stride + offset_data));
      level0.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
    }
    ASSERT_TRUE(level0.good());
  }
  auto snap = read_collection(dir, "c_l2");
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  std::set<std::string> bad;
  for (const auto& rec : snap->records) {
    if (std::all_of(rec.vector.begin(), rec.vector.end(), [](float f) { return f == 0.0f; })) bad.insert(rec.id);
  }
  ASSERT_FALSE(bad.empty());
  ASSERT_LT(bad.size(), snap->records.size()) << "the test wants some vectors from the log";
  auto report = migrate_chroma(m_target.conninfo, m_target.config, options(dir));
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  expect_errors_exactly(*report, bad, snap->records.size());
  EXPECT_EQ(count("embedding IS NOT NULL AND vector_norm(embedding) = 0"), 0);
}

// A NUL byte in a document or a metadata string cannot be stored in PostgreSQL (text, jsonb):
// the record is an error named with the field, and not written; the others arrive.
TEST_F(Issue21Migrate, Item13aANulInADocumentOrMetadataStringIsAnErrorNamingTheField) {
  const fs::path dir = private_copy();
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "chroma.sqlite3").c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db,
                                "UPDATE embedding_metadata SET string_value = 'doc' || char(0) || 'x' "
                                "WHERE key = 'chroma:document' AND id % 3 = 0; "
                                "UPDATE embedding_metadata SET string_value = 'cat' || char(0) "
                                "WHERE key = 's' AND id % 3 = 1",
                                nullptr, nullptr, &err);
    const std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }
  auto snap = read_collection(dir, "c_l2");
  ASSERT_TRUE(snap.has_value()) << snap.error().to_string();
  std::set<std::string> bad;
  bool document_bad = false;
  bool metadata_bad = false;
  for (const auto& rec : snap->records) {
    const bool doc = rec.document && rec.document->find('\0') != std::string::npos;
    const bool md = rec.metadata.contains("s") && rec.metadata["s"].is_string() &&
                    rec.metadata["s"].get<std::string>().find('\0') != std::string::npos;
    if (doc || md) bad.insert(rec.id);
    document_bad |= doc;
    metadata_bad |= md;
  }
  ASSERT_TRUE(document_bad && metadata_bad) << "the test wants both kinds: " << bad.size() << " of "
                                            << snap->records.size() << ", " << document_bad << metadata_bad;
  ASSERT_LT(bad.size(), snap->records.size());
  auto report = migrate_chroma(m_target.conninfo, m_target.config, options(dir));
  ASSERT_TRUE(report.has_value()) << report.error().to_string();
  expect_errors_exactly(*report, bad, snap->records.size());
  const json j = report->to_json();
  const std::string text = j.dump();
  EXPECT_NE(text.find("document"), std::string::npos) << text;
  EXPECT_NE(text.find("NUL"), std::string::npos) << text;
}

// ---- the `vstore` command line --------------------------------------------------------------

// Built under a sanitizer (scripts/sanitize.sh), vstore's runtime reserves terabytes of address
// space at start, so RLIMIT_AS would stop it before main; ASan's own hard RSS limit stands in for
// it. ASan's quarantine and redzones also raise the peak resident memory far above the product's,
// so the memory bounds below are checked in the normal build only, and the child's alarm is longer.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool k_sanitized = true;
#else
constexpr bool k_sanitized = false;
#endif

struct CmdResult {
  int code = -1;
  std::string out;
  std::string err;
  long max_rss_kb = 0;  // peak resident memory (VmHWM) of the vstore process, kB
  double seconds = 0;
};

class Issue21IngestCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* bin = std::getenv("VSTORE_BIN");
    ASSERT_NE(bin, nullptr) << "VSTORE_BIN must name the vstore binary (set by CTest)";
    m_bin = bin;
    m_db = PgServer::instance().create_database("i21cli");
    std::string tmpl = (fs::temp_directory_path() / "vstore-i21cli-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    m_dir = tmpl;
    ASSERT_EQ(run({"schema", "up"}).code, 0);
  }
  void TearDown() override {
    PgServer::instance().drop_database(m_db);
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

  // Runs `vstore ARGS` in the test's directory against its database (hash embedder, 16 dims),
  // with the child's peak resident memory.
  CmdResult run(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) const {
    const fs::path out = m_dir / "stdout.txt";
    const fs::path err = m_dir / "stderr.txt";
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = fork();
    if (pid == 0) {
      if (chdir(m_dir.c_str()) != 0) _exit(127);
      std::FILE* o = std::freopen(out.c_str(), "w", stdout);
      std::FILE* e = std::freopen(err.c_str(), "w", stderr);
      if (!o || !e) _exit(127);
      // A run away read (the unfixed code on /dev/zero) fails instead of taking the machine.
      if (!k_sanitized) {
        const rlimit memory{3UL << 30, 3UL << 30};
        setrlimit(RLIMIT_AS, &memory);
      } else if (const char* asan = std::getenv("ASAN_OPTIONS")) {
        setenv("ASAN_OPTIONS", (std::string(asan) + ":hard_rss_limit_mb=3072").c_str(), 1);
      }
      alarm(k_sanitized ? 600 : 120);  // ASan makes the 100 MiB load a few times slower
      unsetenv("OPENBLAS_NUM_THREADS");
      setenv("DATABASE_URL", m_db.c_str(), 1);
      setenv("EMBEDDING_DIM", std::to_string(k_dim).c_str(), 1);
      setenv("EMBEDDING_PROVIDER", "hash", 1);
      setenv("VSTORE_DATA_DIR", (m_dir / "data").c_str(), 1);
      for (const auto& kv : env) putenv(const_cast<char*>(kv.c_str()));
      std::vector<char*> argv;
      argv.push_back(const_cast<char*>(m_bin.c_str()));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(m_bin.c_str(), argv.data());
      _exit(127);
    }
    CmdResult r;
    int status = 0;
    // The peak resident memory of the program the child runs: its VmHWM once it runs vstore,
    // polled until it exits (before the exec, and in a forked child's rusage, the pages of this
    // test process count too).
    while (waitpid(pid, &status, WNOHANG) == 0) {
      std::ifstream proc_status("/proc/" + std::to_string(pid) + "/status");
      std::string line;
      bool is_vstore = false;
      while (std::getline(proc_status, line)) {
        if (line.rfind("Name:", 0) == 0) is_vstore = line == "Name:\tvstore";
        if (is_vstore && line.rfind("VmHWM:", 0) == 0) r.max_rss_kb = std::max(r.max_rss_kb, std::stol(line.substr(6)));
      }
      usleep(2000);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream o(out), e(err);
    r.out.assign(std::istreambuf_iterator<char>(o), {});
    r.err.assign(std::istreambuf_iterator<char>(e), {});
    return r;
  }

  void write_file(const std::string& name, const std::string& text) const {
    std::ofstream(m_dir / name, std::ios::binary) << text;
  }

  std::int64_t count(const std::string& where = "true") const {
    return std::stoll(sql_value(m_db, "SELECT count(*) FROM articles WHERE " + where));
  }

  std::string m_bin;
  std::string m_db;
  fs::path m_dir;
};

TEST_F(Issue21IngestCli, Item13aIngestRefusesANulByteNamingTheUriAndTheFieldAndWritesNothing) {
  write_file("nul.jsonl", "{\"uri\":\"h:ok\",\"raw\":\"oil prices\"}\n{\"uri\":\"h:nul\",\"raw\":\"oil \\u0000 prices\"}\n");
  CmdResult r = run({"ingest", "nul.jsonl"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("h:nul"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("raw"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nul.jsonl:2"), std::string::npos) << r.err;
  EXPECT_EQ(count(), 0);
}

// ---- 13f: the file is streamed ------------------------------------------------------------

TEST_F(Issue21IngestCli, Item13fIngestOfDevZeroFailsQuicklyWithAClearMessageAndBoundedMemory) {
  CmdResult r = run({"ingest", "/dev/zero"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("/dev/zero"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;
  EXPECT_LT(r.seconds, 20.0);
  if (!k_sanitized) {
    EXPECT_LT(r.max_rss_kb, 200L * 1024) << "kB";
  }
  EXPECT_EQ(count(), 0);
}

TEST_F(Issue21IngestCli, Item13fIngestOfADirectoryExitsOne) {
  fs::create_directory(m_dir / "somedir");
  CmdResult r = run({"ingest", "somedir"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("somedir"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("directory"), std::string::npos) << r.err;
}

// A line longer than the limit (64 MiB) is refused with its line number, in bounded memory;
// here 80 MiB of NUL bytes without a newline (a sparse file) after a good first line.
TEST_F(Issue21IngestCli, Item13fALineLongerThanTheLimitIsRefusedNamingItsLine) {
  write_file("long.jsonl", "{\"uri\":\"h:1\",\"raw\":\"oil prices\"}\n");
  fs::resize_file(m_dir / "long.jsonl", fs::file_size(m_dir / "long.jsonl") + (80U << 20));
  CmdResult r = run({"ingest", "long.jsonl"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("long.jsonl:2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("64 MiB"), std::string::npos) << r.err;
  if (!k_sanitized) {
    EXPECT_LT(r.max_rss_kb, 400L * 1024) << "kB";
  }
  EXPECT_EQ(count(), 0);
}

// 100 MiB of records (400 x 256 KiB of text, vectors given) load with memory far below the
// file's size: the file is streamed, never held whole.
TEST_F(Issue21IngestCli, Item13fALargeFileStreamsInBoundedMemory) {
  {
    std::ofstream out(m_dir / "large.jsonl", std::ios::binary);
    const std::string text(256 * 1024, 'a');
    for (int i = 0; i < 400; ++i) {
      json vec = json::array();
      for (int d = 0; d < k_dim; ++d) vec.push_back(d == i % k_dim ? 1.0 : 0.0);
      out << json{{"uri", fmt::format("big:{}", i)}, {"raw", text}, {"embedding", vec}, {"embedding_model", "m"}}.dump()
          << '\n';
    }
  }
  ASSERT_GT(fs::file_size(m_dir / "large.jsonl"), 100U << 20);
  CmdResult r = run({"ingest", "large.jsonl", "--batch-size", "8", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["upserted"], 400);
  EXPECT_EQ(count(), 400);
  if (!k_sanitized) {
    EXPECT_LT(r.max_rss_kb, 60L * 1024) << "kB: more than a batch was held in memory";
  }
}

// ---- 13b: dates ---------------------------------------------------------------------------

// Ingest reports each date it cannot read (uri, field, value) and counts them, stores those
// records without a date, keeps time and zone of the others; the filter reads the same forms.
TEST_F(Issue21IngestCli, Item13bIngestReportsUnreadableDatesAndTheFilterReadsTheSameForms) {
  write_file("dates.jsonl",
             "{\"uri\":\"d:pst\",\"title\":\"oil\",\"publication_date\":\"1987-03-01 12:00:00 PST\"}\n"
             "{\"uri\":\"d:naive\",\"title\":\"oil\",\"publication_date\":\"1987-03-01 12:00:00\"}\n"
             "{\"uri\":\"d:bad\",\"title\":\"oil\",\"publication_date\":\"not a date\"}\n"
             "{\"uri\":\"d:five\",\"title\":\"oil\",\"publication_date\":\"99999-01-01\"}\n"
             "{\"uri\":\"d:bc\",\"title\":\"oil\",\"publication_date\":\"4713-01-01 BC\"}\n");
  CmdResult r = run({"ingest", "dates.jsonl", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const json summary = json::parse(r.out);
  EXPECT_EQ(summary["upserted"], 5);
  EXPECT_EQ(summary.value("unreadable_dates", -1), 3) << summary.dump();
  for (const char* needle : {"dates.jsonl:3", "d:bad", "publication_date", "not a date", "d:five", "99999-01-01",
                             "d:bc", "4713-01-01 BC"}) {
    EXPECT_NE(r.err.find(needle), std::string::npos) << needle << " in " << r.err;
  }
  EXPECT_EQ(sql_value(m_db, "SELECT publication_date AT TIME ZONE 'UTC' FROM articles WHERE uri = 'd:pst'"),
            "1987-03-01 20:00:00");
  EXPECT_EQ(sql_value(m_db, "SELECT publication_date AT TIME ZONE 'UTC' FROM articles WHERE uri = 'd:naive'"),
            "1987-03-01 12:00:00");
  EXPECT_EQ(sql_value(m_db, "SELECT publication_date_ts FROM articles WHERE uri = 'd:pst'"), "541627200");
  EXPECT_EQ(count("publication_date IS NULL AND publication_date_ts IS NULL"), 3);

  CmdResult found = run({"vectors", "--json", "--where", R"({"publication_date": {"$gte": "1987-03-01 11:30:00 PST"}})"});
  ASSERT_EQ(found.code, 0) << found.err;
  EXPECT_EQ(json::parse(found.out)["ids"], json::array({"d:pst"}));
}

// ---- 13j: the small things ----------------------------------------------------------------

TEST_F(Issue21IngestCli, Item13jAMissingEnvFileNamedOnTheCommandLineIsAnError) {
  CmdResult r = run({"--env-file", "missing.env", "health"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("missing.env"), std::string::npos) << r.err;
}

TEST_F(Issue21IngestCli, Item13jAnEnvFileThatIsNotARegularFileIsRefusedAtOnce) {
  CmdResult r = run({"--env-file", "/dev/zero", "health"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("/dev/zero"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("regular file"), std::string::npos) << r.err;
  EXPECT_LT(r.seconds, 20.0);
}

TEST_F(Issue21IngestCli, Item13jInvalidUtf8IsReportedWithItsLineAndByteOffset) {
  write_file("utf8.jsonl", "{\"uri\":\"u:1\",\"title\":\"fine\"}\n{\"uri\":\"u:2\",\"title\":\"caf\xff\"}\n");
  CmdResult r = run({"ingest", "utf8.jsonl"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("utf8.jsonl:2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("UTF-8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("byte 26"), std::string::npos) << r.err;
  EXPECT_EQ(count(), 0);
}

TEST_F(Issue21IngestCli, Item13jTheHashEmbedderNamesTheBadRecordByUri) {
  write_file("words.jsonl", "{\"uri\":\"w:1\",\"title\":\"oil prices\"}\n{\"uri\":\"w:punct\",\"title\":\"!!! ???\"}\n");
  CmdResult r = run({"ingest", "words.jsonl"});
  EXPECT_EQ(r.code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("w:punct"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace vstore
