// Attention on one device through libtorch's fused kernels (flash on CPU; flash or
// memory-efficient on CUDA), with grouped-query attention and an fp32 LSE merge.
#pragma once

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

// A contiguous copy of t in another dtype (TASP_DTYPE_* from tasp.h).
Tensor cast(AtenTensorHandle t, int dtype);
// t's dtype as a TASP_DTYPE_* code, -1 for others.
int dtype_code(AtenTensorHandle t);

}  // namespace tasp
