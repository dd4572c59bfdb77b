// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 13b through the functions ingest and the filter use: publication_date_ts()
// (the stored epoch) and parse_filter() (the `--where` dates) read dates alike, keeping time
// and zone, and never turn a date they cannot read into another date.
#include <gtest/gtest.h>

#include "vstore/article.hpp"
#include "vstore/filter.hpp"

namespace vstore {
namespace {

bool filter_takes(const std::string& date) {
  nlohmann::json where = {{"publication_date", {{"$gte", date}}}};
  return parse_filter(where).has_value();
}

TEST(Issue21Dates, Item13bAFiveDigitYearIsNotReadAsAnotherDate) {
  EXPECT_EQ(publication_date_ts("99999-01-01"), std::nullopt);
  EXPECT_EQ(publication_date_ts("x99999-01-01"), std::nullopt);
}

TEST(Issue21Dates, Item13bABcDateIsNotStoredAsAd) {
  EXPECT_EQ(publication_date_ts("4713-01-01 BC"), std::nullopt);
  EXPECT_EQ(publication_date_ts("0044-03-15 BC"), std::nullopt);
}

TEST(Issue21Dates, Item13bTimeAndZoneAreKeptInEveryForm) {
  // 1987-03-01T12:00:00Z = 541598400
  EXPECT_EQ(publication_date_ts("1987-03-01T12:00:00Z"), 541598400);
  EXPECT_EQ(publication_date_ts("1987-03-01T12:00:00"), 541598400);
  EXPECT_EQ(publication_date_ts("1987-03-01 12:00:00"), 541598400);
  EXPECT_EQ(publication_date_ts("1987-03-01 12:00:00 PST"), 541598400 + 8 * 3600);
  EXPECT_EQ(publication_date_ts("1987-03-01 12:00:00-08:00"), 541598400 + 8 * 3600);
  EXPECT_EQ(publication_date_ts("1987-03-01T12:00:00+0100"), 541598400 - 3600);
  EXPECT_EQ(publication_date_ts("Sun, 01 Mar 1987 12:00:00 GMT"), 541598400);
  // A date alone is midnight UTC, as the old code stored it.
  EXPECT_EQ(publication_date_ts("1987-03-01"), 541555200);
  EXPECT_EQ(publication_date_ts("01/03/1987"), 541555200);
  EXPECT_EQ(publication_date_ts("March 1, 1987"), 541555200);
  EXPECT_EQ(publication_date_ts("1 Mar 1987"), 541555200);
}

TEST(Issue21Dates, Item13bTextThatIsNotADateGivesNoDate) {
  for (const char* text : {"not a date", "2025-07-03 (updated)", "2025-02-30", "1987-03-01T25:00:00Z",
                           "1987-03-01 12:00:00 XYZ", "published 2025-07-03"}) {
    EXPECT_EQ(publication_date_ts(text), std::nullopt) << text;
  }
}

TEST(Issue21Dates, Item13bTheFilterReadsEveryDateIngestReads) {
  for (const char* text : {"1987-03-01", "1987-03-01T12:00:00Z", "1987-03-01 12:00:00", "1987-03-01 12:00:00 PST",
                           "Sun, 01 Mar 1987 12:00:00 GMT", "01/03/1987", "March 1, 1987", "1 Mar 1987",
                           "1987/03/01"}) {
    ASSERT_TRUE(publication_date_ts(text).has_value()) << text;
    EXPECT_TRUE(filter_takes(text)) << text;
  }
  for (const char* text : {"not a date", "99999-01-01", "4713-01-01 BC"}) {
    EXPECT_FALSE(filter_takes(text)) << text;
  }
}

}  // namespace
}  // namespace vstore
