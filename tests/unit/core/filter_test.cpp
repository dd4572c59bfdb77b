// SPDX-License-Identifier: Apache-2.0
// Unit tests of parse_filter and to_chroma_where: Chroma's `where` grammar, our extensions, limits.
#include "vstore/filter.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace vstore {
namespace {

using nlohmann::json;

/// Parses `text`, failing the test (with the error) if it is rejected.
FilterNode parse_ok(std::string_view text) {
  auto parsed = parse_filter(text);
  EXPECT_TRUE(parsed.has_value()) << text << " -> " << parsed.error().message();
  if (!parsed) return FilterNode{FilterLogical{}};
  return std::move(*parsed);
}

/// Parses `text`, expecting an invalid_argument error; returns its message.
std::string parse_error(std::string_view text) {
  auto parsed = parse_filter(text);
  EXPECT_FALSE(parsed.has_value()) << text << " was accepted";
  if (parsed) return {};
  EXPECT_EQ(parsed.error().code(), ErrorCode::invalid_argument) << parsed.error().message();
  return parsed.error().message();
}

std::string parse_error_json(const json& where) { return parse_error(std::string_view(where.dump())); }

/// The comparison at `node` (a copy, so it may be taken from a temporary).
FilterComparison as_comparison(const FilterNode& node) {
  const auto* comparison = std::get_if<FilterComparison>(&node.node);
  EXPECT_NE(comparison, nullptr) << "expected a comparison";
  return comparison ? *comparison : FilterComparison{};
}

/// The $and/$or at `node` (a copy, so it may be taken from a temporary).
FilterLogical as_logical(const FilterNode& node) {
  const auto* logical = std::get_if<FilterLogical>(&node.node);
  EXPECT_NE(logical, nullptr) << "expected $and/$or";
  return logical ? *logical : FilterLogical{};
}

bool same_tree(const FilterNode& left, const FilterNode& right) {
  if (left.node.index() != right.node.index()) return false;
  if (const auto* lhs = std::get_if<FilterComparison>(&left.node)) {
    const auto& rhs = std::get<FilterComparison>(right.node);
    return lhs->key == rhs.key && lhs->op == rhs.op && lhs->values == rhs.values;
  }
  const auto& lhs = std::get<FilterLogical>(left.node);
  const auto& rhs = std::get<FilterLogical>(right.node);
  if (lhs.kind != rhs.kind || lhs.children.size() != rhs.children.size()) return false;
  for (std::size_t idx = 0; idx < lhs.children.size(); ++idx) {
    if (!same_tree(lhs.children[idx], rhs.children[idx])) return false;
  }
  return true;
}

json nested_and(int levels) {
  json where = {{"k", 1}};
  for (int level = 1; level < levels; ++level) where = {{"$and", json::array({where})}};
  return where;
}

// ---- valid filters ------------------------------------------------------------------------

TEST(FilterParse, ReadsAPlainLiteralAsImplicitEq) {
  const auto node = parse_ok(R"({"topic": "AI"})");
  const auto& comparison = as_comparison(node);
  EXPECT_EQ(comparison.key, "topic");
  EXPECT_EQ(comparison.op, FilterOp::eq);
  EXPECT_EQ(comparison.values, std::vector<FilterValue>{FilterValue{std::string("AI")}});
}

TEST(FilterParse, ReadsEveryLiteralTypeWithImplicitEq) {
  EXPECT_EQ(as_comparison(parse_ok(R"({"s": "x"})")).values.front(), FilterValue{std::string("x")});
  EXPECT_EQ(as_comparison(parse_ok(R"({"i": 42})")).values.front(), FilterValue{std::int64_t{42}});
  EXPECT_EQ(as_comparison(parse_ok(R"({"i": -7})")).values.front(), FilterValue{std::int64_t{-7}});
  EXPECT_EQ(as_comparison(parse_ok(R"({"f": 1.5})")).values.front(), FilterValue{1.5});
  EXPECT_EQ(as_comparison(parse_ok(R"({"b": true})")).values.front(), FilterValue{true});
  EXPECT_EQ(as_comparison(parse_ok(R"({"b": false})")).values.front(), FilterValue{false});
}

TEST(FilterParse, ReadsEqAndNeWithEveryLiteralType) {
  for (const char* op : {"$eq", "$ne"}) {
    for (const char* literal : {R"("x")", "3", "2.5", "true", R"("")"}) {
      const std::string text = std::string(R"({"k": {")") + op + R"(": )" + literal + "}}";
      const auto& comparison = as_comparison(parse_ok(text));
      EXPECT_EQ(to_string(comparison.op), op);
      EXPECT_EQ(comparison.values.size(), 1u);
      EXPECT_EQ(to_chroma_where(FilterNode{comparison})["k"][op], json::parse(literal));
    }
  }
}

TEST(FilterParse, ReadsRangeOperatorsWithIntegersAndFloats) {
  const std::vector<std::pair<std::string, FilterOp>> ops = {
      {"$gt", FilterOp::gt}, {"$gte", FilterOp::gte}, {"$lt", FilterOp::lt}, {"$lte", FilterOp::lte}};
  for (const auto& [name, op] : ops) {
    const auto& int_cmp = as_comparison(parse_ok(R"({"n": {")" + name + R"(": 1700000000}})"));
    EXPECT_EQ(int_cmp.op, op);
    EXPECT_EQ(int_cmp.values.front(), FilterValue{std::int64_t{1700000000}});
    const auto& float_cmp = as_comparison(parse_ok(R"({"n": {")" + name + R"(": 45.5}})"));
    EXPECT_EQ(float_cmp.values.front(), FilterValue{45.5});
  }
}

// Dates in every form read_date() reads; the tree keeps the text.
TEST(FilterParse, ReadsRangeOperatorsWithDateStrings) {
  for (const char* date :
       {"2024-01-31", "2024-02-29", "2000-02-29", "0001-01-01", "9999-12-31", "2024-05-01T10:30",
        "2024-05-01 10:30", "2024-05-01T10:30:59", "2024-05-01T10:30:00.5",
        "2024-05-01T10:30:00.123456789", "2024-05-01T10:30:00Z", "2024-05-01T10:30Z",
        "2024-05-01T10:30:00+02:00", "2024-05-01T10:30:00-0530", "2024-05-01 23:59:59+14",
        "2024-05-01T00:00:00.000+00:00", "2024-01-01T10:00:00 UTC", " 2024-01-01 ", "2024/01/01",
        "1987-03-01 12:00:00 PST", "01/03/1987", "March 1, 1987", "Sun, 01 Mar 1987 12:00:00 GMT"}) {
    const auto& comparison =
        as_comparison(parse_ok(json{{"publication_date", {{"$gte", date}}}}.dump()));
    EXPECT_EQ(comparison.values.front(), FilterValue{std::string(date)});
  }
}

TEST(FilterParse, RejectsRangeOperandsThatAreNotDates) {
  for (const char* bad :
       {"abc", "", "2024", "2024-01", "2024-1-01", "2024-01-1", "24-01-01",
        "2024-13-01", "2024-00-10", "2024-01-00", "2024-01-32", "2024-02-30", "2023-02-29",
        "1900-02-29", "0000-01-01", "2024-01-01T", "2024-01-01T10", "2024-01-01T24:00",
        "2024-01-01T10:60", "2024-01-01T10:00:60", "2024-01-01T10:00:00.", "2024-01-01T10:00:00.1234567890",
        "2024-01-01Z", "2024-01-01T10:00:00+16:00", "2024-01-01T10:00:00+05:60", "2024-01-01T10:00:00+5",
        "2024-01-01t10:00", "2024-01-01T10:00:00ZZ", "2024-01-01T10:00:00+05:00x", "2024-01-01T1:00",
        "\uff12\uff10\uff12\uff14-01-01", "99999-01-01", "4713-01-01 BC"}) {
    const std::string message = parse_error_json(json{{"$and", {{{"a", 1}}, {{"d", {{"$lt", bad}}}}}}});
    EXPECT_EQ(message.rfind("where.$and[1].d.$lt: cannot read \"", 0), 0U) << bad << ": " << message;
    EXPECT_NE(message.find(" as a date: "), std::string::npos) << bad << ": " << message;
  }
}

TEST(FilterParse, NamesTheRangeOperandInTheBriefsExampleMessage) {
  EXPECT_EQ(parse_error(R"({"$and": [{"a": 1}, {"topic": {"$gt": "abc"}}]})")
                .rfind(R"(where.$and[1].topic.$gt: cannot read "abc" as a date: )", 0),
            0U);
}

TEST(FilterParse, RejectsBooleanAndNullRangeOperands) {
  EXPECT_EQ(parse_error(R"({"b": {"$gt": true}})"),
            "where.b.$gt: expected a number or a date string, not true");
  EXPECT_EQ(parse_error(R"({"b": {"$lte": null}})"),
            "where.b.$lte: null is not allowed; expected a number or a date string");
  EXPECT_EQ(parse_error(R"({"b": {"$gte": [1]}})"),
            "where.b.$gte: expected a number or a date string, not [1]");
  EXPECT_EQ(parse_error(R"({"b": {"$lt": {"$eq": 1}}})"),
            R"(where.b.$lt: expected a number or a date string, not {"$eq":1})");
}

TEST(FilterParse, ReadsInAndNinListsOfEachType) {
  for (const char* op : {"$in", "$nin"}) {
    const std::string prefix = std::string(R"({"k": {")") + op + R"(": )";
    EXPECT_EQ(as_comparison(parse_ok(prefix + R"(["a", "b"]}})")).values,
              (std::vector<FilterValue>{std::string("a"), std::string("b")}));
    EXPECT_EQ(as_comparison(parse_ok(prefix + "[1, 2, 3]}}")).values,
              (std::vector<FilterValue>{std::int64_t{1}, std::int64_t{2}, std::int64_t{3}}));
    EXPECT_EQ(as_comparison(parse_ok(prefix + "[1.5, 2.5]}}")).values,
              (std::vector<FilterValue>{1.5, 2.5}));
    EXPECT_EQ(as_comparison(parse_ok(prefix + "[true]}}")).values, (std::vector<FilterValue>{true}));
    EXPECT_EQ(to_string(as_comparison(parse_ok(prefix + "[true]}}")).op), op);
  }
}

TEST(FilterParse, TurnsIntegersIntoFloatsInAListThatStartsWithAFloat) {
  // Chroma reads a list with the type of its first element, and an integer reads as a float.
  EXPECT_EQ(as_comparison(parse_ok(R"({"k": {"$in": [1.5, 2]}})")).values,
            (std::vector<FilterValue>{1.5, 2.0}));
}

TEST(FilterParse, RejectsAFloatInAListThatStartsWithAnInteger) {
  EXPECT_EQ(parse_error(R"({"k": {"$in": [1, 2.5]}})"),
            "where.k.$in[1]: expected an integer like the first element, not 2.5");
}

TEST(FilterParse, RejectsMixedTypesInInListsNamingTheElement) {
  EXPECT_EQ(parse_error(R"({"i": {"$in": [1, "a"]}})"),
            R"(where.i.$in[1]: expected an integer like the first element, not "a")");
  EXPECT_EQ(parse_error(R"({"i": {"$nin": ["a", "b", true]}})"),
            "where.i.$nin[2]: expected a string like the first element, not true");
  EXPECT_EQ(parse_error(R"({"i": {"$in": [true, 0]}})"),
            "where.i.$in[1]: expected a boolean like the first element, not 0");
  EXPECT_EQ(parse_error(R"({"i": {"$in": [1.5, "x"]}})"),
            R"(where.i.$in[1]: expected a float like the first element, not "x")");
}

TEST(FilterParse, RejectsNullsArraysAndObjectsInsideInLists) {
  EXPECT_EQ(parse_error(R"({"i": {"$in": [1, null]}})"),
            "where.i.$in[1]: null is not allowed; expected a string, number or boolean");
  EXPECT_EQ(parse_error(R"({"i": {"$in": [[1]]}})"),
            "where.i.$in[0]: expected a string, number or boolean, not [1]");
  EXPECT_EQ(parse_error(R"({"i": {"$nin": [{"a": 1}]}})"),
            R"(where.i.$nin[0]: expected a string, number or boolean, not {"a":1})");
}

TEST(FilterParse, RejectsEmptyInLists) {
  EXPECT_EQ(parse_error(R"({"i": {"$in": []}})"), "where.i.$in: expected a non-empty array, not []");
  EXPECT_EQ(parse_error(R"({"i": {"$nin": []}})"), "where.i.$nin: expected a non-empty array, not []");
}

TEST(FilterParse, RejectsInOperandsThatAreNotArrays) {
  EXPECT_EQ(parse_error(R"({"i": {"$in": "a"}})"),
            R"(where.i.$in: expected a non-empty array of strings, numbers or booleans, not "a")");
  EXPECT_EQ(parse_error(R"({"i": {"$nin": null}})"),
            "where.i.$nin: expected a non-empty array of strings, numbers or booleans, not null");
}

TEST(FilterParse, AcceptsInListsOfUpTo10000Elements) {
  json list = json::array();
  for (int idx = 0; idx < 10000; ++idx) list.push_back(idx);
  EXPECT_EQ(as_comparison(parse_ok(json{{"k", {{"$in", list}}}}.dump())).values.size(), 10000u);
  list.push_back(10000);
  EXPECT_EQ(parse_error_json(json{{"k", {{"$nin", list}}}}),
            "where.k.$nin: list has 10001 elements; at most 10000 are allowed");
}

TEST(FilterParse, TreatsAnObjectWithSeveralKeysAsImplicitAnd) {
  const auto node = parse_ok(R"({"s": "cat0", "b": true})");
  const auto& logical = as_logical(node);
  EXPECT_EQ(logical.kind, FilterLogical::Kind::and_);
  ASSERT_EQ(logical.children.size(), 2u);
  // nlohmann::json keeps object keys sorted, so the children come in key order.
  EXPECT_EQ(as_comparison(logical.children[0]).key, "b");
  EXPECT_EQ(as_comparison(logical.children[1]).key, "s");
  EXPECT_EQ(as_comparison(logical.children[1]).values.front(), FilterValue{std::string("cat0")});
}

TEST(FilterParse, TreatsSeveralKeysInsideAnOrAsImplicitAnd) {
  const auto node = parse_ok(R"({"$or": [{"a": 1, "b": {"$gt": 2}}, {"c": "x"}]})");
  const auto& outer = as_logical(node);
  EXPECT_EQ(outer.kind, FilterLogical::Kind::or_);
  ASSERT_EQ(outer.children.size(), 2u);
  const auto& inner = as_logical(outer.children[0]);
  EXPECT_EQ(inner.kind, FilterLogical::Kind::and_);
  EXPECT_EQ(inner.children.size(), 2u);
  EXPECT_EQ(as_comparison(inner.children[1]).op, FilterOp::gt);
}

TEST(FilterParse, AcceptsAndOrBesideMetadataKeysAsImplicitAnd) {
  const auto node = parse_ok(R"({"$or": [{"a": 1}, {"a": 2}], "topic": "AI"})");
  const auto& logical = as_logical(node);
  EXPECT_EQ(logical.kind, FilterLogical::Kind::and_);
  ASSERT_EQ(logical.children.size(), 2u);
  EXPECT_EQ(as_logical(logical.children[0]).kind, FilterLogical::Kind::or_);
  EXPECT_EQ(as_comparison(logical.children[1]).key, "topic");
}

TEST(FilterParse, ReadsNestedAndOr) {
  const auto node = parse_ok(
      R"({"$and": [{"$or": [{"topic": "AI"}, {"topic": {"$in": ["ML", "NLP"]}}]},
                   {"publication_date_ts": {"$gte": 1700000000}},
                   {"$or": [{"analyzed": true}, {"$and": [{"x": {"$ne": 1}}]}]}]})");
  const auto& top = as_logical(node);
  EXPECT_EQ(top.kind, FilterLogical::Kind::and_);
  ASSERT_EQ(top.children.size(), 3u);
  EXPECT_EQ(as_logical(top.children[0]).kind, FilterLogical::Kind::or_);
  EXPECT_EQ(as_comparison(as_logical(top.children[0]).children[1]).op, FilterOp::in);
  EXPECT_EQ(as_comparison(top.children[1]).op, FilterOp::gte);
  const auto& last = as_logical(top.children[2]);
  EXPECT_EQ(as_logical(last.children[1]).kind, FilterLogical::Kind::and_);
  EXPECT_EQ(as_comparison(as_logical(last.children[1]).children[0]).op, FilterOp::ne);
}

TEST(FilterParse, AcceptsAndOrWithOneChild) {
  const auto& logical = as_logical(parse_ok(R"({"$and": [{"i": 1}]})"));
  EXPECT_EQ(logical.children.size(), 1u);
  EXPECT_EQ(as_logical(parse_ok(R"({"$or": [{"i": 1}]})")).children.size(), 1u);
}

TEST(FilterParse, AcceptsEmptyAndMeaningEverythingAndEmptyOrMeaningNothing) {
  const auto& all = as_logical(parse_ok(R"({"$and": []})"));
  EXPECT_EQ(all.kind, FilterLogical::Kind::and_);
  EXPECT_TRUE(all.children.empty());
  const auto& none = as_logical(parse_ok(R"({"$or": []})"));
  EXPECT_EQ(none.kind, FilterLogical::Kind::or_);
  EXPECT_TRUE(none.children.empty());
}

TEST(FilterParse, AcceptsKeysOfAllowedCharactersUpTo128Long) {
  for (const std::string& key : std::vector<std::string>{"a", "publication_date_ts", "news-source",
                                                         "a.b:c-d_E9", std::string(128, 'k')}) {
    EXPECT_EQ(as_comparison(parse_ok(json{{key, 1}}.dump())).key, key);
  }
}

TEST(FilterParse, ReadsTheSameFilterFromJsonTextAndFromAJsonValue) {
  const json where = {{"$or", {{{"a", 1}}, {{"b", {{"$in", {"x", "y"}}}}}}}};
  auto from_value = parse_filter(where);
  auto from_text = parse_filter(std::string_view(where.dump()));
  ASSERT_TRUE(from_value && from_text);
  EXPECT_TRUE(same_tree(*from_value, *from_text));
}

TEST(FilterParse, AcceptsTheFullSigned64BitRange) {
  EXPECT_EQ(as_comparison(parse_ok(R"({"i": 9223372036854775807})")).values.front(),
            FilterValue{std::numeric_limits<std::int64_t>::max()});
  EXPECT_EQ(as_comparison(parse_ok(R"({"i": {"$gt": -9223372036854775808}})")).values.front(),
            FilterValue{std::numeric_limits<std::int64_t>::min()});
}

// ---- invalid filters ----------------------------------------------------------------------

TEST(FilterParse, RejectsUnknownOperatorNamingItsPath) {
  EXPECT_EQ(parse_error(R"({"$and": [{"a": 1}, {"topic": {"$foo": 1}}]})"),
            R"(where.$and[1].topic: unknown operator "$foo"; expected one of $eq $ne $gt $gte $lt $lte $in $nin)");
}

TEST(FilterParse, RejectsUnknownDollarKeysAtFilterLevel) {
  EXPECT_EQ(parse_error(R"({"$not": [{"a": 1}]})"),
            R"(where: unknown operator "$not"; expected $and, $or or a metadata key)");
  EXPECT_EQ(parse_error(R"({"$or": [{"a": 1}, {"$eq": 1}]})"),
            R"(where.$or[1]: unknown operator "$eq"; expected $and, $or or a metadata key)");
  EXPECT_EQ(parse_error(R"({"a": 1, "$AND": []})"),
            R"(where: unknown operator "$AND"; expected $and, $or or a metadata key)");
}

TEST(FilterParse, RejectsTheEmptyObjectAtTopLevel) {
  EXPECT_EQ(parse_error("{}"), "where: expected at least one key, not an empty object");
}

TEST(FilterParse, RejectsEmptyObjectsInsideAndOr) {
  EXPECT_EQ(parse_error(R"({"$and": [{"a": 1}, {}]})"),
            "where.$and[1]: expected at least one key, not an empty object");
}

TEST(FilterParse, RejectsAFilterThatIsNotAnObject) {
  EXPECT_EQ(parse_error("[1]"), "where: expected an object, not [1]");
  EXPECT_EQ(parse_error("null"), "where: expected an object, not null");
  EXPECT_EQ(parse_error(R"("topic")"), R"(where: expected an object, not "topic")");
  EXPECT_EQ(parse_error(R"({"$or": [{"a": 1}, 5]})"), "where.$or[1]: expected an object, not 5");
}

TEST(FilterParse, RejectsAndOrWhoseValueIsNotAnArray) {
  EXPECT_EQ(parse_error(R"({"$and": {"a": 1}})"),
            R"(where.$and: expected an array of filters, not {"a":1})");
  EXPECT_EQ(parse_error(R"({"$or": null})"), "where.$or: expected an array of filters, not null");
}

TEST(FilterParse, RejectsNullLiterals) {
  EXPECT_EQ(parse_error(R"({"i": null})"),
            "where.i: null is not allowed; expected a string, number, boolean or an operator object");
  EXPECT_EQ(parse_error(R"({"i": {"$eq": null}})"),
            "where.i.$eq: null is not allowed; expected a string, number or boolean");
  EXPECT_EQ(parse_error(R"({"i": {"$ne": null}})"),
            "where.i.$ne: null is not allowed; expected a string, number or boolean");
}

TEST(FilterParse, RejectsArraysAsLiterals) {
  EXPECT_EQ(parse_error(R"({"tags": ["a", "b"]})"),
            R"(where.tags: expected a string, number, boolean or an operator object, not ["a","b"])");
  EXPECT_EQ(parse_error(R"({"tags": {"$eq": ["a"]}})"),
            R"(where.tags.$eq: expected a string, number or boolean, not ["a"])");
}

TEST(FilterParse, RejectsNestedObjectsAsLiterals) {
  EXPECT_EQ(parse_error(R"({"meta": {"author": "x"}})"),
            R"(where.meta: unknown operator "author"; expected one of $eq $ne $gt $gte $lt $lte $in $nin)");
  EXPECT_EQ(parse_error(R"({"meta": {"$ne": {"a": 1}}})"),
            R"(where.meta.$ne: expected a string, number or boolean, not {"a":1})");
}

TEST(FilterParse, RejectsOperatorObjectsWithoutExactlyOneOperator) {
  EXPECT_EQ(parse_error(R"({"i": {"$eq": 1, "$ne": 2}})"),
            R"(where.i: expected exactly one operator, found 2 ("$eq", "$ne"))");
  EXPECT_EQ(parse_error(R"({"i": {}})"), "where.i: expected exactly one operator, found none");
}

TEST(FilterParse, RejectsInvalidKeysNamingTheKey) {
  const std::string rule = "; a key is 1 to 128 characters of A-Z a-z 0-9 _ . : -";
  EXPECT_EQ(parse_error(R"({"": 1})"), R"(where: invalid key ""; )" + rule.substr(2));
  EXPECT_EQ(parse_error(R"({"$and": [{"bad key": 1}]})"), R"(where.$and[0]: invalid key "bad key")" + rule);
  EXPECT_EQ(parse_error_json(json{{std::string(129, 'k'), 1}}).substr(0, 28), "where: invalid key \"kkkkkkkk");
  EXPECT_EQ(parse_error(R"({"thé": 1})"), R"(where: invalid key "thé")" + rule);
  EXPECT_EQ(parse_error(R"({"a/b": {"$in": [1]}})"), R"(where: invalid key "a/b")" + rule);
}

TEST(FilterParse, RejectsAnSqlInjectionKeyQuotingItSafely) {
  const std::string message = parse_error(R"({"topic\"; DROP TABLE articles; --": "x"})");
  EXPECT_EQ(message, R"(where: invalid key "topic\"; DROP TABLE articles; --"; a key is 1 to 128 characters of A-Z a-z 0-9 _ . : -)");
}

TEST(FilterParse, CutsVeryLongValuesInErrorMessages) {
  const std::string message = parse_error_json(json{{"k", {{"$gt", std::string(10000, 'x')}}}});
  EXPECT_LT(message.size(), 200u);
  EXPECT_NE(message.find("..."), std::string::npos);
}

TEST(FilterParse, KeepsErrorMessagesValidUtf8WhenCuttingOrQuotingRawInput) {
  auto invalid_utf8 = parse_filter(json{{"k", {{"$gt", std::string(100, '\xC3')}}}});
  ASSERT_FALSE(invalid_utf8.has_value());
  EXPECT_NO_THROW((void)json(invalid_utf8.error().message()).dump());
  std::string euros;
  for (int idx = 0; idx < 60; ++idx) euros += "\xE2\x82\xAC";
  const std::string message = parse_error_json(json{{"k", {{"$gt", euros}}}});
  EXPECT_NO_THROW((void)json(message).dump());
  const std::string raw = parse_error("{\"a\": \"\xFF\xFE\x01\"}");
  EXPECT_NO_THROW((void)json(raw).dump()) << raw;
  EXPECT_EQ(raw.find('\x01'), std::string::npos);
}

TEST(FilterParse, AcceptsNestingOf32Levels) {
  EXPECT_TRUE(parse_filter(nested_and(32)).has_value());
  EXPECT_TRUE(parse_filter(std::string_view(nested_and(32).dump())).has_value());
}

TEST(FilterParse, RejectsNestingDeeperThan32Levels) {
  const std::string message = parse_error_json(nested_and(33));
  std::string path = "where";
  for (int level = 1; level < 33; ++level) path += ".$and[0]";
  EXPECT_EQ(message, path + ": filter is nested deeper than 32 levels");
}

TEST(FilterParse, AcceptsUpTo1000Nodes) {
  json children = json::array();
  for (int idx = 0; idx < 999; ++idx) children.push_back({{"k", idx}});
  EXPECT_TRUE(parse_filter(json{{"$or", children}}).has_value());  // 1 + 999 nodes
  children.push_back({{"k", 999}});
  EXPECT_EQ(parse_error_json(json{{"$or", children}}), "where.$or[999].k: filter has more than 1000 nodes");
}

TEST(FilterParse, CountsImplicitAndAsANode) {
  json flat = json::object();
  for (int idx = 0; idx < 999; ++idx) flat["k" + std::to_string(idx)] = idx;
  EXPECT_TRUE(parse_filter(flat).has_value());  // 1 implicit $and + 999 comparisons
  flat["k999"] = 1;
  EXPECT_EQ(parse_error_json(flat).substr(0, 6), "where.");
  EXPECT_NE(parse_error_json(flat).find("filter has more than 1000 nodes"), std::string::npos);
}

TEST(FilterParse, RejectsIntegersBeyondSigned64Bits) {
  EXPECT_EQ(parse_error(R"({"i": {"$gt": 18446744073709551615}})"),
            "where.i.$gt: integer 18446744073709551615 is out of range; expected a signed 64-bit integer");
  EXPECT_EQ(parse_error(R"({"i": {"$in": [9223372036854775808]}})"),
            "where.i.$in[0]: integer 9223372036854775808 is out of range; expected a signed 64-bit integer");
}

TEST(FilterParse, RejectsNonFiniteNumbersInAJsonValue) {
  auto nan = parse_filter(json{{"f", {{"$gt", std::numeric_limits<double>::quiet_NaN()}}}});
  ASSERT_FALSE(nan.has_value());
  EXPECT_EQ(nan.error().message(), "where.f.$gt: expected a finite number, not NaN");
  auto inf = parse_filter(json{{"f", {{"$in", {1.0, std::numeric_limits<double>::infinity()}}}}});
  ASSERT_FALSE(inf.has_value());
  EXPECT_EQ(inf.error().message(), "where.f.$in[1]: expected a finite number, not infinity");
}

TEST(FilterParse, RejectsInvalidUtf8InAJsonValue) {
  auto parsed = parse_filter(json{{"s", std::string("ab\xC3(", 4)}});
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code(), ErrorCode::invalid_argument);
  EXPECT_EQ(parsed.error().message(), "where.s: string is not valid UTF-8");
  for (const std::string& bad : {std::string("\xED\xA0\x80"), std::string("\xC0\xAF"),
                                std::string("\xF4\x90\x80\x80"), std::string("\xE2\x82"),
                                std::string("\xFF")}) {
    EXPECT_FALSE(parse_filter(json{{"s", {{"$in", {"ok", bad}}}}}).has_value());
  }
  EXPECT_TRUE(parse_filter(json{{"s", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"}}).has_value());
}

TEST(FilterParse, ReportsJsonSyntaxErrorsAsInvalidArgument) {
  const std::string message = parse_error(R"({"a": )");
  EXPECT_EQ(message.rfind("where: invalid JSON at byte ", 0), 0u) << message;
  EXPECT_EQ(parse_error("").rfind("where: invalid JSON at byte ", 0), 0u);
  EXPECT_EQ(parse_error(R"({"a": 1} x)").rfind("where: invalid JSON at byte ", 0), 0u);
  EXPECT_EQ(parse_error("{\"a\": \"\xFF\"}").rfind("where: invalid JSON", 0), 0u);
  EXPECT_EQ(parse_error(R"({"f": 1e400})"), "where: invalid JSON: number overflow parsing '1e400'");
}

TEST(FilterParse, RejectsDeeplyNestedJsonTextWithoutRecursing) {
  const std::string arrays(200000, '[');
  EXPECT_EQ(parse_error(arrays).rfind("where: ", 0), 0u);
  std::string objects;
  for (int idx = 0; idx < 50000; ++idx) objects += R"({"$and":[)";
  EXPECT_EQ(parse_error(objects).rfind("where: ", 0), 0u);
}

TEST(FilterParse, RejectsObjectsWithMoreKeysThanTheNodeLimitWithoutReadingThemAll) {
  json flat = json::object();
  for (int idx = 0; idx < 100000; ++idx) flat["k" + std::to_string(idx)] = idx;
  EXPECT_NE(parse_error_json(flat).find("filter has more than 1000 nodes"), std::string::npos);
}

TEST(FilterParse, RejectsDeepValidJsonTextBeforeBuildingIt) {
  std::string text;
  for (int idx = 0; idx < 5000; ++idx) text += R"({"$and":[)";
  text += R"({"a":1})";
  for (int idx = 0; idx < 5000; ++idx) text += "]}";
  EXPECT_EQ(parse_error(text), "where: JSON is nested deeper than 72 levels");
}

// ---- to_chroma_where ----------------------------------------------------------------------

TEST(FilterToChroma, WritesComparisonsWithExplicitOperators) {
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"topic": "AI"})")), json::parse(R"({"topic": {"$eq": "AI"}})"));
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"n": {"$lte": 3}})")), json::parse(R"({"n": {"$lte": 3}})"));
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"n": {"$nin": [1, 2]}})")),
            json::parse(R"({"n": {"$nin": [1, 2]}})"));
}

TEST(FilterToChroma, MakesImplicitAndExplicit) {
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"s": "cat0", "b": true})")).dump(),
            R"({"$and":[{"b":{"$eq":true}},{"s":{"$eq":"cat0"}}]})");
}

TEST(FilterToChroma, KeepsFloatsAsFloatsAndIntegersAsIntegers) {
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"f": 2.0})")).dump(), R"({"f":{"$eq":2.0}})");
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"f": {"$in": [1.5, 2]}})")).dump(), R"({"f":{"$in":[1.5,2.0]}})");
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"i": 2})")).dump(), R"({"i":{"$eq":2}})");
}

TEST(FilterToChroma, KeepsEmptyAndOrAndSingleChildren) {
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"$or": []})")).dump(), R"({"$or":[]})");
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"$and": []})")).dump(), R"({"$and":[]})");
  EXPECT_EQ(to_chroma_where(parse_ok(R"({"$and": [{"a": 1}]})")).dump(), R"({"$and":[{"a":{"$eq":1}}]})");
}

TEST(FilterToChroma, RoundTripsThroughTheParser) {
  for (const char* text : {
           R"({"topic": "AI"})",
           R"({"s": "x", "i": 1, "f": 1.5, "b": false})",
           R"({"$and": [{"publication_date_ts": {"$gte": 1700000000}}, {"topic": {"$in": ["AI", "ML"]}}]})",
           R"({"$or": [{"a": {"$ne": "x"}}, {"$and": [{"b": {"$lt": 2.5}}, {"c": {"$nin": [true]}}]}]})",
           R"({"publication_date": {"$gte": "2024-01-01T00:00:00Z"}})",
           R"({"$or": []})",
           R"({"$and": []})",
           R"({"$and": [{"x": {"$gt": -3}}], "y": {"$lte": "2024-12-31"}})",
           R"({"q": {"$in": ["a\"b", "c\\d", "{e,f}", "NULL", ""]}})",
       }) {
    const auto original = parse_ok(text);
    const json chroma = to_chroma_where(original);
    auto reparsed = parse_filter(chroma);
    ASSERT_TRUE(reparsed.has_value()) << text << " -> " << chroma.dump();
    EXPECT_TRUE(same_tree(original, *reparsed)) << text << " -> " << chroma.dump();
    // Every object of the output has exactly one key, as Chroma demands.
    EXPECT_EQ(to_chroma_where(*reparsed), chroma);
  }
}

TEST(FilterToChroma, EmitsOnlyObjectsWithOneKey) {
  const json chroma = to_chroma_where(
      parse_ok(R"({"a": 1, "f": {"$gt": 1}, "$or": [{"c": 2}, {"d": 3, "e": {"$in": [4, 5]}}]})"));
  std::vector<const json*> pending = {&chroma};
  while (!pending.empty()) {
    const json* current = pending.back();
    pending.pop_back();
    if (current->is_object()) {
      EXPECT_EQ(current->size(), 1u) << current->dump();
      for (const auto& item : current->items()) pending.push_back(&item.value());
    } else if (current->is_array()) {
      for (const auto& item : *current) pending.push_back(&item);
    }
  }
}

TEST(FilterToChroma, NamesEveryOperatorAsChromaSpellsIt) {
  EXPECT_EQ(to_string(FilterOp::eq), "$eq");
  EXPECT_EQ(to_string(FilterOp::ne), "$ne");
  EXPECT_EQ(to_string(FilterOp::gt), "$gt");
  EXPECT_EQ(to_string(FilterOp::gte), "$gte");
  EXPECT_EQ(to_string(FilterOp::lt), "$lt");
  EXPECT_EQ(to_string(FilterOp::lte), "$lte");
  EXPECT_EQ(to_string(FilterOp::in), "$in");
  EXPECT_EQ(to_string(FilterOp::nin), "$nin");
}

}  // namespace
}  // namespace vstore
