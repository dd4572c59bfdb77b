// SPDX-License-Identifier: Apache-2.0
#include "support/serve_process.hpp"

#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <httplib.h>

#include "support/cli_runner.hpp"

namespace vstore::testing {

std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool alive(int pid) { return ::kill(pid, 0) == 0 && !read_text(fmt::format("/proc/{}/stat", pid)).contains(") Z "); }

ServeProcess::ServeProcess(const std::filesystem::path& dir, const std::string& env, const std::string& flags,
                           const std::string& name)
    : m_out(dir / (name + ".out")), m_log(dir / (name + ".log")) {
  CmdResult started = run_vstore(
      dir.string(), fmt::format("serve --addr 127.0.0.1:0 {} >'{}' 2>'{}' & echo $!", flags, m_out.string(), m_log.string()), env);
  m_pid = std::atoi(started.out.c_str());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const std::string out = read_text(m_out);
    if (std::regex_search(out, m, listening)) {
      m_port = std::stoi(m[1]);
      return;
    }
    if (m_pid <= 0 || !alive(m_pid)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

ServeProcess::~ServeProcess() {
  if (m_pid > 0 && alive(m_pid)) ::kill(m_pid, SIGKILL);
}

bool ServeProcess::wait_exit(int seconds) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!alive(m_pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

Answer call(int port, const std::string& method, const std::string& path, const std::string& body, const std::string& token) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(60, 0);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = method == "GET" ? client.Get(path, headers) : client.Post(path, headers, body, "application/json");
  Answer a;
  if (!res) return a;
  a.status = res->status;
  a.raw = res->body;
  a.body = nlohmann::json::parse(res->body, nullptr, false);
  return a;
}

Answer post(int port, const std::string& path, const nlohmann::json& body, const std::string& token) {
  return call(port, "POST", path, body.dump(), token);
}

}  // namespace vstore::testing
