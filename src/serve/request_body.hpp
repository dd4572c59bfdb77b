// SPDX-License-Identifier: Apache-2.0
// The request bodies of `vstore serve`: parsed and checked before any route touches the store (internal).
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/error.hpp"
#include "vstore/filter.hpp"
#include "vstore/types.hpp"

namespace vstore::serve {

/// A request that cannot be served: its HTTP status and the error's code and message. Thrown by
/// everything below; the service's route wrapper answers it as {"error": {code, message}}.
struct HttpError {
  int status = 400;
  std::string code;
  std::string message;
};

/// The HTTP status of a library error code (invalid_argument 400, not_found 404, ...).
[[nodiscard]] int status_of(ErrorCode code);
/// The HttpError of a library error.
[[nodiscard]] HttpError from(const Error& e);
/// A 400 invalid_argument with `message`.
[[nodiscard]] HttpError bad(std::string message);
/// The JSON text of an error answer, {"error": {"code": ..., "message": ...}}. Never throws:
/// bytes of the message that are not UTF-8 (a JSON parse error quotes the body) become U+FFFD.
[[nodiscard]] std::string error_json(const HttpError& e);

/// The request body: a JSON object whose keys are all in `allowed`. Throws HttpError (400)
/// naming the problem: an empty body, text that is not JSON, not an object, an unknown field.
class Body {
 public:
  Body(const std::string& text, std::initializer_list<const char*> allowed);
  /// Whether `key` is present and not null.
  [[nodiscard]] bool has(const char* key) const;
  /// The value of `key` (null when absent).
  [[nodiscard]] const nlohmann::json& get(const char* key) const;
  /// `key` as a string; 400 when absent or not a string.
  [[nodiscard]] std::string text(const char* key) const;
  /// `key` as an integer in lo..hi, `fallback` when absent; 400 otherwise.
  [[nodiscard]] std::int64_t integer(const char* key, std::int64_t fallback, std::int64_t lo, std::int64_t hi) const;
  /// `key` as a bool, false when absent; 400 otherwise.
  [[nodiscard]] bool flag(const char* key) const;
  /// `key` parsed by parse_filter(), nullopt when absent; 400 naming the key and the filter's error.
  [[nodiscard]] std::optional<FilterNode> where(const char* key = "where") const;

 private:
  nlohmann::json m_json;
};

/// `v` as a vector of `dim` finite float32 values; 400 naming `key` (and the element and value).
[[nodiscard]] std::vector<float> vector_of(const nlohmann::json& v, const char* key, std::size_t dim);

/// `record` (an object) as an Article (article_from_json); 400 prefixed with `where`.
[[nodiscard]] Article article_of(const nlohmann::json& record, const std::string& where);

/// The limits of ServeOptions the bodies are checked against.
struct RequestLimits {
  int max_top_k = 1000;
  std::size_t max_batch = 1000;
  std::int64_t max_vectors = 100000;
};

/// POST /v1/search: either `vector` (the store's `dimension` finite numbers) or a non-blank `query`.
struct SearchRequest {
  std::optional<std::vector<float>> vector;
  std::string query;  ///< set when `vector` is not
  int top_k = 10;
  std::optional<FilterNode> where;
  bool explain = false;
};
[[nodiscard]] SearchRequest parse_search(const std::string& body, const RequestLimits& limits, std::size_t dimension);

/// POST /v1/similar.
struct SimilarRequest {
  std::string uri;
  int top_k = 5;
  std::optional<FilterNode> where;
};
[[nodiscard]] SimilarRequest parse_similar(const std::string& body, const RequestLimits& limits);

/// POST /v1/articles: the one article.
[[nodiscard]] Article parse_article(const std::string& body);

/// POST /v1/articles/batch: at most max_batch articles (more is 413 too_many).
[[nodiscard]] std::vector<Article> parse_article_batch(const std::string& body, const RequestLimits& limits);

/// POST /v1/vectors.
struct VectorsRequest {
  std::int64_t limit = 0;  ///< 0..max_vectors, default max_vectors
  bool with_vectors = true;
  std::optional<FilterNode> where;
};
[[nodiscard]] VectorsRequest parse_vectors(const std::string& body, const RequestLimits& limits);

/// POST /v1/projection.
struct ProjectionRequest {
  std::int64_t limit = 0;  ///< 1..max_vectors, default max_vectors
  int clusters = 3;
  std::uint64_t seed = 42;
  std::optional<FilterNode> where;
};
[[nodiscard]] ProjectionRequest parse_projection(const std::string& body, const RequestLimits& limits);

/// POST /v1/map/rebuild: nullopt for an empty body (the service's own map options then apply).
struct MapRebuildRequest {
  int clusters = 0;  ///< 0..1000, 0: automatic
  std::uint64_t seed = 42;
};
[[nodiscard]] std::optional<MapRebuildRequest> parse_map_rebuild(const std::string& body);

/// POST /v1/embeddings for an embedder of `model` and `dimension`.
struct EmbeddingsRequest {
  std::vector<std::string> texts;
  bool base64 = false;
};
[[nodiscard]] EmbeddingsRequest parse_embeddings(const std::string& body, const RequestLimits& limits,
                                                 std::string_view model, int dimension);

}  // namespace vstore::serve
