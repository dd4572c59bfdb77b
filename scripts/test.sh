#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh, with its Chroma and browser parts
# running during the build), builds with warnings as errors,
# then runs the unit, integration and recall suites through CTest, then the Python package's
# install and pytest suite (scripts/python_test.sh). The integration and recall
# suites start their own PostgreSQL 15 + pgvector server on a free loopback port and stop it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --skip-chroma --skip-browser
build="${VSTORE_BUILD_DIR:-$root/build}"
data="${VSTORE_DATA_DIR:-$root/.vstore}"
# The Chroma server and the chromadb venvs download while the C++ build compiles; the tests
# wait for them.
chroma_log=$(mktemp)
VSTORE_DATA_DIR="$data" bash scripts/setup_chroma.sh >"$chroma_log" 2>&1 &
chroma_pid=$!
# So do chromium and playwright-core, for the web page's browser test.
browser_log=$(mktemp)
VSTORE_DATA_DIR="$data" bash scripts/setup_browser.sh >"$browser_log" 2>&1 &
browser_pid=$!
# The Python module is built with the rest (scripts/python_test.sh then installs it with pip).
# Release at -O2 without debug information: the code the tests run is optimised as in
# RelWithDebInfo, and the build (the longest step here) takes about a third less CPU than with -g.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DVSTORE_DEV_MODE=ON \
  -DVSTORE_BUILD_TESTS=ON -DVSTORE_BUILD_PYTHON=ON -DPython_EXECUTABLE="$data/venv/bin/python" \
  -Dpybind11_DIR="$("$data/venv/bin/python" -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" -j2
chroma_status=0
wait "$chroma_pid" || chroma_status=$?
cat "$chroma_log"
rm -f "$chroma_log"
[ "$chroma_status" -eq 0 ] || { echo "test: the Chroma set-up failed (above)" >&2; exit 1; }
browser_status=0
wait "$browser_pid" || browser_status=$?
cat "$browser_log"
rm -f "$browser_log"
[ "$browser_status" -eq 0 ] || { echo "test: the browser set-up failed (above)" >&2; exit 1; }
# The libFuzzer targets (fuzz/, docs/fuzzing.md), a few seconds each over their seed corpus. Their
# clang build and runs go on beside the CTest suites, which leave CPU idle while they wait on
# their servers; both are waited for, and either failing fails the command.
fuzz_log=$(mktemp)
bash scripts/fuzz.sh >"$fuzz_log" 2>&1 &
fuzz_pid=$!
# The integration shards and the recall tests run side by side (tests/CMakeLists.txt).
ctest_status=0
ctest --test-dir "$build" --output-on-failure --timeout 1500 -j3 || ctest_status=$?
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
cat "$fuzz_log"
rm -f "$fuzz_log"
[ "$ctest_status" -eq 0 ] || { echo "test: the CTest suites failed (above)" >&2; exit 1; }
[ "$fuzz_status" -eq 0 ] || { echo "test: the fuzz step failed (above)" >&2; exit 1; }
bash scripts/python_test.sh
