// The in-process transport: ranks are threads of one process (see transport.h).
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "transport.h"

namespace tasp {
namespace {

// The communication thread of one rank: runs each step's sends when asked. A sender copies into
// the receiver's buffer step % 2 once the receiver finished step - 1 (so that buffer is free), then
// counts the arrival. Links run in parallel: each transfer ends bytes / rate after the step's start
// on its own link, and the step's transfers end when the slowest link does.
class CommWorker {
 public:
  CommWorker(Group& group, int rank, const Program& program, const RankBuffers& own, const TokenGeometry& geometry)
      : step_comm_ms(program.steps.size(), 0.0), group_(group), rank_(rank), program_(program), own_(own),
        bytes_per_token_(geometry.batch * geometry.token_bytes), thread_([this] { loop(); }) {}

  ~CommWorker() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  void post(int64_t step) {
    std::lock_guard<std::mutex> lock(mutex_);
    posted_ = step;
    cv_.notify_all();
  }

  // Waits until the sends of `step` are done; rethrows what the thread hit.
  void wait_done(int64_t step) {
    std::unique_lock<std::mutex> lock(mutex_);
    auto deadline = Clock::now() + group_.timeout() + std::chrono::seconds(1);
    while (done_ < step && !error_) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && done_ < step && !error_) {
        lock.unlock();
        group_.fail("rank " + std::to_string(rank_) + ": sends of step " + std::to_string(step) + " did not finish");
        group_.check();
      }
    }
    if (error_) std::rethrow_exception(error_);
  }

  // Read after wait_done of the last step.
  double comm_ms = 0, wait_ms = 0;
  int64_t bytes_sent = 0;
  std::vector<double> step_comm_ms;

 private:
  void loop() {
    int64_t next = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || posted_ >= next; });
        if (stop_) return;
      }
      try {
        run_sends(next);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = next;
      ++next;
      cv_.notify_all();
    }
  }

  void run_sends(int64_t step) {
    const StepProgram& sp = program_.steps[static_cast<size_t>(step)];
    if (group_.silent(rank_)) return;  // test hook: a peer that never sends
    auto t_wait = Clock::now();
    for (const Send& s : sp.sends) group_.wait_finished(rank_, static_cast<int>(s.peer), step - 1);
    wait_ms += ms_since(t_wait);
    auto t0 = Clock::now();
    std::vector<double> link_seconds(static_cast<size_t>(group_.world_size()), 0.0);
    for (const Send& s : sp.sends) {
      const RankBuffers& peer = group_.buffers(static_cast<int>(s.peer));
      int sb = static_cast<int>(s.src_buffer), db = static_cast<int>(s.dst_buffer);
      copy_tokens(peer.k[db], s.dst_start, own_.k[sb], s.src_start, s.count);
      copy_tokens(peer.v[db], s.dst_start, own_.v[sb], s.src_start, s.count);
      int64_t bytes = 2 * s.count * bytes_per_token_;
      bytes_sent += bytes;
      double rate = group_.link_rate(rank_, static_cast<int>(s.peer));
      if (rate > 0) link_seconds[static_cast<size_t>(s.peer)] += static_cast<double>(bytes) / rate;
      group_.mark_arrived(static_cast<int>(s.peer), step);
    }
    double slowest = *std::max_element(link_seconds.begin(), link_seconds.end());
    auto until = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(slowest));
    if (Clock::now() < until) std::this_thread::sleep_until(until);
    double ms = ms_since(t0);
    comm_ms += ms;
    step_comm_ms[static_cast<size_t>(step)] = ms;
  }

  Group& group_;
  int rank_;
  const Program& program_;
  RankBuffers own_;
  int64_t bytes_per_token_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t posted_ = -1;
  int64_t done_ = -1;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts after everything it uses
};

class InProcessTransport final : public Transport {
 public:
  InProcessTransport(Group& group, int rank) : group_(group), rank_(rank) {
    if (rank < 0 || rank >= group.world_size()) {
      fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + " outside a group of " +
                                  std::to_string(group.world_size()));
    }
  }

  ~InProcessTransport() override {
    worker_.reset();
    if (started_) group_.leave(rank_);
  }

  int rank() const override { return rank_; }
  int world() const override { return group_.world_size(); }
  void check_device(const TensorInfo&) const override {}  // copy_ moves host and device memory alike

  void start(const Program& program, const RankBuffers& own, const TokenGeometry& geometry) override {
    program_ = &program;
    group_.join(rank_, static_cast<int64_t>(program.steps.size()), own);
    started_ = true;
    worker_ = std::make_unique<CommWorker>(group_, rank_, program, own, geometry);
  }

  void post(int64_t step) override { worker_->post(step); }
  void before_compute(int64_t) override {}  // step - 1's arrivals were awaited in after_compute(step - 1)

  void after_compute(int64_t step) override {
    auto t0 = Clock::now();
    worker_->wait_done(step);
    group_.wait_arrivals(rank_, step, static_cast<int64_t>(program_->steps[static_cast<size_t>(step)].recvs.size()));
    double waited = ms_since(t0);
    wait_ms_ += waited;
    step_wait_ms_.push_back(waited);
    group_.mark_finished(rank_, step);
  }

  void finish() override {}
  void check() const override { group_.check(); }

  void abort(const std::string& why, bool group_error) noexcept override {
    try {
      if (!group_error) group_.fail("rank " + std::to_string(rank_) + ": " + why);
    } catch (...) {
    }
    worker_.reset();  // after the failure woke it, if it waited on a peer
  }

  void report(RankStats& stats) override {
    stats.comm_ms = worker_->comm_ms;
    stats.wait_ms = wait_ms_ + worker_->wait_ms;
    stats.bytes_sent = worker_->bytes_sent;
    stats.step_comm_ms = worker_->step_comm_ms;
    stats.step_wait_ms = step_wait_ms_;
  }

 private:
  Group& group_;
  int rank_;
  const Program* program_ = nullptr;
  bool started_ = false;
  std::unique_ptr<CommWorker> worker_;
  double wait_ms_ = 0;
  std::vector<double> step_wait_ms_;
};

}  // namespace

std::unique_ptr<Transport> in_process_transport(Group& group, int rank) {
  return std::make_unique<InProcessTransport>(group, rank);
}

}  // namespace tasp
