// SPDX-License-Identifier: Apache-2.0
// `vstore migrate-chroma`: the command-line edge over migrate_chroma() (progress, summary, exit code).
#include <map>
#include <memory>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/migrate.hpp"

namespace vstore::cli {
namespace {

void print_plan(const MigrateReport& r) {
  std::printf("chroma directory %s (schema: %s)\n", r.source.c_str(), r.schema_version.c_str());
  for (const auto& c : r.collections) {
    std::printf("  collection %s: %lld records, dimension %zu, metric %s -> %s (%s), model %s\n", c.name.c_str(),
                static_cast<long long>(c.count), c.dimension, c.metric.c_str(), c.operator_class.c_str(),
                c.distance_operator.c_str(), c.embedding_model.empty() ? "(unknown: pass --model)" : c.embedding_model.c_str());
    std::printf("    would update %lld, insert %lld, skip %lld\n", static_cast<long long>(c.to_update),
                static_cast<long long>(c.to_insert), static_cast<long long>(c.to_skip));
    for (const auto& n : c.notes) std::printf("    note: %s\n", n.c_str());
  }
}

void print_summary(const MigrateReport& r) {
  const auto j = r.to_json();
  for (const auto& c : r.collections) {
    std::printf("collection %s (%s, %zu dims, model %s): migrated %lld (changed %lld, inserted %lld), skipped %lld, errors %lld\n",
                c.name.c_str(), c.metric.c_str(), c.dimension, c.embedding_model.c_str(), static_cast<long long>(c.migrated),
                static_cast<long long>(c.changed), static_cast<long long>(c.inserted), static_cast<long long>(c.skipped),
                static_cast<long long>(c.errors));
    for (const auto& n : c.notes) std::printf("  note: %s\n", n.c_str());
    if (!c.verify.is_null()) {
      std::printf("  verify: %s: rows %lld, vector mismatches %lld, metadata mismatches %lld, document mismatches %lld, "
                  "overlap@10 %.3f\n",
                  c.verify.value("passed", false) ? "passed" : "FAILED", c.verify.value("rows_checked", 0LL),
                  c.verify.value("vector_mismatch", 0LL), c.verify.value("metadata_mismatch", 0LL),
                  c.verify.value("document_mismatch", 0LL), c.verify.value("overlap_at_10", 0.0));
    }
  }
  const auto& s = j["summary"];
  std::printf("Migration complete:\n  chromadb_total: %lld\n  migrated: %lld\n  skipped: %lld\n  errors: %lld\n",
              s["chromadb_total"].get<long long>(), s["migrated"].get<long long>(), s["skipped"].get<long long>(),
              s["errors"].get<long long>());
  if (!r.report_path.empty()) std::printf("report: %s\n", r.report_path.c_str());
}

}  // namespace

void add_migrate_commands(CLI::App& app, const Globals& globals, Action& action) {
  static MigrateOptions opts;
  static std::string collection;
  static std::string model;
  static bool json_out = false;
  auto* cmd = app.add_subcommand(
      "migrate-chroma",
      "copy every embedding of a stopped Chroma persistent directory (chromadb 0.4-1.x) into the pgvector table, "
      "bit-exact; resumable (--resume) and verifiable (--verify)");
  cmd->add_option("--from-dir", opts.from_dir, "Chroma persistent directory (stopped, or a copy)")->required();
  cmd->add_option("--collection", collection, "collection name; required when the directory holds several");
  cmd->add_flag("--dry-run", opts.dry_run, "print the plan (collections, counts, dimension, metric, update/insert/skip)");
  cmd->add_flag("--verify", opts.verify, "compare every migrated row (vector bytes, metadata) and overlap@10; exit 1 on any difference");
  cmd->add_flag("--insert-missing", opts.insert_missing, "create article rows for ids without one (from Chroma metadata and document)");
  cmd->add_flag("--resume", opts.resume, "continue after the last batch an earlier run committed");
  cmd->add_option("--model", model, "embedding_model to record when Chroma stored no embedding function");
  cmd->add_option("--batch-size", opts.batch_size, "records per COPY + merge transaction")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  cmd->add_option("--test-batch-delay-ms", opts.test_batch_delay_ms, "")->group("");  // for tests only
  cmd->add_flag("--json", json_out, "print the report as JSON instead of the summary");
  cmd->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      if (!collection.empty()) opts.collection = collection;
      if (!model.empty()) opts.model = model;
      auto bars = std::make_shared<std::map<std::string, std::unique_ptr<Progress>>>();
      opts.progress = [bars](std::string_view phase, std::int64_t done, std::int64_t total) {
        auto& bar = (*bars)[std::string(phase)];
        if (!bar) bar = std::make_unique<Progress>(fmt::format("migrate-chroma {}", phase), total);
        bar->update(done);
        if (done >= total) {
          bar->finish();
          bars->erase(std::string(phase));
        }
      };
      auto result = migrate_chroma(*conninfo, *cfg, opts);
      if (!result) return report(result.error());
      if (json_out) {
        print_json(result->to_json());
      } else if (result->dry_run) {
        print_plan(*result);
      } else {
        print_summary(*result);
      }
      return result->ok() ? k_exit_ok : k_exit_failure;
    };
  });
}

}  // namespace vstore::cli
