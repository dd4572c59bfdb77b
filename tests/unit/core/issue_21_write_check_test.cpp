// SPDX-License-Identifier: Apache-2.0
// Issue 21 items 13a, 13d and 19: check_upsert_batch(), the one check both stores and
// migrate-chroma run before writing.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "vstore/write_check.hpp"

namespace vstore {
namespace {

ArticleVector item(const std::string& uri) {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "title";
  a.embedding = {1.0f, 0.0f, 0.0f};
  a.embedding_model = "m";
  return a;
}

std::string refusal(const std::vector<ArticleVector>& items) {
  auto ok = check_upsert_batch(items, 3);
  EXPECT_FALSE(ok.has_value());
  if (ok) return {};
  EXPECT_EQ(ok.error().code(), ErrorCode::invalid_argument);
  return ok.error().message();
}

TEST(Issue21WriteCheck, Item19AGoodBatchPasses) {
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{item("a"), item("b")}, 3).has_value());
  EXPECT_TRUE(check_upsert_batch(std::vector<ArticleVector>{}, 3).has_value());
}

TEST(Issue21WriteCheck, Item19EachRuleNamesTheRecord) {
  EXPECT_EQ(refusal({item("a"), item("")}), "item 1: uri is empty");
  EXPECT_EQ(refusal({item("a"), item("a")}), "uri \"a\" appears twice in one batch");
  auto unnamed = item("a");
  unnamed.embedding_model.clear();
  EXPECT_EQ(refusal({unnamed}), "article \"a\": the embedding model is not named");
  auto short_vec = item("a");
  short_vec.embedding.pop_back();
  EXPECT_EQ(refusal({short_vec}), "article \"a\": expected 3 dimensions, not 2");
}

TEST(Issue21WriteCheck, Item13dAllZeroAndNonFiniteVectorsAreRefused) {
  auto zero = item("z");
  zero.embedding = {0.0f, -0.0f, 0.0f};
  EXPECT_NE(refusal({zero}).find("all zeros"), std::string::npos);
  auto nan = item("n");
  nan.embedding[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_NE(refusal({nan}).find("element 1 is nan"), std::string::npos);
  auto inf = item("i");
  inf.embedding[2] = -std::numeric_limits<float>::infinity();
  EXPECT_NE(refusal({inf}).find("element 2 is -inf"), std::string::npos);
}

TEST(Issue21WriteCheck, Item13aANulByteInAnyTextIsRefusedNamingUriAndField) {
  const std::string nul("a\0b", 3);
  auto raw = item("h:nul");
  raw.article.raw = nul;
  EXPECT_EQ(refusal({raw}),
            "article \"h:nul\": field raw holds a NUL byte at offset 1, which PostgreSQL cannot store");
  auto tag = item("t");
  tag.article.tags = std::vector<std::string>{"x", nul};
  EXPECT_NE(refusal({tag}).find("field tags[1]"), std::string::npos);
  auto extra = item("e");
  extra.article.extra["dateline"] = nul;
  EXPECT_NE(refusal({extra}).find("field dateline"), std::string::npos);
  auto uri = item(nul);
  EXPECT_NE(refusal({uri}).find("article \"a\\u0000b\": field uri"), std::string::npos);
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
