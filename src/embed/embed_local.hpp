// SPDX-License-Identifier: Apache-2.0
// make_local_embedder(): the in-process sentence embedding engine (tokenizer + BERT).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "vstore/config.hpp"
#include "vstore/embedder.hpp"

namespace vstore::embed {

/// The files in which scripts/setup.sh records the installed model directory, in the order
/// they are read: `$XDG_CONFIG_HOME/vstore/model_dir` (XDG_CONFIG_HOME unset, empty or
/// relative: `$HOME/.config/vstore/model_dir`; neither set: skipped), then
/// `/etc/vstore/model_dir`. Reads the process environment (not .env: these are the user's
/// session, not vstore settings). Thread-safe while nobody calls setenv.
[[nodiscard]] std::vector<std::filesystem::path> model_dir_records();

/// The model directory of the local engine: VSTORE_MODEL_DIR when set (`config.model_dir`, as
/// it is); else `config.data_dir/models/all-MiniLM-L6-v2` when it holds model.safetensors;
/// else the first directory named by one of `records` (its first line, surrounding blanks
/// trimmed; a relative path is taken from the record's directory) that holds
/// model.safetensors. So a model that set-up installed is found whatever VSTORE_DATA_DIR points
/// at. Errors: not_found naming every place looked in, with the set-up step and the variable to
/// set. Reads the file system; thread-safe.
[[nodiscard]] Result<std::filesystem::path> find_model_dir(const Config& config,
                                                           const std::vector<std::filesystem::path>& records);

/// The longest token sequence the model of `model_dir` is run on: max_seq_length of
/// sentence_bert_config.json (256 when the file or key is missing), clamped to 2..max_positions.
[[nodiscard]] std::size_t read_max_seq_length(const std::filesystem::path& dir, int max_positions);

/// Loads the tokenizer and weights of `model_dir` (vocab.txt, tokenizer_config.json,
/// config.json, model.safetensors, optional sentence_bert_config.json for the maximum length,
/// 256 by default). `model_name` is recorded with every vector. `threads` (<= 0: one per core)
/// is the most threads one embed() call uses, the caller included; the first embedder made in
/// the process also sizes the process's EmbedPool with it (later ones share that pool, so
/// concurrent calls never add threads). Errors: not_found (files missing, with the set-up
/// step), corruption (bad files), invalid_argument (the model's dimension differs from
/// `expected_dim`). The embedder is thread-safe.
[[nodiscard]] Result<std::unique_ptr<Embedder>> make_local_embedder(const std::filesystem::path& model_dir,
                                                                    std::string model_name, int expected_dim,
                                                                    int threads);

}  // namespace vstore::embed
