// SPDX-License-Identifier: Apache-2.0
// Internal to the benchmarks: child processes, `vstore serve` as a child, wrk (bench_process.hpp).
#include "macro/bench_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "macro/bench_support.hpp"

extern char** environ;

namespace vstore::bench_support {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The wrk script: every request a POST /v1/search whose body is the next line of the bodies
// file (args[1]), with the bearer token (args[2]); each thread starts at its own offset.
// done() prints the figures as one JSON line after the marker "VSTORE_WRK ".
constexpr std::string_view k_wrk_script = R"lua(-- vstore bench serve: POST /v1/search with the bodies of a file, rotated
local threads = 0
function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end
function init(args)
  local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[2]}
  formatted = {}
  for line in io.lines(args[1]) do
    formatted[#formatted + 1] = wrk.format("POST", "/v1/search", headers, line)
  end
  position = (thread_number * 7919) % #formatted
end
function request()
  position = position % #formatted + 1
  return formatted[position]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('VSTORE_WRK {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, ' ..
    '"connect": %.0f, "read": %.0f, "write": %.0f, "timeout": %.0f, "non_2xx": %.0f, ' ..
    '"p50_us": %.0f, "p90_us": %.0f, "p99_us": %.0f, "max_us": %.0f, "mean_us": %.3f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
)lua";

}  // namespace

Child::~Child() {
  if (m_pid > 0) {
    ::kill(m_pid, SIGKILL);
    (void)wait_for(std::chrono::seconds(10));
  }
}

Result<void> Child::start(const std::vector<std::string>& argv, const EnvOverrides& overrides, const fs::path& out,
                        const fs::path& err) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::string_view name = entry.substr(0, entry.find('='));
    if (std::none_of(overrides.begin(), overrides.end(), [&](const auto& o) { return o.first == name; })) {
      env.emplace_back(entry);
    }
  }
  for (const auto& [name, value] : overrides) env.push_back(name + "=" + value);
  std::vector<std::string> args = argv;
  std::vector<char*> c_args;
  for (auto& a : args) c_args.push_back(a.data());
  c_args.push_back(nullptr);
  std::vector<char*> c_env;
  for (auto& e : env) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  if (posix_spawn_file_actions_init(&actions) != 0) {
    return fail(ErrorCode::unavailable, fmt::format("cannot start {}: out of memory", argv.front()));
  }
  int rc = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (rc == 0) rc = posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (rc == 0) rc = posix_spawnp(&pid, c_args.front(), &actions, nullptr, c_args.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return fail(ErrorCode::unavailable, fmt::format("cannot start {}: {}", argv.front(), std::strerror(rc)));
  m_pid = pid;
  return {};
}

std::optional<Child::Exit> Child::wait_for(std::chrono::milliseconds limit) {
  if (m_pid <= 0) return std::nullopt;
  const auto deadline = Clock::now() + limit;
  while (true) {
    int status = 0;
    rusage usage{};
    const pid_t done = ::wait4(m_pid, &status, WNOHANG, &usage);
    if (done == m_pid || (done < 0 && errno != EINTR)) {
      m_pid = -1;
      const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
      return Exit{status, seconds(usage.ru_utime) + seconds(usage.ru_stime)};
    }
    if (Clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void Child::signal(int sig) const {
  if (m_pid > 0) ::kill(m_pid, sig);
}

bool Child::running() const { return m_pid > 0 && ::kill(m_pid, 0) == 0; }

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The last `lines` lines of `text`, for an error message.
std::string tail_lines(const std::string& text, int lines) {
  std::size_t pos = text.size();
  for (int i = 0; i <= lines && pos != std::string::npos && pos > 0; ++i) pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
}

std::string describe_exit(int status) {
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  return fmt::format("exit status {}", WEXITSTATUS(status));
}

std::string random_token() {
  std::random_device device;
  std::string token;
  for (int i = 0; i < 4; ++i) token += fmt::format("{:08x}", device());
  return token;
}

json latency_figures(std::vector<double> latencies_ms, double elapsed_s) {
  std::sort(latencies_ms.begin(), latencies_ms.end());
  double sum = 0;
  for (const double v : latencies_ms) sum += v;
  const double n = static_cast<double>(latencies_ms.size());
  return json{{"requests", latencies_ms.size()},
              {"requests_per_s", round_to(elapsed_s > 0 ? n / elapsed_s : 0.0, 1)},
              {"p50_ms", round_to(percentile(latencies_ms, 0.50), 3)},
              {"p90_ms", round_to(percentile(latencies_ms, 0.90), 3)},
              {"p99_ms", round_to(percentile(latencies_ms, 0.99), 3)},
              {"max_ms", round_to(latencies_ms.empty() ? 0.0 : latencies_ms.back(), 3)},
              {"mean_ms", round_to(latencies_ms.empty() ? 0.0 : sum / n, 3)}};
}

EnvOverrides serve_environment(const std::string& conninfo, const Config& cfg, const fs::path& model_dir,
                               const std::string& token) {
  EnvOverrides env = {
      {"DATABASE_URL", conninfo},
      {"DATABASE_READ_URLS", ""},
      {"VECTOR_BACKEND", "pgvector"},
      {"VSTORE_SHADOW_COMPARE", "0"},
      {"VSTORE_TABLE", cfg.table},
      {"VSTORE_DATA_DIR", cfg.data_dir.string()},
      {"PGVECTOR_INDEX_TYPE", std::string(to_string(cfg.pgvector.index_type))},
      {"PGVECTOR_HNSW_M", std::to_string(cfg.pgvector.hnsw_m)},
      {"PGVECTOR_HNSW_EF_CONSTRUCTION", std::to_string(cfg.pgvector.hnsw_ef_construction)},
      {"PGVECTOR_HNSW_EF_SEARCH", std::to_string(cfg.pgvector.hnsw_ef_search)},
      {"PGVECTOR_IVFFLAT_LISTS", std::to_string(cfg.pgvector.ivfflat_lists)},
      {"PGVECTOR_IVFFLAT_PROBES", std::to_string(cfg.pgvector.ivfflat_probes)},
      {"DB_POOL_SIZE", std::to_string(cfg.pool.size)},
      {"DB_MAX_OVERFLOW", std::to_string(cfg.pool.max_overflow)},
      {"DB_POOL_TIMEOUT", std::to_string(cfg.pool.timeout.count())},
      {"DB_POOL_RECYCLE", std::to_string(cfg.pool.recycle.count())},
      {"VSTORE_STATEMENT_TIMEOUT", fmt::format("{}ms", cfg.pool.statement_timeout.count())},
      {"EMBEDDING_PROVIDER", cfg.embedding_provider},
      {"EMBEDDING_MODEL", cfg.embedding_model},
      {"EMBEDDING_DIM", std::to_string(cfg.embedding_dim)},
      {"VSTORE_EMBED_THREADS", std::to_string(cfg.embed_threads)},
      {"OPENAI_BASE_URL", cfg.openai_base_url},
      {"OPENAI_API_KEY", cfg.openai_api_key},
      {"VSTORE_MODEL_DIR", model_dir.string()},
      {"VSTORE_API_TOKEN", token},
  };
  return env;
}

Service::Service(const fs::path& dir) : m_out(dir / "serve.out"), m_log(dir / "serve.log"), m_env_file(dir / "empty.env") {}

Result<void> Service::start(const fs::path& vstore, int threads, const std::vector<std::string>& args,
                            const EnvOverrides& env) {
  { std::ofstream(m_env_file).flush(); }
  std::vector<std::string> argv = {vstore.string(), "--env-file", m_env_file.string(), "serve", "--addr",
                                   "127.0.0.1:0", "--threads", std::to_string(threads)};
  argv.insert(argv.end(), args.begin(), args.end());
  VS_TRY(m_child.start(argv, env, m_out, m_log));
  const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    std::smatch m;
    const std::string out = read_file(m_out);
    if (std::regex_search(out, m, listening)) {
      m_port = std::stoi(m[1]);
      return {};
    }
    if (auto ended = m_child.wait_for(std::chrono::milliseconds(50))) {
      return fail(ErrorCode::unavailable, fmt::format("vstore serve ended before it listened ({}): {}",
                                                      describe_exit(ended->status), tail_lines(read_file(m_log), 5)));
    }
  }
  return fail(ErrorCode::unavailable, fmt::format("vstore serve did not listen within 120 s: {}", tail_lines(read_file(m_log), 5)));
}

json Service::stop() {
  m_child.signal(SIGTERM);
  auto ended = m_child.wait_for(std::chrono::seconds(30));
  if (!ended) {
    m_child.signal(SIGKILL);
    ended = m_child.wait_for(std::chrono::seconds(10));
    return json{{"status", "did not stop within 30 s of SIGTERM: killed"}, {"clean", false}};
  }
  return json{{"status", describe_exit(ended->status)},
              {"clean", WIFEXITED(ended->status) && WEXITSTATUS(ended->status) == 0}};
}

std::uintmax_t Service::log_size() const {
  std::error_code ec;
  const auto size = fs::file_size(m_log, ec);
  return ec ? 0 : size;
}

json Service::answered(std::uintmax_t from, std::uintmax_t to, const std::string& path) const {
  const std::string text = read_file(m_log);
  const std::size_t begin = std::min<std::size_t>(from, text.size());
  const std::string window = text.substr(begin, to > begin ? to - begin : 0);
  std::map<std::string, std::int64_t> by_status;
  std::int64_t requests = 0;
  std::istringstream lines(window);
  std::string line;
  while (std::getline(lines, line)) {
    const json entry = json::parse(line, nullptr, false);
    if (!entry.is_object() || entry.value("path", "") != path) continue;
    ++requests;
    ++by_status[std::to_string(entry.value("status", 0))];
  }
  return json{{"requests", requests}, {"by_status", by_status}};
}

Result<WrkRun> run_wrk(const WrkOptions& options, const fs::path& dir, int port, const fs::path& bodies,
                       const std::string& token, int seconds) {
  const fs::path script = dir / "search.lua";
  if (!fs::exists(script)) {
    std::ofstream out(script);
    out << k_wrk_script;
  }
  const std::vector<std::string> argv = {options.program, "-t", std::to_string(options.threads), "-c",
                                         std::to_string(options.connections), "-d", fmt::format("{}s", seconds),
                                         "--timeout", fmt::format("{}s", options.timeout_s), "-s", script.string(),
                                         fmt::format("http://127.0.0.1:{}/v1/search", port), "--", bodies.string(), token};
  Child wrk;
  const fs::path out = dir / "wrk.out";
  const fs::path err = dir / "wrk.err";
  VS_TRY(wrk.start(argv, {}, out, err));
  const auto ended = wrk.wait_for(std::chrono::seconds(seconds + options.timeout_s + 60));
  if (!ended) return fail(ErrorCode::internal, fmt::format("wrk did not end within {} s", seconds + options.timeout_s + 60));
  const std::string text = read_file(out);
  if (!WIFEXITED(ended->status) || WEXITSTATUS(ended->status) != 0) {
    return fail(ErrorCode::internal, fmt::format("wrk failed ({}): {}{}", describe_exit(ended->status),
                                                 tail_lines(read_file(err), 5), tail_lines(text, 5)));
  }
  const std::size_t marker = text.find("VSTORE_WRK ");
  if (marker == std::string::npos) return fail(ErrorCode::internal, fmt::format("wrk printed no figures: {}", tail_lines(text, 5)));
  const std::size_t eol = text.find('\n', marker);
  json figures = json::parse(text.substr(marker + 11, eol == std::string::npos ? std::string::npos : eol - marker - 11), nullptr, false);
  if (!figures.is_object() || !figures.contains("requests")) {
    return fail(ErrorCode::internal, fmt::format("wrk's figures are not the script's JSON: {}", tail_lines(text, 3)));
  }
  return WrkRun{std::move(figures), ended->cpu_s};
}

}  // namespace vstore::bench_support
