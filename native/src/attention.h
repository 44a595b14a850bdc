// Attention on one device through libtorch's fused kernels (flash on CPU; flash or
// memory-efficient on CUDA), with grouped-query attention and an fp32 LSE merge.
#pragma once

#include "merge.h"
#include "torch_api.h"

namespace tasp {

struct AttentionResult {
  Tensor out;
  Tensor lse;
  int backend = 0;
};

struct AttentionGrads {
  Tensor dq;
  Tensor dk;
  Tensor dv;
};

AttentionResult attention_forward(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal,
                                  const double* scale);

AttentionGrads attention_backward(AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v,
                                  AtenTensorHandle out, AtenTensorHandle lse, bool causal, const double* scale);

// What a caller that checked its operands once knows about every later call on views of them.
struct AttentionShape {
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, head_dim = 0;
  int32_t dtype = 0, device_type = 0, device_index = 0;
};

// attention_forward without its checks and metadata queries, for the executor's tasks: the caller
// checked the whole tensors (attention_check) and guarantees layouts the kernel reads as they are
// (CPU: any strides with a dense last dimension; CUDA: kernel_layout_ok). Grouped-query attention:
// the CUDA flash kernel takes it; the other kernels get copies of k and v with as many heads as q
// (the executor avoids that on the CPU by calling once per group, see executor_common.cpp).
AttentionResult attention_forward_unchecked(const AttentionShape& shape, AtenTensorHandle q, AtenTensorHandle k,
                                            AtenTensorHandle v, bool causal, double scale);

// Checks q, k, v as attention_forward does (shapes, dtypes, devices); throws TASP_ERR_ARGUMENT.
void attention_check(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal);

// Whether the fused kernels read a (B, H, S, D) tensor correctly as it is: each batch element dense
// as (H, S, D) or (S, H, D).
bool kernel_layout_ok(const TensorInfo& ti);

// Attention recorded by libtorch's autograd (called through the dispatcher): the output has a
// grad_fn when grad mode is on and an input requires gradients. Equal head counts (expand
// grouped-query keys/values first, recorded too); no dropout. CPU: the flash kernel; CUDA: libtorch's
// scaled_dot_product_attention, which picks flash or memory-efficient.
Tensor attention_forward_recorded(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal,
                                  const double* scale);

// The calling thread's autograd grad mode (per thread in libtorch).
bool grad_mode_enabled();
void set_grad_mode(bool enabled);

// Folds a partial attention result (block_out, block_lse over some keys) into an accumulator
// (acc_out fp32 (B,H,S,D), acc_lse fp32 (B,H,S), both contiguous), in place:
//   lse = logaddexp(acc_lse, block_lse); acc_out = e^(acc_lse-lse) acc_out + e^(block_lse-lse) block_out
// An accumulator row whose lse is -inf holds nothing yet.
void merge_partial(AtenTensorHandle acc_out, AtenTensorHandle acc_lse, AtenTensorHandle block_out,
                   AtenTensorHandle block_lse);

// merge_partial into accumulator rows the caller describes (acc: every field but the block's, whose
// shapes must match); block_out and block_lse are a kernel's results, on the accumulators' device.
void merge_block(MergeArgs acc, AtenTensorHandle block_out, AtenTensorHandle block_lse, bool cuda,
                 int32_t device_index);

// A contiguous copy of t in another dtype (TASP_DTYPE_* from tasp.h).
Tensor cast(AtenTensorHandle t, int dtype);
// t's dtype as a TASP_DTYPE_* code, -1 for others.
int dtype_code(AtenTensorHandle t);

}  // namespace tasp
