// SPDX-License-Identifier: Apache-2.0
// parse_int64: whole-text, in-range decimal integers only (issue 21, item 10).
#include <gtest/gtest.h>

#include "vstore/number_parse.hpp"

namespace vstore {
namespace {

TEST(Issue21Parse, Item10ParseInt64ReadsWholeIntegersOnly) {
  EXPECT_EQ(parse_int64("0", "n").value(), 0);
  EXPECT_EQ(parse_int64("-42", "n").value(), -42);
  EXPECT_EQ(parse_int64("9223372036854775807", "n").value(), INT64_MAX);
  for (const char* bad : {"", "12x", " 12", "+1", "1e3", "3.5", "abc", "9223372036854775808", "-", "18446744073709551615"}) {
    auto parsed = parse_int64(bad, "the row count");
    ASSERT_FALSE(parsed) << bad;
    EXPECT_EQ(parsed.error().code(), ErrorCode::corruption);
    EXPECT_NE(parsed.error().message().find("the row count"), std::string::npos) << parsed.error().message();
  }
}

}  // namespace
}  // namespace vstore
