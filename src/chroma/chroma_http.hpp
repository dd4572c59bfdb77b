// SPDX-License-Identifier: Apache-2.0
// ChromaHttp: the JSON-over-HTTP client ChromaStore talks to a Chroma server with. Internal.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vstore/result.hpp"

namespace vstore::chroma {

/// How the client reaches the server.
struct HttpOptions {
  std::string base_url;   ///< http(s)://HOST[:PORT][/PATH]; required
  std::string token;      ///< sent as `x-chroma-token` and `Authorization: Bearer` (the two
                          ///< headers Chroma's token auth reads) when not empty; never logged
  std::chrono::milliseconds connect_timeout{5000};  ///< Default 5 s.
  std::chrono::milliseconds io_timeout{60000};      ///< read/write timeout. Default 60 s.
  int read_attempts = 4;                            ///< tries of a read (1 = no retry). Default 4.
  std::chrono::milliseconds backoff_base{100};      ///< first back-off cap; doubles per try. Default 100 ms.
  std::chrono::milliseconds backoff_max{2000};      ///< back-off cap. Default 2 s.
};

/// Whether a request may be repeated: reads are retried on retryable errors, writes never.
enum class Retry { read, write };

/// A status and parsed body, for probing endpoints without turning answers into errors.
struct HttpAnswer {
  int status = 0;
  nlohmann::json body;  ///< null when the body is empty or not JSON
};

/// Thread-safe: keeps a small pool of keep-alive connections; any thread may call any method.
class ChromaHttp {
 public:
  /// Checks `options.base_url`. Errors: invalid_argument for a URL that is not http(s).
  [[nodiscard]] static Result<std::unique_ptr<ChromaHttp>> create(HttpOptions options);
  ~ChromaHttp();
  ChromaHttp(const ChromaHttp&) = delete;
  ChromaHttp& operator=(const ChromaHttp&) = delete;

  /// GET/POST/PUT/DELETE `path` (appended to the base URL's path) and the parsed 2xx body.
  /// Errors name the server (redacted URL), the method and path, and the cause:
  /// unavailable (no connection, 502/503/504), timeout (no answer in time), invalid_argument
  /// (400, 422), not_found (404, 410), conflict (409), internal (other statuses, 500),
  /// corruption (a 2xx body that is not JSON). `retry` = read retries unavailable and timeout
  /// with full-jitter exponential back-off; write never retries.
  [[nodiscard]] Result<nlohmann::json> get(std::string_view path, Retry retry = Retry::read);
  [[nodiscard]] Result<nlohmann::json> post(std::string_view path, const nlohmann::json& body, Retry retry);
  [[nodiscard]] Result<nlohmann::json> put(std::string_view path, const nlohmann::json& body);
  [[nodiscard]] Result<nlohmann::json> del(std::string_view path);

  /// One GET without retries whose non-2xx status is returned, not turned into an error (for
  /// probing which API the server speaks). Errors: unavailable, timeout.
  [[nodiscard]] Result<HttpAnswer> probe(std::string_view path);

  /// The base URL with secrets redacted, for messages.
  [[nodiscard]] const std::string& server() const noexcept { return m_server; }

 private:
  struct Impl;
  explicit ChromaHttp(std::unique_ptr<Impl> impl, std::string server);
  [[nodiscard]] Result<nlohmann::json> call(std::string_view method, std::string_view path, const nlohmann::json* body,
                                            Retry retry);
  std::unique_ptr<Impl> m_impl;
  std::string m_server;
};

}  // namespace vstore::chroma
