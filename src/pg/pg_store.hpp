// SPDX-License-Identifier: Apache-2.0
// PgVectorStore: the VectorStore over PostgreSQL + pgvector. Internal; callers use open_pg_store().
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pg/pg_filter.hpp"
#include "pg/pg_pool.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::pg {

/// What the store learnt about its table at open.
struct TableInfo {
  std::string table;                            ///< unquoted name
  int dimension = 0;                            ///< of the embedding column
  std::map<std::string, std::string> columns;   ///< column -> format_type
  ColumnCatalog filter_catalog;                 ///< filterable columns
  std::string index_name;                       ///< vector index, empty if none
  std::string index_type;                       ///< "hnsw", "ivfflat" or "none"
  bool every_metadata_key_a_column = false;     ///< each metadata key has a column (the table vstore creates)
};

class PgVectorStore final : public VectorStore {
 public:
  /// Opens over `conninfo`; reads the table's layout. Errors: see open_pg_store().
  [[nodiscard]] static Result<std::unique_ptr<PgVectorStore>> open(const std::string& conninfo, const Config& config);

  [[nodiscard]] std::string_view backend_name() const override { return "pgvector"; }
  [[nodiscard]] int dimension() const override { return m_info.dimension; }
  [[nodiscard]] Result<void> upsert(std::span<const ArticleVector> items) override;
  [[nodiscard]] Result<std::vector<SearchHit>> search(std::span<const float> query, const SearchOptions& options) override;
  [[nodiscard]] Result<std::vector<SearchHit>> similar(std::string_view uri, int top_k) override;
  [[nodiscard]] Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit,
                                                const std::optional<FilterNode>& where) override;
  [[nodiscard]] Result<std::map<std::string, std::string>> vector_models(std::span<const std::string> ids) override;
  [[nodiscard]] Result<std::int64_t> remove(std::span<const std::string> ids) override;
  [[nodiscard]] Result<StoreCounts> count() override;
  [[nodiscard]] Result<nlohmann::json> health() override;

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
  [[nodiscard]] const TableInfo& table_info() const { return m_info; }

 private:
  PgVectorStore(const std::string& conninfo, const Config& config, TableInfo info);
  struct Prepared;  // a planned search statement
  [[nodiscard]] Result<void> check_query(std::span<const float> query, const SearchOptions& options) const;
  [[nodiscard]] Result<Prepared> plan_search(Connection& conn,
                                             const SearchOptions& options);
  [[nodiscard]] Result<void> upsert_one(Connection& conn, const ArticleVector& item);
  [[nodiscard]] Result<void> upsert_many(Connection& conn, std::span<const ArticleVector> items);
  // COPY of `rows` into the staging table, then one INSERT ... ON CONFLICT into the table.
  [[nodiscard]] Result<void> merge_through_stage(Connection& conn,
                                                 const std::vector<std::pair<std::string, std::string>>& cols,
                                                 std::span<const ArticleVector* const> rows);
  [[nodiscard]] Result<void> check_model(std::span<const ArticleVector> items);
  // The model of the stored vectors (read once, then kept up to date by upsert), or nullopt
  // while the table holds none.
  [[nodiscard]] Result<std::optional<std::string>> stored_model();
  [[nodiscard]] Pool& read_pool();
  /// Estimated rows of the table (pg_class.reltuples), cached for 30 s.
  [[nodiscard]] Result<double> table_rows(Connection& conn);

  Config m_config;
  TableInfo m_info;
  Pool m_pool;
  std::vector<std::unique_ptr<Pool>> m_read_pools;
  std::atomic<std::size_t> m_read_next{0};
  /// Batch upsert looks up which uris exist before its COPY (set while batches meet existing rows).
  std::atomic<bool> m_look_up_first{false};
  std::atomic<double> m_rows_estimate{1.0};
  std::atomic<std::chrono::steady_clock::rep> m_rows_checked_at{0};
  std::string m_metadata_expr;  ///< SQL building the metadata JSON of row alias "a"
  std::mutex m_model_mutex;
  std::optional<std::string> m_model;  ///< embedding model of stored rows; guarded by m_model_mutex
  bool m_model_known = false;          ///< guarded by m_model_mutex
};

}  // namespace vstore::pg
