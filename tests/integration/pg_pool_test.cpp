// SPDX-License-Identifier: Apache-2.0
// The connection pool against a real server: size + overflow bound, checkout timeout, overflow
// connections closed on release, recycle age, broken connections replaced.
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "pg/pg_conn.hpp"
#include "pg/pg_pool.hpp"
#include "support/pg_fixture.hpp"

namespace vstore::pg {
namespace {

using testing::PgServer;

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override { m_db = PgServer::instance().create_database("pool"); }
  void TearDown() override { PgServer::instance().drop_database(m_db); }
  std::string m_db;
};

// The session options a user gives (in the conninfo, else in PGOPTIONS) reach the server
// together with vstore's own time zone, rather than being replaced by it.
TEST_F(PoolTest, TheUsersSessionOptionsAreKeptBesideTheUtcTimeZone) {
  auto show = [](Connection& c, const char* name) {
    auto r = c.exec(std::string("SHOW ") + name);
    EXPECT_TRUE(r.has_value());
    return r ? r->text(0, 0) : std::string();
  };
  {
    auto c = Connection::connect(m_db + " options='-c statement_timeout=4321'");
    ASSERT_TRUE(c.has_value()) << c.error().to_string();
    EXPECT_EQ(show(*c, "statement_timeout"), "4321ms");
    EXPECT_EQ(show(*c, "TimeZone"), "UTC");
  }
  ASSERT_EQ(setenv("PGOPTIONS", "-c lock_timeout=2345", 1), 0);
  auto c = Connection::connect(m_db);
  unsetenv("PGOPTIONS");
  ASSERT_TRUE(c.has_value()) << c.error().to_string();
  EXPECT_EQ(show(*c, "lock_timeout"), "2345ms");
  EXPECT_EQ(show(*c, "TimeZone"), "UTC");
}

TEST_F(PoolTest, NeverOpensMoreThanSizePlusOverflowAndTimesOutWhenExhausted) {
  PoolConfig cfg;
  cfg.size = 2;
  cfg.max_overflow = 1;
  cfg.timeout = std::chrono::seconds(1);
  Pool pool(m_db, cfg);
  std::vector<Lease> leases;
  for (int i = 0; i < 3; ++i) {
    auto lease = pool.acquire();
    ASSERT_TRUE(lease) << lease.error().to_string();
    leases.push_back(std::move(*lease));
  }
  EXPECT_EQ(pool.open_count(), 3);
  const auto start = std::chrono::steady_clock::now();
  auto fourth = pool.acquire();
  ASSERT_FALSE(fourth);
  EXPECT_EQ(fourth.error().code(), ErrorCode::timeout);
  EXPECT_NE(fourth.error().message().find("DB_POOL_SIZE=2"), std::string::npos);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  leases.clear();
  // The overflow connection was closed; `size` idle ones are kept.
  EXPECT_EQ(pool.open_count(), 2);
}

TEST_F(PoolTest, AWaiterGetsTheConnectionReleasedByAnotherThread) {
  PoolConfig cfg;
  cfg.size = 1;
  cfg.max_overflow = 0;
  cfg.timeout = std::chrono::seconds(10);
  Pool pool(m_db, cfg);
  auto first = pool.acquire();
  ASSERT_TRUE(first);
  std::thread releaser([lease = std::move(*first)]() mutable {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto res = lease->exec("SELECT 1");
    EXPECT_TRUE(res);
  });
  auto second = pool.acquire();
  releaser.join();
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(pool.open_count(), 1);
}

TEST_F(PoolTest, RecycleReplacesOldConnectionsAndBrokenOnesAreDropped) {
  PoolConfig cfg;
  cfg.size = 1;
  cfg.max_overflow = 0;
  cfg.recycle = std::chrono::seconds(1);
  Pool pool(m_db, cfg);
  std::string pid1;
  {
    auto lease = pool.acquire();
    ASSERT_TRUE(lease);
    pid1 = (*lease)->exec("SELECT pg_backend_pid()")->text(0, 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  std::string pid2;
  {
    auto lease = pool.acquire();
    ASSERT_TRUE(lease);
    pid2 = (*lease)->exec("SELECT pg_backend_pid()")->text(0, 0);
    // Kill our own backend: the error poisons the connection and the pool drops it.
    auto killed = (*lease)->exec("SELECT pg_terminate_backend(pg_backend_pid())");
    EXPECT_FALSE(killed);
    if (!killed) {
      EXPECT_TRUE(killed.error().connection_poisoned()) << killed.error().to_string();
    }
  }
  EXPECT_NE(pid1, pid2);
  EXPECT_EQ(pool.open_count(), 0);
  auto again = pool.acquire();
  ASSERT_TRUE(again);
  EXPECT_TRUE((*again)->exec("SELECT 1"));
}

TEST_F(PoolTest, UnreachableServerIsUnavailableAndNamesItWithoutPassword) {
  PoolConfig cfg;
  Pool pool("postgresql://vstore:s3cret@127.0.0.1:1/nope", cfg);
  auto lease = pool.acquire();
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code(), ErrorCode::unavailable);
  EXPECT_EQ(lease.error().message().find("s3cret"), std::string::npos) << lease.error().message();
  EXPECT_NE(lease.error().message().find("127.0.0.1"), std::string::npos);
  EXPECT_EQ(pool.open_count(), 0);
}

}  // namespace
}  // namespace vstore::pg
