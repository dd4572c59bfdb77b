// SPDX-License-Identifier: Apache-2.0
// `vstore bench migrate`: migrate_chroma() throughput against a bare binary COPY of the same vectors.
//
// Phases: read the directory once (timed as read_s; gives the vectors for the bare side),
// create a scratch database, bare COPY of (uri, embedding) batch by batch into a table with
// only a primary key, then schema_up without a vector index + migrate_chroma() timed whole,
// then (like for like) the rows the migration wrote, read back as COPY bytes, in one bare COPY
// into a table of the same definition. All loads are free of a vector index, so the comparison
// is of the write paths, not of HNSW upkeep; each starts after a CHECKPOINT.
#include <unistd.h>

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "api/bench_support.hpp"
#include "chroma/chroma_dir.hpp"
#include "pg/pg_binary.hpp"
#include "pg/pg_conn.hpp"
#include "vstore/bench.hpp"
#include "vstore/migrate.hpp"
#include "vstore/schema.hpp"

namespace vstore {
namespace {

using nlohmann::json;
using pg::Connection;

using bench_support::seconds_since;

}  // namespace

Result<json> bench_migrate(const std::string& admin_conninfo, const BenchMigrateOptions& options) {
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

  bench_support::ScratchDatabase scratch(admin_conninfo, fmt::format("vstore_bench_migrate_{}", getpid()));
  VS_TRY_ASSIGN(const std::string conninfo, scratch.create());

  // (1) bare binary COPY of the same vectors.
  VS_TRY_ASSIGN(Connection conn, Connection::connect(conninfo));
  VS_TRY(conn.exec("CREATE EXTENSION IF NOT EXISTS vector"));
  VS_TRY(conn.exec(fmt::format("CREATE TABLE bare_copy (uri text PRIMARY KEY, embedding vector({}))", dim)));
  (void)conn.exec("CHECKPOINT");
  const auto t_copy = std::chrono::steady_clock::now();
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
    if (options.progress) options.progress("copy", static_cast<std::int64_t>(to), static_cast<std::int64_t>(rows));
  }
  const double copy_s = seconds_since(t_copy);

  // (2) the migration, whole.
  Config cfg;
  cfg.database_url = conninfo;
  cfg.embedding_dim = dim;
  cfg.data_dir = std::filesystem::temp_directory_path() / scratch.name();
  cfg.pgvector.index_type = IndexType::none;  // no vector index: all sides load index-free
  VS_TRY(schema_up(conninfo, cfg));
  MigrateOptions mig;
  mig.from_dir = options.from_dir;
  mig.collection = chosen->name;
  mig.insert_missing = true;
  mig.model = "bench";
  mig.batch_size = options.batch_size;
  mig.progress = options.progress;
  (void)conn.exec("CHECKPOINT");
  const auto t_mig = std::chrono::steady_clock::now();
  VS_TRY_ASSIGN(MigrateReport report, migrate_chroma(conninfo, cfg, mig));
  const double migrate_s = seconds_since(t_mig);
  std::error_code ec;
  std::filesystem::remove_all(cfg.data_dir, ec);
  if (report.collections.empty() || report.collections[0].migrated != static_cast<std::int64_t>(rows)) {
    return fail(ErrorCode::internal, fmt::format("the benchmark migration moved {} of {} rows",
                                                 report.collections.empty() ? 0 : report.collections[0].migrated, rows));
  }
  // (3) like for like: the rows the migration wrote, as bytes read back beforehand (no encoding
  // on this side at all), in one bare binary COPY into a table of the same definition (primary
  // key and B-tree indexes) — what writing these rows costs without reading Chroma.
  const std::string table = Connection::quote_ident(cfg.table);
  VS_TRY_ASSIGN(const std::string rows_bytes, conn.copy_out(fmt::format("COPY {} TO STDOUT (FORMAT binary)", table)));
  VS_TRY(conn.exec(fmt::format("CREATE TABLE bare_rows (LIKE {} INCLUDING ALL)", table)));
  (void)conn.exec("CHECKPOINT");  // needs superuser or pg_checkpoint; best effort
  const auto t_rows = std::chrono::steady_clock::now();
  VS_TRY_ASSIGN(const std::int64_t rows_copied, conn.copy_in("COPY bare_rows FROM STDIN (FORMAT binary)", rows_bytes));
  const double rows_copy_s = seconds_since(t_rows);
  if (rows_copied != static_cast<std::int64_t>(rows)) {
    return fail(ErrorCode::internal, fmt::format("the like-for-like COPY wrote {} of {} rows", rows_copied, rows));
  }

  const double rows_per_s = static_cast<double>(rows) / migrate_s;
  const double copy_rows_per_s = static_cast<double>(rows) / copy_s;
  const double same_rows_per_s = static_cast<double>(rows) / rows_copy_s;
  return json{{"rows", rows},
              {"dim", dim},
              {"rows_per_s", std::round(rows_per_s)},
              {"copy_rows_per_s", std::round(copy_rows_per_s)},
              {"ratio", std::round(1000.0 * rows_per_s / copy_rows_per_s) / 1000.0},
              {"copy_same_rows_rows_per_s", std::round(same_rows_per_s)},
              {"ratio_same_rows", std::round(1000.0 * rows_per_s / same_rows_per_s) / 1000.0},
              {"read_s", read_s},
              {"copy_same_rows_s", rows_copy_s},
              {"migrate_s", migrate_s},
              {"copy_s", copy_s},
              {"migrate_timings", report.collections[0].timings},
              {"chroma_schema", dir.schema_version()},
              {"label_map_format", snap.stats.label_map_format},
              {"machine", bench_machine_info()}};
}

}  // namespace vstore
