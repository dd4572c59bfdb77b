# SPDX-License-Identifier: Apache-2.0
"""Benchmark script of `vstore bench python`: the vstore module against a pure Python store.

`vstore bench python` loads a scratch database and runs this script with the interpreter of a
venv that holds the vstore package, psycopg 3, pgvector-python, NumPy, onnx, onnxruntime and
tokenizers. Two measurements on the same table, in the same process:

1. Per-call overhead of the module over its C++ call, for a search by vector: blocks of
   `overhead_block` searches of one vector timed inside C++ (`Store._time_search_vector`, no
   Python between the searches), through `vstore.vector_store.search_by_vector` and through
   `Store.search_vector`, all on the same store; the three kinds alternate block by block (the
   order rotated) and the medians of the per-call times are reported.
2. Throughput (queries/s) of the module against the plan's pure Python store (psycopg 3 +
   pgvector-python running the plan's SQL and building the same result dicts), by vector and by
   text, with 1 client and with `clients` threads. The module's side calls
   `vstore.vector_store.search_by_vector` / `search_articles` from every thread (the module
   releases the GIL); each pure Python client thread has its own psycopg connection. By text,
   the pure Python store embeds with ONNX Runtime on the same model weights
   (scripts/bench_embed_peer.py's text_embedder), the module with its C++ engine. Both sides
   search with the same HNSW index at the same hnsw.ef_search. The eight cells run `repeats`
   times in a rotated order; the medians are reported.

Before timing, the top-k ids of both sides are compared for every distinct query, by vector
and by text (overlap@k), so the two sides are shown to answer the same question.

Input: --spec FILE, a JSON object {"conninfo", "table", "top_k", "ef_search", "queries": [text,
...] (distinct), "timed": N (queries per throughput cell, the texts cycled), "clients",
"repeats", "overhead_calls", "overhead_block", "model_dir", "env": {variable: value} (the
module's configuration, set in os.environ before vstore opens its store)}. Output: --out FILE,
one JSON object (see the keys of `main`). Progress lines go to stderr; stdout stays unused.

    python benchmarks/python/bench_module.py --spec spec.json --out result.json
"""

import argparse
import importlib.metadata
import datetime as _dt
import json
import os
import pathlib
import statistics
import sys
import threading
import time

import numpy as np

_SCRIPTS = pathlib.Path(__file__).resolve().parent.parent.parent / "scripts"

# The plan's search statement: one parameter for the distance in the select list, one for the
# ORDER BY, then the limit.
PLAN_SQL = (
    "SELECT uri AS id, embedding <=> %s AS score, title, news_source, category, future_signal, sentiment, "
    "time_to_impact, topic, publication_date, tags, summary FROM {table} WHERE embedding IS NOT NULL "
    "ORDER BY embedding <=> %s LIMIT %s"
)
METADATA_COLUMNS = ("title", "news_source", "category", "future_signal", "sentiment", "time_to_impact", "topic",
                    "publication_date", "tags", "summary")


def say(message):
    print(f"bench python: {message}", file=sys.stderr, flush=True)


def _plain(value):
    """A column value as the result dict carries it (dates as ISO 8601 text, like the module)."""
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return value


class PurePythonStore:
    """The plan's store on one psycopg 3 connection (one per client thread): pgvector-python
    adapts the NumPy query vector; results are ``[{"id", "score", "metadata"}]``."""

    def __init__(self, conninfo, table, ef_search, embed=None):
        import psycopg
        from pgvector.psycopg import register_vector
        from psycopg import sql

        self.conn = psycopg.connect(conninfo, autocommit=True)
        register_vector(self.conn)
        self.conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(int(ef_search))))
        self.sql = sql.SQL(PLAN_SQL).format(table=sql.Identifier(table))
        self.embed = embed

    def search_by_vector(self, vector, top_k=10):
        with self.conn.cursor() as cur:
            cur.execute(self.sql, (vector, vector, top_k))
            rows = cur.fetchall()
        return [{"id": row[0], "score": float(row[1]),
                 "metadata": {name: _plain(value) for name, value in zip(METADATA_COLUMNS, row[2:])}}
                for row in rows]

    def search_articles(self, query, top_k=10):
        return self.search_by_vector(self.embed([query])[0], top_k)

    def close(self):
        self.conn.close()


def run_clients(calls, items):
    """Queries per second of ``len(calls)`` threads started together; thread i calls
    ``calls[i](item)`` for items i, i + clients, ... The first error of any thread is raised."""
    clients = len(calls)
    barrier = threading.Barrier(clients + 1)
    errors = []

    def work(idx):
        call = calls[idx]
        mine = items[idx::clients]
        barrier.wait()
        try:
            for item in mine:
                if not call(item):
                    raise RuntimeError("a search returned no hits")
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(idx,)) for idx in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return len(items) / elapsed


def time_overhead(vs, store, vectors, top_k, calls, block):
    """Per-call microseconds (medians over blocks) of a search by vector inside C++, through
    vstore.vector_store.search_by_vector and through Store.search_vector."""
    kinds = ("cpp", "search_by_vector", "store_search_vector")
    per_call = {kind: [] for kind in kinds}
    blocks = max(1, calls // block)
    for block_idx in range(blocks):
        vec = vectors[block_idx % len(vectors)]
        order = kinds[block_idx % 3:] + kinds[:block_idx % 3]
        for kind in order:
            if kind == "cpp":
                seconds = store._time_search_vector(vec, top_k, block)
            elif kind == "search_by_vector":
                start = time.perf_counter()
                for _ in range(block):
                    vs.search_by_vector(vec, top_k)
                seconds = time.perf_counter() - start
            else:
                start = time.perf_counter()
                for _ in range(block):
                    store.search_vector(vec, top_k, None)
                seconds = time.perf_counter() - start
            per_call[kind].append(seconds / block * 1e6)
    cpp = statistics.median(per_call["cpp"])
    out = {"overhead_blocks": blocks, "overhead_block": block, "cpp_search_us": round(cpp, 2)}
    for kind, key in (("search_by_vector", "overhead_pct"), ("store_search_vector", "overhead_store_pct")):
        py = statistics.median(per_call[kind])
        out[f"py_{kind}_us"] = round(py, 2)
        out[key] = round((py - cpp) / cpp * 100.0, 2)
    # The same figure paired block by block (each Python block against the C++ block beside it).
    paired = [(py - cpp) / cpp * 100.0 for py, cpp in zip(per_call["search_by_vector"], per_call["cpp"])]
    out["overhead_pct_paired_median"] = round(statistics.median(paired), 2)
    return out


def overlap(a, b, top_k):
    return len({h["id"] for h in a} & {h["id"] for h in b}) / float(top_k)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    spec = json.loads(pathlib.Path(args.spec).read_text())
    top_k, clients, timed = int(spec["top_k"]), int(spec["clients"]), int(spec["timed"])
    texts = list(spec["queries"])

    os.environ.update({k: str(v) for k, v in spec["env"].items()})
    import onnxruntime
    import psycopg

    import vstore
    import vstore.vector_store as vs

    sys.path.insert(0, str(_SCRIPTS))
    from bench_embed_peer import text_embedder

    store = vs.get_store()
    vectors = [np.ascontiguousarray(v, dtype=np.float32) for v in store.embed(texts)]
    threads = os.cpu_count() or 1  # the C++ engine's default: one thread per core, one pool
    say(f"building the ONNX Runtime peer ({threads} threads)")
    _peer, peer_embed = text_embedder(spec["model_dir"], threads)
    peers = [PurePythonStore(spec["conninfo"], spec["table"], spec["ef_search"], peer_embed) for _ in range(clients)]

    # Both sides answer the same question: top-k ids per distinct query, by vector and by text.
    say(f"comparing the top {top_k} of both sides for {len(texts)} queries")
    by_vector = [overlap(vs.search_by_vector(v, top_k), peers[0].search_by_vector(v, top_k), top_k) for v in vectors]
    by_text = [overlap(vs.search_articles(t, top_k), peers[0].search_articles(t, top_k), top_k) for t in texts]
    peer_vectors = peer_embed(texts)
    cosines = [float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(vectors, peer_vectors)]

    say(f"per-call overhead: {spec['overhead_calls']} searches per kind")
    for vec in vectors[:5]:  # warm-up of the three kinds
        store._time_search_vector(vec, top_k, 2)
        vs.search_by_vector(vec, top_k)
        store.search_vector(vec, top_k, None)
    overhead = time_overhead(vs, store, vectors, top_k, int(spec["overhead_calls"]), int(spec["overhead_block"]))

    # Throughput cells: (mode, clients, side) -> the per-client callables and the items.
    vector_items = [vectors[i % len(vectors)] for i in range(timed)]
    text_items = [texts[i % len(texts)] for i in range(timed)]
    module_calls = {"vector": lambda v: vs.search_by_vector(v, top_k), "text": lambda t: vs.search_articles(t, top_k)}

    def pure_calls(mode, n):
        if mode == "vector":
            return [lambda v, p=p: p.search_by_vector(v, top_k) for p in peers[:n]]
        return [lambda t, p=p: p.search_articles(t, top_k) for p in peers[:n]]

    cells = [(mode, n, side) for mode in ("vector", "text") for n in (1, clients) for side in ("module", "python")]
    say("warm-up")
    for mode, n, side in cells:
        calls = [module_calls[mode]] * n if side == "module" else pure_calls(mode, n)
        items = (vector_items if mode == "vector" else text_items)[: 6 * n]  # psycopg prepares after 5 runs
        run_clients(calls, items)
    runs = {cell: [] for cell in cells}
    repeats = int(spec["repeats"])
    for round_idx in range(repeats):
        say(f"throughput round {round_idx + 1} of {repeats}")
        shift = round_idx % len(cells)
        for mode, n, side in cells[shift:] + cells[:shift]:
            calls = [module_calls[mode]] * n if side == "module" else pure_calls(mode, n)
            runs[(mode, n, side)].append(run_clients(calls, vector_items if mode == "vector" else text_items))

    out = {
        "overlap_queries": len(texts),
        "overlap_by_vector": round(statistics.mean(by_vector), 4),
        "overlap_by_vector_min": round(min(by_vector), 4),
        "overlap_by_text": round(statistics.mean(by_text), 4),
        "overlap_by_text_min": round(min(by_text), 4),
        "query_vector_min_cosine": round(min(cosines), 6),
        "overhead_calls": int(spec["overhead_calls"]),
    }
    out.update(overhead)
    table = []
    for mode in ("vector", "text"):
        for n in (1, clients):
            module = statistics.median(runs[(mode, n, "module")])
            python = statistics.median(runs[(mode, n, "python")])
            out[f"module_qps_{mode}_{n}c"] = round(module, 1)
            out[f"python_qps_{mode}_{n}c"] = round(python, 1)
            out[f"ratio_{mode}_{n}c"] = round(module / python, 3)
            table.append({"mode": mode, "clients": n, "module_qps": round(module, 1), "python_qps": round(python, 1),
                          "ratio": round(module / python, 3),
                          "module_runs_qps": [round(r, 1) for r in runs[(mode, n, "module")]],
                          "python_runs_qps": [round(r, 1) for r in runs[(mode, n, "python")]]})
    out["throughput"] = table
    out["peer"] = {"python": sys.version.split()[0], "vstore_module": vstore.__version__,
                   "psycopg": psycopg.__version__, "pgvector_python": importlib.metadata.version("pgvector"),
                   "onnxruntime": onnxruntime.__version__, "onnx_threads": threads}
    for p in peers:
        p.close()
    vs.shutdown_vector_store()
    pathlib.Path(args.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
