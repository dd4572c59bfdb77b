// SPDX-License-Identifier: Apache-2.0
/// Filter: ChromaDB's `where` grammar parsed into a typed tree that every backend compiles.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/result.hpp"

namespace vstore {

/// A literal in a filter: string, integer, float or bool (the types Chroma allows).
using FilterValue = std::variant<std::string, std::int64_t, double, bool>;

enum class FilterOp { eq, ne, gt, gte, lt, lte, in, nin };

/// `key OP value` (one value) or `key $in/$nin [values...]` (one or more values of one type).
struct FilterComparison {
  std::string key;
  FilterOp op = FilterOp::eq;
  std::vector<FilterValue> values;
};

struct FilterNode;

/// `$and` / `$or` over child filters.
struct FilterLogical {
  enum class Kind { and_, or_ };
  Kind kind = Kind::and_;
  std::vector<FilterNode> children;
};

/// A node of the filter tree.
struct FilterNode {
  std::variant<FilterComparison, FilterLogical> node;
};

/// Parses a Chroma `where` object. Accepted beyond Chroma: a top-level object with several keys
/// is an implicit `$and` (as the pgvector code being replaced accepted flat multi-key dicts);
/// `$gt/$gte/$lt/$lte` also take a date string in any form read_date() (date.hpp) reads (the
/// tree keeps the text; a backend compares a timestamp column with the instant read_date()
/// gives); only meaningful on date keys, a backend rejects it elsewhere. Errors: invalid_argument naming the offending part, e.g.
/// `where.$and[1].topic: unknown operator "$foo"; expected one of $eq $ne $gt $gte $lt $lte $in $nin`.
[[nodiscard]] Result<FilterNode> parse_filter(const nlohmann::json& where);

/// Parses JSON text, then the filter. A JSON syntax error is invalid_argument too.
[[nodiscard]] Result<FilterNode> parse_filter(std::string_view where_json);

/// The filter as a Chroma `where` object (implicit `$and` made explicit), for the Chroma backend.
[[nodiscard]] nlohmann::json to_chroma_where(const FilterNode& filter);

/// Chroma's spelling of an operator, e.g. "$gte".
[[nodiscard]] std::string_view to_string(FilterOp op) noexcept;

}  // namespace vstore
