// SPDX-License-Identifier: Apache-2.0
// Test support: TempDir and task_count().
#include "support/os_helpers.hpp"

#include <dirent.h>
#include <stdlib.h>

#include <system_error>

namespace vstore::testing {

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "vstore-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) != nullptr) path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path.empty()) std::filesystem::remove_all(path, ec);
}

int task_count(const std::string& proc) {
  int n = 0;
  DIR* dir = opendir((proc + "/task").c_str());
  if (dir == nullptr) return -1;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

}  // namespace vstore::testing
