#!/usr/bin/env bash
# The demo: installs what is missing, builds vstore, starts vstore's own PostgreSQL 15 + pgvector
# under .vstore/pg, migrates the schema, loads the 20,841 Reuters articles and runs a few
# searches and a similar-articles list. Run it again at any time; it reuses what is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
build="${VSTORE_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target vstore
vstore="$build/src/vstore"
data="${VSTORE_DEMO_DATA:-$root/../shared/data/reuters21578/articles.jsonl}"

# The local MiniLM engine is not built yet: the demo asks for the lexical hash embedder by name.
# It matches shared words, not meaning (see README).
export EMBEDDING_PROVIDER=hash
echo "demo: EMBEDDING_PROVIDER=hash (lexical feature hashing; the semantic MiniLM engine comes next)"

"$vstore" db start
"$vstore" schema up
start=$(date +%s)
"$vstore" ingest "$data"
echo "demo: ingest took $(( $(date +%s) - start )) s"
"$vstore" health

show() { echo; echo "\$ vstore $*"; "$vstore" "$@"; }
show search "cocoa harvest in Bahia" --top-k 5
show search "OPEC oil output quota" --top-k 5 --where '{"topic": "crude"}'
show search "interest rates central bank" --top-k 5 --where '{"$and": [{"topic": "money-fx"}, {"publication_date_ts": {"$gte": 544147200}}]}'
show similar reuters21578:1 --top-k 5
echo
echo "demo: the database keeps running; stop it with: $vstore db stop"
