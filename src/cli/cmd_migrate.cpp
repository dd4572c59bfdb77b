// SPDX-License-Identifier: Apache-2.0
// `vstore migrate-chroma`: the command-line edge over migrate_chroma() (progress, summary, exit code).
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/cli_common.hpp"
#include "core/process.hpp"
#include "vstore/article_store.hpp"
#include "macro/bench.hpp"
#include "vstore/migrate.hpp"

namespace vstore::cli {
namespace {

// The first line of the plan and of the summary: where from, and into which table. The
// directory's Chroma schema (its migrations: "sysdb 9, metadb 4") only with --verbose; a
// server's API and version always, as they are the server's own words.
void print_source(const MigrateReport& r, bool verbose) {
  std::string detail;
  if (r.source_kind == "server") {
    detail = fmt::format(" ({})", r.schema_version);
  } else if (verbose) {
    detail = fmt::format(" (schema: {})", r.schema_version);
  }
  std::printf("chroma %s %s%s -> table %s\n", r.source_kind.c_str(), r.source.c_str(), detail.c_str(), r.table.c_str());
}

// With --verbose: how each collection was read and how long each phase took.
void print_internals(const CollectionReport& c, const char* indent) {
  if (c.source_stats.is_object() && !c.source_stats.empty()) {
    std::string line;
    for (const auto& [key, value] : c.source_stats.items()) line += fmt::format("{}{} {}", line.empty() ? "" : ", ", key, value.dump());
    std::printf("%sread: %s\n", indent, line.c_str());
  }
  std::string times;
  for (const auto& [key, value] : c.timings.items()) {
    times += fmt::format("{}{} {:.3f}", times.empty() ? "" : ", ", key, value.get<double>());
  }
  if (!times.empty()) std::printf("%stimings: %s\n", indent, times.c_str());
}

// The counts of a collection, each under the name of its JSON key.
std::string counts_line(const CollectionReport& c) {
  return fmt::format("migrated {}, unchanged {}, changed {}, inserted {}, skipped {}, errors {}", c.migrated, c.unchanged,
                     c.changed, c.inserted, c.skipped, c.errors);
}

void print_plan(const MigrateReport& r, bool verbose) {
  print_source(r, verbose);
  if (!r.database_error.empty()) {
    std::printf("  database not reached: %s\n", r.database_error.c_str());
    std::printf("  not checked: %s\n", fmt::format("{}", fmt::join(r.not_checked, "; ")).c_str());
  }
  for (const auto& c : r.collections) {
    std::printf("  collection %s: %lld records, dimension %zu, metric %s -> %s (%s), model %s\n", c.name.c_str(),
                static_cast<long long>(c.count), c.dimension, c.metric.c_str(), c.operator_class.c_str(),
                c.distance_operator.c_str(), c.embedding_model.empty() ? "(unknown: pass --model)" : c.embedding_model.c_str());
    if (c.counted) {
      std::printf("    would be: %s\n", counts_line(c).c_str());
      if (c.count > 0 && c.unchanged == c.count) {
        std::printf("    would leave all %lld unchanged: nothing to write\n", static_cast<long long>(c.unchanged));
      }
      if (const std::string why = r.skip_reason(c); !why.empty()) std::printf("    skipped: %s\n", why.c_str());
    } else {
      std::printf("    would be: errors %lld; the other counts need the table%s\n", static_cast<long long>(c.errors),
                  c.refusal.empty() ? "" : ", and a real run would stop first");
    }
    for (const auto& n : c.notes) std::printf("    note: %s\n", n.c_str());
    if (verbose) print_internals(c, "    ");
  }
  for (const auto& f : r.failures()) std::printf("a real run would fail: %s\n", f.c_str());
}

void print_summary(const MigrateReport& r, bool verbose) {
  const auto j = r.to_json();
  print_source(r, verbose);
  for (const auto& c : r.collections) {
    std::printf("collection %s (%s, %zu dims, model %s): %s\n", c.name.c_str(), c.metric.c_str(), c.dimension,
                c.embedding_model.c_str(), counts_line(c).c_str());
    if (c.count > 0 && c.unchanged == c.count) {
      std::printf("  nothing changed: all %lld rows already held these vectors, this model and this metadata\n",
                  static_cast<long long>(c.unchanged));
    }
    if (const std::string why = r.skip_reason(c); !why.empty()) std::printf("  skipped: %s\n", why.c_str());
    for (const auto& n : c.notes) std::printf("  note: %s\n", n.c_str());
    if (!c.verify.is_null()) {
      // The verification's own keys and values; document_mismatch only when documents were
      // compared (only rows this run created are: the others keep the application's text).
      std::string line = fmt::format("rows_checked {}, missing {}, vector_mismatch {}, model_mismatch {}, "
                                     "metadata_mismatch {}, documents_checked {}",
                                     c.verify.value("rows_checked", 0LL), c.verify.value("missing", 0LL),
                                     c.verify.value("vector_mismatch", 0LL), c.verify.value("model_mismatch", 0LL),
                                     c.verify.value("metadata_mismatch", 0LL), c.verify.value("documents_checked", 0LL));
      if (c.verify.value("documents_checked", 0LL) > 0) {
        line += fmt::format(", document_mismatch {}", c.verify.value("document_mismatch", 0LL));
      }
      line += fmt::format(", overlap_at_10 {:.3f}", c.verify.value("overlap_at_10", 0.0));
      std::printf("  verify: %s: %s\n", c.verify.value("passed", false) ? "passed" : "FAILED", line.c_str());
    }
    if (verbose) print_internals(c, "  ");
  }
  const auto& s = j["summary"];
  std::printf("Migration %s:\n  chromadb_total: %lld\n  migrated: %lld\n  skipped: %lld\n  errors: %lld\n"
              "  unchanged: %lld\n  changed: %lld\n  inserted: %lld\n",
              r.ok() ? "complete" : "failed", s["chromadb_total"].get<long long>(), s["migrated"].get<long long>(),
              s["skipped"].get<long long>(), s["errors"].get<long long>(), s["unchanged"].get<long long>(),
              s["changed"].get<long long>(), s["inserted"].get<long long>());
  if (!r.report_path.empty()) std::printf("report: %s\n", r.report_path.c_str());
}

MigrateProgress progress_bars() {
  auto bars = std::make_shared<std::map<std::string, std::unique_ptr<Progress>>>();
  return [bars](std::string_view phase, std::int64_t done, std::int64_t total) {
    auto& bar = (*bars)[std::string(phase)];
    if (!bar) bar = std::make_unique<Progress>(fmt::format("migrate-chroma {}", phase), total);
    bar->update(done);
    if (done >= total) {
      bar->finish();
      bars->erase(std::string(phase));
    }
  };
}

// The cached benchmark directory of rows x dim, written by real Chroma (the chromadb 1.0.19
// venv of scripts/setup_chroma_py.sh) on first use: with a metadata and a document per record
// (payload "full"), or ids and vectors only ("vectors").
Result<std::string> bench_directory(const Config& cfg, std::int64_t rows, int dim, const std::string& payload) {
  const auto dir = cfg.data_dir / "bench" /
                   (payload == "full" ? fmt::format("chroma-{}x{}", rows, dim) : fmt::format("chroma-{}x{}-{}", rows, dim, payload));
  std::error_code ec;
  if (std::filesystem::exists(dir / "chroma.sqlite3", ec) && std::filesystem::exists(dir / "complete", ec)) {
    return dir.string();
  }
  const auto python = cfg.data_dir / "chroma-py" / "1.0.19" / "bin" / "python";
  if (!std::filesystem::exists(python, ec)) {
    return fail(ErrorCode::not_found, fmt::format("no chromadb venv at {}; run scripts/setup.sh or pass --from-dir",
                                                  python.string()));
  }
  std::filesystem::remove_all(dir, ec);
  std::filesystem::create_directories(dir.parent_path(), ec);
  std::fprintf(stderr, "bench migrate: writing %lld x %d vectors (%s) with chromadb 1.0.19 into %s (once) ...\n",
               static_cast<long long>(rows), dim, payload.c_str(), dir.c_str());
  VS_TRY_ASSIGN(const std::filesystem::path tree, source_tree());
  const std::vector<std::string> argv = {python.string(), (tree / "scripts" / "make_chroma_bench_dir.py").string(),
                                         dir.string(), std::to_string(rows), std::to_string(dim), "1", payload};
  VS_TRY_ASSIGN(const int status, run_process(argv, ProcessOptions{.discard_stdout = true}));
  if (status != 0) {
    return fail(ErrorCode::internal, fmt::format("writing the benchmark directory failed: {} {} exited with status {}",
                                                 argv[0], argv[1], status));
  }
  std::FILE* mark = std::fopen((dir / "complete").c_str(), "w");
  if (mark) std::fclose(mark);
  return dir.string();
}

}  // namespace

void add_migrate_commands(CLI::App& app, const Globals& globals, Action& action) {
  static MigrateOptions opts;
  static std::string collection;
  static std::string model;
  static bool json_out = false;
  auto* cmd = app.add_subcommand(
      "migrate-chroma",
      "copy every embedding of a Chroma collection into the pgvector table, bit-exact: from a stopped persistent "
      "directory (chromadb 0.4-1.x, offline) or a running server (HTTP API v2 or v1); resumable (--resume) and "
      "verifiable (--verify)");
  auto* source = cmd->add_option_group("source", "where to read from (exactly one)");
  source->add_option("--from-dir", opts.from_dir, "Chroma persistent directory (stopped, or a copy)");
  source->add_option("--from-url", opts.from_url, "running Chroma server, http(s)://HOST[:PORT]; sends CHROMA_TOKEN if set");
  source->require_option(1);
  cmd->add_option("--collection", collection,
                  "collection name; a directory: required when it holds several; a server: default CHROMA_COLLECTION");
  cmd->add_option("--tenant", opts.tenant, "Chroma tenant (--from-url)")->capture_default_str();
  cmd->add_option("--database", opts.database, "Chroma database (--from-url)")->capture_default_str();
  cmd->add_option("--page-size", opts.page_size,
                  "records per get request (--from-url; default: the server's max_batch_size, fewer for wide vectors)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1000000}));
  cmd->add_flag("--dry-run", opts.dry_run,
                "print the plan: collections, dimension, metric, model, and the counts a real run would give (migrated, "
                "unchanged, changed, inserted, skipped, errors); writes nothing; without a database, says what it could "
                "not check");
  cmd->add_flag("--verify", opts.verify, "compare every migrated row (vector bytes, metadata) and overlap@10; exit 1 on any difference");
  cmd->add_flag("--insert-missing", opts.insert_missing, "create article rows for ids without one (from Chroma metadata and document)");
  cmd->add_flag("--resume", opts.resume, "continue after the last batch an earlier run committed");
  static bool keep_index = false;
  cmd->add_flag("--keep-index", keep_index, "never drop indexes for a large load (default: vstore's vector index, and into an empty table its "
                "filter B-tree indexes, are dropped and built once after it)");
  cmd->add_option("--model", model, "embedding_model to record when Chroma stored no embedding function");
  cmd->add_option("--batch-size", opts.batch_size, "records per COPY + merge transaction")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
      ->capture_default_str();
  cmd->add_option("--writers", opts.writers,
                  "connections writing batches at once (the batches still commit in order, so --resume stays exact)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  cmd->add_option("--test-batch-delay-ms", opts.test_batch_delay_ms, "")->group("");  // for tests only
  cmd->add_flag("--json", json_out, "print the report as JSON instead of the summary");
  static bool verbose = false;
  cmd->add_flag("--verbose", verbose, "also print how the source was read (the directory's Chroma schema, HNSW slots, "
                                      "log rows) and the seconds of each phase");
  cmd->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      if (!collection.empty()) opts.collection = collection;
      if (!model.empty()) opts.model = model;
      opts.bulk_index = !keep_index;
      opts.progress = progress_bars();
      // A dry run plans without a database when there is none; a real run needs it first.
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo && !opts.dry_run) return report(conninfo.error());
      auto result = conninfo ? migrate_chroma(*conninfo, *cfg, opts) : plan_chroma_without_database(*cfg, opts, conninfo.error());
      if (!result) return report(result.error());
      if (json_out) {
        nlohmann::json j = result->to_json();
        j["elapsed_s"] = elapsed_s(started);
        print_json(j);
      } else if (result->dry_run) {
        print_plan(*result, verbose);
        print_done("migrate-chroma", "dry run, nothing written", started);
      } else {
        print_summary(*result, verbose);
        const nlohmann::json report = result->to_json();
        const nlohmann::json& total = report["summary"];
        print_done("migrate-chroma",
                   fmt::format("{} of {} records migrated, {} skipped, {} errors", total["migrated"].get<long long>(),
                               total["chromadb_total"].get<long long>(), total["skipped"].get<long long>(),
                               total["errors"].get<long long>()),
                   started);
      }
      // A dry run succeeds when it made the plan; the plan says whether a real run would fail.
      if (result->dry_run) return k_exit_ok;
      const auto failures = result->failures();
      std::fflush(stdout);  // the summary first, then why it failed
      for (const auto& f : failures) std::fprintf(stderr, "vstore: %s\n", f.c_str());
      return failures.empty() ? k_exit_ok : k_exit_failure;
    };
  });

  static BenchMigrateOptions bench;
  static std::string bench_dir;
  static std::string bench_collection;
  static std::int64_t bench_rows = 100000;
  static int bench_dim = 384;
  static std::string bench_payload = "vectors";
  static bool bench_json = false;
  auto* bench_cmd = app.get_subcommand("bench")->add_subcommand(
      "migrate", "migrate-chroma from a Chroma directory against a bare binary COPY of the same vectors, and of the "
                 "same rows into a table of the same definition (no vector index on any side)");
  bench_cmd->add_option("--from-dir", bench_dir, "Chroma directory (default: one of --rows x --dim written by chromadb "
                                                 "1.0.19 under $VSTORE_DATA_DIR/bench, made once)");
  bench_cmd->add_option("--collection", bench_collection, "collection name");
  bench_cmd->add_option("--rows", bench_rows, "rows of the generated directory")
      ->check(CLI::Range(std::int64_t{1000}, std::int64_t{10000000}))
      ->capture_default_str();
  bench_cmd->add_option("--dim", bench_dim, "dimensions of the generated directory")->check(CLI::Range(2, 16000))->capture_default_str();
  bench_cmd->add_option("--payload", bench_payload,
                        "what each record of the generated directory holds besides its id and vector: vectors "
                        "(nothing, so both sides move the same information) or full (a two-key metadata and a "
                        "document, which the migration also writes and the bare COPY does not)")
      ->check(CLI::IsMember({"full", "vectors"}))
      ->capture_default_str();
  bench_cmd->add_option("--batch-size", bench.batch_size, "records per COPY on both sides")
      ->check(CLI::Range(std::size_t{100}, std::size_t{1000000}))
      ->capture_default_str();
  bench_cmd->add_option("--repeats", bench.repeats, "loads per side (order rotated; medians reported)")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  bench_cmd
      ->add_option("--warmup", bench.warmup,
                   "untimed rounds of all three loads before the timed ones (the first loads after a start pay for "
                   "the server's fresh WAL segments and memory)")
      ->check(CLI::Range(0, 5))
      ->capture_default_str();
  bench_cmd->add_option("--writers", bench.writers, "connections the migration writes with (migrate-chroma --writers)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  bench_cmd->add_flag("--json", bench_json, "print the result as one JSON object");
  bench_cmd->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      if (bench_dir.empty()) {
        auto made = bench_directory(*cfg, bench_rows, bench_dim, bench_payload);
        if (!made) return report(made.error());
        bench_dir = *made;
      }
      bench.from_dir = bench_dir;
      if (!bench_collection.empty()) bench.collection = bench_collection;
      bench.progress = progress_bars();
      auto result = bench_migrate(*conninfo, bench);
      if (!result) return report(result.error());
      if (bench_json) {
        (*result)["elapsed_s"] = elapsed_s(started);
        print_json(*result);
      } else {
        for (const auto& [key, value] : result->items()) {
          if (!value.is_object()) std::printf("%-18s %s\n", key.c_str(), value.dump().c_str());
        }
        print_done("bench migrate", "finished", started);
      }
      return k_exit_ok;
    };
  });
}

}  // namespace vstore::cli
