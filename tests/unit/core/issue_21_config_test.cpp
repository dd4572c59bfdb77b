// SPDX-License-Identifier: Apache-2.0
// Issue 21 items 7 and 8 in Config: VSTORE_STATEMENT_TIMEOUT, and DATABASE_URL errors and
// redaction that never show a piece of a password.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "vstore/config.hpp"

namespace vstore {
namespace {

std::string error_of(const Environment& env) {
  auto cfg = load_config(env);
  if (cfg) return "(accepted)";
  return cfg.error().to_string();
}

TEST(Issue21Config, Item8ConninfoErrorDoesNotEchoWordsAfterAnUnquotedSpace) {
  for (const char* url : {"host=h password=S3c ret dbname=x", "host=h password=S3c x=ret dbname=x",
                          "host=h password=S3c ret"}) {
    SCOPED_TRACE(url);
    const std::string message = error_of({{"DATABASE_URL", url}});
    EXPECT_NE(message, "(accepted)");
    EXPECT_EQ(message.find("ret"), std::string::npos) << message;
    EXPECT_EQ(message.find("S3c"), std::string::npos) << message;
    EXPECT_NE(message.find("DATABASE_URL"), std::string::npos) << message;
  }
}

TEST(Issue21Config, Item8RedactUrlHidesWordsThatAreNotKeywordValuePairs) {
  EXPECT_EQ(redact_url("host=h password=S3c ret dbname=x"), "host=h password=*** *** dbname=x");
  EXPECT_EQ(redact_url("host=h password=S3c x=ret"), "host=h password=*** ***");
  EXPECT_EQ(redact_url("host=h dbname=news user=me"), "host=h dbname=news user=me");
}

TEST(Issue21Config, Item8MalformedPostgresUrlIsRefusedWithoutThePassword) {
  for (const char* url : {"postgresql://vstore:S3cr%zz@127.0.0.1:1/vstore", "postgresql://vstore:S3cr%00et@127.0.0.1/v",
                          "postgresql://vstore:S3cret@[::1", "postgresql://vstore:S3c@ret@127.0.0.1/v"}) {
    SCOPED_TRACE(url);
    const std::string message = error_of({{"DATABASE_URL", url}});
    EXPECT_NE(message, "(accepted)");
    EXPECT_EQ(message.find("S3c"), std::string::npos) << message;
    EXPECT_EQ(message.find("ret"), std::string::npos) << message;
  }
}

TEST(Issue21Config, Item7StatementTimeoutDefaultsTo60SecondsAndZeroTurnsItOff) {
  auto cfg = load_config({});
  ASSERT_TRUE(cfg) << cfg.error().to_string();
  EXPECT_EQ(cfg->pool.statement_timeout, std::chrono::milliseconds(60000));
  auto off = load_config({{"VSTORE_STATEMENT_TIMEOUT", "0"}});
  ASSERT_TRUE(off) << off.error().to_string();
  EXPECT_EQ(off->pool.statement_timeout, std::chrono::milliseconds(0));
  auto unit = load_config({{"VSTORE_STATEMENT_TIMEOUT", "250ms"}});
  ASSERT_TRUE(unit) << unit.error().to_string();
  EXPECT_EQ(unit->pool.statement_timeout, std::chrono::milliseconds(250));
  auto minutes = load_config({{"VSTORE_STATEMENT_TIMEOUT", "5min"}});
  ASSERT_TRUE(minutes) << minutes.error().to_string();
  EXPECT_EQ(minutes->pool.statement_timeout, std::chrono::milliseconds(300000));
  auto bare = load_config({{"VSTORE_STATEMENT_TIMEOUT", "90"}});
  ASSERT_TRUE(bare) << bare.error().to_string();
  EXPECT_EQ(bare->pool.statement_timeout, std::chrono::milliseconds(90000));
}

TEST(Issue21Config, Item7BadStatementTimeoutNamesVariableValueAndWhatIsAllowed) {
  for (const char* value : {"abc", "-1", "10h", "1.5s", "99999999999s"}) {
    SCOPED_TRACE(value);
    const std::string message = error_of({{"VSTORE_STATEMENT_TIMEOUT", value}});
    EXPECT_NE(message.find(std::string("VSTORE_STATEMENT_TIMEOUT=\"") + value + "\""), std::string::npos) << message;
    EXPECT_NE(message.find("expected"), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace vstore
