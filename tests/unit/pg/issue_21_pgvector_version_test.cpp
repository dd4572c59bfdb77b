// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 13: reading pgvector versions, the one rule for parallel HNSW builds (0.8.2 and
// later), and the health warnings that name the fixes an older pgvector lacks.
#include <gtest/gtest.h>

#include <string>

#include "pg/pg_version.hpp"

namespace vstore::pg {
namespace {

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

TEST(Issue21PgvectorVersion, Item13VersionsCompareByNumberNotByText) {
  auto v = parse_extension_version("0.8.0");
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, (ExtensionVersion{0, 8, 0}));
  EXPECT_EQ(parse_extension_version("0.10"), (ExtensionVersion{0, 10, 0}));
  EXPECT_GT(*parse_extension_version("0.10.0"), *parse_extension_version("0.8.4"));
  EXPECT_LT(*parse_extension_version("0.8.2"), *parse_extension_version("0.8.10"));
  for (const char* bad : {"", "0", "a.b", "0.8.x", "0..1", "-1.2.3", "0.8.0beta"}) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(parse_extension_version(bad));
  }
}

TEST(Issue21PgvectorVersion, Item13ParallelHnswBuildsOnlyFrom082) {
  EXPECT_FALSE(parallel_hnsw_build_safe("0.7.4"));
  EXPECT_FALSE(parallel_hnsw_build_safe("0.8.0"));
  EXPECT_FALSE(parallel_hnsw_build_safe("0.8.1"));
  EXPECT_TRUE(parallel_hnsw_build_safe("0.8.2"));
  EXPECT_TRUE(parallel_hnsw_build_safe("0.10.0"));
  EXPECT_FALSE(parallel_hnsw_build_safe("unknown"));
}

TEST(Issue21PgvectorVersion, Item13WarningsNameTheMissingFixes) {
  const std::string old = joined(pgvector_warnings("0.8.0"));
  EXPECT_NE(old.find("pgvector 0.8.0"), std::string::npos) << old;
  EXPECT_NE(old.find("CVE-2026-3172"), std::string::npos) << old;
  EXPECT_NE(old.find("0.8.2"), std::string::npos) << old;
  EXPECT_NE(old.find("0.8.3 and 0.8.4"), std::string::npos) << old;
  const std::string two = joined(pgvector_warnings("0.8.2"));
  EXPECT_EQ(two.find("CVE-2026-3172"), std::string::npos) << two;
  EXPECT_NE(two.find("0.8.3 and 0.8.4"), std::string::npos) << two;
  const std::string three = joined(pgvector_warnings("0.8.3"));
  EXPECT_EQ(three.find("0.8.3 and"), std::string::npos) << three;
  EXPECT_NE(three.find("0.8.4"), std::string::npos) << three;
  EXPECT_TRUE(pgvector_warnings("0.8.4").empty());
  EXPECT_TRUE(pgvector_warnings("0.9.0").empty());
  EXPECT_EQ(pgvector_warnings("weird").size(), 1u);
}

}  // namespace
}  // namespace vstore::pg
