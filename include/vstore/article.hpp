// SPDX-License-Identifier: Apache-2.0
/// Article records: parsing from JSON, the text that gets embedded, and the stored metadata
/// (the one mapping every backend uses, per docs/reference/original-api-contract.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// Builds an Article from one JSON object (a JSON Lines record). `uri` is required; known
/// fields must be strings (or null), `tags` a list of strings or a string, `analyzed` a bool;
/// other scalar fields go to `extra`; `embedding` is ignored here. Errors: invalid_argument
/// naming the field and the JSON type found.
[[nodiscard]] Result<Article> article_from_json(const nlohmann::json& record);

/// The text to embed: the first of raw, summary, title with content (core/text.hpp); else empty.
[[nodiscard]] std::string_view document_text(const Article& article);

/// Epoch seconds (rounded down) of a publication date string as read_date() (date.hpp) reads
/// it: time and zone kept, a date alone at midnight UTC. nullopt when read_date() cannot read
/// it (the old code used the current time in its last fallback, or another date found inside
/// the text; vstore invents no date). Callers that must report such a date call read_date().
[[nodiscard]] std::optional<std::int64_t> publication_date_ts(std::string_view date);

/// The tags joined with ", " as the old code stored them ("" when there are none).
[[nodiscard]] std::string joined_tags(const Article& article);

/// The metadata stored with a vector: title, news_source, category, future_signal, sentiment,
/// time_to_impact, topic, publication_date_ts, tags (joined with ", ", always present),
/// summary, uri, driver_type, and publication_date (the source string); absent fields dropped.
[[nodiscard]] Metadata build_metadata(const Article& article);

/// `2026-11-25T00:00:00Z` for an epoch.
[[nodiscard]] std::string iso8601_utc(std::int64_t epoch_seconds);

}  // namespace vstore
