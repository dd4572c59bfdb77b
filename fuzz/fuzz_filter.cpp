// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: parse_filter() on arbitrary JSON text (the `where` of the CLI and the service).
//
// Beyond "no crash, no sanitizer report", it checks the round trip a backend relies on: a
// filter that parses is written back by to_chroma_where() as JSON that serialises without
// error and parses again to the same filter.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "vstore/filter.hpp"

namespace {

[[noreturn]] void fail_check(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_filter: %s: %s\n", what, detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = vstore::parse_filter(text);
  if (!parsed) {
    if (parsed.error().message().empty()) fail_check("an error without a message", std::string(text));
    return 0;
  }
  const nlohmann::json chroma = vstore::to_chroma_where(*parsed);
  // Strings were checked to be UTF-8, so the strict dump must not throw.
  const std::string written = chroma.dump();
  auto again = vstore::parse_filter(std::string_view(written));
  if (!again) fail_check("to_chroma_where's output does not parse", written + " -> " + again.error().message());
  if (vstore::to_chroma_where(*again) != chroma) fail_check("the round trip changed the filter", written);
  return 0;
}
