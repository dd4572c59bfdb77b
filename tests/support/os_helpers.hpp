// SPDX-License-Identifier: Apache-2.0
// Test support: a temporary directory removed at scope end, and a process's thread count.
#pragma once

#include <filesystem>
#include <string>

namespace vstore::testing {

/// A fresh directory under the system temporary directory (`path` is empty if it could not be
/// made), removed with everything in it by the destructor.
struct TempDir {
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path path;
};

/// The number of threads of a process: the entries of `proc`/task (`/proc/self` by default,
/// or `/proc/PID`); -1 when it cannot be read.
int task_count(const std::string& proc = "/proc/self");

}  // namespace vstore::testing
