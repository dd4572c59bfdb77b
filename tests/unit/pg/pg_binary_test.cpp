// SPDX-License-Identifier: Apache-2.0
// pgvector's binary form as the COPY writer encodes it: the header, big-endian float32 bit
// patterns (every pattern kept, signs of zero and NaN payloads included), and the round trip.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "pg/pg_binary.hpp"

namespace {

using vstore::pg::decode_vector;
using vstore::pg::encode_vector;

TEST(PgBinaryVector, HeaderThenBigEndianFloats) {
  const std::vector<float> v = {1.0f, -2.5f};
  const std::string bytes = encode_vector(v);
  // dim 2, unused 0, then 0x3f800000 and 0xc0200000 most significant byte first.
  const std::string expected("\x00\x02\x00\x00\x3f\x80\x00\x00\xc0\x20\x00\x00", 12);
  EXPECT_EQ(bytes, expected);
}

TEST(PgBinaryVector, EveryBitPatternSurvivesTheRoundTrip) {
  std::vector<float> v = {0.0f, -0.0f, std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(),
                          std::bit_cast<float>(0x7fc00001u), std::bit_cast<float>(0xffffffffu)};
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) v.push_back(std::bit_cast<float>(static_cast<std::uint32_t>(rng())));
  const std::string bytes = encode_vector(v);
  ASSERT_EQ(bytes.size(), 4 + v.size() * 4);
  std::vector<float> back;
  ASSERT_TRUE(decode_vector(bytes, back, v.size()).has_value());
  ASSERT_EQ(back.size(), v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(std::bit_cast<std::uint32_t>(back[i]), std::bit_cast<std::uint32_t>(v[i])) << i;
  }
}

TEST(PgBinaryVector, AppendsAfterWhatTheBufferHolds) {
  vstore::pg::CopyWriter writer;
  writer.begin_row(1);
  const std::size_t before = writer.size();
  writer.vector_field(std::vector<float>{3.0f});
  // length 8 (header 4 + one float), dim 1, unused 0, 0x40400000.
  const std::string tail = writer.finish().substr(before, 12);
  EXPECT_EQ(tail, std::string("\x00\x00\x00\x08\x00\x01\x00\x00\x40\x40\x00\x00", 12));
}

// Many rows into one writer, so that its buffer grows while a vector is written: every row
// decodes back to its fields (the stream's length is exactly what was written).
TEST(PgBinaryVector, ManyRowsThroughAGrowingBufferStayWellFormed) {
  vstore::pg::CopyWriter writer;
  const std::string head = writer.finish().substr(0, 19);  // signature, flags, extension length
  vstore::pg::CopyWriter w;
  std::vector<float> v(384);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f;
  for (int row = 0; row < 500; ++row) {
    w.begin_row(2);
    w.bytes_field("id" + std::to_string(row));
    w.vector_field(v);
  }
  const std::string all = w.finish();
  ASSERT_EQ(all.substr(0, 19), head);
  std::size_t pos = 19;
  for (int row = 0; row < 500; ++row) {
    ASSERT_LE(pos + 2, all.size());
    ASSERT_EQ(vstore::pg::get_be16(all.data() + pos), 2) << row;
    pos += 2;
    const std::uint32_t id_len = vstore::pg::get_be32(all.data() + pos);
    pos += 4;
    ASSERT_EQ(all.substr(pos, id_len), "id" + std::to_string(row));
    pos += id_len;
    const std::uint32_t vec_len = vstore::pg::get_be32(all.data() + pos);
    pos += 4;
    ASSERT_EQ(vec_len, 4 + v.size() * 4);
    std::vector<float> back;
    ASSERT_TRUE(vstore::pg::decode_vector(std::string_view(all).substr(pos, vec_len), back, v.size()).has_value());
    ASSERT_EQ(back, v) << row;
    pos += vec_len;
  }
  ASSERT_EQ(pos + 2, all.size());  // the trailer, and nothing after it
  EXPECT_EQ(vstore::pg::get_be16(all.data() + pos), 0xFFFF);
}

// A stream sent in slices (take() into one reused string, as Connection::copy_stream does) is
// byte for byte the stream written in one piece, and each slice holds only its own bytes.
TEST(PgBinaryVector, SlicesTakenIntoOneStringAddUpToTheWholeStream) {
  auto write_rows = [](vstore::pg::CopyWriter& w, int from, int to) {
    std::vector<float> v(64);
    for (int row = from; row < to; ++row) {
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(row) + static_cast<float>(i);
      w.begin_row(2);
      w.bytes_field("id" + std::to_string(row));
      w.vector_field(v);
    }
  };
  vstore::pg::CopyWriter whole;
  write_rows(whole, 0, 300);
  const std::string expected = whole.finish();

  vstore::pg::CopyWriter sliced;
  std::string slice;
  std::string joined;
  for (int from = 0; from < 300; from += 70) {
    write_rows(sliced, from, std::min(300, from + 70));
    const std::size_t written = sliced.size();
    sliced.take(slice);
    EXPECT_EQ(slice.size(), written) << from;  // just this slice's bytes
    EXPECT_EQ(sliced.size(), 0u) << from;      // the writer starts empty
    joined += slice;
  }
  joined += sliced.finish();
  EXPECT_EQ(joined, expected);
}

}  // namespace
