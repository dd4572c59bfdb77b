#!/usr/bin/env bash
# Picks the pgvector source package scripts/setup.sh builds: reads `apt-cache madison pgvector`
# lines ("pgvector | 0.8.7-1 | http://deb.debian.org/debian sid/main Sources") on stdin and prints
# "DEBIAN_VERSION SUITE" of the newest one whose upstream version is at least MIN (default
# 0.8.0), comparing as dpkg does. With --all it prints every such package, newest first, one a
# line (set-up tries them in turn: a suite's index can list files the mirror does not serve).
# Exits 1 when there is none. No network, no side effects.
set -euo pipefail

all=0
if [ "${1:-}" = --all ]; then all=1; shift; fi
min=${1:-0.8.0}
found=()   # "VERSION SUITE", unsorted
while IFS='|' read -r package version origin; do
    package=$(echo "$package" | tr -d '[:space:]')
    version=$(echo "$version" | tr -d '[:space:]')
    [ "$package" = pgvector ] && [ -n "$version" ] || continue
    upstream=${version#*:}; upstream=${upstream%-*}
    dpkg --compare-versions "$upstream" ge "$min" || continue
    suite=$(echo "$origin" | awk '{print $2}'); suite=${suite%%/*}
    found+=("$version $suite")
done
[ "${#found[@]}" -gt 0 ] || exit 1
# Selection sort by dpkg's order, newest first (a handful of lines).
sorted=()
while [ "${#found[@]}" -gt 0 ]; do
    best=0
    for i in "${!found[@]}"; do
        if dpkg --compare-versions "${found[$i]%% *}" gt "${found[$best]%% *}"; then best=$i; fi
    done
    sorted+=("${found[$best]}")
    unset 'found[best]'
    found=("${found[@]}")
done
if [ "$all" -eq 1 ]; then
    printf '%s\n' "${sorted[@]}"
else
    printf '%s\n' "${sorted[0]}"
fi
