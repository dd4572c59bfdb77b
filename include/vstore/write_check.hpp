// SPDX-License-Identifier: Apache-2.0
/// The checks every write path runs before it stores records: the library upsert of each store,
/// `ingest` and `migrate-chroma` (one piece of code, so the paths cannot drift apart).
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

/// A uri as error messages show it: JSON-quoted, so control bytes (a NUL) are visible and
/// bytes that are not UTF-8 become U+FFFD. Pure; thread-safe.
[[nodiscard]] std::string quoted_uri(std::string_view uri);

/// Success when `text` is valid UTF-8 and holds no NUL byte (PostgreSQL text and jsonb can
/// store neither). Errors: invalid_argument `article "URI": field FIELD holds a NUL byte at
/// offset N, which PostgreSQL cannot store` or `article "URI": field FIELD is not valid UTF-8 at
/// offset N (byte 0xFF)`. Pure; thread-safe.
[[nodiscard]] Result<void> check_text(std::string_view text, std::string_view uri, std::string_view field);

/// check_text() over every string of a JSON value: object keys and string values, nested
/// arrays and objects included; `field` names the value ("metadata", "extra"), and the error
/// names the key path ("metadata.s"). Pure; thread-safe.
[[nodiscard]] Result<void> check_json_text(const nlohmann::json& value, std::string_view uri, std::string_view field);

/// check_text() over every text an article stores: uri, title, summary, raw, topic, category,
/// news_source, publication_date, sentiment, future_signal, time_to_impact, driver_type, each
/// tag and the keys and values of `extra`. Pure; thread-safe.
[[nodiscard]] Result<void> check_article_text(const Article& article);

/// The longest uri a store accepts, in bytes: a primary-key entry of PostgreSQL's B-tree holds
/// at most 2,704 bytes, and a longer uri failed inside the server with an internal error.
constexpr std::size_t k_max_uri_bytes = 2048;

/// The check of one upsert batch, in this order per item: a uri that is not blank
/// (is_blank_text) and at most k_max_uri_bytes long, the uri not seen
/// before in the batch, the embedding model named, the vector (check_vector: `dimension`
/// elements, finite, not all zero), then check_article_text(). Success when every item passes;
/// otherwise the first failure, invalid_argument naming the item's uri (or its index when the
/// uri is empty). Pure; thread-safe.
[[nodiscard]] Result<void> check_upsert_batch(std::span<const ArticleVector> items, int dimension);

}  // namespace vstore
