// SPDX-License-Identifier: Apache-2.0
// chroma_where(): our parsed filter back to the `where` JSON a Chroma server accepts.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "chroma/chroma_store.hpp"
#include "vstore/article.hpp"

namespace vstore::chroma {
namespace {

using nlohmann::json;

json translated(std::string_view where) {
  auto filter = parse_filter(where);
  EXPECT_TRUE(filter) << where;
  if (!filter) return nullptr;
  auto out = chroma_where(*filter);
  EXPECT_TRUE(out) << where << ": " << out.error().to_string();
  return out ? *out : json(nullptr);
}

TEST(ChromaWhere, ImplicitEqualityAndMultiKeyObjectsBecomeExplicitOperatorsAndAnd) {
  EXPECT_EQ(translated(R"({"topic": "crude"})"), json::parse(R"({"topic": {"$eq": "crude"}})"));
  EXPECT_EQ(translated(R"({"topic": "crude", "analyzed": true})"),
            json::parse(R"({"$and": [{"analyzed": {"$eq": true}}, {"topic": {"$eq": "crude"}}]})"));
  EXPECT_EQ(translated(R"({"topic": {"$in": ["a", "b"]}})"), json::parse(R"({"topic": {"$in": ["a", "b"]}})"));
  EXPECT_EQ(translated(R"({"$or": [{"topic": "a"}, {"n": {"$gte": 2}}]})"),
            json::parse(R"({"$or": [{"topic": {"$eq": "a"}}, {"n": {"$gte": 2}}]})"));
}

TEST(ChromaWhere, AnEmptyAndMatchesEverythingSoTheWhereIsOmitted) {
  EXPECT_TRUE(translated(R"({"$and": []})").is_null());
  EXPECT_TRUE(translated(R"({"$or": [{"$and": []}, {"topic": "a"}]})").is_null());
  EXPECT_EQ(translated(R"({"$and": [{"$and": []}, {"topic": "a"}]})"), json::parse(R"({"topic": {"$eq": "a"}})"));
  EXPECT_EQ(translated(R"({"$or": []})"), json::parse(R"({"$or": []})"));
}

TEST(ChromaWhere, DateBoundsAtMidnightBecomePublicationDateTsRanges) {
  const std::int64_t day = *publication_date_ts("2025-03-01");
  EXPECT_EQ(translated(R"({"publication_date": {"$gte": "2025-03-01"}})"),
            json::parse(fmt::format(R"({{"publication_date_ts": {{"$gte": {}}}}})", day)));
  EXPECT_EQ(translated(R"({"publication_date_ts": {"$lt": "2025-03-01T00:00:00Z"}})"),
            json::parse(fmt::format(R"({{"publication_date_ts": {{"$lt": {}}}}})", day)));
  EXPECT_EQ(translated(R"({"publication_date_ts": {"$gt": 12345}})"), json::parse(R"({"publication_date_ts": {"$gt": 12345}})"));
}

TEST(ChromaWhere, RangesChromaCannotAnswerExactlyAreInvalidArgument) {
  for (const char* where : {R"({"publication_date": {"$gt": "2025-03-01"}})", R"({"publication_date": {"$lte": "2025-03-01"}})",
                            R"({"publication_date": {"$gte": "2025-03-01T10:00:00Z"}})",
                            R"({"publication_date": {"$gte": 12345}})", R"({"title": {"$gt": "2025-03-01"}})"}) {
    auto filter = parse_filter(std::string_view(where));
    ASSERT_TRUE(filter) << where;
    auto out = chroma_where(*filter);
    ASSERT_FALSE(out) << where << " gave " << out->dump();
    EXPECT_EQ(out.error().code(), ErrorCode::invalid_argument);
  }
}

}  // namespace
}  // namespace vstore::chroma
