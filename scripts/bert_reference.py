# SPDX-License-Identifier: Apache-2.0
"""Test-only reference: BERT sentence embeddings (mean pooling, L2 norm) in plain NumPy float64.

An independent check of the C++ forward pass in src/embed/embed_bert.cpp. It follows the
standard Hugging Face BertModel definition step by step: a padded batch, an additive attention
mask, post-LayerNorm encoder layers with exact (erf) GELU, then sentence-transformers' mean
pooling over the attention mask and L2 normalisation. Batches group texts of similar length to
keep the padding small; nothing else is tuned for speed.

Input: a JSON-lines file, one object per line, either {"text": "..."} (tokenised here with the
Hugging Face `tokenizers` library and the model's tokenizer.json, truncated to the model's
max_seq_length) or {"ids": [101, ..., 102]}. Output: a JSON-lines file with one object per
input line, {"ids": [...], "embedding": [...]}, in the same order.

    python scripts/bert_reference.py --model-dir DIR --input in.jsonl --output out.jsonl
"""

import argparse
import json
import math
import pathlib

import numpy as np
from safetensors.numpy import load_file


# NumPy has no erf and SciPy is not a dependency: the C library's, element by element.
erf = np.vectorize(math.erf, otypes=[np.float64])


def gelu(x):
    # Hugging Face "gelu": x * Phi(x) with the exact normal CDF.
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x, weight, bias, eps):
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def linear(x, weights, name):
    # torch.nn.Linear: y = x W^T + b with W stored as [out_features, in_features].
    return x @ weights[name + ".weight"].T + weights[name + ".bias"]


class Bert:
    def __init__(self, model_dir):
        model_dir = pathlib.Path(model_dir)
        self.config = json.loads((model_dir / "config.json").read_text())
        raw = load_file(str(model_dir / "model.safetensors"))
        # Checkpoints saved from BertForXxx carry a "bert." prefix; BertModel ones do not.
        self.w = {k[len("bert."):] if k.startswith("bert.") else k: v.astype(np.float64) for k, v in raw.items()}
        st = model_dir / "sentence_bert_config.json"
        self.max_seq_length = json.loads(st.read_text())["max_seq_length"] if st.exists() else 512

    def forward(self, batch_ids):
        cfg, w = self.config, self.w
        hidden_size = cfg["hidden_size"]
        heads = cfg["num_attention_heads"]
        head_dim = hidden_size // heads
        eps = cfg["layer_norm_eps"]

        batch = len(batch_ids)
        seq_len = max(len(ids) for ids in batch_ids)
        input_ids = np.zeros((batch, seq_len), dtype=np.int64)
        attention_mask = np.zeros((batch, seq_len), dtype=np.float64)
        for row, ids in enumerate(batch_ids):
            input_ids[row, : len(ids)] = ids
            attention_mask[row, : len(ids)] = 1.0
        token_type_ids = np.zeros_like(input_ids)
        position_ids = np.arange(seq_len)[None, :]

        x = (w["embeddings.word_embeddings.weight"][input_ids]
             + w["embeddings.position_embeddings.weight"][position_ids]
             + w["embeddings.token_type_embeddings.weight"][token_type_ids])
        x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)

        # [batch, 1, 1, seq]: 0 for real keys, a large negative number for padding keys.
        additive_mask = (1.0 - attention_mask)[:, None, None, :] * np.finfo(np.float64).min

        def split_heads(t):
            return np.ascontiguousarray(t.reshape(batch, seq_len, heads, head_dim).transpose(0, 2, 1, 3))

        for layer in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{layer}."
            q = split_heads(linear(x, w, p + "attention.self.query"))
            k = split_heads(linear(x, w, p + "attention.self.key"))
            v = split_heads(linear(x, w, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim) + additive_mask
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs = probs / probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq_len, hidden_size)
            attn = linear(context, w, p + "attention.output.dense")
            x = layer_norm(attn + x, w[p + "attention.output.LayerNorm.weight"],
                           w[p + "attention.output.LayerNorm.bias"], eps)
            inter = gelu(linear(x, w, p + "intermediate.dense"))
            out = linear(inter, w, p + "output.dense")
            x = layer_norm(out + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)

        # sentence-transformers Pooling(mean) then Normalize.
        mask = attention_mask[:, :, None]
        pooled = (x * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--input", required=True, help="JSON lines with 'text' or 'ids'")
    parser.add_argument("--output", required=True, help="JSON lines with 'ids' and 'embedding'")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    model = Bert(args.model_dir)
    tokenizer = None
    all_ids = []
    for line in pathlib.Path(args.input).read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        record = json.loads(line)
        if "ids" in record:
            all_ids.append([int(i) for i in record["ids"]])
            continue
        if tokenizer is None:
            from tokenizers import Tokenizer
            tokenizer = Tokenizer.from_file(str(pathlib.Path(args.model_dir) / "tokenizer.json"))
            tokenizer.no_padding()
            tokenizer.enable_truncation(model.max_seq_length)
        all_ids.append(tokenizer.encode(record["text"]).ids)

    # Batches of similar lengths keep the padding small; the output keeps the input order.
    order = sorted(range(len(all_ids)), key=lambda i: len(all_ids[i]))
    embeddings = [None] * len(all_ids)
    for start in range(0, len(order), args.batch_size):
        members = order[start:start + args.batch_size]
        for i, emb in zip(members, model.forward([all_ids[i] for i in members])):
            embeddings[i] = emb
    with open(args.output, "w", encoding="utf-8") as out:
        for ids, emb in zip(all_ids, embeddings):
            out.write(json.dumps({"ids": ids, "embedding": [float(v) for v in emb]}) + "\n")


if __name__ == "__main__":
    main()
