// SPDX-License-Identifier: Apache-2.0
// `vstore project`: the map of the stored vectors (collection_map.hpp): a UMAP layout, k-means
// clusters labelled by their titles, and the trustworthiness@10 of the layout next to PCA's;
// --json prints embedding_projection's shape with the labels, --svg writes a scatter plot.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

#include <fmt/format.h>

#include "cli/cli_common.hpp"
#include "vstore/collection_map.hpp"
#include "vstore/filter.hpp"
#include "vstore/vector_store.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

constexpr int k_trust_k = 10;

struct ProjectArgs {
  std::string where;
  std::optional<int> clusters;
  std::uint64_t seed = 42;
  std::optional<std::int64_t> limit;
  bool json_out = false;
  std::string svg;
};

// Qualitative colours for the clusters (cycled past 24).
constexpr const char* k_palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                     "#bcbd22", "#17becf", "#393b79", "#e6550d", "#31a354", "#756bb1", "#636363", "#843c39",
                                     "#ad494a", "#3182bd", "#fd8d3c", "#74c476", "#9e9ac8", "#969696", "#d6616b", "#7b4173"};

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // XML 1.0 allows no control characters but tab, newline and carriage return.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

// The map as an SVG scatter plot: one circle per point (its title as a tooltip), coloured by
// cluster, and each cluster's label at its median point.
std::string svg_of(const ArticleMap& map) {
  constexpr double k_size = 1000.0;
  constexpr double k_margin = 40.0;
  float lo_x = 0.0F;
  float hi_x = 1.0F;
  float lo_y = 0.0F;
  float hi_y = 1.0F;
  if (map.size() > 0) {
    lo_x = *std::min_element(map.x.begin(), map.x.end());
    hi_x = *std::max_element(map.x.begin(), map.x.end());
    lo_y = *std::min_element(map.y.begin(), map.y.end());
    hi_y = *std::max_element(map.y.begin(), map.y.end());
  }
  const double span = std::max({static_cast<double>(hi_x - lo_x), static_cast<double>(hi_y - lo_y), 1e-9});
  const double scale = (k_size - 2 * k_margin) / span;
  auto px = [&](float x) { return k_margin + (x - lo_x) * scale; };
  auto py = [&](float y) { return k_size - k_margin - (y - lo_y) * scale; };  // y grows upwards
  const double radius = std::clamp(400.0 / std::sqrt(static_cast<double>(std::max<std::size_t>(map.size(), 1))), 1.2, 5.0);
  std::string out = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{0}\" viewBox=\"0 0 {0} {0}\">\n"
      "<title>vstore project: {1} articles, {2} clusters ({3}, seed {4})</title>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<g fill-opacity=\"0.6\">\n",
      k_size, map.size(), map.clusters.size(), map.method, map.seed);
  for (std::size_t i = 0; i < map.size(); ++i) {
    const char* colour = k_palette[static_cast<std::size_t>(map.cluster[i]) % std::size(k_palette)];
    const std::string title = map.titles[i].is_string() ? map.titles[i].get<std::string>() : map.ids[i];
    out += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{:.1f}\" fill=\"{}\"><title>{}</title></circle>\n", px(map.x[i]),
                       py(map.y[i]), radius, colour, xml_escape(title));
  }
  out += "</g>\n<g font-family=\"sans-serif\" font-size=\"15\" font-weight=\"bold\" text-anchor=\"middle\" "
         "stroke=\"white\" stroke-width=\"4\" paint-order=\"stroke\">\n";
  for (const auto& c : map.clusters) {
    const char* colour = k_palette[static_cast<std::size_t>(c.cluster) % std::size(k_palette)];
    out += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"{}\">{}</text>\n", px(c.x), py(c.y), colour,
                       xml_escape(c.label.empty() ? fmt::format("cluster {}", c.cluster) : c.label));
  }
  out += "</g>\n</svg>\n";
  return out;
}

int run_project(const Globals& globals, const ProjectArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  std::optional<FilterNode> where;
  if (!args.where.empty()) {
    auto parsed = parse_filter(std::string_view(args.where));
    if (!parsed) return report_usage(parsed.error().with_context("--where"));
    where = std::move(*parsed);
  }
  auto store = open_store(*cfg);
  if (!store) return report(store.error());
  auto batch = (*store)->get_vectors(args.limit, where);
  if (!batch) return report(batch.error());
  const double read_s = seconds_since(started);
  const std::size_t n = batch->ids.size();

  MapOptions options;
  options.layout.seed = args.seed;
  options.clusters = args.clusters.value_or(0);
  const auto build_start = std::chrono::steady_clock::now();
  auto map = map_articles(*batch, options);
  if (!map) return report(map.error());
  const double build_s = seconds_since(build_start);

  // Trustworthiness on the unit-length vectors (Euclidean ranks there are cosine ranks, the
  // layout's metric), of the layout and of the first two principal components.
  std::optional<double> trust_layout;
  std::optional<double> trust_pca;
  double trust_s = 0.0;
  if (static_cast<double>(n) > 2.0 * k_trust_k) {
    const auto trust_start = std::chrono::steady_clock::now();
    std::vector<float> unit(batch->data);
    for (std::size_t i = 0; i < n; ++i) {
      double norm = 0.0;
      for (std::size_t j = 0; j < batch->dim; ++j) norm += static_cast<double>(unit[i * batch->dim + j]) * unit[i * batch->dim + j];
      const double s = norm > 0.0 ? 1.0 / std::sqrt(norm) : 0.0;
      for (std::size_t j = 0; j < batch->dim; ++j) unit[i * batch->dim + j] = static_cast<float>(unit[i * batch->dim + j] * s);
    }
    std::vector<float> xy(n * 2);
    for (std::size_t i = 0; i < n; ++i) {
      xy[i * 2] = map->x[i];
      xy[i * 2 + 1] = map->y[i];
    }
    auto pca = pca_layout(unit, n, batch->dim);
    if (!pca) return report(pca.error());
    auto t_layout = trustworthiness(unit, xy, n, batch->dim, k_trust_k);
    if (!t_layout) return report(t_layout.error());
    auto t_pca = trustworthiness(unit, *pca, n, batch->dim, k_trust_k);
    if (!t_pca) return report(t_pca.error());
    trust_layout = *t_layout;
    trust_pca = *t_pca;
    trust_s = seconds_since(trust_start);
  }

  if (!args.svg.empty()) {
    std::ofstream out(args.svg, std::ios::binary | std::ios::trunc);
    out << svg_of(*map);
    out.close();
    if (!out) return report(Error(ErrorCode::unavailable, fmt::format("cannot write the SVG file {}", args.svg)));
  }

  auto trust_json = [](const std::optional<double>& v) { return v ? json(std::round(*v * 1e6) / 1e6) : json(nullptr); };
  if (args.json_out) {
    json points = json::array();
    json sizes = json::object();
    for (const auto& c : map->clusters) sizes[std::to_string(c.cluster)] = c.size;
    const json shown = map_json(*map);
    for (std::size_t i = 0; i < n; ++i) {
      const auto c = static_cast<std::size_t>(map->cluster[i]);
      points.push_back({{"id", map->ids[i]}, {"x", shown["points"]["x"][i]}, {"y", shown["points"]["y"][i]},
                        {"cluster", map->cluster[i]}, {"size", map->clusters[c].size}});
    }
    json centroids = json::array();
    for (std::size_t c = 0; c < map->clusters.size(); ++c) {
      centroids.push_back(std::vector<double>(map->centres.begin() + static_cast<std::ptrdiff_t>(c * map->dim),
                                              map->centres.begin() + static_cast<std::ptrdiff_t>((c + 1) * map->dim)));
    }
    print_json({{"points", points},
                {"centroids", centroids},
                {"sizes", sizes},
                {"count", n},
                {"method", map->method},
                {"seed", map->seed},
                {"clusters", shown["clusters"]},
                {"trustworthiness", {{"k", k_trust_k}, {"layout", trust_json(trust_layout)}, {"pca", trust_json(trust_pca)}}},
                {"elapsed_s", {{"read", std::round(read_s * 1000) / 1000}, {"map", std::round(build_s * 1000) / 1000},
                               {"trustworthiness", std::round(trust_s * 1000) / 1000}}}});
    return k_exit_ok;
  }
  std::printf("project: %zu articles of %zu dimensions, %zu clusters (%s, seed %llu)\n", n, batch->dim, map->clusters.size(),
              map->method.c_str(), static_cast<unsigned long long>(map->seed));
  if (!map->clusters.empty()) std::printf("  cluster   size  label\n");
  for (const auto& c : map->clusters) {
    std::printf("  %7d %6lld  %s\n", c.cluster, static_cast<long long>(c.size), c.label.c_str());
  }
  if (trust_layout) {
    std::printf("trustworthiness@%d: layout %.4f, pca %.4f\n", k_trust_k, *trust_layout, *trust_pca);
  } else {
    std::printf("trustworthiness@%d: needs more than %d articles\n", k_trust_k, 2 * k_trust_k);
  }
  std::printf("time: read %.1f s, map %.1f s, trustworthiness %.1f s\n", read_s, build_s, trust_s);
  if (!args.svg.empty()) std::printf("svg: %s (%zu points)\n", args.svg.c_str(), n);
  print_done("project", fmt::format("{} articles mapped", n), started);
  return k_exit_ok;
}

}  // namespace

void add_project_commands(CLI::App& app, const Globals& globals, Action& action) {
  static ProjectArgs args;
  auto* project = app.add_subcommand(
      "project", "the map of the stored vectors: a UMAP layout, k-means clusters labelled by their titles, and "
                 "trustworthiness@10 against PCA (embedding_projection's shape with --json)");
  project->add_option("--where", args.where, "ChromaDB-style filter, e.g. '{\"topic\": \"crude\"}'");
  project->add_option("--clusters", args.clusters, "k of the k-means (default: the cube root of the count, 2 to 24)")
      ->check(CLI::Range(1, 1000));
  project->add_option("--seed", args.seed, "seed of the layout and the clusters")->capture_default_str();
  project->add_option("--limit", args.limit, "at most this many vectors")->check(CLI::Range(std::int64_t{1}, std::int64_t{100000000}));
  project->add_flag("--json", args.json_out, "print {points: [{id, x, y, cluster, size}], centroids, sizes, clusters, trustworthiness, ...}");
  project->add_option("--svg", args.svg, "write a scatter plot, coloured by cluster with the labels, to FILE");
  project->callback([&] { action = [&] { return run_project(globals, args); }; });
}

}  // namespace vstore::cli
