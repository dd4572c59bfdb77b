// SPDX-License-Identifier: Apache-2.0
// Strict pickle reader for Chroma's HNSW label maps.
//
// Design: a small stack machine over a closed set of opcodes. Values live in one arena and are
// referred to by index, because the memo (MEMOIZE/BINPUT/BINGET) aliases them: the Python
// dialect memoises the state dict before SETITEMS fills it, and its `label_to_id` strings are
// memo references to the strings first seen in `id_to_label`. Strings are views of the input.
// Every read is bounds-checked, every opcode outside the set is refused, at most eight dicts
// may be built (so nesting stays shallow), and the program must end with STOP, one value on the
// stack and no trailing bytes. The result is then checked for one of the two shapes: a
// PersistentData instance (class global, empty args, BUILD with a dict) or a plain dict with
// the same keys.
#include "chroma/chroma_pickle.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <vector>

#include <fmt/format.h>

namespace vstore::chroma {
namespace {

constexpr std::string_view k_py_module = "chromadb.segment.impl.vector.local_persistent_hnsw";
constexpr std::string_view k_py_class = "PersistentData";
constexpr std::size_t k_max_dicts = 8;

enum class Kind : std::uint8_t { none, mark, empty_tuple, integer, string, global, dict, object };

constexpr std::uint32_t k_no_node = ~std::uint32_t{0};

// A value in 16 bytes (the arena holds one per value pushed, 400,000 for a label map of
// 100,000 ids): an int, a string (its bytes in the input), a dict (its index in
// Machine::m_dict_items), or an object (after BUILD, its state node). Only the member of the
// node's kind is set and read.
struct Node {
  Kind kind = Kind::none;
  std::uint32_t size = 0;  // a string's length
  union {
    std::int64_t integer = 0;
    const char* chars;    // a string's first byte
    std::uint32_t dict;   // a dict's index
    std::uint32_t state;  // an object's state node, k_no_node until BUILD
  };
  [[nodiscard]] std::string_view string() const { return {chars, size}; }
};
static_assert(sizeof(Node) == 16);

Node string_node(std::string_view s) {
  Node n{.kind = Kind::string, .size = static_cast<std::uint32_t>(s.size())};
  n.chars = s.data();
  return n;
}

using Items = std::vector<std::pair<std::uint32_t, std::uint32_t>>;  // (key node, value node)

class Machine {
 public:
  // (At most one node per byte, so indexes fit 32 bits for the sizes parse_label_map accepts;
  // the reservation is a guess at the common case, capped so a huge file does not reserve GBs.)
  explicit Machine(std::string_view bytes) : m_in(bytes) {
    m_nodes.reserve(std::min<std::size_t>(bytes.size() / 4, std::size_t{1} << 22) + 16);
  }

  Result<std::uint32_t> run() {
    while (true) {
      if (m_pos >= m_in.size()) return bad("the pickle ends before its STOP opcode");
      m_op_at = m_pos;
      m_op = static_cast<unsigned char>(m_in[m_pos++]);
      switch (m_op) {
        case 0x80: {  // PROTO
          VS_TRY_ASSIGN(std::uint64_t proto, read_uint(1));
          if (proto < 2 || proto > 5) return bad(fmt::format("pickle protocol {} is not one Chroma writes", proto));
          break;
        }
        case 0x95: {  // FRAME
          VS_TRY_ASSIGN(std::uint64_t len, read_uint(8));
          if (len > m_in.size() - m_pos) return bad(fmt::format("frame of {} bytes runs past the end", len));
          break;
        }
        case '(':
          push(Node{.kind = Kind::mark});
          break;
        case '.': {  // STOP
          if (m_stack.size() != 1 || is(m_stack.back(), Kind::mark)) {
            return bad(fmt::format("STOP with {} values on the stack, expected 1", m_stack.size()));
          }
          if (m_pos != m_in.size()) return bad(fmt::format("{} bytes after STOP", m_in.size() - m_pos));
          return m_stack.back();
        }
        case '}':
          // Both dialects build four dicts (state + three maps); a cap keeps nesting shallow.
          if (m_dict_items.size() >= k_max_dicts) return bad(fmt::format("more than {} dicts", k_max_dicts));
          m_dict_items.emplace_back();
          push_index(Kind::dict, static_cast<std::uint32_t>(m_dict_items.size() - 1));
          break;
        case ')':
          push(Node{.kind = Kind::empty_tuple});
          break;
        case 'N':
          push(Node{.kind = Kind::none});
          break;
        case 'K': {
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(1));
          push_int(static_cast<std::int64_t>(v));
          break;
        }
        case 'M': {
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(2));
          push_int(static_cast<std::int64_t>(v));
          break;
        }
        case 'J': {
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(4));
          push_int(static_cast<std::int64_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(v))));
          break;
        }
        case 0x8a: {  // LONG1
          VS_TRY_ASSIGN(std::uint64_t n, read_uint(1));
          if (n > 8) return bad(fmt::format("LONG1 of {} bytes does not fit 64 bits", n));
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(static_cast<std::size_t>(n)));
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1U) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
          push_int(static_cast<std::int64_t>(v));
          break;
        }
        case 0x8c: {  // SHORT_BINUNICODE
          VS_TRY_ASSIGN(std::uint64_t n, read_uint(1));
          VS_TRY_ASSIGN(std::string_view s, read_bytes(static_cast<std::size_t>(n)));
          push(string_node(s));
          break;
        }
        case 'X': {  // BINUNICODE
          VS_TRY_ASSIGN(std::uint64_t n, read_uint(4));
          VS_TRY_ASSIGN(std::string_view s, read_bytes(static_cast<std::size_t>(n)));
          push(string_node(s));
          break;
        }
        case 0x94: {  // MEMOIZE
          VS_TRY_ASSIGN(std::uint32_t top, peek());
          m_memo.push_back(top);
          break;
        }
        case 'q':
        case 'r': {  // BINPUT, LONG_BINPUT
          VS_TRY_ASSIGN(std::uint64_t idx, read_uint(m_op == 'q' ? 1 : 4));
          VS_TRY_ASSIGN(std::uint32_t top, peek());
          if (idx > m_memo.size()) return bad(fmt::format("memo slot {} skips past {}", idx, m_memo.size()));
          if (idx == m_memo.size()) {
            m_memo.push_back(top);
          } else {
            m_memo[idx] = top;
          }
          break;
        }
        case 'h':
        case 'j': {  // BINGET, LONG_BINGET
          VS_TRY_ASSIGN(std::uint64_t idx, read_uint(m_op == 'h' ? 1 : 4));
          if (idx >= m_memo.size()) return bad(fmt::format("memo slot {} was never stored", idx));
          m_stack.push_back(m_memo[idx]);
          break;
        }
        case 's': {  // SETITEM
          if (m_stack.size() < 3) return bad("SETITEM needs a dict, a key and a value");
          const std::uint32_t value = pop();
          const std::uint32_t key = pop();
          VS_TRY(add_item(m_stack.back(), key, value));
          break;
        }
        case 'u': {  // SETITEMS
          std::size_t mark = m_stack.size();
          while (mark > 0 && !is(m_stack[mark - 1], Kind::mark)) --mark;
          if (mark == 0) return bad("no MARK on the stack");
          const std::size_t first = mark;  // the items are m_stack[first..]
          if ((m_stack.size() - first) % 2 != 0) return bad("SETITEMS with an odd number of values");
          if (first == 1) return bad("SETITEMS with no dict below its mark");
          const std::uint32_t target = m_stack[first - 2];
          for (std::size_t i = first; i < m_stack.size(); i += 2) VS_TRY(add_item(target, m_stack[i], m_stack[i + 1]));
          m_stack.resize(first - 1);
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          if (m_stack.size() < 2) return bad("STACK_GLOBAL needs a module and a name");
          const Node& name = m_nodes[pop()];
          const Node& module = m_nodes[pop()];
          if (name.kind != Kind::string || module.kind != Kind::string) return bad("STACK_GLOBAL operands are not strings");
          if (module.string() != k_py_module || name.string() != k_py_class) {
            return bad(fmt::format("the pickle names class {}.{}; only {}.{} is accepted", module.string(), name.string(),
                                   k_py_module, k_py_class));
          }
          push(Node{.kind = Kind::global});
          break;
        }
        case 0x81: {  // NEWOBJ
          if (m_stack.size() < 2) return bad("NEWOBJ needs a class and arguments");
          const std::uint32_t args = pop();
          const std::uint32_t cls = pop();
          if (!is(args, Kind::empty_tuple) || !is(cls, Kind::global)) return bad("NEWOBJ expects a class and an empty tuple");
          push_index(Kind::object, k_no_node);
          break;
        }
        case 'b': {  // BUILD
          if (m_stack.size() < 2) return bad("BUILD needs an object and a state");
          const std::uint32_t state = pop();
          Node& obj = m_nodes[m_stack.back()];
          if (obj.kind != Kind::object || obj.state != k_no_node || !is(state, Kind::dict)) {
            return bad("BUILD expects a new object and a dict state");
          }
          obj.state = state;
          break;
        }
        default:
          return bad(fmt::format("opcode 0x{:02x} is not used by either Chroma label-map format", m_op));
      }
    }
  }

  [[nodiscard]] const Node& node(std::uint32_t i) const { return m_nodes[i]; }
  [[nodiscard]] const Items& items(const Node& dict) const { return m_dict_items[dict.dict]; }

 private:
  [[nodiscard]] bool is(std::uint32_t n, Kind k) const { return m_nodes[n].kind == k; }

  void push(const Node& n) {
    m_nodes.push_back(n);
    m_stack.push_back(static_cast<std::uint32_t>(m_nodes.size() - 1));
  }
  void push_int(std::int64_t v) { push(Node{.kind = Kind::integer, .integer = v}); }
  void push_index(Kind kind, std::uint32_t index) {
    Node n{.kind = kind};
    (kind == Kind::dict ? n.dict : n.state) = index;
    push(n);
  }

  std::unexpected<Error> bad(std::string what) const {
    return fail(ErrorCode::corruption,
                fmt::format("index_metadata.pickle: {} (opcode 0x{:02x} at offset {})", what, m_op, m_op_at));
  }

  Result<std::uint64_t> read_uint(std::size_t n) {
    if (n > m_in.size() - m_pos) return bad(fmt::format("{}-byte operand runs past the end", n));
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{static_cast<unsigned char>(m_in[m_pos + i])} << (8 * i);
    m_pos += n;
    return v;
  }

  Result<std::string_view> read_bytes(std::size_t n) {
    if (n > m_in.size() - m_pos) return bad(fmt::format("string of {} bytes runs past the end", n));
    const std::string_view s = m_in.substr(m_pos, n);
    m_pos += n;
    return s;
  }

  Result<std::uint32_t> peek() const {
    if (m_stack.empty()) return bad("memo store with an empty stack");
    return m_stack.back();
  }

  std::uint32_t pop() {
    const std::uint32_t n = m_stack.back();
    m_stack.pop_back();
    return n;
  }

  Result<void> add_item(std::uint32_t target, std::uint32_t key, std::uint32_t value) {
    if (!is(target, Kind::dict)) return bad("items set on a value that is not a dict");
    if (is(key, Kind::mark) || is(value, Kind::mark)) return bad("a MARK used as a dict key or value");
    m_dict_items[m_nodes[target].dict].emplace_back(key, value);
    return {};
  }

  std::string_view m_in;
  std::size_t m_pos = 0;
  std::size_t m_op_at = 0;
  unsigned m_op = 0;
  std::vector<Node> m_nodes;
  std::vector<std::uint32_t> m_stack;
  std::vector<std::uint32_t> m_memo;
  std::vector<Items> m_dict_items;
};

std::unexpected<Error> shape_error(std::string what) {
  return fail(ErrorCode::corruption, fmt::format("index_metadata.pickle: {}", what));
}

Result<std::optional<std::int64_t>> optional_int(const Node& n, std::string_view key) {
  if (n.kind == Kind::none) return std::optional<std::int64_t>{};
  if (n.kind == Kind::integer) return std::optional<std::int64_t>(n.integer);
  return shape_error(fmt::format("key {} must be an int or None", key));
}

// Sorts `entries` by label and refuses a label given twice. Chroma gives the labels 1..n (or
// 0..n-1) in some order, so when they span exactly as many values as there are entries each is
// put in its place directly; otherwise they are sorted.
Result<void> sort_by_label(std::vector<LabelEntry>& entries) {
  if (entries.empty()) return {};
  auto twice = [](std::uint64_t label) { return shape_error(fmt::format("label {} appears twice in label_to_id", label)); };
  const auto [lo, hi] = std::minmax_element(entries.begin(), entries.end(),
                                            [](const LabelEntry& a, const LabelEntry& b) { return a.label < b.label; });
  const std::uint64_t first = lo->label;
  if (hi->label - first == entries.size() - 1) {
    std::vector<LabelEntry> placed(entries.size());
    std::vector<char> taken(entries.size(), 0);
    for (const LabelEntry& e : entries) {
      const auto at = static_cast<std::size_t>(e.label - first);
      if (taken[at]) return twice(e.label);
      taken[at] = 1;
      placed[at] = e;
    }
    entries = std::move(placed);
    return {};
  }
  std::sort(entries.begin(), entries.end(), [](const LabelEntry& a, const LabelEntry& b) { return a.label < b.label; });
  if (auto t = std::adjacent_find(entries.begin(), entries.end(),
                                  [](const LabelEntry& a, const LabelEntry& b) { return a.label == b.label; });
      t != entries.end()) {
    return twice(t->label);
  }
  return {};
}

// The first 8 bytes of `s` as a big-endian integer, zero-padded: ordering these orders the
// strings by those bytes as unsigned chars, which is std::string_view's order.
std::uint64_t prefix_key(std::string_view s) {
  unsigned char b[8] = {};
  std::memcpy(b, s.data(), std::min<std::size_t>(8, s.size()));
  std::uint64_t k = 0;
  for (unsigned char c : b) k = (k << 8) | c;
  return k;
}

// The entries of a dict in id order, one per id: a key given twice keeps its last value (the
// dict's). Ordered by a key of 8 bytes of each id (those after the bytes all ids share), then
// (equal keys only) the whole ids, then position, so that ids which differ in those 8 bytes
// are ordered without touching their bytes.
std::vector<LabelEntry> in_id_order_last_wins(const std::vector<LabelEntry>& entries) {
  struct Keyed {
    std::uint64_t prefix;
    std::uint32_t pos;
  };
  // The bytes every id begins with (URIs share "https://" and often far more) order nothing:
  // each key is taken from the 8 bytes after them.
  const std::string_view first = entries.empty() ? std::string_view() : entries.front().id;
  std::size_t shared = first.size();
  for (const LabelEntry& e : entries) {
    if (shared == 0) break;
    const auto head = first.begin() + static_cast<std::ptrdiff_t>(std::min(shared, e.id.size()));
    shared = static_cast<std::size_t>(std::mismatch(first.begin(), head, e.id.begin()).first - first.begin());
  }
  std::vector<Keyed> keys(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    keys[i] = Keyed{prefix_key(entries[i].id.substr(shared)), static_cast<std::uint32_t>(i)};
  }
  // A stable radix sort by prefix, a byte per pass from the lowest (a byte every key shares
  // is skipped), keeps equal prefixes in position order; each run of one prefix is then sorted
  // stably by the whole ids.
  std::vector<Keyed> sorted(keys.size());
  for (int shift = 0; shift < 64; shift += 8) {
    std::array<std::size_t, 257> start{};
    for (const Keyed& k : keys) ++start[((k.prefix >> shift) & 0xff) + 1];
    if (std::find(start.begin() + 1, start.end(), keys.size()) != start.end()) continue;
    for (std::size_t b = 0; b < 256; ++b) start[b + 1] += start[b];
    for (const Keyed& k : keys) sorted[start[(k.prefix >> shift) & 0xff]++] = k;
    keys.swap(sorted);
  }
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i + 1;
    while (j < keys.size() && keys[j].prefix == keys[i].prefix) ++j;
    if (j - i > 1) {
      std::stable_sort(keys.begin() + static_cast<std::ptrdiff_t>(i), keys.begin() + static_cast<std::ptrdiff_t>(j),
                       [&entries](const Keyed& a, const Keyed& b) { return entries[a.pos].id < entries[b.pos].id; });
    }
    i = j;
  }
  std::vector<LabelEntry> out;
  out.reserve(entries.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const LabelEntry& e = entries[keys[i].pos];
    if (i + 1 < keys.size() && keys[i + 1].prefix == keys[i].prefix && entries[keys[i + 1].pos].id == e.id) {
      continue;  // a later value wins
    }
    out.push_back(e);
  }
  return out;
}

Result<LabelMap> from_state(const Machine& m, const Node& state, PickleDialect dialect) {
  LabelMap out;
  out.dialect = dialect;
  const Items* label_to_id = nullptr;
  const Items* id_to_label = nullptr;
  for (const auto& [k, v] : m.items(state)) {
    const Node& key = m.node(k);
    const Node& value = m.node(v);
    if (key.kind != Kind::string) return shape_error("a state key is not a string");
    const std::string_view name = key.string();
    if (name == "dimensionality") {
      VS_TRY_ASSIGN(out.dimensionality, optional_int(value, name));
    } else if (name == "total_elements_added") {
      VS_TRY_ASSIGN(out.total_elements_added, optional_int(value, name));
    } else if (name == "max_seq_id") {
      VS_TRY_ASSIGN(out.max_seq_id, optional_int(value, name));
    } else if (name == "label_to_id" || name == "id_to_label" || name == "id_to_seq_id") {
      if (value.kind != Kind::dict) return shape_error(fmt::format("key {} must be a dict", name));
      if (name == "label_to_id") label_to_id = &m.items(value);
      if (name == "id_to_label") id_to_label = &m.items(value);
    } else {
      return shape_error(fmt::format("unknown state key {}", name));
    }
  }
  if (!label_to_id || !id_to_label) return shape_error("the state has no label_to_id or no id_to_label");
  // label_to_id: sorted by label, each label once.
  out.entries.reserve(label_to_id->size());
  for (const auto& [k, v] : *label_to_id) {
    const Node& label = m.node(k);
    const Node& id = m.node(v);
    if (label.kind != Kind::integer || id.kind != Kind::string || label.integer < 0) {
      return shape_error("label_to_id must map non-negative ints to strings");
    }
    out.entries.push_back(LabelEntry{static_cast<std::uint64_t>(label.integer), id.string()});
  }
  VS_TRY(sort_by_label(out.entries));
  // id_to_label as a dict: a key given twice keeps its last value.
  std::vector<LabelEntry> reverse;
  reverse.reserve(id_to_label->size());
  for (const auto& [k, v] : *id_to_label) {
    const Node& id = m.node(k);
    const Node& label = m.node(v);
    if (id.kind != Kind::string || label.kind != Kind::integer || label.integer < 0) {
      return shape_error("id_to_label must map strings to non-negative ints");
    }
    reverse.push_back(LabelEntry{static_cast<std::uint64_t>(label.integer), id.string()});
  }
  reverse = in_id_order_last_wins(reverse);
  if (reverse.size() != out.entries.size()) {
    return shape_error(fmt::format("label_to_id has {} entries but id_to_label has {}", out.entries.size(),
                                   reverse.size()));
  }
  // Each (id, label) of id_to_label, in id order, must be an entry of label_to_id: with the
  // sizes equal and labels unique, the two maps are then the same pairs, and this order is
  // label_to_id's id order.
  out.by_id.reserve(reverse.size());
  for (const LabelEntry& r : reverse) {
    const std::size_t i = out.index_of(r.label);
    if (i == LabelMap::npos) {
      return shape_error(fmt::format("id {} has label {} in id_to_label, but label_to_id has no label {}", r.id, r.label,
                                     r.label));
    }
    if (out.entries[i].id != r.id) {
      return shape_error(fmt::format("id {} has label {} in id_to_label, but label_to_id gives that label to id {}", r.id,
                                     r.label, out.entries[i].id));
    }
    out.by_id.push_back(static_cast<std::uint32_t>(i));
  }
  return out;
}

}  // namespace

std::size_t LabelMap::index_of(std::uint64_t label) const {
  if (entries.empty()) return npos;
  const std::uint64_t first = entries.front().label;
  if (entries.back().label - first == entries.size() - 1) {  // dense: labels first..first+n-1
    return label >= first && label - first < entries.size() ? static_cast<std::size_t>(label - first) : npos;
  }
  auto it = std::lower_bound(entries.begin(), entries.end(), label,
                             [](const LabelEntry& e, std::uint64_t l) { return e.label < l; });
  return it != entries.end() && it->label == label ? static_cast<std::size_t>(it - entries.begin()) : npos;
}

std::optional<std::string_view> LabelMap::id_of(std::uint64_t label) const {
  const std::size_t i = index_of(label);
  if (i == npos) return std::nullopt;
  return entries[i].id;
}

Result<LabelMap> parse_label_map(std::shared_ptr<const std::string> bytes) {
  if (bytes->size() > std::numeric_limits<std::uint32_t>::max() / 2) {
    return shape_error(fmt::format("{} bytes is more than a label map holds", bytes->size()));
  }
  Machine machine(*bytes);
  VS_TRY_ASSIGN(const std::uint32_t root_index, machine.run());
  const Node& root = machine.node(root_index);
  Result<LabelMap> out = [&]() -> Result<LabelMap> {
    if (root.kind == Kind::dict) return from_state(machine, root, PickleDialect::rust_id_map);
    if (root.kind == Kind::object) {
      if (root.state == k_no_node) return shape_error("the PersistentData object has no state");
      return from_state(machine, machine.node(root.state), PickleDialect::python_persistent_data);
    }
    return shape_error("the top-level value is neither a dict nor a PersistentData object");
  }();
  if (out) out->bytes = std::move(bytes);
  return out;
}

Result<LabelMap> parse_label_map(std::string_view bytes) {
  return parse_label_map(std::make_shared<const std::string>(bytes));
}

Result<LabelMap> read_label_map(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open {}", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  auto parsed = parse_label_map(std::make_shared<const std::string>(std::move(buf).str()));
  if (!parsed) return fail(parsed.error().with_context(path));
  return parsed;
}

}  // namespace vstore::chroma
