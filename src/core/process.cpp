// SPDX-License-Identifier: Apache-2.0
// run_process(): posix_spawnp with an argument vector, then waitpid (retried on EINTR).
#include "core/process.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

extern char** environ;

namespace vstore {

Result<int> run_process(std::span<const std::string> argv, const ProcessOptions& options) {
  if (argv.empty() || argv.front().empty()) {
    return fail(ErrorCode::invalid_argument, "run_process needs a program to run, not an empty argument vector");
  }
  std::vector<std::string> args(argv.begin(), argv.end());  // posix_spawn takes char* const[]
  std::vector<char*> c_args;
  c_args.reserve(args.size() + 1);
  for (std::string& arg : args) c_args.push_back(arg.data());
  c_args.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  if (posix_spawn_file_actions_init(&actions) != 0) {
    return fail(ErrorCode::unavailable, fmt::format("cannot start {}: out of memory", argv.front()));
  }
  int rc = posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (rc == 0 && options.discard_stdout) {
    rc = posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  }
  pid_t pid = -1;
  if (rc == 0) rc = posix_spawnp(&pid, c_args.front(), &actions, nullptr, c_args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return fail(ErrorCode::unavailable, fmt::format("cannot start {}: {}", argv.front(), std::strerror(rc)));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return fail(ErrorCode::internal, fmt::format("waiting for {} (pid {}) failed: {}", argv.front(), pid,
                                                   std::strerror(errno)));
    }
  }
  if (WIFSIGNALED(status)) {
    return fail(ErrorCode::internal, fmt::format("{} was killed by signal {} ({})", argv.front(), WTERMSIG(status),
                                                 strsignal(WTERMSIG(status))));
  }
  return WEXITSTATUS(status);
}

}  // namespace vstore
