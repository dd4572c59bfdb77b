// SPDX-License-Identifier: Apache-2.0
// ArticleMap: the map of stored articles in columns, its JSON form (the contract of GET /v1/map)
// and the placement of an article into it.
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <map>
#include <set>
#include <string>

#include <fmt/format.h>

#include "vstore/collection_map.hpp"

namespace vstore {
namespace {

using nlohmann::json;

// A float as JSON at float32 precision: the shortest text that reads back as the same float.
json float_json(float v) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), v);
  if (ec != std::errc()) return static_cast<double>(v);
  return std::strtod(std::string(buf.data(), end).c_str(), nullptr);
}

std::string utc_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> buf{};
  const std::size_t len = std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return std::string(buf.data(), len);
}

bool is_field(const std::string& key) { return key != "title" && key != "raw" && key != "summary"; }

Result<const json*> member(const json& object, const char* key, json::value_t type, const char* what) {
  if (!object.is_object() || !object.contains(key)) return fail(ErrorCode::corruption, fmt::format("the map has no \"{}\"", key));
  const json& v = object[key];
  const bool ok = type == json::value_t::number_float ? v.is_number() : (type == json::value_t::number_unsigned ? v.is_number_integer() : v.type() == type);
  if (!ok) return fail(ErrorCode::corruption, fmt::format("the map's \"{}\" must be {}, not {}", key, what, v.type_name()));
  return &v;
}

}  // namespace

std::int64_t ArticleMap::placed_count() const {
  return static_cast<std::int64_t>(std::count(placed.begin(), placed.end(), char{1}));
}

Result<ArticleMap> map_articles(const VectorBatch& batch, const MapOptions& options) {
  const std::size_t n = batch.ids.size();
  if (batch.metadatas.size() != n) {
    return fail(ErrorCode::invalid_argument, fmt::format("map_articles: {} ids but {} metadatas", n, batch.metadatas.size()));
  }
  std::vector<std::string> titles(n);
  ArticleMap out;
  out.titles.assign(n, nullptr);
  std::set<std::string> names;
  for (std::size_t i = 0; i < n; ++i) {
    const json& m = batch.metadatas[i];
    if (!m.is_object()) continue;
    if (m.contains("title") && m["title"].is_string()) {
      titles[i] = m["title"].get<std::string>();
      out.titles[i] = titles[i];
    }
    for (const auto& [key, value] : m.items()) {
      if (is_field(key) && value.is_primitive() && !value.is_null()) names.insert(key);
    }
  }
  VS_TRY_ASSIGN(BuiltMap built, build_map(batch.ids, batch.data, batch.dim, titles, options));
  out.built_at = utc_now();
  out.seed = options.layout.seed;
  out.clusters = std::move(built.clusters);
  out.ids = batch.ids;
  out.x.resize(n);
  out.y.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    out.x[i] = built.xy[i * 2];
    out.y[i] = built.xy[i * 2 + 1];
  }
  out.cluster = std::move(built.cluster);
  out.placed.assign(n, 0);
  out.field_names.assign(names.begin(), names.end());
  out.fields.assign(out.field_names.size(), std::vector<json>(n, nullptr));
  for (std::size_t f = 0; f < out.field_names.size(); ++f) {
    for (std::size_t i = 0; i < n; ++i) {
      const json& m = batch.metadatas[i];
      if (!m.is_object()) continue;
      const auto it = m.find(out.field_names[f]);
      if (it != m.end() && it->is_primitive()) out.fields[f][i] = *it;
    }
  }
  out.dim = batch.dim;
  out.centres = std::move(built.centres);
  return out;
}

json map_json(const ArticleMap& map) {
  json clusters = json::array();
  for (const auto& c : map.clusters) {
    clusters.push_back({{"cluster", c.cluster}, {"label", c.label}, {"terms", c.terms}, {"size", c.size},
                        {"x", float_json(c.x)}, {"y", float_json(c.y)}});
  }
  json xs = json::array();
  json ys = json::array();
  for (std::size_t i = 0; i < map.size(); ++i) {
    xs.push_back(float_json(map.x[i]));
    ys.push_back(float_json(map.y[i]));
  }
  json fields = json::object();
  for (std::size_t f = 0; f < map.field_names.size(); ++f) fields[map.field_names[f]] = map.fields[f];
  return json{{"count", map.size()},
              {"built_at", map.built_at},
              {"method", map.method},
              {"seed", map.seed},
              {"placed", map.placed_count()},
              {"clusters", std::move(clusters)},
              {"points", {{"id", map.ids}, {"x", std::move(xs)}, {"y", std::move(ys)}, {"cluster", map.cluster}, {"title", map.titles}}},
              {"fields", std::move(fields)}};
}

Result<ArticleMap> map_from_json(const json& value) {
  ArticleMap out;
  VS_TRY_ASSIGN(const json* count, member(value, "count", json::value_t::number_unsigned, "an integer"));
  VS_TRY_ASSIGN(const json* built_at, member(value, "built_at", json::value_t::string, "a string"));
  VS_TRY_ASSIGN(const json* method, member(value, "method", json::value_t::string, "a string"));
  VS_TRY_ASSIGN(const json* seed, member(value, "seed", json::value_t::number_unsigned, "an integer"));
  VS_TRY_ASSIGN(const json* clusters, member(value, "clusters", json::value_t::array, "an array"));
  VS_TRY_ASSIGN(const json* points, member(value, "points", json::value_t::object, "an object"));
  VS_TRY_ASSIGN(const json* fields, member(value, "fields", json::value_t::object, "an object"));
  const auto n = count->get<std::size_t>();
  out.built_at = built_at->get<std::string>();
  out.method = method->get<std::string>();
  out.seed = seed->get<std::uint64_t>();
  try {
    for (const auto& c : *clusters) {
      MapCluster mc;
      mc.cluster = c.at("cluster").get<int>();
      mc.label = c.at("label").get<std::string>();
      mc.terms = c.at("terms").get<std::vector<std::string>>();
      mc.size = c.at("size").get<std::int64_t>();
      mc.x = c.at("x").get<float>();
      mc.y = c.at("y").get<float>();
      out.clusters.push_back(std::move(mc));
    }
    out.ids = points->at("id").get<std::vector<std::string>>();
    out.x = points->at("x").get<std::vector<float>>();
    out.y = points->at("y").get<std::vector<float>>();
    out.cluster = points->at("cluster").get<std::vector<int>>();
    out.titles = points->at("title").get<std::vector<json>>();
    for (const auto& [key, column] : fields->items()) {
      out.field_names.push_back(key);
      out.fields.push_back(column.get<std::vector<json>>());
    }
  } catch (const json::exception& e) {
    return fail(ErrorCode::corruption, fmt::format("the map is not in the form map_json() writes: {}", e.what()));
  }
  const bool columns_ok = out.ids.size() == n && out.x.size() == n && out.y.size() == n && out.cluster.size() == n &&
                          out.titles.size() == n &&
                          std::all_of(out.fields.begin(), out.fields.end(), [n](const auto& col) { return col.size() == n; });
  if (!columns_ok) return fail(ErrorCode::corruption, fmt::format("the map's columns are not all {} long", n));
  for (int c : out.cluster) {
    if (c < 0 || static_cast<std::size_t>(c) >= out.clusters.size()) {
      return fail(ErrorCode::corruption, fmt::format("the map has a point in cluster {} of {}", c, out.clusters.size()));
    }
  }
  out.placed.assign(n, 0);
  return out;
}

bool place_article(ArticleMap& map, const std::string& id, const json& metadata, const Placement& where) {
  std::size_t i = static_cast<std::size_t>(std::find(map.ids.begin(), map.ids.end(), id) - map.ids.begin());
  const bool fresh = i == map.size();
  if (fresh) {
    map.ids.push_back(id);
    map.x.push_back(0.0F);
    map.y.push_back(0.0F);
    map.cluster.push_back(where.cluster);
    map.titles.emplace_back(nullptr);
    map.placed.push_back(0);
    for (auto& column : map.fields) column.emplace_back(nullptr);
  } else if (static_cast<std::size_t>(map.cluster[i]) < map.clusters.size()) {
    --map.clusters[static_cast<std::size_t>(map.cluster[i])].size;
  }
  map.x[i] = where.x;
  map.y[i] = where.y;
  map.cluster[i] = where.cluster;
  map.placed[i] = 1;
  if (static_cast<std::size_t>(where.cluster) < map.clusters.size()) ++map.clusters[static_cast<std::size_t>(where.cluster)].size;
  const bool has_title = metadata.is_object() && metadata.contains("title") && metadata["title"].is_string();
  map.titles[i] = has_title ? metadata["title"] : json(nullptr);
  for (std::size_t f = 0; f < map.field_names.size(); ++f) {
    const auto it = metadata.is_object() ? metadata.find(map.field_names[f]) : metadata.end();
    map.fields[f][i] = metadata.is_object() && it != metadata.end() && it->is_primitive() ? *it : json(nullptr);
  }
  if (metadata.is_object()) {
    for (const auto& [key, value] : metadata.items()) {
      if (!is_field(key) || !value.is_primitive() || value.is_null()) continue;
      if (std::find(map.field_names.begin(), map.field_names.end(), key) != map.field_names.end()) continue;
      map.field_names.push_back(key);
      map.fields.emplace_back(map.size(), nullptr);
      map.fields.back()[i] = value;
    }
  }
  return fresh;
}

}  // namespace vstore
