#include "group.h"

namespace tasp {

Group::Group(int world_size, int64_t timeout_ms)
    : world_size_(world_size),
      timeout_(timeout_ms),
      rates_(static_cast<size_t>(world_size) * world_size, 0.0),
      silent_(world_size, 0),
      buffers_(world_size),
      finished_(world_size, -1),
      arrived_(world_size),
      runs_(world_size, 0) {
  if (world_size < 1) tasp::fail(TASP_ERR_ARGUMENT, "group: world size must be at least 1, got " + std::to_string(world_size));
  if (timeout_ms < 1) tasp::fail(TASP_ERR_ARGUMENT, "group: timeout must be at least 1 ms, got " + std::to_string(timeout_ms));
}

void Group::set_link_rate(int src, int dst, double bytes_per_second) {
  if (src < 0 || src >= world_size_ || dst < 0 || dst >= world_size_ || bytes_per_second < 0) {
    tasp::fail(TASP_ERR_ARGUMENT, "group: bad link rate " + std::to_string(src) + "->" + std::to_string(dst));
  }
  rates_[src * world_size_ + dst] = bytes_per_second;
}

void Group::set_silent(int rank, bool silent) {
  if (rank < 0 || rank >= world_size_) tasp::fail(TASP_ERR_ARGUMENT, "group: no rank " + std::to_string(rank));
  silent_[rank] = silent ? 1 : 0;
}

void Group::check_locked() const {
  if (failed_) tasp::fail(TASP_ERR_GROUP, failure_);
}

void Group::check() const {
  std::lock_guard<std::mutex> lock(mutex_);
  check_locked();
}

template <typename Pred>
void Group::wait_for(std::unique_lock<std::mutex>& lock, Pred ready, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (!ready()) {
    check_locked();
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !ready()) {
      check_locked();
      failed_ = true;
      failure_ = what + ": no progress within " + std::to_string(timeout_.count()) + " ms";
      cv_.notify_all();
      check_locked();
    }
  }
  check_locked();
}

void Group::join(int rank, int64_t steps, const RankBuffers& buffers) {
  std::unique_lock<std::mutex> lock(mutex_);
  finished_[rank] = -1;
  arrived_[rank].assign(static_cast<size_t>(steps), 0);
  buffers_[rank] = buffers;
  int64_t run = ++runs_[rank];
  cv_.notify_all();
  wait_for(lock,
           [&] {
             for (int64_t r : runs_) {
               if (r < run) return false;
             }
             return true;
           },
           "rank " + std::to_string(rank) + " waiting for all ranks to start run " + std::to_string(run));
}

void Group::wait_finished(int waiter, int rank, int64_t step) {
  if (step < 0) return;
  std::unique_lock<std::mutex> lock(mutex_);
  wait_for(lock, [&] { return finished_[rank] >= step; },
           "rank " + std::to_string(waiter) + " waiting for rank " + std::to_string(rank) + " to finish step " +
               std::to_string(step));
}

void Group::mark_finished(int rank, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_[rank] = step;
  cv_.notify_all();
}

void Group::mark_arrived(int rank, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++arrived_[rank][static_cast<size_t>(step)];
  cv_.notify_all();
}

void Group::wait_arrivals(int rank, int64_t step, int64_t count) {
  std::unique_lock<std::mutex> lock(mutex_);
  wait_for(lock, [&] { return arrived_[rank][static_cast<size_t>(step)] >= count; },
           "rank " + std::to_string(rank) + " waiting for the key/value chunks of step " + std::to_string(step));
}

void Group::leave(int /*rank*/) {
  std::lock_guard<std::mutex> lock(mutex_);
  cv_.notify_all();
}

void Group::fail(const std::string& message) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failed_) {
    failed_ = true;
    failure_ = message;
  }
  cv_.notify_all();
}

}  // namespace tasp
