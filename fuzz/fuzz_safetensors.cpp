// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the safetensors reader of the local engine (BertModel::load).
//
// The input is a model.safetensors file (8-byte little-endian header length, JSON header,
// tensor data). It is written into a private model directory next to a fixed config.json of a
// tiny BERT (vocabulary 8, hidden 4, one layer of 2 heads, intermediate 8, 8 positions), so a
// file of a few hundred bytes can load; BertModel::load() then reads it as it reads the real
// model. A model that loads embeds one short sequence, whose embedding must have 4 values.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "embed/embed_bert.hpp"

namespace {

namespace fs = std::filesystem;

fs::path g_dir;

constexpr std::string_view k_config =
    R"({"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,)"
    R"( "intermediate_size": 8, "max_position_embeddings": 8, "type_vocab_size": 2,)"
    R"( "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute"})";

void remove_dir() {
  std::error_code ec;
  fs::remove_all(g_dir, ec);
}

[[noreturn]] void fail_check(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

void write_file(const char* name, std::string_view bytes) {
  std::ofstream out(g_dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fail_check("cannot write the model files (is TMPDIR writable?)");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  vstore::embed::limit_blas_threads();
  std::string tmpl = (fs::temp_directory_path() / "vstore-fuzz-safetensors-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) fail_check("cannot create a temporary directory");
  g_dir = tmpl;
  std::atexit(remove_dir);
  write_file("config.json", k_config);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  write_file("model.safetensors", std::string_view(reinterpret_cast<const char*>(data), size));
  auto model = vstore::embed::BertModel::load(g_dir);
  if (!model) {
    if (model.error().message().empty()) fail_check("an error without a message");
    return 0;
  }
  const std::vector<std::vector<std::int32_t>> batch{{0, 5, 7, 1}};
  auto embedded = (*model)->embed(batch, 1);
  if (!embedded) fail_check("a loaded model failed to embed a valid sequence");
  if (embedded->size() != 1 || embedded->front().size() != 4) fail_check("the embedding has the wrong shape");
  return 0;
}
