// SPDX-License-Identifier: Apache-2.0
// A strict reader for the two `index_metadata.pickle` dialects Chroma writes (internal).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <memory>
#include <string_view>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::chroma {

/// Which writer produced a label map.
enum class PickleDialect {
  python_persistent_data,  ///< chromadb 0.4-0.6: a PersistentData instance, protocol 5
  rust_id_map,             ///< chromadb 1.x: a plain dict from serde_pickle, protocol 3
};

/// One entry of a label map: an HNSW label and the Chroma id it stands for.
struct LabelEntry {
  std::uint64_t label = 0;
  std::string_view id;  ///< a view of LabelMap::bytes
};

/// The label <-> id map of one HNSW segment, checked: labels and ids are each unique and
/// `label_to_id` and `id_to_label` agree.
struct LabelMap {
  PickleDialect dialect = PickleDialect::rust_id_map;
  std::optional<std::int64_t> dimensionality;      ///< None in the Rust dialect
  std::optional<std::int64_t> total_elements_added;
  std::optional<std::int64_t> max_seq_id;          ///< authoritative only for chromadb 0.4.0-0.5.5
  std::vector<LabelEntry> entries;                 ///< sorted by label
  std::vector<std::uint32_t> by_id;                ///< indexes into `entries`, in id order
  std::shared_ptr<const std::string> bytes;        ///< the pickle the ids are views of

  /// The index in `entries` of `label`, or npos. Constant time when the labels are dense (as
  /// Chroma assigns them), else a binary search.
  [[nodiscard]] std::size_t index_of(std::uint64_t label) const;
  /// The id of `label`, or nullopt.
  [[nodiscard]] std::optional<std::string_view> id_of(std::uint64_t label) const;
  [[nodiscard]] std::size_t size() const { return entries.size(); }
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};

/// Parses `index_metadata.pickle` bytes. Accepts exactly the opcodes the two dialects use
/// (PROTO, FRAME, MARK, STOP, EMPTY_DICT, EMPTY_TUPLE, SETITEM(S), the int, unicode and memo
/// opcodes, NONE, STACK_GLOBAL/NEWOBJ/BUILD for the PersistentData class) and only the two
/// top-level shapes; `label_to_id` must map non-negative ints to strings and agree with
/// `id_to_label`. Errors: corruption naming the offset and opcode or the key that is wrong.
/// Pure function; thread-safe. The result holds its own copy of the bytes.
[[nodiscard]] Result<LabelMap> parse_label_map(std::string_view bytes);
/// The same, keeping `bytes` itself as the storage the ids are views of (no copy).
[[nodiscard]] Result<LabelMap> parse_label_map(std::shared_ptr<const std::string> bytes);

/// Reads and parses a pickle file. Errors: not_found (no file), corruption (see above).
[[nodiscard]] Result<LabelMap> read_label_map(const std::string& path);

}  // namespace vstore::chroma
