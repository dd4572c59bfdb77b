// SPDX-License-Identifier: Apache-2.0
// Test support: a real Chroma server (set-up's npm chromadb 3.0.12 install, or a PyPI chromadb
// venv's `chroma run`) on a free loopback port with a temporary --path, which tests can stop and
// restart.
#pragma once

#include <sys/types.h>

#include <string>

namespace vstore::testing {

/// Which server: the npm chromadb 3.0.12 Rust server (API v2, the 1.0.19 code), PyPI chromadb
/// 0.5.5, a Python server that speaks only the v1 API, or the Rust server of PyPI chromadb 1.5.9
/// (API v2, array metadata), from the migrate-chroma venvs (scripts/setup_chroma_py.sh).
enum class ChromaFlavor { rust_v2, python_v1, rust_v2_1_5 };

/// One Chroma server process. Starting it fails the binary (abort with the reason) when the
/// server cannot start, so that no Chroma test can silently skip.
class ChromaServer {
 public:
  /// Starts a server in a new temporary directory and waits for its heartbeat.
  /// `token` (python_v1 only; the 1.x server has no authentication): the server then demands
  /// it in the header `token_header` ("X-Chroma-Token" or "Authorization", as `Bearer TOKEN`).
  /// `first_port` (0: a free one) is the port tried first. Whenever the server reports its port
  /// taken (another process bound it after free_loopback_port() released it), it is started
  /// again on a new free port, up to five times.
  explicit ChromaServer(ChromaFlavor flavor = ChromaFlavor::rust_v2, std::string token = "",
                        std::string token_header = "X-Chroma-Token", int first_port = 0);
  /// Stops the server and removes its directory.
  ~ChromaServer();
  ChromaServer(const ChromaServer&) = delete;
  ChromaServer& operator=(const ChromaServer&) = delete;

  /// A server shared by the tests of one binary, started on first use.
  static ChromaServer& shared();

  /// http://127.0.0.1:PORT
  [[nodiscard]] std::string url() const;
  [[nodiscard]] int port() const { return m_port; }
  /// The server's --path directory (kept until the destructor; read it only while stopped).
  [[nodiscard]] std::string data_dir() const { return m_root + "/data"; }
  /// Stops the process (SIGTERM, then SIGKILL after 10 s); the data directory stays.
  void stop();
  /// Kills the process group at once (SIGKILL, no chance to flush anything); the data directory
  /// stays, as a crash leaves it.
  void kill_now();
  /// Starts it again on the same port and directory and waits for its heartbeat (retrying for
  /// up to 10 s while the port is still taken).
  void start();
  [[nodiscard]] bool running() const { return m_pid > 0; }

 private:
  enum class Launch { up, port_taken };
  /// One attempt on m_port: up, or the server exited saying its port is taken; any other
  /// failure aborts the binary.
  Launch launch();

  ChromaFlavor m_flavor;
  std::string m_token;
  std::string m_token_header;
  std::string m_root;
  int m_port = 0;
  pid_t m_pid = -1;
};

/// A free TCP port on 127.0.0.1 (bound and released; another process could take it meanwhile).
int free_loopback_port();

/// A collection name unique within the test binary ("<prefix>-<pid>-<n>").
std::string unique_collection(const std::string& prefix);

}  // namespace vstore::testing
