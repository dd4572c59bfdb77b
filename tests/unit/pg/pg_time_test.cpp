// SPDX-License-Identifier: Apache-2.0
// timestamptz_micros(): the dates it encodes for binary COPY (those read_date() reads), and the
// ones it refuses.
#include <gtest/gtest.h>

#include "pg/pg_time.hpp"

namespace vstore::pg {
namespace {

TEST(PgTime, EncodesIsoDateTimesAsMicrosecondsSince2000Utc) {
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00:00Z", Zoneless::refuse), 0);
  EXPECT_EQ(timestamptz_micros("2000-01-01", Zoneless::refuse), 0);
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00Z", Zoneless::refuse), 0);
  EXPECT_EQ(timestamptz_micros("1999-12-31T23:59:59.5Z", Zoneless::refuse), -500000);
  EXPECT_EQ(timestamptz_micros("2000-01-01T02:00:00+02:00", Zoneless::refuse), 0);
  EXPECT_EQ(timestamptz_micros("2000-01-01 00:00:01-0130", Zoneless::refuse), 5401000000);
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00:00.000001+00", Zoneless::refuse), 1);
  // 1987-02-26T15:01:01Z is Unix 541350061, 2000-01-01 is Unix 946684800.
  EXPECT_EQ(timestamptz_micros("1987-02-26T15:01:01Z", Zoneless::refuse), (541350061LL - 946684800LL) * 1000000);
  EXPECT_EQ(timestamptz_micros("2024-02-29T12:00:00Z", Zoneless::refuse),
            (1709208000LL - 946684800LL) * 1000000);
}

TEST(PgTime, ZonelessTextIsUtcOnlyWhenAskedFor) {
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00:07", Zoneless::utc), 7000000);
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00:07", Zoneless::refuse), std::nullopt);
}

// The forms of read_date() beyond ISO 8601 numbers, and fractions rounded to microseconds.
TEST(PgTime, ReadsWhatTheSharedDateReaderReads) {
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00:00.1234567Z", Zoneless::refuse), 123457);
  EXPECT_EQ(timestamptz_micros("2000-01-01T00:00:00 UTC", Zoneless::refuse), 0);
  EXPECT_EQ(timestamptz_micros("26 Feb 1987", Zoneless::refuse), (541296000LL - 946684800LL) * 1000000);
}

TEST(PgTime, RefusesEverythingElse) {
  for (const char* text : {"", "2000", "2001-02-29", "2000-13-01", "2000-01-00", "2000-01-01T24:00:00Z",
                           "2000-01-01T00:60:00Z", "2000-01-01T00:00:60Z", "2000-01-01T00:00:00.Z",
                           "2000-01-01T00:00:00+16:00", "2000-01-01X00:00:00Z", "2000-01-01T00:00:00Zjunk",
                           "99999-01-01", "2000-01-01 BC"}) {
    EXPECT_EQ(timestamptz_micros(text, Zoneless::utc), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace vstore::pg
