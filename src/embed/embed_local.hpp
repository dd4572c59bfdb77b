// SPDX-License-Identifier: Apache-2.0
// make_local_embedder(): the in-process sentence embedding engine (tokenizer + BERT).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "vstore/embedder.hpp"

namespace vstore::embed {

/// The longest token sequence the model of `model_dir` is run on: max_seq_length of
/// sentence_bert_config.json (256 when the file or key is missing), clamped to 2..max_positions.
[[nodiscard]] std::size_t read_max_seq_length(const std::filesystem::path& dir, int max_positions);

/// Loads the tokenizer and weights of `model_dir` (vocab.txt, tokenizer_config.json,
/// config.json, model.safetensors, optional sentence_bert_config.json for the maximum length,
/// 256 by default). `model_name` is recorded with every vector. `threads` <= 0 means one per
/// core. Errors: not_found (files missing, with the set-up step), corruption (bad files),
/// invalid_argument (the model's dimension differs from `expected_dim`). The embedder is
/// thread-safe.
[[nodiscard]] Result<std::unique_ptr<Embedder>> make_local_embedder(const std::filesystem::path& model_dir,
                                                                    std::string model_name, int expected_dim,
                                                                    int threads);

}  // namespace vstore::embed
