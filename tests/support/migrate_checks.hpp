// SPDX-License-Identifier: Apache-2.0
// Test support for the migrate-chroma tests: exact comparisons of float32 vectors and of Chroma
// metadata, and float32 values that expose any lossy round trip.
#pragma once

#include <bit>
#include <cstdint>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "vstore/config.hpp"

namespace vstore::testing {

/// Each float's bit pattern as 8 hex digits, in order ("3f800000" for 1.0f).
inline std::string float_bits_hex(const std::vector<float>& v) {
  std::string out;
  for (float f : v) out += fmt::format("{:08x}", std::bit_cast<std::uint32_t>(f));
  return out;
}

/// JSON equality that keeps int, float and bool apart (nlohmann's == says 3 == 3.0), in objects
/// and arrays alike. The canonical dump (object keys sorted, a float always with a fraction or an
/// exponent, the shortest decimal that reads back as the same double) is compared, so this
/// oracle shares no code with the migration's own comparison.
inline bool same_typed(const nlohmann::json& a, const nlohmann::json& b) { return a.dump() == b.dump(); }

/// A float32 with a random sign, a full random mantissa and a binary exponent drawn from
/// [low, high] (the value lies in [2^low, 2^(high+1))): every bit of the mantissa matters, so a
/// lossy round trip (through decimal text, or a normalisation) shows.
inline float random_float(std::mt19937& rng, int low, int high) {
  std::uniform_int_distribution<std::uint32_t> mantissa(0, (1U << 23) - 1);
  std::uniform_int_distribution<std::uint32_t> exponent(static_cast<std::uint32_t>(127 + low),
                                                        static_cast<std::uint32_t>(127 + high));
  std::uniform_int_distribution<std::uint32_t> sign(0, 1);
  return std::bit_cast<float>((sign(rng) << 31) | (exponent(rng) << 23) | mantissa(rng));
}

/// Reads the `embeddings` of a Chroma `get` response from its raw JSON text with
/// std::from_chars (decimal straight to the nearest float32): an oracle independent of a
/// parse-to-double-then-round path. Adds id -> vector to `out` for the response's `ids`, in
/// order. Returns an empty string, or what was wrong with the text.
std::string served_embeddings(const std::string& text, std::map<std::string, std::vector<float>>& out);

/// A migration target for one test: a fresh database from the shared test server with a
/// `vstore schema up` table of vector(dim), and a temporary data directory for reports.
struct MigrateTarget {
  std::string conninfo;
  Config config;
  std::filesystem::path data;
  /// Creates both; a failure is a fatal test failure (check HasFatalFailure()).
  void open(const std::string& name, int dim);
  /// Drops the database and removes the directory.
  void close();
};

}  // namespace vstore::testing
