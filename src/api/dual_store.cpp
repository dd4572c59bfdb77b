// SPDX-License-Identifier: Apache-2.0
// DualStore. Design: a transactional outbox.
// - A write goes to the primary together with one outbox row per article (`vstore_outbox`,
//   schema migration 4: op, uri and, for an upsert, a JSON payload with the article, its vector
//   and model). Writers never call the secondary and never wait for it.
//   * pgvector primary: the rows and their outbox rows commit in one PostgreSQL transaction
//     (PgVectorStore::upsert_with/remove_with). A remove enqueues only the uris that lost a
//     vector. A writer of a uri waits for the row lock of an earlier, uncommitted writer of the
//     same uri, so the outbox rows of one uri commit in id order.
//   * Chroma primary (no shared transaction is possible): one PostgreSQL transaction takes a
//     transaction-level advisory lock per uri (in key order, so writers cannot deadlock), inserts
//     the outbox rows, writes Chroma, and commits only once Chroma accepted the write (it rolls
//     back otherwise). Writers of one uri are serialised across processes, so Chroma sees them
//     in the outbox's id order. A crash between Chroma's answer and the commit loses that one
//     write for pgvector: the window two stores without a common transaction leave open.
// - Drain, one step = one PostgreSQL transaction: an advisory lock on (table, target) makes the
//   drainer the only one across processes (the background thread tries it and leaves when it is
//   taken; drain_outbox() waits for it). The step reads the oldest `drain_batch` committed rows
//   in id order, keeps the newest row per uri (the latest committed version wins), applies the
//   removes and then the upserts to the secondary (each uri once, so their order does not
//   matter), and deletes exactly the ids it read. A row committed meanwhile, even with a lower
//   id, is not among them and waits for the next step. When the secondary fails, the step
//   records attempts and last_error on its rows and commits; the rows stay. Applying is
//   idempotent, so a step that dies half-way is simply done again.
// - Background: a thread per store runs steps when a write wakes it and every `drain_interval`
//   (rows of other processes); after a failure it waits 1 s, doubling up to 30 s. A secondary
//   that could not be opened is reopened through SecondaryOpener at most once a second.
// - Shadow compare runs a search on the secondary too and records overlap@k in DualStats; a
//   failing secondary read is counted, never reported to the caller.
// Locking: m_secondary_mutex guards the secondary's opening, m_stats_mutex the counters,
// m_wake_mutex the drain thread's wake-up; no lock is held across a call to either store.
#include "api/dual_store.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>

#include "pg/pg_pool.hpp"
#include "pg/pg_store.hpp"
#include "vstore/article.hpp"

namespace vstore::api {
namespace {

using nlohmann::json;
using pg::Param;
using pg::PgResult;

constexpr std::chrono::milliseconds k_retry_pause{1000};
constexpr std::chrono::milliseconds k_max_retry_pause{30000};
// Advisory lock classes (first key of the two-key form): the drainer of a (table, target), and
// a writer of a uri when the primary is not pgvector.
constexpr int k_drain_lock_class = 0x76730001;
constexpr int k_uri_lock_class = 0x76730002;

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

// The item an upsert row's payload holds. Errors: corruption, naming the outbox row.
Result<ArticleVector> item_from_payload(const json& payload, std::string_view id) {
  auto bad = [&](std::string_view what) {
    return fail(ErrorCode::corruption, fmt::format("outbox row {}: {}", id, what));
  };
  if (!payload.is_object()) return bad("the payload is not a JSON object");
  auto article = payload.find("article");
  auto embedding = payload.find("embedding");
  if (article == payload.end() || embedding == payload.end() || !embedding->is_array()) {
    return bad("the payload has no article or no embedding array");
  }
  ArticleVector item;
  auto parsed = article_from_json(*article);
  if (!parsed) return bad(parsed.error().message());
  item.article = std::move(*parsed);
  item.embedding.reserve(embedding->size());
  for (const auto& x : *embedding) {
    if (!x.is_number()) return bad(fmt::format("the embedding holds a JSON {}, not a number", x.type_name()));
    const double d = x.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) {
      return bad(fmt::format("the embedding holds {}, outside the float32 range", d));
    }
    item.embedding.push_back(static_cast<float>(d));
  }
  if (auto model = payload.find("model"); model != payload.end()) {
    if (!model->is_string()) return bad(fmt::format("the model is a JSON {}, not a string", model->type_name()));
    item.embedding_model = model->get<std::string>();
  }
  return item;
}

// JSON text of `value`. Errors: invalid_argument for a string that is not valid UTF-8 (the
// only thing nlohmann's dump() throws for).
Result<std::string> json_text(const json& value, std::string_view what) {
  try {
    return value.dump();
  } catch (const json::exception& e) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} cannot go into the outbox: {}", what, e.what()));
  }
}

Result<std::int64_t> count_of(const PgResult& res) {
  const std::string_view text = res.get(0, 0);
  std::int64_t n = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return fail(ErrorCode::corruption, fmt::format("expected a row count from postgresql, not \"{}\"", text));
  }
  return n;
}

}  // namespace

DualStore::DualStore(std::unique_ptr<VectorStore> primary, std::unique_ptr<VectorStore> secondary,
                     std::string secondary_name, SecondaryOpener reopen, const std::string& conninfo,
                     const Config& config, DualOptions options)
    : m_primary(std::move(primary)),
      m_pg_primary(dynamic_cast<pg::PgVectorStore*>(m_primary.get())),
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

DualStore::~DualStore() {
  if (!m_drainer.joinable()) return;
  stop_background_drain();
  if (!m_last_drain_failed) (void)drain_all(false);
}

void DualStore::stop_background_drain() {
  if (!m_drainer.joinable()) return;
  {
    std::lock_guard lock(m_wake_mutex);
    m_stopping = true;
  }
  m_wake.notify_all();
  m_drainer.join();
  m_stopping = false;
}

Result<std::unique_ptr<DualStore>> DualStore::open(std::unique_ptr<VectorStore> primary,
                                                   std::unique_ptr<VectorStore> secondary, std::string secondary_name,
                                                   SecondaryOpener reopen, const std::string& conninfo,
                                                   const Config& config, DualOptions options) {
  std::unique_ptr<DualStore> store(new DualStore(std::move(primary), std::move(secondary), std::move(secondary_name),
                                                 std::move(reopen), conninfo, config, options));
  {
    VS_TRY_ASSIGN(pg::Lease lease, store->m_pool->acquire());
    VS_TRY_ASSIGN(PgResult exists, lease->exec("SELECT to_regclass('vstore_outbox') IS NOT NULL"));
    if (exists.get(0, 0) != "t") {
      return fail(ErrorCode::conflict,
                  "VECTOR_BACKEND=dual needs the outbox table vstore_outbox (schema version 4); run `vstore schema up`");
    }
  }
  if (options.background_drain) store->m_drainer = std::thread([raw = store.get()] { raw->drain_loop(); });
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

// ---- writes -----------------------------------------------------------------------------------

Result<void> DualStore::enqueue_upserts(pg::Connection& conn, std::span<const ArticleVector> items) {
  json rows = json::array();
  for (const auto& item : items) {
    json vec = json::array();
    for (float f : item.embedding) vec.push_back(f);
    rows.push_back({{"uri", item.article.uri},
                    {"payload", {{"article", article_to_json(item.article)}, {"embedding", std::move(vec)},
                                 {"model", item.embedding_model}}}});
  }
  VS_TRY_ASSIGN(const std::string text, json_text(rows, "an article"));
  Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(text)};
  VS_TRY(conn.exec_params("INSERT INTO vstore_outbox (table_name, target, op, uri, payload) "
                          "SELECT $1, $2, 'upsert', r->>'uri', r->'payload' "
                          "FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS t(r, n) ORDER BY n",
                          p));
  std::lock_guard lock(m_stats_mutex);
  m_stats.outbox_enqueued += static_cast<std::int64_t>(items.size());
  return {};
}

Result<void> DualStore::enqueue_removes(pg::Connection& conn, std::span<const std::string> ids) {
  if (ids.empty()) return {};
  VS_TRY_ASSIGN(const std::string text, json_text(json(std::vector<std::string>(ids.begin(), ids.end())), "a uri"));
  Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(text)};
  VS_TRY(conn.exec_params("INSERT INTO vstore_outbox (table_name, target, op, uri) "
                          "SELECT $1, $2, 'remove', u FROM jsonb_array_elements_text($3::jsonb) "
                          "WITH ORDINALITY AS t(u, n) ORDER BY n",
                          p));
  std::lock_guard lock(m_stats_mutex);
  m_stats.outbox_enqueued += static_cast<std::int64_t>(ids.size());
  return {};
}

Result<void> DualStore::write_beside_outbox(std::span<const std::string> uris,
                                            const std::function<Result<void>(pg::Connection&)>& enqueue,
                                            const std::function<Result<void>()>& write) {
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  pg::Connection& conn = *lease;
  VS_TRY(conn.exec("BEGIN"));
  bool written = false;
  auto body = [&]() -> Result<void> {
    VS_TRY_ASSIGN(const std::string arr, json_text(json(std::vector<std::string>(uris.begin(), uris.end())), "a uri"));
    const std::string lock_class = std::to_string(k_uri_lock_class);
    Param p[] = {Param::text(m_config.table), Param::text(arr), Param::text(lock_class)};
    // The lock calls run after the sort (a volatile target list is evaluated above the Sort).
    VS_TRY(conn.exec_params("SELECT pg_advisory_xact_lock($3::int, k) FROM (SELECT DISTINCT hashtext($1 || '/' || u) AS k "
                            "FROM jsonb_array_elements_text($2::jsonb) AS t(u)) s ORDER BY k",
                            p));
    VS_TRY(enqueue(conn));
    VS_TRY(write());
    written = true;
    VS_TRY(conn.exec("COMMIT"));
    return {};
  };
  auto done = body();
  if (done) return {};
  (void)conn.exec("ROLLBACK");
  if (!written) return done;
  return fail(ErrorCode::internal,
              fmt::format("written to {}, but its outbox rows for {} did not commit ({}); {} misses this write until "
                          "it is written again",
                          m_primary->backend_name(), m_target, done.error().message(), m_target));
}

Result<void> DualStore::upsert(std::span<const ArticleVector> items) {
  if (items.empty()) return {};
  auto enqueue = [&](pg::Connection& conn) { return enqueue_upserts(conn, items); };
  if (m_pg_primary != nullptr) {
    VS_TRY(m_pg_primary->upsert_with(items, enqueue));
  } else {
    std::vector<std::string> uris;
    uris.reserve(items.size());
    for (const auto& item : items) uris.push_back(item.article.uri);
    VS_TRY(write_beside_outbox(uris, enqueue, [&] { return m_primary->upsert(items); }));
  }
  wake_drain();
  return {};
}

Result<std::int64_t> DualStore::remove(std::span<const std::string> ids) {
  if (ids.empty()) return 0;
  std::int64_t removed = 0;
  if (m_pg_primary != nullptr) {
    VS_TRY_ASSIGN(removed, m_pg_primary->remove_with(ids, [&](pg::Connection& conn, std::span<const std::string> gone) {
      return enqueue_removes(conn, gone);
    }));
  } else {
    VS_TRY(write_beside_outbox(
        ids, [&](pg::Connection& conn) { return enqueue_removes(conn, ids); },
        [&]() -> Result<void> {
          VS_TRY_ASSIGN(removed, m_primary->remove(ids));
          return {};
        }));
  }
  wake_drain();
  return removed;
}

// ---- the drain --------------------------------------------------------------------------------

void DualStore::wake_drain() {
  if (!m_drainer.joinable()) return;
  {
    std::lock_guard lock(m_wake_mutex);
    m_woken = true;
  }
  m_wake.notify_one();
}

void DualStore::drain_loop() {
  auto pause = k_retry_pause;
  bool failed = false;
  std::unique_lock lock(m_wake_mutex);
  while (true) {
    if (failed) {
      // Writes do not wake a drain that has just failed: the secondary gets a rest first.
      m_wake.wait_for(lock, pause, [&] { return m_stopping.load(); });
      pause = std::min(pause * 2, k_max_retry_pause);
    } else {
      pause = k_retry_pause;
      m_wake.wait_for(lock, m_options.drain_interval, [&] { return m_stopping || m_woken; });
    }
    if (m_stopping) return;
    m_woken = false;
    lock.unlock();
    failed = !drain_all(false).has_value();
    lock.lock();
  }
}

Result<std::int64_t> DualStore::drain_outbox() { return drain_all(true); }

Result<std::int64_t> DualStore::drain_all(bool wait) {
  std::int64_t applied = 0;
  while (!m_stopping) {
    auto step = drain_step(wait);
    if (!step) {
      m_last_drain_failed = true;
      return fail(step.error());
    }
    if (step->error) {
      m_last_drain_failed = true;
      if (applied > 0) return applied;
      return fail(step->error->code(), fmt::format("outbox drain to {}: {}", m_target, step->error->message()));
    }
    m_last_drain_failed = false;
    if (step->applied == 0) break;  // empty, or another drainer is at work
    applied += step->applied;
  }
  return applied;
}

Result<DualStore::DrainStep> DualStore::drain_step(bool wait) {
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  pg::Connection& conn = *lease;
  VS_TRY(conn.exec("BEGIN"));
  auto step = drain_taken(conn, wait);
  if (!step) {
    (void)conn.exec("ROLLBACK");
    return step;
  }
  VS_TRY(conn.exec("COMMIT"));
  if (step->applied > 0) {
    std::lock_guard lock(m_stats_mutex);
    m_stats.outbox_drained += step->applied;
  }
  return step;
}

Result<DualStore::DrainStep> DualStore::drain_taken(pg::Connection& conn, bool wait) {
  DrainStep step;
  const std::string lock_class = std::to_string(k_drain_lock_class);
  Param k[] = {Param::text(m_config.table), Param::text(m_target), Param::text(lock_class)};
  if (wait) {
    VS_TRY(conn.exec_params("SELECT pg_advisory_xact_lock($3::int, hashtext($1 || '/' || $2))", k));
  } else {
    VS_TRY_ASSIGN(PgResult locked, conn.exec_params("SELECT pg_try_advisory_xact_lock($3::int, hashtext($1 || '/' || $2))", k));
    if (locked.get(0, 0) != "t") {
      step.busy = true;
      return step;
    }
  }
  const std::string limit = std::to_string(m_options.drain_batch);
  Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(limit)};
  VS_TRY_ASSIGN(PgResult rows, conn.exec_params("SELECT id, op, uri, payload FROM vstore_outbox WHERE table_name = $1 "
                                                "AND target = $2 ORDER BY id LIMIT $3::int",
                                                p));
  if (rows.rows() == 0) return step;
  if (m_test_on_drain_taken) m_test_on_drain_taken();

  // The newest row per uri (rows come in id order), then one remove and one upsert call.
  std::string ids = "{";
  std::unordered_map<std::string, int> newest;
  for (int r = 0; r < rows.rows(); ++r) {
    ids += (r == 0 ? "" : ",") + rows.text(r, 0);
    newest[rows.text(r, 2)] = r;
  }
  ids += "}";
  std::vector<int> kept;
  kept.reserve(newest.size());
  for (const auto& [uri, r] : newest) kept.push_back(r);
  std::sort(kept.begin(), kept.end());
  std::vector<std::string> removes;
  std::vector<ArticleVector> upserts;
  Result<void> done;
  for (int r : kept) {
    if (rows.get(r, 1) == "remove") {
      removes.push_back(rows.text(r, 2));
      continue;
    }
    const json payload = json::parse(rows.get(r, 3), nullptr, false);
    auto item = item_from_payload(payload, rows.get(r, 0));
    if (!item) {
      done = fail(item.error());
      break;
    }
    upserts.push_back(std::move(*item));
  }
  if (done && (!removes.empty() || !upserts.empty())) {
    auto target = secondary();
    if (!target) {
      done = fail(target.error());
    } else {
      if (!removes.empty()) {
        auto removed = (*target)->remove(removes);
        if (!removed) done = fail(removed.error());
      }
      if (done && !upserts.empty()) done = (*target)->upsert(upserts);
    }
  }
  if (!done) {
    Param e[] = {Param::text(ids), Param::text(done.error().message())};
    VS_TRY(conn.exec_params("UPDATE vstore_outbox SET attempts = attempts + 1, last_error = $2 WHERE id = ANY($1::bigint[])",
                            e));
    {
      std::lock_guard lock(m_stats_mutex);
      ++m_stats.secondary_write_failures;
      m_last_error = done.error().message();
    }
    step.error = done.error();
    return step;
  }
  Param d[] = {Param::text(ids)};
  VS_TRY(conn.exec_params("DELETE FROM vstore_outbox WHERE id = ANY($1::bigint[])", d));
  step.applied = rows.rows();
  return step;
}

Result<std::int64_t> DualStore::outbox_pending() {
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  Param p[] = {Param::text(m_config.table), Param::text(m_target)};
  VS_TRY_ASSIGN(PgResult res, lease->exec_params("SELECT count(*) FROM vstore_outbox WHERE table_name = $1 AND target = $2", p));
  return count_of(res);
}

// ---- reads ------------------------------------------------------------------------------------

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

Result<std::vector<SearchHit>> DualStore::similar(std::string_view uri, const SearchOptions& options) {
  return m_primary->similar(uri, options);
}

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
  std::vector<std::string> reasons;
  if (auto it = h.find("reasons"); it != h.end() && it->is_array()) {
    for (const auto& r : *it) {
      if (r.is_string()) reasons.push_back(r.get<std::string>());
    }
  }
  if (auto pending = outbox_pending(); pending) {
    h["outbox_pending"] = *pending;
  } else {
    h["outbox_pending"] = nullptr;
    reasons.push_back(pending.error().message());
  }
  const json& sec = h["secondary"];
  const bool secondary_healthy = sec.is_object() && sec.contains("healthy") && sec["healthy"].is_boolean() &&
                                 sec["healthy"].get<bool>();
  if (!secondary_healthy) reasons.push_back(fmt::format("secondary {} is not healthy", m_target));
  const DualStats s = stats();
  {
    std::lock_guard lock(m_stats_mutex);
    h["outbox_last_error"] = m_last_drain_failed && m_last_error ? json(*m_last_error) : json(nullptr);
  }
  h["shadow"] = {{"enabled", m_options.shadow_compare},
                 {"reads", s.shadow_reads},
                 {"failures", s.shadow_failures},
                 {"mean_overlap", s.shadow_reads == 0 ? json(nullptr) : json(s.shadow_overlap_sum / static_cast<double>(s.shadow_reads))}};
  h["reasons"] = reasons;
  h["healthy"] = reasons.empty();
  return h;
}

}  // namespace vstore::api
