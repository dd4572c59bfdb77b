// SPDX-License-Identifier: Apache-2.0
// Binary wire encodings: pgvector's `vector` send/recv format and PostgreSQL's binary COPY.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::pg {

inline void put_be16(std::string& out, std::uint16_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 2);
}
inline void put_be32(std::string& out, std::uint32_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 4);
}
inline void put_be64(std::string& out, std::uint64_t v) {
  v = std::byteswap(v);
  out.append(reinterpret_cast<const char*>(&v), 8);
}
inline std::uint32_t get_be32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return std::byteswap(v);
}
inline std::uint16_t get_be16(const char* p) {
  std::uint16_t v;
  std::memcpy(&v, p, 2);
  return std::byteswap(v);
}
inline std::uint64_t get_be64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return std::byteswap(v);
}

/// Appends pgvector's binary form: int16 dim, int16 unused, dim x float4, all big-endian.
inline void append_vector(std::string& out, std::span<const float> vec) {
  put_be16(out, static_cast<std::uint16_t>(vec.size()));
  put_be16(out, 0);
  // One resize, then a plain loop over the floats (which the compiler can vectorise), instead of
  // an append per float.
  // The size is returned as computed here, not as the `n` passed in: g++ 12's libstdc++ can
  // pass a larger n when the string grows.
  const std::size_t at = out.size();
  const std::size_t size = at + vec.size() * 4;
  out.resize_and_overwrite(size, [&](char* p, std::size_t) {
    char* dst = p + at;
    for (std::size_t i = 0; i < vec.size(); ++i) {
      const std::uint32_t v = std::byteswap(std::bit_cast<std::uint32_t>(vec[i]));
      std::memcpy(dst + i * 4, &v, 4);
    }
    return size;
  });
}

inline std::string encode_vector(std::span<const float> vec) {
  std::string out;
  out.reserve(4 + vec.size() * 4);
  append_vector(out, vec);
  return out;
}

/// Decodes pgvector's binary form into `out` (appended). Errors: corruption.
inline Result<void> decode_vector(std::string_view bytes, std::vector<float>& out, std::size_t expected_dim) {
  if (bytes.size() < 4) return fail(ErrorCode::corruption, "vector value shorter than its header");
  const std::size_t dim = get_be16(bytes.data());
  if (bytes.size() != 4 + dim * 4) {
    return fail(ErrorCode::corruption, "vector value length does not match its dimension");
  }
  if (expected_dim != 0 && dim != expected_dim) {
    return fail(ErrorCode::corruption,
                "stored vector has " + std::to_string(dim) + " dimensions, expected " + std::to_string(expected_dim));
  }
  const char* p = bytes.data() + 4;
  for (std::size_t i = 0; i < dim; ++i) out.push_back(std::bit_cast<float>(get_be32(p + i * 4)));
  return {};
}

/// Builds a binary COPY stream: header, tuples, trailer.
/// A streamed COPY hands this much to libpq at a time (the store and the benchmarks' bare COPY).
inline constexpr std::size_t k_copy_slice_bytes = 256 * 1024;

class CopyWriter {
 public:
  CopyWriter() {
    static constexpr char k_sig[] = "PGCOPY\n\377\r\n";
    m_buf.append(k_sig, 11);
    put_be32(m_buf, 0);  // flags
    put_be32(m_buf, 0);  // header extension length
  }
  void begin_row(int fields) { put_be16(m_buf, static_cast<std::uint16_t>(fields)); }
  void null_field() { put_be32(m_buf, 0xFFFFFFFFu); }
  void bytes_field(std::string_view data) {
    put_be32(m_buf, static_cast<std::uint32_t>(data.size()));
    m_buf.append(data);
  }
  void text_field(const std::optional<std::string>& v) { v ? bytes_field(*v) : null_field(); }
  void int64_field(std::int64_t v) {
    put_be32(m_buf, 8);
    put_be64(m_buf, static_cast<std::uint64_t>(v));
  }
  void int32_field(std::int32_t v) {
    put_be32(m_buf, 4);
    put_be32(m_buf, static_cast<std::uint32_t>(v));
  }
  void bool_field(bool v) {
    put_be32(m_buf, 1);
    m_buf.push_back(v ? 1 : 0);
  }
  /// jsonb binary: version byte 1 + JSON text.
  void jsonb_field(std::string_view json) {
    put_be32(m_buf, static_cast<std::uint32_t>(json.size() + 1));
    m_buf.push_back(1);
    m_buf.append(json);
  }
  void vector_field(std::span<const float> vec) {
    put_be32(m_buf, static_cast<std::uint32_t>(4 + vec.size() * 4));
    append_vector(m_buf, vec);
  }
  /// Bytes written so far; truncate(mark) drops everything written after size() returned mark
  /// (a row abandoned half-way).
  [[nodiscard]] std::size_t size() const { return m_buf.size(); }
  void truncate(std::size_t mark) { m_buf.resize(mark); }
  /// Hands the bytes written since the last take() over for sending, in `out`, whose earlier
  /// contents are dropped and whose memory the writer goes on writing into: a stream that
  /// passes the same `out` every time reuses two buffers instead of allocating one per slice.
  /// The writer goes on from there (a mark from size() before a take() is no longer valid).
  void take(std::string& out) {
    out.clear();
    std::swap(out, m_buf);
  }
  /// Finishes the stream and returns it (or, after take(), the rest of it).
  std::string finish() {
    put_be16(m_buf, 0xFFFF);
    return std::move(m_buf);
  }
  void reserve(std::size_t n) { m_buf.reserve(n); }

 private:
  std::string m_buf;
};

}  // namespace vstore::pg
