// SPDX-License-Identifier: Apache-2.0
// bench_embed() end to end with its real peer: ONNX Runtime (from set-up's venv) on a graph built
// from the same safetensors file. Checks the output keys and that both engines give the same
// vectors on 200 Reuters summaries (cosine >= 0.99999), the ONNX Runtime check of the issue.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "macro/bench.hpp"

namespace {

namespace fs = std::filesystem;

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

TEST(BenchEmbed, MatchesOnnxRuntimeOnTheSameTextsAndReportsEveryKey) {
  const std::string venv = env_or_empty("VSTORE_TEST_VENV");
  const std::string model = env_or_empty("VSTORE_TEST_MODEL_DIR");
  const std::string shared = env_or_empty("VSTORE_TEST_SHARED_DATA");
  const std::string source = env_or_empty("VSTORE_SOURCE_DIR");
  ASSERT_FALSE(venv.empty() || model.empty() || shared.empty() || source.empty())
      << "VSTORE_TEST_VENV, VSTORE_TEST_MODEL_DIR, VSTORE_TEST_SHARED_DATA and VSTORE_SOURCE_DIR are set by CTest";

  vstore::BenchEmbedOptions options;
  options.data = fs::path(shared) / "reuters21578" / "articles.jsonl";
  options.model_dir = model;
  options.python = fs::path(venv) / "bin" / "python";
  options.peer_script = fs::path(source) / "scripts" / "bench_embed_peer.py";
  options.limit = 200;
  options.cross_check = 200;
  options.queries = 5;
  auto result = vstore::bench_embed(options);
  ASSERT_TRUE(result.has_value()) << result.error().message();
  const auto& r = *result;

  EXPECT_EQ(r["peer"], "onnxruntime") << "set-up installs onnxruntime and onnx into the venv";
  EXPECT_EQ(r["texts"], 200);
  EXPECT_GE(r["peer_min_cosine"].get<double>(), 0.99999);
  for (const char* key : {"sentences_per_s_1t", "sentences_per_s_2t", "mean_tokens", "query_latency_ms",
                          "peer_sentences_per_s_1t", "peer_sentences_per_s_2t", "ratio_1t", "ratio_2t"}) {
    ASSERT_TRUE(r.contains(key) && r[key].is_number()) << key;
    EXPECT_GT(r[key].get<double>(), 0.0) << key;
  }
  // Reuters summaries are one paragraph: tens of tokens, well under the 256-token limit.
  EXPECT_GT(r["mean_tokens"].get<double>(), 10.0);
  EXPECT_LT(r["mean_tokens"].get<double>(), 256.0);
}

TEST(BenchEmbed, RefusesOptionsOutOfRangeNamingThem) {
  vstore::BenchEmbedOptions options;
  options.limit = 5;
  auto r = vstore::bench_embed(options);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("limit must be 32..1000000, not 5"), std::string::npos) << r.error().message();
  options.limit = 100;
  options.field = "body";
  r = vstore::bench_embed(options);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("field must be summary, title or document, not body"), std::string::npos);
}

}  // namespace
