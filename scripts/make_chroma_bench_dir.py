# SPDX-License-Identifier: Apache-2.0
"""Writes a Chroma persistent directory of N random float32 vectors for `vstore bench migrate`.

Usage: python make_chroma_bench_dir.py OUT_DIR ROWS DIM [SEED] [PAYLOAD]
Run it with a chromadb venv made by scripts/setup_chroma_py.sh. One cosine collection
"bench" with explicit embeddings; PAYLOAD "full" (the default) adds a short metadata and a
document per record, "vectors" stores ids and vectors only.
"""
import sys

import chromadb
import numpy as np
from chromadb.config import Settings


def main():
    out_dir, rows, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    payload = sys.argv[5] if len(sys.argv) > 5 else "full"
    if payload not in ("full", "vectors"):
        sys.exit("PAYLOAD must be full or vectors, not %r" % payload)
    rng = np.random.default_rng(seed)
    client = chromadb.PersistentClient(path=out_dir, settings=Settings(anonymized_telemetry=False))
    col = client.create_collection(name="bench", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    batch = 5000
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        vecs = rng.standard_normal((n, dim), dtype=np.float32)
        ids = ["b%07d" % (start + i) for i in range(n)]
        if payload == "vectors":
            col.add(ids=ids, embeddings=vecs)
        else:
            col.add(ids=ids, embeddings=vecs, metadatas=[{"i": start + i, "title": "bench %d" % (start + i)} for i in range(n)],
                    documents=["document %d" % (start + i) for i in range(n)])
    print(col.count())


if __name__ == "__main__":
    main()
