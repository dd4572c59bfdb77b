// SPDX-License-Identifier: Apache-2.0
// PostgreSQL's binary timestamptz from ISO 8601 text, for binary COPY written on the client.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vstore::pg {

/// How text without a zone is read.
enum class Zoneless {
  utc,      ///< as UTC (the session runs in UTC, as vstore's pool sets it)
  refuse,   ///< not encoded: the server's TimeZone decides, through a text cast
};

/// Microseconds since 2000-01-01T00:00:00Z (PostgreSQL's binary timestamptz) of
/// "YYYY-MM-DD" (midnight UTC) or "YYYY-MM-DD(T| )HH:MM[:SS[.f{1,6}]][Z|+hh|+hh:mm|+hhmm|-...]".
/// Returns nullopt for anything else, including more than 6 fraction digits (PostgreSQL rounds
/// them; the caller lets the server parse such text) and, with Zoneless::refuse, a time without
/// a zone. Pure function; thread-safe.
[[nodiscard]] std::optional<std::int64_t> timestamptz_micros(std::string_view text, Zoneless zoneless);

}  // namespace vstore::pg
