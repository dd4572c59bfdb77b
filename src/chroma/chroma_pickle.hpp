// SPDX-License-Identifier: Apache-2.0
// A strict reader for the two `index_metadata.pickle` dialects Chroma writes (internal).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "vstore/result.hpp"

namespace vstore::chroma {

/// Which writer produced a label map.
enum class PickleDialect {
  python_persistent_data,  ///< chromadb 0.4-0.6: a PersistentData instance, protocol 5
  rust_id_map,             ///< chromadb 1.x: a plain dict from serde_pickle, protocol 3
};

/// The label <-> id map of one HNSW segment.
struct LabelMap {
  PickleDialect dialect = PickleDialect::rust_id_map;
  std::optional<std::int64_t> dimensionality;      ///< None in the Rust dialect
  std::optional<std::int64_t> total_elements_added;
  std::optional<std::int64_t> max_seq_id;          ///< authoritative only for chromadb 0.4.0-0.5.5
  std::unordered_map<std::uint64_t, std::string> label_to_id;
};

/// Parses `index_metadata.pickle` bytes. Accepts exactly the opcodes the two dialects use
/// (PROTO, FRAME, MARK, STOP, EMPTY_DICT, EMPTY_TUPLE, SETITEM(S), the int, unicode and memo
/// opcodes, NONE, STACK_GLOBAL/NEWOBJ/BUILD for the PersistentData class) and only the two
/// top-level shapes; `label_to_id` must map non-negative ints to strings and agree with
/// `id_to_label`. Errors: corruption naming the offset and opcode or the key that is wrong.
/// Pure function; thread-safe.
[[nodiscard]] Result<LabelMap> parse_label_map(std::string_view bytes);

/// Reads and parses a pickle file. Errors: not_found (no file), corruption (see above).
[[nodiscard]] Result<LabelMap> read_label_map(const std::string& path);

}  // namespace vstore::chroma
