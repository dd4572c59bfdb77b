// SPDX-License-Identifier: Apache-2.0
/// Config: every setting of docs/product.md, read from the environment and an optional .env file.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vstore/result.hpp"

namespace vstore {

/// Environment variables by name.
using Environment = std::map<std::string, std::string>;

/// Which vector store serves reads and writes. In `dual` mode writes go to both.
enum class BackendKind { pgvector, chromadb, dual };
/// The approximate-nearest-neighbour index pgvector builds on the embedding column.
enum class IndexType { hnsw, ivfflat, none };

/// The statement timeout of every vstore connection unless VSTORE_STATEMENT_TIMEOUT says otherwise.
inline constexpr std::chrono::milliseconds k_default_statement_timeout{60000};

/// Connection pool settings (SQLAlchemy semantics) and the session limits of its connections.
struct PoolConfig {
  int size = 20;          ///< DB_POOL_SIZE. Default 20. Range 1..1000. Idle connections kept.
  int max_overflow = 10;  ///< DB_MAX_OVERFLOW. Default 10. Range 0..1000. Extra connections, closed on release.
  std::chrono::seconds timeout{30};   ///< DB_POOL_TIMEOUT. Default 30 s. Range 1..3600. Wait for a free connection.
  std::chrono::seconds recycle{3600}; ///< DB_POOL_RECYCLE. Default 3600 s. -1 = never, else 1..604800. Max connection age.
  /// VSTORE_STATEMENT_TIMEOUT: PostgreSQL's statement_timeout on every connection; a statement
  /// that runs longer fails with ErrorCode::timeout. Default 60 s. 0 = no limit, else 1 ms..24 h;
  /// written as seconds (`30`) or with a unit (`500ms`, `30s`, `5min`). Index builds set their own.
  std::chrono::milliseconds statement_timeout = k_default_statement_timeout;
};

/// pgvector index settings. Ranges are pgvector's own limits.
struct PgVectorConfig {
  IndexType index_type = IndexType::hnsw;  ///< PGVECTOR_INDEX_TYPE: hnsw, ivfflat or none (any case). Default hnsw.
  int hnsw_m = 16;                ///< PGVECTOR_HNSW_M. Default 16. Range 2..100.
  int hnsw_ef_construction = 64;  ///< PGVECTOR_HNSW_EF_CONSTRUCTION. Default 64. Range 4..1000, >= 2*m.
  int hnsw_ef_search = 40;        ///< PGVECTOR_HNSW_EF_SEARCH. Default 40. Range 1..1000.
  int ivfflat_lists = 100;        ///< PGVECTOR_IVFFLAT_LISTS. Default 100. Range 1..32768.
  int ivfflat_probes = 10;        ///< PGVECTOR_IVFFLAT_PROBES. Default 10. Range 1..lists.
};

/// All settings. Defaults are those of docs/product.md. A variable set to the empty string
/// counts as unset. Secrets (tokens, API keys, URL passwords) must only be logged through
/// redact_url() or not at all.
struct Config {
  std::optional<std::string> database_url;      ///< DATABASE_URL: postgresql:// or postgres:// URL, or libpq key=value conninfo; unset = embedded cluster
  std::vector<std::string> database_read_urls;  ///< DATABASE_READ_URLS, comma-separated, each like DATABASE_URL (multi-host URLs kept whole)
  /// DATABASE_READ_MAX_LAG: a read replica whose replay lags further behind its primary than
  /// this is skipped until it catches up. Default 10 s. 0..24 h, written like
  /// VSTORE_STATEMENT_TIMEOUT (`10`, `500ms`, `10s`, `1min`).
  std::chrono::milliseconds database_read_max_lag{10000};
  BackendKind backend = BackendKind::pgvector;  ///< VECTOR_BACKEND: pgvector, chromadb or dual (any case)
  BackendKind primary = BackendKind::pgvector;  ///< VECTOR_PRIMARY (dual mode): pgvector or chromadb (any case)
  bool shadow_compare = false;                  ///< VSTORE_SHADOW_COMPARE (dual mode): 1/true/on or 0/false/off (any case). Default off.
  std::string table = "articles";               ///< VSTORE_TABLE: a plain SQL identifier [a-z_][a-z0-9_]{0,62}, not a reserved word
  PgVectorConfig pgvector;
  PoolConfig pool;
  std::string chroma_url;                       ///< CHROMA_URL: empty or http(s)://HOST[:PORT][/PATH]
  std::string chroma_token;                     ///< CHROMA_TOKEN; never logged
  std::string chroma_db_dir = "chromadb";       ///< CHROMA_DB_DIR, as given (not made absolute)
  std::string chroma_collection = "articles";   ///< CHROMA_COLLECTION: 3..512 of [A-Za-z0-9._-], alphanumeric at both ends
  std::chrono::seconds chroma_timeout{60};      ///< CHROMA_TIMEOUT: seconds a Chroma request may wait for its answer. Default 60. Range 1..3600.
  std::string embedding_provider = "local";     ///< EMBEDDING_PROVIDER: local, openai or hash (any case; stored lower-case)
  std::string embedding_model = "all-MiniLM-L6-v2";  ///< EMBEDDING_MODEL
  int embedding_dim = 384;                      ///< EMBEDDING_DIM. Default 384. Range 1..16000; 384 for local all-MiniLM-L6-v2.
  std::string openai_api_key;                   ///< OPENAI_API_KEY; required when the provider is openai; never logged
  std::string openai_base_url;                  ///< OPENAI_BASE_URL: empty or http(s)://HOST[:PORT][/PATH]
  std::chrono::seconds openai_timeout{60};      ///< OPENAI_TIMEOUT: seconds an embeddings request may wait (connect, send, answer). Default 60. Range 1..3600.
  /// VSTORE_DATA_DIR, made absolute (against the current directory) at load. When it is unset:
  /// the directory scripts/setup.sh recorded in $XDG_CONFIG_HOME/vstore/data_dir (default
  /// ~/.config/vstore/data_dir), else $XDG_DATA_HOME/vstore (default ~/.local/share/vstore);
  /// ./.vstore only when HOME is unset too.
  std::filesystem::path data_dir = ".vstore";
  /// Where data_dir came from: "VSTORE_DATA_DIR", the path of set-up's record, or "default".
  std::string data_dir_source = "default";
  int embed_threads = 0;  ///< VSTORE_EMBED_THREADS: threads of the local engine. Default 0 = one per core. Range 0..256.
  std::optional<std::filesystem::path> model_dir;  ///< VSTORE_MODEL_DIR, made absolute at load; unset = found by setup
  std::string http_addr = "127.0.0.1:8080";     ///< VSTORE_HTTP_ADDR, HOST:PORT, port 1..65535, IPv6 host in brackets ([::1]:8080)
  std::string api_token;                        ///< VSTORE_API_TOKEN; never logged
};

/// Whether the `.env` file must exist: `optional` for the default `.env`, `required` for a
/// file the user named (`--env-file`).
enum class EnvFile { optional, required };

/// The process environment merged over the `.env` file at `dotenv_path` (a variable set in the
/// process environment wins, even when set to the empty string). A missing file is skipped
/// when `presence` is optional and an error when required. The file must be a regular file of
/// at most 1 MiB (a directory, a device or a pipe is refused before anything is read).
/// `.env` syntax: blank lines, `# comment` lines, `NAME=value` with an optional `export `
/// prefix and spaces around `=`; 'single-quoted' values are literal, "double-quoted" values
/// understand \n \r \t \" \' \\ (other backslashes are kept) and may span lines; unquoted
/// values are trimmed and lose a trailing ` # comment`. No `${VAR}` expansion. A later line
/// for the same name wins.
/// Errors: invalid_argument for a malformed line ("PATH:LINE: what is wrong", without echoing
/// the line, which may hold a secret) or an unreadable file.
/// Thread-safety: reads `environ`; do not call while another thread calls setenv/putenv.
[[nodiscard]] Result<Environment> read_environment(const std::filesystem::path& dotenv_path = ".env",
                                                   EnvFile presence = EnvFile::optional);

/// Parses and checks every variable of docs/product.md plus VECTOR_PRIMARY and VSTORE_TABLE;
/// unknown variables are ignored. Returns the first problem found as invalid_argument naming
/// the variable, the value and what is allowed, e.g.
/// `PGVECTOR_HNSW_M="abc": expected an integer from 2 to 100`. URL values appear redacted,
/// secrets (tokens, API keys) never appear. Uses the current directory to make paths absolute.
/// Thread-safety: safe to call concurrently.
[[nodiscard]] Result<Config> load_config(const Environment& env);

/// Names of the backend and index kinds as used in the variables ("pgvector", "hnsw", ...).
[[nodiscard]] std::string_view to_string(BackendKind kind) noexcept;
[[nodiscard]] std::string_view to_string(IndexType type) noexcept;

/// `url` with secrets replaced by "***", for logs and error messages: the password of
/// `scheme://user:password@host...`, the values of the query parameters password,
/// sslpassword, token, access_token, api_key, apikey, key and secret (names in any case), and
/// in a libpq `key=value` conninfo string the values of the same keywords (password=...).
/// Everything else is returned unchanged; text that is neither a URL nor a conninfo is
/// returned as is. When in doubt (an unencoded '@', '/' or '?' in the password) it redacts
/// more, never less. Never fails; thread-safe.
[[nodiscard]] std::string redact_url(std::string_view url);

}  // namespace vstore
