// SPDX-License-Identifier: Apache-2.0
// OpenAI-compatible embeddings client. Phases per embed(): truncate texts, split them into
// requests within the input-count and character budgets, POST each with retries (429, 5xx and
// connection failures only; full-jitter exponential back-off that honours Retry-After), then
// put the answers back in input order by their `index`, check dimensions and L2-normalise.
// Requests are idempotent (no state on the server), so retrying them is safe.
#include "embed/embed_openai.hpp"

#include <httplib.h>

#include <cmath>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text.hpp"

namespace vstore::embed {
namespace {

using nlohmann::json;

struct ParsedUrl {
  std::string scheme_host_port;  // "https://api.openai.com:443"
  std::string path_prefix;       // "" or "/proxy"
};

Result<ParsedUrl> parse_base(const std::string& base) {
  const auto scheme_end = base.find("://");
  if (scheme_end == std::string::npos || (base.compare(0, scheme_end, "http") != 0 && base.compare(0, scheme_end, "https") != 0)) {
    return fail(ErrorCode::invalid_argument, fmt::format("OPENAI_BASE_URL={}: expected http:// or https:// URL", base));
  }
  const auto path_start = base.find('/', scheme_end + 3);
  ParsedUrl out;
  out.scheme_host_port = base.substr(0, path_start);
  if (path_start != std::string::npos) {
    out.path_prefix = base.substr(path_start);
    while (!out.path_prefix.empty() && out.path_prefix.back() == '/') out.path_prefix.pop_back();
  }
  return out;
}

class OpenAIEmbedder final : public Embedder {
 public:
  OpenAIEmbedder(OpenAIOptions options, ParsedUrl url) : m_opt(std::move(options)), m_url(std::move(url)) {}
  std::string_view model() const override { return m_opt.model; }
  int dimension() const override { return m_opt.dimension; }

  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    std::vector<std::string> inputs;
    inputs.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      if (is_blank_text(texts[i])) {
        return fail(ErrorCode::invalid_argument, fmt::format("text {} is blank; nothing to embed", i));
      }
      inputs.push_back(truncate_for_openai(texts[i]));
    }
    std::vector<Embedding> out(inputs.size());
    std::size_t start = 0;
    while (start < inputs.size()) {
      std::size_t end = start;
      std::size_t chars = 0;
      while (end < inputs.size() && end - start < m_opt.max_batch_inputs &&
             (end == start || chars + inputs[end].size() <= m_opt.max_batch_chars)) {
        chars += inputs[end].size();
        ++end;
      }
      VS_TRY(request(std::span(inputs).subspan(start, end - start), std::span(out).subspan(start, end - start)));
      start = end;
    }
    return out;
  }

 private:
  Result<void> request(std::span<const std::string> inputs, std::span<Embedding> out) {
    json body = {{"model", m_opt.model}, {"input", inputs}, {"encoding_format", "float"}};
    if (m_opt.send_dimensions) body["dimensions"] = m_opt.dimension;
    const std::string payload = body.dump();
    const std::string path = m_url.path_prefix + "/v1/embeddings";
    std::mt19937_64 rng(std::random_device{}());
    std::string last_problem;
    for (int attempt = 1; attempt <= m_opt.max_attempts; ++attempt) {
      httplib::Client client(m_url.scheme_host_port);
      client.set_connection_timeout(m_opt.timeout);
      client.set_read_timeout(m_opt.timeout);
      client.set_write_timeout(m_opt.timeout);
      httplib::Headers headers = {{"Authorization", "Bearer " + m_opt.api_key}};
      auto res = client.Post(path, headers, payload, "application/json");
      std::chrono::milliseconds wait = backoff(attempt, rng);
      if (!res) {
        const auto err = res.error();
        if (err == httplib::Error::Read || err == httplib::Error::Write || err == httplib::Error::Connection ||
            err == httplib::Error::ConnectionTimeout) {
          last_problem = fmt::format("{} ({})", httplib::to_string(err), err == httplib::Error::Read ? "no answer in time" : "network");
        } else {
          return fail(ErrorCode::unavailable,
                      fmt::format("embeddings request to {} failed: {}", m_url.scheme_host_port, httplib::to_string(err)));
        }
      } else if (res->status == 200) {
        return parse_answer(res->body, out);
      } else if (res->status == 429 || res->status >= 500) {
        last_problem = fmt::format("HTTP {}", res->status);
        if (res->has_header("Retry-After")) {
          double secs = 0;
          try {
            secs = std::stod(res->get_header_value("Retry-After"));
          } catch (const std::exception&) {
            secs = 0;
          }
          if (secs > 0) {
            wait = std::min(m_opt.backoff_max, std::chrono::milliseconds(static_cast<std::int64_t>(secs * 1000.0)));
          }
        }
      } else {
        return fail(ErrorCode::invalid_argument, fmt::format("embeddings endpoint {} answered HTTP {}: {}",
                                                             m_url.scheme_host_port + path, res->status,
                                                             server_message(res->body)));
      }
      if (attempt < m_opt.max_attempts) std::this_thread::sleep_for(wait);
    }
    const ErrorCode code = last_problem.find("no answer in time") != std::string::npos ? ErrorCode::timeout : ErrorCode::unavailable;
    return fail(code, fmt::format("embeddings endpoint {} failed {} times; last: {}", m_url.scheme_host_port + path,
                                  m_opt.max_attempts, last_problem));
  }

  std::chrono::milliseconds backoff(int attempt, std::mt19937_64& rng) const {
    const auto cap = std::min<std::int64_t>(m_opt.backoff_max.count(), m_opt.backoff_base.count() << std::min(attempt - 1, 20));
    std::uniform_int_distribution<std::int64_t> dist(0, std::max<std::int64_t>(cap, 1));
    return std::chrono::milliseconds(dist(rng));
  }

  // The server's own words for a refusal, with the API key hidden: a server or proxy that
  // refuses a key may quote it back ("Incorrect API key provided: sk-...").
  std::string server_message(const std::string& body) const {
    std::string text = body.substr(0, 200);
    json j = json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object() && j.contains("error")) {
      const json& e = j["error"];
      if (e.is_object() && e.contains("message") && e["message"].is_string()) {
        text = e["message"].get<std::string>();
      } else if (e.is_string()) {
        text = e.get<std::string>();
      }
    }
    const std::string& key = m_opt.api_key;
    if (key.empty()) return text;
    for (std::size_t pos = text.find(key); pos != std::string::npos; pos = text.find(key, pos + 3)) {
      text.replace(pos, key.size(), "***");
    }
    return text;
  }

  Result<void> parse_answer(const std::string& body, std::span<Embedding> out) const {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("data") || !j["data"].is_array()) {
      return fail(ErrorCode::corruption, "embeddings answer is not a JSON object with a data list");
    }
    const json& data = j["data"];
    if (data.size() != out.size()) {
      return fail(ErrorCode::corruption, fmt::format("embeddings answer has {} vectors for {} inputs", data.size(), out.size()));
    }
    std::vector<bool> seen(out.size(), false);
    for (const auto& item : data) {
      if (!item.is_object() || !item.contains("index") || !item["index"].is_number_integer() || !item.contains("embedding") ||
          !item["embedding"].is_array()) {
        return fail(ErrorCode::corruption, "embeddings answer item without an integer index and an embedding list");
      }
      const auto idx = item["index"].get<std::int64_t>();
      if (idx < 0 || static_cast<std::size_t>(idx) >= out.size() || seen[static_cast<std::size_t>(idx)]) {
        return fail(ErrorCode::corruption, fmt::format("embeddings answer has a bad or repeated index {}", idx));
      }
      seen[static_cast<std::size_t>(idx)] = true;
      const json& vec = item["embedding"];
      if (static_cast<int>(vec.size()) != m_opt.dimension) {
        return fail(ErrorCode::corruption, fmt::format("model {} answered {} dimensions, expected {} (EMBEDDING_DIM)",
                                                       m_opt.model, vec.size(), m_opt.dimension));
      }
      Embedding e;
      e.reserve(vec.size());
      double norm = 0;
      for (const auto& x : vec) {
        if (!x.is_number()) return fail(ErrorCode::corruption, "embeddings answer holds a non-number");
        const float f = x.get<float>();
        if (!std::isfinite(f)) return fail(ErrorCode::corruption, "embeddings answer holds a non-finite number");
        e.push_back(f);
        norm += static_cast<double>(f) * f;
      }
      if (norm == 0) return fail(ErrorCode::corruption, "embeddings answer holds an all-zero vector");
      const float inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (float& f : e) f *= inv;
      out[static_cast<std::size_t>(idx)] = std::move(e);
    }
    return {};
  }

  OpenAIOptions m_opt;
  ParsedUrl m_url;
};

}  // namespace

std::string truncate_for_openai(std::string_view text) {
  constexpr std::size_t k_max = 24000;
  constexpr std::size_t k_space_after = 19200;
  if (text.size() <= k_max) return std::string(text);
  std::string_view cut = text.substr(0, k_max);
  // Do not split a UTF-8 sequence.
  while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80) cut.remove_suffix(1);
  if (!cut.empty() && static_cast<unsigned char>(cut.back()) >= 0xC0) cut.remove_suffix(1);
  const auto space = cut.rfind(' ');
  if (space != std::string_view::npos && space > k_space_after) cut = cut.substr(0, space);
  return std::string(cut);
}

Result<std::unique_ptr<Embedder>> make_openai_embedder(const OpenAIOptions& options) {
  if (options.api_key.empty()) {
    return fail(ErrorCode::invalid_argument, "EMBEDDING_PROVIDER=openai needs OPENAI_API_KEY");
  }
  VS_TRY_ASSIGN(ParsedUrl url, parse_base(options.base_url));
  return std::unique_ptr<Embedder>(std::make_unique<OpenAIEmbedder>(options, std::move(url)));
}

}  // namespace vstore::embed
