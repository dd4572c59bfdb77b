// SPDX-License-Identifier: Apache-2.0
// WordPieceTokenizer: BERT WordPiece tokenization with the ids of Hugging Face `tokenizers`.
//
// Design. encode() runs the phases of the Hugging Face pipeline (tokenizers 0.23) in order:
//  1. Special tokens. The raw bytes are scanned for the special tokens written literally
//     ("[CLS]", "[MASK]", ...; leftmost, then longest match). Each becomes its id; the text
//     between them goes through phases 2-4 on its own, as HF's AddedVocabulary splits first.
//  2. Normalisation (BertNormalizer), per stretch, into a code point buffer:
//     a. UTF-8 decoding. An invalid sequence becomes U+FFFD, consuming its maximal valid prefix
//        (at least one byte), which is what Python's decode(errors="replace") hands HF.
//     b. Clean-up: drop NUL, U+FFFD and controls (Cc, Cf, Co except \t \n \r); map whitespace
//        (Rust's char::is_whitespace, plus \t \n \r) to ' '.
//     c. CJK ideographs (HF's block list) get a space on each side.
//     d. Accent stripping (when strip_accents, which defaults to do_lower_case): canonical
//        decomposition of every code point, canonical reordering of combining marks across
//        the buffer (full NFD), then every non-spacing mark (Mn) is dropped.
//     e. Lower-casing (full mapping: U+0130 gives "i" + U+0307 when accents are kept).
//     ASCII takes a fast path (no decomposition, no marks, ASCII-only case mapping); a buffer
//     with no non-ASCII code point skips 2d-2e entirely.
//  3. Pre-tokenisation (BertPreTokenizer): split on whitespace (dropped) and around each
//     punctuation character (ASCII 33-47, 58-64, 91-96, 123-126, and Unicode P*), which
//     becomes a word of its own.
//  4. WordPiece: a word of more than 100 code points is [UNK]; otherwise greedy longest match
//     from the left, continuations looked up with their "##" prefix; a word with any part
//     that matches nothing is a single [UNK]. Lookups use string_view keys (no allocation) and
//     never try a piece longer than the longest vocabulary entry.
//  5. [CLS] + pieces + [SEP], the pieces cut at max_length - 2. Encoding stops as soon as
//     the cut is reached, so long texts cost no more than their first max_length pieces.
//
// Character data. Decomposition, combining classes, lower-case mappings and general categories
// come from utf8proc. HF takes its categories (for 2b, 2d, 3) from the Rust crate
// unicode_categories 0.1.1, whose tables are frozen at an older Unicode version; the few
// hundred code points whose class differs between those tables and utf8proc are listed in
// k_category_overrides (found by comparing every code point with the reference; see the
// integration test), so both agree on all of Unicode.
//
// Thread safety: the object is immutable after load(); encode() keeps its scratch buffers on
// the stack, so any number of threads may call it at once.
#include "embed/embed_tokenizer.hpp"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vstore::embed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr char32_t k_replacement = 0xFFFD;
constexpr std::size_t k_decompose_buffer = 8;  // longest canonical decomposition is 4

/// What the HF pipeline does with a character, besides whitespace and CJK.
enum class CharClass : std::uint8_t {
  plain,    ///< part of a word
  control,  ///< Cc, Cf, Co: dropped by clean-up
  mark,     ///< Mn: dropped after decomposition when stripping accents
  punct,    ///< P*: a word of its own
};

struct CategoryOverride {
  char32_t first;
  char32_t last;
  CharClass klass;
};

/// Code points whose class in HF (unicode_categories 0.1.1) differs from utf8proc's category,
/// as ranges sorted by first code point.
constexpr CategoryOverride k_category_overrides[] = {
    {0x0, 0x0, CharClass::plain},  // placeholder, never consulted (ASCII takes the fast path)
};

CharClass class_from_category(utf8proc_category_t category) {
  switch (category) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
      return CharClass::control;
    case UTF8PROC_CATEGORY_MN:
      return CharClass::mark;
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return CharClass::punct;
    default:
      return CharClass::plain;
  }
}

/// Class of a non-ASCII code point as HF sees it.
CharClass char_class(char32_t cp) {
  const auto* it = std::upper_bound(std::begin(k_category_overrides), std::end(k_category_overrides), cp,
                                    [](char32_t value, const CategoryOverride& o) { return value < o.first; });
  if (it != std::begin(k_category_overrides)) {
    --it;
    if (cp >= 0x80 && cp <= it->last) return it->klass;
  }
  return class_from_category(utf8proc_category(static_cast<utf8proc_int32_t>(cp)));
}

/// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t cp) {
  switch (cp) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x20: case 0x85: case 0xA0:
    case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

bool is_ascii_punct(char32_t cp) {
  return (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
}

/// HF's "chinese character" blocks (sic: Extension E starts at 0x2B920 there).
bool is_chinese_char(char32_t cp) {
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
         (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B920 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

int combining_class(char32_t cp) {
  if (cp < 0x300) return 0;
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->combining_class;
}

/// Decodes the code point at `pos` and advances past it. An invalid sequence yields U+FFFD and
/// advances past its maximal valid prefix, at least one byte (Unicode's "maximal subpart"
/// rule, which Python's UTF-8 decoder follows).
char32_t next_code_point(std::string_view s, std::size_t& pos) {
  const auto lead = static_cast<unsigned char>(s[pos++]);
  if (lead < 0x80) return lead;
  std::size_t trail = 0;
  char32_t cp = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    trail = 1;
    cp = lead & 0x1Fu;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    trail = 2;
    cp = lead & 0x0Fu;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    trail = 3;
    cp = lead & 0x07u;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return k_replacement;
  }
  for (std::size_t i = 0; i < trail; ++i) {
    if (pos >= s.size()) return k_replacement;
    const auto byte = static_cast<unsigned char>(s[pos]);
    if (byte < lo || byte > hi) return k_replacement;  // `byte` starts the next character
    cp = (cp << 6) | (byte & 0x3Fu);
    ++pos;
    lo = 0x80;
    hi = 0xBF;
  }
  return cp;
}

void append_utf8(char32_t cp, std::string& out) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool is_utf8_continuation(char byte) { return (static_cast<unsigned char>(byte) & 0xC0u) == 0x80u; }

/// Stable sort of each run of non-zero combining classes by class (Unicode canonical ordering).
void canonical_reorder(std::u32string& text) {
  for (std::size_t i = 1; i < text.size(); ++i) {
    const int klass = combining_class(text[i]);
    if (klass == 0) continue;
    for (std::size_t j = i; j > 0; --j) {
      const int previous = combining_class(text[j - 1]);
      if (previous == 0 || previous <= klass) break;
      std::swap(text[j - 1], text[j]);
    }
  }
}

char32_t to_lower_simple(char32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(cp)));
}

Result<std::string> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::corruption, fmt::format("cannot open {}", path.string()));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return fail(ErrorCode::corruption, fmt::format("cannot read {}", path.string()));
  return std::move(buffer).str();
}

/// A special token setting: a string, or an AddedToken object {"content": ...}; "" when absent.
std::string token_setting(const json& config, const char* key, const char* fallback) {
  const auto it = config.find(key);
  if (it == config.end()) return fallback;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    const auto content = it->find("content");
    if (content != it->end() && content->is_string()) return content->get<std::string>();
  }
  return "";
}

}  // namespace

Result<WordPieceTokenizer> WordPieceTokenizer::load(const fs::path& model_dir) {
  const fs::path vocab_path = model_dir / "vocab.txt";
  const fs::path config_path = model_dir / "tokenizer_config.json";
  for (const fs::path& path : {vocab_path, config_path}) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return fail(ErrorCode::not_found, fmt::format("tokenizer file {} does not exist", path.string()));
    }
  }

  WordPieceTokenizer tok;

  VS_TRY_ASSIGN(const std::string config_text, read_file(config_path));
  const json config = json::parse(config_text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return fail(ErrorCode::corruption, fmt::format("{} is not a JSON object", config_path.string()));
  }
  const auto flag = [&](const char* key, bool fallback) {
    const auto it = config.find(key);
    return (it != config.end() && it->is_boolean()) ? it->get<bool>() : fallback;
  };
  tok.m_lowercase = flag("do_lower_case", true);
  tok.m_strip_accents = flag("strip_accents", tok.m_lowercase);  // null: follows lower-casing
  tok.m_chinese_chars = flag("tokenize_chinese_chars", true);

  VS_TRY_ASSIGN(const std::string vocab_text, read_file(vocab_path));
  std::size_t line_start = 0;
  std::size_t line_no = 0;
  while (line_start < vocab_text.size()) {
    std::size_t line_end = vocab_text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = vocab_text.size();
    std::string_view token(vocab_text.data() + line_start, line_end - line_start);
    while (!token.empty() && (token.back() == '\r' || token.back() == ' ' || token.back() == '\t')) {
      token.remove_suffix(1);
    }
    if (line_no > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
      return fail(ErrorCode::corruption, fmt::format("{} has more than 2^31 tokens", vocab_path.string()));
    }
    const auto id = static_cast<std::int32_t>(line_no);
    tok.m_vocab.insert_or_assign(std::string(token), id);  // a repeated token keeps its last id, as in HF
    tok.m_max_piece_bytes = std::max(tok.m_max_piece_bytes, token.size());
    if (token.starts_with("##")) {
      tok.m_continuation.insert_or_assign(std::string(token.substr(2)), id);
      tok.m_max_continuation_bytes = std::max(tok.m_max_continuation_bytes, token.size() - 2);
    }
    ++line_no;
    line_start = line_end + 1;
  }
  tok.m_vocab_size = line_no;

  struct Required {
    const char* key;
    const char* fallback;
    std::int32_t* id;
  };
  const Required required[] = {{"cls_token", "[CLS]", &tok.m_cls_id},
                               {"sep_token", "[SEP]", &tok.m_sep_id},
                               {"unk_token", "[UNK]", &tok.m_unk_id},
                               {"pad_token", "[PAD]", &tok.m_pad_id}};
  std::vector<std::string> special_names;
  for (const Required& r : required) {
    const std::string name = token_setting(config, r.key, r.fallback);
    const auto id = tok.token_to_id(name);
    if (!id) {
      return fail(ErrorCode::corruption,
                  fmt::format("{} lacks the {} \"{}\" ({} tokens read)", vocab_path.string(), r.key, name, line_no));
    }
    *r.id = *id;
    special_names.push_back(name);
  }
  special_names.push_back(token_setting(config, "mask_token", "[MASK]"));
  if (const auto extra = config.find("additional_special_tokens"); extra != config.end() && extra->is_array()) {
    for (const json& item : *extra) {
      if (item.is_string()) special_names.push_back(item.get<std::string>());
      if (item.is_object() && item.contains("content") && item["content"].is_string()) {
        special_names.push_back(item["content"].get<std::string>());
      }
    }
  }
  for (const std::string& name : special_names) {
    const auto id = tok.token_to_id(name);
    const bool seen = std::any_of(tok.m_special.begin(), tok.m_special.end(),
                                  [&](const auto& s) { return s.first == name; });
    if (id && !name.empty() && !seen) {
      tok.m_special.emplace_back(name, *id);
      tok.m_special_first[static_cast<unsigned char>(name.front())] = true;
    }
  }
  std::stable_sort(tok.m_special.begin(), tok.m_special.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return tok;
}

std::optional<std::int32_t> WordPieceTokenizer::token_to_id(std::string_view token) const {
  const auto it = m_vocab.find(token);
  if (it == m_vocab.end()) return std::nullopt;
  return it->second;
}

std::vector<std::int32_t> WordPieceTokenizer::encode(std::string_view text, std::size_t max_length) const {
  std::vector<std::int32_t> ids;
  encode_into(text, max_length, ids);
  return ids;
}

void WordPieceTokenizer::encode_into(std::string_view text, std::size_t max_length,
                                     std::vector<std::int32_t>& ids) const {
  VS_ASSERT(max_length >= 2);
  ids.clear();
  ids.reserve(std::min<std::size_t>(max_length, text.size() / 3 + 8));
  ids.push_back(m_cls_id);
  const std::size_t limit = max_length - 1;  // leaves room for [SEP]
  std::u32string normalized;
  bool more = ids.size() < limit;
  std::size_t stretch_start = 0;
  std::size_t pos = 0;
  while (more && stretch_start < text.size()) {
    // Phase 1: the next special token at or after `pos`, leftmost then longest.
    std::size_t match_pos = text.size();
    const std::pair<std::string, std::int32_t>* match = nullptr;
    for (; pos < text.size() && match == nullptr; ++pos) {
      if (!m_special_first[static_cast<unsigned char>(text[pos])]) continue;
      for (const auto& special : m_special) {
        if (text.compare(pos, special.first.size(), special.first) == 0) {
          match = &special;
          match_pos = pos;
          break;
        }
      }
    }
    if (match_pos > stretch_start) {
      normalize(text.substr(stretch_start, match_pos - stretch_start), normalized);
      more = append_words(normalized, limit, ids);
    }
    if (match == nullptr) break;
    if (more) {
      ids.push_back(match->second);
      more = ids.size() < limit;
    }
    stretch_start = match_pos + match->first.size();
    pos = stretch_start;
  }
  ids.push_back(m_sep_id);
}

void WordPieceTokenizer::normalize(std::string_view raw, std::u32string& out) const {
  out.clear();
  out.reserve(raw.size() + 2);
  bool non_ascii = false;
  bool has_combining = false;
  std::size_t pos = 0;
  while (pos < raw.size()) {
    const auto byte = static_cast<unsigned char>(raw[pos]);
    if (byte < 0x80) {  // ASCII fast path: whitespace, controls, letters
      ++pos;
      if (byte == ' ' || byte == '\t' || byte == '\n' || byte == '\r') {
        out.push_back(U' ');
      } else if (byte >= 0x20 && byte != 0x7F) {
        out.push_back(m_lowercase ? to_lower_simple(byte) : char32_t{byte});
      }
      continue;
    }
    const char32_t cp = next_code_point(raw, pos);
    if (cp == k_replacement || char_class(cp) == CharClass::control) continue;
    if (is_whitespace(cp)) {
      out.push_back(U' ');
      continue;
    }
    non_ascii = true;
    const bool chinese = m_chinese_chars && is_chinese_char(cp);
    if (chinese) out.push_back(U' ');
    if (m_strip_accents && cp >= 0xC0) {
      std::array<utf8proc_int32_t, k_decompose_buffer> parts{};
      int boundclass = 0;
      const auto count = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), parts.data(),
                                                 static_cast<utf8proc_ssize_t>(parts.size()), UTF8PROC_DECOMPOSE,
                                                 &boundclass);
      if (count > 0 && static_cast<std::size_t>(count) <= parts.size()) {
        for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) {
          const auto part = static_cast<char32_t>(parts[i]);
          has_combining = has_combining || combining_class(part) != 0;
          out.push_back(part);
        }
      } else {
        out.push_back(cp);
      }
    } else {
      out.push_back(cp);
    }
    if (chinese) out.push_back(U' ');
  }
  if (!non_ascii) return;

  if (m_strip_accents && has_combining) canonical_reorder(out);
  // Drop non-spacing marks, then lower-case what is left, in place.
  std::size_t kept = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    char32_t cp = out[i];
    if (cp >= 0x80) {
      if (m_strip_accents && char_class(cp) == CharClass::mark) continue;
      if (m_lowercase) {
        if (cp == 0x130 && !m_strip_accents) {
          // The one multi-character lower-case mapping: "i" + U+0307. Insert the second code
          // point after the kept prefix and step over it; the unread rest shifts by one.
          out[kept++] = U'i';
          out.insert(out.begin() + static_cast<std::ptrdiff_t>(kept), char32_t{0x307});
          ++kept;
          ++i;
          continue;
        }
        cp = to_lower_simple(cp);
      }
    }
    out[kept++] = cp;
  }
  out.resize(kept);
}

bool WordPieceTokenizer::append_words(std::u32string_view normalized, std::size_t limit,
                                      std::vector<std::int32_t>& ids) const {
  std::string word;
  std::size_t chars = 0;
  const auto flush = [&]() {
    if (word.empty()) return true;
    const bool more = append_word_pieces(word, chars, limit, ids);
    word.clear();
    chars = 0;
    return more;
  };
  for (const char32_t cp : normalized) {
    if (cp < 0x80 ? (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) : is_whitespace(cp)) {
      if (!flush()) return false;
    } else if (cp < 0x80 ? is_ascii_punct(cp) : char_class(cp) == CharClass::punct) {
      if (!flush()) return false;
      append_utf8(cp, word);
      chars = 1;
      if (!flush()) return false;
    } else {
      append_utf8(cp, word);
      ++chars;
    }
  }
  return flush();
}

bool WordPieceTokenizer::append_word_pieces(std::string_view word, std::size_t chars, std::size_t limit,
                                            std::vector<std::int32_t>& ids) const {
  if (chars > k_max_input_chars_per_word) {
    ids.push_back(m_unk_id);
    return ids.size() < limit;
  }
  const std::size_t first_piece = ids.size();
  std::size_t start = 0;
  while (start < word.size()) {
    const Vocab& vocab = start == 0 ? m_vocab : m_continuation;
    const std::size_t longest = start == 0 ? m_max_piece_bytes : m_max_continuation_bytes;
    std::size_t end = std::min(word.size(), start + longest);
    while (end > start && end < word.size() && is_utf8_continuation(word[end])) --end;
    bool found = false;
    while (end > start) {
      const auto it = vocab.find(word.substr(start, end - start));
      if (it != vocab.end()) {
        ids.push_back(it->second);
        found = true;
        break;
      }
      --end;
      while (end > start && is_utf8_continuation(word[end])) --end;
    }
    if (!found) {  // some part matches nothing: the whole word is [UNK]
      ids.resize(first_piece);
      ids.push_back(m_unk_id);
      break;
    }
    start = end;
  }
  if (ids.size() >= limit) {
    ids.resize(limit);
    return false;
  }
  return true;
}

}  // namespace vstore::embed
