// SPDX-License-Identifier: Apache-2.0
// The Chroma API probe and collection look-up. Design: one place decides which API a server
// speaks, builds the collection paths, and reads a collection's description, so that the store
// (ChromaStore) and the migration reader (ChromaRemote) agree on every collection, its space
// above all: the rule is effective_space(), the one ChromaDir applies to a persistent directory.
// Every JSON access checks the type first; nothing here throws.
#include "chroma/chroma_api.hpp"

#include <fmt/format.h>

#include "chroma/chroma_dir.hpp"

namespace vstore::chroma {
namespace {

using nlohmann::json;

constexpr std::int64_t k_max_dimension = 1 << 16;  // pgvector's vector type holds up to 16,000

// A path segment with everything but RFC 3986 unreserved characters percent-encoded.
std::string path_segment(std::string_view s) {
  std::string out;
  for (unsigned char ch : s) {
    const bool unreserved = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                            ch == '.' || ch == '_' || ch == '~';
    if (unreserved) {
      out += static_cast<char>(ch);
    } else {
      out += fmt::format("%{:02X}", ch);
    }
  }
  return out;
}

}  // namespace

std::string_view space_name(Space space) {
  switch (space) {
    case Space::cosine: return "cosine";
    case Space::l2: return "l2";
    case Space::ip: return "ip";
  }
  return "l2";
}

std::string ApiScope::collections_path() const {
  if (api == ApiVersion::v2) {
    return fmt::format("/api/v2/tenants/{}/databases/{}/collections", path_segment(tenant), path_segment(database));
  }
  return "/api/v1/collections";
}

std::string ApiScope::query() const {
  return api == ApiVersion::v1 ? fmt::format("?tenant={}&database={}", path_segment(tenant), path_segment(database)) : "";
}

std::string ApiScope::named_path(std::string_view name) const {
  return fmt::format("{}/{}{}", collections_path(), path_segment(name), query());
}

std::string ApiScope::id_path(std::string_view id) const { return fmt::format("{}/{}", collections_path(), path_segment(id)); }

std::string ApiScope::record_path(std::string_view id, std::string_view op) const {
  return fmt::format("{}/{}/{}", collections_path(), path_segment(id), op);
}

Result<ServerApi> probe_api(ChromaHttp& http) {
  ServerApi out;
  VS_TRY_ASSIGN(HttpAnswer v2, http.probe("/api/v2/heartbeat"));
  if (v2.status != 200) {
    VS_TRY_ASSIGN(HttpAnswer v1, http.probe("/api/v1/heartbeat"));
    if (v1.status != 200) {
      return fail(ErrorCode::unavailable,
                  fmt::format("chroma server {} answers neither /api/v2/heartbeat (HTTP {}) nor /api/v1/heartbeat "
                              "(HTTP {}); is it a Chroma server?",
                              http.server(), v2.status, v1.status));
    }
    out.api = ApiVersion::v1;
    out.prefix = "/api/v1";
  }
  VS_TRY_ASSIGN(HttpAnswer checks, http.probe(out.prefix + "/pre-flight-checks"));
  if (checks.status == 200 && checks.body.is_object()) {
    auto it = checks.body.find("max_batch_size");
    if (it != checks.body.end() && it->is_number_integer() && it->get<std::int64_t>() > 0) {
      out.max_batch = it->get<std::int64_t>();
    }
  }
  return out;
}

Result<CollectionDescription> describe_collection(const json& answer, std::string_view name, std::string_view server) {
  auto bad = [&](std::string_view what) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} described collection {} {}", server, name, what));
  };
  if (!answer.is_object()) return bad(fmt::format("as a JSON {}, not an object", answer.type_name()));
  CollectionDescription out;
  auto id = answer.find("id");
  if (id == answer.end() || !id->is_string()) return bad("without an id");
  out.id = id->get<std::string>();
  if (auto dim = answer.find("dimension"); dim != answer.end() && !dim->is_null()) {
    // A number too large for int64 reads as negative here and is refused with the rest.
    const std::int64_t value = dim->is_number_integer() ? dim->get<std::int64_t>() : 0;
    if (value < 1 || value > k_max_dimension) {
      return bad(fmt::format("with the dimension {}, expected an integer from 1 to {}", dim->dump(), k_max_dimension));
    }
    out.dimension = value;
  }
  std::optional<std::string> metadata_space;
  if (auto md = answer.find("metadata"); md != answer.end() && !md->is_null()) {
    if (!md->is_object()) return bad(fmt::format("with metadata that is a JSON {}", md->type_name()));
    out.metadata = *md;
    if (auto sp = md->find("hnsw:space"); sp != md->end() && sp->is_string()) metadata_space = sp->get<std::string>();
  }
  std::optional<std::string> config_space;
  json config_hnsw = json::object();
  if (auto cfg = answer.find("configuration_json"); cfg != answer.end() && cfg->is_object()) {
    if (auto h = cfg->find("hnsw"); h != cfg->end() && h->is_object()) {
      config_hnsw = *h;
      if (auto sp = h->find("space"); sp != h->end() && !sp->is_null()) {
        if (!sp->is_string()) return bad(fmt::format("with a configured space that is a JSON {}", sp->type_name()));
        config_space = sp->get<std::string>();
      }
    }
    out.embedding_function_model = embedding_model_from_config(*cfg);
  }
  const std::string space = effective_space(config_space, config_hnsw, metadata_space);
  if (space == "cosine") {
    out.space = Space::cosine;
  } else if (space == "ip") {
    out.space = Space::ip;
  } else if (space == "l2") {
    out.space = Space::l2;
  } else {
    return bad(fmt::format("with the unknown distance space \"{}\"", space));
  }
  out.hnsw = config_hnsw;
  if (out.hnsw.empty()) {
    for (const auto& [key, value] : out.metadata.items()) {
      if (key.starts_with("hnsw:")) out.hnsw[key.substr(5)] = value;
    }
  }
  return out;
}

Result<std::optional<json>> find_collection(ChromaHttp& http, const ApiScope& scope, std::string_view name) {
  auto found = http.get(scope.named_path(name));
  if (found) return std::optional<json>(std::move(*found));
  const bool missing = found.error().code() == ErrorCode::not_found ||
                       found.error().message().find("does not exist") != std::string::npos;
  if (!missing) return fail(found.error());
  return std::optional<json>{};
}

}  // namespace vstore::chroma
