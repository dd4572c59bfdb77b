// SPDX-License-Identifier: Apache-2.0
// run_process(): starts a program with an argument vector (posix_spawn, never a shell) and waits.
#pragma once

#include <span>
#include <string>

#include "vstore/result.hpp"

namespace vstore {

/// What run_process() does with the child's standard output. Default: shared with the caller.
struct ProcessOptions {
  bool discard_stdout = false;  ///< send the child's standard output to /dev/null. Default false.
};

/// Runs `argv[0]` (a path; or a name searched in PATH when it has no '/') with the arguments
/// `argv[1..]` exactly as given (no shell: spaces, quotes and `$` in them are plain text), in the
/// caller's environment and working directory, standard input from /dev/null, and waits for it.
/// Returns its exit status (0..255). Errors: invalid_argument (empty argv), unavailable (it
/// could not be started, naming the program and the reason), internal (it was killed by a
/// signal, naming the program and the signal). Thread-safe (uses posix_spawn, not fork).
[[nodiscard]] Result<int> run_process(std::span<const std::string> argv, const ProcessOptions& options = {});

}  // namespace vstore
