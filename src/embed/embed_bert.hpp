// SPDX-License-Identifier: Apache-2.0
// BertModel: sentence embeddings from token ids with a BERT encoder (fp32 safetensors, OpenBLAS).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::embed {

/// Sets OpenBLAS to one thread and stops the worker threads a pthread OpenBLAS started when it
/// was loaded (the engine runs BLAS on one thread per caller). Call it at the start of main,
/// before any other thread uses BLAS; later calls do nothing. Never fails (without OpenBLAS's
/// thread server there is nothing to stop). Environment variables are not touched, so the
/// processes vstore starts are unaffected.
void limit_blas_threads();

/// The BLAS library the engine runs on, as it describes itself (OpenBLAS's build configuration,
/// e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"), for `vstore version`.
[[nodiscard]] std::string blas_description();

/// The shape of a BERT encoder, as read from a Hugging Face config.json.
struct BertConfig {
  int vocab_size = 30522;         ///< rows of the word embedding table
  int hidden_size = 384;          ///< width of every token vector; also the embedding dimension
  int num_layers = 6;             ///< encoder layers
  int num_heads = 12;             ///< attention heads; must divide hidden_size
  int intermediate_size = 1536;   ///< width of the feed-forward layer
  int max_positions = 512;        ///< rows of the position embedding table: the longest sequence
  int type_vocab_size = 2;        ///< rows of the token type table (only type 0 is used)
  float layer_norm_eps = 1e-12F;  ///< epsilon inside every LayerNorm
};

/// A loaded BERT encoder with mean pooling and L2 normalisation (a sentence-transformers model
/// such as all-MiniLM-L6-v2). Immutable after load(): every method is const and thread-safe, and
/// one instance is meant to be shared (std::shared_ptr) by every thread that embeds.
class BertModel {
 public:
  /// Reads `model_dir`/config.json and `model_dir`/model.safetensors (fp32 tensors named as
  /// Hugging Face BertModel names them, with or without a "bert." prefix). The weights are
  /// copied into memory owned by the model; the files are not kept open.
  /// Errors: not_found (a file is missing, naming it), corruption (unparsable JSON, a missing
  /// tensor, a dtype other than F32, or a shape that does not match config.json, naming the
  /// tensor and the expected shape), invalid_argument (config.json values out of range, or an
  /// activation other than "gelu").
  [[nodiscard]] static Result<std::shared_ptr<const BertModel>> load(const std::filesystem::path& model_dir);

  /// One sentence embedding per sequence of `batch`, in order: the last hidden states averaged
  /// over the sequence's tokens, then scaled to unit L2 norm. Each sequence is a complete model
  /// input ([CLS] ... [SEP]) of 1..max_positions() ids below vocab_size. Sequences of different
  /// lengths may share a batch: attention sees only a sequence's own tokens (what a padded batch
  /// with an attention mask computes), so batch neighbours change an embedding only by float
  /// rounding (about 1e-7). The output depends on `batch` alone, never on `threads`: the same
  /// batch gives bit-identical embeddings with any thread count.
  /// The work runs on the calling thread and on up to `threads` - 1 idle workers of the
  /// process's EmbedPool (embed_pool.hpp): no call starts a thread, so concurrent calls never
  /// add threads to the process. BLAS runs single-threaded inside each. An empty batch gives an
  /// empty result. Errors: invalid_argument (threads < 1, an empty or too long sequence, an id
  /// out of range, naming the sequence index and the value), internal (a failure on the pool).
  /// Thread-safe: concurrent calls share nothing mutable.
  [[nodiscard]] Result<std::vector<std::vector<float>>> embed(std::span<const std::vector<std::int32_t>> batch,
                                                              int threads) const;

  /// The embedding dimension (config hidden_size, 384 for all-MiniLM-L6-v2).
  [[nodiscard]] int hidden_size() const noexcept { return m_config.hidden_size; }
  /// The longest sequence embed() accepts (config max_position_embeddings).
  [[nodiscard]] int max_positions() const noexcept { return m_config.max_positions; }
  /// The vocabulary size; every id passed to embed() must be below it.
  [[nodiscard]] int vocab_size() const noexcept { return m_config.vocab_size; }
  [[nodiscard]] const BertConfig& config() const noexcept { return m_config; }

 private:
  struct PrivateTag {
    explicit PrivateTag() = default;
  };

 public:
  /// Use load(); callers outside the class cannot name PrivateTag (it exists for make_shared).
  explicit BertModel(PrivateTag /*tag*/) {}

 private:
  // Weights of one encoder layer, row-major, as Hugging Face stores them (Linear: [out, in]).
  // Q, K and V are stacked into one [3 * hidden, hidden] matrix so one GEMM computes all three.
  struct Layer {
    std::vector<float> qkv_weight;      // [3H, H]: rows 0..H-1 query, H..2H-1 key, 2H..3H-1 value
    std::vector<float> qkv_bias;        // [3H]
    std::vector<float> attn_out_weight;  // [H, H]
    std::vector<float> attn_out_bias;    // [H]
    std::vector<float> attn_ln_gamma;    // [H]
    std::vector<float> attn_ln_beta;     // [H]
    std::vector<float> ffn_in_weight;    // [I, H]
    std::vector<float> ffn_in_bias;      // [I]
    std::vector<float> ffn_out_weight;   // [H, I]
    std::vector<float> ffn_out_bias;     // [H]
    std::vector<float> ffn_ln_gamma;     // [H]
    std::vector<float> ffn_ln_beta;      // [H]
  };

  struct Workspace;
  // Encodes `seqs` (one chunk, packed back to back) into out[i] for each seqs[i]. With
  // column_parts > 1, the Linear layers of a short chunk are split between that many parts on
  // the process's EmbedPool. Errors: internal (a part failed on the pool).
  [[nodiscard]] Result<void> encode_chunk(std::span<const std::vector<std::int32_t>> seqs, Workspace& ws,
                                          std::span<std::vector<float>> out, int column_parts) const;

  BertConfig m_config;
  std::vector<float> m_word_embeddings;      // [V, H]
  std::vector<float> m_position_embeddings;  // [P, H], with token type 0 already added
  std::vector<float> m_embed_ln_gamma;       // [H]
  std::vector<float> m_embed_ln_beta;        // [H]
  std::vector<Layer> m_layers;
};

}  // namespace vstore::embed
