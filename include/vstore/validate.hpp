// SPDX-License-Identifier: Apache-2.0
/// validate and tune (issue 24, steps 4 and 7 of the deployment plan): how far ChromaDB's and
/// pgvector's answers agree, how far pgvector's index answers agree with exact search, and the
/// smallest ef_search (or probes) that reaches a recall target.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/filter.hpp"
#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// Called after each query: queries done and the total.
using QueryProgress = std::function<void(std::int64_t done, std::int64_t total)>;

/// What validate_stores() runs.
struct ValidateOptions {
  /// Query texts, embedded with the configured embedder. Empty: `sample` stored articles are
  /// chosen (by `seed`) and their titles are the queries.
  std::vector<std::string> queries;
  int sample = 50;           ///< articles sampled when `queries` is empty. Default 50. Range 1..10000.
  std::uint64_t seed = 42;   ///< the sample's seed: the same seed and table give the same sample. Default 42.
  int top_k = 10;            ///< Default 10. Range 1..1000 (what pgvector's index can answer).
  double min_overlap = 0.95; ///< the pass mark of overlap@k (or recall@k without Chroma). Default 0.95. Range 0..1.
  /// Compare with the Chroma server of CHROMA_URL (collection CHROMA_COLLECTION). False, or
  /// CHROMA_URL unset: that comparison is skipped and reported as skipped. Default true.
  bool chroma = true;
  QueryProgress progress;    ///< optional
};

/// The outcome: `report` is the whole JSON report (docs/cli.md "vstore validate"), also
/// written to `report_path`.
struct ValidateResult {
  nlohmann::json report;
  bool passed = false;
  /// Why it did not pass, one sentence each naming the figure, its value and the mark.
  std::vector<std::string> failures;
  std::string report_path;
};

/// Runs every query against pgvector through its index (as search() answers it) and exactly,
/// and against Chroma when configured, each once without a filter and once with the topic
/// filter the application's call sites use ({"topic": T}: the sampled article's own topic, or
/// for a query from a file the topic of its nearest article; queries without one run
/// unfiltered only). Reports per comparison the mean figures, unfiltered and filtered apart,
/// and the 5 worst queries; writes the JSON report to
/// `<data_dir>/reports/validate-<UTC time to the microsecond>Z-<pid>.json` (a new file, never
/// an existing one) and records the run in the operations log (kind "validate", `passed`, the
/// report's path, the headline figures), also when it did not pass. `conninfo` reaches the
/// pgvector table of `config`. Errors: invalid_argument (an option out of range, no query
/// text, the table has no title column to sample), not_found (no stored vector to sample,
/// the Chroma collection), conflict (schema older than migration 7), unavailable, timeout.
/// A run that fails with an error is logged as failed. Not thread-safe with itself on one table
/// only in that two runs interleave their log rows; each writes its own report.
[[nodiscard]] Result<ValidateResult> validate_stores(const std::string& conninfo, const Config& config,
                                                     const ValidateOptions& options);

/// What tune_index() sweeps.
struct TuneOptions {
  double target_recall = 0.95;        ///< Default 0.95. Range 0..1.
  std::optional<FilterNode> where;    ///< measured besides the unfiltered case when set
  int sample = 50;                    ///< as ValidateOptions::sample. Default 50. Range 1..10000.
  std::uint64_t seed = 42;            ///< Default 42.
  int top_k = 10;                     ///< Default 10. Range 1..1000.
  /// The settings to measure, ascending. Empty: HNSW 10, 20, 40, 80, 120, 200, 400, 800; IVFFlat
  /// 1, 2, 4, ... up to and with the configured lists (PGVECTOR_IVFFLAT_LISTS).
  std::vector<int> settings;
  /// Query vectors given directly (benchmarks): used instead of sampled titles when not empty.
  std::vector<Embedding> query_vectors;
  QueryProgress progress;             ///< optional; counts settings
};

/// One measured setting.
struct TuneCase {
  double recall_at_k = 0;  ///< mean over the queries
  double p50_ms = 0;       ///< of one search() call, timed in this process
  double p95_ms = 0;
};
struct TuneRow {
  int value = 0;
  TuneCase unfiltered;
  std::optional<TuneCase> filtered;  ///< with TuneOptions::where
};

struct TuneResult {
  std::string index_type;   ///< "hnsw" or "ivfflat"
  std::string parameter;    ///< "ef_search" or "probes"
  std::string env_name;     ///< PGVECTOR_HNSW_EF_SEARCH or PGVECTOR_IVFFLAT_PROBES
  int current = 0;          ///< the configured value
  std::int64_t queries = 0;
  std::vector<TuneRow> rows;
  /// The smallest value whose recall reaches the target in every measured case; nullopt when none does.
  std::optional<int> recommended;
  [[nodiscard]] nlohmann::json to_json(const TuneOptions& options) const;
};

/// Measures recall@k against exact search (search_exact) and latency for each setting over
/// the sampled (or given) queries, unfiltered and with `where`, on the pgvector table of
/// `config` at `conninfo`. Reads only. Errors: invalid_argument (options, no vector index:
/// PGVECTOR_INDEX_TYPE=none, a filter no stored row matches), not_found (nothing to sample),
/// unavailable, timeout.
[[nodiscard]] Result<TuneResult> tune_index(const std::string& conninfo, const Config& config,
                                            const TuneOptions& options);

/// Sets `name=value` in the .env file at `path`: replaces the first line that assigns `name`
/// (also as `export name=...`), drops later ones, keeps every other byte as it was, and appends
/// the line when none assigned it (a missing file is created). Written to a temporary file
/// beside it and renamed over it, so a reader sees the old or the new file, never a half.
/// Errors: invalid_argument (a name that is not an identifier), unavailable (I/O, naming the path).
[[nodiscard]] Result<void> write_env_setting(const std::filesystem::path& path, const std::string& name,
                                             const std::string& value);

}  // namespace vstore
