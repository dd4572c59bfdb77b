// SPDX-License-Identifier: Apache-2.0
// vstore._native: the pybind11 edge over the C++ library. Every call into the library runs with
// the GIL released; conversions between Python objects and JSON run with it held and check for
// signals (Ctrl-C) every few thousand items. Library errors cross into Python in one place: an
// ErrorException thrown by unwrap() becomes the vstore.errors class of its ErrorCode in the
// translator registered below.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vstore/article.hpp"
#include "vstore/article_store.hpp"
#include "vstore/chroma_backup.hpp"
#include "vstore/config.hpp"
#include "vstore/embedder.hpp"
#include "vstore/filter.hpp"
#include "vstore/projection.hpp"
#include "vstore/reindex.hpp"
#include "vstore/validate.hpp"
#include "vstore/vector_store.hpp"

namespace py = pybind11;
using nlohmann::json;

namespace vstore::python {
namespace {

// ---- errors: the one place a vstore::Error becomes a Python exception ---------------------------

class ErrorException : public std::exception {
 public:
  explicit ErrorException(Error error) : m_error(std::move(error)) {}
  [[nodiscard]] const Error& error() const noexcept { return m_error; }
  [[nodiscard]] const char* what() const noexcept override { return m_error.message().c_str(); }

 private:
  Error m_error;
};

template <typename T>
T unwrap(Result<T>&& result) {
  if (!result) throw ErrorException(std::move(result.error()));
  return std::move(*result);
}

inline void unwrap(Result<void>&& result) {
  if (!result) throw ErrorException(std::move(result.error()));
}

// Runs `fn` (a library call returning Result<T>) with the GIL released; returns its value or
// throws its error (translated into Python once the GIL is held again).
template <typename Fn>
auto without_gil(Fn&& fn) {
  py::gil_scoped_release nogil;
  return unwrap(std::forward<Fn>(fn)());
}

[[noreturn]] void raise(ErrorCode code, std::string message) { throw ErrorException(Error(code, std::move(message))); }

void translate(std::exception_ptr ptr) {
  try {
    if (ptr) std::rethrow_exception(ptr);
  } catch (const ErrorException& e) {
    // vstore.errors.error_class("invalid_argument") -> vstore.InvalidArgument, and so on.
    py::object cls = py::module_::import("vstore.errors").attr("error_class")(std::string(to_string(e.error().code())));
    PyErr_SetObject(cls.ptr(), cls(e.error().message()).ptr());
  }
}

// Raises KeyboardInterrupt (or whatever a signal handler raised) when a signal arrived. GIL held.
void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();
}

constexpr std::size_t k_signal_stride = 4096;

// ---- JSON <-> Python -----------------------------------------------------------------------------

constexpr int k_max_depth = 64;

json to_json(py::handle obj, const std::string& path, int depth = 0);

json to_json(py::handle obj, const std::string& path, int depth) {
  if (depth > k_max_depth) raise(ErrorCode::invalid_argument, fmt::format("{}: nested deeper than {} levels", path, k_max_depth));
  if (obj.is_none()) return nullptr;
  if (py::isinstance<py::bool_>(obj)) return obj.cast<bool>();
  if (py::isinstance<py::str>(obj)) return obj.cast<std::string>();
  // numpy scalars and arrays (np.int64, np.float32, np.bool_, a vector): their Python values.
  if (py::hasattr(obj, "dtype") && py::hasattr(obj, "tolist")) return to_json(obj.attr("tolist")(), path, depth + 1);
  if (py::isinstance<py::int_>(obj) || (py::hasattr(obj, "__index__") && !py::isinstance<py::float_>(obj) &&
                                        !py::isinstance<py::sequence>(obj))) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(py::int_(py::reinterpret_borrow<py::object>(obj)).ptr(), &overflow);
    if (overflow != 0) {
      raise(ErrorCode::invalid_argument,
            fmt::format("{}: integer {} does not fit in 64 bits", path, py::str(obj).cast<std::string>()));
    }
    if (v == -1 && PyErr_Occurred() != nullptr) throw py::error_already_set();
    return static_cast<std::int64_t>(v);
  }
  if (py::isinstance<py::float_>(obj) || py::hasattr(obj, "__float__")) {
    const double v = py::float_(py::reinterpret_borrow<py::object>(obj)).cast<double>();
    if (!std::isfinite(v)) raise(ErrorCode::invalid_argument, fmt::format("{}: {} is not a finite number", path, v));
    return v;
  }
  if (py::isinstance<py::dict>(obj)) {
    json out = json::object();
    for (auto item : py::reinterpret_borrow<py::dict>(obj)) {
      if (!py::isinstance<py::str>(item.first)) {
        raise(ErrorCode::invalid_argument,
              fmt::format("{}: key {} is a {}; expected str", path, py::repr(item.first).cast<std::string>(),
                          py::type::of(item.first).attr("__name__").cast<std::string>()));
      }
      const auto key = item.first.cast<std::string>();
      out[key] = to_json(item.second, path + "." + key, depth + 1);
    }
    return out;
  }
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    json out = json::array();
    std::size_t i = 0;
    for (auto item : py::reinterpret_borrow<py::sequence>(obj)) {
      out.push_back(to_json(item, fmt::format("{}[{}]", path, i), depth + 1));
      if (++i % k_signal_stride == 0) check_signals();
    }
    return out;
  }
  raise(ErrorCode::invalid_argument,
        fmt::format("{}: a value of type {} cannot be stored; expected str, int, float, bool, None, list or dict", path,
                    py::type::of(obj).attr("__name__").cast<std::string>()));
}

py::object to_py(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return py::none();
    case json::value_t::boolean: return py::bool_(value.get<bool>());
    case json::value_t::number_integer: return py::int_(value.get<std::int64_t>());
    case json::value_t::number_unsigned: return py::int_(value.get<std::uint64_t>());
    case json::value_t::number_float: return py::float_(value.get<double>());
    case json::value_t::string: return py::str(value.get_ref<const std::string&>());
    case json::value_t::array: {
      py::list out;
      for (const auto& v : value) out.append(to_py(v));
      return out;
    }
    case json::value_t::object: {
      py::dict out;
      for (const auto& [k, v] : value.items()) out[py::str(k)] = to_py(v);
      return out;
    }
    default: return py::none();
  }
}

py::list hits_to_py(const std::vector<SearchHit>& hits) {
  py::list out;
  std::size_t i = 0;
  for (const auto& h : hits) {
    py::dict d;
    d["id"] = h.id;
    d["score"] = h.score;
    d["metadata"] = to_py(h.metadata);
    out.append(std::move(d));
    if (++i % k_signal_stride == 0) check_signals();
  }
  return out;
}

// A metadata filter: None or {} is no filter; anything else goes through parse_filter().
std::optional<FilterNode> filter_from(const py::object& where, const char* name) {
  if (where.is_none()) return std::nullopt;
  if (!py::isinstance<py::dict>(where)) {
    raise(ErrorCode::invalid_argument, fmt::format("{} must be a dict or None, not {}", name,
                                                   py::type::of(where).attr("__name__").cast<std::string>()));
  }
  if (py::len(where) == 0) return std::nullopt;
  const json j = to_json(where, name);
  auto parsed = parse_filter(j);
  if (!parsed) throw ErrorException(parsed.error().with_context(name));
  return std::move(*parsed);
}

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

// A 1-D vector from a numpy array or any sequence of numbers.
std::vector<float> vector_from(const py::object& obj, const char* name) {
  FloatArray arr;
  try {
    arr = FloatArray::ensure(obj);
  } catch (const py::error_already_set&) {
    arr = FloatArray();
  }
  if (!arr || arr.ndim() != 1) {
    raise(ErrorCode::invalid_argument, fmt::format("{} must be a 1-D sequence of numbers", name));
  }
  return {arr.data(), arr.data() + arr.size()};
}

// ---- Store -------------------------------------------------------------------------------------

// Stands in for an embedder that could not be made: every call reports why, so nothing is ever
// embedded with a made-up vector.
class MissingEmbedder final : public Embedder {
 public:
  MissingEmbedder(Error why, std::string model, int dim) : m_why(std::move(why)), m_model(std::move(model)), m_dim(dim) {}
  [[nodiscard]] std::string_view model() const override { return m_model; }
  [[nodiscard]] int dimension() const override { return m_dim; }
  [[nodiscard]] Result<std::vector<Embedding>> embed(std::span<const std::string> /*texts*/) override {
    return fail(m_why.with_context("the embedder is unavailable"));
  }

 private:
  Error m_why;
  std::string m_model;
  int m_dim;
};

// The environment over the .env file: `env_file` None reads ./.env when it exists; a named
// file must exist.
Environment environment(const std::optional<std::string>& env_file) {
  return unwrap(read_environment(env_file.value_or(".env"), env_file ? EnvFile::required : EnvFile::optional));
}

class Store {
 public:
  // `env_file`: None reads ./.env when it exists; a path must exist. `backend` overrides
  // VECTOR_BACKEND, `overrides` any variable.
  Store(const std::optional<std::string>& backend, const std::optional<std::string>& env_file,
        const std::optional<std::map<std::string, std::string>>& overrides) {
    Environment env = environment(env_file);
    if (overrides) {
      for (const auto& [k, v] : *overrides) env[k] = v;
    }
    if (backend) env["VECTOR_BACKEND"] = *backend;
    py::gil_scoped_release nogil;
    m_config = unwrap(load_config(env));
    OpenOptions options;
    options.create = true;  // the old store created its collection on first use
    std::unique_ptr<VectorStore> store = unwrap(open_store(m_config, options));
    std::unique_ptr<Embedder> embedder;
    if (auto made = make_embedder(m_config)) {
      embedder = std::move(*made);
    } else {
      m_embedder_error = made.error().to_string();
      embedder = std::make_unique<MissingEmbedder>(made.error(), m_config.embedding_model, m_config.embedding_dim);
    }
    m_store = std::make_shared<ArticleStore>(std::move(store), std::move(embedder), 1);
  }

  std::shared_ptr<ArticleStore> open() const {
    std::lock_guard lock(m_mutex);
    if (!m_store) raise(ErrorCode::unavailable, "the store is closed");
    return m_store;
  }

  void close() {
    std::shared_ptr<ArticleStore> store;
    {
      std::lock_guard lock(m_mutex);
      store.swap(m_store);
    }
    if (store) {
      py::gil_scoped_release nogil;
      store->shutdown();
      store.reset();  // calls still running hold their own reference
    }
  }

  [[nodiscard]] bool closed() const {
    std::lock_guard lock(m_mutex);
    return !m_store;
  }

  bool upsert_article(const py::dict& article) {
    auto store = open();
    Article a = unwrap(article_from_json(to_json(article, "article")));
    return without_gil([&] { return store->upsert_article(a); });
  }

  std::size_t upsert_articles(const py::list& articles) {
    auto store = open();
    std::vector<Article> batch;
    batch.reserve(py::len(articles));
    std::size_t i = 0;
    for (auto item : articles) {
      if (!py::isinstance<py::dict>(item)) {
        raise(ErrorCode::invalid_argument, fmt::format("articles[{}] is a {}; expected dict", i,
                                                       py::type::of(item).attr("__name__").cast<std::string>()));
      }
      auto a = article_from_json(to_json(item, fmt::format("articles[{}]", i)));
      if (!a) throw ErrorException(a.error().with_context(fmt::format("articles[{}]", i)));
      batch.push_back(std::move(*a));
      if (++i % k_signal_stride == 0) check_signals();
    }
    // Between embedding slices, take the GIL for a moment to see whether Ctrl-C was pressed;
    // if so, stop before anything is written (the store is written once, at the end).
    struct Interrupted {};
    std::size_t stored = 0;
    try {
      py::gil_scoped_release nogil;
      stored = unwrap(store->upsert_articles(batch, [](std::size_t /*done*/) {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) throw Interrupted{};
      }));
    } catch (const Interrupted&) {
      throw py::error_already_set();
    }
    return stored;
  }

  py::list search(const std::string& query, int top_k, const py::object& where) {
    auto store = open();
    auto filter = filter_from(where, "metadata_filter");
    return hits_to_py(without_gil([&] { return store->search_articles(query, top_k, filter); }));
  }

  py::list search_vector(const py::object& vector, int top_k, const py::object& where) {
    auto store = open();
    const std::vector<float> v = vector_from(vector, "vector");
    SearchOptions options;
    options.top_k = top_k;
    options.where = filter_from(where, "metadata_filter");
    return hits_to_py(without_gil([&] { return store->store().search(v, options); }));
  }

  // Seconds that `n` searches for `vector` take inside C++ (no Python between them): the
  // baseline the benchmark compares one search_vector() call from Python with.
  double time_search_vector(const py::object& vector, int top_k, int n) {
    auto store = open();
    const std::vector<float> v = vector_from(vector, "vector");
    if (n < 1) raise(ErrorCode::invalid_argument, fmt::format("n must be at least 1, not {}", n));
    SearchOptions options;
    options.top_k = top_k;
    py::gil_scoped_release nogil;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < n; ++i) static_cast<void>(unwrap(store->store().search(v, options)));
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  py::list similar(const std::string& uri, int top_k, const py::object& where) {
    auto store = open();
    auto filter = filter_from(where, "where");
    return hits_to_py(without_gil([&] { return store->similar_articles(uri, top_k, filter); }));
  }

  py::tuple get_vectors(std::optional<std::int64_t> limit, const py::object& where) {
    auto store = open();
    if (limit && *limit < 0) raise(ErrorCode::invalid_argument, fmt::format("limit must be 0 or more, not {}", *limit));
    auto filter = filter_from(where, "where");
    // limit 0 or None means all rows, as the old code's `limit if limit else None`.
    const VectorBatch batch = without_gil(
        [&] { return store->get_vectors_by_metadata(limit && *limit > 0 ? limit : std::nullopt, filter); });
    const std::size_t n = batch.ids.size();
    const std::size_t dim = batch.dim != 0 ? batch.dim : static_cast<std::size_t>(store->store().dimension());
    FloatArray arr({n, dim});
    if (n > 0) std::copy(batch.data.begin(), batch.data.end(), arr.mutable_data());
    py::list metadatas;
    py::list ids;
    for (std::size_t i = 0; i < n; ++i) {
      metadatas.append(to_py(batch.metadatas[i]));
      ids.append(py::str(batch.ids[i]));
      if ((i + 1) % k_signal_stride == 0) check_signals();
    }
    return py::make_tuple(std::move(arr), std::move(metadatas), std::move(ids));
  }

  FloatArray embed(const std::vector<std::string>& texts) {
    auto store = open();
    const std::vector<Embedding> vecs = without_gil([&] { return store->embedder().embed(texts); });
    const auto dim = static_cast<std::size_t>(store->embedder().dimension());
    FloatArray arr({vecs.size(), dim});
    float* out = arr.mutable_data();
    for (std::size_t i = 0; i < vecs.size(); ++i) std::copy(vecs[i].begin(), vecs[i].end(), out + i * dim);
    return arr;
  }

  std::int64_t remove(const std::vector<std::string>& ids) {
    auto store = open();
    return without_gil([&] { return store->store().remove(ids); });
  }

  py::object health() {
    auto store = open();
    json h = without_gil([&] { return store->health(); });
    h["embedder"] = {{"provider", m_config.embedding_provider},
                     {"model", m_config.embedding_model},
                     {"available", !m_embedder_error.has_value()},
                     {"error", m_embedder_error ? json(*m_embedder_error) : json(nullptr)}};
    return to_py(h);
  }

  py::dict count() {
    auto store = open();
    const StoreCounts c = without_gil([&] { return store->store().count(); });
    py::dict d;
    d["rows"] = c.rows;
    d["with_embedding"] = c.with_embedding;
    return d;
  }

  [[nodiscard]] std::string backend() const { return std::string(to_string(m_config.backend)); }
  [[nodiscard]] int dimension() const { return open()->store().dimension(); }
  [[nodiscard]] std::string embedding_model() const { return m_config.embedding_model; }
  [[nodiscard]] std::optional<std::string> embedder_error() const { return m_embedder_error; }

 private:
  Config m_config;
  std::optional<std::string> m_embedder_error;
  mutable std::mutex m_mutex;
  std::shared_ptr<ArticleStore> m_store;
};

py::dict projection(const py::object& vectors) {
  FloatArray arr = FloatArray::ensure(vectors);
  if (!arr || arr.ndim() != 2) {
    raise(ErrorCode::invalid_argument, "embedding_projection expects a 2-D array of shape (n, dim)");
  }
  const auto n = static_cast<std::size_t>(arr.shape(0));
  const auto dim = static_cast<std::size_t>(arr.shape(1));
  Projection p;
  {
    const std::span<const float> data(arr.data(), n * dim);
    py::gil_scoped_release nogil;
    p = unwrap(embedding_projection(data, n, dim));
  }
  py::list points;
  for (const auto& pt : p.points) {
    py::dict d;
    d["x"] = pt.x;
    d["y"] = pt.y;
    d["cluster"] = pt.cluster;
    d["size"] = pt.size;
    points.append(std::move(d));
  }
  py::dict sizes;
  for (std::size_t c = 0; c < p.sizes.size(); ++c) sizes[py::int_(c)] = p.sizes[c];
  py::dict out;
  out["points"] = std::move(points);
  out["centroids"] = p.centroids;
  out["sizes"] = std::move(sizes);
  return out;
}

// ---- operations: the library functions behind `vstore reindex|validate|tune|cleanup-chroma|
// restore-chroma`, each on the configuration a Store would read, returning what the command's
// --json prints.

struct OpsTarget {
  Config config;
  std::string conninfo;
};

OpsTarget ops_target(const std::optional<std::string>& env_file,
                     const std::optional<std::map<std::string, std::string>>& overrides, bool need_database = true) {
  Environment env = environment(env_file);
  if (overrides) {
    for (const auto& [k, v] : *overrides) env[k] = v;
  }
  py::gil_scoped_release nogil;
  OpsTarget t;
  t.config = unwrap(load_config(env));
  auto conninfo = resolve_conninfo(t.config);
  if (conninfo) {
    t.conninfo = std::move(*conninfo);
  } else if (need_database) {
    unwrap(std::move(conninfo));
  }
  return t;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::round(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() * 1000) / 1000;
}

py::dict ops_reindex(bool force, std::optional<std::int64_t> limit, std::optional<std::string> topic,
                     std::optional<std::string> since, int batch_size, bool rebuild_index,
                     const std::optional<std::string>& env_file,
                     const std::optional<std::map<std::string, std::string>>& overrides) {
  ReindexOptions options;
  options.force = force;
  options.limit = limit;
  options.topic = std::move(topic);
  options.since = std::move(since);
  options.batch_size = batch_size;
  options.rebuild_index = rebuild_index;
  unwrap(check_reindex_options(options));
  OpsTarget t = ops_target(env_file, overrides);
  if (t.config.backend == BackendKind::chromadb) {
    raise(ErrorCode::invalid_argument,
          "reindex writes the vectors of the PostgreSQL table; VECTOR_BACKEND=chromadb has none");
  }
  const auto start = std::chrono::steady_clock::now();
  const ReindexReport r = without_gil([&]() -> Result<ReindexReport> {
    VS_TRY_ASSIGN(auto embedder, make_embedder(t.config));
    return reindex(t.conninfo, t.config, *embedder, options);
  });
  return to_py(json{{"total", r.total()},
                    {"processed", r.counts.processed},
                    {"skipped", r.counts.skipped},
                    {"failed", r.counts.failed},
                    {"failed_uris", r.failed_uris},
                    {"requeued", r.requeued},
                    {"elapsed_s", seconds_since(start)},
                    {"rate_per_s", r.rate_per_s},
                    {"index", r.index_name.empty() ? json(nullptr) : json(r.index_name)},
                    {"index_rebuilt", r.index_rebuilt},
                    {"model", r.model},
                    {"operation_id", r.operation_id}});
}

py::object ops_validate(std::optional<std::vector<std::string>> queries, int sample, std::uint64_t seed, int top_k,
                        double min_overlap, bool chroma, const std::optional<std::string>& env_file,
                        const std::optional<std::map<std::string, std::string>>& overrides) {
  ValidateOptions options;
  if (queries) options.queries = std::move(*queries);
  options.sample = sample;
  options.seed = seed;
  options.top_k = top_k;
  options.min_overlap = min_overlap;
  options.chroma = chroma;
  OpsTarget t = ops_target(env_file, overrides);
  const ValidateResult r = without_gil([&] { return validate_stores(t.conninfo, t.config, options); });
  return to_py(r.report);
}

py::object ops_tune(double target_recall, const py::object& where, int sample, std::uint64_t seed, int top_k,
                    const std::optional<std::string>& write_env, const std::optional<std::string>& env_file,
                    const std::optional<std::map<std::string, std::string>>& overrides) {
  TuneOptions options;
  options.target_recall = target_recall;
  options.sample = sample;
  options.seed = seed;
  options.top_k = top_k;
  if (!where.is_none()) options.where = unwrap(parse_filter(to_json(where, "where")));
  OpsTarget t = ops_target(env_file, overrides);
  const TuneResult r = without_gil([&] { return tune_index(t.conninfo, t.config, options); });
  json out = r.to_json(options);
  out["env_file"] = nullptr;
  if (write_env && r.recommended) {
    without_gil([&] { return write_env_setting(*write_env, r.env_name, std::to_string(*r.recommended)); });
    out["env_file"] = *write_env;
  }
  return to_py(out);
}

ChromaTarget chroma_target(const std::string& target) {
  if (target == "auto") return ChromaTarget::automatic;
  if (target == "dir") return ChromaTarget::directory;
  if (target == "server") return ChromaTarget::server;
  raise(ErrorCode::invalid_argument, fmt::format("target must be \"auto\", \"dir\" or \"server\", not \"{}\"", target));
}

py::object ops_cleanup_chroma(bool confirm, const std::string& target, bool backup,
                              const std::optional<std::string>& env_file,
                              const std::optional<std::map<std::string, std::string>>& overrides) {
  CleanupOptions options;
  options.target = chroma_target(target);
  options.backup = backup;
  OpsTarget t = ops_target(env_file, overrides);
  const auto start = std::chrono::steady_clock::now();
  if (!confirm) {
    const CleanupPlan plan = without_gil([&] { return plan_cleanup_chroma(t.conninfo, t.config, options); });
    json j = plan.to_json();
    j["dry_run"] = true;
    j["removed"] = false;
    j["backup"] = backup;
    return to_py(j);
  }
  const CleanupResult done = without_gil([&] { return cleanup_chroma(t.conninfo, t.config, options); });
  json j = done.plan.to_json();
  j["dry_run"] = false;
  j["removed"] = done.removed;
  j["backup"] = done.backup_path.empty() ? json(nullptr) : json(done.backup_path);
  j["manifest"] = done.manifest_path.empty() ? json(nullptr) : json(done.manifest_path);
  j["sha256"] = done.backup ? json(done.backup->archive_sha256) : json(nullptr);
  j["elapsed_s"] = seconds_since(start);
  return to_py(j);
}

py::object ops_restore_chroma(const std::string& backup, const std::optional<std::string>& env_file,
                              const std::optional<std::map<std::string, std::string>>& overrides) {
  OpsTarget t = ops_target(env_file, overrides, false);  // the log is a record, not a condition
  const auto start = std::chrono::steady_clock::now();
  const RestoreResult done = without_gil([&] { return restore_chroma(t.conninfo, t.config, backup); });
  return to_py(json{{"kind", done.manifest.kind},
                    {"target", done.target},
                    {"files", done.files},
                    {"records", done.records},
                    {"sha256", done.manifest.archive_sha256},
                    {"verified", true},
                    {"elapsed_s", seconds_since(start)}});
}

}  // namespace
}  // namespace vstore::python

PYBIND11_MODULE(_native, m) {
  using namespace vstore::python;
  m.doc() = "vstore's C++ core (use vstore.vector_store)";
  m.attr("__version__") = VSTORE_VERSION;
  py::register_exception_translator(&translate);

  py::class_<Store>(m, "Store")
      .def(py::init<const std::optional<std::string>&, const std::optional<std::string>&,
                    const std::optional<std::map<std::string, std::string>>&>(),
           py::arg("backend") = py::none(), py::arg("env_file") = py::none(), py::arg("overrides") = py::none())
      .def("upsert_article", &Store::upsert_article, py::arg("article"))
      .def("upsert_articles", &Store::upsert_articles, py::arg("articles"))
      .def("search", &Store::search, py::arg("query"), py::arg("top_k") = 10, py::arg("metadata_filter") = py::none())
      .def("search_vector", &Store::search_vector, py::arg("vector"), py::arg("top_k") = 10,
           py::arg("metadata_filter") = py::none())
      .def("_time_search_vector", &Store::time_search_vector, py::arg("vector"), py::arg("top_k"), py::arg("n"))
      .def("similar", &Store::similar, py::arg("uri"), py::arg("top_k") = 5, py::arg("where") = py::none())
      .def("get_vectors", &Store::get_vectors, py::arg("limit") = py::none(), py::arg("where") = py::none())
      .def("embed", &Store::embed, py::arg("texts"))
      .def("remove", &Store::remove, py::arg("ids"))
      .def("health", &Store::health)
      .def("count", &Store::count)
      .def("close", &Store::close)
      .def_property_readonly("closed", &Store::closed)
      .def_property_readonly("backend", &Store::backend)
      .def_property_readonly("dimension", &Store::dimension)
      .def_property_readonly("embedding_model", &Store::embedding_model)
      .def_property_readonly("embedder_error", &Store::embedder_error);

  m.def("embedding_projection", &projection, py::arg("vectors"));
  m.def("read_environment", &environment, py::arg("env_file") = py::none());
  m.def("reindex", &ops_reindex, py::kw_only(), py::arg("force") = false, py::arg("limit") = py::none(),
        py::arg("topic") = py::none(), py::arg("since") = py::none(), py::arg("batch_size") = 64,
        py::arg("rebuild_index") = false, py::arg("env_file") = py::none(), py::arg("overrides") = py::none());
  m.def("validate", &ops_validate, py::kw_only(), py::arg("queries") = py::none(), py::arg("sample") = 50,
        py::arg("seed") = 42, py::arg("top_k") = 10, py::arg("min_overlap") = 0.95, py::arg("chroma") = true,
        py::arg("env_file") = py::none(), py::arg("overrides") = py::none());
  m.def("tune", &ops_tune, py::kw_only(), py::arg("target_recall") = 0.95, py::arg("where") = py::none(),
        py::arg("sample") = 50, py::arg("seed") = 42, py::arg("top_k") = 10, py::arg("write_env") = py::none(),
        py::arg("env_file") = py::none(), py::arg("overrides") = py::none());
  m.def("cleanup_chroma", &ops_cleanup_chroma, py::kw_only(), py::arg("confirm") = false, py::arg("target") = "auto",
        py::arg("backup") = true, py::arg("env_file") = py::none(), py::arg("overrides") = py::none());
  m.def("restore_chroma", &ops_restore_chroma, py::arg("backup"), py::kw_only(), py::arg("env_file") = py::none(),
        py::arg("overrides") = py::none());
}
