// SPDX-License-Identifier: Apache-2.0
// Article parsing and the metadata mapping shared by every backend. The date rules follow the
// if/elif chain of the code being replaced, branch by branch (see publication_date_ts()).
#include "vstore/article.hpp"

#include <array>
#include <cctype>
#include <chrono>
#include <regex>

#include <fmt/format.h>

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

// Days since 1970-01-01 of a civil date, or nullopt when the date does not exist.
std::optional<std::int64_t> civil_epoch(int year, int month, int day) {
  using namespace std::chrono;
  const year_month_day ymd{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                           std::chrono::day{static_cast<unsigned>(day)}};
  if (!ymd.ok() || year < 1 || year > 9999) return std::nullopt;
  return static_cast<std::int64_t>(sys_days{ymd}.time_since_epoch().count()) * 86400;
}

int to_int(std::string_view s) {
  int v = 0;
  for (char c : s) v = v * 10 + (c - '0');
  return v;
}

constexpr std::array<std::string_view, 12> k_months = {"january", "february", "march",     "april",
                                                       "may",     "june",     "july",      "august",
                                                       "september", "october", "november", "december"};

std::optional<int> month_from_name(std::string_view name, bool abbreviated) {
  std::string lower;
  for (char c : name) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (std::size_t i = 0; i < k_months.size(); ++i) {
    if (abbreviated ? lower == k_months[i].substr(0, 3) : lower == k_months[i]) return static_cast<int>(i) + 1;
  }
  return std::nullopt;
}

// strptime-like matching of the whole string for the few formats of branch 4.
std::optional<std::int64_t> parse_branch4(const std::string& s) {
  static const std::regex ymd_slash(R"(^(\d{4})/(\d{1,2})/(\d{1,2})$)");
  static const std::regex dmy_dash(R"(^(\d{1,2})-(\d{1,2})-(\d{4})$)");
  static const std::regex dmy_slash(R"(^(\d{1,2})/(\d{1,2})/(\d{4})$)");
  static const std::regex month_d_y(R"(^([A-Za-z]+) (\d{1,2}), (\d{4})$)");
  static const std::regex d_month_y(R"(^(\d{1,2}) ([A-Za-z]+) (\d{4})$)");
  std::smatch m;
  if (std::regex_match(s, m, ymd_slash)) return civil_epoch(to_int(m.str(1)), to_int(m.str(2)), to_int(m.str(3)));
  if (std::regex_match(s, m, dmy_dash)) return civil_epoch(to_int(m.str(3)), to_int(m.str(2)), to_int(m.str(1)));
  if (std::regex_match(s, m, dmy_slash)) return civil_epoch(to_int(m.str(3)), to_int(m.str(2)), to_int(m.str(1)));
  if (std::regex_match(s, m, month_d_y)) {
    if (auto month = month_from_name(m.str(1), false)) return civil_epoch(to_int(m.str(3)), *month, to_int(m.str(2)));
  }
  if (std::regex_match(s, m, d_month_y)) {
    auto month = month_from_name(m.str(2), false);
    if (!month) month = month_from_name(m.str(2), true);
    if (month) return civil_epoch(to_int(m.str(3)), *month, to_int(m.str(1)));
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::int64_t> publication_date_ts(std::string_view date) {
  std::string s(date);
  const auto first = s.find_first_not_of(" \t\r\n\f\v");
  if (first == std::string::npos) return std::nullopt;
  s = s.substr(first, s.find_last_not_of(" \t\r\n\f\v") - first + 1);

  // 1, the common case without std::regex: the same pattern's prefix, checked by hand.
  auto digits = [&](std::size_t from, std::size_t n) {
    for (std::size_t i = from; i < from + n; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
    }
    return true;
  };
  if (s.size() >= 19 && digits(0, 4) && s[4] == '-' && digits(5, 2) && s[7] == '-' && digits(8, 2) && s[10] == 'T' &&
      digits(11, 2) && s[13] == ':' && digits(14, 2) && s[16] == ':' && digits(17, 2)) {
    return civil_epoch(to_int(s.substr(0, 4)), to_int(s.substr(5, 2)), to_int(s.substr(8, 2)));
  }
  static const std::regex iso_dt(R"(^(\d{4})-(\d{2})-(\d{2})T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?)");
  static const std::regex ymd_prefix(R"(^(\d{4})-(\d{2})-(\d{2}))");
  static const std::regex ymd_exact(R"(^(\d{4})-(\d{2})-(\d{2})$)");
  static const std::regex ymd_anywhere(R"((\d{4})-(\d{2})-(\d{2}))");
  std::smatch m;
  // 1: ISO date-time: the date part at midnight UTC.
  if (std::regex_search(s, m, iso_dt)) return civil_epoch(to_int(m.str(1)), to_int(m.str(2)), to_int(m.str(3)));
  // 2: "YYYY-MM-DD rest": the first token's date, else nothing.
  if (s.find(' ') != std::string::npos && s.size() > 10) {
    const std::string token = s.substr(0, s.find_first_of(" \t"));
    if (std::regex_search(token, m, ymd_prefix) && token.size() == 10) {
      return civil_epoch(to_int(m.str(1)), to_int(m.str(2)), to_int(m.str(3)));
    }
    return std::nullopt;
  }
  // 3: exactly YYYY-MM-DD.
  if (std::regex_match(s, m, ymd_exact)) return civil_epoch(to_int(m.str(1)), to_int(m.str(2)), to_int(m.str(3)));
  // 4: the listed formats, then a date anywhere.
  if (auto ts = parse_branch4(s)) return ts;
  if (std::regex_search(s, m, ymd_anywhere)) return civil_epoch(to_int(m.str(1)), to_int(m.str(2)), to_int(m.str(3)));
  return std::nullopt;
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
