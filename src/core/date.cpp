// SPDX-License-Identifier: Apache-2.0
// read_date(): the one reader of date text (see date.hpp for the accepted forms).
//
// Design: a cursor walks the trimmed text once. The first characters choose the form: four
// digits and '-' or '/' an ISO 8601 or YYYY/MM/DD date; one or two digits a day-first form
// (DD-MM-YYYY, DD/MM/YYYY, RFC 2822 `DD Mon YYYY ...`); a letter a weekday (RFC 2822) or a
// month name (`Month DD, YYYY`). Every form must consume the whole text; what is left over is
// an error, never ignored, so a date is stored as given or not at all.
#include "vstore/date.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>
#include <expected>
#include <optional>

#include <fmt/format.h>

namespace vstore {
namespace {

constexpr std::int64_t k_micros_per_second = 1'000'000;
constexpr std::string_view k_forms =
    "expected a form such as 2025-07-03T12:00:00+02:00 or Thu, 03 Jul 2025 12:00 GMT";
constexpr std::int64_t k_seconds_per_day = 86'400;

constexpr std::array<std::string_view, 12> k_month_names = {
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november",
    "december"};

struct ZoneName {
  std::string_view name;
  int minutes_east;
};
constexpr ZoneName k_zone_names[] = {
    {"utc", 0},        {"gmt", 0},        {"ut", 0},         {"z", 0},          {"est", -5 * 60}, {"edt", -4 * 60},
    {"cst", -6 * 60},  {"cdt", -5 * 60},  {"mst", -7 * 60},  {"mdt", -6 * 60},  {"pst", -8 * 60}, {"pdt", -7 * 60},
    {"akst", -9 * 60}, {"akdt", -8 * 60}, {"hst", -10 * 60}, {"cet", 60},       {"cest", 120},    {"eet", 120},
    {"eest", 180},     {"wet", 0},        {"west", 60},      {"jst", 9 * 60}};

std::string lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  return out;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_space(char c) { return c == ' ' || c == '\t'; }

struct Cursor {
  std::string_view text;
  std::size_t pos = 0;

  [[nodiscard]] bool done() const { return pos == text.size(); }
  [[nodiscard]] char peek(std::size_t ahead = 0) const { return pos + ahead < text.size() ? text[pos + ahead] : '\0'; }
  bool eat(char c) {
    if (peek() != c || done()) return false;
    ++pos;
    return true;
  }
  // One or more blanks; false when there is none.
  bool spaces() {
    const std::size_t start = pos;
    while (!done() && is_space(text[pos])) ++pos;
    return pos != start;
  }
  // Between `min` and `max` digits (as many as there are, up to max).
  std::optional<int> number(std::size_t min, std::size_t max) {
    std::size_t n = 0;
    int value = 0;
    while (n < max && is_digit(peek())) {
      value = value * 10 + (text[pos] - '0');
      ++pos;
      ++n;
    }
    if (n < min) return std::nullopt;
    return value;
  }
  std::string_view word() {
    const std::size_t start = pos;
    while (is_alpha(peek())) ++pos;
    return text.substr(start, pos - start);
  }
  [[nodiscard]] std::size_t digits_ahead() const {
    std::size_t n = 0;
    while (is_digit(peek(n))) ++n;
    return n;
  }
};

struct Failure {
  std::string reason;
};
template <class T>
using Parsed = std::expected<T, Failure>;

std::unexpected<Failure> bad(std::string reason) { return std::unexpected(Failure{std::move(reason)}); }

std::optional<int> month_of(std::string_view name) {
  const std::string l = lower(name);
  for (std::size_t idx = 0; idx < k_month_names.size(); ++idx) {
    if (l == k_month_names[idx] || (l.size() == 3 && l == k_month_names[idx].substr(0, 3))) {
      return static_cast<int>(idx) + 1;
    }
  }
  return std::nullopt;
}

Parsed<std::int64_t> day_micros(int year, int month, int day) {
  if (year < 1) return bad("years before 1 AD are not supported");
  if (year > 9999) return bad("years after 9999 are not supported");
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) return bad(fmt::format("there is no day {:04d}-{:02d}-{:02d}", year, month, day));
  return static_cast<std::int64_t>(sys_days{ymd}.time_since_epoch().count()) * k_seconds_per_day * k_micros_per_second;
}

// HH:MM[:SS[.fraction]] as microseconds since midnight.
Parsed<std::int64_t> time_of_day(Cursor& c) {
  const auto hour = c.number(2, 2);
  if (!hour || !c.eat(':')) return bad("expected a time HH:MM[:SS]");
  const auto minute = c.number(2, 2);
  if (!minute) return bad("expected a time HH:MM[:SS]");
  int second = 0;
  std::int64_t micros = 0;
  if (c.eat(':')) {
    const auto s = c.number(2, 2);
    if (!s) return bad("expected seconds after HH:MM:");
    second = *s;
    if (c.eat('.') || c.eat(',')) {
      const std::size_t n = c.digits_ahead();
      if (n == 0 || n > 9) return bad("a fraction of a second needs 1 to 9 digits");
      for (std::size_t idx = 0; idx < 6; ++idx) micros = micros * 10 + (idx < n ? c.peek(idx) - '0' : 0);
      if (n > 6 && c.peek(6) >= '5') ++micros;  // rounded to microseconds, as PostgreSQL keeps them
      c.pos += n;
    }
  }
  if (*hour > 23 || *minute > 59 || second > 59) {
    return bad(fmt::format("there is no time {:02d}:{:02d}:{:02d}", *hour, *minute, second));
  }
  return (static_cast<std::int64_t>(*hour) * 3600 + *minute * 60 + second) * k_micros_per_second + micros;
}

// A numeric offset +HH, +HHMM or +HH:MM (or '-'), as minutes east of UTC.
Parsed<int> numeric_zone(Cursor& c) {
  const int sign = c.peek() == '-' ? -1 : 1;
  ++c.pos;
  const auto hours = c.number(2, 2);
  if (!hours) return bad("expected a zone offset +HH, +HHMM or +HH:MM");
  int minutes = 0;
  if (c.eat(':') || is_digit(c.peek())) {
    const auto m = c.number(2, 2);
    if (!m) return bad("expected a zone offset +HH, +HHMM or +HH:MM");
    minutes = *m;
  }
  if (*hours > 15 || minutes > 59) return bad(fmt::format("there is no zone offset {:02d}:{:02d}", *hours, minutes));
  return sign * (*hours * 60 + minutes);
}

Parsed<int> named_zone(std::string_view name) {
  const std::string l = lower(name);
  if (l == "bc") return bad("years before 1 AD are not supported");
  for (const auto& zone : k_zone_names) {
    if (zone.name == l) return zone.minutes_east;
  }
  return bad(fmt::format("unknown time zone \"{}\"; use an offset such as +02:00", name));
}

// After a date (and a blank or 'T'): a time, then an optional zone, then the end.
Parsed<DateTime> time_and_zone(Cursor& c, std::int64_t day) {
  DateTime out;
  const auto time = time_of_day(c);
  if (!time) return std::unexpected(time.error());
  out.has_time = true;
  out.epoch_micros = day + *time;
  const bool blank = c.spaces();
  if (c.done()) return out;
  int minutes_east = 0;
  if (c.peek() == '+' || c.peek() == '-') {
    const auto zone = numeric_zone(c);
    if (!zone) return std::unexpected(zone.error());
    minutes_east = *zone;
  } else if (!blank && c.peek() == 'Z') {
    ++c.pos;
  } else if (blank && is_alpha(c.peek())) {
    const auto zone = named_zone(c.word());
    if (!zone) return std::unexpected(zone.error());
    minutes_east = *zone;
  } else {
    return bad("unexpected text after the time");
  }
  c.spaces();
  if (!c.done()) return bad("unexpected text after the zone");
  out.has_zone = true;
  out.epoch_micros -= static_cast<std::int64_t>(minutes_east) * 60 * k_micros_per_second;
  return out;
}

DateTime midnight(std::int64_t day) { return DateTime{day, false, false}; }

// YYYY-MM-DD[...] or YYYY/MM/DD.
Parsed<DateTime> year_first(Cursor& c) {
  if (c.digits_ahead() > 4) return bad("years after 9999 are not supported");
  const int year = *c.number(4, 4);
  const char sep = c.peek();
  if (sep != '-' && sep != '/') return bad("expected YYYY-MM-DD");
  ++c.pos;
  const auto month = sep == '-' ? c.number(2, 2) : c.number(1, 2);
  if (!month || !c.eat(sep)) return bad(sep == '-' ? "expected YYYY-MM-DD" : "expected YYYY/MM/DD");
  const auto dom = sep == '-' ? c.number(2, 2) : c.number(1, 2);
  if (!dom || is_digit(c.peek())) return bad(sep == '-' ? "expected YYYY-MM-DD" : "expected YYYY/MM/DD");
  const auto day = day_micros(year, *month, *dom);
  if (!day) return std::unexpected(day.error());
  if (c.done()) return midnight(*day);
  if (sep == '/') return bad("unexpected text after the date");
  if (c.eat('T')) return time_and_zone(c, *day);
  if (c.spaces()) {
    if (c.done()) return midnight(*day);
    if (is_digit(c.peek())) return time_and_zone(c, *day);
    if (lower(c.word()) == "bc") return bad("years before 1 AD are not supported");
  }
  return bad("unexpected text after the date");
}

// DD-MM-YYYY, DD/MM/YYYY or RFC 2822's `DD Mon YYYY [HH:MM[:SS] [zone]]`.
Parsed<DateTime> day_first(Cursor& c) {
  const int dom = *c.number(1, 2);
  const char sep = c.peek();
  if (sep == '-' || sep == '/') {
    ++c.pos;
    const auto month = c.number(1, 2);
    if (!month || !c.eat(sep) || c.digits_ahead() != 4) return bad("expected DD-MM-YYYY or DD/MM/YYYY");
    const int year = *c.number(4, 4);
    if (!c.done()) return bad("unexpected text after the date");
    const auto day = day_micros(year, *month, dom);
    if (!day) return std::unexpected(day.error());
    return midnight(*day);
  }
  if (!c.spaces()) return bad("expected DD-MM-YYYY, DD/MM/YYYY or DD Month YYYY");
  const auto month = month_of(c.word());
  if (!month || !c.spaces() || c.digits_ahead() != 4) return bad("expected DD Month YYYY");
  const int year = *c.number(4, 4);
  const auto day = day_micros(year, *month, dom);
  if (!day) return std::unexpected(day.error());
  const bool blank = c.spaces();
  if (c.done()) return midnight(*day);
  if (!blank) return bad("unexpected text after the date");
  if (lower(c.word()) == "bc") return bad("years before 1 AD are not supported");
  return time_and_zone(c, *day);
}

// `Thu, DD Mon YYYY ...` (RFC 2822) or `Month DD, YYYY`.
Parsed<DateTime> word_first(Cursor& c) {
  const std::string_view first = c.word();
  if (c.eat(',')) {  // a weekday
    static constexpr std::string_view k_days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    const std::string l = lower(first).substr(0, 3);
    if (std::find(std::begin(k_days), std::end(k_days), l) == std::end(k_days)) {
      return bad(fmt::format("it does not start with a date; {}", k_forms));
    }
    c.spaces();
    if (!is_digit(c.peek())) return bad("expected DD Mon YYYY after the weekday");
    return day_first(c);
  }
  const auto month = month_of(first);
  if (!month) return bad(fmt::format("it does not start with a date; {}", k_forms));
  if (!c.spaces()) return bad("expected Month DD, YYYY");
  const auto dom = c.number(1, 2);
  if (!dom || !c.eat(',') || !c.spaces() || c.digits_ahead() != 4) return bad("expected Month DD, YYYY");
  const int year = *c.number(4, 4);
  if (!c.done()) return bad("unexpected text after the date");
  const auto day = day_micros(year, *month, *dom);
  if (!day) return std::unexpected(day.error());
  return midnight(*day);
}

}  // namespace

Result<DateTime> read_date(std::string_view text) {
  std::size_t first = 0;
  std::size_t last = text.size();
  while (first < last && std::isspace(static_cast<unsigned char>(text[first]))) ++first;
  while (last > first && std::isspace(static_cast<unsigned char>(text[last - 1]))) --last;
  Cursor c{text.substr(first, last - first)};
  Parsed<DateTime> parsed = bad("");
  if (c.done()) {
    parsed = bad("it is empty");
  } else if (c.digits_ahead() >= 4) {
    parsed = year_first(c);
  } else if (c.digits_ahead() >= 1) {
    parsed = day_first(c);
  } else if (is_alpha(c.peek())) {
    parsed = word_first(c);
  } else {
    parsed = bad(fmt::format("it does not start with a date; {}", k_forms));
  }
  if (parsed) return *parsed;
  std::size_t cut = std::min<std::size_t>(text.size(), 40);
  while (cut < text.size() && cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) --cut;
  std::string shown(text.substr(0, cut));
  for (char& ch : shown) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == '"' || ch == '\\') ch = '?';
  }
  return fail(ErrorCode::invalid_argument,
              fmt::format("cannot read \"{}{}\" as a date: {}", shown, cut < text.size() ? "..." : "",
                          parsed.error().reason));
}

std::string iso8601_utc_micros(std::int64_t epoch_micros) {
  using namespace std::chrono;
  const sys_time<microseconds> tp{microseconds{epoch_micros}};
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  std::string out = fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}", static_cast<int>(ymd.year()),
                                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                                hms.hours().count(), hms.minutes().count(), hms.seconds().count());
  if (hms.subseconds().count() != 0) out += fmt::format(".{:06d}", hms.subseconds().count());
  out += 'Z';
  return out;
}

}  // namespace vstore
