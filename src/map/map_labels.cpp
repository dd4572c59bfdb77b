// SPDX-License-Identifier: Apache-2.0
// Cluster labels: title_words() and cluster_terms(), class-based TF-IDF over titles (the
// weighting BERTopic calls c-TF-IDF: a word's share of a cluster's words times
// log(1 + mean words per cluster / the word's count in all clusters)).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <string>
#include <unordered_map>

#include <fmt/format.h>

#include "vstore/collection_map.hpp"

namespace vstore {
namespace {

// English function words, and the words every headline uses; written for vstore.
const std::set<std::string, std::less<>>& stop_words() {
  static const std::set<std::string, std::less<>> words = {
      "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at",
      "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
      "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having", "he",
      "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its",
      "itself", "just", "may", "me", "might", "more", "most", "must", "my", "myself", "no", "nor", "not", "now", "of",
      "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "say",
      "says", "said", "see", "sees", "seen", "set", "sets", "she", "should", "so", "some", "such", "than", "that",
      "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through",
      "to", "too", "under", "until", "up", "upon", "very", "via", "was", "we", "were", "what", "when", "where",
      "which", "while", "who", "whom", "why", "will", "with", "within", "without", "would", "yet", "you", "your",
      "yours", "yourself", "new", "get", "gets", "got", "make", "makes", "made", "one", "two", "three", "per",
      "amid", "among", "onto", "toward", "towards", "ago", "st", "nd", "rd", "th", "s", "t", "re", "ve", "ll"};
  return words;
}

bool word_byte(unsigned char c) { return std::isalnum(c) != 0 || c >= 0x80; }

}  // namespace

std::vector<std::string> title_words(std::string_view title) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < title.size()) {
    while (i < title.size() && !word_byte(static_cast<unsigned char>(title[i]))) ++i;
    std::size_t end = i;
    while (end < title.size() && word_byte(static_cast<unsigned char>(title[end]))) ++end;
    if (end > i) {
      std::string w(title.substr(i, end - i));
      bool digit = false;
      std::size_t chars = 0;
      for (char& c : w) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x80) c = static_cast<char>(std::tolower(u));
        digit = digit || std::isdigit(u) != 0;
        if ((u & 0xC0U) != 0x80U) ++chars;  // count UTF-8 characters, not bytes
      }
      if (!digit && chars > 1 && !stop_words().contains(w)) out.push_back(std::move(w));
    }
    i = end;
  }
  return out;
}

Result<std::vector<std::vector<std::string>>> cluster_terms(std::span<const std::string> titles, std::span<const int> labels,
                                                            int clusters, int terms) {
  if (titles.size() != labels.size()) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("cluster_terms: {} titles but {} labels", titles.size(), labels.size()));
  }
  if (clusters < 1 || terms < 1) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("cluster_terms needs at least one cluster and one term, not {} and {}", clusters, terms));
  }
  const auto k = static_cast<std::size_t>(clusters);
  std::vector<std::unordered_map<std::string, double>> counts(k);
  std::vector<double> totals(k, 0.0);
  std::unordered_map<std::string, double> everywhere;
  for (std::size_t i = 0; i < titles.size(); ++i) {
    if (labels[i] == -1) continue;
    if (labels[i] < -1 || labels[i] >= clusters) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("cluster_terms: title {} has label {}; expected -1 to {}", i, labels[i], clusters - 1));
    }
    std::vector<std::string> words = title_words(titles[i]);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());  // a title counts a word once
    const auto c = static_cast<std::size_t>(labels[i]);
    for (auto& w : words) {
      counts[c][w] += 1.0;
      everywhere[w] += 1.0;
      totals[c] += 1.0;
    }
  }
  double mean_words = 0.0;
  for (double t : totals) mean_words += t;
  mean_words /= static_cast<double>(k);
  std::vector<std::vector<std::string>> out(k);
  for (std::size_t c = 0; c < k; ++c) {
    std::vector<std::pair<double, std::string>> scored;
    scored.reserve(counts[c].size());
    for (const auto& [word, count] : counts[c]) {
      const double tf = count / totals[c];
      scored.emplace_back(tf * std::log(1.0 + mean_words / everywhere[word]), word);
    }
    const auto take = std::min(scored.size(), static_cast<std::size_t>(terms));
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(take), scored.end(),
                      [](const auto& x, const auto& y) { return x.first != y.first ? x.first > y.first : x.second < y.second; });
    for (std::size_t t = 0; t < take; ++t) out[c].push_back(scored[t].second);
  }
  return out;
}

}  // namespace vstore
