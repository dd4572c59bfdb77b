// SPDX-License-Identifier: Apache-2.0
// `vstore db start|stop|status` and `vstore schema up|down|status`.
#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/schema.hpp"

namespace vstore::cli {
namespace {

nlohmann::json status_json(const EmbeddedStatus& st) {
  return {{"running", st.running},
          {"port", st.port},
          {"root", st.root.string()},
          {"socket_dir", st.socket_dir.string()},
          {"conninfo", st.conninfo}};
}

void print_status(const EmbeddedStatus& st, bool json) {
  if (json) {
    print_json(status_json(st));
  } else if (st.running) {
    std::printf("embedded postgresql running on port %d (socket %s)\n  connect: psql \"%s\"\n", st.port,
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
  for (const auto& m : st.migrations) {
    std::printf("  %d %-16s %s%s\n", m.version, m.name.c_str(), m.applied ? "applied " : "pending",
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
  auto* start = db->add_subcommand("start", "initialise (first time) and start the embedded cluster; prints how to connect");
  start->add_option("--port", port, "TCP port on 127.0.0.1 (default: the last one if free, else any free port)");
  start->add_flag("--json", json, "print the status as JSON");
  start->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      EmbeddedPostgres pg(cfg->data_dir / "pg");
      EmbeddedOptions opts;
      opts.port = port;
      auto st = pg.start(opts);
      if (!st) return report(st.error());
      print_status(*st, json);
      return k_exit_ok;
    };
  });
  auto* stop = db->add_subcommand("stop", "stop the embedded cluster (fast shutdown); stopping a stopped cluster succeeds");
  stop->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      EmbeddedPostgres pg(cfg->data_dir / "pg");
      if (auto done = pg.stop(); !done) return report(done.error());
      std::printf("embedded postgresql stopped\n");
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
  auto run_schema = [&](auto fn) {
    return [&, fn] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto conninfo = resolve_conninfo(*cfg);
      if (!conninfo) return report(conninfo.error());
      auto st = fn(*conninfo, *cfg);
      if (!st) return report(st.error());
      print_schema(*st, json);
      return k_exit_ok;
    };
  };
  auto* up = schema->add_subcommand("up", "apply pending migrations: create the table if missing, else add only the vector columns and indexes");
  up->add_flag("--json", json, "print the resulting status as JSON");
  up->callback([&, run_schema] { action = run_schema([](const std::string& c, const Config& cfg) { return schema_up(c, cfg); }); });
  auto* down = schema->add_subcommand("down", "revert migrations (only what vstore added; a table holding articles is kept)");
  down->add_option("--to", target, "version to go down to (default 0: all)")->check(CLI::Range(0, 3));
  down->add_flag("--json", json, "print the resulting status as JSON");
  down->callback([&, run_schema] {
    action = run_schema([](const std::string& c, const Config& cfg) { return schema_down(c, cfg, target); });
  });
  auto* st = schema->add_subcommand("status", "show applied and pending migrations");
  st->add_flag("--json", json, "print the status as JSON");
  st->callback([&, run_schema] { action = run_schema([](const std::string& c, const Config& cfg) { return schema_status(c, cfg); }); });
}

}  // namespace vstore::cli
