#!/usr/bin/env bash
# The Python package's check, run by scripts/test.sh after the C++ build: a new virtual
# environment, the wheel of ./python built and installed into it, then the pytest suite (python/tests) with that
# environment's interpreter. The pip build reuses the C++ build directory (same settings as
# scripts/test.sh configures), so it compiles nothing the C++ build already compiled; a plain
# `pip install ./python` builds from scratch in a temporary directory.
#   VSTORE_BUILD_DIR   the C++ build directory (default: <repo>/build)
#   PYTEST_ARGS        extra pytest arguments (e.g. "-k async -x")
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${VSTORE_BUILD_DIR:-$root/build}"
data="${VSTORE_DATA_DIR:-$root/.vstore}"
venv="$build/py-venv"
# The wheel builds in the same tree with its build type, so that nothing is compiled twice.
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
build_type=${build_type:-RelWithDebInfo}
start=$(date +%s)

rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt
# One build: the wheel (what `pip wheel ./python -w dist` makes: the package, the module, the
# types), checked below and then installed. (Building it twice, `pip install ./python` and then
# `pip wheel`, recompiled the C++ libraries the second time: minutes of the test command.)
rm -rf "$build/dist"
"$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps ./python -w "$build/dist" \
  -C build-dir="$build" \
  -C cmake.build-type="$build_type" \
  -C cmake.define.VSTORE_DEV_MODE=ON \
  -C cmake.define.VSTORE_BUILD_TESTS=ON \
  -C cmake.define.pybind11_DIR="$("$data/venv/bin/python" -m pybind11 --cmakedir)"
"$venv/bin/python" - "$build/dist" <<'PY'
import pathlib, sys, zipfile
wheels = list(pathlib.Path(sys.argv[1]).glob("vstore-*.whl"))
assert len(wheels) == 1, f"expected one vstore wheel, found {wheels}"
names = zipfile.ZipFile(wheels[0]).namelist()
for want in ("vstore/__init__.py", "vstore/vector_store.py", "vstore/errors.py", "vstore/py.typed", "vstore/_native.pyi"):
    assert want in names, f"{want} missing from {wheels[0].name}"
assert any(n.startswith("vstore/_native.") and n.endswith(".so") for n in names), f"no module in {wheels[0].name}"
print(f"python: wheel {wheels[0].name} holds the package, the module and its types")
PY
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$build"/dist/vstore-*.whl
echo "python: installed vstore into $venv ($(( $(date +%s) - start ))s)"

export VSTORE_BIN="$build/src/vstore"
export VSTORE_TEST_CHROMA_CLI="$data/chroma-server/node_modules/chromadb/dist/cli.mjs"
export VSTORE_TEST_SHARED_DATA="$root/../shared/data"
# Run from a directory without the source package, so `import vstore` is the installed one.
cd "$build"
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests" ${PYTEST_ARGS:-}
