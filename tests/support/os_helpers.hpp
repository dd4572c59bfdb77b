// SPDX-License-Identifier: Apache-2.0
// Test support: a temporary directory removed at scope end, a process's thread count, and a
// loopback port held by a listening socket.
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

/// A socket listening on a kernel-chosen 127.0.0.1 port (never accepting), closed by the
/// destructor: a port some other process has taken.
class HeldPort {
 public:
  HeldPort();
  ~HeldPort();
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;
  [[nodiscard]] bool ok() const { return m_ok; }
  [[nodiscard]] int port() const { return m_port; }

 private:
  int m_fd = -1;
  bool m_ok = false;
  int m_port = 0;
};

}  // namespace vstore::testing
