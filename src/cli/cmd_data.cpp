// SPDX-License-Identifier: Apache-2.0
// `vstore ingest|search|similar|vectors|health|outbox|embed`: thin edges over ArticleStore.
//
// ingest streams FILE twice, a line at a time (at most 64 MiB a line), so memory holds one
// batch however large the file:
// 1. check: every line is read and checked (UTF-8, JSON, the article's fields, NUL bytes, the
//    vector's dimension and values) and each uri's last line is noted; a date read_date()
//    cannot read is reported (file:line, uri, field, value) and counted. A bad line stops the
//    run here, with nothing written.
// 2. load: the file is read again and the last record of each uri is loaded in batches, which
//    commit one by one (re-running is idempotent).
// FILE must therefore be a regular file: a directory, a device (/dev/zero) or a pipe is refused
// before anything is read, and a read error is an error, never the end of the file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <system_error>
#include <unordered_map>

#include <fmt/format.h>

#include "api/dual_store.hpp"
#include "cli/cli_common.hpp"
#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/bulk_load.hpp"
#include "vstore/date.hpp"
#include "vstore/schema.hpp"
#include "vstore/utf8.hpp"
#include "vstore/vector_check.hpp"
#include "vstore/write_check.hpp"

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

// A score as the shortest decimal of its float32 value: both backends compute distances of
// float32 vectors, and pgvector hands back a double where Chroma hands back a float, so the
// same distance would otherwise print with different tails (0.3127 against 0.31270003318786621).
json score_json(double score) {
  std::array<char, 32> buf{};
  const auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), static_cast<float>(score));
  if (ec != std::errc()) return score;
  return std::strtod(std::string(buf.data(), end).c_str(), nullptr);
}

json hits_json(const std::vector<SearchHit>& hits) {
  json out = json::array();
  for (const auto& h : hits) out.push_back({{"id", h.id}, {"score", score_json(h.score)}, {"metadata", h.metadata}});
  return out;
}

// ---- search and similar as a table -------------------------------------------------------------
//
// One line a hit: rank, distance, uri, title, date, topic. The title is folded onto one line
// and, on a terminal (or with $COLUMNS), cut so that the line fits; a pipe gets it whole.
// Widths count code points (titles are not expected to hold double-width characters).

// `text` on one line: each run of white space, line breaks included, becomes one space.
std::string one_line(std::string_view text) {
  std::string out;
  bool space = false;
  for (const char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

std::size_t columns_of(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// `text` in at most `width` columns, "..." marking a cut (never inside a UTF-8 sequence).
std::string cut_to(std::string_view text, std::size_t width) {
  if (columns_of(text) <= width) return std::string(text);
  if (width <= 3) return std::string(width, '.');
  std::size_t keep = width - 3;
  std::size_t end = 0;
  while (end < text.size()) {
    const bool starts = (static_cast<unsigned char>(text[end]) & 0xC0) != 0x80;
    if (starts && keep-- == 0) break;
    ++end;
  }
  return std::string(text.substr(0, end)) + "...";
}

std::string pad_to(std::string_view text, std::size_t width, bool right = false) {
  const std::string fill(width - std::min(width, columns_of(text)), ' ');
  return right ? fill + std::string(text) : std::string(text) + fill;
}

std::string metadata_text(const Metadata& m, const char* key) {
  const auto it = m.find(key);
  return it != m.end() && it->is_string() ? one_line(it->get<std::string>()) : std::string();
}

// The day of the article's publication_date (YYYY-MM-DD), or its text when read_date()
// cannot read it.
std::string date_of(const Metadata& m) {
  const std::string text = metadata_text(m, "publication_date");
  if (text.empty()) return text;
  auto date = read_date(text);
  return date ? iso8601_utc_micros(date->epoch_micros).substr(0, 10) : text;
}

void print_hit_table(const std::vector<SearchHit>& hits) {
  if (hits.empty()) {
    std::printf("no results\n");
    return;
  }
  constexpr std::size_t k_columns = 6;
  constexpr std::size_t k_title = 3;
  constexpr std::size_t k_min_title = 12;
  using Row = std::array<std::string, k_columns>;
  std::vector<Row> rows = {Row{"#", "distance", "uri", "title", "date", "topic"}};
  for (const auto& h : hits) {
    rows.push_back(Row{std::to_string(rows.size()), fmt::format("{:.4f}", h.score), h.id, metadata_text(h.metadata, "title"),
                       date_of(h.metadata), metadata_text(h.metadata, "topic")});
  }
  std::array<std::size_t, k_columns> width{};
  for (const auto& row : rows) {
    for (std::size_t col = 0; col < k_columns; ++col) width[col] = std::max(width[col], columns_of(row[col]));
  }
  if (const int term = terminal_width(STDOUT_FILENO); term > 0) {
    std::size_t others = 2 * (k_columns - 1);  // the gaps
    for (std::size_t col = 0; col < k_columns; ++col) others += col == k_title ? 0 : width[col];
    const std::size_t room = static_cast<std::size_t>(term) > others ? static_cast<std::size_t>(term) - others : 0;
    width[k_title] = std::min(width[k_title], std::max(room, k_min_title));
  }
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t col = 0; col < k_columns; ++col) {
      if (col > 0) line += "  ";
      // Rank and distance are numbers: aligned on the right, their headers too.
      line += pad_to(col == k_title ? cut_to(row[col], width[col]) : row[col], width[col], col < 2);
    }
    line.erase(line.find_last_not_of(' ') + 1);
    std::printf("%s\n", line.c_str());
  }
}

// The line above `similar`'s table: the article it started from, on one line that fits.
void print_origin(std::string_view uri, const std::optional<Metadata>& metadata) {
  std::string line = fmt::format("similar to {}", uri);
  if (metadata) {
    if (std::string title = metadata_text(*metadata, "title"); !title.empty()) line += fmt::format(": {}", title);
    std::string about = date_of(*metadata);
    if (std::string topic = metadata_text(*metadata, "topic"); !topic.empty()) {
      about += (about.empty() ? "" : ", ") + topic;
    }
    if (!about.empty()) line += fmt::format(" ({})", about);
  }
  const int term = terminal_width(STDOUT_FILENO);
  std::printf("%s\n", term > 0 ? cut_to(line, static_cast<std::size_t>(term)).c_str() : line.c_str());
}

// The stored metadata of `uri` (for print_origin), nullopt when the store holds no vector for it.
Result<std::optional<Metadata>> origin_metadata(ArticleStore& store, const std::string& uri) {
  VS_TRY_ASSIGN(FilterNode by_uri, parse_filter(std::string_view(json{{"uri", uri}}.dump())));
  VS_TRY_ASSIGN(VectorBatch batch, store.store().get_vectors(1, by_uri));
  if (batch.metadatas.empty()) return std::optional<Metadata>{};
  return std::optional<Metadata>(batch.metadatas.front());
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

constexpr std::size_t k_max_line_bytes = std::size_t{64} << 20;
constexpr std::size_t k_read_chunk = std::size_t{1} << 20;
constexpr std::int64_t k_max_date_reports = 100;

// The lines of a regular file, streamed: one read buffer, and a line at most k_max_line_bytes.
class LineReader {
 public:
  // Refuses what is not a regular file before opening it (opening a pipe would wait for a writer).
  static Result<LineReader> open(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      const std::error_code ec(errno, std::generic_category());
      return fail(errno == ENOENT ? ErrorCode::not_found : ErrorCode::invalid_argument,
                  fmt::format("cannot open {}: {}", path, ec.message()));
    }
    if (S_ISDIR(st.st_mode)) {
      return fail(ErrorCode::invalid_argument, fmt::format("{} is a directory; expected a JSON Lines file", path));
    }
    if (!S_ISREG(st.st_mode)) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("{} is not a regular file; expected a JSON Lines file (ingest reads it twice: every "
                              "line is checked before anything is written)",
                              path));
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const std::error_code ec(errno, std::generic_category());
      return fail(ErrorCode::invalid_argument, fmt::format("cannot open {}: {}", path, ec.message()));
    }
    return LineReader(fd, path);
  }
  LineReader(LineReader&& other) noexcept
      : m_fd(std::exchange(other.m_fd, -1)),
        m_path(std::move(other.m_path)),
        m_buffer(std::move(other.m_buffer)),
        m_pos(other.m_pos),
        m_end(other.m_end),
        m_eof(other.m_eof),
        m_line_no(other.m_line_no) {}
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  LineReader& operator=(LineReader&&) = delete;
  ~LineReader() {
    if (m_fd >= 0) ::close(m_fd);
  }

  // The next line, without its '\n', in `line`; false at the end of the file.
  Result<bool> next(std::string& line) {
    line.clear();
    bool any = false;
    while (true) {
      if (m_pos == m_end) {
        if (!m_eof) {
          VS_TRY(fill());
          continue;
        }
        if (!any) return false;
        ++m_line_no;  // a last line without '\n'
        return true;
      }
      any = true;
      const char* start = m_buffer.data() + m_pos;
      const auto* newline = static_cast<const char*>(std::memchr(start, '\n', m_end - m_pos));
      const std::size_t n = newline ? static_cast<std::size_t>(newline - start) : m_end - m_pos;
      if (line.size() + n > k_max_line_bytes) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{}:{}: the line is longer than 64 MiB, the limit of one record", m_path, m_line_no + 1));
      }
      line.append(start, n);
      m_pos += n;
      if (newline) {
        ++m_pos;
        ++m_line_no;
        return true;
      }
    }
  }

  [[nodiscard]] std::int64_t line_no() const { return m_line_no; }

 private:
  LineReader(int fd, std::string path) : m_fd(fd), m_path(std::move(path)), m_buffer(k_read_chunk) {}

  Result<void> fill() {
    while (true) {
      const ssize_t got = ::read(m_fd, m_buffer.data(), m_buffer.size());
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        const std::error_code ec(errno, std::generic_category());
        return fail(ErrorCode::unavailable,
                    fmt::format("cannot read {} after line {}: {}", m_path, m_line_no, ec.message()));
      }
      m_pos = 0;
      m_end = static_cast<std::size_t>(got);
      m_eof = got == 0;
      return {};
    }
  }

  int m_fd;
  std::string m_path;
  std::vector<char> m_buffer;
  std::size_t m_pos = 0;
  std::size_t m_end = 0;
  bool m_eof = false;
  std::int64_t m_line_no = 0;
};

struct IngestRecord {
  Article article;
  std::optional<Embedding> embedding;
  std::string model;
};

// One line as a record: UTF-8, JSON, the article's fields, NUL bytes, the vector.
Result<IngestRecord> parse_record(const std::string& line, const std::string& where, const std::string& default_model,
                                  int dimension) {
  if (auto bad = first_invalid_utf8(line)) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("{}: byte {} (0x{:02x}) is not valid UTF-8", where, *bad + 1,
                            static_cast<unsigned>(static_cast<unsigned char>(line[*bad]))));
  }
  json j;
  try {
    j = json::parse(line);
  } catch (const json::parse_error& e) {
    std::string reason = e.what();
    if (auto colon = reason.find(": ", reason.find("parse error")); colon != std::string::npos) reason.erase(0, colon + 2);
    return fail(ErrorCode::invalid_argument, fmt::format("{}: not valid JSON at byte {}: {}", where, e.byte, reason));
  } catch (const json::exception& e) {  // e.g. a number too large for a double
    return fail(ErrorCode::invalid_argument, fmt::format("{}: not valid JSON: {}", where, e.what()));
  }
  auto article = article_from_json(j);
  if (!article) return fail(article.error().with_context(where));
  if (auto clean = check_article_text(*article); !clean) return fail(clean.error().with_context(where));
  IngestRecord rec{std::move(*article), std::nullopt, default_model};
  if (auto it = j.find("embedding"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("{}: field embedding must be a list of numbers, not {}", where, it->type_name()));
    }
    Embedding e;
    e.reserve(it->size());
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& x = (*it)[i];
      if (!x.is_number()) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{}: embedding[{}] must be a number, not {}", where, i, x.type_name()));
      }
      // A finite number beyond float32 would become an infinity: refused naming what was sent.
      const double value = x.get<double>();
      if (std::isfinite(value) && std::fabs(value) > static_cast<double>(std::numeric_limits<float>::max())) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{}: embedding[{}] is {}, beyond the float32 range (at most {} in magnitude)", where, i,
                                value, std::numeric_limits<float>::max()));
      }
      e.push_back(static_cast<float>(value));
    }
    VS_TRY(check_vector(e, dimension, fmt::format("{}: article {}: field embedding", where, quoted_uri(rec.article.uri))));
    rec.embedding = std::move(e);
    if (auto m = j.find("embedding_model"); m != j.end() && m->is_string()) rec.model = m->get<std::string>();
  }
  return rec;
}

// Streams the records of `path` (blank lines skipped) through parse_record() into `fn`, with
// their "path:line" and line number; stops at the first error.
template <class Fn>
Result<void> each_record(const std::string& path, const std::string& default_model, int dimension, Fn&& fn) {
  VS_TRY_ASSIGN(LineReader reader, LineReader::open(path));
  std::string line;
  while (true) {
    VS_TRY_ASSIGN(bool more, reader.next(line));
    if (!more) return {};
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{}:{}", path, reader.line_no());
    VS_TRY_ASSIGN(IngestRecord rec, parse_record(line, where, default_model, dimension));
    VS_TRY(fn(rec, where, reader.line_no()));
  }
}

// What the check pass found.
struct FileCheck {
  std::int64_t records = 0;                                 // records in the file, duplicates included
  std::unordered_map<std::string, std::int64_t> last_line;  // uri -> line of its last record (the one loaded)
  bool need_embedder = false;                               // some record has no vector
  std::int64_t unreadable_dates = 0;
};

// Pass 1: checks every line, notes each uri's last line, reports dates it cannot read.
Result<FileCheck> check_file(const std::string& path, const std::string& default_model, int dimension) {
  FileCheck check;
  VS_TRY(each_record(path, default_model, dimension, [&](IngestRecord& rec, const std::string& where,
                                                         std::int64_t line_no) -> Result<void> {
    ++check.records;
    check.need_embedder |= !rec.embedding.has_value();
    if (rec.article.publication_date) {
      if (auto date = read_date(*rec.article.publication_date); !date) {
        if (++check.unreadable_dates <= k_max_date_reports) {
          std::fprintf(stderr, "ingest: %s: article %s: field publication_date: %s; stored without a date\n",
                       where.c_str(), quoted_uri(rec.article.uri).c_str(), date.error().message().c_str());
        }
      }
    }
    check.last_line[rec.article.uri] = line_no;
    return {};
  }));
  if (check.unreadable_dates > k_max_date_reports) {
    std::fprintf(stderr, "ingest: ... %lld more dates that cannot be read (%lld in all)\n",
                 static_cast<long long>(check.unreadable_dates - k_max_date_reports),
                 static_cast<long long>(check.unreadable_dates));
  }
  return check;
}

// What a load did, for the summary.
struct LoadCounts {
  std::int64_t stored = 0;
  std::int64_t skipped_without_text = 0;
  std::int64_t skipped_existing = 0;  // already held a vector of the configured model
  std::int64_t loaded = 0;            // records handled so far (for progress and error context)
};

// Loads one batch. Records without a vector are embedded, except those whose article already
// holds a vector of the embedder's model, or of a model the store did not record (unless
// `reembed`): a second run over the same file only adds what is missing.
Result<void> load_batch(ArticleStore& store, std::vector<IngestRecord>& batch, std::int64_t first_line, bool reembed,
                        LoadCounts& counts, Progress& progress) {
  const std::string model(store.embedder().model());
  std::vector<ArticleVector> with_vectors;
  std::vector<Article> to_embed;
  std::vector<std::string> embed_ids;
  for (auto& r : batch) {
    if (r.embedding) {
      with_vectors.push_back(ArticleVector{std::move(r.article), std::move(*r.embedding), r.model});
    } else {
      embed_ids.push_back(r.article.uri);
    }
  }
  const std::string where = fmt::format("batch at record {}, line {} ({} records stored before it)", counts.loaded + 1,
                                        first_line, counts.stored);
  std::map<std::string, std::string> existing;
  if (!reembed && !embed_ids.empty()) {
    auto models = store.store().vector_models(embed_ids);
    if (!models) return fail(models.error().with_context(where));
    existing = std::move(*models);
  }
  for (auto& r : batch) {
    if (r.embedding) continue;
    // Already embedded: by this model, or by one the store did not record (a Chroma collection
    // written before vstore recorded its model there).
    if (auto it = existing.find(r.article.uri); it != existing.end() && (it->second == model || it->second.empty())) {
      ++counts.skipped_existing;
    } else {
      to_embed.push_back(std::move(r.article));
    }
  }
  if (!with_vectors.empty()) {
    if (auto ok = store.store().upsert(with_vectors); !ok) return fail(ok.error().with_context(where));
    counts.stored += static_cast<std::int64_t>(with_vectors.size());
  }
  const std::int64_t batch_size = static_cast<std::int64_t>(batch.size());
  if (!to_embed.empty()) {
    // upsert_articles() skips these (never a made-up vector); say which they are.
    for (const Article& a : to_embed) {
      if (document_text(a).empty()) {
        std::fprintf(stderr, "ingest: %s: skipped: raw, summary and title hold no text to embed\n", a.uri.c_str());
      }
    }
    const std::int64_t before = counts.loaded + batch_size - static_cast<std::int64_t>(to_embed.size());
    auto n = store.upsert_articles(to_embed, [&](std::size_t done) {
      progress.update(before + static_cast<std::int64_t>(done));
    });
    if (!n) return fail(n.error().with_context(where));
    counts.stored += static_cast<std::int64_t>(*n);
    counts.skipped_without_text += static_cast<std::int64_t>(to_embed.size() - *n);
  }
  counts.loaded += batch_size;
  progress.update(counts.loaded);
  return {};
}

// Pass 2: streams the file again and loads the last record of each uri in batches; returns the
// first error.
Result<void> load_file(ArticleStore& store, const std::string& path, const FileCheck& check,
                       const std::string& default_model, int dimension, int batch_size, bool reembed,
                       LoadCounts& counts) {
  Progress progress("ingest", static_cast<std::int64_t>(check.last_line.size()));
  std::vector<IngestRecord> batch;
  std::int64_t first_line = 0;
  auto loaded = each_record(path, default_model, dimension, [&](IngestRecord& rec, const std::string& where,
                                                                  std::int64_t line_no) -> Result<void> {
    auto last = check.last_line.find(rec.article.uri);
    if (last == check.last_line.end()) return fail(ErrorCode::conflict, fmt::format("{}: a uri the check did not see", where));
    if (last->second != line_no) return {};  // a later record of the uri wins
    if (batch.empty()) first_line = line_no;
    batch.push_back(std::move(rec));
    if (batch.size() < static_cast<std::size_t>(batch_size)) return {};
    VS_TRY(load_batch(store, batch, first_line, reembed, counts, progress));
    batch.clear();
    return {};
  });
  VS_TRY(loaded);
  if (!batch.empty()) VS_TRY(load_batch(store, batch, first_line, reembed, counts, progress));
  progress.finish();
  return {};
}

int run_ingest(const Globals& globals, const std::string& path, int batch_size, const std::string& model_flag,
               const std::string& bulk, bool reembed, bool json_out) {
  const auto started = std::chrono::steady_clock::now();
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  const std::string default_model = model_flag.empty() ? cfg->embedding_model : model_flag;
  auto check = check_file(path, default_model, cfg->embedding_dim);
  if (!check) return report(check.error());
  const auto unique_records = static_cast<std::int64_t>(check->last_line.size());
  const std::int64_t duplicates = check->records - unique_records;
  auto store = open_articles(*cfg, check->need_embedder, true);
  if (!store) return report(store.error());
  LoadCounts counts;
  // Bulk mode: loading many rows into an indexed table costs an index insertion per row, so
  // the vector index is dropped first and built once at the end (also after a failed load).
  // Only the pgvector index can be suspended; a Chroma-only store loads as it is.
  bool use_bulk = bulk == "on" && cfg->backend != BackendKind::chromadb;
  if (bulk == "auto" && cfg->backend != BackendKind::chromadb) {
    auto counts = (*store)->store().count();
    if (!counts) return report(counts.error());
    use_bulk = unique_records >= 5000 && unique_records > 2 * counts->with_embedding;
  }
  // A bulk load holds the table's bulk-load lock and first repairs what a killed one left (its
  // index build the server still runs, an invalid index); any other run of a pgvector store
  // repairs too, and builds the vector index a killed bulk load dropped.
  std::optional<BulkLoad> bulk_load;
  if (cfg->backend != BackendKind::chromadb) {
    auto conninfo = resolve_conninfo(*cfg);
    if (!conninfo) return report(conninfo.error());
    if (use_bulk) {
      auto begun = BulkLoad::begin(*conninfo, *cfg);
      if (!begun) return report(begun.error());
      if (!begun->dropped_index().empty()) {
        std::fprintf(stderr, "ingest: bulk load: vector index %s dropped, rebuilt after the load\n", begun->dropped_index().c_str());
      }
      bulk_load = std::move(*begun);
    } else {
      auto repaired = repair_vector_index(*conninfo, *cfg);
      if (!repaired) return report(repaired.error().with_context("repairing the vector index"));
      if (*repaired) std::fprintf(stderr, "ingest: built the vector index an earlier bulk load had dropped\n");
    }
  }
  auto loaded = load_file(**store, path, *check, default_model, cfg->embedding_dim, batch_size, reembed, counts);
  std::optional<Error> index_error;
  if (bulk_load) {
    if (!quiet()) std::fprintf(stderr, "ingest: building the vector index ...\n");
    const auto t0 = std::chrono::steady_clock::now();
    std::unique_ptr<Progress> bar;
    auto built = bulk_load->finish([&bar](std::int64_t done, std::int64_t total) {
      if (!bar) bar = std::make_unique<Progress>("ingest index build", total);
      bar->update(done);
    });
    if (bar) bar->finish();
    if (!built) {
      index_error = built.error().with_context("rebuilding the vector index (run `vstore schema up` to retry)");
    } else if (*built) {
      std::fprintf(stderr, "ingest: vector index built in %.1f s\n",
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  // The load's failure comes first, with what was stored before it; an index rebuild that
  // failed after it is reported too, but second.
  if (!loaded) {
    const int code = report(loaded.error().with_context(fmt::format(
        "the load stopped with {} records stored and {} of {} not", counts.stored,
        unique_records - counts.stored - counts.skipped_existing - counts.skipped_without_text, unique_records)));
    if (index_error) report(*index_error);
    return code;
  }
  if (index_error) return report(*index_error);
  // Dual mode: the secondary gets the writes through the outbox. Apply what waits now, so the
  // summary can say how many writes are still queued (the secondary down: all of this run's).
  std::optional<json> secondary;
  std::string queued_text;
  if (auto* dual = dynamic_cast<api::DualStore*>(&(*store)->store()); dual != nullptr) {
    dual->stop_background_drain();
    auto drained = dual->drain_outbox();
    auto pending = dual->outbox_pending();
    if (!pending) return report(pending.error().with_context("counting the outbox"));
    secondary = json{{"backend", dual->secondary_name()},
                     {"queued", *pending},
                     {"error", drained ? json(nullptr) : json(drained.error().message())}};
    queued_text = fmt::format("{} write{} queued for {} (outbox)", *pending, *pending == 1 ? "" : "s",
                              dual->secondary_name());
    if (!drained) {
      queued_text += fmt::format(": {}; `vstore outbox drain` applies them once it is back", drained.error().message());
    }
  }
  json summary = {{"file", path},
                        {"records", check->records},
                        {"upserted", counts.stored},
                        {"skipped_without_text", counts.skipped_without_text},
                        {"skipped_existing", counts.skipped_existing},
                        {"duplicates_in_file", duplicates},
                        {"unreadable_dates", check->unreadable_dates},
                        {"elapsed_s", elapsed_s(started)}};
  if (secondary) summary["secondary"] = *secondary;
  if (json_out) {
    print_json(summary);
  } else {
    // The words are the JSON keys', so that text and JSON say the same thing; the counts after
    // `upserted` only when not zero, so that the line stays short.
    std::string what = fmt::format("{}: {} records, {} upserted", path, check->records, counts.stored);
    const std::pair<std::int64_t, const char*> others[] = {
        {counts.skipped_without_text, "skipped without text"},
        {counts.skipped_existing, "skipped existing (a vector of this model was there)"},
        {duplicates, "duplicates in file (the last kept)"},
        {check->unreadable_dates, "unreadable dates (stored without a date)"}};
    for (const auto& [n, words] : others) {
      if (n > 0) what += fmt::format(", {} {}", n, words);
    }
    if (!queued_text.empty()) what += "; " + queued_text;
    print_done("ingest", what, started);
  }
  return k_exit_ok;
}

// ---- the commands, one function each ---------------------------------------------------------

void add_ingest_command(CLI::App& app, const Globals& globals, Action& action) {
  static std::string file;
  static int batch_size = 1000;
  static std::string model;
  static std::string bulk = "auto";
  static bool reembed = false;
  static bool json_out = false;
  auto* ingest = app.add_subcommand("ingest", "upsert articles from a JSON Lines file; records with an `embedding` list "
                                               "are stored as given, others are embedded from raw/summary/title");
  ingest->add_option("FILE", file, "JSON Lines file of article records (a regular file; at most 64 MiB a line)")->required();
  ingest->add_option("--batch-size", batch_size, "records per transaction")->check(CLI::Range(1, 100000))->capture_default_str();
  ingest->add_option("--model", model, "model name of vectors given in the file (default: EMBEDDING_MODEL)");
  ingest->add_option("--bulk", bulk, "drop the vector index during the load and build it once after: auto (when the "
                                     "file brings >= 5000 records and more than twice the stored vectors), on, off")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  ingest->add_flag("--reembed", reembed, "embed every record without a vector again, also those whose article "
                                         "already holds a vector of the configured model (skipped by default)");
  ingest->add_flag("--json", json_out, "print the summary as JSON");
  ingest->callback([&] {
    action = [&] { return run_ingest(globals, file, batch_size, model, bulk, reembed, json_out); };
  });
}

// `search --explain`: how the search was planned, and PostgreSQL's plan with its timing.
void print_explain(const json& e) {
  const auto number = [](const json& v) { return v.is_number() ? fmt::format("{:.0f}", v.get<double>()) : std::string("?"); };
  std::printf("vstore's plan: %s", e["plan"].get<std::string>().c_str());
  if (e["plan"] == "index_iterative") std::printf(" (the %s index with iterative scan)", e["index_type"].get<std::string>().c_str());
  if (e["plan"] == "index") std::printf(" (the %s index)", e["index_type"].get<std::string>().c_str());
  if (e["plan"] == "exact") std::printf(" (every matching row ranked by exact distance)");
  if (e["ef_search"].is_number()) std::printf(", ef_search %d", e["ef_search"].get<int>());
  std::printf("\n");
  if (e["estimated_rows"].is_number()) {
    std::printf("filter: about %s of %s rows match (selectivity %.4f, PostgreSQL's estimate)\n",
                number(e["estimated_rows"]).c_str(), number(e["table_rows"]).c_str(), e["selectivity"].get<double>());
  } else {
    std::printf("filter: none; about %s rows\n", number(e["table_rows"]).c_str());
  }
  if (e["plan"] != "exact" && !e["vector_index_used"].get<bool>()) {
    std::printf("note: PostgreSQL did not scan the vector index (its estimate found a scan and sort cheaper: a small "
                "table, or statistics not yet gathered)\n");
  }
  std::printf("EXPLAIN (ANALYZE, BUFFERS):\n");
  for (const auto& line : e["explain"]) std::printf("  %s\n", line.get<std::string>().c_str());
  std::printf("\n");
}

int run_search(const Globals& globals, const std::string& text, int top_k, const std::string& where,
               std::optional<int> ef_search, bool shadow_compare, bool json_out, bool explain) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  auto filter = parse_where(where);
  if (!filter) return report_usage(filter.error().with_context("--where"));
  if (auto checked = check_search_query(text); !checked) return report(checked.error());
  auto store = open_articles(*cfg, true, false, shadow_compare);
  if (!store) return report(store.error());
  auto vec = (*store)->embedder().embed(std::span<const std::string>(&text, 1));
  if (!vec) return report(vec.error());
  SearchOptions opts;
  opts.top_k = top_k;
  opts.where = *filter;
  opts.ef_search = ef_search;
  opts.model = std::string((*store)->embedder().model());
  json explained;
  if (explain) {
    auto e = (*store)->store().explain(vec->front(), opts);
    if (!e) return report(e.error());
    explained = *std::move(e);
    if (!json_out) print_explain(explained);
  }
  auto hits = (*store)->store().search(vec->front(), opts);
  if (!hits) return report(hits.error());
  if (explain && json_out) {
    print_json({{"explain", explained}, {"results", hits_json(*hits)}});
  } else {
    json_out ? print_json(hits_json(*hits)) : print_hit_table(*hits);
  }
  if (const auto* dual = dynamic_cast<const api::DualStore*>(&(*store)->store()); dual != nullptr) {
    if (const std::string note = dual->last_search_note(); !note.empty()) std::fprintf(stderr, "search: %s\n", note.c_str());
    // Shadow compare (--shadow-compare or VSTORE_SHADOW_COMPARE): this read's outcome; every
    // read's is kept in PostgreSQL and `vstore health` reports the totals.
    if (const auto shadow = dual->last_shadow()) {
      if (shadow->failed) {
        std::fprintf(stderr, "shadow compare: %s could not answer (%s); recorded, see `vstore health`\n",
                     dual->secondary_name().c_str(), shadow->error.c_str());
      } else {
        std::fprintf(stderr, "shadow compare: %s returned %zu of these %zu results (overlap@%d %.2f); recorded, see "
                     "`vstore health`\n",
                     dual->secondary_name().c_str(), shadow->common, shadow->primary_hits, top_k, shadow->overlap);
      }
    }
  }
  return k_exit_ok;
}

void add_search_command(CLI::App& app, const Globals& globals, Action& action) {
  static std::string text;
  static int top_k = 10;
  static std::string where;
  static std::optional<int> ef_search;
  static bool shadow_compare = false;
  static bool json_out = false;
  static bool explain = false;
  auto* search = app.add_subcommand("search", "semantic search: embed TEXT and list the nearest articles");
  search->add_option("TEXT", text, "the query text")->required();
  search->add_option("--top-k", top_k, "number of results")->check(CLI::Range(1, k_max_top_k))->capture_default_str();
  search->add_option("--where", where, "ChromaDB-style filter, e.g. '{\"topic\": \"crude\"}'");
  search->add_option("--ef-search", ef_search, "HNSW candidate list for this query")->check(CLI::Range(1, 1000));
  search->add_flag("--json", json_out, "print [{id, score, metadata}] as JSON");
  search->add_flag("--explain", explain,
                   "first say how the search is planned (exact or the vector index, ef_search, the filter's estimated "
                   "selectivity) and show PostgreSQL's EXPLAIN (ANALYZE, BUFFERS); with --json: {explain, results}");
  search->add_flag("--shadow-compare", shadow_compare,
                   "VECTOR_BACKEND=dual: run the query on the secondary store too, print its overlap@k to stderr "
                   "and add it to the totals `vstore health` reports (VSTORE_SHADOW_COMPARE=1 does this for every read)");
  search->callback([&] {
    action = [&] { return run_search(globals, text, top_k, where, ef_search, shadow_compare, json_out, explain); };
  });
}

void add_similar_command(CLI::App& app, const Globals& globals, Action& action) {
  static std::string uri;
  static int similar_k = 5;
  static std::string similar_where;
  static bool json_out = false;
  auto* similar = app.add_subcommand("similar", "articles nearest to the stored vector of URI (itself excluded)");
  similar->add_option("URI", uri, "the article's uri")->required();
  similar->add_option("--top-k", similar_k, "number of results")->check(CLI::Range(1, k_max_top_k))->capture_default_str();
  similar->add_option("--where", similar_where, "ChromaDB-style filter on the results, e.g. '{\"topic\": \"crude\"}'");
  similar->add_flag("--json", json_out, "print [{id, score, metadata}] as JSON");
  similar->callback([&] {
    action = [&] {
      auto cfg = load(globals);
      if (!cfg) return report(cfg.error());
      auto filter = parse_where(similar_where);
      if (!filter) return report_usage(filter.error().with_context("--where"));
      auto store = open_articles(*cfg, false);
      if (!store) return report(store.error());
      auto hits = (*store)->similar_articles(uri, similar_k, *filter);
      if (!hits) return report(hits.error());
      if (json_out) {
        print_json(hits_json(*hits));
        return k_exit_ok;
      }
      auto origin = origin_metadata(**store, uri);
      if (!origin) return report(origin.error());
      print_origin(uri, *origin);
      print_hit_table(*hits);
      return k_exit_ok;
    };
  });
}

int run_vectors(const Globals& globals, std::optional<std::int64_t> limit, const std::string& where, bool json_out) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  auto filter = parse_where(where);
  if (!filter) return report_usage(filter.error().with_context("--where"));
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
}

void add_vectors_command(CLI::App& app, const Globals& globals, Action& action) {
  static std::optional<std::int64_t> limit;
  static std::string where;
  static bool json_out = false;
  auto* vectors = app.add_subcommand("vectors", "stored vectors with ids and metadata (get_vectors_by_metadata)");
  vectors->add_option("--limit", limit, "at most this many")->check(CLI::Range(std::int64_t{0}, std::int64_t{100000000}));
  vectors->add_option("--where", where, "ChromaDB-style filter");
  vectors->add_flag("--json", json_out, "print {ids, vectors, metadatas} as JSON");
  vectors->callback([&] {
    action = [&] { return run_vectors(globals, limit, where, json_out); };
  });
}

// A JSON value as health's text shows it: "-" for null.
std::string health_word(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return fmt::format("{:.2f}", v.get<double>());
  return v.dump();
}

// The text form of a health report: the same keys and words as the JSON.
void print_health(const json& h) {
  const std::string backend = health_word(h["backend"]);
  const bool dual = backend == "dual";
  const std::string primary = dual ? health_word(h.value("primary", json(nullptr))) : backend;
  const bool chroma = primary == "chromadb";
  std::printf("%s: %s%s, %s %s, %s %s, %s rows, %s with embedding (%s%%), index %s\n",
              h["healthy"].is_boolean() && h["healthy"].get<bool>() ? "healthy" : "UNHEALTHY", backend.c_str(),
              dual ? fmt::format(" (primary {})", primary).c_str() : "", chroma ? "chroma" : "postgresql",
              health_word(h["server_version"]).c_str(), chroma ? "collection" : "vector",
              health_word(chroma ? h.value("collection", json(nullptr)) : h["extension_version"]).c_str(),
              health_word(h["rows"]).c_str(), health_word(h["with_embedding"]).c_str(),
              health_word(h["coverage_pct"]).c_str(), health_word(h["index"].is_object() ? h["index"]["type"] : json(nullptr)).c_str());
  const json& index = h["index"];
  if (index.is_object() && !index.value("size_bytes", json(nullptr)).is_null()) {
    auto mb = [](const json& v) { return v.is_number() ? fmt::format("{:.1f} MB", v.get<double>() / 1048576.0) : std::string("-"); };
    std::printf("  index %s: %s, %s; shared_buffers %s, host memory %s\n", health_word(index["name"]).c_str(),
                index["valid"].is_boolean() && index["valid"].get<bool>() ? "valid" : "NOT VALID",
                mb(index["size_bytes"]).c_str(), mb(index["shared_buffers_bytes"]).c_str(),
                mb(index["host_ram_bytes"]).c_str());
  }
  if (const json& pool = h["pool"]; pool.is_object()) {
    std::printf("  pool: %s open (%s in use, %s idle) of %s + %s overflow\n", health_word(pool["open"]).c_str(),
                health_word(pool["in_use"]).c_str(), health_word(pool["idle"]).c_str(), health_word(pool["size"]).c_str(),
                health_word(pool["max_overflow"]).c_str());
  }
  if (const json& lat = h["latency_ms"]; lat.is_object()) {
    std::printf("  latency: round trip %s ms, top-10 search %s ms\n", health_word(lat["roundtrip"]).c_str(),
                health_word(lat["search"]).c_str());
  }
  if (const json& v = h["last_validation"]; v.is_object()) {
    const bool passed = v["passed"].is_boolean() && v["passed"].get<bool>();
    std::printf("  last validation: %s, %s%s%s\n", health_word(v["finished_at"]).c_str(),
                v["status"] != "succeeded" ? "did not finish" : passed ? "passed" : "did not pass",
                v.value("stale", false) ? " (older than the last vector write)" : "",
                v["report_path"].is_string() ? fmt::format(", {}", v["report_path"].get<std::string>()).c_str() : "");
  } else if (h.contains("last_validation")) {
    std::printf("  last validation: none\n");
  }
  if (dual) {
    const json& sec = h["secondary"];
    std::printf("  secondary %s: %s, %s rows, %s with embedding\n", health_word(sec["backend"]).c_str(),
                sec["healthy"].is_boolean() && sec["healthy"].get<bool>() ? "healthy" : "UNHEALTHY",
                health_word(sec["rows"]).c_str(), health_word(sec["with_embedding"]).c_str());
    const json& drift = h["drift"];
    std::printf("  drift: %s vectors in %s, %s in %s, difference %s\n", health_word(drift["primary_vectors"]).c_str(),
                health_word(drift["primary"]).c_str(), health_word(drift["secondary_vectors"]).c_str(),
                health_word(drift["secondary"]).c_str(), health_word(drift["difference"]).c_str());
    const json& outbox = h["outbox"];
    std::printf("  outbox: %s pending, oldest %s s, last error %s\n", health_word(outbox["pending"]).c_str(),
                health_word(outbox["oldest_age_s"]).c_str(), health_word(outbox["last_error"]).c_str());
    const json& last = h["secondary_last_error"];
    if (last.is_object()) {
      std::printf("  secondary last error: %s (at %s)\n", health_word(last["message"]).c_str(),
                  health_word(last["at"]).c_str());
    }
    const json& shadow = h["shadow"];
    std::printf("  shadow: %s reads compared, %s failures, mean overlap %s, last at %s\n",
                health_word(shadow["reads"]).c_str(), health_word(shadow["failures"]).c_str(),
                health_word(shadow["mean_overlap"]).c_str(), health_word(shadow["last_at"]).c_str());
  }
  for (const auto& r : h["reasons"]) std::printf("  reason: %s\n", health_word(r).c_str());
  for (const auto& w : h.value("warnings", json::array())) std::printf("  warning: %s\n", health_word(w).c_str());
}

int run_health(const Globals& globals, bool json_out) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  json h;
  auto store = open_articles(*cfg, false);
  if (!store) {
    // Every key, null where unknown, and the reason the store could not be opened.
    h = api::health_skeleton(to_string(cfg->backend));
    h["reasons"] = json::array({store.error().message()});
    // The one-line reason on stderr too, as every failing command gives it (the report below
    // is on stdout, so it stays one JSON document with --json).
    std::fprintf(stderr, "vstore: %s\n", store.error().message().c_str());
  } else {
    // Health only reads: no drain of the dual store's outbox from this process.
    if (auto* dual = dynamic_cast<api::DualStore*>(&(*store)->store()); dual != nullptr) dual->stop_background_drain();
    auto got = (*store)->health();
    if (!got) {
      h = api::health_skeleton(to_string(cfg->backend));
      h["reasons"] = json::array({got.error().message()});
    } else {
      h = std::move(*got);
    }
  }
  json_out ? print_json(h) : print_health(h);
  return h["healthy"].is_boolean() && h["healthy"].get<bool>() ? k_exit_ok : k_exit_failure;
}

void add_health_command(CLI::App& app, const Globals& globals, Action& action) {
  static bool json_out = false;
  auto* health = app.add_subcommand("health", "check the store: server, extension, schema, index, coverage (dual mode: both "
                                              "stores, their drift, the outbox, shadow totals); reads only; exit 1 "
                                              "when unhealthy");
  health->add_flag("--json", json_out, "print the health report as JSON");
  health->callback([&] {
    action = [&] { return run_health(globals, json_out); };
  });
}

int run_outbox(const Globals& globals, const std::string& outbox_action, bool json_out) {
  auto cfg = load(globals);
  if (!cfg) return report(cfg.error());
  if (cfg->backend != BackendKind::dual) {
    return report(Error(ErrorCode::invalid_argument,
                        fmt::format("the outbox exists only with VECTOR_BACKEND=dual, not {}", to_string(cfg->backend))));
  }
  OpenOptions options;
  options.create = outbox_action == "drain";  // a drain writes the secondary, status only reads
  auto store = open_store(*cfg, options);
  if (!store) return report(store.error());
  auto* dual = dynamic_cast<api::DualStore*>(store->get());
  if (dual == nullptr) return report(Error(ErrorCode::internal, "the dual store is not a DualStore"));
  dual->stop_background_drain();  // what this command drains is what it reports
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
}

void add_outbox_command(CLI::App& app, const Globals& globals, Action& action) {
  static std::string outbox_action;
  static bool json_out = false;
  auto* outbox = app.add_subcommand("outbox", "VECTOR_BACKEND=dual: writes waiting for the secondary store (status), or "
                                              "apply them now (drain)");
  outbox->add_option("ACTION", outbox_action, "status or drain")->required()->check(CLI::IsMember({"status", "drain"}));
  outbox->add_flag("--json", json_out, "print {pending, drained} as JSON");
  outbox->callback([&] {
    action = [&] { return run_outbox(globals, outbox_action, json_out); };
  });
}

int run_embed(const Globals& globals, const std::vector<std::string>& texts, bool json_out) {
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
}

void add_embed_command(CLI::App& app, const Globals& globals, Action& action) {
  static std::vector<std::string> texts;
  static bool json_out = false;
  auto* embed = app.add_subcommand("embed", "embed texts with the configured embedder and print the vectors");
  embed->add_option("TEXT", texts, "texts to embed")->required();
  embed->add_flag("--json", json_out, "print a list of vectors as JSON");
  embed->callback([&] {
    action = [&] { return run_embed(globals, texts, json_out); };
  });
}

}  // namespace

void add_data_commands(CLI::App& app, const Globals& globals, Action& action) {
  add_ingest_command(app, globals, action);
  add_search_command(app, globals, action);
  add_similar_command(app, globals, action);
  add_vectors_command(app, globals, action);
  add_health_command(app, globals, action);
  add_outbox_command(app, globals, action);
  add_embed_command(app, globals, action);
}

}  // namespace vstore::cli
