// SPDX-License-Identifier: Apache-2.0
// Starting a server on a port vstore chose itself: the port can be taken by another process
// between the check and the server's bind, and then a new free port is tried.
#pragma once

#include <functional>

#include <fmt/format.h>

#include "vstore/result.hpp"

namespace vstore::pg {

/// What one start attempt on a port gave: started, or the server said its port was taken.
enum class PortAttempt { started, port_taken };

/// Calls `attempt(port)` from `first_port` on. When it reports port_taken and `may_change` (the
/// caller named no port), `pick()` gives the next port (0: none free), up to `max_attempts` in
/// all. Returns the port the server started on. Errors: the attempt's own, or unavailable when
/// the port stayed taken (a named port is never changed).
inline Result<int> start_on_free_port(int first_port, bool may_change, int max_attempts,
                                      const std::function<int()>& pick,
                                      const std::function<Result<PortAttempt>(int)>& attempt) {
  int port = first_port;
  for (int n = 1;; ++n) {
    VS_TRY_ASSIGN(const PortAttempt got, attempt(port));
    if (got == PortAttempt::started) return port;
    if (!may_change) {
      return fail(ErrorCode::unavailable, fmt::format("port {} is taken by another process", port));
    }
    if (n >= max_attempts) {
      return fail(ErrorCode::unavailable,
                  fmt::format("{} ports in a row were taken by other processes (the last {})", n, port));
    }
    port = pick();
    if (port == 0) return fail(ErrorCode::unavailable, "no free loopback port for postgresql");
  }
}

}  // namespace vstore::pg
