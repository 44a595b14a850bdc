// The in-process transport: ranks are threads of one process (see transport.h).
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "step_thread.h"
#include "transport.h"

namespace tasp {
namespace {

// The communication thread of one rank: runs each step's sends when asked. A sender copies into
// the receiver's buffer step % 2 once the receiver finished step - 1 (so that buffer is free). Every
// send is checked against what the receiver published (capacity in tokens and bytes) before it is
// copied. Emulated fabric: links run in parallel, each transfer occupies its own link for bytes /
// rate after the step's start (transfers on one link queue), and it counts as arrived only when its
// own link's time has passed, so a slow incoming link delays its receiver, whatever the receiver's
// own links are. The step's sends end when the slowest link does.
class CommWorker {
 public:
  CommWorker(Group& group, int rank, int64_t run, const Program& program, std::shared_ptr<const RankBuffers> own)
      : step_comm_ms(program.steps.size(), 0.0), group_(group), rank_(rank), program_(program), own_(std::move(own)) {
    // A reference to every peer's buffers for this run: they stay alive while this thread may write.
    peers_.resize(static_cast<size_t>(group.world_size()));
    for (int p = 0; p < group.world_size(); ++p) {
      if (p != rank) peers_[static_cast<size_t>(p)] = group.buffers(p, run);
    }
    thread_ = std::make_unique<StepThread>([this](int64_t step) { run_sends(step); });
  }

  void post(int64_t step) { thread_->post(step); }

  // Waits until the sends of `step` are done; rethrows what the thread hit.
  void wait_done(int64_t step) {
    auto deadline = Clock::now() + group_.timeout() + std::chrono::seconds(1);
    while (!thread_->wait_done(step, deadline)) {
      group_.fail("rank " + std::to_string(rank_) + ": sends of step " + std::to_string(step) + " did not finish");
      group_.check();
    }
  }

  // Read after wait_done of the last step.
  double comm_ms = 0, wait_ms = 0;
  int64_t bytes_sent = 0;
  std::vector<double> step_comm_ms;

 private:
  // The receiver's published buffer must hold the send's range, in tokens and in bytes.
  const RankBuffers& target(const Send& s, int64_t step) const {
    const RankBuffers* peer = peers_[static_cast<size_t>(s.peer)].get();
    auto where = [&] {
      return "rank " + std::to_string(rank_) + " step " + std::to_string(step) + " send to rank " +
             std::to_string(s.peer);
    };
    if (peer == nullptr) fail(TASP_ERR_GROUP, where() + ": the receiver published no buffers for this run");
    const int64_t sb = s.src_buffer, db = s.dst_buffer;
    if (!is_receive_buffer(db) || sb < 0 || sb >= kBufferCount) {
      fail(TASP_ERR_ARGUMENT, where() + ": from buffer " + std::to_string(sb) + " into buffer " + std::to_string(db));
    }
    if (peer->batch != own_->batch || peer->token_bytes[db] != own_->token_bytes[sb]) {
      fail(TASP_ERR_ARGUMENT, where() + ": the receiver's tokens are " + std::to_string(peer->batch) + " x " +
                                  std::to_string(peer->token_bytes[db]) + " bytes, this rank's " +
                                  std::to_string(own_->batch) + " x " + std::to_string(own_->token_bytes[sb]));
    }
    if (s.dst_start < 0 || s.count < 1 || s.dst_start + s.count > peer->capacity_tokens[db]) {
      fail(TASP_ERR_ARGUMENT, where() + ": tokens [" + std::to_string(s.dst_start) + ", " +
                                  std::to_string(s.dst_start + s.count) + ") do not fit the receiver's buffer " +
                                  std::to_string(db) + " of " + std::to_string(peer->capacity_tokens[db]) +
                                  " tokens (" + std::to_string(peer->capacity_bytes(db)) + " bytes)");
    }
    if (s.src_start < 0 || s.src_start + s.count > own_->capacity_tokens[sb]) {
      fail(TASP_ERR_ARGUMENT, where() + ": source tokens out of buffer " + std::to_string(sb));
    }
    return *peer;
  }

  void run_sends(int64_t step) {
    const StepProgram& sp = program_.steps[static_cast<size_t>(step)];
    if (group_.silent(rank_)) return;  // test hook: a peer that never sends
    auto t_wait = Clock::now();
    for (const Send& s : sp.sends) group_.wait_finished(rank_, static_cast<int>(s.peer), step - 1);
    wait_ms += ms_since(t_wait);
    auto t0 = Clock::now();
    std::vector<double> link_seconds(static_cast<size_t>(group_.world_size()), 0.0);
    std::vector<std::pair<Clock::time_point, int>> arrivals;  // (when, receiver)
    for (const Send& s : sp.sends) {
      const RankBuffers& peer = target(s, step);
      const int64_t sb = s.src_buffer, db = s.dst_buffer;
      copy_tokens(peer.k[db].get(), s.dst_start, own_->k[sb].get(), s.src_start, s.count);
      copy_tokens(peer.v[db].get(), s.dst_start, own_->v[sb].get(), s.src_start, s.count);
      int64_t bytes = own_->transfer_bytes(sb, s.count);
      bytes_sent += bytes;
      double rate = group_.link_rate(rank_, static_cast<int>(s.peer));
      double& link = link_seconds[static_cast<size_t>(s.peer)];
      if (rate > 0) link += static_cast<double>(bytes) / rate;
      arrivals.emplace_back(t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(link)),
                            static_cast<int>(s.peer));
    }
    std::stable_sort(arrivals.begin(), arrivals.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& a : arrivals) {
      if (Clock::now() < a.first) std::this_thread::sleep_until(a.first);
      group_.mark_arrived(a.second, step);
    }
    double ms = ms_since(t0);
    comm_ms += ms;
    step_comm_ms[static_cast<size_t>(step)] = ms;
  }

  Group& group_;
  int rank_;
  const Program& program_;
  std::shared_ptr<const RankBuffers> own_;
  std::vector<std::shared_ptr<const RankBuffers>> peers_;
  // Last: destroyed (joined) first, before the members its steps use.
  std::unique_ptr<StepThread> thread_;
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

  void start(const Program& program, const RunDescriptor& descriptor,
             std::shared_ptr<const RankBuffers> own) override {
    program_ = &program;
    int64_t run = group_.join(rank_, descriptor, own);
    started_ = true;
    worker_ = std::make_unique<CommWorker>(group_, rank_, run, program, std::move(own));
  }

  void post(int64_t step) override { worker_->post(step); }
  // Step - 1's arrivals were awaited in after_compute(step - 1).
  void before_compute(int64_t step) override {
    if (group_.fault_step(rank_) == step) {
      fail(TASP_ERR_STATE, "rank " + std::to_string(rank_) + ": injected fault at step " + std::to_string(step));
    }
  }

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

  // Sends are copy_ calls through views (copy_tokens), which read any strides.
  bool sends_any_strides() const override { return true; }
  std::shared_ptr<BufferPool> buffer_pool() override { return group_.pool(rank_); }

  void report(RankStats& stats) override {
    if (!worker_) return;
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
