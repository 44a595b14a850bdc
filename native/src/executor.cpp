#include "executor.h"

#include <algorithm>
#include <memory>

#include "executor_common.h"
#include "transport.h"

namespace tasp {

namespace {

// Shapes, dtypes and devices one rank's inputs must have for its program; throws TASP_ERR_ARGUMENT.
void check_inputs(const Program& p, int rank, const TensorInfo& qi, const TensorInfo& ki, const TensorInfo& vi) {
  auto shapes = [&] {
    return "q " + shape_string(qi.sizes) + ", k " + shape_string(ki.sizes) + ", v " + shape_string(vi.sizes);
  };
  if (qi.sizes.size() != 4 || ki.sizes.size() != 4 || ki.sizes != vi.sizes) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + ": " + shapes() +
                                " must be 4-D (batch, heads, tokens, head_dim), k and v alike");
  }
  if (qi.sizes[0] != ki.sizes[0] || qi.sizes[3] != ki.sizes[3] || ki.sizes[1] < 1 || qi.sizes[1] % ki.sizes[1] != 0) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + ": " + shapes() +
                                " need the same batch and head size, and query heads a multiple of key/value heads");
  }
  if (qi.sizes[2] != p.q_tokens || ki.sizes[2] != p.kv_tokens) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + " holds " + std::to_string(p.q_tokens) +
                                " query and " + std::to_string(p.kv_tokens) + " key tokens in this plan, got " +
                                shapes());
  }
  if (qi.dtype != ki.dtype || ki.dtype != vi.dtype) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + ": q, k and v must have one dtype, got " +
                                dtype_name(qi.dtype) + ", " + dtype_name(ki.dtype) + ", " + dtype_name(vi.dtype));
  }
  element_size(ki.dtype);  // throws for unsupported dtypes
  if (qi.device_type != ki.device_type || ki.device_type != vi.device_type || qi.device_index != ki.device_index ||
      ki.device_index != vi.device_index) {
    fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + ": q, k and v must be on one device, got " +
                                device_name(qi.device_type, qi.device_index) + ", " +
                                device_name(ki.device_type, ki.device_index) + ", " +
                                device_name(vi.device_type, vi.device_index));
  }
}

}  // namespace

RankResult run_rank(Transport& t, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                    AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  auto t_start = Clock::now();
  const int rank = t.rank();
  RankResult result;
  Tensor q_tm;
  Accumulators acc;
  Program p;
  TensorInfo qi;
  try {
    // Everything up to start() may fail on this rank alone: abort() then fails the peers at once,
    // instead of letting them wait for a rank that will never join.
    p = parse(program, program_len, rank, t.world());
    qi = info(q);
    TensorInfo ki = info(k), vi = info(v);
    check_inputs(p, rank, qi, ki, vi);
    t.check_device(qi);
    const int64_t batch = qi.sizes[0], heads = qi.sizes[1], dim = qi.sizes[3];

    // Token-major staging: q, the own key/value shard and two receive buffers, (B, S, H, D), so a
    // token range is one view (see executor_common.h). The key/value buffers are shared with the
    // peers that write into them (RankBuffers).
    q_tm = to_token_major(q);
    auto own = stage_key_values(p, k, v);
    const int64_t cap = std::max<int64_t>(p.recv_capacity, 1);
    acc = make_accumulators(batch, heads, p.q_tokens, dim, qi);

    const int64_t q_elems = batch * heads * p.q_tokens * dim;  // q staging and the output
    const int64_t kv_token = batch * own->token_bytes[kOwnBuffer];  // bytes of one token of k or v
    result.stats.buffer_bytes = element_size(qi.dtype) * 2 * q_elems + 2 * kv_token * (p.kv_tokens + 2 * cap) +
                                4 * (q_elems + batch * heads * p.q_tokens);
    RunDescriptor descriptor = describe(RunKind::kForward, p, qi, ki, scale);
    std::shared_ptr<const RankBuffers> buffers = own;  // held here too, for the attention tasks
    const RankBuffers& buf = *buffers;
    t.start(p, descriptor, buffers);
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const int64_t step = static_cast<int64_t>(s);
      t.post(step);
      t.before_compute(step);
      auto t0 = Clock::now();
      for (const Task& task : p.steps[s].tasks) {
        t.check();
        run_task(task, q_tm.get(), buf.k[task.buffer].get(), buf.v[task.buffer].get(), acc, scale);
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
  result.out = empty({qi.sizes[0], qi.sizes[1], p.q_tokens, qi.sizes[3]}, qi.dtype, qi.device_type, qi.device_index);
  check_torch(torch().copy(result.out.get(), acc.out.get(), 0), "aoti_torch_copy_ (accumulator to output)");
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
