// SPDX-License-Identifier: Apache-2.0
// PgVectorStore. Design:
// - Writes: every upsert is one transaction (write_transaction), rows in uri order so that
//   concurrent writers of the same uris cannot deadlock, retried when the server rolled it back
//   for a deadlock or serialization failure. Few articles -> one INSERT .. ON CONFLICT (uri) DO
//   UPDATE each; many -> binary COPY (straight into the table, or into a per-connection temp
//   staging table and one INSERT .. SELECT .. ON CONFLICT merge). On a table vstore created an
//   existing row also takes the article fields given; on the application's table only the vector
//   columns change, and a given text field that differs from the row's is refused.
// - Values fit their columns: varchar(n)/character(n) lengths are checked before writing, and
//   casts name the bare type (an explicit cast to varchar(n) would truncate silently).
// - Catalog: what the store knows of its table (TableInfo) is re-read when a fingerprint of the
//   table's pg_class row and indexes changes, checked at most once a second, so an index dropped
//   or rebuilt by a bulk load is seen by stores that are already open.
// - Reads: the query vector travels as a binary `vector` parameter through prepared statements;
//   the metadata JSON is built in SQL from the live columns over the stored vector_metadata.
// - Filtered search chooses its plan from the filter's estimated match count (EXPLAIN): few
//   matches -> exact ranking of the matching rows (the ORDER BY expression is not indexable, so
//   the planner uses B-tree/bitmap or seq scans); many -> HNSW/IVFFlat with iterative scan and a
//   candidate list widened by 1/selectivity. A plan that yields fewer than top_k rows falls back
//   to exact. Session GUCs are cached per connection so the common query needs no extra trip.
// - Equal distances rank by uri, so a larger top_k only adds rows after those a smaller one
//   returned. The exact plan sorts by (distance, uri) before its LIMIT. An index yields equal
//   distances in no set order, and a second sort key would make the planner drop the index for
//   a full sort; so an index plan reads one row more than asked for, and when that row ties
//   with the last one asked for, reads twice as many until the tie is whole.
#include "pg/pg_store.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "pg/pg_binary.hpp"
#include "pg/pg_catalog.hpp"
#include "pg/pg_time.hpp"
#include "pg/pg_version.hpp"
#include "vstore/article.hpp"
#include "vstore/schema.hpp"
#include "vstore/date.hpp"
#include "vstore/operations.hpp"
#include "vstore/vector_check.hpp"
#include "vstore/write_check.hpp"

namespace vstore::pg {
namespace {

using nlohmann::json;

constexpr std::int64_t k_exact_max_rows = 8000;   // exact ranking at or below this estimate
constexpr std::size_t k_copy_threshold = 16;       // batches at least this big use COPY
constexpr int k_write_attempts = 4;                // a transaction the server rolled back runs at most this often
constexpr auto k_catalog_recheck = std::chrono::seconds(1);  // the table's catalog fingerprint, at most this often

thread_local SearchPlan t_last_plan = SearchPlan::index;
thread_local std::optional<SearchPlan> t_forced_plan;  // test_force_plan()
thread_local bool t_exact_search = false;              // search_exact() on this thread

std::string q(std::string_view ident) { return quote_sql_identifier(ident); }

// True when `error` says the server rolled the transaction back as a deadlock victim (40P01) or
// for a serialization failure (40001): none of it was applied, so it may run again. (Error has
// no SQLSTATE field; error_from_pg ends the message of every server error with it.)
bool rolled_back_by_server(const Error& error) {
  const std::string& text = error.message();
  return text.ends_with("[sqlstate 40P01]") || text.ends_with("[sqlstate 40001]");
}

double parse_double(std::string_view s) {
  double v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::int64_t parse_int(std::string_view s) {
  std::int64_t v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

std::optional<ColumnKind> kind_of(const std::string& type) {
  if (type == "text" || type.starts_with("character")) return ColumnKind::text;
  if (type == "boolean") return ColumnKind::boolean;
  if (type == "bigint" || type == "integer" || type == "smallint") return ColumnKind::integer;
  if (type == "real" || type == "double precision" || type.starts_with("numeric")) return ColumnKind::real;
  if (type.starts_with("timestamp") || type == "date") return ColumnKind::timestamp;
  return std::nullopt;
}

// Filterable article columns (when present in the table).
constexpr std::string_view k_filter_columns[] = {
    "uri",       "title",         "summary",        "topic",       "category",        "news_source",
    "publication_date", "tags",   "sentiment",      "future_signal", "time_to_impact", "driver_type",
    "analyzed",  "publication_date_ts", "embedding_model"};

// Article columns vstore writes when it inserts a new row, with the Article field that feeds them.
constexpr std::string_view k_article_columns[] = {
    "title", "summary", "raw", "topic", "category", "news_source", "publication_date", "tags",
    "sentiment", "future_signal", "time_to_impact", "driver_type", "analyzed", "metadata"};

// Metadata keys read from live columns (contract keys plus publication_date).
constexpr std::string_view k_metadata_columns[] = {"title", "news_source", "category", "future_signal",
                                                   "sentiment", "time_to_impact", "topic", "tags",
                                                   "summary", "uri", "driver_type", "publication_date",
                                                   "publication_date_ts"};

std::string metadata_expression(const TableInfo& info) {
  std::string obj;
  for (auto key : k_metadata_columns) {
    auto it = info.columns.find(std::string(key));
    if (it == info.columns.end()) continue;
    std::string col = "a." + q(key);
    std::string value = col;
    if (key == "publication_date" && kind_of(it->second) == ColumnKind::timestamp) {
      value = fmt::format("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')", col);
    } else if (key == "tags" && kind_of(it->second) == ColumnKind::text) {
      value = fmt::format("COALESCE({}, '')", col);
    }
    if (!obj.empty()) obj += ", ";
    obj += fmt::format("'{}', {}", key, value);
  }
  return fmt::format("(COALESCE(a.vector_metadata, '{{}}'::jsonb) || jsonb_strip_nulls(jsonb_build_object({})))::text",
                     obj);
}

// The catalog fingerprint of the table: its oid, the xmin of its pg_class row (new after ALTER
// TABLE) and its indexes with their validity; empty when the table does not exist.
Result<std::string> catalog_fingerprint(Connection& conn, const std::string& table) {
  Param p[] = {Param::text(table)};
  VS_TRY_ASSIGN(PgResult res,
                conn.exec_prepared("SELECT c.oid::text || ':' || c.xmin::text || ':' || COALESCE((SELECT "
                                   "string_agg(i.indexrelid::text || '/' || i.indisvalid::text || i.indisready::text, ',' "
                                   "ORDER BY i.indexrelid) FROM pg_index i WHERE i.indrelid = c.oid), '') FROM pg_class c "
                                   "WHERE c.oid = to_regclass(quote_ident($1))",
                                   p));
  return res.rows() == 0 ? std::string() : res.text(0, 0);
}

Result<TableInfo> read_table_info(Connection& conn, const Config& config) {
  TableInfo info;
  info.table = config.table;
  VS_TRY_ASSIGN(info.fingerprint, catalog_fingerprint(conn, config.table));
  {
    Param p[] = {Param::text("vstore_schema_migrations")};
    VS_TRY_ASSIGN(PgResult exists, conn.exec_params("SELECT to_regclass($1) IS NOT NULL", p));
    int version = 0;
    if (exists.get(0, 0) == "t") {
      Param t[] = {Param::text(config.table)};
      VS_TRY_ASSIGN(PgResult v, conn.exec_params("SELECT COALESCE(max(version), 0) FROM vstore_schema_migrations "
                                                 "WHERE table_name = $1",
                                                 t));
      version = static_cast<int>(parse_int(v.get(0, 0)));
    }
    if (version < k_latest_schema_version) {
      // The words of `vstore schema status`.
      return fail(ErrorCode::conflict, fmt::format("table {} is at schema version {} of {}; run `vstore schema up` "
                                                   "first",
                                                   config.table, version, k_latest_schema_version));
    }
    Param t[] = {Param::text(config.table)};
    VS_TRY_ASSIGN(PgResult base, conn.exec_params("SELECT COALESCE((details->>'created_table')::boolean, false) FROM "
                                                  "vstore_schema_migrations WHERE table_name = $1 AND version = 1",
                                                  t));
    info.vstore_owns_table = base.rows() > 0 && base.get(0, 0) == "t";
  }
  Param p[] = {Param::text(config.table)};
  // (format_type without a modifier names character(n) "character", which is character(1).)
  VS_TRY_ASSIGN(PgResult cols, conn.exec_params("SELECT attname, format_type(atttypid, atttypmod), atttypmod, CASE WHEN "
                                                "atttypid = 'bpchar'::regtype THEN 'bpchar' ELSE format_type(atttypid, "
                                                "NULL) END FROM pg_attribute WHERE attrelid = "
                                                "to_regclass(quote_ident($1)) AND attnum > 0 AND NOT attisdropped "
                                                "ORDER BY attnum",
                                                p));
  if (cols.rows() == 0) return fail(ErrorCode::not_found, fmt::format("table {} does not exist", config.table));
  for (int r = 0; r < cols.rows(); ++r) {
    const std::string name = cols.text(r, 0);
    info.columns[name] = cols.text(r, 1);
    info.cast_types[name] = cols.text(r, 3);
    const std::int64_t typmod = parse_int(cols.get(r, 2));
    if (name == "embedding") info.dimension = static_cast<int>(typmod);
    // varchar(n) and character(n) keep n + 4 (the varlena header) in atttypmod.
    if ((cols.get(r, 3) == "character varying" || cols.get(r, 3) == "bpchar") && typmod > 4) {
      info.char_limits[name] = static_cast<int>(typmod - 4);
    }
  }
  if (info.dimension <= 0) {
    return fail(ErrorCode::conflict, fmt::format("table {} has no embedding column of type vector(n)", config.table));
  }
  for (auto name : k_filter_columns) {
    auto it = info.columns.find(std::string(name));
    if (it == info.columns.end()) continue;
    if (auto kind = kind_of(it->second)) info.filter_catalog.columns[std::string(name)] = *kind;
  }
  info.filter_catalog.json_column = "vector_metadata";
  info.filter_catalog.table_alias = "a";
  info.every_metadata_key_a_column = std::ranges::all_of(
      k_metadata_columns, [&](std::string_view key) { return info.columns.count(std::string(key)) != 0; });
  VS_TRY_ASSIGN(VectorIndex idx, find_vector_index(conn, config.table));
  info.index_name = idx.name;
  info.index_oid = idx.oid;
  info.index_type = idx.name.empty() ? "none" : idx.method;
  info.metadata_expr = metadata_expression(info);
  return info;
}

std::optional<std::string> normalized_timestamp(const std::optional<std::string>& date) {
  if (!date) return std::nullopt;
  // The instant read_date() reads (time and zone kept), as ISO 8601 UTC; NULL when it reads none.
  auto read = read_date(*date);
  if (!read) return std::nullopt;
  return iso8601_utc_micros(read->epoch_micros);
}

// The Article field a plain text column takes as it is, or nullptr for the other columns.
const std::optional<std::string>* plain_text_field(const Article& a, std::string_view column) {
  if (column == "title") return &a.title;
  if (column == "summary") return &a.summary;
  if (column == "raw") return &a.raw;
  if (column == "topic") return &a.topic;
  if (column == "category") return &a.category;
  if (column == "news_source") return &a.news_source;
  if (column == "sentiment") return &a.sentiment;
  if (column == "future_signal") return &a.future_signal;
  if (column == "time_to_impact") return &a.time_to_impact;
  if (column == "driver_type") return &a.driver_type;
  return nullptr;
}

// Text value of an article column for a new row (nullopt = NULL).
std::optional<std::string> article_column_value(const Article& a, std::string_view column, bool timestamp_column) {
  if (const std::optional<std::string>* field = plain_text_field(a, column)) return *field;
  if (column == "publication_date") return timestamp_column ? normalized_timestamp(a.publication_date) : a.publication_date;
  if (column == "tags") return a.tags ? std::optional<std::string>(joined_tags(a)) : std::nullopt;
  if (column == "analyzed") return a.analyzed ? std::optional<std::string>(*a.analyzed ? "true" : "false") : std::nullopt;
  if (column == "metadata") return a.extra.empty() ? std::nullopt : std::optional<std::string>(a.extra.dump());
  return std::nullopt;
}

SearchHit hit_from_row(const PgResult& res, int row) {
  SearchHit hit;
  hit.id = res.text(row, 0);
  hit.score = parse_double(res.get(row, 1));
  hit.raw_score = hit.score;
  hit.metadata = json::parse(res.get(row, 2), nullptr, false);
  if (hit.metadata.is_discarded()) hit.metadata = json::object();
  return hit;
}

}  // namespace

struct PgVectorStore::Prepared {
  std::string sql;
  std::vector<std::string> filter_params;
  SearchPlan plan = SearchPlan::index;
  int ef_search = 0;
  std::optional<double> estimated_rows;  // of the filter, when there is one
  std::optional<double> table_rows;      // the planner's estimate, when a filter needed it
};

PgVectorStore::PgVectorStore(const std::string& conninfo, const Config& config, TableInfo info)
    : m_config(config), m_dimension(info.dimension), m_info(std::make_shared<const TableInfo>(std::move(info))),
      m_info_checked_at(std::chrono::steady_clock::now().time_since_epoch().count()), m_pool(conninfo, config.pool) {
  if (!config.database_read_urls.empty()) {
    m_replicas = std::make_unique<ReadReplicas>(config.database_read_urls, config.pool, config.database_read_max_lag);
  }
}

std::shared_ptr<const TableInfo> PgVectorStore::table_info() const {
  std::lock_guard lock(m_info_mutex);
  return m_info;
}

Result<std::shared_ptr<const TableInfo>> PgVectorStore::current_info(Connection& conn) {
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  std::shared_ptr<const TableInfo> info = table_info();
  const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(k_catalog_recheck).count();
  if (now - m_info_checked_at.load() < interval) return info;
  m_info_checked_at.store(now);
  VS_TRY_ASSIGN(const std::string fingerprint, catalog_fingerprint(conn, m_config.table));
  if (fingerprint == info->fingerprint) return info;
  // The table's columns or indexes changed (a bulk load dropped or rebuilt the vector index,
  // the application altered the table): read it again.
  VS_TRY_ASSIGN(TableInfo fresh, read_table_info(conn, m_config));
  if (fresh.dimension != m_dimension) {
    return fail(ErrorCode::conflict, fmt::format("table {} now stores vector({}), not vector({}); reopen the store",
                                                 m_config.table, fresh.dimension, m_dimension));
  }
  info = std::make_shared<const TableInfo>(std::move(fresh));
  std::lock_guard lock(m_info_mutex);
  m_info = info;
  return info;
}

Result<std::unique_ptr<PgVectorStore>> PgVectorStore::open(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY_ASSIGN(TableInfo info, read_table_info(conn, config));
  if (info.dimension != config.embedding_dim) {
    return fail(ErrorCode::conflict,
                fmt::format("table {} stores vector({}) but EMBEDDING_DIM={}; set EMBEDDING_DIM={} or use another table",
                            config.table, info.dimension, config.embedding_dim, info.dimension));
  }
  return std::unique_ptr<PgVectorStore>(new PgVectorStore(conninfo, config, std::move(info)));
}

Result<double> PgVectorStore::table_rows(Connection& conn) {
  // reltuples is refreshed by ANALYZE and autovacuum; re-read it at most every 30 s.
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  const auto checked = m_rows_checked_at.load();
  if (checked != 0 && now - checked < std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                         std::chrono::seconds(30)).count()) {
    return m_rows_estimate.load();
  }
  Param p[] = {Param::text(m_config.table)};
  VS_TRY_ASSIGN(PgResult total, conn.exec_params("SELECT GREATEST(reltuples, 1)::float8 FROM pg_class "
                                                 "WHERE oid = to_regclass(quote_ident($1))",
                                                 p));
  const double rows = total.rows() > 0 ? std::max(1.0, parse_double(total.get(0, 0))) : 1.0;
  m_rows_estimate.store(rows);
  m_rows_checked_at.store(now);
  return rows;
}

Pool& PgVectorStore::read_pool() {
  Pool* replica = m_replicas ? m_replicas->pick() : nullptr;
  return replica ? *replica : m_pool;
}

SearchPlan PgVectorStore::test_last_plan() { return t_last_plan; }

void PgVectorStore::test_force_plan(std::optional<SearchPlan> plan) { t_forced_plan = plan; }

// ---- writes -----------------------------------------------------------------------------------

Result<void> PgVectorStore::check_model(Connection& conn, std::span<const ArticleVector> items) {
  VS_TRY(check_batch_model(items));
  const std::string& model = items.front().embedding_model;
  VS_TRY_ASSIGN(std::optional<std::string> stored, stored_model(conn));
  if (stored && *stored != model) return fail(model_refused(fmt::format("table {}", m_config.table), *stored, model));
  return {};
}

Result<std::optional<std::string>> PgVectorStore::stored_model(Connection& conn) {
  {
    std::lock_guard lock(m_model_mutex);
    if (m_model) return m_model;
  }
  // Read until the table holds a vector: a write that another connection commits (the dual
  // store's transaction, another process) is seen, and a rolled-back write leaves no trace.
  VS_TRY_ASSIGN(PgResult res, conn.exec(fmt::format("SELECT embedding_model FROM {} WHERE embedding IS NOT NULL "
                                                    "AND embedding_model IS NOT NULL LIMIT 1",
                                                    q(m_config.table))));
  if (res.rows() == 0) return std::optional<std::string>();
  std::lock_guard lock(m_model_mutex);
  m_model = res.text(0, 0);
  return m_model;
}

Result<std::optional<std::string>> PgVectorStore::stored_model() {
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  return stored_model(*lease);
}

Result<void> PgVectorStore::write_transaction(const std::function<Result<void>(Connection&)>& body) {
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  Connection& conn = *lease;
  std::minstd_rand jitter(static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  for (int attempt = 1;; ++attempt) {
    VS_TRY(conn.exec("BEGIN"));
    Result<void> done = body(conn);
    if (done) {
      auto committed = conn.exec("COMMIT");
      if (committed) return {};
      done = fail(committed.error());
    }
    (void)conn.exec("ROLLBACK");
    if (attempt >= k_write_attempts || !rolled_back_by_server(done.error())) return done;
    // The server chose this transaction as the deadlock victim (or serialization failure) and
    // rolled it back: nothing of it was applied. A short random pause lets the other one finish.
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + jitter() % 20));
  }
}

Result<void> PgVectorStore::upsert(std::span<const ArticleVector> items) { return upsert_with(items, {}); }

Result<void> PgVectorStore::upsert_with(std::span<const ArticleVector> items, const InTransaction& also) {
  if (items.empty()) return {};
  // `also` runs on the write's connection before COMMIT, and again if the server rolled the
  // transaction back as a deadlock victim (nothing of the first attempt was applied).
  return write_transaction([&](Connection& conn) -> Result<void> {
    VS_TRY(upsert_in(conn, items));
    if (also) VS_TRY(also(conn));
    return {};
  });
}

namespace {
// Number of characters (code points) of UTF-8 text.
std::size_t utf8_length(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0U) != 0x80U; }));
}

// Every value an upsert would write into a varchar(n)/character(n) column fits: PostgreSQL
// truncates an explicit cast silently, so a longer value is refused here, before anything is
// written, naming the article, the column and its limit.
Result<void> check_fits(const TableInfo& info, std::span<const ArticleVector> items) {
  if (info.char_limits.empty()) return {};
  for (const auto& item : items) {
    for (const auto& [column, limit] : info.char_limits) {
      const auto type = info.columns.find(column);
      const bool timestamp = type != info.columns.end() && kind_of(type->second) == ColumnKind::timestamp;
      const std::optional<std::string> value =
          column == "uri" ? std::optional<std::string>(item.article.uri) : article_column_value(item.article, column, timestamp);
      if (!value) continue;
      if (const std::size_t length = utf8_length(*value); length > static_cast<std::size_t>(limit)) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("article {}: {} has {} characters, but column {}.{} ({}) holds at most {}", item.article.uri,
                                column, length, info.table, column, type->second, limit));
      }
    }
  }
  return {};
}
}  // namespace

// On a table the application owns, vstore writes only vector columns; a vector made from text
// other than the row's would not describe the row. So an upsert that gives a text field (one of
// plain_text_field's) whose value differs from the existing row's column is refused. Fields not
// given are not compared: an upsert with no article fields only writes the vector.
Result<void> PgVectorStore::check_unchanged_text(Connection& conn, const TableInfo& info,
                                                 std::span<const ArticleVector* const> rows) {
  static const Article k_no_fields;
  std::vector<std::string> uris, cols, values;
  std::vector<std::string> compared;  // the columns, by their number in `cols`
  std::string cases;
  for (const auto& [column, type] : info.columns) {
    if (column == "uri" || plain_text_field(k_no_fields, column) == nullptr) continue;
    cases += fmt::format(" WHEN {} THEN t.{}::text", compared.size(), q(column));
    for (const ArticleVector* item : rows) {
      if (const std::optional<std::string>* given = plain_text_field(item->article, column); *given) {
        uris.push_back(item->article.uri);
        cols.push_back(std::to_string(compared.size()));
        values.push_back(**given);
      }
    }
    compared.push_back(column);
  }
  if (uris.empty()) return {};
  const std::string uri_arr = sql_array_literal(uris);
  const std::string col_arr = sql_array_literal(cols);
  const std::string value_arr = sql_array_literal(values);
  Param p[] = {Param::text(uri_arr), Param::text(col_arr), Param::text(value_arr)};
  VS_TRY_ASSIGN(PgResult res, conn.exec_params(fmt::format("SELECT s.uri, s.col FROM unnest($1::text[], $2::int[], "
                                                           "$3::text[]) AS s(uri, col, val) JOIN {} t ON t.uri = s.uri "
                                                           "WHERE (CASE s.col{} END) IS DISTINCT FROM s.val "
                                                           "ORDER BY s.uri, s.col LIMIT 1",
                                                           q(info.table), cases),
                                               p));
  if (res.rows() == 0) return {};
  return fail(ErrorCode::invalid_argument,
              fmt::format("article {}: its {} differs from the row's, and table {} is the application's, where vstore "
                          "writes only the vector columns (the vector would not describe the row's text); update the "
                          "row first, or upsert without the text fields",
                          res.text(0, 0), compared.at(static_cast<std::size_t>(parse_int(res.get(0, 1)))), info.table));
}

Result<void> PgVectorStore::upsert_in(Connection& conn, std::span<const ArticleVector> items) {
  if (items.empty()) return {};
  VS_TRY(check_upsert_batch(items, m_dimension));
  VS_TRY(check_model(conn, items));
  VS_TRY_ASSIGN(std::shared_ptr<const TableInfo> info, current_info(conn));
  VS_TRY(check_fits(*info, items));
  // Rows are written in uri order, so that writers of the same uris take their row locks in
  // the same order and cannot deadlock one another.
  std::vector<const ArticleVector*> rows;
  rows.reserve(items.size());
  for (const auto& item : items) rows.push_back(&item);
  std::ranges::sort(rows, {}, [](const ArticleVector* a) -> const std::string& { return a->article.uri; });
  if (!info->vstore_owns_table) VS_TRY(check_unchanged_text(conn, *info, rows));
  if (rows.size() < k_copy_threshold) {
    for (const ArticleVector* item : rows) VS_TRY(upsert_one(conn, *info, *item));
    return {};
  }
  return upsert_many(conn, *info, rows);
}

namespace {
// Columns of a new row: (column, type to cast to) for the article columns the table has.
std::vector<std::pair<std::string, std::string>> insert_columns(const TableInfo& info) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto col : k_article_columns) {
    auto it = info.cast_types.find(std::string(col));
    if (it != info.cast_types.end()) out.emplace_back(std::string(col), it->second);
  }
  return out;
}

// vector_metadata of an existing row that an upsert updates: every metadata key, because the
// read path falls back to these values where a column is NULL.
std::string vector_metadata_json(const ArticleVector& item) { return build_metadata(item.article).dump(); }

// vector_metadata of a row vstore inserts: only the keys that have no column in the table. The
// row's columns are written from the same article and the read path builds those keys from the
// live columns, so a copy in the JSON would be dead weight (and pushes a 384-d row past the
// 2 kB TOAST threshold, which moves the vector out of line).
std::string new_row_metadata_json(const TableInfo& info, const ArticleVector& item) {
  if (info.every_metadata_key_a_column) return "{}";  // the table vstore creates
  Metadata md = build_metadata(item.article);
  for (auto key : k_metadata_columns) {
    if (info.columns.count(std::string(key)) != 0) md.erase(std::string(key));
  }
  return md.dump();
}

std::optional<std::string> ts_text(const Article& a) {
  if (!a.publication_date) return std::nullopt;
  if (auto ts = publication_date_ts(*a.publication_date)) return std::to_string(*ts);
  return std::nullopt;
}

// The ON CONFLICT clause of an upsert. The vector columns of an existing row change; on a table
// vstore created, so do the article columns the upsert gives a value (the row then holds the
// text its vector was made from); on the application's table those are its own.
std::string conflict_update(const TableInfo& info, std::string_view metadata_value) {
  std::string sql = fmt::format(
      " ON CONFLICT (uri) DO UPDATE SET embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model, "
      "embedding_text_hash = EXCLUDED.embedding_text_hash, vector_metadata = {}, publication_date_ts = COALESCE(EXCLUDED.publication_date_ts, t.publication_date_ts)",
      metadata_value);
  if (info.vstore_owns_table) {
    for (const auto& [col, type] : insert_columns(info)) sql += fmt::format(", {0} = COALESCE(EXCLUDED.{0}, t.{0})", q(col));
  }
  return sql;
}
}  // namespace

Result<void> PgVectorStore::upsert_one(Connection& conn, const TableInfo& info, const ArticleVector& item) {
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  const auto cols = insert_columns(info);
  std::vector<std::optional<std::string>> values;
  std::string col_sql = "uri";
  std::string val_sql = "$1";
  values.emplace_back(item.article.uri);
  int n = 1;
  for (const auto& [col, type] : cols) {
    values.push_back(article_column_value(item.article, col, kind_of(type) == ColumnKind::timestamp));
    col_sql += ", " + q(col);
    val_sql += fmt::format(", ${}::{}", ++n, type);
  }
  const std::string vec = encode_vector(item.embedding);
  values.emplace_back(item.embedding_model);
  values.push_back(new_row_metadata_json(info, item));
  values.push_back(ts_text(item.article));
  values.push_back(vector_metadata_json(item));
  col_sql += ", embedding_model, vector_metadata, publication_date_ts, embedding, embedding_text_hash";
  val_sql += fmt::format(", ${}, ${}::jsonb, ${}::bigint, ${}, ${}::bytea", n + 1, n + 2, n + 3, n + 5, n + 6);
  const std::string sql = fmt::format("INSERT INTO {} AS t ({}) VALUES ({}){}", q(info.table), col_sql, val_sql,
                                      conflict_update(info, fmt::format("${}::jsonb", n + 4)));
  std::vector<Param> params;
  for (const auto& v : values) params.push_back(v ? Param::text(*v) : Param::null_value());
  params.push_back(Param{vec, true, false, vec_oid});
  params.push_back(item.text_hash.empty() ? Param::null_value() : Param{item.text_hash, true, false, 0});
  VS_TRY(conn.exec_prepared(sql, params));
  return {};
}

namespace {

enum class Binary { text, timestamptz, boolean, jsonb, other };

Binary binary_kind(const std::string& format_type) {
  if (format_type == "text") return Binary::text;
  if (format_type == "timestamp with time zone") return Binary::timestamptz;
  if (format_type == "boolean") return Binary::boolean;
  if (format_type == "jsonb") return Binary::jsonb;
  return Binary::other;
}

// Writes one article column of a new row in its binary form; false when the value cannot be
// encoded here (the caller then takes the text path that the server casts).
bool write_native(CopyWriter& writer, const Article& a, const std::string& col, Binary kind) {
  if (kind == Binary::text) {
    if (const std::optional<std::string>* field = plain_text_field(a, col)) {
      *field ? writer.bytes_field(**field) : writer.null_field();
      return true;
    }
  }
  const std::optional<std::string> v = article_column_value(a, col, kind == Binary::timestamptz);
  if (!v) {
    writer.null_field();
    return true;
  }
  switch (kind) {
    case Binary::text: writer.bytes_field(*v); return true;
    case Binary::jsonb: writer.jsonb_field(*v); return true;
    case Binary::boolean: writer.bool_field(*v == "true"); return true;
    case Binary::timestamptz:
      if (auto us = timestamptz_micros(*v, Zoneless::utc)) {
        writer.int64_field(*us);
        return true;
      }
      return false;
    case Binary::other: return false;
  }
  return false;
}

void write_vector_columns(CopyWriter& writer, const ArticleVector& item, const std::string& metadata_json) {
  writer.bytes_field(item.embedding_model);
  writer.jsonb_field(metadata_json);
  const auto ts = item.article.publication_date ? publication_date_ts(*item.article.publication_date) : std::nullopt;
  ts ? writer.int64_field(*ts) : writer.null_field();
  writer.vector_field(item.embedding);
  item.text_hash.empty() ? writer.null_field() : writer.bytes_field(item.text_hash);
}

}  // namespace

// Batch upsert. Design:
// - Rows whose uri is new go straight into the table with one binary COPY in the columns'
//   own types: no staging copy, no merge. This needs every article column the table has to be
//   of a type encoded here (text, timestamptz, boolean, jsonb: the table vstore creates) and
//   every value to encode (an ISO timestamp); otherwise those rows take the staging path.
// - Rows whose uri exists (and the rest) are COPYed into a temporary staging table in text
//   form and merged with one INSERT ... ON CONFLICT, which changes only the vector columns of
//   existing rows and casts the text to each column's type on the server.
// - Which uris exist: a batch is first COPYed optimistically as if every uri were new (inside a
//   savepoint; a bulk load of new articles needs no look-up at all). A unique violation rolls
//   back to the savepoint, and the batch is split by a look-up of its uris instead; the store
//   keeps looking up first while batches keep meeting existing rows, and turns optimistic again
//   after a batch whose uris were all new. New rows are streamed: the server stores one slice
//   while the next is encoded.
// - All of it runs inside the caller's transaction, under a savepoint. If another session
//   inserts one of the "new" uris between the look-up and the COPY, the COPY fails with a unique
//   violation; the batch is rolled back to the savepoint and merged instead, which handles the
//   conflict row by row.
// - `items` are in uri order, and the merge inserts in uri order: concurrent writers of the same
//   uris lock them in the same order.
Result<void> PgVectorStore::upsert_many(Connection& conn, const TableInfo& info, std::span<const ArticleVector* const> items) {
  const auto cols = insert_columns(info);
  std::vector<Binary> kinds;
  bool native = info.columns.count("uri") != 0 && binary_kind(info.columns.at("uri")) == Binary::text;
  for (const auto& [col, type] : cols) {
    kinds.push_back(binary_kind(info.columns.at(col)));
    native = native && kinds.back() != Binary::other;
  }

  enum class Mode { optimistic, look_up, merge };
  auto body = [&](Mode mode) -> Result<void> {
    std::vector<const ArticleVector*> merge_rows;
    std::unordered_set<std::string> existing;
    if (mode == Mode::look_up) {
      std::vector<std::string> uris;
      uris.reserve(items.size());
      for (const ArticleVector* item : items) uris.push_back(item->article.uri);
      const std::string arr = sql_array_literal(uris);  // Param::text keeps a view: it must outlive p
      Param p[] = {Param::text(arr)};
      VS_TRY_ASSIGN(PgResult res, conn.exec_params(fmt::format("SELECT uri FROM {} WHERE uri = ANY($1::text[])",
                                                               q(info.table)),
                                                   p));
      for (int row = 0; row < res.rows(); ++row) existing.insert(res.text(row, 0));
      m_look_up_first.store(!existing.empty(), std::memory_order_relaxed);
      // The existing rows are merged whether or not any new row is copied.
      for (const ArticleVector* item : items) {
        if (existing.count(item->article.uri) != 0) merge_rows.push_back(item);
      }
    }
    if (mode != Mode::merge) {
      if (existing.size() < items.size()) {
        // Stream the new rows: the server stores one slice while the next is encoded.
        std::string col_sql = "uri";
        for (const auto& [col, type] : cols) col_sql += ", " + q(col);
        col_sql += ", embedding_model, vector_metadata, publication_date_ts, embedding, embedding_text_hash";
        const int fields = static_cast<int>(cols.size()) + 6;
        std::size_t next = 0;
        auto fill = [&](CopyWriter& writer) -> Result<bool> {
          while (next < items.size() && writer.size() < k_copy_slice_bytes) {
            const ArticleVector& item = *items[next++];
            if (existing.count(item.article.uri) != 0) continue;  // in merge_rows already
            // A value that cannot be encoded sends the row to the merge instead; what was
            // written of it is dropped.
            const std::size_t mark = writer.size();
            writer.begin_row(fields);
            writer.bytes_field(item.article.uri);
            bool ok = true;
            for (std::size_t c = 0; ok && c < cols.size(); ++c) {
              ok = write_native(writer, item.article, cols[c].first, kinds[c]);
            }
            if (!ok) {
              writer.truncate(mark);
              merge_rows.push_back(&item);
              continue;
            }
            write_vector_columns(writer, item, new_row_metadata_json(info, item));
          }
          return next < items.size();
        };
        VS_TRY(conn.copy_stream(fmt::format("COPY {} ({}) FROM STDIN (FORMAT binary)", q(info.table), col_sql), fill));
      }
    } else {
      merge_rows.assign(items.begin(), items.end());
    }

    if (!merge_rows.empty()) VS_TRY(merge_through_stage(conn, info, cols, merge_rows));
    return {};
  };
  auto attempt = [&]() -> Result<void> {
    if (!native) return body(Mode::merge);
    if (!m_look_up_first.load(std::memory_order_relaxed)) {
      VS_TRY(conn.exec("SAVEPOINT vstore_optimistic"));
      Result<void> tried = body(Mode::optimistic);
      if (tried || tried.error().code() != ErrorCode::conflict) return tried;
      // Some uri exists already: undo the attempt and split the batch by a look-up.
      VS_TRY(conn.exec("ROLLBACK TO SAVEPOINT vstore_optimistic"));
      m_look_up_first.store(true, std::memory_order_relaxed);
    }
    return body(Mode::look_up);
  };
  VS_TRY(conn.exec("SAVEPOINT vstore_batch"));
  Result<void> done = attempt();
  if (!done && native && done.error().code() == ErrorCode::conflict) {
    // A concurrent insert of one of the new uris: merge the whole batch instead.
    VS_TRY(conn.exec("ROLLBACK TO SAVEPOINT vstore_batch"));
    done = body(Mode::merge);
  }
  if (!done) return done;  // the caller rolls the transaction back
  VS_TRY(conn.exec("RELEASE SAVEPOINT vstore_batch"));
  return {};
}

Result<void> PgVectorStore::merge_through_stage(Connection& conn, const TableInfo& info,
                                                const std::vector<std::pair<std::string, std::string>>& cols,
                                                std::span<const ArticleVector* const> rows) {
  // Staging table: text for article columns (cast at merge), native types for the rest. A new
  // row gets the metadata keys without a column (vector_metadata), an existing row every key
  // (vector_metadata_full, looked up by uri), as upsert_one does.
  std::string stage_cols = "uri text PRIMARY KEY";
  for (const auto& [col, type] : cols) stage_cols += fmt::format(", {} text", q(col));
  stage_cols += fmt::format(", embedding_model text, vector_metadata jsonb, publication_date_ts bigint, embedding vector({}), "
                            "embedding_text_hash bytea, vector_metadata_full jsonb",
                            info.dimension);
  // (A name of its own: a session may still hold the staging table of an older vstore, whose
  // columns lack embedding_text_hash.)
  const std::string stage = fmt::format("vstore_merge_stage_h{}", info.dimension);

  CopyWriter writer;
  writer.reserve(rows.size() * (static_cast<std::size_t>(info.dimension) * 4 + 512));
  const int fields = static_cast<int>(cols.size()) + 7;
  for (const ArticleVector* item : rows) {
    writer.begin_row(fields);
    writer.bytes_field(item->article.uri);
    for (const auto& [col, type] : cols) {
      writer.text_field(article_column_value(item->article, col, kind_of(type) == ColumnKind::timestamp));
    }
    write_vector_columns(writer, *item, new_row_metadata_json(info, *item));
    writer.jsonb_field(vector_metadata_json(*item));
  }
  const std::string data = writer.finish();

  std::string col_sql = "uri";
  std::string sel_sql = "s.uri";
  for (const auto& [col, type] : cols) {
    col_sql += ", " + q(col);
    sel_sql += fmt::format(", s.{}::{}", q(col), type);
  }
  col_sql += ", embedding_model, vector_metadata, publication_date_ts, embedding, embedding_text_hash";
  sel_sql += ", s.embedding_model, s.vector_metadata, s.publication_date_ts, s.embedding, s.embedding_text_hash";

  VS_TRY(conn.exec(fmt::format("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS", q(stage), stage_cols)));
  // (Empty unless an earlier upsert_in of the same transaction staged rows.)
  VS_TRY(conn.exec(fmt::format("DELETE FROM {}", q(stage))));
  VS_TRY(conn.copy_in(fmt::format("COPY {} FROM STDIN (FORMAT binary)", q(stage)), data));
  VS_TRY(conn.exec(fmt::format(
      "INSERT INTO {} AS t ({}) SELECT {} FROM {} s ORDER BY s.uri{}", q(info.table), col_sql, sel_sql, q(stage),
      conflict_update(info, fmt::format("(SELECT f.vector_metadata_full FROM {} f WHERE f.uri = EXCLUDED.uri)", q(stage))))));
  return {};
}

Result<std::map<std::string, std::string>> PgVectorStore::vector_models(std::span<const std::string> ids) {
  std::map<std::string, std::string> out;
  if (ids.empty()) return out;
  // The primary, not a replica: callers decide what to write from the answer.
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  const std::string arr = sql_array_literal(std::vector<std::string>(ids.begin(), ids.end()));
  Param p[] = {Param::text(arr)};
  VS_TRY_ASSIGN(PgResult res, lease->exec_params(fmt::format("SELECT uri, coalesce(embedding_model, '') FROM {} WHERE "
                                                             "uri = ANY($1::text[]) AND embedding IS NOT NULL",
                                                             q(m_config.table)),
                                                 p));
  for (int row = 0; row < res.rows(); ++row) out.emplace(res.text(row, 0), res.text(row, 1));
  return out;
}

Result<std::int64_t> PgVectorStore::remove(std::span<const std::string> ids) { return remove_with(ids, {}); }

Result<std::int64_t> PgVectorStore::remove_with(std::span<const std::string> ids, const RemoveInTransaction& also) {
  if (ids.empty()) return 0;
  const std::string arr = sql_array_literal(std::vector<std::string>(ids.begin(), ids.end()));
  Param p[] = {Param::text(arr)};
  std::int64_t removed_count = 0;
  VS_TRY(write_transaction([&](Connection& conn) -> Result<void> {
    VS_TRY_ASSIGN(PgResult res, conn.exec_params(fmt::format("UPDATE {} SET embedding = NULL, embedding_model = NULL, "
                                                             "embedding_text_hash = NULL, vector_metadata = NULL WHERE uri = ANY($1::text[]) AND "
                                                             "embedding IS NOT NULL RETURNING uri",
                                                             q(m_config.table)),
                                                 p));
    removed_count = static_cast<std::int64_t>(res.rows());
    if (!also) return {};
    std::vector<std::string> removed;
    removed.reserve(static_cast<std::size_t>(res.rows()));
    for (int row = 0; row < res.rows(); ++row) removed.push_back(res.text(row, 0));
    return also(conn, removed);
  }));
  return removed_count;
}

// ---- reads ------------------------------------------------------------------------------------

Result<void> PgVectorStore::check_query(std::span<const float> query, const SearchOptions& options) const {
  VS_TRY(check_options(options));
  VS_TRY(check_vector(query, m_dimension, "query vector"));
  return {};
}

Result<void> PgVectorStore::check_options(const SearchOptions& options) const {
  if (options.top_k < 1 || options.top_k > k_max_top_k) {
    return fail(ErrorCode::invalid_argument, fmt::format("top_k must be from 1 to {}, not {}", k_max_top_k, options.top_k));
  }
  if (options.ef_search && (*options.ef_search < 1 || *options.ef_search > 1000)) {
    return fail(ErrorCode::invalid_argument, fmt::format("ef_search must be from 1 to 1000, not {}", *options.ef_search));
  }
  if (options.probes && *options.probes < 1) {
    return fail(ErrorCode::invalid_argument, fmt::format("probes must be at least 1, not {}", *options.probes));
  }
  return {};
}

Result<PgVectorStore::Prepared> PgVectorStore::plan_search(Connection& conn, const TableInfo& info,
                                                          const SearchOptions& options) {
  Prepared prep;
  const int ef_default = options.ef_search.value_or(m_config.pgvector.hnsw_ef_search);
  prep.ef_search = ef_default;
  std::string where = "a.embedding IS NOT NULL";
  if (options.where) {
    VS_TRY_ASSIGN(SqlFilter filter, compile_filter(*options.where, info.filter_catalog, 2));
    where += " AND " + filter.sql;
    prep.filter_params = std::move(filter.params);
    // Estimate how many rows match ($1, the query vector, is not part of the estimate).
    std::vector<Param> explain_params = {Param::null_value()};
    for (const auto& v : prep.filter_params) explain_params.push_back(Param::text(v));
    VS_TRY_ASSIGN(PgResult est, conn.exec_params(fmt::format("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} a WHERE "
                                                             "$1::text IS NULL AND {}",
                                                             q(info.table), where),
                                                 explain_params));
    const json plan = json::parse(est.get(0, 0), nullptr, false);
    double est_rows = 0;
    if (plan.is_array() && !plan.empty() && plan[0].is_object()) {
      // Checked access: EXPLAIN's JSON comes from the server.
      if (auto top = plan[0].find("Plan"); top != plan[0].end() && top->is_object()) {
        if (auto rows = top->find("Plan Rows"); rows != top->end() && rows->is_number()) est_rows = rows->get<double>();
      }
    }
    VS_TRY_ASSIGN(const double rows, table_rows(conn));
    const double selectivity = std::clamp(est_rows / rows, 1e-6, 1.0);
    prep.estimated_rows = est_rows;
    prep.table_rows = rows;
    prep.plan = est_rows <= static_cast<double>(k_exact_max_rows) || info.index_type == "none" ||
                        options.top_k > k_max_index_top_k
                    ? SearchPlan::exact
                    : SearchPlan::index_iterative;
    if (t_forced_plan && info.index_type != "none") prep.plan = *t_forced_plan;
    if (t_exact_search) prep.plan = SearchPlan::exact;
    if (prep.plan == SearchPlan::index_iterative) {
      const double widened = 4.0 * options.top_k / selectivity;
      prep.ef_search = static_cast<int>(std::clamp(std::max<double>(ef_default, widened), 1.0, 1000.0));
    }
  } else {
    // An index scan yields at most about ef_search (<= 1000) rows: a larger top_k ranks exactly.
    prep.plan = info.index_type == "none" || options.top_k > k_max_index_top_k || t_exact_search ? SearchPlan::exact
                                                                                                 : SearchPlan::index;
  }
  const std::string table = q(info.table);
  if (prep.plan == SearchPlan::exact) {
    // `+ 0` keeps the ORDER BY from matching the vector index: exact top-N of the matching rows.
    prep.sql = fmt::format(
        "WITH top AS MATERIALIZED (SELECT a.ctid AS rid, a.embedding <=> $1 AS score FROM {0} a WHERE {1} "
        "ORDER BY (a.embedding <=> $1) + 0, a.uri LIMIT {3}) "
        "SELECT a.uri, top.score, {2} FROM top JOIN {0} a ON a.ctid = top.rid ORDER BY top.score, a.uri",
        table, where, info.metadata_expr, options.top_k);
  } else if (prep.plan == SearchPlan::index) {
    // Unfiltered: the index scan yields the rows in order and LIMIT stops it, so the metadata
    // is built for top_k rows only, without the join back by ctid (cheaper for the server; the
    // outer sort puts an iterative scan's relaxed order right). `+ 0` keeps the planner from
    // taking the index order as sorted by score (an incremental sort would then keep it).
    prep.sql = fmt::format(
        "SELECT top.uri, top.score, top.metadata FROM (SELECT a.uri, a.embedding <=> $1 AS score, {2} AS metadata "
        "FROM {0} a WHERE {1} ORDER BY a.embedding <=> $1 LIMIT {3}) top ORDER BY top.score + 0, top.uri",
        table, where, info.metadata_expr, options.top_k + 1);
  } else {
    prep.sql = fmt::format(
        "WITH top AS MATERIALIZED (SELECT a.ctid AS rid, a.embedding <=> $1 AS score FROM {0} a WHERE {1} "
        "ORDER BY a.embedding <=> $1 LIMIT {3}) "
        "SELECT a.uri, top.score, {2} FROM top JOIN {0} a ON a.ctid = top.rid ORDER BY top.score, a.uri",
        table, where, info.metadata_expr, options.top_k + 1);
  }
  return prep;
}

namespace {
// test_force_plan(index_iterative): the planner must take the vector index even where it would
// rather read the filter's B-tree and sort (a selective filter). With sorts and bitmap scans
// disabled, every way to the matching rows but the ordered vector index scan needs a sort
// (sequential scans stay on: the join back to the table by ctid may use one). Set for one
// statement, then reset (`force` false).
Result<void> force_vector_index(Connection& conn, bool force) {
  for (const char* guc : {"enable_bitmapscan", "enable_sort"}) {
    VS_TRY(conn.set_guc(guc, force ? "off" : "on"));
  }
  return {};
}

// Undoes force_vector_index() when it goes out of scope (a failure to reset is left to the
// connection's next use; this is a test-only path).
struct ForcedIndexReset {
  Connection* conn = nullptr;
  ForcedIndexReset() = default;
  explicit ForcedIndexReset(Connection* c) : conn(c) {}
  ForcedIndexReset(const ForcedIndexReset&) = delete;
  ForcedIndexReset& operator=(const ForcedIndexReset&) = delete;
  ~ForcedIndexReset() {
    if (conn != nullptr) static_cast<void>(force_vector_index(*conn, false));
  }
};

Result<void> apply_gucs(Connection& conn, const std::string& index_type, int ef_search, int probes) {
  if (index_type == "hnsw") {
    VS_TRY(conn.set_guc("hnsw.ef_search", std::to_string(ef_search)));
    VS_TRY(conn.set_guc("hnsw.iterative_scan", "relaxed_order"));
    VS_TRY(conn.set_guc("hnsw.max_scan_tuples", "50000"));
  } else if (index_type == "ivfflat") {
    VS_TRY(conn.set_guc("ivfflat.probes", std::to_string(probes)));
    VS_TRY(conn.set_guc("ivfflat.iterative_scan", "relaxed_order"));
  }
  return {};
}
}  // namespace

Result<std::vector<SearchHit>> PgVectorStore::search(std::span<const float> query, const SearchOptions& options) {
  VS_TRY(check_query(query, options));
  if (options.model) {
    VS_TRY_ASSIGN(std::optional<std::string> stored, stored_model());
    if (stored && *stored != *options.model) {
      return fail(query_model_refused(fmt::format("table {}", m_config.table), *stored, *options.model));
    }
  }
  // A read: run once more on a fresh connection if the server went away under it.
  return read([&](Connection& conn) { return search_on(conn, query, options); });
}

Result<std::vector<SearchHit>> PgVectorStore::search_exact(std::span<const float> query, const SearchOptions& options) {
  // A flag rather than a parameter: plan_search() is reached through search()'s retry and model
  // checks, which stay as they are; the flag is this thread's and is cleared on every return.
  struct ExactScope {
    ExactScope() { t_exact_search = true; }
    ExactScope(const ExactScope&) = delete;
    ExactScope& operator=(const ExactScope&) = delete;
    ~ExactScope() { t_exact_search = false; }
  } scope;
  return search(query, options);
}

Result<std::vector<SearchHit>> PgVectorStore::search_on(Connection& conn, std::span<const float> query,
                                                        const SearchOptions& options) {
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  const std::string vec = encode_vector(query);
  VS_TRY_ASSIGN(std::shared_ptr<const TableInfo> info, current_info(conn));
  VS_TRY_ASSIGN(Prepared prep, plan_search(conn, *info, options));
  const int probes = options.probes.value_or(m_config.pgvector.ivfflat_probes);
  VS_TRY(apply_gucs(conn, info->index_type, prep.ef_search, probes));

  auto run = [&](const std::string& sql) -> Result<PgResult> {
    std::vector<Param> params = {Param{vec, true, false, vec_oid}};
    for (const auto& v : prep.filter_params) params.push_back(Param::text(v));
    // Unfiltered statements reuse a prepared (generic) plan, which keeps the vector index. A
    // filtered one is planned with its values every time: a generic plan would ignore the
    // plan chosen above (e.g. a bitmap scan of every matching row where HNSW was meant).
    return prep.filter_params.empty() ? conn.exec_prepared(sql, params) : conn.exec_params(sql, params);
  };
  const bool forced_index = t_forced_plan == SearchPlan::index_iterative && prep.plan == SearchPlan::index_iterative;
  if (forced_index) VS_TRY(force_vector_index(conn, true));
  const ForcedIndexReset reset(forced_index ? &conn : nullptr);
  VS_TRY_ASSIGN(PgResult res, run(prep.sql));
  t_last_plan = prep.plan;
  if (prep.plan == SearchPlan::index_iterative && res.rows() < options.top_k && !t_forced_plan) {
    // The estimate was wrong (fewer matches than thought): rank the matching rows exactly.
    SearchOptions exact = options;
    const std::string exact_sql = std::string(prep.sql).replace(prep.sql.find("ORDER BY a.embedding <=> $1 LIMIT"),
                                                                std::string_view("ORDER BY a.embedding <=> $1").size(),
                                                                "ORDER BY (a.embedding <=> $1) + 0, a.uri");
    VS_TRY_ASSIGN(res, run(exact_sql));
    t_last_plan = SearchPlan::exact;
  }
  const bool from_index = t_last_plan != SearchPlan::exact;
  std::vector<SearchHit> hits;
  hits.reserve(static_cast<std::size_t>(res.rows()));
  for (int r = 0; r < res.rows(); ++r) hits.push_back(hit_from_row(res, r));
  // An index plan read one row more than asked for (plan_search): when it ties with the last
  // row asked for, rows of that distance may be missing, so twice as many are read.
  const auto top_k = static_cast<std::size_t>(options.top_k);
  if (hits.size() > top_k) {
    if (from_index && hits[top_k].score == hits[top_k - 1].score && options.top_k < k_max_top_k) {
      SearchOptions wider = options;
      wider.top_k = std::min(k_max_top_k, options.top_k * 2);
      VS_TRY_ASSIGN(hits, search_on(conn, query, wider));
    }
    hits.resize(top_k);
  }
  return hits;
}

namespace {
std::string_view plan_name(SearchPlan plan) {
  switch (plan) {
    case SearchPlan::exact:
      return "exact";
    case SearchPlan::index:
      return "index";
    case SearchPlan::index_iterative:
      return "index_iterative";
  }
  return "exact";
}
}  // namespace

Result<PgResult> PgVectorStore::explain_on(Connection& conn, std::span<const float> query, const SearchOptions& options,
                                           std::string_view explain, const TableInfo& info, Prepared& prep) {
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  const std::string vec = encode_vector(query);
  VS_TRY_ASSIGN(prep, plan_search(conn, info, options));
  VS_TRY(apply_gucs(conn, info.index_type, prep.ef_search, options.probes.value_or(m_config.pgvector.ivfflat_probes)));
  std::vector<Param> params = {Param{vec, true, false, vec_oid}};
  for (const auto& v : prep.filter_params) params.push_back(Param::text(v));
  const bool forced_index = t_forced_plan == SearchPlan::index_iterative && prep.plan == SearchPlan::index_iterative;
  if (forced_index) VS_TRY(force_vector_index(conn, true));
  const ForcedIndexReset reset(forced_index ? &conn : nullptr);
  return conn.exec_params(std::string(explain) + " " + prep.sql, params);
}

Result<json> PgVectorStore::explain(std::span<const float> query, const SearchOptions& options) {
  VS_TRY(check_query(query, options));
  VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
  Connection& conn = *lease;
  VS_TRY_ASSIGN(std::shared_ptr<const TableInfo> info, current_info(conn));
  Prepared prep;
  VS_TRY_ASSIGN(PgResult res, explain_on(conn, query, options, "EXPLAIN (ANALYZE, BUFFERS)", *info, prep));
  // PostgreSQL prints the query vector's value where the plan uses it: hundreds of numbers
  // that say nothing; it is shown as $1.
  json lines = json::array();
  bool index_used = false;  // an index scan ordered by the distance: the vector index
  for (int r = 0; r < res.rows(); ++r) {
    std::string line = res.text(r, 0);
    index_used = index_used || line.find("Order By: (embedding <=> ") != std::string::npos;
    for (std::size_t at = line.find("'["); at != std::string::npos; at = line.find("'[", at + 2)) {
      const std::size_t end = line.find("]'::vector", at);
      if (end == std::string::npos) break;
      line.replace(at, end + std::string_view("]'::vector").size() - at, "$1");
    }
    lines.push_back(std::move(line));
  }
  double rows = 0;
  if (prep.table_rows) {
    rows = *prep.table_rows;
  } else {
    VS_TRY_ASSIGN(rows, table_rows(conn));
  }
  const auto or_null = [](const std::optional<double>& v) { return v ? json(*v) : json(nullptr); };
  return json{{"plan", plan_name(prep.plan)},
              {"index_type", info->index_type},
              {"ef_search", prep.plan == SearchPlan::exact ? json(nullptr) : json(prep.ef_search)},
              {"table_rows", rows},
              {"estimated_rows", or_null(prep.estimated_rows)},
              {"selectivity", prep.estimated_rows && rows > 0 ? json(*prep.estimated_rows / rows) : json(nullptr)},
              {"vector_index_used", index_used},
              {"statement", prep.sql},
              {"explain", lines}};
}

Result<std::string> PgVectorStore::test_explain(std::span<const float> query, const SearchOptions& options) {
  VS_TRY(check_query(query, options));
  VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
  Connection& conn = *lease;
  VS_TRY_ASSIGN(std::shared_ptr<const TableInfo> info, current_info(conn));
  Prepared prep;
  VS_TRY_ASSIGN(PgResult res, explain_on(conn, query, options, "EXPLAIN", *info, prep));
  std::string out;
  for (int r = 0; r < res.rows(); ++r) out += res.text(r, 0) + "\n";
  return out;
}

Result<std::vector<SearchHit>> PgVectorStore::similar(std::string_view uri, const SearchOptions& options) {
  VS_TRY(check_options(options));
  const int top_k = options.top_k;
  std::vector<float> vec;
  // A read: run once more on a fresh connection if the server went away under it.
  VS_TRY(read([&](Connection& conn) -> Result<void> {
    const std::string id(uri);
    Param p[] = {Param::text(id)};
    VS_TRY_ASSIGN(PgResult res, conn.exec_prepared(fmt::format("SELECT embedding FROM {} WHERE uri = $1", q(m_config.table)),
                                                   p, true));
    if (res.rows() == 0) return fail(ErrorCode::not_found, fmt::format("no article with uri {}", uri));
    if (res.is_null(0, 0)) return fail(ErrorCode::not_found, fmt::format("article {} has no embedding", uri));
    vec.clear();
    return decode_vector(res.get(0, 0), vec, static_cast<std::size_t>(m_dimension));
  }));
  // One row more than asked, for the article itself (search_on takes top_k + 1 even at the
  // largest top_k).
  SearchOptions opts = options;
  opts.top_k = top_k + 1;
  VS_TRY_ASSIGN(auto hits, read([&](Connection& conn) { return search_on(conn, vec, opts); }));
  std::erase_if(hits, [&](const SearchHit& h) { return h.id == uri; });
  if (static_cast<int>(hits.size()) > top_k) hits.resize(static_cast<std::size_t>(top_k));
  return hits;
}

Result<VectorBatch> PgVectorStore::get_vectors(std::optional<std::int64_t> limit, const std::optional<FilterNode>& where) {
  if (limit && *limit < 0) return fail(ErrorCode::invalid_argument, fmt::format("limit must be >= 0, not {}", *limit));
  // A read: run once more on a fresh connection if the server went away under it.
  return read([&](Connection& conn) { return get_vectors_on(conn, limit, where); });
}

Result<VectorBatch> PgVectorStore::get_vectors_on(Connection& conn, std::optional<std::int64_t> limit,
                                                  const std::optional<FilterNode>& where) {
  VS_TRY_ASSIGN(std::shared_ptr<const TableInfo> info, current_info(conn));
  std::string cond = "a.embedding IS NOT NULL";
  std::vector<std::string> filter_params;
  if (where) {
    VS_TRY_ASSIGN(SqlFilter filter, compile_filter(*where, info->filter_catalog, 2));
    cond += " AND " + filter.sql;
    filter_params = std::move(filter.params);
  }
  const std::string sql = fmt::format("SELECT a.uri, a.embedding, {} FROM {} a WHERE {} ORDER BY a.uri LIMIT $1::bigint",
                                      info->metadata_expr, q(info->table), cond);
  const std::string lim = limit ? std::to_string(*limit) : std::string();
  std::vector<Param> params = {limit ? Param::text(lim) : Param::null_value()};
  for (const auto& v : filter_params) params.push_back(Param::text(v));
  VS_TRY_ASSIGN(PgResult res, conn.exec_params(sql, params, true));
  VectorBatch batch;
  batch.dim = static_cast<std::size_t>(m_dimension);
  batch.data.reserve(static_cast<std::size_t>(res.rows()) * batch.dim);
  for (int r = 0; r < res.rows(); ++r) {
    batch.ids.push_back(res.text(r, 0));
    VS_TRY(decode_vector(res.get(r, 1), batch.data, batch.dim));
    // The metadata column is text cast in SQL: binary format of text is its bytes.
    json md = json::parse(res.get(r, 2), nullptr, false);
    batch.metadatas.push_back(md.is_discarded() ? json::object() : std::move(md));
  }
  return batch;
}

Result<StoreCounts> PgVectorStore::count() {
  return read([&](Connection& conn) -> Result<StoreCounts> {
    VS_TRY_ASSIGN(PgResult res, conn.exec(fmt::format("SELECT count(*), count(embedding) FROM {}", q(m_config.table))));
    return StoreCounts{parse_int(res.get(0, 0)), parse_int(res.get(0, 1))};
  });
}

Result<json> PgVectorStore::gauges() {
  const int open = m_pool.open_count();
  const int idle = m_pool.idle_count();
  return json{{"pool_size", m_pool.config().size},
              {"pool_max_overflow", m_pool.config().max_overflow},
              {"pool_open", open},
              {"pool_idle", idle},
              {"pool_in_use", open - idle}};
}

Result<json> PgVectorStore::health() {
  json h;
  std::vector<std::string> reasons;
  h["backend"] = "pgvector";
  h["dimension"] = m_dimension;
  // First, on connections of its own: the search of the latency probe (the store's own path:
  // plan choice, ef_search, pool).
  VS_TRY_ASSIGN(const json search_ms, probe_search());
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  VS_TRY_ASSIGN(std::shared_ptr<const TableInfo> info, current_info(*lease));
  VS_TRY_ASSIGN(PgResult ver, lease->exec("SELECT current_setting('server_version'), "
                                          "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"));
  h["server_version"] = ver.text(0, 0);
  h["extension_version"] = ver.is_null(0, 1) ? json(nullptr) : json(ver.text(0, 1));
  if (ver.is_null(0, 1)) reasons.emplace_back("the vector extension is not installed");
  VS_TRY_ASSIGN(std::vector<std::string> warnings, pgvector_health_warnings(*lease));
  VS_TRY_ASSIGN(PgResult counts, lease->exec(fmt::format("SELECT count(*), count(embedding), (SELECT embedding_model "
                                                         "FROM {0} WHERE embedding IS NOT NULL LIMIT 1) FROM {0}",
                                                         q(m_config.table))));
  const std::int64_t rows = parse_int(counts.get(0, 0));
  const std::int64_t with = parse_int(counts.get(0, 1));
  h["rows"] = rows;
  h["with_embedding"] = with;
  h["coverage_pct"] = rows == 0 ? 0.0 : std::round(10000.0 * static_cast<double>(with) / static_cast<double>(rows)) / 100.0;
  h["embedding_model"] = counts.is_null(0, 2) ? json(nullptr) : json(counts.text(0, 2));
  json index = {{"type", info->index_type}, {"name", nullptr}, {"valid", nullptr}, {"params", json::object()}};
  if (!info->index_name.empty()) {
    // By oid: a name given to to_regclass() is parsed as SQL and folds case ("MyIdx" -> myidx).
    const std::string oid = std::to_string(info->index_oid);
    Param p[] = {Param::text(oid)};
    VS_TRY_ASSIGN(PgResult idx, lease->exec_params("SELECT i.indisvalid, COALESCE(array_to_string(c.reloptions, ','), '') "
                                                   "FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                                                   "WHERE c.oid = $1::oid",
                                                   p));
    index["name"] = info->index_name;
    if (idx.rows() == 0) {
      reasons.push_back(fmt::format("vector index {} no longer exists", info->index_name));
      index["valid"] = false;
    } else {
      index["valid"] = idx.get(0, 0) == "t";
      if (idx.get(0, 0) != "t") reasons.push_back(fmt::format("vector index {} is not valid", info->index_name));
      const std::string opts = idx.text(0, 1);
      std::size_t start = 0;
      while (start < opts.size()) {
        const std::size_t end = std::min(opts.find(',', start), opts.size());
        const std::string kv = opts.substr(start, end - start);
        if (auto eq = kv.find('='); eq != std::string::npos) {
          const std::string val = kv.substr(eq + 1);
          index["params"][kv.substr(0, eq)] = parse_int(val);
        }
        start = end + 1;
      }
    }
  } else if (m_config.pgvector.index_type != IndexType::none) {
    reasons.push_back(fmt::format("no vector index on {}.embedding (PGVECTOR_INDEX_TYPE={})", m_config.table,
                                  to_string(m_config.pgvector.index_type)));
  }
  VS_TRY(index_memory_health(*lease, info->index_oid, index, warnings));
  h["index"] = index;
  {
    const int open = m_pool.open_count();
    const int idle = m_pool.idle_count();
    h["pool"] = {{"size", m_pool.config().size}, {"max_overflow", m_pool.config().max_overflow},
                 {"open", open}, {"idle", idle}, {"in_use", open - idle}};  // in_use counts this check's own
  }
  VS_TRY_ASSIGN(h["latency_ms"], latency_probe(*lease));
  h["latency_ms"]["search"] = search_ms;
  VS_TRY_ASSIGN(h["last_validation"], validation_health(warnings));
  if (m_replicas) {
    // A replica that is skipped leaves the store healthy (reads go to the primary): a warning.
    h["replicas"] = m_replicas->states();
    for (const auto& replica : h["replicas"]) {
      if (!replica["usable"].get<bool>()) {
        warnings.push_back(fmt::format("read replica {} is skipped: {}", replica["url"].get<std::string>(),
                                       replica["problem"].is_string() ? replica["problem"].get<std::string>() : "?"));
      }
    }
  }
  h["warnings"] = warnings;  // a warning leaves the store healthy
  h["healthy"] = reasons.empty();
  h["reasons"] = reasons;
  return h;
}

// The index's size against shared_buffers and this host's memory: an HNSW search that does not
// find its graph in shared_buffers reads it from the OS cache or the disk.
Result<void> PgVectorStore::index_memory_health(Connection& conn, unsigned int index_oid, json& index,
                                                std::vector<std::string>& warnings) {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  const double ram = pages > 0 && page_size > 0 ? static_cast<double>(pages) * static_cast<double>(page_size) : 0.0;
  index["host_ram_bytes"] = ram > 0 ? json(static_cast<std::int64_t>(ram)) : json(nullptr);
  VS_TRY_ASSIGN(PgResult sb, conn.exec("SELECT pg_size_bytes(current_setting('shared_buffers'))"));
  const std::int64_t shared = parse_int(sb.get(0, 0));
  index["shared_buffers_bytes"] = shared;
  index["size_bytes"] = nullptr;
  if (index_oid == 0 || index["valid"].is_null()) return {};
  const std::string oid = std::to_string(index_oid);
  Param p[] = {Param::text(oid)};
  VS_TRY_ASSIGN(PgResult size, conn.exec_params("SELECT pg_relation_size($1::oid)", p));
  const std::int64_t bytes = parse_int(size.get(0, 0));
  index["size_bytes"] = bytes;
  auto mb = [](double b) { return b / (1024.0 * 1024.0); };
  if (bytes > shared) {
    warnings.push_back(fmt::format("vector index {} ({:.1f} MB) is larger than shared_buffers ({:.1f} MB): searches read "
                                   "part of it from the OS cache or the disk; raise shared_buffers",
                                   index.value("name", std::string()), mb(static_cast<double>(bytes)),
                                   mb(static_cast<double>(shared))));
  }
  if (ram > 0 && static_cast<double>(bytes) > 0.5 * ram) {
    warnings.push_back(fmt::format("vector index {} ({:.1f} MB) is more than half of this host's memory ({:.1f} MB)",
                                   index.value("name", std::string()), mb(static_cast<double>(bytes)), mb(ram)));
  }
  return {};
}

// A round trip (SELECT 1) on the health check's connection, in milliseconds; the search is
// probe_search()'s, null here.
Result<json> PgVectorStore::latency_probe(Connection& conn) {
  const auto t0 = std::chrono::steady_clock::now();
  VS_TRY(conn.exec("SELECT 1"));
  const double roundtrip = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return json{{"roundtrip", std::round(roundtrip * 1000.0) / 1000.0}, {"search", nullptr}};
}

// One top-10 search for a stored vector through search(), in milliseconds; null when no row
// has a vector.
Result<json> PgVectorStore::probe_search() {
  std::vector<float> vec;
  VS_TRY(read([&](Connection& conn) -> Result<void> {
    VS_TRY_ASSIGN(PgResult res, conn.exec_prepared(fmt::format("SELECT embedding FROM {} WHERE embedding IS NOT NULL "
                                                               "LIMIT 1",
                                                               q(m_config.table)),
                                                   {}, true));
    vec.clear();
    if (res.rows() == 0) return {};
    return decode_vector(res.get(0, 0), vec, static_cast<std::size_t>(m_dimension));
  }));
  if (vec.empty()) return json(nullptr);
  SearchOptions options;
  options.top_k = 10;
  const auto t0 = std::chrono::steady_clock::now();
  VS_TRY(search(vec, options));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return json(std::round(ms * 1000.0) / 1000.0);
}

// The latest validation of the table (the operations log), or null; a failed or stale one is a
// warning: the store still serves.
Result<json> PgVectorStore::validation_health(std::vector<std::string>& warnings) {
  VS_TRY_ASSIGN(std::optional<OperationRecord> v, latest_operation(m_pool.conninfo(), m_config, "validate"));
  if (!v) return json(nullptr);
  VS_TRY_ASSIGN(std::optional<std::string> last_write, last_vector_write(m_pool.conninfo(), m_config));
  const bool stale = last_write && v->finished_at && *last_write >= *v->finished_at;
  json out = {{"finished_at", v->finished_at ? json(*v->finished_at) : json(nullptr)},
              {"status", v->status},
              {"passed", v->passed ? json(*v->passed) : json(nullptr)},
              {"report_path", v->report_path.empty() ? json(nullptr) : json(v->report_path)},
              {"summary", v->summary},
              {"stale", stale}};
  if (v->status != "succeeded") {
    warnings.push_back(fmt::format("the latest validation ({}) did not finish", v->finished_at.value_or("?")));
  } else if (!v->passed.value_or(false)) {
    warnings.push_back(fmt::format("the latest validation ({}) did not pass", v->finished_at.value_or("?")));
  } else if (stale) {
    warnings.push_back(fmt::format("the latest validation ({}) is older than the last vector write ({})",
                                   v->finished_at.value_or("?"), *last_write));
  }
  return out;
}

}  // namespace vstore::pg

namespace vstore {
Result<std::unique_ptr<VectorStore>> open_pg_store(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(auto store, pg::PgVectorStore::open(conninfo, config));
  return std::unique_ptr<VectorStore>(std::move(store));
}
}  // namespace vstore
