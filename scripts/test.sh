#!/usr/bin/env bash
# Runs every test: installs what is missing (scripts/setup.sh), builds with warnings as errors,
# then runs the unit, integration and recall suites through CTest. The integration and recall
# suites start their own PostgreSQL 15 + pgvector server on a free loopback port and stop it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build="${VSTORE_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVSTORE_DEV_MODE=ON >/dev/null
cmake --build "$build" -j2
ctest --test-dir "$build" --output-on-failure --timeout 1500
