// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the vstore command line: configuration loading, output helpers, progress.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/result.hpp"

namespace vstore::cli {

/// Options every command shares.
struct Globals {
  std::string env_file = ".env";
  bool env_file_given = false;  ///< --env-file was on the command line: the file must exist
};

/// Exit codes: 0 success, 1 failure (one-line reason on stderr), 2 usage error.
constexpr int k_exit_ok = 0;
constexpr int k_exit_failure = 1;
constexpr int k_exit_usage = 2;

/// Loads the configuration from the environment and the .env file.
[[nodiscard]] Result<Config> load(const Globals& globals);

/// The vstore source tree, found at run time (nothing is compiled in): the nearest directory
/// above the running executable that holds scripts/bench_embed_peer.py, the benchmarks' helper
/// scripts. Errors: not_found, naming the executable.
[[nodiscard]] Result<std::filesystem::path> source_tree();

/// Whether errors are also printed as JSON on stdout (`{"error": {"code", "message"}}`): main()
/// turns it on when `--json` is on the command line.
void set_json_errors(bool on);

/// Prints `vstore: <message>` to stderr and, with --json, the JSON error on stdout.
void print_error(std::string_view code, const std::string& message);

/// print_error() with the error's code; returns k_exit_failure.
int report(const Error& error);

/// The same for a usage error (a malformed option value found after parsing, e.g. `--where`):
/// returns k_exit_usage.
int report_usage(const Error& error);

/// Prints JSON to stdout.
void print_json(const nlohmann::json& value);

/// A progress line on stderr with rate and ETA (redrawn on a terminal, a line every few
/// seconds otherwise).
class Progress {
 public:
  Progress(std::string label, std::int64_t total);
  void update(std::int64_t done);
  void finish();

 private:
  std::string m_label;
  std::int64_t m_total;
  std::int64_t m_done = 0;
  std::int64_t m_printed = -1;  // the count on the last line printed (the whole is printed once)
  bool m_tty;
  std::chrono::steady_clock::time_point m_start;
  std::chrono::steady_clock::time_point m_last;
};

/// Registers the subcommands of each group; each sets `action` to run when chosen.
using Action = std::function<int()>;
void add_db_commands(CLI::App& app, const Globals& globals, Action& action);
void add_data_commands(CLI::App& app, const Globals& globals, Action& action);
void add_bench_commands(CLI::App& app, const Globals& globals, Action& action);
void add_migrate_commands(CLI::App& app, const Globals& globals, Action& action);
void add_info_commands(CLI::App& app, const Globals& globals, Action& action);
void add_sync_commands(CLI::App& app, const Globals& globals, Action& action);

}  // namespace vstore::cli
