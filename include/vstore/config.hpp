// SPDX-License-Identifier: Apache-2.0
/// Config: every setting of docs/product.md, read from the environment and an optional .env file.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vstore/result.hpp"

namespace vstore {

/// Environment variables by name.
using Environment = std::map<std::string, std::string>;

enum class BackendKind { pgvector, chromadb, dual };
enum class IndexType { hnsw, ivfflat, none };

/// Connection pool settings (SQLAlchemy semantics).
struct PoolConfig {
  int size = 20;          ///< DB_POOL_SIZE. Default 20. Range 1..1000. Idle connections kept.
  int max_overflow = 10;  ///< DB_MAX_OVERFLOW. Default 10. Range 0..1000. Extra connections, closed on release.
  std::chrono::seconds timeout{30};   ///< DB_POOL_TIMEOUT. Default 30 s. Range 1..3600. Wait for a free connection.
  std::chrono::seconds recycle{3600}; ///< DB_POOL_RECYCLE. Default 3600 s. -1 = never. Max connection age.
};

/// pgvector index settings.
struct PgVectorConfig {
  IndexType index_type = IndexType::hnsw;  ///< PGVECTOR_INDEX_TYPE: hnsw, ivfflat or none. Default hnsw.
  int hnsw_m = 16;                ///< PGVECTOR_HNSW_M. Default 16. Range 2..100.
  int hnsw_ef_construction = 64;  ///< PGVECTOR_HNSW_EF_CONSTRUCTION. Default 64. Range 4..1000, >= 2*m.
  int hnsw_ef_search = 40;        ///< PGVECTOR_HNSW_EF_SEARCH. Default 40. Range 1..1000.
  int ivfflat_lists = 100;        ///< PGVECTOR_IVFFLAT_LISTS. Default 100. Range 1..32768.
  int ivfflat_probes = 10;        ///< PGVECTOR_IVFFLAT_PROBES. Default 10. Range 1..lists.
};

/// All settings. Defaults are those of docs/product.md.
struct Config {
  std::optional<std::string> database_url;      ///< DATABASE_URL; unset = embedded cluster
  std::vector<std::string> database_read_urls;  ///< DATABASE_READ_URLS, comma-separated
  BackendKind backend = BackendKind::pgvector;  ///< VECTOR_BACKEND: pgvector, chromadb or dual
  BackendKind primary = BackendKind::pgvector;  ///< VECTOR_PRIMARY (dual mode): pgvector or chromadb
  std::string table = "articles";               ///< VSTORE_TABLE: a plain SQL identifier
  PgVectorConfig pgvector;
  PoolConfig pool;
  std::string chroma_url;                       ///< CHROMA_URL (http:// or https://), may be empty
  std::string chroma_token;                     ///< CHROMA_TOKEN; never logged
  std::string chroma_db_dir = "chromadb";       ///< CHROMA_DB_DIR
  std::string chroma_collection = "articles";   ///< CHROMA_COLLECTION
  std::string embedding_provider = "local";     ///< EMBEDDING_PROVIDER: local, openai or hash
  std::string embedding_model = "all-MiniLM-L6-v2";  ///< EMBEDDING_MODEL
  int embedding_dim = 384;                      ///< EMBEDDING_DIM. Range 1..16000.
  std::string openai_api_key;                   ///< OPENAI_API_KEY; never logged
  std::string openai_base_url;                  ///< OPENAI_BASE_URL
  std::filesystem::path data_dir = ".vstore";   ///< VSTORE_DATA_DIR, made absolute at load
  std::optional<std::filesystem::path> model_dir;  ///< VSTORE_MODEL_DIR
  std::string http_addr = "127.0.0.1:8080";     ///< VSTORE_HTTP_ADDR, HOST:PORT
  std::string api_token;                        ///< VSTORE_API_TOKEN; never logged
};

/// The process environment merged over the `.env` file at `dotenv_path` (if it exists; a
/// variable set in the process environment wins). `.env` lines are `NAME=value`, with optional
/// `export `, quotes and `#` comments. Errors: invalid_argument for a malformed line (names
/// the file and line number).
[[nodiscard]] Result<Environment> read_environment(const std::filesystem::path& dotenv_path = ".env");

/// Parses and checks every variable. Errors: invalid_argument naming the variable, the value
/// and what is allowed, e.g. "PGVECTOR_HNSW_M=abc: expected an integer from 2 to 100".
[[nodiscard]] Result<Config> load_config(const Environment& env);

/// Names of the backend and index kinds as used in the variables.
[[nodiscard]] std::string_view to_string(BackendKind kind) noexcept;
[[nodiscard]] std::string_view to_string(IndexType type) noexcept;

/// A URL with its password and any token query parameter replaced by "***", for logs.
[[nodiscard]] std::string redact_url(std::string_view url);

}  // namespace vstore
