// SPDX-License-Identifier: Apache-2.0
/// VectorStore: the one interface every backend implements, and open_store() to pick one.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/filter.hpp"
#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// The largest top_k a search takes: the application asks for 100,000 rows to count facets over
/// every match. A top_k above k_max_index_top_k ranks the matching rows exactly (pgvector).
inline constexpr int k_max_top_k = 100000;
/// The largest top_k pgvector answers from its vector index (ef_search is at most 1000).
inline constexpr int k_max_index_top_k = 1000;

/// How a search runs. Unset optionals take the store's configured defaults.
struct SearchOptions {
  int top_k = 10;                     ///< 1..k_max_top_k
  std::optional<FilterNode> where;    ///< Chroma-style filter
  std::optional<int> ef_search;       ///< HNSW candidate list for this query (1..1000)
  std::optional<int> probes;          ///< IVFFlat lists probed for this query
  std::optional<std::string> model;   ///< the model that made the query vector; checked against the store
};

/// How a filtered search was planned (for tests, EXPLAIN and benchmarks).
enum class SearchPlan { index, index_iterative, exact };

/// A vector store. Implementations are thread-safe: any number of threads may call any method.
class VectorStore {
 public:
  virtual ~VectorStore() = default;

  /// "pgvector" or "chromadb".
  [[nodiscard]] virtual std::string_view backend_name() const = 0;
  /// Dimension of stored vectors.
  [[nodiscard]] virtual int dimension() const = 0;

  /// Inserts or replaces the vectors of `items` (one or many; many use the bulk path). For an
  /// existing article its vector, model and vector metadata change; its article fields change
  /// only where the store owns them (pgvector: the table vstore created, see ARCHITECTURE.md
  /// "Upsert"). Errors: invalid_argument (wrong dimension, NaN/Inf, empty uri, duplicate uri in
  /// the batch, model mismatch, a value longer than its column allows, changed text on a table
  /// the application owns), unavailable. All or nothing.
  [[nodiscard]] virtual Result<void> upsert(std::span<const ArticleVector> items) = 0;

  /// The top_k nearest stored vectors to `query`, ascending cosine distance; a filtered search
  /// returns top_k rows whenever that many match. Errors: invalid_argument (dimension, NaN,
  /// top_k, filter keys or types, model mismatch), unavailable, timeout.
  [[nodiscard]] virtual Result<std::vector<SearchHit>> search(std::span<const float> query,
                                                              const SearchOptions& options) = 0;

  /// The options.top_k articles nearest to the stored vector of `uri`, without `uri` itself,
  /// among those matching options.where; top_k and the filter mean what they mean for search().
  /// Errors: not_found (no such article or it has no vector), and those of search().
  [[nodiscard]] virtual Result<std::vector<SearchHit>> similar(std::string_view uri, const SearchOptions& options) = 0;

  /// Up to `limit` stored vectors (all when unset) matching `where`, with ids and metadata.
  [[nodiscard]] virtual Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit,
                                                        const std::optional<FilterNode>& where) = 0;

  /// The ids among `ids` that hold a stored vector, each with the model that made it (an empty
  /// string where the backend recorded none). Ids without a vector or unknown are absent.
  /// Errors: unavailable, timeout.
  [[nodiscard]] virtual Result<std::map<std::string, std::string>> vector_models(std::span<const std::string> ids) = 0;

  /// Removes the vectors of `ids`; returns how many had one.
  [[nodiscard]] virtual Result<std::int64_t> remove(std::span<const std::string> ids) = 0;

  /// Row counts.
  [[nodiscard]] virtual Result<StoreCounts> count() = 0;

  /// Health as `vstore health --json` prints it (see docs/product.md).
  [[nodiscard]] virtual Result<nlohmann::json> health() = 0;

  /// Cheap figures for monitoring (the service's /metrics), as a flat JSON object of numbers:
  /// pgvector gives the connection pool's `pool_size`, `pool_max_overflow`, `pool_open`,
  /// `pool_idle` and `pool_in_use` (no query); dual mode adds the outbox's `outbox_pending` and
  /// `outbox_oldest_age_s` (one query); Chroma gives none. (Defined here for the reason below.)
  [[nodiscard]] virtual Result<nlohmann::json> gauges() { return nlohmann::json::object(); }

  /// Runs the search of `query` and `options` under EXPLAIN (ANALYZE, BUFFERS) and says how it
  /// was planned: {"plan": "exact" | "index" | "index_iterative", "index_type", "ef_search",
  /// "table_rows", "estimated_rows" and "selectivity" (of the filter; null without one),
  /// "vector_index_used" (whether PostgreSQL's plan scans the vector index), "statement",
  /// "explain": [lines of PostgreSQL's plan, with timing]}. pgvector only: the
  /// other stores fail with invalid_argument.
  /// (Defined here, so that VectorStore keeps no key function and each library that holds a
  /// store also holds its type information.)
  [[nodiscard]] virtual Result<nlohmann::json> explain(std::span<const float> /*query*/,
                                                       const SearchOptions& /*options*/) {
    return fail(ErrorCode::invalid_argument,
                "explaining a search needs PostgreSQL: the " + std::string(backend_name()) +
                    " backend has no query plan to show (set VECTOR_BACKEND=pgvector, or dual with "
                    "VECTOR_PRIMARY=pgvector)");
  }
};

/// How open_store() opens the configured store.
struct OpenOptions {
  /// Create what writes need when it is missing (the Chroma collection, in cosine space).
  /// Default false: a read-only command against a missing collection fails with not_found.
  bool create = false;
  /// Dual mode: run each read on the secondary too and record overlap@k (see dual_stats()).
  /// Default false; Config::shadow_compare (VSTORE_SHADOW_COMPARE, environment or .env) also turns it on.
  bool shadow_compare = false;
};

/// Opens the store VECTOR_BACKEND selects: `pgvector` (DATABASE_URL or the embedded cluster;
/// schema at the latest version), `chromadb` (CHROMA_URL, collection CHROMA_COLLECTION), or
/// `dual` (writes to both, reads from VECTOR_PRIMARY, failed secondary writes kept in the
/// PostgreSQL outbox and retried). The store is thread-safe and owned by the caller.
/// Errors: invalid_argument (CHROMA_URL missing), unavailable (a server is down), not_found
/// (collection missing and `create` false), conflict (schema not migrated, dimension mismatch).
[[nodiscard]] Result<std::unique_ptr<VectorStore>> open_store(const Config& config, const OpenOptions& options = {});

/// Opens the pgvector store at `conninfo` (whatever VECTOR_BACKEND says); the schema must be
/// at the latest version. Errors: invalid_argument, unavailable, conflict
/// (schema not migrated: says to run `vstore schema up`).
[[nodiscard]] Result<std::unique_ptr<VectorStore>> open_pg_store(const std::string& conninfo, const Config& config);

}  // namespace vstore
