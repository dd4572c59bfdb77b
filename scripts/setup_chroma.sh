#!/usr/bin/env bash
# The Chroma part of set-up, on its own: the npm Chroma server (with chromadb 0.5.5 for the v1
# API) and the chromadb venvs that write test directories, installed at the same time.
# scripts/test.sh runs it in the background while the C++ build runs.
#   VSTORE_DATA_DIR   data directory (default: <repo>/.vstore)
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bash "$SCRIPT_DIR/setup_chroma_server.sh" &
server_pid=$!
py_status=0
bash "$SCRIPT_DIR/setup_chroma_py.sh" || py_status=$?
server_status=0
wait "$server_pid" || server_status=$?
[ "$py_status" -eq 0 ] || { echo "setup-chroma: FAILED: scripts/setup_chroma_py.sh exited $py_status" >&2; exit 1; }
[ "$server_status" -eq 0 ] || { echo "setup-chroma: FAILED: scripts/setup_chroma_server.sh exited $server_status" >&2; exit 1; }
