// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the request bodies of `vstore serve` (serve/request_body.hpp), the part of
// the service that reads untrusted bytes before any route touches the store.
//
// Byte 0 of the input picks the route, the rest is the body:
//   0 /v1/search  1 /v1/similar  2 /v1/articles  3 /v1/articles/batch  4 /v1/vectors
//   5 /v1/projection  6 /v1/map/rebuild  7 /v1/embeddings
// with the service's default limits, a store of 4 dimensions and an embedder "fuzz-model" of 4.
// A refusal must be a 400 or 413 with a code and a message, and its JSON answer must be
// written (error_json never throws); an accepted body must hold what the route relies on.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "serve/request_body.hpp"

namespace {

namespace serve = vstore::serve;

constexpr std::size_t k_dimension = 4;

[[noreturn]] void fail_check(const char* what) {
  std::fprintf(stderr, "fuzz_request: %s\n", what);
  std::abort();
}

void check_top_k(int top_k, const serve::RequestLimits& limits) {
  if (top_k < 1 || top_k > limits.max_top_k) fail_check("top_k outside 1..max_top_k");
}

void route(unsigned selector, const std::string& body, const serve::RequestLimits& limits) {
  switch (selector % 8) {
    case 0: {
      const auto r = serve::parse_search(body, limits, k_dimension);
      check_top_k(r.top_k, limits);
      if (r.vector) {
        if (r.vector->size() != k_dimension) fail_check("a search vector of the wrong dimension");
        for (const float x : *r.vector) {
          if (!std::isfinite(x)) fail_check("a search vector element that is not finite");
        }
      } else if (r.query.find_first_not_of(" \t\r\n") == std::string::npos) {
        fail_check("a blank query accepted");
      }
      break;
    }
    case 1: {
      const auto r = serve::parse_similar(body, limits);
      check_top_k(r.top_k, limits);
      break;
    }
    case 2: {
      const auto a = serve::parse_article(body);
      if (a.uri.empty()) fail_check("an article without a uri accepted");
      break;
    }
    case 3: {
      const auto articles = serve::parse_article_batch(body, limits);
      if (articles.size() > limits.max_batch) fail_check("a batch beyond max_batch accepted");
      for (const auto& a : articles) {
        if (a.uri.empty()) fail_check("an article without a uri accepted");
      }
      break;
    }
    case 4: {
      const auto r = serve::parse_vectors(body, limits);
      if (r.limit < 0 || r.limit > limits.max_vectors) fail_check("a vectors limit outside 0..max_vectors");
      break;
    }
    case 5: {
      const auto r = serve::parse_projection(body, limits);
      if (r.limit < 1 || r.limit > limits.max_vectors) fail_check("a projection limit outside 1..max_vectors");
      if (r.clusters < 1 || r.clusters > 1000) fail_check("clusters outside 1..1000");
      break;
    }
    case 6: {
      const auto r = serve::parse_map_rebuild(body);
      if (r && (r->clusters < 0 || r->clusters > 1000)) fail_check("map clusters outside 0..1000");
      break;
    }
    default: {
      const auto r = serve::parse_embeddings(body, limits, "fuzz-model", static_cast<int>(k_dimension));
      if (r.texts.empty() || r.texts.size() > limits.max_batch) fail_check("an embeddings input count outside 1..max_batch");
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  const serve::RequestLimits limits;
  try {
    route(data[0], body, limits);
  } catch (const serve::HttpError& e) {
    if (e.status != 400 && e.status != 413) fail_check("a refusal that is neither 400 nor 413");
    if (e.code.empty() || e.message.empty()) fail_check("a refusal without a code or a message");
    // The answer the service writes for it (an exception here escapes the route as a 500).
    (void)serve::error_json(e);
  }
  return 0;
}
