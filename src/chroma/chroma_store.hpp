// SPDX-License-Identifier: Apache-2.0
// ChromaStore: the VectorStore over a Chroma server's HTTP API (v2, or v1 on 0.4/0.5 servers).
// Internal; callers use vstore::open_store().
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "chroma/chroma_api.hpp"
#include "chroma/chroma_http.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::chroma {

/// The collection metadata key that records the embedding model of the collection's vectors.
inline constexpr std::string_view k_model_key = "vstore:embedding_model";

/// What open() needs beyond Config (defaults suit the product).
struct ChromaOptions {
  std::string tenant = "default_tenant";      ///< Chroma tenant. Default "default_tenant".
  std::string database = "default_database";  ///< Chroma database. Default "default_database".
  bool create_collection = false;  ///< create the collection (cosine space) when missing
  Space create_space = Space::cosine;  ///< space of a collection created here (tests use l2/ip)
  std::optional<int> create_ef_construction;  ///< `hnsw:construction_ef` of a created collection
  std::optional<int> create_ef_search;        ///< `hnsw:search_ef` of a created collection
  std::optional<int> create_m;                ///< `hnsw:M` of a created collection
  HttpOptions http;  ///< base_url and token default to CHROMA_URL and CHROMA_TOKEN when empty
};

class ChromaStore final : public VectorStore {
 public:
  /// Connects to CHROMA_URL, detects the API version, finds the collection CHROMA_COLLECTION by
  /// name (creating it when `options.create_collection`), and reads its id, space (the rule of
  /// describe_collection()), dimension and recorded embedding model (`vstore:embedding_model`).
  /// Errors: invalid_argument (no CHROMA_URL), unavailable (server down), not_found (tenant,
  /// database or collection missing), conflict (the collection's dimension is not EMBEDDING_DIM),
  /// corruption (a collection described oddly).
  [[nodiscard]] static Result<std::unique_ptr<ChromaStore>> open(const Config& config, ChromaOptions options = {});

  [[nodiscard]] std::string_view backend_name() const override { return "chromadb"; }
  [[nodiscard]] int dimension() const override { return m_dimension; }
  /// One model per collection, as pgvector: the first upsert into a collection without a
  /// recorded model records its model on the collection; vectors of another model are refused
  /// (invalid_argument, the words of model_refused()).
  [[nodiscard]] Result<void> upsert(std::span<const ArticleVector> items) override;
  /// Refuses a query whose `model` is not the collection's (query_model_refused()).
  [[nodiscard]] Result<std::vector<SearchHit>> search(std::span<const float> query, const SearchOptions& options) override;
  [[nodiscard]] Result<std::vector<SearchHit>> similar(std::string_view uri, const SearchOptions& options) override;
  [[nodiscard]] Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit,
                                                const std::optional<FilterNode>& where) override;
  /// Every present id maps to the collection's recorded model ("" when none is recorded: a
  /// collection no vstore upsert has written to).
  [[nodiscard]] Result<std::map<std::string, std::string>> vector_models(std::span<const std::string> ids) override;
  [[nodiscard]] Result<std::int64_t> remove(std::span<const std::string> ids) override;
  [[nodiscard]] Result<StoreCounts> count() override;
  [[nodiscard]] Result<nlohmann::json> health() override;

  /// Deletes the collection and everything in it (benchmarks use it to clean up). The store
  /// must not be used afterwards. Errors: unavailable, not_found.
  [[nodiscard]] Result<void> drop_collection();
  /// Chroma's version string (`/version`; "1.0.0" for every 1.x server). Errors: unavailable.
  [[nodiscard]] Result<std::string> server_version();

  // ---- for tests only ----
  [[nodiscard]] Space test_space() const { return m_space; }
  [[nodiscard]] ApiVersion test_api() const { return m_api; }
  [[nodiscard]] std::int64_t test_max_batch() const { return m_max_batch; }
  /// Overrides the batch size used for writes and paged reads (to exercise paging).
  void test_set_max_batch(std::int64_t n) { m_max_batch = n; }

 private:
  // search() without its top_k bound: similar() asks for one row more than top_k.
  [[nodiscard]] Result<std::vector<SearchHit>> search_unchecked(std::span<const float> query, const SearchOptions& options);
  // The ids of `chunk` (at most one batch) the collection holds, as Chroma lists them.
  [[nodiscard]] Result<nlohmann::json> present_ids(std::span<const std::string> chunk);
  ChromaStore(const Config& config, ChromaOptions options, std::unique_ptr<ChromaHttp> http);
  [[nodiscard]] Result<void> find_collection();
  [[nodiscard]] std::string record_path(std::string_view op) const;  ///< ".../collections/{id}/{op}"
  // Success when vectors of `model` may go into the collection; records the model on a
  // collection that has none yet.
  [[nodiscard]] Result<void> check_model(const std::string& model);
  [[nodiscard]] std::string holder() const;  ///< "chroma collection NAME", for messages
  [[nodiscard]] Result<nlohmann::json> query_raw(std::span<const float> query, int n, const nlohmann::json* where,
                                                 bool with_embeddings);
  // The n nearest records as hits, sorted by (cosine distance, id).
  [[nodiscard]] Result<std::vector<SearchHit>> query_hits(std::span<const float> query, int n,
                                                          const nlohmann::json& where, bool cosine);

  Config m_config;
  ChromaOptions m_options;
  std::unique_ptr<ChromaHttp> m_http;
  ApiVersion m_api = ApiVersion::v2;
  ApiScope m_scope;
  std::int64_t m_max_batch = 1000;
  std::string m_collection_id;
  Space m_space = Space::l2;
  int m_dimension = 0;
  mutable std::mutex m_model_mutex;
  std::optional<std::string> m_model;  ///< `vstore:embedding_model` of the collection; guarded by m_model_mutex
  nlohmann::json m_hnsw_params = nlohmann::json::object();
};

/// The `where` object Chroma gets for `filter`: date strings compared with $gt/$gte/$lt/$lte on
/// publication_date or publication_date_ts become epoch seconds on publication_date_ts (the
/// only date field Chroma can compare). Errors: invalid_argument for a string range elsewhere.
[[nodiscard]] Result<nlohmann::json> chroma_where(const FilterNode& filter);

}  // namespace vstore::chroma
