// SPDX-License-Identifier: Apache-2.0
// The record checks shared by every write path (see write_check.hpp).
#include "vstore/write_check.hpp"

#include <unordered_set>

#include <fmt/format.h>

#include "core/text.hpp"
#include "vstore/utf8.hpp"
#include "vstore/vector_check.hpp"

namespace vstore {
namespace {

Result<void> check_json_at(const nlohmann::json& value, std::string_view uri, const std::string& path) {
  if (value.is_string()) return check_text(value.get_ref<const std::string&>(), uri, path);
  if (value.is_array()) {
    for (std::size_t idx = 0; idx < value.size(); ++idx) {
      VS_TRY(check_json_at(value[idx], uri, fmt::format("{}[{}]", path, idx)));
    }
  } else if (value.is_object()) {
    for (const auto& [key, element] : value.items()) {
      VS_TRY(check_text(key, uri, fmt::format("{} (a key)", path)));
      VS_TRY(check_json_at(element, uri, fmt::format("{}.{}", path, key)));
    }
  }
  return {};
}

}  // namespace

std::string quoted_uri(std::string_view uri) {
  return nlohmann::json(std::string(uri)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Result<void> check_text(std::string_view text, std::string_view uri, std::string_view field) {
  if (const auto bad = first_invalid_utf8(text)) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("article {}: field {} is not valid UTF-8 at offset {} (byte 0x{:02X})", quoted_uri(uri), field, *bad,
                            static_cast<unsigned char>(text[*bad])));
  }
  const std::size_t at = text.find('\0');
  if (at == std::string_view::npos) return {};
  return fail(ErrorCode::invalid_argument,
              fmt::format("article {}: field {} holds a NUL byte at offset {}, which PostgreSQL cannot store",
                          quoted_uri(uri), field, at));
}

Result<void> check_json_text(const nlohmann::json& value, std::string_view uri, std::string_view field) {
  return check_json_at(value, uri, std::string(field));
}

Result<void> check_article_text(const Article& article) {
  VS_TRY(check_text(article.uri, article.uri, "uri"));
  struct Field {
    const char* name;
    const std::optional<std::string>& value;
  };
  const Field fields[] = {{"title", article.title},
                          {"summary", article.summary},
                          {"raw", article.raw},
                          {"topic", article.topic},
                          {"category", article.category},
                          {"news_source", article.news_source},
                          {"publication_date", article.publication_date},
                          {"sentiment", article.sentiment},
                          {"future_signal", article.future_signal},
                          {"time_to_impact", article.time_to_impact},
                          {"driver_type", article.driver_type}};
  for (const auto& field : fields) {
    if (field.value) VS_TRY(check_text(*field.value, article.uri, field.name));
  }
  if (article.tags) {
    for (std::size_t idx = 0; idx < article.tags->size(); ++idx) {
      VS_TRY(check_text((*article.tags)[idx], article.uri, fmt::format("tags[{}]", idx)));
    }
  }
  for (const auto& [key, value] : article.extra.items()) {
    VS_TRY(check_text(key, article.uri, "an extra field's name"));
    VS_TRY(check_json_text(value, article.uri, key));
  }
  return {};
}

Result<void> check_upsert_batch(std::span<const ArticleVector> items, int dimension) {
  std::unordered_set<std::string_view> seen;
  for (std::size_t item_idx = 0; item_idx < items.size(); ++item_idx) {
    const ArticleVector& item = items[item_idx];
    const std::string& uri = item.article.uri;
    if (uri.empty()) return fail(ErrorCode::invalid_argument, fmt::format("item {}: uri is empty", item_idx));
    if (is_blank_text(uri)) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("item {}: uri {} is blank; expected a uri with visible characters", item_idx, quoted_uri(uri)));
    }
    if (uri.size() > k_max_uri_bytes) {
      std::string head = quoted_uri(std::string_view(uri).substr(0, 40));
      head.insert(head.size() - 1, "...");
      return fail(ErrorCode::invalid_argument, fmt::format("item {}: uri {} is {} bytes long; expected at most {} bytes", item_idx,
                                                           head, uri.size(), k_max_uri_bytes));
    }
    if (!seen.insert(uri).second) {
      return fail(ErrorCode::invalid_argument, fmt::format("uri {} appears twice in one batch", quoted_uri(uri)));
    }
    if (item.embedding_model.empty()) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("article {}: the embedding model is not named", quoted_uri(uri)));
    }
    VS_TRY(check_vector(item.embedding, dimension, fmt::format("article {}", quoted_uri(uri))));
    VS_TRY(check_article_text(item.article));
  }
  return {};
}

}  // namespace vstore
