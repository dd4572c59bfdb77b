// SPDX-License-Identifier: Apache-2.0
// MapKeeper: the kept map of `vstore serve`.
//
// Phases. start() reads the map's file: when it holds a map made for this key (backend, store,
// table or collection, model, dimension), that map is served at once and a background thread
// brings it up to date with the store (articles written by other processes while the service was
// down are placed, removed ones dropped; when more than half the map differs it is rebuilt
// instead). Otherwise the background thread builds the map (map_articles() over every stored
// vector) while GET /v1/map answers 503. A rebuild serves the old map until the new one is
// complete. Articles upserted through the service are placed (place_point() over the store's
// `similar` neighbours of their stored vector) into the current map, and, when a build runs,
// again into the new map once it is done, since the build may have read the store before them.
//
// Locking: one mutex guards the map, its id index, the cached JSON text and the state. Store
// calls and the build itself run outside it; a placement takes it only to look up the
// neighbours' positions and write the point. The file is written (to a temporary file, then
// renamed) after each build, after catching up, and by stop() when placements changed it.
#include "serve/serve_map.hpp"

#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "vstore/filter.hpp"

namespace vstore {
namespace {

using nlohmann::json;

constexpr const char* k_format = "vstore map 1";

// The ArticleMap without the points whose `keep` is 0; cluster sizes follow.
void drop_points(ArticleMap& map, const std::vector<char>& keep) {
  std::size_t out = 0;
  for (std::size_t i = 0; i < map.size(); ++i) {
    if (keep[i] == 0) {
      const auto c = static_cast<std::size_t>(map.cluster[i]);
      if (c < map.clusters.size()) --map.clusters[c].size;
      continue;
    }
    if (out != i) {  // never a self-move, which leaves a string unspecified
      map.ids[out] = std::move(map.ids[i]);
      map.x[out] = map.x[i];
      map.y[out] = map.y[i];
      map.cluster[out] = map.cluster[i];
      map.titles[out] = std::move(map.titles[i]);
      map.placed[out] = map.placed[i];
      for (auto& column : map.fields) column[out] = std::move(column[i]);
    }
    ++out;
  }
  map.ids.resize(out);
  map.x.resize(out);
  map.y.resize(out);
  map.cluster.resize(out);
  map.titles.resize(out);
  map.placed.resize(out);
  for (auto& column : map.fields) column.resize(out);
}

}  // namespace

MapKeeper::MapKeeper(std::shared_ptr<ArticleStore> store, MapKeeperOptions options)
    : m_store(std::move(store)), m_options(std::move(options)) {}

MapKeeper::~MapKeeper() {
  m_stopping = true;
  if (m_thread.joinable()) m_thread.join();
}

void MapKeeper::start() {
  std::optional<ArticleMap> kept;
  std::string why_not;
  std::error_code ec;
  if (!m_options.file.empty() && std::filesystem::exists(m_options.file, ec)) {
    std::ifstream in(m_options.file, std::ios::binary);
    const json file = json::parse(in, nullptr, false);
    if (file.is_discarded() || !file.is_object()) {
      why_not = "it is not JSON";
    } else if (file.value("format", "") != k_format) {
      why_not = "it is not in this version's format";
    } else if (file.value("key", json()) != m_options.key) {
      why_not = fmt::format("it was made for {}", file.value("key", json()).dump());
    } else if (auto map = map_from_json(file.value("map", json())); !map) {
      why_not = map.error().message();
    } else {
      const json placed = file.value("placed", json::array());
      if (placed.is_array() && placed.size() == map->size()) {
        for (std::size_t i = 0; i < placed.size(); ++i) map->placed[i] = placed[i] == 1 ? 1 : 0;
      }
      kept = std::move(*map);
    }
  }
  std::lock_guard lock(m_mutex);
  if (kept) {
    std::fprintf(stderr, "serve: map of %zu articles (built %s) loaded from %s\n", kept->size(), kept->built_at.c_str(),
                 m_options.file.c_str());
    m_map = std::move(kept);
    reindex_locked();
    m_thread = std::thread([this] { reconcile(); });
    return;
  }
  m_building = true;
  m_build_started = std::chrono::steady_clock::now();
  // Said here, before the service answers its first request, not on the build thread (where a
  // request could be answered 503 before the log says why; seen under AddressSanitizer).
  if (!why_not.empty()) {
    std::fprintf(stderr, "serve: the kept map %s is not used: %s; building the map\n", m_options.file.c_str(),
                 why_not.c_str());
  }
  m_thread = std::thread([this, options = m_options.map] { build(options, std::nullopt); });
}

void MapKeeper::build(MapOptions options, std::optional<std::string> reason) {
  if (reason) std::fprintf(stderr, "serve: %s; building the map\n", reason->c_str());
  // The test delay stands for a long build: stop() cuts it short as it cancels a build.
  const auto delay_end = std::chrono::steady_clock::now() + std::chrono::milliseconds(m_options.test_build_delay_ms);
  while (std::chrono::steady_clock::now() < delay_end && !m_stopping.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  options.layout.cancel = &m_stopping;
  const auto started = std::chrono::steady_clock::now();
  auto built = [&]() -> Result<ArticleMap> {
    VS_TRY_ASSIGN(VectorBatch batch, m_store->get_vectors_by_metadata(std::nullopt, std::nullopt));
    return map_articles(batch, options);
  }();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<std::string> pending;
  {
    std::lock_guard lock(m_mutex);
    m_building = false;
    pending.swap(m_pending);
    if (!built) {
      m_failure = built.error().message();
      std::fprintf(stderr, "serve: the map could not be built: %s\n", m_failure.c_str());
      return;
    }
    m_failure.clear();
    m_map = std::move(*built);
    reindex_locked();
    m_text.reset();
    m_dirty = true;
    std::fprintf(stderr, "serve: map of %zu articles built in %.1f s (%zu clusters)\n", m_map->size(), seconds,
                 m_map->clusters.size());
  }
  place(pending);
  std::lock_guard lock(m_mutex);
  if (auto saved = save_locked(); !saved) std::fprintf(stderr, "serve: %s\n", saved.error().message().c_str());
}

void MapKeeper::reconcile() {
  auto batch = m_store->get_vectors_by_metadata(std::nullopt, std::nullopt);
  if (!batch) {
    std::fprintf(stderr, "serve: the kept map was not compared with the store: %s\n", batch.error().message().c_str());
    return;
  }
  std::vector<std::string> missing;
  std::optional<std::string> rebuild_reason;
  {
    std::lock_guard lock(m_mutex);
    const std::set<std::string> stored(batch->ids.begin(), batch->ids.end());
    std::vector<char> keep(m_map->size(), 1);
    std::size_t gone = 0;
    for (std::size_t i = 0; i < m_map->size(); ++i) {
      if (!stored.contains(m_map->ids[i])) {
        keep[i] = 0;
        ++gone;
      }
    }
    for (const auto& id : batch->ids) {
      if (!m_index.contains(id)) missing.push_back(id);
    }
    if (gone == 0 && missing.empty()) return;
    if (2 * (gone + missing.size()) > std::max(m_map->size(), batch->ids.size())) {
      m_building = true;
      m_build_started = std::chrono::steady_clock::now();
      rebuild_reason = fmt::format("the kept map differs from the store in {} of {} articles", gone + missing.size(),
                                   batch->ids.size());
    } else {
      drop_points(*m_map, keep);
      reindex_locked();
      m_text.reset();
      m_dirty = true;
      std::fprintf(stderr, "serve: the kept map catches up with the store: %zu articles dropped, %zu to place\n", gone,
                   missing.size());
    }
  }
  if (rebuild_reason) {
    build(m_options.map, rebuild_reason);
    return;
  }
  place(missing);
  std::lock_guard lock(m_mutex);
  if (auto saved = save_locked(); !saved) std::fprintf(stderr, "serve: %s\n", saved.error().message().c_str());
}

Result<std::shared_ptr<const std::string>> MapKeeper::json_text() {
  std::lock_guard lock(m_mutex);
  if (!m_map) {
    if (m_building) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - m_build_started).count();
      return fail(ErrorCode::unavailable,
                  fmt::format("the map is being built (for {:.0f} s so far); try again shortly", s));
    }
    return fail(ErrorCode::unavailable,
                fmt::format("the map could not be built: {}; POST /v1/map/rebuild tries again", m_failure));
  }
  if (!m_text) m_text = std::make_shared<const std::string>(map_json(*m_map).dump(-1, ' ', false, json::error_handler_t::replace));
  return m_text;
}

bool MapKeeper::rebuild(const MapOptions& options) {
  {
    std::lock_guard lock(m_mutex);
    if (m_building) return false;
    m_building = true;
    m_build_started = std::chrono::steady_clock::now();
  }
  if (m_thread.joinable()) m_thread.join();  // a finished build's or catch-up's thread
  m_thread = std::thread([this, options] { build(options, std::nullopt); });
  return true;
}

std::size_t MapKeeper::place(std::span<const std::string> uris) {
  std::size_t placed = 0;
  for (const auto& uri : uris) {
    {
      std::lock_guard lock(m_mutex);
      if (m_building) m_pending.push_back(uri);
      if (!m_map) continue;
    }
    SearchOptions so;
    so.top_k = std::max(1, m_options.map.layout.neighbors - 1);
    auto hits = m_store->store().similar(uri, so);
    if (!hits) {
      // not_found: no vector stored (an article without text), nothing to place.
      if (hits.error().code() != ErrorCode::not_found) {
        std::fprintf(stderr, "serve: %s is not placed on the map: %s\n", uri.c_str(), hits.error().message().c_str());
      }
      continue;
    }
    auto by_uri = parse_filter(std::string_view(json{{"uri", uri}}.dump()));
    if (!by_uri) continue;
    auto own = m_store->store().get_vectors(1, *by_uri);
    const json metadata = own && !own->metadatas.empty() ? own->metadatas.front() : json::object();
    std::lock_guard lock(m_mutex);
    if (!m_map) continue;
    std::vector<MapNeighbour> near;
    std::vector<float> xy;
    std::vector<int> clusters;
    for (const auto& h : *hits) {
      const auto it = m_index.find(h.id);
      if (it == m_index.end() || h.id == uri) continue;
      near.push_back({clusters.size(), std::max(0.0, h.score)});
      xy.push_back(m_map->x[it->second]);
      xy.push_back(m_map->y[it->second]);
      clusters.push_back(m_map->cluster[it->second]);
    }
    if (near.empty()) {
      std::fprintf(stderr, "serve: %s is not placed on the map: none of its %zu nearest articles is on it\n", uri.c_str(),
                   hits->size());
      continue;
    }
    auto where = place_point(near, xy, clusters);
    if (!where) {
      std::fprintf(stderr, "serve: %s is not placed on the map: %s\n", uri.c_str(), where.error().message().c_str());
      continue;
    }
    if (place_article(*m_map, uri, metadata, *where)) m_index[uri] = m_map->size() - 1;
    m_text.reset();
    m_dirty = true;
    ++placed;
  }
  return placed;
}

void MapKeeper::stop() {
  m_stopping = true;
  if (m_thread.joinable()) m_thread.join();
  std::lock_guard lock(m_mutex);
  if (m_dirty) {
    if (auto saved = save_locked(); !saved) std::fprintf(stderr, "serve: %s\n", saved.error().message().c_str());
  }
}

Result<void> MapKeeper::save_locked() {
  if (m_options.file.empty() || !m_map) return {};
  std::error_code ec;
  std::filesystem::create_directories(m_options.file.parent_path(), ec);
  if (ec) {
    return fail(ErrorCode::unavailable,
                fmt::format("cannot make the directory of the map {}: {}", m_options.file.string(), ec.message()));
  }
  json placed = json::array();
  for (char p : m_map->placed) placed.push_back(p == 1 ? 1 : 0);
  const json file{{"format", k_format}, {"key", m_options.key}, {"placed", std::move(placed)}, {"map", map_json(*m_map)}};
  const std::filesystem::path tmp = m_options.file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << file.dump(-1, ' ', false, json::error_handler_t::replace);
    out.close();
    if (!out) return fail(ErrorCode::unavailable, fmt::format("cannot write the map to {}", tmp.string()));
  }
  std::filesystem::rename(tmp, m_options.file, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot rename {} to {}: {}", tmp.string(), m_options.file.string(), ec.message()));
  m_dirty = false;
  return {};
}

void MapKeeper::reindex_locked() {
  m_index.clear();
  m_index.reserve(m_map ? m_map->size() : 0);
  if (!m_map) return;
  for (std::size_t i = 0; i < m_map->size(); ++i) m_index.emplace(m_map->ids[i], i);
}

}  // namespace vstore
