// SPDX-License-Identifier: Apache-2.0
// Issue 21 item 13b: a `where` date on a timestamp column is compared with the instant that
// ingest's date reader reads, never with the server's own reading of the text.
#include "pg/pg_filter.hpp"

#include <gtest/gtest.h>

namespace vstore::pg {
namespace {

ColumnCatalog catalog() {
  ColumnCatalog c;
  c.columns = {{"publication_date", ColumnKind::timestamp}, {"topic", ColumnKind::text}};
  return c;
}

std::vector<std::string> params_of(const std::string& where) {
  auto parsed = parse_filter(std::string_view(where));
  EXPECT_TRUE(parsed.has_value()) << where << ": " << (parsed ? "" : parsed.error().message());
  if (!parsed) return {};
  auto compiled = compile_filter(*parsed, catalog(), 1);
  EXPECT_TRUE(compiled.has_value()) << where << ": " << (compiled ? "" : compiled.error().message());
  if (!compiled) return {};
  return compiled->params;
}

TEST(Issue21DatesFilter, Item13bATimestampColumnIsComparedWithTheInstantIngestReads) {
  // PostgreSQL would read 01/03/1987 as January 3rd; ingest reads it day first.
  EXPECT_EQ(params_of(R"({"publication_date": {"$gte": "01/03/1987"}})"),
            std::vector<std::string>{"1987-03-01T00:00:00Z"});
  EXPECT_EQ(params_of(R"({"publication_date": {"$lt": "1987-03-01 12:00:00 PST"}})"),
            std::vector<std::string>{"1987-03-01T20:00:00Z"});
  EXPECT_EQ(params_of(R"({"publication_date": {"$in": ["Sun, 01 Mar 1987 12:00:00 GMT"]}})"),
            std::vector<std::string>{R"({"1987-03-01T12:00:00Z"})"});
}

}  // namespace
}  // namespace vstore::pg
