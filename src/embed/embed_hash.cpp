// SPDX-License-Identifier: Apache-2.0
// The hash embedder: a lexical embedder for tests and for running without model files when the
// user asks for it by EMBEDDING_PROVIDER=hash. Words are maximal runs of letters, marks and
// digits (Unicode categories L*, M*, N*; bytes that are not UTF-8 count as letters), lower-cased
// with utf8proc; everything else, including no-break and zero-width spaces, separates words.
// Common English function words are dropped (no corpus-specific words: "reuter", "mln" or
// "pct" are words like any other). Each word and each adjacent word pair is hashed (FNV-1a 64)
// to a bucket and a sign, weighted 1 + ln(count), summed and L2-normalised. It finds shared
// words, not meaning. A text without content (core/text.hpp) or without a word is refused.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <utf8proc.h>

#include "core/text.hpp"
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

// Sorted, for binary_search.
constexpr std::string_view k_stop_words[] = {
    "a", "about", "after", "also", "an", "and", "are", "as", "at", "be", "been", "but", "by", "can", "for",
    "from", "had", "has", "have", "he", "her", "his", "in", "is", "it", "its", "last", "not", "of", "on",
    "or", "said", "say", "says", "she", "than", "that", "the", "their", "they", "this", "to", "was", "were",
    "which", "will", "with", "would", "year"};

bool is_stop_word(std::string_view w) {
  return w.size() < 2 || std::binary_search(std::begin(k_stop_words), std::end(k_stop_words), w);
}

// The start of a text for an error message: JSON-quoted (control bytes visible), cut at 40 bytes.
std::string excerpt(std::string_view text) {
  const bool cut = text.size() > 40;
  return nlohmann::json(std::string(text.substr(0, 40)) + (cut ? "..." : ""))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool is_word_category(utf8proc_category_t category) {
  switch (category) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      return true;
    default:
      return false;
  }
}

// The lower-cased words of `text`, in order.
std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> words;
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) words.push_back(std::move(word));
    word.clear();
  };
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  auto left = static_cast<utf8proc_ssize_t>(text.size());
  while (left > 0) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(bytes, left, &cp);
    if (used <= 0) {  // not UTF-8: the byte is kept as a letter
      word.push_back(static_cast<char>(*bytes));
      ++bytes;
      --left;
      continue;
    }
    if (is_word_category(utf8proc_category(cp))) {
      std::array<utf8proc_uint8_t, 4> encoded{};
      const utf8proc_ssize_t n = utf8proc_encode_char(utf8proc_tolower(cp), encoded.data());
      word.append(reinterpret_cast<const char*>(encoded.data()), static_cast<std::size_t>(n));
    } else {
      flush();
    }
    bytes += used;
    left -= used;
  }
  flush();
  return words;
}

class HashEmbedder final : public Embedder {
 public:
  explicit HashEmbedder(int dim) : m_dim(dim) {}
  std::string_view model() const override { return "vstore-hash-v2"; }
  int dimension() const override { return m_dim; }

  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    std::vector<Embedding> out;
    out.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      if (is_blank_text(texts[i])) {
        return fail(ErrorCode::invalid_argument, fmt::format("text {} is blank; nothing to embed", i));
      }
      std::vector<std::string> words = words_of(texts[i]);
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
