// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 13b: read_date(), the one date reader of ingest, the filters and migration.
#include <gtest/gtest.h>

#include "vstore/date.hpp"

namespace vstore {
namespace {

constexpr std::int64_t k_s = 1000000;
constexpr std::int64_t k_noon = 541598400;  // 1987-03-01T12:00:00Z

std::int64_t micros(std::string_view text) {
  auto d = read_date(text);
  EXPECT_TRUE(d.has_value()) << text << ": " << (d ? "" : d.error().message());
  return d ? d->epoch_micros : -1;
}

std::string refusal(std::string_view text) {
  auto d = read_date(text);
  EXPECT_FALSE(d.has_value()) << text << " read as " << (d ? iso8601_utc_micros(d->epoch_micros) : "");
  if (d) return {};
  EXPECT_EQ(d.error().code(), ErrorCode::invalid_argument);
  return d.error().message();
}

TEST(Issue21DateReader, Item13bAFiveDigitYearIsRefusedNotReadAsAnotherDate) {
  EXPECT_NE(refusal("99999-01-01").find("years after 9999"), std::string::npos);
}

TEST(Issue21DateReader, Item13bABcDateIsRefusedNotReadAsAd) {
  EXPECT_NE(refusal("4713-01-01 BC").find("before 1 AD"), std::string::npos);
  EXPECT_NE(refusal("4713-01-01 12:00:00 BC").find("before 1 AD"), std::string::npos);
  EXPECT_NE(refusal("1 Jan 4713 BC").find("before 1 AD"), std::string::npos);
}

TEST(Issue21DateReader, Item13bTheTimeAndTheZoneAreKept) {
  EXPECT_EQ(micros("1987-03-01T12:00:00Z"), k_noon * k_s);
  EXPECT_EQ(micros("1987-03-01 12:00:00"), k_noon * k_s);  // no zone: UTC
  EXPECT_EQ(micros("1987-03-01 12:00:00 PST"), (k_noon + 8 * 3600) * k_s);
  EXPECT_EQ(micros("1987-03-01 12:00:00 pdt"), (k_noon + 7 * 3600) * k_s);
  EXPECT_EQ(micros("1987-03-01T12:00:00-08:00"), (k_noon + 8 * 3600) * k_s);
  EXPECT_EQ(micros("1987-03-01T12:00+0530"), (k_noon - 5 * 3600 - 1800) * k_s);
  EXPECT_EQ(micros("1987-03-01 12:00:00.25 +01"), (k_noon - 3600) * k_s + 250000);
  EXPECT_EQ(micros("Sun, 01 Mar 1987 12:00:00 GMT"), k_noon * k_s);
  EXPECT_EQ(micros("01 Mar 1987 12:00 +0000"), k_noon * k_s);
  auto zoned = read_date("1987-03-01 12:00:00 PST");
  ASSERT_TRUE(zoned.has_value());
  EXPECT_TRUE(zoned->has_time);
  EXPECT_TRUE(zoned->has_zone);
  auto naive = read_date("1987-03-01 12:00:00");
  ASSERT_TRUE(naive.has_value());
  EXPECT_TRUE(naive->has_time);
  EXPECT_FALSE(naive->has_zone);
}

TEST(Issue21DateReader, Item13bADateAloneIsMidnightUtcInEveryForm) {
  const std::int64_t midnight = 541555200 * k_s;
  for (const char* text : {"1987-03-01", " 1987-03-01 ", "1987/03/01", "1987/3/1", "01-03-1987", "1/3/1987",
                           "March 1, 1987", "1 March 1987", "01 Mar 1987", "Sun, 1 Mar 1987"}) {
    EXPECT_EQ(micros(text), midnight) << text;
    EXPECT_FALSE(read_date(text)->has_time) << text;
  }
}

TEST(Issue21DateReader, Item13bTextThatIsNotADateIsRefusedWithTheValueAndAReason) {
  const std::string message = refusal("not a date");
  EXPECT_NE(message.find("\"not a date\""), std::string::npos) << message;
  EXPECT_NE(message.find("expected a form such as 2025-07-03T12:00:00+02:00"), std::string::npos) << message;
  for (const char* text : {"", "2025-07-03 (updated)", "published 2025-07-03", "2025-02-30", "2025-13-01",
                           "1987-03-01T25:00:00Z", "1987-03-01T12:60", "1987-03-01 12:00:00 XYZ",
                           "1987-03-01T12:00:00+16:00", "1987-03-01T12:00:00.1234567890Z", "1987-03-01Z",
                           "2025-07-03x", "Thu, 2025-07-03", "Funday, 03 Jul 2025", "July 3 2025", "0000-01-01"}) {
    refusal(text);
  }
  EXPECT_NE(refusal("1987-03-01 12:00:00 XYZ").find("unknown time zone \"XYZ\""), std::string::npos);
}

TEST(Issue21DateReader, FractionsAreRoundedToMicroseconds) {
  EXPECT_EQ(micros("2000-01-01T00:00:00.1234565Z") % k_s, 123457);
  EXPECT_EQ(micros("2000-01-01T00:00:00.1234564Z") % k_s, 123456);
  EXPECT_EQ(micros("2000-01-01T00:00:00.000001Z") % k_s, 1);
}

TEST(Issue21DateReader, Iso8601UtcMicrosReadsBackToTheSameInstant) {
  for (std::int64_t us : {std::int64_t{0}, k_noon * k_s, k_noon * k_s + 250000, std::int64_t{-1},
                          std::int64_t{-62135596800} * k_s, std::int64_t{253402300799} * k_s + 999999}) {
    const std::string text = iso8601_utc_micros(us);
    EXPECT_EQ(micros(text), us) << text;
  }
  EXPECT_EQ(iso8601_utc_micros(k_noon * k_s), "1987-03-01T12:00:00Z");
  EXPECT_EQ(iso8601_utc_micros(k_noon * k_s + 5), "1987-03-01T12:00:00.000005Z");
  EXPECT_EQ(iso8601_utc_micros(-1), "1969-12-31T23:59:59.999999Z");
}

}  // namespace
}  // namespace vstore
