// SPDX-License-Identifier: Apache-2.0
// WordPieceTokenizer: BERT WordPiece tokenization that gives the Hugging Face `tokenizers` ids.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::embed {

/// The tokenizer of a BERT-family model, as Hugging Face's BertNormalizer + BertPreTokenizer +
/// WordPiece + the [CLS] ... [SEP] template compute it: clean-up of control characters and
/// whitespace, spaces around CJK ideographs, accent stripping (NFD, then non-spacing marks
/// dropped), lower-casing, splitting on whitespace and punctuation, greedy longest-match-first
/// word pieces with "##" continuations and [UNK] for words that cannot be matched or are longer
/// than 100 characters. Special tokens written literally in the text ("[MASK]") become their ids.
///
/// Input is UTF-8. Bytes that are not valid UTF-8 are read as U+FFFD, as Python does when it
/// decodes with errors="replace", and clean-up then drops them; they never split a word.
///
/// Immutable after load(): every const method may be called from any number of threads at once.
class WordPieceTokenizer {
 public:
  /// Words longer than this many characters (after normalisation) become [UNK].
  static constexpr std::size_t k_max_input_chars_per_word = 100;

  /// Loads vocab.txt (one token per line, the line number is its id) and tokenizer_config.json
  /// (do_lower_case, strip_accents, tokenize_chinese_chars and the special token names; missing
  /// keys take BERT's defaults) from a Hugging Face style model directory.
  /// Errors: not_found (a file is missing; the message names it), corruption (a file cannot be
  /// read or parsed, or the vocabulary lacks one of [CLS], [SEP], [UNK], [PAD] (as named by
  /// the configuration), has more tokens than int32 ids or is larger than 4 GiB).
  /// The result is a plain value: copyable and movable.
  [[nodiscard]] static Result<WordPieceTokenizer> load(const std::filesystem::path& model_dir);

  /// Token ids of `text`: [CLS], the word pieces, [SEP], with the pieces cut at the end so the
  /// whole sequence has at most `max_length` ids; [SEP] is always last. Never fails: any byte
  /// string gives a sequence of at least [CLS] [SEP]. Precondition: max_length >= 2 (checked
  /// with VS_ASSERT).
  [[nodiscard]] std::vector<std::int32_t> encode(std::string_view text, std::size_t max_length) const;

  /// As encode(), but writes into `out` (cleared first) so a caller can reuse its capacity.
  void encode_into(std::string_view text, std::size_t max_length, std::vector<std::int32_t>& out) const;

  /// Id of a vocabulary entry (e.g. "##ing"), or nullopt when the vocabulary lacks it.
  [[nodiscard]] std::optional<std::int32_t> token_to_id(std::string_view token) const;

  [[nodiscard]] std::int32_t pad_id() const noexcept { return m_pad_id; }
  [[nodiscard]] std::int32_t cls_id() const noexcept { return m_cls_id; }
  [[nodiscard]] std::int32_t sep_id() const noexcept { return m_sep_id; }
  [[nodiscard]] std::int32_t unk_id() const noexcept { return m_unk_id; }
  /// Number of vocabulary lines, i.e. one more than the largest id.
  [[nodiscard]] std::size_t vocab_size() const noexcept { return m_vocab_size; }
  /// True when the model lower-cases (do_lower_case).
  [[nodiscard]] bool lowercase() const noexcept { return m_lowercase; }

 private:
  /// Read-only map from a vocabulary piece to its id: open addressing with linear probing over
  /// 16-byte slots, keys packed in one string, and a bit filter that turns away most absent
  /// keys (the common case in longest-match search) without touching the slots.
  class PieceTable {
   public:
    /// Builds the table; a key given twice keeps its last id.
    void build(const std::vector<std::pair<std::string_view, std::int32_t>>& entries);
    /// The id of `key`, or -1.
    [[nodiscard]] std::int32_t find(std::string_view key) const noexcept;
    [[nodiscard]] std::size_t max_key_bytes() const noexcept { return m_max_key_bytes; }

   private:
    struct Slot {
      std::uint32_t fingerprint = 0;  // high half of the key's hash
      std::uint32_t offset = 0;       // into m_keys
      std::uint32_t length = 0;
      std::int32_t id = -1;           // -1: empty slot
    };
    std::vector<Slot> m_slots;           // size is a power of two, at most half full
    std::vector<std::uint64_t> m_filter;  // one bit per hash value modulo its size
    std::string m_keys;
    std::size_t m_max_key_bytes = 0;
  };

  WordPieceTokenizer() = default;

  /// Normalises one stretch of raw text (no special tokens in it) into code points.
  void normalize(std::string_view raw, std::u32string& out) const;
  /// Splits normalised text into words and appends their pieces to `ids` until it holds
  /// `limit` ids. Returns false once the limit is reached.
  bool append_words(std::u32string_view normalized, std::size_t limit, std::vector<std::int32_t>& ids) const;
  /// Appends the pieces of one word (UTF-8, `chars` code points), or [UNK], up to `limit` ids.
  bool append_word_pieces(std::string_view word, std::size_t chars, std::size_t limit,
                          std::vector<std::int32_t>& ids) const;

  PieceTable m_vocab;         // every token, as written in vocab.txt
  PieceTable m_continuation;  // tokens that start with "##", without that prefix
  std::vector<std::pair<std::string, std::int32_t>> m_special;  // matched in raw text, longest first
  std::array<bool, 256> m_special_first{};  // first bytes of m_special's tokens
  std::size_t m_vocab_size = 0;
  std::int32_t m_pad_id = 0;
  std::int32_t m_cls_id = 0;
  std::int32_t m_sep_id = 0;
  std::int32_t m_unk_id = 0;
  bool m_lowercase = true;
  bool m_strip_accents = true;
  bool m_chinese_chars = true;
};

}  // namespace vstore::embed
