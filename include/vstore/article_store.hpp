// SPDX-License-Identifier: Apache-2.0
/// ArticleStore: the operations of the Python vector store being replaced (upsert_article,
/// search_articles, similar_articles, get_vectors_by_metadata, health, shutdown), sync and async,
/// over any VectorStore and Embedder.
#pragma once

#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "vstore/embedder.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {

/// The PostgreSQL connection string vstore uses: DATABASE_URL when set, else the embedded
/// cluster under VSTORE_DATA_DIR. Errors: unavailable when the embedded cluster is not running
/// (says to run `vstore db start`).
[[nodiscard]] Result<std::string> resolve_conninfo(const Config& config);

/// The check of a search text before it is embedded: it has content (not empty, not only
/// whitespace, control or format characters) and is valid UTF-8. Errors: invalid_argument
/// `the search query is empty` or `the search query is not valid UTF-8 at offset N (byte 0xFF)`.
/// Pure; thread-safe.
[[nodiscard]] Result<void> check_search_query(std::string_view query);

/// What a store's embedder has done since the store was made (for monitoring: the service's
/// /metrics). `seconds` is the wall time spent inside embed() calls, summed over threads.
struct EmbedStats {
  std::uint64_t calls = 0;     ///< embed() calls
  std::uint64_t texts = 0;     ///< texts embedded by calls that succeeded
  std::uint64_t failures = 0;  ///< calls that returned an error
  double seconds = 0.0;
};

/// Thread-safe. Async calls run on a bounded pool of worker threads and never block the caller:
/// when the queue is full the returned future holds an unavailable error.
class ArticleStore {
 public:
  /// `workers`: threads for async calls (default 4); `queue_limit`: pending async calls.
  ArticleStore(std::unique_ptr<VectorStore> store, std::unique_ptr<Embedder> embedder, int workers = 4,
               std::size_t queue_limit = 1024);
  ~ArticleStore();
  ArticleStore(const ArticleStore&) = delete;
  ArticleStore& operator=(const ArticleStore&) = delete;

  /// Embeds raw, else summary, else title, and upserts. Returns false (and stores nothing)
  /// when the article has no text: it is never given a made-up vector.
  [[nodiscard]] Result<bool> upsert_article(const Article& article);
  /// Batch form: returns how many were stored (articles without text are skipped). The texts
  /// are embedded in slices of k_embed_slice; `on_embedded`, when set, is called after each
  /// slice with the number of articles of `articles` handled so far (for progress). The store
  /// is written once, after every text is embedded: all or nothing.
  [[nodiscard]] Result<std::size_t> upsert_articles(std::span<const Article> articles,
                                                    const std::function<void(std::size_t)>& on_embedded = {});
  /// Texts per Embedder::embed() call in upsert_articles.
  static constexpr std::size_t k_embed_slice = 64;
  /// Errors: invalid_argument for a blank query, a bad filter or top_k.
  [[nodiscard]] Result<std::vector<SearchHit>> search_articles(std::string_view query, int top_k = 10,
                                                               const std::optional<FilterNode>& where = std::nullopt);
  /// The top_k articles nearest to `uri`'s stored vector (itself excluded) among those matching
  /// `where`. Errors: not_found (no such article, or no vector), invalid_argument (top_k, filter).
  [[nodiscard]] Result<std::vector<SearchHit>> similar_articles(std::string_view uri, int top_k = 5,
                                                                const std::optional<FilterNode>& where = std::nullopt);
  [[nodiscard]] Result<VectorBatch> get_vectors_by_metadata(std::optional<std::int64_t> limit = std::nullopt,
                                                            const std::optional<FilterNode>& where = std::nullopt);
  [[nodiscard]] Result<nlohmann::json> health();
  /// Finishes queued async work and stops the workers; later async calls fail with unavailable.
  void shutdown();

  [[nodiscard]] std::future<Result<bool>> upsert_article_async(Article article);
  [[nodiscard]] std::future<Result<std::vector<SearchHit>>> search_articles_async(std::string query, int top_k = 10,
                                                                                  std::optional<FilterNode> where = {});
  [[nodiscard]] std::future<Result<std::vector<SearchHit>>> similar_articles_async(std::string uri, int top_k = 5);
  [[nodiscard]] std::future<Result<VectorBatch>> get_vectors_by_metadata_async(std::optional<std::int64_t> limit = {},
                                                                               std::optional<FilterNode> where = {});

  [[nodiscard]] VectorStore& store() { return *m_store; }
  /// The embedder given to the constructor, wrapped so that embed_stats() counts every call
  /// made through it (the store's own and its callers').
  [[nodiscard]] Embedder& embedder() { return *m_embedder; }
  [[nodiscard]] EmbedStats embed_stats() const;

 private:
  class Workers;
  template <typename T, typename Fn>
  std::future<Result<T>> submit(Fn&& fn);

  struct EmbedCounters;
  class CountingEmbedder;
  std::unique_ptr<VectorStore> m_store;
  std::shared_ptr<EmbedCounters> m_embed_counters;
  std::unique_ptr<Embedder> m_embedder;
  std::unique_ptr<Workers> m_workers;
};

}  // namespace vstore
