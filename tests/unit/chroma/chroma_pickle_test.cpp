// SPDX-License-Identifier: Apache-2.0
// The strict label-map pickle reader: both dialects, every refusal, and a mutation fuzz.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "chroma/chroma_pickle.hpp"

namespace {

using vstore::chroma::LabelMap;
using vstore::chroma::parse_label_map;
using vstore::chroma::PickleDialect;

// Emits pickle opcodes by name.
class Pickle {
 public:
  Pickle& op(unsigned char c) {
    m_b.push_back(static_cast<char>(c));
    return *this;
  }
  Pickle& le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) m_b.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    return *this;
  }
  Pickle& proto(int p) { return op(0x80).le(static_cast<std::uint64_t>(p), 1); }
  Pickle& short_str(const std::string& s) {
    op(0x8c).le(s.size(), 1);
    m_b += s;
    return *this;
  }
  Pickle& str(const std::string& s) {
    op('X').le(s.size(), 4);
    m_b += s;
    return *this;
  }
  Pickle& memoize() { return op(0x94); }
  Pickle& binget(int i) { return op('h').le(static_cast<std::uint64_t>(i), 1); }
  Pickle& integer(std::int64_t v) {
    if (v >= 0 && v < 256) return op('K').le(static_cast<std::uint64_t>(v), 1);
    if (v >= 0 && v < 65536) return op('M').le(static_cast<std::uint64_t>(v), 2);
    if (v >= INT32_MIN && v <= INT32_MAX) return op('J').le(static_cast<std::uint64_t>(static_cast<std::uint32_t>(v)), 4);
    return op(0x8a).le(8, 1).le(static_cast<std::uint64_t>(v), 8);
  }
  Pickle& long1(std::int64_t v, int bytes) { return op(0x8a).le(static_cast<std::uint64_t>(bytes), 1).le(static_cast<std::uint64_t>(v), bytes); }
  [[nodiscard]] const std::string& bytes() const { return m_b; }

 private:
  std::string m_b;
};

using Labels = std::vector<std::pair<std::string, std::int64_t>>;

// The shape chromadb 0.4-0.6 writes: a PersistentData instance, protocol 5, memoised strings.
std::string python_pickle(const Labels& labels, std::int64_t max_seq) {
  Pickle body;
  int memo = 0;
  body.short_str("chromadb.segment.impl.vector.local_persistent_hnsw").memoize();
  ++memo;
  body.short_str("PersistentData").memoize();
  ++memo;
  body.op(0x93).memoize();
  ++memo;
  body.op(')').op(0x81).memoize();
  ++memo;
  body.op('}').memoize().op('(');
  ++memo;
  body.short_str("dimensionality").memoize().integer(16);
  ++memo;
  body.short_str("total_elements_added").memoize().integer(static_cast<std::int64_t>(labels.size()));
  ++memo;
  body.short_str("max_seq_id").memoize().long1(max_seq, 2);
  ++memo;
  body.short_str("id_to_label").memoize().op('}').memoize().op('(');
  memo += 2;
  std::vector<int> id_memo;
  for (const auto& [id, label] : labels) {
    body.short_str(id).memoize().integer(label);
    id_memo.push_back(memo++);
  }
  body.op('u');
  body.short_str("label_to_id").memoize().op('}').memoize().op('(');
  memo += 2;
  for (std::size_t i = 0; i < labels.size(); ++i) body.integer(labels[i].second).binget(id_memo[i]);
  body.op('u');
  body.short_str("id_to_seq_id").memoize().op('}').memoize().op('(');
  memo += 2;
  for (std::size_t i = 0; i < labels.size(); ++i) body.binget(id_memo[i]).integer(static_cast<std::int64_t>(i) + 1);
  body.op('u');
  body.op('u').op('b').op('.');
  Pickle out;
  out.proto(5).op(0x95).le(body.bytes().size(), 8);
  return out.bytes() + body.bytes();
}

// The shape chromadb 1.x writes (serde_pickle): a plain dict, protocol 3.
std::string rust_pickle(const Labels& labels) {
  Pickle p;
  p.proto(3).op('}').op('(');
  p.str("dimensionality").op('N');
  p.str("total_elements_added").integer(static_cast<std::int64_t>(labels.size()));
  p.str("max_seq_id").op('N');
  p.str("id_to_label").op('}').op('(');
  for (const auto& [id, label] : labels) p.str(id).integer(label);
  p.op('u');
  p.str("label_to_id").op('}').op('(');
  for (const auto& [id, label] : labels) p.integer(label).str(id);
  p.op('u');
  p.str("id_to_seq_id").op('}');
  p.op('u').op('.');
  return p.bytes();
}

Labels sample_labels(int n) {
  Labels out;
  for (int i = 0; i < n; ++i) out.emplace_back(fmt::format("id{:03}", i), i * 37 + 1);
  out.emplace_back("big-label", std::int64_t{70000});
  out.emplace_back("huge-label", std::int64_t{3000000000});
  return out;
}

TEST(ChromaPickle, ReadsThePythonPersistentDataDialect) {
  const auto labels = sample_labels(40);
  auto map = parse_label_map(python_pickle(labels, 300));
  ASSERT_TRUE(map.has_value()) << map.error().to_string();
  EXPECT_EQ(map->dialect, PickleDialect::python_persistent_data);
  EXPECT_EQ(map->dimensionality, 16);
  EXPECT_EQ(map->max_seq_id, 300);
  EXPECT_EQ(map->total_elements_added, static_cast<std::int64_t>(labels.size()));
  ASSERT_EQ(map->size(), labels.size());
  for (const auto& [id, label] : labels) EXPECT_EQ(map->id_of(static_cast<std::uint64_t>(label)), id);
}

TEST(ChromaPickle, ReadsTheRustIdMapDialect) {
  const auto labels = sample_labels(25);
  auto map = parse_label_map(rust_pickle(labels));
  ASSERT_TRUE(map.has_value()) << map.error().to_string();
  EXPECT_EQ(map->dialect, PickleDialect::rust_id_map);
  EXPECT_FALSE(map->dimensionality.has_value());
  EXPECT_FALSE(map->max_seq_id.has_value());
  ASSERT_EQ(map->size(), labels.size());
  EXPECT_EQ(map->id_of(3000000000ULL), "huge-label");
}

// The map's ids in the order of by_id.
std::vector<std::string> ids_in_id_order(const LabelMap& map) {
  std::vector<std::string> out;
  for (const std::uint32_t i : map.by_id) out.emplace_back(map.entries[i].id);
  return out;
}

TEST(ChromaPickle, OrdersIdsThatShareTheirFirstBytesAndKeepsTheLastValueOfAKeyGivenTwice) {
  // URIs share far more than the 8 bytes the id order is first keyed on; given out of order.
  const Labels labels = {{"https://example.com/b", 1}, {"https://example.com/a/2", 2}, {"https://example.com/a/10", 3},
                         {"zz", 4},  {"https://example.com/a", 5},  {"a", 6},
                         {"https://example.org", 7}, {"https://example.c", 8}};
  // id_to_label gives "zz" twice; a dict keeps the last value, which is the one label_to_id has.
  Pickle p;
  p.proto(3).op('}').op('(');
  p.str("id_to_label").op('}').op('(').str("zz").integer(99);
  for (const auto& [id, label] : labels) p.str(id).integer(label);
  p.op('u');
  p.str("label_to_id").op('}').op('(');
  for (const auto& [id, label] : labels) p.integer(label).str(id);
  p.op('u').op('u').op('.');
  auto map = parse_label_map(p.bytes());
  ASSERT_TRUE(map.has_value()) << map.error().to_string();
  ASSERT_EQ(map->size(), labels.size());
  const std::vector<std::string> expected = {"a",
                                             "https://example.c",
                                             "https://example.com/a",
                                             "https://example.com/a/10",
                                             "https://example.com/a/2",
                                             "https://example.com/b",
                                             "https://example.org",
                                             "zz"};
  EXPECT_EQ(ids_in_id_order(*map), expected);
  EXPECT_EQ(map->id_of(4), "zz");
  EXPECT_FALSE(map->id_of(99).has_value());
}

TEST(ChromaPickle, OrdersIdsThatAllBeginWithTheSameBytes) {
  // Every id begins with "https://example." (one is nothing else), so their order is decided
  // past those bytes.
  const Labels labels = {{"https://example.com/b", 1}, {"https://example.org", 2},  {"https://example.", 3},
                         {"https://example.com/a/2", 4}, {"https://example.com/a", 5}, {"https://example.com/a/10", 6}};
  auto map = parse_label_map(rust_pickle(labels));
  ASSERT_TRUE(map.has_value()) << map.error().to_string();
  const std::vector<std::string> expected = {"https://example.",         "https://example.com/a",
                                             "https://example.com/a/10", "https://example.com/a/2",
                                             "https://example.com/b",    "https://example.org"};
  EXPECT_EQ(ids_in_id_order(*map), expected);
}

TEST(ChromaPickle, RefusesAPickleOfAnotherShapeNamingTheOpcode) {
  // pickle.dumps([1, 2], protocol=4)
  Pickle list;
  list.proto(4).op(']').memoize().op('(').integer(1).integer(2).op('e').op('.');
  auto map = parse_label_map(list.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_EQ(map.error().code(), vstore::ErrorCode::corruption);
  EXPECT_NE(map.error().message().find("opcode 0x5d"), std::string::npos) << map.error().message();

  Pickle other_class;
  other_class.proto(5).short_str("os").short_str("system").op(0x93).op('.');
  map = parse_label_map(other_class.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("os.system"), std::string::npos) << map.error().message();

  Pickle number;
  number.proto(3).integer(5).op('.');
  map = parse_label_map(number.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("neither a dict nor a PersistentData"), std::string::npos);

  Pickle unknown_key;
  unknown_key.proto(3).op('}').op('(').str("label_to_id").op('}').str("id_to_label").op('}').str("extra").op('N').op('u').op('.');
  map = parse_label_map(unknown_key.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("unknown state key extra"), std::string::npos) << map.error().message();
}

TEST(ChromaPickle, RefusesEveryTruncationAndTrailingBytes) {
  for (const std::string& good : {python_pickle(sample_labels(5), 9), rust_pickle(sample_labels(5))}) {
    for (std::size_t len = 0; len < good.size(); ++len) {
      EXPECT_FALSE(parse_label_map(good.substr(0, len)).has_value()) << "prefix of " << len << " bytes";
    }
    auto trailing = parse_label_map(good + "x");
    ASSERT_FALSE(trailing.has_value());
    EXPECT_NE(trailing.error().message().find("after STOP"), std::string::npos);
  }
}

TEST(ChromaPickle, RefusesMapsThatDisagreeOrHoldWrongTypes) {
  Pickle disagree;
  disagree.proto(3).op('}').op('(').str("id_to_label").op('}').op('(').str("a").integer(1).op('u');
  disagree.str("label_to_id").op('}').op('(').integer(2).str("a").op('u').op('u').op('.');
  auto map = parse_label_map(disagree.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("id a has label 1 in id_to_label, but label_to_id has no label 1"),
            std::string::npos)
      << map.error().message();
  // The same label for two ids.
  Pickle twice;
  twice.proto(3).op('}').op('(').str("id_to_label").op('}').op('(').str("a").integer(1).str("b").integer(1).op('u');
  twice.str("label_to_id").op('}').op('(').integer(1).str("a").integer(2).str("b").op('u').op('u').op('.');
  map = parse_label_map(twice.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("id b has label 1 in id_to_label, but label_to_id gives that label to id a"),
            std::string::npos)
      << map.error().message();

  Pickle negative;
  negative.proto(3).op('}').op('(').str("id_to_label").op('}').op('(').str("a").long1(-1, 1).op('u');
  negative.str("label_to_id").op('}').op('(').long1(-1, 1).str("a").op('u').op('u').op('.');
  map = parse_label_map(negative.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("non-negative"), std::string::npos) << map.error().message();

  Pickle bad_memo;
  bad_memo.proto(3).op('h').le(7, 1).op('.');
  map = parse_label_map(bad_memo.bytes());
  ASSERT_FALSE(map.has_value());
  EXPECT_NE(map.error().message().find("memo slot 7"), std::string::npos) << map.error().message();
}

// Mutation fuzz: random edits of valid pickles and random byte strings must give either a
// well-formed map or a corruption error; never a crash, hang or another error code.
TEST(ChromaPickle, MutationFuzzNeverCrashesAndOnlyReportsCorruption) {
  const std::vector<std::string> seeds = {python_pickle(sample_labels(3), 300), python_pickle(sample_labels(20), 5),
                                          rust_pickle(sample_labels(3)), rust_pickle(sample_labels(12))};
  std::mt19937_64 rng(20261201);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % std::max<std::size_t>(n, 1)); };
  int accepted = 0;
  int refused = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    std::string data = seeds[pick(seeds.size())];
    const int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      switch (pick(6)) {
        case 0:
          if (!data.empty()) data[pick(data.size())] = static_cast<char>(rng());
          break;
        case 1:
          if (!data.empty()) data[pick(data.size())] ^= static_cast<char>(1U << pick(8));
          break;
        case 2:
          data.insert(pick(data.size() + 1), 1, static_cast<char>(rng()));
          break;
        case 3:
          if (!data.empty()) data.erase(pick(data.size()), 1 + pick(8));
          break;
        case 4: {
          const std::size_t at = pick(data.size());
          data.insert(pick(data.size() + 1), data.substr(at, 1 + pick(16)));
          break;
        }
        default:
          data.resize(pick(data.size() + 1));
      }
    }
    if (iter % 10 == 0) {  // some inputs are pure noise after a plausible header
      data = std::string("\x80\x03", 2);
      for (std::size_t i = 0, n = pick(64); i < n; ++i) data.push_back(static_cast<char>(rng()));
    }
    auto map = parse_label_map(data);
    if (map) {
      ++accepted;
      for (const auto& [label, id] : map->entries) EXPECT_LT(label, std::uint64_t{1} << 63);
    } else {
      ++refused;
      ASSERT_EQ(map.error().code(), vstore::ErrorCode::corruption) << map.error().message();
      ASSERT_FALSE(map.error().message().empty());
    }
  }
  EXPECT_GT(refused, 20000);
  EXPECT_EQ(accepted + refused, 30000);
}

}  // namespace
