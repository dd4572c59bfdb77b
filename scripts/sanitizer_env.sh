# SPDX-License-Identifier: Apache-2.0
# The sanitizer runtime options of scripts/sanitize.sh (docs/robustness.md, "Sanitizers"). Sourced,
# not run: `source scripts/sanitizer_env.sh LOG_DIR`. The tests' child processes (the vstore CLI
# and `vstore serve` that the integration tests start) inherit these variables, so every option
# here is one a plain instrumented program accepts; uninstrumented children (postgres, python,
# node, chromium) ignore them.
#
# Every report from any process goes to a file LOG_DIR/<sanitizer>.<pid> (log_path) as well as
# failing the process: a test that captures a child's stderr or only checks "exit code is not 0"
# would otherwise hide a report in a child, so sanitize.sh fails the run when LOG_DIR holds any
# report file, and prints them.
if [ $# -ne 1 ] || [ ! -d "$1" ]; then
  echo "sanitizer_env.sh: expected one argument, an existing directory for the reports (got: ${*:-nothing})" >&2
  return 2
fi
_vstore_san_log="$(cd "$1" && pwd)"
_vstore_san_supp="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/sanitizers" && pwd)"

# AddressSanitizer: halt on the first error (the build also has -fno-sanitize-recover=all);
# detect_leaks=1 (LeakSanitizer): a leak fails the process at exit, like any other report;
# strict_string_checks, check_initialization_order/strict_init_order: the stricter checks that
# cost little; detect_stack_use_after_return stays off (its fake stacks cost time and memory in
# the many-threaded service tests).
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1:detect_odr_violation=2:log_path=$_vstore_san_log/asan"
# LeakSanitizer: third-party leaks only, each explained in the file.
export LSAN_OPTIONS="suppressions=$_vstore_san_supp/lsan.supp:print_suppressions=0"
# UndefinedBehaviorSanitizer: a stack trace with every report (reports are fatal in the build).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:report_error_type=1:log_path=$_vstore_san_log/ubsan"
# ThreadSanitizer: report every race (halt_on_error=0: one run shows all of them, and the report
# file fails the run), a second stack for lock-order reports, and the suppressions in the file.
export TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:suppressions=$_vstore_san_supp/tsan.supp:print_suppressions=0:log_path=$_vstore_san_log/tsan"
unset _vstore_san_log _vstore_san_supp
