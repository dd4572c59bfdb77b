// SPDX-License-Identifier: Apache-2.0
// `vstore bench embed`: the local embedding engine against a peer, in one run.
// Design:
// - Texts: the first `limit` non-empty values of one field of the article file, in file order,
//   cut into batches of `batch` texts; each batch is one Embedder::embed() call, so the time
//   covers tokenisation, the forward pass, pooling and normalisation, as an ingest sees it.
// - Timings: one untimed batch first, then all batches between two steady_clock reads, for 1
//   and then 2 threads (separate embedders over the same model files). Query latency: the
//   median of `queries` single-text calls after 5 untimed ones, at 1 and at 2 threads.
// - Concurrency: four one-batch embed() calls at once against the same four in a row
//   (concurrent_vs_sequential; see time_concurrent()), on the engine's one pool per process.
// - Peer: scripts/bench_embed_peer.py gets the same texts, batch size, thread counts and query
//   through a JSON file and prints its figures and the vectors of the first `cross_check`
//   texts, which are compared with ours (minimum cosine), so the two engines are shown to
//   compute the same function while they are timed.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "embed/embed_local.hpp"
#include "macro/bench_support.hpp"
#include "core/cosine.hpp"
#include "embed/embed_tokenizer.hpp"
#include "embed/embed_bert.hpp"
#include "vstore/article.hpp"
#include "macro/bench.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

using bench_support::seconds_since;

double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

Result<std::vector<std::string>> read_texts(const BenchEmbedOptions& options) {
  std::ifstream in(options.data);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open the article file {}", options.data.string()));
  std::vector<std::string> texts;
  std::string line;
  std::int64_t line_no = 0;
  while (static_cast<std::int64_t>(texts.size()) < options.limit && std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) {
      return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: not valid JSON", options.data.string(), line_no));
    }
    VS_TRY_ASSIGN(Article article, article_from_json(j));
    std::string text;
    if (options.field == "document") {
      text = std::string(document_text(article));
    } else if (options.field == "summary") {
      text = article.summary.value_or("");
    } else {
      text = article.title.value_or("");
    }
    if (text.find_first_not_of(" \t\r\n") != std::string::npos) texts.push_back(std::move(text));
  }
  return texts;
}

// Texts per second through `embedder`, batch by batch; the vectors are kept in `out`.
Result<double> time_batches(Embedder& embedder, const std::vector<std::string>& texts, std::size_t batch,
                            std::vector<Embedding>& out, const BenchProgress& progress, std::string_view phase) {
  const std::span<const std::string> all(texts);
  VS_TRY(embedder.embed(all.subspan(0, std::min(batch, texts.size()))));  // warm-up
  out.clear();
  out.reserve(texts.size());
  const auto t0 = Clock::now();
  for (std::size_t start = 0; start < texts.size(); start += batch) {
    VS_TRY_ASSIGN(auto vecs, embedder.embed(all.subspan(start, std::min(batch, texts.size() - start))));
    for (auto& v : vecs) out.push_back(std::move(v));
    if (progress) progress(phase, static_cast<double>(out.size()) / static_cast<double>(texts.size()));
  }
  return static_cast<double>(texts.size()) / seconds_since(t0);
}

// Four embed() calls of one batch each, run at once from four threads and then one after
// another, on one embedder (the engine's default threads, one per core, on the process's one
// pool): {concurrent_4_s, sequential_4_s, concurrent_vs_sequential}, medians of 3 rounds after
// one untimed round. A ratio above 1 means concurrent callers slow each other down
// (oversubscription); the pool is meant to keep it at or below 1.
Result<json> time_concurrent(Embedder& embedder, std::span<const std::string> batch) {
  constexpr int k_calls = 4;
  constexpr int k_rounds = 3;
  const auto concurrent = [&]() -> Result<double> {
    std::vector<Result<std::vector<Embedding>>> results(k_calls);
    const auto t0 = Clock::now();
    {
      std::vector<std::jthread> callers;
      for (int call_idx = 0; call_idx < k_calls; ++call_idx) {
        callers.emplace_back([&, call_idx] { results[static_cast<std::size_t>(call_idx)] = embedder.embed(batch); });
      }
    }
    const double secs = seconds_since(t0);
    for (auto& r : results) VS_TRY(r);
    return secs;
  };
  const auto sequential = [&]() -> Result<double> {
    const auto t0 = Clock::now();
    for (int call_idx = 0; call_idx < k_calls; ++call_idx) VS_TRY(embedder.embed(batch));
    return seconds_since(t0);
  };
  VS_TRY(concurrent());  // warm-up: thread-local workspaces, caches
  std::vector<double> conc;
  std::vector<double> seq;
  for (int round = 0; round < k_rounds; ++round) {
    VS_TRY_ASSIGN(const double c, concurrent());
    VS_TRY_ASSIGN(const double s, sequential());
    conc.push_back(c);
    seq.push_back(s);
  }
  std::sort(conc.begin(), conc.end());
  std::sort(seq.begin(), seq.end());
  const double c = conc[conc.size() / 2];
  const double s = seq[seq.size() / 2];
  return json{{"concurrent_4_s", round3(c)}, {"sequential_4_s", round3(s)}, {"concurrent_vs_sequential", round3(c / s)}};
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Runs the peer script; returns its JSON output.
Result<json> run_peer(const BenchEmbedOptions& options, const std::vector<std::string>& texts) {
  const std::filesystem::path spec_path =
      std::filesystem::temp_directory_path() / fmt::format("vstore-bench-embed-{}.json", getpid());
  const std::filesystem::path err_path = spec_path.string() + ".stderr";
  {
    std::ofstream spec(spec_path);
    if (!spec) return fail(ErrorCode::internal, fmt::format("cannot write {}", spec_path.string()));
    spec << json{{"texts", texts},          {"query", options.query},           {"batch", options.batch},
                 {"threads", {1, 2}},       {"queries", options.queries},       {"vectors_out", options.cross_check}}
                .dump();
  }
  const std::string command =
      fmt::format("{} {} --model-dir {} --input {} 2>{}", shell_quote(options.python.string()),
                  shell_quote(options.peer_script.string()), shell_quote(options.model_dir.string()),
                  shell_quote(spec_path.string()), shell_quote(err_path.string()));
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return fail(ErrorCode::internal, fmt::format("cannot run {}", options.python.string()));
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  std::error_code ec;
  std::filesystem::remove(spec_path, ec);
  std::string err;
  {
    std::ifstream e(err_path);
    err.assign(std::istreambuf_iterator<char>(e), std::istreambuf_iterator<char>());
    std::filesystem::remove(err_path, ec);
  }
  if (status != 0) {
    if (err.size() > 2000) err = "..." + err.substr(err.size() - 2000);
    return fail(ErrorCode::internal, fmt::format("the peer {} failed (status {}): {}", options.peer_script.string(),
                                                 status, err));
  }
  json result = json::parse(output, nullptr, false);
  if (result.is_discarded() || !result.is_object()) {
    return fail(ErrorCode::internal, fmt::format("the peer {} printed no JSON object", options.peer_script.string()));
  }
  return result;
}

// cos(a, b) for a peer's vector (JSON numbers; anything else makes it 0).
double cosine(std::span<const float> a, const json& b) {
  std::vector<float> peer;
  if (b.is_array()) {
    for (const json& x : b) {
      if (!x.is_number()) return 0.0;
      peer.push_back(x.get<float>());
    }
  }
  return cosine_similarity(a, peer);
}

// Five untimed single-text embeddings of options.query, then `queries` timed ones; returns
// their latencies in ms, sorted.
Result<std::vector<double>> time_queries(Embedder& embedder, const BenchEmbedOptions& options) {
  const std::span<const std::string> query(&options.query, 1);
  for (int i = 0; i < 5; ++i) VS_TRY(embedder.embed(query));
  std::vector<double> lat;
  lat.reserve(static_cast<std::size_t>(options.queries));
  for (int i = 0; i < options.queries; ++i) {
    const auto t0 = Clock::now();
    VS_TRY(embedder.embed(query));
    lat.push_back(seconds_since(t0) * 1000.0);
  }
  std::sort(lat.begin(), lat.end());
  return lat;
}

}  // namespace

Result<json> bench_embed(const BenchEmbedOptions& options) {
  if (options.limit < 32 || options.limit > 1000000) {
    return fail(ErrorCode::invalid_argument, fmt::format("limit must be 32..1000000, not {}", options.limit));
  }
  if (options.batch < 1 || options.batch > 1024) {
    return fail(ErrorCode::invalid_argument, fmt::format("batch must be 1..1024, not {}", options.batch));
  }
  if (options.queries < 1 || options.queries > 100000) {
    return fail(ErrorCode::invalid_argument, fmt::format("queries must be 1..100000, not {}", options.queries));
  }
  if (options.field != "summary" && options.field != "title" && options.field != "document") {
    return fail(ErrorCode::invalid_argument,
                fmt::format("field must be summary, title or document, not {}", options.field));
  }
  if (options.threads < 0 || options.threads > 256) {
    return fail(ErrorCode::invalid_argument, fmt::format("threads must be 0..256, not {}", options.threads));
  }
  if (options.cross_check < 0 || options.cross_check > options.limit) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("cross_check must be 0..{} (the limit), not {}", options.limit, options.cross_check));
  }
  VS_TRY_ASSIGN(std::vector<std::string> texts, read_texts(options));
  if (texts.size() < static_cast<std::size_t>(options.batch)) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} has only {} non-empty {} texts, fewer than one batch of {}",
                                                         options.data.string(), texts.size(), options.field,
                                                         options.batch));
  }
  if (!options.python.empty() && !std::filesystem::exists(options.peer_script)) {
    return fail(ErrorCode::not_found, fmt::format("peer script {} not found", options.peer_script.string()));
  }

  VS_TRY_ASSIGN(auto tokenizer, embed::WordPieceTokenizer::load(options.model_dir));
  VS_TRY_ASSIGN(auto model, embed::BertModel::load(options.model_dir));
  const std::size_t max_len = embed::read_max_seq_length(options.model_dir, model->max_positions());
  std::size_t tokens = 0;
  for (const auto& t : texts) tokens += tokenizer.encode(t, max_len).size();

  json out;
  out["texts"] = texts.size();
  out["batch"] = options.batch;
  out["field"] = options.field;
  out["mean_tokens"] = round3(static_cast<double>(tokens) / static_cast<double>(texts.size()));
  out["model"] = options.model_name;

  const auto batch = static_cast<std::size_t>(options.batch);
  std::vector<Embedding> vectors;
  for (const int threads : {1, 2}) {
    VS_TRY_ASSIGN(auto embedder, embed::make_local_embedder(options.model_dir, options.model_name,
                                                            model->hidden_size(), threads));
    std::vector<Embedding> got;
    VS_TRY_ASSIGN(double rate, time_batches(*embedder, texts, batch, got, options.progress,
                                            threads == 1 ? "embed_1t" : "embed_2t"));
    out[fmt::format("sentences_per_s_{}t", threads)] = round3(rate);
    if (threads == 1) vectors = std::move(got);
    VS_TRY_ASSIGN(const std::vector<double> lat, time_queries(*embedder, options));
    out[fmt::format("query_latency_{}t_ms", threads)] = round3(lat[lat.size() / 2]);
    out[fmt::format("query_p95_{}t_ms", threads)] = round3(lat[std::min(lat.size() - 1, lat.size() * 95 / 100)]);
  }
  // query_latency_ms is the figure at the configured thread count (0 = one per core).
  const int query_threads = options.threads > 0 ? options.threads
                                                : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (query_threads <= 2) {
    out["query_latency_ms"] = out[fmt::format("query_latency_{}t_ms", query_threads)];
  } else {
    VS_TRY_ASSIGN(auto embedder, embed::make_local_embedder(options.model_dir, options.model_name,
                                                            model->hidden_size(), query_threads));
    VS_TRY_ASSIGN(const std::vector<double> lat, time_queries(*embedder, options));
    out["query_latency_ms"] = round3(lat[lat.size() / 2]);
  }
  out["query_threads"] = query_threads;
  {
    VS_TRY_ASSIGN(auto embedder, embed::make_local_embedder(options.model_dir, options.model_name,
                                                            model->hidden_size(), 0));
    VS_TRY_ASSIGN(json conc, time_concurrent(*embedder, std::span(texts).first(batch)));
    out.update(conc);
  }
  out["query_tokens"] = tokenizer.encode(options.query, max_len).size();

  for (const char* key : {"peer", "peer_version", "peer_sentences_per_s_1t", "peer_sentences_per_s_2t",
                          "peer_query_latency_ms", "peer_query_latency_1t_ms", "peer_query_latency_2t_ms", "ratio_1t",
                          "ratio_2t", "peer_min_cosine"}) {
    out[key] = nullptr;
  }
  if (!options.python.empty()) {
    if (options.progress) options.progress("peer", 0.0);
    VS_TRY_ASSIGN(json peer, run_peer(options, texts));
    if (options.progress) options.progress("peer", 1.0);
    out["peer"] = peer.value("peer", "");
    out["peer_version"] = peer.value("peer_version", "");
    for (const int threads : {1, 2}) {
      const std::string key = fmt::format("sentences_per_s_{}t", threads);
      if (!peer.contains(key) || !peer[key].is_number()) {
        return fail(ErrorCode::internal, fmt::format("the peer printed no {}", key));
      }
      const double rate = peer[key].get<double>();
      out["peer_" + key] = round3(rate);
      out[fmt::format("ratio_{}t", threads)] = round3(out[key].get<double>() / rate);
    }
    for (const int threads : {1, 2}) {
      const std::string key = fmt::format("query_latency_{}t_ms", threads);
      if (peer.contains(key) && peer[key].is_number()) out["peer_" + key] = round3(peer[key].get<double>());
    }
    out["peer_query_latency_ms"] = out["peer_query_latency_2t_ms"];
    const json& peer_vectors = peer["vectors"];
    if (!peer_vectors.is_array() || peer_vectors.size() != static_cast<std::size_t>(options.cross_check)) {
      return fail(ErrorCode::internal, fmt::format("the peer returned {} vectors for the cross-check, expected {}",
                                                   peer_vectors.is_array() ? peer_vectors.size() : 0,
                                                   options.cross_check));
    }
    double min_cos = 1.0;
    for (std::size_t i = 0; i < peer_vectors.size(); ++i) min_cos = std::min(min_cos, cosine(vectors[i], peer_vectors[i]));
    if (options.cross_check > 0) out["peer_min_cosine"] = min_cos;
  }
  out["machine"] = bench_machine_info();
  out["version"] = VSTORE_VERSION;
  return out;
}

}  // namespace vstore
