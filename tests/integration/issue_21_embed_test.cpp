// SPDX-License-Identifier: Apache-2.0
// Issue 21, embedding and process items against the real model files, the real `vstore` binary
// and the fixture's PostgreSQL: one embedding pool per process (item 16), no re-execution and
// no shell (item 21), the model found whatever the data directory (item 23), Unicode-blank
// texts never stored with a vector (item 13e).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "embed/embed_local.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

extern char** environ;

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

using testing::task_count;
using testing::TempDir;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The environment of a `vstore` run: only what the test sets plus PATH (no OPENBLAS_NUM_THREADS,
// no DATABASE_URL or other settings of the caller).
using EnvMap = std::map<std::string, std::string>;

struct Spawned {
  pid_t pid = -1;
  fs::path out;
  fs::path err;
};

// Starts `vstore ARGS` under `env` with stdout and stderr to files in `dir`.
Spawned spawn_vstore(const std::vector<std::string>& args, const EnvMap& env, const fs::path& dir) {
  Spawned s;
  s.out = dir / "stdout.txt";
  s.err = dir / "stderr.txt";
  const std::string bin = env_or_empty("VSTORE_BIN");
  std::vector<std::string> argv_s = {bin};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_s;
  env_s.push_back("PATH=" + env_or_empty("PATH"));
  for (const auto& [k, v] : env) env_s.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, s.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, s.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (posix_spawn(&s.pid, bin.c_str(), &actions, nullptr, argv.data(), envp.data()) != 0) s.pid = -1;
  posix_spawn_file_actions_destroy(&actions);
  return s;
}

struct CmdResult {
  int code = -1;
  std::string out;
  std::string err;
};

CmdResult wait_for(const Spawned& s) {
  CmdResult r;
  if (s.pid <= 0) return r;
  int status = 0;
  waitpid(s.pid, &status, 0);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(s.out);
  r.err = read_file(s.err);
  return r;
}

CmdResult run_vstore(const std::vector<std::string>& args, const EnvMap& env, const fs::path& dir) {
  return wait_for(spawn_vstore(args, env, dir));
}

void require_binary() {
  ASSERT_FALSE(env_or_empty("VSTORE_BIN").empty()) << "VSTORE_BIN is set by CTest";
}

// ---- item 16: one pool of embedding threads per process ----------------------------------------

// Texts of 8 to 80 words, so that every batch of 32 is cut into several chunks.
std::vector<std::string> mixed_texts(std::size_t n) {
  static const char* const k_words[] = {"oil",     "prices",  "rose",   "after", "the",    "opec",
                                        "meeting", "crude",   "output", "fell",  "markets", "steady",
                                        "bank",    "rates",   "wheat",  "exports"};
  std::vector<std::string> out;
  for (std::size_t text_idx = 0; text_idx < n; ++text_idx) {
    std::string text = fmt::format("report {}:", text_idx);
    const std::size_t words = 8 + (text_idx * 37) % 73;
    for (std::size_t word_idx = 0; word_idx < words; ++word_idx) {
      text += ' ';
      text += k_words[(text_idx * 7 + word_idx * 3) % std::size(k_words)];
    }
    out.push_back(std::move(text));
  }
  return out;
}

TEST(Issue21EmbedPool, Item16ConcurrentEmbedsAddNoThreadsAndMatchOneThread) {
  const std::string model_dir = env_or_empty("VSTORE_TEST_MODEL_DIR");
  ASSERT_FALSE(model_dir.empty()) << "VSTORE_TEST_MODEL_DIR is set by CTest";
  auto single = embed::make_local_embedder(model_dir, "all-MiniLM-L6-v2", 384, 1);
  ASSERT_TRUE(single) << single.error().to_string();
  auto multi = embed::make_local_embedder(model_dir, "all-MiniLM-L6-v2", 384, 3);
  ASSERT_TRUE(multi) << multi.error().to_string();
  const std::vector<std::string> texts = mixed_texts(96);
  auto expected = (*single)->embed(texts);
  ASSERT_TRUE(expected) << expected.error().to_string();
  ASSERT_TRUE((*multi)->embed(texts));  // warm-up: whatever the engine starts once is started now

  std::atomic<bool> stop{false};
  std::atomic<int> most{0};
  std::thread sampler([&] {
    while (!stop.load()) {
      const int n = task_count();
      if (n > most.load()) most.store(n);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  const int baseline = task_count();  // the test's threads so far, the sampler and the pool
  constexpr int k_callers = 8;
  std::vector<Result<std::vector<Embedding>>> results(k_callers);
  std::vector<std::thread> callers;
  for (int caller_idx = 0; caller_idx < k_callers; ++caller_idx) {
    callers.emplace_back([&, caller_idx] { results[static_cast<std::size_t>(caller_idx)] = (*multi)->embed(texts); });
  }
  for (auto& t : callers) t.join();
  stop.store(true);
  sampler.join();

  EXPECT_LE(most.load(), baseline + k_callers)
      << "the process had up to " << most.load() << " threads during " << k_callers << " concurrent embeds; "
      << baseline << " before them";
  for (int caller_idx = 0; caller_idx < k_callers; ++caller_idx) {
    const auto& got = results[static_cast<std::size_t>(caller_idx)];
    ASSERT_TRUE(got) << got.error().to_string();
    EXPECT_EQ(*got, *expected) << "caller " << caller_idx << " differs from the one-thread embedding";
  }
}

// ---- item 21: no re-execution through /proc/self/exe, no shell ---------------------------------

// A TCP listener on a free loopback port that never answers: a client connecting to it blocks.
struct SilentServer {
  SilentServer() {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 4) != 0) return;
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  ~SilentServer() { close(fd); }
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  // The next connection, or -1 after `seconds`.
  int accept_within(int seconds) const {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, seconds * 1000) != 1) return -1;
    return accept(fd, nullptr, nullptr);
  }
  int fd = -1;
  int port = 0;
};

struct Snapshot {
  std::vector<std::string> environ_entries;
  int tasks = -1;
};

// Runs `vstore health` against a server that never answers and, while it waits for the
// server, reads the process's initial environment and counts its threads.
Snapshot snapshot_of_waiting_vstore(const fs::path& dir, const EnvMap& extra) {
  Snapshot snap;
  SilentServer server;
  EXPECT_GT(server.port, 0);
  EnvMap env = {{"VSTORE_DATA_DIR", (dir / "data").string()},
                {"EMBEDDING_PROVIDER", "hash"},
                {"DATABASE_URL", fmt::format("postgresql://vstore@127.0.0.1:{}/vstore?sslmode=disable", server.port)}};
  env.insert(extra.begin(), extra.end());
  const Spawned child = spawn_vstore({"health"}, env, dir);
  EXPECT_GT(child.pid, 0);
  const int conn = server.accept_within(60);
  EXPECT_GE(conn, 0) << "vstore health did not connect: " << read_file(child.err);
  if (conn >= 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // let it block in its read
    const std::string proc = fmt::format("/proc/{}", child.pid);
    std::istringstream raw(read_file(proc + "/environ"));
    for (std::string entry; std::getline(raw, entry, '\0');) snap.environ_entries.push_back(entry);
    snap.tasks = task_count(proc);
    close(conn);
  }
  wait_for(child);
  return snap;
}

TEST(Issue21EmbedCli, Item21VstoreStartsOnceWithoutOpenBlasWorkersOrAnInheritedSetting) {
  require_binary();
  TempDir tmp;
  const Snapshot plain = snapshot_of_waiting_vstore(tmp.path, {});
  ASSERT_FALSE(plain.environ_entries.empty());
  for (const auto& entry : plain.environ_entries) {
    // A re-executed vstore carries the marker and the setting in its exec-time environment,
    // and would pass the setting on to what it starts (PostgreSQL, Chroma, Python).
    EXPECT_FALSE(entry.starts_with("VSTORE_SET_OPENBLAS_THREADS=")) << "vstore re-executed itself: " << entry;
    EXPECT_FALSE(entry.starts_with("OPENBLAS_NUM_THREADS=")) << "vstore set " << entry;
  }
  // Debian's pthread OpenBLAS starts its workers when it is loaded; vstore stops them at start,
  // so the process has as many threads as one started with OPENBLAS_NUM_THREADS=1.
  const Snapshot pinned = snapshot_of_waiting_vstore(tmp.path, {{"OPENBLAS_NUM_THREADS", "1"}});
  EXPECT_EQ(plain.tasks, pinned.tasks);
}

// Runs `vstore bench migrate` with VSTORE_DATA_DIR=`data`, where a fake chromadb venv python
// writes the arguments it was given to `argv_file`, one a line, and exits 3.
CmdResult run_bench_migrate_with_fake_chroma(const fs::path& data, const fs::path& argv_file, const fs::path& dir) {
  const fs::path python = data / "chroma-py" / "1.0.19" / "bin" / "python";
  fs::create_directories(python.parent_path());
  {
    std::ofstream script(python);
    script << "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$VSTORE_TEST_ARGV_FILE\"\nexit 3\n";
  }
  fs::permissions(python, fs::perms::owner_all);
  return run_vstore({"bench", "migrate", "--rows", "1000", "--dim", "8"},
                    {{"VSTORE_DATA_DIR", data.string()},
                     {"VSTORE_TEST_ARGV_FILE", argv_file.string()},
                     {"DATABASE_URL", "postgresql://vstore@127.0.0.1:1/vstore"}},
                    dir);
}

TEST(Issue21EmbedCli, Item21BenchMigrateRunsItsHelperWithAPathHoldingASpaceAndAQuote) {
  require_binary();
  TempDir tmp;
  const fs::path data = tmp.path / "it's a \"data\" dir";
  const fs::path argv_file = tmp.path / "argv.txt";
  const CmdResult r = run_bench_migrate_with_fake_chroma(data, argv_file, tmp.path);
  EXPECT_EQ(r.code, 1) << r.err;  // the helper exits 3
  ASSERT_TRUE(fs::exists(argv_file)) << "the helper never ran; stderr: " << r.err;
  std::istringstream lines(read_file(argv_file));
  std::vector<std::string> args;
  for (std::string line; std::getline(lines, line);) args.push_back(line);
  ASSERT_EQ(args.size(), 6U) << read_file(argv_file);
  EXPECT_TRUE(args[0].ends_with("scripts/make_chroma_bench_dir.py")) << args[0];
  EXPECT_EQ(args[1], (data / "bench" / "chroma-1000x8-vectors").string());
  EXPECT_EQ(args[2], "1000");
  EXPECT_EQ(args[3], "8");
  EXPECT_EQ(args[4], "1");
  EXPECT_EQ(args[5], "vectors");
  EXPECT_NE(r.err.find("exited with status 3"), std::string::npos) << r.err;
}

// ---- item 23: the model is found whatever the data directory -----------------------------------

TEST(Issue21EmbedCli, Item23TheInstalledModelIsFoundWhenTheDataDirectoryMoves) {
  require_binary();
  const std::string model_dir = env_or_empty("VSTORE_TEST_MODEL_DIR");
  ASSERT_FALSE(model_dir.empty()) << "VSTORE_TEST_MODEL_DIR is set by CTest";
  TempDir tmp;
  fs::create_directories(tmp.path / "config" / "vstore");
  std::ofstream(tmp.path / "config" / "vstore" / "model_dir") << model_dir << "\n";
  fs::create_directories(tmp.path / "second-database");
  const CmdResult r = run_vstore({"embed", "oil prices"},
                                 {{"VSTORE_DATA_DIR", (tmp.path / "second-database").string()},
                                  {"XDG_CONFIG_HOME", (tmp.path / "config").string()},
                                  {"HOME", tmp.path.string()},
                                  {"EMBEDDING_PROVIDER", "local"}},
                                 tmp.path);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("384 dims"), std::string::npos) << r.out;
}

// ---- item 13e: Unicode-blank text is never stored with a vector ---------------------------------

TEST(Issue21EmbedCli, Item13eUnicodeBlankRecordsAreSkippedByUriAndStoreNoVector) {
  require_binary();
  auto& server = testing::PgServer::instance();
  const std::string conninfo = server.create_database("i21blank");
  TempDir tmp;
  const EnvMap env = {{"VSTORE_DATA_DIR", (tmp.path / "data").string()},
                      {"EMBEDDING_PROVIDER", "hash"},
                      {"DATABASE_URL", conninfo}};
  const CmdResult up = run_vstore({"schema", "up"}, env, tmp.path);
  ASSERT_EQ(up.code, 0) << up.err;
  {
    std::ofstream f(tmp.path / "blank.jsonl");
    f << R"({"uri":"u:nbsp","raw":"\u00a0\u00a0\u00a0","title":"\u3000"})" << "\n";
    f << R"({"uri":"u:zw","summary":"\u200b\ufeff\u2060","title":" \u00a0 "})" << "\n";
    f << R"({"uri":"u:ok","raw":"oil prices rose"})" << "\n";
  }
  const CmdResult ingest = run_vstore({"ingest", (tmp.path / "blank.jsonl").string(), "--json"}, env, tmp.path);
  ASSERT_EQ(ingest.code, 0) << ingest.err;
  const json summary = json::parse(ingest.out, nullptr, false);
  ASSERT_TRUE(summary.is_object()) << ingest.out;
  EXPECT_EQ(summary.value("upserted", -1), 1) << ingest.out;
  EXPECT_EQ(summary.value("skipped_without_text", -1), 2) << ingest.out;
  EXPECT_NE(ingest.err.find("u:nbsp"), std::string::npos) << "the skipped record is not named: " << ingest.err;
  EXPECT_NE(ingest.err.find("u:zw"), std::string::npos) << "the skipped record is not named: " << ingest.err;
  EXPECT_EQ(testing::sql_value(conninfo, "SELECT count(*) FROM articles WHERE embedding IS NOT NULL AND uri IN "
                                         "('u:nbsp', 'u:zw')"),
            "0");
  EXPECT_EQ(testing::sql_value(conninfo, "SELECT count(*) FROM articles WHERE embedding IS NOT NULL"), "1");
  server.drop_database(conninfo);
}

// ---- item 21: no source directory compiled into the binary -------------------------------------

// The helper scripts are found beside the binary that runs, wherever its tree is: a copy of the
// binary in another tree runs that tree's script, not the one of the tree it was built in.
TEST(Issue21EmbedCli, Item21TheBenchmarkScriptsAreFoundFromTheRunningBinaryNotACompiledInPath) {
  require_binary();
  TempDir tmp;
  const fs::path tree = tmp.path / "moved tree";
  fs::create_directories(tree / "build" / "src");
  fs::create_directories(tree / "scripts");
  fs::copy_file(env_or_empty("VSTORE_BIN"), tree / "build" / "src" / "vstore");
  std::ofstream(tree / "scripts" / "bench_embed_peer.py") << "# stub\n";
  std::ofstream(tree / "scripts" / "make_chroma_bench_dir.py") << "# stub\n";
  const fs::path data = tmp.path / "data";
  const fs::path argv_file = tmp.path / "argv.txt";
  const std::string built = env_or_empty("VSTORE_BIN");
  ::setenv("VSTORE_BIN", (tree / "build" / "src" / "vstore").c_str(), 1);
  const CmdResult r = run_bench_migrate_with_fake_chroma(data, argv_file, tmp.path);
  ::setenv("VSTORE_BIN", built.c_str(), 1);
  ASSERT_TRUE(fs::exists(argv_file)) << "the helper never ran; stderr: " << r.err;
  std::istringstream lines(read_file(argv_file));
  std::string first;
  std::getline(lines, first);
  EXPECT_EQ(first, (tree / "scripts" / "make_chroma_bench_dir.py").string());
}

}  // namespace
}  // namespace vstore
