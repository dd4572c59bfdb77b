// SPDX-License-Identifier: Apache-2.0
// Test support: TempDir and task_count().
#include "support/os_helpers.hpp"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
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

HeldPort::HeldPort() {
  m_fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  m_ok = m_fd >= 0 && bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 && listen(m_fd, 4) == 0;
  socklen_t len = sizeof addr;
  m_ok = m_ok && getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  m_port = ntohs(addr.sin_port);
}

HeldPort::~HeldPort() {
  if (m_fd >= 0) close(m_fd);
}

}  // namespace vstore::testing
