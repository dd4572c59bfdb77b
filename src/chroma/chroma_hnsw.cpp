// SPDX-License-Identifier: Apache-2.0
// Reader for hnswlib (Chroma fork) segment files: header.bin, data_level0.bin, length.bin.
//
// Design: header.bin is decoded field by field and validated (persistence version 1, offsets
// consistent: offset_data = 4 + 4 * maxM0, label_offset = offset_data + 4 * dim,
// size_data_per_element = label_offset + 8, cur <= max). data_level0.bin is read with a size
// check before any slot is touched, so a truncated file is an error rather than garbage;
// length.bin is only read for cosine (it is uninitialised memory for l2/ip). link_lists.bin
// holds only graph links and is not needed to export vectors.
#include "chroma/chroma_hnsw.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include <fmt/format.h>

namespace vstore::chroma {
namespace {

constexpr std::size_t k_header_size = 100;

template <typename T>
T load(std::string_view bytes, std::size_t off) {
  T v;
  std::memcpy(&v, bytes.data() + off, sizeof(T));
  if constexpr (std::endian::native == std::endian::big) v = std::byteswap(v);
  return v;
}

// A file of at least `min_size` bytes, or the error that names what is missing.
Result<void> check_size(const std::filesystem::path& path, std::uint64_t min_size) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return fail(ErrorCode::not_found, fmt::format("cannot read {}: {}", path.string(), ec.message()));
  if (size < min_size) {
    return fail(ErrorCode::corruption, fmt::format("{} has {} bytes but its header needs at least {}; the file is truncated",
                                                   path.string(), size, min_size));
  }
  return {};
}

Result<std::string> read_file(const std::filesystem::path& path, std::uint64_t min_size, std::uint64_t read_size) {
  VS_TRY(check_size(path, min_size));
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open {}", path.string()));
  std::string data(static_cast<std::size_t>(read_size), '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(read_size))) {
    return fail(ErrorCode::corruption, fmt::format("short read of {}", path.string()));
  }
  return data;
}

// The first `size` bytes of a file, mapped read-only (data_level0.bin runs to gigabytes: no
// zero-filled buffer and no copy through read()).
class MappedFile {
 public:
  MappedFile() = default;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (m_data != nullptr) munmap(m_data, m_size);
  }
  static Result<std::shared_ptr<MappedFile>> open(const std::filesystem::path& path, std::uint64_t min_size,
                                                  std::uint64_t size) {
    VS_TRY(check_size(path, min_size));
    auto out = std::make_shared<MappedFile>();
    if (size == 0) return out;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(ErrorCode::not_found, fmt::format("cannot open {}: {}", path.string(), std::strerror(errno)));
    void* data = mmap(nullptr, static_cast<std::size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_errno = errno;
    ::close(fd);
    if (data == MAP_FAILED) {
      return fail(ErrorCode::unavailable, fmt::format("cannot map {}: {}", path.string(), std::strerror(map_errno)));
    }
    (void)madvise(data, static_cast<std::size_t>(size), MADV_SEQUENTIAL);
    out->m_data = data;
    out->m_size = static_cast<std::size_t>(size);
    return out;
  }
  [[nodiscard]] std::string_view bytes() const { return {static_cast<const char*>(m_data), m_size}; }

 private:
  void* m_data = nullptr;
  std::size_t m_size = 0;
};

}  // namespace

Result<HnswHeader> parse_hnsw_header(std::string_view bytes, std::size_t expected_dim) {
  if (bytes.size() != k_header_size) {
    return fail(ErrorCode::corruption, fmt::format("header.bin has {} bytes, expected {}", bytes.size(), k_header_size));
  }
  const auto version = load<std::int32_t>(bytes, 0);
  if (version != 1) return fail(ErrorCode::corruption, fmt::format("header.bin persistence version {}, expected 1", version));
  HnswHeader h;
  h.offset_level0 = load<std::uint64_t>(bytes, 4);
  h.max_elements = load<std::uint64_t>(bytes, 12);
  h.cur_element_count = load<std::uint64_t>(bytes, 20);
  h.size_data_per_element = load<std::uint64_t>(bytes, 28);
  h.label_offset = load<std::uint64_t>(bytes, 36);
  h.offset_data = load<std::uint64_t>(bytes, 44);
  h.max_level = load<std::int32_t>(bytes, 52);
  h.enterpoint_node = load<std::uint32_t>(bytes, 56);
  h.max_m = load<std::uint64_t>(bytes, 60);
  h.max_m0 = load<std::uint64_t>(bytes, 68);
  h.m = load<std::uint64_t>(bytes, 76);
  h.mult = load<double>(bytes, 84);
  h.ef_construction = load<std::uint64_t>(bytes, 92);
  auto bad = [](std::string what) { return fail(ErrorCode::corruption, "header.bin: " + what); };
  if (h.max_m0 == 0 || h.max_m0 > 65536) return bad(fmt::format("maxM0 {} is out of range", h.max_m0));
  if (h.offset_data != 4 + 4 * h.max_m0) {
    return bad(fmt::format("offsetData {} does not equal 4 + 4 * maxM0 ({})", h.offset_data, 4 + 4 * h.max_m0));
  }
  if (h.label_offset <= h.offset_data || (h.label_offset - h.offset_data) % 4 != 0 ||
      h.label_offset - h.offset_data > 4 * 65536) {
    return bad(fmt::format("label_offset {} and offsetData {} give no whole dimension", h.label_offset, h.offset_data));
  }
  if (h.size_data_per_element != h.label_offset + 8) {
    return bad(fmt::format("size_data_per_element {} does not equal label_offset + 8 ({})", h.size_data_per_element,
                           h.label_offset + 8));
  }
  if (h.offset_level0 != 0) return bad(fmt::format("offsetLevel0 {}, expected 0", h.offset_level0));
  if (h.cur_element_count > h.max_elements) {
    return bad(fmt::format("cur_element_count {} exceeds max_elements {}", h.cur_element_count, h.max_elements));
  }
  if (h.max_elements > (std::uint64_t{1} << 40) / h.size_data_per_element) {
    return bad(fmt::format("max_elements {} is implausibly large", h.max_elements));
  }
  if (expected_dim != 0 && h.dim() != expected_dim) {
    return bad(fmt::format("vectors have {} dimensions, the collection says {}", h.dim(), expected_dim));
  }
  return h;
}

HnswVectors::HnswVectors(std::shared_ptr<const void> mapping, std::string_view level0, std::string lengths,
                         const HnswHeader& header, bool cosine)
    : m_mapping(std::move(mapping)), m_level0(level0), m_lengths(std::move(lengths)),
      m_stride(static_cast<std::size_t>(header.size_data_per_element)),
      m_offset_data(static_cast<std::size_t>(header.offset_data)), m_dim(header.dim()),
      m_slots(static_cast<std::size_t>(header.cur_element_count)), m_cosine(cosine) {}

void HnswVectors::copy(std::size_t slot, std::vector<float>& out) const {
  const std::size_t data = slot * m_stride + m_offset_data;
  if constexpr (std::endian::native == std::endian::little) {
    // Straight from the mapping (every offset is a multiple of 4), without a zero fill first.
    const auto* first = reinterpret_cast<const float*>(m_level0.data() + data);
    out.assign(first, first + m_dim);
  } else {
    out.resize(m_dim);
    for (std::size_t d = 0; d < m_dim; ++d) out[d] = load<float>(m_level0, data + 4 * d);
  }
  if (m_cosine) {
    const float norm = load<float>(m_lengths, 4 * slot);
    for (float& x : out) x = x * norm;
  }
}

Result<HnswSegment> read_hnsw_segment(const std::string& dir, std::size_t expected_dim, bool cosine,
                                      const std::function<void(std::size_t, std::size_t)>& on_slots, bool defer_vectors) {
  const std::filesystem::path root(dir);
  VS_TRY_ASSIGN(std::string header_bytes, read_file(root / "header.bin", k_header_size, k_header_size));
  {
    std::error_code ec;
    const auto size = std::filesystem::file_size(root / "header.bin", ec);
    if (!ec && size != k_header_size) {
      return fail(ErrorCode::corruption, fmt::format("{} has {} bytes, expected {}", (root / "header.bin").string(), size,
                                                     k_header_size));
    }
  }
  auto header = parse_hnsw_header(header_bytes, expected_dim);
  if (!header) return fail(header.error().with_context(dir));
  HnswSegment seg;
  seg.header = *header;
  const std::uint64_t count = seg.header.cur_element_count;
  if (count == 0) {
    if (on_slots) on_slots(0, 0);
    return seg;
  }
  const std::uint64_t stride = seg.header.size_data_per_element;
  VS_TRY_ASSIGN(std::shared_ptr<MappedFile> level0_file,
                MappedFile::open(root / "data_level0.bin", count * stride, count * stride));
  const std::string_view level0 = level0_file->bytes();
  std::string lengths;
  if (cosine) {
    VS_TRY_ASSIGN(lengths, read_file(root / "length.bin", count * 4, count * 4));
  }
  seg.vectors = std::make_shared<const HnswVectors>(std::move(level0_file), level0, std::move(lengths), seg.header, cosine);
  seg.elements.resize(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t base = static_cast<std::size_t>(i * stride);
    HnswElement& e = seg.elements[i];
    e.deleted = (static_cast<unsigned char>(level0[base + 2]) & 1U) != 0;
    e.label = load<std::uint64_t>(level0, base + static_cast<std::size_t>(seg.header.label_offset));
    if (!defer_vectors) seg.vectors->copy(i, e.vector);
    if (on_slots && (i + 1) % 8192 == 0) on_slots(i + 1, count);
  }
  if (on_slots) on_slots(count, count);
  return seg;
}

}  // namespace vstore::chroma
