// SPDX-License-Identifier: Apache-2.0
// Article parsing and the metadata mapping shared by every backend. Dates are read by
// read_date() (date.hpp), the reader ingest, the filters and migrate-chroma share.
#include "vstore/article.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

#include <fmt/format.h>

#include "vstore/date.hpp"
#include "core/text.hpp"

namespace vstore {
namespace {

using nlohmann::json;

std::string_view type_name(const json& j) { return j.type_name(); }

Result<std::optional<std::string>> optional_string(const json& record, const char* field) {
  auto it = record.find(field);
  if (it == record.end() || it->is_null()) return std::optional<std::string>{};
  if (!it->is_string()) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("field {} must be a string or null, not {}", field, type_name(*it)));
  }
  return std::optional<std::string>(it->get<std::string>());
}

}  // namespace

std::optional<std::int64_t> publication_date_ts(std::string_view date) {
  auto read = read_date(date);
  if (!read) return std::nullopt;
  // Whole seconds, rounded down (also before 1970).
  const std::int64_t micros = read->epoch_micros;
  return micros / 1000000 - (micros % 1000000 < 0 ? 1 : 0);
}

std::string iso8601_utc(std::int64_t epoch_seconds) {
  using namespace std::chrono;
  const sys_seconds tp{seconds{epoch_seconds}};
  const sys_days day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss hms{tp - day};
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}Z", static_cast<int>(ymd.year()),
                     static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count());
}

Result<Article> article_from_json(const json& record) {
  if (!record.is_object()) {
    return fail(ErrorCode::invalid_argument, fmt::format("an article must be a JSON object, not {}", type_name(record)));
  }
  Article a;
  auto uri = record.find("uri");
  if (uri == record.end() || !uri->is_string() || uri->get_ref<const std::string&>().empty()) {
    return fail(ErrorCode::invalid_argument, "field uri is required and must be a non-empty string");
  }
  a.uri = uri->get<std::string>();
  struct Field {
    const char* name;
    std::optional<std::string> Article::*member;
  };
  static constexpr Field k_fields[] = {
      {"title", &Article::title},         {"summary", &Article::summary},
      {"raw", &Article::raw},             {"topic", &Article::topic},
      {"category", &Article::category},   {"news_source", &Article::news_source},
      {"publication_date", &Article::publication_date}, {"sentiment", &Article::sentiment},
      {"future_signal", &Article::future_signal},       {"time_to_impact", &Article::time_to_impact},
      {"driver_type", &Article::driver_type},
  };
  for (const auto& f : k_fields) {
    VS_TRY_ASSIGN(a.*(f.member), optional_string(record, f.name));
  }
  if (auto it = record.find("tags"); it != record.end() && !it->is_null()) {
    std::vector<std::string> tags;
    if (it->is_string()) {
      tags.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      for (const auto& t : *it) {
        if (!t.is_string()) {
          return fail(ErrorCode::invalid_argument,
                      fmt::format("field tags must hold strings, not {}", type_name(t)));
        }
        tags.push_back(t.get<std::string>());
      }
    } else {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("field tags must be a list of strings or a string, not {}", type_name(*it)));
    }
    a.tags = std::move(tags);
  }
  if (auto it = record.find("analyzed"); it != record.end() && !it->is_null()) {
    if (!it->is_boolean()) {
      return fail(ErrorCode::invalid_argument, fmt::format("field analyzed must be a bool, not {}", type_name(*it)));
    }
    a.analyzed = it->get<bool>();
  }
  static constexpr std::string_view k_known[] = {"uri", "title", "summary", "raw", "topic", "category",
                                                 "news_source", "publication_date", "tags", "sentiment",
                                                 "future_signal", "time_to_impact", "driver_type", "analyzed",
                                                 "embedding", "embedding_model"};
  for (const auto& [key, value] : record.items()) {
    if (std::find(std::begin(k_known), std::end(k_known), key) != std::end(k_known)) continue;
    if (value.is_primitive() && !value.is_null()) a.extra[key] = value;
  }
  return a;
}

std::string_view document_text(const Article& article) {
  for (const auto* field : {&article.raw, &article.summary, &article.title}) {
    if (*field && !is_blank_text(**field)) return **field;
  }
  return {};
}

std::string joined_tags(const Article& article) {
  std::string out;
  if (!article.tags) return out;
  for (std::size_t i = 0; i < article.tags->size(); ++i) {
    if (i) out += ", ";
    out += (*article.tags)[i];
  }
  return out;
}

Metadata build_metadata(const Article& a) {
  Metadata md = Metadata::object();
  auto put = [&](const char* key, const std::optional<std::string>& v) {
    if (v) md[key] = *v;
  };
  put("title", a.title);
  put("news_source", a.news_source);
  put("category", a.category);
  put("future_signal", a.future_signal);
  put("sentiment", a.sentiment);
  put("time_to_impact", a.time_to_impact);
  put("topic", a.topic);
  if (a.publication_date) {
    if (auto ts = publication_date_ts(*a.publication_date)) md["publication_date_ts"] = *ts;
    md["publication_date"] = *a.publication_date;
  }
  md["tags"] = joined_tags(a);
  put("summary", a.summary);
  md["uri"] = a.uri;
  put("driver_type", a.driver_type);
  return md;
}

}  // namespace vstore
