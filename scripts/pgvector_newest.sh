#!/usr/bin/env bash
# Picks the pgvector source package scripts/setup.sh builds: reads `apt-cache madison pgvector`
# lines ("pgvector | 0.8.7-1 | http://deb.debian.org/debian sid/main Sources") on stdin and prints
# "DEBIAN_VERSION SUITE" of the newest one whose upstream version is at least $1 (default
# 0.8.0), comparing as dpkg does. Exits 1 when there is none. No network, no side effects.
set -euo pipefail

min=${1:-0.8.0}
best_version=""
best_suite=""
while IFS='|' read -r package version origin; do
    package=$(echo "$package" | tr -d '[:space:]')
    version=$(echo "$version" | tr -d '[:space:]')
    [ "$package" = pgvector ] && [ -n "$version" ] || continue
    upstream=${version#*:}; upstream=${upstream%-*}
    dpkg --compare-versions "$upstream" ge "$min" || continue
    suite=$(echo "$origin" | awk '{print $2}'); suite=${suite%%/*}
    if [ -z "$best_version" ] || dpkg --compare-versions "$version" gt "$best_version"; then
        best_version=$version
        best_suite=$suite
    fi
done
[ -n "$best_version" ] || exit 1
printf '%s %s\n' "$best_version" "$best_suite"
