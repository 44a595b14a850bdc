#include "executor.h"

#include <algorithm>
#include <memory>

#include "executor_common.h"
#include "transport.h"

namespace tasp {

RankResult run_rank(Transport& t, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                    AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  auto t_start = Clock::now();
  const int rank = t.rank();
  Program p = parse(program, program_len, rank, t.world());
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
  t.check_device(qi);
  const int64_t batch = qi.sizes[0], heads = qi.sizes[1], dim = qi.sizes[3], kv_heads = ki.sizes[1];

  // Token-major staging: q, the own key/value shard and two receive buffers, (B, S, H, D), so a
  // token range is one view (see executor_common.h).
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

  RankResult result;
  const int64_t e = element_size(qi.dtype);
  const int64_t q_elems = batch * heads * p.q_tokens * dim;  // q staging and the output
  const int64_t kv_token = batch * kv_heads * dim;          // one token of k or v
  result.stats.buffer_bytes = e * (2 * q_elems + 2 * kv_token * (p.kv_tokens + 2 * cap)) +
                              4 * (q_elems + batch * heads * p.q_tokens);
  TokenGeometry geometry{batch, kv_heads * dim * e};
  try {
    t.start(p, own, geometry);
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const int64_t step = static_cast<int64_t>(s);
      t.post(step);
      t.before_compute(step);
      auto t0 = Clock::now();
      for (const Task& task : p.steps[s].tasks) {
        t.check();
        run_task(task, q_tm.get(), own.k[task.buffer], own.v[task.buffer], acc, scale);
      }
      double compute = ms_since(t0);
      result.stats.compute_ms += compute;
      result.stats.step_compute_ms.push_back(compute);
      t.after_compute(step);
    }
    t.finish();
    t.report(result.stats);
  } catch (const Error& err) {
    t.abort(err.what(), err.code() == TASP_ERR_GROUP);
    throw;
  } catch (const std::exception& err) {
    t.abort(err.what(), false);
    throw;
  }
  // Output in the input dtype; LSE stays fp32.
  result.out = empty({batch, heads, p.q_tokens, dim}, qi.dtype, qi.device_type, qi.device_index);
  check_torch(torch().copy(result.out.get(), acc.out.get(), 0), "aoti_torch_copy_");
  result.lse = std::move(acc.lse);
  result.stats.total_ms = ms_since(t_start);
  return result;
}

RankResult rank_forward(Group& group, int rank, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                        AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  std::unique_ptr<Transport> t = in_process_transport(group, rank);
  return run_rank(*t, program, program_len, q, k, v, scale);
}

}  // namespace tasp
