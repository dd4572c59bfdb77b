// SPDX-License-Identifier: Apache-2.0
// `vstore validate` and `vstore tune`: the command-line edges of validate_stores() and
// tune_index() (include/vstore/validate.hpp): options, the readable report, the exit code.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/validate.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

struct ValidateArgs {
  std::string queries_file;
  int sample = 50;
  std::uint64_t seed = 42;
  int top_k = 10;
  double min_overlap = 0.95;
  bool no_chroma = false;
  bool json_out = false;
};

// One query text per line; blank lines and `#` lines are skipped.
Result<std::vector<std::string>> read_queries(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("--queries {}: cannot read it ({}); expected a file of one query text per line", path,
                            std::strerror(errno)));
  }
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    out.push_back(line);
  }
  if (out.empty()) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("--queries {}: no query text in it (blank lines and # lines are skipped)", path));
  }
  return out;
}

std::string num(const json& v, int digits = 4) {
  return v.is_number() ? fmt::format("{:.{}f}", v.get<double>(), digits) : std::string("-");
}

void print_case(const char* name, const json& c) {
  const std::string diff = c["score_diff"].is_object()
                               ? fmt::format("{}/{}", num(c["score_diff"]["max"], 6), num(c["score_diff"]["mean_abs"], 6))
                               : std::string("-");
  std::printf("%-11s %7s %10s %8s %9s %19s %10s\n", name, c["queries"].dump().c_str(), num(c["overlap_at_k"]).c_str(),
              num(c["jaccard"]).c_str(), num(c["rank_correlation"]).c_str(), diff.c_str(), num(c["recall_at_k"]).c_str());
}

void print_worst(const char* title, const json& list, const char* figure, int k) {
  if (!list.is_array() || list.empty()) return;
  std::printf("worst %s by %s@%d:\n", title, figure, k);
  for (const auto& w : list) {
    std::string text = w["query"].get<std::string>();
    if (text.size() > 60) text = text.substr(0, 57) + "...";
    std::printf("  %s  %s%s\n", num(w[std::string(figure) + "_at_k"]).c_str(), json(text).dump().c_str(),
                w["filter"].is_null() ? "" : (" " + w["filter"].dump()).c_str());
  }
}

void print_validate(const ValidateResult& r) {
  const json& j = r.report;
  const int k = j["top_k"].get<int>();
  std::printf("validate: %s queries (%s), top %d, table %s, %s index\n", j["queries"].dump().c_str(),
              j["query_source"].get<std::string>().c_str(), k, j["table"].get<std::string>().c_str(),
              j["index_type"].get<std::string>().c_str());
  std::printf("chroma: %s\n", j["chroma"].get<std::string>().c_str());
  if (j["articles"].is_object()) {
    const json& a = j["articles"];
    std::printf("articles: %s with a vector in pgvector; %s only in pgvector (set aside: Chroma never had them), %s "
                "only in Chroma\n",
                a["pgvector"].dump().c_str(), a["pgvector_only"].dump().c_str(), a["chroma_only"].dump().c_str());
  }
  std::printf("%-11s %7s %10s %8s %9s %19s %10s\n", "", "queries", fmt::format("overlap@{}", k).c_str(), "jaccard",
              "spearman", "score diff max/mean", fmt::format("recall@{}", k).c_str());
  print_case("unfiltered", j["unfiltered"]);
  print_case("filtered", j["filtered"]);
  for (const char* which : {"unfiltered", "filtered"}) {
    print_worst(fmt::format("{} queries", which).c_str(), j["worst"][which]["overlap"], "overlap", k);
    print_worst(fmt::format("{} queries", which).c_str(), j["worst"][which]["recall"], "recall", k);
  }
  if (r.passed) {
    std::printf("passed: %s >= %s in both cases\n", j["passed_on"].get<std::string>().c_str(),
                num(j["min_overlap"], 2).c_str());
  } else {
    for (const auto& f : r.failures) std::printf("FAILED: %s\n", f.c_str());
  }
  std::printf("report: %s\n", r.report_path.c_str());
}

int run_validate(const Globals& globals, const ValidateArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  ValidateOptions options;
  if (!args.queries_file.empty()) {
    auto queries = read_queries(args.queries_file);
    if (!queries) return report_usage(queries.error());
    options.queries = std::move(*queries);
  }
  options.sample = args.sample;
  options.seed = args.seed;
  options.top_k = args.top_k;
  options.min_overlap = args.min_overlap;
  options.chroma = !args.no_chroma;
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  auto conninfo = resolve_conninfo(*cfg);
  if (!conninfo) return report(conninfo.error());
  std::unique_ptr<Progress> progress;
  options.progress = [&](std::int64_t done, std::int64_t total) {
    if (!progress) progress = std::make_unique<Progress>("validate", total);
    progress->update(done);
  };
  auto result = validate_stores(*conninfo, *cfg, options);
  if (progress) progress->finish();
  if (!result) return report(result.error());
  if (args.json_out) {
    print_json(result->report);
  } else {
    print_validate(*result);
  }
  if (!result->passed) {
    // With --json the report is already stdout's one JSON document: the reason goes to stderr.
    set_json_errors(false);
    print_error("failed", fmt::format("validation failed: {}", result->failures.front()));
    return k_exit_failure;
  }
  if (!args.json_out) print_done("validate", "passed", started);
  return k_exit_ok;
}

struct TuneArgs {
  double target_recall = 0.95;
  std::string where;
  int sample = 50;
  std::uint64_t seed = 42;
  int top_k = 10;
  std::string write_env;
  bool json_out = false;
};

void print_tune(const TuneResult& r, const TuneOptions& options) {
  std::printf("tune: %s %s over %lld sampled queries, top %d, target recall %.2f (now %s=%d)\n", r.index_type.c_str(),
              r.parameter.c_str(), static_cast<long long>(r.queries), options.top_k, options.target_recall,
              r.env_name.c_str(), r.current);
  const bool filtered = options.where.has_value();
  if (filtered) std::printf("filter: %s\n", to_chroma_where(*options.where).dump().c_str());
  const std::string rk = fmt::format("recall@{}", options.top_k);
  std::printf("%9s %10s %8s %8s", r.parameter.c_str(), rk.c_str(), "p50 ms", "p95 ms");
  if (filtered) std::printf("   %19s %8s %8s", ("filtered " + rk).c_str(), "p50 ms", "p95 ms");
  std::printf("\n");
  for (const auto& row : r.rows) {
    std::printf("%9d %10.4f %8.3f %8.3f", row.value, row.unfiltered.recall_at_k, row.unfiltered.p50_ms,
                row.unfiltered.p95_ms);
    if (row.filtered) {
      std::printf("   %19.4f %8.3f %8.3f", row.filtered->recall_at_k, row.filtered->p50_ms, row.filtered->p95_ms);
    }
    std::printf("%s\n", r.recommended && *r.recommended == row.value ? "  <- recommended" : "");
  }
}

int run_tune(const Globals& globals, const TuneArgs& args, bool write_env) {
  const auto started = std::chrono::steady_clock::now();
  TuneOptions options;
  options.target_recall = args.target_recall;
  options.sample = args.sample;
  options.seed = args.seed;
  options.top_k = args.top_k;
  if (!args.where.empty()) {
    auto filter = parse_filter(std::string_view(args.where));
    if (!filter) return report_usage(filter.error().with_context("--where"));
    options.where = std::move(*filter);
  }
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  auto conninfo = resolve_conninfo(*cfg);
  if (!conninfo) return report(conninfo.error());
  std::unique_ptr<Progress> progress;
  options.progress = [&](std::int64_t done, std::int64_t total) {
    if (!progress) progress = std::make_unique<Progress>("tune", total);
    progress->update(done);
  };
  auto result = tune_index(*conninfo, *cfg, options);
  if (progress) progress->finish();
  if (!result) return report(result.error());
  json out = result->to_json(options);
  std::string written;
  if (result->recommended && write_env) {
    const std::filesystem::path path = std::filesystem::absolute(args.write_env);
    if (auto w = write_env_setting(path, result->env_name, std::to_string(*result->recommended)); !w) {
      return report(w.error());
    }
    written = path.string();
  }
  out["env_file"] = written.empty() ? json(nullptr) : json(written);
  out["elapsed_s"] = elapsed_s(started);
  if (args.json_out) {
    print_json(out);
  } else {
    print_tune(*result, options);
    if (result->recommended) {
      std::printf("recommended: %s %d (%s=%d)\n", result->parameter.c_str(), *result->recommended,
                  result->env_name.c_str(), *result->recommended);
      if (!written.empty()) std::printf("wrote %s=%d to %s\n", result->env_name.c_str(), *result->recommended, written.c_str());
    }
  }
  if (!result->recommended) {
    double best = 0;
    int best_value = 0;
    for (const auto& row : result->rows) {
      const double worst_case = row.filtered ? std::min(row.unfiltered.recall_at_k, row.filtered->recall_at_k)
                                             : row.unfiltered.recall_at_k;
      if (worst_case > best) {
        best = worst_case;
        best_value = row.value;
      }
    }
    set_json_errors(false);  // the table is already stdout's JSON document
    print_error("failed", fmt::format("no {} up to {} reaches recall@{} {} in every case (best {:.4f} at {}){}",
                                      result->parameter, result->rows.back().value, options.top_k,
                                      options.target_recall, best, best_value,
                                      write_env ? "; nothing was written" : ""));
    return k_exit_failure;
  }
  if (!args.json_out) print_done("tune", "recommended", started);
  return k_exit_ok;
}

}  // namespace

void add_validate_commands(CLI::App& app, const Globals& globals, Action& action) {
  static ValidateArgs va;
  auto* validate = app.add_subcommand(
      "validate", "compare ChromaDB's answers with pgvector's (overlap@k, Jaccard, Spearman, score differences) and "
                  "pgvector's index with exact search (recall@k), unfiltered and with the topic filter; writes a JSON "
                  "report under VSTORE_DATA_DIR/reports and exits 1 below --min-overlap");
  auto* queries = validate->add_option("--queries", va.queries_file,
                                       "file of query texts, one per line (blank and # lines skipped)");
  validate->add_option("--sample", va.sample, "stored articles sampled as queries (their titles)")
      ->check(CLI::Range(1, 10000))
      ->excludes(queries)
      ->capture_default_str();
  validate->add_option("--seed", va.seed, "the sample's seed")->capture_default_str();
  validate->add_option("--top-k", va.top_k, "results compared per query")->check(CLI::Range(1, 1000))->capture_default_str();
  validate->add_option("--min-overlap", va.min_overlap,
                       "pass mark of the mean overlap@k, unfiltered and filtered (recall@k without Chroma)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  validate->add_flag("--no-chroma", va.no_chroma, "skip the Chroma comparison (it is skipped without CHROMA_URL)");
  validate->add_flag("--json", va.json_out, "print the JSON report on stdout as well");
  validate->callback([&] { action = [&] { return run_validate(globals, va); }; });

  static TuneArgs ta;
  auto* tune = app.add_subcommand(
      "tune", "sweep ef_search (HNSW) or probes (IVFFlat) over sampled queries, measure recall@k against exact search "
              "and latency, and recommend the smallest setting that reaches --target-recall");
  tune->add_option("--target-recall", ta.target_recall, "recall@k to reach in every measured case")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  tune->add_option("--where", ta.where, "a filter (Chroma where JSON) measured besides the unfiltered case");
  tune->add_option("--sample", ta.sample, "stored articles sampled as queries (their titles)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  tune->add_option("--seed", ta.seed, "the sample's seed")->capture_default_str();
  tune->add_option("--top-k", ta.top_k, "k of recall@k")->check(CLI::Range(1, 1000))->capture_default_str();
  auto* write_env = tune->add_option("--write-env", ta.write_env,
                                     "write the recommendation to FILE (default .env), replacing that variable's line")
                        ->expected(0, 1)
                        ->default_str(".env");
  tune->add_flag("--json", ta.json_out, "print the table and the recommendation as JSON");
  tune->callback([&, write_env] {
    action = [&, write_env] {
      if (write_env->count() > 0 && ta.write_env.empty()) ta.write_env = ".env";
      return run_tune(globals, ta, write_env->count() > 0);
    };
  });
}

}  // namespace vstore::cli
