// SPDX-License-Identifier: Apache-2.0
// The query benchmark (`vstore bench query`), the clustered data generator and exact search.
// Design:
// - Data follows docs/reference/performance.md "Conditions": unit centroids, centroid + N(0, 1/dim)
//   noise per component, normalised; queries drawn the same way from their own random stream.
// - Each benchmark owns a database (vstore_bench_<pid>) created on the admin connection's server;
//   a guard drops it WITH (FORCE) on every exit path, and checks current_database() before any
//   statement that drops, truncates or deletes. Objects that hold connections to it (the store)
//   are declared after the guard so they close first.
// - Loading follows the style guide: binary COPY into the table without its vector index, then
//   CREATE INDEX, then ANALYZE.
// - Ground truth is brute force in C++: candidate rows are walked in cache-sized blocks and each
//   worker thread scores its share of the queries against a block before moving on, so the base
//   set streams from memory once per thread rather than once per query.
// - Phases of bench_query: load the scratch database, exact ground truth, the store's searches
//   (bench_search, shared with Chroma), bare prepared statements, the exact scan, the report.
//   Only search() sits between the steady_clock reads of a query.
#include "macro/bench.hpp"

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <system_error>
#include <thread>

#include <fmt/format.h>

#include "macro/bench_search.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_catalog.hpp"
#include "pg/pg_conn.hpp"
#include "pg/pg_store.hpp"
#include "pg/pg_version.hpp"
#include "pg/pg_time.hpp"
#include "vstore/article.hpp"
#include "vstore/filter.hpp"
#include "vstore/schema.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;
using pg::Param;
using pg::PgResult;
using Clock = std::chrono::steady_clock;

constexpr std::size_t k_block_rows = 256;     // rows scored per block (~400 KB at dim 384)
constexpr std::size_t k_copy_batch = 10000;   // rows per COPY statement when loading

using bench_search::k_top_k;
using bench_support::check_index_params;
using bench_support::check_range;
using bench_support::median;
using bench_support::percentile;
using bench_support::report;
using bench_support::round_to;
using bench_support::bench_config;
using bench_support::k_bench_model;
using bench_support::ScratchDatabase;
using bench_support::server_info;
using bench_support::vector_index_name;
using bench_support::seconds_since;

// splitmix64: derives independent seeds for the centroid, base and query streams.
std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t stream) {
  std::uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (stream + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void normalise(std::span<float> v) {
  double norm = 0;
  for (float x : v) norm += static_cast<double>(x) * x;
  const auto inv = static_cast<float>(1.0 / std::sqrt(norm));
  for (float& x : v) x *= inv;
}

// Fills `out` (count x dim) with centroid + noise vectors, normalised.
void draw_around(std::span<float> out, const std::vector<float>& centroids, int dim, int clusters,
                 std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0F, static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim))));
  std::uniform_int_distribution<int> pick(0, clusters - 1);
  const auto d = static_cast<std::size_t>(dim);
  for (std::size_t off = 0; off < out.size(); off += d) {
    const float* c = centroids.data() + static_cast<std::size_t>(pick(rng)) * d;
    std::span<float> v = out.subspan(off, d);
    for (std::size_t j = 0; j < d; ++j) v[j] = c[j] + noise(rng);
    normalise(v);
  }
}

// Dot product with 16 independent lanes, which the compiler vectorises without -ffast-math.
float dot(const float* a, const float* b, std::size_t dim) {
  float acc[16] = {};
  std::size_t d = 0;
  for (; d + 16 <= dim; d += 16) {
    for (std::size_t lane = 0; lane < 16; ++lane) acc[lane] += a[d + lane] * b[d + lane];
  }
  float sum = 0;
  for (; d < dim; ++d) sum += a[d] * b[d];
  for (float lane_sum : acc) sum += lane_sum;
  return sum;
}

// The k best (distance, id) pairs seen so far, sorted ascending.
class TopK {
 public:
  explicit TopK(int k) : m_k(static_cast<std::size_t>(k)) { m_items.reserve(m_k + 1); }
  void offer(float dist, std::uint32_t id) {
    if (m_items.size() == m_k && !better(dist, id, m_items.back())) return;
    auto pos = std::upper_bound(m_items.begin(), m_items.end(), std::pair{dist, id},
                                [](const auto& x, const auto& y) { return better(x.first, x.second, y); });
    m_items.insert(pos, {dist, id});
    if (m_items.size() > m_k) m_items.pop_back();
  }
  [[nodiscard]] std::vector<std::uint32_t> ids() const {
    std::vector<std::uint32_t> out;
    out.reserve(m_items.size());
    for (const auto& item : m_items) out.push_back(item.second);
    return out;
  }

 private:
  static bool better(float dist, std::uint32_t id, const std::pair<float, std::uint32_t>& than) {
    return dist < than.first || (dist == than.first && id < than.second);
  }
  std::size_t m_k;
  std::vector<std::pair<float, std::uint32_t>> m_items;
};

std::string read_first_match(const char* path, std::string_view key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.starts_with(key)) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return {};
}

std::string_view plan_name(SearchPlan plan) {
  switch (plan) {
    case SearchPlan::index: return "index";
    case SearchPlan::index_iterative: return "index_iterative";
    case SearchPlan::exact: return "exact";
  }
  return "unknown";
}

}  // namespace

// ---- data -------------------------------------------------------------------------------------

ClusteredSet generate_clustered(std::size_t n, std::size_t query_count, int dim, int clusters, std::uint64_t seed) {
  VS_ASSERT(dim >= 1);
  VS_ASSERT(clusters >= 1);
  const auto d = static_cast<std::size_t>(dim);
  std::vector<float> centroids(static_cast<std::size_t>(clusters) * d);
  {
    std::mt19937_64 rng(mix_seed(seed, 0));
    std::normal_distribution<float> gauss(0.0F, 1.0F);
    for (float& x : centroids) x = gauss(rng);
    for (std::size_t off = 0; off < centroids.size(); off += d) normalise(std::span<float>(centroids).subspan(off, d));
  }
  ClusteredSet set;
  set.dim = dim;
  set.base.resize(n * d);
  set.queries.resize(query_count * d);
  // The two streams are independent, so draw them on two threads (inline if no thread starts).
  auto draw_queries = [&] { draw_around(set.queries, centroids, dim, clusters, mix_seed(seed, 2)); };
  std::jthread helper;
  try {
    helper = std::jthread(draw_queries);
  } catch (const std::system_error&) {
    draw_queries();
  }
  draw_around(set.base, centroids, dim, clusters, mix_seed(seed, 1));
  return set;
}

std::vector<std::uint32_t> seeded_permutation(std::size_t n, std::uint64_t seed) {
  std::vector<std::uint32_t> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<std::uint32_t>(i);
  std::mt19937_64 rng(mix_seed(seed, 3));
  for (std::size_t i = n; i > 1; --i) {
    std::uniform_int_distribution<std::size_t> pick(0, i - 1);
    std::swap(out[i - 1], out[pick(rng)]);
  }
  return out;
}

std::vector<std::vector<std::uint32_t>> exact_top_k(const ClusteredSet& set, int k,
                                                    std::span<const std::uint32_t> candidates, int threads) {
  const std::size_t nq = set.query_count();
  const auto dim = static_cast<std::size_t>(set.dim);
  std::vector<std::uint32_t> all;
  if (candidates.empty()) {
    all.resize(set.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint32_t>(i);
    candidates = all;
  }
  std::vector<TopK> best(nq, TopK(std::max(k, 1)));
  const auto workers = static_cast<std::size_t>(std::max(threads, 1));
  auto work = [&](std::size_t worker) {
    for (std::size_t start = 0; start < candidates.size(); start += k_block_rows) {
      const std::size_t end = std::min(start + k_block_rows, candidates.size());
      for (std::size_t query_idx = worker; query_idx < nq; query_idx += workers) {
        const float* q = set.queries.data() + query_idx * dim;
        TopK& top = best[query_idx];
        for (std::size_t cand_idx = start; cand_idx < end; ++cand_idx) {
          const std::uint32_t id = candidates[cand_idx];
          top.offer(1.0F - dot(q, set.base.data() + static_cast<std::size_t>(id) * dim, dim), id);
        }
      }
    }
  };
  {
    std::vector<std::jthread> pool;
    for (std::size_t worker = 1; worker < workers; ++worker) {
      try {
        pool.emplace_back(work, worker);
      } catch (const std::system_error&) {
        work(worker);  // no thread to be had: do its share here
      }
    }
    work(0);
  }
  std::vector<std::vector<std::uint32_t>> out;
  out.reserve(nq);
  for (const auto& top : best) out.push_back(top.ids());
  return out;
}

double recall_of(std::span<const std::uint32_t> truth, std::span<const std::uint32_t> found) {
  if (truth.empty()) return 1.0;
  std::size_t hit = 0;
  for (std::uint32_t id : truth) {
    if (std::find(found.begin(), found.end(), id) != found.end()) ++hit;
  }
  return static_cast<double>(hit) / static_cast<double>(truth.size());
}

Result<json> load_clustered(const std::string& conninfo, const Config& config, const ClusteredSet& set,
                            std::span<const std::string> topics, const BenchProgress& progress) {
  if (topics.size() != set.size()) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("expected one topic per row ({}), not {}", set.size(), topics.size()));
  }
  if (set.dim != config.embedding_dim) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("expected {} dimensions (EMBEDDING_DIM), not {}", config.embedding_dim, set.dim));
  }
  VS_TRY(check_index_params(config.pgvector.hnsw_m, config.pgvector.hnsw_ef_construction));
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  const std::string table = Connection::quote_ident(config.table);
  VS_TRY_ASSIGN(PgResult any, conn.exec(fmt::format("SELECT EXISTS (SELECT 1 FROM {})", table)));
  if (any.get(0, 0) == "t") {
    return fail(ErrorCode::conflict,
                fmt::format("table {} is not empty; load_clustered needs an empty table", config.table));
  }
  VS_TRY_ASSIGN(std::string index, vector_index_name(conn, config.table));
  if (!index.empty()) {
    VS_TRY(conn.exec(fmt::format("DROP INDEX {}", Connection::quote_ident(index))));
  } else {
    index = config.table + "_embedding_hnsw_idx";
  }

  json out;
  const auto copy_start = Clock::now();
  const std::string copy_sql =
      fmt::format("COPY {} (uri, topic, embedding_model, embedding) FROM STDIN (FORMAT binary)", table);
  for (std::size_t start = 0; start < set.size(); start += k_copy_batch) {
    const std::size_t end = std::min(start + k_copy_batch, set.size());
    pg::CopyWriter writer;
    writer.reserve((end - start) * (static_cast<std::size_t>(set.dim) * 4 + 64));
    for (std::size_t row_idx = start; row_idx < end; ++row_idx) {
      writer.begin_row(4);
      writer.bytes_field(std::to_string(row_idx));
      writer.bytes_field(topics[row_idx]);
      writer.bytes_field(k_bench_model);
      writer.vector_field(set.row(row_idx));
    }
    VS_TRY(conn.copy_in(copy_sql, writer.finish()));
    report(progress, "load", static_cast<double>(end) / static_cast<double>(set.size()));
  }
  out["copy_s"] = round_to(seconds_since(copy_start), 3);

  report(progress, "index", 0.0);
  const auto index_start = Clock::now();
  VS_TRY(pg::build_index(conn, fmt::format("CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = {}, "
                               "ef_construction = {})",
                               Connection::quote_ident(index), table, config.pgvector.hnsw_m,
                               config.pgvector.hnsw_ef_construction), true));
  out["index_build_s"] = round_to(seconds_since(index_start), 3);
  report(progress, "index", 1.0);
  const auto analyze_start = Clock::now();
  VS_TRY(conn.exec(fmt::format("ANALYZE {}", table)));
  out["analyze_s"] = round_to(seconds_since(analyze_start), 3);
  out["index_name"] = index;
  return out;
}

json bench_machine_info() {
  json machine;
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  machine["nproc"] = cpus > 0 ? json(cpus) : json(nullptr);
  const std::string model = read_first_match("/proc/cpuinfo", "model name");
  machine["cpu"] = model.empty() ? json(nullptr) : json(model);
  const std::string mem = read_first_match("/proc/meminfo", "MemTotal");
  std::int64_t kib = 0;
  if (!mem.empty()) std::from_chars(mem.data(), mem.data() + mem.size(), kib);
  machine["memory_gib"] = kib > 0 ? json(round_to(static_cast<double>(kib) / (1024.0 * 1024.0), 1)) : json(nullptr);
  std::ifstream loadavg("/proc/loadavg");
  double load1 = 0;
  if (loadavg >> load1) machine["load_avg_1m"] = load1;  // other work on the machine skews every timing
  utsname uts{};
  if (uname(&uts) == 0) machine["kernel"] = fmt::format("{} {} {}", uts.sysname, uts.release, uts.machine);
  return machine;
}

// ---- query benchmark --------------------------------------------------------------------------

namespace {

// The timed queries of the exact scan: exact_queries, or min(100, queries) when unset.
std::size_t exact_query_count(const BenchQueryOptions& options) {
  return static_cast<std::size_t>(options.exact_queries.value_or(std::min(100, options.queries)));
}

// Phase 1: the scratch database, migrated, holding the workload's rows and the HNSW index.
Result<json> load_query_database(const ScratchDatabase& db, const std::string& conninfo, const Config& cfg,
                                 const bench_search::Workload& workload, const BenchProgress& progress) {
  VS_TRY(schema_up(conninfo, cfg));
  // load_clustered drops the table's vector index: only ever in the scratch database.
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY(db.check(conn));
  return load_clustered(conninfo, cfg, workload.set, workload.topics, progress);
}

// Phase 3: every query through the store's search(), counting the plan each one ran.
Result<bench_search::SearchRun> time_store_searches(const std::string& conninfo, const Config& cfg,
                                                    const BenchQueryOptions& options,
                                                    const bench_search::Workload& workload,
                                                    const std::vector<std::vector<std::uint32_t>>& truth,
                                                    std::map<std::string, int>& plans) {
  VS_TRY_ASSIGN(auto store, pg::PgVectorStore::open(conninfo, cfg));
  VS_TRY_ASSIGN(const SearchOptions search, bench_search::search_options(options));
  return bench_search::time_searches(*store, workload, search, truth, options.progress,
                                     [&] { ++plans[std::string(plan_name(pg::PgVectorStore::test_last_plan()))]; });
}

// Phase 4 (unfiltered runs only): the same queries through a thin client (one prepared
// statement, binary vector, the same ef_search) on the same server, to separate the store's
// overhead from pgvector's. Returns the sorted latencies in ms.
Result<std::vector<double>> time_raw_queries(Connection& conn, Oid vec_oid, const Config& cfg,
                                             const BenchQueryOptions& options,
                                             const bench_search::Workload& workload) {
  VS_TRY(conn.exec(fmt::format("SET hnsw.ef_search = {}", options.ef_search)));
  const std::string raw_sql = fmt::format("SELECT uri FROM {} ORDER BY embedding <=> $1 LIMIT {}",
                                          Connection::quote_ident(cfg.table), k_top_k);
  std::vector<double> raw_ms;
  raw_ms.reserve(workload.timed);
  for (std::size_t i = 0; i < workload.timed; ++i) {
    const std::string vec = pg::encode_vector(workload.set.query(workload.warmup + i));
    const Param params[] = {Param{vec, true, false, vec_oid}};
    const auto start = Clock::now();
    VS_TRY(conn.exec_prepared(raw_sql, params));
    raw_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (i % 20 == 0) report(options.progress, "raw", static_cast<double>(i) / static_cast<double>(workload.timed));
  }
  report(options.progress, "raw", 1.0);
  std::sort(raw_ms.begin(), raw_ms.end());
  return raw_ms;
}

// Latencies (sorted, ms) and recall of the exact scan.
struct ExactRun {
  std::vector<double> latencies_ms;
  double recall_sum = 0;
};

// Phase 5: exact scan on the same server, the same filter, an ORDER BY the vector index cannot
// serve; a few warm-up queries first.
Result<ExactRun> time_exact_queries(Connection& conn, Oid vec_oid, const Config& cfg, const BenchQueryOptions& options,
                                    const bench_search::Workload& workload,
                                    const std::vector<std::vector<std::uint32_t>>& truth) {
  const std::string exact_sql = fmt::format(
      "SELECT uri FROM {} WHERE embedding IS NOT NULL{} ORDER BY (embedding <=> $1) + 0 LIMIT {}",
      Connection::quote_ident(cfg.table), options.selectivity ? " AND topic = $2" : "", k_top_k);
  auto exact_query = [&](std::size_t query_idx) -> Result<PgResult> {
    const std::string vec = pg::encode_vector(workload.set.query(query_idx));
    std::vector<Param> params = {Param{vec, true, false, vec_oid}};
    if (options.selectivity) params.push_back(Param::text("sel"));
    return conn.exec_prepared(exact_sql, params);
  };
  const std::size_t exact_count = exact_query_count(options);
  for (std::size_t i = 0; i < std::min<std::size_t>(5, workload.warmup); ++i) VS_TRY(exact_query(i));
  ExactRun run;
  for (std::size_t i = 0; i < exact_count; ++i) {
    const std::size_t query_idx = workload.warmup + i;
    const auto start = Clock::now();
    VS_TRY_ASSIGN(PgResult res, exact_query(query_idx));
    run.latencies_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    std::vector<SearchHit> hits(static_cast<std::size_t>(res.rows()));
    for (int r = 0; r < res.rows(); ++r) hits[static_cast<std::size_t>(r)].id = res.text(r, 0);
    run.recall_sum += recall_of(truth[query_idx], bench_search::ids_of(hits));
    if (i % 10 == 0) report(options.progress, "exact", static_cast<double>(i) / static_cast<double>(exact_count));
  }
  report(options.progress, "exact", 1.0);
  std::sort(run.latencies_ms.begin(), run.latencies_ms.end());
  return run;
}

}  // namespace

Result<json> bench_query(const std::string& admin_conninfo, const BenchQueryOptions& options) {
  VS_TRY(bench_search::check_query_options(options));
  if (options.exact_queries) {
    VS_TRY(check_range("exact_queries", *options.exact_queries, 1, options.queries));
  }
  const BenchProgress& progress = options.progress;

  const json machine = bench_machine_info();  // before our own load skews the load average
  ScratchDatabase db(admin_conninfo, fmt::format("vstore_bench_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, db.create());
  const Config cfg = bench_config(conninfo, options.dim, options.m, options.ef_construction, options.ef_search);
  const bench_search::Workload workload = bench_search::make_workload(options);
  VS_TRY_ASSIGN(json load, load_query_database(db, conninfo, cfg, workload, progress));

  // Phase 2: exact ground truth in C++.
  report(progress, "ground_truth", 0.0);
  const auto truth_start = Clock::now();
  const auto truth = exact_top_k(workload.set, k_top_k, workload.matching, 2);
  const double truth_s = seconds_since(truth_start);
  report(progress, "ground_truth", 1.0);

  std::map<std::string, int> plans;
  VS_TRY_ASSIGN(const bench_search::SearchRun run, time_store_searches(conninfo, cfg, options, workload, truth, plans));
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  std::vector<double> raw_ms;
  if (!options.selectivity) {
    VS_TRY_ASSIGN(raw_ms, time_raw_queries(conn, vec_oid, cfg, options, workload));
  }
  VS_TRY_ASSIGN(const ExactRun exact, time_exact_queries(conn, vec_oid, cfg, options, workload, truth));
  VS_TRY_ASSIGN(json server, server_info(conn));

  const std::string plan =
      std::max_element(plans.begin(), plans.end(), [](const auto& x, const auto& y) { return x.second < y.second; })
          ->first;
  json out = bench_search::workload_figures(options, workload);
  out.update(bench_search::search_figures(run));
  out["raw_p50_ms"] = raw_ms.empty() ? json(nullptr) : json(round_to(percentile(raw_ms, 0.50), 3));
  out["raw_p95_ms"] = raw_ms.empty() ? json(nullptr) : json(round_to(percentile(raw_ms, 0.95), 3));
  out["exact_p50_ms"] = round_to(percentile(exact.latencies_ms, 0.50), 3);
  out["exact_p95_ms"] = round_to(percentile(exact.latencies_ms, 0.95), 3);
  out["exact_queries"] = exact.latencies_ms.size();
  out["exact_recall_at_10"] = round_to(exact.recall_sum / static_cast<double>(exact.latencies_ms.size()), 4);
  out["plan"] = plan;
  out["plans"] = plans;
  out["load"] = load;
  out["ground_truth_s"] = round_to(truth_s, 3);
  out["machine"] = machine;
  out["server"] = server;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
