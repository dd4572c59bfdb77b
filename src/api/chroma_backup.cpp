// SPDX-License-Identifier: Apache-2.0
// cleanup-chroma and restore-chroma. A backup is a gzip-compressed tar archive plus a JSON
// manifest beside it that holds the archive's SHA-256 (and, for a directory, every file's), so
// a restore can refuse a damaged archive before it writes anything:
//   directory:  the directory's regular files, by path relative to it
//   collection: collection.json (the server's description of it) and records.jsonl (one record
//               per line: id, embedding, metadata, document, uri), vectors as float32 values
// Removal happens only after the backup is written, flushed and read back against its checksum.
#include "vstore/chroma_backup.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "chroma/chroma_api.hpp"
#include "chroma/chroma_dir.hpp"
#include "chroma/chroma_http.hpp"
#include "chroma/chroma_remote.hpp"
#include "pg/pg_conn.hpp"

namespace vstore {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* k_format = "vstore-chroma-backup 1";

// ---- SHA-256 ------------------------------------------------------------------------------------

class Sha256 {
 public:
  Sha256() : m_ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free) { EVP_DigestInit_ex(m_ctx.get(), EVP_sha256(), nullptr); }
  void update(const void* data, std::size_t size) { EVP_DigestUpdate(m_ctx.get(), data, size); }
  std::string hex() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(m_ctx.get(), md.data(), &n);
    std::string out;
    for (unsigned int i = 0; i < n; ++i) out += fmt::format("{:02x}", md[i]);
    return out;
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> m_ctx;
};

Result<std::string> sha256_of_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot read {}", path.string()));
  Sha256 sha;
  std::array<char, 1 << 16> buf{};
  while (in) {
    in.read(buf.data(), buf.size());
    sha.update(buf.data(), static_cast<std::size_t>(in.gcount()));
  }
  if (in.bad()) return fail(ErrorCode::unavailable, fmt::format("cannot read {}", path.string()));
  return sha.hex();
}

// ---- times and names ----------------------------------------------------------------------------

std::string utc_now(const char* format) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t secs = std::chrono::system_clock::to_time_t(now);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, format, &tm);
  return fmt::format("{}.{:06d}Z", buf, micros);
}

std::string server_target(const std::string& server, const std::string& collection) {
  return fmt::format("{} collection {}", server, collection);
}

// ---- the archive ----------------------------------------------------------------------------------

// Writes a .tar.gz to a file descriptor, hashing every byte written.
class ArchiveWriter {
 public:
  static Result<std::unique_ptr<ArchiveWriter>> create(const fs::path& path) {
    std::unique_ptr<ArchiveWriter> w(new ArchiveWriter());
    w->m_path = path;
    w->m_fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w->m_fd < 0) return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", path.string(), std::strerror(errno)));
    w->m_archive = archive_write_new();
    archive_write_set_format_pax_restricted(w->m_archive);
    archive_write_add_filter_gzip(w->m_archive);
    archive_write_set_bytes_in_last_block(w->m_archive, 1);
    if (archive_write_open(w->m_archive, w.get(), nullptr, &ArchiveWriter::on_write, nullptr) != ARCHIVE_OK) {
      return fail(ErrorCode::internal, fmt::format("cannot start the archive {}: {}", path.string(),
                                                   archive_error_string(w->m_archive)));
    }
    return w;
  }
  ~ArchiveWriter() {
    if (m_archive) archive_write_free(m_archive);
    if (m_fd >= 0) ::close(m_fd);
  }
  ArchiveWriter(const ArchiveWriter&) = delete;
  ArchiveWriter& operator=(const ArchiveWriter&) = delete;

  // One regular file entry from memory (small files) or from a file on disk.
  Result<void> add_bytes(const std::string& name, std::string_view data) {
    VS_TRY(header(name, static_cast<std::int64_t>(data.size()), 0644, std::time(nullptr)));
    return body(name, data.data(), data.size());
  }
  Result<std::string> add_file(const std::string& name, const fs::path& source, std::int64_t size, int mode,
                               std::time_t mtime) {
    VS_TRY(header(name, size, mode, mtime));
    std::ifstream in(source, std::ios::binary);
    if (!in) return fail(ErrorCode::unavailable, fmt::format("cannot read {}", source.string()));
    Sha256 sha;
    std::array<char, 1 << 16> buf{};
    std::int64_t total = 0;
    while (in) {
      in.read(buf.data(), buf.size());
      const auto n = static_cast<std::size_t>(in.gcount());
      if (n == 0) break;
      sha.update(buf.data(), n);
      total += static_cast<std::int64_t>(n);
      VS_TRY(body(name, buf.data(), n));
    }
    if (in.bad() || total != size) {
      return fail(ErrorCode::conflict, fmt::format("{} changed while it was backed up ({} bytes, then {})", source.string(),
                                                   size, total));
    }
    return sha.hex();
  }
  // Closes the archive and syncs the file. Returns its SHA-256 and size.
  Result<std::pair<std::string, std::int64_t>> finish() {
    if (archive_write_close(m_archive) != ARCHIVE_OK) {
      return fail(ErrorCode::unavailable, fmt::format("cannot finish {}: {}", m_path.string(), archive_error_string(m_archive)));
    }
    if (m_write_error) return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", m_path.string(), std::strerror(m_write_error)));
    if (::fsync(m_fd) != 0 || ::close(m_fd) != 0) {
      m_fd = -1;
      return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", m_path.string(), std::strerror(errno)));
    }
    m_fd = -1;
    return std::pair{m_sha.hex(), m_bytes};
  }

 private:
  ArchiveWriter() = default;
  static la_ssize_t on_write(struct archive*, void* self, const void* data, std::size_t size) {
    auto* w = static_cast<ArchiveWriter*>(self);
    const char* p = static_cast<const char*>(data);
    std::size_t left = size;
    while (left > 0) {
      const ssize_t n = ::write(w->m_fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        w->m_write_error = errno == 0 ? EIO : errno;
        return -1;
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    w->m_sha.update(data, size);
    w->m_bytes += static_cast<std::int64_t>(size);
    return static_cast<la_ssize_t>(size);
  }
  Result<void> header(const std::string& name, std::int64_t size, int mode, std::time_t mtime) {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> entry(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_size(entry.get(), size);
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), static_cast<mode_t>(mode & 07777));
    archive_entry_set_mtime(entry.get(), mtime, 0);
    if (archive_write_header(m_archive, entry.get()) != ARCHIVE_OK) {
      return fail(ErrorCode::unavailable, fmt::format("cannot add {} to {}: {}", name, m_path.string(), archive_error_string(m_archive)));
    }
    return {};
  }
  Result<void> body(const std::string& name, const void* data, std::size_t size) {
    if (size == 0) return {};
    if (archive_write_data(m_archive, data, size) != static_cast<la_ssize_t>(size)) {
      return fail(ErrorCode::unavailable, fmt::format("cannot add {} to {}: {}", name, m_path.string(), archive_error_string(m_archive)));
    }
    return {};
  }

  fs::path m_path;
  int m_fd = -1;
  struct archive* m_archive = nullptr;
  Sha256 m_sha;
  std::int64_t m_bytes = 0;
  int m_write_error = 0;
};

// Reads every entry of a .tar.gz: `on_entry(name, contents)`; entries are small enough to hold
// (a Chroma file, or the records of a collection) one at a time.
template <typename OnEntry>
Result<void> read_archive(const fs::path& path, OnEntry&& on_entry) {
  std::unique_ptr<struct archive, int (*)(struct archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), path.c_str(), 1 << 16) != ARCHIVE_OK) {
    return fail(ErrorCode::corruption, fmt::format("cannot open the archive {}: {}", path.string(), archive_error_string(a.get())));
  }
  struct archive_entry* entry = nullptr;
  while (true) {
    const int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      return fail(ErrorCode::corruption, fmt::format("the archive {} is damaged: {}", path.string(), archive_error_string(a.get())));
    }
    const std::string name = archive_entry_pathname(entry);
    if (archive_entry_filetype(entry) != AE_IFREG) {
      return fail(ErrorCode::corruption, fmt::format("the archive {} holds {}, which is not a regular file", path.string(), name));
    }
    std::string data;
    data.resize(static_cast<std::size_t>(std::max<la_int64_t>(0, archive_entry_size(entry))));
    std::size_t got = 0;
    while (got < data.size()) {
      const la_ssize_t n = archive_read_data(a.get(), data.data() + got, data.size() - got);
      if (n < 0) {
        return fail(ErrorCode::corruption, fmt::format("the archive {} is damaged at {}: {}", path.string(), name,
                                                       archive_error_string(a.get())));
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
    }
    if (got != data.size()) {
      return fail(ErrorCode::corruption, fmt::format("the archive {} is truncated at {}", path.string(), name));
    }
    VS_TRY(on_entry(name, data, static_cast<int>(archive_entry_perm(entry)), archive_entry_mtime(entry)));
  }
  return {};
}

// ---- the server side ------------------------------------------------------------------------------

struct Server {
  std::unique_ptr<chroma::ChromaHttp> http;
  chroma::ServerApi api;
  chroma::ApiScope scope;
};

Result<Server> open_server(const Config& config) {
  chroma::HttpOptions options;
  options.base_url = config.chroma_url;
  options.token = config.chroma_token;
  options.io_timeout = config.chroma_timeout;
  Server s;
  VS_TRY_ASSIGN(s.http, chroma::ChromaHttp::create(std::move(options)));
  VS_TRY_ASSIGN(s.api, chroma::probe_api(*s.http));
  s.scope.api = s.api.api;
  return s;
}

// ---- the target ---------------------------------------------------------------------------------

Result<fs::path> directory_of(const Config& config) {
  std::error_code ec;
  const fs::path dir = fs::absolute(config.chroma_db_dir, ec);
  if (ec) return fail(ErrorCode::invalid_argument, fmt::format("CHROMA_DB_DIR={}: {}", config.chroma_db_dir, ec.message()));
  return dir.lexically_normal();
}

Result<ChromaTarget> choose_target(const Config& config, ChromaTarget wanted) {
  if (wanted != ChromaTarget::automatic) return wanted;
  VS_TRY_ASSIGN(const fs::path dir, directory_of(config));
  const bool have_dir = fs::exists(dir);
  const bool have_url = !config.chroma_url.empty();
  if (have_dir && have_url) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("both the Chroma directory {} (CHROMA_DB_DIR) and the server {} (CHROMA_URL) are configured; "
                            "choose one with --dir or --server",
                            dir.string(), redact_url(config.chroma_url)));
  }
  if (have_dir) return ChromaTarget::directory;
  if (have_url) return ChromaTarget::server;
  return fail(ErrorCode::invalid_argument,
              fmt::format("nothing to clean up: the Chroma directory {} (CHROMA_DB_DIR) does not exist and CHROMA_URL is unset",
                          dir.string()));
}

Result<void> describe_directory(const Config& config, CleanupPlan& plan) {
  VS_TRY_ASSIGN(const fs::path dir, directory_of(config));
  plan.kind = "directory";
  plan.target = dir.string();
  if (!fs::is_directory(dir)) {
    return fail(ErrorCode::not_found, fmt::format("the Chroma directory {} (CHROMA_DB_DIR) does not exist", dir.string()));
  }
  // Only a Chroma directory that no process holds is ever removed: ChromaDir refuses the rest.
  VS_TRY_ASSIGN(chroma::ChromaDir opened, chroma::ChromaDir::open(dir.string()));
  VS_TRY_ASSIGN(auto collections, opened.collections());
  for (const auto& c : collections) plan.collections.push_back(c.name);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const auto status = it->symlink_status();
    if (fs::is_directory(status)) continue;
    if (!fs::is_regular_file(status)) {
      return fail(ErrorCode::conflict, fmt::format("{} is not a regular file or directory; cleanup-chroma removes only "
                                                   "what a Chroma directory holds",
                                                   it->path().string()));
    }
    ++plan.files;
    plan.bytes += static_cast<std::int64_t>(it->file_size());
  }
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot list {}: {}", dir.string(), ec.message()));
  return {};
}

Result<void> describe_collection(const Config& config, CleanupPlan& plan) {
  plan.kind = "collection";
  VS_TRY_ASSIGN(Server server, open_server(config));
  plan.target = server_target(server.http->server(), config.chroma_collection);
  VS_TRY_ASSIGN(auto found, chroma::find_collection(*server.http, server.scope, config.chroma_collection));
  if (!found) {
    return fail(ErrorCode::not_found, fmt::format("chroma server {} has no collection {}", server.http->server(),
                                                  config.chroma_collection));
  }
  VS_TRY_ASSIGN(auto described, chroma::describe_collection(*found, config.chroma_collection, server.http->server()));
  VS_TRY_ASSIGN(json count, server.http->get(server.scope.record_path(described.id, "count") + server.scope.query()));
  if (!count.is_number_integer()) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} answered count with {}", server.http->server(), count.dump()));
  }
  plan.records = count.get<std::int64_t>();
  plan.collections.push_back(config.chroma_collection);
  return {};
}

// ---- backups ------------------------------------------------------------------------------------

struct BackupFiles {
  fs::path archive;
  fs::path manifest;
};

Result<BackupFiles> new_backup_files(const Config& config) {
  const fs::path dir = config.data_dir / "backups";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  const std::string stem = fmt::format("chroma-{}-{}", utc_now("%Y%m%dT%H%M%S"), ::getpid());
  return BackupFiles{dir / (stem + ".tar.gz"), dir / (stem + ".json")};
}

Result<void> write_manifest(const fs::path& path, const BackupManifest& manifest) {
  const fs::path tmp = path.string() + ".partial";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << manifest.to_json().dump(2) << "\n";
    out.flush();
    if (!out) return fail(ErrorCode::unavailable, fmt::format("cannot write {}", tmp.string()));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot write {}: {}", path.string(), ec.message()));
  return {};
}

Result<void> back_up_directory(const fs::path& dir, ArchiveWriter& writer, BackupManifest& manifest) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file()) files.push_back(it->path());
  }
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot list {}: {}", dir.string(), ec.message()));
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0) {
      return fail(ErrorCode::unavailable, fmt::format("cannot read {}: {}", file.string(), std::strerror(errno)));
    }
    const std::string rel = file.lexically_relative(dir).generic_string();
    VS_TRY_ASSIGN(std::string sha, writer.add_file(rel, file, st.st_size, static_cast<int>(st.st_mode), st.st_mtime));
    manifest.files.push_back({rel, static_cast<std::int64_t>(st.st_size), std::move(sha)});
  }
  return {};
}

Result<void> back_up_collection(const Config& config, ArchiveWriter& writer, BackupManifest& manifest) {
  VS_TRY_ASSIGN(Server server, open_server(config));
  VS_TRY_ASSIGN(auto found, chroma::find_collection(*server.http, server.scope, config.chroma_collection));
  if (!found) {
    return fail(ErrorCode::not_found, fmt::format("chroma server {} has no collection {}", server.http->server(),
                                                  config.chroma_collection));
  }
  chroma::RemoteOptions options;
  options.http.base_url = config.chroma_url;
  options.http.token = config.chroma_token;
  options.http.io_timeout = config.chroma_timeout;
  VS_TRY_ASSIGN(chroma::ChromaRemote remote, chroma::ChromaRemote::open(std::move(options)));
  VS_TRY_ASSIGN(chroma::CollectionInfo info, remote.collection(config.chroma_collection));
  VS_TRY_ASSIGN(chroma::Snapshot snap, remote.read(info));
  VS_TRY(writer.add_bytes("collection.json", found->dump(2) + "\n"));
  std::string lines;
  for (const auto& rec : snap.records) {
    json line = {{"id", rec.id}, {"embedding", rec.vector}, {"metadata", rec.metadata}};
    line["document"] = rec.document ? json(*rec.document) : json(nullptr);
    line["uri"] = rec.uri ? json(*rec.uri) : json(nullptr);
    lines += line.dump() + "\n";
  }
  VS_TRY(writer.add_bytes("records.jsonl", lines));
  manifest.records = static_cast<std::int64_t>(snap.records.size());
  manifest.collection = config.chroma_collection;
  manifest.tenant = server.scope.tenant;
  manifest.database = server.scope.database;
  return {};
}

Result<std::pair<BackupManifest, BackupFiles>> write_backup(const Config& config, const CleanupPlan& plan) {
  VS_TRY_ASSIGN(BackupFiles files, new_backup_files(config));
  BackupManifest manifest;
  manifest.kind = plan.kind;
  manifest.source = plan.kind == "directory" ? plan.target : redact_url(config.chroma_url);
  manifest.created_at = utc_now("%Y-%m-%dT%H:%M:%S");
  manifest.archive = files.archive.filename().string();
  auto written = [&]() -> Result<void> {
    VS_TRY_ASSIGN(auto writer, ArchiveWriter::create(files.archive));
    if (plan.kind == "directory") {
      VS_TRY(back_up_directory(plan.target, *writer, manifest));
    } else {
      VS_TRY(back_up_collection(config, *writer, manifest));
    }
    VS_TRY_ASSIGN(auto done, writer->finish());
    manifest.archive_sha256 = done.first;
    manifest.archive_bytes = done.second;
    // Read back: the bytes on disk are the bytes hashed.
    VS_TRY_ASSIGN(const std::string again, sha256_of_file(files.archive));
    if (again != manifest.archive_sha256) {
      return fail(ErrorCode::corruption, fmt::format("the backup {} reads back with another SHA-256", files.archive.string()));
    }
    return write_manifest(files.manifest, manifest);
  }();
  if (!written) {
    std::error_code ec;
    fs::remove(files.archive, ec);
    return fail(written.error().with_context("backup"));
  }
  return std::pair{std::move(manifest), std::move(files)};
}

// ---- restore ------------------------------------------------------------------------------------

Result<std::pair<BackupManifest, fs::path>> read_backup(const std::string& path) {
  fs::path manifest_path = path;
  if (manifest_path.extension() != ".json") {
    std::string s = manifest_path.string();
    if (s.ends_with(".tar.gz")) s = s.substr(0, s.size() - 7);
    manifest_path = s + ".json";
  }
  std::ifstream in(manifest_path);
  if (!in) {
    return fail(ErrorCode::not_found, fmt::format("no backup manifest {} (a backup is CHROMA.tar.gz with CHROMA.json "
                                                  "beside it, as cleanup-chroma printed)",
                                                  manifest_path.string()));
  }
  const json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) return fail(ErrorCode::corruption, fmt::format("the manifest {} is not JSON", manifest_path.string()));
  auto manifest = BackupManifest::from_json(j);
  if (!manifest) return fail(manifest.error().with_context(manifest_path.string()));
  const fs::path archive = manifest_path.parent_path() / manifest->archive;
  if (manifest->archive.find('/') != std::string::npos || !fs::exists(archive)) {
    return fail(ErrorCode::not_found, fmt::format("the archive {} that {} names is missing", archive.string(), manifest_path.string()));
  }
  VS_TRY_ASSIGN(const std::string sha, sha256_of_file(archive));
  if (sha != manifest->archive_sha256) {
    return fail(ErrorCode::corruption, fmt::format("the archive {} has SHA-256 {}, but its manifest records {}: it is damaged; "
                                                   "nothing was restored",
                                                   archive.string(), sha, manifest->archive_sha256));
  }
  return std::pair{std::move(*manifest), archive};
}

bool safe_relative(const std::string& name) {
  if (name.empty() || name.front() == '/') return false;
  for (const auto& part : fs::path(name)) {
    if (part == ".." || part == ".") return false;
  }
  return true;
}

Result<std::int64_t> restore_directory(const BackupManifest& manifest, const fs::path& archive) {
  const fs::path target = manifest.source;
  std::error_code ec;
  if (fs::exists(target) && !(fs::is_directory(target) && fs::is_empty(target, ec))) {
    return fail(ErrorCode::conflict, fmt::format("{} exists and is not empty; move it away to restore the backup there",
                                                 target.string()));
  }
  std::map<std::string, const BackupManifest::File*> expected;
  for (const auto& f : manifest.files) expected[f.path] = &f;
  const fs::path staging = target.string() + fmt::format(".restore-{}", ::getpid());
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot create {}: {}", staging.string(), ec.message()));
  std::int64_t written = 0;
  auto extracted = read_archive(archive, [&](const std::string& name, const std::string& data, int perm,
                                             std::time_t mtime) -> Result<void> {
    auto it = expected.find(name);
    if (!safe_relative(name) || it == expected.end()) {
      return fail(ErrorCode::corruption, fmt::format("the archive {} holds {}, which its manifest does not list", archive.string(), name));
    }
    Sha256 sha;
    sha.update(data.data(), data.size());
    if (sha.hex() != it->second->sha256 || static_cast<std::int64_t>(data.size()) != it->second->bytes) {
      return fail(ErrorCode::corruption, fmt::format("{} in {} does not match its SHA-256 in the manifest", name, archive.string()));
    }
    const fs::path out = staging / name;
    std::error_code dir_ec;
    fs::create_directories(out.parent_path(), dir_ec);
    std::ofstream file(out, std::ios::binary | std::ios::trunc);
    file.write(data.data(), static_cast<std::streamsize>(data.size()));
    file.close();
    if (!file) return fail(ErrorCode::unavailable, fmt::format("cannot write {}", out.string()));
    fs::permissions(out, static_cast<fs::perms>(perm & 07777), dir_ec);
    const struct timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ::utimensat(AT_FDCWD, out.c_str(), times, 0);
    expected.erase(it);
    ++written;
    return {};
  });
  if (extracted && !expected.empty()) {
    extracted = fail(ErrorCode::corruption, fmt::format("the archive {} lacks {} (and {} more files its manifest lists)",
                                                        archive.string(), expected.begin()->first, expected.size() - 1));
  }
  if (!extracted) {
    fs::remove_all(staging, ec);
    return fail(extracted.error());
  }
  if (fs::exists(target)) fs::remove(target, ec);  // the empty directory checked above
  fs::rename(staging, target, ec);
  if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot move {} to {}: {}", staging.string(), target.string(), ec.message()));
  return written;
}

Result<std::int64_t> restore_collection(const Config& config, const BackupManifest& manifest, const fs::path& archive) {
  if (config.chroma_url.empty()) {
    return fail(ErrorCode::invalid_argument, fmt::format("the backup holds the collection {} of {}; set CHROMA_URL to the "
                                                         "server to restore it to",
                                                         manifest.collection, manifest.source));
  }
  json description;
  std::vector<json> records;
  VS_TRY(read_archive(archive, [&](const std::string& name, const std::string& data, int, std::time_t) -> Result<void> {
    if (name == "collection.json") {
      description = json::parse(data, nullptr, false);
    } else if (name == "records.jsonl") {
      std::istringstream lines(data);
      std::string line;
      while (std::getline(lines, line)) {
        if (line.empty()) continue;
        records.push_back(json::parse(line, nullptr, false));
        if (records.back().is_discarded()) return fail(ErrorCode::corruption, "records.jsonl holds a line that is not JSON");
      }
    } else {
      return fail(ErrorCode::corruption, fmt::format("the archive {} holds {}, which a collection backup does not", archive.string(), name));
    }
    return {};
  }));
  if (!description.is_object() || static_cast<std::int64_t>(records.size()) != manifest.records) {
    return fail(ErrorCode::corruption, fmt::format("the archive {} does not hold the collection its manifest describes "
                                                   "({} records listed, {} found)",
                                                   archive.string(), manifest.records, records.size()));
  }
  VS_TRY_ASSIGN(Server server, open_server(config));
  server.scope.tenant = manifest.tenant.empty() ? server.scope.tenant : manifest.tenant;
  server.scope.database = manifest.database.empty() ? server.scope.database : manifest.database;
  VS_TRY_ASSIGN(auto existing, chroma::find_collection(*server.http, server.scope, manifest.collection));
  if (existing) {
    return fail(ErrorCode::conflict, fmt::format("chroma server {} already has a collection {}; delete it to restore the backup",
                                                 server.http->server(), manifest.collection));
  }
  json metadata = description.value("metadata", json::object());
  json body = {{"name", manifest.collection}};
  if (metadata.is_object() && !metadata.empty()) body["metadata"] = metadata;
  // A 1.x collection whose space was set in its configuration rather than in hnsw:space.
  if (server.api.api == chroma::ApiVersion::v2 && !(metadata.is_object() && metadata.contains("hnsw:space"))) {
    const json config_json = description.value("configuration_json", description.value("configuration", json::object()));
    if (config_json.is_object() && config_json.contains("hnsw") && config_json["hnsw"].is_object() &&
        config_json["hnsw"].contains("space")) {
      body["configuration"] = {{"hnsw", {{"space", config_json["hnsw"]["space"]}}}};
    }
  }
  VS_TRY_ASSIGN(json created, server.http->post(server.scope.collections_path() + server.scope.query(), body,
                                                chroma::Retry::write));
  VS_TRY_ASSIGN(auto described, chroma::describe_collection(created, manifest.collection, server.http->server()));
  const auto batch = static_cast<std::size_t>(std::max<std::int64_t>(1, server.api.max_batch));
  for (std::size_t from = 0; from < records.size(); from += batch) {
    const std::size_t to = std::min(records.size(), from + batch);
    json ids = json::array(), embeddings = json::array(), metadatas = json::array(), documents = json::array(),
         uris = json::array();
    bool any_uri = false;
    for (std::size_t i = from; i < to; ++i) {
      const json& r = records[i];
      ids.push_back(r.at("id"));
      embeddings.push_back(r.at("embedding"));
      const json& m = r.value("metadata", json::object());
      metadatas.push_back(m.is_object() && !m.empty() ? m : json(nullptr));
      documents.push_back(r.value("document", json(nullptr)));
      uris.push_back(r.value("uri", json(nullptr)));
      any_uri = any_uri || !uris.back().is_null();
    }
    json add = {{"ids", ids}, {"embeddings", embeddings}, {"metadatas", metadatas}, {"documents", documents}};
    if (any_uri) add["uris"] = uris;
    VS_TRY(server.http->post(server.scope.record_path(described.id, "add"), add, chroma::Retry::write));
  }
  VS_TRY_ASSIGN(json count, server.http->get(server.scope.record_path(described.id, "count") + server.scope.query()));
  if (!count.is_number_integer() || count.get<std::int64_t>() != static_cast<std::int64_t>(records.size())) {
    return fail(ErrorCode::corruption, fmt::format("chroma server {} counts {} records in the restored collection {}, not {}",
                                                   server.http->server(), count.dump(), manifest.collection, records.size()));
  }
  return static_cast<std::int64_t>(records.size());
}

}  // namespace

json CleanupPlan::to_json() const {
  json j = {{"kind", kind},       {"target", target},         {"files", files},
            {"bytes", bytes},     {"collections", collections}, {"records", records},
            {"allowed", allowed()}, {"refusals", refusals}};
  j["last_write"] = last_write ? json(*last_write) : json(nullptr);
  if (validation) {
    j["validation"] = {{"id", validation->id},
                       {"finished_at", validation->finished_at ? json(*validation->finished_at) : json(nullptr)},
                       {"status", validation->status},
                       {"passed", validation->passed ? json(*validation->passed) : json(nullptr)},
                       {"report_path", validation->report_path}};
  } else {
    j["validation"] = nullptr;
  }
  return j;
}

json BackupManifest::to_json() const {
  json j = {{"format", format},   {"kind", kind},
            {"source", source},   {"created_at", created_at},
            {"archive", archive}, {"archive_sha256", archive_sha256},
            {"archive_bytes", archive_bytes}};
  if (kind == "collection") {
    j["collection"] = collection;
    j["tenant"] = tenant;
    j["database"] = database;
    j["records"] = records;
  } else {
    json list = json::array();
    for (const auto& f : files) list.push_back({{"path", f.path}, {"bytes", f.bytes}, {"sha256", f.sha256}});
    j["files"] = std::move(list);
  }
  return j;
}

Result<BackupManifest> BackupManifest::from_json(const json& j) {
  BackupManifest m;
  auto text = [&](const char* key, std::string& out) -> Result<void> {
    if (!j.is_object() || !j.contains(key) || !j[key].is_string()) {
      return fail(ErrorCode::corruption, fmt::format("the manifest has no text field \"{}\"", key));
    }
    out = j[key].get<std::string>();
    return {};
  };
  VS_TRY(text("format", m.format));
  if (m.format != k_format) {
    return fail(ErrorCode::corruption, fmt::format("the manifest's format is \"{}\", expected \"{}\"", m.format, k_format));
  }
  VS_TRY(text("kind", m.kind));
  VS_TRY(text("source", m.source));
  VS_TRY(text("created_at", m.created_at));
  VS_TRY(text("archive", m.archive));
  VS_TRY(text("archive_sha256", m.archive_sha256));
  m.archive_bytes = j.value("archive_bytes", std::int64_t{0});
  if (m.kind == "collection") {
    VS_TRY(text("collection", m.collection));
    m.tenant = j.value("tenant", std::string());
    m.database = j.value("database", std::string());
    if (!j.contains("records") || !j["records"].is_number_integer()) {
      return fail(ErrorCode::corruption, "the manifest has no integer field \"records\"");
    }
    m.records = j["records"].get<std::int64_t>();
  } else if (m.kind == "directory") {
    if (!j.contains("files") || !j["files"].is_array()) return fail(ErrorCode::corruption, "the manifest has no list \"files\"");
    for (const auto& f : j["files"]) {
      if (!f.is_object() || !f.contains("path") || !f["path"].is_string() || !f.contains("sha256") ||
          !f["sha256"].is_string() || !f.contains("bytes") || !f["bytes"].is_number_integer()) {
        return fail(ErrorCode::corruption, fmt::format("the manifest lists a file as {}, expected {{path, bytes, sha256}}", f.dump()));
      }
      m.files.push_back({f["path"].get<std::string>(), f["bytes"].get<std::int64_t>(), f["sha256"].get<std::string>()});
    }
  } else {
    return fail(ErrorCode::corruption, fmt::format("the manifest's kind is \"{}\", expected directory or collection", m.kind));
  }
  return m;
}

Result<CleanupPlan> plan_cleanup_chroma(const std::string& conninfo, const Config& config, const CleanupOptions& options) {
  CleanupPlan plan;
  VS_TRY_ASSIGN(const ChromaTarget target, choose_target(config, options.target));
  if (target == ChromaTarget::directory) {
    VS_TRY(describe_directory(config, plan));
  } else {
    if (config.chroma_url.empty()) return fail(ErrorCode::invalid_argument, "--server needs CHROMA_URL, which is unset");
    VS_TRY(describe_collection(config, plan));
  }
  if (config.backend != BackendKind::pgvector) {
    plan.refusals.push_back(fmt::format("VECTOR_BACKEND={} still uses ChromaDB; set VECTOR_BACKEND=pgvector and restart the "
                                        "application first",
                                        to_string(config.backend)));
  }
  {
    VS_TRY_ASSIGN(pg::Connection conn, pg::Connection::connect(conninfo));
    pg::Param p[] = {pg::Param::text(config.table)};
    VS_TRY_ASSIGN(pg::PgResult queued, conn.exec_params("SELECT count(*) FROM vstore_outbox WHERE table_name = $1", p));
    if (queued.get(0, 0) != "0") {
      plan.refusals.push_back(fmt::format("{} dual-mode writes of table {} are still queued for the secondary store; "
                                          "run `vstore outbox drain` first",
                                          queued.text(0, 0), config.table));
    }
  }
  VS_TRY_ASSIGN(plan.validation, latest_operation(conninfo, config, "validate"));
  VS_TRY_ASSIGN(plan.last_write, last_vector_write(conninfo, config));
  const auto& v = plan.validation;
  if (!v) {
    plan.refusals.push_back(fmt::format("no validation of table {} is on record; run `vstore validate` first", config.table));
  } else if (v->status != "succeeded") {
    plan.refusals.push_back(fmt::format("the latest validation ({}) did not finish ({}); run `vstore validate` again",
                                        v->finished_at.value_or("?"), v->summary.value("error", v->status)));
  } else if (!v->passed.value_or(false)) {
    plan.refusals.push_back(fmt::format("the latest validation ({}, report {}) did not pass", v->finished_at.value_or("?"),
                                        v->report_path.empty() ? "none" : v->report_path));
  } else if (plan.last_write && v->finished_at && *plan.last_write >= *v->finished_at) {
    plan.refusals.push_back(fmt::format("the latest validation ({}) is older than the last vector write ({}: a migration, "
                                        "reindex or dual-mode write); run `vstore validate` again",
                                        *v->finished_at, *plan.last_write));
  }
  return plan;
}

Result<CleanupResult> cleanup_chroma(const std::string& conninfo, const Config& config, const CleanupOptions& options) {
  CleanupResult result;
  VS_TRY_ASSIGN(result.plan, plan_cleanup_chroma(conninfo, config, options));
  if (!result.plan.allowed()) {
    std::string why;
    for (const auto& r : result.plan.refusals) why += (why.empty() ? "" : "; ") + r;
    return fail(ErrorCode::conflict, fmt::format("cleanup-chroma refused to remove {}: {}", result.plan.target, why));
  }
  VS_TRY_ASSIGN(const std::int64_t op, begin_operation(conninfo, config, "cleanup-chroma"));
  auto done = [&]() -> Result<void> {
    if (options.backup) {
      VS_TRY_ASSIGN(auto written, write_backup(config, result.plan));
      result.backup = std::move(written.first);
      result.backup_path = written.second.archive.string();
      result.manifest_path = written.second.manifest.string();
    }
    if (result.plan.kind == "directory") {
      // Once more, right before removing: no process may have opened it meanwhile.
      VS_TRY(chroma::ChromaDir::open(result.plan.target));
      std::error_code ec;
      fs::remove_all(result.plan.target, ec);
      if (ec) return fail(ErrorCode::unavailable, fmt::format("cannot remove {}: {}", result.plan.target, ec.message()));
    } else {
      VS_TRY_ASSIGN(Server server, open_server(config));
      VS_TRY(server.http->del(server.scope.named_path(config.chroma_collection)));
    }
    result.removed = true;
    return {};
  }();
  json summary = {{"kind", result.plan.kind}, {"target", result.plan.target}, {"removed", result.removed},
                  {"backup", result.backup_path.empty() ? json(nullptr) : json(result.backup_path)}};
  if (!done) summary["error"] = done.error().message();
  (void)finish_operation(conninfo, op, static_cast<bool>(done), std::nullopt, result.manifest_path, summary);
  VS_TRY(done);
  return result;
}

Result<RestoreResult> restore_chroma(const std::string& conninfo, const Config& config, const std::string& path) {
  VS_TRY_ASSIGN(auto backup, read_backup(path));
  RestoreResult result;
  result.manifest = std::move(backup.first);
  std::optional<std::int64_t> op;
  if (!conninfo.empty()) {
    if (auto begun = begin_operation(conninfo, config, "restore-chroma")) op = *begun;
  }
  auto done = [&]() -> Result<void> {
    if (result.manifest.kind == "directory") {
      result.target = result.manifest.source;
      VS_TRY_ASSIGN(result.files, restore_directory(result.manifest, backup.second));
    } else {
      result.target = server_target(redact_url(config.chroma_url), result.manifest.collection);
      VS_TRY_ASSIGN(result.records, restore_collection(config, result.manifest, backup.second));
    }
    return {};
  }();
  if (op) {
    json summary = {{"kind", result.manifest.kind}, {"target", result.target}, {"backup", backup.second.string()},
                    {"files", result.files}, {"records", result.records}};
    if (!done) summary["error"] = done.error().message();
    (void)finish_operation(conninfo, *op, static_cast<bool>(done), std::nullopt, "", summary);
  }
  VS_TRY(done);
  return result;
}

}  // namespace vstore
