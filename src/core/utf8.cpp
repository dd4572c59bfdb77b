// SPDX-License-Identifier: Apache-2.0
// first_invalid_utf8(): one UTF-8 validator for the filter parser and ingest.
#include "vstore/utf8.hpp"

#include <cstdint>

namespace vstore {

std::optional<std::size_t> first_invalid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const auto lead = static_cast<unsigned char>(text[pos]);
    if (lead < 0x80) {
      ++pos;
      continue;
    }
    std::size_t extra = 0;
    std::uint32_t code = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      extra = 1;
      code = lead & 0x1Fu;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      extra = 2;
      code = lead & 0x0Fu;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      extra = 3;
      code = lead & 0x07u;
    } else {
      return pos;
    }
    if (pos + extra >= text.size()) return pos;
    for (std::size_t idx = 1; idx <= extra; ++idx) {
      const auto cont = static_cast<unsigned char>(text[pos + idx]);
      if ((cont & 0xC0u) != 0x80u) return pos;
      code = (code << 6) | (cont & 0x3Fu);
    }
    if ((extra == 2 && code < 0x800) || (extra == 3 && (code < 0x10000 || code > 0x10FFFF)) ||
        (code >= 0xD800 && code <= 0xDFFF)) {
      return pos;
    }
    pos += extra + 1;
  }
  return std::nullopt;
}

}  // namespace vstore
