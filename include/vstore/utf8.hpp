// SPDX-License-Identifier: Apache-2.0
/// first_invalid_utf8(): where text stops being valid UTF-8 (filters, ingest's line check).
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>

namespace vstore {

/// The offset of the first byte of `text` that does not start a valid UTF-8 sequence (a stray
/// continuation byte, a truncated sequence, an overlong form, a surrogate or a code point above
/// U+10FFFF), or nullopt when all of `text` is valid UTF-8. Pure; thread-safe.
[[nodiscard]] std::optional<std::size_t> first_invalid_utf8(std::string_view text);

}  // namespace vstore
