// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 21: VSTORE_SHADOW_COMPARE is a setting like every other (environment or .env,
// checked), not a getenv() of the store factory.
#include <gtest/gtest.h>

#include <string>

#include "vstore/config.hpp"

namespace vstore {
namespace {

TEST(Issue21Config, Item21ShadowCompareIsReadByConfigInAnyCase) {
  auto off = load_config({});
  ASSERT_TRUE(off.has_value()) << off.error().to_string();
  EXPECT_FALSE(off->shadow_compare);
  for (const char* on : {"1", "true", "ON"}) {
    auto cfg = load_config({{"VSTORE_SHADOW_COMPARE", on}});
    ASSERT_TRUE(cfg.has_value()) << on << ": " << cfg.error().to_string();
    EXPECT_TRUE(cfg->shadow_compare) << on;
  }
  for (const char* no : {"0", "false", "Off"}) {
    auto cfg = load_config({{"VSTORE_SHADOW_COMPARE", no}});
    ASSERT_TRUE(cfg.has_value()) << no << ": " << cfg.error().to_string();
    EXPECT_FALSE(cfg->shadow_compare) << no;
  }
}

TEST(Issue21Config, Item21ShadowCompareRefusesAnotherValueNamingVariableAndValue) {
  auto cfg = load_config({{"VSTORE_SHADOW_COMPARE", "yes please"}});
  ASSERT_FALSE(cfg.has_value());
  const std::string message = cfg.error().to_string();
  EXPECT_NE(message.find("VSTORE_SHADOW_COMPARE"), std::string::npos) << message;
  EXPECT_NE(message.find("yes please"), std::string::npos) << message;
  EXPECT_NE(message.find("expected"), std::string::npos) << message;
}

}  // namespace
}  // namespace vstore
