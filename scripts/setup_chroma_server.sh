#!/usr/bin/env bash
# Installs the Chroma servers that vstore's tests and benchmarks run:
#   1. npm chromadb 3.0.12 with chromadb-js-bindings-linux-x64-gnu 1.0.5 (the Rust server of
#      Python chromadb 1.0.19, API v2; newer bindings need glibc 2.38), pinned by
#      scripts/chroma-server/package-lock.json, into "$VSTORE_DATA_DIR/chroma-server". Start it with
#      node "$VSTORE_DATA_DIR/chroma-server/node_modules/chromadb/dist/cli.mjs" run --path DIR --host 127.0.0.1 --port P
#   2. PyPI chromadb 0.5.5 (a server that speaks only the v1 API), pinned by
#      scripts/chroma-server/requirements-py-0.5.5.txt, in the venv "$VSTORE_DATA_DIR/chroma-py-0.5.5".
#      Start it with "$VSTORE_DATA_DIR/chroma-py-0.5.5/bin/chroma" run --path DIR --host 127.0.0.1 --port P
# Idempotent: a second run only compares checksums.
# Environment: VSTORE_DATA_DIR (default <repo>/.vstore).
set -euo pipefail

log() { printf 'setup: chroma server: %s\n' "$*"; }
die() { printf 'setup: FAILED: chroma server: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATA_DIR=${VSTORE_DATA_DIR:-$REPO_ROOT/.vstore}
mkdir -p "$DATA_DIR" || die "cannot create VSTORE_DATA_DIR=$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
SRC=$SCRIPT_DIR/chroma-server
DEST=$DATA_DIR/chroma-server
CLI=$DEST/node_modules/chromadb/dist/cli.mjs
BINDING_DIR=$DEST/node_modules/chromadb-js-bindings-linux-x64-gnu

command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20 or newer"
command -v npm >/dev/null 2>&1 || die "npm not found: install npm (it comes with Node.js 20)"
NODE_MAJOR=$(node -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "node $(node --version) is too old: chromadb 3.0.12 needs Node.js 20 or newer"

WANT=$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
STAMP=$DEST/.installed.sha256
install_python_v1() {
    local venv=$DATA_DIR/chroma-py-0.5.5 req=$SRC/requirements-py-0.5.5.txt
    local want stamp=$DATA_DIR/chroma-py-0.5.5/.requirements.sha256
    want=$(sha256sum <"$req" | cut -d' ' -f1)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/chroma" ]; then
        log "chromadb 0.5.5 (Python, API v1) already installed in $venv"
        return 0
    fi
    log "installing chromadb 0.5.5 (Python, API v1) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >"$DATA_DIR/chroma-py-0.5.5.log" 2>&1 \
        || { tail -n 20 "$DATA_DIR/chroma-py-0.5.5.log" >&2; die "pip install -r $req failed (log: $DATA_DIR/chroma-py-0.5.5.log)"; }
    [ -x "$venv/bin/chroma" ] || die "chromadb 0.5.5 installed no $venv/bin/chroma"
    printf '%s\n' "$want" >"$stamp"
    rm -f "$DATA_DIR/chroma-py-0.5.5.log"
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -f "$CLI" ] && ls "$BINDING_DIR"/*.node >/dev/null 2>&1; then
    log "chromadb 3.0.12 already installed in $DEST"
    install_python_v1
    exit 0
fi

log "installing chromadb 3.0.12 + chromadb-js-bindings-linux-x64-gnu 1.0.5 into $DEST"
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --no-audit --no-fund --loglevel=error) >"$DEST/npm-ci.log" 2>&1 \
    || { tail -n 20 "$DEST/npm-ci.log" >&2; die "npm ci failed (log: $DEST/npm-ci.log)"; }
[ -f "$CLI" ] || die "npm ci left no $CLI"
BINDING_VERSION=$(node -p "require('$BINDING_DIR/package.json').version")
[ "$BINDING_VERSION" = 1.0.5 ] || die "installed bindings are $BINDING_VERSION, expected 1.0.5"
# The bindings are a native module: check that this glibc can load them.
node -e "require('$(ls "$BINDING_DIR"/*.node | head -n 1)')" >/dev/null 2>&1 \
    || die "the Chroma bindings in $BINDING_DIR do not load on this machine (glibc $(ldd --version | head -n 1 | awk '{print $NF}'))"
printf '%s\n' "$WANT" >"$STAMP"
rm -f "$DEST/npm-ci.log"
log "installed in $DEST"
install_python_v1
