#include "executor.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "attention.h"
#include "executor_common.h"

namespace tasp {
namespace {

// The communication thread of one rank: runs each step's sends when asked.
class CommWorker {
 public:
  CommWorker(Group& group, int rank, const Program& program, const RankBuffers& own, int64_t bytes_per_token)
      : step_comm_ms(program.steps.size(), 0.0), group_(group), rank_(rank), program_(program), own_(own),
        bytes_per_token_(bytes_per_token), thread_([this] { loop(); }) {}

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

  double comm_ms = 0, wait_ms = 0;
  int64_t bytes_sent = 0;
  std::vector<double> step_comm_ms;  // read after wait_done of the step

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
    // Links run in parallel: each transfer ends bytes / rate after the step's start on its own
    // link; the step's transfers end when the slowest link does.
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
    double slowest = 0;
    for (double x : link_seconds) slowest = std::max(slowest, x);
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

}  // namespace

RankResult rank_forward(Group& group, int rank, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                        AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  if (rank < 0 || rank >= group.world_size()) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + " outside a group of " +
                                std::to_string(group.world_size()));
  }
  auto t_start = Clock::now();
  Program p = parse(program, program_len, rank, group.world_size());
  TensorInfo qi = info(q), ki = info(k), vi = info(v);
  if (qi.sizes.size() != 4 || ki.sizes.size() != 4 || ki.sizes != vi.sizes) {
    fail(TASP_ERR_ARGUMENT, "executor: q " + shape_string(qi.sizes) + ", k " + shape_string(ki.sizes) + ", v " +
                                shape_string(vi.sizes) + " must be 4-D (batch, heads, tokens, head_dim)");
  }
  if (qi.sizes[2] != p.q_tokens || ki.sizes[2] != p.kv_tokens) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + " holds " + std::to_string(p.q_tokens) +
                                " query and " + std::to_string(p.kv_tokens) + " key tokens in this plan, got q " +
                                shape_string(qi.sizes) + ", k " + shape_string(ki.sizes));
  }
  const int64_t batch = qi.sizes[0], heads = qi.sizes[1], dim = qi.sizes[3], kv_heads = ki.sizes[1];
  int64_t result_bytes = 0;

  // Token-major staging: own shard and two receive buffers, (B, S, Hkv, D).
  Tensor q_tm = to_token_major(q);
  Tensor k_own = to_token_major(k);
  Tensor v_own = to_token_major(v);
  int64_t cap = std::max<int64_t>(p.recv_capacity, 1);
  Tensor k_buf[2] = {empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index),
                     empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index)};
  Tensor v_buf[2] = {empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index),
                     empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index)};
  RankBuffers own;
  own.k[0] = k_buf[0].get();
  own.k[1] = k_buf[1].get();
  own.k[2] = k_own.get();
  own.v[0] = v_buf[0].get();
  own.v[1] = v_buf[1].get();
  own.v[2] = v_own.get();

  Accumulators acc = make_accumulators(batch, heads, p.q_tokens, dim, qi);
  {
    int64_t e = element_size(qi.dtype);
    int64_t tokens_in = batch * heads * p.q_tokens * dim;   // q staging and the output
    int64_t kv = batch * kv_heads * dim;                   // per token of k or v
    result_bytes = e * (2 * tokens_in + 2 * kv * p.kv_tokens + 4 * kv * cap) + 4 * (tokens_in + batch * heads * p.q_tokens);
  }

  RankResult result;
  result.stats.buffer_bytes = result_bytes;
  group.join(rank, static_cast<int64_t>(p.steps.size()), own);
  struct Leave {
    Group& g;
    int r;
    ~Leave() { g.leave(r); }
  } leave{group, rank};
  int64_t bytes_per_token = kv_heads * dim * element_size(ki.dtype) * batch;
  // Declared outside the try: on failure the group is failed first, which wakes the worker if it
  // waits on a peer, and only then is the worker joined.
  std::unique_ptr<CommWorker> worker = std::make_unique<CommWorker>(group, rank, p, own, bytes_per_token);
  CommWorker& comm = *worker;
  try {
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const StepProgram& sp = p.steps[s];
      int64_t step = static_cast<int64_t>(s);
      comm.post(step);
      auto t0 = Clock::now();
      for (const Task& t : sp.tasks) {
        group.check();
        run_task(t, q_tm.get(), own.k[t.buffer], own.v[t.buffer], acc, scale);
      }
      double compute = ms_since(t0);
      result.stats.compute_ms += compute;
      auto t_wait = Clock::now();
      comm.wait_done(step);
      group.wait_arrivals(rank, step, static_cast<int64_t>(sp.recvs.size()));
      double waited = ms_since(t_wait);
      result.stats.wait_ms += waited;
      result.stats.step_compute_ms.push_back(compute);
      result.stats.step_wait_ms.push_back(waited);
      group.mark_finished(rank, step);
    }
    result.stats.comm_ms = comm.comm_ms;
    result.stats.wait_ms += comm.wait_ms;
    result.stats.bytes_sent = comm.bytes_sent;
    result.stats.step_comm_ms = comm.step_comm_ms;
  } catch (const Error& e) {
    if (e.code() != TASP_ERR_GROUP) group.fail("rank " + std::to_string(rank) + ": " + e.what());
    worker.reset();
    throw;
  } catch (const std::exception& e) {
    group.fail("rank " + std::to_string(rank) + ": " + e.what());
    worker.reset();
    throw;
  }
  worker.reset();
  // Output in the input dtype; LSE stays fp32.
  result.out = empty({batch, heads, p.q_tokens, dim}, qi.dtype, qi.device_type, qi.device_index);
  check_torch(torch().copy(result.out.get(), acc.out.get(), 0), "aoti_torch_copy_");
  result.lse = std::move(acc.lse);
  result.stats.total_ms = ms_since(t_start);
  return result;
}

}  // namespace tasp
