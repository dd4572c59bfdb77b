// SPDX-License-Identifier: Apache-2.0
// is_blank_text(): a Unicode-aware blank check over utf8proc's general categories.
#include "core/text.hpp"

#include <utf8proc.h>

namespace vstore {

bool is_blank_text(std::string_view text) noexcept {
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  auto left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    // ASCII first: most texts have a printable ASCII character within a few bytes.
    const unsigned char byte = *bytes;
    if (byte < 0x80) {
      if (byte > 0x20 && byte != 0x7f) return false;
      ++bytes;
      --left;
      continue;
    }
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(bytes, left, &cp);
    if (used <= 0) return false;  // not UTF-8: treated as content
    switch (utf8proc_category(cp)) {
      case UTF8PROC_CATEGORY_ZS:
      case UTF8PROC_CATEGORY_ZL:
      case UTF8PROC_CATEGORY_ZP:
      case UTF8PROC_CATEGORY_CC:
      case UTF8PROC_CATEGORY_CF:
        break;
      default:
        return false;
    }
    bytes += used;
    left -= used;
  }
  return true;
}

}  // namespace vstore
