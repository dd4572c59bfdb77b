// SPDX-License-Identifier: Apache-2.0
// `vstore bench serve`: the HTTP service under wrk against the same searches through the library.
// Design:
// - Load: a scratch database (vstore_bench_serve_<pid>) with the first `n` articles, embedded by
//   the configured embedder, and the vector index built after them (bench_support). The vector
//   queries are `vectors` stored vectors spread evenly over the rows; the text queries are the
//   query file's lines. Both kinds are written as request bodies, one JSON object a line.
// - Service: `vstore serve --addr 127.0.0.1:0` runs as a child process (posix_spawn, no shell)
//   with an empty --env-file and an environment naming every setting that shapes a search (the
//   scratch database, the embedder, the index, the pool), so neither a `.env` nor the caller's
//   variables send it elsewhere; its bearer token is random. Its stdout gives the port, its
//   stderr (the JSON access log) goes to a file in a private directory.
// - wrk (one run per kind: warm-up, then timed) POSTs /v1/search with the bodies, each wrk
//   thread rotating through all of them from its own offset; the Lua script's done() prints one
//   JSON line (requests, latency percentiles, socket errors, non-2xx answers). The access log
//   lines written during the timed window (read between two offsets of the log file, each
//   taken after the service has had time to log what was in flight) show how many requests the
//   service answered, by status.
// - Library: after SIGTERM has stopped the service, the same bodies' searches run in this
//   process from `connections` threads through one ArticleStore (the service's calls: the
//   store's search() for a vector, search_articles() for text) for the same durations, plus the
//   embedder alone on the query texts.
// - CPU: for every timed window, the machine's busy time (/proc/stat), the CPU time of wrk
//   (wait4), of the vstore process (/proc/PID/stat, or getrusage for this one) and of
//   PostgreSQL (when the server runs on this host): the scratch database's backends
//   (pg_stat_activity's pids read in /proc; one that started in the window counts whole) plus
//   the backends that ended in the window (the postmaster's reaped children), and the sessions
//   opened meanwhile (pg_stat_database), which show a pool opening and closing connections.
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <latch>
#include <map>
#include <optional>
#include <random>
#include <regex>
#include <span>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "macro/bench.hpp"
#include "macro/bench_process.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/vector_store.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

using bench_support::check_range;
using bench_support::Child;
using bench_support::describe_exit;
using bench_support::latency_figures;
using bench_support::random_token;
using bench_support::read_file;
using bench_support::run_wrk;
using bench_support::serve_environment;
using bench_support::Service;
using bench_support::tail_lines;
using bench_support::WrkRun;
using bench_support::percentile;
using bench_support::report;
using bench_support::round_to;
using bench_support::ScratchDatabase;
using bench_support::seconds_since;

Result<void> check_options(const BenchServeOptions& options) {
  VS_TRY(check_range("n", static_cast<double>(options.n), 10, 1000000));
  VS_TRY(check_range("vectors", options.vectors, 1, 100000));
  VS_TRY(check_range("duration_s", options.duration_s, 1, 3600));
  VS_TRY(check_range("warmup_s", options.warmup_s, 0, 600));
  VS_TRY(check_range("connections", options.connections, 1, 1024));
  VS_TRY(check_range("wrk_threads", options.wrk_threads, 1, std::min(64, options.connections)));
  VS_TRY(check_range("timeout_s", options.timeout_s, 1, 600));
  VS_TRY(check_range("serve_threads", options.serve_threads, 1, 4096));
  VS_TRY(check_range("top_k", options.top_k, 1, 1000));
  for (const auto& [what, path] : {std::pair{"article file", options.data}, std::pair{"query file", options.query_file},
                                   std::pair{"vstore binary", options.vstore}}) {
    if (!fs::exists(path)) return fail(ErrorCode::not_found, fmt::format("{} {} not found", what, path.string()));
  }
  return {};
}

// ---- CPU accounting ----

double clock_ticks() { return static_cast<double>(sysconf(_SC_CLK_TCK)); }

// Fields of /proc/PID/stat (numbered as in proc(5): 4 ppid, 14 utime, 15 stime, 16 cutime,
// 17 cstime); empty when it is not readable (gone, or not on this host).
std::map<int, double> process_stat(int pid) {
  const std::string stat = read_file(fmt::format("/proc/{}/stat", pid));
  const std::size_t close = stat.rfind(')');
  std::map<int, double> out;
  if (close == std::string::npos) return out;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  for (int index = 3; index <= 17 && fields >> field; ++index) out[index] = std::strtod(field.c_str(), nullptr);
  return out;
}

// User + system CPU seconds of process `pid`; nullopt when it is not readable.
std::optional<double> process_cpu_s(int pid) {
  const auto stat = process_stat(pid);
  if (!stat.contains(15)) return std::nullopt;
  return (stat.at(14) + stat.at(15)) / clock_ticks();
}

// CPU seconds of the children `pid` has reaped (for the postmaster: its backends that ended).
std::optional<double> reaped_children_cpu_s(int pid) {
  const auto stat = process_stat(pid);
  if (!stat.contains(17)) return std::nullopt;
  return (stat.at(16) + stat.at(17)) / clock_ticks();
}

// Busy CPU seconds of the whole machine (every state of /proc/stat's cpu line but idle and iowait).
double machine_busy_s() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  double total = 0;
  double idle = 0;
  double value = 0;
  for (int index = 0; index < 8 && in >> value; ++index) {
    total += value;
    if (index == 3 || index == 4) idle += value;
  }
  return (total - idle) / clock_ticks();
}

double self_cpu_s() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// CPU seconds of the scratch database's backends (all but `conn`'s own), by pid.
Result<std::map<int, double>> backend_cpu(pg::Connection& conn) {
  VS_TRY_ASSIGN(pg::PgResult res, conn.exec("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                            "AND pid <> pg_backend_pid()"));
  std::map<int, double> out;
  for (int row = 0; row < res.rows(); ++row) {
    const int pid = std::atoi(res.text(row, 0).c_str());
    if (const auto cpu = process_cpu_s(pid)) out[pid] = *cpu;
  }
  return out;
}

// Sessions the server has opened in the current database (pg_stat_database.sessions).
Result<std::int64_t> sessions(pg::Connection& conn) {
  VS_TRY_ASSIGN(pg::PgResult res, conn.exec("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"));
  return res.rows() > 0 && !res.is_null(0, 0) ? std::atoll(res.text(0, 0).c_str()) : 0;
}

// The postmaster: the parent of `conn`'s backend (0 when the server is not on this host).
Result<int> postmaster_pid(pg::Connection& conn) {
  VS_TRY_ASSIGN(pg::PgResult res, conn.exec("SELECT pg_backend_pid()"));
  const auto stat = process_stat(std::atoi(res.text(0, 0).c_str()));
  return stat.contains(4) ? static_cast<int>(stat.at(4)) : 0;
}

// The CPU of one timed window. `vstore_pid` 0 means this process.
class CpuWindow {
 public:
  CpuWindow(pg::Connection& conn, int vstore_pid) : m_conn(conn), m_vstore_pid(vstore_pid) {}

  [[nodiscard]] Result<void> begin() {
    VS_TRY_ASSIGN(m_backends, backend_cpu(m_conn));
    VS_TRY_ASSIGN(m_postmaster, postmaster_pid(m_conn));
    VS_TRY_ASSIGN(m_sessions, sessions(m_conn));
    m_reaped = m_postmaster > 0 ? reaped_children_cpu_s(m_postmaster) : std::nullopt;
    m_vstore = vstore_cpu();
    m_machine = machine_busy_s();
    m_start = Clock::now();
    return {};
  }

  // {wall_s, machine_busy_s, cores_busy, client_s, vstore_s, postgres_s, postgres_sessions,
  // other_s}; client_s is wrk's (null for the library). postgres_s is the scratch database's
  // backends that are alive at the end plus every backend of the server that ended in the
  // window (the postmaster's reaped children); null when the server is not on this host.
  // postgres_sessions counts the sessions opened in the scratch database meanwhile (a pool
  // that opens and closes connections shows here).
  [[nodiscard]] Result<json> end(std::optional<double> client_s) {
    const double wall = seconds_since(m_start);
    const double machine = machine_busy_s() - m_machine;
    const std::optional<double> vstore_now = vstore_cpu();
    VS_TRY_ASSIGN(const auto backends, backend_cpu(m_conn));
    VS_TRY_ASSIGN(const std::int64_t sessions_now, sessions(m_conn));
    std::optional<double> postgres;
    for (const auto& [pid, cpu] : backends) {
      const auto before = m_backends.find(pid);
      postgres = postgres.value_or(0) + cpu - (before == m_backends.end() ? 0.0 : before->second);
    }
    const std::optional<double> reaped = m_postmaster > 0 ? reaped_children_cpu_s(m_postmaster) : std::nullopt;
    if (reaped && m_reaped) postgres = postgres.value_or(0) + *reaped - *m_reaped;
    std::optional<double> vstore;
    if (vstore_now && m_vstore) vstore = *vstore_now - *m_vstore;
    const auto figure = [](std::optional<double> v) { return v ? json(round_to(*v, 3)) : json(nullptr); };
    double known = client_s.value_or(0) + vstore.value_or(0) + postgres.value_or(0);
    return json{{"wall_s", round_to(wall, 3)},
                {"machine_busy_s", round_to(machine, 3)},
                {"cores_busy", round_to(machine / wall, 2)},
                {"client_s", figure(client_s)},
                {"vstore_s", figure(vstore)},
                {"postgres_s", figure(postgres)},
                {"postgres_sessions", sessions_now - m_sessions},
                {"other_s", round_to(machine - known, 3)}};
  }

 private:
  [[nodiscard]] std::optional<double> vstore_cpu() const {
    return m_vstore_pid > 0 ? process_cpu_s(m_vstore_pid) : std::optional<double>(self_cpu_s());
  }

  pg::Connection& m_conn;
  int m_vstore_pid;
  std::map<int, double> m_backends;
  int m_postmaster = 0;
  std::optional<double> m_reaped;
  std::int64_t m_sessions = 0;
  std::optional<double> m_vstore;
  double m_machine = 0;
  Clock::time_point m_start;
};

// ---- figures ----

// A float as the shortest text that reads back as the same float.
std::string float_text(float v) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  return ec == std::errc() ? std::string(buf.data(), end) : std::string("0");
}

std::string vector_body(std::span<const float> v, int top_k) {
  std::string body = "{\"vector\": [";
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i > 0) body += ',';
    body += float_text(v[i]);
  }
  return body + fmt::format("], \"top_k\": {}}}", top_k);
}

Result<void> write_lines(const fs::path& path, const std::vector<std::string>& lines) {
  std::ofstream out(path);
  for (const auto& line : lines) out << line << '\n';
  out.close();
  if (!out) return fail(ErrorCode::internal, fmt::format("cannot write {}", path.string()));
  return {};
}

// The cell of a timed wrk run.
json serve_cell(const json& w, const json& answered, const json& cpu) {
  const double seconds = w["duration_us"].get<double>() / 1e6;
  const double requests = w["requests"].get<double>();
  const json errors{{"connect", w["connect"]}, {"read", w["read"]}, {"write", w["write"]}, {"timeout", w["timeout"]},
                    {"non_2xx", w["non_2xx"]}};
  std::int64_t error_count = 0;
  for (const auto& [key, value] : errors.items()) error_count += value.get<std::int64_t>();
  return json{{"requests", static_cast<std::int64_t>(requests)},
              {"requests_per_s", round_to(seconds > 0 ? requests / seconds : 0.0, 1)},
              {"p50_ms", round_to(w["p50_us"].get<double>() / 1000.0, 3)},
              {"p90_ms", round_to(w["p90_us"].get<double>() / 1000.0, 3)},
              {"p99_ms", round_to(w["p99_us"].get<double>() / 1000.0, 3)},
              {"max_ms", round_to(w["max_us"].get<double>() / 1000.0, 3)},
              {"mean_ms", round_to(w["mean_us"].get<double>() / 1000.0, 3)},
              {"errors", errors},
              {"error_count", error_count},
              {"answered", answered},
              {"bytes_per_request", requests > 0 ? round_to(w["bytes"].get<double>() / requests, 0) : 0.0},
              {"cpu", cpu}};
}

// `clients` threads calling `call(item)` for `seconds`, each rotating through `items` from
// its own offset; a call started before the deadline is finished and counted.
struct LibraryRun {
  std::vector<double> latencies_ms;
  std::int64_t errors = 0;
  std::string first_error;
  double elapsed_s = 0;
};

LibraryRun run_clients(int clients, int seconds, std::size_t items, const std::function<Result<void>(std::size_t)>& call) {
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(clients));
  std::vector<std::int64_t> errors(static_cast<std::size_t>(clients), 0);
  std::vector<std::string> first_errors(static_cast<std::size_t>(clients));
  std::latch ready(clients + 1);
  std::atomic<bool> go{false};
  Clock::time_point deadline;
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&, t] {
      const auto slot = static_cast<std::size_t>(t);
      std::size_t item = (slot * 7919) % items;
      ready.arrive_and_wait();
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (Clock::now() < deadline) {
        item = (item + 1) % items;
        const auto started = Clock::now();
        auto done = call(item);
        latencies[slot].push_back(std::chrono::duration<double, std::milli>(Clock::now() - started).count());
        if (!done) {
          if (errors[slot]++ == 0) first_errors[slot] = done.error().message();
        }
      }
    });
  }
  ready.arrive_and_wait();
  const auto start = Clock::now();
  deadline = start + std::chrono::seconds(seconds);
  go.store(true, std::memory_order_release);
  for (auto& th : threads) th.join();
  LibraryRun run;
  run.elapsed_s = seconds_since(start);
  for (int t = 0; t < clients; ++t) {
    const auto slot = static_cast<std::size_t>(t);
    run.latencies_ms.insert(run.latencies_ms.end(), latencies[slot].begin(), latencies[slot].end());
    run.errors += errors[slot];
    if (run.first_error.empty()) run.first_error = first_errors[slot];
  }
  return run;
}

json library_cell(const LibraryRun& run, const json& cpu) {
  json cell = latency_figures(run.latencies_ms, run.elapsed_s);
  cell["error_count"] = run.errors;
  cell["first_error"] = run.first_error.empty() ? json(nullptr) : json(run.first_error);
  cell["cpu"] = cpu;
  return cell;
}

// wrk's version line ("wrk debian/4.1.0-3+b2 [epoll] ..." up to the copyright), or null.
json wrk_version(const BenchServeOptions& options, const fs::path& dir) {
  Child wrk;
  if (!wrk.start({options.wrk, "-v"}, {}, dir / "wrk-version.out", dir / "wrk-version.err")) return nullptr;
  (void)wrk.wait_for(std::chrono::seconds(10));
  const std::string text = read_file(dir / "wrk-version.out");
  const std::string first = text.substr(0, text.find('\n'));
  const std::size_t copyright = first.find(" Copyright");
  return first.empty() ? json(nullptr) : json(first.substr(0, copyright));
}

double ratio(const json& serve, const json& library) {
  const double lib = library["requests_per_s"].get<double>();
  return lib > 0 ? round_to(serve["requests_per_s"].get<double>() / lib, 3) : 0.0;
}

}  // namespace

Result<json> bench_serve(const std::string& admin_conninfo, const BenchServeOptions& options) {
  VS_TRY(check_options(options));
  VS_TRY_ASSIGN(const std::vector<std::string> queries, bench_support::read_query_file(options.query_file));
  VS_TRY_ASSIGN(const std::vector<Article> articles, bench_support::read_article_file(options.data, options.n));
  const bench_support::PrivateDir dir("vstore-bench-serve");
  if (dir.path().empty()) return fail(ErrorCode::internal, "cannot make a temporary directory for the benchmark");
  const json wrk = wrk_version(options, dir.path());
  if (wrk.is_null()) {
    return fail(ErrorCode::not_found, fmt::format("cannot run {}: install the Debian package wrk (scripts/setup.sh "
                                                  "does)", options.wrk));
  }
  const json machine = bench_machine_info();  // before our own load skews the load average
  ScratchDatabase db(admin_conninfo, fmt::format("vstore_bench_serve_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, db.create());
  Config cfg = options.config;
  cfg.database_url = conninfo;
  cfg.database_read_urls.clear();
  cfg.backend = BackendKind::pgvector;
  cfg.shadow_compare = false;
  if (!options.model_dir.empty()) cfg.model_dir = options.model_dir;
  VS_TRY_ASSIGN(json load, bench_support::load_articles(db, conninfo, cfg, articles, options.progress));

  // The queries: stored vectors spread evenly over the rows, and the texts.
  VS_TRY_ASSIGN(std::unique_ptr<VectorStore> reader, open_store(cfg, OpenOptions{}));
  // Up to 20,000 rows (uri order) to pick from: enough to spread the queries, bounded in memory.
  const std::int64_t pick_from = std::max<std::int64_t>(options.vectors, std::min<std::int64_t>(options.n, 20000));
  VS_TRY_ASSIGN(VectorBatch stored, reader->get_vectors(pick_from, std::nullopt));
  reader.reset();
  if (stored.ids.size() < static_cast<std::size_t>(options.vectors)) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} vectors to search by were asked for, but the {} articles "
                                                         "loaded hold {}",
                                                         options.vectors, articles.size(), stored.ids.size()));
  }
  std::vector<std::vector<float>> vectors;
  std::vector<std::string> vector_bodies;
  const auto count = static_cast<std::size_t>(options.vectors);
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t row = i * stored.ids.size() / count;
    const float* begin = stored.data.data() + row * stored.dim;
    vectors.emplace_back(begin, begin + stored.dim);
    vector_bodies.push_back(vector_body(vectors.back(), options.top_k));
  }
  std::vector<std::string> text_bodies;
  for (const auto& q : queries) text_bodies.push_back(json{{"query", q}, {"top_k", options.top_k}}.dump());
  const std::map<std::string, fs::path> bodies = {{"vector", dir.path() / "vector.bodies"}, {"text", dir.path() / "text.bodies"}};
  VS_TRY(write_lines(bodies.at("vector"), vector_bodies));
  VS_TRY(write_lines(bodies.at("text"), text_bodies));

  VS_TRY_ASSIGN(pg::Connection monitor, pg::Connection::connect(conninfo));
  const auto settle = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  const std::array<std::string, 2> kinds = {"vector", "text"};

  // The service under wrk.
  json serve;
  json serve_exit;
  {
    const std::string token = random_token();
    Service service(dir.path());
    report(options.progress, "serve", 0.0);
    VS_TRY(service.start(options.vstore, options.serve_threads, options.serve_args,
                         serve_environment(conninfo, cfg, options.model_dir, token)));
    const bench_support::WrkOptions wrk_options{options.wrk, options.wrk_threads, options.connections, options.timeout_s};
    int step = 0;
    for (const auto& kind : kinds) {
      if (options.warmup_s > 0) VS_TRY(run_wrk(wrk_options, dir.path(), service.port(), bodies.at(kind), token, options.warmup_s));
      settle();
      CpuWindow cpu(monitor, service.pid());
      VS_TRY(cpu.begin());
      const std::uintmax_t from = service.log_size();
      VS_TRY_ASSIGN(WrkRun run, run_wrk(wrk_options, dir.path(), service.port(), bodies.at(kind), token, options.duration_s));
      VS_TRY_ASSIGN(json used, cpu.end(run.cpu_s));
      settle();
      serve[kind] = serve_cell(run.figures, service.answered(from, service.log_size()), used);
      report(options.progress, "serve", static_cast<double>(++step) / 2.0);
    }
    serve_exit = service.stop();
  }

  // The same searches through the library, in this process.
  json library;
  {
    VS_TRY_ASSIGN(std::unique_ptr<VectorStore> store, open_store(cfg, OpenOptions{}));
    VS_TRY_ASSIGN(std::unique_ptr<Embedder> embedder, make_embedder(cfg));
    ArticleStore articles_store(std::move(store), std::move(embedder));
    SearchOptions by_vector;
    by_vector.top_k = options.top_k;
    const std::map<std::string, std::function<Result<void>(std::size_t)>> calls = {
        {"vector", [&](std::size_t i) -> Result<void> {
           VS_TRY(articles_store.store().search(vectors[i], by_vector));
           return {};
         }},
        {"text", [&](std::size_t i) -> Result<void> {
           VS_TRY(articles_store.search_articles(queries[i], options.top_k));
           return {};
         }},
        {"embed_only", [&](std::size_t i) -> Result<void> {
           VS_TRY(articles_store.embedder().embed(std::span<const std::string>(&queries[i], 1)));
           return {};
         }}};
    const std::map<std::string, std::size_t> items = {{"vector", vectors.size()}, {"text", queries.size()},
                                                      {"embed_only", queries.size()}};
    int step = 0;
    report(options.progress, "library", 0.0);
    for (const std::string kind : {"vector", "text", "embed_only"}) {
      if (options.warmup_s > 0) (void)run_clients(options.connections, options.warmup_s, items.at(kind), calls.at(kind));
      CpuWindow cpu(monitor, 0);
      VS_TRY(cpu.begin());
      const LibraryRun run = run_clients(options.connections, options.duration_s, items.at(kind), calls.at(kind));
      VS_TRY_ASSIGN(json used, cpu.end(std::nullopt));
      library[kind] = library_cell(run, used);
      report(options.progress, "library", static_cast<double>(++step) / 3.0);
    }
    articles_store.shutdown();
  }

  std::int64_t errors = 0;
  for (const auto& kind : kinds) errors += serve[kind]["error_count"].get<std::int64_t>();
  for (const std::string kind : {"vector", "text", "embed_only"}) errors += library[kind]["error_count"].get<std::int64_t>();
  const double ratio_vector = ratio(serve["vector"], library["vector"]);
  const double ratio_text = ratio(serve["text"], library["text"]);
  const double p99 = serve["vector"]["p99_ms"].get<double>();

  VS_TRY_ASSIGN(json server, bench_support::server_info(monitor));
  json out;
  out["rows"] = load["rows"];
  out["queries"] = queries.size();
  out["vectors"] = vectors.size();
  out["top_k"] = options.top_k;
  out["connections"] = options.connections;
  out["duration_s"] = options.duration_s;
  out["warmup_s"] = options.warmup_s;
  out["wrk_threads"] = options.wrk_threads;
  out["timeout_s"] = options.timeout_s;
  out["serve_threads"] = options.serve_threads;
  out["serve_args"] = options.serve_args;
  out["provider"] = cfg.embedding_provider;
  out["model"] = cfg.embedding_model;
  out["ef_search"] = cfg.pgvector.hnsw_ef_search;
  out["pool"] = {{"size", cfg.pool.size}, {"max_overflow", cfg.pool.max_overflow}};
  out["serve"] = serve;
  out["library"] = library;
  out["ratio_vector"] = ratio_vector;
  out["ratio_text"] = ratio_text;
  out["errors"] = errors;
  out["targets"] = {{"no_errors", errors == 0},
                    {"vector_p99_ms_at_most_20", p99 <= 20.0},
                    {"ratio_vector_at_least_0_8", ratio_vector >= 0.8},
                    {"ratio_text_at_least_0_8", ratio_text >= 0.8}};
  out["serve_exit"] = serve_exit;
  out["load"] = load;
  out["machine"] = machine;
  out["server"] = server;
  out["wrk_version"] = wrk;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
