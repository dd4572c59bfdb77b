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
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "macro/bench_support.hpp"
#include "chroma/chroma_dir.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "macro/bench.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;

using bench_support::median;
using bench_support::seconds_since;

}  // namespace

Result<json> bench_migrate(const std::string& admin_conninfo, const BenchMigrateOptions& options) {
  if (options.repeats < 1 || options.repeats > 20) {
    return fail(ErrorCode::invalid_argument, fmt::format("repeats must be from 1 to 20, not {}", options.repeats));
  }
  if (options.warmup < 0 || options.warmup > 5) {
    return fail(ErrorCode::invalid_argument, fmt::format("warm-up rounds must be from 0 to 5, not {}", options.warmup));
  }
  // Read once: the vectors for the bare side, and the read time on its own.
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
  VS_TRY_ASSIGN(chroma::Snapshot snap, dir.read(*chosen));
  const double read_s = seconds_since(t_read);
  const std::size_t rows = snap.records.size();
  if (rows == 0) return fail(ErrorCode::invalid_argument, "the collection is empty");
  const int dim = static_cast<int>(snap.dimension);
  // What the records carry besides id and vector (what the migration writes on top of the bare side's payload).
  std::int64_t with_metadata = 0, with_document = 0;
  for (const auto& rec : snap.records) {
    with_metadata += rec.metadata.empty() ? 0 : 1;
    with_document += rec.document ? 1 : 0;
  }

  bench_support::ScratchDatabase scratch(admin_conninfo, fmt::format("vstore_bench_migrate_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, scratch.create());
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY(conn.exec("CREATE EXTENSION IF NOT EXISTS vector"));
  VS_TRY(conn.exec(fmt::format("CREATE TABLE bare_copy (uri text PRIMARY KEY, embedding vector({}))", dim)));
  Config cfg;
  cfg.database_url = conninfo;
  cfg.embedding_dim = dim;
  cfg.data_dir = std::filesystem::temp_directory_path() / scratch.name();
  cfg.pgvector.index_type = IndexType::none;  // no vector index: all sides load index-free
  VS_TRY(schema_up(conninfo, cfg));
  const std::string table = Connection::quote_ident(cfg.table);
  VS_TRY(conn.exec(fmt::format("CREATE TABLE bare_rows (LIKE {} INCLUDING ALL)", table)));
  for (const char* t : {"bare_copy", "bare_rows", cfg.table.c_str()}) {
    VS_TRY(conn.exec(fmt::format("ALTER TABLE {} SET (autovacuum_enabled = false)", Connection::quote_ident(t))));
  }
  struct RemoveDataDir {
    std::filesystem::path path;
    ~RemoveDataDir() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  } remove_data_dir{cfg.data_dir};

  // (1) bare binary COPY of the same vectors, (uri, embedding), into a table with only a primary key.
  auto bare_copy = [&]() -> Result<double> {
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t from = 0; from < rows; from += options.batch_size) {
      const std::size_t to = std::min(rows, from + options.batch_size);
      // Streamed in the slices the migration streams, so both sides overlap encoding and storing.
      std::size_t next = from;
      VS_TRY(conn.copy_stream("COPY bare_copy FROM STDIN (FORMAT binary)", [&](pg::CopyWriter& writer) -> Result<bool> {
        for (; next < to && writer.size() < pg::k_copy_slice_bytes; ++next) {
          writer.begin_row(2);
          writer.bytes_field(snap.records[next].id);
          writer.vector_field(snap.records[next].vector);
        }
        return next < to;
      }));
    }
    return seconds_since(t0);
  };
  // (2) the migration, whole: reading the directory, classification, COPY, checkpoints.
  MigrateOptions mig;
  mig.from_dir = options.from_dir;
  mig.collection = chosen->name;
  mig.insert_missing = true;
  mig.model = "bench";
  mig.batch_size = options.batch_size;
  mig.writers = options.writers;
  mig.progress = options.progress;
  json migrate_timings;
  auto migration = [&]() -> Result<double> {
    const auto t0 = std::chrono::steady_clock::now();
    VS_TRY_ASSIGN(MigrateReport report, migrate_chroma(conninfo, cfg, mig));
    const double s = seconds_since(t0);
    if (report.collections.empty() || report.collections[0].migrated != static_cast<std::int64_t>(rows)) {
      return fail(ErrorCode::internal,
                  fmt::format("the benchmark migration moved {} of {} rows",
                              report.collections.empty() ? 0 : report.collections[0].migrated, rows));
    }
    migrate_timings = report.collections[0].timings;
    return s;
  };
  // (3) like for like: the rows the migration wrote, as bytes read back from its first run (no
  // encoding on this side at all), in one bare binary COPY into a table of the same definition
  // (primary key and B-tree indexes) — what writing these rows costs without reading Chroma.
  std::string rows_bytes;
  auto same_rows = [&]() -> Result<double> {
    const auto t0 = std::chrono::steady_clock::now();
    VS_TRY_ASSIGN(const std::int64_t copied, conn.copy_in("COPY bare_rows FROM STDIN (FORMAT binary)", rows_bytes));
    const double s = seconds_since(t0);
    if (copied != static_cast<std::int64_t>(rows)) {
      return fail(ErrorCode::internal, fmt::format("the like-for-like COPY wrote {} of {} rows", copied, rows));
    }
    return s;
  };

  // Every repeat runs the three loads, each into an empty table after a CHECKPOINT (needs
  // superuser or pg_checkpoint; best effort), in an order that rotates with the repeat (the
  // first repeat's order runs the migration before the like-for-like COPY, which needs its rows).
  std::vector<double> copy_runs, migrate_runs, same_runs;
  // The warm-up rounds come first, in the first repeat's order, and are not counted: the first
  // loads after the server starts pay for WAL segments it has not made yet and for memory the
  // machine has not handed it yet, on whichever side happens to run first.
  for (int r = -options.warmup; r < options.repeats; ++r) {
    const bool timed = r >= 0;
    for (int k = 0; k < 3; ++k) {
      const int which = (k + std::max(r, 0)) % 3;
      if (which == 0) {
        VS_TRY(conn.exec("TRUNCATE bare_copy"));
        (void)conn.exec("CHECKPOINT");
        VS_TRY_ASSIGN(const double s, bare_copy());
        if (timed) copy_runs.push_back(s);
      } else if (which == 1) {
        VS_TRY(conn.exec(fmt::format("TRUNCATE {}; DROP TABLE IF EXISTS vstore_chroma_checkpoints", table)));
        (void)conn.exec("CHECKPOINT");
        VS_TRY_ASSIGN(const double s, migration());
        if (timed) migrate_runs.push_back(s);
        if (rows_bytes.empty()) {
          VS_TRY_ASSIGN(rows_bytes, conn.copy_out(fmt::format("COPY {} TO STDOUT (FORMAT binary)", table)));
        }
      } else {
        VS_TRY(conn.exec("TRUNCATE bare_rows"));
        (void)conn.exec("CHECKPOINT");
        VS_TRY_ASSIGN(const double s, same_rows());
        if (timed) same_runs.push_back(s);
      }
    }
  }
  const double copy_s = median(copy_runs);
  const double migrate_s = median(migrate_runs);
  const double rows_copy_s = median(same_runs);
  auto rates = [&](const std::vector<double>& runs) {
    json out = json::array();
    for (double s : runs) out.push_back(std::round(static_cast<double>(rows) / s));
    return out;
  };
  json ratio_runs = json::array();
  for (std::size_t r = 0; r < migrate_runs.size(); ++r) {
    ratio_runs.push_back(std::round(1000.0 * copy_runs[r] / migrate_runs[r]) / 1000.0);
  }

  const double rows_per_s = static_cast<double>(rows) / migrate_s;
  const double copy_rows_per_s = static_cast<double>(rows) / copy_s;
  const double same_rows_per_s = static_cast<double>(rows) / rows_copy_s;
  return json{{"rows", rows},
              {"dim", dim},
              {"records_with_metadata", with_metadata},
              {"records_with_document", with_document},
              {"rows_per_s", std::round(rows_per_s)},
              {"copy_rows_per_s", std::round(copy_rows_per_s)},
              {"ratio", std::round(1000.0 * rows_per_s / copy_rows_per_s) / 1000.0},
              {"copy_same_rows_rows_per_s", std::round(same_rows_per_s)},
              {"ratio_same_rows", std::round(1000.0 * rows_per_s / same_rows_per_s) / 1000.0},
              {"read_s", read_s},
              {"copy_same_rows_s", rows_copy_s},
              {"migrate_s", migrate_s},
              {"copy_s", copy_s},
              {"repeats", options.repeats},
              {"warmup", options.warmup},
              {"writers", options.writers},
              {"rows_per_s_runs", rates(migrate_runs)},
              {"copy_rows_per_s_runs", rates(copy_runs)},
              {"copy_same_rows_rows_per_s_runs", rates(same_runs)},
              {"ratio_runs", ratio_runs},
              {"migrate_timings", migrate_timings},
              {"chroma_schema", dir.schema_version()},
              {"label_map_format", snap.stats.label_map_format},
              {"machine", bench_machine_info()}};
}

}  // namespace vstore
