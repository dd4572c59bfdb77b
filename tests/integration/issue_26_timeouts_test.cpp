// SPDX-License-Identifier: Apache-2.0
// Issue 26, item 1: every network call has a timeout. Each client of vstore is pointed at a
// silent server: a socket that listens (the kernel completes the connection) but never answers.
// The Chroma client (CHROMA_TIMEOUT), the OpenAI-compatible embedder (OPENAI_TIMEOUT) and
// libpq (connect_timeout; vstore's default when the URL gives none) each fail within their
// limit with a message that says the server gave no answer, and the command exits non-zero.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <fmt/format.h>

#include "support/cli_runner.hpp"
#include "support/os_helpers.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using vstore::testing::CmdResult;
using vstore::testing::HeldPort;
using vstore::testing::TempDir;

struct Timed {
  CmdResult result;
  double seconds = 0;
};

Timed timed_vstore(const TempDir& dir, const std::string& args, const std::string& env) {
  const auto start = Clock::now();
  CmdResult result = vstore::testing::run_vstore(dir.path.string(), args, env);
  return {std::move(result), std::chrono::duration<double>(Clock::now() - start).count()};
}

TEST(Issue26Timeouts, AChromaServerThatNeverAnswersTimesOutAfterChromaTimeout) {
  HeldPort silent;
  ASSERT_TRUE(silent.ok());
  TempDir dir;
  const Timed run = timed_vstore(dir, "health",
                                 fmt::format("VECTOR_BACKEND=chromadb CHROMA_URL=http://127.0.0.1:{} CHROMA_TIMEOUT=1",
                                             silent.port()));
  EXPECT_NE(run.result.code, 0) << run.result.out;
  // Four tries of one second each, with back-off between them.
  EXPECT_LT(run.seconds, 20.0) << run.result.err;
  EXPECT_GE(run.seconds, 1.0) << run.result.err;
  const std::string said = run.result.out + run.result.err;
  EXPECT_NE(said.find(fmt::format("127.0.0.1:{}", silent.port())), std::string::npos) << said;
  EXPECT_NE(said.find("timeout"), std::string::npos) << said;
}

TEST(Issue26Timeouts, AnEmbeddingsServerThatNeverAnswersTimesOutAfterOpenAiTimeout) {
  HeldPort silent;
  ASSERT_TRUE(silent.ok());
  TempDir dir;
  const Timed run = timed_vstore(dir, "embed 'grain prices'",
                                 fmt::format("EMBEDDING_PROVIDER=openai EMBEDDING_MODEL=text-embedding-3-small "
                                             "EMBEDDING_DIM=8 OPENAI_API_KEY=sk-test OPENAI_BASE_URL=http://127.0.0.1:{} "
                                             "OPENAI_TIMEOUT=1",
                                             silent.port()));
  EXPECT_NE(run.result.code, 0) << run.result.out;
  // Five tries of one second each, with at most 0.5 + 1 + 2 + 4 s of back-off between them.
  EXPECT_LT(run.seconds, 25.0) << run.result.err;
  EXPECT_GE(run.seconds, 5.0) << run.result.err;
  const std::string said = run.result.out + run.result.err;
  EXPECT_NE(said.find("failed 5 times"), std::string::npos) << said;
  EXPECT_NE(said.find("no answer in time"), std::string::npos) << said;
  EXPECT_EQ(said.find("sk-test"), std::string::npos) << said;
}

TEST(Issue26Timeouts, APostgresqlServerThatNeverAnswersTimesOutAtConnect) {
  HeldPort silent;
  ASSERT_TRUE(silent.ok());
  TempDir dir;
  // The URL's connect_timeout.
  const Timed given = timed_vstore(
      dir, "health", fmt::format("DATABASE_URL='postgresql://vstore@127.0.0.1:{}/vstore?connect_timeout=2'", silent.port()));
  EXPECT_NE(given.result.code, 0) << given.result.out;
  EXPECT_LT(given.seconds, 15.0) << given.result.err;
  EXPECT_GE(given.seconds, 2.0) << given.result.err;
  const std::string said = given.result.out + given.result.err;
  EXPECT_NE(said.find("timeout"), std::string::npos) << said;
  // None given: vstore's own default (10 s) still ends the wait.
  const Timed fallback =
      timed_vstore(dir, "health", fmt::format("DATABASE_URL='postgresql://vstore@127.0.0.1:{}/vstore'", silent.port()));
  EXPECT_NE(fallback.result.code, 0) << fallback.result.out;
  EXPECT_LT(fallback.seconds, 40.0) << fallback.result.err;
  EXPECT_GE(fallback.seconds, 5.0) << fallback.result.err;
}

}  // namespace
