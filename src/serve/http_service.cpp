// SPDX-License-Identifier: Apache-2.0
// The HTTP service of `vstore serve` on cpp-httplib (Debian's 0.11): a thread pool of blocking
// workers, one per connection, each calling the thread-safe ArticleStore directly. Requests are
// JSON objects whose fields are checked before anything runs (serve/request_body.hpp): an
// unknown field, a wrong type, a value beyond a limit is a 4xx naming it, and nothing is written.
#include "vstore/http_service.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <limits>
#include <cstdio>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "serve/openapi.hpp"
#include "serve/request_body.hpp"
#include "serve/serve_map.hpp"
#include "vstore/article.hpp"
#include "vstore/filter.hpp"
#include "vstore/projection.hpp"
#include "serve/metrics.hpp"
#include "serve/web_assets.hpp"

namespace vstore {
namespace {

using nlohmann::json;

using serve::from;
using serve::HttpError;

// The library's answer, or the HttpError it maps to.
template <typename T>
T take(Result<T>&& r) {
  if (!r) throw from(r.error());
  return std::move(*r);
}

// A float as JSON, at float32 precision (the shortest text that reads back as the same float).
json float_json(double v) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), static_cast<float>(v));
  if (ec != std::errc()) return v;
  return std::strtod(std::string(buf.data(), end).c_str(), nullptr);
}

json hits_json(const std::vector<SearchHit>& hits) {
  json out = json::array();
  for (const auto& h : hits) out.push_back({{"id", h.id}, {"score", float_json(h.score)}, {"metadata", h.metadata}});
  return out;
}

std::string base64(std::span<const float> v) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
  const std::size_t n = v.size() * sizeof(float);
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  const int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(n));
  out.resize(static_cast<std::size_t>(std::max(written, 0)));
  return out;
}

std::array<unsigned char, SHA256_DIGEST_LENGTH> sha256(std::string_view s) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

// HOST and PORT of "HOST:PORT" ("[::1]:8080" gives "::1").
std::optional<std::pair<std::string, int>> split_addr(const std::string& addr) {
  const auto colon = addr.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = -1;
  const std::string p = addr.substr(colon + 1);
  const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), port);
  if (ec != std::errc() || end != p.data() + p.size() || port < 0 || port > 65535 || host.empty()) return std::nullopt;
  return std::pair{host, port};
}

// When the request this thread is handling was read (set before routing); empty for a request
// that failed before routing (a malformed request line), which is then timed as taking 0 s.
thread_local std::optional<std::chrono::steady_clock::time_point> t_started;

// Requests served on one kept-alive connection before the service closes it.
constexpr std::size_t k_keep_alive_max_requests = 1000;

}  // namespace

bool is_loopback_host(const std::string& host_in) {
  std::string host = host_in;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  int a = 0;
  int b = 0;
  int c = 0;
  int d = 0;
  char tail = 0;
  if (std::sscanf(host.c_str(), "%d.%d.%d.%d%c", &a, &b, &c, &d, &tail) == 4) {
    return a == 127 && b >= 0 && b <= 255 && c >= 0 && c <= 255 && d >= 0 && d <= 255;
  }
  return false;
}

struct HttpService::Impl {
  std::shared_ptr<ArticleStore> store;
  ServeOptions options;
  std::string host;
  int port = 0;
  httplib::Server server;
  std::array<unsigned char, SHA256_DIGEST_LENGTH> token_digest{};
  std::mutex log_mutex;
  serve::RequestMetrics metrics;
  std::set<std::string> route_paths;  // every route's path: the values of the metrics' route label
  std::set<std::string> web_paths;    // the page's files, served without the token
  std::unique_ptr<MapKeeper> map;     // null with --no-map
  MapOptions map_options;             // of the map's builds: umap-learn's defaults, automatic k, seed 42

  using Handler = std::function<json(const httplib::Request&, httplib::Response&)>;

  // Runs `fn`, answering its JSON with 200, or the error it threw as {"error": {code, message}}.
  void route(const std::string& method, const std::string& pattern, Handler fn) {
    auto wrapped = [this, fn = std::move(fn)](const httplib::Request& req, httplib::Response& res) {
      if (options.test_delay_ms > 0 && req.path.starts_with("/v1/")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(options.test_delay_ms));
      }
      try {
        json out = fn(req, res);
        if (res.status == -1) res.status = 200;
        res.set_content(out.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
      } catch (const HttpError& e) {
        answer_error(res, e);
      } catch (const std::exception& e) {
        answer_error(res, HttpError{500, "internal", e.what()});
      }
    };
    route_paths.insert(pattern);
    if (method == "GET") {
      server.Get(pattern, wrapped);
    } else {
      server.Post(pattern, wrapped);
    }
  }

  static void answer_error(httplib::Response& res, const HttpError& e) {
    res.status = e.status;
    res.set_content(serve::error_json(e), "application/json");
  }

  [[nodiscard]] bool authorised(const httplib::Request& req) const {
    if (options.api_token.empty()) return true;
    // The page's own files hold no data and a browser cannot send the token when it opens
    // them; the page then asks for the token and sends it with every API call.
    if (req.method == "GET" && web_paths.contains(req.path)) return true;
    const std::string header = req.get_header_value("Authorization");
    constexpr std::string_view prefix = "Bearer ";
    if (header.size() <= prefix.size() || header.compare(0, prefix.size(), prefix) != 0) return false;
    // Digests of equal length, compared in constant time: neither the token's bytes nor its
    // length leak through the comparison's timing.
    const auto given = sha256(std::string_view(header).substr(prefix.size()));
    return CRYPTO_memcmp(given.data(), token_digest.data(), given.size()) == 0;
  }

  // Called once for every answer written, including refusals before routing (401) and errors
  // reading the request (400, 408, 413): counts it in the metrics and writes its log line.
  void log(const httplib::Request& req, const httplib::Response& res) {
    double ms = 0.0;
    if (t_started) {
      ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - *t_started).count();
      t_started.reset();
      metrics.finished();
    }
    metrics.observe(route_paths.contains(req.path) ? req.path : "other", req.method, res.status, ms / 1000.0);
    if (!options.access_log) return;
    const json line{{"ts", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()},
                    {"method", req.method},
                    {"path", req.path},
                    {"status", res.status},
                    {"ms", std::round(ms * 1000.0) / 1000.0},
                    {"bytes_in", req.body.size()},
                    {"bytes_out", res.body.size()},
                    {"remote", req.remote_addr}};
    std::lock_guard lock(log_mutex);
    std::fprintf(stderr, "%s\n", line.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  }

  // What is wrong with the request's Content-Length, or "" when it is absent or one decimal
  // byte count. cpp-httplib reads "-5" as 2^64 - 5 (and then waits --timeout for that body),
  // "abc" as 0, and takes the first of two different values.
  static std::string bad_content_length(const httplib::Request& req) {
    const std::size_t count = req.get_header_value_count("Content-Length");
    if (count == 0) return "";
    const std::string first = req.get_header_value("Content-Length");
    for (std::size_t idx = 0; idx < count; ++idx) {
      const std::string v = req.get_header_value("Content-Length", idx);
      std::uint64_t n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (v.empty() || v.front() == '-' || v.front() == '+' || ec != std::errc() || end != v.data() + v.size()) {
        return fmt::format("Content-Length {} is not a byte count; expected a decimal number from 0 to {}",
                           json(v).dump(-1, ' ', false, json::error_handler_t::replace), std::numeric_limits<std::uint64_t>::max());
      }
      if (v != first) {
        return fmt::format("the request has two Content-Length headers that disagree ({} and {}); expected one", first, v);
      }
    }
    return "";
  }

  // Whether the request announced a longer body than arrived (the client stopped sending).
  static bool body_cut_short(const httplib::Request& req) {
    if (!req.has_header("Content-Length")) return false;
    std::size_t announced = 0;
    const std::string v = req.get_header_value("Content-Length");
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), announced);
    return ec == std::errc() && end == v.data() + v.size() && req.body.size() < announced;
  }

  // The /metrics page: the requests, the embedder's work, the store's pool and outbox.
  std::string metrics_text() {
    serve::PromWriter w;
    metrics.write(w);
    w.family("vstore_info", "gauge", "The service's version, backend and embedding model (always 1).");
    w.sample("vstore_info",
             {{"version", VSTORE_VERSION},
              {"backend", std::string(store->store().backend_name())},
              {"model", std::string(store->embedder().model())}},
             1);
    const EmbedStats e = store->embed_stats();
    w.family("vstore_embed_calls_total", "counter", "Calls to the embedder (queries, upserts, /v1/embeddings).");
    w.sample("vstore_embed_calls_total", static_cast<double>(e.calls));
    w.family("vstore_embed_texts_total", "counter", "Texts embedded by calls that succeeded.");
    w.sample("vstore_embed_texts_total", static_cast<double>(e.texts));
    w.family("vstore_embed_failures_total", "counter", "Embedder calls that failed.");
    w.sample("vstore_embed_failures_total", static_cast<double>(e.failures));
    w.family("vstore_embed_seconds_total", "counter",
             "Time spent in embedder calls, seconds, summed over threads (texts_total / seconds_total is the throughput).");
    w.sample("vstore_embed_seconds_total", e.seconds);
    auto gauges = store->store().gauges();
    w.family("vstore_store_gauges_up", "gauge", "1 when the store's gauges below could be read, else 0.");
    w.sample("vstore_store_gauges_up", gauges ? 1 : 0);
    if (gauges) {
      static constexpr std::array<std::array<const char*, 3>, 7> k_names{{
          {"pool_size", "vstore_db_pool_size", "Connections the PostgreSQL pool keeps (DB_POOL_SIZE)."},
          {"pool_max_overflow", "vstore_db_pool_max_overflow", "Connections the pool may open beyond its size."},
          {"pool_open", "vstore_db_pool_open_connections", "Connections open now."},
          {"pool_idle", "vstore_db_pool_idle_connections", "Open connections waiting in the pool."},
          {"pool_in_use", "vstore_db_pool_in_use_connections", "Open connections lent out now."},
          {"outbox_pending", "vstore_outbox_pending", "Dual mode: writes waiting in the outbox for the secondary."},
          {"outbox_oldest_age_s", "vstore_outbox_oldest_age_seconds",
           "Dual mode: age of the oldest waiting write, seconds (0 when none)."},
      }};
      for (const auto& [key, name, help] : k_names) {
        if (!gauges->contains(key) || !(*gauges)[key].is_number()) continue;
        w.family(name, "gauge", help);
        w.sample(name, (*gauges)[key].get<double>());
      }
    }
    return w.text();
  }

  [[nodiscard]] serve::RequestLimits limits() const {
    return serve::RequestLimits{options.max_top_k, options.max_batch, options.max_vectors};
  }

  json batch_json(const VectorBatch& b, bool with_vectors) const {
    json ids = b.ids;
    json metadatas = json::array();
    for (const auto& m : b.metadatas) metadatas.push_back(m);
    json out{{"ids", ids}, {"metadatas", metadatas}, {"dim", b.dim}};
    if (with_vectors) {
      json vectors = json::array();
      for (std::size_t i = 0; i < b.ids.size(); ++i) {
        json row = json::array();
        for (std::size_t j = 0; j < b.dim; ++j) row.push_back(float_json(b.data[i * b.dim + j]));
        vectors.push_back(std::move(row));
      }
      out["vectors"] = std::move(vectors);
    }
    return out;
  }

  void install() {
    server.new_task_queue = [n = options.threads] { return new httplib::ThreadPool(static_cast<std::size_t>(n)); };
    server.set_payload_max_length(options.max_body_bytes);
    server.set_read_timeout(options.timeout_s, 0);
    server.set_write_timeout(options.timeout_s, 0);
    // A connection stays open for up to 1,000 requests, 5 s idle (httplib closes it after 5
    // requests by default, so a client reconnected for every fifth). TCP_NODELAY: an answer is
    // written as headers, then body; with Nagle's algorithm the body waited for the client's
    // delayed ACK of the headers, 40 ms on Linux, on every request of a kept-alive connection.
    server.set_keep_alive_timeout(5);
    server.set_keep_alive_max_count(k_keep_alive_max_requests);
    server.set_tcp_nodelay(true);
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      t_started = std::chrono::steady_clock::now();
      metrics.started();
      if (const std::string why = bad_content_length(req); !why.empty()) {
        // Answered before the body is read (this handler runs first): the connection cannot
        // be read further, since where the body ends is unknown.
        res.set_header("Connection", "close");
        answer_error(res, HttpError{400, "invalid_argument", why});
        return httplib::Server::HandlerResponse::Handled;
      }
      if (authorised(req)) return httplib::Server::HandlerResponse::Unhandled;
      res.set_header("WWW-Authenticate", "Bearer");
      answer_error(res, HttpError{401, "unauthorized",
                                  "this service needs \"Authorization: Bearer TOKEN\" with the token of VSTORE_API_TOKEN"});
      return httplib::Server::HandlerResponse::Handled;
    });
    server.set_error_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413 && req.body.size() <= options.max_body_bytes &&
          req.get_header_value("Content-Type").starts_with("application/x-www-form-urlencoded")) {
        // cpp-httplib parses a form body itself and refuses one over 8,192 bytes; curl -d and
        // many clients send that type unless told otherwise.
        answer_error(res, HttpError{413, "payload_too_large",
                                    fmt::format("a body of Content-Type application/x-www-form-urlencoded is limited to "
                                                "8192 bytes, and this one has {}; send JSON as Content-Type: application/json",
                                                req.body.size())});
      } else if (res.status == 413) {
        answer_error(res, HttpError{413, "payload_too_large",
                                    fmt::format("the body is larger than the limit of {} bytes (--max-body-bytes)",
                                                options.max_body_bytes)});
      } else if (res.status == 400 && body_cut_short(req)) {
        // cpp-httplib answers 400 when the body stops arriving; the limit is --timeout. The rest
        // of that body may still come: the answer asks the client to close the connection.
        res.set_header("Connection", "close");
        answer_error(res, HttpError{408, "request_timeout",
                                    fmt::format("the request's body did not arrive in full within {} s (--timeout): "
                                                "{} of {} bytes",
                                                options.timeout_s, req.body.size(), req.get_header_value("Content-Length"))});
      } else if (res.status == 404) {
        answer_error(res, HttpError{404, "not_found", fmt::format("no route {} {}; see /openapi.json", req.method, req.path)});
      } else {
        answer_error(res, HttpError{res.status, "http_error",
                                    res.status == 400 ? "HTTP 400: the request is not well-formed HTTP/1.1 (its request line, "
                                                        "a header or a chunked body)"
                                                      : fmt::format("HTTP {}", res.status)});
      }
    });
    server.set_logger([this](const httplib::Request& req, const httplib::Response& res) { log(req, res); });

    for (const serve::WebAsset& asset : serve::web_assets()) {
      const std::string path = std::string_view(asset.path) == "/index.html" ? "/" : asset.path;
      web_paths.insert(path);
      route_paths.insert(path);
      server.Get(path, [&asset](const httplib::Request&, httplib::Response& res) {
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Content-Type-Options", "nosniff");
        res.set_header("Content-Security-Policy",
                       "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                       "connect-src 'self'; frame-ancestors 'none'");
        res.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.content_type);
      });
    }
    route_paths.insert("/metrics");
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    route("GET", "/openapi.json", [](const httplib::Request&, httplib::Response&) { return openapi_document(); });
    route("GET", "/health", [this](const httplib::Request&, httplib::Response& res) {
      json h = take(store->health());
      res.status = h.value("healthy", false) ? 200 : 503;
      return h;
    });
    route("POST", "/v1/search", [this](const httplib::Request& req, httplib::Response&) {
      serve::SearchRequest r = serve::parse_search(req.body, limits(), static_cast<std::size_t>(store->store().dimension()));
      SearchOptions so;
      so.top_k = r.top_k;
      so.where = std::move(r.where);
      std::vector<float> vec;
      if (r.vector) {
        vec = std::move(*r.vector);
      } else {
        if (auto checked = check_search_query(r.query); !checked) throw serve::bad(fmt::format("\"query\": {}", checked.error().message()));
        auto embedded = take(store->embedder().embed(std::vector<std::string>{r.query}));
        vec = std::move(embedded.front());
        so.model = std::string(store->embedder().model());
      }
      json out{{"results", hits_json(take(store->store().search(vec, so)))}};
      if (r.explain) out["explain"] = take(store->store().explain(vec, so));
      return out;
    });
    route("POST", "/v1/similar", [this](const httplib::Request& req, httplib::Response&) {
      serve::SimilarRequest r = serve::parse_similar(req.body, limits());
      return json{{"results", hits_json(take(store->similar_articles(r.uri, r.top_k, std::move(r.where))))}};
    });
    route("POST", "/v1/articles", [this](const httplib::Request& req, httplib::Response&) {
      const Article a = serve::parse_article(req.body);
      const bool stored = take(store->upsert_article(a));
      if (stored && map) map->place(std::vector<std::string>{a.uri});
      return json{{"uri", a.uri}, {"stored", stored}};
    });
    route("POST", "/v1/articles/batch", [this](const httplib::Request& req, httplib::Response&) {
      const std::vector<Article> articles = serve::parse_article_batch(req.body, limits());
      const std::size_t stored = take(store->upsert_articles(articles));
      if (stored > 0 && map) {
        std::vector<std::string> uris;
        for (const auto& a : articles) uris.push_back(a.uri);
        map->place(uris);  // an article stored without a vector has none to place
      }
      return json{{"received", articles.size()}, {"stored", stored}, {"skipped_without_text", articles.size() - stored}};
    });
    route("POST", "/v1/vectors", [this](const httplib::Request& req, httplib::Response&) {
      serve::VectorsRequest r = serve::parse_vectors(req.body, limits());
      return batch_json(take(store->get_vectors_by_metadata(r.limit, std::move(r.where))), r.with_vectors);
    });
    route("POST", "/v1/projection", [this](const httplib::Request& req, httplib::Response&) {
      serve::ProjectionRequest r = serve::parse_projection(req.body, limits());
      const VectorBatch batch = take(store->get_vectors_by_metadata(r.limit, std::move(r.where)));
      const std::size_t n = batch.ids.size();
      if (n == 0) return json{{"ids", json::array()}, {"points", json::array()}, {"centroids", json::array()}, {"sizes", json::object()}};
      const Projection p = take(embedding_projection(batch.data, n, batch.dim, r.clusters, r.seed));
      json points = json::array();
      for (std::size_t i = 0; i < p.points.size(); ++i) {
        const auto& pt = p.points[i];
        points.push_back({{"id", batch.ids[i]}, {"x", pt.x}, {"y", pt.y}, {"cluster", pt.cluster}, {"size", pt.size}});
      }
      json sizes = json::object();
      for (std::size_t c = 0; c < p.sizes.size(); ++c) sizes[std::to_string(c)] = p.sizes[c];
      return json{{"points", points}, {"centroids", p.centroids}, {"sizes", sizes}};
    });
    route_paths.insert("/v1/map");
    server.Get("/v1/map", [this](const httplib::Request& req, httplib::Response& res) {
      if (options.test_delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options.test_delay_ms));
      (void)req;
      if (!map) {
        answer_error(res, HttpError{404, "not_found", "the map is off in this service (vstore serve --no-map)"});
        return;
      }
      auto text = map->json_text();
      if (!text) {
        answer_error(res, from(text.error()));
        return;
      }
      res.status = 200;
      res.set_content(**text, "application/json");
    });
    route("POST", "/v1/map/rebuild", [this](const httplib::Request& req, httplib::Response& res) {
      if (!map) throw HttpError{404, "not_found", "the map is off in this service (vstore serve --no-map)"};
      MapOptions mo = map_options;
      if (const auto r = serve::parse_map_rebuild(req.body)) {
        mo.clusters = r->clusters;
        mo.layout.seed = r->seed;
      }
      const bool started = map->rebuild(mo);
      res.status = 202;
      return json{{"building", true}, {"started", started}};
    });
    route("POST", "/v1/embeddings", [this](const httplib::Request& req, httplib::Response&) {
      const std::string model(store->embedder().model());
      const serve::EmbeddingsRequest r =
          serve::parse_embeddings(req.body, limits(), model, store->embedder().dimension());
      const std::vector<Embedding> vectors = take(store->embedder().embed(r.texts));
      json data = json::array();
      for (std::size_t i = 0; i < vectors.size(); ++i) {
        json e;
        if (r.base64) {
          e = base64(vectors[i]);
        } else {
          e = json::array();
          for (float x : vectors[i]) e.push_back(float_json(x));
        }
        data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(e)}});
      }
      return json{{"object", "list"}, {"data", data}, {"model", model}, {"usage", {{"prompt_tokens", 0}, {"total_tokens", 0}}}};
    });
  }
};

HttpService::HttpService(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
HttpService::~HttpService() { stop(); }

Result<std::unique_ptr<HttpService>> HttpService::create(std::shared_ptr<ArticleStore> store, ServeOptions options) {
  if (!store) return fail(ErrorCode::invalid_argument, "the service needs a store");
  const auto addr = split_addr(options.addr);
  if (!addr) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("address \"{}\" is not HOST:PORT (port 0 to 65535; IPv6 in brackets, [::1]:8080)", options.addr));
  }
  if (!is_loopback_host(addr->first) && options.api_token.empty()) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("address {} is not loopback: set VSTORE_API_TOKEN, which every request must then carry as "
                            "\"Authorization: Bearer TOKEN\" (or serve on 127.0.0.1)",
                            options.addr));
  }
  if (options.max_body_bytes < 1 || options.max_top_k < 1 || options.max_batch < 1 || options.max_vectors < 1 ||
      options.timeout_s < 1 || options.threads < 1) {
    return fail(ErrorCode::invalid_argument, "every service limit must be at least 1");
  }
  auto impl = std::make_unique<Impl>();
  impl->store = std::move(store);
  impl->options = std::move(options);
  impl->host = addr->first;
  impl->port = addr->second;
  impl->token_digest = sha256(impl->options.api_token);
  if (impl->options.map) {
    MapKeeperOptions mk;
    mk.file = impl->options.map_file;
    mk.key = impl->options.map_key;
    mk.map = impl->map_options;
    mk.test_build_delay_ms = impl->options.test_map_delay_ms;
    impl->map = std::make_unique<MapKeeper>(impl->store, std::move(mk));
  }
  impl->install();
  if (impl->map) impl->map->start();
  return std::unique_ptr<HttpService>(new HttpService(std::move(impl)));
}

Result<int> HttpService::bind() {
  Impl& m = *m_impl;
  if (m.port == 0) {
    const int port = m.server.bind_to_any_port(m.host);
    if (port <= 0) return fail(ErrorCode::unavailable, fmt::format("cannot bind {} on any port", m.host));
    m.port = port;
    return port;
  }
  if (!m.server.bind_to_port(m.host, m.port)) {
    return fail(ErrorCode::unavailable,
                fmt::format("cannot bind {}: the port is in use or the address is not this host's", m.options.addr));
  }
  return m.port;
}

Result<void> HttpService::run() {
  const bool listened = m_impl->server.listen_after_bind();
  if (m_impl->map) m_impl->map->stop();  // waits for a build, keeps the placements
  if (!listened) {
    return fail(ErrorCode::unavailable, fmt::format("the service on {} stopped with an error", m_impl->options.addr));
  }
  return {};
}

void HttpService::stop() {
  if (m_impl && m_impl->server.is_running()) m_impl->server.stop();
}

}  // namespace vstore
