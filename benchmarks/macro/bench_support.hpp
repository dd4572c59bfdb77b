// SPDX-License-Identifier: Apache-2.0
// Internal to the benchmarks (and migrate's timings): a stopwatch, a median, the conninfo of another
// database on the same server, and a scratch database dropped when it goes out of scope.
#pragma once

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::bench_support {

/// Seconds since `start` on the steady clock.
[[nodiscard]] inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The median of `runs` (the upper one of an even count); `runs` must not be empty.
[[nodiscard]] inline double median(std::vector<double> runs) {
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

/// `conninfo` pointed at database `dbname`: the path of a URI, else a trailing `dbname=` (in a
/// key=value conninfo the last occurrence of a keyword wins).
[[nodiscard]] std::string with_dbname(const std::string& conninfo, const std::string& dbname);

/// Creates a database (create()) and drops it WITH (FORCE) on destruction, also after a failure.
class ScratchDatabase {
 public:
  ScratchDatabase(std::string admin_conninfo, std::string name)
      : m_admin(std::move(admin_conninfo)), m_name(std::move(name)) {}
  ScratchDatabase(const ScratchDatabase&) = delete;
  ScratchDatabase& operator=(const ScratchDatabase&) = delete;
  ~ScratchDatabase();
  /// Creates it; returns its conninfo. Errors: as the server's CREATE DATABASE, with the name.
  [[nodiscard]] Result<std::string> create();
  [[nodiscard]] const std::string& name() const { return m_name; }

 private:
  std::string m_admin;
  std::string m_name;
  bool m_created = false;
};

}  // namespace vstore::bench_support
