# SPDX-License-Identifier: Apache-2.0
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*). Test tooling only.

Usage: python3 fuzz/make_corpus.py CHROMA_DIR MODEL_DIR ARTICLES_JSONL
  CHROMA_DIR      a Chroma persistent directory (tests/support/make_chroma_dir.py writes one;
                  run it with a chromadb 0.4-0.6 and a 1.x to have both pickle dialects; give
                  several directories joined with ':')
  MODEL_DIR       the all-MiniLM-L6-v2 directory (its safetensors header is a seed)
  ARTICLES_JSONL  a JSON Lines file of articles; its first 3 records are seeds
Seeds are small: HNSW segments are cut to their first 8 slots. Files the fuzzer added later
(by scripts/fuzz.sh --merge) are kept.
"""
import glob
import json
import os
import random
import struct
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def filters():
    seeds = {
        "eq": {"topic": "AI"},
        "eq-op": {"topic": {"$eq": "AI"}},
        "ne-int": {"year": {"$ne": 2024}},
        "gt-float": {"score": {"$gt": 0.5}},
        "gte-date": {"publication_date": {"$gte": "2024-01-01"}},
        "lt-date-time": {"publication_date": {"$lt": "2024-03-01T12:30:00+02:00"}},
        "in": {"category": {"$in": ["tech", "science", "health"]}},
        "nin-mixed-float": {"w": {"$nin": [1.5, 2, 3.25]}},
        "and": {"$and": [{"topic": "AI"}, {"sentiment": {"$in": ["positive", "neutral"]}}]},
        "or-nested": {"$or": [{"$and": [{"a": 1}, {"b": True}]}, {"c": {"$lte": -3}}]},
        "implicit-and": {"topic": "AI", "news_source": "Reuters", "analyzed": False},
        "empty-and": {"$and": []},
        "unicode": {"title": {"$eq": "Zürich – 東京 ✓"}},
        "bad-op": {"topic": {"$foo": 1}},
        "bad-key": {"to pic": 1},
    }
    for name, value in seeds.items():
        put("filter", name, json.dumps(value, ensure_ascii=False))
    put("filter", "syntax-error", '{"topic": ')
    put("filter", "deep", '{"$and": [' * 40 + "{}" + "]}" * 40)


def articles(path):
    with open(path, encoding="utf-8") as f:
        lines = [next(f).rstrip("\n") for _ in range(3)]
    put("article", "reuters", "\n".join(lines) + "\n")
    full = {
        "uri": "https://example.com/a/1", "title": "Quantum chips", "summary": "A short summary.",
        "raw": "The body text.", "topic": "AI", "category": "tech", "news_source": "Example News",
        "publication_date": "2024-05-06T07:08:09Z", "sentiment": "positive", "future_signal": "up",
        "time_to_impact": "short", "driver_type": "technology", "tags": ["chips", "quantum"],
        "analyzed": True, "extra_int": 7, "extra_float": 1.25, "extra_bool": False,
        "embedding": [0.1, -0.2, 0.3, 0.4], "embedding_model": "all-MiniLM-L6-v2",
    }
    put("article", "full", json.dumps(full) + "\n")
    put("article", "mixed", "\n".join([
        json.dumps({"uri": "u1", "tags": "one tag", "publication_date": "Mar 3, 1987"}),
        "   ",
        json.dumps({"uri": "u2", "title": None, "embedding": [0, 0, 0]}),
        json.dumps({"uri": "u3", "publication_date": "not a date", "raw": "x\u0000y"}),
        '{"uri": "u4", "title": ',
        json.dumps({"uri": "u1", "embedding": [1e39, 2]}),
    ]) + "\n")


def segments(chroma_dirs):
    pickles = []
    for chroma_dir in chroma_dirs:
        for seg in sorted(glob.glob(os.path.join(chroma_dir, "*", "header.bin"))):
            pickles.append(os.path.join(os.path.dirname(seg), "index_metadata.pickle"))
    # One of each size (the dialects and collection sizes differ), smallest first.
    by_size = {}
    for p in pickles:
        if os.path.exists(p):
            by_size.setdefault(os.path.getsize(p), p)
    chosen = [by_size[s] for s in sorted(by_size)][:4]
    for i, p in enumerate(chosen):
        seg = os.path.dirname(p)
        pickle = open(p, "rb").read()
        put("pickle", "chroma-%d" % i, pickle)
        header = bytearray(open(os.path.join(seg, "header.bin"), "rb").read())
        stride = struct.unpack_from("<Q", header, 28)[0]
        count = min(struct.unpack_from("<Q", header, 20)[0], 8)
        struct.pack_into("<Q", header, 20, count)
        level0 = open(os.path.join(seg, "data_level0.bin"), "rb").read()[: count * stride]
        length_path = os.path.join(seg, "length.bin")
        lengths = open(length_path, "rb").read()[: count * 4] if os.path.exists(length_path) else b""
        for flags in (0, 3) if i < 2 else (1,):
            data = bytes([flags]) + bytes(header) + struct.pack("<I", len(level0)) + level0
            data += struct.pack("<I", len(lengths)) + lengths + pickle
            put("hnsw", "chroma-%d-flags%d" % (i, flags), data)


def tokenizer():
    texts = {
        "english": "The quick brown fox jumps over the lazy dog's back, doesn't it?",
        "accents": "Café déjà vu: naïve résumé, Ångström, ÉCOLE",
        "cjk": "東京は日本の首都です。北京、서울",
        "special": "[CLS] hello [MASK] world [SEP] [UNK][PAD]",
        "controls": "tab\there\r\nnewline\u0000nul\u200bzero-width\u00adsoft",
        "long-word": "a" * 120 + " supercalifragilisticexpialidocious",
        "emoji": "rocket 🚀 launch 👩‍💻 code",
    }
    for i, (name, text) in enumerate(texts.items()):
        put("tokenizer", name, bytes([64 + i]) + text.encode("utf-8"))
    put("tokenizer", "invalid-utf8", b"\x10ab\xff\xfecd\xc3(\xe2\x82 \xf0\x9f\x98 word\xed\xa0\x80")
    put("tokenizer", "short-limit", b"\x00" + "several words here".encode())


def safetensors_file(tensors):
    header, data = {}, b""
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        values = struct.pack("<%df" % n, *[random.uniform(-0.5, 0.5) for _ in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(values)]}
        data += values
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors(model_dir):
    random.seed(7)
    h, inter = 4, 8
    names = [("embeddings.word_embeddings.weight", [8, h]), ("embeddings.position_embeddings.weight", [8, h]),
             ("embeddings.token_type_embeddings.weight", [2, h]), ("embeddings.LayerNorm.weight", [h]),
             ("embeddings.LayerNorm.bias", [h])]
    p = "encoder.layer.0."
    for part in ("query", "key", "value"):
        names += [(p + "attention.self.%s.weight" % part, [h, h]), (p + "attention.self.%s.bias" % part, [h])]
    names += [(p + "attention.output.dense.weight", [h, h]), (p + "attention.output.dense.bias", [h]),
              (p + "attention.output.LayerNorm.weight", [h]), (p + "attention.output.LayerNorm.bias", [h]),
              (p + "intermediate.dense.weight", [inter, h]), (p + "intermediate.dense.bias", [inter]),
              (p + "output.dense.weight", [h, inter]), (p + "output.dense.bias", [h]),
              (p + "output.LayerNorm.weight", [h]), (p + "output.LayerNorm.bias", [h])]
    put("safetensors", "tiny-bert", safetensors_file(names))
    put("safetensors", "tiny-bert-prefixed", safetensors_file([("bert." + n, s) for n, s in names]))
    with open(os.path.join(model_dir, "model.safetensors"), "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        head = f.read(n)
    put("safetensors", "minilm-header", struct.pack("<Q", n) + head)


def requests():
    bodies = [
        (0, {"query": "central bank interest rates", "top_k": 5, "where": {"topic": "economy"}}),
        (0, {"vector": [0.1, 0.2, -0.3, 0.4], "top_k": 3, "explain": True}),
        (1, {"uri": "reuters21578:1", "top_k": 5, "where": {"$and": [{"a": 1}, {"b": {"$in": ["x", "y"]}}]}}),
        (2, {"article": {"uri": "u1", "title": "T", "raw": "text", "tags": ["a", "b"], "analyzed": True}}),
        (3, {"articles": [{"uri": "u1", "summary": "s"}, {"uri": "u2", "publication_date": "2024-01-02"}]}),
        (4, {"where": {"category": "tech"}, "limit": 10, "include_vectors": False}),
        (5, {"limit": 100, "clusters": 4, "seed": 1}),
        (6, {"clusters": 0, "seed": 42}),
        (7, {"input": ["first text", "second"], "model": "fuzz-model", "encoding_format": "base64", "dimensions": 4}),
        (7, {"input": "one text", "user": "me"}),
    ]
    for i, (route, body) in enumerate(bodies):
        put("request", "route%d-%d" % (route, i), bytes([route]) + json.dumps(body, ensure_ascii=False).encode())
    put("request", "route0-unknown-field", bytes([0]) + b'{"query": "x", "topk": 3}')
    put("request", "route6-empty", bytes([6]))


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    filters()
    articles(sys.argv[3])
    segments(sys.argv[1].split(":"))
    tokenizer()
    safetensors(sys.argv[2])
    requests()


if __name__ == "__main__":
    main()
