// SPDX-License-Identifier: Apache-2.0
// Reader for the files of one Chroma HNSW segment directory (internal).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::chroma {

/// The fields of header.bin (hnswlib persistence version 1, 100 bytes, little-endian).
struct HnswHeader {
  std::uint64_t offset_level0 = 0;
  std::uint64_t max_elements = 0;
  std::uint64_t cur_element_count = 0;
  std::uint64_t size_data_per_element = 0;
  std::uint64_t label_offset = 0;
  std::uint64_t offset_data = 0;
  std::int32_t max_level = 0;
  std::uint32_t enterpoint_node = 0;
  std::uint64_t max_m = 0;
  std::uint64_t max_m0 = 0;
  std::uint64_t m = 0;
  double mult = 0;
  std::uint64_t ef_construction = 0;
  /// Vector dimension derived from the offsets.
  [[nodiscard]] std::size_t dim() const { return static_cast<std::size_t>((label_offset - offset_data) / 4); }
};

/// One element slot of data_level0.bin.
struct HnswElement {
  std::uint64_t label = 0;
  bool deleted = false;        ///< DELETE_MARK set
  std::vector<float> vector;   ///< de-normalised with length.bin when the space is cosine; empty
                               ///< when the segment was read with its vectors deferred
};

/// The vectors of a segment's slots where they lie: data_level0.bin mapped read-only, and
/// length.bin for cosine. Immutable; copy() is thread-safe.
class HnswVectors {
 public:
  HnswVectors(std::shared_ptr<const void> mapping, std::string_view level0, std::string lengths, const HnswHeader& header,
              bool cosine);
  /// The vector of slot `slot` (< the slots read) into `out`, de-normalised with length.bin
  /// when cosine: stored x length in float32, as Chroma's own getDataByLabel computes it.
  void copy(std::size_t slot, std::vector<float>& out) const;
  [[nodiscard]] std::size_t slots() const { return m_slots; }

 private:
  std::shared_ptr<const void> m_mapping;  // keeps m_level0 mapped
  std::string_view m_level0;
  std::string m_lengths;
  std::size_t m_stride = 0;
  std::size_t m_offset_data = 0;
  std::size_t m_dim = 0;
  std::size_t m_slots = 0;
  bool m_cosine = false;
};

/// The valid elements of a segment, in slot order.
struct HnswSegment {
  HnswHeader header;
  std::vector<HnswElement> elements;
  /// Where the slots' vectors lie (set when there are slots); with `defer_vectors` the
  /// elements' vectors are left empty and come from here.
  std::shared_ptr<const HnswVectors> vectors;
};

/// Parses header.bin bytes and checks that its offsets agree with each other (and with
/// `expected_dim` when non-zero). Errors: corruption naming the field and values.
[[nodiscard]] Result<HnswHeader> parse_hnsw_header(std::string_view bytes, std::size_t expected_dim);

/// Reads a segment directory: header.bin, the first cur_element_count slots of
/// data_level0.bin and, when `cosine`, length.bin (vector = stored x length, in float32 as
/// Chroma's own getDataByLabel computes it). A directory whose header says no element was ever
/// flushed gives an empty segment. Errors: not_found (no header.bin), corruption (a file
/// shorter than the header demands, inconsistent offsets, a wrong dimension). `on_slots`, when
/// set, is called with the slots read so far and the slots in all, every 8,192 slots and once
/// at the end. `defer_vectors` reads labels and tombstones only (every check above still runs)
/// and leaves the copying of vectors to HnswSegment::vectors.
[[nodiscard]] Result<HnswSegment> read_hnsw_segment(const std::string& dir, std::size_t expected_dim, bool cosine,
                                                    const std::function<void(std::size_t done, std::size_t total)>& on_slots = {},
                                                    bool defer_vectors = false);

}  // namespace vstore::chroma
