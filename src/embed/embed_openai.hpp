// SPDX-License-Identifier: Apache-2.0
// OpenAIEmbedder: the Embedder over an OpenAI-compatible `POST {base}/v1/embeddings` endpoint.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "vstore/embedder.hpp"

namespace vstore::embed {

/// Settings of the client. Defaults suit the OpenAI API.
struct OpenAIOptions {
  std::string base_url = "https://api.openai.com";  ///< OPENAI_BASE_URL; the path /v1/embeddings is appended
  std::string api_key;                              ///< OPENAI_API_KEY; sent as a bearer token, never logged
  std::string model = "text-embedding-3-small";     ///< EMBEDDING_MODEL
  int dimension = 1536;                             ///< EMBEDDING_DIM; every answer must have it
  bool send_dimensions = true;                      ///< send `dimensions` (text-embedding-3 models take it)
  std::size_t max_batch_inputs = 256;               ///< inputs per request (the API allows 2048)
  std::size_t max_batch_chars = 400000;             ///< characters per request (~100k tokens; the API allows 300k tokens)
  int max_attempts = 5;                             ///< tries per request on 429, 5xx and connection errors
  std::chrono::milliseconds backoff_base{500};      ///< first back-off; doubles per try, with full jitter
  std::chrono::milliseconds backoff_max{20000};     ///< longest single wait (also caps Retry-After)
  std::chrono::seconds timeout{60};                 ///< connect, read and write timeout per request
};

/// Errors of embed(): invalid_argument (a blank text; a 4xx answer other than 429, with the
/// server's message), unavailable (server unreachable or 429/5xx after every try), timeout,
/// corruption (an answer that is not the expected JSON, or vectors of another dimension).
/// Thread-safe: each call uses its own connection.
[[nodiscard]] Result<std::unique_ptr<Embedder>> make_openai_embedder(const OpenAIOptions& options);

/// Texts longer than the model's input limit are cut as the code being replaced cut them when
/// it could not count tokens: to 24,000 characters, at the last space if that lies past 19,200.
[[nodiscard]] std::string truncate_for_openai(std::string_view text);

}  // namespace vstore::embed
