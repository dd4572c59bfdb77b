// SPDX-License-Identifier: Apache-2.0
// Filter: parses Chroma's `where` grammar into a FilterNode tree and writes it back as Chroma JSON.
//
// Design
// - One recursive descent over the JSON (parse_where -> parse_entry -> parse_operator), carrying
//   the path of the part being read ("where.$and[1].topic.$gt") so that every error names it.
// - Grammar: Chroma 1.x `where_parsing.rs` (see docs/reference/chroma.md 2.1), with two documented
//   extensions: an object with several keys is an implicit $and of its entries (children in key
//   order, since nlohmann::json objects are sorted), and $gt/$gte/$lt/$lte also take a date
//   string that read_date() (date.hpp) reads, as ingest reads publication dates. `{"$and": []}` matches every record and `{"$or": []}` none (Chroma's meaning).
// - Limits against hostile input, each an invalid_argument error: nesting depth <= 32 filter
//   objects, <= 1000 nodes in total (every where object and every comparison counts), <= 10000
//   elements in one $in/$nin list. JSON text is also refused past a JSON nesting depth that no
//   valid filter reaches, so hostile text never builds a deep tree.
// - Strings must be valid UTF-8 so that to_chroma_where's output can always be serialised.
// - No exception escapes: nlohmann's parse errors become invalid_argument, anything else internal.
#include "vstore/filter.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <string>
#include <utility>

#include "vstore/date.hpp"
#include "vstore/utf8.hpp"

namespace vstore {
namespace {

constexpr int k_max_depth = 32;
constexpr std::size_t k_max_nodes = 1000;
constexpr std::size_t k_max_in_elements = 10000;
constexpr std::size_t k_max_key_length = 128;
// A filter at depth 32 is at most 2 JSON levels per filter level plus an operator object and
// its $in array; anything deeper than this cannot be a valid filter.
constexpr int k_max_json_depth = 2 * k_max_depth + 8;
// Values quoted in error messages are cut to this many characters.
constexpr std::size_t k_max_quoted_length = 80;

constexpr std::string_view k_operator_list = "$eq $ne $gt $gte $lt $lte $in $nin";

/// Cuts `text` to at most `length` bytes (plus "...") without splitting a UTF-8 sequence.
void cut(std::string& text, std::size_t length) {
  if (text.size() <= length) return;
  while (length > 0 && (static_cast<unsigned char>(text[length]) & 0xC0u) == 0x80u) --length;
  text.resize(length);
  text += "...";
}

/// `value` as compact JSON for an error message (always valid UTF-8), cut to a readable length.
std::string quote(const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  cut(text, k_max_quoted_length);
  return text;
}

std::string quote_text(std::string_view text) { return quote(nlohmann::json(std::string(text))); }

std::unexpected<Error> invalid(const std::string& path, std::string_view message) {
  std::string text = path;
  text += ": ";
  text += message;
  return fail(ErrorCode::invalid_argument, std::move(text));
}

bool is_valid_utf8(std::string_view text) { return !first_invalid_utf8(text).has_value(); }

bool is_key_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '_' || ch == '.' || ch == ':' || ch == '-';
}

bool is_valid_key(std::string_view key) {
  if (key.empty() || key.size() > k_max_key_length) return false;
  for (char ch : key) {
    if (!is_key_char(ch)) return false;
  }
  return true;
}

/// Parser state shared by the whole descent.
class Parser {
 public:
  Result<FilterNode> parse_where(const nlohmann::json& where, const std::string& path, int depth);

 private:
  Result<void> count_node(const std::string& path);
  Result<FilterNode> parse_entry(const std::string& key, const nlohmann::json& value,
                                 const std::string& path, int depth);
  Result<FilterNode> parse_logical(FilterLogical::Kind kind, const nlohmann::json& value,
                                   const std::string& path, int depth);
  Result<FilterValue> parse_scalar(const nlohmann::json& value, const std::string& path,
                                   std::string_view expected);
  Result<FilterNode> parse_operator(const std::string& key, const nlohmann::json& ops,
                                    const std::string& path);
  Result<std::vector<FilterValue>> parse_list(const nlohmann::json& list, const std::string& path);

  std::size_t m_nodes = 0;
};

Result<void> Parser::count_node(const std::string& path) {
  if (++m_nodes > k_max_nodes) {
    return invalid(path, "filter has more than " + std::to_string(k_max_nodes) + " nodes");
  }
  return {};
}

Result<FilterNode> Parser::parse_where(const nlohmann::json& where, const std::string& path,
                                       int depth) {
  if (depth > k_max_depth) {
    return invalid(path, "filter is nested deeper than " + std::to_string(k_max_depth) + " levels");
  }
  if (!where.is_object()) return invalid(path, "expected an object, not " + quote(where));
  if (where.empty()) return invalid(path, "expected at least one key, not an empty object");
  if (where.size() == 1) {
    const auto entry = where.begin();
    return parse_entry(entry.key(), entry.value(), path, depth);
  }
  VS_TRY(count_node(path));
  FilterLogical implicit_and;
  implicit_and.kind = FilterLogical::Kind::and_;
  implicit_and.children.reserve(std::min(where.size(), k_max_nodes));
  for (const auto& [key, value] : where.items()) {
    VS_TRY_ASSIGN(auto child, parse_entry(key, value, path, depth));
    implicit_and.children.push_back(std::move(child));
  }
  return FilterNode{std::move(implicit_and)};
}

Result<FilterNode> Parser::parse_entry(const std::string& key, const nlohmann::json& value,
                                       const std::string& path, int depth) {
  if (key == "$and") return parse_logical(FilterLogical::Kind::and_, value, path + ".$and", depth);
  if (key == "$or") return parse_logical(FilterLogical::Kind::or_, value, path + ".$or", depth);
  if (!key.empty() && key[0] == '$') {
    return invalid(path, "unknown operator " + quote_text(key) +
                             "; expected $and, $or or a metadata key");
  }
  if (!is_valid_key(key)) {
    return invalid(path, "invalid key " + quote_text(key) + "; a key is 1 to " +
                             std::to_string(k_max_key_length) +
                             " characters of A-Z a-z 0-9 _ . : -");
  }
  const std::string key_path = path + "." + key;
  VS_TRY(count_node(key_path));
  if (value.is_object()) return parse_operator(key, value, key_path);
  FilterComparison comparison;
  comparison.key = key;
  comparison.op = FilterOp::eq;
  VS_TRY_ASSIGN(auto literal,
                parse_scalar(value, key_path, "a string, number, boolean or an operator object"));
  comparison.values.push_back(std::move(literal));
  return FilterNode{std::move(comparison)};
}

Result<FilterNode> Parser::parse_logical(FilterLogical::Kind kind, const nlohmann::json& value,
                                         const std::string& path, int depth) {
  VS_TRY(count_node(path));
  if (!value.is_array()) return invalid(path, "expected an array of filters, not " + quote(value));
  FilterLogical logical;
  logical.kind = kind;
  logical.children.reserve(std::min(value.size(), k_max_nodes));
  for (std::size_t idx = 0; idx < value.size(); ++idx) {
    VS_TRY_ASSIGN(auto child,
                  parse_where(value[idx], path + "[" + std::to_string(idx) + "]", depth + 1));
    logical.children.push_back(std::move(child));
  }
  return FilterNode{std::move(logical)};
}

Result<FilterValue> Parser::parse_scalar(const nlohmann::json& value, const std::string& path,
                                         std::string_view expected) {
  switch (value.type()) {
    case nlohmann::json::value_t::string: {
      const auto& text = value.get_ref<const std::string&>();
      if (!is_valid_utf8(text)) return invalid(path, "string is not valid UTF-8");
      return FilterValue{text};
    }
    case nlohmann::json::value_t::boolean:
      return FilterValue{value.get<bool>()};
    case nlohmann::json::value_t::number_integer:
      return FilterValue{value.get<std::int64_t>()};
    case nlohmann::json::value_t::number_unsigned: {
      const auto number = value.get<std::uint64_t>();
      if (number > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        return invalid(path, "integer " + std::to_string(number) +
                                 " is out of range; expected a signed 64-bit integer");
      }
      return FilterValue{static_cast<std::int64_t>(number)};
    }
    case nlohmann::json::value_t::number_float: {
      const double number = value.get<double>();
      if (!std::isfinite(number)) {
        return invalid(path, "expected a finite number, not " +
                                 std::string(std::isnan(number) ? "NaN" : "infinity"));
      }
      return FilterValue{number};
    }
    case nlohmann::json::value_t::null:
      return invalid(path, "null is not allowed; expected " + std::string(expected));
    default:
      return invalid(path, "expected " + std::string(expected) + ", not " + quote(value));
  }
}

std::string_view type_name(const FilterValue& value) {
  switch (value.index()) {
    case 0: return "a string";
    case 1: return "an integer";
    case 2: return "a float";
    default: return "a boolean";
  }
}

Result<std::vector<FilterValue>> Parser::parse_list(const nlohmann::json& list,
                                                    const std::string& path) {
  if (!list.is_array()) {
    return invalid(path, "expected a non-empty array of strings, numbers or booleans, not " +
                             quote(list));
  }
  if (list.empty()) return invalid(path, "expected a non-empty array, not []");
  if (list.size() > k_max_in_elements) {
    return invalid(path, "list has " + std::to_string(list.size()) + " elements; at most " +
                             std::to_string(k_max_in_elements) + " are allowed");
  }
  std::vector<FilterValue> values;
  values.reserve(list.size());
  for (std::size_t idx = 0; idx < list.size(); ++idx) {
    const std::string element_path = path + "[" + std::to_string(idx) + "]";
    VS_TRY_ASSIGN(auto value,
                  parse_scalar(list[idx], element_path, "a string, number or boolean"));
    if (!values.empty() && value.index() != values.front().index()) {
      // Chroma reads the list with the type of its first element; a float list may hold
      // integers (they become floats), every other mix is an error.
      if (std::holds_alternative<double>(values.front()) &&
          std::holds_alternative<std::int64_t>(value)) {
        value = static_cast<double>(std::get<std::int64_t>(value));
      } else {
        return invalid(element_path, "expected " + std::string(type_name(values.front())) +
                                         " like the first element, not " + quote(list[idx]));
      }
    }
    values.push_back(std::move(value));
  }
  return values;
}

Result<FilterNode> Parser::parse_operator(const std::string& key, const nlohmann::json& ops,
                                          const std::string& path) {
  if (ops.size() != 1) {
    if (ops.empty()) return invalid(path, "expected exactly one operator, found none");
    std::string names;
    for (const auto& [name, operand] : ops.items()) {
      names += names.empty() ? "" : ", ";
      names += quote_text(name);
      if (names.size() > k_max_quoted_length) {
        names += ", ...";
        break;
      }
    }
    return invalid(path, "expected exactly one operator, found " + std::to_string(ops.size()) +
                             " (" + names + ")");
  }
  const auto entry = ops.begin();
  const std::string& name = entry.key();
  const nlohmann::json& operand = entry.value();
  static constexpr std::array<FilterOp, 8> k_ops = {FilterOp::eq, FilterOp::ne, FilterOp::gt,
                                                    FilterOp::gte, FilterOp::lt, FilterOp::lte,
                                                    FilterOp::in, FilterOp::nin};
  const FilterOp* found = nullptr;
  for (const FilterOp& candidate : k_ops) {
    if (to_string(candidate) == name) found = &candidate;
  }
  if (found == nullptr) {
    return invalid(path, "unknown operator " + quote_text(name) + "; expected one of " +
                             std::string(k_operator_list));
  }
  const std::string op_path = path + "." + name;
  FilterComparison comparison;
  comparison.key = key;
  comparison.op = *found;
  switch (comparison.op) {
    case FilterOp::eq:
    case FilterOp::ne: {
      VS_TRY_ASSIGN(auto value, parse_scalar(operand, op_path, "a string, number or boolean"));
      comparison.values.push_back(std::move(value));
      break;
    }
    case FilterOp::gt:
    case FilterOp::gte:
    case FilterOp::lt:
    case FilterOp::lte: {
      const std::string expected = "a number or a date string";
      if (operand.is_null()) return invalid(op_path, "null is not allowed; expected " + expected);
      if (!operand.is_string() && !operand.is_number()) {
        return invalid(op_path, "expected " + expected + ", not " + quote(operand));
      }
      VS_TRY_ASSIGN(auto value, parse_scalar(operand, op_path, expected));
      if (operand.is_string()) {
        // A date as ingest reads publication dates (read_date). The tree keeps the text: a
        // backend compares a timestamp with the instant read, a text value with the text.
        auto date = read_date(operand.get_ref<const std::string&>());
        if (!date) return invalid(op_path, date.error().message());
      }
      comparison.values.push_back(std::move(value));
      break;
    }
    case FilterOp::in:
    case FilterOp::nin: {
      VS_TRY_ASSIGN(comparison.values, parse_list(operand, op_path));
      break;
    }
  }
  return FilterNode{std::move(comparison)};
}

/// The reason part of a nlohmann exception ("[json.exception.parse_error.101] parse error at
/// line 1, column 2: <reason>"), cut to a readable length.
/// It quotes raw input, so bytes that are not printable UTF-8 become '?'.
std::string json_reason(const nlohmann::json::exception& e) {
  std::string_view reason = e.what();
  if (const auto colon = reason.find(": "); colon != std::string_view::npos) {
    reason.remove_prefix(colon + 2);
  } else if (const auto bracket = reason.find("] "); bracket != std::string_view::npos) {
    reason.remove_prefix(bracket + 2);
  }
  std::string printable;
  for (std::size_t pos = 0; pos < reason.size();) {
    const auto lead = static_cast<unsigned char>(reason[pos]);
    std::size_t length = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    length = std::min(length, reason.size() - pos);
    if (lead < 0x20 || lead == 0x7F || !is_valid_utf8(reason.substr(pos, length))) {
      printable += '?';
      ++pos;
    } else {
      printable += reason.substr(pos, length);
      pos += length;
    }
  }
  cut(printable, 2 * k_max_quoted_length);
  return printable;
}

std::unexpected<Error> unexpected(const std::exception& e) {
  return fail(ErrorCode::internal,
              std::string("where: unexpected error while parsing: ") + e.what());
}

nlohmann::json value_to_json(const FilterValue& value) {
  return std::visit([](const auto& held) { return nlohmann::json(held); }, value);
}

}  // namespace

std::string_view to_string(FilterOp op) noexcept {
  switch (op) {
    case FilterOp::eq: return "$eq";
    case FilterOp::ne: return "$ne";
    case FilterOp::gt: return "$gt";
    case FilterOp::gte: return "$gte";
    case FilterOp::lt: return "$lt";
    case FilterOp::lte: return "$lte";
    case FilterOp::in: return "$in";
    case FilterOp::nin: return "$nin";
  }
  return "$eq";
}

Result<FilterNode> parse_filter(const nlohmann::json& where) {
  try {
    Parser parser;
    return parser.parse_where(where, "where", 1);
  } catch (const std::exception& e) {
    return unexpected(e);
  }
}

Result<FilterNode> parse_filter(std::string_view where_json) {
  try {
    bool too_deep = false;
    const nlohmann::json::parser_callback_t limit_depth =
        [&too_deep](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
          if (depth > k_max_json_depth) {
            too_deep = true;
            return false;
          }
          return true;
        };
    nlohmann::json where = nlohmann::json::parse(where_json.begin(), where_json.end(), limit_depth);
    if (too_deep) {
      return invalid("where", "JSON is nested deeper than " + std::to_string(k_max_json_depth) +
                                  " levels");
    }
    return parse_filter(where);
  } catch (const nlohmann::json::parse_error& e) {
    return invalid("where",
                   "invalid JSON at byte " + std::to_string(e.byte) + ": " + json_reason(e));
  } catch (const nlohmann::json::exception& e) {
    // e.g. out_of_range.406 for a number such as 1e400 that overflows a double.
    return invalid("where", "invalid JSON: " + json_reason(e));
  } catch (const std::exception& e) {
    return unexpected(e);
  }
}

nlohmann::json to_chroma_where(const FilterNode& filter) {
  if (const auto* logical = std::get_if<FilterLogical>(&filter.node)) {
    nlohmann::json children = nlohmann::json::array();
    for (const FilterNode& child : logical->children) children.push_back(to_chroma_where(child));
    const char* name = logical->kind == FilterLogical::Kind::and_ ? "$and" : "$or";
    return nlohmann::json{{name, std::move(children)}};
  }
  const auto& comparison = std::get<FilterComparison>(filter.node);
  nlohmann::json operand;
  if (comparison.op == FilterOp::in || comparison.op == FilterOp::nin) {
    operand = nlohmann::json::array();
    for (const FilterValue& value : comparison.values) operand.push_back(value_to_json(value));
  } else if (comparison.values.size() == 1) {
    operand = value_to_json(comparison.values.front());
  } else {
    // Not produced by parse_filter: keep the shape visible so that parsing the result fails.
    operand = nlohmann::json::array();
    for (const FilterValue& value : comparison.values) operand.push_back(value_to_json(value));
    if (comparison.values.empty()) operand = nullptr;
  }
  nlohmann::json op_object = nlohmann::json::object();
  op_object[std::string(to_string(comparison.op))] = std::move(operand);
  nlohmann::json where = nlohmann::json::object();
  where[comparison.key] = std::move(op_object);
  return where;
}

}  // namespace vstore
