// SPDX-License-Identifier: Apache-2.0
// ArticleStore: text selection and embedding in front of a VectorStore, and the bounded worker
// pool behind the async calls (a fixed set of threads draining a capped queue; a full queue
// fails the call at once instead of blocking the caller).
#include "vstore/article_store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "core/text.hpp"
#include "vstore/article.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/reindex.hpp"
#include "vstore/utf8.hpp"
#include "vstore/write_check.hpp"

namespace vstore {
namespace {

// An embedder knows texts, not articles: an error about the input (invalid_argument) gets the
// uri of the article it is about, found by embedding the slice's texts one at a time.
Error name_failed_article(Embedder& embedder, const Error& error, std::span<const std::string> texts,
                          std::span<const Article* const> articles) {
  if (error.code() != ErrorCode::invalid_argument) return error;
  if (texts.size() == 1) return error.with_context(fmt::format("article {}", quoted_uri(articles[0]->uri)));
  for (std::size_t idx = 0; idx < texts.size(); ++idx) {
    auto one = embedder.embed(texts.subspan(idx, 1));
    if (!one) return one.error().with_context(fmt::format("article {}", quoted_uri(articles[idx]->uri)));
  }
  return error;
}

}  // namespace

Result<std::string> resolve_conninfo(const Config& config) {
  if (config.database_url) return *config.database_url;
  EmbeddedPostgres pg(config.data_dir / "pg");
  VS_TRY_ASSIGN(EmbeddedStatus st, pg.status());
  if (!st.running) {
    return fail(ErrorCode::unavailable,
                fmt::format("the embedded database in {} is not running; run `vstore db start`, or set DATABASE_URL",
                            (config.data_dir / "pg").string()));
  }
  return st.conninfo;
}

class ArticleStore::Workers {
 public:
  Workers(int threads, std::size_t limit) : m_limit(limit) {
    for (int i = 0; i < threads; ++i) {
      m_threads.emplace_back([this] { run(); });
    }
  }
  ~Workers() { stop(); }

  bool push(std::function<void()> job) {
    std::lock_guard lock(m_mutex);
    if (m_stopping || m_queue.size() >= m_limit) return false;
    m_queue.push_back(std::move(job));
    m_cv.notify_one();
    return true;
  }

  void stop() {
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_cv.notify_all();
    for (auto& t : m_threads) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void run() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(m_mutex);
        m_cv.wait(lock, [&] { return m_stopping || !m_queue.empty(); });
        if (m_queue.empty()) return;  // stopping and drained
        job = std::move(m_queue.front());
        m_queue.pop_front();
      }
      job();
    }
  }

  std::size_t m_limit;
  std::mutex m_mutex;
  std::condition_variable m_cv;
  std::deque<std::function<void()>> m_queue;  // guarded by m_mutex
  bool m_stopping = false;                    // guarded by m_mutex
  std::vector<std::thread> m_threads;
};

struct ArticleStore::EmbedCounters {
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> texts{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> nanoseconds{0};
};

// The given embedder, counting its calls, texts, failures and time into shared counters.
class ArticleStore::CountingEmbedder final : public Embedder {
 public:
  CountingEmbedder(std::unique_ptr<Embedder> inner, std::shared_ptr<ArticleStore::EmbedCounters> counters)
      : m_inner(std::move(inner)), m_counters(std::move(counters)) {}
  [[nodiscard]] std::string_view model() const override { return m_inner->model(); }
  [[nodiscard]] int dimension() const override { return m_inner->dimension(); }
  [[nodiscard]] Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    const auto start = std::chrono::steady_clock::now();
    auto out = m_inner->embed(texts);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
    m_counters->calls.fetch_add(1, std::memory_order_relaxed);
    m_counters->nanoseconds.fetch_add(static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)), std::memory_order_relaxed);
    if (out) {
      m_counters->texts.fetch_add(texts.size(), std::memory_order_relaxed);
    } else {
      m_counters->failures.fetch_add(1, std::memory_order_relaxed);
    }
    return out;
  }

 private:
  std::unique_ptr<Embedder> m_inner;
  std::shared_ptr<ArticleStore::EmbedCounters> m_counters;
};

ArticleStore::ArticleStore(std::unique_ptr<VectorStore> store, std::unique_ptr<Embedder> embedder, int workers,
                           std::size_t queue_limit)
    : m_store(std::move(store)),
      m_embed_counters(std::make_shared<EmbedCounters>()),
      m_embedder(std::make_unique<CountingEmbedder>(std::move(embedder), m_embed_counters)),
      m_workers(std::make_unique<Workers>(std::max(1, workers), queue_limit)) {}

ArticleStore::~ArticleStore() { shutdown(); }

EmbedStats ArticleStore::embed_stats() const {
  EmbedStats s;
  s.calls = m_embed_counters->calls.load(std::memory_order_relaxed);
  s.texts = m_embed_counters->texts.load(std::memory_order_relaxed);
  s.failures = m_embed_counters->failures.load(std::memory_order_relaxed);
  s.seconds = static_cast<double>(m_embed_counters->nanoseconds.load(std::memory_order_relaxed)) / 1e9;
  return s;
}

void ArticleStore::shutdown() { m_workers->stop(); }

template <typename T, typename Fn>
std::future<Result<T>> ArticleStore::submit(Fn&& fn) {
  auto task = std::make_shared<std::packaged_task<Result<T>()>>(std::forward<Fn>(fn));
  std::future<Result<T>> fut = task->get_future();
  if (!m_workers->push([task] { (*task)(); })) {
    std::promise<Result<T>> rejected;
    rejected.set_value(fail(ErrorCode::unavailable, "the async worker queue is full or shut down"));
    return rejected.get_future();
  }
  return fut;
}

Result<std::size_t> ArticleStore::upsert_articles(std::span<const Article> articles,
                                                  const std::function<void(std::size_t)>& on_embedded) {
  std::vector<std::string> texts;
  std::vector<const Article*> with_text;
  std::vector<std::size_t> position;  // index in `articles` of each text, for progress
  for (std::size_t i = 0; i < articles.size(); ++i) {
    std::string_view text = document_text(articles[i]);
    if (text.empty()) continue;  // no text: skipped, never given a made-up vector
    texts.emplace_back(text);
    with_text.push_back(&articles[i]);
    position.push_back(i);
  }
  if (with_text.empty()) {
    if (on_embedded) on_embedded(articles.size());
    return std::size_t{0};
  }
  std::vector<Embedding> vectors;
  vectors.reserve(texts.size());
  const std::span<const std::string> all(texts);
  for (std::size_t start = 0; start < texts.size(); start += k_embed_slice) {
    const std::size_t n = std::min(k_embed_slice, texts.size() - start);
    auto slice = m_embedder->embed(all.subspan(start, n));
    if (!slice) {
      return fail(name_failed_article(*m_embedder, slice.error(), all.subspan(start, n),
                                      std::span<const Article* const>(with_text).subspan(start, n)));
    }
    for (auto& v : *slice) vectors.push_back(std::move(v));
    if (on_embedded) on_embedded(start + n == texts.size() ? articles.size() : position[start + n]);
  }
  std::vector<ArticleVector> items;
  items.reserve(with_text.size());
  const std::string model(m_embedder->model());
  for (std::size_t i = 0; i < with_text.size(); ++i) {
    // The hash tells a later reindex that this vector describes this text.
    items.push_back(ArticleVector{*with_text[i], std::move(vectors[i]), model, embedding_text_hash(model, texts[i])});
  }
  VS_TRY(m_store->upsert(items));
  return items.size();
}

Result<void> check_search_query(std::string_view query) {
  if (is_blank_text(query)) return fail(ErrorCode::invalid_argument, "the search query is empty");
  if (const auto bad = first_invalid_utf8(query)) {
    return fail(ErrorCode::invalid_argument, fmt::format("the search query is not valid UTF-8 at offset {} (byte 0x{:02X})", *bad,
                                                         static_cast<unsigned char>(query[*bad])));
  }
  return {};
}

Result<bool> ArticleStore::upsert_article(const Article& article) {
  VS_TRY_ASSIGN(std::size_t n, upsert_articles(std::span<const Article>(&article, 1)));
  return n == 1;
}

Result<std::vector<SearchHit>> ArticleStore::search_articles(std::string_view query, int top_k,
                                                             const std::optional<FilterNode>& where) {
  VS_TRY(check_search_query(query));
  std::string text(query);
  VS_TRY_ASSIGN(std::vector<Embedding> vec, m_embedder->embed(std::span<const std::string>(&text, 1)));
  SearchOptions opts;
  opts.top_k = top_k;
  opts.where = where;
  opts.model = std::string(m_embedder->model());
  return m_store->search(vec.front(), opts);
}

Result<std::vector<SearchHit>> ArticleStore::similar_articles(std::string_view uri, int top_k,
                                                              const std::optional<FilterNode>& where) {
  SearchOptions opts;
  opts.top_k = top_k;
  opts.where = where;
  return m_store->similar(uri, opts);
}

Result<VectorBatch> ArticleStore::get_vectors_by_metadata(std::optional<std::int64_t> limit,
                                                          const std::optional<FilterNode>& where) {
  return m_store->get_vectors(limit, where);
}

Result<nlohmann::json> ArticleStore::health() { return m_store->health(); }

std::future<Result<bool>> ArticleStore::upsert_article_async(Article article) {
  return submit<bool>([this, a = std::move(article)] { return upsert_article(a); });
}

std::future<Result<std::vector<SearchHit>>> ArticleStore::search_articles_async(std::string query, int top_k,
                                                                                std::optional<FilterNode> where) {
  return submit<std::vector<SearchHit>>(
      [this, q = std::move(query), top_k, w = std::move(where)] { return search_articles(q, top_k, w); });
}

std::future<Result<std::vector<SearchHit>>> ArticleStore::similar_articles_async(std::string uri, int top_k) {
  return submit<std::vector<SearchHit>>([this, u = std::move(uri), top_k] { return similar_articles(u, top_k); });
}

std::future<Result<VectorBatch>> ArticleStore::get_vectors_by_metadata_async(std::optional<std::int64_t> limit,
                                                                             std::optional<FilterNode> where) {
  return submit<VectorBatch>([this, limit, w = std::move(where)] { return get_vectors_by_metadata(limit, w); });
}

}  // namespace vstore
