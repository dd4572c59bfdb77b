# SPDX-License-Identifier: Apache-2.0
"""Writes the Chroma directory an application of the plan would have: one collection of its articles.

Test-only. Usage: python make_app_chroma_dir.py OUT_DIR RECORDS_JSONL [COLLECTION]
Each line of RECORDS_JSONL is {"id", "embedding", "metadata", "document"}; they are added with
chromadb.PersistentClient as the application's vector store did (cosine space, explicit
embeddings, no embedding function run).
"""
import json
import sys

import chromadb


def main() -> None:
    out_dir, records_path = sys.argv[1], sys.argv[2]
    name = sys.argv[3] if len(sys.argv) > 3 else "articles"
    with open(records_path, encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    client = chromadb.PersistentClient(path=out_dir)
    collection = client.create_collection(name=name, metadata={"hnsw:space": "cosine"}, embedding_function=None)
    for start in range(0, len(records), 100):
        batch = records[start:start + 100]
        collection.add(
            ids=[r["id"] for r in batch],
            embeddings=[r["embedding"] for r in batch],
            metadatas=[r["metadata"] for r in batch],
            documents=[r["document"] for r in batch],
        )
    print(json.dumps({"collection": name, "count": collection.count()}))


if __name__ == "__main__":
    main()
