// SPDX-License-Identifier: Apache-2.0
// ChromaRemote. Design:
// - open(): probe_api(), the probing ChromaStore uses (v2 heartbeat, else v1 for Chroma 0.4/0.5,
//   max_batch_size from pre-flight-checks), then the version string, all through ChromaHttp,
//   which sends CHROMA_TOKEN in both token headers, retries reads, and names the (redacted)
//   server in every error.
// - collection(): find_collection() and describe_collection(), as ChromaStore: GET by name (both
//   APIs take the name there; record operations take the id); the space by effective_space(),
//   the rule ChromaDir applies to a directory.
// - read(): count, then `get` pages of limit/offset until a short page. Chroma returns storage
//   order (rowid in 1.x and from 0.5.9, the string id before), which is stable while nobody
//   writes, so paging sees every record once. A count that differs afterwards, or an id seen
//   twice, means the collection changed under the reader: refused (conflict) rather than
//   migrating a torn copy. Records are then sorted by id, as ChromaDir sorts them, because
//   checkpoints resume after an id.
// - Vectors: Chroma sends float32 values as JSON numbers (1.x: the shortest decimal that reads
//   back as that float; Python 0.x: the exact value as a double). nlohmann parses each to the
//   nearest double; rounding that double to float gives the original float in both cases,
//   except for a double exactly halfway between two floats (one value and its negative among
//   all 2^32), which to_float_exact() settles by the shortest decimal (chroma_remote_test.cpp).
// nlohmann::json exceptions are caught in read() and turned into corruption; collection() reads
// through describe_collection(), which checks every type.
#include "chroma/chroma_remote.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>

namespace vstore::chroma {
namespace {

using nlohmann::json;

// 2^128 - 2^103: doubles from here up round to infinity as float.
constexpr double k_float_overflow = 0x1.ffffffp+127;

// Target size of one `get` answer when the caller names no page size.
constexpr std::int64_t k_page_bytes = 16 << 20;

// The optional string at `values[i]`, where `values` may be null (not included) or hold nulls.
std::optional<std::string> string_at(const json* values, std::size_t i) {
  if (values == nullptr || i >= values->size() || !(*values)[i].is_string()) return std::nullopt;
  return (*values)[i].get<std::string>();
}

// The array `page[key]`, or nullptr when absent or null; corruption for any other shape or a
// length other than `n`.
Result<const json*> column(const json& page, const char* key, std::size_t n, const std::string& server) {
  auto it = page.find(key);
  if (it == page.end() || it->is_null()) return static_cast<const json*>(nullptr);
  if (!it->is_array() || it->size() != n) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered get with {} {} for {} ids", server,
                                                   it->is_array() ? std::to_string(it->size()) : it->type_name(), key, n));
  }
  return &*it;
}

// The double that the shortest decimal of `f` reads as.
double shortest_as_double(float f) {
  char buf[64];
  const auto written = std::to_chars(buf, buf + sizeof buf, f);
  double d = 0;
  std::from_chars(buf, written.ptr, d);
  return d;
}

// The float32 a JSON number was written from, given the double it parsed to. Rounding the
// double to float is right except when the double lands exactly halfway between two floats
// (the decimal was on one side of that midpoint, the double is on it, and ties go to even):
// for float32 shortest decimals this happens for 7.038531e-26 and its negative (exhaustive
// check over all 2^32 bit patterns). There, the float whose shortest decimal reads as this
// double is the one that was written.
float to_float_exact(double d) {
  const float f = static_cast<float>(d);
  const double fd = f;
  if (fd == d) return f;
  const float inf = std::numeric_limits<float>::infinity();
  const float other = std::nextafter(f, d > fd ? inf : -inf);
  if (std::fabs(d - fd) != std::fabs(static_cast<double>(other) - d)) return f;
  for (float candidate : {f, other}) {
    if (std::isfinite(candidate) && shortest_as_double(candidate) == d) return candidate;
  }
  return f;
}

}  // namespace

Result<void> decode_json_vector(const json& values, std::size_t dim, std::vector<float>& out) {
  if (!values.is_array()) {
    return fail(ErrorCode::corruption, fmt::format("an embedding is a JSON {}, not an array", values.type_name()));
  }
  if (dim > 0 && values.size() != dim) {
    return fail(ErrorCode::corruption, fmt::format("an embedding has {} values, expected {}", values.size(), dim));
  }
  out.reserve(out.size() + values.size());
  for (std::size_t i = 0; i < values.size(); ++i) {
    const json& x = values[i];
    double d = 0;
    if (x.is_number_float()) {
      d = x.get<double>();
    } else if (x.is_number_integer()) {
      d = x.is_number_unsigned() ? static_cast<double>(x.get<std::uint64_t>()) : static_cast<double>(x.get<std::int64_t>());
    } else {
      return fail(ErrorCode::corruption, fmt::format("element {} of an embedding is a JSON {}, not a number", i, x.type_name()));
    }
    if (!std::isfinite(d) || std::fabs(d) >= k_float_overflow) {
      return fail(ErrorCode::corruption, fmt::format("element {} of an embedding, {}, is outside the float32 range", i, d));
    }
    out.push_back(to_float_exact(d));
  }
  return {};
}

struct ChromaRemote::Impl {
  RemoteOptions options;
  std::unique_ptr<ChromaHttp> http;
  ServerApi server;  // what probe_api() found
  ApiScope scope;
  std::string version;
  RemoteStats stats;

  [[nodiscard]] std::string record_path(const std::string& id, std::string_view op) const {
    return scope.record_path(id, op);
  }

  Result<std::int64_t> count(const CollectionInfo& c) {
    VS_TRY_ASSIGN(json n, http->get(record_path(c.id, "count")));
    if (!n.is_number_integer() || n.get<std::int64_t>() < 0) {
      return fail(ErrorCode::corruption,
                  fmt::format("chroma server {} answered the count of collection {} with {}", http->server(), c.name, n.dump()));
    }
    return n.get<std::int64_t>();
  }

  // One page of records into `snap`; returns how many ids the page held.
  Result<std::size_t> read_page(const CollectionInfo& c, std::int64_t offset, std::int64_t limit, Snapshot& snap,
                                std::unordered_set<std::string>& seen) {
    const json body = {{"limit", limit},
                       {"offset", offset},
                       {"include", json::array({"embeddings", "documents", "metadatas", "uris"})}};
    VS_TRY_ASSIGN(json page, http->post(record_path(c.id, "get"), body, Retry::read));
    const std::string& server = http->server();
    if (!page.is_object() || !page.contains("ids") || !page["ids"].is_array()) {
      return fail(ErrorCode::corruption, fmt::format("chroma server {} answered get on collection {} without ids", server, c.name));
    }
    const json& ids = page["ids"];
    const std::size_t n = ids.size();
    VS_TRY_ASSIGN(const json* embeddings, column(page, "embeddings", n, server));
    VS_TRY_ASSIGN(const json* documents, column(page, "documents", n, server));
    VS_TRY_ASSIGN(const json* metadatas, column(page, "metadatas", n, server));
    VS_TRY_ASSIGN(const json* uris, column(page, "uris", n, server));
    if (embeddings == nullptr && n > 0) {
      return fail(ErrorCode::corruption,
                  fmt::format("chroma server {} answered get on collection {} without the embeddings asked for", server, c.name));
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (!ids[i].is_string()) {
        return fail(ErrorCode::corruption, fmt::format("chroma server {} answered get with an id that is a JSON {}", server,
                                                       ids[i].type_name()));
      }
      Record rec;
      rec.id = ids[i].get<std::string>();
      if (!seen.insert(rec.id).second) {
        return fail(ErrorCode::conflict,
                    fmt::format("collection {} on {} changed while it was read (id {} came twice); stop the writers and "
                                "run again",
                                c.name, server, rec.id));
      }
      if (auto done = decode_json_vector((*embeddings)[i], snap.dimension, rec.vector); !done) {
        return fail(done.error().code(),
                    fmt::format("chroma server {}, collection {}, record {}: {}", server, c.name, rec.id, done.error().message()));
      }
      if (snap.dimension == 0) snap.dimension = rec.vector.size();
      if (metadatas != nullptr && (*metadatas)[i].is_object()) {
        // Chroma keeps the document and uri as reserved keys; a server answers with them apart,
        // but strip them as ChromaDir does, along with nulls (a deleted key).
        for (const auto& [key, value] : (*metadatas)[i].items()) {
          if (key == "chroma:document" || key == "chroma:uri" || value.is_null()) continue;
          rec.metadata[key] = value;
        }
      } else if (metadatas != nullptr && !(*metadatas)[i].is_null()) {
        return fail(ErrorCode::corruption, fmt::format("chroma server {} answered get with metadata of {} that is a JSON {}",
                                                       server, rec.id, (*metadatas)[i].type_name()));
      }
      rec.document = string_at(documents, i);
      rec.uri = string_at(uris, i);
      rec.source = VectorSource::server;
      snap.records.push_back(std::move(rec));
    }
    return n;
  }
};

ChromaRemote::ChromaRemote(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
ChromaRemote::ChromaRemote(ChromaRemote&&) noexcept = default;
ChromaRemote& ChromaRemote::operator=(ChromaRemote&&) noexcept = default;
ChromaRemote::~ChromaRemote() = default;

Result<ChromaRemote> ChromaRemote::open(RemoteOptions options) {
  if (options.page_size < 0) {
    return fail(ErrorCode::invalid_argument, fmt::format("page size must be >= 0, not {}", options.page_size));
  }
  auto impl = std::make_unique<Impl>();
  VS_TRY_ASSIGN(impl->http, ChromaHttp::create(options.http));
  impl->options = std::move(options);
  ChromaHttp& http = *impl->http;
  VS_TRY_ASSIGN(impl->server, probe_api(http));
  impl->scope = ApiScope{impl->server.api, impl->options.tenant, impl->options.database};
  VS_TRY_ASSIGN(json version, http.get(impl->server.prefix + "/version"));
  impl->version = version.is_string() ? version.get<std::string>() : version.dump();
  impl->stats.api = impl->server.api == ApiVersion::v2 ? "v2" : "v1";
  impl->stats.server_version = impl->version;
  impl->stats.max_batch_size = impl->server.max_batch;
  return ChromaRemote(std::move(impl));
}

const std::string& ChromaRemote::server() const { return m_impl->http->server(); }

std::string ChromaRemote::describe() const {
  return fmt::format("api {}, chroma {}, max_batch_size {}", m_impl->stats.api, m_impl->version,
                     m_impl->server.max_batch);
}

const RemoteStats& ChromaRemote::stats() const { return m_impl->stats; }

Result<std::vector<std::string>> ChromaRemote::collection_names() {
  Impl& impl = *m_impl;
  VS_TRY_ASSIGN(json list, impl.http->get(impl.scope.collections_path() + impl.scope.query()));
  if (!list.is_array()) {
    return fail(ErrorCode::corruption,
                fmt::format("chroma server {} answered the collection list with a JSON {}", server(), list.type_name()));
  }
  std::vector<std::string> names;
  for (const auto& c : list) {
    auto it = c.find("name");
    if (c.is_object() && it != c.end() && it->is_string()) names.push_back(it->get<std::string>());
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<CollectionInfo> ChromaRemote::collection(const std::string& name) {
  Impl& impl = *m_impl;
  VS_TRY_ASSIGN(std::optional<json> found, find_collection(*impl.http, impl.scope, name));
  if (!found) {
    std::string names = "none";
    if (auto all = collection_names(); all && !all->empty()) {
      names.clear();
      for (const auto& n : *all) names += (names.empty() ? "" : ", ") + n;
    }
    return fail(ErrorCode::not_found, fmt::format("chroma server {} has no collection {} in tenant {}, database {} (it "
                                                  "has: {})",
                                                  server(), name, impl.options.tenant, impl.options.database, names));
  }
  VS_TRY_ASSIGN(const CollectionDescription described, describe_collection(*found, name, server()));
  CollectionInfo info;
  info.id = described.id;
  info.name = name;
  info.tenant = impl.options.tenant;
  info.database = impl.options.database;
  info.dimension = described.dimension;
  info.space = std::string(space_name(described.space));
  info.embedding_model = described.embedding_function_model;
  return info;
}

Result<Snapshot> ChromaRemote::read(const CollectionInfo& collection, const RemoteProgress& progress) {
  Impl& impl = *m_impl;
  impl.stats.pages = 0;
  if (impl.options.page_size > 0) {
    impl.stats.page_size = std::min(impl.options.page_size, impl.server.max_batch);
  } else {
    // About k_page_bytes of JSON per answer (a float is up to ~16 characters), at least 100
    // records, at most the server's limit: 5461 x 384 dimensions is ~33 MB, so wide vectors
    // come in smaller pages than the server would allow.
    const auto dim = static_cast<std::int64_t>(collection.dimension.value_or(0));
    const std::int64_t by_bytes = std::max<std::int64_t>(100, k_page_bytes / (dim * 16 + 256));
    impl.stats.page_size = std::min(impl.server.max_batch, by_bytes);
  }
  Snapshot snap;
  snap.collection = collection;
  if (collection.dimension) snap.dimension = static_cast<std::size_t>(*collection.dimension);
  snap.stats.label_map_format = "none";
  VS_TRY_ASSIGN(const std::int64_t before, impl.count(collection));
  snap.records.reserve(static_cast<std::size_t>(before));
  std::unordered_set<std::string> seen;
  seen.reserve(static_cast<std::size_t>(before));
  try {
    std::int64_t offset = 0;
    while (true) {
      VS_TRY_ASSIGN(const std::size_t got, impl.read_page(collection, offset, impl.stats.page_size, snap, seen));
      ++impl.stats.pages;
      offset += static_cast<std::int64_t>(got);
      if (progress) progress(offset, before);
      if (static_cast<std::int64_t>(got) < impl.stats.page_size) break;
    }
  } catch (const json::exception& e) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered get on collection {} oddly: {}", server(),
                                                   collection.name, e.what()));
  }
  VS_TRY_ASSIGN(const std::int64_t after, impl.count(collection));
  const auto read_n = static_cast<std::int64_t>(snap.records.size());
  if (after != before || read_n != before) {
    return fail(ErrorCode::conflict, fmt::format("collection {} on {} changed while it was read ({} records before, {} "
                                                 "read, {} after); stop the writers and run again",
                                                 collection.name, server(), before, read_n, after));
  }
  impl.stats.count = before;
  std::sort(snap.records.begin(), snap.records.end(), [](const Record& a, const Record& b) { return a.id < b.id; });
  return snap;
}

}  // namespace vstore::chroma
