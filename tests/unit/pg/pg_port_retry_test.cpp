// SPDX-License-Identifier: Apache-2.0
// start_on_free_port(): a port vstore chose that another process took before the server bound
// it is replaced by a new free one; a port the caller named is not; the attempts are bounded.
#include <gtest/gtest.h>

#include <vector>

#include "pg/pg_port_retry.hpp"

namespace vstore::pg {
namespace {

// Attempts that report the ports in `taken` as taken and start on any other, recording each.
struct FakeServer {
  std::vector<int> taken;
  std::vector<int> tried;
  Result<PortAttempt> operator()(int port) {
    tried.push_back(port);
    for (int t : taken) {
      if (t == port) return PortAttempt::port_taken;
    }
    return PortAttempt::started;
  }
};

TEST(PgPortRetry, AChosenPortTakenMeanwhileIsReplacedByTheNextFreeOne) {
  FakeServer server{{5001}, {}};
  int next = 6000;
  auto got = start_on_free_port(5001, true, 3, [&] { return next++; }, std::ref(server));
  ASSERT_TRUE(got) << got.error().to_string();
  EXPECT_EQ(*got, 6000);
  EXPECT_EQ(server.tried, (std::vector<int>{5001, 6000}));
}

TEST(PgPortRetry, ANamedPortThatIsTakenIsAnErrorNamingIt) {
  FakeServer server{{5001}, {}};
  auto got = start_on_free_port(5001, false, 3, [] { return 6000; }, std::ref(server));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), ErrorCode::unavailable);
  EXPECT_NE(got.error().message().find("5001"), std::string::npos) << got.error().message();
  EXPECT_EQ(server.tried, (std::vector<int>{5001}));
}

TEST(PgPortRetry, GivesUpAfterTheLastAttempt) {
  FakeServer server{{5001, 6000, 6001, 6002}, {}};
  int next = 6000;
  auto got = start_on_free_port(5001, true, 3, [&] { return next++; }, std::ref(server));
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("3 ports in a row"), std::string::npos) << got.error().message();
  EXPECT_EQ(server.tried, (std::vector<int>{5001, 6000, 6001}));
}

TEST(PgPortRetry, AnotherFailureEndsAtOnceWithItsOwnError) {
  int calls = 0;
  auto got = start_on_free_port(
      5001, true, 3, [] { return 6000; },
      [&](int) -> Result<PortAttempt> {
        ++calls;
        return fail(ErrorCode::internal, "initdb broke");
      });
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().message(), "initdb broke");
  EXPECT_EQ(calls, 1);
}

TEST(PgPortRetry, NoFreePortLeftIsAnError) {
  FakeServer server{{5001}, {}};
  auto got = start_on_free_port(5001, true, 3, [] { return 0; }, std::ref(server));
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("no free loopback port"), std::string::npos);
}

}  // namespace
}  // namespace vstore::pg
