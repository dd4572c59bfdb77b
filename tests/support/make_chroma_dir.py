# SPDX-License-Identifier: Apache-2.0
"""Writes a Chroma persistent directory with the installed chromadb and prints its ground truth.

Test-only. Usage: python make_chroma_dir.py OUT_DIR TRUTH_JSON
Three collections (cosine, l2, ip) get adds, updates (with and without vectors), upserts of
old and new ids, deletes and re-adds, then a tail of adds smaller than hnsw:sync_threshold so
that part of the data exists only in embeddings_queue. From chromadb 1.5 some metadata values
are arrays (str, int, float, bool; duplicates and order that matter), turned into scalars and
back by updates, deleted by a None, and set by rows left only in the log. A fourth collection is
dropped to leave an orphan segment folder. Embeddings are always explicit; no embedding function ever runs.
The truth file holds, per collection, every live id with the vector the client last sent
(input), the vector Chroma's own get() returns, metadata and document, and the deleted ids.
"""
import json
import random
import struct
import sys

import chromadb
import numpy as np
from chromadb.config import Settings

DIM = 16
# Metadata value None (delete the key) is accepted in update from 1.0 on.
META_NULL_OK = chromadb.__version__.startswith("1.")
# Array metadata values exist from 1.5 on.
ARRAYS = tuple(int(p) for p in chromadb.__version__.split(".")[:2]) >= (1, 5)


def meta(k):
    m = {"i": k, "f": k + 0.5, "b": k % 2 == 0, "s": "cat%d" % (k % 5)}
    if ARRAYS:
        m["tags"] = ["t%d" % (k % 3), "all", "t%d" % (k % 3)]
        m["ks"] = [k, -k, 2 * k, k]
        m["ws"] = [k + 0.25, float(k)]
        if k % 4 == 0:
            m["flags"] = [False, k % 8 == 0, True]
    return m


def vec(rng):
    return [float(np.float32(rng.uniform(-1.0, 1.0))) for _ in range(DIM)]


def hexf(values):
    return np.asarray(values, dtype=np.float32).tobytes().hex()


def main():
    out_dir, truth_path = sys.argv[1], sys.argv[2]
    rng = random.Random(7)
    client = chromadb.PersistentClient(path=out_dir, settings=Settings(anonymized_telemetry=False, allow_reset=False))
    truth = {"chromadb": chromadb.__version__, "dim": DIM, "collections": []}
    for space in ("cosine", "l2", "ip"):
        name = "c_" + space
        col = client.create_collection(
            name=name,
            metadata={"hnsw:space": space, "hnsw:sync_threshold": 100, "hnsw:batch_size": 50, "owner": "tests"},
            embedding_function=None,
        )
        inputs = {}
        deleted = set()

        def add(ids, kind="add", with_docs=True):
            embs = [vec(rng) for _ in ids]
            metas = [meta(k) for k in range(len(ids))]
            docs = ["document %s in %s" % (i, space) for i in ids] if with_docs else None
            getattr(col, kind)(ids=ids, embeddings=embs, metadatas=metas, documents=docs)
            for i, e in zip(ids, embs):
                inputs[i] = e
                deleted.discard(i)

        for start in range(0, 220, 20):
            add(["r%03d" % k for k in range(start, start + 20)])
        ids = ["r%03d" % k for k in range(0, 10)]
        embs = [vec(rng) for _ in ids]
        upd = {"s": "updated", "z": 1.5}
        if ARRAYS:
            # scalar -> array and array -> scalar
            upd.update({"s": ["updated", "as", "array"], "tags": "one tag", "z": [1.5, -0.0]})
        col.update(ids=ids, embeddings=embs, metadatas=[upd] * len(ids),
                   documents=["rewritten %s" % i for i in ids])
        inputs.update(zip(ids, embs))
        upd = {"s": "meta only", "n": -3}
        if ARRAYS:
            upd.update({"ks": None, "n": [-3, 3]})
        col.update(ids=["r%03d" % k for k in range(10, 15)], metadatas=[upd] * 5)
        add(["r%03d" % k for k in range(15, 20)] + ["u%03d" % k for k in range(5)], kind="upsert")
        gone = ["r%03d" % k for k in range(20, 40)]
        col.delete(ids=gone)
        for i in gone:
            inputs.pop(i, None)
            deleted.add(i)
        add(["r%03d" % k for k in range(20, 25)])
        for start in range(0, 30, 10):
            add(["t%03d" % k for k in range(start, start + 10)])

        # 300 log rows so far: a multiple of hnsw:batch_size and hnsw:sync_threshold, so all of
        # it is flushed. The 7 rows below stay only in embeddings_queue (one of each operation).
        add(["t%03d" % k for k in range(30, 33)])
        e = vec(rng)
        upd = {"s": "tail update", "tail": [3, 2, 1]} if ARRAYS else {"s": "tail update"}
        col.update(ids=["r050"], embeddings=[e], metadatas=[upd], documents=["tail document"])
        inputs["r050"] = e
        col.delete(ids=["r051"])
        inputs.pop("r051")
        deleted.add("r051")
        e = vec(rng)
        upd = {"s": "tail upsert", "k": 7}
        if ARRAYS:
            upd["tags"] = ["tail", "upsert"]
        col.upsert(ids=["r052"], embeddings=[e], metadatas=[upd], documents=["upserted"])
        inputs["r052"] = e
        col.update(ids=["r053"], metadatas=[{"s": None, "only": True}] if META_NULL_OK else [{"only": True}])

        got = col.get(include=["embeddings", "metadatas", "documents"])
        live = []
        for i, e, m, d in zip(got["ids"], got["embeddings"], got["metadatas"], got["documents"]):
            live.append({"id": i, "input": hexf(inputs[i]), "chroma": hexf(e), "metadata": m or {}, "document": d})
        if sorted(got["ids"]) != sorted(inputs):
            raise SystemExit("chroma and the script disagree on the live ids of %s" % name)
        truth["collections"].append({"name": name, "space": space, "live": sorted(live, key=lambda r: r["id"]),
                                     "deleted": sorted(deleted)})
    drop = client.create_collection(name="c_dropped", metadata={"hnsw:sync_threshold": 10, "hnsw:batch_size": 5},
                                    embedding_function=None)
    drop.add(ids=["d%03d" % k for k in range(30)], embeddings=[vec(rng) for _ in range(30)])
    client.delete_collection("c_dropped")
    with open(truth_path, "w") as f:
        json.dump(truth, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
