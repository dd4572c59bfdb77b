// SPDX-License-Identifier: Apache-2.0
// Config: reads the process environment and .env files, checks every setting, redacts URLs.
//
// Design
// - read_environment() first parses the whole .env file (quoted values may span lines, so the
//   parser walks the text, counting lines for error messages), then copies `environ` over it,
//   so the process environment wins. Only a regular file of at most 1 MiB is read; a missing
//   file is an error when the user named it (EnvFile::required).
// - load_config() reads each variable once through Settings, which treats an empty value as
//   unset and turns every bad value into `NAME="value": expected ...`. Checks run in the order
//   of the product.md table, followed by the checks that relate two variables (ef_construction
//   against m, probes against lists, the model's dimension, the OpenAI key). The first problem
//   found is returned.
// - Values that may carry secrets never reach a message unredacted: URLs go through
//   redact_url(), tokens and API keys are not echoed at all, and .env errors name the line
//   but do not quote it.
// - redact_url() never fails: it recognises `scheme://` URLs and libpq conninfo strings and
//   returns anything else unchanged. Where a URL is ambiguous it redacts more, never less.
// Nothing here throws except std::bad_alloc; integers are parsed with std::from_chars.
#include "vstore/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace vstore {

namespace {

constexpr std::string_view k_default_model = "all-MiniLM-L6-v2";
constexpr int k_default_model_dim = 384;
constexpr std::string_view k_redacted = "***";

// Query parameters and conninfo keywords whose values redact_url() hides.
constexpr auto k_secret_names = std::to_array<std::string_view>({
    "password", "sslpassword", "token", "access_token", "api_key", "apikey", "key", "secret"});

// PostgreSQL keywords that cannot name a table without quoting ("reserved" and "reserved, can
// be function or type" in the PostgreSQL 15 keyword appendix).
constexpr auto k_reserved_words = std::to_array<std::string_view>({
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "binary", "both", "case", "cast", "check", "collate", "collation",
    "column", "concurrently", "constraint", "create", "cross", "current_catalog",
    "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
    "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end",
    "except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant", "group",
    "having", "ilike", "in", "initially", "inner", "intersect", "into", "is", "isnull", "join",
    "lateral", "leading", "left", "like", "limit", "localtime", "localtimestamp", "natural",
    "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer", "overlaps",
    "placing", "primary", "references", "returning", "right", "select", "session_user",
    "similar", "some", "symmetric", "system_user", "table", "tablesample", "then", "to",
    "trailing", "true", "union", "unique", "user", "using", "variadic", "verbose", "when",
    "where", "window", "with"});

// ---------------------------------------------------------------------------------------------
// Characters and strings

bool is_blank(char c) { return c == ' ' || c == '\t'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_lower(char c) { return c >= 'a' && c <= 'z'; }
bool is_alpha(char c) { return is_lower(c) || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_control(char c) {
  const auto byte = static_cast<unsigned char>(c);
  return byte < 0x20 || byte == 0x7f;
}

char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return to_lower(x) == to_lower(y); });
}

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

bool has_control(std::string_view text) { return std::any_of(text.begin(), text.end(), is_control); }

// `text` in double quotes, with quotes, backslashes and control characters escaped, so that
// empty values, spaces and line breaks are visible in messages.
std::string quote_value(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (is_control(c)) {
          out += fmt::format("\\x{:02x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

// A whole-string decimal integer: optional '-', digits, nothing else, no overflow.
std::optional<long long> parse_integer(std::string_view text) {
  long long value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

bool is_secret_name(std::string_view name) {
  return std::any_of(k_secret_names.begin(), k_secret_names.end(),
                     [&](std::string_view secret) { return iequals(name, secret); });
}

// `scheme` of RFC 3986: a letter, then letters, digits, '+', '-', '.'.
bool is_scheme(std::string_view scheme) {
  if (scheme.empty() || !is_alpha(scheme.front())) return false;
  return std::all_of(scheme.begin(), scheme.end(),
                     [](char c) { return is_alnum(c) || c == '+' || c == '-' || c == '.'; });
}

// ---------------------------------------------------------------------------------------------
// libpq conninfo strings: `key = value ...`, values unquoted (backslash escapes) or
// 'single-quoted' (backslash escapes). The scanner never fails; it records the first problem.

struct ConninfoItem {
  std::string_view key;
  std::size_t value_begin;  // offsets into the scanned text, quotes included
  std::size_t value_end;
};

struct ConninfoScan {
  std::vector<ConninfoItem> items;
  std::vector<std::pair<std::size_t, std::size_t>> stray;  // words without "=": [begin, end)
  std::string problem;  // empty when well-formed; never quotes the text (it may hold a password)
};

// The keywords libpq (up to 16) understands in a conninfo string.
constexpr auto k_libpq_keywords = std::to_array<std::string_view>({
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "channel_binding", "connect_timeout",
    "client_encoding", "options", "application_name", "fallback_application_name", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout", "replication",
    "gssencmode", "sslmode", "requiressl", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode",
    "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer", "require_auth", "ssl_min_protocol_version",
    "ssl_max_protocol_version", "krbsrvname", "gsslib", "gssdelegation", "service", "target_session_attrs",
    "load_balance_hosts"});

bool is_libpq_keyword(std::string_view key) {
  return std::find(k_libpq_keywords.begin(), k_libpq_keywords.end(), key) != k_libpq_keywords.end();
}

ConninfoScan scan_conninfo(std::string_view text) {
  ConninfoScan scan;
  auto note = [&](std::string problem) {
    if (scan.problem.empty()) scan.problem = std::move(problem);
  };
  const std::size_t size = text.size();
  std::size_t pos = 0;
  while (true) {
    while (pos < size && is_space(text[pos])) ++pos;
    if (pos >= size) break;
    const std::size_t key_begin = pos;
    while (pos < size && text[pos] != '=' && !is_space(text[pos])) ++pos;
    const std::string_view key = text.substr(key_begin, pos - key_begin);
    while (pos < size && is_space(text[pos])) ++pos;
    // A word without "=" or an unknown keyword may be the rest of a password that holds an
    // unquoted space ("password=ab cd"), so problems name its position, never its text.
    if (pos >= size || text[pos] != '=') {
      note(fmt::format("a word without \"=\" at character {} (not shown: after an unquoted space it may be part "
                       "of a password; quote values that hold spaces: password='a b')",
                       key_begin + 1));
      scan.stray.emplace_back(key_begin, key_begin + key.size());
      continue;
    }
    if (!is_libpq_keyword(key)) {
      note(fmt::format("an unknown keyword at character {} (not shown: it may be part of a password; quote values "
                       "that hold spaces: password='a b')",
                       key_begin + 1));
    }
    ++pos;
    while (pos < size && is_space(text[pos])) ++pos;
    const std::size_t value_begin = pos;
    if (pos < size && text[pos] == '\'') {
      ++pos;
      bool closed = false;
      while (pos < size) {
        if (text[pos] == '\\' && pos + 1 < size) {
          pos += 2;
        } else if (text[pos] == '\'') {
          ++pos;
          closed = true;
          break;
        } else {
          ++pos;
        }
      }
      if (!closed) note(fmt::format("unterminated quoted value of {}", quote_value(key)));
    } else {
      while (pos < size && !is_space(text[pos])) pos += (text[pos] == '\\' && pos + 1 < size) ? std::size_t{2} : std::size_t{1};
    }
    scan.items.push_back({key, value_begin, pos});
  }
  return scan;
}

std::string redact_conninfo(std::string_view text) {
  std::string out(text);
  const ConninfoScan scan = scan_conninfo(text);
  // Secret values are replaced, and so are whole words that are not `known_keyword=value`,
  // which may be pieces of a password that holds an unquoted space. Right to left, so that
  // the offsets stay valid.
  std::vector<std::pair<std::size_t, std::size_t>> hide = scan.stray;
  for (const ConninfoItem& item : scan.items) {
    if (!is_libpq_keyword(item.key)) {
      hide.emplace_back(static_cast<std::size_t>(item.key.data() - text.data()), item.value_end);
    } else if (item.value_end > item.value_begin && is_secret_name(item.key)) {
      hide.emplace_back(item.value_begin, item.value_end);
    }
  }
  std::sort(hide.begin(), hide.end());
  for (auto range = hide.rbegin(); range != hide.rend(); ++range) {
    out.replace(range->first, range->second - range->first, k_redacted);
  }
  return out;
}

// `query` is the text after '?' up to '#'; parameters are separated by '&' or ';'.
std::string redact_query(std::string_view query) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t end = std::min(query.find('&', pos), query.find(';', pos));
    const std::string_view param = query.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    const std::size_t eq = param.find('=');
    if (eq != std::string_view::npos && eq + 1 < param.size() && is_secret_name(param.substr(0, eq))) {
      out.append(param.substr(0, eq + 1));
      out.append(k_redacted);
    } else {
      out.append(param);
    }
    if (end == std::string_view::npos) break;
    out += query[end];
    pos = end + 1;
  }
  return out;
}

// `url` is `scheme://rest` with `rest` starting at `rest_begin`.
std::string redact_uri(std::string_view url, std::size_t rest_begin) {
  const std::string_view rest = url.substr(rest_begin);
  // The userinfo ends at the last '@' before the query. With no '@' there, an '@' after a '?'
  // that is not preceded by a query parameter ("u:p?w@host") still ends a password.
  const std::size_t query_mark = rest.find('?');
  std::size_t at = rest.substr(0, query_mark).rfind('@');
  if (at == std::string_view::npos && query_mark != std::string_view::npos) {
    const std::size_t later_at = rest.find('@', query_mark);
    if (later_at != std::string_view::npos) {
      const std::string_view between = rest.substr(query_mark, later_at - query_mark);
      if (between.find('=') == std::string_view::npos && between.find('&') == std::string_view::npos) {
        at = later_at;
      }
    }
  }

  std::string out(url.substr(0, rest_begin));
  std::size_t pos = 0;
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const std::size_t colon = userinfo.find(':');
    if (colon != std::string_view::npos && colon + 1 < userinfo.size()) {
      out.append(userinfo.substr(0, colon + 1));
      out.append(k_redacted);
    } else {
      out.append(userinfo);
    }
    out += '@';
    pos = at + 1;
  }

  const std::size_t query_begin = rest.find('?', pos);
  if (query_begin == std::string_view::npos) {
    out.append(rest.substr(pos));
    return out;
  }
  out.append(rest.substr(pos, query_begin + 1 - pos));
  const std::size_t fragment = rest.find('#', query_begin);
  out += redact_query(rest.substr(query_begin + 1, fragment == std::string_view::npos
                                                       ? std::string_view::npos
                                                       : fragment - query_begin - 1));
  if (fragment != std::string_view::npos) out.append(rest.substr(fragment));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Value checks that return what is wrong (empty optional when fine)

// HOST or HOST:PORT; HOST is a name, an IPv4 address or a bracketed IPv6 address.
std::optional<std::string> host_port_problem(std::string_view text, bool port_required) {
  std::string_view host;
  std::string_view port;
  bool has_port = false;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return "missing \"]\" after the IPv6 address";
    host = text.substr(1, close - 1);
    const std::size_t zone = host.find('%');
    const std::string_view address = host.substr(0, zone);
    if (address.find(':') == std::string_view::npos ||
        !std::all_of(address.begin(), address.end(), [](char c) { return is_hex(c) || c == ':' || c == '.'; }) ||
        (zone != std::string_view::npos && zone + 1 == host.size())) {
      return fmt::format("{} is not an IPv6 address", quote_value(host));
    }
    const std::string_view after = text.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return "unexpected text after \"]\"";
      has_port = true;
      port = after.substr(1);
    }
  } else {
    const std::size_t colon = text.find(':');
    if (colon != std::string_view::npos && text.find(':', colon + 1) != std::string_view::npos) {
      return "an IPv6 host must be in brackets, e.g. [::1]:8080";
    }
    host = text.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port = text.substr(colon + 1);
    }
    if (host.empty()) return "the host is empty";
    if (!std::all_of(host.begin(), host.end(), [](char c) { return is_alnum(c) || c == '-' || c == '.' || c == '_'; })) {
      return fmt::format("host {} has a character other than letters, digits, '-', '.' and '_'", quote_value(host));
    }
  }
  if (!has_port) {
    if (port_required) return "the port is missing";
    return std::nullopt;
  }
  const auto number = parse_integer(port);
  if (!number || *number < 1 || *number > 65535) {
    return fmt::format("port {} is not an integer from 1 to 65535", quote_value(port));
  }
  return std::nullopt;
}

// http(s)://HOST[:PORT][/PATH].
std::optional<std::string> http_url_problem(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else {
    return "the scheme is not http:// or https:// (lower-case)";
  }
  if (std::any_of(url.begin(), url.end(), [](char c) { return is_control(c) || c == ' '; })) {
    return "it contains a space or control character";
  }
  const std::size_t slash = rest.find('/');
  const std::string_view authority = rest.substr(0, slash);
  if (authority.find('@') != std::string_view::npos) return "user credentials do not belong in the URL";
  if (rest.find_first_of("?#") != std::string_view::npos) return "a query or fragment is not allowed";
  if (authority.empty()) return "the host is empty";
  return host_port_problem(authority, false);
}

constexpr std::string_view k_postgres_expected =
    "expected a postgresql:// or postgres:// URL or a libpq key=value connection string";

std::optional<std::string> postgres_url_problem(std::string_view url) {
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    if (std::any_of(url.begin(), url.end(), [](char c) { return is_control(c) || c == ' '; })) {
      return fmt::format("{} (a URL cannot contain spaces or control characters)", k_postgres_expected);
    }
    // What libpq would refuse with a message that quotes the URL, password included.
    for (std::size_t pos = url.find('%'); pos != std::string_view::npos; pos = url.find('%', pos + 1)) {
      if (pos + 2 >= url.size() || !is_hex(url[pos + 1]) || !is_hex(url[pos + 2])) {
        return fmt::format("{} (a malformed percent-encoding: write a literal % as %25)", k_postgres_expected);
      }
      if (url[pos + 1] == '0' && url[pos + 2] == '0') {
        return fmt::format("{} (%00 is not allowed in a URL)", k_postgres_expected);
      }
    }
    const std::string_view rest = url.substr(url.find("://") + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
    if (std::count(authority.begin(), authority.end(), '@') > 1) {
      return fmt::format("{} (more than one \"@\": write an @ in the user name or password as %40)",
                         k_postgres_expected);
    }
    const std::string_view hosts = authority.substr(authority.find('@') == std::string_view::npos ? 0 : authority.find('@') + 1);
    if (std::count(hosts.begin(), hosts.end(), '[') != std::count(hosts.begin(), hosts.end(), ']')) {
      return fmt::format("{} (an IPv6 host address without its closing \"]\")", k_postgres_expected);
    }
    return std::nullopt;
  }
  const std::size_t sep = url.find("://");
  if (sep != std::string_view::npos && is_scheme(url.substr(0, sep))) {
    return fmt::format("{} (scheme {} is not supported)", k_postgres_expected, quote_value(url.substr(0, sep)));
  }
  if (url.find('=') == std::string_view::npos) return std::string(k_postgres_expected);
  const ConninfoScan scan = scan_conninfo(url);
  if (!scan.problem.empty()) return fmt::format("{} ({})", k_postgres_expected, scan.problem);
  return std::nullopt;
}

// Splits DATABASE_READ_URLS at commas. A piece that does not start a URL (`scheme://`) or a
// conninfo (`key=`) continues the previous entry, so multi-host URLs such as
// `postgresql://h1,h2/db` stay whole.
std::vector<std::string_view> split_url_list(std::string_view list) {
  auto starts_entry = [](std::string_view piece) {
    piece = trim(piece);
    const std::size_t sep = piece.find("://");
    if (sep != std::string_view::npos && is_scheme(piece.substr(0, sep))) return true;
    std::size_t pos = 0;
    while (pos < piece.size() && (is_alnum(piece[pos]) || piece[pos] == '_')) ++pos;
    const std::size_t key_end = pos;
    while (pos < piece.size() && is_space(piece[pos])) ++pos;
    return key_end > 0 && pos < piece.size() && piece[pos] == '=';
  };
  std::vector<std::string_view> entries;
  std::size_t entry_begin = 0;
  std::size_t pos = 0;
  while (true) {
    const std::size_t comma = list.find(',', pos);
    if (comma == std::string_view::npos) break;
    const std::string_view next = list.substr(comma + 1, list.find(',', comma + 1) - comma - 1);
    if (trim(next).empty() || starts_entry(next) || trim(list.substr(entry_begin, comma - entry_begin)).empty()) {
      entries.push_back(trim(list.substr(entry_begin, comma - entry_begin)));
      entry_begin = comma + 1;
    }
    pos = comma + 1;
  }
  entries.push_back(trim(list.substr(entry_begin)));
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Settings: typed access to the environment with precise errors

std::unexpected<Error> bad_value(std::string_view name, std::string_view shown_value, std::string_view expected) {
  return fail(ErrorCode::invalid_argument, fmt::format("{}={}: {}", name, quote_value(shown_value), expected));
}

template <typename T>
struct Choice {
  std::string_view name;
  T value;
};

template <typename T, std::size_t N>
std::string choice_list(const std::array<Choice<T>, N>& choices) {
  std::string out;
  for (std::size_t choice_idx = 0; choice_idx < N; ++choice_idx) {
    if (choice_idx > 0) out += (choice_idx + 1 == N) ? " or " : ", ";
    out += choices[choice_idx].name;
  }
  return out;
}

class Settings {
 public:
  explicit Settings(const Environment& env) : m_env(env) {}

  // The value of `name`, or nullopt when unset or empty.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const {
    const auto found = m_env.find(std::string(name));
    if (found == m_env.end() || found->second.empty()) return std::nullopt;
    return std::string_view(found->second);
  }

  [[nodiscard]] Result<int> integer(std::string_view name, int fallback, int min, int max,
                                    std::string_view unit = {}) const {
    const auto text = get(name);
    if (!text) return fallback;
    const auto number = parse_integer(*text);
    if (!number || *number < min || *number > max) {
      return bad_value(name, *text, fmt::format("expected an integer from {} to {}{}", min, max, unit));
    }
    return static_cast<int>(*number);
  }

  template <typename T, std::size_t N>
  [[nodiscard]] Result<T> choice(std::string_view name, T fallback, const std::array<Choice<T>, N>& choices) const {
    const auto text = get(name);
    if (!text) return fallback;
    for (const auto& option : choices) {
      if (iequals(*text, option.name)) return option.value;
    }
    return bad_value(name, *text, fmt::format("expected {} (any case)", choice_list(choices)));
  }

  // A free-form value; control characters are rejected. Secrets are not echoed.
  [[nodiscard]] Result<std::string> text(std::string_view name, std::string_view fallback, bool secret = false) const {
    const auto value = get(name);
    if (!value) return std::string(fallback);
    if (has_control(*value)) {
      if (secret) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{} (value not shown): expected no control characters such as line breaks", name));
      }
      return bad_value(name, *value, "expected no control characters such as line breaks");
    }
    return std::string(*value);
  }

  [[nodiscard]] Result<std::filesystem::path> absolute_path(std::string_view name, std::string_view fallback) const {
    VS_TRY_ASSIGN(const std::string text_value, text(name, fallback));
    std::error_code ec;
    std::filesystem::path path = std::filesystem::absolute(std::filesystem::path(text_value), ec);
    if (ec) {
      return bad_value(name, text_value, fmt::format("cannot make the path absolute: {}", ec.message()));
    }
    path = path.lexically_normal();
    if (!path.has_filename() && path.has_relative_path()) path = path.parent_path();
    return path;
  }

 private:
  const Environment& m_env;
};

constexpr std::array<Choice<BackendKind>, 3> k_backends = {
    {{"pgvector", BackendKind::pgvector}, {"chromadb", BackendKind::chromadb}, {"dual", BackendKind::dual}}};
constexpr std::array<Choice<BackendKind>, 2> k_primaries = {
    {{"pgvector", BackendKind::pgvector}, {"chromadb", BackendKind::chromadb}}};
constexpr std::array<Choice<bool>, 6> k_switches = {{{"1", true},
                                                      {"true", true},
                                                      {"on", true},
                                                      {"0", false},
                                                      {"false", false},
                                                      {"off", false}}};
constexpr std::array<Choice<IndexType>, 3> k_index_types = {
    {{"hnsw", IndexType::hnsw}, {"ivfflat", IndexType::ivfflat}, {"none", IndexType::none}}};
constexpr std::array<Choice<std::string_view>, 3> k_providers = {
    {{"local", "local"}, {"openai", "openai"}, {"hash", "hash"}}};

// A duration as PostgreSQL writes one: an integer with an optional unit, ms, s or min (seconds
// without one), from 0 up to 24 hours. Nothing when the text is not one.
std::optional<std::chrono::milliseconds> duration_ms(std::string_view text) {
  std::string_view digits = text;
  long long unit_ms = 1000;
  for (const auto& [suffix, ms] : {std::pair<std::string_view, long long>{"ms", 1}, {"min", 60000}, {"s", 1000}}) {
    if (digits.ends_with(suffix)) {
      digits.remove_suffix(suffix.size());
      unit_ms = ms;
      break;
    }
  }
  const auto number = parse_integer(trim(digits));
  constexpr long long k_max_ms = 24LL * 3600 * 1000;
  if (!number || *number < 0 || *number > k_max_ms / unit_ms) return std::nullopt;
  return std::chrono::milliseconds(*number * unit_ms);
}

Result<void> load_database(const Settings& settings, Config& config) {
  if (const auto url = settings.get("DATABASE_URL")) {
    if (const auto problem = postgres_url_problem(*url)) return bad_value("DATABASE_URL", redact_url(*url), *problem);
    config.database_url = std::string(*url);
  }
  if (const auto list = settings.get("DATABASE_READ_URLS")) {
    const std::vector<std::string_view> entries = split_url_list(*list);
    for (std::size_t entry_idx = 0; entry_idx < entries.size(); ++entry_idx) {
      const std::string name = fmt::format("DATABASE_READ_URLS[{}]", entry_idx + 1);
      const std::string_view entry = entries[entry_idx];
      if (entry.empty()) {
        return bad_value(name, entry, fmt::format("{} (empty entry in the comma-separated list)", k_postgres_expected));
      }
      if (const auto problem = postgres_url_problem(entry)) return bad_value(name, redact_url(entry), *problem);
      config.database_read_urls.emplace_back(entry);
    }
  }
  if (const auto text = settings.get("DATABASE_READ_MAX_LAG")) {
    const auto ms = duration_ms(*text);
    if (!ms) {
      return bad_value("DATABASE_READ_MAX_LAG", *text,
                       "expected a replica's largest replay lag, from 0 up to 24 hours: whole seconds (10) or an "
                       "integer with the unit ms, s or min (500ms, 10s, 5min)");
    }
    config.database_read_max_lag = *ms;
  }
  return {};
}

Result<void> load_backend(const Settings& settings, Config& config) {
  VS_TRY_ASSIGN(config.backend, settings.choice("VECTOR_BACKEND", config.backend, k_backends));
  VS_TRY_ASSIGN(config.primary, settings.choice("VECTOR_PRIMARY", config.primary, k_primaries));
  VS_TRY_ASSIGN(config.shadow_compare, settings.choice("VSTORE_SHADOW_COMPARE", config.shadow_compare, k_switches));
  VS_TRY_ASSIGN(config.table, settings.text("VSTORE_TABLE", config.table));
  const std::string_view table = config.table;
  const bool plain = !table.empty() && table.size() <= 63 && (is_lower(table.front()) || table.front() == '_') &&
                     std::all_of(table.begin(), table.end(), [](char c) { return is_lower(c) || is_digit(c) || c == '_'; });
  if (!plain) {
    return bad_value("VSTORE_TABLE", table, "expected a plain lower-case SQL identifier matching [a-z_][a-z0-9_]{0,62}");
  }
  if (std::find(k_reserved_words.begin(), k_reserved_words.end(), table) != k_reserved_words.end()) {
    return bad_value("VSTORE_TABLE", table,
                     "expected a plain SQL identifier matching [a-z_][a-z0-9_]{0,62} that is not a reserved word");
  }
  return {};
}

Result<void> load_pgvector(const Settings& settings, PgVectorConfig& pg) {
  VS_TRY_ASSIGN(pg.index_type, settings.choice("PGVECTOR_INDEX_TYPE", pg.index_type, k_index_types));
  VS_TRY_ASSIGN(pg.hnsw_m, settings.integer("PGVECTOR_HNSW_M", pg.hnsw_m, 2, 100));
  VS_TRY_ASSIGN(pg.hnsw_ef_construction,
                settings.integer("PGVECTOR_HNSW_EF_CONSTRUCTION", pg.hnsw_ef_construction, 4, 1000));
  VS_TRY_ASSIGN(pg.hnsw_ef_search, settings.integer("PGVECTOR_HNSW_EF_SEARCH", pg.hnsw_ef_search, 1, 1000));
  VS_TRY_ASSIGN(pg.ivfflat_lists, settings.integer("PGVECTOR_IVFFLAT_LISTS", pg.ivfflat_lists, 1, 32768));
  VS_TRY_ASSIGN(pg.ivfflat_probes, settings.integer("PGVECTOR_IVFFLAT_PROBES", pg.ivfflat_probes, 1, 32768));

  if (pg.hnsw_ef_construction < 2 * pg.hnsw_m) {
    const bool defaulted = !settings.get("PGVECTOR_HNSW_EF_CONSTRUCTION");
    return bad_value(
        "PGVECTOR_HNSW_EF_CONSTRUCTION", std::to_string(pg.hnsw_ef_construction),
        fmt::format("expected an integer from {} (2 * PGVECTOR_HNSW_M={}) to 1000, as pgvector requires "
                    "ef_construction >= 2 * m{}",
                    2 * pg.hnsw_m, pg.hnsw_m, defaulted ? " (the value is the default; set it or lower PGVECTOR_HNSW_M)" : ""));
  }
  if (pg.ivfflat_probes > pg.ivfflat_lists) {
    const bool defaulted = !settings.get("PGVECTOR_IVFFLAT_PROBES");
    return bad_value("PGVECTOR_IVFFLAT_PROBES", std::to_string(pg.ivfflat_probes),
                     fmt::format("expected an integer from 1 to PGVECTOR_IVFFLAT_LISTS={}{}", pg.ivfflat_lists,
                                 defaulted ? " (the value is the default; set it or raise PGVECTOR_IVFFLAT_LISTS)" : ""));
  }
  return {};
}

Result<void> load_pool(const Settings& settings, PoolConfig& pool) {
  VS_TRY_ASSIGN(pool.size, settings.integer("DB_POOL_SIZE", pool.size, 1, 1000));
  VS_TRY_ASSIGN(pool.max_overflow, settings.integer("DB_MAX_OVERFLOW", pool.max_overflow, 0, 1000));
  VS_TRY_ASSIGN(const int timeout,
                settings.integer("DB_POOL_TIMEOUT", static_cast<int>(pool.timeout.count()), 1, 3600, " (seconds)"));
  pool.timeout = std::chrono::seconds(timeout);
  if (const auto text = settings.get("DB_POOL_RECYCLE")) {
    const auto number = parse_integer(*text);
    if (!number || (*number != -1 && (*number < 1 || *number > 604800))) {
      return bad_value("DB_POOL_RECYCLE", *text, "expected -1 (never recycle) or an integer from 1 to 604800 (seconds)");
    }
    pool.recycle = std::chrono::seconds(*number);
  }
  if (const auto text = settings.get("VSTORE_STATEMENT_TIMEOUT")) {
    const auto ms = duration_ms(*text);
    if (!ms) {
      return bad_value("VSTORE_STATEMENT_TIMEOUT", *text,
                       "expected 0 (no limit) or a duration up to 24 hours: whole seconds (30) or an integer with "
                       "the unit ms, s or min (500ms, 30s, 5min)");
    }
    pool.statement_timeout = *ms;
  }
  return {};
}

Result<void> load_chroma(const Settings& settings, Config& config) {
  VS_TRY_ASSIGN(config.chroma_url, settings.text("CHROMA_URL", config.chroma_url));
  if (!config.chroma_url.empty()) {
    if (const auto problem = http_url_problem(config.chroma_url)) {
      return bad_value("CHROMA_URL", redact_url(config.chroma_url),
                       fmt::format("expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH] ({})", *problem));
    }
  }
  VS_TRY_ASSIGN(config.chroma_token, settings.text("CHROMA_TOKEN", config.chroma_token, true));
  VS_TRY_ASSIGN(config.chroma_db_dir, settings.text("CHROMA_DB_DIR", config.chroma_db_dir));
  VS_TRY_ASSIGN(const int chroma_timeout, settings.integer("CHROMA_TIMEOUT", static_cast<int>(config.chroma_timeout.count()),
                                                           1, 3600, " (seconds)"));
  config.chroma_timeout = std::chrono::seconds(chroma_timeout);
  VS_TRY_ASSIGN(config.chroma_collection, settings.text("CHROMA_COLLECTION", config.chroma_collection));
  const std::string_view collection = config.chroma_collection;
  const bool valid = collection.size() >= 3 && collection.size() <= 512 && is_alnum(collection.front()) &&
                     is_alnum(collection.back()) &&
                     std::all_of(collection.begin(), collection.end(),
                                 [](char c) { return is_alnum(c) || c == '.' || c == '_' || c == '-'; });
  if (!valid) {
    return bad_value("CHROMA_COLLECTION", collection,
                     "expected 3 to 512 characters from [A-Za-z0-9._-], starting and ending with a letter or digit");
  }
  return {};
}

Result<void> load_embedding(const Settings& settings, Config& config) {
  VS_TRY_ASSIGN(const std::string_view provider,
                settings.choice("EMBEDDING_PROVIDER", std::string_view("local"), k_providers));
  config.embedding_provider = std::string(provider);
  VS_TRY_ASSIGN(config.embedding_model, settings.text("EMBEDDING_MODEL", config.embedding_model));
  VS_TRY_ASSIGN(config.embedding_dim, settings.integer("EMBEDDING_DIM", config.embedding_dim, 1, 16000));
  VS_TRY_ASSIGN(config.embed_threads, settings.integer("VSTORE_EMBED_THREADS", config.embed_threads, 0, 256));
  VS_TRY_ASSIGN(config.openai_api_key, settings.text("OPENAI_API_KEY", config.openai_api_key, true));
  VS_TRY_ASSIGN(config.openai_base_url, settings.text("OPENAI_BASE_URL", config.openai_base_url));
  if (!config.openai_base_url.empty()) {
    if (const auto problem = http_url_problem(config.openai_base_url)) {
      return bad_value("OPENAI_BASE_URL", redact_url(config.openai_base_url),
                       fmt::format("expected http://HOST[:PORT][/PATH] or https://HOST[:PORT][/PATH] ({})", *problem));
    }
  }

  VS_TRY_ASSIGN(const int openai_timeout, settings.integer("OPENAI_TIMEOUT", static_cast<int>(config.openai_timeout.count()),
                                                           1, 3600, " (seconds)"));
  config.openai_timeout = std::chrono::seconds(openai_timeout);

  if (provider == "openai" && config.openai_api_key.empty()) {
    return fail(ErrorCode::invalid_argument,
                "OPENAI_API_KEY is not set: EMBEDDING_PROVIDER=openai needs it; set OPENAI_API_KEY to the API key "
                "(or choose EMBEDDING_PROVIDER=local or hash)");
  }
  // The model's basename, so that "sentence-transformers/all-MiniLM-L6-v2" matches too.
  std::string_view model = config.embedding_model;
  model = model.substr(model.find_last_of('/') == std::string_view::npos ? 0 : model.find_last_of('/') + 1);
  if (provider == "local" && iequals(model, k_default_model) && config.embedding_dim != k_default_model_dim) {
    return bad_value("EMBEDDING_DIM", std::to_string(config.embedding_dim),
                     fmt::format("expected {} because EMBEDDING_MODEL={} produces {}-dimensional vectors",
                                 k_default_model_dim, quote_value(config.embedding_model), k_default_model_dim));
  }
  return {};
}

// An absolute directory named by an XDG variable, else HOME joined with the fallback, else none.
std::optional<std::filesystem::path> xdg_dir(const Settings& settings, std::string_view variable,
                                             std::string_view under_home) {
  if (const auto value = settings.get(variable); value && std::filesystem::path(*value).is_absolute()) {
    return std::filesystem::path(*value);
  }
  if (const auto home = settings.get("HOME"); home && std::filesystem::path(*home).is_absolute()) {
    return std::filesystem::path(*home) / under_home;
  }
  return std::nullopt;
}

// The data directory when VSTORE_DATA_DIR is unset, so that every command finds the same one
// whatever the current directory: the one set-up recorded, else $XDG_DATA_HOME/vstore. The
// current directory's .vstore is left only for a process without HOME.
Result<void> default_data_dir(const Settings& settings, Config& config) {
  if (const auto config_home = xdg_dir(settings, "XDG_CONFIG_HOME", ".config")) {
    const auto record = *config_home / "vstore" / "data_dir";
    std::ifstream in(record);
    std::string line;
    if (in && std::getline(in, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      const std::filesystem::path recorded(line);
      if (!recorded.is_absolute()) {
        return fail(ErrorCode::invalid_argument,
                    fmt::format("{} holds {}: expected the absolute path of a data directory (run scripts/setup.sh "
                                "again, or set VSTORE_DATA_DIR)",
                                record.string(), quote_value(line)));
      }
      config.data_dir = recorded.lexically_normal();
      config.data_dir_source = record.string();
      return {};
    }
  }
  if (const auto data_home = xdg_dir(settings, "XDG_DATA_HOME", ".local/share")) {
    config.data_dir = (*data_home / "vstore").lexically_normal();
    config.data_dir_source = "default";
    return {};
  }
  VS_TRY_ASSIGN(config.data_dir, settings.absolute_path("VSTORE_DATA_DIR", ".vstore"));
  config.data_dir_source = "default";
  return {};
}

Result<void> load_service(const Settings& settings, Config& config) {
  if (settings.get("VSTORE_DATA_DIR")) {
    VS_TRY_ASSIGN(config.data_dir, settings.absolute_path("VSTORE_DATA_DIR", ""));
    config.data_dir_source = "VSTORE_DATA_DIR";
  } else {
    VS_TRY(default_data_dir(settings, config));
  }
  if (settings.get("VSTORE_MODEL_DIR")) {
    VS_TRY_ASSIGN(config.model_dir, settings.absolute_path("VSTORE_MODEL_DIR", ""));
  }
  VS_TRY_ASSIGN(config.http_addr, settings.text("VSTORE_HTTP_ADDR", config.http_addr));
  if (const auto problem = host_port_problem(config.http_addr, true)) {
    return bad_value("VSTORE_HTTP_ADDR", config.http_addr,
                     fmt::format("expected HOST:PORT with a port from 1 to 65535, e.g. 127.0.0.1:8080 or [::1]:8080 ({})",
                                 *problem));
  }
  VS_TRY_ASSIGN(config.api_token, settings.text("VSTORE_API_TOKEN", config.api_token, true));
  return {};
}

// ---------------------------------------------------------------------------------------------
// .env files

class DotenvParser {
 public:
  DotenvParser(std::string_view text, const std::filesystem::path& path) : m_text(text), m_path(path) {}

  Result<void> parse(Environment& out) {
    if (m_text.starts_with("\xEF\xBB\xBF")) m_pos = 3;
    while (true) {
      skip_blanks();
      if (at_end()) return {};
      const char c = m_text[m_pos];
      if (c == '\n') {
        next_line();
        continue;
      }
      if (c == '#') {
        skip_to_line_end();
        continue;
      }
      VS_TRY(parse_assignment(out));
    }
  }

 private:
  [[nodiscard]] bool at_end() const { return m_pos >= m_text.size(); }
  [[nodiscard]] bool at_line_end() const { return at_end() || m_text[m_pos] == '\n'; }
  void skip_blanks() {
    while (!at_end() && (is_blank(m_text[m_pos]) || m_text[m_pos] == '\r')) ++m_pos;
  }
  void skip_to_line_end() {
    while (!at_line_end()) ++m_pos;
  }
  void next_line() {
    ++m_pos;
    ++m_line;
  }

  [[nodiscard]] std::unexpected<Error> malformed(std::size_t line, std::string_view what) const {
    return fail(ErrorCode::invalid_argument, fmt::format("{}:{}: {}", m_path.string(), line, what));
  }

  Result<void> parse_assignment(Environment& out) {
    const std::size_t line = m_line;
    const std::string_view rest = m_text.substr(m_pos);
    if (rest.starts_with("export") && rest.size() > 6 && is_blank(rest[6])) {
      m_pos += 6;
      skip_blanks();
    }
    const std::size_t name_begin = m_pos;
    if (at_end() || !(is_alpha(m_text[m_pos]) || m_text[m_pos] == '_')) {
      return malformed(line, "expected NAME=value with NAME made of letters, digits and '_', not starting with a digit");
    }
    while (!at_end() && (is_alnum(m_text[m_pos]) || m_text[m_pos] == '_')) ++m_pos;
    const std::string name(m_text.substr(name_begin, m_pos - name_begin));
    skip_blanks();
    if (at_end() || m_text[m_pos] != '=') {
      return malformed(line, at_line_end() ? fmt::format("missing \"=\" after {}", name)
                                           : fmt::format("unexpected character after {}; expected NAME=value", name));
    }
    ++m_pos;
    const std::size_t value_begin = m_pos;
    skip_blanks();
    const bool space_before_value = m_pos > value_begin;

    std::string value;
    if (!at_end() && (m_text[m_pos] == '\'' || m_text[m_pos] == '"')) {
      VS_TRY_ASSIGN(value, quoted_value(name, line));
      skip_blanks();
      if (!at_line_end() && m_text[m_pos] != '#') {
        return malformed(m_line, fmt::format("unexpected text after the closing quote of {}", name));
      }
      skip_to_line_end();
    } else {
      const std::size_t end = std::min(m_text.find('\n', m_pos), m_text.size());
      std::string_view raw = m_text.substr(m_pos, end - m_pos);
      m_pos = end;
      if (space_before_value && raw.starts_with('#')) raw = {};
      for (std::size_t char_idx = 1; char_idx < raw.size(); ++char_idx) {
        if (raw[char_idx] == '#' && is_blank(raw[char_idx - 1])) {
          raw = raw.substr(0, char_idx);
          break;
        }
      }
      value = std::string(trim(raw));
    }
    if (value.find('\0') != std::string::npos) return malformed(line, fmt::format("the value of {} has a NUL byte", name));
    out[name] = std::move(value);
    return {};
  }

  // The value between quotes at m_pos; may span lines. Leaves m_pos after the closing quote.
  Result<std::string> quoted_value(const std::string& name, std::size_t line) {
    const char quote = m_text[m_pos++];
    std::string value;
    while (!at_end()) {
      const char c = m_text[m_pos];
      if (c == quote) {
        ++m_pos;
        return value;
      }
      if (c == '\n') ++m_line;
      if (c == '\\' && quote == '"' && m_pos + 1 < m_text.size()) {
        const char escaped = m_text[m_pos + 1];
        switch (escaped) {
          case 'n': value += '\n'; break;
          case 'r': value += '\r'; break;
          case 't': value += '\t'; break;
          case '"': value += '"'; break;
          case '\'': value += '\''; break;
          case '\\': value += '\\'; break;
          default:
            value += c;
            value += escaped;
            if (escaped == '\n') ++m_line;
        }
        m_pos += 2;
        continue;
      }
      value += c;
      ++m_pos;
    }
    return malformed(line, fmt::format("unterminated {} quote in the value of {}", quote == '"' ? "double" : "single", name));
  }

  std::string_view m_text;
  const std::filesystem::path& m_path;
  std::size_t m_pos = 0;
  std::size_t m_line = 1;
};

constexpr std::size_t k_max_env_file_bytes = 1 << 20;

// The whole file, read with a bound (a settings file is small; a file that keeps growing
// while it is read is cut off by the bound, not read forever).
Result<std::string> read_file(const std::filesystem::path& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const std::error_code ec(errno, std::generic_category());
    return fail(ErrorCode::invalid_argument, fmt::format("cannot read {}: {}", quote_value(path.string()), ec.message()));
  }
  std::string text;
  std::array<char, 8192> buffer{};
  std::size_t count = 0;
  while (text.size() <= k_max_env_file_bytes && (count = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    text.append(buffer.data(), count);
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return fail(ErrorCode::invalid_argument, fmt::format("cannot read {}: read error", quote_value(path.string())));
  if (text.size() > k_max_env_file_bytes) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("cannot read {}: larger than 1 MiB; expected a file of NAME=value settings",
                            quote_value(path.string())));
  }
  return text;
}

}  // namespace

Result<Environment> read_environment(const std::filesystem::path& dotenv_path, EnvFile presence) {
  Environment env;
  std::error_code ec;
  const auto status = std::filesystem::status(dotenv_path, ec);
  const auto type = status.type();
  if (ec && type != std::filesystem::file_type::not_found) {
    return fail(ErrorCode::invalid_argument, fmt::format("cannot read {}: {}", quote_value(dotenv_path.string()), ec.message()));
  }
  if (type == std::filesystem::file_type::not_found) {
    if (presence == EnvFile::required) {
      return fail(ErrorCode::invalid_argument,
                  fmt::format("cannot read {}: no such file; expected a file of NAME=value settings",
                              quote_value(dotenv_path.string())));
    }
  } else if (type == std::filesystem::file_type::directory) {
    return fail(ErrorCode::invalid_argument, fmt::format("cannot read {}: it is a directory", quote_value(dotenv_path.string())));
  } else if (type != std::filesystem::file_type::regular) {
    return fail(ErrorCode::invalid_argument,
                fmt::format("cannot read {}: not a regular file; expected a file of NAME=value settings",
                            quote_value(dotenv_path.string())));
  } else {
    VS_TRY_ASSIGN(const std::string text, read_file(dotenv_path));
    VS_TRY(DotenvParser(text, dotenv_path).parse(env));
  }
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view item(*entry);
    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    env[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  return env;
}

Result<Config> load_config(const Environment& env) {
  const Settings settings(env);
  Config config;
  VS_TRY(load_database(settings, config));
  VS_TRY(load_backend(settings, config));
  VS_TRY(load_pgvector(settings, config.pgvector));
  VS_TRY(load_pool(settings, config.pool));
  VS_TRY(load_chroma(settings, config));
  VS_TRY(load_embedding(settings, config));
  VS_TRY(load_service(settings, config));
  return config;
}

std::string_view to_string(BackendKind kind) noexcept {
  switch (kind) {
    case BackendKind::pgvector: return "pgvector";
    case BackendKind::chromadb: return "chromadb";
    case BackendKind::dual: return "dual";
  }
  return "pgvector";
}

std::string_view to_string(IndexType type) noexcept {
  switch (type) {
    case IndexType::hnsw: return "hnsw";
    case IndexType::ivfflat: return "ivfflat";
    case IndexType::none: return "none";
  }
  return "none";
}

std::string redact_url(std::string_view url) {
  const std::size_t sep = url.find("://");
  if (sep != std::string_view::npos && is_scheme(url.substr(0, sep))) return redact_uri(url, sep + 3);
  if (url.find('=') != std::string_view::npos) return redact_conninfo(url);
  return std::string(url);
}

}  // namespace vstore
