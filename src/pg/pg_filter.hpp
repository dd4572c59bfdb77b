// SPDX-License-Identifier: Apache-2.0
// Filter compiler: turns a FilterNode into a parameterised PostgreSQL boolean expression.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "vstore/filter.hpp"
#include "vstore/result.hpp"

namespace vstore::pg {

/// The SQL type of a catalog column, which decides the casts and the values it accepts.
enum class ColumnKind {
  text,       ///< strings; $gt.. (ISO date strings only) compare bytewise (COLLATE "C")
  boolean,    ///< booleans
  integer,    ///< integers (compared as bigint) or floats (compared as float8)
  real,       ///< integers or floats, compared as float8
  timestamp,  ///< timestamptz: ISO 8601 date strings or epoch seconds (to_timestamp)
};

/// Which filter keys are real columns; every other key is read from a JSONB column.
struct ColumnCatalog {
  /// Filter key == column name, e.g. "topic" -> text, "publication_date" -> timestamp.
  /// Default: empty (every key is a JSON key).
  std::map<std::string, ColumnKind, std::less<>> columns;
  /// The JSONB column that holds every key not in `columns`. Default: "vector_metadata".
  std::string json_column = "vector_metadata";
  /// Optional table alias that qualifies every column ("a"."topic"). Default: none.
  std::string table_alias;
};

/// A boolean SQL expression and the text values of its placeholders.
struct SqlFilter {
  /// Safe to embed next to AND / OR / NOT without extra parentheses. Refers to its values only
  /// as `$N` placeholders with explicit casts; depends on the filter's shape and on which keys
  /// are catalog columns, never on values or JSON key names (so prepared statements can be reused).
  std::string sql;
  /// params[i] is the text of placeholder $(first_param + i); none is NULL.
  std::vector<std::string> params;
};

/// Compiles `filter` against `catalog`, numbering placeholders from `$first_param`.
/// Semantics follow Chroma 1.x: $ne/$nin match rows that lack the key (NULL column or missing
/// JSON key); ints and floats compare numerically; `$and: []` is TRUE, `$or: []` is FALSE.
/// No text from the filter is pasted into the SQL: column names come from the catalog and are
/// quoted, JSON keys and all values are parameters.
/// Errors (invalid_argument): a filter that parse_filter would reject (trees built in code are
/// re-validated, with the same limits), a value whose type does not fit its column (message
/// names key, value and column type), a timestamp outside PostgreSQL's range, a string with a
/// NUL character, first_param < 1 or more than 65535 placeholders in total.
/// Pure function; thread-safe.
[[nodiscard]] Result<SqlFilter> compile_filter(const FilterNode& filter,
                                               const ColumnCatalog& catalog, int first_param);

/// `name` as a double-quoted SQL identifier with embedded `"` doubled: `my"col` -> `"my""col"`.
[[nodiscard]] std::string quote_sql_identifier(std::string_view name);

/// A PostgreSQL array literal whose elements are all double-quoted, with `"` and `\` escaped:
/// {"a","b\"c"}. Safe for any element text (commas, braces, spaces, the word NULL); pass it as a
/// parameter cast to the element type's array, e.g. `$1::text[]`.
[[nodiscard]] std::string sql_array_literal(const std::vector<std::string>& elements);

}  // namespace vstore::pg
