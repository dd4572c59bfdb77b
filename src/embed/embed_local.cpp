// SPDX-License-Identifier: Apache-2.0
// The local embedder: the C++ WordPiece tokenizer and BERT forward pass over the model files of
// a sentence-transformers directory (all-MiniLM-L6-v2 by default). Texts are tokenised, sorted
// by length so each batch of 32 pads little, embedded on the calling thread and up to the
// configured number of threads of the process's one EmbedPool, and put back in input order.
// The model is loaded once and shared by every caller (it is immutable).
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text.hpp"
#include "embed/embed_bert.hpp"
#include "embed/embed_local.hpp"
#include "embed/embed_pool.hpp"
#include "embed/embed_tokenizer.hpp"

namespace vstore::embed {
namespace {

constexpr std::size_t k_batch = 32;

class LocalEmbedder final : public Embedder {
 public:
  LocalEmbedder(std::string model_name, WordPieceTokenizer tokenizer, std::shared_ptr<const BertModel> model,
                std::size_t max_length, int threads)
      : m_name(std::move(model_name)),
        m_tokenizer(std::move(tokenizer)),
        m_model(std::move(model)),
        m_max_length(max_length),
        m_threads(threads) {}

  std::string_view model() const override { return m_name; }
  int dimension() const override { return m_model->hidden_size(); }

  Result<std::vector<Embedding>> embed(std::span<const std::string> texts) override {
    std::vector<std::vector<std::int32_t>> ids;
    ids.reserve(texts.size());
    for (std::size_t i = 0; i < texts.size(); ++i) {
      if (is_blank_text(texts[i])) {
        return fail(ErrorCode::invalid_argument, fmt::format("text {} is blank; nothing to embed", i));
      }
      ids.push_back(m_tokenizer.encode(texts[i], m_max_length));
    }
    std::vector<std::size_t> order(ids.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return ids[a].size() < ids[b].size(); });
    std::vector<Embedding> out(ids.size());
    std::vector<std::vector<std::int32_t>> batch;
    for (std::size_t start = 0; start < order.size(); start += k_batch) {
      const std::size_t end = std::min(order.size(), start + k_batch);
      batch.clear();
      for (std::size_t i = start; i < end; ++i) batch.push_back(std::move(ids[order[i]]));
      VS_TRY_ASSIGN(auto vecs, m_model->embed(batch, m_threads));
      for (std::size_t i = start; i < end; ++i) out[order[i]] = std::move(vecs[i - start]);
    }
    return out;
  }

 private:
  std::string m_name;
  WordPieceTokenizer m_tokenizer;
  std::shared_ptr<const BertModel> m_model;
  std::size_t m_max_length;
  int m_threads;
};

}  // namespace

std::vector<std::filesystem::path> model_dir_records() {
  std::vector<std::filesystem::path> records;
  const char* config_home = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (config_home != nullptr && std::filesystem::path(config_home).is_absolute()) {
    records.push_back(std::filesystem::path(config_home) / "vstore" / "model_dir");
  } else if (home != nullptr && std::filesystem::path(home).is_absolute()) {
    records.push_back(std::filesystem::path(home) / ".config" / "vstore" / "model_dir");
  }
  records.emplace_back("/etc/vstore/model_dir");
  return records;
}

Result<std::filesystem::path> find_model_dir(const Config& config, const std::vector<std::filesystem::path>& records) {
  if (config.model_dir) return *config.model_dir;
  std::error_code ec;
  const std::filesystem::path in_data_dir = config.data_dir / "models" / "all-MiniLM-L6-v2";
  if (std::filesystem::is_regular_file(in_data_dir / "model.safetensors", ec)) return in_data_dir;
  std::string looked = in_data_dir.string();
  for (const auto& record : records) {
    std::ifstream in(record);
    std::string line;
    if (!in || !std::getline(in, line)) {
      looked += fmt::format(", {} (no such record)", record.string());
      continue;
    }
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    std::filesystem::path dir = first == std::string::npos ? std::string() : line.substr(first, last - first + 1);
    if (dir.empty()) {
      looked += fmt::format(", {} (empty)", record.string());
      continue;
    }
    if (dir.is_relative()) dir = record.parent_path() / dir;
    if (std::filesystem::is_regular_file(dir / "model.safetensors", ec)) return dir;
    looked += fmt::format(", {} (named by {})", dir.string(), record.string());
  }
  return fail(ErrorCode::not_found,
              fmt::format("no model.safetensors in {}; run scripts/setup.sh (installs all-MiniLM-L6-v2 and records "
                          "where) or set VSTORE_MODEL_DIR to a Hugging Face style model directory",
                          looked));
}

std::size_t read_max_seq_length(const std::filesystem::path& dir, int max_positions) {
  std::size_t max_len = 256;
  std::ifstream in(dir / "sentence_bert_config.json");
  if (in) {
    auto j = nlohmann::json::parse(in, nullptr, false);
    if (!j.is_discarded() && j.contains("max_seq_length") && j["max_seq_length"].is_number_integer()) {
      max_len = j["max_seq_length"].get<std::size_t>();
    }
  }
  return std::clamp<std::size_t>(max_len, 2, static_cast<std::size_t>(max_positions));
}

Result<std::unique_ptr<Embedder>> make_local_embedder(const std::filesystem::path& model_dir, std::string model_name,
                                                      int expected_dim, int threads) {
  if (!std::filesystem::exists(model_dir / "model.safetensors")) {
    return fail(ErrorCode::not_found,
                fmt::format("no model.safetensors in {}; run scripts/setup.sh (installs all-MiniLM-L6-v2) or set "
                            "VSTORE_MODEL_DIR to a Hugging Face style model directory",
                            model_dir.string()));
  }
  VS_TRY_ASSIGN(WordPieceTokenizer tokenizer, WordPieceTokenizer::load(model_dir));
  VS_TRY_ASSIGN(std::shared_ptr<const BertModel> model, BertModel::load(model_dir));
  if (model->hidden_size() != expected_dim) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("the model in {} makes {}-dimensional vectors, but EMBEDDING_DIM={}", model_dir.string(),
                            model->hidden_size(), expected_dim));
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // The first embedder of the process sizes the one pool every embedder's batches run on.
  static_cast<void>(EmbedPool::shared(threads));
  const std::size_t max_len = read_max_seq_length(model_dir, model->max_positions());
  return std::unique_ptr<Embedder>(
      std::make_unique<LocalEmbedder>(std::move(model_name), std::move(tokenizer), std::move(model), max_len, threads));
}

}  // namespace vstore::embed
