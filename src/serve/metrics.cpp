// SPDX-License-Identifier: Apache-2.0
#include "serve/metrics.hpp"

#include <cmath>

#include <fmt/format.h>

namespace vstore::serve {
namespace {

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<std::int64_t>(v));
  return fmt::format("{}", v);  // shortest text that reads back as the same double
}

}  // namespace

void PromWriter::family(std::string_view name, std::string_view type, std::string_view help) {
  m_out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void PromWriter::sample(std::string_view name, const std::vector<std::pair<std::string, std::string>>& labels,
                        double value) {
  m_out += name;
  if (!labels.empty()) {
    m_out += '{';
    for (std::size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) m_out += ',';
      m_out += fmt::format("{}=\"{}\"", labels[i].first, escape_label(labels[i].second));
    }
    m_out += '}';
  }
  m_out += ' ';
  m_out += number(value);
  m_out += '\n';
}

void RequestMetrics::observe(const std::string& route, const std::string& method, int status, double seconds) {
  std::lock_guard lock(m_mutex);
  ++m_requests[{route, method, status}];
  Histogram& h = m_latency[route];
  for (std::size_t i = 0; i < k_latency_buckets.size(); ++i) {
    if (seconds <= k_latency_buckets[i]) {
      ++h.buckets[i];
      break;
    }
  }
  ++h.count;
  h.sum += seconds;
}

void RequestMetrics::write(PromWriter& w) const {
  std::lock_guard lock(m_mutex);
  w.family("vstore_http_requests_total", "counter", "HTTP requests answered, by route, method and status code.");
  for (const auto& [key, n] : m_requests) {
    const auto& [route, method, status] = key;
    w.sample("vstore_http_requests_total", {{"route", route}, {"method", method}, {"status", std::to_string(status)}},
             static_cast<double>(n));
  }
  w.family("vstore_http_request_duration_seconds", "histogram",
           "Time from reading a request's headers to answering it, by route, seconds.");
  for (const auto& [route, h] : m_latency) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < k_latency_buckets.size(); ++i) {
      cumulative += h.buckets[i];
      w.sample("vstore_http_request_duration_seconds_bucket", {{"route", route}, {"le", number(k_latency_buckets[i])}},
               static_cast<double>(cumulative));
    }
    w.sample("vstore_http_request_duration_seconds_bucket", {{"route", route}, {"le", "+Inf"}}, static_cast<double>(h.count));
    w.sample("vstore_http_request_duration_seconds_sum", {{"route", route}}, h.sum);
    w.sample("vstore_http_request_duration_seconds_count", {{"route", route}}, static_cast<double>(h.count));
  }
  w.family("vstore_http_requests_in_flight", "gauge", "Requests being handled now (this scrape included).");
  w.sample("vstore_http_requests_in_flight", static_cast<double>(m_in_flight.load(std::memory_order_relaxed)));
}

}  // namespace vstore::serve
