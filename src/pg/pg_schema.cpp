// SPDX-License-Identifier: Apache-2.0
// Schema migrations. Each migration runs in one transaction holding an advisory lock, records
// what it did in vstore_schema_migrations.details, and its down step undoes exactly that:
//   1 base           CREATE EXTENSION vector; CREATE TABLE <table> when it does not exist
//   2 vector_columns embedding vector(dim), embedding_model, vector_metadata, publication_date_ts
//                    and B-tree indexes on (topic, analyzed), publication_date, publication_date_ts
//   3 vector_index   HNSW or IVFFlat (cosine) per PGVECTOR_*; an existing index on embedding is adopted
//   4 dual_outbox    the outbox table of the dual-mode backend
//   5 embedding_storage  STORAGE MAIN on the embedding column vstore added, up to 448 dimensions (the vector stays in the row)
//   6 dual_stats     the dual-mode counters that outlive a process (shadow reads, the secondary's last error)
//   7 operations     embedding_text_hash per row (the text a vector was made from), the operations log
//                    vstore_operations (migrate-chroma, reindex, validate, cleanup-chroma runs) and
//                    vstore_dual_stats.last_write_at (the newest dual-mode write applied to the secondary)
// Invariant: nothing the application owns (its table, rows, columns, indexes) is ever dropped.
#include "vstore/schema.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <iterator>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "pg/pg_bulk_index.hpp"
#include "pg/pg_catalog.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/number_parse.hpp"
#include "pg/pg_version.hpp"

namespace vstore {
namespace {

using pg::Connection;
using pg::Param;
using pg::PgResult;
using nlohmann::json;

constexpr const char* k_version_table = "vstore_schema_migrations";
constexpr std::int64_t k_lock_key = 0x7673746f7265;  // "vstore"

struct Migration {
  int version;
  const char* name;
};
constexpr Migration k_migrations[] = {
    {1, "base"}, {2, "vector_columns"}, {3, "vector_index"}, {4, "dual_outbox"}, {5, "embedding_storage"},
    {6, "dual_stats"}, {7, "operations"}};
constexpr int k_latest = k_latest_schema_version;
static_assert(std::size(k_migrations) == k_latest);

std::string q(std::string_view ident) { return Connection::quote_ident(ident); }

Result<bool> table_exists(Connection& conn, const std::string& table) {
  Param p[] = {Param::text(table)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("SELECT to_regclass($1) IS NOT NULL", p));
  return res.get(0, 0) == "t";
}

Result<bool> column_exists(Connection& conn, const std::string& table, const std::string& column) {
  Param p[] = {Param::text(table), Param::text(column)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) "
                                               "AND attname = $2 AND attnum > 0 AND NOT attisdropped",
                                               p));
  return res.rows() > 0;
}

Result<bool> index_exists(Connection& conn, const std::string& name) {
  Param p[] = {Param::text(name)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("SELECT to_regclass($1) IS NOT NULL", p));
  return res.get(0, 0) == "t";
}

// Creates the version table when it is missing (only then: a `schema up` with nothing pending
// needs no CREATE on the schema).
Result<void> ensure_version_table(Connection& conn) {
  VS_TRY_ASSIGN(bool exists, table_exists(conn, k_version_table));
  if (exists) return {};
  VS_TRY(conn.exec(fmt::format("CREATE TABLE IF NOT EXISTS {} (table_name text NOT NULL, version integer NOT NULL, "
                               "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), "
                               "details jsonb NOT NULL DEFAULT '{{}}', PRIMARY KEY (table_name, version))",
                               k_version_table)));
  return {};
}

// Checks the details a migration recorded against the shapes the code below reads from them, so
// that every accessor is safe on data read back from the database. Errors: corruption.
Result<void> check_details(int version, const json& details) {
  auto bad = [&](std::string_view key, std::string_view expected) {
    return fail(ErrorCode::corruption, fmt::format("the details {} recorded for migration {} hold {}{} that is not {}",
                                                   k_version_table, version, key.empty() ? "a value" : "key ", key,
                                                   expected));
  };
  if (!details.is_object()) return bad("", "a JSON object");
  for (const char* key : {"created_table", "created_extension", "changed"}) {
    if (auto it = details.find(key); it != details.end() && !it->is_boolean()) return bad(key, "a bool");
  }
  for (const char* key : {"created_index", "previous_storage", "type"}) {
    if (auto it = details.find(key); it != details.end() && !it->is_string()) return bad(key, "a string");
  }
  for (const char* key : {"created_indexes", "added_columns"}) {
    auto it = details.find(key);
    if (it == details.end()) continue;
    if (!it->is_array() || !std::all_of(it->begin(), it->end(), [](const json& v) { return v.is_string(); })) {
      return bad(key, "a list of strings");
    }
  }
  if (auto it = details.find("params"); it != details.end()) {
    if (!it->is_object()) return bad("params", "an object");
    for (const char* key : {"m", "ef_construction", "lists"}) {
      if (auto p = it->find(key); p != it->end() && !p->is_number_integer()) return bad(fmt::format("params.{}", key), "an integer");
    }
  }
  return {};
}

Result<std::map<int, std::pair<std::string, json>>> applied_versions(Connection& conn, const std::string& table) {
  std::map<int, std::pair<std::string, json>> out;
  VS_TRY_ASSIGN(bool exists, table_exists(conn, k_version_table));
  if (!exists) return out;
  Param p[] = {Param::text(table)};
  VS_TRY_ASSIGN(PgResult res,
                conn.exec_params(fmt::format("SELECT version, to_char(applied_at AT TIME ZONE 'UTC', "
                                             "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), details::text FROM {} "
                                             "WHERE table_name = $1 ORDER BY version",
                                             k_version_table),
                                 p));
  for (int r = 0; r < res.rows(); ++r) {
    json details = json::parse(res.get(r, 2), nullptr, false);
    VS_TRY_ASSIGN(const std::int64_t version, parse_int64(res.get(r, 0), "a migration version"));
    VS_TRY(check_details(static_cast<int>(version), details));
    out[static_cast<int>(version)] = {res.text(r, 1), std::move(details)};
  }
  return out;
}

std::string idx_name(const std::string& table, std::string_view suffix) { return fmt::format("{}_{}", table, suffix); }

// ---- migration 1: base ----------------------------------------------------------------------

Result<json> up_base(Connection& conn, const Config& cfg) {
  json details = json::object();
  VS_TRY_ASSIGN(PgResult ext, conn.exec("SELECT extversion FROM pg_extension WHERE extname = 'vector'"));
  details["created_extension"] = ext.rows() == 0;
  if (ext.rows() == 0) {
    // Only a superuser may create pgvector (it is not a trusted extension): for any other role
    // an administrator creates it once, and vstore only uses it.
    auto created = conn.exec("CREATE EXTENSION vector");
    if (!created) {
      return fail(created.error().with_context(
          "cannot create the pgvector extension, which vstore needs and the database does not have yet: a "
          "superuser (an administrator) runs CREATE EXTENSION vector in this database once, after which any "
          "role that may create tables runs `vstore schema up`; pgvector 0.8 must be installed on the server"));
    }
  }
  VS_TRY_ASSIGN(bool exists, table_exists(conn, cfg.table));
  details["created_table"] = !exists;
  if (!exists) {
    VS_TRY(conn.exec(fmt::format(
        "CREATE TABLE {} (uri text PRIMARY KEY, title text, summary text, raw text, topic text, category text, "
        "news_source text, publication_date timestamptz, tags text, sentiment text, future_signal text, "
        "time_to_impact text, driver_type text, analyzed boolean, metadata jsonb)",
        q(cfg.table))));
    return details;
  }
  // An application-owned table: it must have a unique uri for upserts.
  Param p[] = {Param::text(cfg.table)};
  VS_TRY_ASSIGN(PgResult uniq,
                conn.exec_params("SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                                 "AND a.attnum = i.indkey[0] WHERE i.indrelid = to_regclass($1) AND i.indisunique "
                                 "AND i.indnatts = 1 AND a.attname = 'uri' AND i.indpred IS NULL",
                                 p));
  if (uniq.rows() == 0) {
    return fail(ErrorCode::conflict,
                fmt::format("table {} exists but has no primary key or unique index on column uri; vstore needs "
                            "one to upsert articles by uri",
                            cfg.table));
  }
  return details;
}

Result<void> down_base(Connection& conn, const Config& cfg, const json& details, std::vector<std::string>& notes) {
  if (details.value("created_table", false)) {
    VS_TRY_ASSIGN(bool exists, table_exists(conn, cfg.table));
    if (exists) {
      VS_TRY_ASSIGN(PgResult rows, conn.exec(fmt::format("SELECT EXISTS (SELECT 1 FROM {})", q(cfg.table))));
      if (rows.get(0, 0) == "t") {
        notes.push_back(fmt::format("kept table {}: vstore created it, but it holds articles", cfg.table));
      } else {
        VS_TRY(conn.exec(fmt::format("DROP TABLE {}", q(cfg.table))));
      }
    }
  }
  if (details.value("created_extension", false)) {
    VS_TRY_ASSIGN(PgResult users,
                  conn.exec("SELECT 1 FROM pg_depend d JOIN pg_extension e ON d.refobjid = e.oid "
                            "WHERE e.extname = 'vector' AND d.deptype = 'n' LIMIT 1"));
    VS_TRY_ASSIGN(PgResult cols, conn.exec("SELECT 1 FROM pg_attribute a JOIN pg_type t ON a.atttypid = t.oid "
                                           "WHERE t.typname IN ('vector','halfvec','sparsevec') AND a.attnum > 0 "
                                           "AND NOT a.attisdropped LIMIT 1"));
    if (users.rows() == 0 && cols.rows() == 0) {
      VS_TRY(conn.exec("DROP EXTENSION IF EXISTS vector"));
    } else {
      notes.push_back("kept extension vector: other objects use it");
    }
  }
  return {};
}

// ---- migration 2: vector columns and B-tree indexes -------------------------------------------

// The B-tree indexes filters need, by name and column list, for the table's columns as they are.
Result<std::vector<std::pair<std::string, std::string>>> filter_index_specs(Connection& conn, const Config& cfg) {
  VS_TRY_ASSIGN(bool has_topic, column_exists(conn, cfg.table, "topic"));
  VS_TRY_ASSIGN(bool has_analyzed, column_exists(conn, cfg.table, "analyzed"));
  VS_TRY_ASSIGN(bool has_date, column_exists(conn, cfg.table, "publication_date"));
  std::vector<std::pair<std::string, std::string>> indexes;  // (at most k_filter_indexes)
  if (has_topic) {
    indexes.emplace_back(idx_name(cfg.table, "topic_analyzed_idx"), has_analyzed ? "topic, analyzed" : "topic");
  }
  if (has_date) indexes.emplace_back(idx_name(cfg.table, "publication_date_idx"), "publication_date");
  indexes.emplace_back(idx_name(cfg.table, "publication_date_ts_idx"), "publication_date_ts");
  return indexes;
}

Result<json> up_vector_columns(Connection& conn, const Config& cfg) {
  json details = {{"added_columns", json::array()}, {"created_indexes", json::array()}};
  // An embedding column that already exists must have the configured dimension.
  Param p[] = {Param::text(cfg.table)};
  VS_TRY_ASSIGN(PgResult emb, conn.exec_params("SELECT format_type(atttypid, atttypmod), atttypmod FROM pg_attribute "
                                               "WHERE attrelid = to_regclass($1) AND attname = 'embedding' "
                                               "AND attnum > 0 AND NOT attisdropped",
                                               p));
  if (emb.rows() > 0) {
    const std::string type = emb.text(0, 0);
    const std::string expected = fmt::format("vector({})", cfg.embedding_dim);
    if (type != expected) {
      return fail(ErrorCode::conflict,
                  fmt::format("table {} already has column embedding of type {}, but EMBEDDING_DIM={} needs {}; "
                              "set EMBEDDING_DIM to the column's dimension",
                              cfg.table, type, cfg.embedding_dim, expected));
    }
  }
  const std::pair<const char*, std::string> columns[] = {
      {"embedding", fmt::format("vector({})", cfg.embedding_dim)},
      {"embedding_model", "text"},
      {"vector_metadata", "jsonb"},
      {"publication_date_ts", "bigint"},
  };
  for (const auto& [name, type] : columns) {
    VS_TRY_ASSIGN(bool exists, column_exists(conn, cfg.table, name));
    if (exists) continue;
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} ADD COLUMN {} {}", q(cfg.table), q(name), type)));
    details["added_columns"].push_back(name);
  }
  VS_TRY_ASSIGN(auto indexes, filter_index_specs(conn, cfg));
  for (const auto& [name, cols] : indexes) {
    VS_TRY_ASSIGN(bool exists, index_exists(conn, name));
    if (exists) continue;
    VS_TRY(pg::build_index(conn, fmt::format("CREATE INDEX {} ON {} ({})", q(name), q(cfg.table), cols), false));
    details["created_indexes"].push_back(name);
  }
  return details;
}

// The columns migration 2 added that hold a value in some row, as "embedding (2 rows)".
Result<std::vector<std::string>> columns_holding_data(Connection& conn, const Config& cfg, const json& added) {
  std::vector<std::string> held;
  for (const auto& name : added) {
    if (!name.is_string()) continue;
    const std::string column = name.get<std::string>();
    VS_TRY_ASSIGN(bool present, column_exists(conn, cfg.table, column));
    if (!present) continue;
    VS_TRY_ASSIGN(PgResult rows, conn.exec(fmt::format("SELECT count({}) FROM {}", q(column), q(cfg.table))));
    const std::string count = rows.text(0, 0);
    if (count != "0") held.push_back(fmt::format("{} ({} {})", column, count, count == "1" ? "row" : "rows"));
  }
  return held;
}

// Conflict when a column migration 2 added (`details`) holds data; `going` says what would drop it.
Result<void> refuse_to_drop_data(Connection& conn, const Config& cfg, const json& details, std::string_view going) {
  VS_TRY_ASSIGN(auto held, columns_holding_data(conn, cfg, details.value("added_columns", json::array())));
  if (held.empty()) return {};
  std::string list;
  for (const auto& column : held) list += (list.empty() ? "" : ", ") + column;
  return fail(ErrorCode::conflict,
              fmt::format("table {}: the columns vstore added hold data: {}; {} would drop them, so nothing was "
                          "reverted (run `vstore schema down --force` to drop them anyway)",
                          cfg.table, list, going));
}

Result<void> down_vector_columns(Connection& conn, const Config& cfg, const json& details, bool force) {
  VS_TRY_ASSIGN(bool exists, table_exists(conn, cfg.table));
  if (!exists) return {};
  if (!force) VS_TRY(refuse_to_drop_data(conn, cfg, details, "reverting migration 2"));
  for (const auto& name : details.value("created_indexes", json::array())) {
    VS_TRY(conn.exec(fmt::format("DROP INDEX IF EXISTS {}", q(name.get<std::string>()))));
  }
  const json cols = details.value("added_columns", json::array());
  for (auto it = cols.rbegin(); it != cols.rend(); ++it) {
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} DROP COLUMN IF EXISTS {}", q(cfg.table), q(it->get<std::string>()))));
  }
  return {};
}

// ---- migration 3: the vector index ------------------------------------------------------------


Result<json> up_vector_index(Connection& conn, const Config& cfg) {
  json details = json::object();
  details["type"] = std::string(to_string(cfg.pgvector.index_type));
  VS_TRY_ASSIGN(pg::VectorIndex existing, pg::find_vector_index(conn, cfg.table));
  if (!existing.name.empty()) {
    details["adopted_index"] = existing.name;
    return details;
  }
  const auto& pv = cfg.pgvector;
  std::string name;
  std::string sql;
  switch (pv.index_type) {
    case IndexType::none:
      return details;
    case IndexType::hnsw:
      name = idx_name(cfg.table, "embedding_hnsw_idx");
      sql = fmt::format("CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = {}, "
                        "ef_construction = {})",
                        q(name), q(cfg.table), pv.hnsw_m, pv.hnsw_ef_construction);
      details["params"] = {{"m", pv.hnsw_m}, {"ef_construction", pv.hnsw_ef_construction}};
      break;
    case IndexType::ivfflat:
      name = idx_name(cfg.table, "embedding_ivfflat_idx");
      sql = fmt::format("CREATE INDEX {} ON {} USING ivfflat (embedding vector_cosine_ops) WITH (lists = {})",
                        q(name), q(cfg.table), pv.ivfflat_lists);
      details["params"] = {{"lists", pv.ivfflat_lists}};
      break;
  }
  VS_TRY(pg::build_index(conn, sql, pv.index_type == IndexType::hnsw));
  details["created_index"] = name;
  return details;
}

Result<void> down_vector_index(Connection& conn, const json& details) {
  if (details.contains("created_index")) {
    VS_TRY(conn.exec(fmt::format("DROP INDEX IF EXISTS {}", q(details["created_index"].get<std::string>()))));
  }
  return {};
}

// ---- migration 4: the dual-mode outbox ---------------------------------------------------------
// One table for every vstore table of the database (rows carry table_name); the first table to
// need it creates it, the last to revert drops it.

Result<json> up_dual_outbox(Connection& conn) {
  json details = json::object();
  VS_TRY_ASSIGN(bool exists, table_exists(conn, "vstore_outbox"));
  details["created_table"] = !exists;
  VS_TRY(conn.exec("CREATE TABLE IF NOT EXISTS vstore_outbox (id bigserial PRIMARY KEY, table_name text NOT NULL, "
                   "target text NOT NULL, op text NOT NULL CHECK (op IN ('upsert', 'remove')), uri text NOT NULL, "
                   "payload jsonb, enqueued_at timestamptz NOT NULL DEFAULT now(), attempts integer NOT NULL "
                   "DEFAULT 0, last_error text)"));
  VS_TRY(conn.exec("CREATE INDEX IF NOT EXISTS vstore_outbox_target_idx ON vstore_outbox (table_name, target, id)"));
  return details;
}

Result<void> down_dual_outbox(Connection& conn, const Config& cfg, std::vector<std::string>& notes) {
  VS_TRY_ASSIGN(bool exists, table_exists(conn, "vstore_outbox"));
  if (!exists) return {};
  Param p[] = {Param::text(cfg.table)};
  VS_TRY_ASSIGN(PgResult mine, conn.exec_params("SELECT count(*) FROM vstore_outbox WHERE table_name = $1", p));
  if (mine.get(0, 0) != "0") {
    return fail(ErrorCode::conflict,
                fmt::format("the dual-mode outbox holds {} writes of table {} not yet applied to the secondary store; "
                            "run `vstore outbox drain` first",
                            mine.text(0, 0), cfg.table));
  }
  (void)notes;
  VS_TRY_ASSIGN(PgResult others, conn.exec_params("SELECT count(*) FROM vstore_schema_migrations WHERE version = 4 "
                                                  "AND table_name <> $1",
                                                  p));
  if (others.get(0, 0) == "0") VS_TRY(conn.exec("DROP TABLE vstore_outbox"));
  return {};
}

// ---- migration 5: the vector stays in the row ---------------------------------------------------
// pgvector's vector type has STORAGE external, so a row past about 2 kB (an article with its
// text) has its vector moved out to the TOAST table, and every exact ranking then fetches each
// vector from there. With MAIN the vector stays in the row and the (compressible) texts go out
// first. Only an embedding column that migration 2 added is changed, and only for vectors small
// enough to stay in a row (up to 448 dimensions); rows written earlier keep their layout until
// they are rewritten.

constexpr int k_inline_vector_bytes = 1800;  // up to 448 dimensions

std::string storage_keyword(const std::string& code) {
  if (code == "p") return "PLAIN";
  if (code == "m") return "MAIN";
  if (code == "x") return "EXTENDED";
  return "EXTERNAL";
}

Result<json> up_embedding_storage(Connection& conn, const Config& cfg, const json& vector_columns) {
  json details = json::object();
  bool added = false;
  for (const auto& c : vector_columns.value("added_columns", json::array())) added = added || c == "embedding";
  if (!added) {
    details["changed"] = false;  // the application's own column: its storage is the application's choice
    return details;
  }
  // A vector past about 1,800 bytes cannot share a row with anything under the 2 kB TOAST
  // threshold: it goes out of line whatever the storage, and MAIN would only add a (failing)
  // compression attempt per row.
  if (4 * cfg.embedding_dim + 8 > k_inline_vector_bytes) {
    details["changed"] = false;
    details["reason"] = fmt::format("vector({}) takes {} bytes, more than the {} that fit in a row beside its text",
                                    cfg.embedding_dim, 4 * cfg.embedding_dim + 8, k_inline_vector_bytes);
    return details;
  }
  Param p[] = {Param::text(cfg.table)};
  VS_TRY_ASSIGN(PgResult st, conn.exec_params("SELECT attstorage::text FROM pg_attribute WHERE attrelid = $1::regclass "
                                              "AND attname = 'embedding' AND NOT attisdropped",
                                              p));
  if (st.rows() == 0) return fail(ErrorCode::internal, fmt::format("table {} has no column embedding", cfg.table));
  details["previous_storage"] = st.text(0, 0);
  details["changed"] = st.text(0, 0) != "m";
  if (st.text(0, 0) != "m") {
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE MAIN", q(cfg.table))));
  }
  return details;
}

Result<void> down_embedding_storage(Connection& conn, const Config& cfg, const json& details) {
  if (!details.value("changed", false)) return {};
  VS_TRY_ASSIGN(bool exists, table_exists(conn, cfg.table));
  if (!exists) return {};
  VS_TRY_ASSIGN(bool has, column_exists(conn, cfg.table, "embedding"));
  if (!has) return {};
  VS_TRY(conn.exec(fmt::format("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE {}", q(cfg.table),
                               storage_keyword(details.value("previous_storage", std::string("e"))))));
  return {};
}

// ---- migration 6: dual-mode counters ------------------------------------------------------------
// One row per (table, secondary): the shadow comparisons of every process (each read adds to
// them in one atomic upsert) and the last error the secondary gave a drain. Shared by every
// vstore table of the database, as the outbox is; the last table to revert drops it.

Result<json> up_dual_stats(Connection& conn) {
  json details = json::object();
  VS_TRY_ASSIGN(bool exists, table_exists(conn, "vstore_dual_stats"));
  details["created_table"] = !exists;
  VS_TRY(conn.exec("CREATE TABLE IF NOT EXISTS vstore_dual_stats (table_name text NOT NULL, target text NOT NULL, "
                   "shadow_reads bigint NOT NULL DEFAULT 0, shadow_failures bigint NOT NULL DEFAULT 0, "
                   "shadow_overlap_sum double precision NOT NULL DEFAULT 0, shadow_first_at timestamptz, "
                   "shadow_last_at timestamptz, last_error text, last_error_at timestamptz, "
                   "PRIMARY KEY (table_name, target))"));
  return details;
}

Result<void> down_dual_stats(Connection& conn, const Config& cfg) {
  VS_TRY_ASSIGN(bool exists, table_exists(conn, "vstore_dual_stats"));
  if (!exists) return {};
  Param p[] = {Param::text(cfg.table)};
  VS_TRY(conn.exec_params("DELETE FROM vstore_dual_stats WHERE table_name = $1", p));
  VS_TRY_ASSIGN(PgResult others, conn.exec_params("SELECT count(*) FROM vstore_schema_migrations WHERE version = 6 "
                                                  "AND table_name <> $1",
                                                  p));
  if (others.get(0, 0) == "0") VS_TRY(conn.exec("DROP TABLE vstore_dual_stats"));
  return {};
}

// ---- migration 7: operations ----------------------------------------------------------------
// - embedding_text_hash: SHA-256 of the model name and the text a row's vector was made from, so
//   `vstore reindex` re-embeds only rows whose text changed. A derived value: down drops it even
//   when it holds data (a reindex --force makes it again).
// - vstore_operations: one row per run of an operation (kind, start, end, status, whether it
//   passed, its report file and summary), shared by every vstore table of the database like the
//   outbox; `cleanup-chroma` and `health` read the latest validation from it.
// - vstore_dual_stats.last_write_at: the newest outbox write the drain applied to the secondary.

Result<json> up_operations(Connection& conn, const Config& cfg) {
  json details = json::object();
  VS_TRY_ASSIGN(bool has_hash, column_exists(conn, cfg.table, "embedding_text_hash"));
  details["added_hash_column"] = !has_hash;
  if (!has_hash) {
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} ADD COLUMN embedding_text_hash bytea", q(cfg.table))));
  }
  VS_TRY_ASSIGN(bool exists, table_exists(conn, "vstore_operations"));
  details["created_table"] = !exists;
  VS_TRY(conn.exec("CREATE TABLE IF NOT EXISTS vstore_operations (id bigserial PRIMARY KEY, table_name text NOT NULL, "
                   "kind text NOT NULL, started_at timestamptz NOT NULL DEFAULT now(), finished_at timestamptz, "
                   "status text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')), "
                   "passed boolean, report_path text, summary jsonb NOT NULL DEFAULT '{}'::jsonb)"));
  VS_TRY(conn.exec("CREATE INDEX IF NOT EXISTS vstore_operations_kind_idx ON vstore_operations (table_name, kind, id)"));
  VS_TRY(conn.exec("ALTER TABLE vstore_dual_stats ADD COLUMN IF NOT EXISTS last_write_at timestamptz"));
  return details;
}

Result<void> down_operations(Connection& conn, const Config& cfg, const json& details) {
  VS_TRY_ASSIGN(bool exists, table_exists(conn, cfg.table));
  if (exists && details.value("added_hash_column", false)) {
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} DROP COLUMN IF EXISTS embedding_text_hash", q(cfg.table))));
  }
  Param p[] = {Param::text(cfg.table)};
  VS_TRY_ASSIGN(PgResult others, conn.exec_params("SELECT count(*) FROM vstore_schema_migrations WHERE version = 7 "
                                                  "AND table_name <> $1",
                                                  p));
  VS_TRY_ASSIGN(bool ops, table_exists(conn, "vstore_operations"));
  if (ops) VS_TRY(conn.exec_params("DELETE FROM vstore_operations WHERE table_name = $1", p));
  if (others.get(0, 0) != "0") return {};
  if (ops) VS_TRY(conn.exec("DROP TABLE vstore_operations"));
  VS_TRY_ASSIGN(bool stats, table_exists(conn, "vstore_dual_stats"));
  if (stats) VS_TRY(conn.exec("ALTER TABLE vstore_dual_stats DROP COLUMN IF EXISTS last_write_at"));
  return {};
}

// Runs `sql` (a CREATE INDEX on the table) while a second connection polls the server's
// pg_stat_progress_create_index for the rows the build has taken in, every half second, and
// reports them against the table's rows with a vector. Without a callback, or when the second
// connection cannot be made, the build just runs.
Result<void> build_index_with_progress(Connection& conn, const std::string& conninfo, const Config& cfg,
                                       const std::string& sql, bool hnsw, const IndexBuildProgress& progress) {
  if (!progress) return pg::build_index(conn, sql, hnsw);
  VS_TRY_ASSIGN(PgResult count, conn.exec(fmt::format("SELECT count(embedding) FROM {}", q(cfg.table))));
  VS_TRY_ASSIGN(const std::int64_t total, parse_int64(count.get(0, 0), "the count of vectors"));
  std::mutex mutex;
  std::condition_variable wake;
  bool done = false;
  std::thread poller([&]() {
    auto watcher = Connection::connect(conninfo);
    if (!watcher) return;
    Param p[] = {Param::text(cfg.table)};
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, std::chrono::milliseconds(500), [&] { return done; })) {
      lock.unlock();
      auto res = watcher->exec_params("SELECT tuples_done FROM pg_stat_progress_create_index WHERE relid = to_regclass($1)", p);
      if (res && res->rows() > 0 && !res->is_null(0, 0)) {
        // A progress figure that does not read as a number is skipped (it only feeds the display).
        if (auto tuples = parse_int64(res->get(0, 0), "tuples_done")) progress(std::min<std::int64_t>(total, *tuples), total);
      }
      lock.lock();
    }
  });
  auto built = pg::build_index(conn, sql, hnsw);
  {
    std::lock_guard lock(mutex);
    done = true;
  }
  wake.notify_all();
  poller.join();
  VS_TRY(built);
  progress(total, total);
  return {};
}

// Builds the index migration 3 recorded, if it is missing. Returns whether it built one.
Result<bool> recreate_recorded_index(Connection& conn, const Config& cfg, const json& details, const std::string& conninfo,
                                     const IndexBuildProgress& progress) {
  if (!details.contains("created_index")) return false;
  const std::string name = details["created_index"].get<std::string>();
  VS_TRY_ASSIGN(bool exists, index_exists(conn, name));
  if (exists) return false;
  // The application replaced it with a vector index of its own: that one serves, and a second
  // would double every write's index upkeep.
  VS_TRY_ASSIGN(pg::VectorIndex other, pg::find_vector_index(conn, cfg.table));
  if (!other.name.empty()) return false;
  const json params = details.value("params", json::object());
  const std::string type = details.value("type", std::string());
  std::string sql;
  if (type == "hnsw") {
    sql = fmt::format("CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = {}, ef_construction = {})",
                      q(name), q(cfg.table), params.value("m", 16), params.value("ef_construction", 64));
  } else if (type == "ivfflat") {
    sql = fmt::format("CREATE INDEX {} ON {} USING ivfflat (embedding vector_cosine_ops) WITH (lists = {})", q(name),
                      q(cfg.table), params.value("lists", 100));
  } else {
    return fail(ErrorCode::corruption, fmt::format("migration 3 recorded an index of unknown type \"{}\"", type));
  }
  VS_TRY(build_index_with_progress(conn, conninfo, cfg, sql, type == "hnsw", progress));
  return true;
}

// ---- driver -----------------------------------------------------------------------------------

Result<SchemaStatus> read_status(Connection& conn, const Config& cfg) {
  SchemaStatus st;
  st.table = cfg.table;
  st.latest_version = k_latest;
  VS_TRY_ASSIGN(st.table_exists, table_exists(conn, cfg.table));
  VS_TRY_ASSIGN(auto applied, applied_versions(conn, cfg.table));
  for (const auto& m : k_migrations) {
    MigrationState ms;
    ms.version = m.version;
    ms.name = m.name;
    if (auto it = applied.find(m.version); it != applied.end()) {
      ms.applied = true;
      ms.applied_at = it->second.first;
      ms.details = it->second.second;
      st.current_version = std::max(st.current_version, m.version);
    }
    st.migrations.push_back(std::move(ms));
  }
  return st;
}

template <typename Fn>
Result<void> in_transaction(Connection& conn, Fn&& fn) {
  VS_TRY(conn.exec("BEGIN"));
  auto result = fn();
  if (!result) {
    (void)conn.exec("ROLLBACK");
    return fail(result.error());
  }
  VS_TRY(conn.exec("COMMIT"));
  return {};
}

Result<void> lock(Connection& conn) {
  VS_TRY(conn.exec(fmt::format("SELECT pg_advisory_xact_lock({})", k_lock_key)));
  return {};
}

}  // namespace

Result<SchemaStatus> schema_status(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  return read_status(conn, config);
}

Result<SchemaStatus> schema_up(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  for (const auto& m : k_migrations) {
    VS_TRY(in_transaction(conn, [&]() -> Result<void> {
      VS_TRY(lock(conn));
      // In the migration's own transaction: a first migration that fails (no CREATE on the
      // schema, no pgvector) leaves no version table behind either.
      VS_TRY(ensure_version_table(conn));
      VS_TRY_ASSIGN(auto applied, applied_versions(conn, config.table));
      if (applied.contains(m.version)) return {};
      Result<json> details = fail(ErrorCode::internal, "unknown migration");
      switch (m.version) {
        case 1: details = up_base(conn, config); break;
        case 2: details = up_vector_columns(conn, config); break;
        case 3: details = up_vector_index(conn, config); break;
        case 4: details = up_dual_outbox(conn); break;
        case 5: details = up_embedding_storage(conn, config, applied.contains(2) ? applied.at(2).second : json::object()); break;
        case 6: details = up_dual_stats(conn); break;
        case 7: details = up_operations(conn, config); break;
        default: break;
      }
      if (!details) return fail(details.error().with_context(fmt::format("migration {} ({})", m.version, m.name)));
      const std::string version = std::to_string(m.version);
      const std::string text = details->dump();
      Param p[] = {Param::text(config.table), Param::text(version), Param::text(m.name), Param::text(text)};
      VS_TRY(conn.exec_params(fmt::format("INSERT INTO {} (table_name, version, name, details) "
                                          "VALUES ($1, $2::int, $3, $4::jsonb)",
                                          k_version_table),
                              p));
      return {};
    }));
  }
  VS_TRY(restore_filter_indexes(conninfo, config));
  VS_TRY(conn.exec(fmt::format("ANALYZE {}", q(config.table))));
  VS_TRY(restore_vector_index(conninfo, config));
  return read_status(conn, config);
}

namespace {

// The index name migration 3 recorded as created, or empty.
Result<std::string> recorded_index_name(Connection& conn, const Config& config) {
  VS_TRY_ASSIGN(auto applied, applied_versions(conn, config.table));
  auto it = applied.find(3);
  if (it == applied.end() || !it->second.second.contains("created_index")) return std::string();
  return it->second.second["created_index"].get<std::string>();
}

}  // namespace

Result<std::string> recorded_vector_index(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  return recorded_index_name(conn, config);
}

Result<std::string> suspend_vector_index(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY_ASSIGN(const std::string name, recorded_index_name(conn, config));
  if (name.empty()) return std::string();
  VS_TRY_ASSIGN(bool exists, index_exists(conn, name));
  if (!exists) return std::string();
  VS_TRY(conn.exec(fmt::format("DROP INDEX {}", q(name))));
  return name;
}

Result<bool> restore_vector_index(const std::string& conninfo, const Config& config, const IndexBuildProgress& progress) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  return restore_vector_index(conn, conninfo, config, progress);
}

Result<bool> restore_vector_index(Connection& conn, const std::string& conninfo, const Config& config,
                                  const IndexBuildProgress& progress) {
  VS_TRY_ASSIGN(auto applied, applied_versions(conn, config.table));
  auto it = applied.find(3);
  if (it == applied.end()) return false;
  // Under the table's bulk-load lock (a running bulk load first finishes), and after stopping
  // the build that a killed run left running on the server (it would collide with this one).
  VS_TRY_ASSIGN(std::optional<pg::BulkLoadLock> build_lock, pg::BulkLoadLock::acquire(conninfo, config, true));
  VS_TRY(pg::clear_orphaned_builds(conn, config, it->second.second.value("created_index", std::string())));
  VS_TRY(conn.exec("SET max_parallel_maintenance_workers = 1"));
  auto built = recreate_recorded_index(conn, config, it->second.second, conninfo, progress);
  if (built && *built) {
    if (auto analyzed = conn.exec(fmt::format("ANALYZE {}", q(config.table))); !analyzed) built = fail(analyzed.error());
  }
  (void)conn.exec("RESET max_parallel_maintenance_workers");
  return built;
}

namespace {

// The filter indexes migration 2 recorded as created, as the table's columns define them now.
Result<std::vector<std::pair<std::string, std::string>>> recorded_filter_indexes(Connection& conn, const Config& config) {
  std::vector<std::pair<std::string, std::string>> out;
  VS_TRY_ASSIGN(auto applied, applied_versions(conn, config.table));
  auto it = applied.find(2);
  if (it == applied.end()) return out;
  std::set<std::string> created;
  for (const auto& name : it->second.second.value("created_indexes", json::array())) {
    if (name.is_string()) created.insert(name.get<std::string>());
  }
  VS_TRY_ASSIGN(auto specs, filter_index_specs(conn, config));
  for (auto& spec : specs) {
    if (created.contains(spec.first)) out.push_back(std::move(spec));
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> present_filter_indexes(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY_ASSIGN(auto recorded, recorded_filter_indexes(conn, config));
  std::vector<std::string> out;
  for (auto& [name, cols] : recorded) {
    VS_TRY_ASSIGN(bool exists, index_exists(conn, name));
    if (exists) out.push_back(std::move(name));
  }
  return out;
}

Result<std::vector<std::string>> suspend_filter_indexes(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  return suspend_filter_indexes(conn, config);
}

Result<std::vector<std::string>> suspend_filter_indexes(Connection& conn, const Config& config) {
  VS_TRY_ASSIGN(auto recorded, recorded_filter_indexes(conn, config));
  std::vector<std::string> dropped;
  VS_TRY(in_transaction(conn, [&]() -> Result<void> {
    for (const auto& [name, cols] : recorded) {
      VS_TRY_ASSIGN(bool exists, index_exists(conn, name));
      if (!exists) continue;
      VS_TRY(conn.exec(fmt::format("DROP INDEX {}", q(name))));
      dropped.push_back(name);
    }
    return {};
  }));
  return dropped;
}

Result<std::vector<std::string>> restore_filter_indexes(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  return restore_filter_indexes(conn, {}, conninfo, config);
}

Result<std::vector<std::string>> restore_filter_indexes(Connection& conn, std::span<Connection> spare,
                                                        const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(auto recorded, recorded_filter_indexes(conn, config));
  std::vector<std::pair<std::string, std::string>> missing;
  for (auto& spec : recorded) {
    VS_TRY_ASSIGN(bool exists, index_exists(conn, spec.first));
    if (!exists) missing.push_back(std::move(spec));
  }
  std::vector<std::string> built;
  if (missing.empty()) return built;
  // Each build scans the table once. Every index gets a connection of its own (a spare one the
  // caller holds, else one opened on its thread) and they are built all at once, each by its
  // backend alone: parallel workers on top of several builds only add processes competing for
  // the same cores. An index whose connection cannot be opened is built afterwards on the first
  // connection.
  const bool alone = missing.size() == 1;
  auto build = [&](Connection& c, std::size_t i) -> Result<void> {
    if (!alone) VS_TRY(c.exec("SET max_parallel_maintenance_workers = 0"));
    auto made = pg::build_index(c, fmt::format("CREATE INDEX IF NOT EXISTS {} ON {} ({})", q(missing[i].first),
                                               q(config.table), missing[i].second),
                                false);
    if (!alone) (void)c.exec("RESET max_parallel_maintenance_workers");
    VS_TRY(made);
    return {};
  };
  std::vector<Result<void>> others(missing.size(), Result<void>{});
  std::vector<char> unbuilt(missing.size(), 0);
  std::vector<std::thread> helpers;
  for (std::size_t i = 1; i < missing.size(); ++i) {
    helpers.emplace_back([&, i] {
      if (i - 1 < spare.size()) {
        others[i] = build(spare[i - 1], i);
        return;
      }
      auto c = Connection::connect(conninfo);
      if (!c) {
        unbuilt[i] = 1;
        return;
      }
      others[i] = build(*c, i);
    });
  }
  Result<void> mine = build(conn, 0);
  for (auto& t : helpers) t.join();
  for (std::size_t i = 1; i < missing.size() && mine; ++i) {
    if (unbuilt[i]) mine = build(conn, i);
  }
  VS_TRY(mine);
  for (auto& r : others) VS_TRY(r);
  for (auto& [name, cols] : missing) built.push_back(std::move(name));
  return built;
}

Result<SchemaStatus> schema_down(const std::string& conninfo, const Config& config, int target_version, bool force) {
  if (target_version < 0 || target_version > k_latest) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("schema version {} does not exist: expected 0 to {}", target_version, k_latest));
  }
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  if (target_version < 2 && !force) {
    // Refuse before anything is reverted, rather than half-way down (the check is repeated
    // under the lock when migration 2 is reverted).
    VS_TRY_ASSIGN(auto applied, applied_versions(conn, config.table));
    VS_TRY_ASSIGN(bool exists, table_exists(conn, config.table));
    if (auto it = applied.find(2); it != applied.end() && exists) {
      VS_TRY(refuse_to_drop_data(conn, config, it->second.second, fmt::format("going down to version {}", target_version)));
    }
  }
  std::vector<std::string> notes;
  for (int v = k_latest; v > target_version; --v) {
    VS_TRY(in_transaction(conn, [&]() -> Result<void> {
      VS_TRY(lock(conn));
      VS_TRY_ASSIGN(auto applied, applied_versions(conn, config.table));
      auto it = applied.find(v);
      if (it == applied.end()) return {};
      const json& details = it->second.second;
      Result<void> done;
      switch (v) {
        case 1: done = down_base(conn, config, details, notes); break;
        case 2: done = down_vector_columns(conn, config, details, force); break;
        case 3: done = down_vector_index(conn, details); break;
        case 4: done = down_dual_outbox(conn, config, notes); break;
        case 5: done = down_embedding_storage(conn, config, details); break;
        case 6: done = down_dual_stats(conn, config); break;
        case 7: done = down_operations(conn, config, details); break;
        default: break;
      }
      if (!done) return fail(done.error().with_context(fmt::format("reverting migration {}", v)));
      const std::string version = std::to_string(v);
      Param p[] = {Param::text(config.table), Param::text(version)};
      VS_TRY(conn.exec_params(fmt::format("DELETE FROM {} WHERE table_name = $1 AND version = $2::int", k_version_table),
                              p));
      return {};
    }));
  }
  VS_TRY_ASSIGN(SchemaStatus st, read_status(conn, config));
  st.notes = std::move(notes);
  return st;
}

}  // namespace vstore
