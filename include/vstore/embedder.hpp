// SPDX-License-Identifier: Apache-2.0
/// Embedder: turns texts into vectors. Chosen by EMBEDDING_PROVIDER; never chosen silently.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vstore/config.hpp"
#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// Thread-safe: embed() may be called from several threads at once.
class Embedder {
 public:
  virtual ~Embedder() = default;
  /// The model name recorded with every stored vector.
  [[nodiscard]] virtual std::string_view model() const = 0;
  [[nodiscard]] virtual int dimension() const = 0;
  /// One vector per text, L2-normalised. Errors: invalid_argument (a text of only Unicode blanks,
  /// see core/text.hpp, named by its index), unavailable (a remote embedder could not be reached).
  [[nodiscard]] virtual Result<std::vector<Embedding>> embed(std::span<const std::string> texts) = 0;
};

/// The embedder of EMBEDDING_PROVIDER. "hash" is a lexical feature-hashing embedder for tests
/// (Unicode words minus English function words, and word pairs, hashed into EMBEDDING_DIM signed
/// buckets): it finds shared words, not meaning. "local" finds its model by embed::find_model_dir.
/// Errors: invalid_argument (provider not available in this build, with what to set), not_found.
[[nodiscard]] Result<std::unique_ptr<Embedder>> make_embedder(const Config& config);

/// The hash embedder directly (model name "vstore-hash-v2"; v1 dropped "reuter", "mln", "pct").
[[nodiscard]] std::unique_ptr<Embedder> make_hash_embedder(int dimension);

}  // namespace vstore
