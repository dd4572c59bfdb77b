// SPDX-License-Identifier: Apache-2.0
// ChromaRemote: reads one collection of a running Chroma server into the Snapshot ChromaDir gives.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "chroma/chroma_dir.hpp"
#include "chroma/chroma_http.hpp"
#include "chroma/chroma_api.hpp"
#include "vstore/result.hpp"

namespace vstore::chroma {

/// How to reach the server and how to page.
struct RemoteOptions {
  HttpOptions http;                            ///< base_url required; token sent as ChromaStore sends it
  std::string tenant = "default_tenant";       ///< Default "default_tenant".
  std::string database = "default_database";   ///< Default "default_database".
  /// Records per `get` request, never more than the server's max_batch_size (pre-flight-checks;
  /// 1000 when it names none); 0 = that limit, or fewer for wide vectors so that an answer
  /// stays near 16 MB of JSON (at least 100 records). Default 0.
  std::int64_t page_size = 0;
};

/// Counters of how a snapshot was read from the server.
struct RemoteStats {
  std::string api;                  ///< "v1" or "v2"
  std::string server_version;       ///< `/version` ("1.0.0" for every 1.x server)
  std::int64_t max_batch_size = 0;  ///< the server's limit per request
  std::int64_t page_size = 0;       ///< records asked for per get
  std::int64_t pages = 0;           ///< get requests made
  std::int64_t count = 0;           ///< the collection's count, before and after reading
};

/// Called after each page: records read so far, and the collection's count.
using RemoteProgress = std::function<void(std::int64_t done, std::int64_t total)>;

/// A Chroma server opened for reading. Not thread-safe (one reader at a time).
class ChromaRemote {
 public:
  /// Probes `/api/v2/heartbeat`, then `/api/v1/heartbeat` (Chroma 0.4/0.5), reads
  /// max_batch_size and the version. Errors: invalid_argument (a URL that is not http(s),
  /// page_size < 0), unavailable/timeout (server down or not answering), each message naming
  /// the server (redacted URL; the token is never in a message).
  [[nodiscard]] static Result<ChromaRemote> open(RemoteOptions options);

  ChromaRemote(ChromaRemote&&) noexcept;
  ChromaRemote& operator=(ChromaRemote&&) noexcept;
  ~ChromaRemote();

  /// The base URL with secrets redacted.
  [[nodiscard]] const std::string& server() const;
  /// "api v2, chroma 1.0.0, max_batch_size 5461": what the server speaks.
  [[nodiscard]] std::string describe() const;

  /// Names of the collections of the tenant and database, sorted. Errors: unavailable,
  /// not_found (tenant or database), corruption (an answer of another shape).
  [[nodiscard]] Result<std::vector<std::string>> collection_names();

  /// The collection `name`: id, dimension, space and the model of its stored embedding function,
  /// as describe_collection() reads them (the space by the rule ChromaStore and ChromaDir use).
  /// Errors: not_found (naming the collections there are), corruption (unknown space, no id, a
  /// field of the wrong JSON type), unavailable.
  [[nodiscard]] Result<CollectionInfo> collection(const std::string& name);

  /// Reads every record of `collection` with paged `get` (ids, embeddings, documents,
  /// metadatas, uris; limit/offset past the batch limit), sorted by id. Vectors are float32
  /// exactly as the server sent them. The collection's count is compared before and after: a
  /// collection written to meanwhile gives conflict. Errors: corruption (missing fields, a
  /// vector of another dimension, a non-number, a duplicate id), unavailable, timeout.
  [[nodiscard]] Result<Snapshot> read(const CollectionInfo& collection, const RemoteProgress& progress = {});

  /// How the last read() went.
  [[nodiscard]] const RemoteStats& stats() const;

 private:
  struct Impl;
  explicit ChromaRemote(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// Decodes one embedding (a JSON array of numbers, as Chroma sends it) into float32: each
/// number is parsed to the nearest double, then rounded to float, a double exactly halfway
/// between two floats going to the one whose shortest decimal reads as it. For the shortest
/// decimal of a float32 (what Chroma 1.x writes) and for the exact decimal of its double
/// (Python 0.x) this gives the original float bit for bit, for every finite float (a bare "-0", which no Chroma writes, is the JSON
/// integer 0 and loses its sign; "-0.0" keeps it). Appends to `out`. Errors: corruption (not an array,
/// `dim` != its length when dim > 0, a non-number, a value outside float range).
[[nodiscard]] Result<void> decode_json_vector(const nlohmann::json& values, std::size_t dim, std::vector<float>& out);

}  // namespace vstore::chroma
