// SPDX-License-Identifier: Apache-2.0
// timestamptz_micros(): PostgreSQL's binary timestamptz of a date, read by read_date() (the one
// date reader of ingest, the filters and migration), for the binary COPY paths.
#include "pg/pg_time.hpp"

#include "vstore/date.hpp"

namespace vstore::pg {
namespace {

constexpr std::int64_t k_pg_epoch_unix_us = 946684800LL * 1000000;  // 2000-01-01T00:00:00Z

}  // namespace

std::optional<std::int64_t> timestamptz_micros(std::string_view text, Zoneless zoneless) {
  auto read = read_date(text);
  if (!read) return std::nullopt;
  if (read->has_time && !read->has_zone && zoneless == Zoneless::refuse) return std::nullopt;
  return read->epoch_micros - k_pg_epoch_unix_us;
}

}  // namespace vstore::pg
