// An in-process sequence-parallel group: the ranks of one process, each run by its own thread,
// exchanging key/value chunks by copying straight into each other's receive buffers. Holds the
// rendezvous state (which step each rank finished, what arrived), the emulated link rates, and
// the group-wide failure that wakes every waiting rank. Every wait has a deadline.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "torch_api.h"

namespace tasp {

// One rank's buffers, published for the peers that copy into them.
struct RankBuffers {
  AtenTensorHandle k[3] = {nullptr, nullptr, nullptr};  // [0], [1]: receive buffers; [2]: local shard
  AtenTensorHandle v[3] = {nullptr, nullptr, nullptr};
};

class Group {
 public:
  Group(int world_size, int64_t timeout_ms);

  int world_size() const { return world_size_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Emulated fabric: bytes per second from src to dst (0 = unlimited).
  void set_link_rate(int src, int dst, double bytes_per_second);
  double link_rate(int src, int dst) const { return rates_[src * world_size_ + dst]; }

  // Test hook: rank `rank` posts no sends (a peer that never sends).
  void set_silent(int rank, bool silent);
  bool silent(int rank) const { return silent_[rank] != 0; }

  // Starts a run: every rank calls it with its buffers; returns once every rank has started this
  // run (or throws). A rank may reach its next run while slower ranks still finish the previous
  // one: runs are counted per rank, and a rank only joins after it received everything of its
  // previous run, so nothing of an old run can reach its new buffers.
  void join(int rank, int64_t steps, const RankBuffers& buffers);
  const RankBuffers& buffers(int rank) const { return buffers_[rank]; }

  // Blocks until `rank` finished step `step` (its compute and its sends), or throws.
  void wait_finished(int waiter, int rank, int64_t step);
  void mark_finished(int rank, int64_t step);
  void mark_arrived(int rank, int64_t step);
  // Blocks until `count` messages of step `step` arrived at `rank`, or throws.
  void wait_arrivals(int rank, int64_t step, int64_t count);
  // Ends the run of `rank` (after success or failure).
  void leave(int rank);

  // Marks the group failed (first message wins) and wakes everyone.
  void fail(const std::string& message);
  // Throws the group's failure, if any (code TASP_ERR_GROUP).
  void check() const;

 private:
  void check_locked() const;
  template <typename Pred>
  void wait_for(std::unique_lock<std::mutex>& lock, Pred ready, const std::string& what);

  int world_size_;
  std::chrono::milliseconds timeout_;
  std::vector<double> rates_;
  std::vector<char> silent_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<RankBuffers> buffers_;
  std::vector<int64_t> finished_;               // last finished step per rank, in its current run
  std::vector<std::vector<int64_t>> arrived_;  // per rank, per step of its current run
  std::vector<int64_t> runs_;                  // runs each rank has started
  bool failed_ = false;
  std::string failure_;
};

}  // namespace tasp
