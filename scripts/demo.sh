#!/usr/bin/env bash
# The demo: installs what is missing, builds vstore, starts vstore's own PostgreSQL 15 + pgvector
# under .vstore/pg, migrates the schema, loads the 20,841 Reuters articles and runs a few
# searches and a similar-articles list. Run it again at any time; it reuses what is there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --skip-browser  # the browser is for the tests
build="${VSTORE_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target vstore
vstore="$build/src/vstore"
data="${VSTORE_DEMO_DATA:-$root/../shared/data/reuters21578/articles.jsonl}"

# The embedder is vstore's own all-MiniLM-L6-v2 engine (tokenizer and BERT in C++, the model
# files from set-up), ChromaDB's default model. Articles that already hold a vector of this model
# are skipped, so a second run (or a run after an interruption) only embeds what is missing.
export EMBEDDING_PROVIDER=local
echo "demo: EMBEDDING_PROVIDER=local (all-MiniLM-L6-v2 in C++, $(nproc) threads)"

"$vstore" db start
"$vstore" schema up
start=$(date +%s)
"$vstore" ingest "$data"
echo "demo: ingest took $(( $(date +%s) - start )) s"
"$vstore" health

show() { echo; echo "\$ vstore $*"; "$vstore" "$@"; }
show search "cocoa harvest in Bahia" --top-k 5
show search "OPEC oil output quota" --top-k 5 --where '{"topic": "crude"}'
show search "central bank raises interest rates to defend the currency" --top-k 5 --where '{"$and": [{"topic": "money-fx"}, {"publication_date_ts": {"$gte": 544147200}}]}'
show search "company agrees to buy a rival in a takeover" --top-k 5
show search "drought damages the wheat crop" --top-k 5 --where '{"topic": {"$in": ["grain", "wheat"]}}'
show similar reuters21578:1 --top-k 5
echo
echo "demo: the database keeps running; stop it with: $vstore db stop"
