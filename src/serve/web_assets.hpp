// SPDX-License-Identifier: Apache-2.0
// The web page's files (web/), compiled into the binary by cmake/embed_web.cmake.
#pragma once

#include <cstddef>
#include <span>

namespace vstore::serve {

struct WebAsset {
  const char* path;          ///< "/index.html", "/app.js", ...
  const char* content_type;  ///< with its charset
  const unsigned char* data;
  std::size_t size;
};

/// Every file of web/, in the order CMake lists them.
[[nodiscard]] std::span<const WebAsset> web_assets();

}  // namespace vstore::serve
