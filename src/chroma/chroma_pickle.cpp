// SPDX-License-Identifier: Apache-2.0
// Strict pickle reader for Chroma's HNSW label maps.
//
// Design: a small stack machine over a closed set of opcodes. Values are shared nodes because
// the memo (MEMOIZE/BINPUT/BINGET) aliases them: the Python dialect memoises the state dict
// before SETITEMS fills it, and its `label_to_id` strings are memo references to the strings
// first seen in `id_to_label`. Every read is bounds-checked, every opcode outside the set is
// refused, at most eight dicts may be built (so nesting stays shallow), and the program must
// end with STOP, one value on the stack and no trailing bytes. The result is then checked for one of
// the two shapes: a PersistentData instance (class global, empty args, BUILD with a dict) or a
// plain dict with the same keys.
#include "chroma/chroma_pickle.hpp"

#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <variant>
#include <vector>

#include <fmt/format.h>

namespace vstore::chroma {
namespace {

constexpr std::string_view k_py_module = "chromadb.segment.impl.vector.local_persistent_hnsw";
constexpr std::string_view k_py_class = "PersistentData";
constexpr int k_max_dicts = 8;

struct Node;
using NodeRef = std::shared_ptr<Node>;

struct NoneValue {};
struct Mark {};
struct EmptyTuple {};
struct Global {
  std::string module;
  std::string name;
};
struct Dict {
  std::vector<std::pair<NodeRef, NodeRef>> items;
};
struct Object {
  NodeRef cls;
  NodeRef state;  // null until BUILD
};

struct Node {
  std::variant<NoneValue, Mark, EmptyTuple, std::int64_t, std::string, Global, Dict, Object> value;
};

template <typename T>
NodeRef make(T v) {
  auto n = std::make_shared<Node>();
  n->value = std::move(v);
  return n;
}

class Machine {
 public:
  explicit Machine(std::string_view bytes) : m_in(bytes) {}

  Result<NodeRef> run() {
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
          m_stack.push_back(make(Mark{}));
          break;
        case '.': {  // STOP
          if (m_stack.size() != 1 || is<Mark>(m_stack.back())) {
            return bad(fmt::format("STOP with {} values on the stack, expected 1", m_stack.size()));
          }
          if (m_pos != m_in.size()) return bad(fmt::format("{} bytes after STOP", m_in.size() - m_pos));
          return m_stack.back();
        }
        case '}':
          // Both dialects build four dicts (state + three maps); a cap keeps nesting shallow.
          if (++m_dicts > k_max_dicts) return bad(fmt::format("more than {} dicts", k_max_dicts));
          m_stack.push_back(make(Dict{}));
          break;
        case ')':
          m_stack.push_back(make(EmptyTuple{}));
          break;
        case 'N':
          m_stack.push_back(make(NoneValue{}));
          break;
        case 'K': {
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(1));
          m_stack.push_back(make(static_cast<std::int64_t>(v)));
          break;
        }
        case 'M': {
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(2));
          m_stack.push_back(make(static_cast<std::int64_t>(v)));
          break;
        }
        case 'J': {
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(4));
          m_stack.push_back(make(static_cast<std::int64_t>(static_cast<std::int32_t>(static_cast<std::uint32_t>(v)))));
          break;
        }
        case 0x8a: {  // LONG1
          VS_TRY_ASSIGN(std::uint64_t n, read_uint(1));
          if (n > 8) return bad(fmt::format("LONG1 of {} bytes does not fit 64 bits", n));
          VS_TRY_ASSIGN(std::uint64_t v, read_uint(static_cast<std::size_t>(n)));
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1U) v |= ~std::uint64_t{0} << (8 * n);  // sign-extend
          m_stack.push_back(make(static_cast<std::int64_t>(v)));
          break;
        }
        case 0x8c: {  // SHORT_BINUNICODE
          VS_TRY_ASSIGN(std::uint64_t n, read_uint(1));
          VS_TRY_ASSIGN(std::string s, read_bytes(static_cast<std::size_t>(n)));
          m_stack.push_back(make(std::move(s)));
          break;
        }
        case 'X': {  // BINUNICODE
          VS_TRY_ASSIGN(std::uint64_t n, read_uint(4));
          VS_TRY_ASSIGN(std::string s, read_bytes(static_cast<std::size_t>(n)));
          m_stack.push_back(make(std::move(s)));
          break;
        }
        case 0x94: {  // MEMOIZE
          VS_TRY_ASSIGN(NodeRef top, peek());
          m_memo.push_back(top);
          break;
        }
        case 'q':
        case 'r': {  // BINPUT, LONG_BINPUT
          VS_TRY_ASSIGN(std::uint64_t idx, read_uint(m_op == 'q' ? 1 : 4));
          VS_TRY_ASSIGN(NodeRef top, peek());
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
          NodeRef value = pop();
          NodeRef key = pop();
          VS_TRY(add_item(m_stack.back(), std::move(key), std::move(value)));
          break;
        }
        case 'u': {  // SETITEMS
          VS_TRY_ASSIGN(std::vector<NodeRef> items, pop_to_mark());
          if (items.size() % 2 != 0) return bad("SETITEMS with an odd number of values");
          if (m_stack.empty()) return bad("SETITEMS with no dict below its mark");
          for (std::size_t i = 0; i < items.size(); i += 2) VS_TRY(add_item(m_stack.back(), items[i], items[i + 1]));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          if (m_stack.size() < 2) return bad("STACK_GLOBAL needs a module and a name");
          NodeRef name = pop();
          NodeRef module = pop();
          auto* n = std::get_if<std::string>(&name->value);
          auto* m = std::get_if<std::string>(&module->value);
          if (!n || !m) return bad("STACK_GLOBAL operands are not strings");
          if (*m != k_py_module || *n != k_py_class) {
            return bad(fmt::format("the pickle names class {}.{}; only {}.{} is accepted", *m, *n, k_py_module, k_py_class));
          }
          m_stack.push_back(make(Global{*m, *n}));
          break;
        }
        case 0x81: {  // NEWOBJ
          if (m_stack.size() < 2) return bad("NEWOBJ needs a class and arguments");
          NodeRef args = pop();
          NodeRef cls = pop();
          if (!is<EmptyTuple>(args) || !is<Global>(cls)) return bad("NEWOBJ expects a class and an empty tuple");
          m_stack.push_back(make(Object{cls, nullptr}));
          break;
        }
        case 'b': {  // BUILD
          if (m_stack.size() < 2) return bad("BUILD needs an object and a state");
          NodeRef state = pop();
          auto* obj = std::get_if<Object>(&m_stack.back()->value);
          if (!obj || obj->state || !is<Dict>(state)) return bad("BUILD expects a new object and a dict state");
          obj->state = std::move(state);
          break;
        }
        default:
          return bad(fmt::format("opcode 0x{:02x} is not used by either Chroma label-map format", m_op));
      }
    }
  }

 private:
  template <typename T>
  static bool is(const NodeRef& n) {
    return std::holds_alternative<T>(n->value);
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

  Result<std::string> read_bytes(std::size_t n) {
    if (n > m_in.size() - m_pos) return bad(fmt::format("string of {} bytes runs past the end", n));
    std::string s(m_in.substr(m_pos, n));
    m_pos += n;
    return s;
  }

  Result<NodeRef> peek() const {
    if (m_stack.empty()) return bad("memo store with an empty stack");
    return m_stack.back();
  }

  NodeRef pop() {
    NodeRef n = std::move(m_stack.back());
    m_stack.pop_back();
    return n;
  }

  Result<std::vector<NodeRef>> pop_to_mark() {
    std::size_t i = m_stack.size();
    while (i > 0 && !is<Mark>(m_stack[i - 1])) --i;
    if (i == 0) return bad("no MARK on the stack");
    std::vector<NodeRef> items(m_stack.begin() + static_cast<std::ptrdiff_t>(i), m_stack.end());
    m_stack.resize(i - 1);
    return items;
  }

  Result<void> add_item(const NodeRef& target, NodeRef key, NodeRef value) {
    auto* dict = std::get_if<Dict>(&target->value);
    if (!dict) return bad("items set on a value that is not a dict");
    if (is<Mark>(key) || is<Mark>(value)) return bad("a MARK used as a dict key or value");
    dict->items.emplace_back(std::move(key), std::move(value));
    return {};
  }

  std::string_view m_in;
  std::size_t m_pos = 0;
  std::size_t m_op_at = 0;
  unsigned m_op = 0;
  std::vector<NodeRef> m_stack;
  std::vector<NodeRef> m_memo;
  int m_dicts = 0;
};

std::unexpected<Error> shape_error(std::string what) {
  return fail(ErrorCode::corruption, fmt::format("index_metadata.pickle: {}", what));
}

Result<std::optional<std::int64_t>> optional_int(const NodeRef& n, std::string_view key) {
  if (std::holds_alternative<NoneValue>(n->value)) return std::optional<std::int64_t>{};
  if (auto* v = std::get_if<std::int64_t>(&n->value)) return std::optional<std::int64_t>(*v);
  return shape_error(fmt::format("key {} must be an int or None", key));
}

Result<LabelMap> from_state(const Dict& state, PickleDialect dialect) {
  LabelMap out;
  out.dialect = dialect;
  const Dict* label_to_id = nullptr;
  const Dict* id_to_label = nullptr;
  for (const auto& [k, v] : state.items) {
    auto* key = std::get_if<std::string>(&k->value);
    if (!key) return shape_error("a state key is not a string");
    if (*key == "dimensionality") {
      VS_TRY_ASSIGN(out.dimensionality, optional_int(v, *key));
    } else if (*key == "total_elements_added") {
      VS_TRY_ASSIGN(out.total_elements_added, optional_int(v, *key));
    } else if (*key == "max_seq_id") {
      VS_TRY_ASSIGN(out.max_seq_id, optional_int(v, *key));
    } else if (*key == "label_to_id" || *key == "id_to_label" || *key == "id_to_seq_id") {
      auto* d = std::get_if<Dict>(&v->value);
      if (!d) return shape_error(fmt::format("key {} must be a dict", *key));
      if (*key == "label_to_id") label_to_id = d;
      if (*key == "id_to_label") id_to_label = d;
    } else {
      return shape_error(fmt::format("unknown state key {}", *key));
    }
  }
  if (!label_to_id || !id_to_label) return shape_error("the state has no label_to_id or no id_to_label");
  out.label_to_id.reserve(label_to_id->items.size());
  for (const auto& [k, v] : label_to_id->items) {
    auto* label = std::get_if<std::int64_t>(&k->value);
    auto* id = std::get_if<std::string>(&v->value);
    if (!label || !id || *label < 0) return shape_error("label_to_id must map non-negative ints to strings");
    if (!out.label_to_id.emplace(static_cast<std::uint64_t>(*label), *id).second) {
      return shape_error(fmt::format("label {} appears twice in label_to_id", *label));
    }
  }
  // Views of the parsed strings, which outlive this function's use of them.
  std::unordered_map<std::string_view, std::uint64_t> reverse;
  reverse.reserve(id_to_label->items.size());
  for (const auto& [k, v] : id_to_label->items) {
    auto* id = std::get_if<std::string>(&k->value);
    auto* label = std::get_if<std::int64_t>(&v->value);
    if (!id || !label || *label < 0) return shape_error("id_to_label must map strings to non-negative ints");
    reverse[*id] = static_cast<std::uint64_t>(*label);
  }
  if (reverse.size() != out.label_to_id.size()) {
    return shape_error(fmt::format("label_to_id has {} entries but id_to_label has {}", out.label_to_id.size(),
                                   reverse.size()));
  }
  for (const auto& [label, id] : out.label_to_id) {
    auto it = reverse.find(id);
    if (it == reverse.end() || it->second != label) {
      return shape_error(fmt::format("id {} has label {} in label_to_id but not in id_to_label", id, label));
    }
  }
  return out;
}

}  // namespace

Result<LabelMap> parse_label_map(std::string_view bytes) {
  Machine machine(bytes);
  VS_TRY_ASSIGN(NodeRef root, machine.run());
  if (auto* dict = std::get_if<Dict>(&root->value)) return from_state(*dict, PickleDialect::rust_id_map);
  if (auto* obj = std::get_if<Object>(&root->value)) {
    if (!obj->state) return shape_error("the PersistentData object has no state");
    return from_state(std::get<Dict>(obj->state->value), PickleDialect::python_persistent_data);
  }
  return shape_error("the top-level value is neither a dict nor a PersistentData object");
}

Result<LabelMap> read_label_map(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(ErrorCode::not_found, fmt::format("cannot open {}", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  auto parsed = parse_label_map(buf.str());
  if (!parsed) return fail(parsed.error().with_context(path));
  return parsed;
}

}  // namespace vstore::chroma
