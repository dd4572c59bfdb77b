// SPDX-License-Identifier: Apache-2.0
// ChromaStore. Design:
// - open(): probe_api() (v2, else v1 for Chroma 0.4/0.5; max_batch_size), then look the
//   collection up by name (GET takes the name) and keep what describe_collection() reads: id
//   (record operations take the UUID), space, HNSW parameters, dimension, and the model recorded
//   under `vstore:embedding_model`. ChromaRemote uses the same two functions. A missing
//   collection is created (legacy `hnsw:*` metadata, which both API versions honour) only when
//   the caller asked for it.
// - One model per collection, as pgvector has one per table: the first upsert into a collection
//   without a recorded model records it (re-reading the collection first, then PUT of its
//   metadata plus the key); vectors or queries of another model are refused with the words
//   pgvector uses (model_refused, query_model_refused).
// - Writes: `upsert` in batches of at most max_batch_size records and ~8 MB of JSON. Chroma's
//   upsert merges metadata (1.x and 0.5 alike), so every contract key the article lacks is sent
//   as null ("delete this key"), making the stored metadata exactly build_metadata(article), the
//   same function the pgvector backend stores. Writes are never retried here (ChromaHttp).
// - Reads: `query` for search; `score` is always the cosine distance. In a cosine collection it
//   is Chroma's distance; in l2/ip collections the embeddings come back with the hits and the
//   cosine distance is computed from them, over a 4x wider candidate list that is then re-ranked
//   by cosine (exact for normalised vectors, whose l2/ip order is the cosine order). `raw_score`
//   keeps Chroma's own distance. Results are sorted by (score, id), as pgvector sorts them.
// - Paged reads (`get` with limit/offset) go past the batch limit; Chroma returns storage order,
//   which is stable for paging.
// - Answers are checked before use (types, sizes, float range): a server answering in another
//   shape gives corruption, never an exception.
// Locking: the state is fixed after open() but for the recorded model (m_model_mutex);
// ChromaHttp is thread-safe.
#include "chroma/chroma_store.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <unordered_set>

#include <fmt/format.h>

#include "chroma/chroma_api.hpp"
#include "core/cosine.hpp"
#include "vstore/article.hpp"
#include "vstore/vector_check.hpp"
#include "vstore/write_check.hpp"

namespace vstore::chroma {
namespace {

using nlohmann::json;

constexpr std::size_t k_max_request_bytes = 8u << 20;
constexpr std::int64_t k_day = 86400;

// Keys build_metadata() may set; an upsert sends null for the ones an article lacks.
constexpr std::string_view k_contract_keys[] = {"title",   "news_source", "category",  "future_signal",
                                                "sentiment", "time_to_impact", "topic", "publication_date_ts",
                                                "tags",    "summary",     "uri",       "driver_type",
                                                "publication_date"};

json embedding_json(std::span<const float> v) {
  json arr = json::array();
  for (float f : v) arr.push_back(f);
  return arr;
}

Result<void> decode_embedding(const json& row, std::size_t dim, std::vector<float>& out, std::string_view id) {
  if (!row.is_array() || row.size() != dim) {
    return fail(ErrorCode::corruption, fmt::format("chroma returned an embedding of {} values for {}, expected {}",
                                                   row.is_array() ? row.size() : 0, id, dim));
  }
  for (const auto& x : row) {
    if (!x.is_number()) return fail(ErrorCode::corruption, fmt::format("chroma returned a non-number in the embedding of {}", id));
    const double d = x.get<double>();
    if (!std::isfinite(d) || std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) {
      return fail(ErrorCode::corruption, fmt::format("chroma returned {} in the embedding of {}, outside the float32 range", d, id));
    }
    out.push_back(static_cast<float>(d));
  }
  return {};
}

// The id at `ids[i]`. Errors: corruption for anything but a string.
Result<std::string> id_at(const json& ids, std::size_t i, const std::string& server) {
  if (!ids[i].is_string()) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered with an id that is a JSON {}, not a string",
                                                   server, ids[i].type_name()));
  }
  return ids[i].get<std::string>();
}

// The metadata of one record: an object, or null (none). Errors: corruption for another type.
Result<json> metadata_at(const json* metadatas, std::size_t i, const std::string& server) {
  if (metadatas == nullptr || i >= metadatas->size() || (*metadatas)[i].is_null()) return json::object();
  if (!(*metadatas)[i].is_object()) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered with metadata that is a JSON {}, not an object",
                                                   server, (*metadatas)[i].type_name()));
  }
  return (*metadatas)[i];
}

// A plain YYYY-MM-DD or a date-time at exactly midnight UTC, as epoch seconds.
std::optional<std::int64_t> midnight_epoch(const std::string& s) {
  if (s.size() < 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  const std::string rest = s.substr(10);
  static constexpr std::string_view k_midnights[] = {"", "T00:00:00", "T00:00:00Z", "T00:00:00+00:00", "T00:00:00.000Z",
                                                     " 00:00:00"};
  if (std::find(std::begin(k_midnights), std::end(k_midnights), rest) == std::end(k_midnights)) return std::nullopt;
  return publication_date_ts(s.substr(0, 10));
}

// Translates one comparison; date ranges become publication_date_ts ranges where that is exact.
Result<json> chroma_comparison(const FilterComparison& cmp) {
  const bool range = cmp.op == FilterOp::gt || cmp.op == FilterOp::gte || cmp.op == FilterOp::lt || cmp.op == FilterOp::lte;
  const bool date_key = cmp.key == "publication_date" || cmp.key == "publication_date_ts";
  const bool string_operand = !cmp.values.empty() && std::holds_alternative<std::string>(cmp.values.front());
  if (range && string_operand && !date_key) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("where.{}: chroma compares only numbers with {}; dates are stored as publication_date_ts "
                            "(epoch seconds)",
                            cmp.key, to_string(cmp.op)));
  }
  if (!range || !date_key || (cmp.key == "publication_date_ts" && !string_operand)) {
    return to_chroma_where(FilterNode{cmp});
  }
  // publication_date (a full time in pgvector) or a date string on publication_date_ts: Chroma
  // holds only publication_date_ts, the date's midnight UTC. t >= D and t < D are exact for a
  // midnight D; anything else would silently change the result, so it is refused.
  std::optional<std::int64_t> epoch;
  if (string_operand) {
    epoch = midnight_epoch(std::get<std::string>(cmp.values.front()));
  } else if (const auto* i = std::get_if<std::int64_t>(&cmp.values.front())) {
    epoch = *i;
  } else if (const auto* d = std::get_if<double>(&cmp.values.front()); d && std::floor(*d) == *d) {
    epoch = static_cast<std::int64_t>(*d);
  }
  const bool exact = epoch && *epoch % k_day == 0 && (cmp.op == FilterOp::gte || cmp.op == FilterOp::lt);
  if (!exact) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("where.{}: chroma stores publication dates only as publication_date_ts (midnight UTC "
                            "of the day); use $gte or $lt with a date (YYYY-MM-DD), or compare publication_date_ts "
                            "with epoch seconds",
                            cmp.key));
  }
  FilterComparison ts{"publication_date_ts", cmp.op, {FilterValue(*epoch)}};
  return to_chroma_where(FilterNode{std::move(ts)});
}

// nullopt = matches every record (Chroma rejects an empty `where`, so it is omitted).
Result<std::optional<json>> translate(const FilterNode& node) {
  if (const auto* cmp = std::get_if<FilterComparison>(&node.node)) {
    VS_TRY_ASSIGN(json j, chroma_comparison(*cmp));
    return std::optional<json>(std::move(j));
  }
  const auto& logical = std::get<FilterLogical>(node.node);
  json children = json::array();
  for (const auto& child : logical.children) {
    VS_TRY_ASSIGN(std::optional<json> c, translate(child));
    if (!c) {
      if (logical.kind == FilterLogical::Kind::or_) return std::optional<json>{};  // one branch matches all
      continue;
    }
    children.push_back(std::move(*c));
  }
  if (logical.kind == FilterLogical::Kind::and_) {
    if (children.empty()) return std::optional<json>{};
    if (children.size() == 1) return std::optional<json>(std::move(children[0]));
    return std::optional<json>(json{{"$and", std::move(children)}});
  }
  // `{"$or": []}` matches nothing in Chroma, as in the filter grammar.
  if (children.size() == 1) return std::optional<json>(std::move(children[0]));
  return std::optional<json>(json{{"$or", std::move(children)}});
}

}  // namespace

Result<json> chroma_where(const FilterNode& filter) {
  VS_TRY_ASSIGN(std::optional<json> where, translate(filter));
  return where ? std::move(*where) : json(nullptr);
}

ChromaStore::ChromaStore(const Config& config, ChromaOptions options, std::unique_ptr<ChromaHttp> http)
    : m_config(config), m_options(std::move(options)), m_http(std::move(http)), m_dimension(config.embedding_dim) {}

Result<std::unique_ptr<ChromaStore>> ChromaStore::open(const Config& config, ChromaOptions options) {
  if (options.http.base_url.empty()) options.http.base_url = config.chroma_url;
  if (options.http.token.empty()) options.http.token = config.chroma_token;
  options.http.io_timeout = config.chroma_timeout;
  if (options.http.base_url.empty()) {
    return fail(ErrorCode::invalid_argument,
                "CHROMA_URL is not set: VECTOR_BACKEND=chromadb or dual needs the Chroma server's URL, e.g. "
                "http://localhost:8000");
  }
  VS_TRY_ASSIGN(auto http, ChromaHttp::create(options.http));
  std::unique_ptr<ChromaStore> store(new ChromaStore(config, std::move(options), std::move(http)));
  VS_TRY_ASSIGN(const ServerApi api, probe_api(*store->m_http));
  store->m_api = api.api;
  store->m_max_batch = api.max_batch;
  store->m_scope = ApiScope{api.api, store->m_options.tenant, store->m_options.database};
  VS_TRY(store->find_collection());
  return store;
}

std::string ChromaStore::record_path(std::string_view op) const { return m_scope.record_path(m_collection_id, op); }

std::string ChromaStore::holder() const { return fmt::format("chroma collection {}", m_config.chroma_collection); }

Result<void> ChromaStore::find_collection() {
  const std::string& name = m_config.chroma_collection;
  VS_TRY_ASSIGN(std::optional<json> found, chroma::find_collection(*m_http, m_scope, name));
  json collection;
  if (found) {
    collection = std::move(*found);
  } else if (!m_options.create_collection) {
    return fail(ErrorCode::not_found,
                fmt::format("chroma server {} has no collection {} in tenant {}, database {}; `vstore ingest` creates it",
                            m_http->server(), name, m_options.tenant, m_options.database));
  } else {
    json metadata = {{"hnsw:space", space_name(m_options.create_space)}};
    if (m_options.create_ef_construction) metadata["hnsw:construction_ef"] = *m_options.create_ef_construction;
    if (m_options.create_ef_search) metadata["hnsw:search_ef"] = *m_options.create_ef_search;
    if (m_options.create_m) metadata["hnsw:M"] = *m_options.create_m;
    const json body = {{"name", name}, {"metadata", metadata}, {"get_or_create", true}};
    VS_TRY_ASSIGN(collection, m_http->post(m_scope.collections_path() + m_scope.query(), body, Retry::write));
  }
  VS_TRY_ASSIGN(const CollectionDescription described, describe_collection(collection, name, m_http->server()));
  m_collection_id = described.id;
  m_space = described.space;
  m_hnsw_params = described.hnsw;
  if (auto model = described.metadata.find(k_model_key); model != described.metadata.end() && model->is_string()) {
    m_model = model->get<std::string>();
  }
  if (described.dimension && *described.dimension != m_config.embedding_dim) {
    return fail(ErrorCode::conflict,
                fmt::format("chroma collection {} on {} stores {}-dimensional vectors but EMBEDDING_DIM={}; set "
                            "EMBEDDING_DIM={} or use another collection",
                            name, m_http->server(), *described.dimension, m_config.embedding_dim, *described.dimension));
  }
  return {};
}

Result<void> ChromaStore::check_model(const std::string& model) {
  std::lock_guard lock(m_model_mutex);
  if (!m_model) {
    // Another process may have recorded one since open: read the collection again first.
    VS_TRY_ASSIGN(std::optional<json> found, chroma::find_collection(*m_http, m_scope, m_config.chroma_collection));
    if (!found) {
      return fail(ErrorCode::not_found, fmt::format("chroma collection {} on {} no longer exists",
                                                    m_config.chroma_collection, m_http->server()));
    }
    VS_TRY_ASSIGN(const CollectionDescription described,
                  describe_collection(*found, m_config.chroma_collection, m_http->server()));
    if (auto it = described.metadata.find(k_model_key); it != described.metadata.end() && it->is_string()) {
      m_model = it->get<std::string>();
    } else {
      // Chroma replaces a collection's metadata on modify: send what it holds plus the key.
      json metadata = described.metadata;
      metadata[std::string(k_model_key)] = model;
      VS_TRY(m_http->put(m_scope.id_path(m_collection_id), json{{"new_metadata", std::move(metadata)}}));
      m_model = model;
    }
  }
  if (*m_model != model) return fail(model_refused(holder(), *m_model, model));
  return {};
}

// ---- writes -----------------------------------------------------------------------------------

Result<void> ChromaStore::upsert(std::span<const ArticleVector> items) {
  if (items.empty()) return {};
  VS_TRY(check_upsert_batch(items, m_dimension));
  VS_TRY(check_batch_model(items));
  VS_TRY(check_model(items.front().embedding_model));
  std::size_t start = 0;
  while (start < items.size()) {
    json ids = json::array();
    json embeddings = json::array();
    json metadatas = json::array();
    json documents = json::array();
    std::size_t bytes = 0;
    std::size_t end = start;
    while (end < items.size() && static_cast<std::int64_t>(end - start) < m_max_batch &&
           (end == start || bytes < k_max_request_bytes)) {
      const auto& item = items[end];
      json md = build_metadata(item.article);
      for (auto key : k_contract_keys) {
        if (!md.contains(key)) md[std::string(key)] = nullptr;
      }
      const std::string_view doc = document_text(item.article);
      bytes += item.embedding.size() * 12 + md.dump().size() + doc.size() + item.article.uri.size() + 16;
      ids.push_back(item.article.uri);
      embeddings.push_back(embedding_json(item.embedding));
      metadatas.push_back(std::move(md));
      documents.push_back(doc.empty() ? json(nullptr) : json(std::string(doc)));
      ++end;
    }
    const json body = {{"ids", std::move(ids)},
                       {"embeddings", std::move(embeddings)},
                       {"metadatas", std::move(metadatas)},
                       {"documents", std::move(documents)}};
    auto done = m_http->post(record_path("upsert"), body, Retry::write);
    if (!done) {
      return fail(done.error().code(),
                  fmt::format("{} (records {} to {} of {} not written; {} written before)", done.error().message(),
                              start + 1, end, items.size(), start));
    }
    start = end;
  }
  return {};
}

Result<json> ChromaStore::present_ids(std::span<const std::string> chunk) {
  const json probe = {{"ids", json(std::vector<std::string>(chunk.begin(), chunk.end()))}, {"include", json::array()}};
  VS_TRY_ASSIGN(json present, m_http->post(record_path("get"), probe, Retry::read));
  if (!present.contains("ids") || !present["ids"].is_array()) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered get without ids", m_http->server()));
  }
  return std::move(present["ids"]);
}

Result<std::map<std::string, std::string>> ChromaStore::vector_models(std::span<const std::string> ids) {
  std::map<std::string, std::string> out;
  std::string model;
  {
    std::lock_guard lock(m_model_mutex);
    model = m_model.value_or(std::string());
  }
  const auto batch = static_cast<std::size_t>(m_max_batch);
  for (std::size_t start = 0; start < ids.size(); start += batch) {
    VS_TRY_ASSIGN(json present, present_ids(ids.subspan(start, std::min(batch, ids.size() - start))));
    for (const auto& id : present) {
      if (id.is_string()) out.emplace(id.get<std::string>(), model);
    }
  }
  return out;
}

Result<std::int64_t> ChromaStore::remove(std::span<const std::string> ids) {
  std::int64_t removed = 0;
  const auto batch = static_cast<std::size_t>(m_max_batch);
  for (std::size_t start = 0; start < ids.size(); start += batch) {
    VS_TRY_ASSIGN(json present, present_ids(ids.subspan(start, std::min(batch, ids.size() - start))));
    if (present.empty()) continue;
    VS_TRY(m_http->post(record_path("delete"), json{{"ids", present}}, Retry::write));
    removed += static_cast<std::int64_t>(present.size());
  }
  return removed;
}

// ---- reads ------------------------------------------------------------------------------------

Result<json> ChromaStore::query_raw(std::span<const float> query, int n, const json* where, bool with_embeddings) {
  json include = json::array({"metadatas", "distances"});
  if (with_embeddings) include.push_back("embeddings");
  json body = {{"query_embeddings", json::array({embedding_json(query)})}, {"n_results", n}, {"include", include}};
  if (where != nullptr && !where->is_null()) body["where"] = *where;
  VS_TRY_ASSIGN(json res, m_http->post(record_path("query"), body, Retry::read));
  if (!res.is_object() || !res.contains("ids") || !res["ids"].is_array() || res["ids"].size() != 1 ||
      !res.contains("distances") || !res["distances"].is_array() || res["distances"].size() != 1) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered a query without ids or distances",
                                                   m_http->server()));
  }
  return res;
}

namespace {

Result<void> check_top_k(int top_k) {
  if (top_k < 1 || top_k > k_max_top_k) {
    return fail(ErrorCode::invalid_argument, fmt::format("top_k must be from 1 to {}, not {}", k_max_top_k, top_k));
  }
  return {};
}

}  // namespace

Result<std::vector<SearchHit>> ChromaStore::search(std::span<const float> query, const SearchOptions& options) {
  VS_TRY(check_top_k(options.top_k));
  return search_unchecked(query, options);
}

// search() without the top_k bound, so that similar() can ask for one row more at the largest.
Result<std::vector<SearchHit>> ChromaStore::search_unchecked(std::span<const float> query, const SearchOptions& options) {
  VS_TRY(check_vector(query, m_dimension, "query vector"));
  if (options.model) {
    std::lock_guard lock(m_model_mutex);
    if (m_model && *m_model != *options.model) return fail(query_model_refused(holder(), *m_model, *options.model));
  }
  json where = nullptr;
  if (options.where) {
    VS_TRY_ASSIGN(where, chroma_where(*options.where));
  }
  const bool cosine = m_space == Space::cosine;
  // Chroma picks among equal distances as it likes, so one more record than asked for shows
  // whether a tie crosses the cut; then more are asked for until the tie is whole, and the uri
  // decides (as pgvector's ORDER BY score, uri does).
  // (similar() asks for top_k + 1 at the largest top_k, hence the cap of k_max_top_k + 2.)
  constexpr int k_most = k_max_top_k + 2;
  int n = std::min(k_most, cosine ? options.top_k + 1 : options.top_k * 4);
  while (true) {
    VS_TRY_ASSIGN(std::vector<SearchHit> hits, query_hits(query, n, where, cosine));
    const auto top_k = static_cast<std::size_t>(options.top_k);
    const bool whole = hits.size() < static_cast<std::size_t>(n) || n >= k_most || hits.size() <= top_k ||
                       hits.back().score > hits[top_k - 1].score;
    if (whole) {
      if (hits.size() > top_k) hits.resize(top_k);
      return hits;
    }
    n = std::min(k_most, n * 2);
  }
}

Result<std::vector<SearchHit>> ChromaStore::query_hits(std::span<const float> query, int n, const json& where,
                                                       bool cosine) {
  VS_TRY_ASSIGN(json res, query_raw(query, n, &where, !cosine));
  const json& ids = res["ids"][0];
  const json& distances = res["distances"][0];
  const json* metadatas = res.contains("metadatas") && res["metadatas"].is_array() && !res["metadatas"].empty()
                              ? &res["metadatas"][0]
                              : nullptr;
  const json* embeddings = res.contains("embeddings") && res["embeddings"].is_array() && !res["embeddings"].empty()
                               ? &res["embeddings"][0]
                               : nullptr;
  const std::string& server = m_http->server();
  if (!ids.is_array() || !distances.is_array() || distances.size() != ids.size()) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered a query with ids and distances that do not "
                                                   "pair up",
                                                   server));
  }
  if (!cosine && (embeddings == nullptr || !embeddings->is_array() || embeddings->size() != ids.size())) {
    return fail(ErrorCode::corruption,
                fmt::format("chroma server {} answered a query without the embeddings asked for", server));
  }
  if (metadatas != nullptr && !metadatas->is_array()) metadatas = nullptr;
  std::vector<SearchHit> hits;
  hits.reserve(ids.size());
  std::vector<float> vec;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    SearchHit hit;
    VS_TRY_ASSIGN(hit.id, id_at(ids, i, server));
    if (!distances[i].is_number() || !std::isfinite(distances[i].get<double>())) {
      return fail(ErrorCode::corruption, fmt::format("chroma server {} answered the distance of {} with {}, not a number",
                                                     server, hit.id, distances[i].dump()));
    }
    hit.raw_score = distances[i].get<double>();
    if (cosine) {
      hit.score = hit.raw_score;
    } else {
      vec.clear();
      VS_TRY(decode_embedding((*embeddings)[i], static_cast<std::size_t>(m_dimension), vec, hit.id));
      hit.score = cosine_distance(query, vec);
    }
    VS_TRY_ASSIGN(hit.metadata, metadata_at(metadatas, i, server));
    hits.push_back(std::move(hit));
  }
  std::stable_sort(hits.begin(), hits.end(), [](const SearchHit& a, const SearchHit& b) {
    return a.score != b.score ? a.score < b.score : a.id < b.id;
  });
  return hits;
}

Result<std::vector<SearchHit>> ChromaStore::similar(std::string_view uri, const SearchOptions& options) {
  VS_TRY(check_top_k(options.top_k));
  const int top_k = options.top_k;
  const json body = {{"ids", json::array({std::string(uri)})}, {"include", json::array({"embeddings"})}};
  VS_TRY_ASSIGN(json res, m_http->post(record_path("get"), body, Retry::read));
  if (!res.contains("ids") || !res["ids"].is_array() || res["ids"].empty()) {
    return fail(ErrorCode::not_found, fmt::format("no article with uri {} in chroma collection {}", uri,
                                                  m_config.chroma_collection));
  }
  std::vector<float> vec;
  if (!res.contains("embeddings") || !res["embeddings"].is_array() || res["embeddings"].empty()) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} returned no embedding for {}", m_http->server(), uri));
  }
  VS_TRY(decode_embedding(res["embeddings"][0], static_cast<std::size_t>(m_dimension), vec, uri));
  SearchOptions opts = options;
  opts.top_k = top_k + 1;  // for the article itself
  VS_TRY_ASSIGN(auto hits, search_unchecked(vec, opts));
  std::erase_if(hits, [&](const SearchHit& h) { return h.id == uri; });
  if (static_cast<int>(hits.size()) > top_k) hits.resize(static_cast<std::size_t>(top_k));
  return hits;
}

namespace {
// The uris of a filter that is `{"uri": U}` or `{"uri": {"$in": [...]}}` with strings, else
// nullopt. An article's Chroma id is its uri, and a collection the application wrote itself
// need not hold `uri` in its metadata, so such a filter is answered by id.
std::optional<json> uri_values(const FilterNode& where) {
  const auto* cmp = std::get_if<FilterComparison>(&where.node);
  if (cmp == nullptr || cmp->key != "uri" || (cmp->op != FilterOp::in && cmp->op != FilterOp::eq)) return std::nullopt;
  json out = json::array();
  for (const auto& v : cmp->values) {
    const auto* s = std::get_if<std::string>(&v);
    if (s == nullptr) return std::nullopt;
    out.push_back(*s);
  }
  return out;
}
}  // namespace

Result<VectorBatch> ChromaStore::get_vectors(std::optional<std::int64_t> limit, const std::optional<FilterNode>& where) {
  if (limit && *limit < 0) return fail(ErrorCode::invalid_argument, fmt::format("limit must be >= 0, not {}", *limit));
  json chroma_filter = nullptr;
  json ids = nullptr;  // a filter on uri alone is a filter on ids
  if (where) {
    if (auto uris = uri_values(*where)) {
      ids = std::move(*uris);
    } else {
      VS_TRY_ASSIGN(chroma_filter, chroma_where(*where));
    }
  }
  VectorBatch batch;
  batch.dim = static_cast<std::size_t>(m_dimension);
  std::int64_t offset = 0;
  while (true) {
    const std::int64_t want = limit ? std::min(m_max_batch, *limit - offset) : m_max_batch;
    if (want <= 0) break;
    json body = {{"limit", want}, {"offset", offset}, {"include", json::array({"embeddings", "metadatas"})}};
    if (!chroma_filter.is_null()) body["where"] = chroma_filter;
    if (!ids.is_null()) body["ids"] = ids;
    VS_TRY_ASSIGN(json page, m_http->post(record_path("get"), body, Retry::read));
    if (!page.contains("ids") || !page["ids"].is_array() || !page.contains("embeddings") ||
        !page["embeddings"].is_array() || page["embeddings"].size() != page["ids"].size()) {
      return fail(ErrorCode::corruption,
                  fmt::format("chroma server {} answered get without matching ids and embeddings", m_http->server()));
    }
    const json& ids = page["ids"];
    const json* metadatas = page.contains("metadatas") && page["metadatas"].is_array() ? &page["metadatas"] : nullptr;
    for (std::size_t i = 0; i < ids.size(); ++i) {
      VS_TRY_ASSIGN(std::string id, id_at(ids, i, m_http->server()));
      VS_TRY(decode_embedding(page["embeddings"][i], batch.dim, batch.data, id));
      VS_TRY_ASSIGN(json metadata, metadata_at(metadatas, i, m_http->server()));
      batch.metadatas.push_back(std::move(metadata));
      batch.ids.push_back(std::move(id));
    }
    offset += static_cast<std::int64_t>(ids.size());
    if (static_cast<std::int64_t>(ids.size()) < want) break;
  }
  return batch;
}

Result<void> ChromaStore::drop_collection() {
  VS_TRY(m_http->del(m_scope.named_path(m_config.chroma_collection)));
  return {};
}

Result<std::string> ChromaStore::server_version() {
  VS_TRY_ASSIGN(json v, m_http->get(m_api == ApiVersion::v2 ? "/api/v2/version" : "/api/v1/version"));
  return v.is_string() ? v.get<std::string>() : v.dump();
}

Result<StoreCounts> ChromaStore::count() {
  VS_TRY_ASSIGN(json n, m_http->get(record_path("count")));
  // A number past int64 reads as negative and is refused with the rest.
  if (!n.is_number_integer() || n.get<std::int64_t>() < 0) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered count with {}, expected a count",
                                                   m_http->server(), n.dump()));
  }
  return StoreCounts{n.get<std::int64_t>(), n.get<std::int64_t>()};
}

Result<json> ChromaStore::health() {
  json h;
  std::vector<std::string> reasons;
  h["backend"] = "chromadb";
  h["server"] = m_http->server();
  h["api"] = m_api == ApiVersion::v2 ? "v2" : "v1";
  h["collection"] = m_config.chroma_collection;
  h["collection_id"] = m_collection_id;
  h["dimension"] = m_dimension;
  h["extension_version"] = nullptr;
  {
    std::lock_guard lock(m_model_mutex);
    h["embedding_model"] = m_model ? json(*m_model) : json(nullptr);
  }
  h["server_version"] = nullptr;
  h["rows"] = 0;
  h["with_embedding"] = 0;
  h["coverage_pct"] = 0.0;
  const std::string prefix = m_api == ApiVersion::v2 ? "/api/v2" : "/api/v1";
  const auto t0 = std::chrono::steady_clock::now();
  auto version = m_http->get(prefix + "/version");
  const double roundtrip = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // The keys a pgvector store fills: no pool, no index size, no operations log here.
  h["pool"] = nullptr;
  h["last_validation"] = nullptr;
  h["latency_ms"] = {{"roundtrip", version ? json(std::round(roundtrip * 1000.0) / 1000.0) : json(nullptr)}, {"search", nullptr}};
  if (version && version->is_string()) {
    h["server_version"] = *version;
  } else if (!version) {
    reasons.push_back(version.error().message());
  }
  if (reasons.empty()) {
    if (auto counts = count(); counts) {
      h["rows"] = counts->rows;
      h["with_embedding"] = counts->with_embedding;
      h["coverage_pct"] = counts->rows == 0 ? 0.0 : 100.0;
    } else {
      reasons.push_back(counts.error().message());
    }
  }
  json params = m_hnsw_params;
  params["space"] = space_name(m_space);
  h["index"] = {{"type", "hnsw"},         {"name", m_config.chroma_collection}, {"valid", reasons.empty()},
                {"params", params},        {"size_bytes", nullptr},            {"shared_buffers_bytes", nullptr},
                {"host_ram_bytes", nullptr}};
  if (m_space != Space::cosine) {
    h["notes"] = json::array({fmt::format("collection space is {}; scores are converted to cosine distance",
                                          space_name(m_space))});
  }
  h["healthy"] = reasons.empty();
  h["reasons"] = reasons;
  return h;
}

}  // namespace vstore::chroma
