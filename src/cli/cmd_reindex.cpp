// SPDX-License-Identifier: Apache-2.0
// `vstore reindex`: the command-line edge over reindex() (options, progress, summary, exit code).
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/reindex.hpp"
#include "vstore/write_check.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

// VSTORE_TEST_REINDEX_PAUSE_MS: for tests only (ReindexOptions::test_pause_after_batch_ms).
int test_pause_ms() {
  const char* value = std::getenv("VSTORE_TEST_REINDEX_PAUSE_MS");
  if (value == nullptr) return 0;
  return std::max(0, std::atoi(value));
}

int run_reindex(const Globals& globals, ReindexOptions options, bool json_out) {
  const auto started = std::chrono::steady_clock::now();
  if (auto checked = check_reindex_options(options); !checked) return report_usage(checked.error());
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  if (cfg->backend == BackendKind::chromadb) {
    return report(Error(ErrorCode::invalid_argument,
                        "reindex writes the vectors of the PostgreSQL table; VECTOR_BACKEND=chromadb has none (set "
                        "VECTOR_BACKEND=pgvector, or dual)"));
  }
  auto conninfo = resolve_conninfo(*cfg);
  if (!conninfo) return report(conninfo.error());
  auto embedder = make_embedder(*cfg);
  if (!embedder) return report(embedder.error());
  options.test_pause_after_batch_ms = test_pause_ms();

  std::unique_ptr<Progress> bar;
  auto on_progress = [&](const ReindexCounts& counts) {
    if (!bar) bar = std::make_unique<Progress>("reindex", counts.rows);
    bar->update(std::min(counts.examined, counts.rows));
  };
  auto on_failure = [&](const std::string& uri, const std::string& reason) {
    // A line of its own, also while the progress line is drawn.
    std::fprintf(stderr, "%sreindex: article %s failed: %s\n", bar ? "\n" : "", quoted_uri(uri).c_str(), reason.c_str());
  };
  auto done = reindex(*conninfo, *cfg, **embedder, options, on_progress, on_failure);
  if (bar) bar->finish();
  if (!done) return report(done.error());
  const ReindexReport& r = *done;
  if (json_out) {
    print_json(json{{"total", r.total()},
                    {"processed", r.counts.processed},
                    {"skipped", r.counts.skipped},
                    {"failed", r.counts.failed},
                    {"failed_uris", r.failed_uris},
                    {"requeued", r.requeued},
                    {"elapsed_s", elapsed_s(started)},
                    {"rate_per_s", r.rate_per_s},
                    {"index", r.index_name.empty() ? json(nullptr) : json(r.index_name)},
                    {"index_rebuilt", r.index_rebuilt},
                    {"model", r.model},
                    {"operation_id", r.operation_id}});
  } else {
    std::string what = fmt::format("{} rows, {} processed, {} skipped, {} failed", r.total(), r.counts.processed,
                                   r.counts.skipped, r.counts.failed);
    if (r.counts.processed > 0) what += fmt::format(" ({:.1f}/s)", r.rate_per_s);
    if (r.index_rebuilt) what += fmt::format("; index {} rebuilt concurrently", r.index_name);
    print_done("reindex", what, started);
  }
  return r.counts.failed > 0 ? k_exit_failure : k_exit_ok;
}

}  // namespace

void add_reindex_commands(CLI::App& app, const Globals& globals, Action& action) {
  static ReindexOptions options;
  static std::int64_t limit = -1;
  static std::string topic;
  static std::string since;
  static bool json_out = false;
  auto* cmd = app.add_subcommand(
      "reindex",
      "embed the articles that need a vector: those without one, and those whose text changed since their vector was "
      "made (a SHA-256 of the model and the text is stored per row). Rows whose hash matches are skipped, so a killed "
      "run resumes where it stopped when run again. Each batch is its own transaction; a failed article is reported "
      "with its uri and the run goes on (exit 1 at the end). The vector index is rebuilt with REINDEX INDEX "
      "CONCURRENTLY when it is invalid");
  cmd->add_flag("--force", options.force, "also re-embed rows whose vector vstore cannot vouch for: vectors without a "
                                          "hash (migrated or ingested ready-made) and vectors of another model");
  cmd->add_option("--limit", limit, "embed at most N articles (rows skipped do not count)")->check(CLI::NonNegativeNumber);
  static CLI::Option* topic_opt = cmd->add_option("--topic", topic, "only articles whose topic is T");
  static CLI::Option* since_opt = cmd->add_option("--since", since, "only articles published on or after DATE (e.g. 1987-03-01)");
  cmd->add_option("--batch-size", options.batch_size, "articles per embedding batch and per write transaction (1..10000)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_flag("--reindex-index", options.rebuild_index,
                "rebuild the vector index concurrently after the run even when it is valid");
  cmd->add_flag("--json", json_out, "print {total, processed, skipped, failed, failed_uris, elapsed_s, rate_per_s, "
                                    "index_rebuilt, ...} as JSON");
  cmd->callback([&] {
    action = [&] {
      ReindexOptions run = options;
      if (limit >= 0) run.limit = limit;
      if (topic_opt->count() > 0) run.topic = topic;
      if (since_opt->count() > 0) run.since = since;
      return run_reindex(globals, run, json_out);
    };
  });
}

}  // namespace vstore::cli
