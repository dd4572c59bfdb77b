#!/usr/bin/env bash
# Builds vstore under sanitizers (cmake/Sanitizers.cmake, VSTORE_SANITIZE) and runs test suites
# through CTest (docs/robustness.md, "Sanitizers"). Not part of scripts/test.sh (that command
# already takes most of its 30 minutes): each mode is a CI step of its own (their times on this
# 2-core machine are in docs/robustness.md).
#
#   scripts/sanitize.sh [address|undefined|thread]...     (default: all three, one after another)
#
#   address    AddressSanitizer + LeakSanitizer (build-asan/): the unit suite and the integration
#              shards, every report fatal
#   undefined  UndefinedBehaviorSanitizer (build-ubsan/): the same suites, every report fatal
#   thread     ThreadSanitizer (build-tsan/): the concurrent cases of the integration suite only
#              (the connection pool, dual mode, the async calls, migrate-chroma's writers, the
#              fault tests' library writers, the service under concurrent requests; tsan_filter)
# AddressSanitizer and UndefinedBehaviorSanitizer are separate builds: together in one build
# they compile about 2.3 times slower than either alone (their instrumentations multiply), which
# made one step of both longer than 30 minutes.
# Builds only the vstore CLI and the test binaries it runs (no Python module, no micro
# benchmarks), at -O1 with line tables (-g1). The runtime options are in scripts/sanitizer_env.sh; suppressions (each
# with its reason) in tests/sanitizers/. A report from any process, the tests' vstore children
# included, is written to <build dir>/sanitizer-reports/ and fails the run.
# Environment: VSTORE_ASAN_BUILD_DIR, VSTORE_UBSAN_BUILD_DIR, VSTORE_TSAN_BUILD_DIR (default
# <repo>/build-asan, build-ubsan, build-tsan), GTEST_FILTER (replaces a mode's test selection,
# e.g. to re-run one suite).
# Installs nothing: run scripts/setup.sh first (the integration tests need what it installs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

modes=()
while [ $# -gt 0 ]; do
  case "$1" in
    address|undefined|thread) modes+=("$1"); shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "sanitize: unknown mode \"$1\"; expected address, undefined, thread or nothing (all three)" >&2; exit 2 ;;
  esac
done
[ ${#modes[@]} -gt 0 ] || modes=(address undefined thread)
data="${VSTORE_DATA_DIR:-$root/.vstore}"
[ -x "$data/venv/bin/python" ] || { echo "sanitize: $data/venv is missing; run scripts/setup.sh first" >&2; exit 1; }

# The thread mode's selection: the cases where threads of vstore's own run against each other
# (found by grepping tests/ for std::thread and std::async, and src/ for the code that starts
# threads): the connection pool; dual mode's concurrent writers, drains and outages; the store's
# concurrent batches and ArticleStore's async calls; the embedding pool and concurrent embedders;
# migrate-chroma's writers (several writers, dropped connections, a server crash, an
# application's write mid-run, the parallel filter-index builds, the two-thread vector read); the
# fault tests' library writers through a crash (PostgreSQL primary, and Chroma primary in dual
# mode); the soak (8 writer and 8 reader threads on one ArticleStore, then the service under 8
# writers and wrk); and the service (`vstore serve`, a TSan child): its suite, keep-alive, the
# background map build and the wrk benchmark's concurrent clients.
tsan_filter='PoolTest.*:Issue21Dual.*:DualStoreTest.*:StoreTest.Concurrent*:StoreTest.ArticleStore*'
tsan_filter+=':Issue21PgStore.Item13i*:Issue21PgStore.Item13g*:Issue21EmbedPool.*'
tsan_filter+=':EmbedBertTest.GivesTheSameEmbeddingsWithAnyThreadCount*:EmbedTokenizerTest.Concurrent*'
tsan_filter+=':MigrateTest.SeveralWriters*:MigrateTest.ConnectionsTheServerDrops*:MigrateTest.ARowInserted*'
tsan_filter+=':MigrateTest.ALoadIntoAnEmptyTable*:MigrateCrashTest.*:*ChromaVersionTest.DeferredVectors*'
tsan_filter+=':Issue26Faults.LibraryWriters*:Issue26Faults.DualWritesWithAChromaPrimary*:Issue26Soak.*'
tsan_filter+=':Issue25Serve.*:Issue25ServeKeepAlive.*'
tsan_filter+=':Issue25Map.TheServiceKeepsTheMap*:Issue25BenchServe.ServesBothKinds*'
# The address and undefined modes leave out, deliberately:
# - `vstore bench python` (Issue22BenchPython): it loads the Python module, which is not built
#   here (an instrumented extension needs libasan preloaded into the interpreter);
# - the cases that spend minutes of CPU in the embedding engine or over the Reuters corpus to
#   measure agreement or quality, not new code paths: the BERT forward pass against numpy's on
#   200 texts (265 s under ASan; the engine's paths run in the rest of EmbedBertTest), the
#   onnxruntime comparison (78 s), the map's layout quality on Reuters (78 s), the ranking parity
#   of pgvector and Chroma (83 s), the tokenizer over every Reuters title (43 s; the rest of
#   EmbedTokenizerTest runs), and the README's commands end to end (over 285 s, not finished in
#   the 25 minutes a shard may take). Together they were about a third of the integration time.
asan_filter='-Issue22BenchPython.*:EmbedBertTest.MatchesNumpyReference*:BenchEmbed.MatchesOnnxRuntime*'
asan_filter+=':Issue25MapQuality.*:BackendParity.*:EmbedTokenizerTest.EncodesAllReuters*:ReadmeExamples.*'

run_mode() {
  local mode=$1 build sanitize filter tests targets
  case "$mode" in
    address)
      build="${VSTORE_ASAN_BUILD_DIR:-$root/build-asan}"; sanitize="address"
      filter="${GTEST_FILTER:-$asan_filter}"; tests='^vstore_(unit_tests|integration_tests_[0-9]+)$'
      targets=(vstore vstore_unit_tests vstore_integration_tests) ;;
    undefined)
      build="${VSTORE_UBSAN_BUILD_DIR:-$root/build-ubsan}"; sanitize="undefined"
      filter="${GTEST_FILTER:-$asan_filter}"; tests='^vstore_(unit_tests|integration_tests_[0-9]+)$'
      targets=(vstore vstore_unit_tests vstore_integration_tests) ;;
    thread)
      # The unit binary is left out: its one threaded suite (Issue21EmbedPool) has an
      # integration twin in the selection, and it is a quarter of the build.
      build="${VSTORE_TSAN_BUILD_DIR:-$root/build-tsan}"; sanitize="thread"
      filter="${GTEST_FILTER:-$tsan_filter}"; tests='^vstore_integration_tests_[0-9]+$'
      targets=(vstore vstore_integration_tests) ;;
  esac
  local started built finished
  started=$(date +%s)
  local launcher=()
  command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # Release with -O1 -g1: -O1 is the sanitizers' usual level (a third of -O2's compile time here),
  # -g1 gives reports file:line for the library and the CLI (the tests' own code is -O1 -g0,
  # tests/CMakeLists.txt); NDEBUG as in the build the tests normally run.
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -g1 -DNDEBUG" \
    -DVSTORE_DEV_MODE=ON -DVSTORE_BUILD_TESTS=ON -DVSTORE_BUILD_PYTHON=OFF -DVSTORE_BUILD_BENCHMARKS=OFF \
    -DVSTORE_SANITIZE="$sanitize" "${launcher[@]}" >/dev/null
  cmake --build "$build" -j2 --target "${targets[@]}"
  built=$(date +%s)
  echo "sanitize $mode: built in $((built - started)) s"

  local reports="$build/sanitizer-reports"
  rm -rf "$reports"
  mkdir -p "$reports"
  # The integration tests' vstore may run parts as the postgres user (when run as root).
  chmod 1777 "$reports"
  local status=0
  (
    # shellcheck source=scripts/sanitizer_env.sh
    source "$root/scripts/sanitizer_env.sh" "$reports"
    export GTEST_FILTER="$filter"
    ctest --test-dir "$build" -R "$tests" --output-on-failure --timeout 1500 -j3
  ) || status=$?
  finished=$(date +%s)
  echo "sanitize $mode: tests ran in $((finished - built)) s (GTEST_FILTER=$filter); $((finished - started)) s in all"
  local found
  found=$(find "$reports" -type f | sort)
  if [ -n "$found" ]; then
    for f in $found; do echo "=== $f"; cat "$f"; done
    echo "sanitize $mode: $(echo "$found" | wc -l) sanitizer report file(s) above (kept in $reports)" >&2
    status=1
  fi
  [ "$status" -eq 0 ] || { echo "sanitize $mode: FAILED" >&2; return 1; }
  echo "sanitize $mode: passed"
}

failed=0
for mode in "${modes[@]}"; do
  run_mode "$mode" || failed=1
done
exit "$failed"
