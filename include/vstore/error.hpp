// SPDX-License-Identifier: Apache-2.0
/// Error and ErrorCode: the one error type that crosses every vstore library API.
#pragma once

#include <string>
#include <string_view>

namespace vstore {

/// What kind of failure an Error reports. Callers branch on this, never on message text.
enum class ErrorCode {
  invalid_argument,  ///< the caller's input is wrong (bad filter, wrong dimension, bad config)
  not_found,         ///< a named thing does not exist (article, collection, table)
  conflict,          ///< the operation clashes with existing state (schema already newer, lock held)
  unavailable,       ///< a server could not be reached or went away; may succeed later
  timeout,           ///< a deadline passed (pool wait, statement timeout, HTTP timeout)
  corruption,        ///< stored or received data is malformed (bad file, bad wire value)
  internal,          ///< a bug or an unexpected server answer
};

/// Lower-case name of a code, e.g. "invalid_argument".
[[nodiscard]] std::string_view to_string(ErrorCode code) noexcept;

/// An error: a code, a message that names the offending values, and two properties that tell
/// a caller whether retrying can help and whether the connection it used must be discarded.
/// Messages are lower-case without a final period: "expected 384 dimensions, not 768".
class Error {
 public:
  Error(ErrorCode code, std::string message, bool connection_poisoned = false)
      : m_code(code), m_message(std::move(message)), m_poisoned(connection_poisoned) {}

  [[nodiscard]] ErrorCode code() const noexcept { return m_code; }
  [[nodiscard]] const std::string& message() const noexcept { return m_message; }

  /// True when the same call may succeed if repeated later (unavailable, timeout). Only the
  /// network modules retry, and never a write whose outcome is unknown.
  [[nodiscard]] bool retryable() const noexcept {
    return m_code == ErrorCode::unavailable || m_code == ErrorCode::timeout;
  }

  /// True when the connection that produced this error is no longer usable.
  [[nodiscard]] bool connection_poisoned() const noexcept { return m_poisoned; }

  /// Returns a copy whose message is prefixed with `context: `.
  [[nodiscard]] Error with_context(std::string_view context) const;

  /// "code: message", for logs and the CLI.
  [[nodiscard]] std::string to_string() const;

 private:
  ErrorCode m_code;
  std::string m_message;
  bool m_poisoned;
};

}  // namespace vstore
