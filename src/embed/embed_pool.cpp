// SPDX-License-Identifier: Apache-2.0
// EmbedPool: one set of worker threads per process for the embedding engine.
//
// Design
// ------
// A run() call is a Job: `parts` numbered parts claimed through an atomic counter. The caller
// queues its job (under m_mutex), bumps m_generation to wake the workers, and then claims parts
// of its own job like any worker, so the job finishes even when no worker is free (no caller
// ever waits for a worker, so there is no deadlock however many callers there are). A worker
// takes the oldest queued job that still has parts to claim and fewer helpers than the caller
// allowed, and works on it until no part is left. The caller removes its job from the queue
// once every part is claimed and waits until every part has returned (`done`); only then may
// the part function (on the caller's stack) go away. Workers hold the job by shared_ptr, so its
// counters outlive the caller's return.
//
// Waiting: the embedding engine calls run() for every Linear layer of a short query (24 times
// in a few milliseconds), so both sides spin briefly (_mm_pause) before they block on the
// atomic (futex): a worker on m_generation, a caller on its job's `done`.
//
// Locking: m_mutex guards m_jobs only; a job's counters are atomics. A worker reads
// m_generation before it looks for work, so a job queued after the look makes the generation
// differ and the worker looks again instead of sleeping.
#include "embed/embed_pool.hpp"

#include <immintrin.h>

#include <algorithm>
#include <exception>
#include <string>
#include <system_error>

#include <fmt/format.h>

namespace vstore::embed {
namespace {

constexpr int k_spins = 4000;
constexpr int k_max_threads = 256;  // VSTORE_EMBED_THREADS' own limit

}  // namespace

struct EmbedPool::Job {
  const std::function<void(std::size_t)>* part = nullptr;
  std::size_t parts = 0;
  int max_helpers = 0;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::atomic<int> helpers{0};  // workers that joined; changed under the pool's m_mutex
  std::mutex error_mutex;
  std::string error;  // the first exception's text; guarded by error_mutex
};

EmbedPool& EmbedPool::shared(int threads) {
  const int wanted = threads > 0 ? threads : static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));
  static EmbedPool pool(wanted);
  if (wanted > pool.threads()) pool.grow(wanted);
  return pool;
}

EmbedPool::EmbedPool(int threads) { grow(threads); }

void EmbedPool::grow(int threads) {
  const std::lock_guard lock(m_grow_mutex);
  const auto wanted = static_cast<std::size_t>(std::clamp(threads, 1, k_max_threads) - 1);
  while (m_workers.size() < wanted) {
    try {
      m_workers.emplace_back([this] { serve(); });
    } catch (const std::system_error&) {
      break;  // fewer workers: callers do more of the work, with the same results
    }
    m_worker_count.store(static_cast<int>(m_workers.size()));
  }
}

EmbedPool::~EmbedPool() {
  m_stop.store(true);
  m_generation.fetch_add(1);
  m_generation.notify_all();
  const std::lock_guard lock(m_grow_mutex);
  m_workers.clear();
}

void EmbedPool::work_on(Job& job) {
  for (std::size_t part_idx = job.next.fetch_add(1); part_idx < job.parts; part_idx = job.next.fetch_add(1)) {
    try {
      (*job.part)(part_idx);
    } catch (const std::exception& e) {
      const std::lock_guard lock(job.error_mutex);
      if (job.error.empty()) job.error = fmt::format("part {} of {} threw: {}", part_idx, job.parts, e.what());
    } catch (...) {
      const std::lock_guard lock(job.error_mutex);
      if (job.error.empty()) job.error = fmt::format("part {} of {} threw a non-standard exception", part_idx, job.parts);
    }
    if (job.done.fetch_add(1) + 1 == job.parts) job.done.notify_all();
  }
}

void EmbedPool::serve() {
  for (;;) {
    const std::uint64_t seen = m_generation.load();
    if (m_stop.load()) return;
    std::shared_ptr<Job> job;
    {
      const std::lock_guard lock(m_mutex);
      for (const auto& queued : m_jobs) {
        if (queued->next.load() < queued->parts && queued->helpers.load() < queued->max_helpers) {
          queued->helpers.fetch_add(1);
          job = queued;
          break;
        }
      }
    }
    if (job) {
      work_on(*job);
      continue;
    }
    for (int spin = 0; m_generation.load() == seen; ++spin) {
      if (spin < k_spins) {
        _mm_pause();
      } else {
        m_generation.wait(seen);
      }
    }
  }
}

Result<void> EmbedPool::run(std::size_t parts, int max_threads, const std::function<void(std::size_t)>& part) {
  if (parts == 0) return {};
  auto job = std::make_shared<Job>();
  job->part = &part;
  job->parts = parts;
  const auto max_helpers = std::min<std::size_t>({static_cast<std::size_t>(std::max(0, max_threads - 1)),
                                                  static_cast<std::size_t>(m_worker_count.load()), parts - 1});
  job->max_helpers = static_cast<int>(max_helpers);
  if (max_helpers > 0) {
    {
      const std::lock_guard lock(m_mutex);
      m_jobs.push_back(job);
    }
    m_generation.fetch_add(1);
    m_generation.notify_all();
  }
  work_on(*job);
  if (max_helpers > 0) {
    const std::lock_guard lock(m_mutex);
    std::erase(m_jobs, job);
  }
  for (int spin = 0;; ++spin) {
    const std::size_t done = job->done.load();
    if (done == parts) break;
    if (spin < k_spins) {
      _mm_pause();
    } else {
      job->done.wait(done);
    }
  }
  const std::lock_guard lock(job->error_mutex);
  if (!job->error.empty()) return fail(ErrorCode::internal, fmt::format("embedding work failed: {}", job->error));
  return {};
}

}  // namespace vstore::embed
