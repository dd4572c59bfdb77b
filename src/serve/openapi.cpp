// SPDX-License-Identifier: Apache-2.0
#include "serve/openapi.hpp"

#include <string>

namespace vstore {
namespace {

using nlohmann::json;

json ref(const std::string& name) { return {{"$ref", "#/components/schemas/" + name}}; }

json json_body(const json& schema) { return {{"required", true}, {"content", {{"application/json", {{"schema", schema}}}}}}; }

json answer(const std::string& description, const json& schema) {
  return {{"description", description}, {"content", {{"application/json", {{"schema", schema}}}}}};
}

// The 4xx/5xx answers every route can give.
json with_errors(json responses) {
  const json error = answer("an error: its code and a message naming the value and what was expected", ref("Error"));
  for (const char* status : {"400", "401", "404", "408", "413", "500", "503"}) {
    if (!responses.contains(status)) responses[status] = error;
  }
  return responses;
}

json post(const std::string& summary, const json& request, const json& ok) {
  return {{"post", {{"summary", summary}, {"requestBody", json_body(request)}, {"responses", with_errors({{"200", ok}})}}}};
}

json object(json properties, json required = json::array()) {
  json o{{"type", "object"}, {"additionalProperties", false}, {"properties", std::move(properties)}};
  if (!required.empty()) o["required"] = std::move(required);
  return o;
}

}  // namespace

json openapi_document() {
  const json top_k{{"type", "integer"}, {"minimum", 1}, {"description", "at most the service's --max-top-k"}};
  const json where{{"type", "object"}, {"description", "a Chroma-style metadata filter ($eq $ne $gt $gte $lt $lte $in $nin $and $or)"}};
  const json vector{{"type", "array"}, {"items", {{"type", "number"}}}, {"description", "as many numbers as the store's dimension"}};
  json schemas;
  const json string_type{{"type", "string"}};
  json error_fields{{"type", "object"}, {"properties", {{"code", string_type}, {"message", string_type}}}};
  schemas["Error"] = {{"type", "object"}, {"properties", {{"error", error_fields}}}};
  schemas["Hit"] = {{"type", "object"},
                    {"properties", {{"id", {{"type", "string"}}},
                                    {"score", {{"type", "number"}, {"description", "cosine distance, smaller is nearer"}}},
                                    {"metadata", {{"type", "object"}}}}}};
  schemas["Results"] = {{"type", "object"}, {"properties", {{"results", {{"type", "array"}, {"items", ref("Hit")}}}, {"explain", {{"type", "object"}}}}}};
  schemas["Article"] = {{"type", "object"},
                        {"required", {"uri"}},
                        {"description", "the application's article: uri, title, summary, raw, topic, publication_date, news_source, tags, and further metadata"},
                        {"properties", {{"uri", {{"type", "string"}}}, {"title", {{"type", "string"}}}, {"summary", {{"type", "string"}}},
                                        {"raw", {{"type", "string"}}}, {"topic", {{"type", "string"}}},
                                        {"publication_date", {{"type", "string"}}}, {"news_source", {{"type", "string"}}},
                                        {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}}}}};
  schemas["Vectors"] = {{"type", "object"},
                        {"properties", {{"ids", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                                        {"metadatas", {{"type", "array"}, {"items", {{"type", "object"}}}}},
                                        {"vectors", {{"type", "array"}, {"items", vector}}},
                                        {"dim", {{"type", "integer"}}}}}};
  const json number{{"type", "number"}};
  const json strings{{"type", "array"}, {"items", string_type}};
  json cluster_fields{{"cluster", {{"type", "integer"}}}, {"label", {{"type", "string"}, {"description", "the terms joined by \" · \""}}},
                      {"terms", strings}, {"size", {{"type", "integer"}}},
                      {"x", {{"type", "number"}, {"description", "where to draw the label"}}}, {"y", number}};
  schemas["Map"] = {
      {"type", "object"},
      {"description", "the map of the whole collection: points is columnar (arrays of length count); fields holds every "
                      "scalar metadata key but title, raw and summary, null where missing; numbers at float32 precision"},
      {"required", {"count", "built_at", "method", "seed", "placed", "clusters", "points", "fields"}},
      {"properties",
       {{"count", {{"type", "integer"}}},
        {"built_at", {{"type", "string"}, {"description", "UTC time of the layout, e.g. 2026-12-07T15:00:00Z"}}},
        {"method", {{"type", "string"}, {"enum", {"umap"}}}},
        {"seed", {{"type", "integer"}}},
        {"placed", {{"type", "integer"}, {"description", "points placed into the map after its build (upserts)"}}},
        {"clusters", {{"type", "array"}, {"items", {{"type", "object"}, {"properties", cluster_fields}}}}},
        {"points", {{"type", "object"},
                    {"properties", {{"id", strings}, {"x", {{"type", "array"}, {"items", number}}}, {"y", {{"type", "array"}, {"items", number}}},
                                    {"cluster", {{"type", "array"}, {"items", {{"type", "integer"}}}}},
                                    {"title", {{"type", "array"}, {"items", {{"type", "string"}, {"nullable", true}}}}}}}}},
        {"fields", {{"type", "object"}, {"additionalProperties", {{"type", "array"}, {"items", {}}}}}}}}};
  json paths;
  paths["/health"] = {{"get", {{"summary", "check_vector_health: backend, versions, index, coverage, pool, latency, outbox, last validation"},
                               {"responses", with_errors({{"200", answer("healthy", {{"type", "object"}})},
                                                          {"503", answer("unhealthy: see reasons", {{"type", "object"}})}})}}}};
  paths["/metrics"] = {{"get", {{"summary", "Prometheus metrics (text format 0.0.4): requests by route and status, latency "
                                            "histograms, requests in flight, embedder calls/texts/seconds, the PostgreSQL pool, "
                                            "the dual-mode outbox"},
                                {"responses", {{"200", {{"description", "the metrics page"},
                                                        {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}}}}}}};
  paths["/openapi.json"] = {{"get", {{"summary", "this document"}, {"responses", {{"200", answer("OpenAPI 3", {{"type", "object"}})}}}}}};
  paths["/v1/search"] = post("search by text (embedded by the service) or by vector",
                             object({{"query", {{"type", "string"}}}, {"vector", vector}, {"top_k", top_k},
                                     {"where", where}, {"explain", {{"type", "boolean"}, {"description", "pgvector: the plan and EXPLAIN ANALYZE"}}}}),
                             answer("the nearest articles, nearest first", ref("Results")));
  paths["/v1/similar"] = post("the articles nearest to a stored article (itself excluded)",
                              object({{"uri", {{"type", "string"}}}, {"top_k", top_k}, {"where", where}}, {"uri"}),
                              answer("the nearest articles", ref("Results")));
  paths["/v1/articles"] = post("upsert_article: embed the article's text and store it",
                               object({{"article", ref("Article")}}, {"article"}),
                               answer("stored is false for an article without text", {{"type", "object"}, {"properties", {{"uri", {{"type", "string"}}}, {"stored", {{"type", "boolean"}}}}}}));
  paths["/v1/articles/batch"] = post("upsert a batch: all or nothing",
                                     object({{"articles", {{"type", "array"}, {"items", ref("Article")}, {"description", "at most --max-batch"}}}}, {"articles"}),
                                     answer("counts", {{"type", "object"}, {"properties", {{"received", {{"type", "integer"}}}, {"stored", {{"type", "integer"}}}, {"skipped_without_text", {{"type", "integer"}}}}}}));
  paths["/v1/vectors"] = post("get_vectors_by_metadata",
                              object({{"where", where}, {"limit", {{"type", "integer"}, {"minimum", 0}}}, {"include_vectors", {{"type", "boolean"}}}}),
                              answer("ids, metadatas and (unless include_vectors is false) vectors", ref("Vectors")));
  paths["/v1/projection"] = post("embedding_projection of the stored vectors: a 2-D UMAP layout (neighbour-preserving) with k-means clusters of the vectors",
                                 object({{"where", where}, {"limit", {{"type", "integer"}, {"minimum", 1}}},
                                         {"clusters", {{"type", "integer"}, {"minimum", 1}}}, {"seed", {{"type", "integer"}, {"minimum", 0}}}}),
                                 answer("points (id, x, y, cluster, size), centroids, sizes", {{"type", "object"}}));
  paths["/v1/map"] = {{"get", {{"summary", "the map of the whole collection: a UMAP layout, k-means clusters labelled by their "
                                           "titles; built once at start, upserted articles placed into it"},
                                {"responses", with_errors({{"200", answer("the map", ref("Map"))},
                                                           {"503", answer("the map is being built, or its build failed", ref("Error"))}})}}}};
  const json rebuild_body = object({{"clusters", {{"type", "integer"}, {"minimum", 0}, {"description", "0: automatic"}}},
                                    {"seed", {{"type", "integer"}, {"minimum", 0}}}});
  const json rebuild_answer{{"type", "object"},
                            {"properties", {{"building", {{"type", "boolean"}}}, {"started", {{"type", "boolean"}}}}}};
  json rebuild_request = json_body(rebuild_body);
  rebuild_request["required"] = false;
  paths["/v1/map/rebuild"] = {
      {"post", {{"summary", "rebuild the map in the background (the current one is served until then)"},
                {"requestBody", rebuild_request},
                {"responses", with_errors({{"202", answer("building; started is false when a build was already running", rebuild_answer)}})}}}};
  paths["/v1/embeddings"] = post("OpenAI-compatible embeddings by the service's engine",
                                 object({{"input", {{"oneOf", {{{"type", "string"}}, {{"type", "array"}, {"items", {{"type", "string"}}}}}}}},
                                         {"model", {{"type", "string"}}}, {"encoding_format", {{"type", "string"}, {"enum", {"float", "base64"}}}},
                                         {"dimensions", {{"type", "integer"}}}, {"user", {{"type", "string"}}}},
                                        {"input"}),
                                 answer("{object: list, data: [{object: embedding, index, embedding}], model, usage}", {{"type", "object"}}));
  return {{"openapi", "3.0.3"},
          {"info", {{"title", "vstore"}, {"version", VSTORE_VERSION}, {"description", "The article vector store on PostgreSQL + pgvector: search, similar articles, upsert, vectors, projection, the map of the collection, health and embeddings."}}},
          {"paths", paths},
          {"components", {{"schemas", schemas}, {"securitySchemes", {{"bearer", {{"type", "http"}, {"scheme", "bearer"}}}}}}},
          {"security", {{{"bearer", json::array()}}}}};
}

}  // namespace vstore
