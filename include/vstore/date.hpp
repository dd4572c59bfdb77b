// SPDX-License-Identifier: Apache-2.0
/// read_date(): the one reader of date text, used by ingest (publication_date and
/// publication_date_ts), the `where` filter parser and migrate-chroma.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vstore/result.hpp"

namespace vstore {

/// A point in time read from text.
struct DateTime {
  std::int64_t epoch_micros = 0;  ///< microseconds since 1970-01-01T00:00:00Z
  bool has_time = false;          ///< the text gave a time of day (else it is midnight UTC)
  bool has_zone = false;          ///< the text gave a zone (a time without one is read as UTC)
};

/// Reads a date, keeping its time and zone. Leading and trailing white space is ignored.
/// Accepted, for years 0001..9999 (AD) only:
/// - `YYYY-MM-DD`, optionally followed by `T` or a space and `HH:MM[:SS[.fraction]]` (up to 9
///   fraction digits, rounded to microseconds), then optionally a zone: `Z`, `+HH`, `+HHMM`,
///   `+HH:MM` (or `-`), or after a space one of UTC GMT UT Z EST EDT CST CDT MST MDT PST PDT
///   AKST AKDT HST CET CEST EET EEST WET WEST JST;
/// - RFC 2822, as feeds write it: `[Thu, ]03 Jul 2025 12:00[:00] GMT` (or `+0000`, or one of
///   the names above);
/// - the date-only forms of the code being replaced, at midnight UTC: `YYYY/MM/DD`,
///   `DD-MM-YYYY`, `DD/MM/YYYY`, `Month DD, YYYY`, `DD Month YYYY`, `DD Mon YYYY`.
/// A time without a zone is UTC (vstore's sessions run in UTC; the old code read naive times
/// as UTC too). Nothing is guessed: a date with anything else around it ("99999-01-01",
/// "2025-07-03 (updated)", "4713-01-01 BC") is refused rather than read as another date.
/// Errors: invalid_argument `cannot read "TEXT" as a date: REASON`. Pure; thread-safe.
[[nodiscard]] Result<DateTime> read_date(std::string_view text);

/// ISO 8601 UTC text of an instant: `YYYY-MM-DDTHH:MM:SSZ`, with `.ffffff` when the
/// microseconds are not zero. read_date() reads it back to the same instant. Pure; thread-safe.
[[nodiscard]] std::string iso8601_utc_micros(std::int64_t epoch_micros);

}  // namespace vstore
