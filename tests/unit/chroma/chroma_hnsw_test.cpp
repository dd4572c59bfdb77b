// SPDX-License-Identifier: Apache-2.0
// HNSW segment files: vectors, labels, tombstones, cosine de-normalisation, and size checks.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "chroma/chroma_hnsw.hpp"

namespace {

namespace fs = std::filesystem;
using vstore::chroma::read_hnsw_segment;

struct Slot {
  std::uint64_t label;
  bool deleted;
  std::vector<float> vec;
  float length = 1.0f;
};

template <typename T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// Writes header.bin, data_level0.bin (whole capacity, as hnswlib does) and length.bin.
class SegmentDir {
 public:
  SegmentDir() {
    std::string tmpl = (fs::temp_directory_path() / "vstore-hnsw-XXXXXX").string();
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
    m_dir = tmpl;
  }
  ~SegmentDir() {
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }
  void write(std::size_t dim, const std::vector<Slot>& slots, std::uint64_t capacity = 10, std::uint64_t m = 4) {
    const std::uint64_t max_m0 = 2 * m;
    const std::uint64_t offset_data = 4 + 4 * max_m0;
    const std::uint64_t label_offset = offset_data + 4 * dim;
    const std::uint64_t size = label_offset + 8;
    std::string h;
    put<std::int32_t>(h, 1);
    put<std::uint64_t>(h, 0);
    put<std::uint64_t>(h, capacity);
    put<std::uint64_t>(h, slots.size());
    put<std::uint64_t>(h, size);
    put<std::uint64_t>(h, label_offset);
    put<std::uint64_t>(h, offset_data);
    put<std::int32_t>(h, slots.empty() ? -1 : 0);
    put<std::uint32_t>(h, slots.empty() ? 0xFFFFFFFFU : 0U);
    put<std::uint64_t>(h, m);
    put<std::uint64_t>(h, max_m0);
    put<std::uint64_t>(h, m);
    put<double>(h, 1.0 / std::log(static_cast<double>(m)));
    put<std::uint64_t>(h, 100);
    ASSERT_EQ(h.size(), 100U);
    std::string data(static_cast<std::size_t>(capacity * size), '\0');
    std::string lengths(static_cast<std::size_t>(capacity * 4), '\x7f');
    for (std::size_t i = 0; i < slots.size(); ++i) {
      char* base = data.data() + i * size;
      base[2] = slots[i].deleted ? 1 : 0;
      std::memcpy(base + offset_data, slots[i].vec.data(), dim * 4);
      std::memcpy(base + label_offset, &slots[i].label, 8);
      std::memcpy(lengths.data() + 4 * i, &slots[i].length, 4);
    }
    std::ofstream(m_dir / "header.bin", std::ios::binary) << h;
    std::ofstream(m_dir / "data_level0.bin", std::ios::binary) << data;
    std::ofstream(m_dir / "length.bin", std::ios::binary) << lengths;
  }
  [[nodiscard]] std::string path() const { return m_dir.string(); }
  [[nodiscard]] fs::path file(const char* name) const { return m_dir / name; }

 private:
  fs::path m_dir;
};

TEST(ChromaHnsw, ReadsVectorsLabelsAndTombstonesOfTheValidSlots) {
  SegmentDir dir;
  dir.write(3, {{5, false, {1, 2, 3}}, {9, true, {4, 5, 6}}, {2, false, {-1, 0.5f, 7}}});
  auto seg = read_hnsw_segment(dir.path(), 3, false);
  ASSERT_TRUE(seg.has_value()) << seg.error().to_string();
  EXPECT_EQ(seg->header.dim(), 3U);
  EXPECT_EQ(seg->header.max_elements, 10U);
  ASSERT_EQ(seg->elements.size(), 3U);
  EXPECT_EQ(seg->elements[0].label, 5U);
  EXPECT_FALSE(seg->elements[0].deleted);
  EXPECT_EQ(seg->elements[0].vector, (std::vector<float>{1, 2, 3}));
  EXPECT_TRUE(seg->elements[1].deleted);
  EXPECT_EQ(seg->elements[2].label, 2U);
  EXPECT_EQ(seg->elements[2].vector, (std::vector<float>{-1, 0.5f, 7}));
}

TEST(ChromaHnsw, CosineVectorsAreMultipliedByTheirStoredLength) {
  SegmentDir dir;
  dir.write(2, {{1, false, {0.6f, 0.8f}, 5.0f}});
  auto seg = read_hnsw_segment(dir.path(), 2, true);
  ASSERT_TRUE(seg.has_value()) << seg.error().to_string();
  EXPECT_EQ(seg->elements[0].vector, (std::vector<float>{0.6f * 5.0f, 0.8f * 5.0f}));
  // l2/ip ignore length.bin (uninitialised there).
  auto raw = read_hnsw_segment(dir.path(), 2, false);
  ASSERT_TRUE(raw.has_value());
  EXPECT_EQ(raw->elements[0].vector, (std::vector<float>{0.6f, 0.8f}));
}

TEST(ChromaHnsw, DeferredVectorsAreLeftEmptyAndCopyGivesTheEagerBytes) {
  for (const bool cosine : {false, true}) {
    SegmentDir dir;
    dir.write(3, {{5, false, {1, 2, 3}, 2.0f}, {9, true, {4, 5, 6}, 0.5f}, {2, false, {-1, 0.1f, 7e-30f}, 3.0f}});
    auto eager = read_hnsw_segment(dir.path(), 3, cosine);
    auto deferred = read_hnsw_segment(dir.path(), 3, cosine, {}, /*defer_vectors=*/true);
    ASSERT_TRUE(eager.has_value()) << eager.error().to_string();
    ASSERT_TRUE(deferred.has_value()) << deferred.error().to_string();
    ASSERT_EQ(deferred->elements.size(), 3U);
    ASSERT_NE(deferred->vectors, nullptr);
    EXPECT_EQ(deferred->vectors->slots(), 3U);
    for (std::size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(deferred->elements[i].label, eager->elements[i].label);
      EXPECT_EQ(deferred->elements[i].deleted, eager->elements[i].deleted);
      EXPECT_TRUE(deferred->elements[i].vector.empty()) << "slot " << i;
      std::vector<float> copied;
      deferred->vectors->copy(i, copied);
      ASSERT_EQ(copied.size(), 3U);
      EXPECT_EQ(std::memcmp(copied.data(), eager->elements[i].vector.data(), 3 * sizeof(float)), 0)
          << "slot " << i << (cosine ? " cosine" : " l2");
    }
    std::vector<float> third;
    deferred->vectors->copy(2, third);
    EXPECT_EQ(third[0], cosine ? -3.0f : -1.0f);
  }
}

TEST(ChromaHnsw, SlotProgressRisesEvery8192SlotsAndEndsAtTheWhole) {
  SegmentDir dir;
  std::vector<Slot> slots;
  for (std::uint64_t i = 0; i < 20000; ++i) slots.push_back({i, false, {static_cast<float>(i)}});
  dir.write(1, slots, 20000);
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  auto seg = read_hnsw_segment(dir.path(), 1, false, [&](std::size_t done, std::size_t total) { calls.emplace_back(done, total); });
  ASSERT_TRUE(seg.has_value()) << seg.error().to_string();
  using Calls = std::vector<std::pair<std::size_t, std::size_t>>;
  EXPECT_EQ(calls, (Calls{{8192, 20000}, {16384, 20000}, {20000, 20000}}));

  SegmentDir empty;
  empty.write(4, {});
  calls.clear();
  ASSERT_TRUE(read_hnsw_segment(empty.path(), 4, false, [&](std::size_t d, std::size_t t) { calls.emplace_back(d, t); }));
  EXPECT_EQ(calls, (Calls{{0, 0}})) << "an empty segment is read whole at once";
}

TEST(ChromaHnsw, ANeverFlushedIndexIsEmpty) {
  SegmentDir dir;
  dir.write(4, {});
  fs::remove(dir.file("data_level0.bin"));
  auto seg = read_hnsw_segment(dir.path(), 4, false);
  ASSERT_TRUE(seg.has_value()) << seg.error().to_string();
  EXPECT_TRUE(seg->elements.empty());
}

TEST(ChromaHnsw, TruncatedFilesAreCorruption) {
  SegmentDir dir;
  dir.write(3, {{1, false, {1, 2, 3}}, {2, false, {4, 5, 6}}}, 2);
  const auto full = fs::file_size(dir.file("data_level0.bin"));
  fs::resize_file(dir.file("data_level0.bin"), full - 1);
  auto seg = read_hnsw_segment(dir.path(), 3, false);
  ASSERT_FALSE(seg.has_value());
  EXPECT_EQ(seg.error().code(), vstore::ErrorCode::corruption);
  EXPECT_NE(seg.error().message().find("truncated"), std::string::npos) << seg.error().message();

  dir.write(3, {{1, false, {1, 2, 3}}, {2, false, {4, 5, 6}}}, 2);
  fs::resize_file(dir.file("length.bin"), 4);
  seg = read_hnsw_segment(dir.path(), 3, true);
  ASSERT_FALSE(seg.has_value());
  EXPECT_NE(seg.error().message().find("length.bin"), std::string::npos) << seg.error().message();

  dir.write(3, {{1, false, {1, 2, 3}}});
  fs::resize_file(dir.file("header.bin"), 99);
  seg = read_hnsw_segment(dir.path(), 3, false);
  ASSERT_FALSE(seg.has_value());
  EXPECT_EQ(seg.error().code(), vstore::ErrorCode::corruption);
}

TEST(ChromaHnsw, HeadersThatDisagreeWithThemselvesOrTheCollectionAreCorruption) {
  SegmentDir dir;
  dir.write(3, {{1, false, {1, 2, 3}}});
  auto wrong_dim = read_hnsw_segment(dir.path(), 4, false);
  ASSERT_FALSE(wrong_dim.has_value());
  EXPECT_NE(wrong_dim.error().message().find("3 dimensions, the collection says 4"), std::string::npos)
      << wrong_dim.error().message();

  std::string header;
  {
    std::ifstream in(dir.file("header.bin"), std::ios::binary);
    header.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto with = [&](std::size_t off, auto value) {
    std::string h = header;
    std::memcpy(h.data() + off, &value, sizeof value);
    return vstore::chroma::parse_hnsw_header(h, 0);
  };
  EXPECT_FALSE(with(0, std::int32_t{2}).has_value());                       // persistence version
  EXPECT_FALSE(with(20, std::uint64_t{11}).has_value());                    // cur > max
  EXPECT_FALSE(with(28, std::uint64_t{77}).has_value());                    // size_data_per_element
  EXPECT_FALSE(with(44, std::uint64_t{12}).has_value());                    // offsetData
  EXPECT_FALSE(with(36, std::uint64_t{47}).has_value());                    // label_offset not whole floats
  EXPECT_FALSE(with(12, std::uint64_t{1} << 62).has_value());               // absurd capacity
  EXPECT_TRUE(with(20, std::uint64_t{1}).has_value());
}

}  // namespace
