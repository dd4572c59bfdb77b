// SPDX-License-Identifier: Apache-2.0
// The Chroma API probe and collection look-up that ChromaStore and ChromaRemote share. Internal.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "chroma/chroma_http.hpp"
#include "vstore/result.hpp"

namespace vstore::chroma {

/// Distance space of a Chroma collection.
enum class Space { cosine, l2, ip };

/// Which HTTP API the server speaks (found by probing).
enum class ApiVersion { v1, v2 };

/// "cosine", "l2" or "ip".
[[nodiscard]] std::string_view space_name(Space space);

/// Where the collections of a tenant and database are, for one API version. Path segments are
/// percent-encoded (everything but RFC 3986 unreserved characters).
struct ApiScope {
  ApiVersion api = ApiVersion::v2;
  std::string tenant = "default_tenant";
  std::string database = "default_database";

  /// "/api/v2/tenants/T/databases/D/collections", or "/api/v1/collections".
  [[nodiscard]] std::string collections_path() const;
  /// "?tenant=T&database=D" for v1 (which takes them as a query), "" for v2.
  [[nodiscard]] std::string query() const;
  /// The collection `name`, for GET by name (with the v1 query).
  [[nodiscard]] std::string named_path(std::string_view name) const;
  /// The collection with id `id` (PUT to modify it).
  [[nodiscard]] std::string id_path(std::string_view id) const;
  /// A record operation ("upsert", "get", "query", "count", ...) of the collection with id `id`.
  [[nodiscard]] std::string record_path(std::string_view id, std::string_view op) const;
};

/// What a server speaks: its API version and how many records one request may carry.
struct ServerApi {
  ApiVersion api = ApiVersion::v2;
  std::int64_t max_batch = 1000;  ///< pre-flight-checks `max_batch_size`; 1000 when it names none
  std::string prefix = "/api/v2";  ///< "/api/v2" or "/api/v1"
};

/// Probes `/api/v2/heartbeat`, then `/api/v1/heartbeat` (Chroma 0.4/0.5 speak only v1; 1.x
/// answers v1 with 410), and reads max_batch_size from pre-flight-checks. Errors: unavailable
/// (no answer, or neither heartbeat answers 200), timeout.
[[nodiscard]] Result<ServerApi> probe_api(ChromaHttp& http);

/// A collection as the server describes it.
struct CollectionDescription {
  std::string id;                          ///< UUID
  std::optional<std::int64_t> dimension;   ///< null before the first add
  Space space = Space::l2;                 ///< effective_space() of the description
  nlohmann::json hnsw = nlohmann::json::object();      ///< the 1.x configuration's HNSW values, else the hnsw:* metadata
  nlohmann::json metadata = nlohmann::json::object();  ///< the collection's metadata (an object)
  std::optional<std::string> embedding_function_model;  ///< embedding_model_from_config() of its configuration
};

/// Reads a collection answer (GET by name, or create): id, dimension, metadata, and the space by
/// the one rule ChromaDir uses (effective_space: the 1.x configuration `configuration_json.hnsw`
/// unless it is all defaults and `hnsw:space` differs, else `hnsw:space`, else l2). Never
/// throws. Errors: corruption naming `name` and `server` (no id, an unknown space, a field of
/// the wrong JSON type).
[[nodiscard]] Result<CollectionDescription> describe_collection(const nlohmann::json& answer, std::string_view name,
                                                                std::string_view server);

/// GET of the collection `name`; nullopt when the server says it does not exist (1.x: 404;
/// Python 0.4/0.5: 500 or 400 "Collection x does not exist."). Errors: the request's.
[[nodiscard]] Result<std::optional<nlohmann::json>> find_collection(ChromaHttp& http, const ApiScope& scope,
                                                                    std::string_view name);

}  // namespace vstore::chroma
