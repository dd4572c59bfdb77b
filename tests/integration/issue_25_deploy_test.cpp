// SPDX-License-Identifier: Apache-2.0
// Issue 25, item 4: the files of deploy/. The example settings name only variables vstore reads
// (a misspelt one fails) and every value in them is accepted; the units pass
// `systemd-analyze verify`, the hardened one keeps its exposure score low and writes where the
// example's data directory is; and the units' own command lines run on the real binary with the
// example's settings: the cluster unit's `db start` (its PID file where the unit says), `schema
// up` as docs/operations.md runs it, each serve unit's ExecStart answering /health, SIGTERM
// stopping it cleanly, and the cluster unit's ExecStop.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/chroma_fixture.hpp"
#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using vstore::testing::CmdResult;
using vstore::testing::free_loopback_port;
using vstore::testing::run_shell;
using vstore::testing::vstore_bin;

constexpr std::string_view k_installed_bin = "/usr/local/bin/vstore";
constexpr std::string_view k_installed_env = "/etc/vstore/vstore.env";

fs::path source_dir() {
  const char* dir = std::getenv("VSTORE_SOURCE_DIR");
  return dir != nullptr ? fs::path(dir) : fs::path();
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

// The settings of the example: name -> value, for lines `NAME=value` (active) and `#NAME=value`
// (commented out, `active` false).
struct Setting {
  std::string value;
  bool active = false;
};

std::map<std::string, Setting> example_settings() {
  std::map<std::string, Setting> out;
  const std::regex assignment(R"(^(#?)([A-Za-z_][A-Za-z0-9_]*)=(.*)$)");
  for (const auto& line : lines_of(read_text(source_dir() / "deploy" / "vstore.env.example"))) {
    std::smatch m;
    if (std::regex_match(line, m, assignment)) out[m[2]] = Setting{m[3], m[1].length() == 0};
  }
  return out;
}

// The values of key `key` in a unit file, in order.
std::vector<std::string> unit_values(const fs::path& unit, const std::string& key) {
  std::vector<std::string> out;
  for (const auto& line : lines_of(read_text(unit))) {
    if (line.starts_with(key + "=")) out.push_back(line.substr(key.size() + 1));
  }
  return out;
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  std::string w;
  while (in >> w) out.push_back(w);
  return out;
}

// A unit's command line as a shell command on the real binary and `env_file`, in a clean
// environment (as systemd starts a service: no variables of the caller's).
std::string runnable(const std::string& exec, const fs::path& home, const fs::path& env_file) {
  std::vector<std::string> argv = words(exec);
  std::string out = fmt::format("env -i PATH=/usr/bin:/bin HOME='{}'", home.string());
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string arg = argv[i];
    if (i == 0 && arg == k_installed_bin) arg = vstore_bin();
    if (arg == k_installed_env) arg = env_file.string();
    out += " '" + arg + "'";
  }
  return out;
}

// The example with the test's values for some variables (and the others as the example has them).
fs::path write_env(const fs::path& dir, const std::map<std::string, std::string>& replace, bool uncomment_all) {
  std::string text;
  const std::regex assignment(R"(^(#?)([A-Za-z_][A-Za-z0-9_]*)=(.*)$)");
  for (const auto& line : lines_of(read_text(source_dir() / "deploy" / "vstore.env.example"))) {
    std::smatch m;
    if (std::regex_match(line, m, assignment)) {
      const std::string name = m[2];
      const bool active = m[1].length() == 0 || uncomment_all;
      if (auto it = replace.find(name); it != replace.end()) {
        text += fmt::format("{}={}\n", name, it->second);
      } else if (active) {
        text += fmt::format("{}={}\n", name, std::string(m[3]));
      }
    } else {
      text += line + "\n";
    }
  }
  const fs::path path = dir / (uncomment_all ? "all.env" : "vstore.env");
  std::ofstream(path) << text;
  return path;
}

TEST(Issue25Deploy, TheExampleSettingsAreExactlyTheVariablesVstoreReads) {
  ASSERT_FALSE(source_dir().empty()) << "VSTORE_SOURCE_DIR is set by CTest";
  const vstore::testing::TempDir tmp;
  const CmdResult shown = vstore::testing::run_vstore(tmp.path.string(), "config show --json");
  ASSERT_EQ(shown.code, 0) << shown.err;
  const json shown_json = json::parse(shown.out);
  std::set<std::string> known;
  for (const auto& [name, value] : shown_json["settings"].items()) known.insert(name);
  ASSERT_TRUE(known.contains("VSTORE_API_TOKEN"));

  const auto example = example_settings();
  ASSERT_GE(example.size(), 20U);
  for (const auto& [name, setting] : example) EXPECT_TRUE(known.contains(name)) << name << " is not a variable vstore reads";
  // And none is missing but the one the migration commands alone read.
  for (const auto& name : known) {
    if (name != "CHROMA_DB_DIR") {
      EXPECT_TRUE(example.contains(name)) << name << " is missing from the example";
    }
  }
  for (const char* secret : {"VSTORE_API_TOKEN", "CHROMA_TOKEN", "OPENAI_API_KEY", "DATABASE_URL"}) {
    ASSERT_TRUE(example.contains(secret));
    EXPECT_FALSE(example.at(secret).active) << secret << " must be left for the operator to set";
  }

  // Every value, the commented-out ones too, is one vstore accepts, read from the file.
  const fs::path all = write_env(tmp.path, {{"VSTORE_DATA_DIR", (tmp.path / "data").string()},
                                            {"VSTORE_MODEL_DIR", tmp.path.string()}},
                                 true);
  const CmdResult loaded = run_shell(tmp.path.string(), fmt::format("env -i PATH=/usr/bin:/bin HOME='{}' '{}' --env-file '{}' "
                                                                    "config show --json",
                                                                    tmp.path.string(), vstore_bin(), all.string()));
  ASSERT_EQ(loaded.code, 0) << loaded.err;
  const json settings = json::parse(loaded.out)["settings"];
  for (const auto& [name, setting] : example) {
    if (!settings.contains(name)) {
      ADD_FAILURE() << name << " is not in config show's settings";
      continue;
    }
    EXPECT_EQ(settings[name]["source"], all.string()) << name;
  }
  EXPECT_EQ(settings["VSTORE_API_TOKEN"]["value"], "(set, not shown)");
}

TEST(Issue25Deploy, TheUnitsPassSystemdAnalyzeAndAgreeWithTheExample) {
  ASSERT_FALSE(source_dir().empty()) << "VSTORE_SOURCE_DIR is set by CTest";
  const vstore::testing::TempDir tmp;
  const fs::path deploy = source_dir() / "deploy";
  for (const char* unit : {"vstore.service", "vstore-hardened.service", "vstore-db.service"}) {
    std::string text = read_text(deploy / unit);
    ASSERT_FALSE(text.empty()) << unit;
    // systemd-analyze checks that the programs exist: the real binary stands in for the
    // installed one.
    for (std::size_t at = text.find(k_installed_bin); at != std::string::npos; at = text.find(k_installed_bin, at)) {
      text.replace(at, k_installed_bin.size(), vstore_bin());
      at += vstore_bin().size();
    }
    std::ofstream(tmp.path / unit) << text;
  }
  const CmdResult verified = run_shell(tmp.path.string(), "systemd-analyze verify vstore.service vstore-hardened.service "
                                                          "vstore-db.service");
  EXPECT_EQ(verified.code, 0) << verified.out << verified.err;
  EXPECT_EQ(verified.err, "") << "systemd-analyze verify warned";

  const CmdResult security = run_shell(tmp.path.string(), "systemd-analyze security --offline=true vstore-hardened.service");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(security.out, m, std::regex(R"(exposure level for vstore-hardened\.service: ([0-9.]+))")))
      << security.out << security.err;
  EXPECT_LE(std::stod(m[1]), 2.0) << security.out;

  const auto example = example_settings();
  const std::string data_dir = example.at("VSTORE_DATA_DIR").value;
  EXPECT_EQ(unit_values(deploy / "vstore-hardened.service", "ReadWritePaths"), std::vector<std::string>{data_dir});
  EXPECT_EQ(unit_values(deploy / "vstore-db.service", "ReadWritePaths"), std::vector<std::string>{data_dir});
  EXPECT_EQ(unit_values(deploy / "vstore-db.service", "PIDFile"), std::vector<std::string>{data_dir + "/pg/data/postmaster.pid"});
  for (const char* unit : {"vstore.service", "vstore-hardened.service", "vstore-db.service"}) {
    EXPECT_EQ(unit_values(deploy / unit, "WorkingDirectory"), std::vector<std::string>{data_dir}) << unit;
    EXPECT_EQ(unit_values(deploy / unit, "User"), std::vector<std::string>{"vstore"}) << unit;
  }
}

TEST(Issue25Deploy, TheUnitsCommandLinesRunTheServiceOnTheEmbeddedCluster) {
  ASSERT_FALSE(source_dir().empty()) << "VSTORE_SOURCE_DIR is set by CTest";
  const char* model_dir = std::getenv("VSTORE_TEST_MODEL_DIR");
  ASSERT_NE(model_dir, nullptr) << "VSTORE_TEST_MODEL_DIR is set by CTest";
  const vstore::testing::TempDir tmp;
  chmod(tmp.path.c_str(), 0755);  // the embedded cluster runs as postgres when the tests run as root
  const fs::path deploy = source_dir() / "deploy";
  const fs::path data = tmp.path / "data";
  const fs::path env_file = write_env(tmp.path, {{"VSTORE_DATA_DIR", data.string()},
                                                 {"VSTORE_HTTP_ADDR", fmt::format("127.0.0.1:{}", free_loopback_port())},
                                                 {"VSTORE_MODEL_DIR", model_dir}},
                                      false);
  const std::string example_data = example_settings().at("VSTORE_DATA_DIR").value;

  // vstore-db.service: ExecStart starts the cluster, whose PID file is where PIDFile= says.
  const auto db_start = unit_values(deploy / "vstore-db.service", "ExecStart");
  ASSERT_EQ(db_start.size(), 1U);
  ASSERT_TRUE(db_start[0].starts_with(k_installed_bin)) << db_start[0];
  const CmdResult started = run_shell(tmp.path.string(), runnable(db_start[0], tmp.path, env_file));
  ASSERT_EQ(started.code, 0) << started.out << started.err;
  std::string pid_file = unit_values(deploy / "vstore-db.service", "PIDFile").at(0);
  pid_file.replace(0, example_data.size(), data.string());
  const std::string postmaster = lines_of(read_text(pid_file)).at(0);
  EXPECT_EQ(::kill(std::stoi(postmaster), 0), 0) << "no process " << postmaster << " from " << pid_file;

  // As docs/operations.md prepares the table.
  const CmdResult schema = run_shell(tmp.path.string(), runnable(fmt::format("{} --env-file {} schema up", k_installed_bin,
                                                                             k_installed_env),
                                                                 tmp.path, env_file));
  ASSERT_EQ(schema.code, 0) << schema.out << schema.err;

  for (const char* unit : {"vstore.service", "vstore-hardened.service"}) {
    SCOPED_TRACE(unit);
    const auto exec = unit_values(deploy / unit, "ExecStart");
    ASSERT_EQ(exec.size(), 1U);
    ASSERT_TRUE(exec[0].starts_with(k_installed_bin)) << exec[0];
    const fs::path out = tmp.path / fmt::format("{}.out", unit);
    const fs::path log = tmp.path / fmt::format("{}.log", unit);
    const CmdResult spawned = run_shell(tmp.path.string(), fmt::format("{} >'{}' 2>'{}' & echo $!",
                                                                       runnable(exec[0], tmp.path, env_file), out.string(),
                                                                       log.string()));
    const int pid = std::atoi(spawned.out.c_str());
    ASSERT_GT(pid, 0);
    int port = 0;
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+) \(backend pgvector, no token\))");
    for (int tries = 0; tries < 600 && port == 0; ++tries) {
      std::smatch m;
      const std::string text = read_text(out);
      if (std::regex_search(text, m, listening)) port = std::stoi(m[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GT(port, 0) << read_text(out) << read_text(log);
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(30, 0);
    auto health = client.Get("/health");
    ASSERT_TRUE(health) << "no answer from /health";
    EXPECT_EQ(health->status, 200) << health->body;
    const json h = json::parse(health->body, nullptr, false);
    EXPECT_EQ(h["healthy"], true) << health->body;
    EXPECT_EQ(h["backend"], "pgvector") << health->body;
    ASSERT_EQ(::kill(pid, SIGTERM), 0);
    bool stopped = false;
    for (int tries = 0; tries < 600 && !stopped; ++tries) {
      stopped = read_text(out).contains("serve: stopped");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_TRUE(stopped) << read_text(out) << read_text(log);
    EXPECT_TRUE(read_text(log).contains("SIGTERM received")) << read_text(log);
  }

  // vstore-db.service: ExecStop stops the cluster.
  const auto db_stop = unit_values(deploy / "vstore-db.service", "ExecStop");
  ASSERT_EQ(db_stop.size(), 1U);
  const CmdResult stopped = run_shell(tmp.path.string(), runnable(db_stop[0], tmp.path, env_file));
  EXPECT_EQ(stopped.code, 0) << stopped.out << stopped.err;
  EXPECT_FALSE(fs::exists(pid_file)) << pid_file;
}

}  // namespace
