// SPDX-License-Identifier: Apache-2.0
// parse_int64(): std::from_chars with the whole text required, so that a bad number from a
// server or a file is an Error (std::stoll throws, and reads "12x" as 12).
#include "vstore/number_parse.hpp"

#include <charconv>

#include <fmt/format.h>

namespace vstore {

Result<std::int64_t> parse_int64(std::string_view text, std::string_view what) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) {
    // Long texts are cut: the message names the value, not a whole hostile answer.
    const std::string_view shown = text.substr(0, 40);
    return fail(ErrorCode::corruption, fmt::format("expected an integer for {}, not \"{}{}\"", what, shown,
                                                   text.size() > shown.size() ? "..." : ""));
  }
  return value;
}

}  // namespace vstore
