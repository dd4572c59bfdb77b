// SPDX-License-Identifier: Apache-2.0
// `vstore cleanup-chroma` and `vstore restore-chroma`: the last step of the move and its way back.
#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/chroma_backup.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

struct CleanupArgs {
  bool dry_run = false;
  bool confirm = false;
  bool no_backup = false;
  bool dir = false;
  bool server = false;
  bool json_out = false;
};

struct RestoreArgs {
  std::string backup;
  bool json_out = false;
};

std::string human_bytes(std::int64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < 1024 * 1024) return fmt::format("{:.1f} kB", static_cast<double>(bytes) / 1024.0);
  if (bytes < 1024LL * 1024 * 1024) return fmt::format("{:.1f} MB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return fmt::format("{:.2f} GB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
}

void print_plan(const CleanupPlan& plan) {
  if (plan.kind == "directory") {
    std::printf("chroma directory %s: %lld files, %s; collections: %s\n", plan.target.c_str(),
                static_cast<long long>(plan.files), human_bytes(plan.bytes).c_str(),
                plan.collections.empty() ? "none" : fmt::format("{}", fmt::join(plan.collections, ", ")).c_str());
  } else {
    std::printf("chroma %s: %lld records\n", plan.target.c_str(), static_cast<long long>(plan.records));
  }
  if (plan.validation) {
    const auto& v = *plan.validation;
    std::printf("latest validation: %s, %s%s\n", v.finished_at.value_or("?").c_str(),
                v.status != "succeeded" ? "did not finish" : (v.passed.value_or(false) ? "passed" : "did not pass"),
                v.report_path.empty() ? "" : fmt::format(" ({})", v.report_path).c_str());
  } else {
    std::printf("latest validation: none\n");
  }
  std::printf("last vector write: %s\n", plan.last_write.value_or("none").c_str());
}

int run_cleanup(const Globals& globals, const CleanupArgs& args) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  auto conninfo = resolve_conninfo(*cfg);
  if (!conninfo) return report(conninfo.error());
  CleanupOptions options;
  options.backup = !args.no_backup;
  options.target = args.dir ? ChromaTarget::directory : args.server ? ChromaTarget::server : ChromaTarget::automatic;
  const auto start = std::chrono::steady_clock::now();
  if (args.dry_run) {
    auto plan = plan_cleanup_chroma(*conninfo, *cfg, options);
    if (!plan) return report(plan.error());
    if (args.json_out) {
      json j = plan->to_json();
      j["dry_run"] = true;
      j["removed"] = false;
      j["backup"] = options.backup;
      print_json(j);
    } else {
      print_plan(*plan);
      if (plan->allowed()) {
        std::printf("--confirm would %sremove it\n", options.backup ? "back it up under the data directory, then " : "");
      } else {
        for (const auto& r : plan->refusals) std::printf("--confirm would refuse: %s\n", r.c_str());
      }
      std::printf("dry run: nothing was removed\n");
    }
    return k_exit_ok;
  }
  auto done = cleanup_chroma(*conninfo, *cfg, options);
  if (!done) return report(done.error());
  if (args.json_out) {
    json j = done->plan.to_json();
    j["dry_run"] = false;
    j["removed"] = done->removed;
    j["backup"] = done->backup_path.empty() ? json(nullptr) : json(done->backup_path);
    j["manifest"] = done->manifest_path.empty() ? json(nullptr) : json(done->manifest_path);
    j["sha256"] = done->backup ? json(done->backup->archive_sha256) : json(nullptr);
    j["elapsed_s"] = elapsed_s(start);
    print_json(j);
  } else {
    print_plan(done->plan);
    if (done->backup) {
      std::printf("backup: %s (%s, sha256 %s; manifest %s)\n", done->backup_path.c_str(),
                  human_bytes(done->backup->archive_bytes).c_str(), done->backup->archive_sha256.c_str(),
                  done->manifest_path.c_str());
      std::printf("restore it with: vstore restore-chroma %s\n", done->backup_path.c_str());
    } else {
      std::printf("backup: none (--no-backup)\n");
    }
    print_done("cleanup-chroma", fmt::format("removed {}", done->plan.target), start);
  }
  return k_exit_ok;
}

int run_restore(const Globals& globals, const RestoreArgs& args) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  // The operations log is a record, not a condition: a restore works without the database.
  auto conninfo = resolve_conninfo(*cfg);
  const auto start = std::chrono::steady_clock::now();
  auto done = restore_chroma(conninfo ? *conninfo : std::string(), *cfg, args.backup);
  if (!done) return report(done.error());
  if (args.json_out) {
    print_json({{"kind", done->manifest.kind},
                {"target", done->target},
                {"files", done->files},
                {"records", done->records},
                {"sha256", done->manifest.archive_sha256},
                {"verified", true},
                {"elapsed_s", elapsed_s(start)}});
  } else {
    std::printf("checked %s against sha256 %s\n", args.backup.c_str(), done->manifest.archive_sha256.c_str());
    const std::string what = done->manifest.kind == "directory"
                                 ? fmt::format("{} files, each checked against its sha256", done->files)
                                 : fmt::format("{} records, counted back on the server", done->records);
    print_done("restore-chroma", fmt::format("restored {} ({})", done->target, what), start);
  }
  return k_exit_ok;
}

}  // namespace

void add_cleanup_commands(CLI::App& app, const Globals& globals, Action& action) {
  static CleanupArgs cleanup_args;
  auto* cleanup = app.add_subcommand(
      "cleanup-chroma",
      "the last step of the move: list (--dry-run) or remove (--confirm) the Chroma directory (CHROMA_DB_DIR) or the "
      "collection on CHROMA_URL; --confirm needs VECTOR_BACKEND=pgvector, an empty outbox and a passing `vstore "
      "validate` newer than the last migration, reindex or dual-mode write, and first writes a compressed, "
      "checksummed backup under the data directory");
  auto* mode = cleanup->add_option_group("mode", "what to do");
  mode->add_flag("--dry-run", cleanup_args.dry_run, "list what would be removed and whether --confirm would; change nothing");
  mode->add_flag("--confirm", cleanup_args.confirm, "back up, then remove");
  mode->require_option(1);
  auto* where = cleanup->add_option_group("target", "which Chroma (default: the directory when it exists, else the server)");
  where->add_flag("--dir", cleanup_args.dir, "the directory CHROMA_DB_DIR");
  where->add_flag("--server", cleanup_args.server, "the collection CHROMA_COLLECTION on CHROMA_URL");
  where->require_option(0, 1);
  cleanup->add_flag("--no-backup", cleanup_args.no_backup, "remove without writing a backup first (no way back)");
  cleanup->add_flag("--json", cleanup_args.json_out,
                    "print {kind, target, files, bytes, collections, records, validation, last_write, allowed, "
                    "refusals, dry_run, removed, backup, manifest, sha256, elapsed_s} as JSON");
  cleanup->callback([&] { action = [&] { return run_cleanup(globals, cleanup_args); }; });

  static RestoreArgs restore_args;
  auto* restore = app.add_subcommand("restore-chroma",
                                     "put a backup that cleanup-chroma wrote back where it came from (the directory, "
                                     "or the collection on CHROMA_URL), after checking its sha256");
  restore->add_option("BACKUP", restore_args.backup, "the backup's .tar.gz (or its .json manifest), as cleanup-chroma printed it")
      ->required();
  restore->add_flag("--json", restore_args.json_out,
                    "print {kind, target, files, records, sha256, verified, elapsed_s} as JSON");
  restore->callback([&] { action = [&] { return run_restore(globals, restore_args); }; });
}

}  // namespace vstore::cli
