// SPDX-License-Identifier: Apache-2.0
// vstore: the command line. The one place where exceptions (from CLI11 and the standard
// library) are turned into exit codes.
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "embed/embed_bert.hpp"
#include "vstore/embedded_pg.hpp"

namespace vstore::cli {

Result<Config> load(const Globals& globals) {
  VS_TRY_ASSIGN(Environment env,
                read_environment(globals.env_file, globals.env_file_given ? EnvFile::required : EnvFile::optional));
  return load_config(env);
}

Result<std::filesystem::path> source_tree() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return fail(ErrorCode::not_found, fmt::format("cannot read /proc/self/exe: {}", ec.message()));
  for (std::filesystem::path dir = exe.parent_path(); !dir.empty(); dir = dir.parent_path()) {
    if (std::filesystem::is_regular_file(dir / "scripts" / "bench_embed_peer.py", ec)) return dir;
    if (dir == dir.parent_path()) break;
  }
  return fail(ErrorCode::not_found,
              fmt::format("no scripts/bench_embed_peer.py in any directory above {}: the benchmarks run from vstore's "
                          "source tree",
                          exe.string()));
}

namespace {
bool g_json_errors = false;  // --json was given: errors also go to stdout as JSON
}  // namespace

void set_json_errors(bool on) { g_json_errors = on; }

void print_error(std::string_view code, const std::string& message) {
  std::fprintf(stderr, "vstore: %s\n", message.c_str());
  if (g_json_errors) print_json({{"error", {{"code", code}, {"message", message}}}});
}

int report(const Error& error) {
  print_error(to_string(error.code()), error.message());
  return k_exit_failure;
}

int report_usage(const Error& error) {
  print_error(to_string(error.code()), error.message());
  return k_exit_usage;
}

namespace {

// Edit distance of two command names, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The first word that is not an option (or an option's value) names the command. When it names
// none of `app`'s, says so with the nearest name and returns false.
bool known_command(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--env-file") {
      ++i;  // its value
      continue;
    }
    if (arg.starts_with("-")) continue;
    std::vector<std::string> names;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), arg) != names.end()) return true;
    std::string nearest;
    std::size_t best = std::string::npos;
    for (const auto& name : names) {
      const std::size_t d = edit_distance(arg, name);
      if (d < best) {
        best = d;
        nearest = name;
      }
    }
    std::string message = fmt::format("unknown command \"{}\"", arg);
    if (best <= std::max<std::size_t>(2, arg.size() / 2)) message += fmt::format("; did you mean \"{}\"?", nearest);
    print_error("usage", message + " (vstore help lists the commands)");
    return false;
  }
  return true;
}

// `vstore help [COMMAND [SUBCOMMAND]]`: the help of the app or of the command named.
int print_help(const CLI::App& app, const std::vector<std::string>& words) {
  const CLI::App* target = &app;
  for (const auto& word : words) {
    const CLI::App* next = nullptr;
    for (const CLI::App* sub : target->get_subcommands([](const CLI::App*) { return true; })) {
      if (sub->get_name() == word) next = sub;
    }
    if (next == nullptr) {
      print_error("usage", fmt::format("help: no command \"{}\"{}{} (vstore help lists the commands)", word,
                                        target == &app ? "" : " under ", target == &app ? "" : target->get_name()));
      return k_exit_usage;
    }
    target = next;
  }
  // Not App::help(): after parsing it describes the chosen subcommand (here `help` itself).
  const std::string name = target == &app ? std::string("vstore") : target->get_name();
  std::printf("%s", target->get_formatter()->make_help(target, name, CLI::AppFormatMode::Normal).c_str());
  return k_exit_ok;
}

}  // namespace

void print_json(const nlohmann::json& value) { std::printf("%s\n", value.dump(2).c_str()); }

namespace {
bool g_quiet = false;

// Before a second has passed a rate is a count divided by almost nothing (a phase of 200 rows
// done in 150 us would read 1333333/s).
constexpr double k_rate_after_s = 1.0;

std::string rate_text(double per_second) {
  return per_second < 10 ? fmt::format("{:.1f}", per_second) : fmt::format("{:.0f}", per_second);
}

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(std::llround(seconds));
  if (s < 60) return fmt::format("{} s", s);
  if (s < 3600) return fmt::format("{} min {:02} s", s / 60, s % 60);
  return fmt::format("{} h {:02} min", s / 3600, s % 3600 / 60);
}
}  // namespace

void set_quiet(bool on) { g_quiet = on; }
bool quiet() { return g_quiet; }

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double elapsed_s(std::chrono::steady_clock::time_point start) {
  return std::round(seconds_since(start) * 1000.0) / 1000.0;
}

void print_done(std::string_view command, std::string_view what, std::chrono::steady_clock::time_point start) {
  std::printf("%.*s: %.*s in %.1f s\n", static_cast<int>(command.size()), command.data(), static_cast<int>(what.size()),
              what.data(), seconds_since(start));
}

int terminal_width(int fd) {
  if (isatty(fd) != 0) {
    winsize ws{};
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  }
  if (const char* columns = std::getenv("COLUMNS"); columns != nullptr) {
    char* end = nullptr;
    const long n = std::strtol(columns, &end, 10);
    if (end != columns && *end == '\0' && n > 0 && n < 100000) return static_cast<int>(n);
  }
  return 0;
}

Progress::Progress(std::string label, std::int64_t total, Unit unit)
    : m_label(std::move(label)),
      m_total(total),
      m_unit(unit),
      m_shown(!g_quiet && isatty(STDERR_FILENO) != 0),
      m_start(std::chrono::steady_clock::now()),
      m_last(m_start) {}

Progress::~Progress() {
  if (m_drawn && !m_finished) std::fputc('\n', stderr);  // the next message starts on a line of its own
}

std::string Progress::line(std::int64_t done, double seconds, bool finished) const {
  const double pct = m_total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(m_total) : 100.0;
  std::string out = m_unit == Unit::items ? fmt::format("{}: {}/{} ({:.0f}%)", m_label, done, m_total, pct)
                                          : fmt::format("{}: {:.0f}%", m_label, pct);
  const bool timed = seconds >= k_rate_after_s && done > 0;
  const double rate = timed ? static_cast<double>(done) / seconds : 0.0;
  if (finished) {
    out += fmt::format(" in {:.1f} s", seconds);
    if (timed && m_unit == Unit::items) out += fmt::format(", {}/s", rate_text(rate));
    return out;
  }
  if (!timed) return out;
  if (m_unit == Unit::items) out += fmt::format(" {}/s", rate_text(rate));
  if (done < m_total) out += fmt::format(", ETA {}", duration_text(static_cast<double>(m_total - done) / rate));
  return out;
}

void Progress::draw(bool finished) {
  std::string text = line(m_done, seconds_since(m_start), finished);
  // A line as wide as the terminal wraps, and `\r` then redraws only its last part.
  const int width = terminal_width(STDERR_FILENO);
  if (width > 1 && text.size() >= static_cast<std::size_t>(width)) {
    std::size_t cut = static_cast<std::size_t>(width - 1);
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 sequence
    text.resize(cut);
  }
  std::fprintf(stderr, "\r%s\033[K%s", text.c_str(), finished ? "\n" : "");
  std::fflush(stderr);
  m_drawn = !finished;
}

void Progress::update(std::int64_t done) {
  m_done = done;
  if (!m_shown || m_finished || done == m_printed) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - m_last < std::chrono::milliseconds(200) && done < m_total) return;
  m_last = now;
  m_printed = done;
  draw(false);
}

void Progress::finish() {
  if (!m_shown || m_finished) return;
  m_finished = true;
  draw(true);
}

}  // namespace vstore::cli

int main(int argc, char** argv) {
  using namespace vstore::cli;
  // Before any other thread: OpenBLAS to one thread, and the workers Debian's pthread OpenBLAS
  // started when it was loaded stopped (they would spin for a while, and the engine runs BLAS
  // on one thread per caller). No environment variable is set, so PostgreSQL, Chroma and
  // Python started by vstore are unaffected.
  vstore::embed::limit_blas_threads();
  CLI::App app{"vstore: an article vector store on PostgreSQL + pgvector, with the tools to move off ChromaDB.\n"
               "Configuration comes from the environment and .env (`vstore config show` prints it; every\n"
               "variable is in docs/configuration.md, every command's output in docs/cli.md)."};
  app.set_version_flag("-V,--version", VSTORE_VERSION);
  app.require_subcommand(1);
  // Options of the app (--env-file) are also taken after a subcommand: `vstore health --env-file x`.
  app.fallthrough();
  Globals globals;
  CLI::Option* env_file =
      app.add_option("--env-file", globals.env_file, "file of NAME=value settings read before the environment "
                                                     "(when given, it must exist)")
          ->capture_default_str();
  bool quiet_flag = false;
  app.add_flag("-q,--quiet", quiet_flag, "no progress lines (they go to stderr only when it is a terminal)");
  Action action;
  static std::vector<std::string> help_words;
  try {
    add_db_commands(app, globals, action);
    add_data_commands(app, globals, action);
    add_bench_commands(app, globals, action);
    add_migrate_commands(app, globals, action);
    add_info_commands(app, globals, action);
    add_sync_commands(app, globals, action);
    add_cleanup_commands(app, globals, action);
    add_reindex_commands(app, globals, action);
    add_validate_commands(app, globals, action);
    add_serve_commands(app, globals, action);
    add_project_commands(app, globals, action);
    add_completion_commands(app, action);
    auto* help = app.add_subcommand("help", "the help of vstore, or of COMMAND (vstore help db start)");
    help->add_option("COMMAND", help_words, "a command and its subcommand");
    help->callback([&] { action = [&] { return print_help(app, help_words); }; });
    set_json_errors(std::any_of(argv + 1, argv + argc, [](const char* a) { return std::string_view(a) == "--json"; }));
    if (!known_command(app, argc, argv)) return k_exit_usage;
    app.parse(argc, argv);
    globals.env_file_given = env_file->count() > 0;
    set_quiet(quiet_flag);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    if (code != 0 && g_json_errors) print_json({{"error", {{"code", "usage"}, {"message", e.what()}}}});
    return code == 0 ? k_exit_ok : k_exit_usage;
  }
  try {
    return action ? action() : k_exit_usage;
  } catch (const std::exception& e) {
    print_error("internal", fmt::format("internal error: {}", e.what()));
    return k_exit_failure;
  }
}
