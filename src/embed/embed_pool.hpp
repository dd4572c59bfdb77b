// SPDX-License-Identifier: Apache-2.0
// EmbedPool: the one pool of threads per process that the embedding engine's batch work runs on.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "vstore/result.hpp"

namespace vstore::embed {

/// A fixed set of worker threads that help callers run the parts of their work. Each run()
/// call is one job of `parts` numbered parts; the calling thread works on its own job too, and
/// idle workers join it, so a job always finishes even when every worker is busy with others'
/// jobs, and concurrent callers add no threads: the process runs at most (callers + workers)
/// threads of embedding work, whatever the number of calls in flight.
class EmbedPool {
 public:
  /// The process's pool, created on the first call with `threads` threads of work in all (the
  /// caller of run() counts as one, so `threads` - 1 workers are started; `threads` <= 0 means
  /// one per core). A later call with a larger `threads` grows the same pool to it (an embedder
  /// configured for more threads than the first); it never shrinks, and never exceeds 256.
  /// Never fails: a worker that cannot be started is left out. Thread-safe. The pool lives
  /// until the process exits.
  [[nodiscard]] static EmbedPool& shared(int threads = 0);

  /// A pool of `threads` threads of work (`threads` - 1 workers, at least none); the engine
  /// uses shared(). Joins its workers on destruction.
  explicit EmbedPool(int threads);
  ~EmbedPool();
  EmbedPool(const EmbedPool&) = delete;
  EmbedPool& operator=(const EmbedPool&) = delete;

  /// Threads of work: workers + 1 (the caller).
  [[nodiscard]] int threads() const noexcept { return m_worker_count.load() + 1; }

  /// Runs part(0) .. part(parts - 1), each exactly once, on the calling thread and on up to
  /// `max_threads` - 1 idle workers; returns when every part has returned. `part` must not
  /// throw; if it does, the exception is caught, the remaining parts still run and run()
  /// returns internal naming it. Errors: internal only. Thread-safe: any number of threads may
  /// call run() at once.
  [[nodiscard]] Result<void> run(std::size_t parts, int max_threads, const std::function<void(std::size_t)>& part);

 private:
  struct Job;
  // Starts workers until there are `threads` - 1 (at most 255).
  void grow(int threads);
  void serve();
  // Runs parts of `job` until none is left to claim.
  static void work_on(Job& job);

  std::mutex m_mutex;
  std::deque<std::shared_ptr<Job>> m_jobs;  // jobs with parts left to claim; guarded by m_mutex
  std::atomic<std::uint64_t> m_generation{0};  // bumped for every new job and at stop
  std::atomic<bool> m_stop{false};
  std::atomic<int> m_worker_count{0};  // m_workers.size(), readable without m_grow_mutex
  std::mutex m_grow_mutex;
  std::vector<std::jthread> m_workers;  // guarded by m_grow_mutex; last member: joined first
};

}  // namespace vstore::embed
