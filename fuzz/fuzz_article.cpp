// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: JSON Lines article records as `vstore ingest` reads them.
//
// The input is a JSON Lines file. Each non-blank line goes through the library calls ingest's
// parse_record() (src/cli/cmd_data.cpp) makes, in its order: the UTF-8 check, JSON parsing,
// article_from_json(), check_article_text(), the `embedding` list read as floats and
// check_vector(); then what the stores do with a record: build_metadata() (serialised as the
// stores write it), document_text(), publication_date_ts() and iso8601_utc(), and
// check_upsert_batch() over the records that carry a vector. parse_record() itself sits in the
// CLI's translation unit and is not linked here; its own code is the glue between these calls.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/article.hpp"
#include "vstore/utf8.hpp"
#include "vstore/vector_check.hpp"
#include "vstore/write_check.hpp"

namespace {

using nlohmann::json;

[[noreturn]] void fail_check(const char* what, std::string_view detail) {
  std::fprintf(stderr, "fuzz_article: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

// One line; a record with a checked vector is added to `batch`.
void read_line(const std::string& line, std::vector<vstore::ArticleVector>& batch) {
  if (vstore::first_invalid_utf8(line)) return;
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception&) {
    return;  // ingest reports parse_error and any other json::exception as invalid_argument
  }
  auto article = vstore::article_from_json(j);
  if (!article) return;
  if (!vstore::check_article_text(*article)) return;
  // The metadata every store writes: valid UTF-8 by the line check, so the strict dump must work.
  const vstore::Metadata metadata = vstore::build_metadata(*article);
  (void)metadata.dump();
  (void)vstore::document_text(*article);
  (void)vstore::quoted_uri(article->uri);
  if (article->publication_date) {
    if (auto ts = vstore::publication_date_ts(*article->publication_date)) {
      const std::string iso = vstore::iso8601_utc(*ts);
      if (iso.empty()) fail_check("iso8601_utc gave nothing", *article->publication_date);
    }
  }
  auto it = j.find("embedding");
  if (it == j.end() || it->is_null() || !it->is_array()) return;
  vstore::Embedding e;
  for (const auto& x : *it) {
    if (!x.is_number()) return;
    e.push_back(x.get<float>());
  }
  if (!vstore::check_vector(e, static_cast<int>(e.size()), "embedding")) return;
  batch.push_back(vstore::ArticleVector{std::move(*article), std::move(e), "fuzz-model"});
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<vstore::ArticleVector> batch;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string line(text.substr(pos, end - pos));
    if (line.find_first_not_of(" \t\r") != std::string::npos) read_line(line, batch);
    pos = end + 1;
  }
  if (!batch.empty()) {
    (void)vstore::check_upsert_batch(batch, static_cast<int>(batch.front().embedding.size()));
  }
  return 0;
}
