// SPDX-License-Identifier: Apache-2.0
// Test support: a `vstore serve` process started on a free loopback port, and JSON calls to it.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace vstore::testing {

/// Whether process `pid` runs (and is not a zombie).
bool alive(int pid);

/// The text of a file ("" when it cannot be read).
std::string read_text(const std::filesystem::path& p);

/// A `vstore serve --addr 127.0.0.1:0` process started in `dir` with `env` and `flags` (shell
/// text), its stdout in DIR/NAME.out and stderr in DIR/NAME.log; port() is 0 when it did not
/// start listening within 30 s. The destructor kills it (SIGKILL) if it still runs.
class ServeProcess {
 public:
  ServeProcess(const std::filesystem::path& dir, const std::string& env, const std::string& flags,
               const std::string& name = "serve");
  ~ServeProcess();
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  [[nodiscard]] int port() const { return m_port; }
  [[nodiscard]] int pid() const { return m_pid; }
  [[nodiscard]] std::string out() const { return read_text(m_out); }
  [[nodiscard]] std::string log() const { return read_text(m_log); }
  /// Waits for the process to end; false after `seconds`.
  bool wait_exit(int seconds) const;

 private:
  std::filesystem::path m_out;
  std::filesystem::path m_log;
  int m_pid = 0;
  int m_port = 0;
};

/// An HTTP answer: status 0 when no answer came; body is the parsed JSON (discarded if not JSON).
struct Answer {
  int status = 0;
  nlohmann::json body;
  std::string raw;
};

/// METHOD (GET or POST) PATH on 127.0.0.1:PORT with a JSON body, and a bearer token when given.
Answer call(int port, const std::string& method, const std::string& path, const std::string& body = "",
            const std::string& token = "");
/// POST of `body` as JSON.
Answer post(int port, const std::string& path, const nlohmann::json& body, const std::string& token = "");

}  // namespace vstore::testing
