// SPDX-License-Identifier: Apache-2.0
// The hash embedder: lower-cased alphanumeric words (common English stop words dropped) and
// adjacent word pairs, each hashed (FNV-1a 64) to a bucket and a sign, weighted 1 + ln(count),
// summed and L2-normalised. Lexical only; for tests and
// for running without model files when the user asks for it by EMBEDDING_PROVIDER=hash.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vstore/embedder.hpp"

namespace vstore {
namespace {

std::uint64_t fnv1a(std::string_view s, std::uint64_t seed = 1469598103934665603ULL) {
  std::uint64_t h = seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

constexpr std::string_view k_stop_words[] = {
    "a", "about", "after", "also", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "for",
    "from", "had", "has", "have", "he", "her", "his", "in", "is", "it", "its", "last", "mln", "not", "of",
    "on", "or", "pct", "reuter", "said", "say", "says", "she", "than", "that", "the", "their", "they", "this",
    "to", "was", "were", "which", "will", "with", "would", "year"};

bool is_stop_word(std::string_view w) {
  return w.size() < 2 || std::binary_search(std::begin(k_stop_words), std::end(k_stop_words), w);
}

// The start of a text for an error message: JSON-quoted (control bytes visible), cut at 40 bytes.
std::string excerpt(std::string_view text) {
  const bool cut = text.size() > 40;
  return nlohmann::json(std::string(text.substr(0, 40)) + (cut ? "..." : ""))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class HashEmbedder final : public Embedder {
 public:
  explicit HashEmbedder(int dim) : m_dim(dim) {}
  std::string_view model() const override { return "vstore-hash-v1"; }
  int dimension() const override { return m_dim; }

  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    std::vector<Embedding> out;
    out.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      std::vector<std::string> words;
      std::string word;
      for (unsigned char c : texts[i]) {
        if (std::isalnum(c) || c >= 0x80) {
          word.push_back(static_cast<char>(std::tolower(c)));
        } else if (!word.empty()) {
          words.push_back(std::move(word));
          word.clear();
        }
      }
      if (!word.empty()) words.push_back(std::move(word));
      std::erase_if(words, [](const std::string& w) { return is_stop_word(w); });
      if (words.empty()) {
        return fail(ErrorCode::invalid_argument, fmt::format("text {} of the batch ({}) has no words to embed", i,
                                                             excerpt(texts[i])));
      }
      std::map<std::string, float> features;
      for (std::size_t w = 0; w < words.size(); ++w) {
        features[words[w]] += 1.0f;
        if (w + 1 < words.size()) features[words[w] + ' ' + words[w + 1]] += 0.5f;
      }
      Embedding vec(static_cast<std::size_t>(m_dim), 0.0f);
      for (const auto& [feature, count] : features) {
        const float weight = 1.0f + std::log(std::max(1.0f, count));
        const std::uint64_t h = fnv1a(feature);
        const std::size_t bucket = static_cast<std::size_t>(h % static_cast<std::uint64_t>(m_dim));
        vec[bucket] += ((h >> 63) != 0u ? -weight : weight);
      }
      double norm = 0;
      for (float f : vec) norm += static_cast<double>(f) * f;
      if (norm == 0) vec[0] = 1.0f, norm = 1.0;
      const float inv = static_cast<float>(1.0 / std::sqrt(norm));
      for (float& f : vec) f *= inv;
      out.push_back(std::move(vec));
    }
    return out;
  }

 private:
  int m_dim;
};

}  // namespace

std::unique_ptr<Embedder> make_hash_embedder(int dimension) { return std::make_unique<HashEmbedder>(dimension); }

}  // namespace vstore
