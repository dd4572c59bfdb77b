// SPDX-License-Identifier: Apache-2.0
// PgVectorStore. Design:
// - Writes: one article -> INSERT .. ON CONFLICT (uri) DO UPDATE of the vector columns only;
//   many -> binary COPY into a per-connection temp staging table, then one INSERT .. SELECT ..
//   ON CONFLICT merge, all in one transaction. Existing rows keep every non-vector column.
// - Reads: the query vector travels as a binary `vector` parameter through prepared statements;
//   the metadata JSON is built in SQL from the live columns over the stored vector_metadata.
// - Filtered search chooses its plan from the filter's estimated match count (EXPLAIN): few
//   matches -> exact ranking of the matching rows (the ORDER BY expression is not indexable, so
//   the planner uses B-tree/bitmap or seq scans); many -> HNSW/IVFFlat with iterative scan and a
//   candidate list widened by 1/selectivity. A plan that yields fewer than top_k rows falls back
//   to exact. Session GUCs are cached per connection so the common query needs no extra trip.
#include "pg/pg_store.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <unordered_set>

#include <fmt/format.h>

#include "pg/pg_binary.hpp"
#include "pg/pg_catalog.hpp"
#include "pg/pg_time.hpp"
#include "vstore/article.hpp"
#include "vstore/vector_check.hpp"

namespace vstore::pg {
namespace {

using nlohmann::json;

constexpr int k_latest_schema = 3;
constexpr std::int64_t k_exact_max_rows = 8000;   // exact ranking at or below this estimate
constexpr std::size_t k_copy_threshold = 16;       // batches at least this big use COPY
constexpr int k_max_top_k = 10000;

thread_local SearchPlan t_last_plan = SearchPlan::index;
thread_local std::optional<SearchPlan> t_forced_plan;  // test_force_plan()

std::string q(std::string_view ident) { return quote_sql_identifier(ident); }

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

Result<TableInfo> read_table_info(Connection& conn, const Config& config) {
  TableInfo info;
  info.table = config.table;
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
    if (version < k_latest_schema) {
      return fail(ErrorCode::conflict, fmt::format("the database schema is at version {}, vstore needs {}; run "
                                                   "`vstore schema up` first",
                                                   version, k_latest_schema));
    }
  }
  Param p[] = {Param::text(config.table)};
  VS_TRY_ASSIGN(PgResult cols, conn.exec_params("SELECT attname, format_type(atttypid, atttypmod), atttypmod "
                                                "FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 "
                                                "AND NOT attisdropped ORDER BY attnum",
                                                p));
  if (cols.rows() == 0) return fail(ErrorCode::not_found, fmt::format("table {} does not exist", config.table));
  for (int r = 0; r < cols.rows(); ++r) {
    info.columns[cols.text(r, 0)] = cols.text(r, 1);
    if (cols.get(r, 0) == "embedding") info.dimension = static_cast<int>(parse_int(cols.get(r, 2)));
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
  info.index_type = idx.name.empty() ? "none" : idx.method;
  return info;
}

std::optional<std::string> normalized_timestamp(const std::optional<std::string>& date) {
  if (!date) return std::nullopt;
  // An ISO date-time keeps its time and zone; anything else becomes midnight UTC of its date.
  static constexpr std::string_view k_digits = "0123456789";
  const std::string& s = *date;
  if (s.size() >= 19 && s[4] == '-' && s[7] == '-' && s[10] == 'T' &&
      s.find_first_not_of(k_digits) == 4) {
    return s;
  }
  if (auto ts = publication_date_ts(s)) return iso8601_utc(*ts);
  return std::nullopt;
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
};

PgVectorStore::PgVectorStore(const std::string& conninfo, const Config& config, TableInfo info)
    : m_config(config), m_info(std::move(info)), m_pool(conninfo, config.pool) {
  for (const auto& url : config.database_read_urls) {
    m_read_pools.push_back(std::make_unique<Pool>(url, config.pool));
  }
  m_metadata_expr = metadata_expression(m_info);
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
  Param p[] = {Param::text(m_info.table)};
  VS_TRY_ASSIGN(PgResult total, conn.exec_params("SELECT GREATEST(reltuples, 1)::float8 FROM pg_class "
                                                 "WHERE oid = to_regclass($1)",
                                                 p));
  const double rows = total.rows() > 0 ? std::max(1.0, parse_double(total.get(0, 0))) : 1.0;
  m_rows_estimate.store(rows);
  m_rows_checked_at.store(now);
  return rows;
}

Pool& PgVectorStore::read_pool() {
  if (m_read_pools.empty()) return m_pool;
  return *m_read_pools[m_read_next++ % m_read_pools.size()];
}

SearchPlan PgVectorStore::test_last_plan() { return t_last_plan; }

void PgVectorStore::test_force_plan(std::optional<SearchPlan> plan) { t_forced_plan = plan; }

// ---- writes -----------------------------------------------------------------------------------

Result<void> PgVectorStore::check_model(std::span<const ArticleVector> items) {
  const std::string& model = items.front().embedding_model;
  for (const auto& item : items) {
    if (item.embedding_model.empty()) {
      return fail(ErrorCode::invalid_argument, fmt::format("article {}: the embedding model is not named", item.article.uri));
    }
    if (item.embedding_model != model) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("one batch mixes embedding models {} and {}", model, item.embedding_model));
    }
  }
  VS_TRY_ASSIGN(std::optional<std::string> stored, stored_model());
  if (stored && *stored != model) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("table {} holds vectors of model {}, refusing vectors of model {}", m_info.table, *stored,
                            model));
  }
  return {};
}

Result<std::optional<std::string>> PgVectorStore::stored_model() {
  std::lock_guard lock(m_model_mutex);
  if (!m_model_known) {
    VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
    VS_TRY_ASSIGN(PgResult res, lease->exec(fmt::format("SELECT embedding_model FROM {} WHERE embedding IS NOT NULL "
                                                        "AND embedding_model IS NOT NULL LIMIT 1",
                                                        q(m_info.table))));
    if (res.rows() > 0) m_model = res.text(0, 0);
    m_model_known = true;
  }
  return m_model;
}

Result<void> PgVectorStore::upsert(std::span<const ArticleVector> items) {
  if (items.empty()) return {};
  std::unordered_set<std::string_view> seen;
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    if (item.article.uri.empty()) {
      return fail(ErrorCode::invalid_argument, fmt::format("item {}: uri is empty", i));
    }
    VS_TRY(check_vector(item.embedding, m_info.dimension, fmt::format("article {}", item.article.uri)));
    if (!seen.insert(item.article.uri).second) {
      return fail(ErrorCode::invalid_argument, fmt::format("uri {} appears twice in one batch", item.article.uri));
    }
  }
  VS_TRY(check_model(items));
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  Result<void> done = items.size() < k_copy_threshold ? upsert_one(*lease, items[0]) : upsert_many(*lease, items);
  if (items.size() < k_copy_threshold) {
    for (std::size_t i = 1; done && i < items.size(); ++i) done = upsert_one(*lease, items[i]);
  }
  if (done) {
    std::lock_guard lock(m_model_mutex);
    m_model = items.front().embedding_model;
    m_model_known = true;
  }
  return done;
}

namespace {
// Columns of a new row: (column, is timestamp) for the article columns the table has.
std::vector<std::pair<std::string, std::string>> insert_columns(const TableInfo& info) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto col : k_article_columns) {
    auto it = info.columns.find(std::string(col));
    if (it != info.columns.end()) out.emplace_back(std::string(col), it->second);
  }
  return out;
}

// vector_metadata of an existing row that an upsert updates: every metadata key, because the
// update leaves the row's own columns as they are and the read path falls back to these values
// where a column is NULL.
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

// The ON CONFLICT clause of an upsert: only the vector columns of an existing row change.
std::string conflict_update(std::string_view metadata_value) {
  return fmt::format(
      " ON CONFLICT (uri) DO UPDATE SET embedding = EXCLUDED.embedding, embedding_model = EXCLUDED.embedding_model, "
      "vector_metadata = {}, publication_date_ts = COALESCE(EXCLUDED.publication_date_ts, t.publication_date_ts)",
      metadata_value);
}
}  // namespace

Result<void> PgVectorStore::upsert_one(Connection& conn, const ArticleVector& item) {
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  const auto cols = insert_columns(m_info);
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
  values.push_back(new_row_metadata_json(m_info, item));
  values.push_back(ts_text(item.article));
  values.push_back(vector_metadata_json(item));
  col_sql += ", embedding_model, vector_metadata, publication_date_ts, embedding";
  val_sql += fmt::format(", ${}, ${}::jsonb, ${}::bigint, ${}", n + 1, n + 2, n + 3, n + 5);
  const std::string sql = fmt::format("INSERT INTO {} AS t ({}) VALUES ({}){}", q(m_info.table), col_sql, val_sql,
                                      conflict_update(fmt::format("${}::jsonb", n + 4)));
  std::vector<Param> params;
  for (const auto& v : values) params.push_back(v ? Param::text(*v) : Param::null_value());
  params.push_back(Param{vec, true, false, vec_oid});
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
// - All of it runs in one transaction. If another session inserts one of the "new" uris between
//   the look-up and the COPY, the COPY fails with a unique violation; the transaction is rolled
//   back and the whole batch is merged instead, which handles the conflict row by row.
Result<void> PgVectorStore::upsert_many(Connection& conn, std::span<const ArticleVector> items) {
  const auto cols = insert_columns(m_info);
  std::vector<Binary> kinds;
  bool native = m_info.columns.count("uri") != 0 && binary_kind(m_info.columns.at("uri")) == Binary::text;
  for (const auto& [col, type] : cols) {
    kinds.push_back(binary_kind(type));
    native = native && kinds.back() != Binary::other;
  }

  enum class Mode { optimistic, look_up, merge };
  auto body = [&](Mode mode) -> Result<void> {
    std::vector<const ArticleVector*> merge_rows;
    std::unordered_set<std::string> existing;
    if (mode == Mode::look_up) {
      std::vector<std::string> uris;
      uris.reserve(items.size());
      for (const auto& item : items) uris.push_back(item.article.uri);
      const std::string arr = sql_array_literal(uris);  // Param::text keeps a view: it must outlive p
      Param p[] = {Param::text(arr)};
      VS_TRY_ASSIGN(PgResult res, conn.exec_params(fmt::format("SELECT uri FROM {} WHERE uri = ANY($1::text[])",
                                                               q(m_info.table)),
                                                   p));
      for (int row = 0; row < res.rows(); ++row) existing.insert(res.text(row, 0));
      m_look_up_first.store(!existing.empty(), std::memory_order_relaxed);
    }
    if (mode != Mode::merge) {
      if (existing.size() < items.size()) {
        // Stream the new rows: the server stores one slice while the next is encoded.
        std::string col_sql = "uri";
        for (const auto& [col, type] : cols) col_sql += ", " + q(col);
        col_sql += ", embedding_model, vector_metadata, publication_date_ts, embedding";
        const int fields = static_cast<int>(cols.size()) + 5;
        std::size_t next = 0;
        auto fill = [&](CopyWriter& writer) -> Result<bool> {
          while (next < items.size() && writer.size() < k_copy_slice_bytes) {
            const ArticleVector& item = items[next++];
            if (existing.count(item.article.uri) != 0) {
              merge_rows.push_back(&item);
              continue;
            }
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
            write_vector_columns(writer, item, new_row_metadata_json(m_info, item));
          }
          return next < items.size();
        };
        VS_TRY(conn.copy_stream(fmt::format("COPY {} ({}) FROM STDIN (FORMAT binary)", q(m_info.table), col_sql), fill));
      }
    } else {
      for (const auto& item : items) merge_rows.push_back(&item);
    }

    if (!merge_rows.empty()) VS_TRY(merge_through_stage(conn, cols, merge_rows));
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
  VS_TRY(conn.exec("BEGIN"));
  Result<void> done = attempt();
  if (!done && native && done.error().code() == ErrorCode::conflict) {
    // A concurrent insert of one of the new uris: merge the whole batch instead.
    (void)conn.exec("ROLLBACK");
    VS_TRY(conn.exec("BEGIN"));
    done = body(Mode::merge);
  }
  if (!done) {
    (void)conn.exec("ROLLBACK");
    return done;
  }
  VS_TRY(conn.exec("COMMIT"));
  return {};
}

Result<void> PgVectorStore::merge_through_stage(Connection& conn,
                                                const std::vector<std::pair<std::string, std::string>>& cols,
                                                std::span<const ArticleVector* const> rows) {
  // Staging table: text for article columns (cast at merge), native types for the rest. A new
  // row gets the metadata keys without a column (vector_metadata), an existing row every key
  // (vector_metadata_full, looked up by uri), as upsert_one does.
  std::string stage_cols = "uri text PRIMARY KEY";
  for (const auto& [col, type] : cols) stage_cols += fmt::format(", {} text", q(col));
  stage_cols += fmt::format(", embedding_model text, vector_metadata jsonb, publication_date_ts bigint, embedding vector({}), "
                            "vector_metadata_full jsonb",
                            m_info.dimension);
  const std::string stage = fmt::format("vstore_merge_stage_{}", m_info.dimension);

  CopyWriter writer;
  writer.reserve(rows.size() * (static_cast<std::size_t>(m_info.dimension) * 4 + 512));
  const int fields = static_cast<int>(cols.size()) + 6;
  for (const ArticleVector* item : rows) {
    writer.begin_row(fields);
    writer.bytes_field(item->article.uri);
    for (const auto& [col, type] : cols) {
      writer.text_field(article_column_value(item->article, col, kind_of(type) == ColumnKind::timestamp));
    }
    write_vector_columns(writer, *item, new_row_metadata_json(m_info, *item));
    writer.jsonb_field(vector_metadata_json(*item));
  }
  const std::string data = writer.finish();

  std::string col_sql = "uri";
  std::string sel_sql = "s.uri";
  for (const auto& [col, type] : cols) {
    col_sql += ", " + q(col);
    sel_sql += fmt::format(", s.{}::{}", q(col), type);
  }
  col_sql += ", embedding_model, vector_metadata, publication_date_ts, embedding";
  sel_sql += ", s.embedding_model, s.vector_metadata, s.publication_date_ts, s.embedding";

  VS_TRY(conn.exec(fmt::format("CREATE TEMP TABLE IF NOT EXISTS {} ({}) ON COMMIT DELETE ROWS", q(stage), stage_cols)));
  VS_TRY(conn.copy_in(fmt::format("COPY {} FROM STDIN (FORMAT binary)", q(stage)), data));
  VS_TRY(conn.exec(fmt::format(
      "INSERT INTO {} AS t ({}) SELECT {} FROM {} s{}", q(m_info.table), col_sql, sel_sql, q(stage),
      conflict_update(fmt::format("(SELECT f.vector_metadata_full FROM {} f WHERE f.uri = EXCLUDED.uri)", q(stage))))));
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
                                                             q(m_info.table)),
                                                 p));
  for (int row = 0; row < res.rows(); ++row) out.emplace(res.text(row, 0), res.text(row, 1));
  return out;
}

Result<std::int64_t> PgVectorStore::remove(std::span<const std::string> ids) {
  if (ids.empty()) return 0;
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  const std::string arr = sql_array_literal(std::vector<std::string>(ids.begin(), ids.end()));
  Param p[] = {Param::text(arr)};
  VS_TRY_ASSIGN(PgResult res,
                lease->exec_params(fmt::format("UPDATE {} SET embedding = NULL, embedding_model = NULL, vector_metadata = "
                                               "NULL WHERE uri = ANY($1::text[]) AND embedding IS NOT NULL",
                                               q(m_info.table)),
                                   p));
  return res.affected();
}

// ---- reads ------------------------------------------------------------------------------------

Result<void> PgVectorStore::check_query(std::span<const float> query, const SearchOptions& options) const {
  if (options.top_k < 1 || options.top_k > k_max_top_k) {
    return fail(ErrorCode::invalid_argument, fmt::format("top_k must be from 1 to {}, not {}", k_max_top_k, options.top_k));
  }
  if (options.ef_search && (*options.ef_search < 1 || *options.ef_search > 1000)) {
    return fail(ErrorCode::invalid_argument, fmt::format("ef_search must be from 1 to 1000, not {}", *options.ef_search));
  }
  if (options.probes && *options.probes < 1) {
    return fail(ErrorCode::invalid_argument, fmt::format("probes must be at least 1, not {}", *options.probes));
  }
  VS_TRY(check_vector(query, m_info.dimension, "query vector"));
  return {};
}

Result<PgVectorStore::Prepared> PgVectorStore::plan_search(Connection& conn,
                                                          const SearchOptions& options) {
  Prepared prep;
  const int ef_default = options.ef_search.value_or(m_config.pgvector.hnsw_ef_search);
  prep.ef_search = ef_default;
  std::string where = "a.embedding IS NOT NULL";
  if (options.where) {
    VS_TRY_ASSIGN(SqlFilter filter, compile_filter(*options.where, m_info.filter_catalog, 2));
    where += " AND " + filter.sql;
    prep.filter_params = std::move(filter.params);
    // Estimate how many rows match ($1, the query vector, is not part of the estimate).
    std::vector<Param> explain_params = {Param::null_value()};
    for (const auto& v : prep.filter_params) explain_params.push_back(Param::text(v));
    VS_TRY_ASSIGN(PgResult est, conn.exec_params(fmt::format("EXPLAIN (FORMAT JSON) SELECT 1 FROM {} a WHERE "
                                                             "$1::text IS NULL AND {}",
                                                             q(m_info.table), where),
                                                 explain_params));
    const json plan = json::parse(est.get(0, 0), nullptr, false);
    double est_rows = 0;
    if (!plan.is_discarded() && plan.is_array() && !plan.empty()) {
      est_rows = plan[0]["Plan"].value("Plan Rows", 0.0);
    }
    VS_TRY_ASSIGN(const double rows, table_rows(conn));
    const double selectivity = std::clamp(est_rows / rows, 1e-6, 1.0);
    prep.plan = est_rows <= static_cast<double>(k_exact_max_rows) || m_info.index_type == "none"
                    ? SearchPlan::exact
                    : SearchPlan::index_iterative;
    if (t_forced_plan && m_info.index_type != "none") prep.plan = *t_forced_plan;
    if (prep.plan == SearchPlan::index_iterative) {
      const double widened = 4.0 * options.top_k / selectivity;
      prep.ef_search = static_cast<int>(std::clamp(std::max<double>(ef_default, widened), 1.0, 1000.0));
    }
  } else {
    prep.plan = m_info.index_type == "none" ? SearchPlan::exact : SearchPlan::index;
  }
  const std::string table = q(m_info.table);
  if (prep.plan == SearchPlan::exact) {
    // `+ 0` keeps the ORDER BY from matching the vector index: exact top-N of the matching rows.
    prep.sql = fmt::format(
        "WITH top AS MATERIALIZED (SELECT a.ctid AS rid, a.embedding <=> $1 AS score FROM {0} a WHERE {1} "
        "ORDER BY (a.embedding <=> $1) + 0 LIMIT {3}) "
        "SELECT a.uri, top.score, {2} FROM top JOIN {0} a ON a.ctid = top.rid ORDER BY top.score, a.uri",
        table, where, m_metadata_expr, options.top_k);
  } else {
    prep.sql = fmt::format(
        "WITH top AS MATERIALIZED (SELECT a.ctid AS rid, a.embedding <=> $1 AS score FROM {0} a WHERE {1} "
        "ORDER BY a.embedding <=> $1 LIMIT {3}) "
        "SELECT a.uri, top.score, {2} FROM top JOIN {0} a ON a.ctid = top.rid ORDER BY top.score, a.uri",
        table, where, m_metadata_expr, options.top_k);
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
      return fail(ErrorCode::invalid_argument,
                  fmt::format("the query was embedded with model {}, but table {} holds vectors of model {}",
                              *options.model, m_info.table, *stored));
    }
  }
  VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
  Connection& conn = *lease;
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  const std::string vec = encode_vector(query);
  VS_TRY_ASSIGN(Prepared prep, plan_search(conn, options));
  const int probes = options.probes.value_or(m_config.pgvector.ivfflat_probes);
  VS_TRY(apply_gucs(conn, m_info.index_type, prep.ef_search, probes));

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
                                                                "ORDER BY (a.embedding <=> $1) + 0");
    VS_TRY_ASSIGN(res, run(exact_sql));
    t_last_plan = SearchPlan::exact;
  }
  std::vector<SearchHit> hits;
  hits.reserve(static_cast<std::size_t>(res.rows()));
  for (int r = 0; r < res.rows(); ++r) hits.push_back(hit_from_row(res, r));
  return hits;
}

Result<std::string> PgVectorStore::test_explain(std::span<const float> query, const SearchOptions& options) {
  VS_TRY(check_query(query, options));
  VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
  Connection& conn = *lease;
  VS_TRY_ASSIGN(Oid vec_oid, conn.type_oid("vector"));
  const std::string vec = encode_vector(query);
  VS_TRY_ASSIGN(Prepared prep, plan_search(conn, options));
  VS_TRY(apply_gucs(conn, m_info.index_type, prep.ef_search, options.probes.value_or(m_config.pgvector.ivfflat_probes)));
  std::vector<Param> params = {Param{vec, true, false, vec_oid}};
  for (const auto& v : prep.filter_params) params.push_back(Param::text(v));
  const bool forced_index = t_forced_plan == SearchPlan::index_iterative && prep.plan == SearchPlan::index_iterative;
  if (forced_index) VS_TRY(force_vector_index(conn, true));
  const ForcedIndexReset reset(forced_index ? &conn : nullptr);
  VS_TRY_ASSIGN(PgResult res, conn.exec_params("EXPLAIN " + prep.sql, params));
  std::string out;
  for (int r = 0; r < res.rows(); ++r) out += res.text(r, 0) + "\n";
  return out;
}

Result<std::vector<SearchHit>> PgVectorStore::similar(std::string_view uri, int top_k) {
  if (top_k < 1 || top_k >= k_max_top_k) {
    return fail(ErrorCode::invalid_argument, fmt::format("top_k must be from 1 to {}, not {}", k_max_top_k - 1, top_k));
  }
  std::vector<float> vec;
  {
    VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
    const std::string id(uri);
    Param p[] = {Param::text(id)};
    VS_TRY_ASSIGN(PgResult res, lease->exec_prepared(fmt::format("SELECT embedding FROM {} WHERE uri = $1", q(m_info.table)),
                                                     p, true));
    if (res.rows() == 0) return fail(ErrorCode::not_found, fmt::format("no article with uri {}", uri));
    if (res.is_null(0, 0)) return fail(ErrorCode::not_found, fmt::format("article {} has no embedding", uri));
    VS_TRY(decode_vector(res.get(0, 0), vec, static_cast<std::size_t>(m_info.dimension)));
  }
  SearchOptions opts;
  opts.top_k = top_k + 1;
  VS_TRY_ASSIGN(auto hits, search(vec, opts));
  std::erase_if(hits, [&](const SearchHit& h) { return h.id == uri; });
  if (static_cast<int>(hits.size()) > top_k) hits.resize(static_cast<std::size_t>(top_k));
  return hits;
}

Result<VectorBatch> PgVectorStore::get_vectors(std::optional<std::int64_t> limit, const std::optional<FilterNode>& where) {
  if (limit && *limit < 0) return fail(ErrorCode::invalid_argument, fmt::format("limit must be >= 0, not {}", *limit));
  std::string cond = "a.embedding IS NOT NULL";
  std::vector<std::string> filter_params;
  if (where) {
    VS_TRY_ASSIGN(SqlFilter filter, compile_filter(*where, m_info.filter_catalog, 2));
    cond += " AND " + filter.sql;
    filter_params = std::move(filter.params);
  }
  const std::string sql = fmt::format("SELECT a.uri, a.embedding, {} FROM {} a WHERE {} ORDER BY a.uri LIMIT $1::bigint",
                                      m_metadata_expr, q(m_info.table), cond);
  const std::string lim = limit ? std::to_string(*limit) : std::string();
  std::vector<Param> params = {limit ? Param::text(lim) : Param::null_value()};
  for (const auto& v : filter_params) params.push_back(Param::text(v));
  VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
  VS_TRY_ASSIGN(PgResult res, lease->exec_params(sql, params, true));
  VectorBatch batch;
  batch.dim = static_cast<std::size_t>(m_info.dimension);
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
  VS_TRY_ASSIGN(Lease lease, read_pool().acquire());
  VS_TRY_ASSIGN(PgResult res, lease->exec(fmt::format("SELECT count(*), count(embedding) FROM {}", q(m_info.table))));
  return StoreCounts{parse_int(res.get(0, 0)), parse_int(res.get(0, 1))};
}

Result<json> PgVectorStore::health() {
  json h;
  std::vector<std::string> reasons;
  h["backend"] = "pgvector";
  h["dimension"] = m_info.dimension;
  VS_TRY_ASSIGN(Lease lease, m_pool.acquire());
  VS_TRY_ASSIGN(PgResult ver, lease->exec("SELECT current_setting('server_version'), "
                                          "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"));
  h["server_version"] = ver.text(0, 0);
  h["extension_version"] = ver.is_null(0, 1) ? json(nullptr) : json(ver.text(0, 1));
  if (ver.is_null(0, 1)) reasons.emplace_back("the vector extension is not installed");
  VS_TRY_ASSIGN(PgResult counts, lease->exec(fmt::format("SELECT count(*), count(embedding), (SELECT embedding_model "
                                                         "FROM {0} WHERE embedding IS NOT NULL LIMIT 1) FROM {0}",
                                                         q(m_info.table))));
  const std::int64_t rows = parse_int(counts.get(0, 0));
  const std::int64_t with = parse_int(counts.get(0, 1));
  h["rows"] = rows;
  h["with_embedding"] = with;
  h["coverage_pct"] = rows == 0 ? 0.0 : std::round(10000.0 * static_cast<double>(with) / static_cast<double>(rows)) / 100.0;
  h["embedding_model"] = counts.is_null(0, 2) ? json(nullptr) : json(counts.text(0, 2));
  json index = {{"type", m_info.index_type}, {"name", nullptr}, {"valid", nullptr}, {"params", json::object()}};
  if (!m_info.index_name.empty()) {
    Param p[] = {Param::text(m_info.index_name)};
    VS_TRY_ASSIGN(PgResult idx, lease->exec_params("SELECT i.indisvalid, COALESCE(array_to_string(c.reloptions, ','), '') "
                                                   "FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
                                                   "WHERE c.oid = to_regclass($1)",
                                                   p));
    index["name"] = m_info.index_name;
    if (idx.rows() == 0) {
      reasons.push_back(fmt::format("vector index {} no longer exists", m_info.index_name));
      index["valid"] = false;
    } else {
      index["valid"] = idx.get(0, 0) == "t";
      if (idx.get(0, 0) != "t") reasons.push_back(fmt::format("vector index {} is not valid", m_info.index_name));
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
    reasons.push_back(fmt::format("no vector index on {}.embedding (PGVECTOR_INDEX_TYPE={})", m_info.table,
                                  to_string(m_config.pgvector.index_type)));
  }
  h["index"] = index;
  h["healthy"] = reasons.empty();
  h["reasons"] = reasons;
  return h;
}

}  // namespace vstore::pg

namespace vstore {
Result<std::unique_ptr<VectorStore>> open_pg_store(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(auto store, pg::PgVectorStore::open(conninfo, config));
  return std::unique_ptr<VectorStore>(std::move(store));
}
}  // namespace vstore
