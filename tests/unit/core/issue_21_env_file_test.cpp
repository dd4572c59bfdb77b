// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 13j: an env file the user names must exist, must be a regular file, and is read
// with a bound.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "vstore/config.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;

class Issue21EnvFile : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "vstore-envfile-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    m_dir = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  std::string refusal(const fs::path& path, EnvFile presence) const {
    auto env = read_environment(path, presence);
    EXPECT_FALSE(env.has_value()) << path;
    return env ? std::string() : env.error().message();
  }
  fs::path m_dir;
};

TEST_F(Issue21EnvFile, Item13jAMissingFileIsAnErrorOnlyWhenNamed) {
  EXPECT_TRUE(read_environment(m_dir / "absent.env", EnvFile::optional).has_value());
  const std::string message = refusal(m_dir / "absent.env", EnvFile::required);
  EXPECT_NE(message.find("absent.env"), std::string::npos) << message;
  EXPECT_NE(message.find("no such file"), std::string::npos) << message;
}

TEST_F(Issue21EnvFile, Item13jDevicesAndPipesAreRefusedWithoutReading) {
  EXPECT_NE(refusal("/dev/zero", EnvFile::required).find("not a regular file"), std::string::npos);
  EXPECT_NE(refusal("/dev/zero", EnvFile::optional).find("not a regular file"), std::string::npos);
  const fs::path fifo = m_dir / "fifo.env";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(refusal(fifo, EnvFile::required).find("not a regular file"), std::string::npos);
  EXPECT_NE(refusal(m_dir, EnvFile::required).find("directory"), std::string::npos);
}

TEST_F(Issue21EnvFile, Item13jAFileLargerThanOneMibIsRefused) {
  const fs::path big = m_dir / "big.env";
  {
    std::ofstream out(big);
    const std::string line = "# " + std::string(1000, 'x') + "\n";
    for (int i = 0; i < 1100; ++i) out << line;
  }
  EXPECT_NE(refusal(big, EnvFile::required).find("larger than 1 MiB"), std::string::npos);
  std::ofstream(m_dir / "small.env") << "VSTORE_I21_ENV_TEST=yes\n";
  auto env = read_environment(m_dir / "small.env", EnvFile::required);
  ASSERT_TRUE(env.has_value()) << env.error().message();
  EXPECT_EQ(env->at("VSTORE_I21_ENV_TEST"), "yes");
}

}  // namespace
}  // namespace vstore
