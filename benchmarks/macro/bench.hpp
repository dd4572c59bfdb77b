// SPDX-License-Identifier: Apache-2.0
/// The benchmark library (vstore::bench, linked only by the CLI and the tests): the benchmarks
/// behind `vstore bench query|ingest|embed|migrate|python`, and the clustered data generator and exact
/// search they share with the recall tests. Every benchmark that writes works in a scratch
/// database it creates, and refuses to drop, truncate or delete anywhere else.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "vstore/config.hpp"
#include "vstore/migrate.hpp"
#include "vstore/result.hpp"
#include "vstore/types.hpp"

namespace vstore {

class ArticleStore;

/// Progress of a long benchmark step: a phase name ("generate", "load", "embed", "index", "ground_truth",
/// "warmup", "query", "raw", "exact", "copy", "copy_btree", "upsert", "python") and the fraction of it
/// done, from 0 to 1. Called on the benchmark's own thread; may be empty.
using BenchProgress = std::function<void(std::string_view phase, double fraction)>;

// ---- data -------------------------------------------------------------------------------------

/// A generated data set as docs/reference/performance.md "Conditions" describes it: `clusters`
/// random unit centroids; each vector is a uniformly chosen centroid plus N(0, 1/dim) noise per
/// component, then L2-normalised. Queries are drawn the same way and are not in the base set.
struct ClusteredSet {
  int dim = 0;
  std::vector<float> base;     ///< n x dim, row-major; row i has id i
  std::vector<float> queries;  ///< query count x dim, row-major

  [[nodiscard]] std::size_t size() const { return dim > 0 ? base.size() / static_cast<std::size_t>(dim) : 0; }
  [[nodiscard]] std::size_t query_count() const {
    return dim > 0 ? queries.size() / static_cast<std::size_t>(dim) : 0;
  }
  [[nodiscard]] std::span<const float> row(std::size_t i) const {
    return std::span<const float>(base).subspan(i * static_cast<std::size_t>(dim), static_cast<std::size_t>(dim));
  }
  [[nodiscard]] std::span<const float> query(std::size_t i) const {
    return std::span<const float>(queries).subspan(i * static_cast<std::size_t>(dim), static_cast<std::size_t>(dim));
  }
};

/// Generates `n` base vectors and `query_count` queries of dimension `dim` around `clusters`
/// centroids. Deterministic for a given seed (with the same standard library). Preconditions
/// (checked by VS_ASSERT; callers validate user input first): dim >= 1, clusters >= 1.
/// Thread-safe (no shared state).
[[nodiscard]] ClusteredSet generate_clustered(std::size_t n, std::size_t query_count, int dim, int clusters,
                                              std::uint64_t seed);

/// The numbers 0..n-1 in an order shuffled by `seed` (for choosing rows a filter matches,
/// independently of the clusters). Thread-safe.
[[nodiscard]] std::vector<std::uint32_t> seeded_permutation(std::size_t n, std::uint64_t seed);

/// Exact top-`k` row ids of every query by cosine distance (1 - dot; the generated vectors are
/// unit length), nearest first, ties broken by the lower id. `candidates` restricts the search
/// to those row ids (empty = all rows). Uses `threads` worker threads (at least 1). Returns one
/// list per query with min(k, candidate count) ids. Thread-safe.
[[nodiscard]] std::vector<std::vector<std::uint32_t>> exact_top_k(const ClusteredSet& set, int k,
                                                                  std::span<const std::uint32_t> candidates = {},
                                                                  int threads = 2);

/// |found ∩ truth| / |truth| (1 when truth is empty).
[[nodiscard]] double recall_of(std::span<const std::uint32_t> truth, std::span<const std::uint32_t> found);

/// Loads `set` into the migrated vstore table of `config` at `conninfo` the fast way: drops its
/// vector index, binary COPY of (uri = decimal row id, topic = topics[i], embedding_model =
/// "bench-clustered", embedding), CREATE INDEX (HNSW, cosine, config's m and ef_construction,
/// under the index's former name or <table>_embedding_hnsw_idx), then ANALYZE. The table must
/// be empty. Returns {"copy_s", "index_build_s", "analyze_s", "index_name"}. Errors:
/// invalid_argument (topics.size() != set.size(), dimension mismatch), unavailable, conflict
/// and internal from the server. Not safe to run twice on one table at the same time.
[[nodiscard]] Result<nlohmann::json> load_clustered(const std::string& conninfo, const Config& config,
                                                    const ClusteredSet& set, std::span<const std::string> topics,
                                                    const BenchProgress& progress = {});

// ---- benchmarks -------------------------------------------------------------------------------

/// Options of `vstore bench query`.
struct BenchQueryOptions {
  std::int64_t n = 100000;             ///< base vectors. Default 100000. Range 1000..10000000.
  int dim = 384;                       ///< Default 384. Range 2..2000 (HNSW's limit for vector).
  int queries = 1000;                  ///< timed queries. Default 1000. Range 1..100000.
  int warmup = 100;                    ///< untimed queries run first. Default 100. Range 0..100000.
  /// Queries timed for exact_p50_ms. Default (unset): min(100, queries). Range 1..queries.
  std::optional<int> exact_queries;
  int ef_search = 40;                  ///< hnsw.ef_search per query. Default 40. Range 1..1000.
  std::optional<double> selectivity;   ///< fraction of rows every query's filter matches, (0, 1];
                                       ///< round(selectivity * n) must be >= 10. Unset = unfiltered.
  int m = 16;                          ///< HNSW m. Default 16. Range 2..100.
  int ef_construction = 64;            ///< HNSW ef_construction. Default 64. Range 4..1000, >= 2*m.
  int clusters = 1000;                 ///< Default 1000. Range 1..n.
  std::uint64_t seed = 42;             ///< data, query and filter seed. Default 42.
  BenchProgress progress;              ///< may be empty
};

/// Runs the query benchmark in a database of its own (`vstore_bench_<pid>`, created on the
/// server of `admin_conninfo` and dropped at the end, also on failure): generate the clustered
/// set, schema_up, COPY then CREATE INDEX then ANALYZE, exact ground truth in C++ (2 threads),
/// warm-up, then every query through the store's search() (top 10, timed one by one with a
/// steady clock) and recall@10. An unfiltered run then times the same queries through one bare
/// prepared statement at the same ef_search (raw_p50_ms, raw_p95_ms: pgvector without the
/// store). Last, exact_queries queries of an exact scan with the same filter (ORDER BY
/// (embedding <=> q) + 0, which the vector index cannot serve) on the same server. A filtered
/// run gives round(selectivity * n) rows, chosen by a seeded shuffle, the topic "sel", and
/// every query carries the filter {"topic": "sel"}; the other rows have topic "t<id % 100>".
/// Returns {n, dim, index, ef_search, p50_ms, p95_ms, p99_ms, qps, recall_at_10, exact_p50_ms,
/// selectivity (null if none), plan (the store's most used SearchPlan), plans, data, machine,
/// server, version, ...}. Errors: invalid_argument (an option out of range, naming it),
/// unavailable (server), internal (other server errors, e.g. no CREATEDB privilege or a
/// database of that name already exists), conflict (the conninfo does not reach the scratch
/// database; nothing is dropped there). Not thread-safe with another bench_* call in the
/// same process.
[[nodiscard]] Result<nlohmann::json> bench_query(const std::string& admin_conninfo, const BenchQueryOptions& options);

/// The query benchmark against the Chroma server of `config` (CHROMA_URL, CHROMA_TOKEN), for
/// latency and QPS next to bench_query's: the same generated set, queries, filter rows and
/// top 10, loaded with upsert into a collection of its own (`vstore-bench-<pid>`, cosine space,
/// `hnsw:M` = m, `hnsw:construction_ef` = ef_construction, `hnsw:search_ef` = ef_search;
/// deleted at the end, also on failure), then warm-up and timed ChromaStore::search() calls
/// with recall@10 against exact search. exact_queries and the raw/exact comparisons do not
/// apply. Returns {backend: "chromadb", n, dim, index, index_params, ef_search, queries, p50_ms,
/// p95_ms, p99_ms, mean_ms, qps, recall_at_10, rows_returned_avg, short_results, selectivity,
/// matching_rows, load_s, server_version, data, machine, version}. Errors: invalid_argument
/// (an option out of range, CHROMA_URL unset), unavailable. Not thread-safe with another
/// bench_* call in the same process.
[[nodiscard]] Result<nlohmann::json> bench_query_chroma(const Config& config, const BenchQueryOptions& options);

/// Options of `vstore bench ingest`.
struct BenchIngestOptions {
  std::int64_t rows = 100000;  ///< Default 100000. Range 1000..10000000.
  int dim = 384;               ///< Default 384. Range 2..2000.
  int batch = 5000;            ///< rows per upsert call and per COPY. Default 5000. Range 16..100000.
  int m = 16;                  ///< HNSW m for the timed index build. Default 16. Range 2..100.
  int ef_construction = 64;    ///< Default 64. Range 4..1000, >= 2*m.
  std::uint64_t seed = 42;     ///< Default 42.
  int repeats = 3;             ///< loads per side, medians reported. Default 3. Range 1..20.
  BenchProgress progress;      ///< may be empty
};

/// Runs the ingest benchmark in its own database (`vstore_bench_ingest_<pid>`, dropped at the
/// end, also on failure). The same generated articles (clustered vectors plus title, summary,
/// topic, news_source, publication_date) are loaded three ways, all without a vector index:
/// (1) a bare binary COPY, batch by batch, of the columns the store writes into a plain table
/// with only a primary key on uri; (2) the same COPY into a table with the store's B-tree
/// indexes; (3) the store's batch upsert (PgVectorStore::upsert, batch rows per call) into a
/// freshly migrated table whose HNSW index was dropped (its B-tree indexes stay). Each load
/// runs `repeats` times from an empty table, phases rotated, medians reported; afterwards the
/// three tables are compared column by column (an error if they differ). Only the loading
/// calls are timed (client-side encoding included on every side, data generation not). Then
/// The update path follows, `repeats` times: the same rows with other vectors, through the
/// store's upsert of existing rows (look-up, staging, merge) against, per batch in one
/// transaction, a bare binary COPY into a temporary staging table and one UPDATE ... FROM it
/// into the B-tree table; the two tables are compared again. Every repeat of both phases
/// starts after a CHECKPOINT. Then the HNSW index is built on the upserted rows and timed as
/// index_build_s. Returns {rows, dim, upsert_rows_per_s, copy_rows_per_s, ratio,
/// copy_pk_only_rows_per_s, ratio_pk_only, update_upsert_rows_per_s, update_copy_rows_per_s,
/// update_ratio, index_build_s, method, machine, server, version, ...}. Errors as bench_query,
/// and those of CHECKPOINT (a role that is neither superuser nor pg_checkpoint), conflict
/// when the conninfo does not reach the scratch database.
[[nodiscard]] Result<nlohmann::json> bench_ingest(const std::string& admin_conninfo, const BenchIngestOptions& options);

/// Options of `vstore bench embed`.
struct BenchEmbedOptions {
  std::filesystem::path data;           ///< article JSON Lines file (the Reuters set); required
  std::string field = "summary";        ///< summary, title or document (raw, else summary, else title)
  std::int64_t limit = 2000;            ///< texts embedded per thread count. Default 2000. Range 32..1000000.
  int batch = 32;                       ///< texts per embed() call. Default 32. Range 1..1024.
  int queries = 200;                    ///< timed one-text queries. Default 200. Range 1..100000.
  std::string query = "oil prices rise after the OPEC meeting";  ///< the short query timed
  std::filesystem::path model_dir;      ///< Hugging Face style model directory; required
  std::string model_name = "all-MiniLM-L6-v2";
  /// Python with onnxruntime/onnx (or at least numpy, safetensors, tokenizers) for the peer;
  /// empty = no peer run.
  std::filesystem::path python;
  std::filesystem::path peer_script;    ///< scripts/bench_embed_peer.py
  int cross_check = 200;                ///< texts whose vectors are compared with the peer's. Range 0..limit.
  /// The configured thread count of the local engine (VSTORE_EMBED_THREADS), at which
  /// query_latency_ms is measured. Default 0 = one per core. Range 0..256.
  int threads = 0;
  BenchProgress progress;               ///< may be empty
};

/// Runs the embedding benchmark: the first `limit` non-empty texts of `field`, in file order,
/// through the local engine (tokenizer + BERT) in batches of `batch`, once with 1 thread and
/// once with 2 (one warm-up batch before each timing), each followed by `queries` single-text
/// embeddings of `query` (query_latency_<t>t_ms is their median). query_latency_ms is the median
/// at the configured thread count `threads` (reported as query_threads; 0 = one per core), taken
/// from the 1- or 2-thread run or measured on its own for more threads. When `python` is set, the same texts,
/// batch size and thread counts run through scripts/bench_embed_peer.py in the same run (ONNX
/// Runtime on a graph built from the same safetensors, or the NumPy reference when onnxruntime
/// is missing), and the first `cross_check` vectors of both engines are compared
/// (peer_min_cosine). Returns {sentences_per_s_1t, sentences_per_s_2t, mean_tokens,
/// query_latency_ms, query_threads, query_latency_1t_ms, query_latency_2t_ms, query_p95_1t_ms, query_p95_2t_ms,
/// peer, peer_version, peer_sentences_per_s_1t, peer_sentences_per_s_2t, peer_query_latency_ms,
/// peer_query_latency_1t_ms, peer_query_latency_2t_ms, ratio_1t, ratio_2t, peer_min_cosine, texts,
/// batch, field, machine, version}; the peer keys are null without a peer. Errors:
/// invalid_argument (an option out of range, an unknown field, fewer than `batch` texts),
/// not_found (data file or model files), internal (the peer script failed; its stderr is
/// shown). Not thread-safe with another bench_* call in the same process.
[[nodiscard]] Result<nlohmann::json> bench_embed(const BenchEmbedOptions& options);

/// Options of `vstore bench migrate`.
struct BenchMigrateOptions {
  std::string from_dir;                   ///< Chroma directory to migrate; required
  std::optional<std::string> collection;  ///< required when the directory holds several
  std::size_t batch_size = 5000;          ///< records per COPY on both sides. Default 5000.
  int repeats = 3;                        ///< loads per side (order rotated; medians reported). Default 3.
  int warmup = 1;                         ///< untimed rounds of all three loads before them. Default 1.
  int writers = 2;                        ///< MigrateOptions::writers of the migration. Default 2.
  MigrateProgress progress;               ///< may be empty
};

/// Migration throughput against a bare binary COPY of the same vectors, in a database of its
/// own (`vstore_bench_migrate_<pid>`, created on the server of `admin_conninfo` and dropped at
/// the end, also on failure), every load without a vector index, `repeats` times each in a
/// rotating order after `warmup` untimed rounds of all three, medians reported: (1) a bare binary COPY of
/// (uri, embedding) in batches into a table with only a primary key, vectors taken from the
/// directory read once beforehand (encoding timed, reading not); (2) migrate_chroma() with
/// --insert-missing into a freshly migrated table made without a vector index, timed whole
/// (reading the directory, classification, COPY and merge); (3) the rows (2) wrote, as binary
/// COPY bytes, into a table of the same definition. Returns {rows, dim, rows_per_s,
/// copy_rows_per_s, ratio, copy_same_rows_rows_per_s, ratio_same_rows, the per-repeat rates and
/// ratios, read_s, migrate_s, copy_s, migrate_timings, chroma_schema, machine}. Errors: those of
/// migrate_chroma(), and internal (no CREATEDB privilege). Not thread-safe with other bench_* calls.
[[nodiscard]] Result<nlohmann::json> bench_migrate(const std::string& admin_conninfo, const BenchMigrateOptions& options);

/// Options of `vstore bench python`.
struct BenchPythonOptions {
  std::filesystem::path data;        ///< article JSON Lines file (the Reuters set); required
  std::filesystem::path query_file;  ///< TSV of queries (a code, a tab, the text: queries-dev.tsv); required
  std::int64_t n = 5000;             ///< articles loaded (the first n of `data`). Default 5000. Range 100..1000000.
  int queries = 500;                 ///< queries per throughput cell (the texts cycled). Default 500. Range 10..1000000.
  int clients = 8;                   ///< threads of the concurrent cells. Default 8. Range 2..64.
  int repeats = 3;                   ///< rounds of the eight cells (order rotated; medians). Default 3. Range 1..20.
  int overhead_calls = 2000;         ///< searches per kind for the per-call overhead. Default 2000. Range 10..1000000.
  int overhead_block = 50;           ///< searches per timed block. Default 50. Range 1..overhead_calls.
  int ef_search = 40;                ///< hnsw.ef_search on both sides. Default 40. Range 1..1000.
  int top_k = 10;                    ///< Default 10. Range 1..100.
  /// The interpreter: a venv holding the vstore package, psycopg 3, pgvector-python, NumPy,
  /// onnx, onnxruntime and tokenizers (scripts/python_test.sh makes one); required.
  std::filesystem::path python;
  std::filesystem::path script;      ///< benchmarks/python/bench_module.py; required
  std::filesystem::path model_dir;   ///< the local engine's model directory; required
  /// The rest of the configuration (embedding model and threads, table name, pool); its
  /// database_url is replaced by the scratch database's. EMBEDDING_PROVIDER must be local.
  Config config;
  BenchProgress progress;            ///< may be empty
};

/// The Python module against its C++ call and against a pure Python store, in a database of its
/// own (`vstore_bench_python_<pid>`, created on the server of `admin_conninfo` and dropped at
/// the end, also on failure): schema_up, the first `n` articles of `data` embedded by the local
/// engine and upserted without the vector index, then the HNSW index (config's m and
/// ef_construction) and ANALYZE; then benchmarks/python/bench_module.py under `python` (see its
/// docstring) measures the per-call overhead of vstore.vector_store.search_by_vector over the
/// C++ search, and the throughput of the module against psycopg 3 + pgvector-python by vector
/// and by text at 1 and `clients` clients, after checking that both sides return the same
/// top-k (overlap). Returns {rows, queries, distinct_queries, clients, top_k, ef_search,
/// cpp_search_us, py_search_by_vector_us, overhead_pct, module_qps_<mode>_<c>c,
/// python_qps_<mode>_<c>c, ratio_<mode>_<c>c (mode vector or text, c 1 or clients), throughput
/// (the four cells with every run), overlap_by_vector, overlap_by_text, peer, load, machine,
/// server, version}. Errors: invalid_argument (an option out of range, a provider other than
/// local, no queries), not_found (data, query file, script or interpreter missing), internal
/// (the script failed: its stderr went to ours; no CREATEDB privilege), and the server's. Not
/// thread-safe with other bench_* calls.
[[nodiscard]] Result<nlohmann::json> bench_python(const std::string& admin_conninfo, const BenchPythonOptions& options);

/// nproc, CPU model (/proc/cpuinfo) and memory (/proc/meminfo) of this machine, as the "machine"
/// object of the benchmark outputs. Never fails (unknown values are null).
[[nodiscard]] nlohmann::json bench_machine_info();

/// Options of `vstore bench tune`.
struct BenchTuneOptions {
  std::int64_t n = 100000;         ///< base vectors. Default 100000. Range 1000..10000000.
  int dim = 384;                   ///< Default 384. Range 2..2000.
  int queries = 200;               ///< queries per setting. Default 200. Range 1..100000.
  int m = 16;                      ///< HNSW m. Default 16. Range 2..100.
  int ef_construction = 64;        ///< HNSW ef_construction. Default 64. Range 4..1000, >= 2*m.
  int clusters = 1000;             ///< Default 1000. Range 1..n.
  /// Fraction of rows the filtered case matches (topic "sel", chosen by a seeded shuffle);
  /// 0 = unfiltered only. Default 0.1: at 100,000 rows enough matches for the HNSW plan with
  /// iterative scan rather than the exact one (vstore ranks exactly up to 8,000 estimated rows).
  double selectivity = 0.1;
  double target_recall = 0.95;     ///< Default 0.95. Range 0..1.
  std::uint64_t seed = 42;         ///< Default 42.
  BenchProgress progress;          ///< may be empty
};

/// `vstore tune` on a generated clustered set in a database of its own (`vstore_bench_tune_<pid>`,
/// dropped at the end): COPY, CREATE INDEX, ANALYZE, then tune_index() with the generated queries,
/// unfiltered and with {"topic": "sel"}. Returns tune's JSON (the table and the recommendation)
/// with {n, dim, m, ef_construction, clusters, selectivity, load, machine, server, version}.
/// Errors: invalid_argument (options), those of tune_index() and of the server. Not thread-safe
/// with other bench_* calls.
[[nodiscard]] Result<nlohmann::json> bench_tune(const std::string& admin_conninfo, const BenchTuneOptions& options);

/// Options of `vstore bench serve`.
struct BenchServeOptions {
  std::filesystem::path data;        ///< article JSON Lines file (the Reuters set); required
  std::filesystem::path query_file;  ///< TSV of queries (a code, a tab, the text: queries-dev.tsv); required
  std::filesystem::path vstore;      ///< the vstore binary run as `vstore serve`; required
  std::string wrk = "wrk";           ///< the wrk program (Debian's wrk 4.1.0), searched in PATH without a '/'
  std::int64_t n = 5000;             ///< articles loaded (the first n of `data`). Default 5000. Range 10..1000000.
  int vectors = 200;                 ///< stored vectors searched by vector, rotated. Default 200. Range 1..100000.
  int duration_s = 30;               ///< timed seconds per kind and side. Default 30. Range 1..3600.
  int warmup_s = 3;                  ///< untimed seconds before each timed run. Default 3. Range 0..600.
  int connections = 32;              ///< wrk's connections and the library's threads. Default 32. Range 1..1024.
  int wrk_threads = 2;               ///< wrk's threads. Default 2. Range 1..min(64, connections).
  int timeout_s = 10;                ///< wrk's request timeout; slower answers count as errors. Default 10. Range 1..600.
  int serve_threads = 64;            ///< `vstore serve --threads`. Default 64 (the service's). Range 1..4096.
  std::vector<std::string> serve_args;  ///< further options for `vstore serve` (e.g. `--max-body-bytes=N`)
  int top_k = 10;                    ///< Default 10. Range 1..1000 (the service's --max-top-k).
  /// The rest of the configuration (embedder, model, table, pool, HNSW settings); its
  /// database_url is replaced by the scratch database's and the backend is pgvector.
  Config config;
  std::filesystem::path model_dir;   ///< the local engine's model directory (EMBEDDING_PROVIDER=local); else empty
  BenchProgress progress;            ///< may be empty
};

/// The HTTP service against the library it serves, in a database of its own
/// (`vstore_bench_serve_<pid>`, created on the server of `admin_conninfo` and dropped at the
/// end, also on failure): the first `n` articles of `data` embedded by the configured embedder
/// and upserted (bench_support::load_articles), then `vstore serve` started as a child process
/// on a free loopback port with a bearer token and its access log in a private temporary
/// directory, and `wrk` run against it with a Lua script that POSTs /v1/search by `vector`
/// (`vectors` stored vectors, rotated per request) for `duration_s`, then by `query` (the texts
/// of `query_file`, rotated), each after `warmup_s` untimed seconds. The service is stopped
/// with SIGTERM; then the same searches run through the library in this process (a `vector`
/// search through ArticleStore::store().search(), as the service calls it, and
/// ArticleStore::search_articles() for text) from `connections` threads for the same
/// durations, and the embedder alone on the query texts (the ceiling of search by text).
/// Per cell: requests, requests/s, p50/p90/p99/max/mean latency, errors, and the CPU seconds of
/// the machine, wrk, the vstore process and the PostgreSQL backends of the scratch database (when
/// they run on this host). The service's access log is counted for each timed window, so the
/// figures show that the requests reached it. Returns {rows, queries, vectors, top_k,
/// connections, duration_s, warmup_s, wrk_threads, timeout_s, serve_threads, serve_args,
/// provider, model, ef_search, pool, serve: {vector, text}, library: {vector, text,
/// embed_only}, ratio_vector, ratio_text, errors, targets, serve_exit, load, machine, server,
/// wrk_version, version}; `errors` counts wrk's socket errors and non-2xx answers and the
/// library's failed calls (the caller fails the command when it is not 0). Errors:
/// invalid_argument (an option out of range, no queries, fewer stored vectors than asked),
/// not_found (data, query file, the vstore binary or wrk missing), unavailable (the service did
/// not start: its log's tail is included), internal (wrk failed or printed no figures; no
/// CREATEDB privilege), and the server's. Not thread-safe with other bench_* calls.
[[nodiscard]] Result<nlohmann::json> bench_serve(const std::string& admin_conninfo, const BenchServeOptions& options);

/// Options of `vstore bench soak`.
struct BenchSoakOptions {
  std::filesystem::path data;        ///< article JSON Lines file (the Reuters set); required
  std::filesystem::path query_file;  ///< TSV of queries (a code, a tab, the text); required
  std::filesystem::path vstore;      ///< the vstore binary run as `vstore serve`; required for the service phase
  std::string wrk = "wrk";           ///< the wrk program, searched in PATH without a '/'
  std::int64_t seed = 1000;          ///< articles stored before the writers start. Default 1000. Range 10..100000.
  int duration_s = 30;               ///< seconds of each phase. Default 30. Range 1..86400.
  int writers = 8;                   ///< writer threads. Default 8. Range 1..256.
  int readers = 8;                   ///< reader threads, and wrk's connections. Default 8. Range 1..256.
  int top_k = 10;                    ///< results per search. Default 10. Range 1..1000.
  bool service = true;               ///< also run the phase against `vstore serve` under wrk
  std::vector<std::string> serve_args;  ///< further options for `vstore serve` (e.g. `--no-map`)
  /// The rest of the configuration (embedder, model, table, pool, HNSW settings); its
  /// database_url is replaced by the scratch database's and the backend is pgvector.
  Config config;
  std::filesystem::path model_dir;   ///< the local engine's model directory (EMBEDDING_PROVIDER=local); else empty
  BenchProgress progress;            ///< may be empty
};

/// What a soak acknowledged: uri -> the last article whose write was acknowledged for it.
using SoakAcknowledged = std::map<std::string, Article>;

/// The table of `store` against `acknowledged`: every row's uri and vector bytes against the
/// vector `embedder` makes from document_text() of the last acknowledged article of that uri.
/// Returns {expected_rows, rows, lost (acknowledged, absent), changed (present with another
/// vector), unexpected (present, never acknowledged), checksum_expected, checksum_stored
/// (FNV-1a 64 over the uris in order and their float bytes, as 16 hex digits), equal, and up to
/// five examples of each}. Errors: those of the store and the embedder.
[[nodiscard]] Result<nlohmann::json> soak_verify(ArticleStore& store, const SoakAcknowledged& acknowledged);

/// A soak in a database of its own (`vstore_bench_soak_<pid>`, created on the server of
/// `admin_conninfo` and dropped at the end, also on failure). The first `seed` articles of
/// `data` are stored; then, for `duration_s`, `writers` threads upsert through one ArticleStore
/// (three new articles for each rewrite of one of the thread's own, every text marked with
/// its writer and version) while `readers` threads search by text (every other one filtered by
/// a writer's source), ask for the articles similar to an acknowledged one (which must exist)
/// and read vectors by metadata. With `service`, `vstore serve` then runs as a child on the same
/// database and, for `duration_s` more, `writers` threads POST /v1/articles while wrk keeps
/// `readers` connections POSTing /v1/search by text. Last, soak_verify() compares the table with
/// every acknowledged write. Returns {seed, duration_s, writers, readers, top_k, provider,
/// model, pool, library: {writes, search, similar, vectors}, service: {writes, search (wrk),
/// answered, exit}, errors, first_error, verify, machine, server, version}; each latency cell
/// holds requests, requests/s and p50/p90/p99/max/mean in ms. `errors` counts failed calls,
/// wrong answers (more than top_k results, an acknowledged article not found), wrk's socket
/// errors and non-2xx answers; the caller fails the command when it is not 0 or verify.equal
/// is false. Errors: invalid_argument (an option out of range), not_found (data, query file,
/// the vstore binary or wrk missing), unavailable (the service did not start), internal, and
/// the server's. Not thread-safe with other bench_* calls.
[[nodiscard]] Result<nlohmann::json> bench_soak(const std::string& admin_conninfo, const BenchSoakOptions& options);

}  // namespace vstore
