// SPDX-License-Identifier: Apache-2.0
/// Core value types shared by every backend: Article, Embedding, SearchHit, VectorBatch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vstore {

/// A JSON object of metadata values (string, integer, float, bool), as Chroma stores them.
using Metadata = nlohmann::json;

/// One embedding vector (float32).
using Embedding = std::vector<float>;

/// An article record as the application stores it. Optional fields are absent (not empty)
/// when the source had null. `extra` holds any other scalar fields of the source record.
struct Article {
  std::string uri;  ///< primary key; required, non-empty
  std::optional<std::string> title;
  std::optional<std::string> summary;
  std::optional<std::string> raw;
  std::optional<std::string> topic;
  std::optional<std::string> category;
  std::optional<std::string> news_source;
  std::optional<std::string> publication_date;  ///< as the source gave it (ISO 8601 or other)
  std::optional<std::vector<std::string>> tags;
  std::optional<std::string> sentiment;
  std::optional<std::string> future_signal;
  std::optional<std::string> time_to_impact;
  std::optional<std::string> driver_type;
  std::optional<bool> analyzed;
  Metadata extra = Metadata::object();  ///< other scalar fields (e.g. "dateline")
};

/// An article with the vector to store for it and the model that produced the vector.
struct ArticleVector {
  Article article;
  Embedding embedding;
  std::string embedding_model;  ///< e.g. "all-MiniLM-L6-v2"; required
  /// embedding_text_hash() of the model and the text the vector was made from, when vstore made
  /// it; empty for a vector that arrived ready-made (stored as NULL: reindex cannot vouch for it).
  std::string text_hash = {};
};

/// One search result. `score` is the cosine distance 1 - cos (lower is more similar), the
/// same in every backend; `raw_score` is the backend's own distance value.
struct SearchHit {
  std::string id;
  double score = 0.0;
  double raw_score = 0.0;
  Metadata metadata = Metadata::object();
};

/// Vectors with their ids and metadata, row-major n x dim.
struct VectorBatch {
  std::vector<std::string> ids;
  std::vector<float> data;  ///< ids.size() * dim floats
  std::size_t dim = 0;
  std::vector<Metadata> metadatas;
};

/// Row counts of a store.
struct StoreCounts {
  std::int64_t rows = 0;            ///< all article rows
  std::int64_t with_embedding = 0;  ///< rows that hold a vector
};

}  // namespace vstore
