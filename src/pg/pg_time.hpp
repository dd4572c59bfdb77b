// SPDX-License-Identifier: Apache-2.0
// PostgreSQL's binary timestamptz from date text, for binary COPY written on the client.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace vstore::pg {

/// How text with a time but without a zone is read.
enum class Zoneless {
  utc,      ///< as UTC (the session runs in UTC, as vstore's pool sets it; read_date()'s rule)
  refuse,   ///< not encoded: the caller decides
};

/// Microseconds since 2000-01-01T00:00:00Z (PostgreSQL's binary timestamptz) of any text
/// read_date() (vstore/date.hpp) reads: a date alone is midnight UTC, time and zone are kept.
/// Returns nullopt for text read_date() refuses and, with Zoneless::refuse, for a time without
/// a zone. Pure function; thread-safe.
[[nodiscard]] std::optional<std::int64_t> timestamptz_micros(std::string_view text, Zoneless zoneless);

}  // namespace vstore::pg
