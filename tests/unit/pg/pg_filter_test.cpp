// SPDX-License-Identifier: Apache-2.0
// Unit tests of the filter compiler: exact SQL and parameters, quoting, and type errors.
#include "pg/pg_filter.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vstore::pg {
namespace {

using nlohmann::json;
using Params = std::vector<std::string>;

ColumnCatalog articles_catalog() {
  ColumnCatalog catalog;
  catalog.columns = {{"topic", ColumnKind::text},
                     {"analyzed", ColumnKind::boolean},
                     {"publication_date", ColumnKind::timestamp},
                     {"publication_date_ts", ColumnKind::integer},
                     {"score", ColumnKind::real}};
  return catalog;
}

FilterNode parse(std::string_view text) {
  auto parsed = parse_filter(text);
  EXPECT_TRUE(parsed.has_value()) << text << " -> " << parsed.error().message();
  if (!parsed) return FilterNode{FilterLogical{}};
  return std::move(*parsed);
}

SqlFilter compile_ok(std::string_view where, int first_param = 1,
                     const ColumnCatalog& catalog = articles_catalog()) {
  auto compiled = compile_filter(parse(where), catalog, first_param);
  EXPECT_TRUE(compiled.has_value()) << where << " -> " << compiled.error().message();
  if (!compiled) return {};
  return std::move(*compiled);
}

std::string compile_error(const FilterNode& node, int first_param = 1) {
  auto compiled = compile_filter(node, articles_catalog(), first_param);
  EXPECT_FALSE(compiled.has_value()) << "compiled to " << (compiled ? compiled->sql : "");
  if (compiled) return {};
  EXPECT_EQ(compiled.error().code(), ErrorCode::invalid_argument) << compiled.error().message();
  return compiled.error().message();
}

std::string compile_error(std::string_view where) { return compile_error(parse(where)); }

FilterNode comparison(std::string key, FilterOp op, std::vector<FilterValue> values) {
  return FilterNode{FilterComparison{std::move(key), op, std::move(values)}};
}

// ---- catalog columns ----------------------------------------------------------------------

TEST(PgFilter, ComparesATextColumnWithATextParameter) {
  const auto sql = compile_ok(R"({"topic": "AI"})", 3);
  EXPECT_EQ(sql.sql, R"("topic" = $3::text)");
  EXPECT_EQ(sql.params, Params{"AI"});
}

TEST(PgFilter, UsesIsDistinctFromForNeSoNullColumnsMatch) {
  const auto sql = compile_ok(R"({"topic": {"$ne": "AI"}})");
  EXPECT_EQ(sql.sql, R"("topic" IS DISTINCT FROM $1::text)");
  EXPECT_EQ(sql.params, Params{"AI"});
}

TEST(PgFilter, ComparesDateStringsOnTextColumnsBytewise) {
  const auto sql = compile_ok(R"({"topic": {"$gte": "2024-01-01"}})");
  EXPECT_EQ(sql.sql, R"("topic" COLLATE "C" >= $1::text)");
  EXPECT_EQ(sql.params, Params{"2024-01-01"});
}

TEST(PgFilter, ComparesABooleanColumnWithABooleanParameter) {
  EXPECT_EQ(compile_ok(R"({"analyzed": true})").sql, R"("analyzed" = $1::boolean)");
  EXPECT_EQ(compile_ok(R"({"analyzed": true})").params, Params{"true"});
  const auto ne = compile_ok(R"({"analyzed": {"$ne": false}})");
  EXPECT_EQ(ne.sql, R"("analyzed" IS DISTINCT FROM $1::boolean)");
  EXPECT_EQ(ne.params, Params{"false"});
}

TEST(PgFilter, ComparesAnIntegerColumnAsBigintWithIntegers) {
  const auto sql = compile_ok(R"({"publication_date_ts": {"$gte": 1700000000}})", 2);
  EXPECT_EQ(sql.sql, R"("publication_date_ts" >= $2::bigint)");
  EXPECT_EQ(sql.params, Params{"1700000000"});
  EXPECT_EQ(compile_ok(R"({"publication_date_ts": {"$lt": -5}})").params, Params{"-5"});
}

TEST(PgFilter, ComparesAnIntegerColumnAsFloat8WithFloats) {
  const auto sql = compile_ok(R"({"publication_date_ts": {"$gt": 1700000000.5}})");
  EXPECT_EQ(sql.sql, R"("publication_date_ts" > $1::float8)");
  EXPECT_EQ(sql.params, Params{"1700000000.5"});
}

TEST(PgFilter, ComparesARealColumnAsFloat8) {
  EXPECT_EQ(compile_ok(R"({"score": {"$lte": 0.25}})").sql, R"("score" <= $1::float8)");
  EXPECT_EQ(compile_ok(R"({"score": {"$lte": 0.25}})").params, Params{"0.25"});
  EXPECT_EQ(compile_ok(R"({"score": 3})").sql, R"("score" = $1::float8)");
  EXPECT_EQ(compile_ok(R"({"score": 3})").params, Params{"3"});
  EXPECT_EQ(compile_ok(R"({"score": 1e20})").params, Params{"1e+20"});
}

TEST(PgFilter, ComparesATimestampColumnWithADateString) {
  const auto sql = compile_ok(R"({"publication_date": {"$gte": "2024-01-01T00:00:00Z"}})");
  EXPECT_EQ(sql.sql, R"("publication_date" >= $1::timestamptz)");
  EXPECT_EQ(sql.params, Params{"2024-01-01T00:00:00Z"});
  EXPECT_EQ(compile_ok(R"({"publication_date": "2024-05-01"})").sql,
            R"("publication_date" = $1::timestamptz)");
}

TEST(PgFilter, ComparesATimestampColumnWithEpochSeconds) {
  const auto sql = compile_ok(R"({"publication_date": {"$lt": 1700000000}})");
  EXPECT_EQ(sql.sql, R"("publication_date" < to_timestamp($1::float8))");
  EXPECT_EQ(sql.params, Params{"1700000000"});
  EXPECT_EQ(compile_ok(R"({"publication_date": {"$ne": 1.5}})").sql,
            R"("publication_date" IS DISTINCT FROM to_timestamp($1::float8))");
}

TEST(PgFilter, UsesAnyWithAQuotedArrayLiteralForIn) {
  const auto sql = compile_ok(R"({"topic": {"$in": ["AI", "ML"]}})");
  EXPECT_EQ(sql.sql, R"("topic" = ANY($1::text[]))");
  EXPECT_EQ(sql.params, Params{R"({"AI","ML"})"});
}

TEST(PgFilter, MatchesNullColumnsForNin) {
  const auto sql = compile_ok(R"({"topic": {"$nin": ["AI"]}})", 4);
  EXPECT_EQ(sql.sql, R"(("topic" IS NULL OR NOT ("topic" = ANY($4::text[]))))");
  EXPECT_EQ(sql.params, Params{R"({"AI"})"});
}

TEST(PgFilter, QuotesEveryInElementSafely) {
  const auto sql = compile_ok(
      R"({"topic": {"$in": ["a\"b", "c\\d", "{x}", "1,2", "NULL", "", " pad ", "it's"]}})");
  EXPECT_EQ(sql.sql, R"("topic" = ANY($1::text[]))");
  EXPECT_EQ(sql.params, Params{R"({"a\"b","c\\d","{x}","1,2","NULL",""," pad ","it's"})"});
}

TEST(PgFilter, TypesInListsByColumnKindAndValueType) {
  EXPECT_EQ(compile_ok(R"({"analyzed": {"$in": [true, false]}})").sql, R"("analyzed" = ANY($1::boolean[]))");
  EXPECT_EQ(compile_ok(R"({"analyzed": {"$in": [true, false]}})").params, Params{R"({"true","false"})"});
  EXPECT_EQ(compile_ok(R"({"publication_date_ts": {"$in": [1, 2]}})").sql,
            R"("publication_date_ts" = ANY($1::bigint[]))");
  EXPECT_EQ(compile_ok(R"({"publication_date_ts": {"$in": [1.5, 2]}})").sql,
            R"("publication_date_ts" = ANY($1::float8[]))");
  EXPECT_EQ(compile_ok(R"({"publication_date_ts": {"$in": [1.5, 2]}})").params, Params{R"({"1.5","2"})"});
  EXPECT_EQ(compile_ok(R"({"score": {"$nin": [1, 2]}})").sql,
            R"(("score" IS NULL OR NOT ("score" = ANY($1::float8[]))))");
  EXPECT_EQ(compile_ok(R"({"publication_date": {"$in": ["2024-01-01", "2024-01-02 10:00+02"]}})").sql,
            R"("publication_date" = ANY($1::timestamptz[]))");
  EXPECT_EQ(compile_ok(R"({"publication_date": {"$in": ["2024-01-01", "2024-01-02 10:00+02"]}})").params,
            Params{R"({"2024-01-01T00:00:00Z","2024-01-02T08:00:00Z"})"});
}

TEST(PgFilter, ConvertsEpochListsOnTimestampColumns) {
  const auto sql = compile_ok(R"({"publication_date": {"$nin": [0, 1700000000]}})");
  EXPECT_EQ(sql.sql,
            R"(("publication_date" IS NULL OR NOT ("publication_date" = ANY(ARRAY(SELECT to_timestamp(vs_x) )"
            R"(FROM unnest($1::float8[]) AS vs_u(vs_x))))))");
  EXPECT_EQ(sql.params, Params{R"({"0","1700000000"})"});
}

// ---- JSON keys ----------------------------------------------------------------------------

TEST(PgFilter, ReadsOtherKeysFromTheJsonColumnWithTheKeyAsAParameter) {
  const auto sql = compile_ok(R"({"dateline": "Berlin"})", 5);
  EXPECT_EQ(sql.sql, R"(("vector_metadata" -> $5::text) = $6::jsonb)");
  EXPECT_EQ(sql.params, (Params{"dateline", R"("Berlin")"}));
}

TEST(PgFilter, EncodesJsonValuesAsJson) {
  EXPECT_EQ(compile_ok(R"({"n": 1})").params, (Params{"n", "1"}));
  EXPECT_EQ(compile_ok(R"({"n": 1.5})").params, (Params{"n", "1.5"}));
  EXPECT_EQ(compile_ok(R"({"n": 2.0})").params, (Params{"n", "2.0"}));
  EXPECT_EQ(compile_ok(R"({"b": false})").params, (Params{"b", "false"}));
  EXPECT_EQ(compile_ok(R"({"s": "a\"b\\c"})").params, (Params{"s", R"("a\"b\\c")"}));
}

TEST(PgFilter, UsesIsDistinctFromForJsonNeSoMissingKeysMatch) {
  const auto sql = compile_ok(R"({"dateline": {"$ne": "Berlin"}})");
  EXPECT_EQ(sql.sql, R"(("vector_metadata" -> $1::text) IS DISTINCT FROM $2::jsonb)");
  EXPECT_EQ(sql.params, (Params{"dateline", R"("Berlin")"}));
}

TEST(PgFilter, UsesJsonContainmentForInAndItsNegationForNin) {
  const auto in = compile_ok(R"({"n": {"$in": [1, 2]}})");
  EXPECT_EQ(in.sql, R"($2::jsonb @> jsonb_build_array("vector_metadata" -> $1::text))");
  EXPECT_EQ(in.params, (Params{"n", "[1,2]"}));
  const auto nin = compile_ok(R"({"s": {"$nin": ["a,b", "{c}"]}})");
  EXPECT_EQ(nin.sql, R"(NOT ($2::jsonb @> jsonb_build_array("vector_metadata" -> $1::text)))");
  EXPECT_EQ(nin.params, (Params{"s", R"(["a,b","{c}"])"}));
}

TEST(PgFilter, GuardsNumericJsonRangesSoNoStoredValueIsCastBlindly) {
  const auto sql = compile_ok(R"({"n": {"$gt": 2.5}})");
  EXPECT_EQ(sql.sql,
            R"(CASE WHEN jsonb_typeof("vector_metadata" -> $1::text) = 'number' )"
            R"(THEN ("vector_metadata" -> $1::text)::numeric END > $2::numeric)");
  EXPECT_EQ(sql.params, (Params{"n", "2.5"}));
}

TEST(PgFilter, ComparesJsonDateStringsAsText) {
  const auto sql = compile_ok(R"({"publication_date": {"$lte": "2024-12-31"}})", 1, ColumnCatalog{});
  EXPECT_EQ(sql.sql,
            R"(CASE WHEN jsonb_typeof("vector_metadata" -> $1::text) = 'string' )"
            R"(THEN "vector_metadata" ->> $1::text END COLLATE "C" <= $2::text)");
  EXPECT_EQ(sql.params, (Params{"publication_date", "2024-12-31"}));
}

TEST(PgFilter, UsesTheCatalogsJsonColumnAndTableAlias) {
  ColumnCatalog catalog = articles_catalog();
  catalog.json_column = "meta\"data";
  catalog.table_alias = "a";
  EXPECT_EQ(compile_ok(R"({"x": 1, "topic": "AI"})", 1, catalog).sql,
            R"(("a"."topic" = $1::text AND ("a"."meta""data" -> $2::text) = $3::jsonb))");
}

// ---- $and / $or ---------------------------------------------------------------------------

TEST(PgFilter, ParenthesisesAndOrAndNumbersParametersInOrder) {
  const auto sql = compile_ok(
      R"({"$and": [{"$or": [{"topic": "AI"}, {"topic": {"$in": ["ML"]}}]},
                   {"publication_date_ts": {"$gte": 1700000000}}, {"dateline": {"$ne": "x"}}]})",
      3);
  EXPECT_EQ(sql.sql,
            R"((("topic" = $3::text OR "topic" = ANY($4::text[])) AND "publication_date_ts" >= $5::bigint)"
            R"( AND ("vector_metadata" -> $6::text) IS DISTINCT FROM $7::jsonb))");
  EXPECT_EQ(sql.params, (Params{"AI", R"({"ML"})", "1700000000", "dateline", R"("x")"}));
}

TEST(PgFilter, MakesImplicitAndAnAnd) {
  EXPECT_EQ(compile_ok(R"({"topic": "AI", "analyzed": true})").sql,
            R"(("analyzed" = $1::boolean AND "topic" = $2::text))");
}

TEST(PgFilter, CompilesEmptyAndToTrueAndEmptyOrToFalse) {
  EXPECT_EQ(compile_ok(R"({"$and": []})").sql, "TRUE");
  EXPECT_EQ(compile_ok(R"({"$or": []})").sql, "FALSE");
  EXPECT_TRUE(compile_ok(R"({"$or": []})").params.empty());
  EXPECT_EQ(compile_ok(R"({"$or": [{"$and": []}, {"topic": "x"}]})").sql, R"((TRUE OR "topic" = $1::text))");
}

TEST(PgFilter, LeavesASingleChildUnwrapped) {
  EXPECT_EQ(compile_ok(R"({"$and": [{"$or": [{"topic": "AI"}]}]})").sql, R"("topic" = $1::text)");
}

TEST(PgFilter, ProducesSqlThatDependsOnlyOnTheFiltersShape) {
  const auto first = compile_ok(R"({"$and": [{"k1": {"$in": ["a"]}}, {"k2": {"$gt": 1}}]})");
  const auto second = compile_ok(R"({"$and": [{"other": {"$in": ["b", "c"]}}, {"x.y:z": {"$gt": 7.5}}]})");
  EXPECT_EQ(first.sql, second.sql);
}

// ---- hostile input ------------------------------------------------------------------------

TEST(PgFilter, NeverPutsHostileValuesIntoTheSqlText) {
  const std::vector<std::string> hostile = {
      "'; DROP TABLE articles; --", "\"quoted\"", "back\\slash", "{brace}", "a,b", "$99x", "\\'",
      "x' OR '1'='1", "E'\\x27'", "$$dollar$$", "--comment", "/* c */"};
  const std::string marker_free_sql =
      compile_ok(R"({"$or": [{"topic": "v"}, {"topic": {"$ne": "v"}}, {"topic": {"$in": ["v"]}},
                             {"topic": {"$nin": ["v"]}}, {"meta": "v"}, {"meta": {"$ne": "v"}},
                             {"meta": {"$in": ["v"]}}, {"meta": {"$nin": ["v"]}}]})")
          .sql;
  for (const std::string& value : hostile) {
    const json v = value;
    const json where = {{"$or",
                         {{{"topic", v}},
                          {{"topic", {{"$ne", v}}}},
                          {{"topic", {{"$in", {v, "ok"}}}}},
                          {{"topic", {{"$nin", {v}}}}},
                          {{"meta", v}},
                          {{"meta", {{"$ne", v}}}},
                          {{"meta", {{"$in", {v}}}}},
                          {{"meta", {{"$nin", {v}}}}}}}};
    const auto sql = compile_ok(where.dump());
    EXPECT_EQ(sql.sql.find(value), std::string::npos) << value;
    // The value changes only the parameters (one more $in element aside, the SQL is identical).
    EXPECT_EQ(sql.sql, marker_free_sql) << value;
    EXPECT_EQ(sql.params[0], value);
  }
}

TEST(PgFilter, RejectsAHostileKeyBuiltInCodeBeforeAnySqlIsMade) {
  const std::string key = R"(topic"; DROP TABLE articles; --)";
  const std::string message = compile_error(comparison(key, FilterOp::eq, {std::string("x")}));
  EXPECT_NE(message.find("invalid key"), std::string::npos) << message;
  EXPECT_EQ(message.find("articles; --\" ="), std::string::npos);
}

TEST(PgFilter, RejectsAHostileKeyInJsonTextAtParseTime) {
  auto parsed = parse_filter(std::string_view(R"({"topic\"; DROP TABLE articles; --": "x"})"));
  ASSERT_FALSE(parsed.has_value());
  EXPECT_EQ(parsed.error().code(), ErrorCode::invalid_argument);
}

TEST(PgFilter, PassesAllowedPunctuationInJsonKeysOnlyAsParameters) {
  const auto sql = compile_ok(R"({"a-b.c:d_e": 1})");
  EXPECT_EQ(sql.sql.find("a-b"), std::string::npos);
  EXPECT_EQ(sql.params.front(), "a-b.c:d_e");
}

TEST(PgFilter, QuotesIdentifiersByDoublingDoubleQuotes) {
  EXPECT_EQ(quote_sql_identifier("topic"), R"("topic")");
  EXPECT_EQ(quote_sql_identifier(R"(my"col)"), R"("my""col")");
  EXPECT_EQ(quote_sql_identifier(R"(x"; DROP TABLE t; --)"), R"("x""; DROP TABLE t; --")");
  EXPECT_EQ(quote_sql_identifier(""), R"("")");
}

TEST(PgFilter, BuildsArrayLiteralsWithEveryElementQuoted) {
  EXPECT_EQ(sql_array_literal({}), "{}");
  EXPECT_EQ(sql_array_literal({""}), R"({""})");
  EXPECT_EQ(sql_array_literal({"NULL"}), R"({"NULL"})");
  EXPECT_EQ(sql_array_literal({R"(a"b)", R"(c\d)", "{e}", "f,g", " h "}),
            R"({"a\"b","c\\d","{e}","f,g"," h "})");
}

TEST(PgFilter, RejectsStringsWithNulCharacters) {
  const std::string message = compile_error(R"({"topic": "a\u0000b"})");
  EXPECT_EQ(message, R"(filter key "topic": value contains a NUL character, which PostgreSQL cannot store)");
  EXPECT_FALSE(compile_filter(parse(R"({"m": {"$in": ["ok", "\u0000"]}})"), articles_catalog(), 1));
}

// ---- type mismatches ----------------------------------------------------------------------

TEST(PgFilter, RejectsAStringOnABooleanColumnNamingKeyValueAndType) {
  EXPECT_EQ(compile_error(R"({"analyzed": "yes"})"),
            R"(filter key "analyzed" is a boolean column; expected a boolean, not "yes")");
}

TEST(PgFilter, RejectsAStringOnAnIntegerColumn) {
  EXPECT_EQ(compile_error(R"({"publication_date_ts": {"$gte": "2024-01-01"}})"),
            R"(filter key "publication_date_ts" is an integer column; expected a number, not "2024-01-01")");
}

TEST(PgFilter, RejectsANumberOnATextColumn) {
  EXPECT_EQ(compile_error(R"({"topic": {"$in": ["a", "b"]}, "x": 1, "$or": [{"topic": 5}]})"),
            R"(filter key "topic" is a text column; expected a string, not 5)");
  EXPECT_EQ(compile_error(R"({"topic": {"$gt": 5}})"),
            R"(filter key "topic" is a text column; expected a string, not 5)");
}

TEST(PgFilter, RejectsABooleanOnATimestampColumn) {
  EXPECT_EQ(compile_error(R"({"publication_date": true})"),
            R"(filter key "publication_date" is a timestamp column; expected a date string or epoch seconds, not true)");
}

TEST(PgFilter, RejectsANonDateStringOnATimestampColumn) {
  EXPECT_EQ(compile_error(R"({"publication_date": {"$in": ["2024-01-01", "yesterday"]}})"),
            R"(filter key "publication_date" is a timestamp column; expected a date string or epoch seconds, not "yesterday")");
  EXPECT_EQ(compile_error(R"({"publication_date": {"$ne": "2024-02-30"}})"),
            R"(filter key "publication_date" is a timestamp column; expected a date string or epoch seconds, not "2024-02-30")");
}

TEST(PgFilter, RejectsNumbersOnBooleanColumnsAndBooleansOnRealColumns) {
  EXPECT_EQ(compile_error(R"({"analyzed": {"$gt": 0}})"),
            R"(filter key "analyzed" is a boolean column; expected a boolean, not 0)");
  EXPECT_EQ(compile_error(R"({"score": {"$in": [true]}})"),
            R"(filter key "score" is a real column; expected a number, not true)");
}

TEST(PgFilter, RejectsEpochSecondsOutsidePostgresTimestampRange) {
  EXPECT_EQ(compile_error(R"({"publication_date": {"$gt": 1e300}})"),
            R"(filter key "publication_date" is a timestamp column; epoch seconds 1e+300 are outside PostgreSQL's timestamp range)");
  EXPECT_FALSE(compile_filter(parse(R"({"publication_date": {"$in": [-9223372036854775807]}})"),
                              articles_catalog(), 1));
  EXPECT_TRUE(compile_filter(parse(R"({"publication_date": {"$gt": -210866803200}})"), articles_catalog(), 1));
}

// ---- trees built in code and placeholder limits -------------------------------------------

TEST(PgFilter, RevalidatesTreesBuiltInCode) {
  EXPECT_NE(compile_error(comparison("k", FilterOp::in, {})).find("non-empty array"), std::string::npos);
  EXPECT_NE(compile_error(comparison("k", FilterOp::eq, {})).find("null is not allowed"), std::string::npos);
  EXPECT_NE(compile_error(comparison("k", FilterOp::eq, {std::int64_t{1}, std::int64_t{2}})).find("where.k.$eq"),
            std::string::npos);
  EXPECT_NE(compile_error(comparison("k", FilterOp::gt, {true})).find("where.k.$gt"), std::string::npos);
  EXPECT_NE(compile_error(comparison("k", FilterOp::in, {std::int64_t{1}, std::string("a")})).find("where.k.$in[1]"),
            std::string::npos);
  EXPECT_NE(compile_error(comparison("", FilterOp::eq, {true})).find("invalid key"), std::string::npos);
}

TEST(PgFilter, RejectsTreesBuiltInCodeThatNestTooDeep) {
  FilterNode node = comparison("k", FilterOp::eq, {true});
  for (int level = 0; level < 10000; ++level) {
    FilterLogical wrapper;
    wrapper.children.push_back(std::move(node));
    node = FilterNode{std::move(wrapper)};
  }
  EXPECT_EQ(compile_error(node), "where: filter is nested deeper than 32 levels");
}

TEST(PgFilter, RejectsAFirstPlaceholderBelowOneOrAboveTheLimit) {
  EXPECT_EQ(compile_error(parse(R"({"topic": "AI"})"), 0),
            "first placeholder number must be 1 to 65535, not 0");
  EXPECT_EQ(compile_error(parse(R"({"topic": "AI"})"), 70000), "first placeholder number must be 1 to 65535, not 70000");
}

TEST(PgFilter, RejectsFiltersThatNeedPlaceholdersBeyond65535) {
  EXPECT_TRUE(compile_filter(parse(R"({"topic": "AI"})"), articles_catalog(), 65535));
  EXPECT_EQ(compile_error(parse(R"({"x": "AI"})"), 65535),
            "filter needs placeholders up to $65536; PostgreSQL allows at most $65535");
}

}  // namespace
}  // namespace vstore::pg
