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
  Tensor q_staged;
  Accumulators acc;
  Program p;
  TensorInfo qi;
  std::shared_ptr<BufferPool> pool;
  try {
    // Everything up to start() may fail on this rank alone: abort() then fails the peers at once,
    // instead of letting them wait for a rank that will never join.
    p = parse(program, program_len, rank, t.world());
    qi = info(q);
    TensorInfo ki = info(k), vi = info(v);
    check_inputs(p, rank, qi, ki, vi);
    t.check_device(qi);
    const TorchApi& api = torch();
    const bool cuda = qi.device_type == api.device_type_cuda();
    if (!cuda && qi.device_type != api.device_type_cpu()) {
      fail(TASP_ERR_ARGUMENT, "executor: rank " + std::to_string(rank) + ": device " +
                                  device_name(qi.device_type, qi.device_index) + " is not supported (cpu, cuda)");
    }
    const int64_t batch = qi.sizes[0], heads = qi.sizes[1], dim = qi.sizes[3];
    pool = t.buffer_pool();
    if (pool) pool->start_run();

    // Inputs are staged token-major ((B, S, H, D), so that a token range is one view; see
    // executor_common.h) only where their layout does not fit: libtorch's CPU flash kernel reads any
    // strides with a dense last dimension, so on the CPU q is read where it is; k and v are read where
    // they are when the transport also sends from any strides (in-process) or they are token-major
    // already. The key/value buffers are shared with the peers that write into them (RankBuffers).
    StagingOptions staging;
    staging.sends_any_strides = t.sends_any_strides();
    staging.kernel_reads_any_strides = !cuda;
    staging.pool = pool;
    AtenTensorHandle q_read = q;
    TensorInfo q_read_info = qi;
    const bool q_fits = dense_token_major(qi) || (!cuda && (qi.sizes[3] == 1 || qi.strides[3] == 1));
    if (!q_fits) {
      std::vector<int64_t> shd = {batch, p.q_tokens, heads, dim};
      q_staged = pool ? pool->take(shd, qi.dtype, qi.device_type, qi.device_index)
                      : empty(shd, qi.dtype, qi.device_type, qi.device_index);
      std::vector<int64_t> os = contiguous_strides(shd);
      q_read_info.strides = {os[0], os[2], os[1], os[3]};
      q_read_info.storage_offset = 0;
      Tensor as_bhsd = view(q_staged.get(), qi.sizes, q_read_info.strides, 0);
      check_torch(api.copy(as_bhsd.get(), q, 0), "aoti_torch_copy_ (query staging)");
      q_read = q_staged.get();
    }
    auto own = stage_key_values(p, k, ki, v, vi, staging);
    // fp32 runs accumulate straight into their output; 16-bit ones into pooled fp32 rows.
    const bool fp32 = qi.dtype == api.dtype_float32();
    acc = make_accumulators(batch, heads, p.q_tokens, dim, qi, fp32 ? nullptr : pool.get());

    const int64_t q_elems = batch * heads * p.q_tokens * dim;  // q staging and the output
    result.stats.buffer_bytes = (q_fits ? 0 : element_size(qi.dtype) * q_elems) + own->staged_bytes +
                                (fp32 ? 0 : element_size(qi.dtype) * q_elems) + 4 * (q_elems + batch * heads * p.q_tokens);
    RunDescriptor descriptor = describe(RunKind::kForward, p, qi, ki, scale);
    std::shared_ptr<const RankBuffers> buffers = own;  // held here too, for the attention tasks
    const TaskContext context = task_context(q_read, q_read_info, ki.sizes[1], *buffers, acc, scale);
    own.reset();
    t.start(p, descriptor, buffers);
    for (size_t s = 0; s < p.steps.size(); ++s) {
      const int64_t step = static_cast<int64_t>(s);
      t.post(step);
      t.before_compute(step);
      auto t0 = Clock::now();
      for (const Task& task : p.steps[s].tasks) {
        t.check();
        run_task(task, context);
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
  if (qi.dtype == torch().dtype_float32()) {
    result.out = std::move(acc.out);
  } else {
    result.out = empty({qi.sizes[0], qi.sizes[1], p.q_tokens, qi.sizes[3]}, qi.dtype, qi.device_type, qi.device_index);
    check_torch(torch().copy(result.out.get(), acc.out.get(), 0), "aoti_torch_copy_ (accumulator to output)");
    if (pool) pool->give(std::move(acc.out));
  }
  if (pool && q_staged.get() != nullptr) pool->give(std::move(q_staged));
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
