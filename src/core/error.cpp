// SPDX-License-Identifier: Apache-2.0
// Error: names of codes, context prefixes, and the VS_ASSERT failure path.
#include "vstore/error.hpp"

#include <cstdio>
#include <cstdlib>

#include "vstore/result.hpp"

namespace vstore {

std::string_view to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument: return "invalid_argument";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::conflict: return "conflict";
    case ErrorCode::unavailable: return "unavailable";
    case ErrorCode::timeout: return "timeout";
    case ErrorCode::corruption: return "corruption";
    case ErrorCode::internal: return "internal";
  }
  return "internal";
}

Error Error::with_context(std::string_view context) const {
  std::string msg(context);
  msg += ": ";
  msg += m_message;
  return Error(m_code, std::move(msg), m_poisoned);
}

std::string Error::to_string() const {
  std::string out(vstore::to_string(m_code));
  out += ": ";
  out += m_message;
  return out;
}

namespace detail {
void assert_fail(const char* cond, const char* file, int line) noexcept {
  std::fprintf(stderr, "vstore: assertion failed: %s (%s:%d)\n", cond, file, line);
  std::abort();
}
}  // namespace detail

}  // namespace vstore
