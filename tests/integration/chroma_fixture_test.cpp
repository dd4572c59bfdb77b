// SPDX-License-Identifier: Apache-2.0
// The Chroma test fixture itself: a port another process took between free_loopback_port() and
// the server's bind (the Rust server then exits 0 saying "Address ... is not available") moves
// the server to a new port instead of aborting the test binary (CI stop 36 lost a shard so).
#include <gtest/gtest.h>

#include "chroma/chroma_http.hpp"
#include "support/chroma_fixture.hpp"
#include "support/os_helpers.hpp"

namespace vstore {
namespace {

using testing::ChromaFlavor;
using testing::ChromaServer;
using testing::HeldPort;

int heartbeat_status(const ChromaServer& server, const char* path) {
  chroma::HttpOptions options;
  options.base_url = server.url();
  auto http = chroma::ChromaHttp::create(options);
  if (!http) return -1;
  auto answer = (*http)->probe(path);
  return answer ? answer->status : -1;
}

// The server of `flavor`, asked to start on a port another socket holds, comes up on another.
void expect_moves_off_a_taken_port(ChromaFlavor flavor, const char* heartbeat) {
  HeldPort held;
  ASSERT_TRUE(held.ok());
  ChromaServer server(flavor, "", "X-Chroma-Token", held.port());
  EXPECT_NE(server.port(), held.port());
  EXPECT_EQ(heartbeat_status(server, heartbeat), 200);
}

TEST(ChromaFixture, RustServerMovesToAnotherPortWhenItsFirstPortIsTaken) {
  expect_moves_off_a_taken_port(ChromaFlavor::rust_v2, "/api/v2/heartbeat");
}

TEST(ChromaFixture, PythonServerMovesToAnotherPortWhenItsFirstPortIsTaken) {
  expect_moves_off_a_taken_port(ChromaFlavor::python_v1, "/api/v1/heartbeat");
}

TEST(ChromaFixture, RestartWaitsForItsOwnPortToBeFreedAgain) {
  ChromaServer server;
  const int port = server.port();
  server.stop();
  server.start();
  EXPECT_EQ(server.port(), port);
  EXPECT_EQ(heartbeat_status(server, "/api/v2/heartbeat"), 200);
}

}  // namespace
}  // namespace vstore
