// SPDX-License-Identifier: Apache-2.0
// ChromaDir: reads collections, records and vectors from a stopped Chroma directory.
//
// Design:
// - Open: refuse a directory a live process holds (hot journal / WAL file, or an open file
//   descriptor on chroma.sqlite3 found under /proc), then open SQLite read-only and read the
//   `migrations` table; each migration directory must be at or below the newest version this
//   reader knows (sysdb 10, metadb 6, embeddings_queue 2), otherwise the schema is unknown.
// - Collections come from sysdb tables (never from listing folders: deleted collections
//   leave orphan segment folders). Space, as Chroma 1.x resolves it (verified with 0.6.3, 1.0.19
//   and 1.5.9 by the distances their queries return): the 1.3+ `schema_str` (1.5 writes
//   `config_json_str` as `{}` and keeps space and embedding function only there), else the 1.x
//   `config_json_str`; both hold the space resolved from `hnsw:space` at creation, and win over
//   it, unless the config is all defaults (l2), when `hnsw:space` wins; 0.x rows: `hnsw:space`;
//   else l2.
// - Array metadata (1.5+, metadb 00006): one `embedding_metadata_array` row per element, no
//   position column; Chroma's get() returns them in rowid order, duplicates kept, so they are
//   read ORDER BY rowid into a JSON array of one element type. Chroma stores no empty array
//   (one sent over HTTP is in the log as `[]` but leaves the key absent), so a `[]` in the log
//   is replayed as "key absent"; any other array in the log must be non-empty and of one
//   scalar type, or the snapshot is refused.
// - A snapshot is built in two independent replays over the same log:
//   metadata = `embeddings`/`embedding_metadata` of the METADATA segment + log rows past that
//   segment's max_seq_id; vectors = HNSW slots whose label is in the pickle and not
//   tombstoned + log rows past the VECTOR segment's max_seq_id (sqlite row; else the
//   pickle's, as 0.4.0-0.5.5 kept it there; else -1). Log semantics follow Chroma: ADD only
//   when absent, UPDATE only when present (metadata merged, null deletes a key), UPSERT is
//   update-or-add, DELETE removes. Live ids are those of the metadata side; each must have
//   a vector or the snapshot is refused. For cosine, slots whose vector the log still holds
//   (older log rows, kept forever before 0.5.6) take the client's exact bytes from the log.
// - Sequence ids are 8-byte big-endian BLOBs up to 0.6.x and INTEGER from 1.x; both decode.
#include "chroma/chroma_dir.hpp"

#include <dirent.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include <fmt/format.h>

#include "chroma/chroma_hnsw.hpp"
#include "chroma/chroma_pickle.hpp"

namespace vstore::chroma {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::pair<std::string_view, int> k_known_migrations[] = {
    {"sysdb", 10}, {"metadb", 6}, {"embeddings_queue", 2}};
constexpr std::string_view k_vector_segment_type = "urn:chroma:segment/vector/hnsw-local-persisted";

struct DbDeleter {
  void operator()(sqlite3* db) const { sqlite3_close(db); }
};

// One prepared statement; bind text parameters, step rows.
class Stmt {
 public:
  static Result<Stmt> prepare(sqlite3* db, const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      return fail(ErrorCode::corruption, fmt::format("chroma.sqlite3: {} ({})", sqlite3_errmsg(db), sql));
    }
    return Stmt(db, st);
  }
  Stmt(Stmt&& o) noexcept : m_db(o.m_db), m_st(std::exchange(o.m_st, nullptr)) {}
  Stmt& operator=(Stmt&&) = delete;
  ~Stmt() {
    if (m_st) sqlite3_finalize(m_st);
  }
  void bind(int idx, const std::string& v) { sqlite3_bind_text(m_st, idx, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
  void bind_int(int idx, std::int64_t v) { sqlite3_bind_int64(m_st, idx, v); }
  /// True while a row is available.
  Result<bool> step() {
    const int rc = sqlite3_step(m_st);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return fail(ErrorCode::corruption, fmt::format("chroma.sqlite3: {}", sqlite3_errmsg(m_db)));
  }
  [[nodiscard]] bool is_null(int col) const { return sqlite3_column_type(m_st, col) == SQLITE_NULL; }
  [[nodiscard]] int type(int col) const { return sqlite3_column_type(m_st, col); }
  [[nodiscard]] std::string text(int col) const { return std::string(text_view(col)); }
  /// The text of a column, valid until the next step.
  [[nodiscard]] std::string_view text_view(int col) const {
    const auto* p = sqlite3_column_text(m_st, col);
    return p ? std::string_view(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(m_st, col)))
             : std::string_view();
  }
  [[nodiscard]] std::string_view blob(int col) const {
    const void* p = sqlite3_column_blob(m_st, col);
    return p ? std::string_view(static_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(m_st, col)))
             : std::string_view();
  }
  [[nodiscard]] std::int64_t int64(int col) const { return sqlite3_column_int64(m_st, col); }
  [[nodiscard]] double real(int col) const { return sqlite3_column_double(m_st, col); }

 private:
  Stmt(sqlite3* db, sqlite3_stmt* st) : m_db(db), m_st(st) {}
  sqlite3* m_db;
  sqlite3_stmt* m_st;
};

// A sequence id stored as INTEGER (1.x) or a big-endian BLOB (0.x, 8 or 24 bytes).
Result<std::int64_t> decode_seq(const Stmt& st, int col) {
  if (st.type(col) == SQLITE_INTEGER) return st.int64(col);
  if (st.type(col) == SQLITE_BLOB) {
    const auto b = st.blob(col);
    if (b.size() != 8 && b.size() != 24) {
      return fail(ErrorCode::corruption, fmt::format("a seq_id BLOB has {} bytes, expected 8 or 24", b.size()));
    }
    for (std::size_t i = 0; i + 8 < b.size(); ++i) {
      if (b[i] != 0) return fail(ErrorCode::corruption, "a seq_id BLOB does not fit 64 bits");
    }
    std::uint64_t v = 0;
    for (std::size_t i = b.size() - 8; i < b.size(); ++i) v = (v << 8) | static_cast<unsigned char>(b[i]);
    return static_cast<std::int64_t>(v);
  }
  if (st.type(col) == SQLITE_NULL) return std::int64_t{-1};
  return fail(ErrorCode::corruption, "a seq_id is neither an INTEGER nor a BLOB");
}

std::string in_use_message(const std::string& dir, const std::string& why) {
  return fmt::format(
      "chroma directory {} is in use ({}); stop Chroma first, then migrate it or a copy taken while it is stopped "
      "(cp -a {} COPY), or take a consistent copy of the database with sqlite3 {}/chroma.sqlite3 \".backup "
      "COPY/chroma.sqlite3\" and copy the segment folders beside it",
      dir, why, dir, dir);
}

// Pid of another process with `file` open, if any.
std::optional<long> process_holding(const fs::path& file) {
  std::error_code ec;
  const fs::path target = fs::canonical(file, ec);
  if (ec) return std::nullopt;
  const long self = static_cast<long>(getpid());
  for (const auto& proc : fs::directory_iterator("/proc", ec)) {
    const std::string name = proc.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    long pid = 0;
    if (std::from_chars(name.data(), name.data() + name.size(), pid).ec != std::errc()) continue;
    if (pid == self) continue;
    std::error_code fd_ec;
    for (const auto& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      const fs::path link = fs::read_symlink(fd.path(), link_ec);
      if (!link_ec && link == target) return pid;
    }
  }
  return std::nullopt;
}

// Splits a metadata JSON object into user metadata, document and uri.
void split_metadata(const json& full, json& metadata, std::optional<std::string>& document, std::optional<std::string>& uri) {
  for (const auto& [k, v] : full.items()) {
    if (k == "chroma:document") {
      document = v.is_string() ? std::optional<std::string>(v.get<std::string>()) : std::nullopt;
    } else if (k == "chroma:uri") {
      uri = v.is_string() ? std::optional<std::string>(v.get<std::string>()) : std::nullopt;
    } else if (!v.is_null() && !(v.is_array() && v.empty())) {
      metadata[k] = v;
    }
  }
}

// Metadata-side state of one record during replay.
struct MetaState {
  json metadata = json::object();
  std::optional<std::string> document;
  std::optional<std::string> uri;
};

// Merges an update's metadata (null deletes a key) into `state`.
void merge_metadata(MetaState& state, const json& update) {
  for (const auto& [k, v] : update.items()) {
    if (k == "chroma:document") {
      state.document = v.is_string() ? std::optional<std::string>(v.get<std::string>()) : std::nullopt;
    } else if (k == "chroma:uri") {
      state.uri = v.is_string() ? std::optional<std::string>(v.get<std::string>()) : std::nullopt;
    } else if (v.is_null() || (v.is_array() && v.empty())) {
      state.metadata.erase(k);
    } else {
      state.metadata[k] = v;
    }
  }
}

// Kind of a scalar metadata value, keeping int and float apart; nullopt for anything else.
std::optional<json::value_t> scalar_kind(const json& v) {
  if (v.is_string() || v.is_boolean() || v.is_number_float()) return v.type();
  if (v.is_number_integer()) return json::value_t::number_integer;
  return std::nullopt;
}

// Why a log row's metadata holds a value Chroma cannot have written, or an empty string.
std::string unknown_log_value(const json& metadata) {
  for (const auto& [k, v] : metadata.items()) {
    if (v.is_null() || scalar_kind(v)) continue;
    if (!v.is_array()) return fmt::format("key {} holds a JSON {}", k, v.type_name());
    for (const auto& e : v) {
      if (!scalar_kind(e) || scalar_kind(e) != scalar_kind(v.front())) {
        return fmt::format("key {} holds an array that is not of one type of string, int, float or bool: {}", k, v.dump());
      }
    }
  }
  return {};
}

struct VecState {
  std::vector<float> vector;  // empty while an HNSW slot's vector is deferred
  VectorSource source = VectorSource::hnsw;
  std::int64_t slot = -1;     // the HNSW slot it came from, while vector is empty
};

// The records of one part of a collection by id, before they are assembled in id order: those
// the part's own files hold in a vector sorted by id (a state keeps its address), marked dead
// once the log deletes them, and in a small map the ids only the log adds.
template <class Id, class State>
class IdTable {
 public:
  struct Entry {
    Id id;
    State state;
    bool live = true;  // false once the log deleted it
  };
  std::vector<Entry> sorted;
  std::map<Id, State, std::less<>> log_only;

  // The live state of `id`, or nullptr.
  State* find(std::string_view id) { return resolve(slot(id), id); }
  // The same for ids asked in ascending order, walking `cursor` (from sorted.begin()) forward
  // instead of searching.
  State* find_ascending(typename std::vector<Entry>::iterator& cursor, std::string_view id) {
    // (Mostly the entry at the cursor is the one: that is tested first, with one comparison.)
    bool hit = false;
    for (; cursor != sorted.end(); ++cursor) {
      if (cursor->id == id) {
        hit = true;
        break;
      }
      if (!(cursor->id < id)) break;
    }
    return resolve(hit ? &*cursor : nullptr, id);
  }
  void erase(std::string_view id) {
    if (Entry* e = slot(id)) {
      e->live = false;
      e->state = State{};
    } else if (auto it = log_only.find(id); it != log_only.end()) {
      log_only.erase(it);
    }
  }
  // Sets the state of `id`, live or not.
  void put(const Id& id, State state) {
    if (Entry* e = slot(id)) {
      e->state = std::move(state);
      e->live = true;
    } else {
      log_only.insert_or_assign(id, std::move(state));
    }
  }
  [[nodiscard]] std::size_t live() const {
    return log_only.size() +
           static_cast<std::size_t>(std::count_if(sorted.begin(), sorted.end(), [](const Entry& e) { return e.live; }));
  }

 private:
  Entry* slot(std::string_view id) {
    auto it = std::lower_bound(sorted.begin(), sorted.end(), id, [](const Entry& e, std::string_view v) { return e.id < v; });
    return it != sorted.end() && it->id == id ? &*it : nullptr;
  }
  // A listed entry's state while live; an id the part's files do not have, from the log.
  State* resolve(Entry* e, std::string_view id) {
    if (e) return e->live ? &e->state : nullptr;
    auto it = log_only.find(id);
    return it == log_only.end() ? nullptr : &it->second;
  }
};

// The vector of each live id: the HNSW slots' in id order (through the label map's id order),
// and the ids only the log has. The ids are views of the label map's strings and of the log
// rows' ids, which read() keeps until it has assembled the records.
using VecTable = IdTable<std::string_view, VecState>;
// The metadata of each live id: the metadata segment's records (the scan of ids lists them in
// id order) and those only the log adds.
using MetaTable = IdTable<std::string, MetaState>;

struct LogRow {
  std::int64_t seq = 0;
  int op = 0;
  std::string id;
  std::optional<std::vector<float>> vector;
  std::optional<json> metadata;
};

// Cosine slots hold normalised vectors; the de-normalised float32 is Chroma's reconstruction,
// not the client's bytes. Where the log still holds a row (at or before the vector segment's
// sequence number) that set this id's vector after its last delete, and that vector agrees
// with the reconstruction to float precision, its exact bytes are taken instead. Rows are
// tried newest first, so an ADD that Chroma ignored (the id existed) cannot win unless it
// carried the same vector. A deferred vector it compares is copied out of the HNSW files here.
void recover_exact_bytes(const std::vector<LogRow>& log, std::int64_t vector_seq, VecTable& vecs, const HnswVectors* slots,
                         SnapshotStats& stats) {
  std::unordered_map<std::string, std::vector<const LogRow*>> by_id;
  for (const LogRow& r : log) {
    if (r.seq > vector_seq) break;
    const VecState* state = vecs.find(r.id);
    if (state == nullptr || state->source != VectorSource::hnsw) continue;
    auto& rows = by_id[r.id];
    if (r.op == 3) {
      rows.clear();
    } else if (r.vector) {
      rows.push_back(&r);
    }
  }
  for (auto& [id, rows] : by_id) {
    VecState& state = *vecs.find(id);
    if (state.vector.empty() && state.slot >= 0 && slots != nullptr) {
      slots->copy(static_cast<std::size_t>(state.slot), state.vector);  // compared below, so no longer deferred
      state.slot = -1;
    }
    for (auto row = rows.rbegin(); row != rows.rend(); ++row) {
      const auto& candidate = *(*row)->vector;
      if (candidate.size() != state.vector.size()) continue;
      double scale = 1.0;
      for (float x : candidate) scale = std::max(scale, static_cast<double>(std::abs(x)));
      bool same = true;
      for (std::size_t i = 0; i < candidate.size() && same; ++i) {
        same = std::abs(static_cast<double>(candidate[i]) - state.vector[i]) <= 1e-5 * scale;
      }
      if (same) {
        state.vector = candidate;
        state.source = VectorSource::wal;
        ++stats.exact_from_log;
        break;
      }
    }
  }
}

}  // namespace

class DeferredVectors {
 public:
  DeferredVectors(std::shared_ptr<const HnswVectors> vectors, std::vector<std::int64_t> slots)
      : m_vectors(std::move(vectors)), m_slots(std::move(slots)) {}
  // The vector of record `i` into `out` when it is deferred and `out` still empty.
  void fill(std::size_t i, std::vector<float>& out) const {
    if (deferred(i) && out.empty()) m_vectors->copy(static_cast<std::size_t>(m_slots[i]), out);
  }
  // The vector of deferred record `i` into `out`, whatever `out` held.
  void copy(std::size_t i, std::vector<float>& out) const { m_vectors->copy(static_cast<std::size_t>(m_slots[i]), out); }
  // Whether record `i`'s vector comes from the HNSW files (and can be copied again).
  [[nodiscard]] bool deferred(std::size_t i) const { return i < m_slots.size() && m_slots[i] >= 0; }

 private:
  std::shared_ptr<const HnswVectors> m_vectors;
  std::vector<std::int64_t> m_slots;  // per record: its HNSW slot, or -1 when it has its vector
};

void Snapshot::fill_vectors(std::size_t from, std::size_t to) {
  if (!deferred) return;
  to = std::min(to, records.size());
  for (std::size_t i = from; i < to; ++i) deferred->fill(i, records[i].vector);
}

std::span<const float> Snapshot::vector_of(std::size_t i, std::vector<float>& scratch) const {
  const Record& rec = records[i];
  if (!rec.vector.empty() || !deferred || !deferred->deferred(i)) return rec.vector;
  deferred->copy(i, scratch);
  return scratch;
}

// Opens chroma.sqlite3 read-only (`uri` is a file: URI with mode=ro); SQLITE_OK or sqlite's
// error code, with `out` holding the handle either way (for the error message).
int open_read_only(const std::string& uri, std::unique_ptr<sqlite3, DbDeleter>& out) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(uri.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr);
  out.reset(raw);
  if (rc == SQLITE_OK) sqlite3_busy_timeout(raw, 2000);
  return rc;
}

namespace {

// Progress of ChromaDir::read: the records of the metadata segment, each counted once both
// reading threads are past it (the smaller of the two fractions), reported by whichever thread
// moves, one at a time, and whole at the end.
struct ReadTracker {
  const ReadProgress& report;
  std::int64_t total = 0;
  std::atomic<double> meta{0}, hnsw{0};
  std::mutex mutex;
  void update() {
    if (!report || total == 0) return;
    const double frac = std::min(meta.load(), hnsw.load());
    std::lock_guard lock(mutex);
    // Short of the whole until read() has assembled the records and reports it itself.
    report(std::min(total - 1, static_cast<std::int64_t>(frac * static_cast<double>(total))), total);
  }
};

// What the HNSW segment files hold for a collection.
struct HnswPart {
  std::vector<VecTable::Entry> vecs;  // by id
  std::size_t dimension = 0;
  std::int64_t slots = 0;
  std::int64_t deleted = 0;
  std::string label_map_format = "none";
  std::optional<std::int64_t> label_max_seq_id;
  std::shared_ptr<const HnswVectors> vectors;
  LabelMap labels;  // owns the ids `vecs` holds views of
};

// Phase 1 of read(): the HNSW slots, put in id order through the label map (parsed on a thread
// of its own while the slots are read). No files: an empty part.
Result<HnswPart> read_hnsw_part(const fs::path& seg_dir, std::size_t expected_dim, bool cosine, ReadTracker& tracker,
                                bool defer_hnsw_vectors) {
  HnswPart part;
  std::error_code ec;
  if (!fs::exists(seg_dir / "header.bin", ec)) {
    tracker.hnsw = 1;
    return part;
  }
  std::function<void(std::size_t, std::size_t)> on_slots;
  if (tracker.report) {
    on_slots = [&tracker](std::size_t done, std::size_t slots) {
      tracker.hnsw = slots == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(slots);
      tracker.update();
    };
  }
  auto labels_task = std::async(std::launch::async,
                                [&seg_dir] { return read_label_map((seg_dir / "index_metadata.pickle").string()); });
  auto seg = read_hnsw_segment(seg_dir.string(), expected_dim, cosine, on_slots, defer_hnsw_vectors);
  Result<LabelMap> labels_read = labels_task.get();
  if (!seg) return fail(seg.error());
  part.vectors = seg->vectors;
  part.dimension = seg->header.dim();
  part.slots = static_cast<std::int64_t>(seg->elements.size());
  if (seg->elements.empty()) return part;  // (no label map is needed, or read)
  if (!labels_read) return fail(labels_read.error());
  LabelMap& labels = *labels_read;
  part.label_map_format = labels.dialect == PickleDialect::python_persistent_data ? "python" : "rust";
  part.label_max_seq_id = labels.max_seq_id;
  // The live slot of each label (index in labels.entries), each label in one live slot; a
  // slot whose label the map does not have counts as deleted.
  std::vector<std::int64_t> slot_of(labels.size(), -1);
  std::size_t live = 0;
  for (std::size_t slot = 0; slot < seg->elements.size(); ++slot) {
    const HnswElement& e = seg->elements[slot];
    const std::size_t i = labels.index_of(e.label);
    if (e.deleted || i == LabelMap::npos) {
      ++part.deleted;
      continue;
    }
    if (slot_of[i] >= 0) return fail(ErrorCode::corruption, fmt::format("label {} is in two live HNSW slots", e.label));
    slot_of[i] = static_cast<std::int64_t>(slot);
    ++live;
  }
  if (live != labels.size()) {
    return fail(ErrorCode::corruption, fmt::format("the label map has {} labels but data_level0.bin holds {} live slots",
                                                   labels.size(), live));
  }
  part.vecs.reserve(live);
  for (const std::uint32_t i : labels.by_id) {
    const auto slot = static_cast<std::size_t>(slot_of[i]);
    part.vecs.push_back(VecTable::Entry{
        labels.entries[i].id,
        VecState{std::move(seg->elements[slot].vector), VectorSource::hnsw,
                 defer_hnsw_vectors ? static_cast<std::int64_t>(slot) : -1}});
  }
  part.labels = std::move(labels);  // (the ids are views of labels.bytes, which moves as a pointer)
  return part;
}

// Row id of `embeddings` -> the record it belongs to: a table over the range when the ids are
// dense (as sqlite assigns them), else a sorted list.
class RowIndex {
 public:
  explicit RowIndex(std::vector<std::pair<std::int64_t, MetaState*>> by_row) : m_by_row(std::move(by_row)) {
    std::sort(m_by_row.begin(), m_by_row.end());
    if (m_by_row.empty()) return;
    m_first_row = m_by_row.front().first;
    const auto span = static_cast<std::uint64_t>(m_by_row.back().first - m_first_row);
    if (span < 4 * m_by_row.size() + 1024) {
      m_dense.assign(span + 1, nullptr);
      for (const auto& [row, state] : m_by_row) m_dense[static_cast<std::size_t>(row - m_first_row)] = state;
    }
  }
  // The record of row `row`, or nullptr (another segment's record).
  [[nodiscard]] MetaState* record_of(std::int64_t row) const {
    if (!m_dense.empty() || m_by_row.empty()) {
      const std::int64_t i = row - m_first_row;
      return i >= 0 && static_cast<std::uint64_t>(i) < m_dense.size() ? m_dense[static_cast<std::size_t>(i)] : nullptr;
    }
    auto it = std::lower_bound(m_by_row.begin(), m_by_row.end(), row,
                               [](const std::pair<std::int64_t, MetaState*>& e, std::int64_t r) { return e.first < r; });
    return it != m_by_row.end() && it->first == row ? it->second : nullptr;
  }

 private:
  std::vector<std::pair<std::int64_t, MetaState*>> m_by_row;  // (embeddings.id, its record), sorted
  std::vector<MetaState*> m_dense;
  std::int64_t m_first_row = 0;
};

// One embedding_metadata row (id, key, string, int, float, bool) into its record.
void apply_metadata_row(const Stmt& st, MetaState& m) {
  if (st.is_null(1)) return;
  const std::string_view key = st.text_view(1);
  const bool is_document = key == "chroma:document";
  const bool is_uri = key == "chroma:uri";
  if (is_document || is_uri) {
    if (!st.is_null(2)) (is_document ? m.document : m.uri) = std::string(st.text_view(2));
    return;
  }
  json value;
  if (!st.is_null(2)) {
    value = std::string(st.text_view(2));
  } else if (!st.is_null(3)) {
    value = st.int64(3);
  } else if (!st.is_null(4)) {
    value = st.real(4);
  } else if (!st.is_null(5)) {
    value = st.int64(5) != 0;
  } else {
    return;
  }
  m.metadata[std::string(key)] = std::move(value);
}

// Phase 3 of read(): the embeddings_queue rows of the collection, in sequence order; rows at or
// before `from` only for cosine (they may hold the client's exact bytes of a vector the HNSW
// files keep normalised). Counts them in snap.stats and sets snap.dimension from a first vector.
Result<std::vector<LogRow>> read_log(sqlite3* db, const CollectionInfo& collection, std::int64_t from, Snapshot& snap) {
  const std::string& name = collection.name;
  std::vector<LogRow> log;
  VS_TRY_ASSIGN(Stmt st, Stmt::prepare(db, "SELECT seq_id, operation, id, vector, encoding, metadata FROM embeddings_queue "
                                           "WHERE topic LIKE ? ORDER BY seq_id"));
  st.bind(1, "%/" + collection.id);
  while (true) {
    VS_TRY_ASSIGN(bool row, st.step());
    if (!row) break;
    ++snap.stats.wal_rows;
    const std::int64_t seq = st.int64(0);
    if (seq <= from && collection.space != "cosine") continue;
    LogRow r;
    r.seq = seq;
    r.op = static_cast<int>(st.int64(1));
    r.id = st.text(2);
    if (r.op < 0 || r.op > 3) {
      return fail(ErrorCode::corruption, fmt::format("collection {}: log row {} has unknown operation {}", name, seq, r.op));
    }
    if (!st.is_null(3)) {
      const std::string encoding = st.is_null(4) ? std::string("FLOAT32") : st.text(4);
      if (encoding != "FLOAT32") {
        return fail(ErrorCode::corruption,
                    fmt::format("collection {}: log row {} has vector encoding {}, only FLOAT32 is known", name, seq, encoding));
      }
      const auto bytes = st.blob(3);
      if (bytes.size() % 4 != 0 || bytes.empty()) {
        return fail(ErrorCode::corruption,
                    fmt::format("collection {}: log row {} has a vector of {} bytes", name, seq, bytes.size()));
      }
      std::vector<float> v(bytes.size() / 4);
      std::memcpy(v.data(), bytes.data(), bytes.size());
      if (snap.dimension == 0) snap.dimension = v.size();
      if (v.size() != snap.dimension) {
        return fail(ErrorCode::corruption, fmt::format("collection {}: log row {} has {} dimensions, expected {}", name,
                                                       seq, v.size(), snap.dimension));
      }
      r.vector = std::move(v);
    }
    if (!st.is_null(5)) {
      json md = json::parse(st.text(5), nullptr, false);
      if (md.is_discarded() || !md.is_object()) {
        return fail(ErrorCode::corruption, fmt::format("collection {}: log row {} has metadata that is not a JSON object",
                                                       name, seq));
      }
      if (const std::string why = unknown_log_value(md); !why.empty()) {
        return fail(ErrorCode::corruption,
                    fmt::format("collection {}: log row {} has metadata Chroma does not write: {}", name, seq, why));
      }
      r.metadata = std::move(md);
    }
    log.push_back(std::move(r));
  }
  return log;
}

// Phase 4 of read(): the log rows past each segment's sequence number, replayed into the
// metadata and the vectors with Chroma's semantics (see the design comment).
void replay_log(const std::vector<LogRow>& log, std::int64_t from, std::int64_t vector_seq, MetaTable& meta,
                VecTable& vecs, SnapshotStats& stats) {
  for (const LogRow& r : log) {
    if (r.seq <= from) continue;
    const bool replay_meta = r.seq > stats.metadata_max_seq_id;
    const bool replay_vec = r.seq > vector_seq;
    if (replay_meta || replay_vec) ++stats.wal_replayed;
    if (replay_meta) {
      MetaState* state = meta.find(r.id);
      const bool present = state != nullptr;
      if (r.op == 3) {
        if (present) meta.erase(r.id);
      } else if (r.op == 0 || (r.op == 2 && !present)) {
        if (!present) {
          MetaState s;
          if (r.metadata) split_metadata(*r.metadata, s.metadata, s.document, s.uri);
          meta.put(r.id, std::move(s));
        }
      } else if (present && r.metadata) {
        merge_metadata(*state, *r.metadata);
      }
    }
    if (replay_vec) {
      VecState* state = vecs.find(r.id);
      const bool present = state != nullptr;
      if (r.op == 3) {
        if (present) vecs.erase(r.id);
      } else if (r.op == 0 || (r.op == 2 && !present)) {
        if (!present && r.vector) vecs.put(r.id, VecState{*r.vector, VectorSource::wal});
      } else if (present && r.vector) {
        *state = VecState{*r.vector, VectorSource::wal};
      }
    }
  }
}

// Phase 5 of read(): the live records into snap.records. The live records of the segment, those
// only the log adds and vecs.sorted are all in id order: one pass over the three. The tables
// are used up (their ids and states move into records).
Result<void> assemble_records(MetaTable& meta, VecTable& vecs, const std::shared_ptr<const HnswVectors>& hnsw_vectors,
                              bool defer_hnsw_vectors, const std::string& name, Snapshot& snap) {
  const std::size_t live = meta.live();
  snap.records.reserve(live);
  const bool deferring = defer_hnsw_vectors && hnsw_vectors;
  std::vector<std::int64_t> deferred_slots;  // per record, when deferring: VecState::slot
  if (deferring) deferred_slots.reserve(live);
  auto cursor = vecs.sorted.begin();
  auto seg = meta.sorted.begin();
  auto added = meta.log_only.begin();
  while (true) {
    while (seg != meta.sorted.end() && !seg->live) ++seg;
    const bool from_segment =
        seg != meta.sorted.end() && (added == meta.log_only.end() || seg->id < added->first);
    if (!from_segment && added == meta.log_only.end()) break;
    std::string id = from_segment ? std::move(seg->id) : added->first;
    MetaState& m = from_segment ? seg->state : added->second;
    VecState* v = vecs.find_ascending(cursor, id);
    if (v == nullptr) {
      return fail(ErrorCode::corruption,
                  fmt::format("collection {}: record {} is in the metadata segment but has no vector in the HNSW files or "
                              "the log",
                              name, id));
    }
    if (deferring) deferred_slots.push_back(v->slot);
    snap.records.push_back(Record{.id = std::move(id),
                                  .vector = std::move(v->vector),
                                  .metadata = std::move(m.metadata),
                                  .document = std::move(m.document),
                                  .uri = std::move(m.uri),
                                  .source = v->source});
    if (from_segment) {
      ++seg;
    } else {
      ++added;
    }
  }
  if (deferring) snap.deferred = std::make_shared<const DeferredVectors>(hnsw_vectors, std::move(deferred_slots));
  return {};
}

}  // namespace

struct ChromaDir::Impl {
  std::string dir;
  std::string uri;  // of chroma.sqlite3, read-only
  std::unique_ptr<sqlite3, DbDeleter> db;

  // A second read-only connection to chroma.sqlite3 (for a second reading thread; the
  // directory is not live, so both see the same data).
  Result<std::unique_ptr<sqlite3, DbDeleter>> open_again() const {
    std::unique_ptr<sqlite3, DbDeleter> out;
    if (open_read_only(uri, out) != SQLITE_OK) {
      return fail(ErrorCode::unavailable,
                  fmt::format("cannot open {} a second time: {}", uri, out ? sqlite3_errmsg(out.get()) : "out of memory"));
    }
    return out;
  }
  std::string schema;
  std::map<std::string, int> migrations;
  bool has_databases = false;
  bool has_config_json = false;
  bool has_collection_topic = false;
  bool has_bool_value = false;
  bool has_collection_bool = false;
  bool has_schema_str = false;

  Result<bool> table_has_column(const std::string& table, const std::string& column) {
    VS_TRY_ASSIGN(Stmt st, Stmt::prepare(db.get(), fmt::format("PRAGMA table_info({})", table)));
    while (true) {
      VS_TRY_ASSIGN(bool row, st.step());
      if (!row) return false;
      if (st.text(1) == column) return true;
    }
  }

  Result<bool> table_exists(const std::string& table) {
    VS_TRY_ASSIGN(Stmt st, Stmt::prepare(db.get(), "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"));
    st.bind(1, table);
    return st.step();
  }

  // Phase 2 of read() (on its own thread): the metadata segment's records, their scalar rows,
  // then their array rows.
  Result<MetaTable> read_metadata(const CollectionInfo& collection, ReadTracker& tracker);
  // The segment's records in id order, with the row index of their `embeddings` rows.
  Result<std::pair<MetaTable, RowIndex>> list_records(const CollectionInfo& collection, ReadTracker& tracker);
  // Every embedding_metadata row of the records `index` knows, into them.
  Result<void> scan_metadata_rows(const RowIndex& index, ReadTracker& tracker);
  // Chroma 1.5's embedding_metadata_array rows, as JSON arrays in rowid order.
  Result<void> read_array_metadata(const CollectionInfo& collection, MetaTable& meta);
};

ChromaDir::ChromaDir(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
ChromaDir::ChromaDir(ChromaDir&&) noexcept = default;
ChromaDir& ChromaDir::operator=(ChromaDir&&) noexcept = default;
ChromaDir::~ChromaDir() = default;

const std::string& ChromaDir::schema_version() const { return m_impl->schema; }

Result<ChromaDir> ChromaDir::open(const std::string& dir) {
  const fs::path root(dir);
  const fs::path file = root / "chroma.sqlite3";
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) {
    return fail(ErrorCode::not_found, fmt::format("{} has no chroma.sqlite3; is it a Chroma persistent directory?", dir));
  }
  for (const char* suffix : {"-journal", "-wal"}) {
    if (fs::exists(fs::path(file.string() + suffix), ec)) {
      return fail(ErrorCode::conflict,
                  in_use_message(dir, fmt::format("chroma.sqlite3{} exists: a writer is active or died mid-write", suffix)));
    }
  }
  if (auto pid = process_holding(file)) {
    return fail(ErrorCode::conflict, in_use_message(dir, fmt::format("process {} has chroma.sqlite3 open", *pid)));
  }
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->uri = "file:" + fs::absolute(file).string() + "?mode=ro";
  const int rc = open_read_only(impl->uri, impl->db);
  sqlite3* raw = impl->db.get();
  if (rc != SQLITE_OK) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("cannot open {} read-only: {}", file.string(), raw ? sqlite3_errmsg(raw) : "out of memory"));
  }
  auto not_chroma = [&](const std::string& why) {
    return fail(ErrorCode::invalid_argument, fmt::format("{} is not a Chroma database: {}", file.string(), why));
  };
  {
    auto has = impl->table_exists("migrations");
    if (!has) return not_chroma(has.error().message());
    if (!*has) return not_chroma("it has no migrations table");
  }
  {
    VS_TRY_ASSIGN(Stmt st, Stmt::prepare(raw, "SELECT dir, max(version) FROM migrations GROUP BY dir ORDER BY dir"));
    while (true) {
      VS_TRY_ASSIGN(bool row, st.step());
      if (!row) break;
      impl->migrations[st.text(0)] = static_cast<int>(st.int64(1));
    }
  }
  for (const auto& [name, version] : impl->migrations) {
    auto known = std::find_if(std::begin(k_known_migrations), std::end(k_known_migrations),
                              [&](const auto& k) { return k.first == name; });
    if (known == std::end(k_known_migrations)) {
      return fail(ErrorCode::conflict, fmt::format("unknown chroma schema in {}: migration directory {} (version {}) is "
                                                   "not one this reader knows",
                                                   file.string(), name, version));
    }
    if (version > known->second) {
      return fail(ErrorCode::conflict,
                  fmt::format("unknown chroma schema in {}: migration {}/{:05} is newer than the newest this reader "
                              "knows ({}/{:05}); upgrade vstore or export through the Chroma HTTP API",
                              file.string(), name, version, name, known->second));
    }
  }
  for (const auto& [name, _] : k_known_migrations) {
    if (!impl->migrations.contains(std::string(name))) {
      return not_chroma(fmt::format("no {} migration was applied", name));
    }
  }
  impl->schema = fmt::format("sysdb {}, metadb {}, embeddings_queue {}", impl->migrations["sysdb"],
                             impl->migrations["metadb"], impl->migrations["embeddings_queue"]);
  VS_TRY_ASSIGN(impl->has_databases, impl->table_exists("databases"));
  VS_TRY_ASSIGN(impl->has_config_json, impl->table_has_column("collections", "config_json_str"));
  VS_TRY_ASSIGN(impl->has_collection_topic, impl->table_has_column("collections", "topic"));
  VS_TRY_ASSIGN(impl->has_bool_value, impl->table_has_column("embedding_metadata", "bool_value"));
  VS_TRY_ASSIGN(impl->has_collection_bool, impl->table_has_column("collection_metadata", "bool_value"));
  VS_TRY_ASSIGN(impl->has_schema_str, impl->table_has_column("collections", "schema_str"));
  return ChromaDir(std::move(impl));
}

std::string effective_space(const std::optional<std::string>& config_space, const json& hnsw,
                            const std::optional<std::string>& metadata_space) {
  if (!config_space) return metadata_space.value_or("l2");
  if (!metadata_space || *config_space != "l2") return *config_space;
  // Chroma's HnswConfiguration defaults; num_threads (the CPU count) and batch_size aside.
  constexpr std::pair<const char*, double> k_defaults[] = {
      {"ef_construction", 100}, {"ef_search", 100}, {"max_neighbors", 16}, {"resize_factor", 1.2}, {"sync_threshold", 1000}};
  for (const auto& [key, value] : k_defaults) {
    auto it = hnsw.find(key);
    if (it != hnsw.end() && !(it->is_number() && it->get<double>() == value)) return *config_space;
  }
  return *metadata_space;  // Chroma's legacy fallback: an all-default config yields to hnsw:space
}

std::optional<std::string> embedding_model_from_config(const json& config) {
  const json* ef = nullptr;
  if (auto it = config.find("embedding_function"); it != config.end() && it->is_object()) ef = &*it;
  if (!ef) return std::nullopt;
  auto text = [ef](const char* key) {
    auto it = ef->find(key);
    return it != ef->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (text("type") != "known") return std::nullopt;
  const std::string name = text("name");
  if (auto cfg = ef->find("config"); cfg != ef->end() && cfg->is_object()) {
    for (const char* key : {"model_name", "model"}) {
      if (auto m = cfg->find(key); m != cfg->end() && m->is_string() && !m->get<std::string>().empty()) {
        return m->get<std::string>();
      }
    }
  }
  // Chroma's "default" embedding function is all-MiniLM-L6-v2 (ONNX).
  if (name == "default" || name == "onnx_mini_lm_l6_v2") return std::string("all-MiniLM-L6-v2");
  if (!name.empty()) return name;
  return std::nullopt;
}

namespace {

// The space of a 1.x index config and its HNSW values.
struct IndexConfig {
  std::optional<std::string> space;
  json hnsw = json::object();
};

// Reads `space` from `holder` and keeps the HNSW values `hnsw` (the same object in
// config_json_str, nested under "hnsw" in schema_str).
Result<IndexConfig> index_config(const json& holder, const json& hnsw, const std::string& collection,
                                 std::string_view column) {
  IndexConfig out;
  if (auto sp = holder.find("space"); sp != holder.end()) {
    if (!sp->is_string()) {
      return fail(ErrorCode::corruption,
                  fmt::format("collection {}: {} gives a space that is a JSON {}", collection, column, sp->type_name()));
    }
    out.space = sp->get<std::string>();
  }
  out.hnsw = hnsw;
  return out;
}

}  // namespace

Result<std::vector<CollectionInfo>> ChromaDir::collections() {
  Impl& impl = *m_impl;
  std::string sql = "SELECT c.id, c.name, c.dimension, ";
  sql += impl.has_databases ? "d.tenant_id, d.name, " : "'default_tenant', 'default_database', ";
  sql += impl.has_config_json ? "c.config_json_str, " : "NULL, ";
  sql += impl.has_schema_str ? "c.schema_str " : "NULL ";
  sql += "FROM collections c ";
  if (impl.has_databases) sql += "LEFT JOIN databases d ON d.id = c.database_id ";
  sql += "ORDER BY c.name, c.id";
  VS_TRY_ASSIGN(Stmt st, Stmt::prepare(impl.db.get(), sql));
  std::vector<CollectionInfo> out;
  std::vector<IndexConfig> index_configs;
  while (true) {
    VS_TRY_ASSIGN(bool row, st.step());
    if (!row) break;
    CollectionInfo c;
    c.id = st.text(0);
    c.name = st.text(1);
    if (!st.is_null(2)) c.dimension = st.int64(2);
    if (!st.is_null(3)) c.tenant = st.text(3);
    if (!st.is_null(4)) c.database = st.text(4);
    IndexConfig index;
    if (!st.is_null(5)) {
      const json config = json::parse(st.text(5), nullptr, false);
      if (config.is_discarded()) {
        return fail(ErrorCode::corruption, fmt::format("collection {}: config_json_str is not valid JSON", c.name));
      }
      if (config.is_object()) {
        // 1.0-1.4: {"vector_index": {"hnsw": {"space": ..., ...}}}; 0.5.4-0.6.x wrote another
        // shape ("hnsw_configuration") whose values Chroma never used.
        if (auto vi = config.find("vector_index"); vi != config.end() && vi->is_object()) {
          if (auto h = vi->find("hnsw"); h != vi->end() && h->is_object()) {
            VS_TRY_ASSIGN(index, index_config(*h, *h, c.name, "config_json_str"));
          }
        }
        c.embedding_model = embedding_model_from_config(config);
      }
    }
    // 1.3+: the index config of the `#embedding` key (1.5 keeps space and embedding function
    // only here), {"keys": {"#embedding": {"float_list": {"vector_index": {"config": {...}}}}}}.
    if (!st.is_null(6)) {
      const json schema = json::parse(st.text(6), nullptr, false);
      if (schema.is_discarded() || !schema.is_object()) {
        return fail(ErrorCode::corruption, fmt::format("collection {}: schema_str is not a JSON object", c.name));
      }
      const json* cfg = &schema;
      for (const char* key : {"keys", "#embedding", "float_list", "vector_index", "config"}) {
        auto it = cfg->find(key);
        cfg = it != cfg->end() && it->is_object() ? &*it : nullptr;
        if (!cfg) break;
      }
      if (cfg) {
        if (cfg->contains("space")) {
          auto h = cfg->find("hnsw");
          VS_TRY_ASSIGN(index, index_config(*cfg, h != cfg->end() && h->is_object() ? *h : json::object(), c.name,
                                            "schema_str"));
        }
        if (!c.embedding_model) c.embedding_model = embedding_model_from_config(*cfg);
      }
    }
    index_configs.push_back(std::move(index));
    out.push_back(std::move(c));
  }
  for (std::size_t col_idx = 0; col_idx < out.size(); ++col_idx) {
    CollectionInfo& c = out[col_idx];
    const IndexConfig& index = index_configs[col_idx];
    VS_TRY_ASSIGN(Stmt md, Stmt::prepare(impl.db.get(), "SELECT str_value FROM collection_metadata WHERE collection_id = ? "
                                                        "AND key = 'hnsw:space'"));
    md.bind(1, c.id);
    VS_TRY_ASSIGN(bool has_space, md.step());
    std::optional<std::string> metadata_space;
    if (has_space && !md.is_null(0)) metadata_space = md.text(0);
    c.space = effective_space(index.space, index.hnsw, metadata_space);
    if (c.space != "l2" && c.space != "cosine" && c.space != "ip") {
      return fail(ErrorCode::corruption, fmt::format("collection {}: unknown hnsw space {}", c.name, c.space));
    }
    VS_TRY_ASSIGN(Stmt seg, Stmt::prepare(impl.db.get(), "SELECT id, scope, type FROM segments WHERE collection = ?"));
    seg.bind(1, c.id);
    while (true) {
      VS_TRY_ASSIGN(bool row, seg.step());
      if (!row) break;
      const std::string scope = seg.text(1);
      if (scope == "METADATA") c.metadata_segment = seg.text(0);
      if (scope == "VECTOR") {
        if (seg.text(2) != k_vector_segment_type) {
          return fail(ErrorCode::invalid_argument,
                      fmt::format("collection {}: vector segment type {} is not {}", c.name, seg.text(2), k_vector_segment_type));
        }
        c.vector_segment = seg.text(0);
      }
    }
    if (c.metadata_segment.empty() || c.vector_segment.empty()) {
      return fail(ErrorCode::corruption, fmt::format("collection {} lacks a METADATA or VECTOR segment", c.name));
    }
  }
  return out;
}

Result<std::pair<MetaTable, RowIndex>> ChromaDir::Impl::list_records(const CollectionInfo& collection,
                                                                       ReadTracker& tracker) {
  MetaTable meta;
  // The segment's records, in id order (the (segment_id, embedding_id) index covers this),
  // then one scan of embedding_metadata in its stored order, joined by the integer row id: a
  // look-up in the index and the table per record would cost more.
  VS_TRY_ASSIGN(Stmt ids, Stmt::prepare(db.get(), "SELECT id, embedding_id FROM embeddings WHERE segment_id = ? ORDER BY "
                                                  "embedding_id"));
  ids.bind(1, collection.metadata_segment);
  std::vector<std::pair<std::string, std::int64_t>> listed;  // (embedding id, embeddings.id)
  if (tracker.total > 0) listed.reserve(static_cast<std::size_t>(tracker.total));
  bool ascending = true;  // (sqlite's BINARY order is std::string's; checked, and sorted here if not)
  while (true) {
    VS_TRY_ASSIGN(bool row, ids.step());
    if (!row) break;
    const std::string_view id = ids.text_view(1);
    if (!listed.empty() && !(listed.back().first < id)) ascending = false;
    listed.emplace_back(std::string(id), ids.int64(0));
    if (tracker.report && listed.size() % 8192 == 0) {  // (a non-empty segment: total > 0)
      tracker.meta = 0.5 * static_cast<double>(listed.size()) / static_cast<double>(tracker.total);
      tracker.update();
    }
  }
  if (!ascending) {
    std::stable_sort(listed.begin(), listed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (std::adjacent_find(listed.begin(), listed.end(), [](const auto& a, const auto& b) { return a.first == b.first; }) !=
        listed.end()) {
      return fail(ErrorCode::corruption,
                  fmt::format("collection {}: an embedding id is in the metadata segment twice", collection.name));
    }
  }
  meta.sorted.reserve(listed.size());
  std::vector<std::pair<std::int64_t, MetaState*>> by_row;  // (embeddings.id, its record)
  by_row.reserve(listed.size());
  for (auto& [id, row] : listed) {
    meta.sorted.push_back(MetaTable::Entry{.id = std::move(id)});
    by_row.emplace_back(row, &meta.sorted.back().state);  // (reserved: the address stays)
  }
  // (moving the table keeps its records' addresses: the vector's buffer moves as a pointer)
  return std::pair<MetaTable, RowIndex>(std::move(meta), RowIndex(std::move(by_row)));
}

Result<void> ChromaDir::Impl::scan_metadata_rows(const RowIndex& index, ReadTracker& tracker) {
  const std::string sql = fmt::format("SELECT id, key, string_value, int_value, float_value, {}, rowid FROM "
                                      "embedding_metadata WHERE rowid >= ? AND rowid <= ?",
                                      has_bool_value ? "bool_value" : "NULL");
  std::int64_t first_rowid = 0, last_rowid = -1;
  {
    VS_TRY_ASSIGN(Stmt range, Stmt::prepare(db.get(), "SELECT min(rowid), max(rowid) FROM embedding_metadata"));
    VS_TRY(range.step());
    if (!range.is_null(0)) {
      first_rowid = range.int64(0);
      last_rowid = range.int64(1);
    }
  }
  // A large table is scanned in two halves of its row ids at once, the upper half on a second
  // connection and thread into records of its own (a record's rows may lie in both halves),
  // which are merged into the segment's records afterwards.
  const bool split = last_rowid - first_rowid >= 60000;
  const std::int64_t upper_from = split ? first_rowid + (last_rowid - first_rowid) / 2 : last_rowid + 1;
  // The rows of [from, to] on `conn` that belong to the segment's records, each with its record.
  auto scan = [&](sqlite3* conn, std::int64_t from, std::int64_t to, bool report, auto&& each) -> Result<void> {
    VS_TRY_ASSIGN(Stmt st, Stmt::prepare(conn, sql));
    st.bind_int(1, from);
    st.bind_int(2, to);
    std::int64_t scanned = 0;
    const double span = static_cast<double>(std::max<std::int64_t>(1, to + 1 - from));
    while (true) {
      VS_TRY_ASSIGN(bool row, st.step());
      if (!row) break;
      if (report && tracker.report && ++scanned % 16384 == 0) {
        tracker.meta = 0.5 + 0.5 * std::min(1.0, static_cast<double>(st.int64(6) - from) / span);
        tracker.update();
      }
      if (st.is_null(0)) continue;
      if (MetaState* state = index.record_of(st.int64(0))) each(st, *state);  // (else another segment's record)
    }
    return {};
  };
  std::vector<std::pair<MetaState*, MetaState>> upper;  // (record, what the upper half holds for it)
  std::future<Result<void>> upper_task;
  if (split) {
    upper_task = std::async(std::launch::async, [&]() -> Result<void> {
      VS_TRY_ASSIGN(auto conn, open_again());
      return scan(conn.get(), upper_from, last_rowid, false, [&](const Stmt& st, MetaState& state) {
        if (upper.empty() || upper.back().first != &state) upper.emplace_back(&state, MetaState{});
        apply_metadata_row(st, upper.back().second);
      });
    });
  }
  Result<void> lower = scan(db.get(), first_rowid, upper_from - 1, true, apply_metadata_row);
  Result<void> upper_done = split ? upper_task.get() : Result<void>{};
  VS_TRY(lower);
  VS_TRY(upper_done);
  for (auto& [target, part] : upper) {
    if (part.document) target->document = std::move(part.document);
    if (part.uri) target->uri = std::move(part.uri);
    if (target->metadata.empty()) {
      target->metadata = std::move(part.metadata);
    } else {
      for (auto& [key, value] : part.metadata.get_ref<json::object_t&>()) target->metadata[key] = std::move(value);
    }
  }
  return {};
}

Result<void> ChromaDir::Impl::read_array_metadata(const CollectionInfo& collection, MetaTable& meta) {
  const std::string& name = collection.name;
  VS_TRY_ASSIGN(bool has_arrays, table_exists("embedding_metadata_array"));
  if (!has_arrays) return {};
  VS_TRY_ASSIGN(Stmt arr, Stmt::prepare(db.get(), "SELECT e.embedding_id, a.key, a.string_value, a.int_value, "
                                                  "a.float_value, a.bool_value FROM embedding_metadata_array a JOIN "
                                                  "embeddings e ON e.id = a.id WHERE e.segment_id = ? ORDER BY e.id, "
                                                  "a.key, a.rowid"));
  arr.bind(1, collection.metadata_segment);
  // The array keys seen so far per record; a key must not also hold a scalar.
  std::map<std::string, std::set<std::string>> array_keys;
  while (true) {
    VS_TRY_ASSIGN(bool row, arr.step());
    if (!row) break;
    const std::string id = arr.text(0);
    const std::string key = arr.text(1);
    int set_columns = 0;
    json value;
    for (int col = 2; col <= 5; ++col) {
      if (arr.is_null(col)) continue;
      ++set_columns;
      if (col == 2) value = arr.text(col);
      if (col == 3) value = arr.int64(col);
      if (col == 4) value = arr.real(col);
      if (col == 5) value = arr.int64(col) != 0;
    }
    if (set_columns != 1) {
      return fail(ErrorCode::corruption,
                  fmt::format("collection {}: an array element of record {} key {} has {} typed values, not one", name,
                              id, key, set_columns));
    }
    if (key == "chroma:document" || key == "chroma:uri") {
      return fail(ErrorCode::corruption, fmt::format("collection {}: record {} has an array {}", name, id, key));
    }
    MetaState* rec = meta.find(id);
    if (rec == nullptr) {
      return fail(ErrorCode::corruption, fmt::format("collection {}: array metadata of unknown record {}", name, id));
    }
    json& md = rec->metadata;
    if (array_keys[id].insert(key).second) {
      if (md.contains(key)) {
        return fail(ErrorCode::corruption,
                    fmt::format("collection {}: record {} key {} is both a scalar and an array", name, id, key));
      }
      md[key] = json::array();
    }
    json& elements = md[key];
    if (!elements.empty() && scalar_kind(elements.front()) != scalar_kind(value)) {
      return fail(ErrorCode::corruption, fmt::format("collection {}: record {} key {} is an array of mixed types ({} "
                                                     "after {})",
                                                     name, id, key, value.dump(), elements.front().dump()));
    }
    elements.push_back(std::move(value));
  }
  return {};
}

// The metadata segment is read by sqlite on a second thread while the first reads the HNSW
// files: the vectors, most of the memory, are then allocated from the main arena, which grows
// in large steps, not page by page as a thread's arena does.
Result<MetaTable> ChromaDir::Impl::read_metadata(const CollectionInfo& collection, ReadTracker& tracker) {
  VS_TRY_ASSIGN(auto listed, list_records(collection, tracker));
  MetaTable meta = std::move(listed.first);
  VS_TRY(scan_metadata_rows(listed.second, tracker));
  VS_TRY(read_array_metadata(collection, meta));
  tracker.meta = 1;
  tracker.update();
  return meta;
}

Result<Snapshot> ChromaDir::read(const CollectionInfo& collection, const ReadProgress& progress, bool defer_hnsw_vectors) {
  Impl& impl = *m_impl;
  sqlite3* db = impl.db.get();
  Snapshot snap;
  snap.collection = collection;
  const std::string& name = collection.name;
  auto ctx = [&](const Error& e) { return fail(e.with_context(fmt::format("collection {}", name))); };
  // Consistent reads of all tables.
  VS_TRY_ASSIGN(Stmt begin, Stmt::prepare(db, "BEGIN"));
  VS_TRY(begin.step());
  struct EndTxn {
    sqlite3* db;
    ~EndTxn() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
  } end_txn{db};

  auto segment_seq = [&](const std::string& segment) -> Result<std::int64_t> {
    VS_TRY_ASSIGN(Stmt st, Stmt::prepare(db, "SELECT seq_id FROM max_seq_id WHERE segment_id = ?"));
    st.bind(1, segment);
    VS_TRY_ASSIGN(bool row, st.step());
    if (!row) return std::int64_t{-1};
    return decode_seq(st, 0);
  };
  VS_TRY_ASSIGN(snap.stats.metadata_max_seq_id, segment_seq(collection.metadata_segment));
  VS_TRY_ASSIGN(std::int64_t vector_seq, segment_seq(collection.vector_segment));
  ReadTracker tracker{progress};
  if (progress) {
    VS_TRY_ASSIGN(Stmt count, Stmt::prepare(db, "SELECT count(*) FROM embeddings WHERE segment_id = ?"));
    count.bind(1, collection.metadata_segment);
    VS_TRY(count.step());
    tracker.total = count.int64(0);
  }

  // Phases 1 and 2 at once: the HNSW files here, the metadata segment on a second thread.
  const fs::path seg_dir = fs::path(impl.dir) / collection.vector_segment;
  const std::size_t expected_dim = collection.dimension ? static_cast<std::size_t>(*collection.dimension) : 0;
  auto meta_task = std::async(std::launch::async, [&] { return impl.read_metadata(collection, tracker); });
  Result<HnswPart> hnsw = read_hnsw_part(seg_dir, expected_dim, collection.space == "cosine", tracker, defer_hnsw_vectors);
  Result<MetaTable> meta_read = meta_task.get();
  if (!meta_read) return fail(meta_read.error());
  MetaTable meta = std::move(*meta_read);
  if (!hnsw) return ctx(hnsw.error());
  VecTable vecs;
  vecs.sorted = std::move(hnsw->vecs);
  snap.stats.label_map_format = hnsw->label_map_format;
  snap.stats.hnsw_slots = hnsw->slots;
  snap.stats.hnsw_deleted = hnsw->deleted;
  if (hnsw->dimension != 0) snap.dimension = hnsw->dimension;
  if (vector_seq < 0 && hnsw->label_max_seq_id) vector_seq = *hnsw->label_max_seq_id;
  snap.stats.vector_max_seq_id = vector_seq;

  // Phases 3 and 4: the log, replayed past each segment's sequence number.
  const std::int64_t from = std::min(vector_seq, snap.stats.metadata_max_seq_id);
  VS_TRY_ASSIGN(const std::vector<LogRow> log, read_log(db, collection, from, snap));
  replay_log(log, from, vector_seq, meta, vecs, snap.stats);
  if (collection.space == "cosine") recover_exact_bytes(log, vector_seq, vecs, hnsw->vectors.get(), snap.stats);
  if (snap.dimension == 0 && collection.dimension) snap.dimension = static_cast<std::size_t>(*collection.dimension);
  if (collection.dimension && static_cast<std::size_t>(*collection.dimension) != snap.dimension) {
    return fail(ErrorCode::corruption, fmt::format("collection {}: the sysdb says {} dimensions but the vectors have {}",
                                                   name, *collection.dimension, snap.dimension));
  }

  // Phase 5: the records.
  VS_TRY(assemble_records(meta, vecs, hnsw->vectors, defer_hnsw_vectors, name, snap));
  if (progress) {
    const auto all = std::max(tracker.total, static_cast<std::int64_t>(snap.records.size()));
    progress(all, all);
  }
  return snap;
}

}  // namespace vstore::chroma
