// SPDX-License-Identifier: Apache-2.0
// ChromaHttp. Design:
// - One httplib::Client per in-flight request, so concurrent callers never share one. Reads
//   take a kept-alive client from a mutex-guarded free list and put it back; writes open a
//   fresh connection, because this httplib (0.11) cannot tell a stale kept-alive socket (e.g.
//   after a server restart) from a failed request, and a write must not be retried blindly.
// - Every answer goes through one status -> ErrorCode mapping; messages carry the redacted
//   server URL, the method and path, and Chroma's own `{"error","message"}` text. The token is
//   only ever placed in the request header.
// - Reads (Retry::read) are retried on unavailable/timeout with full-jitter exponential
//   back-off; a failed write is returned at once because its outcome may be unknown.
// httplib and nlohmann::json exceptions are caught here and turned into Error.
#include "chroma/chroma_http.hpp"

#include <httplib.h>

#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "vstore/config.hpp"

namespace vstore::chroma {
namespace {

using nlohmann::json;

// The message part of a Chroma error body, or the start of the raw body.
std::string server_message(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_discarded() && j.is_object()) {
    std::string kind = j.contains("error") && j["error"].is_string() ? j["error"].get<std::string>() : "";
    std::string message = j.contains("message") && j["message"].is_string() ? j["message"].get<std::string>() : "";
    if (!kind.empty() && !message.empty()) return kind + ": " + message;
    if (!message.empty()) return message;
    if (!kind.empty()) return kind;
  }
  return body.substr(0, 300);
}

// Chroma 1.x and Chroma Cloud read `x-chroma-token`; the Python 0.4-0.6 servers read
// `Authorization: Bearer` by default, or `X-Chroma-Token` when configured so. Both are sent.
void add_token(httplib::Headers& headers, const std::string& token) {
  if (token.empty()) return;
  headers.emplace("x-chroma-token", token);
  headers.emplace("Authorization", "Bearer " + token);
}

ErrorCode code_for_status(int status) {
  switch (status) {
    case 400:
    case 422: return ErrorCode::invalid_argument;
    case 401:
    case 403: return ErrorCode::invalid_argument;
    case 404:
    case 410: return ErrorCode::not_found;
    case 409: return ErrorCode::conflict;
    case 408:
    case 504: return ErrorCode::timeout;
    case 429:
    case 502:
    case 503: return ErrorCode::unavailable;
    default: return ErrorCode::internal;
  }
}

}  // namespace

struct ChromaHttp::Impl {
  HttpOptions options;
  std::string scheme_host_port;
  std::string path_prefix;
  std::mutex mutex;
  std::vector<std::unique_ptr<httplib::Client>> idle;  // guarded by mutex

  // `fresh`: a new connection, not a kept-alive one that may have gone stale (for writes).
  std::unique_ptr<httplib::Client> take(bool fresh = false) {
    if (!fresh) {
      std::lock_guard lock(mutex);
      if (!idle.empty()) {
        auto client = std::move(idle.back());
        idle.pop_back();
        return client;
      }
    }
    auto client = std::make_unique<httplib::Client>(scheme_host_port);
    const auto secs = [](std::chrono::milliseconds ms) {
      return std::chrono::duration_cast<std::chrono::microseconds>(ms);
    };
    client->set_connection_timeout(secs(options.connect_timeout));
    client->set_read_timeout(secs(options.io_timeout));
    client->set_write_timeout(secs(options.io_timeout));
    client->set_keep_alive(!fresh);
    client->set_tcp_nodelay(true);  // headers and body go in separate writes: no Nagle delay
    return client;
  }

  // After a transport failure every idle connection may be stale (a restarted server).
  void forget_idle() {
    std::lock_guard lock(mutex);
    idle.clear();
  }

  void give_back(std::unique_ptr<httplib::Client> client) {
    std::lock_guard lock(mutex);
    if (idle.size() < 16) idle.push_back(std::move(client));
  }
};

ChromaHttp::ChromaHttp(std::unique_ptr<Impl> impl, std::string server) : m_impl(std::move(impl)), m_server(std::move(server)) {}
ChromaHttp::~ChromaHttp() = default;

Result<std::unique_ptr<ChromaHttp>> ChromaHttp::create(HttpOptions options) {
  const std::string& base = options.base_url;
  const auto scheme_end = base.find("://");
  const std::string scheme = scheme_end == std::string::npos ? "" : base.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    return fail(ErrorCode::invalid_argument,
                fmt::format("chroma server URL {} must start with http:// or https://", redact_url(base)));
  }
  auto impl = std::make_unique<Impl>();
  const auto path_start = base.find('/', scheme_end + 3);
  impl->scheme_host_port = base.substr(0, path_start);
  if (path_start != std::string::npos) {
    impl->path_prefix = base.substr(path_start);
    while (!impl->path_prefix.empty() && impl->path_prefix.back() == '/') impl->path_prefix.pop_back();
  }
  if (impl->scheme_host_port.size() <= scheme_end + 3) {
    return fail(ErrorCode::invalid_argument, fmt::format("chroma server URL {} has no host", redact_url(base)));
  }
  std::string server = redact_url(base);
  while (!server.empty() && server.back() == '/') server.pop_back();
  impl->options = std::move(options);
  return std::unique_ptr<ChromaHttp>(new ChromaHttp(std::move(impl), std::move(server)));
}

namespace {

// What a failed exchange means, in words that name the limit that ran out.
struct Transport {
  ErrorCode code;
  std::string text;
};

Transport transport_problem(httplib::Error err, const HttpOptions& options) {
  const auto seconds = [](std::chrono::milliseconds ms) { return static_cast<double>(ms.count()) / 1000.0; };
  if (err == httplib::Error::Read) {
    return {ErrorCode::timeout, fmt::format("did not answer within {} s (timeout; CHROMA_TIMEOUT)", seconds(options.io_timeout))};
  }
  if (err == httplib::Error::ConnectionTimeout) {
    return {ErrorCode::timeout, fmt::format("did not accept a connection within {} s (timeout)", seconds(options.connect_timeout))};
  }
  return {ErrorCode::unavailable, fmt::format("is unreachable ({})", httplib::to_string(err))};
}

}  // namespace

Result<HttpAnswer> ChromaHttp::probe(std::string_view path) {
  const std::string full = m_impl->path_prefix + std::string(path);
  httplib::Headers headers;
  add_token(headers, m_impl->options.token);
  try {
    auto client = m_impl->take();
    auto res = client->Get(full, headers);
    if (!res) {
      const Transport problem = transport_problem(res.error(), m_impl->options);
      return fail(problem.code, fmt::format("chroma server {} {}: GET {}", m_server, problem.text, full));
    }
    HttpAnswer answer;
    answer.status = res->status;
    answer.body = json::parse(res->body, nullptr, false);
    if (answer.body.is_discarded()) answer.body = nullptr;
    m_impl->give_back(std::move(client));
    return answer;
  } catch (const std::exception& e) {
    return fail(ErrorCode::internal, fmt::format("chroma server {}: GET {}: {}", m_server, full, e.what()));
  }
}

Result<json> ChromaHttp::call(std::string_view method, std::string_view path, const json* body, Retry retry) {
  const std::string full = m_impl->path_prefix + std::string(path);
  httplib::Headers headers;
  add_token(headers, m_impl->options.token);
  std::string payload;
  try {
    if (body != nullptr) payload = body->dump(-1, ' ', false, json::error_handler_t::replace);
  } catch (const std::exception& e) {
    return fail(ErrorCode::invalid_argument, fmt::format("cannot encode the request to {}: {}", m_server, e.what()));
  }
  const int attempts = retry == Retry::read ? std::max(1, m_impl->options.read_attempts) : 1;
  std::mt19937_64 rng(std::random_device{}());
  Error last(ErrorCode::internal, "no attempt made");
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    try {
      const bool write = retry == Retry::write;
      auto client = m_impl->take(write);
      httplib::Result res = method == "GET"    ? client->Get(full, headers)
                            : method == "POST" ? client->Post(full, headers, payload, "application/json")
                            : method == "PUT"  ? client->Put(full, headers, payload, "application/json")
                                               : client->Delete(full, headers);
      if (!res) {
        m_impl->forget_idle();
        const Transport problem = transport_problem(res.error(), m_impl->options);
        last = Error(problem.code, fmt::format("chroma server {} {}: {} {}", m_server, problem.text, method, full));
      } else if (res->status >= 200 && res->status < 300) {
        if (!write) m_impl->give_back(std::move(client));
        if (res->body.empty()) return json(nullptr);
        json parsed = json::parse(res->body, nullptr, false);
        if (parsed.is_discarded()) {
          return fail(ErrorCode::corruption,
                      fmt::format("chroma server {} answered {} {} with a body that is not JSON", m_server, method, full));
        }
        return parsed;
      } else {
        if (!write) m_impl->give_back(std::move(client));
        const bool auth = res->status == 401 || res->status == 403;
        last = Error(code_for_status(res->status),
                     fmt::format("chroma server {} rejected {} {} (HTTP {}): {}{}", m_server, method, full, res->status,
                                 server_message(res->body),
                                 auth ? (m_impl->options.token.empty() ? "; CHROMA_TOKEN is not set"
                                                                       : "; check CHROMA_TOKEN")
                                      : ""));
      }
    } catch (const std::exception& e) {
      return fail(ErrorCode::internal, fmt::format("chroma server {}: {} {}: {}", m_server, method, full, e.what()));
    }
    if (!last.retryable() || attempt == attempts) break;
    const auto cap = std::min<std::int64_t>(m_impl->options.backoff_max.count(),
                                            m_impl->options.backoff_base.count() << std::min(attempt - 1, 20));
    std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(cap, 1));
    std::this_thread::sleep_for(std::chrono::milliseconds(dist(rng)));
  }
  if (attempts > 1 && last.retryable()) {
    return fail(last.code(), fmt::format("{} (tried {} times)", last.message(), attempts));
  }
  return fail(std::move(last));
}

Result<json> ChromaHttp::get(std::string_view path, Retry retry) { return call("GET", path, nullptr, retry); }
Result<json> ChromaHttp::post(std::string_view path, const json& body, Retry retry) { return call("POST", path, &body, retry); }
Result<json> ChromaHttp::put(std::string_view path, const json& body) { return call("PUT", path, &body, Retry::write); }
Result<json> ChromaHttp::del(std::string_view path) { return call("DELETE", path, nullptr, Retry::write); }

}  // namespace vstore::chroma
