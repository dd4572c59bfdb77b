// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 8: a password never appears in a connect error, whatever libpq makes of the
// connection string (no server needed: each of these fails while libpq parses the string).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pg/pg_conn.hpp"

namespace vstore::pg {
namespace {

struct Case {
  std::string conninfo;
  std::vector<std::string> secrets;  // text that must not appear in the error
};

std::vector<Case> unparseable_cases() {
  return {
      {"postgresql://vstore:S3cr%zz@127.0.0.1:1/vstore", {"S3cr"}},
      {"postgresql://vstore:S3cr%00et@127.0.0.1:1/vstore", {"S3cr", "%00et"}},
      {"postgresql://vstore:S3cret@[::1", {"S3cret"}},
      {"postgresql://vstore:S3cret@[::1:5432/vstore", {"S3cret"}},
      {"host=127.0.0.1 port=1 password=S3c ret dbname=vstore", {"S3c", "ret"}},
      {"host=127.0.0.1 port=1 password='S3c\\'ret", {"S3c", "ret"}},
      {"host=127.0.0.1 port=1 password=S3c x=ret", {"S3c", "x=ret", "\"x\""}},
      {"postgresql://vstore:S3c\\\"r'et%@127.0.0.1:1/vstore", {"S3c", "r'et"}},
  };
}

TEST(Issue21Secrets, Item8ConnectErrorNeverQuotesThePassword) {
  for (const Case& c : unparseable_cases()) {
    SCOPED_TRACE(c.conninfo);
    auto conn = Connection::connect(c.conninfo, 1);
    ASSERT_FALSE(conn);
    const std::string text = conn.error().to_string();
    for (const std::string& secret : c.secrets) {
      EXPECT_EQ(text.find(secret), std::string::npos) << "the error shows \"" << secret << "\": " << text;
    }
    EXPECT_EQ(text.find(c.conninfo), std::string::npos) << text;
  }
}

TEST(Issue21Secrets, Item8UnparseableConnectionStringIsInvalidArgumentSayingWhy) {
  auto conn = Connection::connect("postgresql://vstore:S3cr%zz@127.0.0.1:1/vstore", 1);
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error().code(), ErrorCode::invalid_argument) << conn.error().to_string();
  EXPECT_NE(conn.error().message().find("percent"), std::string::npos) << conn.error().message();
  EXPECT_NE(conn.error().message().find("postgresql://vstore:***@127.0.0.1:1/vstore"), std::string::npos)
      << conn.error().message();
}

}  // namespace
}  // namespace vstore::pg
