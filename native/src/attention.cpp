#include "attention.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>

#include "merge.h"

namespace tasp {
namespace {

struct Problem {
  TensorInfo q, k, v;
  int64_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, head_dim = 0;
  bool cuda = false;
  int64_t group() const { return q_heads / kv_heads; }
};

std::string describe(const Problem& p) {
  std::ostringstream s;
  s << "q " << shape_string(p.q.sizes) << ", k " << shape_string(p.k.sizes) << ", v " << shape_string(p.v.sizes);
  return s.str();
}

[[noreturn]] void bad(const Problem& p, const std::string& what) {
  fail(TASP_ERR_ARGUMENT, "attention: " + what + " [" + describe(p) + "]");
}

Problem check_inputs(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal) {
  const TorchApi& api = torch();
  Problem p;
  p.q = info(q);
  p.k = info(k);
  p.v = info(v);
  if (p.q.sizes.size() != 4 || p.k.sizes.size() != 4 || p.v.sizes.size() != 4) {
    bad(p, "q, k and v must be 4-D (batch, heads, sequence, head_dim)");
  }
  if (p.k.sizes != p.v.sizes) bad(p, "k and v must have the same shape");
  p.batch = p.q.sizes[0];
  p.q_heads = p.q.sizes[1];
  p.q_len = p.q.sizes[2];
  p.head_dim = p.q.sizes[3];
  p.kv_heads = p.k.sizes[1];
  p.kv_len = p.k.sizes[2];
  if (p.k.sizes[0] != p.batch) bad(p, "batch sizes differ");
  if (p.k.sizes[3] != p.head_dim) bad(p, "head dimensions differ");
  if (p.batch == 0 || p.q_heads == 0 || p.kv_heads == 0 || p.head_dim == 0) bad(p, "a dimension is zero");
  if (p.q_len == 0 || p.kv_len == 0) bad(p, "zero-length sequence");
  if (p.q_heads % p.kv_heads != 0) bad(p, "query heads must be a multiple of key/value heads");
  if (causal && p.q_len != p.kv_len) bad(p, "causal attention needs equal query and key lengths");
  if (p.q.dtype != p.k.dtype || p.q.dtype != p.v.dtype) {
    bad(p, "dtypes differ: " + dtype_name(p.q.dtype) + ", " + dtype_name(p.k.dtype) + ", " + dtype_name(p.v.dtype));
  }
  if (p.q.dtype != api.dtype_float32() && p.q.dtype != api.dtype_float16() && p.q.dtype != api.dtype_bfloat16()) {
    bad(p, "dtype " + dtype_name(p.q.dtype) + " is not supported (float32, float16, bfloat16)");
  }
  if (p.q.device_type != p.k.device_type || p.q.device_type != p.v.device_type ||
      p.q.device_index != p.k.device_index || p.q.device_index != p.v.device_index) {
    bad(p, "devices differ: " + device_name(p.q.device_type, p.q.device_index) + ", " +
               device_name(p.k.device_type, p.k.device_index) + ", " +
               device_name(p.v.device_type, p.v.device_index));
  }
  if (p.q.device_type == api.device_type_cuda()) {
    p.cuda = true;
  } else if (p.q.device_type != api.device_type_cpu()) {
    bad(p, "device " + device_name(p.q.device_type, p.q.device_index) + " is not supported (cpu, cuda)");
  }
  return p;
}

void copy_into(AtenTensorHandle dst, AtenTensorHandle src) {
  check_torch(torch().copy(dst, src, 0), "aoti_torch_copy_");
}

// (B, Hkv, S, D) -> (B, Hkv*group, S, D): query head h reads key/value head h / group.
Tensor expand_heads(AtenTensorHandle kv, const TensorInfo& ki, int64_t group) {
  const auto& s = ki.sizes;
  Tensor out = empty({s[0], s[1] * group, s[2], s[3]}, ki.dtype, ki.device_type, ki.device_index);
  std::vector<int64_t> five = {s[0], s[1], group, s[2], s[3]};
  Tensor dst = view(out.get(), five, contiguous_strides(five), 0);
  Tensor src = view(kv, five, {ki.strides[0], ki.strides[1], 0, ki.strides[2], ki.strides[3]}, 0);
  copy_into(dst.get(), src.get());
  return out;
}

aoti_add_tensor_fn add_fn(bool cuda) {
  if (cuda) {
    static const auto cuda_add = torch_fn<aoti_add_tensor_fn>("aoti_torch_cuda_add_Tensor", true);
    return cuda_add;
  }
  static const auto cpu_add = torch_fn<aoti_add_tensor_fn>("aoti_torch_cpu_add_Tensor", false);
  return cpu_add;
}

// The transpose of expand_heads for gradients: sums each run of `group` heads, in fp32.
Tensor reduce_heads(Tensor grad, int64_t group, bool cuda) {
  if (group == 1) return grad;
  const TorchApi& api = torch();
  TensorInfo gi = info(grad.get());
  std::vector<int64_t> sizes = {gi.sizes[0], gi.sizes[1] / group, gi.sizes[2], gi.sizes[3]};
  std::vector<int64_t> strides = {gi.strides[0], gi.strides[1] * group, gi.strides[2], gi.strides[3]};
  auto add = add_fn(cuda);
  Tensor acc = empty(sizes, api.dtype_float32(), gi.device_type, gi.device_index);
  Tensor first = view(grad.get(), sizes, strides, 0);
  copy_into(acc.get(), first.get());
  for (int64_t r = 1; r < group; ++r) {
    Tensor slice = view(grad.get(), sizes, strides, r * gi.strides[1]);
    Tensor sum;
    check_torch(add(acc.get(), slice.get(), 1.0, sum.out()), "aoti_torch_add_Tensor");
    acc = std::move(sum);
  }
  Tensor result = empty(sizes, gi.dtype, gi.device_type, gi.device_index);
  copy_into(result.get(), acc.get());
  return result;
}

// An operand handed to a kernel: the caller's tensor as it is, or a copy this code owns.
class Operand {
 public:
  explicit Operand(AtenTensorHandle borrowed) : handle_(borrowed) {}
  explicit Operand(Tensor owned) : owned_(std::move(owned)), handle_(owned_.get()) {}
  AtenTensorHandle get() const { return handle_; }

 private:
  Tensor owned_;
  AtenTensorHandle handle_;
};

}  // namespace

// Whether a kernel can read t as it is: each batch element dense as (H, S, D), or as (S, H, D)
// seen through a transpose (the layout the kernels return, and the executor's buffers); the batch
// stride may be anything. libtorch 2.7's CPU flash kernel gives wrong results for other strides
// (for example a (B, H, S, D) tensor sliced along the sequence), so those are copied once.
bool kernel_layout_ok(const TensorInfo& ti) {
  const auto& z = ti.sizes;
  const auto& st = ti.strides;
  // Each batch element dense as (H, S, D) or (S, H, D); the batch stride may be anything.
  auto same = [&](int d, int64_t want) { return z[d] == 1 || st[d] == want; };
  if (!same(3, 1)) return false;
  bool hsd = same(2, z[3]) && same(1, z[2] * z[3]);
  bool shd = same(1, z[3]) && same(2, z[1] * z[3]);
  return hsd || shd;
}

namespace {

// An operand in a layout the kernels read correctly: the tensor itself, or one dense copy.
Operand kernel_operand(AtenTensorHandle t, const TensorInfo& ti) {
  if (kernel_layout_ok(ti)) return Operand(t);
  Tensor c = empty(ti.sizes, ti.dtype, ti.device_type, ti.device_index);
  copy_into(c.get(), t);
  return Operand(std::move(c));
}

// Keys or values for a kernel that needs as many heads as the query has.
Operand heads_for(AtenTensorHandle kv, const TensorInfo& ki, int64_t group) {
  return group > 1 ? Operand(expand_heads(kv, ki, group)) : kernel_operand(kv, ki);
}

bool cuda_flash_fits(const Problem& p) {
  const TorchApi& api = torch();
  bool half = p.q.dtype == api.dtype_float16() || p.q.dtype == api.dtype_bfloat16();
  return half && p.head_dim % 8 == 0 && p.head_dim <= 256;
}

constexpr int64_t kEfficientLseAlign = 32;  // the memory-efficient kernel pads LSE rows to 32

Tensor undefined_tensor() {
  Tensor t;
  check_torch(torch().new_uninitialized_tensor(t.out()), "aoti_torch_new_uninitialized_tensor");
  return t;
}

// The kernels' entries, each looked up once (on first use: a libtorch without one still serves the
// others) and kept; the executor calls them for every task.
AttentionResult cpu_flash_forward(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal, double s) {
  static const auto fn =
      torch_fn<aoti_cpu_flash_fwd_fn>("aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu", false);
  AttentionResult r;
  check_torch(fn(q, k, v, 0.0, causal ? 1 : 0, nullptr, &s, r.out.out(), r.lse.out()),
              "aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu");
  r.backend = TASP_BACKEND_CPU_FLASH;
  return r;
}

AttentionResult cuda_flash_forward(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal, double s) {
  static const auto fn =
      torch_fn<aoti_cuda_flash_fwd_fn>("aoti_torch_cuda__scaled_dot_product_flash_attention", true);
  AttentionResult r;
  Tensor cum_q, cum_k, seed, offset, debug;
  int64_t max_q = 0, max_k = 0;
  check_torch(fn(q, k, v, 0.0, causal ? 1 : 0, 0, &s, r.out.out(), r.lse.out(), cum_q.out(), cum_k.out(), &max_q,
                 &max_k, seed.out(), offset.out(), debug.out()),
              "aoti_torch_cuda__scaled_dot_product_flash_attention");
  r.backend = TASP_BACKEND_CUDA_FLASH;
  return r;
}

// Equal head counts; the LSE comes back padded to 32 rows and is cut to q_len.
AttentionResult cuda_efficient_forward(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal,
                                       double s, int64_t q_len) {
  static const auto fn =
      torch_fn<aoti_cuda_efficient_fwd_fn>("aoti_torch_cuda__scaled_dot_product_efficient_attention", true);
  AttentionResult r;
  Tensor padded_lse, seed, offset;
  check_torch(fn(q, k, v, nullptr, 1, 0.0, causal ? 1 : 0, &s, r.out.out(), padded_lse.out(), seed.out(),
                 offset.out()),
              "aoti_torch_cuda__scaled_dot_product_efficient_attention");
  TensorInfo li = info(padded_lse.get());
  r.lse = view(padded_lse.get(), {li.sizes[0], li.sizes[1], q_len}, {li.strides[0], li.strides[1], li.strides[2]}, 0);
  r.backend = TASP_BACKEND_CUDA_EFFICIENT;
  return r;
}

}  // namespace

void attention_check(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal) {
  check_inputs(q, k, v, causal);
}

AttentionResult attention_forward(AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, bool causal,
                                  const double* scale) {
  Problem p = check_inputs(q, k, v, causal);
  double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  Operand qd = kernel_operand(q, p.q);
  AttentionResult r;
  if (!p.cuda) {
    // libtorch's CPU flash kernel needs equal head counts: expand k/v for grouped-query attention.
    Operand kx = heads_for(k, p.k, p.group());
    Operand vx = heads_for(v, p.v, p.group());
    return cpu_flash_forward(qd.get(), kx.get(), vx.get(), causal, s);
  }
  if (cuda_flash_fits(p)) {
    // The CUDA flash kernel takes grouped-query attention as it is.
    Operand kd = kernel_operand(k, p.k);
    Operand vd = kernel_operand(v, p.v);
    return cuda_flash_forward(qd.get(), kd.get(), vd.get(), causal, s);
  }
  // fp32, or a head dimension flash does not take: the memory-efficient kernel (equal heads).
  Operand kx = heads_for(k, p.k, p.group());
  Operand vx = heads_for(v, p.v, p.group());
  return cuda_efficient_forward(qd.get(), kx.get(), vx.get(), causal, s, p.q_len);
}

AttentionResult attention_forward_unchecked(const AttentionShape& shape, AtenTensorHandle q, AtenTensorHandle k,
                                            AtenTensorHandle v, bool causal, double scale) {
  const TorchApi& api = torch();
  const int64_t group = shape.q_heads / shape.kv_heads;
  if (shape.device_type != api.device_type_cuda()) {
    if (group == 1) return cpu_flash_forward(q, k, v, causal, scale);
    Operand kx(expand_heads(k, info(k), group));
    Operand vx(expand_heads(v, info(v), group));
    return cpu_flash_forward(q, kx.get(), vx.get(), causal, scale);
  }
  bool half = shape.dtype == api.dtype_float16() || shape.dtype == api.dtype_bfloat16();
  if (half && shape.head_dim % 8 == 0 && shape.head_dim <= 256) return cuda_flash_forward(q, k, v, causal, scale);
  if (group == 1) return cuda_efficient_forward(q, k, v, causal, scale, shape.q_len);
  Operand kx(expand_heads(k, info(k), group));
  Operand vx(expand_heads(v, info(v), group));
  return cuda_efficient_forward(q, kx.get(), vx.get(), causal, scale, shape.q_len);
}

AttentionGrads attention_backward(AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v,
                                  AtenTensorHandle out, AtenTensorHandle lse, bool causal, const double* scale) {
  Problem p = check_inputs(q, k, v, causal);
  const TorchApi& api = torch();
  TensorInfo oi = info(out);
  TensorInfo di = info(dout);
  TensorInfo li = info(lse);
  if (oi.sizes != p.q.sizes || di.sizes != p.q.sizes) {
    bad(p, "out " + shape_string(oi.sizes) + " and dout " + shape_string(di.sizes) + " must have q's shape");
  }
  if (oi.dtype != p.q.dtype || di.dtype != p.q.dtype) bad(p, "out and dout must have q's dtype");
  std::vector<int64_t> lse_shape = {p.batch, p.q_heads, p.q_len};
  if (li.sizes != lse_shape) bad(p, "lse " + shape_string(li.sizes) + " must be " + shape_string(lse_shape));
  if (li.dtype != api.dtype_float32()) bad(p, "lse must be float32, got " + dtype_name(li.dtype));
  double s = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  Operand qd = kernel_operand(q, p.q);
  Operand od = kernel_operand(out, oi);
  Operand dd = kernel_operand(dout, di);
  AttentionGrads g;
  if (!p.cuda) {
    Operand kx = heads_for(k, p.k, p.group());
    Operand vx = heads_for(v, p.v, p.group());
    static const auto fn = torch_fn<aoti_cpu_flash_bwd_fn>(
        "aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu_backward", false);
    Tensor dk, dv;
    check_torch(fn(dd.get(), qd.get(), kx.get(), vx.get(), od.get(), lse, 0.0, causal ? 1 : 0, nullptr, &s,
                   g.dq.out(), dk.out(), dv.out()),
                "aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu_backward");
    g.dk = reduce_heads(std::move(dk), p.group(), false);
    g.dv = reduce_heads(std::move(dv), p.group(), false);
    return g;
  }
  if (cuda_flash_fits(p)) {
    Operand kd = kernel_operand(k, p.k);
    Operand vd = kernel_operand(v, p.v);
    static const auto fn =
        torch_fn<aoti_cuda_flash_bwd_fn>("aoti_torch_cuda__scaled_dot_product_flash_attention_backward", true);
    // Dense (not variable-length) batches and no dropout: the sequence offsets and the RNG state
    // are undefined tensors, as the forward returns them.
    Tensor cum_q = undefined_tensor(), cum_k = undefined_tensor();
    Tensor seed = undefined_tensor(), offset = undefined_tensor();
    check_torch(fn(dd.get(), qd.get(), kd.get(), vd.get(), od.get(), lse, cum_q.get(), cum_k.get(), p.q_len, p.kv_len,
                   0.0, causal ? 1 : 0, seed.get(), offset.get(), &s, g.dq.out(), g.dk.out(), g.dv.out()),
                "aoti_torch_cuda__scaled_dot_product_flash_attention_backward");
    return g;
  }
  Operand kx = heads_for(k, p.k, p.group());
  Operand vx = heads_for(v, p.v, p.group());
  // The memory-efficient backward reads LSE rows padded to a multiple of 32, as its forward made them.
  int64_t padded = (p.q_len + kEfficientLseAlign - 1) / kEfficientLseAlign * kEfficientLseAlign;
  Tensor lse_padded = empty({p.batch, p.q_heads, padded}, api.dtype_float32(), li.device_type, li.device_index);
  zero_(lse_padded.get());
  Tensor head = view(lse_padded.get(), lse_shape, {p.q_heads * padded, padded, 1}, 0);
  copy_into(head.get(), lse);
  static const auto fn = torch_fn<aoti_cuda_efficient_bwd_fn>(
      "aoti_torch_cuda__scaled_dot_product_efficient_attention_backward", true);
  Tensor bias = undefined_tensor(), seed = undefined_tensor(), offset = undefined_tensor();
  const int32_t grad_mask[4] = {1, 1, 1, 0};
  Tensor dk, dv, dbias;
  check_torch(fn(dd.get(), qd.get(), kx.get(), vx.get(), bias.get(), od.get(), lse_padded.get(), seed.get(),
                 offset.get(), 0.0, grad_mask, 4, causal ? 1 : 0, &s, g.dq.out(), dk.out(), dv.out(), dbias.out()),
              "aoti_torch_cuda__scaled_dot_product_efficient_attention_backward");
  g.dk = reduce_heads(std::move(dk), p.group(), true);
  g.dv = reduce_heads(std::move(dv), p.group(), true);
  return g;
}

namespace {
// libtorch's dtype number for a TASP_DTYPE_* code, or -1.
int32_t torch_dtype(int code) {
  const TorchApi& api = torch();
  switch (code) {
    case TASP_DTYPE_FLOAT32:
      return api.dtype_float32();
    case TASP_DTYPE_FLOAT16:
      return api.dtype_float16();
    case TASP_DTYPE_BFLOAT16:
      return api.dtype_bfloat16();
    case TASP_DTYPE_FLOAT64:
      return torch_fn<aoti_int_getter_fn>("aoti_torch_dtype_float64", false)();
    default:
      return -1;
  }
}
}  // namespace

int dtype_code(AtenTensorHandle t) {
  int32_t d = info(t).dtype;
  for (int code : {TASP_DTYPE_FLOAT32, TASP_DTYPE_FLOAT16, TASP_DTYPE_BFLOAT16, TASP_DTYPE_FLOAT64}) {
    if (torch_dtype(code) == d) return code;
  }
  return -1;
}

Tensor cast(AtenTensorHandle t, int dtype) {
  int32_t target = torch_dtype(dtype);
  if (target < 0) fail(TASP_ERR_ARGUMENT, "cast: unknown dtype code " + std::to_string(dtype));
  TensorInfo ti = info(t);
  Tensor out = empty(ti.sizes, target, ti.device_type, ti.device_index);
  copy_into(out.get(), t);
  return out;
}

namespace {

MergeDtype merge_dtype(int32_t dtype, const std::function<std::string()>& where) {
  const TorchApi& api = torch();
  if (dtype == api.dtype_float32()) return MergeDtype::kFloat32;
  if (dtype == api.dtype_bfloat16()) return MergeDtype::kBFloat16;
  if (dtype == api.dtype_float16()) return MergeDtype::kFloat16;
  fail(TASP_ERR_ARGUMENT, "merge: block_out dtype " + dtype_name(dtype) + " is not supported" + where());
}

void run_merge(const MergeArgs& m, bool cuda, int32_t device_index) {
  if (cuda) {
    merge_cuda(m, device_index);
  } else {
    merge_cpu(m);
  }
}

}  // namespace

void merge_partial(AtenTensorHandle acc_out, AtenTensorHandle acc_lse, AtenTensorHandle block_out,
                   AtenTensorHandle block_lse) {
  const TorchApi& api = torch();
  TensorInfo ao = info(acc_out), al = info(acc_lse), bo = info(block_out), bl = info(block_lse);
  auto where = [&]() {
    return " [acc_out " + shape_string(ao.sizes) + ", acc_lse " + shape_string(al.sizes) + ", block_out " +
           shape_string(bo.sizes) + ", block_lse " + shape_string(bl.sizes) + "]";
  };
  if (ao.sizes.size() != 4 || ao.sizes != bo.sizes) fail(TASP_ERR_ARGUMENT, "merge: outputs must be equal 4-D" + where());
  std::vector<int64_t> rows = {ao.sizes[0], ao.sizes[1], ao.sizes[2]};
  if (al.sizes != rows || bl.sizes != rows) fail(TASP_ERR_ARGUMENT, "merge: lse must be (B, H, S)" + where());
  if (ao.dtype != api.dtype_float32() || al.dtype != api.dtype_float32() || bl.dtype != api.dtype_float32()) {
    fail(TASP_ERR_ARGUMENT, "merge: accumulators and block lse must be float32" + where());
  }
  if (ao.strides[3] != 1 && ao.sizes[3] != 1) {
    fail(TASP_ERR_ARGUMENT, "merge: the accumulator's last dimension must be dense" + where());
  }
  bool same_device = ao.device_type == al.device_type && ao.device_type == bo.device_type &&
                     ao.device_type == bl.device_type && ao.device_index == bo.device_index &&
                     ao.device_index == al.device_index && ao.device_index == bl.device_index;
  if (!same_device) fail(TASP_ERR_ARGUMENT, "merge: tensors are on different devices" + where());
  MergeArgs m;
  m.batch = ao.sizes[0];
  m.heads = ao.sizes[1];
  m.rows = ao.sizes[2];
  m.dim = ao.sizes[3];
  for (int i = 0; i < 4; ++i) m.block_out_strides[i] = bo.strides[i];
  for (int i = 0; i < 3; ++i) m.block_lse_strides[i] = bl.strides[i];
  for (int i = 0; i < 4; ++i) m.acc_out_strides[i] = ao.strides[i];
  for (int i = 0; i < 3; ++i) m.acc_lse_strides[i] = al.strides[i];
  m.acc_out = static_cast<float*>(data_ptr(acc_out));
  m.acc_lse = static_cast<float*>(data_ptr(acc_lse));
  m.block_out = data_ptr(block_out);
  m.block_lse = static_cast<const float*>(data_ptr(block_lse));
  m.block_dtype = merge_dtype(bo.dtype, where);
  run_merge(m, ao.device_type == api.device_type_cuda(), ao.device_index);
}

void merge_block(MergeArgs acc, AtenTensorHandle block_out, AtenTensorHandle block_lse, bool cuda,
                 int32_t device_index) {
  TensorInfo bo = info(block_out), bl = info(block_lse);
  auto where = [&]() {
    return " [block_out " + shape_string(bo.sizes) + ", block_lse " + shape_string(bl.sizes) + " into " +
           std::to_string(acc.rows) + " rows of " + std::to_string(acc.batch) + " x " + std::to_string(acc.heads) +
           " heads]";
  };
  std::vector<int64_t> out_shape = {acc.batch, acc.heads, acc.rows, acc.dim};
  std::vector<int64_t> lse_shape = {acc.batch, acc.heads, acc.rows};
  if (bo.sizes != out_shape || bl.sizes != lse_shape) fail(TASP_ERR_ARGUMENT, "merge: block shapes differ" + where());
  if (bl.dtype != torch().dtype_float32()) fail(TASP_ERR_ARGUMENT, "merge: block lse must be float32" + where());
  for (int i = 0; i < 4; ++i) acc.block_out_strides[i] = bo.strides[i];
  for (int i = 0; i < 3; ++i) acc.block_lse_strides[i] = bl.strides[i];
  acc.block_out = data_ptr(block_out);
  acc.block_lse = static_cast<const float*>(data_ptr(block_lse));
  acc.block_dtype = merge_dtype(bo.dtype, where);
  run_merge(acc, cuda, device_index);
}

}  // namespace tasp
