// SPDX-License-Identifier: Apache-2.0
// `vstore db start|stop|status` and `vstore schema up|down|status`.
#include <algorithm>
#include <filesystem>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/schema.hpp"

namespace vstore::cli {
namespace {

// The conninfo is shown redacted: with --tcp it holds the password, which stays in its file.
nlohmann::json status_json(const EmbeddedStatus& st) {
  return {{"running", st.running},
          {"port", st.port},
          {"tcp", st.tcp},
          {"root", st.root.string()},
          {"socket_dir", st.socket_dir.string()},
          {"password_file", st.password_file.empty() ? nlohmann::json(nullptr) : nlohmann::json(st.password_file.string())},
          {"conninfo", redact_url(st.conninfo)}};
}

void print_status(const EmbeddedStatus& st, bool json) {
  if (json) {
    print_json(status_json(st));
  } else if (st.running && st.tcp) {
    std::printf("embedded postgresql running on 127.0.0.1:%d and in %s\n  connect: psql \"%s\" (the password is in %s)\n",
                st.port, st.socket_dir.c_str(), redact_url(st.conninfo).c_str(), st.password_file.c_str());
  } else if (st.running) {
    std::printf("embedded postgresql running on its unix socket in %s (no TCP)\n  connect: psql \"%s\"\n",
                st.socket_dir.c_str(), st.conninfo.c_str());
  } else {
    std::printf("embedded postgresql in %s is not running\n", st.root.c_str());
  }
}

nlohmann::json schema_json(const SchemaStatus& st) {
  nlohmann::json migrations = nlohmann::json::array();
  for (const auto& m : st.migrations) {
    migrations.push_back({{"version", m.version}, {"name", m.name}, {"applied", m.applied},
                          {"applied_at", m.applied_at}, {"details", m.details}});
  }
  return {{"table", st.table},          {"table_exists", st.table_exists}, {"current_version", st.current_version},
          {"latest_version", st.latest_version}, {"migrations", migrations}, {"notes", st.notes}};
}

void print_schema(const SchemaStatus& st, bool json) {
  if (json) {
    print_json(schema_json(st));
    return;
  }
  std::printf("schema of table %s: version %d of %d%s\n", st.table.c_str(), st.current_version, st.latest_version,
              st.table_exists ? "" : " (table does not exist)");
  std::size_t width = 0;
  for (const auto& m : st.migrations) width = std::max(width, m.name.size());
  for (const auto& m : st.migrations) {
    std::printf("  %d %-*s  %s%s\n", m.version, static_cast<int>(width), m.name.c_str(), m.applied ? "applied " : "pending",
                m.applied ? m.applied_at.c_str() : "");
  }
  for (const auto& note : st.notes) std::printf("  note: %s\n", note.c_str());
}

}  // namespace

void add_db_commands(CLI::App& app, const Globals& globals, Action& action) {
  auto* db = app.add_subcommand("db", "the embedded PostgreSQL 15 + pgvector cluster under $VSTORE_DATA_DIR/pg");
  db->require_subcommand(1);
  static bool json = false;
  static int port = 0;
  static bool tcp = false;
  auto* start = db->add_subcommand("start", "initialise (first time) and start the embedded cluster; prints how to connect");
  start->add_flag("--tcp", tcp,
                  "also listen on 127.0.0.1 (scram-sha-256 with a generated password kept in $VSTORE_DATA_DIR/pg/password); "
                  "default: only a unix socket in a private directory");
  start->add_option("--port", port, "the TCP port with --tcp, and the socket's number (default: the last one if free, else any free port)")
      ->check(CLI::Range(1, 65535));
  start->add_flag("--json", json, "print the status as JSON");
  start->callback([&] {
    action = [&] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      EmbeddedPostgres pg(cfg->data_dir / "pg");
      EmbeddedOptions opts;
      opts.port = port;
      opts.tcp = tcp;
      const bool created = !std::filesystem::exists(cfg->data_dir / "pg" / "data" / "PG_VERSION");
      const auto before = pg.status();
      const bool was_running = before && before->running;
      auto st = pg.start(opts);
      if (!st) return report(st.error());
      if (json) {
        nlohmann::json j = status_json(*st);
        j["created"] = created;
        j["already_running"] = was_running;
        j["elapsed_s"] = elapsed_s(started);
        print_json(j);
        return k_exit_ok;
      }
      if (was_running) std::printf("already running\n");
      print_status(*st, false);
      if (created) {
        std::printf("next: vstore schema up (creates the articles table), then vstore ingest FILE.jsonl\n");
        // Creating a cluster takes seconds: it ends with what it did and how long it took.
        print_done("db start", fmt::format("created a new cluster in {} and started it", (cfg->data_dir / "pg").string()),
                   started);
      }
      return k_exit_ok;
    };
  });
  auto* stop = db->add_subcommand("stop", "stop the embedded cluster (fast shutdown); stopping a stopped cluster succeeds");
  stop->add_flag("--json", json, "print the status after stopping as JSON");
  stop->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      EmbeddedPostgres pg(cfg->data_dir / "pg");
      if (auto done = pg.stop(); !done) return report(done.error());
      if (json) {
        auto st = pg.status();
        if (!st) return report(st.error());
        print_status(*st, true);
      } else {
        std::printf("embedded postgresql in %s stopped\n", (cfg->data_dir / "pg").c_str());
      }
      return k_exit_ok;
    };
  });
  auto* status = db->add_subcommand("status", "whether the embedded cluster runs, and where; exit 1 when it does not");
  status->add_flag("--json", json, "print the status as JSON");
  status->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      EmbeddedPostgres pg(cfg->data_dir / "pg");
      auto st = pg.status();
      if (!st) return report(st.error());
      print_status(*st, json);
      return st->running ? k_exit_ok : k_exit_failure;
    };
  });

  auto* schema = app.add_subcommand("schema", "versioned schema migrations of the articles table (DATABASE_URL or the embedded cluster)");
  schema->require_subcommand(1);
  static int target = 0;
  // `summary`: a long command (schema up), whose JSON carries `elapsed_s` and whose text ends
  // with what it did and how long it took (the count of migrations it applied, set by `fn`).
  static int applied_count = -1;
  auto run_schema = [&](auto fn, bool summary = false) {
    return [&, fn, summary] {
      const auto started = std::chrono::steady_clock::now();
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      auto st = fn(*conninfo, *cfg);
      if (!st) return report(st.error());
      if (summary && json) {
        nlohmann::json j = schema_json(*st);
        j["elapsed_s"] = elapsed_s(started);
        print_json(j);
        return k_exit_ok;
      }
      print_schema(*st, json);
      if (summary) {
        print_done("schema up",
                   applied_count > 0 ? fmt::format("{} migration{} applied", applied_count, applied_count == 1 ? "" : "s")
                                     : std::string("nothing was pending"),
                   started);
      }
      return k_exit_ok;
    };
  };
  auto* up = schema->add_subcommand("up", "apply pending migrations: create the table if missing, else add only the vector columns and indexes");
  up->add_flag("--json", json, "print the resulting status as JSON");
  up->callback([&, run_schema] {
    action = run_schema([](const std::string& c, const Config& cfg) -> Result<SchemaStatus> {
      VS_TRY_ASSIGN(SchemaStatus before, schema_status(c, cfg));
      VS_TRY_ASSIGN(SchemaStatus after, schema_up(c, cfg));
      if (json) return after;
      // What this run applied, before the status.
      std::string applied;
      applied_count = 0;
      for (const auto& m : after.migrations) {
        const bool was = std::any_of(before.migrations.begin(), before.migrations.end(),
                                     [&](const MigrationState& b) { return b.version == m.version && b.applied; });
        if (m.applied && !was) {
          applied += fmt::format("{}{} {}", applied.empty() ? "" : ", ", m.version, m.name);
          ++applied_count;
        }
      }
      if (applied.empty()) {
        std::printf("nothing was pending: table %s is at version %d of %d\n", after.table.c_str(), after.current_version,
                    after.latest_version);
      } else {
        std::printf("applied %s\n", applied.c_str());
      }
      return after;
    }, true);
  });
  static bool force = false;
  auto* down = schema->add_subcommand("down", "revert migrations (only what vstore added; a table holding articles is kept)");
  down->add_option("--to", target, "version to go down to (default 0: all)")->check(CLI::Range(0, k_latest_schema_version));
  down->add_flag("--force", force, "drop the embedding columns vstore added even when rows hold vectors in them");
  down->add_flag("--json", json, "print the resulting status as JSON");
  down->callback([&, run_schema] {
    action = run_schema([](const std::string& c, const Config& cfg) { return schema_down(c, cfg, target, force); });
  });
  auto* st = schema->add_subcommand("status", "show applied and pending migrations");
  st->add_flag("--json", json, "print the status as JSON");
  st->callback([&, run_schema] { action = run_schema([](const std::string& c, const Config& cfg) { return schema_status(c, cfg); }); });
}

}  // namespace vstore::cli
