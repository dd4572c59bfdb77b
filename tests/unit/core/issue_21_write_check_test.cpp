// SPDX-License-Identifier: Apache-2.0
// Issue 21 items 13a, 13d and 19: check_upsert_batch(), the one check both stores and
// migrate-chroma run before writing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "unit/core/write_check_cases.hpp"
#include "vstore/write_check.hpp"

namespace vstore {
namespace {

using testing::write_check_item;
using testing::write_check_refusal;

TEST(Issue21WriteCheck, Item19AGoodBatchPasses) {
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{write_check_item("a"), write_check_item("b")}, 3).has_value());
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{}, 3).has_value());
}

TEST(Issue21WriteCheck, Item19EachRuleNamesTheRecord) {
  EXPECT_EQ(write_check_refusal({write_check_item("a"), write_check_item("")}), "item 1: uri is empty");
  EXPECT_EQ(write_check_refusal({write_check_item("a"), write_check_item("a")}), "uri \"a\" appears twice in one batch");
  auto unnamed = write_check_item("a");
  unnamed.embedding_model.clear();
  EXPECT_EQ(write_check_refusal({unnamed}), "article \"a\": the embedding model is not named");
  auto short_vec = write_check_item("a");
  short_vec.embedding.pop_back();
  EXPECT_EQ(write_check_refusal({short_vec}), "article \"a\": expected 3 dimensions, not 2");
}

TEST(Issue21WriteCheck, Item13dAllZeroAndNonFiniteVectorsAreRefused) {
  auto zero = write_check_item("z");
  zero.embedding = {0.0f, -0.0f, 0.0f};
  EXPECT_NE(write_check_refusal({zero}).find("all zeros"), std::string::npos);
  auto nan = write_check_item("n");
  nan.embedding[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(write_check_refusal({nan}).find("element 1 is nan"), std::string::npos);
  auto inf = write_check_item("i");
  inf.embedding[2] = -std::numeric_limits<float>::infinity();
  EXPECT_NE(write_check_refusal({inf}).find("element 2 is -inf"), std::string::npos);
}

TEST(Issue21WriteCheck, Item13aANulByteInAnyTextIsRefusedNamingUriAndField) {
  const std::string nul("a\0b", 3);
  auto raw = write_check_item("h:nul");
  raw.article.raw = nul;
  EXPECT_EQ(write_check_refusal({raw}),
            "article \"h:nul\": field raw holds a NUL byte at offset 1, which PostgreSQL cannot store");
  auto tag = write_check_item("t");
  tag.article.tags = std::vector<std::string>{"x", nul};
  EXPECT_NE(write_check_refusal({tag}).find("field tags[1]"), std::string::npos);
  auto extra = write_check_item("e");
  extra.article.extra["dateline"] = nul;
  EXPECT_NE(write_check_refusal({extra}).find("field dateline"), std::string::npos);
  auto uri = write_check_item(nul);
  EXPECT_NE(write_check_refusal({uri}).find("article \"a\\u0000b\": field uri"), std::string::npos);
}

TEST(Issue21WriteCheck, Item13aJsonTextIsCheckedInKeysValuesAndArrays) {
  nlohmann::json md = {{"s", "ok"}, {"list", {"x", std::string("y\0", 2)}}};
  auto bad = check_json_text(md, "u", "metadata");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message().find("field metadata.list[1]"), std::string::npos) << bad.error().message();
  nlohmann::json key = nlohmann::json::object();
  key[std::string("k\0", 2)] = 1;
  EXPECT_FALSE(check_json_text(key, "u", "metadata").has_value());
  EXPECT_TRUE(check_json_text(nlohmann::json{{"a", {1, 2.5, true, "x"}}}, "u", "metadata").has_value());
}

}  // namespace
}  // namespace vstore
