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
// - Shadow compare runs a search on the secondary too and adds its outcome (overlap@k, or a
//   failure) to the row of (table, target) in vstore_dual_stats (migration 6) with one atomic
//   upsert, so every process's comparisons add up and health() reports them; a failing
//   secondary read is counted, never reported to the caller. A failed drain records its error
//   there too.
// - A Chroma primary's filtered search can come back with fewer than top_k hits while more
//   articles match (its HNSW walk stops short under a selective filter). Then the matching
//   articles (up to k_exact_fallback_max) are ranked exactly, as pgvector falls back to an exact
//   plan, and last_search_note() says so.
// - sync(): compares the primary's ids with a vector against the secondary page by page (ids,
//   vectors, the metadata keys vstore writes) and queues the differences in the outbox, so a
//   copy follows the same ordering as every write: the primary's rows are read under the locks
//   writers take (pgvector: FOR SHARE on the rows; Chroma: the per-uri advisory locks), and a
//   later write of a uri always gets a later outbox id. Ids only the secondary has are looked
//   for only when the secondary holds more vectors than the pages matched.
// - health() reads and never writes: the secondary is opened as the store was (a read-only
//   command does not create a Chroma collection), and its counts are compared with the primary's.
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

#include "core/cosine.hpp"
#include "pg/pg_pool.hpp"
#include "pg/pg_store.hpp"
#include "vstore/article.hpp"
#include "vstore/schema.hpp"

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
// A Chroma primary's short filtered search is ranked exactly over at most this many matches.
constexpr std::int64_t k_exact_fallback_max = 5000;
// The metadata keys every backend writes for an article (build_metadata()); sync compares these.
constexpr const char* k_contract_keys[] = {"uri",       "title",     "summary",   "topic",
                                           "category",  "news_source", "publication_date", "publication_date_ts",
                                           "tags",      "sentiment", "future_signal", "time_to_impact",
                                           "driver_type"};
constexpr const char* k_utc_time = "YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"";

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

// `{"uri": {"$in": uris}}`.
FilterNode uri_filter(std::span<const std::string> uris) {
  FilterComparison in;
  in.key = "uri";
  in.op = FilterOp::in;
  for (const auto& u : uris) in.values.emplace_back(u);
  return FilterNode{std::move(in)};
}

// The article a stored row's metadata describes (the keys build_metadata() derives are dropped).
Result<Article> article_of(const json& metadata) {
  VS_TRY_ASSIGN(Article a, article_from_json(metadata));
  a.extra.erase("publication_date_ts");
  return a;
}

bool same_vector(std::span<const float> a, std::span<const float> b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::fabs(a[i] - b[i]) > 1e-6f * std::max(1.0f, std::fabs(a[i]))) return false;
  }
  return true;
}

// Whether `stored` holds what build_metadata() makes of `primary`'s metadata, on the keys every
// backend writes (a backend may add its own keys beside them).
bool same_metadata(const json& primary, const json& stored) {
  auto article = article_of(primary);
  if (!article) return false;
  const json expected = build_metadata(*article);
  for (const char* key : k_contract_keys) {
    const json want = expected.contains(key) ? expected[key] : json(nullptr);
    const json have = stored.is_object() && stored.contains(key) ? stored[key] : json(nullptr);
    if (want != have) return false;
  }
  return true;
}

}  // namespace

json health_skeleton(std::string_view backend) {
  return {{"healthy", false},
          {"reasons", json::array()},
          {"backend", std::string(backend)},
          {"server_version", nullptr},
          {"extension_version", nullptr},
          {"dimension", nullptr},
          {"embedding_model", nullptr},
          {"rows", nullptr},
          {"with_embedding", nullptr},
          {"coverage_pct", nullptr},
          {"index",
           {{"type", nullptr},
            {"name", nullptr},
            {"valid", nullptr},
            {"params", nullptr},
            {"size_bytes", nullptr},
            {"shared_buffers_bytes", nullptr},
            {"host_ram_bytes", nullptr}}},
          {"pool", nullptr},
          {"latency_ms", nullptr},
          {"last_validation", nullptr}};
}

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
    VS_TRY_ASSIGN(PgResult exists, lease->exec("SELECT to_regclass('vstore_outbox') IS NOT NULL, "
                                               "EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = "
                                               "to_regclass('vstore_dual_stats') AND attname = 'last_write_at' "
                                               "AND NOT attisdropped)"));
    if (exists.get(0, 0) != "t" || exists.get(0, 1) != "t") {
      return fail(ErrorCode::conflict,
                  fmt::format("VECTOR_BACKEND=dual needs the outbox table vstore_outbox and "
                              "vstore_dual_stats.last_write_at (schema version {}); run `vstore schema up`",
                              k_latest_schema_version));
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

std::optional<ShadowOutcome> DualStore::last_shadow() const {
  std::lock_guard lock(m_stats_mutex);
  return m_last_shadow;
}

std::string DualStore::last_search_note() const {
  std::lock_guard lock(m_stats_mutex);
  return m_last_search_note;
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
    Param s[] = {Param::text(m_config.table), Param::text(m_target), Param::text(done.error().message())};
    VS_TRY(conn.exec_params("INSERT INTO vstore_dual_stats (table_name, target, last_error, last_error_at) "
                            "VALUES ($1, $2, $3, now()) ON CONFLICT (table_name, target) DO UPDATE "
                            "SET last_error = EXCLUDED.last_error, last_error_at = EXCLUDED.last_error_at",
                            s));
    {
      std::lock_guard lock(m_stats_mutex);
      ++m_stats.secondary_write_failures;
      m_last_error = done.error().message();
    }
    step.error = done.error();
    return step;
  }
  // The applied rows go, and the newest write the secondary now has is kept: `cleanup-chroma`
  // compares it with the last validation.
  Param d[] = {Param::text(m_config.table), Param::text(m_target), Param::text(ids)};
  VS_TRY(conn.exec_params("WITH gone AS (DELETE FROM vstore_outbox WHERE id = ANY($3::bigint[]) RETURNING enqueued_at) "
                          "INSERT INTO vstore_dual_stats (table_name, target, last_write_at) "
                          "SELECT $1, $2, max(enqueued_at) FROM gone "
                          "ON CONFLICT (table_name, target) DO UPDATE SET last_write_at = "
                          "GREATEST(vstore_dual_stats.last_write_at, EXCLUDED.last_write_at)",
                          d));
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
  if (m_test_hits_cap && hits.size() > *m_test_hits_cap) hits.resize(*m_test_hits_cap);
  std::string note;
  if (m_pg_primary == nullptr && options.where && static_cast<int>(hits.size()) < options.top_k) {
    // Fewer hits than asked: either fewer articles match, or the primary's walk stopped short.
    auto matching = m_primary->get_vectors(k_exact_fallback_max + 1, options.where);
    if (matching && matching->ids.size() > hits.size()) {
      const auto found = hits.size();
      if (static_cast<std::int64_t>(matching->ids.size()) > k_exact_fallback_max) {
        note = fmt::format("{} answered the filtered search with {} of {} hits although more than {} articles match "
                           "the filter; a narrower filter ranks them all",
                           m_primary->backend_name(), found, options.top_k, k_exact_fallback_max);
      } else {
        std::vector<SearchHit> exact;
        exact.reserve(matching->ids.size());
        for (std::size_t i = 0; i < matching->ids.size(); ++i) {
          SearchHit hit;
          hit.id = matching->ids[i];
          hit.score = cosine_distance(query, std::span<const float>(matching->data).subspan(i * matching->dim, matching->dim));
          hit.raw_score = hit.score;
          hit.metadata = matching->metadatas[i];
          exact.push_back(std::move(hit));
        }
        std::sort(exact.begin(), exact.end(), [](const SearchHit& a, const SearchHit& b) {
          return a.score != b.score ? a.score < b.score : a.id < b.id;
        });
        if (static_cast<int>(exact.size()) > options.top_k) exact.resize(static_cast<std::size_t>(options.top_k));
        hits = std::move(exact);
        note = fmt::format("{} answered the filtered search with {} of {} hits although {} articles match the filter; "
                           "ranked the matching articles exactly instead",
                           m_primary->backend_name(), found, options.top_k, matching->ids.size());
      }
    }
  }
  {
    std::lock_guard lock(m_stats_mutex);
    m_last_search_note = note;
  }
  if (m_options.shadow_compare) {
    auto target = secondary();
    auto shadow = target ? (*target)->search(query, options) : Result<std::vector<SearchHit>>(fail(target.error()));
    ShadowOutcome outcome;
    outcome.primary_hits = hits.size();
    if (!shadow) {
      outcome.failed = true;
      outcome.error = shadow.error().message();
    } else {
      std::unordered_set<std::string> ids;
      for (const auto& h : hits) ids.insert(h.id);
      for (const auto& h : *shadow) outcome.common += ids.count(h.id);
      outcome.secondary_hits = shadow->size();
      const std::size_t denom = std::max(hits.size(), shadow->size());
      outcome.overlap = denom == 0 ? 1.0 : static_cast<double>(outcome.common) / static_cast<double>(denom);
    }
    {
      std::lock_guard lock(m_stats_mutex);
      if (outcome.failed) {
        ++m_stats.shadow_failures;
      } else {
        ++m_stats.shadow_reads;
        m_stats.shadow_overlap_sum += outcome.overlap;
      }
      m_last_shadow = outcome;
    }
    record_shadow(outcome);
  }
  return hits;
}

void DualStore::record_shadow(const ShadowOutcome& outcome) {
  const std::string reads = outcome.failed ? "0" : "1";
  const std::string failures = outcome.failed ? "1" : "0";
  const std::string overlap = outcome.failed ? "0" : fmt::format("{:.17g}", outcome.overlap);
  auto recorded = [&]() -> Result<void> {
    VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
    Param p[] = {Param::text(m_config.table), Param::text(m_target), Param::text(reads), Param::text(failures),
                 Param::text(overlap)};
    VS_TRY(lease->exec_params(
        "INSERT INTO vstore_dual_stats AS s (table_name, target, shadow_reads, shadow_failures, shadow_overlap_sum, "
        "shadow_first_at, shadow_last_at) VALUES ($1, $2, $3::bigint, $4::bigint, $5::float8, now(), now()) "
        "ON CONFLICT (table_name, target) DO UPDATE SET shadow_reads = s.shadow_reads + EXCLUDED.shadow_reads, "
        "shadow_failures = s.shadow_failures + EXCLUDED.shadow_failures, "
        "shadow_overlap_sum = s.shadow_overlap_sum + EXCLUDED.shadow_overlap_sum, "
        "shadow_first_at = COALESCE(s.shadow_first_at, EXCLUDED.shadow_first_at), shadow_last_at = EXCLUDED.shadow_last_at",
        p));
    return {};
  }();
  if (!recorded) {
    std::lock_guard lock(m_stats_mutex);
    ++m_stats.shadow_unrecorded;
  }
}

Result<std::vector<SearchHit>> DualStore::similar(std::string_view uri, const SearchOptions& options) {
  return m_primary->similar(uri, options);
}

Result<VectorBatch> DualStore::get_vectors(std::optional<std::int64_t> limit, const std::optional<FilterNode>& where) {
  return m_primary->get_vectors(limit, where);
}

Result<StoreCounts> DualStore::count() { return m_primary->count(); }

Result<json> DualStore::gauges() {
  VS_TRY_ASSIGN(json g, m_primary->gauges());
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  Param p[] = {Param::text(m_config.table), Param::text(m_target)};
  VS_TRY_ASSIGN(PgResult ob, lease->exec_params("SELECT count(*), coalesce(EXTRACT(EPOCH FROM now() - min(enqueued_at)), 0)::text "
                                                "FROM vstore_outbox WHERE table_name = $1 AND target = $2",
                                                p));
  VS_TRY_ASSIGN(const std::int64_t pending, count_of(ob));
  g["outbox_pending"] = pending;
  g["outbox_oldest_age_s"] = std::stod(ob.text(0, 1));
  return g;
}

Result<json> DualStore::health() {
  VS_TRY_ASSIGN(json h, m_primary->health());
  const json skeleton = health_skeleton("dual");
  for (const auto& [key, value] : skeleton.items()) {
    if (!h.contains(key)) h[key] = value;
  }
  h["backend"] = "dual";
  h["primary"] = m_primary->backend_name();
  std::vector<std::string> reasons;
  if (auto it = h.find("reasons"); it != h.end() && it->is_array()) {
    for (const auto& r : *it) {
      if (r.is_string()) reasons.push_back(r.get<std::string>());
    }
  }

  // The secondary, opened as the store was: a missing collection is reported, not created.
  json sec = health_skeleton(m_target);
  auto target = secondary();
  if (target) {
    auto report = (*target)->health();
    if (report) {
      for (const auto& [key, value] : report->items()) sec[key] = value;
    } else {
      sec["reasons"] = json::array({report.error().message()});
    }
  } else {
    sec["reasons"] = json::array({target.error().message()});
    if (target.error().code() == ErrorCode::not_found) {
      // The collection does not exist, so it holds nothing.
      sec["rows"] = 0;
      sec["with_embedding"] = 0;
    }
  }
  const bool secondary_healthy = sec["healthy"].is_boolean() && sec["healthy"].get<bool>();
  if (!secondary_healthy) {
    std::string why;
    for (const auto& r : sec["reasons"]) {
      if (r.is_string()) why += (why.empty() ? "" : "; ") + r.get<std::string>();
    }
    reasons.push_back(fmt::format("secondary {}: {}", m_target, why.empty() ? "not healthy" : why));
  }
  h["secondary"] = sec;

  // The outbox: depth, age of the oldest row, the newest error recorded on a waiting row.
  json outbox = {{"pending", nullptr}, {"oldest_age_s", nullptr}, {"last_error", nullptr}};
  json last_error = nullptr;
  json shadow = {{"enabled", m_options.shadow_compare}, {"reads", 0}, {"failures", 0}, {"mean_overlap", nullptr},
                 {"first_at", nullptr}, {"last_at", nullptr}};
  auto read_pg = [&]() -> Result<void> {
    VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
    Param p[] = {Param::text(m_config.table), Param::text(m_target)};
    VS_TRY_ASSIGN(PgResult ob, lease->exec_params(
                                   "SELECT count(*), round(EXTRACT(EPOCH FROM now() - min(enqueued_at))::numeric, 1)::text, "
                                   "(SELECT last_error FROM vstore_outbox WHERE table_name = $1 AND target = $2 AND "
                                   "last_error IS NOT NULL ORDER BY id DESC LIMIT 1) "
                                   "FROM vstore_outbox WHERE table_name = $1 AND target = $2",
                                   p));
    VS_TRY_ASSIGN(const std::int64_t pending, count_of(ob));
    outbox["pending"] = pending;
    if (!ob.is_null(0, 1)) outbox["oldest_age_s"] = std::stod(ob.text(0, 1));
    if (!ob.is_null(0, 2)) outbox["last_error"] = ob.text(0, 2);
    const std::string fmt_time = k_utc_time;
    Param q[] = {Param::text(m_config.table), Param::text(m_target), Param::text(fmt_time)};
    VS_TRY_ASSIGN(PgResult st, lease->exec_params(
                                   "SELECT shadow_reads, shadow_failures, shadow_overlap_sum, "
                                   "to_char(shadow_first_at AT TIME ZONE 'UTC', $3), to_char(shadow_last_at AT TIME ZONE 'UTC', $3), "
                                   "last_error, to_char(last_error_at AT TIME ZONE 'UTC', $3) "
                                   "FROM vstore_dual_stats WHERE table_name = $1 AND target = $2",
                                   q));
    if (st.rows() == 1) {
      const std::int64_t reads = std::stoll(st.text(0, 0));
      shadow["reads"] = reads;
      shadow["failures"] = std::stoll(st.text(0, 1));
      if (reads > 0) shadow["mean_overlap"] = std::stod(st.text(0, 2)) / static_cast<double>(reads);
      if (!st.is_null(0, 3)) shadow["first_at"] = st.text(0, 3);
      if (!st.is_null(0, 4)) shadow["last_at"] = st.text(0, 4);
      if (!st.is_null(0, 5)) last_error = {{"message", st.text(0, 5)}, {"at", st.is_null(0, 6) ? json(nullptr) : json(st.text(0, 6))}};
    }
    return {};
  };
  if (auto done = read_pg(); !done) reasons.push_back(done.error().message());
  {
    // This process's view is fresher than the rows when its last drain failed.
    std::lock_guard lock(m_stats_mutex);
    if (m_last_drain_failed && m_last_error) outbox["last_error"] = *m_last_error;
  }
  h["outbox"] = outbox;
  h["outbox_pending"] = outbox["pending"];
  h["outbox_last_error"] = outbox["last_error"];
  h["secondary_last_error"] = last_error;
  h["shadow"] = shadow;

  // Drift: both stores' vector counts. Rows waiting in the outbox explain a difference; without
  // them nothing will close it but `vstore sync`.
  json drift = {{"primary", m_primary->backend_name()}, {"primary_vectors", h["with_embedding"]},
                {"secondary", m_target}, {"secondary_vectors", sec["with_embedding"]}, {"difference", nullptr}};
  if (h["with_embedding"].is_number_integer() && sec["with_embedding"].is_number_integer()) {
    const std::int64_t diff = h["with_embedding"].get<std::int64_t>() - sec["with_embedding"].get<std::int64_t>();
    drift["difference"] = diff;
    if (diff != 0 && outbox["pending"] == 0) {
      reasons.push_back(fmt::format("{} holds {} vectors and {} {}, with nothing waiting in the outbox; `vstore sync` "
                                    "copies what is missing",
                                    m_target, sec["with_embedding"].get<std::int64_t>(), m_primary->backend_name(),
                                    h["with_embedding"].get<std::int64_t>()));
    }
  }
  h["drift"] = drift;
  h["reasons"] = reasons;
  h["healthy"] = reasons.empty();
  return h;
}

// ---- sync -------------------------------------------------------------------------------------

Result<std::vector<std::string>> DualStore::primary_ids() {
  std::vector<std::string> ids;
  if (m_pg_primary != nullptr) {
    VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
    VS_TRY_ASSIGN(PgResult res, lease->exec(fmt::format("SELECT uri FROM {} WHERE embedding IS NOT NULL ORDER BY uri",
                                                        pg::Connection::quote_ident(m_config.table))));
    ids.reserve(static_cast<std::size_t>(res.rows()));
    for (int r = 0; r < res.rows(); ++r) ids.push_back(res.text(r, 0));
    return ids;
  }
  VS_TRY_ASSIGN(VectorBatch all, m_primary->get_vectors(std::nullopt, std::nullopt));
  ids = std::move(all.ids);
  std::sort(ids.begin(), ids.end());
  return ids;
}

Result<void> DualStore::compare_stores(std::size_t page, bool allow_missing, SyncReport& report,
                                       std::vector<std::string>* to_copy, std::vector<std::string>* to_remove) {
  VectorStore* target = nullptr;
  if (auto opened = secondary(); opened) {
    target = *opened;
  } else if (!allow_missing || opened.error().code() != ErrorCode::not_found) {
    return fail(opened.error());
  }
  // A dry run opened nothing it would have to create: a missing collection holds no ids.
  VS_TRY_ASSIGN(std::vector<std::string> ids, primary_ids());
  report.checked = static_cast<std::int64_t>(ids.size());
  std::int64_t matched = 0;  // primary ids the secondary holds
  for (std::size_t first = 0; first < ids.size(); first += page) {
    const std::span<const std::string> chunk(ids.data() + first, std::min(page, ids.size() - first));
    const std::optional<FilterNode> where = uri_filter(chunk);
    VS_TRY_ASSIGN(VectorBatch mine, m_primary->get_vectors(std::nullopt, where));
    VectorBatch theirs;
    if (target != nullptr) {
      VS_TRY_ASSIGN(theirs, target->get_vectors(std::nullopt, where));
    }
    std::unordered_map<std::string, std::size_t> at;
    for (std::size_t i = 0; i < theirs.ids.size(); ++i) at[theirs.ids[i]] = i;
    for (std::size_t i = 0; i < mine.ids.size(); ++i) {
      auto it = at.find(mine.ids[i]);
      bool copy = false;
      if (it == at.end()) {
        ++report.missing;
        copy = true;
      } else {
        ++matched;
        const std::size_t j = it->second;
        const auto a = std::span<const float>(mine.data).subspan(i * mine.dim, mine.dim);
        const auto b = std::span<const float>(theirs.data).subspan(j * theirs.dim, theirs.dim);
        if (same_vector(a, b) && same_metadata(mine.metadatas[i], theirs.metadatas[j])) {
          ++report.already_equal;
        } else {
          ++report.changed;
          copy = true;
        }
      }
      if (copy && to_copy != nullptr) to_copy->push_back(mine.ids[i]);
    }
  }
  if (target == nullptr) return {};
  VS_TRY_ASSIGN(StoreCounts theirs, target->count());
  if (theirs.with_embedding > matched) {
    // Only now is the secondary listed whole: it holds ids the primary lacks.
    VS_TRY_ASSIGN(VectorBatch all, target->get_vectors(std::nullopt, std::nullopt));
    for (const auto& id : all.ids) {
      if (std::binary_search(ids.begin(), ids.end(), id)) continue;
      ++report.extra;
      if (to_remove != nullptr) to_remove->push_back(id);
    }
  }
  return {};
}

Result<std::vector<std::string>> DualStore::lock_present(pg::Connection& conn, std::span<const std::string> uris) {
  VS_TRY_ASSIGN(const std::string arr, json_text(json(std::vector<std::string>(uris.begin(), uris.end())), "a uri"));
  std::vector<std::string> present;
  if (m_pg_primary != nullptr) {
    // The row locks a writer of these uris takes: a write in flight finishes first, and a later
    // one waits until the outbox rows of this transaction are committed.
    Param p[] = {Param::text(arr)};
    VS_TRY_ASSIGN(PgResult res,
                  conn.exec_params(fmt::format("SELECT uri FROM {} WHERE uri IN (SELECT jsonb_array_elements_text($1::jsonb)) "
                                               "AND embedding IS NOT NULL ORDER BY uri FOR SHARE",
                                               pg::Connection::quote_ident(m_config.table)),
                                   p));
    for (int r = 0; r < res.rows(); ++r) present.push_back(res.text(r, 0));
    return present;
  }
  const std::string lock_class = std::to_string(k_uri_lock_class);
  Param p[] = {Param::text(m_config.table), Param::text(arr), Param::text(lock_class)};
  VS_TRY(conn.exec_params("SELECT pg_advisory_xact_lock($3::int, k) FROM (SELECT DISTINCT hashtext($1 || '/' || u) AS k "
                          "FROM jsonb_array_elements_text($2::jsonb) AS t(u)) s ORDER BY k",
                          p));
  VS_TRY_ASSIGN(auto models, m_primary->vector_models(uris));
  for (const auto& [uri, model] : models) present.push_back(uri);
  return present;
}

Result<std::int64_t> DualStore::enqueue_current(std::span<const std::string> uris) {
  VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
  pg::Connection& conn = *lease;
  VS_TRY(conn.exec("BEGIN"));
  auto body = [&]() -> Result<std::int64_t> {
    VS_TRY_ASSIGN(std::vector<std::string> present, lock_present(conn, uris));
    if (present.empty()) return 0;
    VS_TRY_ASSIGN(VectorBatch rows, m_primary->get_vectors(std::nullopt, uri_filter(present)));
    VS_TRY_ASSIGN(auto models, m_primary->vector_models(present));
    // The document text is not in the metadata; a pgvector primary has it in its raw column.
    std::unordered_map<std::string, std::string> raw;
    if (m_pg_primary != nullptr) {
      Param t[] = {Param::text(m_config.table)};
      VS_TRY_ASSIGN(PgResult has_raw, conn.exec_params("SELECT 1 FROM pg_attribute WHERE attrelid = $1::regclass AND "
                                                       "attname = 'raw' AND NOT attisdropped",
                                                       t));
      if (has_raw.rows() == 1) {
        VS_TRY_ASSIGN(const std::string arr, json_text(json(present), "a uri"));
        Param p[] = {Param::text(arr)};
        VS_TRY_ASSIGN(PgResult res, conn.exec_params(fmt::format("SELECT uri, raw::text FROM {} WHERE uri IN "
                                                                 "(SELECT jsonb_array_elements_text($1::jsonb)) AND raw IS NOT NULL",
                                                                 pg::Connection::quote_ident(m_config.table)),
                                                     p));
        for (int r = 0; r < res.rows(); ++r) raw[res.text(r, 0)] = res.text(r, 1);
      }
    }
    std::vector<ArticleVector> items;
    items.reserve(rows.ids.size());
    for (std::size_t i = 0; i < rows.ids.size(); ++i) {
      ArticleVector item;
      VS_TRY_ASSIGN(item.article, article_of(rows.metadatas[i]));
      item.article.uri = rows.ids[i];
      if (auto it = raw.find(rows.ids[i]); it != raw.end()) item.article.raw = it->second;
      const auto vec = std::span<const float>(rows.data).subspan(i * rows.dim, rows.dim);
      item.embedding.assign(vec.begin(), vec.end());
      auto model = models.find(rows.ids[i]);
      item.embedding_model = model != models.end() && !model->second.empty() ? model->second : m_config.embedding_model;
      items.push_back(std::move(item));
    }
    VS_TRY(enqueue_upserts(conn, items));
    return static_cast<std::int64_t>(items.size());
  };
  auto done = body();
  if (!done) {
    (void)conn.exec("ROLLBACK");
    return done;
  }
  VS_TRY(conn.exec("COMMIT"));
  return done;
}

Result<SyncReport> DualStore::sync(const SyncOptions& options) {
  const std::size_t page = std::max<std::size_t>(1, options.page);
  SyncReport report;
  if (!options.dry_run) {
    // What waits in the outbox first, so that the comparison sees the secondary as writes left it.
    VS_TRY(drain_outbox());
  }
  std::vector<std::string> to_copy;
  std::vector<std::string> to_remove;
  VS_TRY(compare_stores(page, options.dry_run, report, &to_copy, &to_remove));
  report.drift_before = report.missing + report.changed + report.extra;
  if (options.dry_run || report.drift_before == 0) {
    report.drift_after = report.drift_before;
    return report;
  }
  for (std::size_t first = 0; first < to_copy.size(); first += page) {
    VS_TRY_ASSIGN(const std::int64_t queued,
                  enqueue_current(std::span<const std::string>(to_copy).subspan(first, std::min(page, to_copy.size() - first))));
    report.copied += queued;
  }
  if (!options.keep_extra) {
    for (std::size_t first = 0; first < to_remove.size(); first += page) {
      const auto chunk = std::span<const std::string>(to_remove).subspan(first, std::min(page, to_remove.size() - first));
      VS_TRY_ASSIGN(pg::Lease lease, m_pool->acquire());
      pg::Connection& conn = *lease;
      VS_TRY(conn.exec("BEGIN"));
      auto queued = [&]() -> Result<std::int64_t> {
        // An id written to the primary since the comparison is no longer extra.
        VS_TRY_ASSIGN(std::vector<std::string> present, lock_present(conn, chunk));
        std::vector<std::string> gone;
        for (const auto& id : chunk) {
          if (std::find(present.begin(), present.end(), id) == present.end()) gone.push_back(id);
        }
        VS_TRY(enqueue_removes(conn, gone));
        VS_TRY(conn.exec("COMMIT"));
        return static_cast<std::int64_t>(gone.size());
      }();
      if (!queued) {
        (void)conn.exec("ROLLBACK");
        return fail(queued.error());
      }
      report.deleted += *queued;
    }
  }
  VS_TRY(drain_outbox());
  SyncReport after;
  VS_TRY(compare_stores(page, false, after, nullptr, nullptr));
  report.drift_after = after.missing + after.changed + after.extra;
  return report;
}

}  // namespace vstore::api
