// SPDX-License-Identifier: Apache-2.0
// MapKeeper: the map of the whole collection that `vstore serve` keeps (GET /v1/map), built once
// in the background or loaded from its file, with upserted articles placed into it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/article_store.hpp"
#include "vstore/collection_map.hpp"

namespace vstore {

/// What the keeper needs; see ServeOptions.
struct MapKeeperOptions {
  /// The file the map is kept in; empty: the map lives in memory only.
  std::filesystem::path file;
  /// What the map must have been built for (backend, store, table or collection, model,
  /// dimension): a kept map with another key is not served, and is rebuilt.
  nlohmann::json key;
  MapOptions map;
  int test_build_delay_ms = 0;  ///< for tests only: a build waits this long before it starts
};

/// Thread-safe. The state: no map yet (being built, or the build failed), or a map, which a
/// rebuild replaces only once the new one is complete.
class MapKeeper {
 public:
  MapKeeper(std::shared_ptr<ArticleStore> store, MapKeeperOptions options);
  ~MapKeeper();
  MapKeeper(const MapKeeper&) = delete;
  MapKeeper& operator=(const MapKeeper&) = delete;

  /// Loads the kept map when its file holds one for this key (then brings it up to date with the
  /// store in the background: articles the store gained are placed, ones it lost are dropped),
  /// else starts building one in the background.
  void start();

  /// The map's JSON text (map_json()), shared and cached until the map changes. Errors:
  /// unavailable while the first map is being built, or when the build failed (its reason).
  [[nodiscard]] Result<std::shared_ptr<const std::string>> json_text();

  /// Starts a rebuild in the background with `options` (the current map is served until the new
  /// one replaces it). Returns false when a build is already running (nothing new starts).
  bool rebuild(const MapOptions& options);

  /// Places each of `uris` (just upserted) into the map: the neighbours of its stored vector in
  /// the store (`similar`), then place_point(). An article without a vector is skipped. Articles
  /// upserted while a build runs are placed into the new map too, once it is done. Returns how
  /// many were placed.
  std::size_t place(std::span<const std::string> uris);

  /// Cancels a running build (it stops within about a second, leaving the map as it was) and
  /// waits for it, then writes the map to its file (when it changed).
  void stop();

 private:
  void build(MapOptions options, std::optional<std::string> reason);
  void reconcile();
  Result<void> save_locked();
  void reindex_locked();

  std::shared_ptr<ArticleStore> m_store;
  MapKeeperOptions m_options;
  std::mutex m_mutex;
  std::optional<ArticleMap> m_map;                        // guarded by m_mutex
  std::unordered_map<std::string, std::size_t> m_index;   // id -> point; guarded by m_mutex
  std::shared_ptr<const std::string> m_text;              // cached map_json(); guarded by m_mutex
  bool m_building = false;                                // guarded by m_mutex
  bool m_dirty = false;                                   // changed since the file was written; guarded by m_mutex
  std::string m_failure;                                  // the last build's error; guarded by m_mutex
  std::chrono::steady_clock::time_point m_build_started;  // guarded by m_mutex
  std::vector<std::string> m_pending;                     // upserted during a build; guarded by m_mutex
  std::thread m_thread;
  std::atomic<bool> m_stopping{false};                    // set by stop(): a running build gives up
};

}  // namespace vstore
