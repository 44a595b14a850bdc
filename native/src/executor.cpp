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

namespace tasp {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Send {
  int64_t peer, src_buffer, src_start, count, dst_buffer, dst_start;
};
struct Recv {
  int64_t peer, dst_buffer, dst_start, count;
};
struct Task {
  int64_t q_start, q_count, buffer, kv_start, kv_count, causal;
};
struct StepProgram {
  std::vector<Send> sends;
  std::vector<Recv> recvs;
  std::vector<Task> tasks;
};
struct Program {
  int64_t rank = 0, world = 0, q_tokens = 0, kv_tokens = 0, recv_capacity = 0;
  std::vector<StepProgram> steps;
};

Program parse(const int64_t* w, int64_t n, int rank, int world) {
  auto bad = [&](const std::string& why) { fail(TASP_ERR_ARGUMENT, "executor: malformed program: " + why); };
  int64_t i = 0;
  auto next = [&]() {
    if (i >= n) bad("truncated at word " + std::to_string(i));
    return w[i++];
  };
  if (next() != kProgramMagic) bad("bad magic");
  if (next() != kProgramVersion) bad("unsupported version");
  Program p;
  p.rank = next();
  p.world = next();
  int64_t steps = next();
  p.q_tokens = next();
  p.kv_tokens = next();
  p.recv_capacity = next();
  if (p.rank != rank || p.world != world) {
    bad("made for rank " + std::to_string(p.rank) + " of " + std::to_string(p.world) + ", run as rank " +
        std::to_string(rank) + " of " + std::to_string(world));
  }
  if (steps < 1 || p.q_tokens < 1 || p.kv_tokens < 1 || p.recv_capacity < 0) bad("bad header");
  auto buffer_len = [&](int64_t b) {
    if (b == 2) return p.kv_tokens;
    if (b == 0 || b == 1) return p.recv_capacity;
    bad("buffer " + std::to_string(b));
    return int64_t{0};
  };
  auto range_ok = [&](int64_t b, int64_t start, int64_t count) {
    if (start < 0 || count < 1 || start + count > buffer_len(b)) bad("token range out of its buffer");
  };
  auto peer_ok = [&](int64_t peer) {
    if (peer < 0 || peer >= world || peer == rank) bad("peer " + std::to_string(peer));
  };
  for (int64_t s = 0; s < steps; ++s) {
    StepProgram sp;
    int64_t ns = next(), nr = next(), nt = next();
    if (ns < 0 || nr < 0 || nt < 0) bad("negative count");
    for (int64_t j = 0; j < ns; ++j) {
      Send x{next(), next(), next(), next(), next(), next()};
      peer_ok(x.peer);
      range_ok(x.src_buffer, x.src_start, x.count);
      if (x.dst_buffer != s % 2) bad("a send of step " + std::to_string(s) + " must land in buffer " + std::to_string(s % 2));
      sp.sends.push_back(x);
    }
    for (int64_t j = 0; j < nr; ++j) {
      Recv x{next(), next(), next(), next()};
      peer_ok(x.peer);
      range_ok(x.dst_buffer, x.dst_start, x.count);
      sp.recvs.push_back(x);
    }
    for (int64_t j = 0; j < nt; ++j) {
      Task x{next(), next(), next(), next(), next(), next()};
      if (x.q_start < 0 || x.q_count < 1 || x.q_start + x.q_count > p.q_tokens) bad("query range");
      range_ok(x.buffer, x.kv_start, x.kv_count);
      if (x.buffer != 2 && x.buffer != (s + 1) % 2) bad("a task of step " + std::to_string(s) + " reads buffer " + std::to_string(x.buffer));
      sp.tasks.push_back(x);
    }
    p.steps.push_back(std::move(sp));
  }
  if (i != n) bad("trailing words");
  return p;
}

// (B, S, H, D) buffer -> view (B, H, count, D) of tokens [start, start + count).
Tensor token_view(AtenTensorHandle buffer, int64_t start, int64_t count) {
  TensorInfo bi = info(buffer);
  const auto& z = bi.sizes;  // B, S, H, D
  const auto& st = bi.strides;
  return view(buffer, {z[0], z[2], count, z[3]}, {st[0], st[2], st[1], st[3]}, start * st[1]);
}

// Same tokens as a (B, count, H, D) view, for copies between buffers.
Tensor token_rows(AtenTensorHandle buffer, int64_t start, int64_t count) {
  TensorInfo bi = info(buffer);
  const auto& z = bi.sizes;
  return view(buffer, {z[0], count, z[2], z[3]}, bi.strides, start * bi.strides[1]);
}

void copy_tokens(AtenTensorHandle dst, int64_t dst_start, AtenTensorHandle src, int64_t src_start, int64_t count) {
  Tensor d = token_rows(dst, dst_start, count);
  Tensor s = token_rows(src, src_start, count);
  check_torch(torch().copy(d.get(), s.get(), 0), "aoti_torch_copy_");
}

// (B, H, S, D) input -> new dense (B, S, H, D) buffer with the same values.
Tensor to_token_major(AtenTensorHandle t) {
  TensorInfo ti = info(t);
  const auto& z = ti.sizes;
  Tensor out = empty({z[0], z[2], z[1], z[3]}, ti.dtype, ti.device_type, ti.device_index);
  std::vector<int64_t> os = contiguous_strides({z[0], z[2], z[1], z[3]});
  Tensor as_bhsd = view(out.get(), z, {os[0], os[2], os[1], os[3]}, 0);
  check_torch(torch().copy(as_bhsd.get(), t, 0), "aoti_torch_copy_");
  return out;
}

// The communication thread of one rank: runs each step's sends when asked.
class CommWorker {
 public:
  CommWorker(Group& group, int rank, const Program& program, const RankBuffers& own, int64_t bytes_per_token)
      : group_(group), rank_(rank), program_(program), own_(own), bytes_per_token_(bytes_per_token),
        thread_([this] { loop(); }) {}

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
    comm_ms += ms_since(t0);
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

int64_t element_size(int32_t dtype) {
  const TorchApi& api = torch();
  return dtype == api.dtype_float32() ? 4 : 2;
}

}  // namespace

RankResult rank_forward(Group& group, int rank, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                        AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  if (rank < 0 || rank >= group.world_size()) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + " outside a group of " +
                                std::to_string(group.world_size()));
  }
  auto t_start = Clock::now();
  const TorchApi& api = torch();
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

  // fp32 accumulators; a row with lse -inf has seen no key yet.
  Tensor acc_out = empty({batch, heads, p.q_tokens, dim}, api.dtype_float32(), qi.device_type, qi.device_index);
  Tensor acc_lse = empty({batch, heads, p.q_tokens}, api.dtype_float32(), qi.device_type, qi.device_index);
  check_torch(torch_fn<aoti_zero_fn>("aoti_torch_zero_", false)(acc_out.get()), "aoti_torch_zero_");
  {
    // -inf through a one-element host tensor broadcast by copy_ (the shim has no fill).
    Tensor minus_inf = empty({1}, api.dtype_float32(), api.device_type_cpu(), 0);
    void* data = nullptr;
    check_torch(torch_fn<aoti_get_data_ptr_fn>("aoti_torch_get_data_ptr", false)(minus_inf.get(), &data),
                "aoti_torch_get_data_ptr");
    *static_cast<float*>(data) = -std::numeric_limits<float>::infinity();
    Tensor wide = view(minus_inf.get(), {batch, heads, p.q_tokens}, {0, 0, 0}, 0);
    check_torch(torch().copy(acc_lse.get(), wide.get(), 0), "aoti_torch_copy_");
  }

  RankResult result;
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
        Tensor qv = token_view(q_tm.get(), t.q_start, t.q_count);
        Tensor kv_k = token_view(own.k[t.buffer], t.kv_start, t.kv_count);
        Tensor kv_v = token_view(own.v[t.buffer], t.kv_start, t.kv_count);
        AttentionResult part = attention_forward(qv.get(), kv_k.get(), kv_v.get(), t.causal != 0, scale);
        Tensor acc_rows = view(acc_out.get(), {batch, heads, t.q_count, dim},
                               {heads * p.q_tokens * dim, p.q_tokens * dim, dim, 1}, t.q_start * dim);
        Tensor lse_rows = view(acc_lse.get(), {batch, heads, t.q_count}, {heads * p.q_tokens, p.q_tokens, 1}, t.q_start);
        merge_partial(acc_rows.get(), lse_rows.get(), part.out.get(), part.lse.get());
      }
      result.stats.compute_ms += ms_since(t0);
      auto t_wait = Clock::now();
      comm.wait_done(step);
      group.wait_arrivals(rank, step, static_cast<int64_t>(sp.recvs.size()));
      result.stats.wait_ms += ms_since(t_wait);
      group.mark_finished(rank, step);
    }
    result.stats.comm_ms = comm.comm_ms;
    result.stats.wait_ms += comm.wait_ms;
    result.stats.bytes_sent = comm.bytes_sent;
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
  check_torch(torch().copy(result.out.get(), acc_out.get(), 0), "aoti_torch_copy_");
  result.lse = std::move(acc_lse);
  result.stats.total_ms = ms_since(t_start);
  return result;
}

}  // namespace tasp
