// SPDX-License-Identifier: Apache-2.0
// Issue 27, item 4: read replicas for real. A PostgreSQL primary of the test's own and a
// streaming replica of it (EmbeddedPostgres::start_standby: pg_basebackup -R, then a hot
// standby) on this machine. Searches go to the replica while it is usable; a replica whose
// replay lags past DATABASE_READ_MAX_LAG, one that goes away, and a read URL that is a primary
// are skipped, and the reads go to the primary.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "support/own_pg.hpp"
#include "support/pg_fixture.hpp"
#include "vstore/config.hpp"
#include "vstore/embedded_pg.hpp"
#include "vstore/schema.hpp"
#include "vstore/vector_store.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::OwnPgServer;

constexpr int k_dim = 8;

ArticleVector item(const std::string& uri, int axis) {
  ArticleVector a;
  a.article.uri = uri;
  a.article.title = "Title " + uri;
  a.embedding.assign(k_dim, 0.1f);
  a.embedding[static_cast<std::size_t>(axis % k_dim)] = 1.0f;
  a.embedding_model = "test-model";
  return a;
}

// Polls `done` every 100 ms for up to `limit`; true once it held.
bool eventually(const std::function<bool()>& done, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

std::vector<std::string> ids_of(const Result<std::vector<SearchHit>>& hits) {
  std::vector<std::string> ids;
  if (hits) {
    for (const auto& h : *hits) ids.push_back(h.id);
  }
  return ids;
}

bool holds(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

json replica_state(VectorStore& store) {
  auto health = store.health();
  if (!health || !health->contains("replicas") || (*health)["replicas"].empty()) return json();
  return (*health)["replicas"][0];
}

class Issue27Replicas : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "vstore-i27rep-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    chmod(tmpl.c_str(), 0755);
    m_dir = tmpl;
    m_primary = std::make_unique<OwnPgServer>(m_dir / "primary");
    ASSERT_TRUE(m_primary->running()) << m_primary->error();
    m_primary_url = m_primary->url("vstore", m_primary->superuser_password(), "vstore");
  }
  void TearDown() override {
    if (m_standby_started) {
      EmbeddedPostgres standby(m_dir / "standby");
      (void)standby.stop();
      (void)standby.destroy();
    }
    m_primary.reset();
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

  // Starts the streaming replica; its URL (the primary's password) in m_replica_url.
  void start_standby() {
    EmbeddedOptions opts;
    opts.tcp = true;
    opts.fsync = false;
    opts.shared_buffers = "32MB";
    opts.maintenance_work_mem = "64MB";
    EmbeddedPostgres standby(m_dir / "standby");
    auto started = standby.start_standby(m_primary->root(), opts);
    ASSERT_TRUE(started) << started.error().to_string();
    m_standby_started = true;
    m_standby = *started;
    m_replica_url = fmt::format("postgresql://vstore:{}@127.0.0.1:{}/vstore",
                                testing::percent_encode(m_primary->superuser_password()), started->port);
  }

  // SQL on the standby as its superuser (over its socket): the first value, "" on error.
  std::string standby_value(const std::string& sql) {
    auto conn = pg::Connection::connect(
        fmt::format("host='{}' port={} user=vstore dbname=vstore", m_standby.socket_dir.string(), m_standby.port));
    if (!conn) return "";
    auto res = conn->exec(sql);
    return res && res->rows() > 0 ? res->text(0, 0) : "";
  }

  Config config_with(std::chrono::milliseconds max_lag, const std::string& read_url) {
    Config cfg = testing::test_config(m_primary_url, k_dim);
    cfg.database_read_urls = {read_url};
    cfg.database_read_max_lag = max_lag;
    return cfg;
  }

  fs::path m_dir;
  std::unique_ptr<OwnPgServer> m_primary;
  std::string m_primary_url;
  bool m_standby_started = false;
  EmbeddedStatus m_standby;
  std::string m_replica_url;
};

TEST_F(Issue27Replicas, SearchesGoToTheReplicaUntilItLagsOrGoesAway) {
  Config plain = testing::test_config(m_primary_url, k_dim);
  ASSERT_TRUE(schema_up(m_primary_url, plain));
  {
    auto writer = open_pg_store(m_primary_url, plain);
    ASSERT_TRUE(writer) << writer.error().to_string();
    std::vector<ArticleVector> first = {item("r:1", 0), item("r:2", 1), item("r:3", 2)};
    ASSERT_TRUE((*writer)->upsert(first));
  }
  start_standby();
  ASSERT_TRUE(m_standby_started);
  ASSERT_EQ(standby_value("SELECT pg_is_in_recovery()"), "t");
  ASSERT_TRUE(eventually([&] { return standby_value("SELECT count(*) FROM articles") == "3"; }))
      << "the replica never showed the primary's 3 rows";
  // A write after the copy, streamed: the replica's last replayed transaction dates its lag.
  {
    auto writer = open_pg_store(m_primary_url, plain);
    ASSERT_TRUE(writer) << writer.error().to_string();
    ASSERT_TRUE((*writer)->upsert(std::vector<ArticleVector>{item("r:4", 4)}));
  }
  ASSERT_TRUE(eventually([&] { return standby_value("SELECT count(*) FROM articles") == "4"; }))
      << "the replica never showed the row written after it started";

  // Store A tolerates an hour of lag, store B one second.
  auto lenient = open_pg_store(m_primary_url, config_with(std::chrono::hours(1), m_replica_url));
  ASSERT_TRUE(lenient) << lenient.error().to_string();
  auto strict = open_pg_store(m_primary_url, config_with(std::chrono::seconds(1), m_replica_url));
  ASSERT_TRUE(strict) << strict.error().to_string();
  for (VectorStore* store : {lenient->get(), strict->get()}) {
    ASSERT_TRUE(eventually([&] { return replica_state(*store).value("usable", false); }))
        << "the replica was never counted usable: " << replica_state(*store).dump();
    EXPECT_EQ(replica_state(*store)["lag_s"], 0.0) << replica_state(*store).dump();
  }

  // The replica stops replaying; a new article reaches the primary only.
  ASSERT_EQ(standby_value("SELECT 'paused' FROM pg_wal_replay_pause()"), "paused");
  ASSERT_TRUE(eventually([&] { return standby_value("SELECT pg_get_wal_replay_pause_state()") == "paused"; }));
  ASSERT_TRUE((*lenient)->upsert(std::vector<ArticleVector>{item("late", 3)}));
  SearchOptions opts;
  opts.top_k = 10;
  const std::vector<float> query = item("q", 3).embedding;

  // B: the lag passes its second and the replica is skipped; the search sees the new row.
  ASSERT_TRUE(eventually([&] { return !replica_state(**strict).value("usable", true); }))
      << replica_state(**strict).dump();
  const json skipped = replica_state(**strict);
  EXPECT_NE(skipped["problem"].get<std::string>().find("more than DATABASE_READ_MAX_LAG (1 s)"), std::string::npos)
      << skipped.dump();
  EXPECT_GT(skipped["lag_s"].get<double>(), 1.0) << skipped.dump();
  EXPECT_TRUE(holds(ids_of((*strict)->search(query, opts)), "late"));
  auto strict_health = (*strict)->health();
  ASSERT_TRUE(strict_health) << strict_health.error().to_string();
  EXPECT_TRUE((*strict_health)["healthy"].get<bool>()) << strict_health->dump();
  EXPECT_NE((*strict_health)["warnings"].dump().find("is skipped"), std::string::npos) << strict_health->dump();

  // A: the replica is still within its hour, so the search is answered there, without the row.
  EXPECT_TRUE(replica_state(**lenient).value("usable", false)) << replica_state(**lenient).dump();
  const auto on_replica = ids_of((*lenient)->search(query, opts));
  EXPECT_EQ(on_replica.size(), 4u);
  EXPECT_FALSE(holds(on_replica, "late")) << "store A's search was not answered by the paused replica";

  // Replay resumes: B takes the replica back, and both see the row.
  ASSERT_EQ(standby_value("SELECT 'resumed' FROM pg_wal_replay_resume()"), "resumed");
  ASSERT_TRUE(eventually([&] { return replica_state(**strict).value("usable", false); }))
      << replica_state(**strict).dump();
  EXPECT_TRUE(holds(ids_of((*lenient)->search(query, opts)), "late"));
  EXPECT_TRUE(holds(ids_of((*strict)->search(query, opts)), "late"));

  // The replica goes away: the next reads fail over to the primary, and it is skipped.
  EmbeddedPostgres standby(m_dir / "standby");
  ASSERT_TRUE(standby.stop());
  for (int i = 0; i < 3; ++i) {
    auto hits = (*lenient)->search(query, opts);
    ASSERT_TRUE(hits) << hits.error().to_string();
    EXPECT_TRUE(holds(ids_of(hits), "late"));
  }
  ASSERT_TRUE(eventually([&] { return !replica_state(**lenient).value("usable", true); }));
  EXPECT_FALSE(replica_state(**lenient)["problem"].is_null()) << replica_state(**lenient).dump();
  auto similar = (*lenient)->similar("late", {.top_k = 2});
  ASSERT_TRUE(similar) << similar.error().to_string();
}

TEST_F(Issue27Replicas, AReadUrlThatIsAPrimaryIsSkipped) {
  Config plain = testing::test_config(m_primary_url, k_dim);
  ASSERT_TRUE(schema_up(m_primary_url, plain));
  auto store = open_pg_store(m_primary_url, config_with(std::chrono::seconds(10), m_primary_url));
  ASSERT_TRUE(store) << store.error().to_string();
  ASSERT_TRUE(eventually([&] { return replica_state(**store).value("checked", false); }));
  const json state = replica_state(**store);
  EXPECT_FALSE(state["usable"].get<bool>()) << state.dump();
  EXPECT_EQ(state["standby"], false) << state.dump();
  EXPECT_NE(state["problem"].get<std::string>().find("not in recovery"), std::string::npos) << state.dump();
  EXPECT_EQ(state.dump().find(m_primary->superuser_password()), std::string::npos) << "the password was shown";
  ASSERT_TRUE((*store)->upsert(std::vector<ArticleVector>{item("p:1", 0)}));
  SearchOptions opts;
  opts.top_k = 5;
  EXPECT_TRUE(holds(ids_of((*store)->search(item("q", 0).embedding, opts)), "p:1"));
}

}  // namespace
}  // namespace vstore
