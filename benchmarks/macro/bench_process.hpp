// SPDX-License-Identifier: Apache-2.0
// Internal to the benchmarks: child processes (posix_spawn, no shell), `vstore serve` as a
// child on a free loopback port, and wrk POSTing /v1/search bodies at it, shared by `bench
// serve` and `bench soak`; and the latency figures of their reports.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/result.hpp"

namespace vstore::bench_support {

/// Environment variables set for a child, replacing (or adding to) the caller's.
using EnvOverrides = std::vector<std::pair<std::string, std::string>>;

/// A child started with posix_spawn: standard input from /dev/null, standard output and error
/// to files, the caller's environment with the overrides. The destructor kills (SIGKILL) and
/// reaps a child still running.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  /// Starts argv (argv[0] searched in PATH when it holds no '/'). Errors: unavailable.
  [[nodiscard]] Result<void> start(const std::vector<std::string>& argv, const EnvOverrides& overrides,
                                   const std::filesystem::path& out, const std::filesystem::path& err);

  /// How a child ended: its wait status and the CPU seconds (user + system) it used.
  struct Exit {
    int status = 0;
    double cpu_s = 0;
  };
  /// Waits up to `limit` for the child to end; nullopt while it still runs.
  [[nodiscard]] std::optional<Exit> wait_for(std::chrono::milliseconds limit);
  void signal(int sig) const;
  [[nodiscard]] bool running() const;
  [[nodiscard]] pid_t pid() const { return m_pid; }

 private:
  pid_t m_pid = -1;
};

/// The bytes of a file ("" when it cannot be read).
std::string read_file(const std::filesystem::path& path);
/// The last `lines` lines of `text`, for an error message.
std::string tail_lines(const std::string& text, int lines);
/// A wait status in words: "exit status N" or "killed by signal N (NAME)".
std::string describe_exit(int status);
/// A random token of 32 hex digits.
std::string random_token();

/// {requests, requests_per_s, p50_ms, p90_ms, p99_ms, max_ms, mean_ms} of latencies measured
/// over `elapsed_s`.
nlohmann::json latency_figures(std::vector<double> latencies_ms, double elapsed_s);

/// The environment of a benchmark's `vstore serve`: every setting that shapes its calls (the
/// database `conninfo`, table, index, pool, embedder and `model_dir`), and its bearer `token`,
/// so that neither a `.env` nor the caller's variables send it elsewhere.
EnvOverrides serve_environment(const std::string& conninfo, const Config& cfg, const std::filesystem::path& model_dir,
                               const std::string& token);

/// `vstore serve --addr 127.0.0.1:0` as a child with an empty --env-file, its stdout and stderr
/// (the JSON access log) in files of `dir`, until stop().
class Service {
 public:
  explicit Service(const std::filesystem::path& dir);
  /// Starts `vstore` serve with --threads `threads` and the further `args`, and waits (up to
  /// 120 s) for its port. Errors: unavailable (it ended or did not listen; its log's tail).
  [[nodiscard]] Result<void> start(const std::filesystem::path& vstore, int threads,
                                   const std::vector<std::string>& args, const EnvOverrides& env);
  /// SIGTERM, then up to 30 s for the requests in flight; SIGKILL after that. Returns
  /// {status (the exit, as words), clean (exit status 0 after SIGTERM)}.
  nlohmann::json stop();
  [[nodiscard]] int port() const { return m_port; }
  [[nodiscard]] pid_t pid() const { return m_child.pid(); }
  [[nodiscard]] std::uintmax_t log_size() const;
  /// The access log's lines for `path` between two offsets: {requests, by_status}.
  [[nodiscard]] nlohmann::json answered(std::uintmax_t from, std::uintmax_t to,
                                        const std::string& path = "/v1/search") const;

 private:
  Child m_child;
  std::filesystem::path m_out;
  std::filesystem::path m_log;
  std::filesystem::path m_env_file;
  int m_port = 0;
};

/// How wrk runs.
struct WrkOptions {
  std::string program = "wrk";  ///< searched in PATH without a '/'
  int threads = 2;
  int connections = 32;
  int timeout_s = 10;           ///< slower answers count as timeouts (errors)
};

/// One wrk run: the figures its script printed and its CPU seconds.
struct WrkRun {
  /// {requests, duration_us, bytes, connect, read, write, timeout, non_2xx, p50_us, p90_us,
  /// p99_us, max_us, mean_us}
  nlohmann::json figures;
  double cpu_s = 0;
};

/// wrk for `seconds` against 127.0.0.1:`port`: every request a POST /v1/search whose body is
/// the next line of `bodies` (each wrk thread rotating from its own offset) with the bearer
/// `token`; its script and output go to `dir`. Errors: internal (wrk failed, did not end, or
/// printed no figures), unavailable (it could not start).
Result<WrkRun> run_wrk(const WrkOptions& options, const std::filesystem::path& dir, int port,
                       const std::filesystem::path& bodies, const std::string& token, int seconds);

}  // namespace vstore::bench_support
