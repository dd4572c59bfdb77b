// SPDX-License-Identifier: Apache-2.0
// decode_json_vector (float32 from Chroma's JSON numbers, bit for bit), embedding_model_from_config
// and effective_space, without a server.
#include <gtest/gtest.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "chroma/chroma_dir.hpp"
#include "chroma/chroma_remote.hpp"

namespace {

using nlohmann::json;
using vstore::chroma::decode_json_vector;

// The shortest decimal that reads back as `f`, as Chroma 1.x's serde_json writes an f32 (ryu:
// the digits of std::to_chars without a precision, and ".0" after an integral value, so -0.0
// stays "-0.0"; a bare "-0" would be the JSON integer 0).
std::string shortest(float f) {
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, f).ptr;
  std::string out(buf, end);
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

// Every finite float of a spread sample of bit patterns (a prime stride through all 2^32, so
// every exponent, sub-normals and both signs), plus the awkward ones.
std::vector<float> sample_floats() {
  std::vector<float> out;
  for (std::uint64_t bits = 0; bits < (1ULL << 32); bits += 4093) {
    const float f = std::bit_cast<float>(static_cast<std::uint32_t>(bits));
    if (std::isfinite(f)) out.push_back(f);
  }
  for (float f : {0.0f, -0.0f, 0.1f, 0.3f, 1.0f / 3.0f, 1e-7f, std::numeric_limits<float>::denorm_min(),
                  -std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min(),
                  std::numeric_limits<float>::max(), std::numeric_limits<float>::lowest(), 16777215.0f, 16777216.0f,
                  std::nextafter(1.0f, 2.0f), std::nextafter(1.0f, 0.0f)}) {
    out.push_back(f);
  }
  return out;
}

// Decodes `text` (a JSON array) and compares bit patterns with `want`; returns the mismatches.
std::size_t mismatches(const std::string& text, const std::vector<float>& want) {
  std::vector<float> got;
  const auto done = decode_json_vector(json::parse(text), want.size(), got);
  EXPECT_TRUE(done) << done.error().to_string();
  if (!done || got.size() != want.size()) return want.size();
  std::size_t bad = 0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i])) {
      if (bad++ < 5) {
        ADD_FAILURE() << "float bits " << std::bit_cast<std::uint32_t>(want[i]) << " came back as "
                      << std::bit_cast<std::uint32_t>(got[i]);
      }
    }
  }
  return bad;
}

TEST(ChromaRemoteVectors, TheShortestDecimalOfEveryFloatReadsBackBitExact) {
  const auto floats = sample_floats();
  ASSERT_GT(floats.size(), 1000000U);
  std::string text = "[";
  for (std::size_t i = 0; i < floats.size(); ++i) text += (i ? "," : "") + shortest(floats[i]);
  text += "]";
  EXPECT_EQ(mismatches(text, floats), 0U);
}

TEST(ChromaRemoteVectors, TheDoubleOfEveryFloatAsPythonWritesItReadsBackBitExact) {
  // Chroma 0.x (Python) sends float32 values as Python floats: the double's shortest repr
  // (0.10000000149011612 for 0.1f), which nlohmann writes the same way.
  const auto floats = sample_floats();
  json arr = json::array();
  for (float f : floats) arr.push_back(static_cast<double>(f));
  EXPECT_EQ(mismatches(arr.dump(), floats), 0U);
}

TEST(ChromaRemoteVectors, TheOneDecimalThatRoundsTwiceWronglyThroughADoubleIsSettled) {
  // 7.038531e-26 is the shortest decimal of the float 0x15ae43fd; the nearest double lies
  // exactly halfway between that float and the next, and a plain cast rounds to the other one.
  const float sent = std::bit_cast<float>(0x15ae43fdU);
  ASSERT_EQ(shortest(sent), "7.038531e-26");
  ASSERT_NE(std::bit_cast<std::uint32_t>(static_cast<float>(7.038531e-26)), 0x15ae43fdU) << "the double-rounding case";
  std::vector<float> got;
  ASSERT_TRUE(decode_json_vector(json::parse("[7.038531e-26, -7.038531e-26, 7.0385313e-26]"), 3, got));
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[0]), 0x15ae43fdU);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[1]), 0x95ae43fdU);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[2]), std::bit_cast<std::uint32_t>(7.0385313e-26f));
}

TEST(ChromaRemoteVectors, NegativeZeroKeepsItsSignWhenWrittenAsAFloat) {
  std::vector<float> got;
  ASSERT_TRUE(decode_json_vector(json::parse("[-0.0, 0.0, -0e0]"), 3, got));
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[0]), 0x80000000U);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[1]), 0U);
  EXPECT_EQ(std::bit_cast<std::uint32_t>(got[2]), 0x80000000U);
}

TEST(ChromaRemoteVectors, IntegersAndExponentFormsAreNumbersToo) {
  std::vector<float> got;
  ASSERT_TRUE(decode_json_vector(json::parse("[1, -2, 0, 3.4028235e38, 1e-45, -1.5E+3]"), 6, got));
  const std::vector<float> want = {1.0f, -2.0f, 0.0f, std::numeric_limits<float>::max(),
                                   std::numeric_limits<float>::denorm_min(), -1500.0f};
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(got[i]), std::bit_cast<std::uint32_t>(want[i])) << i;
  }
}

TEST(ChromaRemoteVectors, ShapesAndValuesThatAreNotAFloatVectorAreCorruption) {
  std::vector<float> out;
  auto not_array = decode_json_vector(json::parse("{\"a\": 1}"), 0, out);
  ASSERT_FALSE(not_array);
  EXPECT_EQ(not_array.error().code(), vstore::ErrorCode::corruption);
  EXPECT_NE(not_array.error().message().find("not an array"), std::string::npos) << not_array.error().message();

  auto wrong_dim = decode_json_vector(json::parse("[1.0, 2.0]"), 3, out);
  ASSERT_FALSE(wrong_dim);
  EXPECT_NE(wrong_dim.error().message().find("2 values, expected 3"), std::string::npos) << wrong_dim.error().message();

  auto text = decode_json_vector(json::parse("[1.0, \"2\"]"), 2, out);
  ASSERT_FALSE(text);
  EXPECT_NE(text.error().message().find("element 1"), std::string::npos) << text.error().message();

  // The first double that rounds to infinity as float, and a larger one.
  for (const char* big : {"[3.4028235677973366e38]", "[1e39]", "[-1e300]"}) {
    auto overflow = decode_json_vector(json::parse(big), 1, out);
    ASSERT_FALSE(overflow) << big;
    EXPECT_NE(overflow.error().message().find("outside the float32 range"), std::string::npos) << overflow.error().message();
  }
  // Just below it still rounds to the largest float.
  out.clear();
  ASSERT_TRUE(decode_json_vector(json::parse("[3.4028235677973362e38]"), 1, out));
  EXPECT_EQ(out.at(0), std::numeric_limits<float>::max());
}

TEST(ChromaRemoteConfig, TheModelComesFromAKnownEmbeddingFunction) {
  using vstore::chroma::embedding_model_from_config;
  const json openai = json::parse(R"({"hnsw": {"space": "cosine"}, "embedding_function": {"type": "known",
      "name": "openai", "config": {"model_name": "text-embedding-3-small", "api_key_env_var": "OPENAI_API_KEY"}}})");
  EXPECT_EQ(embedding_model_from_config(openai), "text-embedding-3-small");
  const json dflt = json::parse(R"({"embedding_function": {"type": "known", "name": "default", "config": {}}})");
  EXPECT_EQ(embedding_model_from_config(dflt), "all-MiniLM-L6-v2");
  EXPECT_EQ(embedding_model_from_config(json::parse(R"({"embedding_function": null})")), std::nullopt);
  EXPECT_EQ(embedding_model_from_config(json::parse(R"({"embedding_function": {"type": "legacy"}})")), std::nullopt);
  // Odd shapes from a server give no model rather than an exception.
  EXPECT_EQ(embedding_model_from_config(json::parse(R"({"embedding_function": {"type": 3, "name": []}})")), std::nullopt);
  EXPECT_EQ(embedding_model_from_config(json::parse("[1, 2]")), std::nullopt);
}

TEST(ChromaSpace, TheStoredConfigWinsUnlessItIsAllDefaultsAndHnswSpaceDiffers) {
  using vstore::chroma::effective_space;
  const std::optional<std::string> none;
  const json defaults = json::parse(R"({"space": "l2", "ef_construction": 100, "ef_search": 100, "max_neighbors": 16,
      "resize_factor": 1.2, "sync_threshold": 1000, "num_threads": 2, "batch_size": 50})");
  EXPECT_EQ(effective_space(none, json::object(), none), "l2");
  EXPECT_EQ(effective_space(none, json::object(), "cosine"), "cosine") << "0.x: the metadata alone";
  EXPECT_EQ(effective_space("ip", defaults, none), "ip");
  EXPECT_EQ(effective_space("ip", defaults, "cosine"), "ip") << "a configured space wins over hnsw:space";
  EXPECT_EQ(effective_space("l2", defaults, "cosine"), "cosine") << "an all-default config yields";
  EXPECT_EQ(effective_space("l2", json::object(), "cosine"), "cosine");
  json custom = defaults;
  custom["ef_construction"] = 200;
  EXPECT_EQ(effective_space("l2", custom, "cosine"), "l2") << "l2 chosen along with other values";
  custom = defaults;
  custom["sync_threshold"] = 100;
  EXPECT_EQ(effective_space("l2", custom, "ip"), "l2");
  custom = defaults;
  custom["resize_factor"] = "1.2";
  EXPECT_EQ(effective_space("l2", custom, "ip"), "l2") << "a value of another type is not the default";
}

}  // namespace
