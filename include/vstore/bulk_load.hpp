// SPDX-License-Identifier: Apache-2.0
/// BulkLoad: a load that drops vstore's vector index and builds it once afterwards, and the
/// repair of what a killed one left behind (a dropped index, an orphaned build still running).
#pragma once

#include <memory>
#include <string>

#include "vstore/config.hpp"
#include "vstore/result.hpp"
#include "vstore/schema.hpp"

namespace vstore {

/// A bulk load of the table in progress. While it lives it holds the table's bulk-load lock (a
/// session advisory lock on a connection of its own, idle, so that it ends with the process: a
/// killed load leaves no lock behind, although the server may still be running its index build).
/// Move-only; not thread-safe. Destroying it without finish() releases the lock and leaves the
/// index dropped: the next command that writes vectors, or `vstore schema up`, builds it.
class BulkLoad {
 public:
  /// Takes the lock, then repairs what a killed run left (cancels its index build that the
  /// server is still running, drops an invalid index it left), then drops the vector index
  /// migration 3 created (an index the application made is never touched). Errors: conflict
  /// (another vstore bulk load of the table holds the lock), unavailable, internal.
  [[nodiscard]] static Result<BulkLoad> begin(const std::string& conninfo, const Config& config);

  BulkLoad(BulkLoad&&) noexcept;
  BulkLoad& operator=(BulkLoad&&) noexcept;
  ~BulkLoad();

  /// The index begin() dropped; empty when there was none to drop.
  [[nodiscard]] const std::string& dropped_index() const;

  /// Releases the lock and builds the recorded vector index when it is missing
  /// (restore_vector_index()); returns whether it built one. Call at most once.
  [[nodiscard]] Result<bool> finish(const IndexBuildProgress& progress = {});

 private:
  struct Impl;
  explicit BulkLoad(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> m_impl;
};

/// At the start of a command that writes vectors: unless a bulk load of the table is running
/// (it builds the index itself), repairs what a killed one left: cancels an orphaned index build
/// of the recorded vector index, drops an invalid index it left, and builds that index when it
/// is missing. Returns whether it built the index. Errors: unavailable, internal.
[[nodiscard]] Result<bool> repair_vector_index(const std::string& conninfo, const Config& config,
                                               const IndexBuildProgress& progress = {});

}  // namespace vstore
