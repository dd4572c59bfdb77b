// SPDX-License-Identifier: Apache-2.0
// make_embedder(): the embedder EMBEDDING_PROVIDER names, never a silent substitute.
#include <fmt/format.h>

#include "embed/embed_local.hpp"
#include "embed/embed_openai.hpp"
#include "vstore/embedder.hpp"

namespace vstore {

Result<std::unique_ptr<Embedder>> make_embedder(const Config& config) {
  if (config.embedding_provider == "hash") return make_hash_embedder(config.embedding_dim);
  if (config.embedding_provider == "openai") {
    embed::OpenAIOptions opts;
    if (!config.openai_base_url.empty()) opts.base_url = config.openai_base_url;
    opts.api_key = config.openai_api_key;
    opts.timeout = config.openai_timeout;
    opts.model = config.embedding_model;
    opts.dimension = config.embedding_dim;
    opts.send_dimensions = config.embedding_model.starts_with("text-embedding-3");
    return embed::make_openai_embedder(opts);
  }
  if (config.embedding_provider == "local") {
    VS_TRY_ASSIGN(const std::filesystem::path dir, embed::find_model_dir(config, embed::model_dir_records()));
    return embed::make_local_embedder(dir, config.embedding_model, config.embedding_dim, config.embed_threads);
  }
  return fail(ErrorCode::invalid_argument,
              fmt::format("EMBEDDING_PROVIDER={}: expected local, openai or hash", config.embedding_provider));
}

}  // namespace vstore
