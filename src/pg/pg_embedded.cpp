// SPDX-License-Identifier: Apache-2.0
// EmbeddedPostgres: initdb + pg_ctl in a private directory, as the `postgres` user when we are
// root. Phases of start(): check binaries and pgvector; create and chown the root; initdb once
// (superuser "vstore", settings appended to postgresql.conf); make the private socket directory
// (mode 0700, so local "trust" reaches only its owner and root); write pg_hba.conf (trust on the
// socket, scram-sha-256 on TCP); pick a port; pg_ctl start -w with the listen settings on its
// command line (no TCP unless asked); create database "vstore"; for TCP, set the generated
// password (kept in root/password, mode 0600); save state.json. Every step is repeatable, and a
// cluster made by an older vstore gets the same settings at its next start.
#include "vstore/embedded_pg.hpp"

#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <optional>
#include <random>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pg/pg_conn.hpp"
#include "pg/pg_port_retry.hpp"

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

// A unix socket path holds at most 107 bytes, "/.s.PGSQL.NNNNN" included; and the path goes
// into a shell word and a setting value, so it must not hold quotes or backslashes.
bool usable_socket_dir(const fs::path& dir) {
  const std::string text = dir.string();
  return text.size() + 15 <= 100 && text.find_first_of("'\"\\") == std::string::npos;
}

// True when `dir` is a real directory (not a link) of the server user with mode 0700.
bool private_dir(const fs::path& dir, const RunAs& as) {
  struct stat sb {};
  if (lstat(dir.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) return false;
  return (sb.st_mode & 0777) == 0700 && sb.st_uid == (as.drop ? as.uid : geteuid());
}

// The socket directory: root/run when its path is short enough, else the private directory the
// last start made (state.json), else a new one from mkdtemp (0700) under /tmp. Mode 0700 and
// owned by the server user either way.
Result<fs::path> make_socket_dir(const fs::path& root, const fs::path& saved, const RunAs& as) {
  fs::path dir = root / "run";
  if (usable_socket_dir(dir)) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail(ErrorCode::internal, fmt::format("cannot create {}: {}", dir.string(), ec.message()));
  } else if (!saved.empty() && !saved.string().starts_with(root.string()) && usable_socket_dir(saved) &&
             private_dir(saved, as)) {
    return saved;
  } else {
    std::string tmpl = "/tmp/vstore-pg-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return fail(ErrorCode::internal, fmt::format("cannot make a private socket directory for {} under /tmp (the "
                                                   "path {} is too long for a unix socket)",
                                                   root.string(), dir.string()));
    }
    dir = tmpl;
  }
  if (chmod(dir.c_str(), 0700) != 0) {
    return fail(ErrorCode::internal, fmt::format("cannot make {} private (mode 0700)", dir.string()));
  }
  VS_TRY(give_to_server_user(dir, as));
  return dir;
}

// A libpq conninfo value in single quotes, with ' and \ escaped.
std::string conninfo_value(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  out += '\'';
  return out;
}

std::string conninfo_for(const fs::path& socket_dir, int port, std::string_view dbname) {
  return fmt::format("host={} port={} user=vstore dbname={}", conninfo_value(socket_dir.string()), port, dbname);
}

std::string tcp_conninfo_for(int port, std::string_view password, std::string_view dbname) {
  return fmt::format("host=127.0.0.1 port={} user=vstore dbname={} password={}", port, dbname,
                     conninfo_value(password));
}

// Trust only on the private socket; TCP (when it listens) needs the scram-sha-256 password.
constexpr const char* k_hba =
    "# written by vstore at every start: the socket directory is private (mode 0700), so \"trust\"\n"
    "# reaches only its owner and root; TCP, when `vstore db start --tcp` turns it on, needs the\n"
    "# password in ../password. A standby (`EmbeddedPostgres::start_standby`) streams its WAL\n"
    "# over the socket.\n"
    "local all all trust\n"
    "local replication all trust\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n";

// The TCP password kept in `file`, if it holds one.
std::optional<std::string> read_password(const fs::path& file) {
  std::ifstream in(file);
  std::string password;
  if (!std::getline(in, password) || password.size() < 16) return std::nullopt;
  return password;
}

// The TCP password: read from root/password, or generated (32 letters and digits from
// std::random_device) and saved there with mode 0600.
Result<std::string> tcp_password(const fs::path& file) {
  if (auto kept = read_password(file)) return *kept;
  static constexpr std::string_view k_chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::random_device random;
  std::uniform_int_distribution<std::size_t> pick(0, k_chars.size() - 1);
  std::string password;
  for (int char_idx = 0; char_idx < 32; ++char_idx) password += k_chars[pick(random)];
  const int fd = open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail(ErrorCode::internal, fmt::format("cannot write {}", file.string()));
  const std::string line = password + "\n";
  const bool written = fchmod(fd, 0600) == 0 && write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  close(fd);
  if (!written) return fail(ErrorCode::internal, fmt::format("cannot write {}", file.string()));
  return password;
}

// Whether the server log, from byte `offset` on, says the TCP port was taken (PostgreSQL: could
// not bind IPv4 address "127.0.0.1": Address already in use).
bool log_says_port_taken(const fs::path& path, std::uintmax_t offset) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  in.seekg(static_cast<std::streamoff>(offset));
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  return text.find("Address already in use") != std::string::npos;
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
      st.tcp = j.value("tcp", false);
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
  if (st.tcp) st.password_file = m_root / "password";
  if (st.port != 0) {
    // Over TCP with the password; the socket when the password file cannot be read (it is
    // made at start, and this process may not be the one allowed to read it).
    st.conninfo = conninfo_for(st.socket_dir, st.port, "vstore");
    if (st.tcp) {
      if (auto password = read_password(st.password_file)) st.conninfo = tcp_conninfo_for(st.port, *password, "vstore");
    }
  }
  return st;
}

Result<EmbeddedStatus> EmbeddedPostgres::start(const EmbeddedOptions& options) {
  VS_TRY_ASSIGN(fs::path bindir, find_bindir());
  const fs::path control = fs::path(k_default_sharedir) / "extension" / "vector.control";
  if (!fs::exists(control)) {
    return fail(ErrorCode::not_found,
                fmt::format("pgvector is not installed ({} missing); run scripts/setup.sh, which builds "
                            "pgvector from Debian's source package",
                            control.string()));
  }
  VS_TRY_ASSIGN(EmbeddedStatus current, status());
  if (current.running) {
    if (options.tcp != current.tcp) {
      return fail(ErrorCode::conflict, fmt::format("the embedded postgresql in {} already runs {}; stop it first "
                                                   "(`vstore db stop`) to start it {}",
                                                   m_root.string(), current.tcp ? "with TCP" : "without TCP",
                                                   options.tcp ? "with --tcp" : "without --tcp"));
    }
    return current;
  }

  VS_TRY_ASSIGN(RunAs as, server_user());
  const fs::path data = m_root / "data";
  std::error_code ec;
  fs::create_directories(m_root, ec);
  if (ec) return fail(ErrorCode::internal, fmt::format("cannot create {}: {}", m_root.string(), ec.message()));
  VS_TRY(give_to_server_user(m_root, as));
  VS_TRY_ASSIGN(const fs::path sock, make_socket_dir(m_root, current.socket_dir, as));

  if (!fs::exists(data / "PG_VERSION")) {
    VS_TRY_ASSIGN(CommandOutput out,
                  run_command({(bindir / "initdb").string(), "-D", data.string(), "-U", "vstore", "--auth-local=trust",
                               "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"},
                              as));
    if (out.exit_code != 0) {
      return fail(ErrorCode::unavailable,
                  fmt::format("initdb failed for {} (exit {}){}{}", data.string(), out.exit_code,
                              as.drop ? " (it runs as user postgres, which needs to reach this directory)" : "",
                              out.output.empty() ? "" : ":\n" + out.output));
    }
    // listen_addresses and the socket directory come from the command line at each start.
    std::ofstream conf(data / "postgresql.conf", std::ios::app);
    conf << "\n# added by vstore\n"
         << "listen_addresses = ''\n"
         << "unix_socket_permissions = 0700\n"
         << "password_encryption = 'scram-sha-256'\n"
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
  {
    std::ofstream hba(data / "pg_hba.conf", std::ios::trunc);
    hba << k_hba;
    if (!hba) return fail(ErrorCode::internal, fmt::format("cannot write {}", (data / "pg_hba.conf").string()));
  }
  VS_TRY(give_to_server_user(data / "pg_hba.conf", as));

  int port = options.port;
  if (port == 0 && current.port != 0 && port_free(current.port)) port = current.port;
  if (port == 0) port = pick_free_port();
  if (port == 0) return fail(ErrorCode::unavailable, "no free loopback port for postgresql");

  const fs::path log = m_root / "postgres.log";
  // A port vstore chose itself can be taken by another process between the check and the
  // server's bind; the server then stops saying so, and a new free port is tried.
  auto attempt = [&](int p) -> Result<pg::PortAttempt> {
    // pg_ctl hands -o to a shell: each setting is one single-quoted word (the socket path holds
    // no quotes, usable_socket_dir()), the directory double-quoted inside for PostgreSQL's list.
    const std::string server_options = fmt::format(
        "-p {} '-clisten_addresses={}' '-cunix_socket_directories=\"{}\"' -cunix_socket_permissions=0700", p,
        options.tcp ? "127.0.0.1" : "", sock.string());
    std::error_code size_error;
    const std::uintmax_t log_start = fs::exists(log) ? fs::file_size(log, size_error) : std::uintmax_t{0};
    VS_TRY_ASSIGN(CommandOutput out,
                  run_command({(bindir / "pg_ctl").string(), "-D", data.string(), "-l", log.string(), "-w", "-t",
                               "120", "-o", server_options, "start"},
                              as));
    if (out.exit_code == 0) return pg::PortAttempt::started;
    if (log_says_port_taken(log, log_start)) return pg::PortAttempt::port_taken;
    return fail(ErrorCode::unavailable, fmt::format("postgresql did not start (exit {}): {}; log {}:{}",
                                                    out.exit_code, out.output, log.string(), tail_of_file(log, 15)));
  };
  VS_TRY_ASSIGN(port, pg::start_on_free_port(port, options.port == 0, 3, pick_free_port, attempt));

  {
    nlohmann::json state = {{"port", port}, {"socket_dir", sock.string()}, {"tcp", options.tcp}};
    std::ofstream f(m_root / "state.json");
    f << state.dump(2) << "\n";
  }

  VS_TRY_ASSIGN(auto conn, pg::Connection::connect(conninfo_for(sock, port, "postgres")));
  // A standby is read-only: its database, roles and passwords are its primary's.
  VS_TRY_ASSIGN(auto recovery, conn.exec("SELECT pg_is_in_recovery()"));
  if (recovery.get(0, 0) == "t") return status();
  VS_TRY_ASSIGN(auto exists, conn.exec("SELECT 1 FROM pg_database WHERE datname = 'vstore'"));
  if (exists.rows() == 0) {
    VS_TRY(conn.exec("CREATE DATABASE vstore"));
  }
  if (options.tcp) {
    // Only the SCRAM verifier reaches the server (and its logs), never the password.
    VS_TRY_ASSIGN(const std::string password, tcp_password(m_root / "password"));
    VS_TRY_ASSIGN(const std::string verifier, conn.encrypt_password("vstore", password));
    if (verifier.find_first_of("'\\") != std::string::npos) {
      return fail(ErrorCode::internal, "libpq made a password verifier holding a quote or backslash");
    }
    VS_TRY(conn.exec(fmt::format("ALTER ROLE vstore PASSWORD '{}'", verifier)));
  } else {
    VS_TRY(conn.exec("ALTER ROLE vstore PASSWORD NULL"));
  }
  return status();
}

Result<EmbeddedStatus> EmbeddedPostgres::start_standby(const fs::path& primary_root, const EmbeddedOptions& options) {
  VS_TRY_ASSIGN(fs::path bindir, find_bindir());
  VS_TRY_ASSIGN(EmbeddedStatus primary, EmbeddedPostgres(primary_root).status());
  if (!primary.running) {
    return fail(ErrorCode::unavailable,
                fmt::format("the primary cluster in {} is not running; start it first", fs::absolute(primary_root).string()));
  }
  const fs::path data = m_root / "data";
  if (fs::exists(data / "PG_VERSION")) {
    VS_TRY_ASSIGN(EmbeddedStatus current, status());
    if (!fs::exists(data / "standby.signal")) {
      return fail(ErrorCode::conflict, fmt::format("{} already holds a cluster that is not a standby", m_root.string()));
    }
    if (current.running) return current;
    return start(options);
  }
  VS_TRY_ASSIGN(RunAs as, server_user());
  std::error_code ec;
  fs::create_directories(m_root, ec);
  if (ec) return fail(ErrorCode::internal, fmt::format("cannot create {}: {}", m_root.string(), ec.message()));
  VS_TRY(give_to_server_user(m_root, as));
  // A base backup over the primary's socket, with its WAL streamed alongside; -R writes
  // standby.signal and primary_conninfo (the same socket), so the copy starts as a hot standby
  // that keeps streaming.
  VS_TRY_ASSIGN(CommandOutput out,
                run_command({(bindir / "pg_basebackup").string(), "-D", data.string(), "-R", "-X", "stream", "-c",
                             "fast", "-h", primary.socket_dir.string(), "-p", std::to_string(primary.port), "-U",
                             "vstore", "-w"},
                            as));
  if (out.exit_code != 0) {
    fs::remove_all(data, ec);
    return fail(ErrorCode::unavailable, fmt::format("pg_basebackup from {} failed (exit {}){}", primary_root.string(),
                                                    out.exit_code, out.output.empty() ? "" : ":\n" + out.output));
  }
  // Roles and their password verifiers come with the copy: over TCP the standby takes the
  // primary's password.
  if (options.tcp && fs::exists(primary.password_file)) {
    fs::copy_file(primary.password_file, m_root / "password", fs::copy_options::overwrite_existing, ec);
    if (ec) return fail(ErrorCode::internal, fmt::format("cannot copy the primary's password file: {}", ec.message()));
    fs::permissions(m_root / "password", fs::perms::owner_read | fs::perms::owner_write, ec);
  }
  return start(options);
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
    // The server may have ended on its own between the check above and pg_ctl (a start-up that
    // failed after a crash, say, whose postmaster removed its PID file): stopped is what was asked.
    if (auto now = status(); now && !now->running) return {};
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
