// SPDX-License-Identifier: Apache-2.0
/// `vstore bench reindex`: reindex() throughput against the embedding engine's own on the same
/// texts in the same run.
#pragma once

#include <cstdint>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "macro/bench.hpp"
#include "vstore/config.hpp"
#include "vstore/embedder.hpp"
#include "vstore/result.hpp"

namespace vstore {

struct BenchReindexOptions {
  std::filesystem::path data;  ///< article JSON Lines file (the Reuters articles)
  std::int64_t limit = 0;      ///< articles read from it. Default 0 = all. Range 0.. .
  int batch_size = 64;         ///< reindex --batch-size and the engine's texts per embed() call. Range 1..10000.
  BenchProgress progress;      ///< may be empty
};

/// In a database of its own (`vstore_bench_reindex_<pid>`, created on the server of
/// `admin_conninfo` and dropped at the end, also on failure): schema_up (the configured vector
/// index, as a live table has), the articles COPYed without vectors, then
///   1. the engine alone: every article's document_text() through `embedder` in batches of
///      batch_size (engine_rate_per_s);
///   2. reindex() of the table with the same embedder and batch size (reindex_rate_per_s);
/// and their ratio (the figure: writing should not hold embedding back, target >= 0.9). The
/// vectors reindex stored are checked against the engine's (min_cosine). Returns {articles,
/// batch_size, model, engine_s, engine_rate_per_s, reindex_s, reindex_rate_per_s, ratio,
/// processed, skipped, failed, min_cosine, index, machine, server, version}. Errors: not_found
/// (data), invalid_argument (an option out of range), the server's and the embedder's. Not
/// thread-safe with other bench_* calls.
[[nodiscard]] Result<nlohmann::json> bench_reindex(const std::string& admin_conninfo, const Config& config,
                                                   Embedder& embedder, const BenchReindexOptions& options);

}  // namespace vstore
