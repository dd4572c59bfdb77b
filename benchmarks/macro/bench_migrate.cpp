// SPDX-License-Identifier: Apache-2.0
// `vstore bench migrate`: migrate_chroma() throughput against a bare binary COPY of the same vectors.
//
// Read the directory once (timed as read_s; gives the vectors for the bare side), create a
// scratch database, then per repeat three loads in a rotating order, each into an empty table
// after a CHECKPOINT: a bare COPY of (uri, embedding) batch by batch into a table with only a
// primary key; migrate_chroma() timed whole into a `schema up` table without a vector index;
// and (like for like) the rows the migration wrote, read back once as COPY bytes, in one bare
// COPY into a table of the same definition. Untimed warm-up rounds of all three (--warmup, default
// 1) come first; medians over the timed repeats are reported. All loads
// are free of a vector index, so the comparison is of the write paths, not of HNSW upkeep.
// Phases (each a function below): read_source, prepare_database, the three timed loads
// (MigrateLoads), time_rounds, migrate_report. A failed CHECKPOINT fails the benchmark, and every
// TRUNCATE or DROP runs through the scratch database's guard.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include <fmt/format.h>

#include "chroma/chroma_dir.hpp"
#include "macro/bench.hpp"
#include "macro/bench_support.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;

using bench_support::median;
using bench_support::seconds_since;

// Phase 1: the collection, read once (the vectors for the bare side, and the read time alone).
struct Source {
  std::unique_ptr<chroma::ChromaDir> dir;
  std::string collection;
  chroma::Snapshot snap;
  double read_s = 0;
};

Result<Source> read_source(const BenchMigrateOptions& options) {
  const auto t_read = std::chrono::steady_clock::now();
  VS_TRY_ASSIGN(chroma::ChromaDir dir, chroma::ChromaDir::open(options.from_dir));
  VS_TRY_ASSIGN(auto collections, dir.collections());
  const chroma::CollectionInfo* chosen = nullptr;
  for (const auto& c : collections) {
    if (!options.collection || c.name == *options.collection) {
      if (chosen && !options.collection) {
        return fail(ErrorCode::invalid_argument, "the directory holds several collections; choose one with --collection");
      }
      chosen = &c;
    }
  }
  if (!chosen) return fail(ErrorCode::not_found, "no such collection in the directory");
  Source out;
  VS_TRY_ASSIGN(out.snap, dir.read(*chosen));
  out.collection = chosen->name;
  out.read_s = seconds_since(t_read);
  out.dir = std::make_unique<chroma::ChromaDir>(std::move(dir));
  if (out.snap.records.empty()) return fail(ErrorCode::invalid_argument, "the collection is empty");
  return out;
}

// Removes the migration's data directory (its reports) at the end.
struct RemoveDataDir {
  std::filesystem::path path;
  ~RemoveDataDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// Phase 2: the scratch database's tables: bare_copy (uri, embedding), the migrated table
// without a vector index, and bare_rows of its definition; autovacuum off on all three.
Result<Config> prepare_database(Connection& conn, const std::string& conninfo, const std::string& scratch_name, int dim) {
  VS_TRY(conn.exec("CREATE EXTENSION IF NOT EXISTS vector"));
  VS_TRY(conn.exec(fmt::format("CREATE TABLE bare_copy (uri text PRIMARY KEY, embedding vector({}))", dim)));
  Config cfg;
  cfg.database_url = conninfo;
  cfg.embedding_dim = dim;
  cfg.data_dir = std::filesystem::temp_directory_path() / scratch_name;
  cfg.pgvector.index_type = IndexType::none;  // no vector index: all sides load index-free
  VS_TRY(schema_up(conninfo, cfg));
  const std::string table = Connection::quote_ident(cfg.table);
  VS_TRY(conn.exec(fmt::format("CREATE TABLE bare_rows (LIKE {} INCLUDING ALL)", table)));
  for (const char* t : {"bare_copy", "bare_rows", cfg.table.c_str()}) {
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} SET (autovacuum_enabled = false)", Connection::quote_ident(t))));
  }
  return cfg;
}

// The three timed loads, each into an empty table.
class MigrateLoads {
 public:
  MigrateLoads(Connection& conn, const std::string& conninfo, const Config& cfg, const Source& source,
               const BenchMigrateOptions& options)
      : m_conn(conn), m_conninfo(conninfo), m_cfg(cfg), m_source(source), m_options(options) {
    m_migrate.from_dir = options.from_dir;
    m_migrate.collection = source.collection;
    m_migrate.insert_missing = true;
    m_migrate.model = "bench";
    m_migrate.batch_size = options.batch_size;
    m_migrate.writers = options.writers;
    m_migrate.progress = options.progress;
  }

  // (1) bare binary COPY of the same vectors, (uri, embedding), into a table with only a primary
  // key, streamed in the slices the migration streams, so both sides overlap encoding and storing.
  Result<double> bare_copy() {
    const auto& records = m_source.snap.records;
    const std::size_t rows = records.size();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t from = 0; from < rows; from += m_options.batch_size) {
      const std::size_t to = std::min(rows, from + m_options.batch_size);
      std::size_t next = from;
      VS_TRY(m_conn.copy_stream("COPY bare_copy FROM STDIN (FORMAT binary)", [&](pg::CopyWriter& writer) -> Result<bool> {
        for (; next < to && writer.size() < pg::k_copy_slice_bytes; ++next) {
          writer.begin_row(2);
          writer.bytes_field(records[next].id);
          writer.vector_field(records[next].vector);
        }
        return next < to;
      }));
    }
    return seconds_since(t0);
  }

  // (2) the migration, whole: reading the directory, classification, COPY, checkpoints. The
  // first run also keeps the rows it wrote, as COPY bytes, for (3).
  Result<double> migration() {
    const std::size_t rows = m_source.snap.records.size();
    const auto t0 = std::chrono::steady_clock::now();
    VS_TRY_ASSIGN(MigrateReport report, migrate_chroma(m_conninfo, m_cfg, m_migrate));
    const double s = seconds_since(t0);
    if (report.collections.empty() || report.collections[0].migrated != static_cast<std::int64_t>(rows)) {
      return fail(ErrorCode::internal,
                  fmt::format("the benchmark migration moved {} of {} rows",
                              report.collections.empty() ? 0 : report.collections[0].migrated, rows));
    }
    m_timings = report.collections[0].timings;
    if (m_rows_bytes.empty()) {
      VS_TRY_ASSIGN(m_rows_bytes, m_conn.copy_out(fmt::format("COPY {} TO STDOUT (FORMAT binary)",
                                                              Connection::quote_ident(m_cfg.table))));
    }
    return s;
  }

  // (3) like for like: the rows the migration wrote, as bytes read back from its first run (no
  // encoding on this side at all), in one bare binary COPY into a table of the same definition
  // (primary key and B-tree indexes): what writing these rows costs without reading Chroma.
  Result<double> same_rows() {
    const std::size_t rows = m_source.snap.records.size();
    const auto t0 = std::chrono::steady_clock::now();
    VS_TRY_ASSIGN(const std::int64_t copied, m_conn.copy_in("COPY bare_rows FROM STDIN (FORMAT binary)", m_rows_bytes));
    const double s = seconds_since(t0);
    if (copied != static_cast<std::int64_t>(rows)) {
      return fail(ErrorCode::internal, fmt::format("the like-for-like COPY wrote {} of {} rows", copied, rows));
    }
    return s;
  }

  [[nodiscard]] const json& migrate_timings() const { return m_timings; }

 private:
  Connection& m_conn;
  const std::string& m_conninfo;
  const Config& m_cfg;
  const Source& m_source;
  const BenchMigrateOptions& m_options;
  MigrateOptions m_migrate;
  json m_timings;
  std::string m_rows_bytes;
};

// Seconds per timed repeat of each load.
struct MigrateRuns {
  std::vector<double> copy, migrate, same;
};

// Phase 3: every round runs the three loads, each into an empty table after a CHECKPOINT, in an
// order that rotates with the repeat (the first repeat's order runs the migration before the
// like-for-like COPY, which needs its rows). The warm-up rounds come first, in the first repeat's
// order, and are not counted: the first loads after the server starts pay for WAL segments it
// has not made yet and for memory the machine has not handed it yet, on whichever side happens
// to run first.
Result<MigrateRuns> time_rounds(const bench_support::ScratchDatabase& scratch, Connection& conn,
                                const std::string& table, MigrateLoads& loads, const BenchMigrateOptions& options) {
  MigrateRuns runs;
  for (int r = -options.warmup; r < options.repeats; ++r) {
    const bool timed = r >= 0;
    for (int k = 0; k < 3; ++k) {
      const int which = (k + std::max(r, 0)) % 3;
      if (which == 0) {
        VS_TRY(scratch.exec_destructive(conn, "TRUNCATE bare_copy"));
        VS_TRY(bench_support::checkpoint(conn));
        VS_TRY_ASSIGN(const double s, loads.bare_copy());
        if (timed) runs.copy.push_back(s);
      } else if (which == 1) {
        VS_TRY(scratch.exec_destructive(
            conn, fmt::format("TRUNCATE {}; DROP TABLE IF EXISTS vstore_chroma_checkpoints", table)));
        VS_TRY(bench_support::checkpoint(conn));
        VS_TRY_ASSIGN(const double s, loads.migration());
        if (timed) runs.migrate.push_back(s);
      } else {
        VS_TRY(scratch.exec_destructive(conn, "TRUNCATE bare_rows"));
        VS_TRY(bench_support::checkpoint(conn));
        VS_TRY_ASSIGN(const double s, loads.same_rows());
        if (timed) runs.same.push_back(s);
      }
    }
  }
  return runs;
}

// Phase 4: the report.
json migrate_report(const Source& source, const MigrateRuns& runs, const MigrateLoads& loads,
                    const BenchMigrateOptions& options) {
  const std::size_t rows = source.snap.records.size();
  // What the records carry besides id and vector (what the migration writes on top of the bare side's payload).
  std::int64_t with_metadata = 0, with_document = 0;
  for (const auto& rec : source.snap.records) {
    with_metadata += rec.metadata.empty() ? 0 : 1;
    with_document += rec.document ? 1 : 0;
  }
  const double copy_s = median(runs.copy);
  const double migrate_s = median(runs.migrate);
  const double rows_copy_s = median(runs.same);
  auto rates = [&](const std::vector<double>& seconds) {
    json out = json::array();
    for (double s : seconds) out.push_back(bench_support::round_to(static_cast<double>(rows) / s, 0));
    return out;
  };
  json ratio_runs = json::array();
  for (std::size_t r = 0; r < runs.migrate.size(); ++r) {
    ratio_runs.push_back(bench_support::round_to(runs.copy[r] / runs.migrate[r], 3));
  }
  const double rows_per_s = static_cast<double>(rows) / migrate_s;
  const double copy_rows_per_s = static_cast<double>(rows) / copy_s;
  const double same_rows_per_s = static_cast<double>(rows) / rows_copy_s;
  return json{{"rows", rows},
              {"dim", static_cast<int>(source.snap.dimension)},
              {"records_with_metadata", with_metadata},
              {"records_with_document", with_document},
              {"rows_per_s", bench_support::round_to(rows_per_s, 0)},
              {"copy_rows_per_s", bench_support::round_to(copy_rows_per_s, 0)},
              {"ratio", bench_support::round_to(rows_per_s / copy_rows_per_s, 3)},
              {"copy_same_rows_rows_per_s", bench_support::round_to(same_rows_per_s, 0)},
              {"ratio_same_rows", bench_support::round_to(rows_per_s / same_rows_per_s, 3)},
              {"read_s", source.read_s},
              {"copy_same_rows_s", rows_copy_s},
              {"migrate_s", migrate_s},
              {"copy_s", copy_s},
              {"repeats", options.repeats},
              {"warmup", options.warmup},
              {"writers", options.writers},
              {"rows_per_s_runs", rates(runs.migrate)},
              {"copy_rows_per_s_runs", rates(runs.copy)},
              {"copy_same_rows_rows_per_s_runs", rates(runs.same)},
              {"ratio_runs", ratio_runs},
              {"migrate_timings", loads.migrate_timings()},
              {"chroma_schema", source.dir->schema_version()},
              {"label_map_format", source.snap.stats.label_map_format},
              {"machine", bench_machine_info()}};
}

}  // namespace

Result<json> bench_migrate(const std::string& admin_conninfo, const BenchMigrateOptions& options) {
  if (options.repeats < 1 || options.repeats > 20) {
    return fail(ErrorCode::invalid_argument, fmt::format("repeats must be from 1 to 20, not {}", options.repeats));
  }
  if (options.warmup < 0 || options.warmup > 5) {
    return fail(ErrorCode::invalid_argument, fmt::format("warm-up rounds must be from 0 to 5, not {}", options.warmup));
  }
  VS_TRY_ASSIGN(const Source source, read_source(options));
  bench_support::ScratchDatabase scratch(admin_conninfo, fmt::format("vstore_bench_migrate_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, scratch.create());
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY_ASSIGN(const Config cfg,
                prepare_database(conn, conninfo, scratch.name(), static_cast<int>(source.snap.dimension)));
  const RemoveDataDir remove_data_dir{cfg.data_dir};
  MigrateLoads loads(conn, conninfo, cfg, source, options);
  VS_TRY_ASSIGN(const MigrateRuns runs,
                time_rounds(scratch, conn, Connection::quote_ident(cfg.table), loads, options));
  return migrate_report(source, runs, loads, options);
}

}  // namespace vstore
