// SPDX-License-Identifier: Apache-2.0
// Unit-test helpers for check_upsert_batch(): a valid 3-dimensional item, and the message of a
// batch the check must refuse (failing the calling test if it passes or refuses with another code).
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "vstore/write_check.hpp"

namespace vstore::testing {

/// An item that passes the check at dimension 3: uri `uri`, a title, a unit vector, model "m".
inline ArticleVector write_check_item(const std::string& uri) {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Cocoa prices rise";
  a.embedding = {1.0f, 0.0f, 0.0f};
  a.embedding_model = "m";
  return a;
}

/// The message with which check_upsert_batch(items, 3) refuses the batch; "" (and a failed
/// expectation) when it passes. Expects ErrorCode::invalid_argument.
inline std::string write_check_refusal(const std::vector<ArticleVector>& items) {
  auto ok = check_upsert_batch(items, 3);
  EXPECT_FALSE(ok.has_value());
  if (ok) return {};
  EXPECT_EQ(ok.error().code(), ErrorCode::invalid_argument);
  return ok.error().message();
}

}  // namespace vstore::testing
