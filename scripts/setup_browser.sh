#!/usr/bin/env bash
# Installs what the web page's browser test needs:
#   1. Debian's chromium (the browser; playwright downloads none),
#   2. npm playwright-core, pinned by tests/browser/package-lock.json, into
#      "$VSTORE_DATA_DIR/browser/node_modules".
# Idempotent: a second run only compares a checksum. scripts/test.sh runs it in the background
# while the C++ build runs; scripts/setup.sh runs it unless given --skip-browser.
#   VSTORE_DATA_DIR   data directory (default: <repo>/.vstore)
set -euo pipefail

log() { printf 'setup: browser: %s\n' "$*"; }
die() { printf 'setup: FAILED: browser: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATA_DIR=${VSTORE_DATA_DIR:-$REPO_ROOT/.vstore}
mkdir -p "$DATA_DIR" || die "cannot create VSTORE_DATA_DIR=$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
SRC=$REPO_ROOT/tests/browser
DEST=$DATA_DIR/browser

if [ "$(dpkg-query -W -f='${db:Status-Status}' chromium 2>/dev/null || true)" = installed ]; then
    log "chromium present ($(chromium --version 2>/dev/null | head -n 1))"
else
    log "installing Debian's chromium"
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null || die "apt-get update failed"
    apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 chromium >"$DATA_DIR/chromium-install.log" 2>&1 \
        || { tail -n 20 "$DATA_DIR/chromium-install.log" >&2; die "apt-get install chromium failed (log: $DATA_DIR/chromium-install.log)"; }
    rm -f "$DATA_DIR/chromium-install.log"
fi
command -v chromium >/dev/null 2>&1 || die "chromium is installed but not on PATH"

command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 or newer"
WANT=$(cat "$SRC/package.json" "$SRC/package-lock.json" | sha256sum | cut -d' ' -f1)
STAMP=$DEST/.installed.sha256
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -f "$DEST/node_modules/playwright-core/package.json" ]; then
    log "playwright-core already installed in $DEST"
    exit 0
fi
log "installing playwright-core (tests/browser/package-lock.json) into $DEST"
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$SRC/package.json" "$SRC/package-lock.json" "$DEST/"
(cd "$DEST" && npm ci --ignore-scripts --no-audit --no-fund) >"$DATA_DIR/browser-npm.log" 2>&1 \
    || { tail -n 20 "$DATA_DIR/browser-npm.log" >&2; die "npm ci failed (log: $DATA_DIR/browser-npm.log)"; }
rm -f "$DATA_DIR/browser-npm.log"
printf '%s\n' "$WANT" >"$STAMP"
log "playwright-core $(node -p "require('$DEST/node_modules/playwright-core/package.json').version") installed"
