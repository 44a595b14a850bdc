// Single-device attention recorded by libtorch's autograd: the fused kernel called through the
// dispatcher (aoti_torch_call_dispatcher) rather than below it, so a DJL GradientCollector sees the
// output's grad_fn and differentiates it like any other op, without the S x S score matrix.
#include <cmath>
#include <cstring>
#include <vector>

#include "attention.h"

namespace tasp {
namespace {

StableIValue tensor_arg(AtenTensorHandle t) {
  // The dispatcher takes ownership of every tensor handle on the stack: pass a second handle.
  auto fresh = torch_fn<aoti_new_tensor_handle_fn>("aoti_torch_new_tensor_handle", false);
  AtenTensorHandle copy = nullptr;
  check_torch(fresh(t, &copy), "aoti_torch_new_tensor_handle");
  return static_cast<StableIValue>(reinterpret_cast<uintptr_t>(copy));
}

StableIValue double_arg(double d) {
  StableIValue bits = 0;
  std::memcpy(&bits, &d, sizeof d);
  return bits;
}

// The output handles in stack[0..n) become owned Tensors.
Tensor owned_result(const std::vector<StableIValue>& stack, size_t i) {
  return Tensor(reinterpret_cast<AtenTensorHandle>(static_cast<uintptr_t>(stack[i])));
}

// Calls op with exactly `args` (the schema's full argument count, pinned to libtorch 2.7.1).
std::vector<StableIValue> call(const char* op, std::vector<StableIValue> args) {
  auto dispatch = torch_fn<aoti_call_dispatcher_fn>("aoti_torch_call_dispatcher", false);
  std::string what = std::string("aoti_torch_call_dispatcher(") + op + ")";
  check_torch(dispatch(op, "", args.data()), what.c_str());
  return args;
}

// A kernel-safe layout (see kernel_layout_ok in attention.cpp), made through the dispatcher so that
// the copy is recorded too: aten::contiguous(Tensor self, *, MemoryFormat memory_format).
Tensor recorded_operand(AtenTensorHandle t) {
  if (kernel_layout_ok(info(t))) {
    AtenTensorHandle copy = reinterpret_cast<AtenTensorHandle>(static_cast<uintptr_t>(tensor_arg(t)));
    return Tensor(copy);
  }
  std::vector<StableIValue> r = call("aten::contiguous", {tensor_arg(t), 0 /* torch.contiguous_format */});
  return owned_result(r, 0);
}

StableIValue take(Tensor& t) { return static_cast<StableIValue>(reinterpret_cast<uintptr_t>(t.release())); }

}  // namespace

Tensor attention_forward_recorded(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal,
                                  const double* scale) {
  const TorchApi& api = torch();
  TensorInfo qi = info(q), ki = info(k);
  if (qi.sizes.size() != 4 || ki.sizes.size() != 4 || qi.sizes[1] != ki.sizes[1]) {
    fail(TASP_ERR_ARGUMENT, "recorded attention: q " + shape_string(qi.sizes) + " and k " + shape_string(ki.sizes) +
                                " must be 4-D with equal head counts (expand grouped-query heads first)");
  }
  attention_check(q, k, v, causal);
  Tensor qd = recorded_operand(q), kd = recorded_operand(k), vd = recorded_operand(v);
  // An optional double with a value: a heap slot that libtorch deletes after reading it.
  StableIValue scale_arg = scale ? static_cast<StableIValue>(reinterpret_cast<uintptr_t>(new StableIValue(double_arg(*scale)))) : 0;
  if (qi.device_type == api.device_type_cpu()) {
    // aten::_scaled_dot_product_flash_attention_for_cpu(Tensor query, Tensor key, Tensor value,
    //   float dropout_p=0.0, bool is_causal=False, *, Tensor? attn_mask=None, float? scale=None)
    //   -> (Tensor output, Tensor logsumexp)
    std::vector<StableIValue> r = call("aten::_scaled_dot_product_flash_attention_for_cpu",
                                       {take(qd), take(kd), take(vd), double_arg(0.0), causal ? 1u : 0u, 0, scale_arg});
    Tensor lse = owned_result(r, 1);
    return owned_result(r, 0);
  }
  // aten::scaled_dot_product_attention(Tensor query, Tensor key, Tensor value, Tensor? attn_mask=None,
  //   float dropout_p=0.0, bool is_causal=False, *, float? scale=None, bool enable_gqa=False) -> Tensor
  std::vector<StableIValue> r = call("aten::scaled_dot_product_attention",
                                     {take(qd), take(kd), take(vd), 0, double_arg(0.0), causal ? 1u : 0u, scale_arg, 0});
  return owned_result(r, 0);
}

bool grad_mode_enabled() {
  return torch_fn<aoti_grad_mode_is_enabled_fn>("aoti_torch_grad_mode_is_enabled", false)();
}

void set_grad_mode(bool enabled) {
  torch_fn<aoti_grad_mode_set_enabled_fn>("aoti_torch_grad_mode_set_enabled", false)(enabled);
}

}  // namespace tasp
