// SPDX-License-Identifier: Apache-2.0
// DualStore. Design:
// - Order of a write: primary first (its failure is the caller's failure and nothing else
//   happens), then, under m_drain_mutex, the outbox is drained if it holds rows (so the
//   secondary sees writes in order), then the secondary write. If the secondary fails, or rows
//   are still waiting, the items are appended to the outbox and the write still succeeds.
// - The outbox (`vstore_outbox`, schema migration 4) holds one row per article: op, uri and a
//   JSON payload with the article, its vector and model. Rows are applied oldest first, runs of
//   the same op as one batch, and deleted in the same order once the secondary accepted them.
// - After a failed drain no drain is tried for one second, so a secondary that is down costs
//   one outbox insert per write, not a timed-out request. A secondary that could not be opened
//   at all is reopened through SecondaryOpener at most once a second; until then each of its
//   calls fails like a write to a server that is down.
// - Shadow compare runs a search on the secondary too and records overlap@k in DualStats;
//   a failing secondary read is counted, never reported to the caller.
#include "api/dual_store.hpp"

#include <charconv>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "pg/pg_pool.hpp"
#include "vstore/article.hpp"

namespace vstore::api {
namespace {

using nlohmann::json;
using pg::Param;
using pg::PgResult;

constexpr std::chrono::seconds k_retry_pause{1};

json article_to_json(const Article& a) {
  json j = a.extra.is_object() ? a.extra : json::object();
  j["uri"] = a.uri;
  auto put = [&](const char* key, const std::optional<std::string>& v) {
    if (v) j[key] = *v;
  };
  put("title", a.title);
  put("summary", a.summary);
  put("raw", a.raw);
  put("topic", a.topic);
  put("category", a.category);
  put("news_source", a.news_source);
  put("publication_date", a.publication_date);
  put("sentiment", a.sentiment);
  put("future_signal", a.future_signal);
  put("time_to_impact", a.time_to_impact);
  put("driver_type", a.driver_type);
  if (a.tags) j["tags"] = *a.tags;
  if (a.analyzed) j["analyzed"] = *a.analyzed;
  return j;
}

Result<ArticleVector> item_from_payload(const json& payload) {
  if (!payload.is_object() || !payload.contains("article") || !payload.contains("embedding") ||
      !payload["embedding"].is_array()) {
    return fail(ErrorCode::corruption, "an outbox row has no article or embedding");
  }
  ArticleVector item;
  VS_TRY_ASSIGN(item.article, article_from_json(payload["article"]));
  item.embedding.reserve(payload["embedding"].size());
  for (const auto& x : payload["embedding"]) item.embedding.push_back(x.get<float>());
  item.embedding_model = payload.value("model", std::string());
  return item;
}

}  // namespace

DualStore::DualStore(std::unique_ptr<VectorStore> primary, std::unique_ptr<VectorStore> secondary,
                     std::string secondary_name, SecondaryOpener reopen, const std::string& conninfo,
                     const Config& config, DualOptions options)
    : m_primary(std::move(primary)),
      m_secondary(std::move(secondary)),
      m_reopen(std::move(reopen)),
      m_config(config),
      m_options(options),
      m_pool(std::make_unique<pg::Pool>(conninfo, [&] {
        PoolConfig pool = config.pool;
        pool.size = std::min(pool.size, 4);
        return pool;
      }())),
      m_target(std::move(secondary_name)) {}

DualStore::~DualStore() = default;

Result<std::unique_ptr<DualStore>> DualStore::open(std::unique_ptr<VectorStore> primary,
                                                   std::unique_ptr<VectorStore> secondary, std::string secondary_name,
                                                   SecondaryOpener reopen, const std::string& conninfo,
                                                   const Config& config, DualOptions options) {
  std::unique_ptr<DualStore> store(new DualStore(std::move(primary), std::move(secondary), std::move(secondary_name),
                                                 std::move(reopen), conninfo, config, options));
  VS_TRY_ASSIGN(pg::Lease lease, store->m_pool->acquire());
  VS_TRY_ASSIGN(PgResult exists, lease->exec("SELECT to_regclass('vstore_outbox') IS NOT NULL"));
  if (exists.get(0, 0) != "t") {
    return fail(ErrorCode::conflict,
                "VECTOR_BACKEND=dual needs the outbox table vstore_outbox (schema version 4); run `vstore schema up`");
  }
  return store;
}

Result<VectorStore*> DualStore::secondary() {
  std::lock_guard lock(m_secondary_mutex);
  if (m_secondary) return m_secondary.get();
  const auto now = std::chrono::steady_clock::now();
  if (m_reopen && now >= m_next_open) {
    m_next_open = now + k_retry_pause;
    auto opened = m_reopen();
    if (opened) {
      m_secondary = std::move(*opened);
      return m_secondary.get();
    }
    m_open_error = opened.error();
  }
  if (m_open_error) return fail(*m_open_error);
  return fail(ErrorCode::unavailable, fmt::format("the secondary store {} is not open", m_target));
}

DualStats DualStore::stats() const {
  std::lock_guard lock(m_stats_mutex);
  return m_stats;
}

Result<void> DualStore::enqueue_upserts(std::span<const ArticleVector> items, const std::string& reason) {
  json rows = json::array();
  for (const auto& item : items) {
    json vec = json::array();
    for (float f : item.embedding) vec.push_back(f);
    rows.push_back({{"uri", item.article.uri},
                    {"payload", {{"article", article_to_json(item.article)}, {"embedding", std::move(vec)},
                                 {"model", item.embedding_model}}}});
  }
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  const std::string text = rows.dump();
  Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(text), Param::text(reason)};
  VS_TRY(lease->exec_params("INSERT INTO vstore_outbox (table_name, target, op, uri, payload, last_error) "
                            "SELECT $1, $2, 'upsert', r->>'uri', r->'payload', $4 "
                            "FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n",
                            p));
  m_outbox_empty = false;
  std::lock_guard lock(m_stats_mutex);
  m_stats.outbox_enqueued += static_cast<std::int64_t>(items.size());
  return {};
}

Result<void> DualStore::enqueue_removes(std::span<const std::string> ids, const std::string& reason) {
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  const std::string text = json(std::vector<std::string>(ids.begin(), ids.end())).dump();
  Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(text), Param::text(reason)};
  VS_TRY(lease->exec_params("INSERT INTO vstore_outbox (table_name, target, op, uri, last_error) "
                            "SELECT $1, $2, 'remove', u, $4 FROM jsonb_array_elements_text($3::jsonb) "
                            "WITH ORDINALITY AS t(u, n) ORDER BY n",
                            p));
  m_outbox_empty = false;
  std::lock_guard lock(m_stats_mutex);
  m_stats.outbox_enqueued += static_cast<std::int64_t>(ids.size());
  return {};
}

Result<std::int64_t> DualStore::outbox_pending() {
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  Param p[] = {Param::text(m_config.table), Param::text(m_target)};
  VS_TRY_ASSIGN(PgResult res, lease->exec_params("SELECT count(*) FROM vstore_outbox WHERE table_name = $1 AND target = $2", p));
  std::int64_t pending = 0;
  const std::string_view text = res.get(0, 0);
  std::from_chars(text.data(), text.data() + text.size(), pending);
  return pending;
}

Result<std::int64_t> DualStore::drain_outbox() {
  std::lock_guard lock(m_drain_mutex);
  m_retry_at = {};
  return drain_locked();
}

Result<std::int64_t> DualStore::drain_locked() {
  std::int64_t applied = 0;
  while (true) {
    VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
    const std::string limit = std::to_string(m_options.drain_batch);
    Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(limit)};
    VS_TRY_ASSIGN(PgResult rows, lease->exec_params("SELECT id, op, uri, payload FROM vstore_outbox WHERE table_name = $1 "
                                                    "AND target = $2 ORDER BY id LIMIT $3::int",
                                                    p));
    if (rows.rows() == 0) {
      m_outbox_empty = true;
      return applied;
    }
    // The first run of rows with the same op, as one batch (the last write of a uri wins).
    const std::string op = rows.text(0, 1);
    int end = 0;
    while (end < rows.rows() && rows.text(end, 1) == op) ++end;
    const std::string first_id = rows.text(0, 0);
    const std::string last_id = rows.text(end - 1, 0);
    Result<void> done;
    if (op == "upsert") {
      std::vector<ArticleVector> items;
      std::unordered_map<std::string, std::size_t> index;
      for (int r = 0; r < end; ++r) {
        json payload = json::parse(rows.get(r, 3), nullptr, false);
        VS_TRY_ASSIGN(ArticleVector item, item_from_payload(payload));
        if (auto it = index.find(item.article.uri); it != index.end()) {
          items[it->second] = std::move(item);
        } else {
          index.emplace(item.article.uri, items.size());
          items.push_back(std::move(item));
        }
      }
      auto target = secondary();
      done = target ? (*target)->upsert(items) : Result<void>(fail(target.error()));
    } else {
      std::vector<std::string> ids;
      for (int r = 0; r < end; ++r) ids.push_back(rows.text(r, 2));
      auto target = secondary();
      auto removed = target ? (*target)->remove(ids) : Result<std::int64_t>(fail(target.error()));
      if (!removed) done = fail(removed.error());
    }
    if (!done) {
      Param e[] = {Param::text(m_config.table), Param::text(m_target), Param::text(first_id), Param::text(last_id),
                   Param::text(done.error().message())};
      (void)lease->exec_params("UPDATE vstore_outbox SET attempts = attempts + 1, last_error = $5 WHERE table_name = $1 "
                               "AND target = $2 AND id BETWEEN $3::bigint AND $4::bigint",
                               e);
      m_retry_at = std::chrono::steady_clock::now() + k_retry_pause;
      if (applied > 0) return applied;
      return fail(done.error().code(), fmt::format("outbox drain to {}: {}", m_target, done.error().message()));
    }
    Param d[] = {Param::text(m_config.table), Param::text(m_target), Param::text(first_id), Param::text(last_id)};
    VS_TRY(lease->exec_params("DELETE FROM vstore_outbox WHERE table_name = $1 AND target = $2 "
                              "AND id BETWEEN $3::bigint AND $4::bigint",
                              d));
    applied += end;
    std::lock_guard lock(m_stats_mutex);
    m_stats.outbox_drained += end;
  }
}

Result<void> DualStore::upsert(std::span<const ArticleVector> items) {
  VS_TRY(m_primary->upsert(items));
  std::lock_guard lock(m_drain_mutex);
  auto to_outbox = [&](const std::string& reason) -> Result<void> {
    {
      std::lock_guard stats_lock(m_stats_mutex);
      ++m_stats.secondary_write_failures;
    }
    auto queued = enqueue_upserts(items, reason);
    if (!queued) {
      return fail(ErrorCode::internal,
                  fmt::format("written to {} but not to {} ({}), and the outbox failed too: {}", m_primary->backend_name(),
                              m_target, reason, queued.error().message()));
    }
    return {};
  };
  if (!m_outbox_empty) {
    if (std::chrono::steady_clock::now() < m_retry_at) return to_outbox("waiting behind earlier outbox rows");
    auto drained = drain_locked();
    if (!drained || !m_outbox_empty) {
      return to_outbox(drained ? "waiting behind earlier outbox rows" : drained.error().message());
    }
  }
  auto target = secondary();
  auto written = target ? (*target)->upsert(items) : Result<void>(fail(target.error()));
  if (!written) {
    m_retry_at = std::chrono::steady_clock::now() + k_retry_pause;
    return to_outbox(written.error().message());
  }
  return {};
}

Result<std::int64_t> DualStore::remove(std::span<const std::string> ids) {
  VS_TRY_ASSIGN(std::int64_t removed, m_primary->remove(ids));
  std::lock_guard lock(m_drain_mutex);
  auto to_outbox = [&](const std::string& reason) -> Result<std::int64_t> {
    auto queued = enqueue_removes(ids, reason);
    if (!queued) {
      return fail(ErrorCode::internal, fmt::format("removed from {} but not from {} ({}), and the outbox failed too: {}",
                                                   m_primary->backend_name(), m_target, reason, queued.error().message()));
    }
    return removed;
  };
  if (!m_outbox_empty) {
    auto drained = drain_locked();
    if (!drained || !m_outbox_empty) return to_outbox(drained ? "waiting behind earlier outbox rows" : drained.error().message());
  }
  auto target = secondary();
  auto done = target ? (*target)->remove(ids) : Result<std::int64_t>(fail(target.error()));
  if (!done) return to_outbox(done.error().message());
  return removed;
}

Result<std::vector<SearchHit>> DualStore::search(std::span<const float> query, const SearchOptions& options) {
  VS_TRY_ASSIGN(auto hits, m_primary->search(query, options));
  if (m_options.shadow_compare) {
    auto target = secondary();
    auto shadow = target ? (*target)->search(query, options) : Result<std::vector<SearchHit>>(fail(target.error()));
    std::lock_guard lock(m_stats_mutex);
    if (!shadow) {
      ++m_stats.shadow_failures;
    } else {
      std::unordered_set<std::string> ids;
      for (const auto& h : hits) ids.insert(h.id);
      std::size_t common = 0;
      for (const auto& h : *shadow) common += ids.count(h.id);
      const std::size_t denom = std::max(hits.size(), shadow->size());
      ++m_stats.shadow_reads;
      m_stats.shadow_overlap_sum += denom == 0 ? 1.0 : static_cast<double>(common) / static_cast<double>(denom);
    }
  }
  return hits;
}

Result<std::vector<SearchHit>> DualStore::similar(std::string_view uri, int top_k) { return m_primary->similar(uri, top_k); }

Result<VectorBatch> DualStore::get_vectors(std::optional<std::int64_t> limit, const std::optional<FilterNode>& where) {
  return m_primary->get_vectors(limit, where);
}

Result<StoreCounts> DualStore::count() { return m_primary->count(); }

Result<json> DualStore::health() {
  VS_TRY_ASSIGN(json h, m_primary->health());
  h["backend"] = "dual";
  h["primary"] = m_primary->backend_name();
  auto target = secondary();
  auto report = target ? (*target)->health() : Result<json>(fail(target.error()));
  h["secondary"] = report ? *report : json{{"healthy", false}, {"reasons", {report.error().message()}}};
  std::vector<std::string> reasons = h.value("reasons", std::vector<std::string>{});
  if (auto pending = outbox_pending(); pending) {
    h["outbox_pending"] = *pending;
  } else {
    h["outbox_pending"] = nullptr;
    reasons.push_back(pending.error().message());
  }
  if (!h["secondary"].value("healthy", false)) reasons.push_back(fmt::format("secondary {} is not healthy", m_target));
  const DualStats s = stats();
  h["shadow"] = {{"enabled", m_options.shadow_compare},
                 {"reads", s.shadow_reads},
                 {"failures", s.shadow_failures},
                 {"mean_overlap", s.shadow_reads == 0 ? json(nullptr) : json(s.shadow_overlap_sum / static_cast<double>(s.shadow_reads))}};
  h["reasons"] = reasons;
  h["healthy"] = reasons.empty();
  return h;
}

}  // namespace vstore::api
