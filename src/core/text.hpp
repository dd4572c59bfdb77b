// SPDX-License-Identifier: Apache-2.0
// is_blank_text(): the one "has this text any content" check of articles, queries and embedders.
#pragma once

#include <string_view>

namespace vstore {

/// True when `text` holds no content: it is empty, or every code point is whitespace or a
/// separator (Unicode Z*, e.g. U+00A0 no-break space), a control character (Cc) or a format
/// character (Cf, e.g. U+200B zero-width space, U+FEFF byte order mark). Bytes that are not
/// valid UTF-8 count as content. Pure; thread-safe.
[[nodiscard]] bool is_blank_text(std::string_view text) noexcept;

}  // namespace vstore
