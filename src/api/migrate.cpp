// SPDX-License-Identifier: Apache-2.0
// migrate-chroma: Chroma persistent directory or server -> pgvector table, exact, resumable, verified.
//
// Phases:
//   0 check   what is cheap, before the source is read in full: the source opened and the
//             collection chosen, its model known, and (with the connections opened meanwhile)
//             the target table: it exists, its dimension is the one Chroma stored, it holds no
//             vectors of another model. A real run stops at the first that fails; a dry run
//             notes them, and goes on without a database it cannot reach.
//   1 read    every selected collection is read in full before anything is written, so damaged
//             input or a server that fails half-way writes nothing: from a directory by
//             ChromaDir (sqlite + HNSW files + log replay), from a server by ChromaRemote (paged
//             `get`). Both give the same Snapshot (records sorted by id), and everything after
//             this phase is shared.
//   2 plan    the target table's dimension must equal the collection's; ids are classified as
//             update (a row exists), insert (--insert-missing) or skip, with one query.
//   3 copy    records sorted by id, in batches. Per batch, one transaction: binary COPY into a
//             temporary staging table, UPDATE .. FROM staging for rows whose embedding, model or
//             metadata differ (equal rows are not rewritten, so a second run changes nothing),
//             INSERT of missing rows when asked, and the checkpoint row (last id committed).
//             A dry run instead stages each batch's rows in a temporary table of its own and
//             counts the rows the UPDATE's condition would rewrite, so its counts are the run's.
//             A kill leaves whole batches only; --resume starts after the checkpoint's id.
//             A load of >= 5,000 rows that more than doubles the table's vectors drops the vector
//             index vstore created first and builds it once at the end (also after a failure);
//             into an empty table it does the same with vstore's B-tree filter indexes. The
//             HNSW vectors are read deferred and copied out of the mapped files by each batch's
//             writer (all checks of the directory ran in phase 1).
//   4 verify  counts, per-id comparison of the stored vector bytes against the source bytes,
//             metadata equality (jsonb vs Chroma JSON, int and float kept apart) and document
//             equality for inserted rows, and overlap@10 between an exact search over the source
//             vectors in Chroma's metric and pgvector's exact ranking with the matching operator
//             (>= 0.95 to pass; the same through the vector index is reported as index_overlap_at_10).
// Vectors travel as float32 bit patterns end to end (pgvector's binary format), never as text.
#include "vstore/migrate.hpp"
#include "vstore/operations.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "chroma/chroma_dir.hpp"
#include "chroma/chroma_remote.hpp"
#include "core/cosine.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_catalog.hpp"
#include "pg/pg_bulk_index.hpp"
#include "pg/pg_conn.hpp"
#include "pg/pg_filter.hpp"
#include "pg/pg_time.hpp"
#include "vstore/bulk_load.hpp"
#include "vstore/number_parse.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_check.hpp"
#include "vstore/write_check.hpp"
#include "vstore/date.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;
using pg::Param;
using pg::PgResult;
namespace fs = std::filesystem;

constexpr const char* k_checkpoints = "vstore_chroma_checkpoints";
constexpr std::int64_t k_pg_epoch_unix_us = 946684800LL * 1000000;  // 2000-01-01T00:00:00Z in Unix microseconds
// Article columns a new row may get from Chroma: string metadata of the same name, and `raw`
// from the document.
constexpr std::string_view k_text_columns[] = {"title",       "summary",       "topic",          "category",
                                               "news_source", "publication_date", "tags",         "sentiment",
                                               "future_signal", "time_to_impact", "driver_type"};

std::string q(std::string_view ident) { return pg::quote_sql_identifier(ident); }

std::uint64_t fnv1a(std::span<const float> v) {
  std::uint64_t h = 1469598103934665603ULL;
  for (float f : v) {
    auto bits = std::bit_cast<std::uint32_t>(f);
    for (int i = 0; i < 4; ++i) {
      h ^= (bits >> (8 * i)) & 0xFFU;
      h *= 1099511628211ULL;
    }
  }
  return h;
}

double chroma_distance(std::string_view space, std::span<const float> a, std::span<const float> b) {
  if (space != "l2" && space != "ip") return cosine_distance(a, b);
  double dot = 0, l2 = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], y = b[i];
    dot += x * y;
    l2 += (x - y) * (x - y);
  }
  return space == "l2" ? l2 : 1.0 - dot;
}

struct TableShape {
  int dimension = 0;
  std::map<std::string, std::string> columns;  // name -> format_type
  std::map<std::string, std::string> cast_types;  // name -> type without modifier (a cast to varchar(n) truncates)
  std::map<std::string, int> char_limits;      // varchar(n)/character(n) column -> n characters
  std::set<std::string> with_default;          // columns with a default, identity or generation expression
  std::string index_name;                      // the vector index on embedding; empty when none
  std::string index_opclass;                   // its operator class
};

Result<TableShape> table_shape(Connection& conn, const std::string& table) {
  TableShape shape;
  Param p[] = {Param::text(table)};
  VS_TRY_ASSIGN(PgResult cols, conn.exec_params("SELECT attname, format_type(atttypid, atttypmod), atttypmod, "
                                                "atthasdef OR attidentity <> '' OR attgenerated <> '', CASE WHEN "
                                                "atttypid = 'bpchar'::regtype THEN 'bpchar' ELSE format_type(atttypid, "
                                                "NULL) END FROM pg_attribute WHERE attrelid = "
                                                "to_regclass(quote_ident($1)) AND attnum > 0 AND NOT attisdropped",
                                                p));
  if (cols.rows() == 0) {
    return fail(ErrorCode::not_found, fmt::format("table {} does not exist; run `vstore schema up` first", table));
  }
  for (int r = 0; r < cols.rows(); ++r) {
    shape.columns[cols.text(r, 0)] = cols.text(r, 1);
    if (cols.get(r, 0) == "embedding") {
      VS_TRY_ASSIGN(const std::int64_t dimension, parse_int64(cols.get(r, 2), "the embedding column's dimension"));
      shape.dimension = static_cast<int>(dimension);
    }
    if (cols.get(r, 3) == "t") shape.with_default.insert(cols.text(r, 0));
    shape.cast_types[cols.text(r, 0)] = cols.text(r, 4);
    // varchar(n) and character(n) keep n + 4 (the varlena header) in atttypmod.
    const std::string_view typmod = cols.get(r, 2);
    int mod = 0;
    std::from_chars(typmod.data(), typmod.data() + typmod.size(), mod);
    if ((cols.get(r, 4) == "character varying" || cols.get(r, 4) == "bpchar") && mod > 4) {
      shape.char_limits[cols.text(r, 0)] = mod - 4;
    }
  }
  for (const char* needed : {"uri", "embedding", "embedding_model", "vector_metadata"}) {
    if (!shape.columns.contains(needed)) {
      return fail(ErrorCode::conflict, fmt::format("table {} has no {} column; run `vstore schema up` first", table, needed));
    }
  }
  VS_TRY_ASSIGN(pg::VectorIndex idx, pg::find_vector_index(conn, table));
  shape.index_name = idx.name;
  if (!idx.name.empty()) {
    // By oid: a name given to to_regclass() is parsed as SQL and folds case ("MyIdx" -> myidx).
    const std::string oid = std::to_string(idx.oid);
    Param ip[] = {Param::text(oid)};
    VS_TRY_ASSIGN(PgResult opc, conn.exec_params("SELECT o.opcname FROM pg_index i JOIN pg_opclass o ON o.oid = "
                                                 "i.indclass[0] WHERE i.indexrelid = $1::oid",
                                                 ip));
    if (opc.rows() > 0) shape.index_opclass = opc.text(0, 0);
  }
  return shape;
}

// JSON equality that keeps integers, floats and bools apart, also inside arrays (nlohmann's ==
// says 3 == 3.0 and [3] == [3.0]).
bool same_typed(const json& a, const json& b) {
  auto kind = [](const json& j) { return j.is_number_integer() ? json::value_t::number_integer : j.type(); };
  if (kind(a) != kind(b)) return false;
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      auto it = b.find(k);
      if (it == b.end() || !same_typed(v, *it)) return false;
    }
    return true;
  }
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!same_typed(a[i], b[i])) return false;
    }
    return true;
  }
  return a == b;
}

// UTC time to the microsecond, e.g. 20250307T101520.123456Z (report file names).
std::string utc_stamp_micros() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
  return fmt::format("{}.{:06d}Z", buf, micros);
}

// The merge's condition for rewriting an existing row t from staged record s, also what a dry
// run counts as "changed": a row for which it is false is left as it is (unchanged).
constexpr const char* k_row_differs =
    "(t.embedding IS NULL OR t.embedding::text IS DISTINCT FROM s.embedding::text OR t.embedding_model IS DISTINCT "
    "FROM s.embedding_model OR t.vector_metadata IS DISTINCT FROM s.vector_metadata)";

// The checks of every write path (write_check.hpp): the vector (dimension, finite, not all
// zeros), and no NUL byte in the id, the document, the uri or the metadata, which PostgreSQL
// text and jsonb cannot hold.
Result<void> check_record(const chroma::Record& rec, std::span<const float> vec, std::size_t dimension) {
  if (auto ok = check_vector(vec, static_cast<int>(dimension), "vector"); !ok) {
    return fail(ok.error().with_context(fmt::format("record {}", quoted_uri(rec.id))));
  }
  VS_TRY(check_text(rec.id, rec.id, "id"));
  if (rec.document) VS_TRY(check_text(*rec.document, rec.id, "document"));
  if (rec.uri) VS_TRY(check_text(*rec.uri, rec.id, "uri"));
  return check_json_text(rec.metadata, rec.id, "metadata");
}

// The migration of one collection into one table.
class CollectionMigration {
 public:
  CollectionMigration(Connection& conn, std::vector<Connection>& spare, std::string conninfo, const Config& config,
                      const MigrateOptions& options, const std::string& source, chroma::Snapshot& snap,
                      CollectionReport& report, const TableShape& shape)
      : m_conn(conn), m_spare(spare), m_conninfo(std::move(conninfo)), m_config(config), m_options(options),
        m_source(source), m_snap(snap), m_report(report), m_shape(shape) {
    for (auto col : k_text_columns) {
      if (shape.columns.contains(std::string(col))) m_text_cols.emplace_back(col);
    }
    for (const auto& c : m_text_cols) m_col_ts.push_back(shape.columns.at(c) == "timestamp with time zone" ? 1 : 0);
    m_has_raw = shape.columns.contains("raw");
    m_has_pdts = shape.columns.contains("publication_date_ts");
    // A column with a default is always named in the direct COPY (an explicit NULL where a row
    // has no value, as before), so that leaving it out never gives a row the default instead.
    m_keep_column.push_back(m_has_pdts && shape.with_default.contains("publication_date_ts") ? 1 : 0);
    m_keep_column.push_back(m_has_raw && shape.with_default.contains("raw") ? 1 : 0);
    for (const auto& c : m_text_cols) m_keep_column.push_back(shape.with_default.contains(c) ? 1 : 0);
    m_direct = true;
    for (const auto& c : m_text_cols) {
      const std::string& type = shape.columns.at(c);
      if (type != "text" && !type.starts_with("character varying") && type != "timestamp with time zone") m_direct = false;
    }
    if (m_has_raw && shape.columns.at("raw") != "text") m_direct = false;
  }

  Result<void> classify() {
    m_writable.assign(m_snap.records.size(), k_unchecked);
    m_inserted.assign(m_snap.records.size(), 0);
    // An empty table holds none of the ids: the id table (for the counts after a resume and for
    // the verification) is then made only when one of those needs it.
    VS_TRY_ASSIGN(PgResult any, m_conn.exec(fmt::format("SELECT EXISTS (SELECT 1 FROM {})", q(m_config.table))));
    m_target_empty = any.text(0, 0) == "f";
    if (m_target_empty) {
      m_report.to_update = 0;
      (m_options.insert_missing ? m_report.to_insert : m_report.to_skip) = m_report.count;
      return {};
    }
    VS_TRY(ensure_id_table());
    VS_TRY_ASSIGN(PgResult res, m_conn.exec(fmt::format("SELECT count(*) FROM vstore_migrate_ids i JOIN {} t ON t.uri = "
                                                        "i.uri",
                                                        q(m_config.table))));
    VS_TRY_ASSIGN(const std::int64_t existing, parse_int64(res.get(0, 0), "the count of existing rows"));
    if (m_options.insert_missing && !m_options.dry_run) {
      VS_TRY_ASSIGN(PgResult ids, m_conn.exec(fmt::format("SELECT i.uri FROM vstore_migrate_ids i JOIN {} t ON t.uri = "
                                                          "i.uri",
                                                          q(m_config.table))));
      for (int r = 0; r < ids.rows(); ++r) m_existing.insert(ids.text(r, 0));
    }
    m_report.to_update = existing;
    const std::int64_t missing = m_report.count - existing;
    (m_options.insert_missing ? m_report.to_insert : m_report.to_skip) = missing;
    return {};
  }

  // Whether the target table held no rows at classify().
  [[nodiscard]] bool target_empty() const { return m_target_empty; }

  // Every value a new row would get fits its column (varchar(n), character(n)): PostgreSQL
  // truncates an explicit cast silently, and a COPY would fail part-way. Checked for every
  // record before anything is written; a value too long names the id, the column and its limit.
  Result<void> check_fits() const {
    if (!m_options.insert_missing || m_shape.char_limits.empty()) return {};
    std::vector<std::pair<std::size_t, int>> limited;  // (index into m_text_cols, limit)
    for (std::size_t c = 0; c < m_text_cols.size(); ++c) {
      if (auto it = m_shape.char_limits.find(m_text_cols[c]); it != m_shape.char_limits.end()) limited.emplace_back(c, it->second);
    }
    auto limit_of = [&](const char* column) {
      auto it = m_shape.char_limits.find(column);
      return it == m_shape.char_limits.end() ? -1 : it->second;
    };
    const int uri_limit = limit_of("uri");
    const int raw_limit = m_has_raw ? limit_of("raw") : -1;
    auto too_long = [&](const chroma::Record& rec, std::string_view column, std::string_view value, int limit) -> Result<void> {
      const auto length = static_cast<std::size_t>(std::count_if(
          value.begin(), value.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0U) != 0x80U; }));
      if (limit < 0 || length <= static_cast<std::size_t>(limit)) return {};
      return fail(ErrorCode::invalid_argument,
                  fmt::format("record {}: {} has {} characters, but column {}.{} ({}) holds at most {}; nothing was "
                              "written",
                              rec.id, column, length, m_config.table, column, m_shape.columns.at(std::string(column)), limit));
    };
    for (const auto& rec : m_snap.records) {
      if (m_existing.contains(rec.id)) continue;  // an existing row keeps its columns
      VS_TRY(too_long(rec, "uri", rec.id, uri_limit));
      if (rec.document) VS_TRY(too_long(rec, "raw", *rec.document, raw_limit));
      for (const auto& [c, limit] : limited) {
        if (auto v = string_value(rec.metadata, m_text_cols[c])) VS_TRY(too_long(rec, m_text_cols[c], *v, limit));
      }
    }
    return {};
  }

  Result<void> copy() {
    VS_TRY(ensure_checkpoints());
    std::string resume_after;
    if (m_options.resume) {
      Param p[] = {Param::text(m_source), Param::text(m_snap.collection.id), Param::text(m_config.table)};
      VS_TRY_ASSIGN(PgResult res, m_conn.exec_params(fmt::format("SELECT last_id, rows_done FROM {} WHERE source = $1 "
                                                                 "AND collection_id = $2 AND target_table = $3",
                                                                 k_checkpoints),
                                                     p));
      if (res.rows() > 0) {
        resume_after = res.text(0, 0);
        m_report.notes.push_back(fmt::format("resumed after id {} ({} records committed earlier)", resume_after,
                                             res.text(0, 1)));
      }
    }
    const auto& records = m_snap.records;
    std::size_t start = 0;
    if (!resume_after.empty()) {
      start = static_cast<std::size_t>(
          std::upper_bound(records.begin(), records.end(), resume_after,
                           [](const std::string& id, const chroma::Record& r) { return id < r.id; }) -
          records.begin());
      m_report.resumed_after = static_cast<std::int64_t>(start);
    }
    std::vector<std::pair<std::size_t, std::size_t>> ranges;
    const std::size_t batch = std::max<std::size_t>(1, m_options.batch_size);
    for (std::size_t from = start; from < records.size(); from += batch) {
      ranges.emplace_back(from, std::min(records.size(), from + batch));
    }
    VS_TRY(run_batches(ranges));
    if (m_options.resume && start > 0) {
      // Rows committed by the earlier run count as migrated now; verification below re-checks them.
      VS_TRY(ensure_id_table());
      VS_TRY_ASSIGN(PgResult res, m_conn.exec(fmt::format("SELECT count(*) FROM vstore_migrate_ids i JOIN {} t ON t.uri "
                                                          "= i.uri",
                                                          q(m_config.table))));
      VS_TRY_ASSIGN(const std::int64_t present, parse_int64(res.get(0, 0), "the count of present rows"));
      m_report.migrated = present - m_report.errors;
      m_report.skipped = m_report.count - present;
      // The rows of the earlier run's batches hold the Chroma vectors already: counted unchanged,
      // as a dry run (which plans every record) counts them.
      m_report.unchanged = std::max<std::int64_t>(0, m_report.migrated - m_report.changed - m_report.inserted);
    }
    return {};
  }

  // A dry run's phase 3: the counts copy() would give from this state of the table, batch by
  // batch as copy() goes (the same write checks and date readings per record), written nowhere
  // but temporary tables. A record a real run would merge is compared with its row by the
  // merge's own condition (k_row_differs); into an empty table every writable record is new.
  // Plans every record, also with --resume (a resumed run counts the rows it finds done as
  // unchanged, so the counts agree).
  Result<void> plan() {
    const std::size_t total = m_snap.records.size();
    const std::size_t batch = std::max<std::size_t>(1, m_options.batch_size);
    for (std::size_t from = 0; from < total; from += batch) {
      const std::size_t to = std::min(total, from + batch);
      VS_TRY_ASSIGN(BatchResult planned, plan_batch(from, to));
      tally(planned);
      if (m_options.progress) m_options.progress("compare", static_cast<std::int64_t>(to), static_cast<std::int64_t>(total));
    }
    return {};
  }

  Result<json> verify() {
    json v;
    m_snap.fill_vectors(0, m_snap.records.size());  // records a resumed run did not write
    VS_TRY(ensure_id_table());
    const std::size_t dim = m_snap.dimension;
    VS_TRY_ASSIGN(PgResult res, m_conn.exec_params(fmt::format("SELECT t.uri, t.embedding, t.embedding_model, "
                                                               "t.vector_metadata::text, {} FROM vstore_migrate_ids i "
                                                               "JOIN {} t ON t.uri = i.uri",
                                                               m_has_raw ? "t.raw" : "NULL::text", q(m_config.table)),
                                                   {}, true));
    std::unordered_map<std::string, int> rows;
    for (int r = 0; r < res.rows(); ++r) rows.emplace(res.text(r, 0), r);
    std::int64_t checked = 0, missing = 0, vector_mismatch = 0, model_mismatch = 0, metadata_mismatch = 0,
                 document_mismatch = 0, documents_checked = 0;
    std::uint64_t source_sum = 0, stored_sum = 0;
    std::vector<std::string> examples;
    std::vector<float> stored;
    std::int64_t done = 0;
    for (const auto& rec : m_snap.records) {
      ++done;
      if (m_options.progress && done % 10000 == 0) {
        m_options.progress("verify", done, static_cast<std::int64_t>(m_snap.records.size()));
      }
      if (!is_writable(rec)) continue;  // counted as an error at copy time
      auto it = rows.find(rec.id);
      if (it == rows.end()) {
        if (m_options.insert_missing) {
          ++missing;
          if (examples.size() < 10) examples.push_back("missing " + rec.id);
        }
        continue;
      }
      ++checked;
      const int r = it->second;
      stored.clear();
      if (res.is_null(r, 1) || !pg::decode_vector(res.get(r, 1), stored, dim)) {
        ++vector_mismatch;
        if (examples.size() < 10) examples.push_back("no vector " + rec.id);
        continue;
      }
      source_sum ^= fnv1a(rec.vector) + std::hash<std::string>{}(rec.id);
      stored_sum ^= fnv1a(stored) + std::hash<std::string>{}(rec.id);
      if (std::memcmp(stored.data(), rec.vector.data(), dim * sizeof(float)) != 0) {
        ++vector_mismatch;
        if (examples.size() < 10) examples.push_back("vector differs " + rec.id);
      }
      if (res.is_null(r, 2) || res.text(r, 2) != m_report.embedding_model) ++model_mismatch;
      const json md = res.is_null(r, 3) ? json() : json::parse(res.get(r, 3), nullptr, false);
      if (!same_typed(md, rec.metadata)) {
        ++metadata_mismatch;
        if (examples.size() < 10) examples.push_back("metadata differs " + rec.id);
      }
      if (m_has_raw && m_inserted[static_cast<std::size_t>(&rec - m_snap.records.data())] != 0) {
        ++documents_checked;
        const std::optional<std::string> raw = res.is_null(r, 4) ? std::nullopt : std::optional<std::string>(res.text(r, 4));
        if (raw != rec.document) {
          ++document_mismatch;
          if (examples.size() < 10) examples.push_back("document differs " + rec.id);
        }
      }
    }
    v["rows_checked"] = checked;
    v["missing"] = missing;
    v["vector_mismatch"] = vector_mismatch;
    v["model_mismatch"] = model_mismatch;
    v["metadata_mismatch"] = metadata_mismatch;
    v["document_mismatch"] = document_mismatch;
    v["documents_checked"] = documents_checked;  // rows this run created (the others keep the application's text)
    v["source_checksum"] = fmt::format("{:016x}", source_sum);
    v["stored_checksum"] = fmt::format("{:016x}", stored_sum);
    v["expected_rows"] = m_report.migrated;
    VS_TRY_ASSIGN(Overlap ov, overlap_at_10(rows));
    const double overlap = ov.exact;
    v["overlap_at_10"] = overlap;
    v["index_overlap_at_10"] = ov.index ? json(*ov.index) : json(nullptr);
    v["overlap_queries"] = m_overlap_queries;
    v["examples"] = examples;
    const bool count_ok = checked == m_report.migrated;
    v["counts_match"] = count_ok;
    v["passed"] = count_ok && missing == 0 && vector_mismatch == 0 && model_mismatch == 0 && metadata_mismatch == 0 &&
                  document_mismatch == 0 && overlap >= 0.95;
    return v;
  }

 private:
  // Whether a record can be written (check_record()), worked out on first use: by the
  // writer that encodes the record (its vector is then in cache for the encoding; writers
  // handle disjoint records), and for the others by the id table or the verification, which
  // run on the calling thread before or after the writers.
  [[nodiscard]] bool is_writable(const chroma::Record& rec) {
    return is_writable(static_cast<std::size_t>(&rec - m_snap.records.data()), rec.vector);
  }
  // The same for record `i` whose vector is `vec` (Snapshot::vector_of).
  [[nodiscard]] bool is_writable(std::size_t i, std::span<const float> vec) {
    char& flag = m_writable[i];
    if (flag == k_unchecked) flag = check_record(m_snap.records[i], vec) ? k_writable : k_refused;
    return flag == k_writable;
  }
  [[nodiscard]] Result<void> check_record(const chroma::Record& rec, std::span<const float> vec) const {
    return vstore::check_record(rec, vec, m_snap.dimension);
  }

  // The temporary table of the collection's ids with a finite vector, made once per collection.
  Result<void> ensure_id_table() {
    if (m_id_table) return {};
    m_snap.fill_vectors(0, m_snap.records.size());  // for the finiteness of every record
    VS_TRY(m_conn.exec("CREATE TEMP TABLE IF NOT EXISTS vstore_migrate_ids (uri text PRIMARY KEY)"));
    VS_TRY(m_conn.exec("TRUNCATE vstore_migrate_ids"));
    pg::CopyWriter writer;
    for (std::size_t i = 0; i < m_snap.records.size(); ++i) {
      if (!is_writable(m_snap.records[i])) continue;
      writer.begin_row(1);
      writer.bytes_field(m_snap.records[i].id);
    }
    VS_TRY(m_conn.copy_in("COPY vstore_migrate_ids FROM STDIN (FORMAT binary)", writer.finish()));
    VS_TRY(m_conn.exec("ANALYZE vstore_migrate_ids"));
    m_id_table = true;
    return {};
  }

  Result<void> ensure_checkpoints() {
    VS_TRY(m_conn.exec(fmt::format("CREATE TABLE IF NOT EXISTS {} (source text NOT NULL, collection_id text NOT NULL, "
                                   "target_table text NOT NULL, last_id text NOT NULL, rows_done bigint NOT NULL, "
                                   "updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (source, collection_id, "
                                   "target_table))",
                                   k_checkpoints)));
    return {};
  }

  // The temporary staging table on `conn`, made the first time one of its batches stages rows:
  // a load of new rows into a table that lacks them streams every row straight in and needs none.
  Result<void> ensure_stage(Connection& conn) {
    {
      std::lock_guard lock(m_stage_mutex);
      if (m_staged_on.contains(&conn)) return {};
    }
    VS_TRY(create_stage(conn));
    std::lock_guard lock(m_stage_mutex);
    m_staged_on.insert(&conn);
    return {};
  }

  Result<void> create_stage(Connection& conn) {
    std::string cols = fmt::format("uri text, embedding vector({}), embedding_model text, vector_metadata jsonb, pdts bigint, "
                                   "raw_doc text",
                                   m_snap.dimension);
    for (const auto& c : m_text_cols) cols += fmt::format(", {} text", q(c));
    VS_TRY(conn.exec("DROP TABLE IF EXISTS vstore_migrate_stage"));
    VS_TRY(conn.exec(fmt::format("CREATE TEMP TABLE vstore_migrate_stage ({})", cols)));
    return {};
  }

  // Text of a string metadata value, or nullopt.
  static std::optional<std::string> string_value(const json& metadata, const std::string& key) {
    auto it = metadata.find(key);
    return it != metadata.end() && it->is_string() ? std::optional<std::string>(it->get<std::string>()) : std::nullopt;
  }

  // The string metadata values of `rec` that article columns take, by column (nullptr where
  // the record has no string of that name): one pass over the record's keys instead of a
  // look-up per column, and no copies.
  void column_strings(const chroma::Record& rec, std::vector<const std::string*>& out) const {
    out.assign(m_text_cols.size(), nullptr);
    if (!rec.metadata.is_object()) return;
    for (const auto& [key, value] : rec.metadata.get_ref<const json::object_t&>()) {
      if (!value.is_string()) continue;
      for (std::size_t c = 0; c < m_text_cols.size(); ++c) {
        if (m_text_cols[c] == key) {
          out[c] = &value.get_ref<const std::string&>();
          break;
        }
      }
    }
  }

  // The timestamptz column values of `rec` as ingest reads dates (read_date: time and zone
  // kept, a time without a zone is UTC); a date it cannot read is NULL, noted in `unreadable`
  // (its text stays in vector_metadata).
  void date_columns(const chroma::Record& rec, std::vector<std::optional<std::int64_t>>& micros,
                    std::vector<std::string>& unreadable) const {
    micros.assign(m_text_cols.size(), std::nullopt);
    for (std::size_t i = 0; i < m_text_cols.size(); ++i) {
      if (m_col_ts[i] == 0) continue;
      auto v = string_value(rec.metadata, m_text_cols[i]);
      if (!v) continue;
      micros[i] = pg::timestamptz_micros(*v, pg::Zoneless::utc);
      if (!micros[i]) {
        unreadable.push_back(fmt::format("record {}: field {}: {}; stored without a date (the text stays in "
                                         "vector_metadata)",
                                         quoted_uri(rec.id), m_text_cols[i], read_date(*v).error().message()));
      }
    }
  }

  // The fields every row starts with, on every path (direct COPY, staging, a dry run's
  // comparison): id, vector, model, metadata.
  void begin_row(pg::CopyWriter& w, const chroma::Record& rec, std::span<const float> vec, int fields) const {
    w.begin_row(fields);
    w.bytes_field(rec.id);
    w.vector_field(vec);
    w.bytes_field(m_report.embedding_model);
    // (An empty object, as most records of a vectors-only collection have, without the serializer.)
    if (rec.metadata.is_object() && rec.metadata.empty()) {
      w.jsonb_field("{}");
    } else {
      w.jsonb_field(rec.metadata.dump());
    }
  }

  // What one batch wrote, counted in the report once its transaction commits.
  struct BatchResult {
    std::int64_t finite_records = 0;
    std::int64_t present = 0;
    std::int64_t changed = 0;
    std::int64_t inserted = 0;
    std::vector<std::pair<std::string, std::string>> refused;  // (id, why) of records not written
    std::vector<std::string> unreadable_dates;                 // one line per date column value read as NULL
    std::vector<std::size_t> inserted_rows;  // indexes into m_snap.records of the rows this batch created
  };

  // Writes records [from, to) in a transaction it opens on `conn` and leaves open for
  // commit_batch(); on failure the transaction is rolled back.
  Result<BatchResult> write_batch(Connection& conn, std::size_t from, std::size_t to, bool allow_direct = true) {
    // Each vector is copied out of the HNSW files by the writer that encodes it, one record at
    // a time into one scratch buffer (Snapshot::vector_of), while the server stores the other
    // writers' batches: checked for finiteness and encoded while it is in cache, and never
    // held by the record (the verification copies the vectors again).
    std::vector<float> scratch;
    scratch.reserve(m_snap.dimension);
    BatchResult result;
    pg::CopyWriter writer;
    const bool use_direct = allow_direct && m_direct && m_options.insert_missing;
    const std::size_t ncols = m_text_cols.size();
    std::vector<std::size_t> direct_rows;                   // indexes into m_snap.records (finite or not)
    std::vector<std::size_t> direct_written;                // those of them written (finite)
    std::vector<std::optional<std::int64_t>> direct_micros;  // ncols per direct row
    std::vector<const std::string*> direct_strings;          // ncols per direct row (column_strings)
    std::size_t staged = 0;
    std::vector<std::optional<std::int64_t>> micros;
    std::vector<const std::string*> strings;  // a record's text-column values (column_strings)
    auto begin_record = [this](pg::CopyWriter& w, const chroma::Record& rec, std::span<const float> vec, int fields) {
      begin_row(w, rec, vec, fields);
    };
    // Record i's vector when the record can be written (counted), else nullopt (its id and
    // the reason noted as an error).
    auto finite_vector = [&](std::size_t i) -> std::optional<std::span<const float>> {
      const std::span<const float> vec = m_snap.vector_of(i, scratch);
      if (!is_writable(i, vec)) {
        auto why = check_record(m_snap.records[i], vec);
        result.refused.emplace_back(m_snap.records[i].id, why ? std::string() : why.error().message());
        return std::nullopt;
      }
      ++result.finite_records;
      return vec;
    };
    auto pdts_of = [](const chroma::Record& rec) -> std::optional<std::int64_t> {
      if (auto it = rec.metadata.find("publication_date_ts"); it != rec.metadata.end() && it->is_number_integer()) {
        return it->get<std::int64_t>();
      }
      return std::nullopt;
    };
    // The optional columns the batch's new rows give a value (pdts, raw, then m_text_cols): the
    // direct COPY names only those and the columns without a default (NULL for the rows that
    // lack a value, as the column would be if left out), so the server parses no field that
    // only says NULL. A vectors-only load then sends 4 fields per row, not 17.
    std::vector<char> given = m_keep_column;
    for (std::size_t i = from; i < to; ++i) {
      const auto& rec = m_snap.records[i];
      date_columns(rec, micros, result.unreadable_dates);
      if (use_direct && !m_existing.contains(rec.id)) {
        direct_rows.push_back(i);  // a new row: checked and streamed straight into the table below
        direct_micros.insert(direct_micros.end(), micros.begin(), micros.end());
        if (m_has_pdts && !given[0] && pdts_of(rec)) given[0] = 1;
        if (m_has_raw && !given[1] && rec.document) given[1] = 1;
        column_strings(rec, strings);
        for (std::size_t c = 0; c < ncols; ++c) {
          if (strings[c]) given[2 + c] = 1;
        }
        direct_strings.insert(direct_strings.end(), strings.begin(), strings.end());
        continue;
      }
      const auto vec = finite_vector(i);
      if (!vec) continue;
      ++staged;
      const std::optional<std::int64_t> pdts = pdts_of(rec);
      begin_record(writer, rec, *vec, 6 + static_cast<int>(ncols));
      pdts ? writer.int64_field(*pdts) : writer.null_field();
      writer.text_field(rec.document);
      column_strings(rec, strings);
      for (std::size_t c = 0; c < ncols; ++c) {
        if (m_col_ts[c] != 0) {  // the instant read (date_columns), not the text, for the server's cast
          micros[c] ? writer.bytes_field(iso8601_utc_micros(*micros[c] + k_pg_epoch_unix_us)) : writer.null_field();
        } else {
          strings[c] ? writer.bytes_field(*strings[c]) : writer.null_field();
        }
      }
    }
    // New rows go straight into the table in the columns' own binary types, streamed: the
    // server stores one slice while the next is encoded.
    const bool with_pdts = given[0] != 0;  // (only set when the table has the column)
    const bool with_raw = given[1] != 0;
    const int direct_fields = 4 + (with_pdts ? 1 : 0) + (with_raw ? 1 : 0) +
                              static_cast<int>(std::count(given.begin() + 2, given.end(), char{1}));
    std::size_t next_direct = 0;
    auto fill_direct = [&](pg::CopyWriter& direct) -> Result<bool> {
      for (; next_direct < direct_rows.size() && direct.size() < pg::k_copy_slice_bytes; ++next_direct) {
        const std::size_t i = direct_rows[next_direct];
        const auto& rec = m_snap.records[i];
        const auto vec = finite_vector(i);
        if (!vec) continue;
        direct_written.push_back(i);
        const std::optional<std::int64_t>* row_micros = direct_micros.data() + next_direct * ncols;
        const std::string* const* row_strings = direct_strings.data() + next_direct * ncols;
        begin_record(direct, rec, *vec, direct_fields);
        if (with_pdts) {
          const std::optional<std::int64_t> pdts = pdts_of(rec);
          pdts ? direct.int64_field(*pdts) : direct.null_field();
        }
        if (with_raw) direct.text_field(rec.document);
        for (std::size_t c = 0; c < ncols; ++c) {
          if (!given[2 + c]) continue;
          if (m_col_ts[c] != 0) {
            row_micros[c] ? direct.int64_field(*row_micros[c]) : direct.null_field();
          } else {
            row_strings[c] ? direct.bytes_field(*row_strings[c]) : direct.null_field();
          }
        }
      }
      return next_direct < direct_rows.size();
    };
    const std::string data = writer.finish();
    const std::string table = q(m_config.table);
    if (staged > 0) VS_TRY(ensure_stage(conn));
    VS_TRY(conn.exec("BEGIN"));
    auto body = [&]() -> Result<void> {
      if (!direct_rows.empty()) {
        std::string cols = "uri, embedding, embedding_model, vector_metadata";
        if (with_pdts) cols += ", publication_date_ts";
        if (with_raw) cols += ", raw";
        for (std::size_t c = 0; c < ncols; ++c) {
          if (given[2 + c]) cols += ", " + q(m_text_cols[c]);
        }
        VS_TRY(conn.copy_stream(fmt::format("COPY {} ({}) FROM STDIN (FORMAT binary)", table, cols), fill_direct));
        result.inserted += static_cast<std::int64_t>(direct_written.size());
        result.inserted_rows.insert(result.inserted_rows.end(), direct_written.begin(), direct_written.end());
      }
      if (staged > 0) VS_TRY(merge_staged(conn, data, result));
      return {};
    };
    if (auto done = body(); !done) {
      (void)conn.exec("ROLLBACK");
      // A row inserted by someone else since classify(): redo the batch through the merge.
      if (!direct_rows.empty() && done.error().code() == ErrorCode::conflict) return write_batch(conn, from, to, false);
      return fail(done.error());
    }
    // In id order (the records' order), whichever path found them.
    std::sort(result.refused.begin(), result.refused.end());
    return result;
  }

  // What write_batch() would do with records [from, to), found without writing (plan()).
  Result<BatchResult> plan_batch(std::size_t from, std::size_t to) {
    BatchResult result;
    std::vector<float> scratch;
    std::vector<std::optional<std::int64_t>> micros;
    pg::CopyWriter writer;
    std::size_t staged = 0;
    for (std::size_t i = from; i < to; ++i) {
      const auto& rec = m_snap.records[i];
      date_columns(rec, micros, result.unreadable_dates);
      const std::span<const float> vec = m_snap.vector_of(i, scratch);
      if (!is_writable(i, vec)) {
        auto why = check_record(rec, vec);
        result.refused.emplace_back(rec.id, why ? std::string() : why.error().message());
        continue;
      }
      ++result.finite_records;
      if (m_target_empty) continue;  // no row to compare with
      begin_row(writer, rec, vec, 4);
      ++staged;
    }
    if (staged > 0) {
      if (!m_plan_table) {  // made again per collection: another one may have another dimension
        VS_TRY(m_conn.exec("DROP TABLE IF EXISTS vstore_migrate_plan"));
        VS_TRY(m_conn.exec(fmt::format("CREATE TEMP TABLE vstore_migrate_plan (uri text, embedding vector({}), "
                                       "embedding_model text, vector_metadata jsonb)",
                                       m_snap.dimension)));
        m_plan_table = true;
      }
      VS_TRY(m_conn.exec("TRUNCATE vstore_migrate_plan"));
      VS_TRY(m_conn.copy_in("COPY vstore_migrate_plan FROM STDIN (FORMAT binary)", writer.finish()));
      VS_TRY(m_conn.exec("ANALYZE vstore_migrate_plan"));
      VS_TRY_ASSIGN(PgResult counts,
                    m_conn.exec(fmt::format("SELECT count(*), count(*) FILTER (WHERE {}) FROM vstore_migrate_plan s "
                                            "JOIN {} t ON t.uri = s.uri",
                                            k_row_differs, q(m_config.table))));
      VS_TRY_ASSIGN(result.present, parse_int64(counts.get(0, 0), "the count of existing rows"));
      VS_TRY_ASSIGN(result.changed, parse_int64(counts.get(0, 1), "the count of rows that differ"));
    }
    if (m_options.insert_missing) result.inserted = result.finite_records - result.present;
    return result;
  }

  // Records the checkpoint (the last id of the batch), commits the batch's transaction and
  // counts it in the report.
  Result<void> commit_batch(Connection& conn, std::size_t to, BatchResult& result) {
    if (auto saved = save_checkpoint(conn, to); !saved) {
      (void)conn.exec("ROLLBACK");
      return saved;
    }
    VS_TRY(conn.exec("COMMIT"));
    for (std::size_t i : result.inserted_rows) m_inserted[i] = 1;
    tally(result);
    return {};
  }

  // Counts a batch in the report: one committed, or one a dry run planned.
  void tally(BatchResult& result) {
    m_report.errors += static_cast<std::int64_t>(result.refused.size());
    for (auto& [id, why] : result.refused) {
      if (m_report.error_ids.size() >= 100) break;
      m_report.error_ids.push_back(std::move(id));
      m_report.error_reasons.push_back(std::move(why));
    }
    m_report.unreadable_dates += static_cast<std::int64_t>(result.unreadable_dates.size());
    for (auto& line : result.unreadable_dates) {
      if (m_report.date_notes.size() < 100) m_report.date_notes.push_back(std::move(line));
    }
    m_report.changed += result.changed;
    m_report.unchanged += result.present - result.changed;
    m_report.inserted += result.inserted;
    m_report.migrated += result.present + result.inserted;
    m_report.skipped += result.finite_records - result.present - result.inserted;
  }

  // Writes the batches. With one writer they run one after another on the migration's
  // connection. With more, each writer has its own connection and takes every n-th batch, so
  // the server stores several batches at once, but the batches still commit in order (a writer
  // that is done waits for the batch before its own): the checkpoint then always names a
  // prefix of the batches, and a kill at any point leaves whole batches up to it.
  Result<void> run_batches(const std::vector<std::pair<std::size_t, std::size_t>>& ranges) {
    // migrate_chroma() checked writers to be 1..8; no more writers than batches.
    const std::size_t writers = std::min(static_cast<std::size_t>(m_options.writers), std::max<std::size_t>(1, ranges.size()));
    // The writers after the first write on the migration's spare connections (opened while the
    // source was read); any still missing are opened now and kept with them.
    while (m_spare.size() + 1 < writers) {
      VS_TRY_ASSIGN(Connection c, Connection::connect(m_conninfo));
      m_spare.push_back(std::move(c));
    }
    std::vector<Connection*> conns{&m_conn};
    for (std::size_t w = 1; w < writers; ++w) conns.push_back(&m_spare[w - 1]);

    std::mutex mutex;
    std::condition_variable turn;
    std::size_t next_commit = 0;
    bool stop = false;
    std::optional<Error> first_error;
    std::size_t committed = 0;
    // Ends every writer at its next turn; the first error is the one reported. Called with `mutex` held.
    auto halt = [&](const Error& e) {
      if (!first_error) first_error = e;
      stop = true;
      turn.notify_all();
    };
    auto writer = [&](std::size_t lane) {
      Connection& conn = *conns[lane];
      for (std::size_t b = lane; b < ranges.size(); b += writers) {
        {
          std::lock_guard lock(mutex);
          if (stop) return;
        }
        Result<BatchResult> written = write_batch(conn, ranges[b].first, ranges[b].second);
        std::unique_lock lock(mutex);
        turn.wait(lock, [&] { return stop || next_commit == b; });
        if (!written) return halt(written.error());
        if (stop) {
          (void)conn.exec("ROLLBACK");
          return;
        }
        if (auto done = commit_batch(conn, ranges[b].second, *written); !done) return halt(done.error());
        ++committed;
        if (m_options.progress) {
          m_options.progress("copy", static_cast<std::int64_t>(ranges[b].second),
                             static_cast<std::int64_t>(m_snap.records.size()));
        }
        if (m_options.test_batch_delay_ms > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(m_options.test_batch_delay_ms));
        }
        if (m_options.test_stop_after_batches != 0 && committed >= m_options.test_stop_after_batches &&
            b + 1 < ranges.size()) {
          return halt(Error(ErrorCode::internal, fmt::format("stopped after {} batches (test hook)", committed)));
        }
        ++next_commit;
        turn.notify_all();
      }
    };
    std::vector<std::thread> threads;
    for (std::size_t lane = 1; lane < writers; ++lane) threads.emplace_back(writer, lane);
    writer(0);
    for (auto& t : threads) t.join();
    if (first_error) return fail(*first_error);
    return {};
  }

  // Staging COPY, UPDATE of existing rows that differ, INSERT of missing ones (--insert-missing).
  Result<void> merge_staged(Connection& conn, const std::string& data, BatchResult& result) {
    const std::string table = q(m_config.table);
    {
      VS_TRY(conn.exec("TRUNCATE vstore_migrate_stage"));
      VS_TRY(conn.copy_in("COPY vstore_migrate_stage FROM STDIN (FORMAT binary)", data));
      // Without statistics the planner hash-joins the whole target table for every batch.
      VS_TRY(conn.exec("ANALYZE vstore_migrate_stage"));
      VS_TRY_ASSIGN(PgResult existing,
                    conn.exec(fmt::format("SELECT count(*) FROM vstore_migrate_stage s JOIN {} t ON t.uri = s.uri", table)));
      VS_TRY_ASSIGN(const std::int64_t existing_rows, parse_int64(existing.get(0, 0), "the count of existing rows"));
      VS_TRY_ASSIGN(PgResult updated,
                    conn.exec(fmt::format(
                        "UPDATE {} t SET embedding = s.embedding, embedding_model = s.embedding_model, vector_metadata = "
                        "s.vector_metadata, embedding_text_hash = NULL{} FROM vstore_migrate_stage s WHERE t.uri = s.uri AND {}",
                        table, m_has_pdts ? ", publication_date_ts = COALESCE(s.pdts, t.publication_date_ts)" : "",
                        k_row_differs)));
      if (m_options.insert_missing) {
        std::string cols = "uri, embedding, embedding_model, vector_metadata";
        std::string sel = "s.uri, s.embedding, s.embedding_model, s.vector_metadata";
        if (m_has_pdts) {
          cols += ", publication_date_ts";
          sel += ", s.pdts";
        }
        if (m_has_raw) {
          cols += ", raw";
          sel += ", s.raw_doc";
        }
        for (const auto& c : m_text_cols) {
          const std::string& type = m_shape.cast_types.at(c);
          cols += ", " + q(c);
          // A value the column's type cannot hold (e.g. a date in another format) stays NULL
          // for timestamp columns; text columns take it as it is.
          sel += type.starts_with("timestamp") || type == "date"
                     ? fmt::format(", CASE WHEN s.{0} ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}' THEN s.{0}::{1} END", q(c), type)
                     : fmt::format(", s.{}::{}", q(c), type);
        }
        VS_TRY_ASSIGN(PgResult ins, conn.exec(fmt::format("INSERT INTO {} ({}) SELECT {} FROM vstore_migrate_stage s "
                                                            "WHERE NOT EXISTS (SELECT 1 FROM {} t WHERE t.uri = s.uri) "
                                                            "RETURNING uri",
                                                            table, cols, sel, table)));
        result.inserted += ins.rows();
        const auto& records = m_snap.records;
        for (int r = 0; r < ins.rows(); ++r) {
          const std::string_view id = ins.get(r, 0);
          auto it = std::lower_bound(records.begin(), records.end(), id,
                                     [](const chroma::Record& rec, std::string_view v) { return rec.id < v; });
          if (it != records.end() && it->id == id) result.inserted_rows.push_back(static_cast<std::size_t>(it - records.begin()));
        }
      }
      result.present += existing_rows;
      result.changed += updated.affected();
    }
    return {};
  }

  Result<void> save_checkpoint(Connection& conn, std::size_t to) {
    {
      const std::string last_id = m_snap.records[to - 1].id;
      const std::string done = std::to_string(to);
      Param p[] = {Param::text(m_source), Param::text(m_snap.collection.id), Param::text(m_config.table),
                   Param::text(last_id), Param::text(done)};
      VS_TRY(conn.exec_params(fmt::format("INSERT INTO {} (source, collection_id, target_table, last_id, rows_done) "
                                            "VALUES ($1, $2, $3, $4, $5::bigint) ON CONFLICT (source, collection_id, "
                                            "target_table) DO UPDATE SET last_id = EXCLUDED.last_id, rows_done = "
                                            "EXCLUDED.rows_done, updated_at = now()",
                                            k_checkpoints),
                                p));
    }
    return {};
  }

  // overlap@10 of pgvector against an exact search over the source vectors in Chroma's metric,
  // for a spread sample of the records as queries: `exact` ranks with pgvector's operator for
  // that metric over every migrated row (the index cannot serve `+ 0`), which is what must agree;
  // `index` goes through the table's vector index when its operator class matches the metric
  // (reported, not a pass criterion: it measures the index's recall on this data).
  struct Overlap {
    double exact = 1.0;
    std::optional<double> index;
  };
  Result<Overlap> overlap_at_10(const std::unordered_map<std::string, int>& stored_rows) {
    Overlap out;
    std::vector<const chroma::Record*> candidates;
    for (const auto& rec : m_snap.records) {
      if (stored_rows.contains(rec.id) && is_writable(rec)) candidates.push_back(&rec);
    }
    m_overlap_queries = 0;
    if (candidates.empty()) return out;
    VS_TRY_ASSIGN(auto ops, pgvector_operator_for(m_snap.collection.space));
    VS_TRY_ASSIGN(Oid vec_oid, m_conn.type_oid("vector"));
    const std::size_t k = std::min<std::size_t>(10, candidates.size());
    const std::size_t queries = std::min<std::size_t>(static_cast<std::size_t>(std::max(1, m_options.verify_queries)),
                                                      candidates.size());
    const std::string exact_sql = fmt::format("SELECT t.uri FROM {} t JOIN vstore_migrate_ids i ON i.uri = t.uri WHERE "
                                              "t.embedding IS NOT NULL ORDER BY (t.embedding {} $1) + 0 LIMIT {}",
                                              q(m_config.table), ops.second, k);
    const bool use_index = m_shape.index_opclass == ops.first;
    const std::string index_sql = fmt::format("SELECT t.uri FROM {} t WHERE t.embedding IS NOT NULL ORDER BY t.embedding "
                                              "{} $1 LIMIT {}",
                                              q(m_config.table), ops.second, k);
    double exact_total = 0;
    double index_total = 0;
    const std::size_t step = std::max<std::size_t>(1, candidates.size() / queries);
    std::vector<std::pair<double, std::size_t>> dist(candidates.size());
    for (std::size_t qi = 0; qi < queries; ++qi) {
      const auto& query = candidates[(qi * step) % candidates.size()]->vector;
      for (std::size_t c = 0; c < candidates.size(); ++c) {
        dist[c] = {chroma_distance(m_snap.collection.space, query, candidates[c]->vector), c};
      }
      std::partial_sort(dist.begin(), dist.begin() + static_cast<std::ptrdiff_t>(k), dist.end());
      std::unordered_set<std::string> truth;
      for (std::size_t i = 0; i < k; ++i) truth.insert(candidates[dist[i].second]->id);
      const std::string vec = pg::encode_vector(query);
      std::vector<Param> params = {Param{vec, true, false, vec_oid}};
      auto overlap = [&](const std::string& sql) -> Result<double> {
        VS_TRY_ASSIGN(PgResult res, m_conn.exec_params(sql, params));
        std::size_t hit = 0;
        for (int r = 0; r < res.rows(); ++r) hit += truth.contains(res.text(r, 0)) ? 1 : 0;
        return static_cast<double>(hit) / static_cast<double>(k);
      };
      VS_TRY_ASSIGN(double e, overlap(exact_sql));
      exact_total += e;
      if (use_index) {
        VS_TRY_ASSIGN(double ix, overlap(index_sql));
        index_total += ix;
      }
      ++m_overlap_queries;
    }
    out.exact = exact_total / static_cast<double>(queries);
    if (use_index) out.index = index_total / static_cast<double>(queries);
    return out;
  }

  Connection& m_conn;
  std::vector<Connection>& m_spare;  // idle connections for the writers after the first (the migration's)
  std::string m_conninfo;            // for writers' connections m_spare lacks
  const Config& m_config;
  const MigrateOptions& m_options;
  const std::string& m_source;
  chroma::Snapshot& m_snap;
  CollectionReport& m_report;
  const TableShape& m_shape;
  std::vector<std::string> m_text_cols;
  std::vector<char> m_col_ts;  // per m_text_cols: the column is timestamptz (else text)
  bool m_has_raw = false;
  bool m_has_pdts = false;
  std::vector<char> m_keep_column;  // pdts, raw, then m_text_cols: named in every direct COPY (has a default)
  std::vector<char> m_inserted;                // per record: this run created its row
  std::unordered_set<std::string> m_existing;  // ids with a row at classify() (insert_missing only)
  bool m_direct = false;                       // the table's columns allow the direct COPY of new rows
  bool m_id_table = false;                     // vstore_migrate_ids holds this collection's ids
  bool m_plan_table = false;                   // vstore_migrate_plan exists (a dry run's comparison)
  bool m_target_empty = false;                 // the table held no rows at classify()
  static constexpr char k_unchecked = 0, k_writable = 1, k_refused = 2;
  std::vector<char> m_writable;                // per record: k_unchecked, k_writable or k_refused
  std::int64_t m_overlap_queries = 0;
  std::mutex m_stage_mutex;
  std::set<const Connection*> m_staged_on;  // connections with this collection's staging table (ensure_stage)
};

json stats_json(const chroma::SnapshotStats& s) {
  return {{"hnsw_slots", s.hnsw_slots},
          {"hnsw_deleted_or_unlabelled", s.hnsw_deleted},
          {"vector_max_seq_id", s.vector_max_seq_id},
          {"metadata_max_seq_id", s.metadata_max_seq_id},
          {"log_rows", s.wal_rows},
          {"log_rows_replayed", s.wal_replayed},
          {"cosine_exact_from_log", s.exact_from_log},
          {"label_map_format", s.label_map_format}};
}

// The source opened, and its collections chosen, before anything is read in full: what
// phase 1 checks cheaply (the directory's files and schema, the server's API, which
// collections, their models and dimensions as stored).
struct SourceOpened {
  std::string source;  // directory path, or the redacted server URL (also the checkpoint key)
  std::string kind;    // "directory" or "server"
  std::string schema_version;
  std::optional<chroma::ChromaDir> dir;
  std::optional<chroma::ChromaRemote> remote;
  std::vector<chroma::CollectionInfo> chosen;
  std::string refusal;  // a dry run: why a real run would not choose (MigrateReport::refusal)
};

// One collection read in full.
struct SourceCollection {
  chroma::Snapshot snap;
  json stats;          // how it was read (CollectionReport::source_stats)
  double read_s = 0;   // seconds
};

// Seconds since `start` on the steady clock (the timings of the report).
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// A stopped Chroma directory, offline: every collection on a dry run without --collection.
Result<SourceOpened> open_directory(const MigrateOptions& options) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(options.from_dir, ec);
  if (ec) return fail(ErrorCode::not_found, fmt::format("chroma directory {} does not exist", options.from_dir));
  SourceOpened out;
  out.source = canonical.string();
  out.kind = "directory";
  VS_TRY_ASSIGN(chroma::ChromaDir dir, chroma::ChromaDir::open(canonical.string()));
  out.schema_version = dir.schema_version();
  VS_TRY_ASSIGN(std::vector<chroma::CollectionInfo> all, dir.collections());
  std::string names;
  for (const auto& c : all) names += (names.empty() ? "" : ", ") + c.name;
  if (options.collection) {
    for (const auto& c : all) {
      if (c.name == *options.collection) out.chosen.push_back(c);
    }
    if (out.chosen.empty()) {
      return fail(ErrorCode::not_found, fmt::format("no collection {} in {} (it has: {})", *options.collection, out.source,
                                                    names.empty() ? "none" : names));
    }
  } else if (all.size() == 1) {
    out.chosen = all;
  } else {
    const std::string why = fmt::format("{} holds {} collections ({}); choose one with --collection", out.source,
                                        all.size(), names.empty() ? "none" : names);
    if (!options.dry_run) return fail(ErrorCode::invalid_argument, why);
    out.chosen = all;
    out.refusal = why;
  }
  out.dir = std::move(dir);
  return out;
}

// A running Chroma server over HTTP: one collection, --collection or CHROMA_COLLECTION.
Result<SourceOpened> open_server(const Config& config, const MigrateOptions& options) {
  chroma::RemoteOptions remote_options;
  remote_options.http.base_url = options.from_url;
  remote_options.http.token = config.chroma_token;
  remote_options.http.io_timeout = config.chroma_timeout;
  remote_options.tenant = options.tenant;
  remote_options.database = options.database;
  remote_options.page_size = options.page_size;
  VS_TRY_ASSIGN(chroma::ChromaRemote remote, chroma::ChromaRemote::open(std::move(remote_options)));
  SourceOpened out;
  out.source = remote.server();
  out.kind = "server";
  out.schema_version = remote.describe();
  VS_TRY_ASSIGN(chroma::CollectionInfo info, remote.collection(options.collection.value_or(config.chroma_collection)));
  out.chosen.push_back(std::move(info));
  out.remote = std::move(remote);
  return out;
}

// Collection `i` of `opened`, read in full.
Result<SourceCollection> read_collection(SourceOpened& opened, std::size_t i, const MigrateOptions& options) {
  const chroma::CollectionInfo& info = opened.chosen[i];
  const auto t0 = std::chrono::steady_clock::now();
  if (opened.dir) {
    chroma::ReadProgress progress;
    if (options.progress) {
      progress = [&options, phase = "read " + info.name](std::int64_t done, std::int64_t total) {
        options.progress(phase, done, total);
      };
    }
    // The HNSW vectors are copied batch by batch by the writers (phase 3); everything that can
    // be wrong with the directory has been found when read() returns.
    VS_TRY_ASSIGN(chroma::Snapshot snap, opened.dir->read(info, progress, /*defer_hnsw_vectors=*/true));
    const double read_s = seconds_since(t0);
    json stats = stats_json(snap.stats);
    return SourceCollection{std::move(snap), std::move(stats), read_s};
  }
  chroma::RemoteProgress progress;
  if (options.progress) {
    progress = [&options](std::int64_t done, std::int64_t total) { options.progress("read", std::min(done, total), total); };
  }
  VS_TRY_ASSIGN(chroma::Snapshot snap, opened.remote->read(info, progress));
  const chroma::RemoteStats& st = opened.remote->stats();
  json stats = {{"server", opened.remote->server()},
                {"api", st.api},
                {"server_version", st.server_version},
                {"tenant", options.tenant},
                {"database", options.database},
                {"max_batch_size", st.max_batch_size},
                {"page_size", st.page_size},
                {"pages", st.pages},
                {"count", st.count}};
  return SourceCollection{std::move(snap), std::move(stats), seconds_since(t0)};
}

// The migration's connection with the target table's shape, and `spares` idle connections more.
struct Connected {
  Connection conn;
  TableShape shape;
  std::vector<Connection> spare;
};

// Opens the spare connections at once, each on a thread of its own, while the first one reads
// the table's shape. A spare that cannot be opened is left out: the writers open what they still
// lack (and fail if they cannot), the index builds fall back as restore_filter_indexes says.
Result<Connected> connect_all(const std::string& conninfo, const Config& config, std::size_t spares) {
  std::vector<std::future<Result<Connection>>> opening;
  for (std::size_t i = 0; i < spares; ++i) {
    opening.push_back(std::async(std::launch::async, [&conninfo] { return Connection::connect(conninfo); }));
  }
  std::vector<Connection> spare;
  auto take_spares = [&] {
    for (auto& f : opening) {
      if (auto c = f.get()) spare.push_back(std::move(*c));
    }
  };
  auto conn = Connection::connect(conninfo);
  if (!conn) {
    take_spares();
    return fail(conn.error());
  }
  auto shape = table_shape(*conn, config.table);
  take_spares();
  if (!shape) return fail(shape.error());
  return Connected{std::move(*conn), std::move(*shape), std::move(spare)};
}

}  // namespace

Result<std::pair<std::string, std::string>> pgvector_operator_for(std::string_view space) {
  if (space == "cosine") return std::pair<std::string, std::string>{"vector_cosine_ops", "<=>"};
  if (space == "l2") return std::pair<std::string, std::string>{"vector_l2_ops", "<->"};
  if (space == "ip") return std::pair<std::string, std::string>{"vector_ip_ops", "<#>"};
  return fail(ErrorCode::invalid_argument, fmt::format("chroma space {} has no pgvector operator; expected cosine, l2 or ip", space));
}

std::string MigrateReport::skip_reason(const CollectionReport& c) const {
  if (!c.counted || c.skipped == 0) return {};
  return fmt::format("{} {} no article row in table {}{}; pass --insert-missing to create {}", c.skipped,
                     c.skipped == 1 ? "id has" : "ids have", table, dry_run ? " (a real run would skip them)" : "",
                     c.skipped == 1 ? "it" : "them");
}

std::vector<std::string> MigrateReport::failures() const {
  std::vector<std::string> out;
  const char* would = dry_run ? "would be " : "";
  if (!refusal.empty()) out.push_back(refusal);
  for (const auto& c : collections) {
    if (c.embedding_model.empty()) {  // (a dry run; a real run stops at it before reading)
      out.push_back(fmt::format("collection {} stored no embedding function, so its model is unknown; name it with "
                                "--model",
                                c.name));
    }
    if (!c.refusal.empty()) out.push_back(fmt::format("collection {}: {}", c.name, c.refusal));
    if (c.errors > 0) {
      out.push_back(fmt::format("collection {}: {} {} {}refused by the write checks (error_ids in the report say which)",
                                c.name, c.errors, c.errors == 1 ? "record" : "records", dry_run ? "would be " : "were "));
    }
    if (c.counted && c.count > 0 && c.migrated == 0 && c.skipped > 0) {
      out.push_back(fmt::format("nothing {}migrated from collection {}: none of its {} ids has an article row in table {}; "
                                "pass --insert-missing to create them",
                                would, c.name, c.skipped, table));
    }
    if (!c.verify.is_null() && !c.verify.value("passed", false)) {
      out.push_back(fmt::format("collection {}: the verification failed (see verify in the report)", c.name));
    }
  }
  return out;
}

bool MigrateReport::ok() const { return failures().empty(); }

json MigrateReport::to_json() const {
  json out;
  out["source"] = source;
  out["source_kind"] = source_kind;
  out["chroma_schema"] = schema_version;
  out["table"] = table;
  out["dry_run"] = dry_run;
  out["database_error"] = database_error.empty() ? json(nullptr) : json(database_error);
  out["not_checked"] = not_checked;
  out["refusal"] = refusal.empty() ? json(nullptr) : json(refusal);
  // A count no one could know (a dry run that did not compare with the table) is null.
  auto count = [](const CollectionReport& c, std::int64_t n) { return c.counted ? json(n) : json(nullptr); };
  std::int64_t total = 0, migrated = 0, unchanged = 0, changed = 0, inserted = 0, skipped = 0, errors = 0;
  bool all_counted = true;
  json cols = json::array();
  for (const auto& c : collections) {
    total += c.count;
    migrated += c.migrated;
    unchanged += c.unchanged;
    changed += c.changed;
    inserted += c.inserted;
    skipped += c.skipped;
    errors += c.errors;
    all_counted = all_counted && c.counted;
    const std::string why_skipped = skip_reason(c);
    cols.push_back({{"name", c.name},
                    {"id", c.id},
                    {"count", c.count},
                    {"dimension", c.dimension},
                    {"metric", c.metric},
                    {"operator_class", c.operator_class},
                    {"distance_operator", c.distance_operator},
                    {"embedding_model", c.embedding_model},
                    {"model_source", c.model_source},
                    {"source", c.source_stats},
                    {"counted", c.counted},
                    {"refusal", c.refusal.empty() ? json(nullptr) : json(c.refusal)},
                    {"to_update", count(c, c.to_update)},
                    {"to_insert", count(c, c.to_insert)},
                    {"to_skip", count(c, c.to_skip)},
                    {"migrated", count(c, c.migrated)},
                    {"unchanged", count(c, c.unchanged)},
                    {"changed", count(c, c.changed)},
                    {"inserted", count(c, c.inserted)},
                    {"skipped", count(c, c.skipped)},
                    {"skip_reason", why_skipped.empty() ? json(nullptr) : json(why_skipped)},
                    {"errors", c.errors},
                    {"resumed_after", c.resumed_after},
                    {"error_ids", c.error_ids},
                    {"error_reasons", c.error_reasons},
                    {"unreadable_dates", c.unreadable_dates},
                    {"unreadable_date_notes", c.date_notes},
                    {"notes", c.notes},
                    {"verify", c.verify},
                    {"timings", c.timings}});
  }
  out["collections"] = cols;
  auto total_of = [all_counted](std::int64_t n) { return all_counted ? json(n) : json(nullptr); };
  out["summary"] = {{"chromadb_total", total},      {"migrated", total_of(migrated)}, {"unchanged", total_of(unchanged)},
                    {"changed", total_of(changed)}, {"inserted", total_of(inserted)}, {"skipped", total_of(skipped)},
                    {"errors", errors}};
  out["ok"] = ok();
  out["failures"] = failures();
  out["report_path"] = report_path.empty() ? json(nullptr) : json(report_path);
  return out;
}

namespace {

Result<void> check_options(const MigrateOptions& options) {
  if (options.from_dir.empty() == options.from_url.empty()) {
    return fail(ErrorCode::invalid_argument,
                options.from_dir.empty() ? "no Chroma source given: pass a directory (--from-dir) or a server URL (--from-url)"
                                         : "give a Chroma directory (--from-dir) or a server URL (--from-url), not both");
  }
  if (options.writers < 1 || options.writers > 8) {
    return fail(ErrorCode::invalid_argument, fmt::format("writers must be from 1 to 8, not {}", options.writers));
  }
  if (options.batch_size < 1 || options.batch_size > 1000000) {
    return fail(ErrorCode::invalid_argument, fmt::format("batch size must be from 1 to 1000000, not {}", options.batch_size));
  }
  return {};
}

// Phase 1, before the source is read: a report entry per chosen collection (space, operator,
// model). A real run needs the model before it reads anything.
Result<void> describe_collections(const SourceOpened& opened, const Config& config, const MigrateOptions& options,
                                  MigrateReport& report) {
  report.source = opened.source;
  report.source_kind = opened.kind;
  report.schema_version = opened.schema_version;
  report.refusal = opened.refusal;
  report.table = config.table;
  report.dry_run = options.dry_run;
  for (const auto& info : opened.chosen) {
    CollectionReport c;
    c.name = info.name;
    c.id = info.id;
    c.dimension = static_cast<std::size_t>(info.dimension.value_or(0));
    c.metric = info.space;
    VS_TRY_ASSIGN(auto ops, pgvector_operator_for(c.metric));
    c.operator_class = ops.first;
    c.distance_operator = ops.second;
    if (info.embedding_model) {
      c.embedding_model = *info.embedding_model;
      c.model_source = "chroma";
    } else if (options.model) {
      c.embedding_model = *options.model;
      c.model_source = "--model";
    } else if (!options.dry_run) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("collection {} stored no embedding function, so its model is unknown; name it with --model",
                              c.name));
    }
    report.collections.push_back(std::move(c));
  }
  return {};
}

// The collection fits the table (dimension, model): before the source is read (`records`
// unknown, the dimension as Chroma stored it, 0 when it stored none) and again after it (the
// records counted, the dimension of their vectors). Returns false for a collection a dry run
// reports and skips; an error stops a real run.
Result<bool> check_target(Connection& conn, const Config& config, const MigrateOptions& options, const TableShape& shape,
                          std::optional<std::size_t> records, std::size_t dimension, CollectionReport& c) {
  if (records && *records == 0) {
    c.notes.push_back("the collection is empty");
    return false;
  }
  if (dimension != 0 && static_cast<int>(dimension) != shape.dimension) {
    const auto e = Error(ErrorCode::conflict,
                         fmt::format("collection {} has {} dimensions but table {} stores vector({}); use a table of "
                                     "vector({}) (EMBEDDING_DIM={} and `vstore schema up`)",
                                     c.name, dimension, config.table, shape.dimension, dimension, dimension));
    if (!options.dry_run) return fail(e);
    c.notes.push_back(e.message());
    c.refusal = e.message();
    c.counted = false;
    return false;
  }
  if (!c.embedding_model.empty()) {
    // One table holds the vectors of one model (the store refuses to mix them, and a search
    // over two models' vectors ranks nonsense), so vectors of another model already there stop
    // the migration before it writes anything.
    Param p[] = {Param::text(c.embedding_model)};
    VS_TRY_ASSIGN(PgResult other,
                  conn.exec_params(fmt::format("SELECT embedding_model FROM {} WHERE embedding IS NOT NULL AND "
                                               "embedding_model IS NOT NULL AND embedding_model <> $1 LIMIT 1",
                                               q(config.table)),
                                   p));
    if (other.rows() > 0) {
      const auto e = Error(
          ErrorCode::conflict,
          fmt::format("table {} holds vectors of model {}, but collection {} has vectors of model {} ({}); vectors "
                      "of two models cannot be searched together: migrate into another table (VSTORE_TABLE){}",
                      config.table, other.text(0, 0), c.name, c.embedding_model,
                      c.model_source == "chroma" ? "its stored embedding function" : "from --model",
                      c.model_source == "chroma"
                          ? std::string()
                          : fmt::format(", or pass --model {} if that model made them", other.text(0, 0))));
      if (!options.dry_run) return fail(e);
      c.notes.push_back(e.message());
      c.refusal = e.message();
      c.counted = false;
      return false;
    }
  }
  if (records && !shape.index_opclass.empty() && shape.index_opclass != c.operator_class) {
    c.notes.push_back(fmt::format("chroma space {} maps to {} ({}), but the vector index on {} uses {}; vstore ranks by "
                                  "cosine distance, so create an index with {} if you query by {}",
                                  c.metric, c.operator_class, c.distance_operator, config.table, shape.index_opclass,
                                  c.operator_class, c.metric));
  }
  return true;
}

// The vector index during the load. A vector index maintained row by row costs far more than
// the load itself (100,000 x 384 into an HNSW-indexed table: ~10 min against ~10 s), so for a
// load of at least 5,000 rows that more than doubles the table's vectors the index vstore
// created is dropped (BulkLoad, which also repairs what a killed run left: its orphaned index
// build, an invalid index) and built once afterwards. An index vstore did not create is never
// dropped; the plan and the report then say what it costs. Any other run repairs first
// (repair_vector_index: the index a killed bulk load dropped is built again before this load).
Result<std::optional<BulkLoad>> prepare_vector_index(Connection& conn, const std::string& conninfo, const Config& config,
                                                     const MigrateOptions& options, const TableShape& shape,
                                                     CollectionReport& c) {
  const std::int64_t writes = c.to_update + c.to_insert;
  VS_TRY_ASSIGN(PgResult with, conn.exec(fmt::format("SELECT count(embedding) FROM {}", q(config.table))));
  VS_TRY_ASSIGN(const std::int64_t with_embedding, parse_int64(with.get(0, 0), "the count of vectors"));
  const bool large = writes >= options.bulk_min_rows && writes > 2 * with_embedding;
  VS_TRY_ASSIGN(const std::string recorded, recorded_vector_index(conninfo, config));
  const std::string& index = shape.index_name;
  const bool ours = !recorded.empty() && (index.empty() || index == recorded);
  if (large && !index.empty() && (!ours || !options.bulk_index)) {
    c.notes.push_back(fmt::format(
        "vector index {} is kept during this load of {} rows ({}), so every row written updates it: expect the "
        "copy to take many times longer than without it; to load faster, drop it first and create it again "
        "afterwards",
        index, writes, ours ? "--keep-index" : "vstore did not create it, so it never drops it"));
  } else if (large && ours && options.dry_run) {
    if (!index.empty()) c.notes.push_back(fmt::format("vector index {} would be dropped for the bulk load and rebuilt after it", index));
  } else if (large && ours) {
    VS_TRY_ASSIGN(BulkLoad bulk, BulkLoad::begin(conninfo, config));
    if (!bulk.dropped_index().empty()) {
      c.notes.push_back(fmt::format("vector index {} dropped for the bulk load and rebuilt after it", bulk.dropped_index()));
    }
    return std::optional<BulkLoad>(std::move(bulk));
  }
  if (!options.dry_run) {
    VS_TRY_ASSIGN(bool rebuilt, repair_vector_index(conninfo, config));
    if (rebuilt) c.notes.push_back("the vector index an earlier bulk load had dropped was built again before this load");
  }
  return std::optional<BulkLoad>();
}

// Phases 2 (plan), 3 (copy) and 4 (verify) of one collection.
Result<void> migrate_collection(Connected& connected, const std::string& conninfo, const Config& config,
                                const MigrateOptions& options, const std::string& source, chroma::Snapshot& snap,
                                CollectionReport& c) {
  Connection& conn = connected.conn;
  TableShape& shape = connected.shape;
  VS_TRY_ASSIGN(bool fits, check_target(conn, config, options, shape, snap.records.size(), snap.dimension, c));
  if (!fits) return {};
  CollectionMigration mig(conn, connected.spare, conninfo, config, options, source, snap, c, shape);
  auto t0 = std::chrono::steady_clock::now();
  auto lap = [&t0]() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - t0).count();
    t0 = now;
    return s;
  };
  VS_TRY(mig.classify());
  if (auto fit = mig.check_fits(); !fit) {
    if (!options.dry_run) return fail(fit.error());
    c.notes.push_back(fit.error().message());
    c.refusal = fit.error().message();
    c.counted = false;
  }
  c.timings["classify_s"] = lap();
  const std::int64_t writes = c.to_update + c.to_insert;
  VS_TRY_ASSIGN(std::optional<BulkLoad> bulk, prepare_vector_index(conn, conninfo, config, options, shape, c));
  // Into an empty table the B-tree filter indexes vstore created are built once after the
  // load too, instead of updated row by row (at 100,000 x 384 the copy takes about a fifth
  // less and the three builds, at once, 0.06-0.12 s); in a table that holds rows they
  // stay, as the application's own queries may need them.
  if (mig.target_empty() && writes >= options.bulk_min_rows && options.bulk_index) {
    VS_TRY_ASSIGN(std::vector<std::string> filters, options.dry_run ? present_filter_indexes(conninfo, config)
                                                                      : suspend_filter_indexes(conn, config));
    if (!filters.empty()) {
      c.notes.push_back(fmt::format("filter indexes {} {} for the bulk load into the empty table and built after it",
                                    fmt::join(filters, ", "), options.dry_run ? "would be dropped" : "dropped"));
    }
  }
  if (options.dry_run) {
    if (c.counted) VS_TRY(mig.plan());
    c.timings["compare_s"] = lap();
    return {};
  }
  auto copied = mig.copy();
  c.timings["copy_s"] = lap();
  // Also after a failed copy, so that the table has its indexes whatever happened; a run
  // killed before this point leaves them to the next run or `vstore schema up`.
  // After a failure the migration's connections may be the ones that broke, so new ones build them.
  auto filters_built =
      copied ? restore_filter_indexes(conn, connected.spare, conninfo, config) : restore_filter_indexes(conninfo, config);
  if (filters_built && !filters_built->empty()) c.timings["filter_index_build_s"] = lap();
  IndexBuildProgress index_progress;
  if (options.progress) {
    index_progress = [&options](std::int64_t done, std::int64_t total) { options.progress("index build", done, total); };
  }
  auto rebuilt = bulk ? bulk->finish(index_progress)
                      : (copied ? restore_vector_index(conn, conninfo, config, index_progress)
                                : restore_vector_index(conninfo, config, index_progress));
  if (rebuilt && *rebuilt) c.timings["index_build_s"] = lap();
  VS_TRY(copied);
  if (!filters_built) {
    return fail(filters_built.error().with_context("rebuilding the filter indexes (run `vstore schema up` to retry)"));
  }
  if (!rebuilt) return fail(rebuilt.error().with_context("rebuilding the vector index (run `vstore schema up` to retry)"));
  if (*rebuilt) {
    VS_TRY_ASSIGN(shape, table_shape(conn, config.table));  // the verification sees the new index
  }
  if (options.verify) {
    VS_TRY_ASSIGN(c.verify, mig.verify());
    c.timings["verify_s"] = lap();
  }
  return {};
}

// The report as JSON under $VSTORE_DATA_DIR/reports in a new file (the time to the
// microsecond and the process id name it; O_EXCL, so an existing report is never replaced,
// and a name taken after all gets a counter); sets and returns its path.
Result<std::string> write_report_file(const Config& config, MigrateReport& report) {
  const fs::path dir_path = config.data_dir / "reports";
  std::error_code ec;
  fs::create_directories(dir_path, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", dir_path.string(), ec.message()));
  const std::string stem = fmt::format("migrate-chroma-{}-{}", utc_stamp_micros(), ::getpid());
  int fd = -1;
  fs::path file;
  for (int attempt = 1; fd < 0; ++attempt) {
    file = dir_path / (attempt == 1 ? stem + ".json" : fmt::format("{}-{}.json", stem, attempt));
    fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && (errno != EEXIST || attempt >= 100)) {
      return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", file.string(), std::strerror(errno)));
    }
  }
  report.report_path = file.string();
  const std::string text = report.to_json().dump(2) + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", file.string(), why));
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
  return report.report_path;
}

// Whether a dry run goes on without the database after this error from connecting.
bool database_unreachable(const Error& e) { return e.code() == ErrorCode::unavailable || e.code() == ErrorCode::timeout; }

// What a dry run without a database leaves out, for MigrateReport::not_checked.
std::vector<std::string> unchecked_without_database(const Config& config) {
  return {fmt::format("that table {} exists", config.table), "its dimension against each collection's",
          "whether it holds vectors of another model",
          "which ids it holds, so the counts (unchanged, changed, inserted, skipped)"};
}

// migrate_chroma() and plan_chroma_without_database(): `conninfo` null for the latter, `why`
// then saying why there is no database.
Result<MigrateReport> run_migration(const std::string* conninfo, const Error* why, const Config& config,
                                    const MigrateOptions& options) {
  VS_TRY(check_options(options));
  // Phase 1, the cheap part: the connections are opened meanwhile (opening one writes nothing)
  // and the table's shape read: the migration's own connection and, unless this is a dry run,
  // spare ones for the writers after the first and for the filter index builds after a bulk
  // load, which reuse the writers' (each build has one to itself).
  const std::size_t spares = options.dry_run ? 0 : std::max<std::size_t>(options.writers, k_filter_indexes) - 1;
  std::future<Result<Connected>> connecting;
  if (conninfo) {
    connecting = std::async(std::launch::async, [conninfo, &config, spares] { return connect_all(*conninfo, config, spares); });
  }
  auto opened = options.from_url.empty() ? open_directory(options) : open_server(config, options);
  // A source that cannot be read is named first; a database that cannot be used next.
  std::optional<Result<Connected>> connection;
  if (connecting.valid()) connection = connecting.get();
  if (!opened) return fail(opened.error());
  MigrateReport report;
  VS_TRY(describe_collections(*opened, config, options, report));
  std::optional<Connected> connected;
  if (connection && *connection) {
    connected = std::move(**connection);
  } else {
    const Error& e = connection ? connection->error() : *why;
    if (!options.dry_run || !database_unreachable(e)) return fail(e);
    report.database_error = e.message();
    report.not_checked = unchecked_without_database(config);
  }
  if (connected && !options.dry_run) {
    // The table against what Chroma stored, before the read: a dimension or model that does not
    // fit stops the run now rather than after the whole collection was read.
    for (std::size_t i = 0; i < opened->chosen.size(); ++i) {
      const auto dimension = static_cast<std::size_t>(opened->chosen[i].dimension.value_or(0));
      VS_TRY(check_target(connected->conn, config, options, connected->shape, std::nullopt, dimension,
                          report.collections[i]));
    }
  }
  // Phase 1, the read: everything before writing anything.
  std::vector<chroma::Snapshot> snaps;
  for (std::size_t i = 0; i < opened->chosen.size(); ++i) {
    VS_TRY_ASSIGN(SourceCollection read, read_collection(*opened, i, options));
    CollectionReport& c = report.collections[i];
    c.count = static_cast<std::int64_t>(read.snap.records.size());
    c.dimension = read.snap.dimension;
    c.source_stats = std::move(read.stats);
    c.timings["read_s"] = read.read_s;
    snaps.push_back(std::move(read.snap));
  }
  if (!connected) {
    for (std::size_t i = 0; i < snaps.size(); ++i) {
      CollectionReport& c = report.collections[i];
      c.counted = false;
      // The write checks need no table: what they refuse is known.
      std::vector<float> scratch;
      for (std::size_t r = 0; r < snaps[i].records.size(); ++r) {
        const auto& rec = snaps[i].records[r];
        if (auto refused = check_record(rec, snaps[i].vector_of(r, scratch), snaps[i].dimension); !refused) {
          ++c.errors;
          if (c.error_ids.size() < 100) {
            c.error_ids.push_back(rec.id);
            c.error_reasons.push_back(refused.error().message());
          }
        }
      }
    }
    return report;
  }
  // A real run goes into the operations log (when the schema has it), finished or failed:
  // `cleanup-chroma` wants a validation newer than the last migration.
  std::optional<std::int64_t> op;
  if (!options.dry_run) {
    if (auto begun = begin_operation(*conninfo, config, "migrate-chroma")) op = *begun;
  }
  auto finish = [&](bool ok, const std::string& error) {
    if (!op) return;
    json summary = {{"source", report.source}, {"collections", report.collections.size()}};
    std::int64_t inserted = 0, changed = 0, unchanged = 0, errors = 0;
    for (const auto& c : report.collections) {
      inserted += c.inserted;
      changed += c.changed;
      unchanged += c.unchanged;
      errors += c.errors;
    }
    summary["inserted"] = inserted;
    summary["changed"] = changed;
    summary["unchanged"] = unchanged;
    summary["errors"] = errors;
    if (!error.empty()) summary["error"] = error;
    (void)finish_operation(*conninfo, *op, ok, std::nullopt, report.report_path, summary);
  };
  for (std::size_t i = 0; i < snaps.size(); ++i) {
    auto migrated = migrate_collection(*connected, *conninfo, config, options, report.source, snaps[i], report.collections[i]);
    if (!migrated) {
      finish(false, migrated.error().message());
      return fail(migrated.error());
    }
  }
  if (!options.dry_run) {
    auto written = write_report_file(config, report);
    finish(static_cast<bool>(written) && report.failures().empty(), written ? "" : written.error().message());
    VS_TRY(written);
  }
  return report;
}

}  // namespace

Result<MigrateReport> migrate_chroma(const std::string& conninfo, const Config& config, const MigrateOptions& options) {
  return run_migration(&conninfo, nullptr, config, options);
}

Result<MigrateReport> plan_chroma_without_database(const Config& config, const MigrateOptions& options, const Error& why) {
  if (!options.dry_run) {
    return fail(ErrorCode::invalid_argument, "a migration without a database can only be a dry run (--dry-run)");
  }
  return run_migration(nullptr, &why, config, options);
}

}  // namespace vstore
