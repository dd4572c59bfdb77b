// SPDX-License-Identifier: Apache-2.0
#include "support/migrate_checks.hpp"

#include <stdlib.h>

#include <charconv>
#include <system_error>
#include <utility>

#include <gtest/gtest.h>

#include "support/pg_fixture.hpp"
#include "vstore/schema.hpp"

namespace vstore::testing {

std::string served_embeddings(const std::string& text, std::map<std::string, std::vector<float>>& out) {
  const nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.contains("ids")) return "not a get response";
  const nlohmann::json& ids = parsed["ids"];
  const std::size_t key = text.find("\"embeddings\"");
  if (key == std::string::npos) return "no embeddings in the response";
  std::size_t pos = text.find('[', key);
  int depth = 0;
  std::size_t row = 0;
  std::vector<float> current;
  while (pos < text.size()) {
    const char ch = text[pos];
    if (ch == '[') {
      ++depth;
      ++pos;
    } else if (ch == ']') {
      if (--depth == 1) {
        if (row >= ids.size()) return "more embeddings than ids";
        out[ids[row++].get<std::string>()] = std::exchange(current, {});
      }
      ++pos;
      if (depth == 0) break;
    } else if (ch == ',' || ch == ' ' || ch == '\n') {
      ++pos;
    } else {
      float f = 0;
      const auto [end, ec] = std::from_chars(text.data() + pos, text.data() + text.size(), f);
      if (ec != std::errc()) return "not a number at " + text.substr(pos, 20);
      current.push_back(f);
      pos = static_cast<std::size_t>(end - text.data());
    }
  }
  if (row != ids.size()) return "fewer embeddings than ids";
  return "";
}

void MigrateTarget::open(const std::string& name, int dim) {
  conninfo = PgServer::instance().create_database(name);
  config = test_config(conninfo, dim);
  std::string tmpl = (std::filesystem::temp_directory_path() / ("vstore-" + name + "-XXXXXX")).string();
  ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
  data = tmpl;
  config.data_dir = data;
  auto up = schema_up(conninfo, config);
  ASSERT_TRUE(up.has_value()) << up.error().to_string();
}

void MigrateTarget::close() {
  if (!conninfo.empty()) PgServer::instance().drop_database(conninfo);
  std::error_code ec;
  if (!data.empty()) std::filesystem::remove_all(data, ec);
}

}  // namespace vstore::testing
