// SPDX-License-Identifier: Apache-2.0
// reindex(): re-embeds the rows whose vector is missing or stale, as a three-stage pipeline.
//
// Design
// ------
// Stages, each on its own thread, joined by bounded queues (two batches deep, so that memory
// stays bounded whatever the table's size and a slow stage holds the others back):
//   reader   -> a connection of its own. Rows are read in uri order through a server-side
//               cursor (DECLARE ... NO SCROLL CURSOR / FETCH) inside a short read-only
//               transaction: a transaction ends after a few batches of candidates, a few
//               thousand rows or a second, and the next one declares its cursor after the last
//               uri read (keyset). So no snapshot is held for the run, and vacuum and DDL are
//               not kept waiting. For each row the reader picks the text as upsert_article does
//               (document_text()), hashes it (embedding_text_hash()) and decides: a candidate,
//               or skipped. Batches are pushed only after the transaction ended.
//   embedder -> embeds each batch with one embed() call (the engine spreads it over its own
//               thread pool); when the call fails, the batch's texts are embedded one at a time
//               so that only the articles at fault fail, each with its own reason.
//   writer   -> the calling thread: one transaction per batch on a connection of the store's
//               pool: binary COPY into a temporary staging table, row locks taken in uri order
//               (so concurrent writers of the same uris cannot deadlock), then one
//               UPDATE ... FROM staging. Progress and failures are reported from here only.
// Invariants:
//   - A write never clobbers a row whose text changed after it was read: the UPDATE only
//     touches rows whose raw, summary and title and stored hash still equal what the reader
//     saw. The other rows (changed, or deleted, meanwhile) are read again once after the main
//     pass and decided afresh; if they changed again by then, they are counted as skipped and
//     the next run takes them.
//   - A row whose stored hash matches its text is never written, so a killed run (every batch
//     is its own transaction) resumes exactly: the next run skips what the killed one wrote.
//   - Nothing but row locks: the index is rebuilt, when it must be, by REINDEX INDEX
//     CONCURRENTLY outside any transaction.
#include "vstore/reindex.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <thread>
#include <unordered_set>

#include <fmt/format.h>

#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "pg/pg_filter.hpp"
#include "pg/pg_store.hpp"
#include "vstore/article.hpp"
#include "vstore/date.hpp"
#include "vstore/filter.hpp"
#include "vstore/operations.hpp"
#include "vstore/write_check.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;
using pg::CopyWriter;
using pg::Param;
using pg::PgResult;

using Clock = std::chrono::steady_clock;

constexpr std::size_t k_queue_batches = 2;      // depth of each queue between stages
constexpr std::size_t k_failed_uris_kept = 100;  // ReindexReport::failed_uris
constexpr int k_chunk_rows = 5000;              // rows one read transaction examines at most
constexpr auto k_chunk_time = std::chrono::seconds(1);  // and how long it stays open at most
constexpr int k_min_fetch = 256;                // rows per FETCH, at least

std::string q(std::string_view ident) { return pg::quote_sql_identifier(ident); }

// A queue of at most `capacity` items between two stages. close() ends it: push() then fails
// and pop() returns what is left, then nullopt.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(std::size_t capacity) : m_capacity(capacity) {}

  bool push(T item) {
    std::unique_lock lock(m_mutex);
    m_not_full.wait(lock, [&] { return m_closed || m_items.size() < m_capacity; });
    if (m_closed) return false;
    m_items.push_back(std::move(item));
    m_not_empty.notify_one();
    return true;
  }

  std::optional<T> pop() {
    std::unique_lock lock(m_mutex);
    m_not_empty.wait(lock, [&] { return m_closed || !m_items.empty(); });
    if (m_items.empty()) return std::nullopt;
    T item = std::move(m_items.front());
    m_items.pop_front();
    m_not_full.notify_one();
    return item;
  }

  void close() {
    std::lock_guard lock(m_mutex);
    m_closed = true;
    m_not_full.notify_all();
    m_not_empty.notify_all();
  }

 private:
  std::size_t m_capacity;
  std::mutex m_mutex;
  std::condition_variable m_not_full;
  std::condition_variable m_not_empty;
  std::deque<T> m_items;  // guarded by m_mutex
  bool m_closed = false;  // guarded by m_mutex
};

// One row on its way through the pipeline.
struct Item {
  std::string uri;
  // The text fields as read: the merge writes only if the row still holds them.
  std::optional<std::string> raw, summary, title;
  std::optional<std::string> old_hash;  // the stored hash as read (NULL when none)
  std::string text;                     // document_text()
  std::string hash;                     // embedding_text_hash(model, text)
  Embedding vector;
  std::string failure;  // why it failed; empty while it has not
};

struct Batch {
  std::vector<Item> items;
  std::int64_t examined = 0;  // rows the reader read for this batch, candidates or not
  std::int64_t skipped = 0;   // of those, rows it skipped
};

// The first error of any stage; the others stop when one is set.
class FirstError {
 public:
  void set(Error error) {
    std::lock_guard lock(m_mutex);
    if (!m_error) m_error = std::move(error);
  }
  std::optional<Error> get() {
    std::lock_guard lock(m_mutex);
    return m_error;
  }

 private:
  std::mutex m_mutex;
  std::optional<Error> m_error;  // guarded by m_mutex
};

// What the reader needs to know of the table.
struct Source {
  std::string table;
  std::string text_columns;  // "a.raw, a.summary, a.title", NULL::text for absent ones
  std::string filter_sql;    // "TRUE" or the compiled filter, with placeholders from $2
  std::vector<std::string> filter_params;
  std::vector<std::string> guard_columns;  // of raw, summary, title: those the table has
};

std::optional<std::string> field(const PgResult& res, int row, int col) {
  if (res.is_null(row, col)) return std::nullopt;
  return res.text(row, col);
}

// ---- reader ---------------------------------------------------------------------------------

struct ReadPass {
  // Only these uris (a second look at rows that changed during the run); nullopt = all rows.
  std::optional<std::vector<std::string>> uris;
  std::optional<std::int64_t> limit;  // candidates this pass may still take
};

class Reader {
 public:
  Reader(Connection& conn, const Source& source, const ReindexOptions& options, std::string model,
         BoundedQueue<Batch>& out, FirstError& error)
      : m_conn(conn), m_source(source), m_options(options), m_model(std::move(model)), m_out(out), m_error(error) {}

  // Reads the pass, pushing batches of candidates; returns the candidates it found.
  std::int64_t run(const ReadPass& pass) {
    auto done = read_all(pass);
    if (!done) m_error.set(done.error());
    return m_candidates;
  }

 private:
  Result<void> read_all(const ReadPass& pass) {
    std::optional<std::string> after;  // the last uri read
    const std::string uri_list = pass.uris ? pg::sql_array_literal(*pass.uris) : std::string();
    const int fetch = std::max(k_min_fetch, m_options.batch_size);
    Batch batch;
    std::vector<Batch> ready;
    bool exhausted = false;
    while (!exhausted && !limit_reached(pass)) {
      // One short transaction: the cursor starts after the last uri the previous one read.
      std::vector<std::string> values = {after.value_or(std::string())};
      for (const auto& v : m_source.filter_params) values.push_back(v);
      std::string where = after ? "a.uri > $1" : "$1::text = ''";
      where += " AND " + m_source.filter_sql;
      if (pass.uris) {
        values.push_back(uri_list);
        where += fmt::format(" AND a.uri = ANY(${}::text[])", values.size());
      }
      std::vector<Param> params;
      for (const auto& v : values) params.push_back(Param::text(v));
      VS_TRY(m_conn.exec("BEGIN READ ONLY"));
      auto chunk = [&]() -> Result<void> {
        VS_TRY(m_conn.exec_params(
            fmt::format("DECLARE vstore_reindex NO SCROLL CURSOR FOR SELECT a.uri, {}, a.embedding IS NOT NULL, "
                        "a.embedding_model, a.embedding_text_hash FROM {} a WHERE {} ORDER BY a.uri",
                        m_source.text_columns, q(m_source.table), where),
            params));
        const auto started = Clock::now();
        int rows_read = 0;
        while (true) {
          VS_TRY_ASSIGN(PgResult res, m_conn.exec_params(fmt::format("FETCH {} FROM vstore_reindex", fetch), {}, true));
          for (int row = 0; row < res.rows() && !limit_reached(pass); ++row) {
            after = res.text(row, 0);
            ++rows_read;
            ++batch.examined;
            consider(res, row, batch);
            if (batch.items.size() >= static_cast<std::size_t>(m_options.batch_size)) {
              ready.push_back(std::move(batch));
              batch = Batch{};
            }
          }
          if (res.rows() < fetch) {
            exhausted = true;
            return {};
          }
          if (limit_reached(pass) || ready.size() >= k_queue_batches + 2 || rows_read >= k_chunk_rows ||
              Clock::now() - started >= k_chunk_time) {
            return {};
          }
        }
      };
      Result<void> read = chunk();
      if (!read) {
        (void)m_conn.exec("ROLLBACK");
        return read;
      }
      VS_TRY(m_conn.exec("COMMIT"));  // also closes the cursor
      for (auto& b : ready) {
        if (!m_out.push(std::move(b))) return {};  // a later stage stopped the run
      }
      ready.clear();
    }
    if (batch.examined > 0) m_out.push(std::move(batch));
    return {};
  }

  bool limit_reached(const ReadPass& pass) const { return pass.limit && m_candidates >= *pass.limit; }

  // Decides about one row: a candidate goes into `batch`, any other row is counted skipped.
  void consider(const PgResult& res, int row, Batch& batch) {
    Article article;
    article.uri = res.text(row, 0);
    article.raw = field(res, row, 1);
    article.summary = field(res, row, 2);
    article.title = field(res, row, 3);
    const bool has_vector = res.get(row, 4) == std::string_view("\x01", 1);
    const std::optional<std::string> stored_model = field(res, row, 5);
    const std::optional<std::string> stored_hash = field(res, row, 6);
    const std::string_view text = document_text(article);
    const std::string hash = text.empty() ? std::string() : embedding_text_hash(m_model, text);
    bool candidate = false;
    if (!has_vector) {
      candidate = true;  // whatever its hash says (remove() may have left one)
    } else if (stored_hash && !hash.empty() && *stored_hash == hash) {
      candidate = false;  // its vector was made from this text by this model
    } else if (m_options.force) {
      candidate = true;
    } else {
      // Text edited since the vector was made: a hash of this model that no longer matches.
      candidate = stored_hash.has_value() && stored_model == m_model;
    }
    if (!candidate) {
      ++batch.skipped;
      return;
    }
    ++m_candidates;
    Item item;
    item.uri = std::move(article.uri);
    item.text = std::string(text);
    item.hash = hash;
    item.raw = std::move(article.raw);
    item.summary = std::move(article.summary);
    item.title = std::move(article.title);
    item.old_hash = stored_hash;
    if (item.text.empty()) item.failure = "raw, summary and title hold no text to embed";
    batch.items.push_back(std::move(item));
  }

  Connection& m_conn;
  const Source& m_source;
  const ReindexOptions& m_options;
  std::string m_model;
  BoundedQueue<Batch>& m_out;
  FirstError& m_error;
  std::int64_t m_candidates = 0;
};

// ---- embedder -------------------------------------------------------------------------------

void embed_batch(Embedder& embedder, int dimension, Batch& batch) {
  std::vector<std::string> texts;
  std::vector<Item*> todo;
  for (Item& item : batch.items) {
    if (!item.failure.empty()) continue;
    texts.push_back(item.text);
    todo.push_back(&item);
  }
  if (todo.empty()) return;
  auto accept = [&](Item& item, Embedding vec) {
    if (static_cast<int>(vec.size()) != dimension) {
      item.failure = fmt::format("the embedder made {} dimensions, the table stores {}", vec.size(), dimension);
      return;
    }
    item.vector = std::move(vec);
  };
  auto all = embedder.embed(texts);
  if (all && all->size() == todo.size()) {
    for (std::size_t idx = 0; idx < todo.size(); ++idx) accept(*todo[idx], std::move((*all)[idx]));
    return;
  }
  // One failed: find which, each with its own reason.
  for (std::size_t idx = 0; idx < todo.size(); ++idx) {
    auto one = embedder.embed(std::span<const std::string>(&texts[idx], 1));
    if (!one) {
      todo[idx]->failure = one.error().message();
    } else if (one->size() != 1) {
      todo[idx]->failure = "the embedder returned no vector";
    } else {
      accept(*todo[idx], std::move(one->front()));
    }
  }
}

// ---- writer ---------------------------------------------------------------------------------

// Writes the batch's embedded rows in one transaction; returns the uris it did not write
// because their row changed (or went away) since it was read.
Result<std::vector<std::string>> write_batch(pg::PgVectorStore& store, const Source& source, int dimension,
                                             const std::string& model, const Batch& batch) {
  std::vector<const Item*> rows;
  for (const Item& item : batch.items) {
    if (item.failure.empty()) rows.push_back(&item);
  }
  std::vector<std::string> changed;
  if (rows.empty()) return changed;
  std::ranges::sort(rows, {}, [](const Item* item) -> const std::string& { return item->uri; });
  CopyWriter writer;
  writer.reserve(rows.size() * (static_cast<std::size_t>(dimension) * 4 + 2048));
  for (const Item* item : rows) {
    writer.begin_row(8);
    writer.bytes_field(item->uri);
    writer.text_field(item->raw);
    writer.text_field(item->summary);
    writer.text_field(item->title);
    writer.text_field(item->old_hash);
    writer.vector_field(item->vector);
    writer.bytes_field(model);
    writer.bytes_field(item->hash);
  }
  const std::string data = writer.finish();
  const std::string stage = fmt::format("vstore_reindex_stage_{}", dimension);
  std::string guard;
  for (const auto& col : source.guard_columns) guard += fmt::format(" AND t.{0} IS NOT DISTINCT FROM s.{0}", q(col));
  std::unordered_set<std::string> written;
  VS_TRY(store.write_transaction([&](Connection& conn) -> Result<void> {
    written.clear();
    VS_TRY(conn.exec(fmt::format("CREATE TEMP TABLE IF NOT EXISTS {} (uri text PRIMARY KEY, raw text, summary text, "
                                 "title text, old_hash bytea, embedding vector({}), embedding_model text, "
                                 "embedding_text_hash bytea) ON COMMIT DELETE ROWS",
                                 q(stage), dimension)));
    VS_TRY(conn.copy_in(fmt::format("COPY {} FROM STDIN (FORMAT binary)", q(stage)), data));
    // Row locks in uri order first: the UPDATE's join would take them in any order.
    VS_TRY(conn.exec(fmt::format("SELECT 1 FROM {0} t WHERE t.uri IN (SELECT uri FROM {1}) ORDER BY t.uri FOR UPDATE",
                                 q(source.table), q(stage))));
    VS_TRY_ASSIGN(PgResult res,
                  conn.exec(fmt::format("UPDATE {0} t SET embedding = s.embedding, embedding_model = s.embedding_model, "
                                        "embedding_text_hash = s.embedding_text_hash FROM {1} s WHERE t.uri = s.uri{2} "
                                        "AND t.embedding_text_hash IS NOT DISTINCT FROM s.old_hash RETURNING t.uri",
                                        q(source.table), q(stage), guard)));
    for (int row = 0; row < res.rows(); ++row) written.insert(res.text(row, 0));
    return {};
  }));
  for (const Item* item : rows) {
    if (written.count(item->uri) == 0) changed.push_back(item->uri);
  }
  return changed;
}

// ---- the index ------------------------------------------------------------------------------

struct IndexRow {
  std::string qualified;  // schema.name, quoted
  std::string name;
  std::string method;
  bool valid = false;
};

Result<std::vector<IndexRow>> vector_indexes(Connection& conn, const std::string& table) {
  Param p[] = {Param::text(table)};
  VS_TRY_ASSIGN(PgResult res,
                conn.exec_params("SELECT n.nspname, c.relname, am.amname, i.indisvalid FROM pg_index i JOIN pg_class c "
                                 "ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am "
                                 "ON am.oid = c.relam JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = "
                                 "i.indkey[0] WHERE i.indrelid = to_regclass(quote_ident($1)) AND a.attname = "
                                 "'embedding' AND am.amname IN ('hnsw', 'ivfflat') ORDER BY c.oid",
                                 p));
  std::vector<IndexRow> out;
  for (int row = 0; row < res.rows(); ++row) {
    out.push_back(IndexRow{q(res.text(row, 0)) + "." + q(res.text(row, 1)), res.text(row, 1), res.text(row, 2),
                           res.get(row, 3) == "t"});
  }
  return out;
}

// Rebuilds what must be rebuilt; returns the vector index's name and whether it was rebuilt.
Result<std::pair<std::string, bool>> maintain_index(const std::string& conninfo, const std::string& table,
                                                    bool rebuild, bool retrained) {
  // No statement timeout: a concurrent build of a large index takes as long as it takes.
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo, 10, std::chrono::milliseconds(0)));
  VS_TRY_ASSIGN(std::vector<IndexRow> indexes, vector_indexes(conn, table));
  const bool any_valid = std::ranges::any_of(indexes, [](const IndexRow& i) { return i.valid; });
  static const std::regex k_leftover(".*_ccnew[0-9]*");
  std::string name;
  bool rebuilt = false;
  for (const IndexRow& index : indexes) {
    if (!index.valid && any_valid && std::regex_match(index.name, k_leftover)) {
      // What a killed REINDEX CONCURRENTLY left next to the index it was rebuilding.
      VS_TRY(conn.exec("DROP INDEX CONCURRENTLY IF EXISTS " + index.qualified));
      continue;
    }
    if (name.empty() || index.valid) name = index.name;
    if (!index.valid || rebuild || (retrained && index.method == "ivfflat")) {
      VS_TRY(conn.exec("REINDEX INDEX CONCURRENTLY " + index.qualified));
      rebuilt = true;
    }
  }
  return std::pair{name, rebuilt};
}

// ---- the run --------------------------------------------------------------------------------

Result<Source> describe_source(const pg::TableInfo& info, const ReindexOptions& options) {
  Source source;
  source.table = info.table;
  for (const char* col : {"raw", "summary", "title"}) {
    if (!source.text_columns.empty()) source.text_columns += ", ";
    if (info.columns.count(col) != 0) {
      source.text_columns += fmt::format("a.{}::text", q(col));
      source.guard_columns.emplace_back(col);
    } else {
      source.text_columns += "NULL::text";
    }
  }
  json where = json::object();
  if (options.topic) {
    if (info.columns.count("topic") == 0) {
      return fail(ErrorCode::invalid_argument, fmt::format("--topic: table {} has no topic column", info.table));
    }
    where["topic"] = *options.topic;
  }
  if (options.since) where["publication_date"] = json{{"$gte", *options.since}};
  source.filter_sql = "TRUE";
  if (!where.empty()) {
    VS_TRY_ASSIGN(FilterNode node, parse_filter(where));
    VS_TRY_ASSIGN(pg::SqlFilter filter, pg::compile_filter(node, info.filter_catalog, 2));
    source.filter_sql = filter.sql;
    source.filter_params = std::move(filter.params);
  }
  return source;
}

}  // namespace

Result<void> check_reindex_options(const ReindexOptions& options) {
  if (options.batch_size < 1 || options.batch_size > 10000) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("--batch-size must be from 1 to 10000, not {}", options.batch_size));
  }
  if (options.limit && *options.limit < 0) {
    return fail(ErrorCode::invalid_argument, fmt::format("--limit must be 0 or more, not {}", *options.limit));
  }
  if (options.since && !read_date(*options.since)) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("--since: {} is not a date; expected e.g. 1987-03-01 or 1987-03-01T12:00:00Z",
                            quoted_uri(*options.since)));
  }
  return {};
}

namespace {

Result<ReindexReport> run_reindex(const std::string& conninfo, const Config& config, Embedder& embedder,
                                  const ReindexOptions& options, const ReindexProgressFn& on_progress,
                                  const ReindexFailureFn& on_failure, ReindexReport& report) {
  const auto started = Clock::now();
  VS_TRY_ASSIGN(std::unique_ptr<pg::PgVectorStore> store, pg::PgVectorStore::open(conninfo, config));
  const std::shared_ptr<const pg::TableInfo> info = store->table_info();
  if (embedder.dimension() != info->dimension) {
    return fail(ErrorCode::conflict, fmt::format("the embedder makes {} dimensions, but table {} stores vector({})",
                                                 embedder.dimension(), info->table, info->dimension));
  }
  VS_TRY_ASSIGN(const Source source, describe_source(*info, options));
  const std::string model(embedder.model());
  VS_TRY_ASSIGN(Connection reader_conn, Connection::connect(conninfo));
  if (!options.force) {
    Param p[] = {Param::text(model)};
    VS_TRY_ASSIGN(PgResult other, reader_conn.exec_params(fmt::format("SELECT embedding_model FROM {} WHERE embedding IS "
                                                                      "NOT NULL AND embedding_model <> $1 LIMIT 1",
                                                                      q(info->table)),
                                                          p));
    if (other.rows() > 0) {
      return fail(ErrorCode::conflict,
                  fmt::format("table {} holds vectors of model {}, and the embedder is {}; run `vstore reindex --force` "
                              "to re-embed every row with {}",
                              info->table, other.text(0, 0), model, model));
    }
  }
  {
    std::vector<Param> p = {Param::text("")};
    for (const auto& v : source.filter_params) p.push_back(Param::text(v));
    VS_TRY_ASSIGN(PgResult rows, reader_conn.exec_params(fmt::format("SELECT count(*) FROM {} a WHERE $1::text = '' AND {}",
                                                                     q(info->table), source.filter_sql),
                                                         p));
    report.counts.rows = std::stoll(rows.text(0, 0));
  }

  ReindexCounts& counts = report.counts;
  auto record_failure = [&](const Item& item) {
    ++counts.failed;
    if (report.failed_uris.size() < k_failed_uris_kept) report.failed_uris.push_back(item.uri);
    if (on_failure) on_failure(item.uri, item.failure);
  };

  // One pass of the pipeline; returns the uris whose rows changed between read and write.
  auto run_pass = [&](const ReadPass& pass, bool last_look) -> Result<std::vector<std::string>> {
    BoundedQueue<Batch> to_embed(k_queue_batches);
    BoundedQueue<Batch> to_write(k_queue_batches);
    FirstError error;
    Reader reader(reader_conn, source, options, model, to_embed, error);
    std::jthread read_thread([&] {
      reader.run(pass);
      to_embed.close();
    });
    std::jthread embed_thread([&] {
      while (auto batch = to_embed.pop()) {
        embed_batch(embedder, info->dimension, *batch);
        if (!to_write.push(std::move(*batch))) break;
      }
      to_write.close();
    });
    std::vector<std::string> changed;
    while (auto batch = to_write.pop()) {
      auto again = write_batch(*store, source, info->dimension, model, *batch);
      if (!again) {
        error.set(again.error());
        break;
      }
      counts.examined += batch->examined;
      counts.skipped += batch->skipped;
      for (const Item& item : batch->items) {
        if (!item.failure.empty()) record_failure(item);
      }
      const auto n_changed = static_cast<std::int64_t>(again->size());
      const auto n_written = static_cast<std::int64_t>(
          std::ranges::count_if(batch->items, [](const Item& item) { return item.failure.empty(); }));
      counts.processed += n_written - n_changed;
      if (last_look) {
        counts.skipped += n_changed;  // changed again: the next run takes them
      } else {
        changed.insert(changed.end(), again->begin(), again->end());
      }
      if (on_progress) on_progress(counts);
      if (options.test_pause_after_batch_ms > 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options.test_pause_after_batch_ms));
      }
    }
    // Unblock the other stages whatever happened, then wait for them.
    to_write.close();
    to_embed.close();
    embed_thread.join();
    read_thread.join();
    if (auto first = error.get()) return fail(*first);
    return changed;
  };

  ReadPass main_pass;
  main_pass.limit = options.limit;
  VS_TRY_ASSIGN(std::vector<std::string> changed, run_pass(main_pass, false));
  report.requeued = static_cast<std::int64_t>(changed.size());
  if (!changed.empty()) {
    ReadPass again;
    again.uris = std::move(changed);
    VS_TRY(run_pass(again, true));
  }
  if (on_progress) on_progress(counts);

  const bool retrained = options.force && counts.processed * 2 > report.counts.rows;
  VS_TRY_ASSIGN(auto index, maintain_index(conninfo, info->table, options.rebuild_index, retrained));
  report.index_name = index.first;
  report.index_rebuilt = index.second;
  report.elapsed_s = std::chrono::duration<double>(Clock::now() - started).count();
  report.rate_per_s = report.elapsed_s > 0 ? static_cast<double>(counts.processed) / report.elapsed_s : 0.0;
  return report;
}

json summary_of(const ReindexReport& report) {
  return json{{"total", report.total()},           {"processed", report.counts.processed},
              {"skipped", report.counts.skipped},  {"failed", report.counts.failed},
              {"requeued", report.requeued},       {"index_rebuilt", report.index_rebuilt},
              {"model", report.model}};
}

}  // namespace

std::string embedding_text_hash(std::string_view model, std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  const char nul = '\0';
  // Only allocation failure makes these fail; VS_ASSERT says so instead of a silent wrong hash.
  const bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx.get(), model.data(), model.size()) == 1 &&
                  EVP_DigestUpdate(ctx.get(), &nul, 1) == 1 &&
                  EVP_DigestUpdate(ctx.get(), text.data(), text.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx.get(), digest, &length) == 1;
  VS_ASSERT(ok);
  return std::string(reinterpret_cast<const char*>(digest), length);
}

Result<ReindexReport> reindex(const std::string& conninfo, const Config& config, Embedder& embedder,
                              const ReindexOptions& options, const ReindexProgressFn& on_progress,
                              const ReindexFailureFn& on_failure) {
  VS_TRY(check_reindex_options(options));
  VS_TRY_ASSIGN(const std::int64_t op, begin_operation(conninfo, config, "reindex"));
  ReindexReport report;
  report.model = std::string(embedder.model());
  report.operation_id = op;
  auto done = run_reindex(conninfo, config, embedder, options, on_progress, on_failure, report);
  json summary = summary_of(report);
  if (!done) summary["error"] = done.error().message();
  // The run's outcome stands even when the log cannot be written: the error says so.
  auto logged = finish_operation(conninfo, op, done && report.counts.failed == 0, std::nullopt, "", summary);
  if (!done) return done;
  if (!logged) return fail(logged.error().with_context("the run finished, but recording it in vstore_operations failed"));
  return report;
}

}  // namespace vstore
