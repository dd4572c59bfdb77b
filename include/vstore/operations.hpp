// SPDX-License-Identifier: Apache-2.0
// The operations log (schema migration 7, table vstore_operations): one row per run of
// migrate-chroma, reindex, validate, cleanup-chroma and restore-chroma, so that a later command
// (cleanup-chroma, health) can ask what happened last, whichever host or process ran it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/result.hpp"

namespace vstore {

/// One run as the log holds it. Times are UTC ISO 8601 (`2026-12-07T06:41:02.123456Z`).
struct OperationRecord {
  std::int64_t id = 0;
  std::string table;
  std::string kind;         ///< "migrate-chroma", "reindex", "validate", "cleanup-chroma", "restore-chroma"
  std::string started_at;
  std::optional<std::string> finished_at;  ///< absent while running (or after a kill)
  std::string status;       ///< "running", "succeeded", "failed"
  std::optional<bool> passed;  ///< a validation's verdict; absent for other kinds
  std::string report_path;  ///< the report file the run wrote, or empty
  nlohmann::json summary = nlohmann::json::object();
};

/// Records the start of a run of `kind` on the configured table. Returns its id.
/// Errors: conflict (the schema lacks migration 7: run `vstore schema up`), unavailable.
[[nodiscard]] Result<std::int64_t> begin_operation(const std::string& conninfo, const Config& config,
                                                   const std::string& kind);

/// Records the end of run `id`: `succeeded` or not, a validation's verdict, the report's path
/// and a short summary (counts, not rows).
[[nodiscard]] Result<void> finish_operation(const std::string& conninfo, std::int64_t id, bool succeeded,
                                            std::optional<bool> passed, const std::string& report_path,
                                            const nlohmann::json& summary);

/// The newest finished run of `kind` on the configured table (by finish time), if any.
/// `succeeded_only` skips failed runs. Errors: conflict (no migration 7), unavailable.
[[nodiscard]] Result<std::optional<OperationRecord>> latest_operation(const std::string& conninfo,
                                                                      const Config& config, const std::string& kind,
                                                                      bool succeeded_only = false);

/// The time of the newest vector write that a validation would have to see: the newest finished
/// migrate-chroma or reindex run, the newest dual-mode write applied to the secondary
/// (vstore_dual_stats.last_write_at) and the newest write still queued in the outbox. UTC ISO
/// 8601, or nullopt when there was none.
[[nodiscard]] Result<std::optional<std::string>> last_vector_write(const std::string& conninfo, const Config& config);

}  // namespace vstore
