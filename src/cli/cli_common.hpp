// SPDX-License-Identifier: Apache-2.0
// Shared pieces of the vstore command line: configuration loading, output helpers, progress.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <functional>
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

/// --quiet: no progress lines (main() sets it from the command line).
void set_quiet(bool on);
[[nodiscard]] bool quiet();

/// Seconds since `start`, for the elapsed time of a command's summary.
[[nodiscard]] double seconds_since(std::chrono::steady_clock::time_point start);

/// seconds_since() to the millisecond: the `elapsed_s` of a long command's JSON.
[[nodiscard]] double elapsed_s(std::chrono::steady_clock::time_point start);

/// The last line of a long command's text output, on stdout: `COMMAND: WHAT in 1.2 s`.
void print_done(std::string_view command, std::string_view what, std::chrono::steady_clock::time_point start);

/// The columns of the terminal `fd` is, else $COLUMNS (when a positive number), else 0: no
/// limit, so that a pipe or a file gets whole lines.
[[nodiscard]] int terminal_width(int fd);

/// A progress line on stderr, redrawn in place, only when stderr is a terminal and --quiet is
/// off (a log or a pipe gets none: the command's summary says what was done). The rate and the
/// ETA appear once a second has passed: before that they are noise. Not thread-safe; finish()
/// (or the destructor) ends the line.
class Progress {
 public:
  /// What `total` counts: items (shown as done/total with a rate), or the parts of a whole
  /// whose unit means nothing to the reader (only the percentage is shown).
  enum class Unit { items, fraction };
  Progress(std::string label, std::int64_t total, Unit unit = Unit::items);
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();
  void update(std::int64_t done);
  /// Draws the last count with the elapsed time and ends the line; later calls do nothing.
  void finish();

  /// The line as drawn after `seconds` with `done` of the total (for tests and the drawing).
  [[nodiscard]] std::string line(std::int64_t done, double seconds, bool finished) const;

 private:
  void draw(bool finished);

  std::string m_label;
  std::int64_t m_total;
  Unit m_unit;
  std::int64_t m_done = 0;
  std::int64_t m_printed = -1;  // the count on the line drawn last
  bool m_shown;                 // a terminal, not --quiet
  bool m_drawn = false;         // a line is on screen and not yet ended
  bool m_finished = false;
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
void add_cleanup_commands(CLI::App& app, const Globals& globals, Action& action);
void add_reindex_commands(CLI::App& app, const Globals& globals, Action& action);
void add_validate_commands(CLI::App& app, const Globals& globals, Action& action);
void add_serve_commands(CLI::App& app, const Globals& globals, Action& action);
void add_project_commands(CLI::App& app, const Globals& globals, Action& action);
/// `vstore completion bash|zsh` and `vstore man`: made from `app` as it stands when they run,
/// so they list every command registered before them.
void add_completion_commands(CLI::App& app, Action& action);

}  // namespace vstore::cli
