// SPDX-License-Identifier: Apache-2.0
// EmbeddedPostgres: initdb + pg_ctl in a private directory, as the `postgres` user when we are
// root. Phases of start(): check binaries and pgvector; create and chown the root; initdb once
// (trust auth, superuser "vstore", settings appended to postgresql.conf); pick a port; pg_ctl
// start -w; create database "vstore"; save state.json. Every step is repeatable.
#include "vstore/embedded_pg.hpp"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"

namespace fs = std::filesystem;

namespace vstore {
namespace {

constexpr const char* k_default_bindir = "/usr/lib/postgresql/15/bin";
constexpr const char* k_default_sharedir = "/usr/share/postgresql/15";

struct CommandOutput {
  int exit_code = -1;
  std::string output;
};

struct RunAs {
  bool drop = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<RunAs> server_user() {
  RunAs run;
  if (geteuid() != 0) return run;
  const passwd* pw = getpwnam("postgres");
  if (pw == nullptr) {
    return fail(ErrorCode::not_found,
                "running as root, but the system user postgres does not exist; install postgresql-15 "
                "(scripts/setup.sh) or run vstore as an unprivileged user");
  }
  run.drop = true;
  run.uid = pw->pw_uid;
  run.gid = pw->pw_gid;
  return run;
}

// Runs argv (argv[0] a full path), as the server user when root, and captures stdout+stderr.
Result<CommandOutput> run_command(const std::vector<std::string>& argv, const RunAs& as) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return fail(ErrorCode::internal, "pipe() failed");
  std::vector<char*> cargv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(pipefd[0]);
    close(pipefd[1]);
    return fail(ErrorCode::internal, "fork() failed");
  }
  if (pid == 0) {
    dup2(pipefd[1], STDOUT_FILENO);
    dup2(pipefd[1], STDERR_FILENO);
    close(pipefd[0]);
    close(pipefd[1]);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    if (as.drop) {
      if (setgroups(0, nullptr) != 0 || setgid(as.gid) != 0 || setuid(as.uid) != 0) _exit(126);
    }
    // Run from a directory the server user can read.
    if (chdir("/") != 0) _exit(126);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(pipefd[1]);
  CommandOutput out;
  std::array<char, 4096> buf;
  ssize_t n;
  while ((n = read(pipefd[0], buf.data(), buf.size())) > 0) out.output.append(buf.data(), static_cast<std::size_t>(n));
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

Result<void> give_to_server_user(const fs::path& path, const RunAs& as) {
  if (as.drop && lchown(path.c_str(), as.uid, as.gid) != 0) {
    return fail(ErrorCode::internal, fmt::format("cannot give {} to user postgres", path.string()));
  }
  return {};
}

bool port_free(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

int pick_free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

fs::path socket_dir_for(const fs::path& root) {
  // A unix socket path must fit in 107 bytes including "/.s.PGSQL.NNNNN".
  fs::path dir = root / "run";
  if (dir.string().size() + 16 < 100) return dir;
  return fs::path("/tmp") / fmt::format("vstore-{:x}", std::hash<std::string>{}(root.string()));
}

std::string conninfo_for(const fs::path& socket_dir, int port, std::string_view dbname) {
  return fmt::format("host={} port={} user=vstore dbname={}", socket_dir.string(), port, dbname);
}

std::string tail_of_file(const fs::path& path, std::size_t max_lines) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
    if (lines.size() > max_lines) lines.erase(lines.begin());
  }
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out;
}

}  // namespace

EmbeddedPostgres::EmbeddedPostgres(fs::path root) : m_root(fs::absolute(std::move(root))) {}

Result<fs::path> EmbeddedPostgres::find_bindir() {
  fs::path dir = k_default_bindir;
  if (const char* env = std::getenv("VSTORE_PG_BINDIR"); env && *env) dir = env;
  if (!fs::exists(dir / "initdb") || !fs::exists(dir / "pg_ctl") || !fs::exists(dir / "postgres")) {
    return fail(ErrorCode::not_found,
                fmt::format("postgresql 15 server binaries not found in {} (initdb, pg_ctl, postgres); "
                            "run scripts/setup.sh, which installs the Debian package postgresql-15",
                            dir.string()));
  }
  return dir;
}

Result<EmbeddedStatus> EmbeddedPostgres::status() const {
  EmbeddedStatus st;
  st.root = m_root;
  const fs::path state = m_root / "state.json";
  if (fs::exists(state)) {
    try {
      std::ifstream in(state);
      auto j = nlohmann::json::parse(in);
      st.port = j.at("port").get<int>();
      st.socket_dir = j.at("socket_dir").get<std::string>();
    } catch (const std::exception& e) {
      return fail(ErrorCode::corruption, fmt::format("cannot read {}: {}", state.string(), e.what()));
    }
  }
  const fs::path pidfile = m_root / "data" / "postmaster.pid";
  if (fs::exists(pidfile)) {
    std::ifstream in(pidfile);
    long pid = 0;
    in >> pid;
    if (pid > 0 && kill(static_cast<pid_t>(pid), 0) == 0) st.running = true;
  }
  if (st.port != 0) st.conninfo = conninfo_for(st.socket_dir, st.port, "vstore");
  return st;
}

Result<EmbeddedStatus> EmbeddedPostgres::start(const EmbeddedOptions& options) {
  VS_TRY_ASSIGN(fs::path bindir, find_bindir());
  const fs::path control = fs::path(k_default_sharedir) / "extension" / "vector.control";
  if (!fs::exists(control)) {
    return fail(ErrorCode::not_found,
                fmt::format("pgvector is not installed ({} missing); run scripts/setup.sh, which builds "
                            "pgvector 0.8.0 from Debian's source package",
                            control.string()));
  }
  VS_TRY_ASSIGN(EmbeddedStatus current, status());
  if (current.running) return current;

  VS_TRY_ASSIGN(RunAs as, server_user());
  const fs::path data = m_root / "data";
  const fs::path sock = socket_dir_for(m_root);
  std::error_code ec;
  fs::create_directories(m_root, ec);
  fs::create_directories(sock, ec);
  if (ec) return fail(ErrorCode::internal, fmt::format("cannot create {}: {}", sock.string(), ec.message()));
  VS_TRY(give_to_server_user(m_root, as));
  VS_TRY(give_to_server_user(sock, as));

  if (!fs::exists(data / "PG_VERSION")) {
    VS_TRY_ASSIGN(CommandOutput out,
                  run_command({(bindir / "initdb").string(), "-D", data.string(), "-U", "vstore", "--auth=trust",
                               "-E", "UTF8", "--no-locale", "--no-sync"},
                              as));
    if (out.exit_code != 0) {
      return fail(ErrorCode::unavailable,
                  fmt::format("initdb failed for {} (exit {}){}{}", data.string(), out.exit_code,
                              as.drop ? " (it runs as user postgres, which needs to reach this directory)" : "",
                              out.output.empty() ? "" : ":\n" + out.output));
    }
    std::ofstream conf(data / "postgresql.conf", std::ios::app);
    conf << "\n# added by vstore\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "unix_socket_directories = '" << sock.string() << "'\n"
         << "shared_buffers = '" << options.shared_buffers << "'\n"
         << "maintenance_work_mem = '" << options.maintenance_work_mem << "'\n"
         << "max_connections = 100\n"
         << "fsync = " << (options.fsync ? "on" : "off") << "\n"
         // The WAL writer flushes every 10 ms instead of every 200 ms, so a bulk load's commit
         // finds most of its WAL already on disk and waits for little of it (vstore bench
         // migrate: the migration about 16% faster, the bare COPY about 6%; docs/benchmarks.md).
         << "wal_writer_delay = '10ms'\n"
         << "logging_collector = off\n";
    if (!conf) return fail(ErrorCode::internal, "cannot write postgresql.conf");
  }

  int port = options.port;
  if (port == 0 && current.port != 0 && port_free(current.port)) port = current.port;
  if (port == 0) port = pick_free_port();
  if (port == 0) return fail(ErrorCode::unavailable, "no free loopback port for postgresql");

  const fs::path log = m_root / "postgres.log";
  VS_TRY_ASSIGN(CommandOutput out,
                run_command({(bindir / "pg_ctl").string(), "-D", data.string(), "-l", log.string(), "-w", "-t",
                             "120", "-o", fmt::format("-p {}", port), "start"},
                            as));
  if (out.exit_code != 0) {
    return fail(ErrorCode::unavailable, fmt::format("postgresql did not start (exit {}): {}; log {}:{}",
                                                    out.exit_code, out.output, log.string(), tail_of_file(log, 15)));
  }

  {
    nlohmann::json state = {{"port", port}, {"socket_dir", sock.string()}};
    std::ofstream f(m_root / "state.json");
    f << state.dump(2) << "\n";
  }

  VS_TRY_ASSIGN(auto conn, pg::Connection::connect(conninfo_for(sock, port, "postgres")));
  VS_TRY_ASSIGN(auto exists, conn.exec("SELECT 1 FROM pg_database WHERE datname = 'vstore'"));
  if (exists.rows() == 0) {
    VS_TRY(conn.exec("CREATE DATABASE vstore"));
  }
  return status();
}

Result<void> EmbeddedPostgres::stop() {
  VS_TRY_ASSIGN(EmbeddedStatus current, status());
  if (!current.running) return {};
  VS_TRY_ASSIGN(fs::path bindir, find_bindir());
  VS_TRY_ASSIGN(RunAs as, server_user());
  VS_TRY_ASSIGN(CommandOutput out, run_command({(bindir / "pg_ctl").string(), "-D", (m_root / "data").string(),
                                                "-m", "fast", "-w", "-t", "120", "stop"},
                                               as));
  if (out.exit_code != 0) {
    return fail(ErrorCode::unavailable, fmt::format("pg_ctl stop failed (exit {}): {}", out.exit_code, out.output));
  }
  return {};
}

Result<void> EmbeddedPostgres::destroy() {
  VS_TRY_ASSIGN(EmbeddedStatus current, status());
  if (current.running) return fail(ErrorCode::conflict, "stop the embedded postgresql before removing it");
  std::error_code ec;
  fs::remove_all(m_root, ec);
  if (!current.socket_dir.empty() && !current.socket_dir.string().starts_with(m_root.string())) {
    fs::remove_all(current.socket_dir, ec);
  }
  if (ec) return fail(ErrorCode::internal, fmt::format("cannot remove {}: {}", m_root.string(), ec.message()));
  return {};
}

}  // namespace vstore
