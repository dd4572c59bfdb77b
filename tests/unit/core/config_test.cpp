// SPDX-License-Identifier: Apache-2.0
// Unit tests for config.cpp: defaults, every variable's checks, .env parsing and URL redaction.
#include "vstore/config.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

namespace vstore {
namespace {

namespace fs = std::filesystem;

// The message of the error load_config(env) returns; records a failure if it succeeds.
std::string error_of(const Environment& env) {
  const Result<Config> config = load_config(env);
  if (config) {
    ADD_FAILURE() << "expected load_config to fail";
    return {};
  }
  EXPECT_EQ(config.error().code(), ErrorCode::invalid_argument);
  return config.error().message();
}

// load_config(env), recording a failure (with the message) when it fails.
Config loaded(const Environment& env) {
  Result<Config> config = load_config(env);
  if (!config) {
    ADD_FAILURE() << "unexpected error: " << config.error().message();
    return Config{};
  }
  return *std::move(config);
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

#define EXPECT_CONTAINS(text, part) EXPECT_TRUE(contains((text), (part))) << "message: " << (text)
#define EXPECT_NOT_CONTAINS(text, part) EXPECT_FALSE(contains((text), (part))) << "message: " << (text)

// ---------------------------------------------------------------------------------------------
// Defaults

TEST(Config, EmptyEnvironmentGivesTheDefaultsOfProductMd) {
  const Config config = loaded({});
  EXPECT_FALSE(config.database_url.has_value());
  EXPECT_TRUE(config.database_read_urls.empty());
  EXPECT_EQ(config.backend, BackendKind::pgvector);
  EXPECT_EQ(config.primary, BackendKind::pgvector);
  EXPECT_EQ(config.table, "articles");
  EXPECT_EQ(config.pgvector.index_type, IndexType::hnsw);
  EXPECT_EQ(config.pgvector.hnsw_m, 16);
  EXPECT_EQ(config.pgvector.hnsw_ef_construction, 64);
  EXPECT_EQ(config.pgvector.hnsw_ef_search, 40);
  EXPECT_EQ(config.pgvector.ivfflat_lists, 100);
  EXPECT_EQ(config.pgvector.ivfflat_probes, 10);
  EXPECT_EQ(config.pool.size, 20);
  EXPECT_EQ(config.pool.max_overflow, 10);
  EXPECT_EQ(config.pool.timeout, std::chrono::seconds(30));
  EXPECT_EQ(config.pool.recycle, std::chrono::seconds(3600));
  EXPECT_EQ(config.chroma_url, "");
  EXPECT_EQ(config.chroma_token, "");
  EXPECT_EQ(config.chroma_db_dir, "chromadb");
  EXPECT_EQ(config.chroma_collection, "articles");
  EXPECT_EQ(config.embedding_provider, "local");
  EXPECT_EQ(config.embedding_model, "all-MiniLM-L6-v2");
  EXPECT_EQ(config.embedding_dim, 384);
  EXPECT_EQ(config.openai_api_key, "");
  EXPECT_EQ(config.openai_base_url, "");
  EXPECT_EQ(config.data_dir, fs::current_path() / ".vstore");
  EXPECT_FALSE(config.model_dir.has_value());
  EXPECT_EQ(config.http_addr, "127.0.0.1:8080");
  EXPECT_EQ(config.api_token, "");
}

TEST(Config, EmptyValuesCountAsUnset) {
  Environment env;
  for (const char* name :
       {"DATABASE_URL", "DATABASE_READ_URLS", "DATABASE_READ_MAX_LAG", "VECTOR_BACKEND", "VECTOR_PRIMARY", "VSTORE_TABLE",
        "PGVECTOR_INDEX_TYPE", "PGVECTOR_HNSW_M", "PGVECTOR_HNSW_EF_CONSTRUCTION", "PGVECTOR_HNSW_EF_SEARCH",
        "PGVECTOR_IVFFLAT_LISTS", "PGVECTOR_IVFFLAT_PROBES", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "DB_POOL_TIMEOUT",
        "DB_POOL_RECYCLE", "CHROMA_URL", "CHROMA_TOKEN", "CHROMA_DB_DIR", "CHROMA_COLLECTION", "CHROMA_TIMEOUT", "EMBEDDING_PROVIDER",
        "EMBEDDING_MODEL", "EMBEDDING_DIM", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_TIMEOUT", "VSTORE_DATA_DIR",
        "VSTORE_MODEL_DIR", "VSTORE_HTTP_ADDR", "VSTORE_API_TOKEN"}) {
    env[name] = "";
  }
  const Config config = loaded(env);
  EXPECT_FALSE(config.database_url.has_value());
  EXPECT_EQ(config.table, "articles");
  EXPECT_EQ(config.pgvector.hnsw_m, 16);
  EXPECT_EQ(config.pool.recycle, std::chrono::seconds(3600));
  EXPECT_EQ(config.chroma_timeout, std::chrono::seconds(60));
  EXPECT_EQ(config.openai_timeout, std::chrono::seconds(60));
  EXPECT_EQ(config.chroma_db_dir, "chromadb");
  EXPECT_EQ(config.embedding_dim, 384);
  EXPECT_EQ(config.data_dir, fs::current_path() / ".vstore");
  EXPECT_FALSE(config.model_dir.has_value());
  EXPECT_EQ(config.http_addr, "127.0.0.1:8080");
}

TEST(Config, IgnoresUnknownVariables) {
  const Config config = loaded({{"PATH", "/usr/bin"}, {"SOME_OTHER_TOOL_SETTING", "x y z"}});
  EXPECT_EQ(config.table, "articles");
}

// ---------------------------------------------------------------------------------------------
// Integers

struct IntegerCase {
  const char* name;
  long long min;
  long long max;
  Environment context;  // other variables that make both ends of the range consistent
  std::function<long long(const Config&)> field;
};

std::vector<IntegerCase> integer_cases() {
  return {
      {"PGVECTOR_HNSW_M", 2, 100, {{"PGVECTOR_HNSW_EF_CONSTRUCTION", "1000"}},
       [](const Config& c) { return c.pgvector.hnsw_m; }},
      {"PGVECTOR_HNSW_EF_CONSTRUCTION", 4, 1000, {{"PGVECTOR_HNSW_M", "2"}},
       [](const Config& c) { return c.pgvector.hnsw_ef_construction; }},
      {"PGVECTOR_HNSW_EF_SEARCH", 1, 1000, {}, [](const Config& c) { return c.pgvector.hnsw_ef_search; }},
      {"PGVECTOR_IVFFLAT_LISTS", 1, 32768, {{"PGVECTOR_IVFFLAT_PROBES", "1"}},
       [](const Config& c) { return c.pgvector.ivfflat_lists; }},
      {"PGVECTOR_IVFFLAT_PROBES", 1, 32768, {{"PGVECTOR_IVFFLAT_LISTS", "32768"}},
       [](const Config& c) { return c.pgvector.ivfflat_probes; }},
      {"DB_POOL_SIZE", 1, 1000, {}, [](const Config& c) { return c.pool.size; }},
      {"DB_MAX_OVERFLOW", 0, 1000, {}, [](const Config& c) { return c.pool.max_overflow; }},
      {"DB_POOL_TIMEOUT", 1, 3600, {}, [](const Config& c) { return c.pool.timeout.count(); }},
      {"DB_POOL_RECYCLE", 1, 604800, {}, [](const Config& c) { return c.pool.recycle.count(); }},
      {"EMBEDDING_DIM", 1, 16000, {{"EMBEDDING_PROVIDER", "hash"}},
       [](const Config& c) { return c.embedding_dim; }},
  };
}

TEST(Config, AcceptsEveryIntegerVariableAtBothEndsOfItsRange) {
  for (const IntegerCase& test_case : integer_cases()) {
    for (const long long value : {test_case.min, test_case.max}) {
      SCOPED_TRACE(std::string(test_case.name) + "=" + std::to_string(value));
      Environment env = test_case.context;
      env[test_case.name] = std::to_string(value);
      EXPECT_EQ(test_case.field(loaded(env)), value);
    }
  }
}

TEST(Config, RejectsIntegerVariablesOutsideTheirRangeNamingVariableValueAndRange) {
  for (const IntegerCase& test_case : integer_cases()) {
    for (const long long value : {test_case.min - 1, test_case.max + 1}) {
      if (std::string_view(test_case.name) == "DB_POOL_RECYCLE" && value == 0) {
        continue;  // covered by RejectsZeroPoolRecycle
      }
      SCOPED_TRACE(std::string(test_case.name) + "=" + std::to_string(value));
      Environment env = test_case.context;
      env[test_case.name] = std::to_string(value);
      const std::string message = error_of(env);
      EXPECT_CONTAINS(message, std::string(test_case.name) + "=\"" + std::to_string(value) + "\"");
      EXPECT_CONTAINS(message, "from " + std::to_string(test_case.min) + " to " + std::to_string(test_case.max));
    }
  }
}

TEST(Config, RejectsNonIntegerHnswMNamingTheValue) {
  EXPECT_EQ(error_of({{"PGVECTOR_HNSW_M", "abc"}}), "PGVECTOR_HNSW_M=\"abc\": expected an integer from 2 to 100");
}

TEST(Config, RejectsIntegersWithJunkSignsSpacesFractionsOrOverflow) {
  for (const IntegerCase& test_case : integer_cases()) {
    for (const char* text : {"abc", "12abc", "16 ", " 16", "+16", "1.5", "1e3", "0x10", "-",
                             "99999999999999999999", "-99999999999999999999"}) {
      SCOPED_TRACE(std::string(test_case.name) + "=" + text);
      Environment env = test_case.context;
      env[test_case.name] = text;
      const std::string message = error_of(env);
      EXPECT_CONTAINS(message, std::string(test_case.name) + "=\"" + text + "\": expected");
      EXPECT_CONTAINS(message, "integer from");
    }
  }
}

TEST(Config, AcceptsMinusOneAsPoolRecycleMeaningNever) {
  EXPECT_EQ(loaded({{"DB_POOL_RECYCLE", "-1"}}).pool.recycle, std::chrono::seconds(-1));
}

TEST(Config, RejectsZeroPoolRecycle) {
  EXPECT_EQ(error_of({{"DB_POOL_RECYCLE", "0"}}),
            "DB_POOL_RECYCLE=\"0\": expected -1 (never recycle) or an integer from 1 to 604800 (seconds)");
  EXPECT_CONTAINS(error_of({{"DB_POOL_RECYCLE", "-2"}}), "DB_POOL_RECYCLE=\"-2\"");
}

TEST(Config, AcceptsLeadingZerosInIntegers) {
  EXPECT_EQ(loaded({{"PGVECTOR_HNSW_M", "016"}}).pgvector.hnsw_m, 16);
}

TEST(Config, RejectsEfConstructionBelowTwiceMAsPgvectorDoes) {
  const std::string message = error_of({{"PGVECTOR_HNSW_M", "16"}, {"PGVECTOR_HNSW_EF_CONSTRUCTION", "20"}});
  EXPECT_CONTAINS(message, "PGVECTOR_HNSW_EF_CONSTRUCTION=\"20\"");
  EXPECT_CONTAINS(message, "from 32 (2 * PGVECTOR_HNSW_M=16) to 1000");
  EXPECT_NOT_CONTAINS(message, "default");
}

TEST(Config, RejectsLargeHnswMAgainstTheDefaultEfConstructionSayingItIsTheDefault) {
  const std::string message = error_of({{"PGVECTOR_HNSW_M", "40"}});
  EXPECT_CONTAINS(message, "PGVECTOR_HNSW_EF_CONSTRUCTION=\"64\"");
  EXPECT_CONTAINS(message, "from 80");
  EXPECT_CONTAINS(message, "default");
}

TEST(Config, AcceptsEfConstructionOfExactlyTwiceM) {
  const Config config = loaded({{"PGVECTOR_HNSW_M", "40"}, {"PGVECTOR_HNSW_EF_CONSTRUCTION", "80"}});
  EXPECT_EQ(config.pgvector.hnsw_ef_construction, 80);
}

TEST(Config, RejectsIvfflatProbesAboveLists) {
  const std::string message = error_of({{"PGVECTOR_IVFFLAT_LISTS", "50"}, {"PGVECTOR_IVFFLAT_PROBES", "51"}});
  EXPECT_EQ(message, "PGVECTOR_IVFFLAT_PROBES=\"51\": expected an integer from 1 to PGVECTOR_IVFFLAT_LISTS=50");
}

TEST(Config, RejectsFewListsAgainstTheDefaultProbesSayingItIsTheDefault) {
  const std::string message = error_of({{"PGVECTOR_IVFFLAT_LISTS", "5"}});
  EXPECT_CONTAINS(message, "PGVECTOR_IVFFLAT_PROBES=\"10\"");
  EXPECT_CONTAINS(message, "PGVECTOR_IVFFLAT_LISTS=5");
  EXPECT_CONTAINS(message, "default");
}

TEST(Config, AcceptsProbesEqualToLists) {
  const Config config = loaded({{"PGVECTOR_IVFFLAT_LISTS", "7"}, {"PGVECTOR_IVFFLAT_PROBES", "7"}});
  EXPECT_EQ(config.pgvector.ivfflat_lists, 7);
  EXPECT_EQ(config.pgvector.ivfflat_probes, 7);
}

// ---------------------------------------------------------------------------------------------
// Enumerations

TEST(Config, ReadsVectorBackendInAnyCase) {
  EXPECT_EQ(loaded({{"VECTOR_BACKEND", "PgVector"}}).backend, BackendKind::pgvector);
  EXPECT_EQ(loaded({{"VECTOR_BACKEND", "CHROMADB"}}).backend, BackendKind::chromadb);
  EXPECT_EQ(loaded({{"VECTOR_BACKEND", "dual"}}).backend, BackendKind::dual);
}

TEST(Config, RejectsUnknownVectorBackendListingTheAllowedSet) {
  EXPECT_EQ(error_of({{"VECTOR_BACKEND", "mongo"}}),
            "VECTOR_BACKEND=\"mongo\": expected pgvector, chromadb or dual (any case)");
}

TEST(Config, ReadsVectorPrimaryButNotDual) {
  EXPECT_EQ(loaded({{"VECTOR_PRIMARY", "ChromaDB"}}).primary, BackendKind::chromadb);
  EXPECT_EQ(error_of({{"VECTOR_PRIMARY", "dual"}}), "VECTOR_PRIMARY=\"dual\": expected pgvector or chromadb (any case)");
}

TEST(Config, ReadsIndexTypeInAnyCase) {
  EXPECT_EQ(loaded({{"PGVECTOR_INDEX_TYPE", "IVFFlat"}}).pgvector.index_type, IndexType::ivfflat);
  EXPECT_EQ(loaded({{"PGVECTOR_INDEX_TYPE", "NONE"}}).pgvector.index_type, IndexType::none);
  EXPECT_EQ(loaded({{"PGVECTOR_INDEX_TYPE", "hnsw"}}).pgvector.index_type, IndexType::hnsw);
}

TEST(Config, RejectsUnknownIndexTypeListingTheAllowedSet) {
  EXPECT_EQ(error_of({{"PGVECTOR_INDEX_TYPE", "diskann"}}),
            "PGVECTOR_INDEX_TYPE=\"diskann\": expected hnsw, ivfflat or none (any case)");
}

TEST(Config, StoresEmbeddingProviderLowerCase) {
  EXPECT_EQ(loaded({{"EMBEDDING_PROVIDER", "HASH"}}).embedding_provider, "hash");
  const Config config = loaded({{"EMBEDDING_PROVIDER", "OpenAI"}, {"OPENAI_API_KEY", "sk-test"}});
  EXPECT_EQ(config.embedding_provider, "openai");
  EXPECT_EQ(config.openai_api_key, "sk-test");
}

TEST(Config, RejectsUnknownEmbeddingProviderListingTheAllowedSet) {
  EXPECT_EQ(error_of({{"EMBEDDING_PROVIDER", "cohere"}}),
            "EMBEDDING_PROVIDER=\"cohere\": expected local, openai or hash (any case)");
}

TEST(Config, RejectsOpenaiProviderWithoutApiKeySayingWhatToSet) {
  const std::string message = error_of({{"EMBEDDING_PROVIDER", "openai"}});
  EXPECT_CONTAINS(message, "OPENAI_API_KEY");
  EXPECT_CONTAINS(message, "EMBEDDING_PROVIDER=openai");
  EXPECT_CONTAINS(message, "set OPENAI_API_KEY");
}

TEST(Config, NamesEveryKindAsTheVariablesSpellIt) {
  EXPECT_EQ(to_string(BackendKind::pgvector), "pgvector");
  EXPECT_EQ(to_string(BackendKind::chromadb), "chromadb");
  EXPECT_EQ(to_string(BackendKind::dual), "dual");
  EXPECT_EQ(to_string(IndexType::hnsw), "hnsw");
  EXPECT_EQ(to_string(IndexType::ivfflat), "ivfflat");
  EXPECT_EQ(to_string(IndexType::none), "none");
}

// ---------------------------------------------------------------------------------------------
// Table, collection, embedding model

TEST(Config, AcceptsPlainTableIdentifiersUpTo63Characters) {
  EXPECT_EQ(loaded({{"VSTORE_TABLE", "news_2024"}}).table, "news_2024");
  EXPECT_EQ(loaded({{"VSTORE_TABLE", "_staging"}}).table, "_staging");
  const std::string longest = "a" + std::string(62, '9');
  EXPECT_EQ(loaded({{"VSTORE_TABLE", longest}}).table, longest);
}

TEST(Config, RejectsTableNamesThatAreNotPlainIdentifiers) {
  for (const std::string& name : std::vector<std::string>{"Articles", "1abc", "a-b", "a b", "articles;drop", "a\"b", std::string(64, 'a')}) {
    SCOPED_TRACE(name);
    const std::string message = error_of({{"VSTORE_TABLE", name}});
    EXPECT_CONTAINS(message, "VSTORE_TABLE=\"" + (name == "a\"b" ? std::string("a\\\"b") : name) + "\"");
    EXPECT_CONTAINS(message, "[a-z_][a-z0-9_]{0,62}");
  }
}

TEST(Config, RejectsReservedWordsAsTableName) {
  const std::string message = error_of({{"VSTORE_TABLE", "select"}});
  EXPECT_CONTAINS(message, "VSTORE_TABLE=\"select\"");
  EXPECT_CONTAINS(message, "reserved word");
  EXPECT_EQ(loaded({{"VSTORE_TABLE", "documents"}}).table, "documents");
}

TEST(Config, AcceptsChromaCollectionNamesChromaAllows) {
  EXPECT_EQ(loaded({{"CHROMA_COLLECTION", "news.articles-2024_v2"}}).chroma_collection, "news.articles-2024_v2");
  EXPECT_EQ(loaded({{"CHROMA_COLLECTION", "abc"}}).chroma_collection, "abc");
}

TEST(Config, RejectsChromaCollectionNamesChromaRefuses) {
  for (const std::string& name : std::vector<std::string>{"ab", "-abc", "abc-", "a b c", "abc/def", std::string(513, 'a')}) {
    SCOPED_TRACE(name.substr(0, 20));
    const std::string message = error_of({{"CHROMA_COLLECTION", name}});
    EXPECT_CONTAINS(message, "CHROMA_COLLECTION=\"" + name + "\"");
    EXPECT_CONTAINS(message, "3 to 512 characters from [A-Za-z0-9._-]");
  }
}

TEST(Config, RejectsADimensionTheLocalMiniLmModelDoesNotProduce) {
  const std::string message = error_of({{"EMBEDDING_DIM", "768"}});
  EXPECT_CONTAINS(message, "EMBEDDING_DIM=\"768\"");
  EXPECT_CONTAINS(message, "expected 384");
  EXPECT_CONTAINS(error_of({{"EMBEDDING_MODEL", "sentence-transformers/all-minilm-l6-v2"}, {"EMBEDDING_DIM", "512"}}),
                  "EMBEDDING_DIM=\"512\"");
}

TEST(Config, AcceptsAnyDimensionForOtherModelsAndProviders) {
  EXPECT_EQ(loaded({{"EMBEDDING_MODEL", "bge-base-en"}, {"EMBEDDING_DIM", "768"}}).embedding_dim, 768);
  EXPECT_EQ(loaded({{"EMBEDDING_PROVIDER", "hash"}, {"EMBEDDING_DIM", "64"}}).embedding_dim, 64);
  const Config openai = loaded({{"EMBEDDING_PROVIDER", "openai"},
                                {"OPENAI_API_KEY", "sk-x"},
                                {"EMBEDDING_MODEL", "text-embedding-3-small"},
                                {"EMBEDDING_DIM", "1536"}});
  EXPECT_EQ(openai.embedding_model, "text-embedding-3-small");
  EXPECT_EQ(openai.embedding_dim, 1536);
}

TEST(Config, KeepsFreeFormValuesAsGiven) {
  const Config config = loaded({{"CHROMA_DB_DIR", "/srv/chroma data"},
                                {"CHROMA_TOKEN", "tok en"},
                                {"VSTORE_API_TOKEN", "s3cr3t"},
                                {"EMBEDDING_MODEL", "all-MiniLM-L6-v2"}});
  EXPECT_EQ(config.chroma_db_dir, "/srv/chroma data");
  EXPECT_EQ(config.chroma_token, "tok en");
  EXPECT_EQ(config.api_token, "s3cr3t");
}

TEST(Config, RejectsControlCharactersInSecretsWithoutShowingThem) {
  for (const char* name : {"CHROMA_TOKEN", "VSTORE_API_TOKEN", "OPENAI_API_KEY"}) {
    SCOPED_TRACE(name);
    const std::string message = error_of({{name, "hunter2\n"}});
    EXPECT_CONTAINS(message, name);
    EXPECT_CONTAINS(message, "control characters");
    EXPECT_NOT_CONTAINS(message, "hunter2");
  }
}

TEST(Config, RejectsControlCharactersInOtherValuesShowingThemEscaped) {
  EXPECT_EQ(error_of({{"EMBEDDING_MODEL", "model\n"}}),
            "EMBEDDING_MODEL=\"model\\n\": expected no control characters such as line breaks");
}

// ---------------------------------------------------------------------------------------------
// Database URLs

TEST(Config, AcceptsPostgresUrlsAndConninfoStrings) {
  for (const char* url : {"postgresql://user:pw@db.example.com:5432/news?sslmode=require", "postgres://localhost/db",
                          "postgresql://", "postgresql://u@h1:5432,h2:5433/db", "host=localhost dbname=news",
                          "host=/tmp port=5432 password='a b\\'c'", "dbname = news"}) {
    SCOPED_TRACE(url);
    EXPECT_EQ(loaded({{"DATABASE_URL", url}}).database_url, std::optional<std::string>(url));
  }
}

TEST(Config, RejectsOtherDatabaseUrlsNamingTheRedactedValue) {
  const std::string message = error_of({{"DATABASE_URL", "mysql://root:hunter2@db/news"}});
  EXPECT_EQ(message,
            "DATABASE_URL=\"mysql://root:***@db/news\": expected a postgresql:// or postgres:// URL or a libpq "
            "key=value connection string (scheme \"mysql\" is not supported)");
}

TEST(Config, RejectsDatabaseUrlsThatAreNeitherUrlNorConninfo) {
  for (const char* url : {"localhost:5432", "news", "postgresql:/localhost", "postgresql://h/db name",
                          "host=x password='hunter2", "host=x = y"}) {
    SCOPED_TRACE(url);
    const std::string message = error_of({{"DATABASE_URL", url}});
    EXPECT_CONTAINS(message, "DATABASE_URL=\"");
    EXPECT_CONTAINS(message, "expected a postgresql:// or postgres:// URL or a libpq key=value connection string");
    EXPECT_NOT_CONTAINS(message, "hunter2");
  }
}

TEST(Config, SplitsReadUrlsAtCommasAndTrimsThem) {
  const Config config = loaded({{"DATABASE_READ_URLS", "postgresql://r1/db , postgres://r2/db,host=r3 dbname=db"}});
  EXPECT_EQ(config.database_read_urls,
            (std::vector<std::string>{"postgresql://r1/db", "postgres://r2/db", "host=r3 dbname=db"}));
}

TEST(Config, ReadsTheReplicaLagLimitAsADuration) {
  EXPECT_EQ(loaded({}).database_read_max_lag, std::chrono::milliseconds(10000));
  EXPECT_EQ(loaded({{"DATABASE_READ_MAX_LAG", "3"}}).database_read_max_lag, std::chrono::milliseconds(3000));
  EXPECT_EQ(loaded({{"DATABASE_READ_MAX_LAG", "250ms"}}).database_read_max_lag, std::chrono::milliseconds(250));
  EXPECT_EQ(loaded({{"DATABASE_READ_MAX_LAG", "2min"}}).database_read_max_lag, std::chrono::milliseconds(120000));
  EXPECT_EQ(loaded({{"DATABASE_READ_MAX_LAG", "0"}}).database_read_max_lag, std::chrono::milliseconds(0));
  for (const char* bad : {"-1", "ten", "5h", "25min1", "86401"}) {
    SCOPED_TRACE(bad);
    const std::string message = error_of({{"DATABASE_READ_MAX_LAG", bad}});
    EXPECT_CONTAINS(message, "DATABASE_READ_MAX_LAG=\"" + std::string(bad) + "\"");
    EXPECT_CONTAINS(message, "expected a replica's largest replay lag");
  }
}

TEST(Config, KeepsMultiHostReadUrlsWhole) {
  const Config config =
      loaded({{"DATABASE_READ_URLS", "postgresql://h1:5432,h2:5433/db?target_session_attrs=any,postgresql://r2/db"}});
  EXPECT_EQ(config.database_read_urls,
            (std::vector<std::string>{"postgresql://h1:5432,h2:5433/db?target_session_attrs=any", "postgresql://r2/db"}));
  EXPECT_EQ(loaded({{"DATABASE_READ_URLS", "host=a,b port=5432,host=c"}}).database_read_urls,
            (std::vector<std::string>{"host=a,b port=5432", "host=c"}));
}

TEST(Config, RejectsABadReadUrlNamingItsPositionAndRedactedValue) {
  const std::string message = error_of({{"DATABASE_READ_URLS", "postgresql://r1/db,redis://u:hunter2@r2"}});
  EXPECT_CONTAINS(message, "DATABASE_READ_URLS[2]=\"redis://u:***@r2\"");
  EXPECT_CONTAINS(message, "expected a postgresql:// or postgres:// URL");
  EXPECT_NOT_CONTAINS(message, "hunter2");
}

TEST(Config, RejectsEmptyReadUrlEntries) {
  EXPECT_CONTAINS(error_of({{"DATABASE_READ_URLS", "postgresql://r1/db,,postgresql://r2/db"}}),
                  "DATABASE_READ_URLS[2]=\"\"");
  EXPECT_CONTAINS(error_of({{"DATABASE_READ_URLS", "postgresql://r1/db,"}}), "DATABASE_READ_URLS[2]=\"\"");
  EXPECT_CONTAINS(error_of({{"DATABASE_READ_URLS", ",postgresql://r1/db"}}), "DATABASE_READ_URLS[1]=\"\"");
}

// ---------------------------------------------------------------------------------------------
// HTTP URLs and addresses

TEST(Config, AcceptsHttpChromaUrls) {
  for (const char* url : {"http://localhost:8000", "https://chroma.example.com", "https://chroma.example.com/api/v2",
                          "http://[::1]:8000", "http://10.0.0.5:80/"}) {
    SCOPED_TRACE(url);
    EXPECT_EQ(loaded({{"CHROMA_URL", url}}).chroma_url, url);
  }
}

TEST(Config, RejectsMalformedChromaUrlsSayingWhatIsAllowed) {
  for (const char* url : {"localhost:8000", "ftp://h", "HTTP://h", "http://", "http://h:0", "http://h:70000",
                          "http://h:80x", "http://h/x?y=1", "http://::1:8000", "http://h /x"}) {
    SCOPED_TRACE(url);
    const std::string message = error_of({{"CHROMA_URL", url}});
    EXPECT_CONTAINS(message, std::string("CHROMA_URL=\"") + url + "\"");
    EXPECT_CONTAINS(message, "expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH]");
  }
}

TEST(Config, RejectsCredentialsInChromaUrlWithoutShowingThem) {
  const std::string message = error_of({{"CHROMA_URL", "http://admin:hunter2@chroma:8000"}});
  EXPECT_CONTAINS(message, "CHROMA_URL=\"http://admin:***@chroma:8000\"");
  EXPECT_NOT_CONTAINS(message, "hunter2");
}

TEST(Config, ChecksOpenaiBaseUrlLikeChromaUrl) {
  EXPECT_EQ(loaded({{"OPENAI_BASE_URL", "https://api.openai.com/v1"}}).openai_base_url, "https://api.openai.com/v1");
  EXPECT_CONTAINS(error_of({{"OPENAI_BASE_URL", "api.openai.com/v1"}}), "OPENAI_BASE_URL=\"api.openai.com/v1\"");
}

TEST(Config, AcceptsHttpAddressesWithHostAndPort) {
  for (const char* addr : {"0.0.0.0:9000", "[::1]:8080", "[::]:1", "localhost:65535", "api.internal:443"}) {
    SCOPED_TRACE(addr);
    EXPECT_EQ(loaded({{"VSTORE_HTTP_ADDR", addr}}).http_addr, addr);
  }
}

TEST(Config, RejectsHttpAddressesWithoutAValidHostAndPort) {
  for (const char* addr : {"8080", "localhost", ":8080", "h:0", "h:65536", "h:80x", "h:", "[::1]", "[zz]:80",
                           "[::1:80", "h o:80"}) {
    SCOPED_TRACE(addr);
    const std::string message = error_of({{"VSTORE_HTTP_ADDR", addr}});
    EXPECT_CONTAINS(message, std::string("VSTORE_HTTP_ADDR=\"") + addr + "\"");
    EXPECT_CONTAINS(message, "expected HOST:PORT with a port from 1 to 65535");
  }
}

TEST(Config, ExplainsThatIpv6HttpHostsNeedBrackets) {
  EXPECT_CONTAINS(error_of({{"VSTORE_HTTP_ADDR", "::1:8080"}}), "IPv6 host must be in brackets");
}

// ---------------------------------------------------------------------------------------------
// Paths

TEST(Config, MakesTheDataDirAbsoluteAgainstTheCurrentDirectory) {
  EXPECT_EQ(loaded({{"VSTORE_DATA_DIR", "data/store"}}).data_dir, fs::current_path() / "data" / "store");
  EXPECT_EQ(loaded({{"VSTORE_DATA_DIR", "./data/../state/"}}).data_dir, fs::current_path() / "state");
  EXPECT_EQ(loaded({{"VSTORE_DATA_DIR", "/var/lib/vstore/"}}).data_dir, fs::path("/var/lib/vstore"));
  EXPECT_TRUE(loaded({}).data_dir.is_absolute());
}

TEST(Config, MakesTheModelDirAbsoluteWhenSet) {
  EXPECT_EQ(loaded({{"VSTORE_MODEL_DIR", "models/minilm"}}).model_dir,
            std::optional<fs::path>(fs::current_path() / "models" / "minilm"));
  EXPECT_EQ(loaded({{"VSTORE_MODEL_DIR", "/opt/models"}}).model_dir, std::optional<fs::path>("/opt/models"));
}

// ---------------------------------------------------------------------------------------------
// The data directory when VSTORE_DATA_DIR is unset (issue 23, item 1): the same whatever the
// current directory.

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "vstore_data_dir_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    m_home = pattern;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(m_home, ec);
  }
  void record(const fs::path& config_home, std::string_view text) {
    fs::create_directories(config_home / "vstore");
    std::ofstream(config_home / "vstore" / "data_dir") << text;
  }
  fs::path m_home;
};

TEST_F(DataDirTest, WithoutARecordIsUnderXdgDataHome) {
  const Config home_only = loaded({{"HOME", m_home.string()}});
  EXPECT_EQ(home_only.data_dir, m_home / ".local" / "share" / "vstore");
  EXPECT_EQ(home_only.data_dir_source, "default");
  const Config xdg = loaded({{"HOME", m_home.string()}, {"XDG_DATA_HOME", "/srv/data"}});
  EXPECT_EQ(xdg.data_dir, fs::path("/srv/data/vstore"));
  // A relative XDG_DATA_HOME is ignored, as the XDG specification says.
  EXPECT_EQ(loaded({{"HOME", m_home.string()}, {"XDG_DATA_HOME", "rel"}}).data_dir, m_home / ".local" / "share" / "vstore");
}

TEST_F(DataDirTest, SetUpsRecordWinsOverTheDefaultAndLosesToTheVariable) {
  record(m_home / ".config", "/srv/project/.vstore\n");
  const Config recorded = loaded({{"HOME", m_home.string()}});
  EXPECT_EQ(recorded.data_dir, fs::path("/srv/project/.vstore"));
  EXPECT_EQ(recorded.data_dir_source, (m_home / ".config" / "vstore" / "data_dir").string());

  const Config named = loaded({{"HOME", m_home.string()}, {"VSTORE_DATA_DIR", "/tmp/other"}});
  EXPECT_EQ(named.data_dir, fs::path("/tmp/other"));
  EXPECT_EQ(named.data_dir_source, "VSTORE_DATA_DIR");

  // XDG_CONFIG_HOME moves the record.
  record(m_home / "xdg", "/srv/xdg/.vstore");
  EXPECT_EQ(loaded({{"HOME", m_home.string()}, {"XDG_CONFIG_HOME", (m_home / "xdg").string()}}).data_dir,
            fs::path("/srv/xdg/.vstore"));
}

TEST_F(DataDirTest, ARelativeRecordIsRefusedNamingTheFile) {
  record(m_home / ".config", "relative/dir\n");
  const std::string message = error_of({{"HOME", m_home.string()}});
  EXPECT_NE(message.find((m_home / ".config" / "vstore" / "data_dir").string()), std::string::npos) << message;
  EXPECT_NE(message.find("\"relative/dir\""), std::string::npos) << message;
  EXPECT_NE(message.find("absolute"), std::string::npos) << message;
}

// ---------------------------------------------------------------------------------------------
// read_environment and .env files

class DotenvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::path(::testing::TempDir()) / "vstore_config_test_XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    m_dir = pattern;
    m_path = m_dir / ".env";
  }
  void TearDown() override {
    for (const std::string& name : m_set_names) ::unsetenv(name.c_str());
    std::error_code ec;
    fs::remove_all(m_dir, ec);
  }

  void write(std::string_view text) {
    std::ofstream out(m_path, std::ios::binary);
    out << text;
  }
  void set_process_env(const std::string& name, const std::string& value) {
    ASSERT_EQ(::setenv(name.c_str(), value.c_str(), 1), 0);
    m_set_names.push_back(name);
  }
  Environment read_ok() {
    Result<Environment> env = read_environment(m_path);
    if (!env) {
      ADD_FAILURE() << env.error().message();
      return {};
    }
    return *std::move(env);
  }
  std::string read_error() {
    Result<Environment> env = read_environment(m_path);
    if (env) {
      ADD_FAILURE() << "expected read_environment to fail";
      return {};
    }
    EXPECT_EQ(env.error().code(), ErrorCode::invalid_argument);
    return env.error().message();
  }

  fs::path m_dir;
  fs::path m_path;
  std::vector<std::string> m_set_names;
};

TEST_F(DotenvTest, ReadsAssignmentsWithQuotesExportAndComments) {
  write(
      "# a comment line\n"
      "\n"
      "VSTORE_CFGTEST_PLAIN=value\n"
      "export VSTORE_CFGTEST_EXPORTED=yes\n"
      "  VSTORE_CFGTEST_TRIMMED =   spaced out   \n"
      "VSTORE_CFGTEST_COMMENTED=abc # trailing comment\n"
      "VSTORE_CFGTEST_HASH=abc#def\n"
      "VSTORE_CFGTEST_ONLY_COMMENT= # nothing here\n"
      "VSTORE_CFGTEST_EMPTY=\n"
      "VSTORE_CFGTEST_SINGLE='literal \\n $HOME # not a comment'\n"
      "VSTORE_CFGTEST_DOUBLE=\"line1\\nline2 \\\"quoted\\\" back\\\\slash \\d\" # comment\n"
      "VSTORE_CFGTEST_URL=postgresql://u:p@h/db?sslmode=require\n"
      "\t# indented comment\n"
      "VSTORE_CFGTEST_PLAIN=second wins\n");
  const Environment env = read_ok();
  EXPECT_EQ(env.at("VSTORE_CFGTEST_PLAIN"), "second wins");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_EXPORTED"), "yes");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_TRIMMED"), "spaced out");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_COMMENTED"), "abc");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_HASH"), "abc#def");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_ONLY_COMMENT"), "");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_EMPTY"), "");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_SINGLE"), "literal \\n $HOME # not a comment");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_DOUBLE"), "line1\nline2 \"quoted\" back\\slash \\d");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_URL"), "postgresql://u:p@h/db?sslmode=require");
}

TEST_F(DotenvTest, ReadsMultiLineDoubleQuotedValuesAndKeepsCountingLines) {
  write("VSTORE_CFGTEST_MULTI=\"first\nsecond\"\nVSTORE_CFGTEST_AFTER=1\nBROKEN LINE\n");
  const std::string message = read_error();
  EXPECT_CONTAINS(message, m_path.string() + ":4:");
  write("VSTORE_CFGTEST_MULTI=\"first\nsecond\"\nVSTORE_CFGTEST_AFTER=1\n");
  const Environment env = read_ok();
  EXPECT_EQ(env.at("VSTORE_CFGTEST_MULTI"), "first\nsecond");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_AFTER"), "1");
}

TEST_F(DotenvTest, AcceptsCrlfLineEndingsAndAByteOrderMark) {
  write("\xEF\xBB\xBFVSTORE_CFGTEST_A=1\r\nVSTORE_CFGTEST_B='two'\r\n# c\r\n");
  const Environment env = read_ok();
  EXPECT_EQ(env.at("VSTORE_CFGTEST_A"), "1");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_B"), "two");
}

TEST_F(DotenvTest, ProcessEnvironmentWinsOverDotenv) {
  set_process_env("VSTORE_CFGTEST_WINS", "from-process");
  set_process_env("VSTORE_CFGTEST_EMPTY_WINS", "");
  write("VSTORE_CFGTEST_WINS=from-file\nVSTORE_CFGTEST_EMPTY_WINS=from-file\nVSTORE_CFGTEST_FILE_ONLY=file\n");
  const Environment env = read_ok();
  EXPECT_EQ(env.at("VSTORE_CFGTEST_WINS"), "from-process");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_EMPTY_WINS"), "");
  EXPECT_EQ(env.at("VSTORE_CFGTEST_FILE_ONLY"), "file");
}

TEST_F(DotenvTest, ReadsTheProcessEnvironmentWhenTheFileIsMissing) {
  set_process_env("VSTORE_CFGTEST_PROCESS_ONLY", "here");
  const Environment env = read_ok();
  EXPECT_EQ(env.at("VSTORE_CFGTEST_PROCESS_ONLY"), "here");
  EXPECT_FALSE(fs::exists(m_path));
}

TEST_F(DotenvTest, FeedsLoadConfig) {
  write("PGVECTOR_HNSW_M=abc\n");
  const Environment env = read_ok();
  if (std::getenv("PGVECTOR_HNSW_M") == nullptr) {
    EXPECT_CONTAINS(error_of(env), "PGVECTOR_HNSW_M=\"abc\"");
  }
}

TEST_F(DotenvTest, RejectsALineWithoutEqualsNamingFileAndLine) {
  write("# header\nVSTORE_CFGTEST_OK=1\nVSTORE_CFGTEST_BROKEN\nVSTORE_CFGTEST_LATER=2\n");
  EXPECT_EQ(read_error(), m_path.string() + ":3: missing \"=\" after VSTORE_CFGTEST_BROKEN");
}

TEST_F(DotenvTest, RejectsAnInvalidNameWithoutEchoingTheLine) {
  write("VSTORE_CFGTEST_OK=1\nsk-hunter2-secret\n");
  const std::string message = read_error();
  EXPECT_CONTAINS(message, m_path.string() + ":2:");
  EXPECT_NOT_CONTAINS(message, "hunter2");
  write("1ABC=x\n");
  EXPECT_CONTAINS(read_error(), ":1: expected NAME=value");
}

TEST_F(DotenvTest, RejectsAnUnterminatedQuoteNamingTheLineWhereItOpened) {
  write("VSTORE_CFGTEST_A=1\nVSTORE_CFGTEST_B=\"never closed\nVSTORE_CFGTEST_C=3\n");
  EXPECT_EQ(read_error(), m_path.string() + ":2: unterminated double quote in the value of VSTORE_CFGTEST_B");
  write("VSTORE_CFGTEST_B='never closed\n");
  EXPECT_CONTAINS(read_error(), ":1: unterminated single quote");
}

TEST_F(DotenvTest, RejectsTextAfterAClosingQuote) {
  write("VSTORE_CFGTEST_A='abc'def\n");
  EXPECT_EQ(read_error(), m_path.string() + ":1: unexpected text after the closing quote of VSTORE_CFGTEST_A");
}

TEST_F(DotenvTest, RejectsADirectoryAsTheDotenvPath) {
  m_path = m_dir;
  EXPECT_CONTAINS(read_error(), "directory");
}

// ---------------------------------------------------------------------------------------------
// redact_url

TEST(RedactUrl, ReplacesTheUrlPassword) {
  EXPECT_EQ(redact_url("postgresql://user:secret@db.example.com:5432/news"),
            "postgresql://user:***@db.example.com:5432/news");
  EXPECT_EQ(redact_url("chroma+http://admin:tok@chroma:8000/api"), "chroma+http://admin:***@chroma:8000/api");
  EXPECT_EQ(redact_url("postgresql://u:pw@h1:5432,h2:5433/db"), "postgresql://u:***@h1:5432,h2:5433/db");
}

TEST(RedactUrl, RedactsAllOfAPasswordWithUnencodedSpecialCharacters) {
  EXPECT_EQ(redact_url("postgresql://u:p@ss@host/db"), "postgresql://u:***@host/db");
  EXPECT_EQ(redact_url("postgresql://u:pa/ss@host/db"), "postgresql://u:***@host/db");
  EXPECT_EQ(redact_url("postgresql://u:p?w@host/db?sslmode=require"), "postgresql://u:***@host/db?sslmode=require");
  EXPECT_EQ(redact_url("postgresql://u:p:w@host/db"), "postgresql://u:***@host/db");
}

TEST(RedactUrl, ReplacesSecretQueryParameters) {
  EXPECT_EQ(redact_url("postgresql://host/db?sslmode=require&password=secret"),
            "postgresql://host/db?sslmode=require&password=***");
  EXPECT_EQ(redact_url("https://api.example.com/v1?token=abc&x=1#frag"), "https://api.example.com/v1?token=***&x=1#frag");
  EXPECT_EQ(redact_url("http://h/?API_KEY=a&apikey=b&key=c&sslpassword=d&keep=e"),
            "http://h/?API_KEY=***&apikey=***&key=***&sslpassword=***&keep=e");
  EXPECT_EQ(redact_url("postgresql://u:p@h/db?password=q"), "postgresql://u:***@h/db?password=***");
}

TEST(RedactUrl, ReplacesConninfoPasswords) {
  EXPECT_EQ(redact_url("host=localhost password=secret dbname=news"), "host=localhost password=*** dbname=news");
  EXPECT_EQ(redact_url("password='se cret\\'s' host=h"), "password=*** host=h");
  EXPECT_EQ(redact_url("host=h password = secret"), "host=h password = ***");
  EXPECT_EQ(redact_url("host=h sslpassword=x password='unterminated"), "host=h sslpassword=*** password=***");
}

TEST(RedactUrl, LeavesUrlsWithoutSecretsUnchanged) {
  for (const char* url : {"postgresql://user@host:5432/db", "postgresql://host/db?sslmode=require",
                          "postgresql://host/db?application_name=me@home", "http://localhost:8000", "postgresql://u:@h/db",
                          "host=localhost dbname=news user=me", "", "not a url", "http://h/?password="}) {
    SCOPED_TRACE(url);
    EXPECT_EQ(redact_url(url), url);
  }
}

TEST(Config, RequestTimeoutsOfChromaAndOpenAiAreSecondsInRange) {
  Environment env;
  env["CHROMA_TIMEOUT"] = "5";
  env["OPENAI_TIMEOUT"] = "7";
  const Config config = loaded(env);
  EXPECT_EQ(config.chroma_timeout, std::chrono::seconds(5));
  EXPECT_EQ(config.openai_timeout, std::chrono::seconds(7));
  for (const char* name : {"CHROMA_TIMEOUT", "OPENAI_TIMEOUT"}) {
    for (const char* bad : {"0", "3601", "-1", "ten", "1.5"}) {
      Environment wrong;
      wrong[name] = bad;
      const std::string message = error_of(wrong);
      EXPECT_CONTAINS(message, name);
      EXPECT_CONTAINS(message, bad);
    }
  }
}

}  // namespace
}  // namespace vstore
