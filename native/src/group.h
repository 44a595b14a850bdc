// An in-process sequence-parallel group: the ranks of one process, each run by its own thread,
// exchanging key/value chunks by copying straight into each other's receive buffers. Holds the
// rendezvous state (which run each rank is in, which step it finished, what arrived), what each rank
// published for its run (descriptor and buffers), the emulated link rates, and the group-wide
// failure that wakes every waiting rank. Every wait has a deadline.
//
// What a group promises (docs/ARCHITECTURE.md, "What a group promises"):
//   * Agreement before any byte moves: join() returns only when every rank published a descriptor
//     for the same run and all agree (check_agreement); otherwise every rank fails with a message
//     naming the rank and what differs.
//   * One caller per rank at a time: a rank entered while it is still running fails the group at
//     once (it would otherwise wait for itself).
//   * A failed group stays failed: every later join throws at once, saying the group failed earlier
//     and must be rebuilt, with the first failure.
//   * Buffers a peer writes into are shared (RankBuffers): a writer holds its own reference.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "executor_common.h"
#include "torch_api.h"

namespace tasp {

class Group {
 public:
  Group(int world_size, int64_t timeout_ms);

  int world_size() const { return world_size_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // Emulated fabric: bytes per second from src to dst (0 = unlimited).
  void set_link_rate(int src, int dst, double bytes_per_second);
  double link_rate(int src, int dst) const;

  // Test hook: rank `rank` posts no sends (a peer that never sends).
  void set_silent(int rank, bool silent);
  bool silent(int rank) const;

  // Test hook: `rank` throws at the start of step `step` of its next runs (-1: never), as a rank
  // whose attention failed mid-run would.
  void set_fault(int rank, int64_t step);
  int64_t fault_step(int rank) const;

  // Starts a run of `rank`: publishes its descriptor and buffers, waits until every rank started
  // this run, then checks that all descriptors agree. Returns the run's number (the count of runs
  // this rank has started). A rank may reach its next run while slower ranks still finish the
  // previous one: runs are counted per rank, and a rank only joins after it received everything of
  // its previous run, so nothing of an old run can reach its new buffers. Publications are kept per
  // run parity, since a fast rank is at most one run ahead.
  int64_t join(int rank, const RunDescriptor& descriptor, std::shared_ptr<const RankBuffers> buffers);
  // What `rank` published for run `run` (null if it left that run already).
  std::shared_ptr<const RankBuffers> buffers(int rank, int64_t run) const;

  // Blocks until `rank` finished step `step` (its compute and its sends), or throws.
  void wait_finished(int waiter, int rank, int64_t step);
  void mark_finished(int rank, int64_t step);
  void mark_arrived(int rank, int64_t step);
  // Blocks until `count` messages of step `step` arrived at `rank`, or throws.
  void wait_arrivals(int rank, int64_t step, int64_t count);
  // Ends the run of `rank` (after success or failure); drops the group's reference to its buffers.
  void leave(int rank);

  // The buffers `rank` keeps between its runs (executor_common.h); one per rank, so ranks never
  // contend for it except when a peer drops the last reference to buffers of a finished run.
  std::shared_ptr<BufferPool> pool(int rank) const { return pools_[static_cast<size_t>(rank)]; }

  // Marks the group failed (first message wins) and wakes everyone. `code`: what the ranks throw
  // (TASP_ERR_GROUP for timeouts and peer failures, TASP_ERR_ARGUMENT for disagreements).
  void fail(const std::string& message, int code = TASP_ERR_GROUP);
  // Throws the group's failure, if any.
  void check() const;
  bool failed() const;

 private:
  void check_locked() const;
  template <typename Pred>
  void wait_for(std::unique_lock<std::mutex>& lock, Pred ready, const std::string& what);

  int world_size_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<double> rates_;
  std::vector<char> silent_;
  std::vector<int64_t> fault_step_;
  std::vector<char> active_;                    // a caller is inside this rank's run
  std::vector<RunDescriptor> descriptors_[2];   // per run parity, per rank
  std::vector<std::shared_ptr<const RankBuffers>> buffers_[2];
  std::vector<int64_t> finished_;               // last finished step per rank, in its current run
  std::vector<std::vector<int64_t>> arrived_;  // per rank, per step of its current run
  std::vector<int64_t> runs_;                  // runs each rank has started
  std::vector<std::shared_ptr<BufferPool>> pools_;
  bool failed_ = false;
  int failure_code_ = TASP_ERR_GROUP;
  std::string failure_;
};

}  // namespace tasp
