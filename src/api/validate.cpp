// SPDX-License-Identifier: Apache-2.0
// validate_stores(), tune_index() and write_env_setting().
//
// Design:
// - Queries: texts from the caller, or titles of stored articles sampled by ORDER BY
//   md5(seed || uri), which is deterministic for a seed and a table and needs no random() state
//   on the server. All texts are embedded in one embed() call, as search_articles would embed
//   each.
// - Each query runs unfiltered and with {"topic": T}, the filter of the application's call sites
//   (docs/reference/original-api-contract.md "Call sites"). pgvector answers it twice: through
//   search() (the index, planned as for the application) and through search_exact() (the ground
//   truth); Chroma once through its own search(). The Chroma comparison uses pgvector's served
//   answer, since that is what a switch of VECTOR_BACKEND changes for a user.
// - overlap@k = |A ∩ B| / k, where k shrinks to the number of rows the filter matches when that
//   is smaller (both stores return every match then), and where an id of B that is not in A but
//   ties A's last distance counts as found: which of equal distances a store returns at the cut is
//   arbitrary (Reuters has exact duplicates). Jaccard is plain |A ∩ B| / |A ∪ B|. The rank
//   correlation is Spearman's rho over the common ids (each list's order of them), undefined
//   (null, left out of the mean) below 2 common ids.
// - passed: with Chroma compared, the mean overlap@k of the unfiltered queries and that of the
//   filtered ones each reach min_overlap; recall@k is reported but does not decide. Without
//   Chroma the same test is applied to recall@k, and the report says chroma_compared false, so a
//   reader (cleanup-chroma) can tell a validation that never looked at Chroma.
// - The run is logged in vstore_operations before any query and finished after the report is
//   written, passing or not; an error on the way finishes it as failed.
// - tune_index() reuses the sample, computes the exact answers once, then times search() per
//   setting (SearchOptions::ef_search or probes) around the call in this process.

#include "vstore/validate.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "chroma/chroma_store.hpp"
#include "pg/pg_conn.hpp"
#include "pg/pg_store.hpp"
#include "vstore/embedder.hpp"
#include "vstore/operations.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using pg::Connection;
using pg::Param;

constexpr int k_worst = 5;
// The most answers validate asks pgvector for when it sets aside the articles Chroma lacks.
constexpr std::int64_t k_validate_max_k = 10000;
constexpr double k_tie_eps = 1e-5;  // float32 distances of equal vectors computed by two engines

struct Query {
  std::string text;
  std::optional<std::string> topic;  // the filter's value, when there is one
};

std::string utc_stamp_micros() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%S", &tm);
  return fmt::format("{}.{:06d}", buf, micros);
}

Result<void> check_common(int sample, int top_k) {
  if (sample < 1 || sample > 10000) {
    return fail(ErrorCode::invalid_argument, fmt::format("sample must be from 1 to 10000 articles, not {}", sample));
  }
  if (top_k < 1 || top_k > k_max_index_top_k) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("top_k must be from 1 to {}, not {}", k_max_index_top_k, top_k));
  }
  return {};
}

Result<void> check_fraction(std::string_view name, double value) {
  if (!(value >= 0.0 && value <= 1.0)) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} must be from 0 to 1, not {}", name, value));
  }
  return {};
}

// `sample` stored articles with a vector and a title, chosen by `seed`.
Result<std::vector<Query>> sample_articles(const std::string& conninfo, const pg::TableInfo& info, int sample,
                                           std::uint64_t seed) {
  if (!info.columns.contains("title")) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("table {} has no title column to sample query texts from: give the queries in a file",
                            info.table));
  }
  const bool has_topic = info.columns.contains("topic");
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  const std::string table = Connection::quote_ident(info.table);
  const std::string sql = fmt::format(
      "SELECT title, {} FROM {} WHERE embedding IS NOT NULL AND btrim(coalesce(title, '')) <> '' "
      "ORDER BY md5($1 || uri), uri LIMIT $2",
      has_topic ? "topic::text" : "NULL::text", table);
  const std::string seed_text = std::to_string(seed);
  const std::string limit = std::to_string(sample);
  const std::vector<Param> params = {Param::text(seed_text), Param::text(limit)};
  VS_TRY_ASSIGN(pg::PgResult res, conn.exec_params(sql, params));
  if (res.rows() == 0) {
    return fail(ErrorCode::not_found,
                fmt::format("table {} holds no article with a vector and a title to sample: ingest or reindex first, or "
                            "give the queries in a file",
                            info.table));
  }
  std::vector<Query> out;
  for (int r = 0; r < res.rows(); ++r) {
    Query q{res.text(r, 0), std::nullopt};
    if (!res.is_null(r, 1) && !res.get(r, 1).empty()) q.topic = res.text(r, 1);
    out.push_back(std::move(q));
  }
  return out;
}

struct Opened {
  std::unique_ptr<pg::PgVectorStore> pg;
  std::shared_ptr<const pg::TableInfo> info;
};

Result<Opened> open_pg(const std::string& conninfo, const Config& config) {
  VS_TRY_ASSIGN(auto store, pg::PgVectorStore::open(conninfo, config));
  Opened out;
  out.info = store->table_info();
  out.pg = std::move(store);
  return out;
}

Result<std::vector<Embedding>> embed_texts(const Config& config, const std::vector<std::string>& texts) {
  VS_TRY_ASSIGN(auto embedder, make_embedder(config));
  return embedder->embed(texts);
}

std::set<std::string> id_set(const std::vector<SearchHit>& hits) {
  std::set<std::string> out;
  for (const auto& h : hits) out.insert(h.id);
  return out;
}

// |truth ∩ found| / |truth|, where an id of `found` outside `truth` that ties truth's last
// distance counts as found (see the design note). 1 when truth is empty.
double tie_aware_overlap(const std::vector<SearchHit>& truth, const std::vector<SearchHit>& found) {
  if (truth.empty()) return found.empty() ? 1.0 : 0.0;
  const std::set<std::string> want = id_set(truth);
  const double last = truth.back().score;
  std::size_t hit = 0;
  for (const auto& h : found) {
    if (want.contains(h.id) || std::abs(h.score - last) <= k_tie_eps) ++hit;
  }
  return std::min(1.0, static_cast<double>(hit) / static_cast<double>(std::max(truth.size(), found.size())));
}

// The figures of one query against Chroma.
struct Pair {
  double overlap = 0;
  double jaccard = 0;
  std::optional<double> spearman;
  std::optional<double> diff_max;
  double diff_sum = 0;
  std::size_t diff_count = 0;
};

Pair compare(const std::vector<SearchHit>& a, const std::vector<SearchHit>& b) {
  Pair p;
  p.overlap = tie_aware_overlap(a, b);
  const std::set<std::string> sa = id_set(a);
  const std::set<std::string> sb = id_set(b);
  std::size_t common = 0;
  for (const auto& id : sa) common += sb.contains(id) ? 1 : 0;
  const std::size_t uni = sa.size() + sb.size() - common;
  p.jaccard = uni == 0 ? 1.0 : static_cast<double>(common) / static_cast<double>(uni);
  // Ranks of the common ids in each list, counted among the common ids only.
  std::map<std::string, std::size_t> rank_a;
  std::map<std::string, double> score_a;
  for (const auto& h : a) {
    if (sb.contains(h.id)) {
      rank_a.emplace(h.id, rank_a.size());
      score_a.emplace(h.id, h.score);
    }
  }
  double d2 = 0;
  std::size_t rank_b = 0;
  for (const auto& h : b) {
    auto it = rank_a.find(h.id);
    if (it == rank_a.end()) continue;
    const double d = static_cast<double>(it->second) - static_cast<double>(rank_b++);
    d2 += d * d;
    const double diff = std::abs(h.score - score_a[h.id]);
    p.diff_max = std::max(p.diff_max.value_or(0.0), diff);
    p.diff_sum += diff;
    ++p.diff_count;
  }
  const auto n = static_cast<double>(rank_a.size());
  if (rank_a.size() >= 2) p.spearman = 1.0 - 6.0 * d2 / (n * (n * n - 1.0));
  return p;
}

// One query of one case (unfiltered or filtered).
struct Row {
  std::size_t query_idx = 0;
  json filter;  // null when unfiltered
  double recall = 0;
  std::optional<Pair> chroma;
};

double round6(double v) { return std::round(v * 1e6) / 1e6; }
json opt(const std::optional<double>& v) { return v ? json(round6(*v)) : json(nullptr); }

json row_json(const Row& r, const std::vector<Query>& queries) {
  json out{{"query", queries[r.query_idx].text}, {"filter", r.filter}, {"recall_at_k", round6(r.recall)}};
  if (r.chroma) {
    out["overlap_at_k"] = round6(r.chroma->overlap);
    out["jaccard"] = round6(r.chroma->jaccard);
    out["rank_correlation"] = opt(r.chroma->spearman);
    out["score_diff_max"] = opt(r.chroma->diff_max);
  }
  return out;
}

// The means of one case, and its worst queries.
json summarize(const std::vector<Row>& rows, const std::vector<Query>& queries, bool chroma) {
  json out{{"queries", rows.size()}};
  if (rows.empty()) {
    out["recall_at_k"] = nullptr;
    out["overlap_at_k"] = nullptr;
    out["jaccard"] = nullptr;
    out["rank_correlation"] = nullptr;
    out["score_diff"] = nullptr;
    out["worst_recall"] = json::array();
    out["worst_overlap"] = json::array();
    return out;
  }
  double recall = 0;
  for (const auto& r : rows) recall += r.recall;
  out["recall_at_k"] = round6(recall / static_cast<double>(rows.size()));
  std::vector<const Row*> order;
  for (const auto& r : rows) order.push_back(&r);
  auto worst = [&](auto key) {
    std::stable_sort(order.begin(), order.end(), [&](const Row* x, const Row* y) { return key(*x) < key(*y); });
    json list = json::array();
    for (std::size_t i = 0; i < order.size() && i < static_cast<std::size_t>(k_worst); ++i) {
      list.push_back(row_json(*order[i], queries));
    }
    return list;
  };
  out["worst_recall"] = worst([](const Row& r) { return r.recall; });
  if (!chroma) {
    out["overlap_at_k"] = nullptr;
    out["jaccard"] = nullptr;
    out["rank_correlation"] = nullptr;
    out["score_diff"] = nullptr;
    out["worst_overlap"] = nullptr;
    return out;
  }
  double overlap = 0;
  double jaccard = 0;
  double rho = 0;
  std::size_t rho_n = 0;
  std::optional<double> diff_max;
  double diff_sum = 0;
  std::size_t diff_n = 0;
  for (const auto& r : rows) {
    overlap += r.chroma->overlap;
    jaccard += r.chroma->jaccard;
    if (r.chroma->spearman) {
      rho += *r.chroma->spearman;
      ++rho_n;
    }
    if (r.chroma->diff_max) diff_max = std::max(diff_max.value_or(0.0), *r.chroma->diff_max);
    diff_sum += r.chroma->diff_sum;
    diff_n += r.chroma->diff_count;
  }
  const auto n = static_cast<double>(rows.size());
  out["overlap_at_k"] = round6(overlap / n);
  out["jaccard"] = round6(jaccard / n);
  out["rank_correlation"] = rho_n > 0 ? json(round6(rho / static_cast<double>(rho_n))) : json(nullptr);
  out["score_diff"] = diff_n > 0 ? json{{"max", round6(*diff_max)}, {"mean_abs", round6(diff_sum / static_cast<double>(diff_n))}}
                                 : json(nullptr);
  out["worst_overlap"] = worst([](const Row& r) { return r.chroma->overlap; });
  return out;
}

// The mean of `key` over both cases' rows, or null when no row has it.
json overall_mean(const std::vector<Row>& a, const std::vector<Row>& b, const std::function<std::optional<double>(const Row&)>& key) {
  double sum = 0;
  std::size_t n = 0;
  for (const auto* rows : {&a, &b}) {
    for (const auto& r : *rows) {
      if (auto v = key(r)) {
        sum += *v;
        ++n;
      }
    }
  }
  return n == 0 ? json(nullptr) : json(round6(sum / static_cast<double>(n)));
}

Result<std::string> write_report(const Config& config, json& report) {
  const fs::path dir = config.data_dir / "reports";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  const std::string stem = fmt::format("validate-{}Z-{}", utc_stamp_micros(), ::getpid());
  int fd = -1;
  fs::path file;
  // O_EXCL: a report is never replaced; a name already taken (same microsecond) gets a counter.
  for (int attempt = 1; fd < 0; ++attempt) {
    file = dir / (attempt == 1 ? stem + ".json" : fmt::format("{}-{}.json", stem, attempt));
    fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && (errno != EEXIST || attempt >= 100)) {
      return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", file.string(), std::strerror(errno)));
    }
  }
  report["report_path"] = file.string();
  const std::string text = report.dump(2) + "\n";
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", file.string(), why));
    }
    written += static_cast<std::size_t>(n);
  }
  if (::close(fd) != 0) {
    return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", file.string(), std::strerror(errno)));
  }
  return file.string();
}

struct ValidateRun {
  std::vector<Row> unfiltered;
  std::vector<Row> filtered;
};

Result<ValidateResult> run_validate(const std::string& conninfo, const Config& config, const ValidateOptions& options,
                                    std::chrono::steady_clock::time_point started) {
  VS_TRY_ASSIGN(Opened opened, open_pg(conninfo, config));
  std::vector<Query> queries;
  const bool sampled = options.queries.empty();
  if (sampled) {
    VS_TRY_ASSIGN(queries, sample_articles(conninfo, *opened.info, options.sample, options.seed));
  } else {
    for (const auto& t : options.queries) queries.push_back(Query{t, std::nullopt});
  }
  std::string chroma_state;
  std::unique_ptr<chroma::ChromaStore> chroma;
  if (!options.chroma) {
    chroma_state = "skipped (--no-chroma)";
  } else if (config.chroma_url.empty()) {
    chroma_state = "skipped (no CHROMA_URL)";
  } else {
    auto opened_chroma = chroma::ChromaStore::open(config);
    if (!opened_chroma) {
      return fail(opened_chroma.error().with_context(
          fmt::format("chroma collection {} at {}", config.chroma_collection, redact_url(config.chroma_url))));
    }
    chroma = std::move(*opened_chroma);
    chroma_state = fmt::format("compared ({}, collection {})", redact_url(config.chroma_url), config.chroma_collection);
  }
  // Articles pgvector has and Chroma never had (the ones reindex embedded after migrate-chroma)
  // cannot be compared: they are set aside from pgvector's answers and counted. Articles only
  // Chroma has stay in its answers, so a vector lost in the move lowers the overlap.
  std::set<std::string> pg_only;
  std::int64_t chroma_only = 0;
  std::int64_t pg_with_vector = 0;
  if (chroma) {
    VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
    VS_TRY_ASSIGN(pg::PgResult res, conn.exec(fmt::format("SELECT uri FROM {} WHERE embedding IS NOT NULL",
                                                           Connection::quote_ident(opened.info->table))));
    std::vector<std::string> uris;
    uris.reserve(static_cast<std::size_t>(res.rows()));
    for (int r = 0; r < res.rows(); ++r) uris.push_back(res.text(r, 0));
    pg_with_vector = static_cast<std::int64_t>(uris.size());
    VS_TRY_ASSIGN(auto present, chroma->vector_models(uris));
    for (auto& u : uris) {
      if (!present.contains(u)) pg_only.insert(std::move(u));
    }
    VS_TRY_ASSIGN(StoreCounts counts, chroma->count());
    chroma_only = std::max<std::int64_t>(0, counts.with_embedding - (pg_with_vector - static_cast<std::int64_t>(pg_only.size())));
  }
  // pgvector is asked for as many more as it could hold of the set-aside ones (within its top_k
  // limit), so that k comparable answers remain.
  const int widened_k = static_cast<int>(
      std::min<std::int64_t>(k_validate_max_k, options.top_k + static_cast<std::int64_t>(pg_only.size())));

  std::vector<std::string> texts;
  for (const auto& q : queries) texts.push_back(q.text);
  VS_TRY_ASSIGN(std::vector<Embedding> vectors, embed_texts(config, texts));

  ValidateRun run;
  SearchOptions base;
  base.top_k = options.top_k;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const std::span<const float> vec(vectors[i]);
    auto one = [&](const SearchOptions& so, const json& filter) -> Result<Row> {
      Row row;
      row.query_idx = i;
      row.filter = filter;
      VS_TRY_ASSIGN(auto served, opened.pg->search(vec, so));
      VS_TRY_ASSIGN(auto exact, opened.pg->search_exact(vec, so));
      row.recall = tie_aware_overlap(exact, served);
      if (chroma) {
        std::vector<SearchHit> comparable;
        if (pg_only.empty()) {
          comparable = served;
        } else {
          SearchOptions wide = so;
          wide.top_k = std::max(so.top_k, widened_k);
          VS_TRY_ASSIGN(auto more, opened.pg->search(vec, wide));
          for (auto& h : more) {
            if (static_cast<int>(comparable.size()) == so.top_k) break;
            if (!pg_only.contains(h.id)) comparable.push_back(std::move(h));
          }
        }
        VS_TRY_ASSIGN(auto theirs, chroma->search(vec, so));
        row.chroma = compare(comparable, theirs);
      }
      return row;
    };
    auto plain = one(base, json(nullptr));
    if (!plain) return fail(plain.error().with_context(fmt::format("query {}", i + 1)));
    if (!sampled && !queries[i].topic) {
      // A query from a file filters on the topic of its nearest article, so the filter matches.
      VS_TRY_ASSIGN(auto nearest, opened.pg->search_exact(vec, base));
      if (!nearest.empty()) {
        auto it = nearest.front().metadata.find("topic");
        if (it != nearest.front().metadata.end() && it->is_string() && !it->get<std::string>().empty()) {
          queries[i].topic = it->get<std::string>();
        }
      }
    }
    run.unfiltered.push_back(std::move(*plain));
    if (queries[i].topic) {
      const json where{{"topic", *queries[i].topic}};
      VS_TRY_ASSIGN(FilterNode node, parse_filter(where));
      SearchOptions filtered = base;
      filtered.where = node;
      auto f = one(filtered, where);
      if (!f) return fail(f.error().with_context(fmt::format("query {} filtered by {}", i + 1, where.dump())));
      run.filtered.push_back(std::move(*f));
    }
    if (options.progress) options.progress(static_cast<std::int64_t>(i + 1), static_cast<std::int64_t>(queries.size()));
  }

  const bool compared = chroma != nullptr;
  json unf = summarize(run.unfiltered, queries, compared);
  json fil = summarize(run.filtered, queries, compared);
  fil["filter"] = sampled ? "{\"topic\": the sampled article's topic}" : "{\"topic\": the nearest article's topic}";
  ValidateResult result;
  const std::string figure = compared ? "overlap_at_k" : "recall_at_k";
  for (const auto& [name, c] : {std::pair<std::string, const json*>{"unfiltered", &unf}, {"filtered", &fil}}) {
    if (!(*c)[figure].is_number()) continue;
    const double v = (*c)[figure].get<double>();
    if (v < options.min_overlap) {
      result.failures.push_back(
          fmt::format("{} {} ({} queries, mean) is below --min-overlap {}", figure, v, name, options.min_overlap));
    }
  }
  result.passed = result.failures.empty();

  json report;
  report["command"] = "validate";
  report["table"] = config.table;
  report["queries"] = queries.size();
  report["query_source"] = sampled ? fmt::format("sample of {} stored titles, seed {}", queries.size(), options.seed)
                                   : std::string("file");
  report["top_k"] = options.top_k;
  report["index_type"] = opened.info->index_type;
  report["ef_search"] = config.pgvector.hnsw_ef_search;
  report["chroma"] = chroma_state;
  report["chroma_compared"] = compared;
  if (compared) {
    json first = json::array();
    for (const auto& id : pg_only) {
      if (first.size() == 5) break;
      first.push_back(id);
    }
    report["articles"] = {{"pgvector", pg_with_vector},
                          {"pgvector_only", pg_only.size()},
                          {"pgvector_only_first", first},
                          {"chroma_only", chroma_only}};
  } else {
    report["articles"] = nullptr;
  }
  auto pair_of = [](const Row& r) { return r.chroma; };
  report["overlap_at_k"] = compared ? overall_mean(run.unfiltered, run.filtered,
                                                   [&](const Row& r) { return std::optional<double>(pair_of(r)->overlap); })
                                    : json(nullptr);
  report["jaccard"] = compared ? overall_mean(run.unfiltered, run.filtered,
                                              [&](const Row& r) { return std::optional<double>(pair_of(r)->jaccard); })
                               : json(nullptr);
  report["rank_correlation"] = compared ? overall_mean(run.unfiltered, run.filtered,
                                                       [&](const Row& r) { return pair_of(r)->spearman; })
                                        : json(nullptr);
  report["rank_correlation_method"] = "spearman";
  if (compared) {
    json diff = nullptr;
    for (const auto* c : {&unf, &fil}) {
      if (!(*c)["score_diff"].is_object()) continue;
      const double mx = (*c)["score_diff"]["max"].get<double>();
      diff = diff.is_null() ? json{{"max", mx}} : json{{"max", std::max(mx, diff["max"].get<double>())}};
    }
    double sum = 0;
    std::size_t n = 0;
    for (const auto* rows : {&run.unfiltered, &run.filtered}) {
      for (const auto& r : *rows) {
        sum += r.chroma->diff_sum;
        n += r.chroma->diff_count;
      }
    }
    if (!diff.is_null()) diff["mean_abs"] = round6(sum / static_cast<double>(n));
    report["score_diff"] = diff;
  } else {
    report["score_diff"] = nullptr;
  }
  report["recall_at_k"] = overall_mean(run.unfiltered, run.filtered, [](const Row& r) { return std::optional<double>(r.recall); });
  report["min_overlap"] = options.min_overlap;
  report["passed_on"] = figure;
  report["passed"] = result.passed;
  report["failures"] = result.failures;
  report["unfiltered"] = unf;
  report["filtered"] = fil;
  report["worst"] = {{"unfiltered", {{"overlap", unf["worst_overlap"]}, {"recall", unf["worst_recall"]}}},
                     {"filtered", {{"overlap", fil["worst_overlap"]}, {"recall", fil["worst_recall"]}}}};
  report["elapsed_s"] = std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() * 1000) / 1000;
  VS_TRY_ASSIGN(result.report_path, write_report(config, report));
  result.report = std::move(report);
  return result;
}

}  // namespace

Result<ValidateResult> validate_stores(const std::string& conninfo, const Config& config, const ValidateOptions& options) {
  const auto started = std::chrono::steady_clock::now();
  if (options.queries.empty()) VS_TRY(check_common(options.sample, options.top_k));
  VS_TRY(check_common(1, options.top_k));
  VS_TRY(check_fraction("min_overlap", options.min_overlap));
  for (const auto& q : options.queries) {
    if (q.find_first_not_of(" \t\r\n") == std::string::npos) {
      return fail(ErrorCode::invalid_argument, "a query text is blank");
    }
  }
  VS_TRY_ASSIGN(const std::int64_t op, begin_operation(conninfo, config, "validate"));
  auto done = run_validate(conninfo, config, options, started);
  if (!done) {
    static_cast<void>(finish_operation(conninfo, op, false, std::nullopt, "", json{{"error", done.error().message()}}));
    return done;
  }
  const json& r = done->report;
  const json summary{{"queries", r["queries"]},         {"top_k", r["top_k"]},
                     {"chroma_compared", r["chroma_compared"]}, {"overlap_at_k", r["overlap_at_k"]},
                     {"recall_at_k", r["recall_at_k"]}, {"min_overlap", r["min_overlap"]},
                     {"failures", r["failures"]}};
  VS_TRY(finish_operation(conninfo, op, true, done->passed, done->report_path, summary));
  return done;
}

// ---- tune ---------------------------------------------------------------------------------------

json TuneResult::to_json(const TuneOptions& options) const {
  auto case_json = [](const TuneCase& c) {
    return json{{"recall_at_k", round6(c.recall_at_k)}, {"p50_ms", round6(c.p50_ms)}, {"p95_ms", round6(c.p95_ms)}};
  };
  json table = json::array();
  for (const auto& r : rows) {
    table.push_back({{parameter, r.value},
                     {"unfiltered", case_json(r.unfiltered)},
                     {"filtered", r.filtered ? case_json(*r.filtered) : json(nullptr)}});
  }
  return json{{"index_type", index_type},
              {"parameter", parameter},
              {"env", env_name},
              {"current", current},
              {"queries", queries},
              {"top_k", options.top_k},
              {"target_recall", options.target_recall},
              {"filter", options.where ? to_chroma_where(*options.where) : json(nullptr)},
              {"table", table},
              {"recommended", recommended ? json(*recommended) : json(nullptr)}};
}

namespace {

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<std::size_t>(rank, 1, v.size()) - 1];
}

}  // namespace

Result<TuneResult> tune_index(const std::string& conninfo, const Config& config, const TuneOptions& options) {
  VS_TRY(check_common(options.sample, options.top_k));
  VS_TRY(check_fraction("target_recall", options.target_recall));
  VS_TRY_ASSIGN(Opened opened, open_pg(conninfo, config));
  TuneResult result;
  result.index_type = opened.info->index_type;
  std::vector<int> settings = options.settings;
  if (result.index_type == "hnsw") {
    result.parameter = "ef_search";
    result.env_name = "PGVECTOR_HNSW_EF_SEARCH";
    result.current = config.pgvector.hnsw_ef_search;
    if (settings.empty()) settings = {10, 20, 40, 80, 120, 200, 400, 800};
  } else if (result.index_type == "ivfflat") {
    result.parameter = "probes";
    result.env_name = "PGVECTOR_IVFFLAT_PROBES";
    result.current = config.pgvector.ivfflat_probes;
    if (settings.empty()) {
      for (int p = 1; p < config.pgvector.ivfflat_lists; p *= 2) settings.push_back(p);
      settings.push_back(config.pgvector.ivfflat_lists);
    }
  } else {
    return fail(ErrorCode::invalid_argument,
                fmt::format("table {} has no vector index (PGVECTOR_INDEX_TYPE=none): every search is exact and there "
                            "is nothing to tune",
                            config.table));
  }
  for (const int v : settings) {
    if (v < 1 || (result.parameter == "ef_search" && v > 1000)) {
      return fail(ErrorCode::invalid_argument, fmt::format("{} must be from 1 to 1000, not {}", result.parameter, v));
    }
  }
  std::vector<Embedding> vectors = options.query_vectors;
  if (vectors.empty()) {
    VS_TRY_ASSIGN(auto queries, sample_articles(conninfo, *opened.info, options.sample, options.seed));
    std::vector<std::string> texts;
    for (const auto& q : queries) texts.push_back(q.text);
    VS_TRY_ASSIGN(vectors, embed_texts(config, texts));
  }
  result.queries = static_cast<std::int64_t>(vectors.size());

  SearchOptions plain;
  plain.top_k = options.top_k;
  std::optional<SearchOptions> filtered;
  if (options.where) {
    filtered = plain;
    filtered->where = options.where;
  }
  // The exact answers, once.
  std::vector<std::vector<SearchHit>> truth_plain;
  std::vector<std::vector<SearchHit>> truth_filtered;
  for (const auto& v : vectors) {
    VS_TRY_ASSIGN(auto t, opened.pg->search_exact(v, plain));
    truth_plain.push_back(std::move(t));
    if (filtered) {
      VS_TRY_ASSIGN(auto f, opened.pg->search_exact(v, *filtered));
      truth_filtered.push_back(std::move(f));
    }
  }
  if (filtered && std::all_of(truth_filtered.begin(), truth_filtered.end(), [](const auto& t) { return t.empty(); })) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("the filter {} matches no stored vector: nothing to measure", to_chroma_where(*options.where).dump()));
  }
  auto measure = [&](SearchOptions so, int value, const std::vector<std::vector<SearchHit>>& truth) -> Result<TuneCase> {
    if (result.parameter == "ef_search") {
      so.ef_search = value;
    } else {
      so.probes = value;
    }
    std::vector<double> ms;
    double recall = 0;
    for (std::size_t i = 0; i < vectors.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      VS_TRY_ASSIGN(auto hits, opened.pg->search(vectors[i], so));
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      recall += tie_aware_overlap(truth[i], hits);
    }
    TuneCase c;
    c.recall_at_k = recall / static_cast<double>(vectors.size());
    c.p50_ms = percentile(ms, 0.50);
    c.p95_ms = percentile(ms, 0.95);
    return c;
  };
  // One untimed pass warms the index pages and the connections.
  for (const auto& v : vectors) VS_TRY(opened.pg->search(v, plain));
  for (std::size_t s = 0; s < settings.size(); ++s) {
    TuneRow row;
    row.value = settings[s];
    VS_TRY_ASSIGN(row.unfiltered, measure(plain, row.value, truth_plain));
    if (filtered) {
      VS_TRY_ASSIGN(TuneCase f, measure(*filtered, row.value, truth_filtered));
      row.filtered = f;
    }
    const bool reached = row.unfiltered.recall_at_k >= options.target_recall &&
                         (!row.filtered || row.filtered->recall_at_k >= options.target_recall);
    if (reached && !result.recommended) result.recommended = row.value;
    result.rows.push_back(row);
    if (options.progress) options.progress(static_cast<std::int64_t>(s + 1), static_cast<std::int64_t>(settings.size()));
  }
  return result;
}

// ---- .env ---------------------------------------------------------------------------------------

namespace {

// Whether `line` assigns `name` (`NAME=`, `NAME =`, `export NAME=`, leading blanks allowed).
bool assigns(std::string_view line, std::string_view name) {
  auto skip_blanks = [&] {
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
  };
  skip_blanks();
  if (line.starts_with("export ") || line.starts_with("export\t")) {
    line.remove_prefix(7);
    skip_blanks();
  }
  if (!line.starts_with(name)) return false;
  line.remove_prefix(name.size());
  skip_blanks();
  return line.starts_with('=');
}

}  // namespace

Result<void> write_env_setting(const fs::path& path, const std::string& name, const std::string& value) {
  const bool identifier = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  }) && !(name[0] >= '0' && name[0] <= '9');
  if (!identifier) return fail(ErrorCode::invalid_argument, fmt::format("\"{}\" is not a variable name", name));
  std::string old_text;
  mode_t mode = 0644;
  std::error_code ec;
  if (fs::exists(path, ec)) {
    if (!fs::is_regular_file(path, ec)) {
      return fail(ErrorCode::invalid_argument, fmt::format("{} is not a regular file", path.string()));
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail(ErrorCode::unavailable, fmt::format("cannot read {}: {}", path.string(), std::strerror(errno)));
    std::ostringstream buf;
    buf << in.rdbuf();
    old_text = buf.str();
    struct stat st{};
    if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  }
  const std::string line = name + "=" + value;
  std::string text;
  bool replaced = false;
  std::size_t pos = 0;
  while (pos < old_text.size()) {
    const std::size_t nl = old_text.find('\n', pos);
    const std::size_t end = nl == std::string::npos ? old_text.size() : nl + 1;
    std::string_view current(old_text.data() + pos, end - pos);
    if (assigns(current, name)) {
      // The first assignment becomes the new line; a later one would win over it, so it goes.
      if (!replaced) text += line + (nl == std::string::npos ? "" : "\n");
      replaced = true;
    } else {
      text.append(current);
    }
    pos = end;
  }
  if (!replaced) {
    if (!text.empty() && text.back() != '\n') text += '\n';
    text += line + "\n";
  }
  const fs::path dir = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::string tmpl = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  const int fd = ::mkstemp(tmpl.data());
  if (fd < 0) return fail(ErrorCode::unavailable, fmt::format("cannot create a temporary file in {}: {}", dir.string(), std::strerror(errno)));
  auto fail_with = [&](std::string what) -> Result<void> {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(tmpl.c_str());
    return fail(ErrorCode::unavailable, fmt::format("cannot {} {}: {}", what, path.string(), why));
  };
  std::size_t written = 0;
  while (written < text.size()) {
    const ssize_t n = ::write(fd, text.data() + written, text.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail_with("write");
    written += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) return fail_with("write");
  if (::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", path.string(), std::strerror(errno)));
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmpl.c_str());
    return fail(ErrorCode::unavailable, fmt::format("cannot replace {}: {}", path.string(), why));
  }
  return {};
}

}  // namespace vstore
