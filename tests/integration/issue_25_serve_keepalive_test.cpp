// SPDX-License-Identifier: Apache-2.0
// Issue 25, what the wrk benchmark found: `vstore serve` keeps a client's connection open past
// cpp-httplib's default of 5 requests, and answers a kept-alive connection at once instead of
// holding the body of each answer until the client's delayed ACK of its headers (Nagle's
// algorithm; 40 ms on Linux). One raw socket, twenty requests in a row.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"
#include "support/pg_fixture.hpp"

namespace {

namespace fs = std::filesystem;
using vstore::testing::CmdResult;
using vstore::testing::PgServer;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// One answer read from `fd`: its head (status line and headers) and whether the body of
// Content-Length bytes arrived whole.
struct Answer {
  std::string head;
  bool complete = false;
};

Answer read_answer(int fd) {
  Answer a;
  std::string data;
  char buf[8192];
  std::size_t body_at = std::string::npos;
  std::size_t length = 0;
  while (true) {
    if (body_at == std::string::npos) {
      body_at = data.find("\r\n\r\n");
      if (body_at != std::string::npos) {
        a.head = data.substr(0, body_at);
        body_at += 4;
        std::smatch m;
        if (!std::regex_search(a.head, m, std::regex(R"(Content-Length: (\d+))", std::regex::icase))) return a;
        length = std::stoul(m[1]);
      }
    }
    if (body_at != std::string::npos && data.size() >= body_at + length) {
      a.complete = true;
      return a;
    }
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return a;
    data.append(buf, static_cast<std::size_t>(n));
  }
}

// `vstore serve` on a fresh database, on a free loopback port, until the end of the suite.
class Issue25ServeKeepAlive : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    s_tmp = std::make_unique<vstore::testing::TempDir>();
    s_db = PgServer::instance().create_database("issue25keepalive");
    const std::string env = fmt::format("DATABASE_URL='{}'", s_db);
    ASSERT_EQ(vstore::testing::run_vstore(s_tmp->path.string(), "schema up", env).code, 0);
    const fs::path out = s_tmp->path / "serve.out";
    const CmdResult started = vstore::testing::run_vstore(
        s_tmp->path.string(), fmt::format("serve --addr 127.0.0.1:0 --no-access-log >'{}' 2>'{}' & echo $!", out.string(),
                                          (s_tmp->path / "serve.log").string()),
        env);
    s_pid = std::atoi(started.out.c_str());
    ASSERT_GT(s_pid, 0);
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    for (int tries = 0; tries < 600 && s_port == 0; ++tries) {
      std::smatch m;
      const std::string text = read_text(out);
      if (std::regex_search(text, m, listening)) s_port = std::stoi(m[1]);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ASSERT_GT(s_port, 0) << read_text(s_tmp->path / "serve.log");
  }
  static void TearDownTestSuite() {
    if (s_pid > 0) {
      ::kill(s_pid, SIGTERM);
      for (int tries = 0; tries < 200 && ::kill(s_pid, 0) == 0 && !read_text(s_tmp->path / "serve.out").contains("serve: stopped");
           ++tries) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    PgServer::instance().drop_database(s_db);
    s_tmp.reset();
  }

  // A connected socket with a 10 s receive timeout, or -1.
  static int connect_to_service() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    timeval timeout{10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(s_port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // GET /openapi.json on `fd`: a few kB answered without the database (so the time is the
  // service's own), written by the service as headers, then body. Returns the answer and the
  // milliseconds it took.
  static std::pair<Answer, double> get_openapi(int fd) {
    const std::string request = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    const auto start = std::chrono::steady_clock::now();
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return {};
    Answer a = read_answer(fd);
    return {a, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count()};
  }

  static inline std::unique_ptr<vstore::testing::TempDir> s_tmp;
  static inline std::string s_db;
  static inline int s_pid = 0;
  static inline int s_port = 0;
};

TEST_F(Issue25ServeKeepAlive, OneConnectionServesTwentyRequests) {
  const int fd = connect_to_service();
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 20; ++i) {
    SCOPED_TRACE(fmt::format("request {}", i + 1));
    const auto [answer, ms] = get_openapi(fd);
    ASSERT_TRUE(answer.complete) << "the connection ended before answer " << i + 1;
    EXPECT_TRUE(answer.head.starts_with("HTTP/1.1 200")) << answer.head;
    if (i < 19) {
      ASSERT_FALSE(answer.head.contains("Connection: close")) << answer.head;
    }
  }
  ::close(fd);
}

TEST_F(Issue25ServeKeepAlive, AnswersOnAKeptAliveConnectionDoNotWaitForTheClientsDelayedAck) {
  // Four requests after the first on one connection (within httplib's default of five per
  // connection, so this holds apart from the keep-alive limit): a delayed ACK costs 40 ms each,
  // the answer itself well under a millisecond.
  const int fd = connect_to_service();
  ASSERT_GE(fd, 0);
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) {
    const auto [answer, took] = get_openapi(fd);
    ASSERT_TRUE(answer.complete) << "the connection ended before answer " << i + 1;
    if (i > 0) ms.push_back(took);
  }
  ::close(fd);
  std::sort(ms.begin(), ms.end());
  EXPECT_LT(ms[1], 20.0) << "answers 2 to 5 took " << ms[0] << ", " << ms[1] << ", " << ms[2] << ", " << ms[3] << " ms";
}

}  // namespace
