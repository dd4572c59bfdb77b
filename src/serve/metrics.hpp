// SPDX-License-Identifier: Apache-2.0
// The service's Prometheus metrics: request counters by route, method and status, latency
// histograms by route, requests in flight, written in the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace vstore::serve {

/// Upper bounds of the latency histogram's buckets, seconds (+Inf is added when written).
inline constexpr std::array<double, 14> k_latency_buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                          0.1,    0.25,  0.5,    1.0,   2.5,  5.0,  10.0};

/// Writes metric families in the text format. Label values are escaped (backslash, quote,
/// newline); a family's HELP and TYPE come once, before its samples.
class PromWriter {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help);
  void sample(std::string_view name, const std::vector<std::pair<std::string, std::string>>& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  [[nodiscard]] const std::string& text() const { return m_out; }

 private:
  std::string m_out;
};

/// Thread-safe counters of the requests the service answered.
class RequestMetrics {
 public:
  /// `route`: the route's path when it is one of the service's, else "other" (so that unknown
  /// paths cannot grow the label set).
  void observe(const std::string& route, const std::string& method, int status, double seconds);
  void started() { m_in_flight.fetch_add(1, std::memory_order_relaxed); }
  void finished() { m_in_flight.fetch_sub(1, std::memory_order_relaxed); }
  /// Appends vstore_http_requests_total, vstore_http_request_duration_seconds and
  /// vstore_http_requests_in_flight.
  void write(PromWriter& w) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, k_latency_buckets.size()> buckets{};  // not cumulative
    std::uint64_t count = 0;
    double sum = 0.0;
  };
  mutable std::mutex m_mutex;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> m_requests;  // guarded by m_mutex
  std::map<std::string, Histogram> m_latency;                                     // guarded by m_mutex
  std::atomic<std::int64_t> m_in_flight{0};
};

}  // namespace vstore::serve
