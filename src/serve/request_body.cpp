// SPDX-License-Identifier: Apache-2.0
// The request bodies of `vstore serve`, parsed and checked with no store in reach: every field
// is checked before a route runs (an unknown field, a wrong type, a value beyond a limit is a
// 4xx naming it). Kept apart from http_service.cpp so that fuzz/fuzz_request.cpp can feed it
// untrusted bytes without a store or a socket.
#include "serve/request_body.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "vstore/article.hpp"

namespace vstore::serve {

using nlohmann::json;

namespace {
// JSON levels a request body may nest: a filter at its deepest (32 levels) takes 72.
constexpr int k_max_body_depth = 100;
}  // namespace

int status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument: return 400;
    case ErrorCode::not_found: return 404;
    case ErrorCode::conflict: return 409;
    case ErrorCode::unavailable: return 503;
    case ErrorCode::timeout: return 504;
    case ErrorCode::corruption:
    case ErrorCode::internal: return 500;
  }
  return 500;
}

HttpError from(const Error& e) { return HttpError{status_of(e.code()), std::string(to_string(e.code())), e.message()}; }

HttpError bad(std::string message) { return HttpError{400, "invalid_argument", std::move(message)}; }

std::string error_json(const HttpError& e) {
  // A message may quote the body (nlohmann's parse error quotes the bytes it last read), which
  // need not be UTF-8: the strict dump threw out of the route and the client got a 500.
  return json{{"error", {{"code", e.code}, {"message", e.message}}}}.dump(-1, ' ', false,
                                                                          json::error_handler_t::replace);
}

Body::Body(const std::string& text, std::initializer_list<const char*> allowed) {
  if (text.empty()) throw bad("the request needs a JSON object body");
  // A key twice in one object is refused: JSON leaves its meaning open, and a proxy that
  // checked the first value must not see the service act on the second. So is nesting past
  // k_max_body_depth (no request needs it): the parser keeps its own stack, but what reads the
  // tree afterwards (the filter parser, the writer of an error's JSON) recurses, and 100,000
  // nested arrays overflowed a request thread's stack.
  std::vector<std::set<std::string>> keys;
  std::string repeated;
  bool too_deep = false;
  const json::parser_callback_t check_shape = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > k_max_body_depth) {
      too_deep = true;
      return false;
    }
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!keys.empty()) keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
               repeated.empty()) {
      repeated = parsed.get<std::string>();
    }
    return true;
  };
  try {
    m_json = json::parse(text, check_shape);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number such as 1e400
    throw bad(fmt::format("the body is not JSON: {}", e.what()));
  }
  if (too_deep) throw bad(fmt::format("the body is nested deeper than {} levels", k_max_body_depth));
  if (!repeated.empty()) {
    throw bad(fmt::format("the key {} appears twice in one object; expected each key once",
                          json(repeated).dump(-1, ' ', false, json::error_handler_t::replace)));
  }
  if (!m_json.is_object()) throw bad(fmt::format("the body must be a JSON object, not {}", m_json.type_name()));
  for (const auto& [key, value] : m_json.items()) {
    if (std::none_of(allowed.begin(), allowed.end(), [&](const char* a) { return key == a; })) {
      std::string names;
      for (const char* a : allowed) names += fmt::format("{}{}", names.empty() ? "" : ", ", a);
      throw bad(fmt::format("unknown field \"{}\"; expected {}", key, names));
    }
  }
}

bool Body::has(const char* key) const { return m_json.contains(key) && !m_json[key].is_null(); }

const json& Body::get(const char* key) const { return m_json[key]; }

std::string Body::text(const char* key) const {
  if (!has(key)) throw bad(fmt::format("\"{}\" is required", key));
  if (!m_json[key].is_string()) throw bad(fmt::format("\"{}\" must be a string, not {}", key, m_json[key].type_name()));
  return m_json[key].get<std::string>();
}

std::int64_t Body::integer(const char* key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const {
  if (!has(key)) return fallback;
  const json& v = m_json[key];
  if (!v.is_number_integer()) throw bad(fmt::format("\"{}\" must be an integer, not {}", key, v.dump()));
  const auto n = v.get<std::int64_t>();
  if (n < lo || n > hi) throw bad(fmt::format("\"{}\" must be from {} to {}, not {}", key, lo, hi, n));
  return n;
}

bool Body::flag(const char* key) const {
  if (!has(key)) return false;
  if (!m_json[key].is_boolean()) throw bad(fmt::format("\"{}\" must be true or false, not {}", key, m_json[key].dump()));
  return m_json[key].get<bool>();
}

std::optional<FilterNode> Body::where(const char* key) const {
  if (!has(key)) return std::nullopt;
  auto parsed = parse_filter(m_json[key]);
  if (!parsed) throw bad(fmt::format("\"{}\": {}", key, parsed.error().message()));
  return std::move(*parsed);
}

std::vector<float> vector_of(const json& v, const char* key, std::size_t dim) {
  if (!v.is_array()) throw bad(fmt::format("\"{}\" must be an array of numbers, not {}", key, v.type_name()));
  if (v.size() != dim) throw bad(fmt::format("\"{}\" has {} numbers; the store's vectors have {}", key, v.size(), dim));
  std::vector<float> out;
  out.reserve(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number()) throw bad(fmt::format("\"{}\"[{}] must be a number, not {}", key, i, v[i].dump()));
    const double x = v[i].get<double>();
    if (!std::isfinite(x)) throw bad(fmt::format("\"{}\"[{}] is not finite", key, i));
    // A finite double beyond float32 would become infinity as a float.
    if (std::fabs(x) > static_cast<double>(std::numeric_limits<float>::max())) {
      throw bad(fmt::format("\"{}\"[{}] is {}, beyond the float32 range (at most {} in magnitude)", key, i, x,
                            std::numeric_limits<float>::max()));
    }
    out.push_back(static_cast<float>(x));
  }
  return out;
}

Article article_of(const json& record, const std::string& where) {
  if (!record.is_object()) throw bad(fmt::format("{} must be an object, not {}", where, record.type_name()));
  auto a = article_from_json(record);
  if (!a) throw bad(fmt::format("{}: {}", where, a.error().message()));
  return std::move(*a);
}

namespace {

int top_k(const Body& b, int fallback, const RequestLimits& limits) {
  return static_cast<int>(b.integer("top_k", fallback, 1, limits.max_top_k));
}

}  // namespace

SearchRequest parse_search(const std::string& body, const RequestLimits& limits, std::size_t dimension) {
  Body b(body, {"query", "vector", "top_k", "where", "explain"});
  if (b.has("query") == b.has("vector")) throw bad("give either \"query\" (text) or \"vector\" (numbers), not both or neither");
  SearchRequest r;
  r.top_k = top_k(b, 10, limits);
  r.where = b.where();
  if (b.has("vector")) {
    r.vector = vector_of(b.get("vector"), "vector", dimension);
  } else {
    r.query = b.text("query");
    if (r.query.find_first_not_of(" \t\r\n") == std::string::npos) throw bad("\"query\" is blank");
  }
  r.explain = b.flag("explain");
  return r;
}

SimilarRequest parse_similar(const std::string& body, const RequestLimits& limits) {
  Body b(body, {"uri", "top_k", "where"});
  SimilarRequest r;
  r.uri = b.text("uri");
  r.top_k = top_k(b, 5, limits);
  r.where = b.where();
  return r;
}

Article parse_article(const std::string& body) {
  Body b(body, {"article"});
  if (!b.has("article")) throw bad("\"article\" is required");
  return article_of(b.get("article"), "\"article\"");
}

std::vector<Article> parse_article_batch(const std::string& body, const RequestLimits& limits) {
  Body b(body, {"articles"});
  if (!b.has("articles") || !b.get("articles").is_array()) throw bad("\"articles\" must be an array of articles");
  const json& list = b.get("articles");
  if (list.size() > limits.max_batch) {
    throw HttpError{413, "too_many",
                    fmt::format("{} articles in one batch; the limit is {} (--max-batch)", list.size(), limits.max_batch)};
  }
  std::vector<Article> articles;
  articles.reserve(list.size());
  for (std::size_t i = 0; i < list.size(); ++i) articles.push_back(article_of(list[i], fmt::format("\"articles\"[{}]", i)));
  return articles;
}

VectorsRequest parse_vectors(const std::string& body, const RequestLimits& limits) {
  Body b(body, {"where", "limit", "include_vectors"});
  VectorsRequest r;
  r.limit = b.integer("limit", limits.max_vectors, 0, limits.max_vectors);
  r.with_vectors = !b.has("include_vectors") || b.flag("include_vectors");
  r.where = b.where();
  return r;
}

ProjectionRequest parse_projection(const std::string& body, const RequestLimits& limits) {
  Body b(body, {"where", "limit", "clusters", "seed"});
  ProjectionRequest r;
  r.limit = b.integer("limit", limits.max_vectors, 1, limits.max_vectors);
  r.clusters = static_cast<int>(b.integer("clusters", 3, 1, 1000));
  r.seed = static_cast<std::uint64_t>(b.integer("seed", 42, 0, std::numeric_limits<std::int64_t>::max()));
  r.where = b.where();
  return r;
}

std::optional<MapRebuildRequest> parse_map_rebuild(const std::string& body) {
  if (body.empty()) return std::nullopt;
  Body b(body, {"clusters", "seed"});
  MapRebuildRequest r;
  r.clusters = static_cast<int>(b.integer("clusters", 0, 0, 1000));
  r.seed = static_cast<std::uint64_t>(b.integer("seed", 42, 0, std::numeric_limits<std::int64_t>::max()));
  return r;
}

EmbeddingsRequest parse_embeddings(const std::string& body, const RequestLimits& limits, std::string_view model,
                                   int dimension) {
  Body b(body, {"input", "model", "encoding_format", "dimensions", "user"});
  if (!b.has("input")) throw bad("\"input\" is required: a string or an array of strings");
  EmbeddingsRequest r;
  const json& input = b.get("input");
  if (input.is_string()) {
    r.texts.push_back(input.get<std::string>());
  } else if (input.is_array()) {
    for (std::size_t i = 0; i < input.size(); ++i) {
      if (!input[i].is_string()) {
        throw bad(fmt::format("\"input\"[{}] must be a string (token arrays are not accepted), not {}", i,
                              input[i].type_name()));
      }
      r.texts.push_back(input[i].get<std::string>());
    }
  } else {
    throw bad(fmt::format("\"input\" must be a string or an array of strings, not {}", input.type_name()));
  }
  if (r.texts.empty()) throw bad("\"input\" is an empty array");
  if (r.texts.size() > limits.max_batch) {
    throw HttpError{413, "too_many",
                    fmt::format("{} inputs in one call; the limit is {} (--max-batch)", r.texts.size(), limits.max_batch)};
  }
  if (b.has("model") && b.text("model") != model) {
    throw bad(fmt::format("model \"{}\" is not served here; this service embeds with \"{}\"", b.text("model"), model));
  }
  if (b.has("dimensions") && b.integer("dimensions", dimension, 1, 100000) != dimension) {
    throw bad(fmt::format("\"dimensions\" must be {} (the model's), not {}", dimension, b.get("dimensions").dump()));
  }
  std::string format = "float";
  if (b.has("encoding_format")) format = b.text("encoding_format");
  if (format != "float" && format != "base64") {
    throw bad(fmt::format("\"encoding_format\" must be \"float\" or \"base64\", not \"{}\"", format));
  }
  r.base64 = format == "base64";
  return r;
}

}  // namespace vstore::serve
