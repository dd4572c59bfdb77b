// SPDX-License-Identifier: Apache-2.0
// Test support implementation: starting, probing and stopping the Chroma server process.
#include "support/chroma_fixture.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "chroma/chroma_http.hpp"

namespace vstore::testing {
namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "chroma test fixture: %s\n", why.c_str());
  std::fflush(stderr);
  std::abort();
}

// A program set-up installed (scripts/setup_chroma_server.sh), named by `variable`.
std::string installed(const char* variable) {
  const char* path = std::getenv(variable);
  if (path == nullptr || *path == '\0') die(fmt::format("{} is not set (run the tests through ctest)", variable));
  if (!std::filesystem::exists(path)) die(fmt::format("{} does not exist; run scripts/setup.sh", path));
  return path;
}

}  // namespace

int free_loopback_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) die("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind() to a free port failed");
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string unique_collection(const std::string& prefix) {
  static std::atomic<int> next{0};
  return fmt::format("{}-{}-{}", prefix, getpid(), next++);
}

ChromaServer::ChromaServer(ChromaFlavor flavor, std::string token, std::string token_header, int first_port)
    : m_flavor(flavor), m_token(std::move(token)), m_token_header(std::move(token_header)) {
  std::string tmpl = (std::filesystem::temp_directory_path() / "vstore-chroma-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) die("mkdtemp failed");
  m_root = tmpl;
  m_port = first_port > 0 ? first_port : free_loopback_port();
  constexpr int k_attempts = 5;
  for (int attempt = 1; attempt <= k_attempts; ++attempt) {
    if (launch() == Launch::up) return;
    std::fprintf(stderr, "chroma test fixture: port %d was taken; trying another\n", m_port);
    m_port = free_loopback_port();
  }
  die(fmt::format("the chroma server found its port taken {} times; see {}/server.log", k_attempts, m_root));
}

ChromaServer::~ChromaServer() {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(m_root, ec);
}

namespace {
ChromaServer* g_shared = nullptr;

class StopSharedServer : public ::testing::Environment {
 public:
  void TearDown() override {
    delete g_shared;
    g_shared = nullptr;
  }
};
}  // namespace

ChromaServer& ChromaServer::shared() {
  static std::once_flag once;
  std::call_once(once, [] {
    g_shared = new ChromaServer();
    ::testing::AddGlobalTestEnvironment(new StopSharedServer());
  });
  return *g_shared;
}

std::string ChromaServer::url() const { return fmt::format("http://127.0.0.1:{}", m_port); }

void ChromaServer::start() {
  if (m_pid > 0) return;
  // A restart keeps its port (clients hold the URL); the old process's socket may linger.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (launch() == Launch::port_taken) {
    if (std::chrono::steady_clock::now() > deadline) {
      die(fmt::format("port {} stayed taken for 10 s; see {}/server.log", m_port, m_root));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

namespace {

// The bytes of `path` from `offset` on ("" when it cannot be read).
std::string file_from(const std::string& path, std::uintmax_t offset) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return "";
  std::string text;
  if (std::fseek(f, static_cast<long>(offset), SEEK_SET) == 0) {
    char buffer[4096];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) text.append(buffer, n);
  }
  std::fclose(f);
  return text;
}

// What the servers print when their port is taken: the Rust server "Address 127.0.0.1:P is not
// available" (exiting 0), uvicorn "[Errno 98] ... address already in use".
bool says_port_taken(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text.find("is not available") != std::string::npos || text.find("already in use") != std::string::npos;
}

}  // namespace

ChromaServer::Launch ChromaServer::launch() {
  const bool python = m_flavor == ChromaFlavor::python_v1;
  const bool pypi = python || m_flavor == ChromaFlavor::rust_v2_1_5;
  const std::string program = m_flavor == ChromaFlavor::rust_v2_1_5
                                  ? installed("VSTORE_TEST_CHROMA_PY") + "/1.5.9/bin/chroma"
                                  : installed(python ? "VSTORE_TEST_CHROMA_PY_V1" : "VSTORE_TEST_CHROMA_CLI");
  if (!std::filesystem::exists(program)) die(fmt::format("{} does not exist; run scripts/setup.sh", program));
  const std::string data = m_root + "/data";
  const std::string log = m_root + "/server.log";
  const std::string port = std::to_string(m_port);
  std::error_code size_error;
  const std::uintmax_t log_start =
      std::filesystem::exists(log) ? std::filesystem::file_size(log, size_error) : std::uintmax_t{0};
  const pid_t pid = fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    setpgid(0, 0);
    if (chdir(m_root.c_str()) != 0) _exit(126);  // the Python server writes chroma.log into its cwd
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    if (pypi) {
      setenv("ANONYMIZED_TELEMETRY", "False", 1);  // no calls out of the machine
      if (!m_token.empty()) {
        setenv("CHROMA_SERVER_AUTHN_PROVIDER", "chromadb.auth.token_authn.TokenAuthenticationServerProvider", 1);
        setenv("CHROMA_SERVER_AUTHN_CREDENTIALS", m_token.c_str(), 1);
        setenv("CHROMA_AUTH_TOKEN_TRANSPORT_HEADER", m_token_header.c_str(), 1);
      }
      execl(program.c_str(), program.c_str(), "run", "--path", data.c_str(), "--host", "127.0.0.1", "--port",
            port.c_str(), static_cast<char*>(nullptr));
    } else {
      execlp("node", "node", program.c_str(), "run", "--path", data.c_str(), "--host", "127.0.0.1", "--port",
             port.c_str(), static_cast<char*>(nullptr));
    }
    _exit(127);
  }
  m_pid = pid;
  chroma::HttpOptions options;
  options.base_url = url();
  options.connect_timeout = std::chrono::milliseconds(500);
  // Short, so that a port some other process listens on (and never answers) does not hold the
  // loop past the server's own exit.
  options.io_timeout = std::chrono::milliseconds(2000);
  auto http = chroma::ChromaHttp::create(options);
  if (!http) die(http.error().to_string());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(m_pid, &status, WNOHANG) == m_pid) {
      m_pid = -1;
      if (says_port_taken(file_from(log, log_start))) return Launch::port_taken;
      die(fmt::format("the chroma server exited during start-up (status {}); see {}", status, log));
    }
    auto answer = (*http)->probe(python ? "/api/v1/heartbeat" : "/api/v2/heartbeat");
    if (answer && answer->status == 200) return Launch::up;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop();
  die(fmt::format("the chroma server on port {} did not answer its heartbeat within 60 s; see {}", m_port, log));
}

void ChromaServer::stop() {
  if (m_pid <= 0) return;
  kill(-m_pid, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int status = 0;
  while (waitpid(m_pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-m_pid, SIGKILL);
      waitpid(m_pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  m_pid = -1;
}

void ChromaServer::kill_now() {
  if (m_pid <= 0) return;
  kill(-m_pid, SIGKILL);
  int status = 0;
  waitpid(m_pid, &status, 0);
  m_pid = -1;
}

}  // namespace vstore::testing
