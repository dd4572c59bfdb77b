// SPDX-License-Identifier: Apache-2.0
// Issue 21, embedding items without model files or a database: the hash embedder's stop words
// (item 20), Unicode-blank texts (item 13e), finding the model directory (item 23) and the
// process's one embedding pool (item 16).
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "embed/embed_local.hpp"
#include "embed/embed_pool.hpp"
#include "support/os_helpers.hpp"
#include "vstore/article.hpp"
#include "vstore/config.hpp"
#include "vstore/embedder.hpp"

namespace vstore {
namespace {

Embedding embed_one(Embedder& embedder, const std::string& text) {
  auto got = embedder.embed(std::span<const std::string>(&text, 1));
  EXPECT_TRUE(got) << got.error().to_string();
  return got ? got->front() : Embedding{};
}

TEST(Issue21HashEmbedder, Item20ReutersWordsAreOrdinaryWordsThatChangeTheVector) {
  auto embedder = make_hash_embedder(64);
  const Embedding base = embed_one(*embedder, "oil prices rose");
  for (const std::string word : {"reuter", "mln", "pct"}) {
    EXPECT_NE(embed_one(*embedder, "oil prices rose " + word), base) << word << " must affect the vector";
    // A text of only that word has content to embed.
    auto alone = embedder->embed(std::vector<std::string>{word});
    EXPECT_TRUE(alone) << word << ": " << (alone ? "" : alone.error().to_string());
  }
}

// No-break spaces, ideographic space, zero-width space and joiner, BOM, line separator,
// control characters: code points that show nothing.
const std::vector<std::string> k_unicode_blanks = {
    "\u00a0\u00a0\u00a0", "\u200b", "\ufeff", "\u200b\u2060\ufeff", " \u3000\t\u2028\n", "\u0085\u00a0", "\x01\x7f"};

TEST(Issue21Text, Item13eUnicodeBlankTextIsNoDocumentText) {
  for (const auto& blank : k_unicode_blanks) {
    Article a;
    a.uri = "u:blank";
    a.raw = blank;
    a.summary = blank;
    a.title = blank;
    EXPECT_EQ(document_text(a), "") << "raw " << ::testing::PrintToString(blank);
    a.title = "Oil\u00a0prices";
    EXPECT_EQ(document_text(a), "Oil\u00a0prices") << "raw " << ::testing::PrintToString(blank);
  }
}

TEST(Issue21HashEmbedder, Item13eUnicodeBlankTextIsRefusedNotGivenAVector) {
  auto embedder = make_hash_embedder(64);
  for (const auto& blank : k_unicode_blanks) {
    const std::vector<std::string> texts = {"oil prices", blank};
    auto got = embedder->embed(texts);
    ASSERT_FALSE(got) << ::testing::PrintToString(blank) << " was given a vector";
    EXPECT_EQ(got.error().code(), ErrorCode::invalid_argument);
    EXPECT_NE(got.error().message().find("text 1"), std::string::npos) << got.error().message();
  }
  // A no-break space separates words like a space.
  EXPECT_EQ(embed_one(*embedder, "oil\u00a0prices"), embed_one(*embedder, "oil prices"));
}

// ---- item 23 -------------------------------------------------------------------------------------

namespace fs = std::filesystem;

using testing::TempDir;

fs::path fake_model(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "model.safetensors") << "x";
  return dir;
}

TEST(Issue21ModelDir, Item23DataDirectoryModelComesFirstThenTheRecordsInOrder) {
  TempDir tmp;
  Config cfg;
  cfg.data_dir = tmp.path / "data";
  const fs::path installed = fake_model(tmp.path / "site-packages" / "model");
  const fs::path user_record = tmp.path / "config" / "vstore" / "model_dir";
  const fs::path system_record = tmp.path / "etc" / "vstore" / "model_dir";
  const std::vector<fs::path> records = {user_record, system_record};

  // Nothing anywhere: not_found naming every place looked in.
  auto none = embed::find_model_dir(cfg, records);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), ErrorCode::not_found);
  EXPECT_NE(none.error().message().find((cfg.data_dir / "models" / "all-MiniLM-L6-v2").string()), std::string::npos)
      << none.error().message();
  EXPECT_NE(none.error().message().find(user_record.string()), std::string::npos) << none.error().message();
  EXPECT_NE(none.error().message().find("VSTORE_MODEL_DIR"), std::string::npos) << none.error().message();

  // The system-wide record, written by set-up.
  fs::create_directories(system_record.parent_path());
  std::ofstream(system_record) << "  " << installed.string() << "  \n";
  auto found = embed::find_model_dir(cfg, records);
  ASSERT_TRUE(found) << found.error().to_string();
  EXPECT_EQ(*found, installed);

  // A per-user record naming a directory without a model is passed over; one with it wins.
  fs::create_directories(user_record.parent_path());
  std::ofstream(user_record) << (tmp.path / "empty").string() << "\n";
  EXPECT_EQ(embed::find_model_dir(cfg, records).value_or(""), installed);
  const fs::path mine = fake_model(tmp.path / "mine");
  std::ofstream(user_record) << "../../mine\n";  // relative to the record's directory
  EXPECT_EQ(fs::weakly_canonical(embed::find_model_dir(cfg, records).value_or("")), fs::weakly_canonical(mine));

  // A model in the data directory comes first; VSTORE_MODEL_DIR overrides everything.
  const fs::path in_data = fake_model(cfg.data_dir / "models" / "all-MiniLM-L6-v2");
  EXPECT_EQ(embed::find_model_dir(cfg, records).value_or(""), in_data);
  cfg.model_dir = tmp.path / "override";
  EXPECT_EQ(embed::find_model_dir(cfg, records).value_or(""), tmp.path / "override");
}

TEST(Issue21ModelDir, Item23RecordsAreUnderXdgConfigHomeOrHomeThenEtc) {
  const char* saved_xdg = std::getenv("XDG_CONFIG_HOME");
  const char* saved_home = std::getenv("HOME");
  const std::string xdg = saved_xdg == nullptr ? "" : saved_xdg;
  const std::string home = saved_home == nullptr ? "" : saved_home;
  setenv("XDG_CONFIG_HOME", "/cfg", 1);
  setenv("HOME", "/home/u", 1);
  const auto with_xdg = embed::model_dir_records();
  setenv("XDG_CONFIG_HOME", "relative/is/ignored", 1);
  const auto with_home = embed::model_dir_records();
  if (saved_xdg != nullptr) setenv("XDG_CONFIG_HOME", xdg.c_str(), 1); else unsetenv("XDG_CONFIG_HOME");
  if (saved_home != nullptr) setenv("HOME", home.c_str(), 1); else unsetenv("HOME");
  EXPECT_EQ(with_xdg, (std::vector<fs::path>{"/cfg/vstore/model_dir", "/etc/vstore/model_dir"}));
  EXPECT_EQ(with_home, (std::vector<fs::path>{"/home/u/.config/vstore/model_dir", "/etc/vstore/model_dir"}));
}

// ---- item 16 -------------------------------------------------------------------------------------

using testing::task_count;

TEST(Issue21EmbedPool, Item16EveryPartRunsOnceAndConcurrentCallersAddNoThreads) {
  embed::EmbedPool pool(3);
  EXPECT_EQ(pool.threads(), 3);
  const int baseline = task_count();
  constexpr int k_callers = 8;
  constexpr std::size_t k_parts = 50;
  std::vector<std::vector<std::atomic<int>>> runs(k_callers);
  for (auto& r : runs) r = std::vector<std::atomic<int>>(k_parts);
  std::atomic<int> most{0};
  std::vector<std::thread> callers;
  for (int caller_idx = 0; caller_idx < k_callers; ++caller_idx) {
    callers.emplace_back([&, caller_idx] {
      for (int repeat = 0; repeat < 20; ++repeat) {
        auto ran = pool.run(k_parts, 3, [&](std::size_t part) {
          runs[static_cast<std::size_t>(caller_idx)][part].fetch_add(1);
          const int n = task_count();
          if (n > most.load()) most.store(n);
        });
        EXPECT_TRUE(ran) << ran.error().to_string();
      }
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_LE(most.load(), baseline + k_callers);
  for (const auto& r : runs) {
    for (const auto& count : r) EXPECT_EQ(count.load(), 20);
  }
}

TEST(Issue21EmbedPool, Item16APartThatThrowsIsAnErrorNotAnEscape) {
  embed::EmbedPool pool(2);
  auto ran = pool.run(4, 2, [](std::size_t part) {
    if (part == 2) throw std::runtime_error("boom");
  });
  ASSERT_FALSE(ran);
  EXPECT_EQ(ran.error().code(), ErrorCode::internal);
  EXPECT_NE(ran.error().message().find("boom"), std::string::npos) << ran.error().message();
}

}  // namespace
}  // namespace vstore
