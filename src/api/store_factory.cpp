// SPDX-License-Identifier: Apache-2.0
// open_store(): the VECTOR_BACKEND facade. It resolves where each backend lives and wires the
// dual store (primary, secondary, outbox) together; the stores themselves live in src/pg,
// src/chroma and api/dual_store.cpp. A dual store whose Chroma secondary cannot be reached at
// open still opens: the secondary is a LazyStore that keeps trying (at most once a second) and
// answers unavailable meanwhile, so writes go to the primary and the outbox.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>

#include <fmt/format.h>

#include "api/dual_store.hpp"
#include "chroma/chroma_store.hpp"
#include "vstore/article_store.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

Result<std::unique_ptr<VectorStore>> open_chroma(const Config& config, const OpenOptions& options) {
  chroma::ChromaOptions chroma_options;
  chroma_options.create_collection = options.create;
  VS_TRY_ASSIGN(auto store, chroma::ChromaStore::open(config, chroma_options));
  return std::unique_ptr<VectorStore>(std::move(store));
}

// A store opened on first use; until it opens every call fails with the open error.
class LazyStore final : public VectorStore {
 public:
  using Opener = std::function<Result<std::unique_ptr<VectorStore>>()>;
  LazyStore(std::string name, int dimension, Opener opener, Error first_error)
      : m_name(std::move(name)), m_dimension(dimension), m_opener(std::move(opener)), m_last_error(std::move(first_error)),
        m_next_try(std::chrono::steady_clock::now() + std::chrono::seconds(1)) {}

  std::string_view backend_name() const override { return m_name; }
  int dimension() const override { return m_dimension; }
  Result<void> upsert(std::span<const ArticleVector> items) override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->upsert(items);
  }
  Result<std::vector<SearchHit>> search(std::span<const float> query, const SearchOptions& options) override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->search(query, options);
  }
  Result<std::vector<SearchHit>> similar(std::string_view uri, int top_k) override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->similar(uri, top_k);
  }
  Result<VectorBatch> get_vectors(std::optional<std::int64_t> limit, const std::optional<FilterNode>& where) override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->get_vectors(limit, where);
  }
  Result<std::int64_t> remove(std::span<const std::string> ids) override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->remove(ids);
  }
  Result<StoreCounts> count() override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->count();
  }
  Result<nlohmann::json> health() override {
    VS_TRY_ASSIGN(VectorStore * store, get());
    return store->health();
  }

 private:
  Result<VectorStore*> get() {
    std::lock_guard lock(m_mutex);
    if (m_store) return m_store.get();
    const auto now = std::chrono::steady_clock::now();
    if (now >= m_next_try) {
      m_next_try = now + std::chrono::seconds(1);
      auto opened = m_opener();
      if (opened) {
        m_store = std::move(*opened);
        return m_store.get();
      }
      m_last_error = opened.error();
    }
    return fail(m_last_error);
  }

  std::string m_name;
  int m_dimension;
  Opener m_opener;
  std::mutex m_mutex;
  std::unique_ptr<VectorStore> m_store;  ///< guarded by m_mutex
  Error m_last_error;                    ///< guarded by m_mutex
  std::chrono::steady_clock::time_point m_next_try;  ///< guarded by m_mutex
};

}  // namespace

Result<std::unique_ptr<VectorStore>> open_store(const Config& config, const OpenOptions& options) {
  switch (config.backend) {
    case BackendKind::pgvector: {
      VS_TRY_ASSIGN(std::string conninfo, resolve_conninfo(config));
      return open_pg_store(conninfo, config);
    }
    case BackendKind::chromadb: return open_chroma(config, options);
    case BackendKind::dual: {
      VS_TRY_ASSIGN(std::string conninfo, resolve_conninfo(config));
      VS_TRY_ASSIGN(auto pg, open_pg_store(conninfo, config));
      OpenOptions chroma_options = options;
      chroma_options.create = true;
      const bool chroma_primary = config.primary == BackendKind::chromadb;
      auto opened = open_chroma(config, chroma_options);
      std::unique_ptr<VectorStore> chroma;
      if (opened) {
        chroma = std::move(*opened);
      } else if (!chroma_primary && opened.error().retryable()) {
        // The secondary is down: open anyway; its writes wait in the outbox until it is back.
        chroma = std::make_unique<LazyStore>(
            "chromadb", config.embedding_dim, [config, chroma_options] { return open_chroma(config, chroma_options); },
            opened.error());
      } else {
        return fail(opened.error());
      }
      api::DualOptions dual;
      const char* env = std::getenv("VSTORE_SHADOW_COMPARE");
      dual.shadow_compare = options.shadow_compare || (env != nullptr && std::strcmp(env, "1") == 0);
      VS_TRY_ASSIGN(auto store, api::DualStore::open(chroma_primary ? std::move(chroma) : std::move(pg),
                                                     chroma_primary ? std::move(pg) : std::move(chroma), conninfo,
                                                     config, dual));
      return std::unique_ptr<VectorStore>(std::move(store));
    }
  }
  return fail(ErrorCode::internal, "unknown VECTOR_BACKEND");
}

}  // namespace vstore
