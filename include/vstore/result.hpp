// SPDX-License-Identifier: Apache-2.0
/// Result<T>: std::expected<T, Error>, plus the VS_TRY propagation macros.
#pragma once

#include <expected>
#include <utility>

#include "vstore/error.hpp"

namespace vstore {

/// Every fallible library call returns Result<T>; success holds T, failure holds Error.
template <typename T>
using Result = std::expected<T, Error>;

/// Shorthand for a failed Result of any T.
[[nodiscard]] inline std::unexpected<Error> fail(ErrorCode code, std::string message) {
  return std::unexpected<Error>(Error(code, std::move(message)));
}
[[nodiscard]] inline std::unexpected<Error> fail(Error error) {
  return std::unexpected<Error>(std::move(error));
}

}  // namespace vstore

#define VS_CONCAT_INNER(a, b) a##b
#define VS_CONCAT(a, b) VS_CONCAT_INNER(a, b)

/// Evaluates `expr` (a Result); on failure returns its Error from the enclosing function.
#define VS_TRY(expr)                                                    \
  do {                                                                  \
    auto&& vs_try_result_ = (expr);                                     \
    if (!vs_try_result_) {                                              \
      return std::unexpected<::vstore::Error>(std::move(vs_try_result_).error()); \
    }                                                                   \
  } while (false)

/// Evaluates `expr`; on failure returns its Error, else move-assigns the value to `lhs`
/// (which may be a declaration: `VS_TRY_ASSIGN(auto rows, query())`).
#define VS_TRY_ASSIGN(lhs, expr) VS_TRY_ASSIGN_IMPL(VS_CONCAT(vs_try_tmp_, __LINE__), lhs, expr)
#define VS_TRY_ASSIGN_IMPL(tmp, lhs, expr)                              \
  auto tmp = (expr);                                                    \
  if (!tmp) {                                                           \
    return std::unexpected<::vstore::Error>(std::move(tmp).error());    \
  }                                                                     \
  lhs = std::move(*tmp)

/// Asserts a programmer invariant; never for user input or network data.
#define VS_ASSERT(cond) ((cond) ? static_cast<void>(0) : ::vstore::detail::assert_fail(#cond, __FILE__, __LINE__))

namespace vstore::detail {
[[noreturn]] void assert_fail(const char* cond, const char* file, int line) noexcept;
}
