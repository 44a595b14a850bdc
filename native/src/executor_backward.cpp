#include "executor_backward.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "attention.h"
#include "executor_common.h"
#include "transport.h"

namespace tasp {

namespace {

// What comes back to this rank in one backward step b: tokens [dst_start, + count) of its
// return-receive buffer 5 + b % 2 add into its own key gradients at `start` (kReturnToKeys) or into
// its return buffer 3 + b % 2 at `start`, which it sends on in step b + 1 (kReturnToForward).
constexpr int64_t kReturnToKeys = 0, kReturnToForward = 1;
struct ReturnIn {
  int64_t dst_start, count, kind, start;
};

struct Returns {
  int64_t capacity = 0;                    // tokens of each return-receive buffer
  std::vector<std::vector<ReturnIn>> in;   // per backward step
};

// Parses the return map and appends its transfers to the backward program `p` (the forward's steps
// plus one); throws TASP_ERR_ARGUMENT naming what is wrong.
Returns add_returns(const int64_t* w, int64_t n, Program& p) {
  auto bad = [&](const std::string& why) { fail(TASP_ERR_ARGUMENT, "backward: malformed return map: " + why); };
  int64_t i = 0;
  auto next = [&]() {
    if (i >= n) bad("truncated at word " + std::to_string(i));
    return w[i++];
  };
  if (w == nullptr) bad("null");
  if (next() != kReturnMapMagic) bad("bad magic");
  if (next() != kReturnMapVersion) bad("unsupported version (this library reads version " +
                                       std::to_string(kReturnMapVersion) + ")");
  const int64_t forward_steps = static_cast<int64_t>(p.steps.size()) - 1;
  if (next() != forward_steps) bad("step count differs from the program's");
  Returns r;
  r.capacity = next();
  if (r.capacity < 0) bad("negative return capacity");
  r.in.resize(p.steps.size());
  auto peer_ok = [&](int64_t peer) {
    if (peer < 0 || peer >= p.world || peer == p.rank) bad("peer " + std::to_string(peer));
  };
  for (int64_t b = 0; b <= forward_steps; ++b) {
    StepProgram& sp = p.steps[static_cast<size_t>(b)];
    const int64_t ns = next(), nr = next();
    if (ns < 0 || nr < 0) bad("negative count");
    // Gradients of what step b - 1 computed: nothing before step 1 computed on received keys.
    if (b < 2 && ns > 0) bad("returns in step " + std::to_string(b) + ", before any were computed");
    for (int64_t j = 0; j < ns; ++j) {
      int64_t owner = next(), src_start = next(), count = next(), dst_start = next();
      peer_ok(owner);
      if (src_start < 0 || count < 1 || src_start + count > p.recv_capacity || dst_start < 0) {
        bad("returned tokens [" + std::to_string(src_start) + ", +" + std::to_string(count) +
            ") out of the return buffer of " + std::to_string(p.recv_capacity) + " tokens");
      }
      sp.sends.push_back(Send{owner, kReturnSendBuffer + (b - 1) % 2, src_start, count, kReturnRecvBuffer + b % 2,
                              dst_start});
    }
    for (int64_t j = 0; j < nr; ++j) {
      int64_t peer = next(), dst_start = next(), count = next(), kind = next(), start = next();
      peer_ok(peer);
      if (kind != kReturnToKeys && (kind != kReturnToForward || b >= forward_steps)) {
        bad("return kind " + std::to_string(kind) + " in step " + std::to_string(b));
      }
      const int64_t limit = kind == kReturnToKeys ? p.kv_tokens : p.recv_capacity;
      if (dst_start < 0 || count < 1 || dst_start + count > r.capacity || start < 0 || start + count > limit) {
        bad("a return of tokens [" + std::to_string(dst_start) + ", +" + std::to_string(count) + ") into tokens " +
            std::to_string(start) + " of " + (kind == kReturnToKeys ? "its own keys" : "its return buffer") +
            " does not fit (capacity " + std::to_string(r.capacity) + ", target " + std::to_string(limit) +
            " tokens)");
      }
      sp.recvs.push_back(Recv{peer, kReturnRecvBuffer + b % 2, dst_start, count});
      r.in[static_cast<size_t>(b)].push_back(ReturnIn{dst_start, count, kind, start});
    }
  }
  if (i != n) bad("trailing words");
  return r;
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

void zero(AtenTensorHandle t) { check_torch(torch_fn<aoti_zero_fn>("aoti_torch_zero_", false)(t), "aoti_torch_zero_"); }

Tensor zeros(const std::vector<int64_t>& sizes, const TensorInfo& like) {
  Tensor t = empty(sizes, torch().dtype_float32(), like.device_type, like.device_index);
  zero(t.get());
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

// What arrived back in step `step` (its return-receive buffer) adds into the own key gradients or
// into the return buffer that step + 1 sends on.
void add_returned(const Returns& returns, int64_t step, const RankBuffers& buf, AtenTensorHandle dk_acc,
                  AtenTensorHandle dv_acc) {
  const int64_t b = kReturnRecvBuffer + step % 2, forward = kReturnSendBuffer + step % 2;
  for (const ReturnIn& r : returns.in[static_cast<size_t>(step)]) {
    Tensor pk = token_view(buf.k[b].get(), r.dst_start, r.count);
    Tensor pv = token_view(buf.v[b].get(), r.dst_start, r.count);
    const bool keys = r.kind == kReturnToKeys;
    add_rows_bhsd(keys ? dk_acc : buf.k[forward].get(), r.start, pk.get());
    add_rows_bhsd(keys ? dv_acc : buf.v[forward].get(), r.start, pv.get());
  }
}

}  // namespace

RankGradients run_backward(Transport& t, const int64_t* program, int64_t program_len, const int64_t* return_map,
                           int64_t return_map_len, AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k,
                           AtenTensorHandle v, AtenTensorHandle out, AtenTensorHandle lse, const double* scale) {
  auto t_start = Clock::now();
  const int rank = t.rank();
  RankGradients result;
  Program p;
  TensorInfo qi, ki;
  Tensor dq_acc, dk_acc, dv_acc;
  try {
    // Everything before start() may fail on this rank alone: abort() then fails the peers at once.
    p = parse(program, program_len, rank, t.world());
    const int64_t forward_steps = static_cast<int64_t>(p.steps.size());
    p.steps.emplace_back();  // the last returns
    Returns returns = add_returns(return_map, return_map_len, p);
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
    t.check_device(qi);

    // Token-major staging, as in the forward: q, out, dout, the key/value buffers; then the fp32
    // return buffers (all shared with the peers that write into them).
    Tensor q_tm = to_token_major(q), o_tm = to_token_major(out), d_tm = to_token_major(dout);
    Tensor lse_c = empty(lse_shape, li.dtype, li.device_type, li.device_index);
    check_torch(torch().copy(lse_c.get(), lse, 0), "aoti_torch_copy_");
    std::shared_ptr<RankBuffers> staged = stage_key_values(p, k, v);
    const int64_t send_cap = std::max<int64_t>(p.recv_capacity, 1), recv_cap = std::max<int64_t>(returns.capacity, 1);
    for (int parity = 0; parity < 2; ++parity) {
      const int64_t s = kReturnSendBuffer + parity, r = kReturnRecvBuffer + parity;
      staged->k[s] = zeros({batch, send_cap, kv_heads, dim}, ki);
      staged->v[s] = zeros({batch, send_cap, kv_heads, dim}, ki);
      staged->k[r] = zeros({batch, recv_cap, kv_heads, dim}, ki);
      staged->v[r] = zeros({batch, recv_cap, kv_heads, dim}, ki);
      staged->capacity_tokens[s] = p.recv_capacity;
      staged->capacity_tokens[r] = returns.capacity;
      staged->token_bytes[s] = staged->token_bytes[r] = kv_heads * dim * 4;
    }
    std::shared_ptr<const RankBuffers> buffers = staged;
    const RankBuffers& buf = *buffers;
    // fp32 accumulators, token-major: dq (own queries), dk/dv (own keys).
    dq_acc = zeros({batch, p.q_tokens, heads, dim}, qi);
    dk_acc = zeros({batch, p.kv_tokens, kv_heads, dim}, ki);
    dv_acc = zeros({batch, p.kv_tokens, kv_heads, dim}, ki);

    const int64_t e = element_size(qi.dtype);
    const int64_t q_elems = batch * heads * p.q_tokens * dim;
    const int64_t kv_token = batch * kv_heads * dim;
    result.stats.buffer_bytes = e * (4 * q_elems + 2 * kv_token * (p.kv_tokens + 2 * send_cap)) +
                                4 * (q_elems + batch * heads * p.q_tokens +
                                     2 * kv_token * (p.kv_tokens + 2 * send_cap + 2 * recv_cap));
    RunDescriptor descriptor = describe(RunKind::kBackward, p, qi, ki, scale);
    t.start(p, descriptor, buffers);
    for (int64_t step = 0; step <= forward_steps; ++step) {
      // What step - 1 received is there (keys and values for the attention, returns for the adds).
      t.before_compute(step);
      if (step >= 1) {
        // What step - 1 received back, before this step sends on what it forwards (a small fp32 add).
        add_returned(returns, step - 1, buf, dk_acc.get(), dv_acc.get());
        t.returns_added(step);
      }
      t.post(step);
      auto t0 = Clock::now();
      const std::vector<Task>& tasks = p.steps[static_cast<size_t>(step)].tasks;
      // This step's gradients of received keys: the return buffer of its parity, sent in step + 1
      // (its previous contents went out in step - 1, which has completed).
      const int64_t ret = kReturnSendBuffer + step % 2;
      if (p.recv_capacity > 0) {
        zero(buf.k[ret].get());
        zero(buf.v[ret].get());
      }
      for (const Task& task : tasks) {
        t.check();
        Tensor qv = token_view(q_tm.get(), task.q_start, task.q_count);
        Tensor ov = token_view(o_tm.get(), task.q_start, task.q_count);
        Tensor gv = token_view(d_tm.get(), task.q_start, task.q_count);
        Tensor lv = view(lse_c.get(), {batch, heads, task.q_count}, {heads * p.q_tokens, p.q_tokens, 1}, task.q_start);
        Tensor kv_k = token_view(buf.k[task.buffer].get(), task.kv_start, task.kv_count);
        Tensor kv_v = token_view(buf.v[task.buffer].get(), task.kv_start, task.kv_count);
        AttentionGrads g = attention_backward(gv.get(), qv.get(), kv_k.get(), kv_v.get(), ov.get(), lv.get(),
                                              task.causal != 0, scale);
        add_rows_bhsd(dq_acc.get(), task.q_start, g.dq.get());
        const bool own = task.buffer == kOwnBuffer;
        add_rows_bhsd(own ? dk_acc.get() : buf.k[ret].get(), task.kv_start, g.dk.get());
        add_rows_bhsd(own ? dv_acc.get() : buf.v[ret].get(), task.kv_start, g.dv.get());
      }
      double compute = ms_since(t0);
      result.stats.compute_ms += compute;
      result.stats.step_compute_ms.push_back(compute);
      t.after_compute(step);
    }
    t.finish();
    add_returned(returns, forward_steps, buf, dk_acc.get(), dv_acc.get());
    t.report(result.stats);
  } catch (const Error& err) {
    t.abort(err.what(), err.code() == TASP_ERR_GROUP);
    throw;
  } catch (const std::exception& err) {
    t.abort(err.what(), false);
    throw;
  }
  result.dq = from_token_major(dq_acc.get(), qi.dtype);
  result.dk = from_token_major(dk_acc.get(), ki.dtype);
  result.dv = from_token_major(dv_acc.get(), ki.dtype);
  result.stats.total_ms = ms_since(t_start);
  return result;
}

RankGradients rank_backward(Group& group, int rank, const int64_t* program, int64_t program_len,
                            const int64_t* return_map, int64_t return_map_len, AtenTensorHandle dout,
                            AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, AtenTensorHandle out,
                            AtenTensorHandle lse, const double* scale) {
  std::unique_ptr<Transport> t = in_process_transport(group, rank);
  return run_backward(*t, program, program_len, return_map, return_map_len, dout, q, k, v, out, lse, scale);
}

}  // namespace tasp
