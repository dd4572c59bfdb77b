// SPDX-License-Identifier: Apache-2.0
// vstore: the command line. The one place where exceptions (from CLI11 and the standard
// library) are turned into exit codes.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <exception>
#include <string>

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

int report(const Error& error) {
  std::fprintf(stderr, "vstore: %s\n", error.message().c_str());
  return k_exit_failure;
}

void print_json(const nlohmann::json& value) { std::printf("%s\n", value.dump(2).c_str()); }

Progress::Progress(std::string label, std::int64_t total)
    : m_label(std::move(label)),
      m_total(total),
      m_tty(isatty(STDERR_FILENO) != 0),
      m_start(std::chrono::steady_clock::now()),
      m_last(m_start) {}

void Progress::update(std::int64_t done) {
  m_done = done;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = m_tty ? std::chrono::milliseconds(200) : std::chrono::milliseconds(3000);
  if (now - m_last < interval && done < m_total) return;
  if (done >= m_total && done == m_printed) return;  // the whole, already on screen
  m_last = now;
  m_printed = done;
  const double secs = std::chrono::duration<double>(now - m_start).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  const double eta = rate > 0 ? static_cast<double>(m_total - done) / rate : 0.0;
  const double pct = m_total > 0 ? 100.0 * static_cast<double>(done) / static_cast<double>(m_total) : 100.0;
  std::fprintf(stderr, "%s%s: %lld/%lld (%.0f%%) %.0f/s ETA %.0fs%s", m_tty ? "\r" : "", m_label.c_str(),
               static_cast<long long>(done), static_cast<long long>(m_total), pct, rate, eta, m_tty ? "   " : "\n");
  std::fflush(stderr);
}

void Progress::finish() {
  m_last = {};
  update(m_done);
  if (m_tty) std::fputc('\n', stderr);
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
               "Configuration comes from the environment and .env (see docs/product.md)."};
  app.set_version_flag("--version", VSTORE_VERSION);
  app.require_subcommand(1);
  Globals globals;
  CLI::Option* env_file =
      app.add_option("--env-file", globals.env_file, "file of NAME=value settings read before the environment "
                                                     "(when given, it must exist)")
          ->capture_default_str();
  Action action;
  try {
    add_db_commands(app, globals, action);
    add_data_commands(app, globals, action);
    add_bench_commands(app, globals, action);
    add_migrate_commands(app, globals, action);
    app.parse(argc, argv);
    globals.env_file_given = env_file->count() > 0;
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? k_exit_ok : k_exit_usage;
  }
  try {
    return action ? action() : k_exit_usage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vstore: internal error: %s\n", e.what());
    return k_exit_failure;
  }
}
