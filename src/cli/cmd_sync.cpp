// SPDX-License-Identifier: Apache-2.0
// `vstore sync`: brings the secondary store of dual mode up to the primary (DualStore::sync) and
// reports the drift it found and what is left.
#include <fmt/format.h>

#include "api/dual_store.hpp"
#include "cli/cli_common.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

struct SyncArgs {
  bool dry_run = false;
  bool keep_extra = false;
  int page = 500;
  bool json_out = false;
};

int run_sync(const Globals& globals, const SyncArgs& args) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  if (cfg->backend != BackendKind::dual) {
    return report(Error(ErrorCode::invalid_argument,
                        fmt::format("sync needs VECTOR_BACKEND=dual (a primary and a secondary store), not {}",
                                    to_string(cfg->backend))));
  }
  OpenOptions options;
  options.create = !args.dry_run;  // the copy may need the secondary's collection; a dry run creates nothing
  auto store = open_store(*cfg, options);
  if (!store) return report(store.error());
  auto* dual = dynamic_cast<api::DualStore*>(store->get());
  if (dual == nullptr) return report(Error(ErrorCode::internal, "the dual store is not a DualStore"));
  dual->stop_background_drain();  // sync drains itself, and reports what it did
  api::SyncOptions sync_options;
  sync_options.dry_run = args.dry_run;
  sync_options.keep_extra = args.keep_extra;
  sync_options.page = static_cast<std::size_t>(args.page);
  auto done = dual->sync(sync_options);
  if (!done) return report(done.error().with_context(fmt::format("sync {} -> {}", dual->primary().backend_name(),
                                                                 dual->secondary_name())));
  const api::SyncReport& r = *done;
  const std::string primary(dual->primary().backend_name());
  if (args.json_out) {
    print_json({{"primary", primary},
                {"secondary", dual->secondary_name()},
                {"dry_run", args.dry_run},
                {"checked", r.checked},
                {"missing", r.missing},
                {"changed", r.changed},
                {"extra", r.extra},
                {"already_equal", r.already_equal},
                {"copied", r.copied},
                {"deleted", r.deleted},
                {"drift_before", r.drift_before},
                {"drift_after", r.drift_after}});
  } else {
    std::printf("sync %s -> %s%s: %lld checked, %lld already equal; drift %lld (%lld missing, %lld changed, %lld extra)\n",
                primary.c_str(), dual->secondary_name().c_str(), args.dry_run ? " (dry run)" : "",
                static_cast<long long>(r.checked), static_cast<long long>(r.already_equal),
                static_cast<long long>(r.drift_before), static_cast<long long>(r.missing),
                static_cast<long long>(r.changed), static_cast<long long>(r.extra));
    if (args.dry_run) {
      std::printf("would copy %lld and delete %lld; nothing was written\n", static_cast<long long>(r.missing + r.changed),
                  static_cast<long long>(args.keep_extra ? 0 : r.extra));
    } else {
      std::printf("copied %lld, deleted %lld; drift after: %lld\n", static_cast<long long>(r.copied),
                  static_cast<long long>(r.deleted), static_cast<long long>(r.drift_after));
    }
  }
  if (!args.dry_run && r.drift_after != 0 && !(args.keep_extra && r.drift_after == r.extra)) {
    print_error("conflict", fmt::format("{} ids still differ after the copy (a write in the meantime?); run sync again",
                                        r.drift_after));
    return k_exit_failure;
  }
  return k_exit_ok;
}

}  // namespace

void add_sync_commands(CLI::App& app, const Globals& globals, Action& action) {
  static SyncArgs args;
  auto* sync = app.add_subcommand("sync", "VECTOR_BACKEND=dual: copy to the secondary store what the primary has and "
                                          "it lacks or holds differently (stored vectors, never re-embedded), remove "
                                          "what only the secondary has, and report the drift; safe to rerun");
  sync->add_flag("--dry-run", args.dry_run, "compare and report only; write nothing");
  sync->add_flag("--keep-extra", args.keep_extra, "leave ids that only the secondary holds");
  sync->add_option("--page", args.page, "ids compared per step")->check(CLI::Range(1, 5000))->capture_default_str();
  sync->add_flag("--json", args.json_out,
                 "print {primary, secondary, dry_run, checked, missing, changed, extra, already_equal, copied, "
                 "deleted, drift_before, drift_after} as JSON");
  sync->callback([&] {
    action = [&] { return run_sync(globals, args); };
  });
}

}  // namespace vstore::cli
