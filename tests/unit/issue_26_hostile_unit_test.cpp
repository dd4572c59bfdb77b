// SPDX-License-Identifier: Apache-2.0
// Issue 26, part 3: the pure checks behind docs/robustness.md's rows, at their edges: the write
// check's uri rules (blank; 2,048 bytes pass, 2,049 do not) and its UTF-8 rule in every text an
// article stores, the search query check, and the filter parser's limits on hostile JSON.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/article_store.hpp"
#include "vstore/filter.hpp"
#include "unit/core/write_check_cases.hpp"
#include "vstore/write_check.hpp"

namespace vstore {
namespace {

using testing::write_check_item;
using testing::write_check_refusal;

TEST(Issue26HostileUnit, ABlankUriIsRefusedWhateverTheBlankIs) {
  EXPECT_EQ(write_check_refusal({write_check_item("a"), write_check_item(" ")}), "item 1: uri \" \" is blank; expected a uri with visible characters");
  EXPECT_EQ(write_check_refusal({write_check_item("\t\r\n")}), "item 0: uri \"\\t\\r\\n\" is blank; expected a uri with visible characters");
  EXPECT_EQ(write_check_refusal({write_check_item("\u00a0\u200b")}), "item 0: uri \"\u00a0\u200b\" is blank; expected a uri with visible characters");
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{write_check_item(" a ")}, 3).has_value()) << "spaces around a uri are its own";
}

TEST(Issue26HostileUnit, AUriOfUpTo2048BytesPassesAndALongerOneIsRefused) {
  const std::string at_limit(k_max_uri_bytes, 'u');
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{write_check_item(at_limit)}, 3).has_value());
  const std::string over(k_max_uri_bytes + 1, 'u');
  EXPECT_EQ(write_check_refusal({write_check_item("a"), write_check_item(over)}),
            "item 1: uri \"" + std::string(40, 'u') + "...\" is 2049 bytes long; expected at most 2048 bytes");
  // The quoted head never splits a UTF-8 sequence into bytes that break the message.
  std::string accents = "x";  // so that the 40-byte head ends inside a two-byte character
  while (accents.size() <= k_max_uri_bytes) accents += "\u00e9";
  const std::string message = write_check_refusal({write_check_item(accents)});
  EXPECT_TRUE(message.contains("is 2049 bytes long")) << message;
  EXPECT_FALSE(nlohmann::json(message).dump(-1, ' ', false, nlohmann::json::error_handler_t::strict).empty());
}

TEST(Issue26HostileUnit, TextThatIsNotUtf8IsRefusedInEveryFieldNamingTheOffset) {
  auto title = write_check_item("a");
  title.article.title = "Cocoa \xff prices";
  EXPECT_EQ(write_check_refusal({title}), "article \"a\": field title is not valid UTF-8 at offset 6 (byte 0xFF)");
  auto tag = write_check_item("a");
  tag.article.tags = std::vector<std::string>{"ok", "\xc3"};  // a sequence cut short
  EXPECT_EQ(write_check_refusal({tag}), "article \"a\": field tags[1] is not valid UTF-8 at offset 0 (byte 0xC3)");
  auto extra = write_check_item("a");
  extra.article.extra = nlohmann::json{{"source", {{"name", std::string("Reuters\xed\xa0\x80")}}}};  // a surrogate
  EXPECT_EQ(write_check_refusal({extra}), "article \"a\": field source.name is not valid UTF-8 at offset 7 (byte 0xED)");
  auto uri = write_check_item("u\xfe");
  EXPECT_EQ(write_check_refusal({uri}), "article \"u\xef\xbf\xbd\": field uri is not valid UTF-8 at offset 1 (byte 0xFE)");
  auto fine = write_check_item("a");
  fine.article.title = "Caf\u00e9 \u6771\u4eac \U0001F600";
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{fine}, 3).has_value());
}

TEST(Issue26HostileUnit, ASearchQueryMustHaveContentAndBeUtf8) {
  EXPECT_TRUE(check_search_query("cocoa").has_value());
  for (const std::string& blank : {std::string(), std::string(" \t\n"), std::string("\u00a0\u200b\ufeff")}) {
    auto r = check_search_query(blank);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::invalid_argument);
    EXPECT_EQ(r.error().message(), "the search query is empty");
  }
  auto bad = check_search_query("cocoa \x80");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(bad.error().message(), "the search query is not valid UTF-8 at offset 6 (byte 0x80)");
}

TEST(Issue26HostileUnit, FilterParserRefusesHostileShapesByName) {
  std::string deep;
  for (int i = 0; i < 10'000; ++i) deep += R"({"$or": [)";
  deep += R"({"topic": "x"})";
  for (int i = 0; i < 10'000; ++i) deep += "]}";
  auto text = parse_filter(std::string_view(deep));
  ASSERT_FALSE(text.has_value());
  EXPECT_EQ(text.error().message(), "where: JSON is nested deeper than 72 levels");
  // The same tree given as JSON (as the service parses its body first) stops at filter depth 32.
  auto tree = parse_filter(nlohmann::json::parse(deep));
  ASSERT_FALSE(tree.has_value());
  EXPECT_TRUE(tree.error().message().contains("filter is nested deeper than 32 levels")) << tree.error().message().substr(0, 200);

  nlohmann::json list = nlohmann::json::array();
  for (int i = 0; i < 100'000; ++i) list.push_back(i);
  auto in = parse_filter(nlohmann::json{{"n", {{"$nin", list}}}});
  ASSERT_FALSE(in.has_value());
  EXPECT_EQ(in.error().message(), "where.n.$nin: list has 100000 elements; at most 10000 are allowed");

  auto overflow = parse_filter(std::string_view(R"({"n": {"$gt": 1e999}})"));
  ASSERT_FALSE(overflow.has_value());
  EXPECT_EQ(overflow.error().code(), ErrorCode::invalid_argument);
  EXPECT_TRUE(overflow.error().message().contains("1e999")) << overflow.error().message();
}

}  // namespace
}  // namespace vstore
