// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: a Chroma HNSW segment directory read as migrate-chroma reads it.
//
// The input is split into the segment's files and written to a private directory:
//   byte 0          flags: bit 0 cosine (length.bin is read), bit 1 vectors deferred
//   bytes 1..100    header.bin (100 bytes)
//   u32 LE n, n bytes   data_level0.bin
//   u32 LE n, n bytes   length.bin
//   the rest        index_metadata.pickle
// (a length past the end takes what is left). read_hnsw_segment() reads the directory; every
// slot's vector is then copied (HnswVectors::copy, the deferred path) and its label looked up
// in the parsed label map, as chroma_dir.cpp's read_hnsw_part() does. link_lists.bin is not
// read by vstore (it holds only graph links), so it is not fed.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "chroma/chroma_hnsw.hpp"
#include "chroma/chroma_pickle.hpp"

namespace {

namespace fs = std::filesystem;

fs::path g_dir;

void remove_dir() {
  std::error_code ec;
  fs::remove_all(g_dir, ec);
}

[[noreturn]] void fail_check(const char* what) {
  std::fprintf(stderr, "fuzz_hnsw: %s\n", what);
  std::abort();
}

void write_file(const char* name, std::string_view bytes) {
  std::ofstream out(g_dir / name, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) fail_check("cannot write the segment files (is TMPDIR writable?)");
}

// The next length-prefixed part of `rest`.
std::string_view take_part(std::string_view& rest) {
  std::uint32_t n = 0;
  for (int i = 0; i < 4 && !rest.empty(); ++i) {
    n |= static_cast<std::uint32_t>(static_cast<unsigned char>(rest.front())) << (8 * i);
    rest.remove_prefix(1);
  }
  const std::string_view part = rest.substr(0, n);
  rest.remove_prefix(part.size());
  return part;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  std::string tmpl = (fs::temp_directory_path() / "vstore-fuzz-hnsw-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) fail_check("cannot create a temporary directory");
  g_dir = tmpl;
  std::atexit(remove_dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 101) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  const auto flags = static_cast<unsigned char>(rest.front());
  const bool cosine = (flags & 1U) != 0;
  const bool defer = (flags & 2U) != 0;
  rest.remove_prefix(1);
  write_file("header.bin", rest.substr(0, 100));
  rest.remove_prefix(100);
  write_file("data_level0.bin", take_part(rest));
  write_file("length.bin", take_part(rest));
  write_file("index_metadata.pickle", rest);

  std::size_t last_done = 0;
  auto seg = vstore::chroma::read_hnsw_segment(
      g_dir.string(), 0, cosine,
      [&last_done](std::size_t done, std::size_t total) {
        if (done < last_done || done > total) fail_check("on_slots went backwards or past the total");
        last_done = done;
      },
      defer);
  if (!seg) return 0;
  if (seg->elements.size() != seg->header.cur_element_count) fail_check("the segment lost slots");
  auto labels = vstore::chroma::parse_label_map(rest);
  std::vector<float> vec;
  for (std::size_t slot = 0; slot < seg->elements.size(); ++slot) {
    const auto& e = seg->elements[slot];
    if (!seg->vectors) fail_check("slots without their vectors");
    seg->vectors->copy(slot, vec);
    if (vec.size() != seg->header.dim()) fail_check("a vector of the wrong dimension");
    if (!defer && (e.vector.size() != vec.size() || std::memcmp(e.vector.data(), vec.data(), 4 * vec.size()) != 0)) {
      // (NaN payloads compare equal bit for bit, which is why memcmp and not ==)
      fail_check("the deferred copy differs from the read vector");
    }
    if (labels) (void)labels->id_of(e.label);
  }
  return 0;
}
