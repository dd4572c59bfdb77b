// SPDX-License-Identifier: Apache-2.0
// `vstore bench tune`: tune_index() over a generated clustered set in a scratch database, for
// the tune table of docs/benchmarks.md at 100,000 vectors.
#include <unistd.h>

#include <cmath>

#include <fmt/format.h>

#include "macro/bench.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/schema.hpp"
#include "vstore/validate.hpp"

namespace vstore {

namespace bs = bench_support;
using nlohmann::json;

Result<json> bench_tune(const std::string& admin_conninfo, const BenchTuneOptions& options) {
  VS_TRY(bs::check_range("rows", static_cast<double>(options.n), 1000, 10000000));
  VS_TRY(bs::check_range("dim", options.dim, 2, 2000));
  VS_TRY(bs::check_range("queries", options.queries, 1, 100000));
  VS_TRY(bs::check_range("clusters", options.clusters, 1, static_cast<double>(options.n)));
  VS_TRY(bs::check_range("selectivity", options.selectivity, 0, 1));
  VS_TRY(bs::check_range("target_recall", options.target_recall, 0, 1));
  VS_TRY(bs::check_index_params(options.m, options.ef_construction));
  const auto n = static_cast<std::size_t>(options.n);
  const auto selected = static_cast<std::size_t>(std::llround(options.selectivity * static_cast<double>(n)));
  if (options.selectivity > 0 && selected < 10) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("selectivity {} of {} rows selects {} rows; at least 10 are needed", options.selectivity, n,
                            selected));
  }

  const json machine = bench_machine_info();
  bs::ScratchDatabase db(admin_conninfo, fmt::format("vstore_bench_tune_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, db.create());
  const Config cfg = bs::bench_config(conninfo, options.dim, options.m, options.ef_construction, 40);
  bs::report(options.progress, "generate", 0.0);
  const ClusteredSet set = generate_clustered(n, static_cast<std::size_t>(options.queries), options.dim,
                                              options.clusters, options.seed);
  std::vector<std::string> topics(n);
  for (std::size_t i = 0; i < n; ++i) topics[i] = fmt::format("t{}", i % 100);
  const auto perm = seeded_permutation(n, options.seed);
  for (std::size_t i = 0; i < selected; ++i) topics[perm[i]] = "sel";
  bs::report(options.progress, "generate", 1.0);

  VS_TRY(schema_up(conninfo, cfg));
  json load;
  {
    // load_clustered drops the table's vector index: only ever in the scratch database.
    VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo));
    VS_TRY(db.check(conn));
    VS_TRY_ASSIGN(load, load_clustered(conninfo, cfg, set, topics, options.progress));
  }

  TuneOptions tune;
  tune.target_recall = options.target_recall;
  tune.top_k = 10;
  for (std::size_t q = 0; q < set.query_count(); ++q) {
    const auto v = set.query(q);
    tune.query_vectors.emplace_back(v.begin(), v.end());
  }
  if (selected > 0) {
    VS_TRY_ASSIGN(FilterNode where, parse_filter(json{{"topic", "sel"}}));
    tune.where = std::move(where);
  }
  tune.progress = [&](std::int64_t done, std::int64_t total) {
    bs::report(options.progress, "tune", static_cast<double>(done) / static_cast<double>(total));
  };
  VS_TRY_ASSIGN(TuneResult result, tune_index(conninfo, cfg, tune));
  VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo));
  VS_TRY_ASSIGN(json server, bs::server_info(conn));

  json out = result.to_json(tune);
  out["n"] = options.n;
  out["dim"] = options.dim;
  out["m"] = options.m;
  out["ef_construction"] = options.ef_construction;
  out["clusters"] = options.clusters;
  out["selectivity"] = selected > 0 ? json(options.selectivity) : json(nullptr);
  out["load"] = load;
  out["machine"] = machine;
  out["server"] = server;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
