#!/usr/bin/env bash
# Creates one Python virtual environment per pinned chromadb release, used by the migrate-chroma
# integration tests to write real Chroma persistent directories.
#
# For each scripts/chroma-py/requirements-<version>.txt, a venv at
# "$VSTORE_DATA_DIR/chroma-py/<version>" gets exactly those pins. A stamp (hash of the requirements
# file and the interpreter version) makes a second run do no pip work.
# Environment:
#   VSTORE_DATA_DIR   data directory (default: <repo>/.vstore)
set -euo pipefail

log() { printf 'setup-chroma-py: %s\n' "$*"; }
die() { printf 'setup-chroma-py: FAILED: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATA_DIR=${VSTORE_DATA_DIR:-$REPO_ROOT/.vstore}
mkdir -p "$DATA_DIR/chroma-py" || die "cannot create $DATA_DIR/chroma-py"

shopt -s nullglob
REQS=("$SCRIPT_DIR"/chroma-py/requirements-*.txt)
[ ${#REQS[@]} -gt 0 ] || die "no requirements files in $SCRIPT_DIR/chroma-py"
# One venv per version, installed at once: pip spends most of its time waiting on downloads.
install_one() {
    local req=$1 version venv stamp want got
    version=$(basename "$req" .txt); version=${version#requirements-}
    venv=$DATA_DIR/chroma-py/$version
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$venv"
        python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    fi
    stamp=$venv/.requirements.sha256
    want=$( { sha256sum <"$req"; "$venv/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        log "chromadb $version: already installed"
        return 0
    fi
    log "chromadb $version: installing pinned requirements into $venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" \
        || die "pip install -r $req failed"
    got=$("$venv/bin/python" -c 'import chromadb; print(chromadb.__version__)') \
        || die "chromadb does not import in $venv"
    [ "$got" = "$version" ] || die "venv $venv has chromadb $got, expected $version"
    printf '%s\n' "$want" >"$stamp"
    log "chromadb $version: installed"
}
pids=()
for req in "${REQS[@]}"; do
    install_one "$req" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
done
[ "$failed" -eq 0 ] || die "a chromadb version did not install (its reason is above)"
log "done"
