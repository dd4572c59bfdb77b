// SPDX-License-Identifier: Apache-2.0
// `vstore bench soak`: writers and readers at once for a bounded time, through the library and
// then through `vstore serve` under wrk, and every acknowledged write checked in the table.
// Design:
// - Writes: every writer owns its uris ("soak:lib:W:I", "soak:http:W:I") and records a write
//   only once it is acknowledged (upsert_article returned true; the service answered 200 with
//   "stored": true). A rewrite of one of its own uris replaces that uri's expected article, so
//   the expectation is the last acknowledged version, whose order one thread fixes.
// - Reads: searches by text (every other one filtered by a writer's news_source), similar
//   articles of a uri already acknowledged (not_found there is a lost write seen live), vectors
//   by metadata. An answer with more than top_k results counts as an error too.
// - Verification (soak_verify): the vector of every acknowledged article is made again by the
//   same embedder from the same text and compared byte for byte with the stored one; a
//   checksum over both sides sums the comparison up for the report.
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <latch>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "macro/bench.hpp"
#include "macro/bench_process.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/filter.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

using bench_support::check_range;
using bench_support::latency_figures;
using bench_support::report;
using bench_support::seconds_since;

Result<void> check_options(const BenchSoakOptions& options) {
  VS_TRY(check_range("seed", static_cast<double>(options.seed), 10, 100000));
  VS_TRY(check_range("duration_s", options.duration_s, 1, 86400));
  VS_TRY(check_range("writers", options.writers, 1, 256));
  VS_TRY(check_range("readers", options.readers, 1, 256));
  VS_TRY(check_range("top_k", options.top_k, 1, 1000));
  for (const auto& [what, path] : {std::pair{"article file", options.data}, std::pair{"query file", options.query_file}}) {
    if (!fs::exists(path)) return fail(ErrorCode::not_found, fmt::format("{} {} not found", what, path.string()));
  }
  if (options.service && !fs::exists(options.vstore)) {
    return fail(ErrorCode::not_found, fmt::format("vstore binary {} not found", options.vstore.string()));
  }
  return {};
}

// FNV-1a, 64 bits.
class Fnv64 {
 public:
  void add(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < n; ++i) {
      m_hash ^= p[i];
      m_hash *= 1099511628211ULL;
    }
  }
  void add_item(std::string_view uri, std::span<const float> v) {
    add(uri.data(), uri.size());
    add("\0", 1);
    add(v.data(), v.size_bytes());
  }
  [[nodiscard]] std::string hex() const { return fmt::format("{:016x}", m_hash); }

 private:
  std::uint64_t m_hash = 14695981039346656037ULL;
};

// Failed calls and wrong answers of one phase, with the first reason.
class Errors {
 public:
  void add(const std::string& why, std::int64_t n = 1) {
    std::lock_guard lock(m_mutex);
    if (m_count == 0) m_first = why;
    m_count += n;
  }
  [[nodiscard]] std::int64_t count() const {
    std::lock_guard lock(m_mutex);
    return m_count;
  }
  [[nodiscard]] std::string first() const {
    std::lock_guard lock(m_mutex);
    return m_first;
  }

 private:
  mutable std::mutex m_mutex;
  std::int64_t m_count = 0;
  std::string m_first;
};

// The acknowledged writes of every thread, and the uris readers may ask for.
class Ledger {
 public:
  void acknowledge(const Article& a, bool is_new) {
    std::lock_guard lock(m_mutex);
    m_articles[a.uri] = a;
    if (is_new) m_uris.push_back(a.uri);
  }
  [[nodiscard]] std::string any_uri(std::mt19937_64& rng) const {
    std::lock_guard lock(m_mutex);
    if (m_uris.empty()) return {};
    return m_uris[std::uniform_int_distribution<std::size_t>(0, m_uris.size() - 1)(rng)];
  }
  [[nodiscard]] SoakAcknowledged articles() const {
    std::lock_guard lock(m_mutex);
    return m_articles;
  }
  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(m_mutex);
    return m_articles.size();
  }

 private:
  mutable std::mutex m_mutex;
  SoakAcknowledged m_articles;
  std::vector<std::string> m_uris;
};

// The article writer `w` writes as its `i`-th write of `prefix`: a corpus text marked with the
// writer and the version, so that every version has its own vector.
Article soak_article(const std::vector<Article>& corpus, const std::string& prefix, int w, std::int64_t i,
                     int version) {
  const Article& base = corpus[static_cast<std::size_t>((static_cast<std::int64_t>(w) * 7919 + i) %
                                                        static_cast<std::int64_t>(corpus.size()))];
  Article a;
  a.uri = fmt::format("soak:{}:{}:{:07d}", prefix, w, i);
  a.title = base.title.value_or("untitled");
  a.raw = fmt::format("{} (soak writer {} version {})", document_text(base), w, version);
  a.news_source = fmt::format("soak-{}", w);
  a.category = base.category;
  a.publication_date = base.publication_date;
  a.tags = base.tags;
  return a;
}

// Per writer: its uris (for rewrites) and their versions.
struct WriterState {
  std::vector<std::pair<std::int64_t, int>> written;  // (i, version)
  std::int64_t next = 0;
};

// The next write of a writer: three new articles for each rewrite of one of its own. Returns
// the article and whether its uri is new.
std::pair<Article, bool> next_write(const std::vector<Article>& corpus, const std::string& prefix, int w,
                                    WriterState& state, std::mt19937_64& rng) {
  if (!state.written.empty() && state.next % 4 == 3) {
    ++state.next;
    auto& [i, version] = state.written[std::uniform_int_distribution<std::size_t>(0, state.written.size() - 1)(rng)];
    return {soak_article(corpus, prefix, w, i, ++version), false};
  }
  const std::int64_t i = state.next++;
  state.written.emplace_back(i, 0);
  return {soak_article(corpus, prefix, w, i, 0), true};
}

// Latencies of one kind of call, gathered from many threads.
class Latencies {
 public:
  void add(double ms) {
    std::lock_guard lock(m_mutex);
    m_ms.push_back(ms);
  }
  [[nodiscard]] json figures(double elapsed_s) const {
    std::lock_guard lock(m_mutex);
    return latency_figures(m_ms, elapsed_s);
  }

 private:
  mutable std::mutex m_mutex;
  std::vector<double> m_ms;
};

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

// The library phase: writers and readers on one ArticleStore for `seconds`.
json library_phase(ArticleStore& store, const BenchSoakOptions& options, const std::vector<Article>& corpus,
                   const std::vector<std::string>& queries, Ledger& ledger, Errors& errors) {
  Latencies writes, searches, similars, vectors;
  std::atomic<bool> stop{false};
  std::latch ready(options.writers + options.readers + 1);
  std::vector<std::thread> threads;
  for (int w = 0; w < options.writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(w) + 1);
      WriterState state;
      ready.arrive_and_wait();
      while (!stop.load(std::memory_order_relaxed)) {
        auto [article, is_new] = next_write(corpus, "lib", w, state, rng);
        const auto started = Clock::now();
        auto stored = store.upsert_article(article);
        writes.add(ms_since(started));
        if (!stored) {
          errors.add(fmt::format("upsert_article {}: {}", article.uri, stored.error().to_string()));
        } else if (!*stored) {
          errors.add(fmt::format("upsert_article {} stored nothing", article.uri));
        } else {
          ledger.acknowledge(article, is_new);
        }
      }
    });
  }
  for (int r = 0; r < options.readers; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(r) + 1000);
      ready.arrive_and_wait();
      for (std::int64_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        const auto started = Clock::now();
        switch (i % 3) {
          case 0: {
            std::optional<FilterNode> where;
            if (i % 2 == 0) {
              auto parsed = parse_filter(json{{"news_source", fmt::format("soak-{}", (r + i) % options.writers)}});
              if (parsed) where = std::move(*parsed);
            }
            const std::string& q = queries[static_cast<std::size_t>((r * 131 + i) % static_cast<std::int64_t>(queries.size()))];
            auto hits = store.search_articles(q, options.top_k, where);
            searches.add(ms_since(started));
            if (!hits) {
              errors.add(fmt::format("search_articles {:?}: {}", q, hits.error().to_string()));
            } else if (hits->size() > static_cast<std::size_t>(options.top_k)) {
              errors.add(fmt::format("search_articles {:?} gave {} results for top_k {}", q, hits->size(), options.top_k));
            }
            break;
          }
          case 1: {
            const std::string uri = ledger.any_uri(rng);
            if (uri.empty()) break;
            auto hits = store.similar_articles(uri, 5);
            similars.add(ms_since(started));
            if (!hits) errors.add(fmt::format("similar_articles {} (acknowledged): {}", uri, hits.error().to_string()));
            break;
          }
          default: {
            auto where = parse_filter(json{{"news_source", fmt::format("soak-{}", (r + i) % options.writers)}});
            if (!where) break;
            auto batch = store.get_vectors_by_metadata(50, std::move(*where));
            vectors.add(ms_since(started));
            if (!batch) errors.add(fmt::format("get_vectors_by_metadata: {}", batch.error().to_string()));
            break;
          }
        }
      }
    });
  }
  ready.arrive_and_wait();
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::seconds(options.duration_s));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = seconds_since(start);
  return json{{"writes", writes.figures(elapsed)},
              {"search", searches.figures(elapsed)},
              {"similar", similars.figures(elapsed)},
              {"vectors", vectors.figures(elapsed)},
              {"elapsed_s", bench_support::round_to(elapsed, 3)}};
}

// The article as the service's POST /v1/articles reads it.
json article_body(const Article& a) {
  json body{{"uri", a.uri}, {"title", *a.title}, {"raw", *a.raw}, {"news_source", *a.news_source}};
  if (a.category) body["category"] = *a.category;
  if (a.publication_date) body["publication_date"] = *a.publication_date;
  if (a.tags) body["tags"] = *a.tags;
  return body;
}

// The service phase: writers POST /v1/articles while wrk POSTs /v1/search.
Result<json> service_phase(const std::string& conninfo, const Config& cfg, const BenchSoakOptions& options,
                           const std::vector<Article>& corpus, const std::vector<std::string>& queries, Ledger& ledger,
                           Errors& errors) {
  const bench_support::PrivateDir dir("vstore-bench-soak");
  if (dir.path().empty()) return fail(ErrorCode::internal, "cannot make a temporary directory for the soak");
  {
    std::ofstream bodies(dir.path() / "search.bodies");
    for (const auto& q : queries) bodies << json{{"query", q}, {"top_k", options.top_k}}.dump() << '\n';
    if (!bodies) return fail(ErrorCode::internal, "cannot write the search bodies");
  }
  const std::string token = bench_support::random_token();
  bench_support::Service service(dir.path());
  VS_TRY(service.start(options.vstore, std::max(64, options.writers + options.readers * 2), options.serve_args,
                       bench_support::serve_environment(conninfo, cfg, options.model_dir, token)));
  const std::uintmax_t log_from = service.log_size();
  Latencies writes;
  std::atomic<bool> stop{false};
  {
    // One request before the writers start: cpp-httplib reads every response with a
    // function-local static regex, built on first use inside the (uninstrumented) library, and
    // ThreadSanitizer cannot see the guard that later users pass, so a writer reading the regex
    // another writer built is reported as a race. Built here, it happens before every writer.
    httplib::Client first("127.0.0.1", service.port());
    first.set_connection_timeout(10);
    first.set_read_timeout(60);
    if (auto answer = first.Get("/v1/health", {{"Authorization", "Bearer " + token}}); !answer) {
      return fail(ErrorCode::unavailable, fmt::format("GET /v1/health: {}", httplib::to_string(answer.error())));
    }
  }
  std::vector<std::thread> threads;
  for (int w = 0; w < options.writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(static_cast<std::uint64_t>(w) + 2000);
      WriterState state;
      httplib::Client client("127.0.0.1", service.port());
      client.set_connection_timeout(10);
      client.set_read_timeout(60);
      client.set_write_timeout(60);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);  // headers and body go in separate writes: no Nagle delay
      const httplib::Headers headers = {{"Authorization", "Bearer " + token}};
      while (!stop.load(std::memory_order_relaxed)) {
        auto [article, is_new] = next_write(corpus, "http", w, state, rng);
        const auto started = Clock::now();
        auto answer = client.Post("/v1/articles", headers, json{{"article", article_body(article)}}.dump(), "application/json");
        writes.add(ms_since(started));
        if (!answer) {
          errors.add(fmt::format("POST /v1/articles {}: {}", article.uri, httplib::to_string(answer.error())));
          continue;
        }
        const json body = json::parse(answer->body, nullptr, false);
        if (answer->status != 200 || !body.is_object() || body.value("stored", false) != true) {
          errors.add(fmt::format("POST /v1/articles {}: status {}: {}", article.uri, answer->status, answer->body.substr(0, 300)));
          continue;
        }
        ledger.acknowledge(article, is_new);
      }
    });
  }
  const auto start = Clock::now();
  bench_support::WrkOptions wrk_options{options.wrk, std::min(2, options.readers), options.readers, 30};
  auto run = bench_support::run_wrk(wrk_options, dir.path(), service.port(), dir.path() / "search.bodies", token,
                                    options.duration_s);
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = seconds_since(start);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the access log's last lines
  const json answered_search = service.answered(log_from, service.log_size(), "/v1/search");
  const json answered_articles = service.answered(log_from, service.log_size(), "/v1/articles");
  const json exit = service.stop();
  if (!run) return fail(run.error());
  const json& w = run->figures;
  std::int64_t wrk_errors = 0;
  for (const char* key : {"connect", "read", "write", "timeout", "non_2xx"}) wrk_errors += w[key].get<std::int64_t>();
  if (wrk_errors > 0) errors.add(fmt::format("wrk: socket errors or non-2xx answers: {}", w.dump()), wrk_errors);
  const double wrk_s = w["duration_us"].get<double>() / 1e6;
  const auto requests = w["requests"].get<double>();
  json search{{"requests", static_cast<std::int64_t>(requests)},
              {"requests_per_s", bench_support::round_to(wrk_s > 0 ? requests / wrk_s : 0.0, 1)},
              {"p50_ms", bench_support::round_to(w["p50_us"].get<double>() / 1000.0, 3)},
              {"p90_ms", bench_support::round_to(w["p90_us"].get<double>() / 1000.0, 3)},
              {"p99_ms", bench_support::round_to(w["p99_us"].get<double>() / 1000.0, 3)},
              {"max_ms", bench_support::round_to(w["max_us"].get<double>() / 1000.0, 3)},
              {"mean_ms", bench_support::round_to(w["mean_us"].get<double>() / 1000.0, 3)},
              {"wrk_errors", wrk_errors}};
  return json{{"writes", writes.figures(elapsed)},
              {"search", search},
              {"answered", {{"search", answered_search}, {"articles", answered_articles}}},
              {"exit", exit},
              {"elapsed_s", bench_support::round_to(elapsed, 3)}};
}

}  // namespace

Result<json> soak_verify(ArticleStore& store, const SoakAcknowledged& acknowledged) {
  VS_TRY_ASSIGN(VectorBatch stored, store.get_vectors_by_metadata(std::nullopt, std::nullopt));
  std::map<std::string, std::span<const float>> by_uri;
  std::int64_t duplicates = 0;
  for (std::size_t i = 0; i < stored.ids.size(); ++i) {
    const std::span<const float> v(stored.data.data() + i * stored.dim, stored.dim);
    if (!by_uri.emplace(stored.ids[i], v).second) ++duplicates;
  }
  json lost = json::array(), changed = json::array(), unexpected = json::array();
  std::int64_t lost_n = 0, changed_n = 0, unexpected_n = 0;
  const auto note = [](json& examples, std::int64_t& n, const std::string& uri) {
    if (n++ < 5) examples.push_back(uri);
  };
  Fnv64 expected_sum, stored_sum;
  for (const auto& [uri, article] : acknowledged) {
    const std::string text(document_text(article));
    VS_TRY_ASSIGN(std::vector<Embedding> made, store.embedder().embed(std::span<const std::string>(&text, 1)));
    if (made.size() != 1) return fail(ErrorCode::internal, fmt::format("the embedder gave {} vectors for one text", made.size()));
    expected_sum.add_item(uri, made[0]);
    const auto it = by_uri.find(uri);
    if (it == by_uri.end()) {
      note(lost, lost_n, uri);
      continue;
    }
    if (it->second.size() != made[0].size() ||
        std::memcmp(it->second.data(), made[0].data(), it->second.size_bytes()) != 0) {
      note(changed, changed_n, uri);
    }
  }
  for (const auto& [uri, v] : by_uri) {
    stored_sum.add_item(uri, v);
    if (!acknowledged.contains(uri)) note(unexpected, unexpected_n, uri);
  }
  const bool equal = lost_n == 0 && changed_n == 0 && unexpected_n == 0 && duplicates == 0 &&
                     expected_sum.hex() == stored_sum.hex();
  return json{{"expected_rows", acknowledged.size()},
              {"rows", stored.ids.size()},
              {"duplicates", duplicates},
              {"lost", lost_n},
              {"changed", changed_n},
              {"unexpected", unexpected_n},
              {"examples", {{"lost", lost}, {"changed", changed}, {"unexpected", unexpected}}},
              {"checksum_expected", expected_sum.hex()},
              {"checksum_stored", stored_sum.hex()},
              {"equal", equal}};
}

Result<json> bench_soak(const std::string& admin_conninfo, const BenchSoakOptions& options) {
  VS_TRY(check_options(options));
  VS_TRY_ASSIGN(const std::vector<std::string> queries, bench_support::read_query_file(options.query_file));
  const std::int64_t corpus_n = std::max<std::int64_t>(options.seed, 2000);
  VS_TRY_ASSIGN(std::vector<Article> corpus, bench_support::read_article_file(options.data, corpus_n));
  std::erase_if(corpus, [](const Article& a) { return document_text(a).empty(); });
  if (static_cast<std::int64_t>(corpus.size()) < options.seed) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} seed articles were asked for, but the first {} records of "
                                                         "{} hold {} with text",
                                                         options.seed, corpus_n, options.data.string(), corpus.size()));
  }
  if (options.service) {
    bench_support::Child probe;
    const bench_support::PrivateDir dir("vstore-bench-soak-wrk");
    bool ran = false;
    if (!dir.path().empty() && probe.start({options.wrk, "-v"}, {}, dir.path() / "out", dir.path() / "err")) {
      ran = probe.wait_for(std::chrono::seconds(10)).has_value();
    }
    if (!ran) {
      return fail(ErrorCode::not_found, fmt::format("cannot run {}: install the Debian package wrk (scripts/setup.sh "
                                                    "does), or leave out the service phase (--no-service)",
                                                    options.wrk));
    }
  }
  const json machine = bench_machine_info();
  bench_support::ScratchDatabase db(admin_conninfo, fmt::format("vstore_bench_soak_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, db.create());
  Config cfg = options.config;
  cfg.database_url = conninfo;
  cfg.database_read_urls.clear();
  cfg.backend = BackendKind::pgvector;
  cfg.shadow_compare = false;
  if (!options.model_dir.empty()) cfg.model_dir = options.model_dir;

  // The seed, loaded as `vstore ingest` loads; acknowledged by that call's success.
  const std::vector<Article> seed(corpus.begin(), corpus.begin() + options.seed);
  VS_TRY_ASSIGN(json load, bench_support::load_articles(db, conninfo, cfg, seed, options.progress));
  Ledger ledger;
  for (const auto& a : seed) ledger.acknowledge(a, true);

  VS_TRY_ASSIGN(std::unique_ptr<VectorStore> opened, open_store(cfg, OpenOptions{}));
  VS_TRY_ASSIGN(std::unique_ptr<Embedder> embedder, make_embedder(cfg));
  ArticleStore store(std::move(opened), std::move(embedder));
  Errors errors;
  report(options.progress, "library", 0.0);
  json library = library_phase(store, options, corpus, queries, ledger, errors);
  report(options.progress, "library", 1.0);
  json service = nullptr;
  if (options.service) {
    report(options.progress, "service", 0.0);
    VS_TRY_ASSIGN(service, service_phase(conninfo, cfg, options, corpus, queries, ledger, errors));
    report(options.progress, "service", 1.0);
  }
  report(options.progress, "verify", 0.0);
  VS_TRY_ASSIGN(json verify, soak_verify(store, ledger.articles()));
  store.shutdown();

  VS_TRY_ASSIGN(pg::Connection monitor, pg::Connection::connect(conninfo));
  VS_TRY_ASSIGN(json server, bench_support::server_info(monitor));
  json out;
  out["seed"] = options.seed;
  out["duration_s"] = options.duration_s;
  out["writers"] = options.writers;
  out["readers"] = options.readers;
  out["top_k"] = options.top_k;
  out["serve_args"] = options.serve_args;
  out["provider"] = cfg.embedding_provider;
  out["model"] = cfg.embedding_model;
  out["pool"] = {{"size", cfg.pool.size}, {"max_overflow", cfg.pool.max_overflow}};
  out["library"] = library;
  out["service"] = service;
  out["errors"] = errors.count();
  out["first_error"] = errors.first().empty() ? json(nullptr) : json(errors.first());
  out["verify"] = verify;
  out["load"] = load;
  out["machine"] = machine;
  out["server"] = server;
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
