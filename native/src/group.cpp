#include "group.h"

namespace tasp {

Group::Group(int world_size, int64_t timeout_ms) : world_size_(world_size), timeout_(timeout_ms) {
  if (world_size < 1) tasp::fail(TASP_ERR_ARGUMENT, "group: world size must be at least 1, got " + std::to_string(world_size));
  if (timeout_ms < 1) tasp::fail(TASP_ERR_ARGUMENT, "group: timeout must be at least 1 ms, got " + std::to_string(timeout_ms));
  const size_t n = static_cast<size_t>(world_size);
  rates_.assign(n * n, 0.0);
  silent_.assign(n, 0);
  fault_step_.assign(n, -1);
  active_.assign(n, 0);
  for (int p = 0; p < 2; ++p) {
    descriptors_[p].resize(n);
    buffers_[p].resize(n);
  }
  finished_.assign(n, -1);
  arrived_.resize(n);
  runs_.assign(n, 0);
  for (size_t r = 0; r < n; ++r) pools_.push_back(std::make_shared<BufferPool>());
}

void Group::set_link_rate(int src, int dst, double bytes_per_second) {
  if (src < 0 || src >= world_size_ || dst < 0 || dst >= world_size_ || !(bytes_per_second >= 0)) {
    tasp::fail(TASP_ERR_ARGUMENT, "group: bad link rate " + std::to_string(src) + "->" + std::to_string(dst));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  rates_[static_cast<size_t>(src) * world_size_ + dst] = bytes_per_second;
}

double Group::link_rate(int src, int dst) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return rates_[static_cast<size_t>(src) * world_size_ + dst];
}

void Group::set_silent(int rank, bool silent) {
  if (rank < 0 || rank >= world_size_) tasp::fail(TASP_ERR_ARGUMENT, "group: no rank " + std::to_string(rank));
  std::lock_guard<std::mutex> lock(mutex_);
  silent_[static_cast<size_t>(rank)] = silent ? 1 : 0;
}

bool Group::silent(int rank) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return silent_[static_cast<size_t>(rank)] != 0;
}

void Group::set_fault(int rank, int64_t step) {
  if (rank < 0 || rank >= world_size_) tasp::fail(TASP_ERR_ARGUMENT, "group: no rank " + std::to_string(rank));
  std::lock_guard<std::mutex> lock(mutex_);
  fault_step_[static_cast<size_t>(rank)] = step;
}

int64_t Group::fault_step(int rank) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return fault_step_[static_cast<size_t>(rank)];
}

void Group::check_locked() const {
  if (failed_) tasp::fail(failure_code_, failure_);
}

void Group::check() const {
  std::lock_guard<std::mutex> lock(mutex_);
  check_locked();
}

bool Group::failed() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failed_;
}

template <typename Pred>
void Group::wait_for(std::unique_lock<std::mutex>& lock, Pred ready, const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + timeout_;
  while (!ready()) {
    check_locked();
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !ready()) {
      check_locked();
      failed_ = true;
      failure_code_ = TASP_ERR_GROUP;
      failure_ = what + ": no progress within " + std::to_string(timeout_.count()) + " ms";
      cv_.notify_all();
      check_locked();
    }
  }
  check_locked();
}

int64_t Group::join(int rank, const RunDescriptor& descriptor, std::shared_ptr<const RankBuffers> buffers) {
  std::unique_lock<std::mutex> lock(mutex_);
  const size_t r = static_cast<size_t>(rank);
  if (failed_) {
    tasp::fail(TASP_ERR_GROUP, "rank " + std::to_string(rank) +
                                   ": this group failed earlier and cannot run again; close it and build a new one "
                                   "(its first failure: " + failure_ + ")");
  }
  if (active_[r]) {
    std::string why = "rank " + std::to_string(rank) +
                      " was entered by a second caller while it was still running: a group runs one collective "
                      "at a time, each rank from one thread (serialize the calls, or use one group per caller)";
    failed_ = true;
    failure_code_ = TASP_ERR_STATE;
    failure_ = why;
    cv_.notify_all();
    tasp::fail(TASP_ERR_STATE, why);
  }
  active_[r] = 1;
  finished_[r] = -1;
  arrived_[r].assign(static_cast<size_t>(descriptor.steps), 0);
  int64_t run = ++runs_[r];
  descriptors_[run % 2][r] = descriptor;
  buffers_[run % 2][r] = std::move(buffers);
  cv_.notify_all();
  try {
    wait_for(lock,
             [&] {
               for (int64_t x : runs_) {
                 if (x < run) return false;
               }
               return true;
             },
             "rank " + std::to_string(rank) + " waiting for all ranks to start run " + std::to_string(run));
    // Every rank is in this run (or the next one, whose publications sit in the other parity slot).
    std::vector<const RunDescriptor*> all;
    for (const RunDescriptor& d : descriptors_[run % 2]) all.push_back(&d);
    try {
      check_agreement(rank, all, /*all_pairs=*/false, /*same_device=*/true);
    } catch (const Error& e) {
      if (!failed_) {
        failed_ = true;
        failure_code_ = e.code();
        failure_ = e.what();
      }
      cv_.notify_all();
      check_locked();
    }
  } catch (...) {
    // The caller never started: it will not call leave().
    active_[r] = 0;
    buffers_[run % 2][r].reset();
    throw;
  }
  return run;
}

std::shared_ptr<const RankBuffers> Group::buffers(int rank, int64_t run) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return buffers_[run % 2][static_cast<size_t>(rank)];
}

void Group::wait_finished(int waiter, int rank, int64_t step) {
  if (step < 0) return;
  std::unique_lock<std::mutex> lock(mutex_);
  wait_for(lock, [&] { return finished_[static_cast<size_t>(rank)] >= step; },
           "rank " + std::to_string(waiter) + " waiting for rank " + std::to_string(rank) + " to finish step " +
               std::to_string(step));
}

void Group::mark_finished(int rank, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  finished_[static_cast<size_t>(rank)] = step;
  cv_.notify_all();
}

void Group::mark_arrived(int rank, int64_t step) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto& a = arrived_[static_cast<size_t>(rank)];
  if (step >= 0 && step < static_cast<int64_t>(a.size())) ++a[static_cast<size_t>(step)];
  cv_.notify_all();
}

void Group::wait_arrivals(int rank, int64_t step, int64_t count) {
  std::unique_lock<std::mutex> lock(mutex_);
  wait_for(lock, [&] { return arrived_[static_cast<size_t>(rank)][static_cast<size_t>(step)] >= count; },
           "rank " + std::to_string(rank) + " waiting for the key/value chunks of step " + std::to_string(step));
}

void Group::leave(int rank) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t r = static_cast<size_t>(rank);
  active_[r] = 0;
  // Writers that still hold a reference keep the buffers alive; the group needs them no longer.
  buffers_[runs_[r] % 2][r].reset();
  cv_.notify_all();
}

void Group::fail(const std::string& message, int code) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failed_) {
    failed_ = true;
    failure_code_ = code;
    failure_ = message;
  }
  cv_.notify_all();
}

}  // namespace tasp
