// SPDX-License-Identifier: Apache-2.0
/// The HTTP service of `vstore serve`: a JSON API over ArticleStore (search by text or vector,
/// similar articles, upsert one or a batch, vectors by metadata, the projection, the map of the
/// collection, health) and an
/// OpenAI-compatible `POST /v1/embeddings` served by the store's embedder, described by the
/// OpenAPI document at `/openapi.json`. See docs/http.md for every route.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "vstore/article_store.hpp"
#include "vstore/result.hpp"

namespace vstore {

/// Limits and settings of the service. Each limit answers a request beyond it with a 4xx JSON
/// error naming the limit.
struct ServeOptions {
  std::string addr = "127.0.0.1:8080";  ///< HOST:PORT (IPv6 in brackets); port 0 picks a free one
  /// The bearer token every request must carry (`Authorization: Bearer TOKEN`), compared in
  /// constant time. Required when HOST is not a loopback address. Empty: no authentication.
  std::string api_token;
  std::size_t max_body_bytes = 16U << 20U;  ///< request body; more is 413. Default 16 MiB.
  int max_top_k = 1000;                     ///< `top_k` above it is 400. Default 1000.
  std::size_t max_batch = 1000;             ///< articles per batch upsert, texts per embeddings call. Default 1000.
  std::int64_t max_vectors = 100000;        ///< `limit` of /v1/vectors and /v1/projection. Default 100,000.
  int timeout_s = 30;                       ///< reading a request and writing its answer, seconds. Default 30.
  int threads = 64;                         ///< connections served at once (keep-alive holds one). Default 64.
  bool access_log = true;                   ///< one JSON line per request on stderr (no headers, no bodies)
  /// Keep the map of the whole collection (GET /v1/map): built in the background at start (or
  /// loaded from `map_file`), upserted articles placed into it. Default on; `--no-map` is off.
  bool map = true;
  /// Where the map is kept between runs; empty: in memory only. `vstore serve` names a file
  /// under VSTORE_DATA_DIR/maps per store and model.
  std::filesystem::path map_file;
  /// What a kept map must have been built for (backend, store, model, dimension); another is rebuilt.
  nlohmann::json map_key = nlohmann::json::object();

  // ---- for tests only ----
  int test_delay_ms = 0;  ///< each /v1 request waits this long before it runs (to have requests in flight)
  int test_map_delay_ms = 0;  ///< a map build waits this long before it starts (to see the 503 while it builds)
};

/// Whether `host` (as in ServeOptions::addr, brackets allowed) is a loopback address:
/// localhost, 127.0.0.0/8 or ::1.
[[nodiscard]] bool is_loopback_host(const std::string& host);

/// Thread-safe: stop() may be called from any thread (a signal-handling thread, say).
class HttpService {
 public:
  /// Checks the options: addr readable, a token when the host is not loopback, limits >= 1.
  /// Errors: invalid_argument naming the value.
  [[nodiscard]] static Result<std::unique_ptr<HttpService>> create(std::shared_ptr<ArticleStore> store,
                                                                  ServeOptions options);
  ~HttpService();
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  /// Binds the address; returns the port (the chosen one for port 0). Errors: unavailable (the
  /// address is in use or cannot be bound, naming it).
  [[nodiscard]] Result<int> bind();
  /// Serves until stop(); requests in flight are finished before it returns. Call after bind().
  [[nodiscard]] Result<void> run();
  /// Stops accepting connections; run() returns once the requests in flight are answered.
  void stop();

 private:
  struct Impl;
  explicit HttpService(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

}  // namespace vstore
