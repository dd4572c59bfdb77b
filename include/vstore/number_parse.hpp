// SPDX-License-Identifier: Apache-2.0
/// parse_int64(): the checked reading of a number that came from a server or a file.
#pragma once

#include <cstdint>
#include <string_view>

#include "vstore/result.hpp"

namespace vstore {

/// The decimal integer `text` spells in full (an optional '-', then digits; no spaces, no
/// trailing characters), within int64. Errors: corruption naming `what` and the text
/// ("expected an integer for the row count, not \"12x\""). Never throws; pure; thread-safe.
[[nodiscard]] Result<std::int64_t> parse_int64(std::string_view text, std::string_view what);

}  // namespace vstore
