// SPDX-License-Identifier: Apache-2.0
// Filter compiler: FilterNode -> PostgreSQL boolean expression with $N placeholders.
//
// Design
// - Safety: nothing from the filter is pasted into SQL. Column names come from the catalog and
//   go through quote_sql_identifier; JSON keys and every value become text parameters that the
//   SQL casts explicitly ($3::text, $4::jsonb, $5::bigint[]). Keys were already restricted to
//   [A-Za-z0-9_.:-] by the parser, and the tree is re-validated through parse_filter first, so
//   trees built in code obey the same limits (depth, node count, list length, UTF-8).
// - Catalog column `c` (Chroma semantics: $ne/$nin also match a NULL column):
//     $eq  c = $n::T                 $ne  c IS DISTINCT FROM $n::T
//     $gt  c > $n::T  (text columns: c COLLATE "C" > $n::text, a bytewise ISO string compare)
//     $in  c = ANY($n::T[])          $nin (c IS NULL OR NOT (c = ANY($n::T[])))
//   T follows the column kind and the value type: text, boolean, bigint (integer column with
//   integers), float8 (with floats, or a real column), timestamptz (timestamp column with date
//   strings); epoch seconds on a timestamp column go through to_timestamp($n::float8).
// - JSON key k in column j, J = j -> $k::text (a missing key gives NULL):
//     $eq  (J) = $n::jsonb           $ne  (J) IS DISTINCT FROM $n::jsonb
//     $in  $n::jsonb @> jsonb_build_array(J)      $nin NOT (that), true for a missing key
//     $gt  numbers: CASE WHEN jsonb_typeof(J) = 'number' THEN (J)::numeric END > $n::numeric
//          date strings: CASE WHEN jsonb_typeof(J) = 'string' THEN j ->> $k::text END
//                        COLLATE "C" > $n::text
//   jsonb compares numbers numerically (1 = 1.0, as Chroma), and never equates a string, a
//   number and a boolean. The CASE guards mean no stored value can make a cast fail.
// - $and/$or become parenthesised AND/OR; one child stays as it is; `$and: []` is TRUE and
//   `$or: []` is FALSE. Every expression produced can be embedded next to AND/OR/NOT as is.
#include "pg/pg_filter.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

#include "vstore/date.hpp"

namespace vstore::pg {
namespace {

// Recursion guard before re-validation: a parsed filter has at most 32 where levels, each at
// most two tree levels deep (an implicit $and holding an explicit $and/$or), plus a leaf.
constexpr int k_max_tree_depth = 2 * 32 + 1;
constexpr int k_max_params = 65535;  // PostgreSQL's limit on placeholders in one statement
// to_timestamp() accepts epoch seconds from 4714-11-24 BC to 294276-12-31 AD (UTC).
constexpr double k_min_epoch = -210866803200.0;
constexpr double k_max_epoch = 9224318015999.0;

std::string quote_value(const FilterValue& value) {
  nlohmann::json json = std::visit([](const auto& held) { return nlohmann::json(held); }, value);
  std::string text = json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::size_t length = 80;
  if (text.size() <= length) return text;
  // Cut on a UTF-8 boundary so that the message stays valid UTF-8.
  while (length > 0 && (static_cast<unsigned char>(text[length]) & 0xC0u) == 0x80u) --length;
  text.resize(length);
  text += "...";
  return text;
}

std::string quote_key(const std::string& key) {
  return nlohmann::json(key).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string number_text(double number) {
  std::array<char, 64> buffer{};
  const auto [end, ec] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), number);
  if (ec != std::errc()) return std::to_string(number);
  return std::string(buffer.data(), end);
}

/// The parameter text of a scalar value (as PostgreSQL's input functions read it).
std::string value_text(const FilterValue& value) {
  switch (value.index()) {
    case 0: return std::get<std::string>(value);
    case 1: return std::to_string(std::get<std::int64_t>(value));
    case 2: return number_text(std::get<double>(value));
    default: return std::get<bool>(value) ? "true" : "false";
  }
}

std::string json_text(const FilterValue& value) {
  return std::visit([](const auto& held) { return nlohmann::json(held).dump(); }, value);
}

double as_double(const FilterValue& value) {
  if (const auto* integer = std::get_if<std::int64_t>(&value)) return static_cast<double>(*integer);
  return std::get<double>(value);
}

bool is_string(const FilterValue& value) { return std::holds_alternative<std::string>(value); }
bool is_bool(const FilterValue& value) { return std::holds_alternative<bool>(value); }
bool is_number(const FilterValue& value) {
  return std::holds_alternative<std::int64_t>(value) || std::holds_alternative<double>(value);
}

bool is_range(FilterOp op) {
  return op == FilterOp::gt || op == FilterOp::gte || op == FilterOp::lt || op == FilterOp::lte;
}

bool is_set(FilterOp op) { return op == FilterOp::in || op == FilterOp::nin; }

std::string_view sql_operator(FilterOp op) {
  switch (op) {
    case FilterOp::eq: return "=";
    case FilterOp::ne: return "IS DISTINCT FROM";
    case FilterOp::gt: return ">";
    case FilterOp::gte: return ">=";
    case FilterOp::lt: return "<";
    case FilterOp::lte: return "<=";
    case FilterOp::in:
    case FilterOp::nin: break;
  }
  return "=";
}

std::string_view kind_name(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::text: return "a text";
    case ColumnKind::boolean: return "a boolean";
    case ColumnKind::integer: return "an integer";
    case ColumnKind::real: return "a real";
    case ColumnKind::timestamp: return "a timestamp";
  }
  return "a text";
}

std::string_view kind_expects(ColumnKind kind) {
  switch (kind) {
    case ColumnKind::text: return "a string";
    case ColumnKind::boolean: return "a boolean";
    case ColumnKind::integer:
    case ColumnKind::real: return "a number";
    case ColumnKind::timestamp: return "a date string or epoch seconds";
  }
  return "a string";
}

/// The instant a date string names, as ISO 8601 UTC text, when read_date() (the reader of
/// ingest and the filter parser) reads it; the server gets this text, never the original, so
/// that it cannot read the date otherwise (PostgreSQL reads 01/03/1987 month first).
std::optional<std::string> date_param(const std::string& text) {
  auto date = read_date(text);
  if (!date) return std::nullopt;
  return iso8601_utc_micros(date->epoch_micros);
}

bool deeper_than(const FilterNode& node, int limit) {
  if (limit <= 0) return true;
  if (const auto* logical = std::get_if<FilterLogical>(&node.node)) {
    for (const FilterNode& child : logical->children) {
      if (deeper_than(child, limit - 1)) return true;
    }
  }
  return false;
}

std::unexpected<Error> invalid(std::string message) {
  return fail(ErrorCode::invalid_argument, std::move(message));
}

class Compiler {
 public:
  Compiler(const ColumnCatalog& catalog, int first_param)
      : m_catalog(catalog), m_next_param(first_param) {}

  Result<std::string> compile(const FilterNode& node);
  std::vector<std::string> take_params() { return std::move(m_params); }

 private:
  std::string add_param(std::string text);
  std::string column(const std::string& name) const;
  Result<std::string> compile_column(const FilterComparison& comparison, const std::string& name,
                                     ColumnKind kind);
  Result<std::string> compile_json(const FilterComparison& comparison);

  const ColumnCatalog& m_catalog;
  int m_next_param;
  std::vector<std::string> m_params;
};

std::string Compiler::add_param(std::string text) {
  m_params.push_back(std::move(text));
  return "$" + std::to_string(m_next_param++);
}

std::string Compiler::column(const std::string& name) const {
  if (m_catalog.table_alias.empty()) return quote_sql_identifier(name);
  return quote_sql_identifier(m_catalog.table_alias) + "." + quote_sql_identifier(name);
}

Result<std::string> Compiler::compile(const FilterNode& node) {
  if (const auto* logical = std::get_if<FilterLogical>(&node.node)) {
    const bool is_and = logical->kind == FilterLogical::Kind::and_;
    if (logical->children.empty()) return std::string(is_and ? "TRUE" : "FALSE");
    if (logical->children.size() == 1) return compile(logical->children.front());
    std::string sql = "(";
    for (std::size_t idx = 0; idx < logical->children.size(); ++idx) {
      if (idx > 0) sql += is_and ? " AND " : " OR ";
      VS_TRY_ASSIGN(auto child, compile(logical->children[idx]));
      sql += child;
    }
    sql += ")";
    return sql;
  }
  const auto& comparison = std::get<FilterComparison>(node.node);
  for (const FilterValue& value : comparison.values) {
    if (is_string(value) && std::get<std::string>(value).find('\0') != std::string::npos) {
      return invalid("filter key " + quote_key(comparison.key) +
                     ": value contains a NUL character, which PostgreSQL cannot store");
    }
  }
  if (const auto found = m_catalog.columns.find(comparison.key); found != m_catalog.columns.end()) {
    return compile_column(comparison, found->first, found->second);
  }
  return compile_json(comparison);
}

Result<std::string> Compiler::compile_column(const FilterComparison& comparison,
                                             const std::string& name, ColumnKind kind) {
  const auto mismatch = [&](const FilterValue& value) {
    return invalid("filter key " + quote_key(comparison.key) + " is " +
                   std::string(kind_name(kind)) + " column; expected " +
                   std::string(kind_expects(kind)) + ", not " + quote_value(value));
  };
  // A date string on a timestamp column travels as the instant read (date_param).
  const auto param_text = [&](const FilterValue& value) {
    if (kind == ColumnKind::timestamp && is_string(value)) {
      return date_param(std::get<std::string>(value)).value_or(std::string());
    }
    return value_text(value);
  };
  std::string cast;
  bool epoch = false;
  bool any_double = false;
  for (const FilterValue& value : comparison.values) {
    bool fits = false;
    switch (kind) {
      case ColumnKind::text: fits = is_string(value); break;
      case ColumnKind::boolean: fits = is_bool(value); break;
      case ColumnKind::integer:
      case ColumnKind::real: fits = is_number(value); break;
      case ColumnKind::timestamp:
        fits = is_number(value) ||
               (is_string(value) && date_param(std::get<std::string>(value)).has_value());
        break;
    }
    if (!fits) return mismatch(value);
    any_double = any_double || std::holds_alternative<double>(value);
    if (kind == ColumnKind::timestamp && is_number(value)) {
      const double seconds = as_double(value);
      if (seconds < k_min_epoch || seconds > k_max_epoch) {
        return invalid("filter key " + quote_key(comparison.key) +
                       " is a timestamp column; epoch seconds " + quote_value(value) +
                       " are outside PostgreSQL's timestamp range");
      }
    }
  }
  switch (kind) {
    case ColumnKind::text: cast = "text"; break;
    case ColumnKind::boolean: cast = "boolean"; break;
    case ColumnKind::integer: cast = any_double ? "float8" : "bigint"; break;
    case ColumnKind::real: cast = "float8"; break;
    case ColumnKind::timestamp:
      epoch = is_number(comparison.values.front());
      cast = epoch ? "float8" : "timestamptz";
      for (const FilterValue& value : comparison.values) {
        if (is_number(value) != epoch) return mismatch(value);
      }
      break;
  }

  const std::string col = column(name);
  if (is_set(comparison.op)) {
    std::vector<std::string> texts;
    texts.reserve(comparison.values.size());
    for (const FilterValue& value : comparison.values) texts.push_back(param_text(value));
    const std::string param = add_param(sql_array_literal(texts));
    const std::string array =
        epoch ? "ARRAY(SELECT to_timestamp(vs_x) FROM unnest(" + param +
                    "::float8[]) AS vs_u(vs_x))"
              : param + "::" + cast + "[]";
    const std::string any = col + " = ANY(" + array + ")";
    if (comparison.op == FilterOp::in) return any;
    return "(" + col + " IS NULL OR NOT (" + any + "))";
  }
  const std::string param = add_param(param_text(comparison.values.front()));
  const std::string rhs = epoch ? "to_timestamp(" + param + "::float8)" : param + "::" + cast;
  std::string lhs = col;
  if (kind == ColumnKind::text && is_range(comparison.op)) lhs += " COLLATE \"C\"";
  return lhs + " " + std::string(sql_operator(comparison.op)) + " " + rhs;
}

Result<std::string> Compiler::compile_json(const FilterComparison& comparison) {
  const std::string json_col = column(m_catalog.json_column);
  const std::string key_param = add_param(comparison.key) + "::text";
  const std::string element = json_col + " -> " + key_param;
  switch (comparison.op) {
    case FilterOp::eq:
    case FilterOp::ne:
      return "(" + element + ") " + std::string(sql_operator(comparison.op)) + " " +
             add_param(json_text(comparison.values.front())) + "::jsonb";
    case FilterOp::in:
    case FilterOp::nin: {
      nlohmann::json list = nlohmann::json::array();
      for (const FilterValue& value : comparison.values) {
        list.push_back(std::visit([](const auto& held) { return nlohmann::json(held); }, value));
      }
      const std::string contains =
          add_param(list.dump()) + "::jsonb @> jsonb_build_array(" + element + ")";
      if (comparison.op == FilterOp::in) return contains;
      return "NOT (" + contains + ")";
    }
    case FilterOp::gt:
    case FilterOp::gte:
    case FilterOp::lt:
    case FilterOp::lte: break;
  }
  const FilterValue& value = comparison.values.front();
  const std::string op(sql_operator(comparison.op));
  if (is_number(value)) {
    return "CASE WHEN jsonb_typeof(" + element + ") = 'number' THEN (" + element +
           ")::numeric END " + op + " " + add_param(value_text(value)) + "::numeric";
  }
  if (is_string(value)) {
    return "CASE WHEN jsonb_typeof(" + element + ") = 'string' THEN " + json_col + " ->> " +
           key_param + " END COLLATE \"C\" " + op + " " + add_param(value_text(value)) + "::text";
  }
  return invalid("filter key " + quote_key(comparison.key) + ": " +
                 std::string(to_string(comparison.op)) +
                 " expects a number or an ISO 8601 date string, not " + quote_value(value));
}

}  // namespace

std::string quote_sql_identifier(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out += '"';
  for (const char ch : name) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
  return out;
}

std::string sql_array_literal(const std::vector<std::string>& elements) {
  std::string out = "{";
  for (std::size_t idx = 0; idx < elements.size(); ++idx) {
    if (idx > 0) out += ',';
    out += '"';
    for (const char ch : elements[idx]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  out += '}';
  return out;
}

Result<SqlFilter> compile_filter(const FilterNode& filter, const ColumnCatalog& catalog,
                                 int first_param) {
  if (first_param < 1 || first_param > k_max_params) {
    return invalid("first placeholder number must be 1 to " + std::to_string(k_max_params) +
                   ", not " + std::to_string(first_param));
  }
  try {
    if (deeper_than(filter, k_max_tree_depth)) {
      return invalid("where: filter is nested deeper than 32 levels");
    }
    // Trees built in code get the parser's checks: shapes, limits, list types, dates, UTF-8.
    VS_TRY(parse_filter(to_chroma_where(filter)));
    Compiler compiler(catalog, first_param);
    VS_TRY_ASSIGN(auto sql, compiler.compile(filter));
    SqlFilter out{std::move(sql), compiler.take_params()};
    if (out.params.size() > static_cast<std::size_t>(k_max_params - first_param + 1)) {
      return invalid("filter needs placeholders up to $" +
                     std::to_string(static_cast<std::size_t>(first_param) + out.params.size() - 1) +
                     "; PostgreSQL allows at most $" + std::to_string(k_max_params));
    }
    return out;
  } catch (const std::exception& e) {
    return fail(ErrorCode::internal,
                std::string("unexpected error while compiling a filter: ") + e.what());
  }
}

}  // namespace vstore::pg
