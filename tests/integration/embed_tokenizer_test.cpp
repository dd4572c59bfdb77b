// SPDX-License-Identifier: Apache-2.0
// WordPieceTokenizer against Hugging Face `tokenizers` (scripts/tokenizer_reference.py in the venv)
// on every Reuters title and summary, hard strings, every Unicode code point and invalid UTF-8,
// plus direct checks of known ids, truncation, special tokens, load errors and concurrency.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "embed/embed_tokenizer.hpp"

namespace vstore::embed {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr std::size_t k_max_length = 256;  // sentence_bert_config.json max_seq_length

/// Value of a variable CTest sets (tests/CMakeLists.txt), or a message saying it is missing.
std::string env_value(const char* name, std::string& error) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    error += fmt::format("{} is not set; CTest sets it (tests/CMakeLists.txt), or export it to run this binary by hand. ",
                         name);
    return {};
  }
  return value;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

struct ReferenceCase {
  std::string kind;  // reuters, long, hard, sweep, bytes
  std::string text;  // raw bytes for "bytes"
  std::vector<std::int32_t> ids;
};

struct Loaded {
  std::optional<WordPieceTokenizer> tokenizer;
  std::string error;
};

const Loaded& loaded_tokenizer() {
  static const Loaded loaded = [] {
    Loaded out;
    const std::string model_dir = env_value("VSTORE_TEST_MODEL_DIR", out.error);
    if (!out.error.empty()) return out;
    auto tok = WordPieceTokenizer::load(model_dir);
    if (!tok) {
      out.error = "loading the tokenizer from " + model_dir + " failed: " + tok.error().to_string();
      return out;
    }
    out.tokenizer.emplace(std::move(*tok));
    return out;
  }();
  return loaded;
}

struct Reference {
  std::vector<ReferenceCase> cases;
  std::string error;
};

/// Runs the reference script once per process and parses its JSON lines.
const Reference& reference() {
  static const Reference ref = [] {
    Reference out;
    const std::string model_dir = env_value("VSTORE_TEST_MODEL_DIR", out.error);
    const std::string venv = env_value("VSTORE_TEST_VENV", out.error);
    const std::string shared = env_value("VSTORE_TEST_SHARED_DATA", out.error);
    const std::string source = env_value("VSTORE_SOURCE_DIR", out.error);
    if (!out.error.empty()) return out;
    const fs::path python = fs::path(venv) / "bin" / "python";
    const fs::path script = fs::path(source) / "scripts" / "tokenizer_reference.py";
    const fs::path articles = fs::path(shared) / "reuters21578" / "articles.jsonl";
    const fs::path result = fs::temp_directory_path() / fmt::format("vstore-tokenizer-reference-{}.jsonl", getpid());
    const std::string command = fmt::format("{} {} --model-dir {} --articles {} --out {} --max-length {} 2>&1",
                                            shell_quote(python.string()), shell_quote(script.string()),
                                            shell_quote(model_dir), shell_quote(articles.string()),
                                            shell_quote(result.string()), k_max_length);
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) {
      out.error = "cannot start: " + command;
      return out;
    }
    std::string output;
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) output += buffer.data();
    const int status = pclose(pipe);
    if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      out.error = fmt::format("reference script failed (status {}): {}\n{}", status, command, output);
      return out;
    }
    std::ifstream in(result);
    std::string line;
    while (std::getline(in, line)) {
      const json row = json::parse(line, nullptr, false);
      if (row.is_discarded()) {
        out.error = "unparsable reference line: " + line.substr(0, 200);
        break;
      }
      ReferenceCase c;
      c.kind = row.at("kind").get<std::string>();
      c.text = c.kind == "bytes" ? from_hex(row.at("hex").get<std::string>()) : row.at("text").get<std::string>();
      c.ids = row.at("ids").get<std::vector<std::int32_t>>();
      out.cases.push_back(std::move(c));
    }
    std::error_code ec;
    fs::remove(result, ec);
    if (out.cases.empty() && out.error.empty()) out.error = "the reference script wrote no cases; it said: " + output;
    return out;
  }();
  return ref;
}

std::string printable(const ReferenceCase& c) {
  if (c.kind == "bytes") {
    std::string hex;
    for (unsigned char b : c.text) hex += fmt::format("{:02x}", b);
    return "bytes " + hex;
  }
  return json(c.text).dump(-1, ' ', /*ensure_ascii=*/true);
}

class EmbedTokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loaded_tokenizer().tokenizer.has_value()) << loaded_tokenizer().error;
  }
  static const WordPieceTokenizer& tok() { return *loaded_tokenizer().tokenizer; }
};

TEST_F(EmbedTokenizerTest, GivesHuggingFaceIdsForReutersHardStringsEveryCodePointAndInvalidUtf8) {
  const Reference& ref = reference();
  ASSERT_TRUE(ref.error.empty()) << ref.error;

  std::map<std::string, std::pair<std::size_t, std::size_t>> per_kind;  // compared, mismatched
  const ReferenceCase* first_mismatch = nullptr;
  std::vector<std::int32_t> first_ours;
  std::string more_mismatches;  // the next few, text only
  int total_shown = 0;
  std::vector<std::int32_t> ids;
  for (const ReferenceCase& c : ref.cases) {
    tok().encode_into(c.text, k_max_length, ids);
    auto& [compared, mismatched] = per_kind[c.kind];
    ++compared;
    if (ids != c.ids) {
      ++mismatched;
      if (first_mismatch == nullptr) {
        first_mismatch = &c;
        first_ours = ids;
      } else if (total_shown < 10) {
        more_mismatches += "\n  also (" + c.kind + "): " + printable(c);
        ++total_shown;
      }
    }
  }
  std::size_t total = 0;
  std::size_t total_mismatched = 0;
  std::string summary;
  for (const auto& [kind, counts] : per_kind) {
    total += counts.first;
    total_mismatched += counts.second;
    summary += fmt::format(" {}={}/{}", kind, counts.first - counts.second, counts.first);
  }
  std::printf("[tokenizer] %zu texts compared with HF tokenizers, %zu identical:%s\n", total,
              total - total_mismatched, summary.c_str());
  RecordProperty("texts_compared", static_cast<int>(total));
  for (const char* kind : {"reuters", "long", "hard", "sweep", "bytes"}) {
    EXPECT_GT(per_kind[kind].first, 0u) << "the reference wrote no " << kind << " cases";
  }
  EXPECT_EQ(total_mismatched, 0u) << "first mismatch (" << first_mismatch->kind << "): " << printable(*first_mismatch)
                                  << "\n  HF:   " << fmt::format("{}", first_mismatch->ids)
                                  << "\n  ours: " << fmt::format("{}", first_ours) << more_mismatches;
}

TEST_F(EmbedTokenizerTest, EncodesAllReutersTitlesAndSummariesOnOneThread) {
  const Reference& ref = reference();
  ASSERT_TRUE(ref.error.empty()) << ref.error;
  std::vector<const std::string*> texts;
  std::size_t bytes = 0;
  for (const ReferenceCase& c : ref.cases) {
    if (c.kind == "reuters") {
      texts.push_back(&c.text);
      bytes += c.text.size();
    }
  }
  ASSERT_FALSE(texts.empty());
  double best_ms = 1e300;
  std::size_t tokens = 0;
  std::vector<std::int32_t> ids;
  for (int round = 0; round < 3; ++round) {
    tokens = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const std::string* text : texts) {
      tok().encode_into(*text, k_max_length, ids);
      tokens += ids.size();
    }
    const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
    best_ms = std::min(best_ms, elapsed.count());
  }
  std::printf("[tokenizer] %zu Reuters texts (%zu bytes, %zu ids) in %.1f ms on one thread: %.0f texts/s, %.1f MB/s\n",
              texts.size(), bytes, tokens, best_ms, static_cast<double>(texts.size()) / best_ms * 1e3,
              static_cast<double>(bytes) / best_ms / 1e3);
  RecordProperty("reuters_encode_ms", static_cast<int>(best_ms));
}

TEST_F(EmbedTokenizerTest, HelloWorldGivesKnownIds) {
  EXPECT_EQ(tok().encode("Hello, world!", k_max_length), (std::vector<std::int32_t>{101, 7592, 1010, 2088, 999, 102}));
  EXPECT_EQ(tok().cls_id(), 101);
  EXPECT_EQ(tok().sep_id(), 102);
  EXPECT_EQ(tok().unk_id(), 100);
  EXPECT_EQ(tok().pad_id(), 0);
  EXPECT_EQ(tok().vocab_size(), 30522u);
  EXPECT_EQ(tok().token_to_id("##ing"), std::optional<std::int32_t>(2075));
  EXPECT_EQ(tok().token_to_id("no-such-token"), std::nullopt);
}

TEST_F(EmbedTokenizerTest, EmptyAndBlankTextGiveOnlyClsAndSep) {
  const std::vector<std::int32_t> bare{101, 102};
  EXPECT_EQ(tok().encode("", k_max_length), bare);
  EXPECT_EQ(tok().encode("   \t\n ", k_max_length), bare);
  EXPECT_EQ(tok().encode(std::string_view("\0\x01\x7f", 3), k_max_length), bare);
}

TEST_F(EmbedTokenizerTest, TruncationKeepsSepLastAndCutsPiecesAtTheLimit) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "hello ";
  const auto ids = tok().encode(text, 10);
  ASSERT_EQ(ids.size(), 10u);
  EXPECT_EQ(ids.front(), 101);
  EXPECT_EQ(ids.back(), 102);
  EXPECT_TRUE(std::all_of(ids.begin() + 1, ids.end() - 1, [](std::int32_t id) { return id == 7592; }));
  EXPECT_EQ(tok().encode(text, 2), (std::vector<std::int32_t>{101, 102}));
  EXPECT_EQ(tok().encode(text, k_max_length).size(), k_max_length);

  // A word whose pieces straddle the limit keeps only the pieces that fit.
  const auto whole = tok().encode("unbelievably", k_max_length);
  ASSERT_GT(whole.size(), 3u);
  const auto cut = tok().encode("unbelievably", 3);
  EXPECT_EQ(cut, (std::vector<std::int32_t>{101, whole[1], 102}));
}

TEST_F(EmbedTokenizerTest, SpecialTokensWrittenInTextBecomeTheirIds) {
  EXPECT_EQ(tok().encode("a[MASK]b", k_max_length), (std::vector<std::int32_t>{101, 1037, 103, 1038, 102}));
  const auto lower = tok().encode("[mask]", k_max_length);
  EXPECT_EQ(std::count(lower.begin(), lower.end(), 103), 0) << "only the exact special token is matched";
}

TEST_F(EmbedTokenizerTest, InvalidUtf8IsDroppedWithoutSplittingWords) {
  EXPECT_EQ(tok().encode("hel\xfflo", k_max_length), tok().encode("hello", k_max_length));
  EXPECT_EQ(tok().encode("caf\xc3", k_max_length), tok().encode("caf", k_max_length));
  EXPECT_EQ(tok().encode("\xe2\x82" "A", k_max_length), tok().encode("A", k_max_length));

  std::mt19937 rng(20240611);
  std::uniform_int_distribution<int> length(0, 600);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int round = 0; round < 3000; ++round) {
    std::string junk(static_cast<std::size_t>(length(rng)), '\0');
    for (char& c : junk) c = static_cast<char>(byte(rng));
    const auto ids = tok().encode(junk, 64);
    ASSERT_GE(ids.size(), 2u);
    ASSERT_LE(ids.size(), 64u);
    ASSERT_EQ(ids.front(), 101);
    ASSERT_EQ(ids.back(), 102);
  }
}

TEST_F(EmbedTokenizerTest, ConcurrentCallsGiveTheSameIds) {
  const std::vector<std::string> texts{"Crème brûlée Ångström naïve", "中文字符 and 日本語", "Hello, world!",
                                       "U.S. $1.5 mln vs 3.7% Q1/1987", std::string(300, 'x')};
  std::vector<std::vector<std::int32_t>> expected;
  for (const auto& t : texts) expected.push_back(tok().encode(t, k_max_length));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 2000; ++round) {
        const std::size_t i = static_cast<std::size_t>(round) % texts.size();
        if (tok().encode(texts[i], k_max_length) != expected[i]) ++mismatches;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(EmbedTokenizerLoad, ReportsMissingFilesAndBadVocabulary) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("vstore-tokenizer-load-{}", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);

  auto missing = WordPieceTokenizer::load(dir);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), ErrorCode::not_found);
  EXPECT_NE(missing.error().message().find("vocab.txt"), std::string::npos) << missing.error().message();

  std::ofstream(dir / "vocab.txt") << "[PAD]\n[UNK]\n[SEP]\nhello\n";
  auto no_config = WordPieceTokenizer::load(dir);
  ASSERT_FALSE(no_config);
  EXPECT_EQ(no_config.error().code(), ErrorCode::not_found);
  EXPECT_NE(no_config.error().message().find("tokenizer_config.json"), std::string::npos);

  std::ofstream(dir / "tokenizer_config.json") << "{\"do_lower_case\": true}";
  auto no_cls = WordPieceTokenizer::load(dir);
  ASSERT_FALSE(no_cls);
  EXPECT_EQ(no_cls.error().code(), ErrorCode::corruption);
  EXPECT_NE(no_cls.error().message().find("[CLS]"), std::string::npos) << no_cls.error().message();

  std::ofstream(dir / "tokenizer_config.json") << "{not json";
  auto bad_json = WordPieceTokenizer::load(dir);
  ASSERT_FALSE(bad_json);
  EXPECT_EQ(bad_json.error().code(), ErrorCode::corruption);

  std::ofstream(dir / "vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n##s\n";
  std::ofstream(dir / "tokenizer_config.json") << "{\"do_lower_case\": true}";
  auto ok = WordPieceTokenizer::load(dir);
  ASSERT_TRUE(ok) << ok.error().to_string();
  EXPECT_EQ(ok->encode("Hellos world", 16), (std::vector<std::int32_t>{2, 4, 5, 1, 3}));

  // Lower-casing without accent stripping: U+0130 lower-cases to "i" + U+0307, as in Rust.
  std::ofstream(dir / "vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\ni\n##\u0307\nHello\n";
  std::ofstream(dir / "tokenizer_config.json") << "{\"do_lower_case\": true, \"strip_accents\": false}";
  auto keep_accents = WordPieceTokenizer::load(dir);
  ASSERT_TRUE(keep_accents) << keep_accents.error().to_string();
  EXPECT_EQ(keep_accents->encode("\u0130", 16), (std::vector<std::int32_t>{2, 4, 5, 3}));

  // A cased model keeps upper case.
  std::ofstream(dir / "tokenizer_config.json") << "{\"do_lower_case\": false}";
  auto cased = WordPieceTokenizer::load(dir);
  ASSERT_TRUE(cased) << cased.error().to_string();
  EXPECT_FALSE(cased->lowercase());
  EXPECT_EQ(cased->encode("Hello hello", 16), (std::vector<std::int32_t>{2, 6, 1, 3}));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace vstore::embed
