// SPDX-License-Identifier: Apache-2.0
// `vstore bench reindex`: reindex() against the embedding engine alone, on the same texts.
// Design:
// - The table is made as a live one is: schema_up with the configured vector index, the articles
//   loaded without vectors by one binary COPY, ANALYZE. Each phase starts from a CHECKPOINT.
// - The engine's figure is the ceiling reindex can reach: the same embedder object (so the same
//   engine threads and model), the same texts (document_text() of the rows, read in uri order as
//   reindex reads them) in the same batches, with nothing else running.
// - Then reindex() over the table. Its rate counts the whole run: reading, embedding, writing
//   and the index updates, from the call to its return. ratio = reindex / engine.
// - The vectors reindex stored are compared with the engine's (minimum cosine over all rows),
//   so the two phases are shown to have done the same work.
#include "macro/bench_reindex.hpp"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <unordered_map>

#include <fmt/format.h>

#include "core/cosine.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/article.hpp"
#include "vstore/reindex.hpp"
#include "vstore/schema.hpp"

#ifndef VSTORE_VERSION
#define VSTORE_VERSION "unknown"
#endif

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;
namespace bs = bench_support;

Result<std::vector<Article>> read_articles(const BenchReindexOptions& options) {
  std::ifstream in(options.data);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open the article file {}", options.data.string()));
  std::vector<Article> articles;
  std::string line;
  std::int64_t line_no = 0;
  while ((options.limit == 0 || static_cast<std::int64_t>(articles.size()) < options.limit) && std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: not JSON", options.data.string(), line_no));
    auto article = article_from_json(j);
    if (!article) return fail(article.error().with_context(fmt::format("{}:{}", options.data.string(), line_no)));
    articles.push_back(std::move(*article));
  }
  return articles;
}

Result<void> load_without_vectors(Connection& conn, const std::string& table, const std::vector<Article>& articles) {
  pg::CopyWriter writer;
  for (const Article& a : articles) {
    writer.begin_row(5);
    writer.bytes_field(a.uri);
    writer.text_field(a.title);
    writer.text_field(a.summary);
    writer.text_field(a.raw);
    writer.text_field(a.topic);
  }
  VS_TRY(conn.copy_in(fmt::format("COPY {} (uri, title, summary, raw, topic) FROM STDIN (FORMAT binary)", table),
                      writer.finish()));
  VS_TRY(conn.exec(fmt::format("ANALYZE {}", table)));
  return {};
}

}  // namespace

Result<json> bench_reindex(const std::string& admin_conninfo, const Config& config, Embedder& embedder,
                           const BenchReindexOptions& options) {
  VS_TRY(bs::check_range("batch_size", options.batch_size, 1, 10000));
  VS_TRY_ASSIGN(const std::vector<Article> articles, read_articles(options));
  const json machine = bench_machine_info();
  bs::ScratchDatabase scratch(admin_conninfo, fmt::format("vstore_bench_reindex_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, scratch.create());
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo, 10, std::chrono::milliseconds(0)));
  Config cfg = config;
  cfg.database_url = conninfo;
  cfg.database_read_urls.clear();
  cfg.embedding_dim = embedder.dimension();
  cfg.embedding_model = std::string(embedder.model());
  cfg.data_dir = std::filesystem::temp_directory_path() / scratch.name();
  VS_TRY(schema_up(conninfo, cfg));
  const std::string table = Connection::quote_ident(cfg.table);
  VS_TRY(load_without_vectors(conn, table, articles));
  VS_TRY_ASSIGN(const json server, bs::server_info(conn));

  // 1. The engine alone, on the texts reindex will embed, in the batches it will make: read back
  //    in uri order, as reindex reads them (an engine pads a batch to its longest text, so
  //    other batches would be other work).
  std::vector<std::string> texts;
  std::vector<std::string> uris;
  {
    VS_TRY_ASSIGN(pg::PgResult rows, conn.exec(fmt::format("SELECT uri, raw, summary, title FROM {} ORDER BY uri", table)));
    for (int row = 0; row < rows.rows(); ++row) {
      Article a;
      a.uri = rows.text(row, 0);
      if (!rows.is_null(row, 1)) a.raw = rows.text(row, 1);
      if (!rows.is_null(row, 2)) a.summary = rows.text(row, 2);
      if (!rows.is_null(row, 3)) a.title = rows.text(row, 3);
      const std::string_view text = document_text(a);
      if (text.empty()) continue;
      texts.emplace_back(text);
      uris.push_back(std::move(a.uri));
    }
  }
  VS_TRY(bs::checkpoint(conn));
  std::unordered_map<std::string, Embedding> engine_vectors;
  engine_vectors.reserve(texts.size());
  const auto batch = static_cast<std::size_t>(options.batch_size);
  const auto engine_started = std::chrono::steady_clock::now();
  for (std::size_t start = 0; start < texts.size(); start += batch) {
    const std::size_t n = std::min(batch, texts.size() - start);
    VS_TRY_ASSIGN(std::vector<Embedding> vectors, embedder.embed(std::span<const std::string>(texts).subspan(start, n)));
    for (std::size_t idx = 0; idx < n; ++idx) engine_vectors[uris[start + idx]] = std::move(vectors[idx]);
    bs::report(options.progress, "embed", static_cast<double>(start + n) / static_cast<double>(texts.size()));
  }
  const double engine_s = bs::seconds_since(engine_started);

  // 2. reindex() over the table.
  VS_TRY(bs::checkpoint(conn));
  ReindexOptions ro;
  ro.batch_size = options.batch_size;
  const auto rows = static_cast<double>(articles.size());
  VS_TRY_ASSIGN(const ReindexReport report,
                reindex(conninfo, cfg, embedder, ro, [&](const ReindexCounts& c) {
                  bs::report(options.progress, "reindex", std::min(1.0, static_cast<double>(c.examined) / rows));
                }));
  const double reindex_s = report.elapsed_s;

  // The same work: every stored vector against the engine's.
  VS_TRY_ASSIGN(pg::PgResult stored,
                conn.exec_params(fmt::format("SELECT uri, embedding FROM {} WHERE embedding IS NOT NULL", table), {}, true));
  double min_cosine = 1.0;
  std::vector<float> vec;
  for (int row = 0; row < stored.rows(); ++row) {
    vec.clear();
    VS_TRY(pg::decode_vector(stored.get(row, 1), vec, static_cast<std::size_t>(cfg.embedding_dim)));
    const auto it = engine_vectors.find(stored.text(row, 0));
    if (it == engine_vectors.end()) {
      return fail(ErrorCode::internal, fmt::format("reindex stored a vector for {}, which has no text", stored.text(row, 0)));
    }
    min_cosine = std::min(min_cosine, cosine_similarity(vec, it->second));
  }
  const double engine_rate = static_cast<double>(texts.size()) / engine_s;
  const double reindex_rate = static_cast<double>(report.counts.processed) / reindex_s;
  return json{{"articles", articles.size()},
              {"with_text", texts.size()},
              {"batch_size", options.batch_size},
              {"model", std::string(embedder.model())},
              {"engine_s", bs::round_to(engine_s, 3)},
              {"engine_rate_per_s", bs::round_to(engine_rate, 1)},
              {"reindex_s", bs::round_to(reindex_s, 3)},
              {"reindex_rate_per_s", bs::round_to(reindex_rate, 1)},
              {"ratio", bs::round_to(reindex_rate / engine_rate, 3)},
              {"processed", report.counts.processed},
              {"skipped", report.counts.skipped},
              {"failed", report.counts.failed},
              {"stored_vectors", stored.rows()},
              {"min_cosine", bs::round_to(min_cosine, 6)},
              {"index", report.index_name},
              {"machine", machine},
              {"server", server},
              {"version", VSTORE_VERSION}};
}

}  // namespace vstore
