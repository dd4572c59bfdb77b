// SPDX-License-Identifier: Apache-2.0
// Regressions found by the libFuzzer targets (fuzz/, docs/fuzzing.md), one test per finding,
// each with the input the fuzzer found (kept in fuzz/corpus/ as well).
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include <nlohmann/json.hpp>

#include "serve/request_body.hpp"

namespace {

namespace serve = vstore::serve;

// The refusal of `body` on POST /v1/map/rebuild, or a test failure when it is accepted.
serve::HttpError refusal_of_map_rebuild(const std::string& body) {
  try {
    (void)serve::parse_map_rebuild(body);
  } catch (const serve::HttpError& e) {
    return e;
  }
  ADD_FAILURE() << "the body was accepted";
  return {};
}

// fuzz_request found it (fuzz/corpus/request/crash-3a7aef7d97b5817af7e3cc6513754d647d5211e4):
// a body that is not UTF-8 fails to parse, and nlohmann's parse error quotes the bytes it last
// read. The 400 naming that error could not be written as JSON (the strict dump threw
// type_error 316 out of the route), so the service answered 500 instead of the 400.
TEST(FuzzRegressions, ErrorAnswerOfABodyThatIsNotUtf8IsWrittenAsJson) {
  const std::string body = "{\"cl\x8b\x8c\x8b\xa2rs\": 0, \"seed\": 42}";
  const serve::HttpError e = refusal_of_map_rebuild(body);
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "invalid_argument");
  EXPECT_NE(e.message.find("the body is not JSON"), std::string::npos) << e.message;
  std::string text;
  ASSERT_NO_THROW(text = serve::error_json(e));
  const auto answer = nlohmann::json::parse(text);
  EXPECT_EQ(answer["error"]["code"], "invalid_argument");
  // The message keeps its text; the bytes that are not UTF-8 are replaced, not dropped.
  const std::string message = answer["error"]["message"].get<std::string>();
  EXPECT_NE(message.find("the body is not JSON"), std::string::npos) << message;
  EXPECT_NE(message.find("\xEF\xBF\xBD"), std::string::npos) << message;
}

// fuzz_request found it (fuzz/corpus/request/crash-40c3f4a539b02f06e80d9355e5b21ef7ad307ca0):
// a number beyond the range of a double is not a parse_error for nlohmann but out_of_range 406,
// which Body did not catch; the route answered 500 "internal" instead of a 400.
TEST(FuzzRegressions, BodyWithANumberBeyondDoubleIsA400) {
  const std::string body = "{\"where\": {\"caeorygt\": \"tech\"}, \"limit\": 53, \"include_v{ctOrs\": 1e400}";
  try {
    (void)serve::parse_vectors(body, serve::RequestLimits{});
    ADD_FAILURE() << "the body was accepted";
  } catch (const serve::HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.code, "invalid_argument");
    EXPECT_NE(e.message.find("the body is not JSON"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("1e400"), std::string::npos) << e.message;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not an HttpError but " << e.what();
  }
}

// The target's check that an accepted search vector holds finite float32 values, with an input
// written by hand (the fuzzer had not reached it in its runs): 1e39 is a finite double but
// beyond float32, so vector_of() gave +inf, and the 400 came later from the store naming "inf",
// a value the client never sent.
TEST(FuzzRegressions, SearchVectorBeyondFloat32IsRefusedNamingTheValue) {
  const std::string body = "{\"vector\": [0.5, -1e39, 0, 0]}";
  try {
    (void)serve::parse_search(body, serve::RequestLimits{}, 4);
    ADD_FAILURE() << "the body was accepted";
  } catch (const serve::HttpError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_NE(e.message.find("\"vector\"[1]"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("-1e+39"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find("float32"), std::string::npos) << e.message;
  }
  // The largest float32 itself is accepted.
  const auto r = serve::parse_search("{\"vector\": [3.4028234663852886e38, 0, 0, 1]}", serve::RequestLimits{}, 4);
  ASSERT_TRUE(r.vector.has_value());
  EXPECT_EQ((*r.vector)[0], std::numeric_limits<float>::max());
}

}  // namespace
