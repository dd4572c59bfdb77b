// SPDX-License-Identifier: Apache-2.0
// PgVectorStore: the VectorStore over PostgreSQL + pgvector. Internal; callers use open_pg_store().
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pg/pg_filter.hpp"
#include "pg/pg_pool.hpp"
#include "pg/pg_replicas.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::pg {

/// What the store knows of its table: read at open, and again whenever the catalog
/// fingerprint shows that the table's columns or indexes changed (see PgVectorStore).
struct TableInfo {
  std::string table;                            ///< unquoted name
  int dimension = 0;                            ///< of the embedding column
  std::map<std::string, std::string> columns;   ///< column -> format_type, with its modifier
  /// column -> its type without modifier, for casts: an explicit cast to varchar(n) or
  /// character(n) truncates silently, a cast to the bare type leaves the check to the column.
  std::map<std::string, std::string> cast_types;
  std::map<std::string, int> char_limits;       ///< varchar(n)/character(n) column -> n characters
  ColumnCatalog filter_catalog;                 ///< filterable columns
  std::string index_name;                       ///< vector index, empty if none
  unsigned int index_oid = 0;                   ///< its oid (names are not looked up: they fold case)
  std::string index_type;                       ///< "hnsw", "ivfflat" or "none"
  bool every_metadata_key_a_column = false;     ///< each metadata key has a column (the table vstore creates)
  /// vstore created the table (migration 1): an upsert writes the article fields it is given.
  /// Otherwise the application owns the article columns and an upsert writes vector columns only.
  bool vstore_owns_table = false;
  std::string fingerprint;                      ///< table oid, pg_class xmin and its indexes (oid, valid, ready)
  std::string metadata_expr;                    ///< SQL building the metadata JSON of row alias "a"
};

class PgVectorStore final : public VectorStore {
 public:
  /// Opens over `conninfo`; reads the table's layout. Errors: see open_pg_store().
  [[nodiscard]] static Result<std::unique_ptr<PgVectorStore>> open(const std::string& conninfo, const Config& config);

  [[nodiscard]] std::string_view backend_name() const override { return "pgvector"; }
  [[nodiscard]] int dimension() const override { return m_dimension; }
  [[nodiscard]] Result<void> upsert(std::span<const ArticleVector> items) override;
  [[nodiscard]] Result<std::vector<SearchHit>> search(std::span<const float> query, const SearchOptions& options) override;
  [[nodiscard]] Result<std::vector<SearchHit>> similar(std::string_view uri, const SearchOptions& options) override;
  [[nodiscard]] Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit,
                                                const std::optional<FilterNode>& where) override;
  [[nodiscard]] Result<std::map<std::string, std::string>> vector_models(std::span<const std::string> ids) override;
  [[nodiscard]] Result<std::int64_t> remove(std::span<const std::string> ids) override;
  [[nodiscard]] Result<StoreCounts> count() override;
  [[nodiscard]] Result<nlohmann::json> health() override;
  [[nodiscard]] Result<nlohmann::json> gauges() override;
  [[nodiscard]] Result<nlohmann::json> explain(std::span<const float> query, const SearchOptions& options) override;
  /// search() ranked exactly (every matching row's distance, no vector index): the ground
  /// truth that validate and tune measure the index's recall against. Same errors as search().
  [[nodiscard]] Result<std::vector<SearchHit>> search_exact(std::span<const float> query, const SearchOptions& options);

  /// Work that joins a write's transaction: it runs on the write's connection after the rows
  /// are written and before COMMIT, and its error rolls the whole write back.
  using InTransaction = std::function<Result<void>(Connection& conn)>;
  /// upsert() that also runs `also` in its transaction (the dual store's outbox rows), so both
  /// commit or neither does. Errors: upsert()'s, or `also`'s. Thread-safe as upsert().
  [[nodiscard]] Result<void> upsert_with(std::span<const ArticleVector> items, const InTransaction& also);
  /// remove() that also runs `also` in its transaction, given the uris that lost their vector.
  using RemoveInTransaction = std::function<Result<void>(Connection& conn, std::span<const std::string> removed)>;
  [[nodiscard]] Result<std::int64_t> remove_with(std::span<const std::string> ids, const RemoveInTransaction& also);

  // ---- for tests and benchmarks only ----
  /// The plan the last search on this thread used.
  [[nodiscard]] static SearchPlan test_last_plan();
  /// Forces the plan of this thread's filtered searches (and test_explain()): index_iterative
  /// (the vector index with iterative scan and the candidate list widened by 1/selectivity,
  /// never falling back to exact; sorts and bitmap scans are disabled for the statement, so
  /// the planner cannot read the filter's B-tree and sort instead) or exact; nullopt, the
  /// default, lets the estimate choose. Ignored without a vector index; unfiltered searches are
  /// unaffected.
  static void test_force_plan(std::optional<SearchPlan> plan);
  /// EXPLAIN text of the statement search() would run for these options.
  [[nodiscard]] Result<std::string> test_explain(std::span<const float> query, const SearchOptions& options);
  /// What the store knows of its table now (without a catalog check).
  [[nodiscard]] std::shared_ptr<const TableInfo> table_info() const;

  // ---- for the dual store: a pgvector write and other rows in one transaction ----
  /// Runs `body` in one transaction on a connection of the store's pool and commits it. A
  /// transaction the server rolled back for a deadlock (40P01) or a serialization failure
  /// (40001) is known not to have been applied and runs again, up to 4 times in all, after a
  /// short random pause; any other failure rolls back and is returned (so is the last deadlock).
  /// `body` may therefore run more than once and must only write through `conn`.
  [[nodiscard]] Result<void> write_transaction(const std::function<Result<void>(Connection&)>& body);
  /// upsert() inside the caller's open transaction on `conn` (a connection to this store's
  /// database, e.g. the one write_transaction() hands out): the same checks and writes, no
  /// BEGIN/COMMIT. On failure the caller rolls the transaction back. Same errors as upsert().
  [[nodiscard]] Result<void> upsert_in(Connection& conn, std::span<const ArticleVector> items);

 private:
  PgVectorStore(const std::string& conninfo, const Config& config, TableInfo info);
  /// The table info, read again first when the catalog fingerprint changed; the fingerprint is
  /// checked on `conn` at most once per k_catalog_recheck.
  [[nodiscard]] Result<std::shared_ptr<const TableInfo>> current_info(Connection& conn);
  struct Prepared;  // a planned search statement
  [[nodiscard]] Result<void> check_query(std::span<const float> query, const SearchOptions& options) const;
  [[nodiscard]] Result<void> check_options(const SearchOptions& options) const;
  // The statement search_on would run for `options`, planned the same way (filled into
  // `prep`), run on `conn` under `explain` ("EXPLAIN", "EXPLAIN (ANALYZE, BUFFERS)").
  [[nodiscard]] Result<PgResult> explain_on(Connection& conn, std::span<const float> query, const SearchOptions& options,
                                            std::string_view explain, const TableInfo& info, Prepared& prep);
  [[nodiscard]] Result<Prepared> plan_search(Connection& conn, const TableInfo& info,
                                             const SearchOptions& options);
  // The writes of upsert_in, rows in uri order.
  [[nodiscard]] Result<void> upsert_one(Connection& conn, const TableInfo& info, const ArticleVector& item);
  [[nodiscard]] Result<void> upsert_many(Connection& conn, const TableInfo& info,
                                         std::span<const ArticleVector* const> items);
  // get_vectors() on one connection (get_vectors() retries it once on a fresh one).
  [[nodiscard]] Result<VectorBatch> get_vectors_on(Connection& conn, std::optional<std::int64_t> limit,
                                                   const std::optional<FilterNode>& where);
  // search() on one connection (search() retries it once on a fresh one).
  [[nodiscard]] Result<std::vector<SearchHit>> search_on(Connection& conn, std::span<const float> query,
                                                         const SearchOptions& options);
  // COPY of `rows` into the staging table, then one INSERT ... ON CONFLICT into the table.
  [[nodiscard]] Result<void> merge_through_stage(Connection& conn, const TableInfo& info,
                                                 const std::vector<std::pair<std::string, std::string>>& cols,
                                                 std::span<const ArticleVector* const> rows);
  [[nodiscard]] Result<void> check_model(Connection& conn, std::span<const ArticleVector> items);
  // On the application's table: refuses rows whose given text fields differ from the row's.
  [[nodiscard]] Result<void> check_unchanged_text(Connection& conn, const TableInfo& info,
                                                  std::span<const ArticleVector* const> rows);
  // The model of the stored vectors (read until the table holds one, then kept), or nullopt
  // while the table holds none.
  [[nodiscard]] Result<std::optional<std::string>> stored_model(Connection& conn);
  [[nodiscard]] Result<std::optional<std::string>> stored_model();
  // The pool a read that is not retried goes to: a usable replica's, else the primary's.
  [[nodiscard]] Pool& read_pool();
  // Runs `read` (as Pool::read does) on a usable replica, else on the primary; when the replica
  // turns out to be gone (the server unreachable, the connection broken, a conflict with its
  // recovery), it is skipped from now on and the read runs on the primary.
  template <typename Read>
  auto read(Read&& fn) -> decltype(fn(std::declval<Connection&>())) {
    if (m_replicas) {
      if (Pool* replica = m_replicas->pick()) {
        auto result = replica->read(fn);
        if (result || !(result.error().code() == ErrorCode::unavailable || result.error().connection_poisoned())) {
          return result;
        }
        m_replicas->mark_failed(replica, result.error());
      }
    }
    return m_pool.read(fn);
  }
  /// Estimated rows of the table (pg_class.reltuples), cached for 30 s.
  [[nodiscard]] Result<double> table_rows(Connection& conn);
  // Parts of health(): the index's size against shared_buffers and RAM, the latency probe, the
  // latest validation of the operations log.
  [[nodiscard]] Result<void> index_memory_health(Connection& conn, unsigned int index_oid, nlohmann::json& index,
                                                 std::vector<std::string>& warnings);
  [[nodiscard]] Result<nlohmann::json> latency_probe(Connection& conn);
  [[nodiscard]] Result<nlohmann::json> probe_search();
  [[nodiscard]] Result<nlohmann::json> validation_health(std::vector<std::string>& warnings);

  Config m_config;
  int m_dimension = 0;  ///< of the embedding column at open (the config's EMBEDDING_DIM)
  mutable std::mutex m_info_mutex;
  std::shared_ptr<const TableInfo> m_info;  ///< guarded by m_info_mutex
  std::atomic<std::chrono::steady_clock::rep> m_info_checked_at{0};
  Pool m_pool;
  std::unique_ptr<ReadReplicas> m_replicas;  ///< DATABASE_READ_URLS; null without them
  /// Batch upsert looks up which uris exist before its COPY (set while batches meet existing rows).
  std::atomic<bool> m_look_up_first{false};
  std::atomic<double> m_rows_estimate{1.0};
  std::atomic<std::chrono::steady_clock::rep> m_rows_checked_at{0};
  std::mutex m_model_mutex;
  std::optional<std::string> m_model;  ///< embedding model of stored rows once known; guarded by m_model_mutex
};

}  // namespace vstore::pg
