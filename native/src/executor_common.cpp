#include "executor_common.h"

#include <limits>
#include <string>

#include "executor.h"
#include "merge.h"

namespace tasp {

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

int64_t element_size(int32_t dtype) {
  const TorchApi& api = torch();
  return dtype == api.dtype_float32() ? 4 : 2;
}


Accumulators make_accumulators(int64_t batch, int64_t heads, int64_t tokens, int64_t dim, const TensorInfo& like) {
  const TorchApi& api = torch();
  Accumulators acc;
  acc.batch = batch;
  acc.heads = heads;
  acc.tokens = tokens;
  acc.dim = dim;
  acc.out = empty({batch, heads, tokens, dim}, api.dtype_float32(), like.device_type, like.device_index);
  acc.lse = empty({batch, heads, tokens}, api.dtype_float32(), like.device_type, like.device_index);
  check_torch(torch_fn<aoti_zero_fn>("aoti_torch_zero_", false)(acc.out.get()), "aoti_torch_zero_");
  if (like.device_type == api.device_type_cuda()) {
    // A kernel on the current stream: a host tensor copied in would synchronize every call.
    void* lse = nullptr;
    check_torch(torch_fn<aoti_get_data_ptr_fn>("aoti_torch_get_data_ptr", false)(acc.lse.get(), &lse),
                "aoti_torch_get_data_ptr");
    fill_cuda(static_cast<float*>(lse), batch * heads * tokens, -std::numeric_limits<float>::infinity(),
              like.device_index);
    return acc;
  }
  // -inf through a one-element host tensor broadcast by copy_ (the shim has no fill).
  Tensor minus_inf = empty({1}, api.dtype_float32(), api.device_type_cpu(), 0);
  void* data = nullptr;
  check_torch(torch_fn<aoti_get_data_ptr_fn>("aoti_torch_get_data_ptr", false)(minus_inf.get(), &data),
              "aoti_torch_get_data_ptr");
  *static_cast<float*>(data) = -std::numeric_limits<float>::infinity();
  Tensor wide = view(minus_inf.get(), {batch, heads, tokens}, {0, 0, 0}, 0);
  check_torch(torch().copy(acc.lse.get(), wide.get(), 0), "aoti_torch_copy_");
  return acc;
}

void run_task(const Task& t, AtenTensorHandle q_tm, AtenTensorHandle k_buf, AtenTensorHandle v_buf, Accumulators& acc,
              const double* scale) {
  Tensor qv = token_view(q_tm, t.q_start, t.q_count);
  Tensor kv_k = token_view(k_buf, t.kv_start, t.kv_count);
  Tensor kv_v = token_view(v_buf, t.kv_start, t.kv_count);
  AttentionResult part = attention_forward(qv.get(), kv_k.get(), kv_v.get(), t.causal != 0, scale);
  const int64_t h = acc.heads, s = acc.tokens, d = acc.dim;
  Tensor acc_rows = view(acc.out.get(), {acc.batch, h, t.q_count, d}, {h * s * d, s * d, d, 1}, t.q_start * d);
  Tensor lse_rows = view(acc.lse.get(), {acc.batch, h, t.q_count}, {h * s, s, 1}, t.q_start);
  merge_partial(acc_rows.get(), lse_rows.get(), part.out.get(), part.lse.get());
}

}  // namespace tasp
