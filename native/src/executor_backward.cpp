#include "executor_backward.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "attention.h"
#include "executor_common.h"
#include "transport.h"

namespace tasp {

GradientExchange::GradientExchange(int world_size, int64_t timeout_ms)
    : world_(world_size), timeout_ms_(timeout_ms), dk_(static_cast<size_t>(std::max(world_size, 0)), nullptr),
      dv_(static_cast<size_t>(std::max(world_size, 0)), nullptr) {
  if (world_size < 1) fail_arg("exchange: world size must be at least 1, got " + std::to_string(world_size));
  if (timeout_ms < 1) fail_arg("exchange: timeout must be at least 1 ms, got " + std::to_string(timeout_ms));
  for (int r = 0; r < world_size; ++r) owner_locks_.push_back(std::make_unique<std::mutex>());
}

void GradientExchange::fail_arg(const std::string& why) { tasp::fail(TASP_ERR_ARGUMENT, why); }

void GradientExchange::wait_count(Group& group, int64_t& counter, const char* what) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms_);
  while (counter < world_ && !failed_) {
    // Polls the group too: a peer that failed in the transport fails the group, not this object.
    cv_.wait_for(lock, std::chrono::milliseconds(20));
    lock.unlock();
    try {
      group.check();
    } catch (const Error& e) {
      lock.lock();
      failed_ = true;
      if (failure_.empty()) failure_ = e.what();
      break;
    }
    lock.lock();
    if (counter < world_ && !failed_ && std::chrono::steady_clock::now() > deadline) {
      failed_ = true;
      failure_ = std::string("backward: ") + what + ": only " + std::to_string(counter) + " of " +
                 std::to_string(world_) + " ranks within " + std::to_string(timeout_ms_) + " ms";
      lock.unlock();
      group.fail(failure_);
      lock.lock();
    }
  }
  cv_.notify_all();
  if (failed_) tasp::fail(TASP_ERR_GROUP, failure_);
}

void GradientExchange::publish(Group& group, int rank, AtenTensorHandle dk_acc, AtenTensorHandle dv_acc) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    dk_[static_cast<size_t>(rank)] = dk_acc;
    dv_[static_cast<size_t>(rank)] = dv_acc;
    ++published_;
    cv_.notify_all();
  }
  wait_count(group, published_, "waiting for every rank's gradient accumulators");
}

void GradientExchange::add_into(int owner, int64_t owner_start, AtenTensorHandle dk_part, AtenTensorHandle dv_part) {
  if (owner < 0 || owner >= world_) tasp::fail(TASP_ERR_ARGUMENT, "backward: no owner rank " + std::to_string(owner));
  std::lock_guard<std::mutex> lock(*owner_locks_[static_cast<size_t>(owner)]);
  add_tokens(dk_[static_cast<size_t>(owner)], owner_start, dk_part);
  add_tokens(dv_[static_cast<size_t>(owner)], owner_start, dv_part);
}

void GradientExchange::finish(Group& group, int) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++finished_;
    cv_.notify_all();
  }
  wait_count(group, finished_, "waiting for every rank's last gradient addition");
}

void GradientExchange::fail(const std::string& why) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!failed_) {
    failed_ = true;
    failure_ = why;
  }
  cv_.notify_all();
}

namespace {

struct ReturnRange {
  int64_t buffer, start, count, owner, owner_start;
};

std::vector<std::vector<ReturnRange>> parse_return_map(const int64_t* w, int64_t n, const Program& p) {
  auto bad = [&](const std::string& why) { fail(TASP_ERR_ARGUMENT, "backward: malformed return map: " + why); };
  int64_t i = 0;
  auto next = [&]() {
    if (i >= n) bad("truncated at word " + std::to_string(i));
    return w[i++];
  };
  if (w == nullptr) bad("null");
  if (next() != kReturnMapMagic) bad("bad magic");
  if (next() != kReturnMapVersion) bad("unsupported version");
  if (next() != static_cast<int64_t>(p.steps.size())) bad("step count differs from the program's");
  std::vector<std::vector<ReturnRange>> map(p.steps.size());
  for (size_t s = 0; s < p.steps.size(); ++s) {
    int64_t count = next();
    if (count < 0) bad("negative count");
    for (int64_t j = 0; j < count; ++j) {
      ReturnRange r{next(), next(), next(), next(), next()};
      if ((r.buffer != 0 && r.buffer != 1) || r.start < 0 || r.count < 1 || r.start + r.count > p.recv_capacity) {
        bad("received range out of its buffer");
      }
      if (r.owner < 0 || r.owner >= p.world || r.owner == p.rank || r.owner_start < 0) bad("owner");
      map[s].push_back(r);
    }
  }
  if (i != n) bad("trailing words");
  return map;
}

// Rows [start, start + count) of a (B, S, H, D) fp32 accumulator += part (B, H, count, D), in fp32.
void add_rows_bhsd(AtenTensorHandle acc_tm, int64_t start, AtenTensorHandle part) {
  Tensor rows = token_view(acc_tm, start, info(part).sizes[2]);
  TensorInfo ri = info(rows.get());
  bool cuda = ri.device_type == torch().device_type_cuda();
  auto add = torch_fn<aoti_add_tensor_fn>(cuda ? "aoti_torch_cuda_add_Tensor" : "aoti_torch_cpu_add_Tensor", cuda);
  Tensor sum;
  check_torch(add(rows.get(), part, 1.0, sum.out()), "aoti_torch_add_Tensor");
  check_torch(torch().copy(rows.get(), sum.get(), 0), "aoti_torch_copy_");
}

Tensor zeros_like_shape(const std::vector<int64_t>& sizes, const TensorInfo& like) {
  Tensor t = empty(sizes, torch().dtype_float32(), like.device_type, like.device_index);
  check_torch(torch_fn<aoti_zero_fn>("aoti_torch_zero_", false)(t.get()), "aoti_torch_zero_");
  return t;
}

// (B, S, H, D) token-major fp32 accumulator -> new (B, H, S, D) tensor in `dtype`.
Tensor from_token_major(AtenTensorHandle acc_tm, int32_t dtype) {
  TensorInfo ai = info(acc_tm);
  const auto& z = ai.sizes;  // B, S, H, D
  Tensor out = empty({z[0], z[2], z[1], z[3]}, dtype, ai.device_type, ai.device_index);
  Tensor src = token_view(acc_tm, 0, z[1]);
  check_torch(torch().copy(out.get(), src.get(), 0), "aoti_torch_copy_");
  return out;
}

}  // namespace

// acc (B, S, H, D) rows [start, + count) += part (B, H, count, D); exposed for the exchange.
void add_tokens(AtenTensorHandle acc_tm, int64_t start, AtenTensorHandle part) { add_rows_bhsd(acc_tm, start, part); }

RankGradients rank_backward(Group& group, GradientExchange& exchange, int rank, const int64_t* program,
                            int64_t program_len, const int64_t* return_map, int64_t return_map_len,
                            AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v,
                            AtenTensorHandle out, AtenTensorHandle lse, const double* scale) {
  auto t_start = Clock::now();
  if (exchange.world_size() != group.world_size()) {
    fail(TASP_ERR_ARGUMENT, "backward: the exchange has " + std::to_string(exchange.world_size()) +
                                " ranks, the group " + std::to_string(group.world_size()));
  }
  std::unique_ptr<Transport> t = in_process_transport(group, rank);
  RankGradients result;
  Program p;
  TensorInfo qi, ki;
  Tensor dq_acc, dk_acc, dv_acc;
  try {
    // Everything before start() may fail on this rank alone: abort() then fails the peers at once.
    p = parse(program, program_len, rank, t->world());
    std::vector<std::vector<ReturnRange>> returns = parse_return_map(return_map, return_map_len, p);
    qi = info(q);
    ki = info(k);
    TensorInfo vi = info(v), oi = info(out), di = info(dout), li = info(lse);
    if (qi.sizes.size() != 4 || ki.sizes.size() != 4 || ki.sizes != vi.sizes || oi.sizes != qi.sizes ||
        di.sizes != qi.sizes) {
      fail(TASP_ERR_ARGUMENT, "backward: q " + shape_string(qi.sizes) + ", k " + shape_string(ki.sizes) + ", v " +
                                  shape_string(vi.sizes) + ", out " + shape_string(oi.sizes) + ", dout " +
                                  shape_string(di.sizes) + ": q, out and dout must be equal 4-D, k and v too");
    }
    if (qi.sizes[2] != p.q_tokens || ki.sizes[2] != p.kv_tokens) {
      fail(TASP_ERR_ARGUMENT, "backward: rank " + std::to_string(rank) + " holds " + std::to_string(p.q_tokens) +
                                  " tokens in this plan, got q " + shape_string(qi.sizes) + ", k " +
                                  shape_string(ki.sizes));
    }
    const int64_t batch = qi.sizes[0], heads = qi.sizes[1], dim = qi.sizes[3], kv_heads = ki.sizes[1];
    std::vector<int64_t> lse_shape = {batch, heads, p.q_tokens};
    if (li.sizes != lse_shape || li.dtype != torch().dtype_float32()) {
      fail(TASP_ERR_ARGUMENT, "backward: lse must be float32 " + shape_string(lse_shape) + ", got " +
                                  shape_string(li.sizes) + " " + dtype_name(li.dtype));
    }
    t->check_device(qi);

    // Token-major staging, as in the forward: q, out, dout, the key/value buffers (shared with the
    // peers that write into them).
    Tensor q_tm = to_token_major(q), o_tm = to_token_major(out), d_tm = to_token_major(dout);
    Tensor lse_c = empty(lse_shape, li.dtype, li.device_type, li.device_index);
    check_torch(torch().copy(lse_c.get(), lse, 0), "aoti_torch_copy_");
    std::shared_ptr<const RankBuffers> buffers = stage_key_values(p, k, v);
    const RankBuffers& buf = *buffers;
    const int64_t cap = std::max<int64_t>(p.recv_capacity, 1);
    // fp32 accumulators, token-major: dq (own queries), dk/dv (own keys; the exchange adds into
    // them), and one step's dk/dv of received keys before they go to their owners.
    dq_acc = zeros_like_shape({batch, p.q_tokens, heads, dim}, qi);
    dk_acc = zeros_like_shape({batch, p.kv_tokens, kv_heads, dim}, ki);
    dv_acc = zeros_like_shape({batch, p.kv_tokens, kv_heads, dim}, ki);
    Tensor dk_step = zeros_like_shape({batch, cap, kv_heads, dim}, ki);
    Tensor dv_step = zeros_like_shape({batch, cap, kv_heads, dim}, ki);

    const int64_t e = element_size(qi.dtype);
    const int64_t q_elems = batch * heads * p.q_tokens * dim;
    const int64_t kv_token = batch * kv_heads * dim;
    result.stats.buffer_bytes = e * (4 * q_elems + 2 * kv_token * (p.kv_tokens + 2 * cap)) +
                                4 * (q_elems + batch * heads * p.q_tokens + 2 * kv_token * (p.kv_tokens + cap));
    RunDescriptor descriptor = describe(RunKind::kBackward, p, qi, ki, scale);
    exchange.publish(group, rank, dk_acc.get(), dv_acc.get());
    t->start(p, descriptor, buffers);
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const int64_t step = static_cast<int64_t>(s);
      t->post(step);
      t->before_compute(step);
      auto t0 = Clock::now();
      bool received = false;
      for (const Task& task : p.steps[s].tasks) {
        t->check();
        Tensor qv = token_view(q_tm.get(), task.q_start, task.q_count);
        Tensor ov = token_view(o_tm.get(), task.q_start, task.q_count);
        Tensor gv = token_view(d_tm.get(), task.q_start, task.q_count);
        Tensor lv = view(lse_c.get(), {batch, heads, task.q_count}, {heads * p.q_tokens, p.q_tokens, 1}, task.q_start);
        Tensor kv_k = token_view(buf.k[task.buffer].get(), task.kv_start, task.kv_count);
        Tensor kv_v = token_view(buf.v[task.buffer].get(), task.kv_start, task.kv_count);
        AttentionGrads g = attention_backward(gv.get(), qv.get(), kv_k.get(), kv_v.get(), ov.get(), lv.get(),
                                              task.causal != 0, scale);
        add_rows_bhsd(dq_acc.get(), task.q_start, g.dq.get());
        if (task.buffer == 2) {
          exchange.add_into_own(rank, task.kv_start, g.dk.get(), g.dv.get());
        } else {
          add_rows_bhsd(dk_step.get(), task.kv_start, g.dk.get());
          add_rows_bhsd(dv_step.get(), task.kv_start, g.dv.get());
          received = true;
        }
      }
      // What this step computed on received keys goes to the keys' owners; the step buffer is then
      // cleared for the next step.
      if (received) {
        for (const ReturnRange& r : returns[s]) {
          Tensor pk = token_view(dk_step.get(), r.start, r.count);
          Tensor pv = token_view(dv_step.get(), r.start, r.count);
          exchange.add_into(static_cast<int>(r.owner), r.owner_start, pk.get(), pv.get());
        }
        check_torch(torch_fn<aoti_zero_fn>("aoti_torch_zero_", false)(dk_step.get()), "aoti_torch_zero_");
        check_torch(torch_fn<aoti_zero_fn>("aoti_torch_zero_", false)(dv_step.get()), "aoti_torch_zero_");
      }
      double compute = ms_since(t0);
      result.stats.compute_ms += compute;
      result.stats.step_compute_ms.push_back(compute);
      t->after_compute(step);
    }
    t->finish();
    t->report(result.stats);
    exchange.finish(group, rank);
  } catch (const Error& err) {
    exchange.fail(err.what());
    t->abort(err.what(), err.code() == TASP_ERR_GROUP);
    throw;
  } catch (const std::exception& err) {
    exchange.fail(err.what());
    t->abort(err.what(), false);
    throw;
  }
  result.dq = from_token_major(dq_acc.get(), qi.dtype);
  result.dk = from_token_major(dk_acc.get(), ki.dtype);
  result.dv = from_token_major(dv_acc.get(), ki.dtype);
  result.stats.total_ms = ms_since(t_start);
  return result;
}

}  // namespace tasp
