// SPDX-License-Identifier: Apache-2.0
// `vstore ingest|search|similar|vectors|health|embed`: thin edges over ArticleStore.
// ingest reads and checks the whole file before writing anything, so a malformed line stops
// the run with nothing written; batches then commit one by one (re-running is idempotent).
#include <cmath>
#include <fstream>
#include <map>
#include <unordered_map>

#include <fmt/format.h>

#include "api/dual_store.hpp"
#include "cli/cli_common.hpp"
#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/schema.hpp"

namespace vstore::cli {
namespace {

using nlohmann::json;

std::string float9(float f) { return fmt::format("{:.9g}", f); }

// JSON for a vector with floats that parse back to the same float32.
json vector_json(std::span<const float> v) {
  json arr = json::array();
  for (float f : v) arr.push_back(json::parse(float9(f)));
  return arr;
}

json hits_json(const std::vector<SearchHit>& hits) {
  json out = json::array();
  for (const auto& h : hits) out.push_back({{"id", h.id}, {"score", h.score}, {"metadata", h.metadata}});
  return out;
}

void print_hits(const std::vector<SearchHit>& hits) {
  if (hits.empty()) {
    std::printf("no results\n");
    return;
  }
  int rank = 0;
  for (const auto& h : hits) {
    const std::string title = h.metadata.value("title", std::string());
    const std::string topic = h.metadata.value("topic", std::string());
    const std::string date = h.metadata.value("publication_date", std::string());
    std::printf("%2d. %.4f  %s  %s%s%s%s\n", ++rank, h.score, h.id.c_str(), title.c_str(),
                topic.empty() ? "" : "  [", topic.c_str(), topic.empty() ? "" : "]");
    if (!date.empty()) std::printf("              %s\n", date.c_str());
  }
}

Result<std::optional<FilterNode>> parse_where(const std::string& text) {
  if (text.empty()) return std::optional<FilterNode>{};
  VS_TRY_ASSIGN(FilterNode f, parse_filter(std::string_view(text)));
  return std::optional<FilterNode>(std::move(f));
}

// Opens the store VECTOR_BACKEND selects (open_store) and the embedder.
// `writes`: the command writes, so a missing Chroma collection is created. `shadow`: dual mode
// compares each search with the secondary.
Result<std::unique_ptr<ArticleStore>> open_articles(const Config& cfg, bool need_embedder, bool writes = false,
                                                    bool shadow = false) {
  OpenOptions options;
  options.create = writes;
  options.shadow_compare = shadow;
  VS_TRY_ASSIGN(auto store, open_store(cfg, options));
  std::unique_ptr<Embedder> embedder;
  if (need_embedder) {
    VS_TRY_ASSIGN(embedder, make_embedder(cfg));
  } else {
    // Commands that never embed still need an object; the hash embedder is not used by them.
    embedder = make_hash_embedder(cfg.embedding_dim);
  }
  return std::make_unique<ArticleStore>(std::move(store), std::move(embedder), 2);
}

struct IngestRecord {
  Article article;
  std::optional<Embedding> embedding;
  std::string model;
};

Result<std::vector<IngestRecord>> read_jsonl(const std::string& path, const std::string& default_model,
                                             std::int64_t& duplicates) {
  std::ifstream in(path);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open {}", path));
  std::vector<IngestRecord> records;
  std::unordered_map<std::string, std::size_t> index;
  std::string line;
  std::int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: not valid JSON", path, line_no));
    auto article = article_from_json(j);
    if (!article) return fail(article.error().with_context(fmt::format("{}:{}", path, line_no)));
    IngestRecord rec{std::move(*article), std::nullopt, default_model};
    if (auto it = j.find("embedding"); it != j.end() && !it->is_null()) {
      if (!it->is_array()) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{}:{}: field embedding must be a list of numbers, not {}", path, line_no, it->type_name()));
      }
      Embedding e;
      e.reserve(it->size());
      for (std::size_t i = 0; i < it->size(); ++i) {
        const auto& x = (*it)[i];
        if (!x.is_number()) {
          return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: embedding[{}] must be a number, not {}", path,
                                                               line_no, i, x.type_name()));
        }
        e.push_back(x.get<float>());
      }
      rec.embedding = std::move(e);
      if (auto m = j.find("embedding_model"); m != j.end() && m->is_string()) rec.model = m->get<std::string>();
    }
    if (auto it = index.find(rec.article.uri); it != index.end()) {
      records[it->second] = std::move(rec);  // the last record of a uri wins
      ++duplicates;
    } else {
      index.emplace(rec.article.uri, records.size());
      records.push_back(std::move(rec));
    }
  }
  return records;
}

// What a load did, for the summary.
struct LoadCounts {
  std::int64_t stored = 0;
  std::int64_t skipped_without_text = 0;
  std::int64_t skipped_existing = 0;  // already held a vector of the configured model
};

// Loads the records in batches; returns the first error. Records without a vector are
// embedded, except those whose article already holds a vector of the embedder's model, or of a
// model the store did not record (unless `reembed`): a second run over the same file only adds
// what is missing.
Result<void> load_batches(ArticleStore& store, std::vector<IngestRecord>& records, int batch_size, bool reembed,
                          LoadCounts& counts) {
  Progress progress("ingest", static_cast<std::int64_t>(records.size()));
  const std::string model(store.embedder().model());
  for (std::size_t start = 0; start < records.size(); start += static_cast<std::size_t>(batch_size)) {
    const std::size_t end = std::min(records.size(), start + static_cast<std::size_t>(batch_size));
    std::vector<ArticleVector> with_vectors;
    std::vector<Article> to_embed;
    std::vector<std::string> embed_ids;
    for (std::size_t i = start; i < end; ++i) {
      auto& r = records[i];
      if (r.embedding) {
        with_vectors.push_back(ArticleVector{r.article, *r.embedding, r.model});
      } else {
        embed_ids.push_back(r.article.uri);
      }
    }
    const std::string where = fmt::format("batch at record {} ({} records stored before it)", start + 1, counts.stored);
    std::map<std::string, std::string> existing;
    if (!reembed && !embed_ids.empty()) {
      auto models = store.store().vector_models(embed_ids);
      if (!models) return fail(models.error().with_context(where));
      existing = std::move(*models);
    }
    for (std::size_t i = start; i < end; ++i) {
      auto& r = records[i];
      if (r.embedding) continue;
      // Already embedded: by this model, or by one the store did not record (Chroma keeps no
      // model per record).
      if (auto it = existing.find(r.article.uri); it != existing.end() && (it->second == model || it->second.empty())) {
        ++counts.skipped_existing;
      } else {
        to_embed.push_back(r.article);
      }
    }
    if (!with_vectors.empty()) {
      if (auto ok = store.store().upsert(with_vectors); !ok) return fail(ok.error().with_context(where));
      counts.stored += static_cast<std::int64_t>(with_vectors.size());
    }
    if (!to_embed.empty()) {
      // upsert_articles() skips these (never a made-up vector); say which they are.
      for (const Article& a : to_embed) {
        if (document_text(a).empty()) {
          std::fprintf(stderr, "ingest: %s: skipped: raw, summary and title hold no text to embed\n", a.uri.c_str());
        }
      }
      const auto before = static_cast<std::int64_t>(end - to_embed.size());
      auto n = store.upsert_articles(to_embed, [&](std::size_t done) {
        progress.update(before + static_cast<std::int64_t>(done));
      });
      if (!n) return fail(n.error().with_context(where));
      counts.stored += static_cast<std::int64_t>(*n);
      counts.skipped_without_text += static_cast<std::int64_t>(to_embed.size() - *n);
    }
    progress.update(static_cast<std::int64_t>(end));
  }
  progress.finish();
  return {};
}

int run_ingest(const Globals& globals, const std::string& path, int batch_size, const std::string& model_flag,
               const std::string& bulk, bool reembed, bool json_out) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  std::int64_t duplicates = 0;
  auto records = read_jsonl(path, model_flag.empty() ? cfg->embedding_model : model_flag, duplicates);
  if (!records) return report(records.error());
  bool need_embedder = false;
  for (const auto& r : *records) need_embedder |= !r.embedding.has_value();
  auto store = open_articles(*cfg, need_embedder, true);
  if (!store) return report(store.error());
  LoadCounts counts;
  // Bulk mode: loading many rows into an indexed table costs an index insertion per row, so
  // the vector index is dropped first and built once at the end (also after a failed load).
  // Only the pgvector index can be suspended; a Chroma-only store loads as it is.
  bool use_bulk = bulk == "on" && cfg->backend != BackendKind::chromadb;
  if (bulk == "auto" && cfg->backend != BackendKind::chromadb) {
    auto counts = (*store)->store().count();
    if (!counts) return report(counts.error());
    use_bulk = records->size() >= 5000 && static_cast<std::int64_t>(records->size()) > 2 * counts->with_embedding;
  }
  std::string conninfo;
  if (use_bulk) {
    auto ci = resolve_conninfo(*cfg);
    if (!ci) return report(ci.error());
    conninfo = *ci;
    auto dropped = suspend_vector_index(conninfo, *cfg);
    if (!dropped) return report(dropped.error());
    if (!dropped->empty()) std::fprintf(stderr, "ingest: bulk load: vector index %s dropped, rebuilt after the load\n", dropped->c_str());
  }
  auto loaded = load_batches(**store, *records, batch_size, reembed, counts);
  if (use_bulk) {
    std::fprintf(stderr, "ingest: building the vector index ...\n");
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<Progress> bar;
    auto built = restore_vector_index(conninfo, *cfg, [&bar](std::int64_t done, std::int64_t total) {
      if (!bar) bar = std::make_unique<Progress>("ingest index build", total);
      bar->update(done);
    });
    if (bar) bar->finish();
    if (!built) return report(built.error().with_context("rebuilding the vector index (run `vstore schema up` to retry)"));
    if (*built) {
      std::fprintf(stderr, "ingest: vector index built in %.1f s\n",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  if (!loaded) return report(loaded.error());
  const json summary = {{"file", path},
                        {"records", records->size() + static_cast<std::size_t>(duplicates)},
                        {"upserted", counts.stored},
                        {"skipped_without_text", counts.skipped_without_text},
                        {"skipped_existing", counts.skipped_existing},
                        {"duplicates_in_file", duplicates}};
  if (json_out) {
    print_json(summary);
  } else {
    std::printf("ingested %s: %lld upserted, %lld skipped (no text), %lld already embedded, %lld duplicate uris in "
                "the file (last kept)\n",
                path.c_str(), static_cast<long long>(counts.stored), static_cast<long long>(counts.skipped_without_text),
                static_cast<long long>(counts.skipped_existing), static_cast<long long>(duplicates));
  }
  return k_exit_ok;
}

}  // namespace

void add_data_commands(CLI::App& app, const Globals& globals, Action& action) {
  static bool json_out = false;
  static int top_k = 10;
  static std::string where;
  static std::string text;
  static std::optional<int> ef_search;
  static bool shadow_compare = false;

  static std::string file;
  static int batch_size = 1000;
  static std::string model;
  auto* ingest = app.add_subcommand("ingest", "upsert articles from a JSON Lines file; records with an `embedding` list "
                                               "are stored as given, others are embedded from raw/summary/title");
  ingest->add_option("FILE", file, "JSON Lines file of article records")->required();
  ingest->add_option("--batch-size", batch_size, "records per transaction")->check(CLI::Range(1, 100000))->capture_default_str();
  ingest->add_option("--model", model, "model name of vectors given in the file (default: EMBEDDING_MODEL)");
  static std::string bulk = "auto";
  ingest->add_option("--bulk", bulk, "drop the vector index during the load and build it once after: auto (when the "
                                     "file brings >= 5000 records and more than twice the stored vectors), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  static bool reembed = false;
  ingest->add_flag("--reembed", reembed, "embed every record without a vector again, also those whose article "
                                         "already holds a vector of the configured model (skipped by default)");
  ingest->add_flag("--json", json_out, "print the summary as JSON");
  ingest->callback([&] {
    action = [&] { return run_ingest(globals, file, batch_size, model, bulk, reembed, json_out); };
  });

  auto* search = app.add_subcommand("search", "semantic search: embed TEXT and list the nearest articles");
  search->add_option("TEXT", text, "the query text")->required();
  search->add_option("--top-k", top_k, "number of results")->check(CLI::Range(1, 10000))->capture_default_str();
  search->add_option("--where", where, "ChromaDB-style filter, e.g. '{\"topic\": \"crude\"}'");
  search->add_option("--ef-search", ef_search, "HNSW candidate list for this query")->check(CLI::Range(1, 1000));
  search->add_flag("--json", json_out, "print [{id, score, metadata}] as JSON");
  search->add_flag("--shadow-compare", shadow_compare,
                   "VECTOR_BACKEND=dual: run the query on the secondary store too and print overlap@k to stderr");
  search->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto filter = parse_where(where);
      if (!filter) return report(filter.error().with_context("--where"));
      auto store = open_articles(*cfg, true, false, shadow_compare);
      if (!store) return report(store.error());
      auto vec = (*store)->embedder().embed(std::span<const std::string>(&text, 1));
      if (!vec) return report(vec.error());
      SearchOptions opts;
      opts.top_k = top_k;
      opts.where = *filter;
      opts.ef_search = ef_search;
      opts.model = std::string((*store)->embedder().model());
      auto hits = (*store)->store().search(vec->front(), opts);
      if (!hits) return report(hits.error());
      json_out ? print_json(hits_json(*hits)) : print_hits(*hits);
      if (shadow_compare) {
        auto h = (*store)->store().health();
        if (h && h->contains("shadow")) std::fprintf(stderr, "shadow compare: %s\n", (*h)["shadow"].dump().c_str());
      }
      return k_exit_ok;
    };
  });

  static std::string uri;
  static int similar_k = 5;
  auto* similar = app.add_subcommand("similar", "articles nearest to the stored vector of URI (itself excluded)");
  similar->add_option("URI", uri, "the article's uri")->required();
  similar->add_option("--top-k", similar_k, "number of results")->check(CLI::Range(1, 9999))->capture_default_str();
  similar->add_flag("--json", json_out, "print [{id, score, metadata}] as JSON");
  similar->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto store = open_articles(*cfg, false);
      if (!store) return report(store.error());
      auto hits = (*store)->similar_articles(uri, similar_k);
      if (!hits) return report(hits.error());
      json_out ? print_json(hits_json(*hits)) : print_hits(*hits);
      return k_exit_ok;
    };
  });

  static std::optional<std::int64_t> limit;
  auto* vectors = app.add_subcommand("vectors", "stored vectors with ids and metadata (get_vectors_by_metadata)");
  vectors->add_option("--limit", limit, "at most this many")->check(CLI::Range(std::int64_t{0}, std::int64_t{100000000}));
  vectors->add_option("--where", where, "ChromaDB-style filter");
  vectors->add_flag("--json", json_out, "print {ids, vectors, metadatas} as JSON");
  vectors->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto filter = parse_where(where);
      if (!filter) return report(filter.error().with_context("--where"));
      auto store = open_articles(*cfg, false);
      if (!store) return report(store.error());
      auto batch = (*store)->get_vectors_by_metadata(limit, *filter);
      if (!batch) return report(batch.error());
      if (json_out) {
        json vecs = json::array();
        for (std::size_t i = 0; i < batch->ids.size(); ++i) {
          vecs.push_back(vector_json(std::span<const float>(batch->data).subspan(i * batch->dim, batch->dim)));
        }
        print_json({{"ids", batch->ids}, {"vectors", vecs}, {"metadatas", batch->metadatas}});
      } else {
        std::printf("%zu vectors of %zu dimensions\n", batch->ids.size(), batch->dim);
        for (std::size_t i = 0; i < batch->ids.size() && i < 20; ++i) {
          std::printf("  %s  [%s, %s, ...]\n", batch->ids[i].c_str(), float9(batch->data[i * batch->dim]).c_str(),
                      float9(batch->data[i * batch->dim + 1]).c_str());
        }
        if (batch->ids.size() > 20) std::printf("  ... (--json prints all)\n");
      }
      return k_exit_ok;
    };
  });

  auto* health = app.add_subcommand("health", "check the store: server, extension, schema, index, coverage; exit 1 when unhealthy");
  health->add_flag("--json", json_out, "print the health report as JSON");
  health->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto store = open_articles(*cfg, false);
      if (!store) {
        if (json_out) {
          print_json({{"healthy", false}, {"reasons", {store.error().message()}}, {"backend", to_string(cfg->backend)}});
          return k_exit_failure;
        }
        return report(store.error());
      }
      auto h = (*store)->health();
      if (!h) return report(h.error());
      if (json_out) {
        print_json(*h);
      } else {
        auto text = [&](const char* key) { return (*h)[key].is_string() ? (*h)[key].get<std::string>() : std::string("-"); };
        const bool chroma = (*h)["backend"] == "chromadb";
        std::printf("%s: %s, %s %s, %s %s, %lld rows, %lld with embedding (%.2f%%), index %s\n",
                    (*h)["healthy"].get<bool>() ? "healthy" : "UNHEALTHY", (*h)["backend"].get<std::string>().c_str(),
                    chroma ? "chroma" : "postgresql", text("server_version").c_str(), chroma ? "collection" : "vector",
                    chroma ? text("collection").c_str() : text("extension_version").c_str(),
                    static_cast<long long>((*h)["rows"].get<std::int64_t>()),
                    static_cast<long long>((*h)["with_embedding"].get<std::int64_t>()),
                    (*h)["coverage_pct"].get<double>(), (*h)["index"]["type"].get<std::string>().c_str());
        for (const auto& r : (*h)["reasons"]) std::printf("  reason: %s\n", r.get<std::string>().c_str());
      }
      return (*h)["healthy"].get<bool>() ? k_exit_ok : k_exit_failure;
    };
  });

  static std::string outbox_action;
  auto* outbox = app.add_subcommand("outbox", "VECTOR_BACKEND=dual: writes waiting for the secondary store (status), or "
                                              "apply them now (drain)");
  outbox->add_option("ACTION", outbox_action, "status or drain")->required()->check(CLI::IsMember({"status", "drain"}));
  outbox->add_flag("--json", json_out, "print {pending, drained} as JSON");
  outbox->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      if (cfg->backend != BackendKind::dual) {
        return report(Error(ErrorCode::invalid_argument,
                            fmt::format("the outbox exists only with VECTOR_BACKEND=dual, not {}", to_string(cfg->backend))));
      }
      auto store = open_store(*cfg);
      if (!store) return report(store.error());
      auto* dual = dynamic_cast<api::DualStore*>(store->get());
      if (dual == nullptr) return report(Error(ErrorCode::internal, "the dual store is not a DualStore"));
      std::int64_t drained = 0;
      if (outbox_action == "drain") {
        auto n = dual->drain_outbox();
        if (!n) return report(n.error());
        drained = *n;
      }
      auto pending = dual->outbox_pending();
      if (!pending) return report(pending.error());
      if (json_out) {
        print_json({{"pending", *pending}, {"drained", drained}});
      } else {
        std::printf("outbox: %lld drained, %lld pending\n", static_cast<long long>(drained),
                    static_cast<long long>(*pending));
      }
      return k_exit_ok;
    };
  });

  static std::vector<std::string> texts;
  auto* embed = app.add_subcommand("embed", "embed texts with the configured embedder and print the vectors");
  embed->add_option("TEXT", texts, "texts to embed")->required();
  embed->add_flag("--json", json_out, "print a list of vectors as JSON");
  embed->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto embedder = make_embedder(*cfg);
      if (!embedder) return report(embedder.error());
      auto vecs = (*embedder)->embed(texts);
      if (!vecs) return report(vecs.error());
      if (json_out) {
        json out = json::array();
        for (const auto& v : *vecs) out.push_back(vector_json(v));
        print_json(out);
      } else {
        for (std::size_t i = 0; i < vecs->size(); ++i) {
          std::printf("%s (%zu dims, model %s): [%s, %s, ...]\n", texts[i].c_str(), (*vecs)[i].size(),
                      std::string((*embedder)->model()).c_str(), float9((*vecs)[i][0]).c_str(), float9((*vecs)[i][1]).c_str());
        }
      }
      return k_exit_ok;
    };
  });
}

}  // namespace vstore::cli
