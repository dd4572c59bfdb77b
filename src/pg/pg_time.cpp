// SPDX-License-Identifier: Apache-2.0
// timestamptz_micros(): a strict ISO 8601 reader for the binary COPY paths (store and migration).
#include "pg/pg_time.hpp"

#include <chrono>

namespace vstore::pg {
namespace {

constexpr std::int64_t k_pg_epoch_unix_s = 946684800;  // 2000-01-01T00:00:00Z

// The number in text[pos, pos + n) if all of it is digits.
std::optional<int> digits(std::string_view text, std::size_t pos, std::size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    v = v * 10 + (text[i] - '0');
  }
  return v;
}

// Seconds east of UTC of a zone "Z", "+hh", "+hh:mm" or "+hhmm" (or "-...") that ends the text.
std::optional<std::int64_t> zone_offset(std::string_view zone) {
  if (zone == "Z") return 0;
  if (zone.empty() || (zone[0] != '+' && zone[0] != '-')) return std::nullopt;
  const auto hours = digits(zone, 1, 2);
  if (!hours) return std::nullopt;
  std::size_t pos = 3;
  int minutes = 0;
  if (pos < zone.size()) {
    if (zone[pos] == ':') ++pos;
    const auto m = digits(zone, pos, 2);
    if (!m) return std::nullopt;
    minutes = *m;
    pos += 2;
  }
  if (pos != zone.size() || *hours > 15 || minutes > 59) return std::nullopt;
  return (zone[0] == '-' ? -1 : 1) * static_cast<std::int64_t>(*hours * 3600 + minutes * 60);
}

}  // namespace

std::optional<std::int64_t> timestamptz_micros(std::string_view text, Zoneless zoneless) {
  if (text.size() < 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  const auto y = digits(text, 0, 4);
  const auto mo = digits(text, 5, 2);
  const auto d = digits(text, 8, 2);
  if (!y || !mo || !d) return std::nullopt;
  const std::chrono::year_month_day ymd{std::chrono::year{*y}, std::chrono::month{static_cast<unsigned>(*mo)},
                                        std::chrono::day{static_cast<unsigned>(*d)}};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t seconds = std::chrono::sys_days{ymd}.time_since_epoch().count() * std::int64_t{86400};
  std::int64_t micros = 0;
  if (text.size() > 10) {
    if (text[10] != 'T' && text[10] != ' ') return std::nullopt;
    const auto h = digits(text, 11, 2);
    const auto mi = digits(text, 14, 2);
    if (!h || !mi || text[13] != ':' || *h > 23 || *mi > 59) return std::nullopt;
    std::size_t pos = 16;
    int sec = 0;
    if (pos < text.size() && text[pos] == ':') {
      const auto s = digits(text, pos + 1, 2);
      if (!s || *s > 59) return std::nullopt;
      sec = *s;
      pos += 3;
      if (pos < text.size() && text[pos] == '.') {
        ++pos;
        std::size_t n = 0;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
          if (n == 6) return std::nullopt;  // finer than PostgreSQL keeps: the server rounds it
          micros = micros * 10 + (text[pos] - '0');
          ++n;
          ++pos;
        }
        if (n == 0) return std::nullopt;
        for (; n < 6; ++n) micros *= 10;
      }
    }
    seconds += *h * 3600 + *mi * 60 + sec;
    if (pos == text.size()) {
      if (zoneless == Zoneless::refuse) return std::nullopt;
    } else {
      const auto offset = zone_offset(text.substr(pos));
      if (!offset) return std::nullopt;
      seconds -= *offset;
    }
  }
  return (seconds - k_pg_epoch_unix_s) * 1000000 + micros;
}

}  // namespace vstore::pg
