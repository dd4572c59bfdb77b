// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: parse_label_map() on arbitrary bytes (a Chroma index_metadata.pickle).
//
// A map that parses must hold what its contract says: entries sorted by label with unique
// labels, by_id a permutation of the entries in strictly increasing id order, and index_of() /
// id_of() finding every entry.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "chroma/chroma_pickle.hpp"

namespace {

[[noreturn]] void fail_check(const char* what) {
  std::fprintf(stderr, "fuzz_pickle: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto parsed = vstore::chroma::parse_label_map(bytes);
  if (!parsed) {
    if (parsed.error().message().empty()) fail_check("an error without a message");
    return 0;
  }
  const vstore::chroma::LabelMap& map = *parsed;
  if (map.by_id.size() != map.entries.size()) fail_check("by_id and entries differ in size");
  for (std::size_t i = 0; i < map.entries.size(); ++i) {
    const auto& e = map.entries[i];
    if (i > 0 && !(map.entries[i - 1].label < e.label)) fail_check("entries are not sorted by unique labels");
    if (map.index_of(e.label) != i) fail_check("index_of misses an entry");
    const auto id = map.id_of(e.label);
    if (!id || *id != e.id) fail_check("id_of misses an entry");
  }
  std::vector<bool> seen(map.entries.size(), false);
  for (std::size_t k = 0; k < map.by_id.size(); ++k) {
    const std::uint32_t i = map.by_id[k];
    if (i >= map.entries.size() || seen[i]) fail_check("by_id is not a permutation");
    seen[i] = true;
    if (k > 0 && !(map.entries[map.by_id[k - 1]].id < map.entries[i].id)) fail_check("by_id is not in id order");
  }
  // A label no entry has.
  const std::uint64_t absent = map.entries.empty() ? 0 : map.entries.back().label + 1;
  if (absent != 0 && map.index_of(absent) != vstore::chroma::LabelMap::npos) fail_check("index_of finds an absent label");
  return 0;
}
