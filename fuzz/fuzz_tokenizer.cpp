// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: WordPiece tokenization of arbitrary bytes (invalid UTF-8 included).
//
// The tokenizer is loaded once from the model directory in VSTORE_FUZZ_MODEL_DIR
// (scripts/fuzz.sh sets it to the installed all-MiniLM-L6-v2). Byte 0 of the input picks
// max_length (2..257), the rest is the text. Checked: encode()'s contract ([CLS] first, [SEP]
// last, 2..max_length ids, every id below the vocabulary size) and that encode_into() gives
// the same ids into a reused buffer.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string_view>
#include <vector>

#include "embed/embed_tokenizer.hpp"

namespace {

std::optional<vstore::embed::WordPieceTokenizer> g_tokenizer;
std::vector<std::int32_t> g_reused;

[[noreturn]] void fail_check(const char* what) {
  std::fprintf(stderr, "fuzz_tokenizer: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  const char* dir = std::getenv("VSTORE_FUZZ_MODEL_DIR");
  if (dir == nullptr || *dir == '\0') {
    std::fprintf(stderr, "fuzz_tokenizer: set VSTORE_FUZZ_MODEL_DIR to a model directory (vocab.txt, tokenizer_config.json)\n");
    std::exit(2);
  }
  auto loaded = vstore::embed::WordPieceTokenizer::load(dir);
  if (!loaded) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", loaded.error().message().c_str());
    std::exit(2);
  }
  g_tokenizer = std::move(*loaded);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t max_length = 2 + data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const vstore::embed::WordPieceTokenizer& tok = *g_tokenizer;
  const std::vector<std::int32_t> ids = tok.encode(text, max_length);
  if (ids.size() < 2 || ids.size() > max_length) fail_check("the sequence length is outside 2..max_length");
  if (ids.front() != tok.cls_id() || ids.back() != tok.sep_id()) fail_check("the sequence is not [CLS] ... [SEP]");
  for (const std::int32_t id : ids) {
    if (id < 0 || static_cast<std::size_t>(id) >= tok.vocab_size()) fail_check("an id outside the vocabulary");
  }
  tok.encode_into(text, max_length, g_reused);
  if (g_reused != ids) fail_check("encode_into differs from encode");
  return 0;
}
