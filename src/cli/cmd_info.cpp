// SPDX-License-Identifier: Apache-2.0
// `vstore config show` (every setting, resolved, with where it came from) and `vstore version`
// (vstore, its commit, PostgreSQL, pgvector, the model, the BLAS library).
#include <cstdlib>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "embed/embed_bert.hpp"
#include "embed/embed_local.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/article_store.hpp"
#include "vstore_commit.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

std::string pool_seconds(std::chrono::seconds s) { return std::to_string(s.count()); }

// Where a variable's value came from: the process environment wins (a variable set to the
// empty string counts as unset, as load_config() reads it), then the .env file, else default.
std::string source_of(const std::string& name, const Environment& merged, const std::string& env_file) {
  if (const char* v = std::getenv(name.c_str()); v != nullptr && *v != '\0') return "environment";
  if (auto it = merged.find(name); it != merged.end() && !it->second.empty()) return env_file;
  return "default";
}

int run_config_show(const Globals& globals, bool json_out) {
  auto env = read_environment(globals.env_file, globals.env_file_given ? EnvFile::required : EnvFile::optional);
  if (!env) return report(env.error());
  auto cfg = load_config(*env);
  if (!cfg) return report(cfg.error());
  const Config& c = *cfg;
  const std::string env_file = std::filesystem::absolute(globals.env_file).string();

  // name, value (null when unset), shown in text as
  std::vector<std::pair<std::string, json>> rows;
  auto secret = [](const std::string& v) { return v.empty() ? json(nullptr) : json("(set, not shown)"); };
  rows.emplace_back("VSTORE_DATA_DIR", c.data_dir.string());
  if (c.database_url) {
    rows.emplace_back("DATABASE_URL", redact_url(*c.database_url));
  } else {
    auto conninfo = resolve_conninfo(c);
    rows.emplace_back("DATABASE_URL",
                      conninfo ? json(fmt::format("(unset: the embedded cluster, {})", redact_url(*conninfo)))
                               : json(fmt::format("(unset: the embedded cluster under {}, not running)",
                                                  (c.data_dir / "pg").string())));
  }
  json read_urls = json::array();
  for (const auto& u : c.database_read_urls) read_urls.push_back(redact_url(u));
  rows.emplace_back("DATABASE_READ_URLS", read_urls.empty() ? json(nullptr) : read_urls);
  rows.emplace_back("DATABASE_READ_MAX_LAG", fmt::format("{}ms", c.database_read_max_lag.count()));
  rows.emplace_back("VECTOR_BACKEND", std::string(to_string(c.backend)));
  rows.emplace_back("VECTOR_PRIMARY", std::string(to_string(c.primary)));
  rows.emplace_back("VSTORE_SHADOW_COMPARE", c.shadow_compare);
  rows.emplace_back("VSTORE_TABLE", c.table);
  rows.emplace_back("CHROMA_URL", c.chroma_url.empty() ? json(nullptr) : json(redact_url(c.chroma_url)));
  rows.emplace_back("CHROMA_COLLECTION", c.chroma_collection);
  rows.emplace_back("CHROMA_DB_DIR", c.chroma_db_dir);
  rows.emplace_back("CHROMA_TOKEN", secret(c.chroma_token));
  rows.emplace_back("CHROMA_TIMEOUT", fmt::format("{}s", c.chroma_timeout.count()));
  rows.emplace_back("EMBEDDING_PROVIDER", c.embedding_provider);
  rows.emplace_back("EMBEDDING_MODEL", c.embedding_model);
  rows.emplace_back("EMBEDDING_DIM", c.embedding_dim);
  if (c.embedding_provider == "local") {
    auto dir = embed::find_model_dir(c, embed::model_dir_records());
    rows.emplace_back("VSTORE_MODEL_DIR", dir ? json(dir->string()) : json(fmt::format("(not found: {})", dir.error().message())));
  } else {
    rows.emplace_back("VSTORE_MODEL_DIR", c.model_dir ? json(c.model_dir->string()) : json(nullptr));
  }
  rows.emplace_back("VSTORE_EMBED_THREADS", c.embed_threads);
  rows.emplace_back("OPENAI_BASE_URL", c.openai_base_url.empty() ? json(nullptr) : json(redact_url(c.openai_base_url)));
  rows.emplace_back("OPENAI_TIMEOUT", fmt::format("{}s", c.openai_timeout.count()));
  rows.emplace_back("OPENAI_API_KEY", secret(c.openai_api_key));
  rows.emplace_back("PGVECTOR_INDEX_TYPE", std::string(to_string(c.pgvector.index_type)));
  rows.emplace_back("PGVECTOR_HNSW_M", c.pgvector.hnsw_m);
  rows.emplace_back("PGVECTOR_HNSW_EF_CONSTRUCTION", c.pgvector.hnsw_ef_construction);
  rows.emplace_back("PGVECTOR_HNSW_EF_SEARCH", c.pgvector.hnsw_ef_search);
  rows.emplace_back("PGVECTOR_IVFFLAT_LISTS", c.pgvector.ivfflat_lists);
  rows.emplace_back("PGVECTOR_IVFFLAT_PROBES", c.pgvector.ivfflat_probes);
  rows.emplace_back("DB_POOL_SIZE", c.pool.size);
  rows.emplace_back("DB_MAX_OVERFLOW", c.pool.max_overflow);
  rows.emplace_back("DB_POOL_TIMEOUT", pool_seconds(c.pool.timeout) + "s");
  rows.emplace_back("DB_POOL_RECYCLE", c.pool.recycle.count() < 0 ? std::string("never") : pool_seconds(c.pool.recycle) + "s");
  rows.emplace_back("VSTORE_STATEMENT_TIMEOUT", c.pool.statement_timeout.count() == 0
                                                    ? std::string("none")
                                                    : fmt::format("{}ms", c.pool.statement_timeout.count()));
  rows.emplace_back("VSTORE_HTTP_ADDR", c.http_addr);
  rows.emplace_back("VSTORE_API_TOKEN", secret(c.api_token));

  const bool env_file_exists = std::filesystem::is_regular_file(globals.env_file);
  // The data directory may also come from set-up's record: its source is then the record's path.
  auto source = [&](const std::string& name) {
    std::string from = source_of(name, *env, env_file);
    if (name == "VSTORE_DATA_DIR" && from == "default") from = c.data_dir_source;
    return from;
  };
  if (json_out) {
    json settings = json::object();
    for (const auto& [name, value] : rows) {
      settings[name] = {{"value", value}, {"source", source(name)}};
    }
    print_json({{"env_file", env_file_exists ? json(env_file) : json(nullptr)}, {"settings", settings}});
    return k_exit_ok;
  }
  std::printf(".env file: %s\n", env_file_exists ? env_file.c_str() : fmt::format("{} (none)", env_file).c_str());
  std::size_t width = 0;
  for (const auto& row : rows) width = std::max(width, row.first.size());
  for (const auto& [name, value] : rows) {
    const std::string shown = value.is_null() ? "(unset)" : value.is_string() ? value.get<std::string>() : value.dump();
    std::printf("%-*s  %s  [%s]\n", static_cast<int>(width), name.c_str(), shown.c_str(), source(name).c_str());
  }
  return k_exit_ok;
}

int run_version(const Globals& globals, bool json_out) {
  json v = {{"vstore", VSTORE_VERSION},
            {"commit", VSTORE_COMMIT},
            {"postgresql", nullptr},
            {"pgvector", nullptr},
            {"database_error", nullptr},
            {"model", nullptr},
            {"model_dir", nullptr},
            {"blas", embed::blas_description()}};
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  v["model"] = cfg->embedding_provider == "hash" ? std::string("vstore-hash-v2") : cfg->embedding_model;
  if (cfg->embedding_provider == "local") {
    if (auto dir = embed::find_model_dir(*cfg, embed::model_dir_records())) v["model_dir"] = dir->string();
  }
  // The server is asked when it can be reached; otherwise the reason is reported, not an error.
  auto versions = [&]() -> Result<void> {
    VS_TRY_ASSIGN(std::string conninfo, resolve_conninfo(*cfg));
    VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo, 5));
    VS_TRY_ASSIGN(pg::PgResult res, conn.exec("SELECT current_setting('server_version'), "
                                               "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                                               "(SELECT default_version FROM pg_available_extensions WHERE name = 'vector')"));
    v["postgresql"] = res.text(0, 0);
    if (!res.is_null(0, 1)) {
      v["pgvector"] = res.text(0, 1);
    } else if (!res.is_null(0, 2)) {
      v["pgvector"] = fmt::format("{} (available, not created in this database)", res.text(0, 2));
    }
    return {};
  }();
  if (!versions) v["database_error"] = versions.error().message();
  if (json_out) {
    print_json(v);
    return k_exit_ok;
  }
  std::printf("vstore     %s (commit %s)\n", VSTORE_VERSION, VSTORE_COMMIT);
  std::printf("postgresql %s\n", v["postgresql"].is_null() ? fmt::format("unknown: {}", v["database_error"].get<std::string>()).c_str()
                                                          : v["postgresql"].get<std::string>().c_str());
  std::printf("pgvector   %s\n", v["pgvector"].is_null() ? "unknown" : v["pgvector"].get<std::string>().c_str());
  std::printf("model      %s%s\n", v["model"].get<std::string>().c_str(),
              v["model_dir"].is_null() ? "" : fmt::format(" ({})", v["model_dir"].get<std::string>()).c_str());
  std::printf("blas       %s\n", v["blas"].get<std::string>().c_str());
  return k_exit_ok;
}

}  // namespace

void add_info_commands(CLI::App& app, const Globals& globals, Action& action) {
  static bool json_out = false;
  auto* config = app.add_subcommand("config", "the settings vstore resolves from the environment and .env");
  config->require_subcommand(1);
  auto* show = config->add_subcommand("show", "print every setting, resolved, with its source (environment, the .env "
                                              "file, or default); passwords and tokens are not shown");
  show->add_flag("--json", json_out, "print {env_file, settings: {NAME: {value, source}}} as JSON");
  show->callback([&] { action = [&] { return run_config_show(globals, json_out); }; });

  auto* version = app.add_subcommand("version", "vstore's version and commit, PostgreSQL's and pgvector's versions "
                                                "(when the database can be reached), the model and the BLAS library");
  version->add_flag("--json", json_out, "print the versions as JSON");
  version->callback([&] { action = [&] { return run_version(globals, json_out); }; });
}

}  // namespace vstore::cli
