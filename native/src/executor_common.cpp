#include "executor_common.h"

#include <algorithm>
#include <cmath>

#include <cstring>
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
      // The step's own receive buffer is being overwritten by peers while this step runs.
      if (x.src_buffer == s % 2) {
        bad("a send of step " + std::to_string(s) + " reads buffer " + std::to_string(s % 2) +
            ", which that step receives into");
      }
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
      if (x.causal != 0 && x.q_count != x.kv_count) bad("a causal task needs as many query as key tokens");
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

int64_t dtype_tasp_code(int32_t dtype) {
  const TorchApi& api = torch();
  if (dtype == api.dtype_float32()) return TASP_DTYPE_FLOAT32;
  if (dtype == api.dtype_float16()) return TASP_DTYPE_FLOAT16;
  if (dtype == api.dtype_bfloat16()) return TASP_DTYPE_BFLOAT16;
  return -1;
}

int64_t element_size(int32_t dtype) {
  switch (dtype_tasp_code(dtype)) {
    case TASP_DTYPE_FLOAT32:
      return 4;
    case TASP_DTYPE_FLOAT16:
    case TASP_DTYPE_BFLOAT16:
      return 2;
    default:
      fail(TASP_ERR_ARGUMENT, "executor: keys and values must be float32, float16 or bfloat16, got " + dtype_name(dtype));
  }
}

// ---- Run descriptors ----------------------------------------------------------------------------

namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull;
constexpr uint64_t kFnvPrime = 1099511628211ull;

uint64_t mix(uint64_t h, int64_t word) {
  uint64_t w = static_cast<uint64_t>(word);
  for (int i = 0; i < 8; ++i) {
    h ^= (w >> (8 * i)) & 0xffu;
    h *= kFnvPrime;
  }
  return h;
}

const char* dtype_label(int64_t code) {
  switch (code) {
    case TASP_DTYPE_FLOAT32:
      return "float32";
    case TASP_DTYPE_FLOAT16:
      return "float16";
    case TASP_DTYPE_BFLOAT16:
      return "bfloat16";
    default:
      return "unsupported";
  }
}

// The fixed fields, in one place for comparing, encoding and naming.
struct Field {
  const char* name;
  int64_t RunDescriptor::*member;
};
const Field kFields[] = {
    {"run kind", &RunDescriptor::kind},
    {"world size", &RunDescriptor::world},
    {"mask (causal)", &RunDescriptor::causal},
    {"explicit scale", &RunDescriptor::has_scale},
    {"batch size", &RunDescriptor::batch},
    {"query heads", &RunDescriptor::q_heads},
    {"key/value heads", &RunDescriptor::kv_heads},
    {"head size", &RunDescriptor::head_dim},
    {"query dtype", &RunDescriptor::q_dtype},
    {"key/value dtype", &RunDescriptor::kv_dtype},
    {"device type", &RunDescriptor::device_type},
    {"device index", &RunDescriptor::device_index},
    {"plan steps", &RunDescriptor::steps},
    {"query tokens", &RunDescriptor::q_tokens},
    {"key tokens", &RunDescriptor::kv_tokens},
    {"receive capacity", &RunDescriptor::recv_capacity},
};
constexpr int kFieldCount = sizeof(kFields) / sizeof(kFields[0]);
constexpr int kComparedFields = 13;  // kind .. steps; the token counts differ per rank
constexpr int64_t kErrorWords = 32;  // 256 bytes of reason
constexpr int64_t kFixedWords = kFieldCount + 3 /* scale, program hash, error flag */ + kErrorWords;

std::string value_text(const Field& f, int64_t v) {
  if (f.member == &RunDescriptor::q_dtype || f.member == &RunDescriptor::kv_dtype) return dtype_label(v);
  if (f.member == &RunDescriptor::kind) return run_kind_name(v);
  if (f.member == &RunDescriptor::causal) return v ? "causal" : "full";
  if (f.member == &RunDescriptor::device_type) return device_name(static_cast<int32_t>(v), 0).substr(0, 4);
  return std::to_string(v);
}

std::string tokens_text(int rank, const RunDescriptor& d) {
  return "rank " + std::to_string(rank) + " holds " + std::to_string(d.q_tokens) + " query / " +
         std::to_string(d.kv_tokens) + " key tokens, receive capacity " + std::to_string(d.recv_capacity) +
         ", mask " + (d.causal ? "causal" : "full");
}

[[noreturn]] void disagree(const std::string& what) {
  fail(TASP_ERR_ARGUMENT, "ranks disagree, nothing was sent: " + what +
                              " (every rank must run the same plan with the same sequence length, mask, scale, "
                              "shapes, dtype and device)");
}

void check_pair(int a, int b, const std::vector<const RunDescriptor*>& all) {
  const RunDescriptor& da = *all[static_cast<size_t>(a)];
  const RunDescriptor& db = *all[static_cast<size_t>(b)];
  if (da.sends_to[static_cast<size_t>(b)] != db.recvs_from[static_cast<size_t>(a)]) {
    disagree("what rank " + std::to_string(a) + " sends to rank " + std::to_string(b) + " is not what rank " +
             std::to_string(b) + " expects (" + tokens_text(a, da) + "; " + tokens_text(b, db) + ")");
  }
}

}  // namespace

// ---- Buffers --------------------------------------------------------------------------------

Tensor BufferPool::take(const std::vector<int64_t>& sizes, int32_t dtype, int32_t device_type, int32_t device_index) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < free_.size(); ++i) {
      Entry& e = free_[i];
      if (e.sizes == sizes && e.dtype == dtype && e.device_type == device_type && e.device_index == device_index) {
        Tensor t = std::move(e.tensor);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
        return t;
      }
    }
  }
  return empty(sizes, dtype, device_type, device_index);
}

void BufferPool::give(Tensor t) {
  if (t.get() == nullptr) return;
  TensorInfo ti = info(t.get());
  int64_t n = 1;
  for (int64_t z : ti.sizes) n *= z;
  const TorchApi& api = torch();
  const int64_t bytes = n * (ti.dtype == api.dtype_float32() ? 4 : 2);
  std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(Entry{ti.sizes, ti.dtype, ti.device_type, ti.device_index, std::move(t), bytes, run_});
}

void BufferPool::start_run() {
  std::vector<Entry> dropped;  // freed outside the lock
  std::lock_guard<std::mutex> lock(mutex_);
  ++run_;
  for (size_t i = free_.size(); i-- > 0;) {
    if (free_[i].last_run < run_ - 2) {
      dropped.push_back(std::move(free_[i]));
      free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
}

int64_t BufferPool::pooled_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  int64_t n = 0;
  for (const Entry& e : free_) n += e.bytes;
  return n;
}

RankBuffers::~RankBuffers() {
  if (!pool) return;
  for (int b = 0; b < kBufferCount; ++b) {
    if (!pooled[b]) continue;
    try {
      pool->give(std::move(k[b]));
      pool->give(std::move(v[b]));
    } catch (...) {
      // Not kept, so freed: correct, only slower next time.
    }
  }
}

bool dense_token_major(const TensorInfo& ti) {
  const auto& z = ti.sizes;  // B, H, S, D
  const auto& st = ti.strides;
  auto ok = [&](int d, int64_t want) { return z[static_cast<size_t>(d)] == 1 || st[static_cast<size_t>(d)] == want; };
  return ok(3, 1) && ok(1, z[3]) && ok(2, z[1] * z[3]) && ok(0, z[2] * z[1] * z[3]);
}

bool dense_ignoring_unit_dims(const TensorInfo& ti) {
  std::vector<int64_t> want = contiguous_strides(ti.sizes);
  for (size_t d = 0; d < ti.sizes.size(); ++d) {
    if (ti.sizes[d] != 1 && ti.strides[d] != want[d]) return false;
  }
  return true;
}

namespace {

bool last_dim_dense(const TensorInfo& ti) { return ti.sizes[3] == 1 || ti.strides[3] == 1; }

// t (B, H, S, D) as buffer 2: a (B, S, H, D) view of the caller's memory, or a token-major copy.
Tensor own_buffer(AtenTensorHandle t, const TensorInfo& ti, bool zero_copy, BufferPool* pool, int64_t* strides) {
  const auto& z = ti.sizes;
  std::vector<int64_t> shd = {z[0], z[2], z[1], z[3]};
  if (zero_copy) {
    std::vector<int64_t> st = {ti.strides[0], ti.strides[2], ti.strides[1], ti.strides[3]};
    for (int i = 0; i < 4; ++i) strides[i] = st[static_cast<size_t>(i)];
    return view(t, shd, st, 0);
  }
  Tensor out = pool ? pool->take(shd, ti.dtype, ti.device_type, ti.device_index)
                    : empty(shd, ti.dtype, ti.device_type, ti.device_index);
  std::vector<int64_t> os = contiguous_strides(shd);
  for (int i = 0; i < 4; ++i) strides[i] = os[static_cast<size_t>(i)];
  Tensor as_bhsd = view(out.get(), z, {os[0], os[2], os[1], os[3]}, 0);
  check_torch(torch().copy(as_bhsd.get(), t, 0), "aoti_torch_copy_");
  return out;
}

}  // namespace

std::shared_ptr<RankBuffers> stage_key_values(const Program& p, AtenTensorHandle k, AtenTensorHandle v) {
  return stage_key_values(p, k, info(k), v, info(v), StagingOptions{});
}

std::shared_ptr<RankBuffers> stage_key_values(const Program& p, AtenTensorHandle k, const TensorInfo& ki,
                                              AtenTensorHandle v, const TensorInfo& vi, const StagingOptions& o) {
  const int64_t batch = ki.sizes[0], kv_heads = ki.sizes[1], dim = ki.sizes[3];
  const int64_t elem = element_size(ki.dtype);
  auto own = std::make_shared<RankBuffers>();
  own->pool = o.pool;
  BufferPool* pool = o.pool.get();
  const int64_t cap = std::max<int64_t>(p.recv_capacity, 1);
  // Zero copy when k and v share one layout that both the transport and the kernel read.
  bool same_layout = ki.strides == vi.strides;
  bool zero_copy = same_layout && ((dense_token_major(ki) && dense_token_major(vi)) ||
                                   (o.sends_any_strides && o.kernel_reads_any_strides && last_dim_dense(ki)));
  int64_t v_strides[4];
  own->k[2] = own_buffer(k, ki, zero_copy, pool, own->strides[2]);
  own->v[2] = own_buffer(v, vi, zero_copy, pool, v_strides);
  own->pooled[2] = !zero_copy && pool != nullptr;
  std::vector<int64_t> recv = {batch, cap, kv_heads, dim};
  std::vector<int64_t> rs = contiguous_strides(recv);
  for (int b = 0; b < 2; ++b) {
    own->k[b] = pool ? pool->take(recv, ki.dtype, ki.device_type, ki.device_index)
                     : empty(recv, ki.dtype, ki.device_type, ki.device_index);
    own->v[b] = pool ? pool->take(recv, ki.dtype, ki.device_type, ki.device_index)
                     : empty(recv, ki.dtype, ki.device_type, ki.device_index);
    own->capacity_tokens[b] = p.recv_capacity;
    own->pooled[b] = pool != nullptr;
    for (int i = 0; i < 4; ++i) own->strides[b][i] = rs[static_cast<size_t>(i)];
  }
  own->capacity_tokens[2] = p.kv_tokens;
  own->batch = batch;
  for (int b = 0; b < 3; ++b) own->token_bytes[b] = kv_heads * dim * elem;  // transfers move keys and values
  own->staged_bytes = 2 * batch * own->token_bytes[kOwnBuffer] * (2 * cap + (zero_copy ? 0 : p.kv_tokens));
  return own;
}

const char* run_kind_name(int64_t kind) {
  switch (kind) {
    case static_cast<int64_t>(RunKind::kForward):
      return "forward";
    case static_cast<int64_t>(RunKind::kBackward):
      return "backward";
    case static_cast<int64_t>(RunKind::kAllToAll):
      return "all-to-all";
    default:
      return "unknown";
  }
}

RunDescriptor describe(RunKind kind, const Program& p, const TensorInfo& q, const TensorInfo& kv, const double* scale) {
  RunDescriptor d;
  d.kind = static_cast<int64_t>(kind);
  d.world = p.world;
  d.steps = static_cast<int64_t>(p.steps.size());
  d.batch = q.sizes[0];
  d.q_heads = q.sizes[1];
  d.head_dim = q.sizes[3];
  d.kv_heads = kv.sizes[1];
  d.q_dtype = dtype_tasp_code(q.dtype);
  d.kv_dtype = dtype_tasp_code(kv.dtype);
  d.device_type = q.device_type;
  d.device_index = q.device_index;
  d.has_scale = scale != nullptr ? 1 : 0;
  d.scale = scale != nullptr ? *scale : 0.0;
  d.q_tokens = p.q_tokens;
  d.kv_tokens = p.kv_tokens;
  d.recv_capacity = p.recv_capacity;
  d.sends_to.assign(static_cast<size_t>(p.world), kFnvOffset);
  d.recvs_from.assign(static_cast<size_t>(p.world), kFnvOffset);
  uint64_t h = kFnvOffset;
  for (int64_t w : {p.rank, p.world, p.q_tokens, p.kv_tokens, p.recv_capacity}) h = mix(h, w);
  for (size_t s = 0; s < p.steps.size(); ++s) {
    const StepProgram& sp = p.steps[s];
    const int64_t step = static_cast<int64_t>(s);
    for (const Send& x : sp.sends) {
      uint64_t& e = d.sends_to[static_cast<size_t>(x.peer)];
      for (int64_t w : {step, x.dst_buffer, x.dst_start, x.count}) e = mix(e, w);
      for (int64_t w : {x.peer, x.src_buffer, x.src_start, x.count, x.dst_buffer, x.dst_start}) h = mix(h, w);
    }
    for (const Recv& x : sp.recvs) {
      uint64_t& e = d.recvs_from[static_cast<size_t>(x.peer)];
      for (int64_t w : {step, x.dst_buffer, x.dst_start, x.count}) e = mix(e, w);
      for (int64_t w : {x.peer, x.dst_buffer, x.dst_start, x.count}) h = mix(h, w);
    }
    for (const Task& x : sp.tasks) {
      if (x.causal != 0) d.causal = 1;
      for (int64_t w : {x.q_start, x.q_count, x.buffer, x.kv_start, x.kv_count, x.causal}) h = mix(h, w);
    }
  }
  d.program_hash = h;
  return d;
}

RunDescriptor describe_error(RunKind kind, int world, const std::string& error) {
  RunDescriptor d;
  d.kind = static_cast<int64_t>(kind);
  d.world = world;
  d.sends_to.assign(static_cast<size_t>(world), 0);
  d.recvs_from.assign(static_cast<size_t>(world), 0);
  d.error = error.empty() ? "failed" : error;
  return d;
}

void check_agreement(int me, const std::vector<const RunDescriptor*>& all, bool all_pairs, bool same_device) {
  const int n = static_cast<int>(all.size());
  for (int r = 0; r < n; ++r) {
    if (!all[static_cast<size_t>(r)]->error.empty()) {
      fail(TASP_ERR_ARGUMENT, "rank " + std::to_string(r) + " cannot run: " + all[static_cast<size_t>(r)]->error);
    }
  }
  // The reference is rank 0, unless ranks 1 and 2 agree with each other and not with it: then rank 0
  // is the odd one and is named.
  auto same = [&](int a, int b, int fields) {
    for (int i = 0; i < fields; ++i) {
      if (!same_device && kFields[i].member == &RunDescriptor::device_index) continue;
      if (all[static_cast<size_t>(a)]->*kFields[i].member != all[static_cast<size_t>(b)]->*kFields[i].member) {
        return false;
      }
    }
    return all[static_cast<size_t>(a)]->scale == all[static_cast<size_t>(b)]->scale;
  };
  int ref = 0;
  if (n >= 3 && !same(0, 1, kComparedFields) && !same(0, 2, kComparedFields) && same(1, 2, kComparedFields)) ref = 1;
  const RunDescriptor& dr = *all[static_cast<size_t>(ref)];
  for (int r = 0; r < n; ++r) {
    const RunDescriptor& d = *all[static_cast<size_t>(r)];
    for (int i = 0; i < kComparedFields; ++i) {
      const Field& f = kFields[i];
      if (!same_device && f.member == &RunDescriptor::device_index) continue;
      if (d.*f.member != dr.*f.member) {
        disagree("rank " + std::to_string(r) + " has " + f.name + " " + value_text(f, d.*f.member) + ", rank " +
                 std::to_string(ref) + " has " + value_text(f, dr.*f.member));
      }
    }
    if (d.scale != dr.scale) {
      disagree("rank " + std::to_string(r) + " has scale " + std::to_string(d.scale) + ", rank " +
               std::to_string(ref) + " has " + std::to_string(dr.scale));
    }
  }
  for (int a = 0; a < n; ++a) {
    if (!all_pairs && a != me) continue;
    for (int b = 0; b < n; ++b) {
      if (a == b) continue;
      check_pair(a, b, all);
      check_pair(b, a, all);
    }
  }
}

int64_t descriptor_words(int world) { return kFixedWords + 2 * static_cast<int64_t>(world); }

std::vector<int64_t> encode_descriptor(const RunDescriptor& d, int world) {
  std::vector<int64_t> w(static_cast<size_t>(descriptor_words(world)), 0);
  size_t i = 0;
  for (const Field& f : kFields) w[i++] = d.*f.member;
  std::memcpy(&w[i++], &d.scale, sizeof(double));
  w[i++] = static_cast<int64_t>(d.program_hash);
  w[i++] = d.error.empty() ? 0 : 1;
  size_t n = std::min<size_t>(d.error.size(), kErrorWords * 8 - 1);
  std::memcpy(&w[i], d.error.data(), n);
  i += kErrorWords;
  for (int p = 0; p < world; ++p) w[i++] = static_cast<int64_t>(p < static_cast<int>(d.sends_to.size()) ? d.sends_to[p] : 0);
  for (int p = 0; p < world; ++p) w[i++] = static_cast<int64_t>(p < static_cast<int>(d.recvs_from.size()) ? d.recvs_from[p] : 0);
  return w;
}

RunDescriptor decode_descriptor(const int64_t* w, int world) {
  RunDescriptor d;
  size_t i = 0;
  for (const Field& f : kFields) d.*f.member = w[i++];
  std::memcpy(&d.scale, &w[i++], sizeof(double));
  d.program_hash = static_cast<uint64_t>(w[i++]);
  bool has_error = w[i++] != 0;
  if (has_error) {
    char text[kErrorWords * 8];
    std::memcpy(text, &w[i], sizeof text);
    text[sizeof text - 1] = '\0';
    d.error = text[0] != '\0' ? text : "failed";
  }
  i += kErrorWords;
  d.sends_to.resize(static_cast<size_t>(world));
  d.recvs_from.resize(static_cast<size_t>(world));
  for (int p = 0; p < world; ++p) d.sends_to[static_cast<size_t>(p)] = static_cast<uint64_t>(w[i++]);
  for (int p = 0; p < world; ++p) d.recvs_from[static_cast<size_t>(p)] = static_cast<uint64_t>(w[i++]);
  return d;
}

Accumulators make_accumulators(int64_t batch, int64_t heads, int64_t tokens, int64_t dim, const TensorInfo& like,
                               BufferPool* pool) {
  const TorchApi& api = torch();
  Accumulators acc;
  acc.batch = batch;
  acc.heads = heads;
  acc.tokens = tokens;
  acc.dim = dim;
  std::vector<int64_t> out_shape = {batch, heads, tokens, dim};
  acc.out = pool ? pool->take(out_shape, api.dtype_float32(), like.device_type, like.device_index)
                 : empty(out_shape, api.dtype_float32(), like.device_type, like.device_index);
  acc.lse = empty({batch, heads, tokens}, api.dtype_float32(), like.device_type, like.device_index);
  zero_(acc.out.get());  // rows no task reaches stay zero, as the kernels leave fully masked rows
  if (like.device_type == api.device_type_cuda()) {
    // A kernel on the current stream: a host tensor copied in would synchronize every call.
    fill_cuda(static_cast<float*>(data_ptr(acc.lse.get())), batch * heads * tokens,
              -std::numeric_limits<float>::infinity(), like.device_index);
    return acc;
  }
  float* lse = static_cast<float*>(data_ptr(acc.lse.get()));
  std::fill(lse, lse + batch * heads * tokens, -std::numeric_limits<float>::infinity());
  return acc;
}

TaskContext task_context(AtenTensorHandle q, const TensorInfo& qi, int64_t kv_heads, const RankBuffers& kv,
                         Accumulators& acc, const double* scale) {
  const TorchApi& api = torch();
  TaskContext c;
  c.shape.batch = qi.sizes[0];
  c.shape.q_heads = qi.sizes[1];
  c.shape.q_len = qi.sizes[2];
  c.shape.head_dim = qi.sizes[3];
  c.shape.kv_heads = kv_heads;
  c.shape.dtype = qi.dtype;
  c.shape.device_type = qi.device_type;
  c.shape.device_index = qi.device_index;
  c.q = q;
  for (int i = 0; i < 4; ++i) c.q_strides[i] = qi.strides[static_cast<size_t>(i)];
  c.kv = &kv;
  c.cuda = qi.device_type == api.device_type_cuda();
  c.scale = scale ? *scale : 1.0 / std::sqrt(static_cast<double>(c.shape.head_dim));
  const int64_t h = acc.heads, s = acc.tokens, d = acc.dim;
  c.acc.batch = acc.batch;
  c.acc.heads = h;
  c.acc.rows = s;
  c.acc.dim = d;
  c.acc.acc_out = static_cast<float*>(data_ptr(acc.out.get()));
  c.acc.acc_lse = static_cast<float*>(data_ptr(acc.lse.get()));
  const int64_t out_strides[4] = {h * s * d, s * d, d, 1};
  const int64_t lse_strides[3] = {h * s, s, 1};
  for (int i = 0; i < 4; ++i) c.acc.acc_out_strides[i] = out_strides[i];
  for (int i = 0; i < 3; ++i) c.acc.acc_lse_strides[i] = lse_strides[i];
  return c;
}

void run_task(const Task& t, const TaskContext& c) {
  const AttentionShape& w = c.shape;
  const int64_t* ks = c.kv->strides[t.buffer];
  // (B, S, H, D) buffers seen as (B, H, count, D).
  const std::vector<int64_t> kv_sizes = {w.batch, w.kv_heads, t.kv_count, w.head_dim};
  const std::vector<int64_t> kv_strides = {ks[0], ks[2], ks[1], ks[3]};
  Tensor kv_k = view(c.kv->k[t.buffer].get(), kv_sizes, kv_strides, t.kv_start * ks[1]);
  Tensor kv_v = view(c.kv->v[t.buffer].get(), kv_sizes, kv_strides, t.kv_start * ks[1]);
  // libtorch's CPU flash kernel wants as many key/value heads as query heads: one call per member g
  // of each query-head group, over query heads g, g + group, ... (views). CUDA's flash kernel takes
  // grouped-query attention itself.
  const int64_t calls = c.cuda ? 1 : w.q_heads / w.kv_heads;
  AttentionShape call = w;
  call.q_heads = w.q_heads / calls;
  call.q_len = t.q_count;
  call.kv_len = t.kv_count;
  const std::vector<int64_t> q_sizes = {w.batch, call.q_heads, t.q_count, w.head_dim};
  const std::vector<int64_t> q_strides = {c.q_strides[0], c.q_strides[1] * calls, c.q_strides[2], c.q_strides[3]};
  for (int64_t g = 0; g < calls; ++g) {
    Tensor qv = view(c.q, q_sizes, q_strides, t.q_start * c.q_strides[2] + g * c.q_strides[1]);
    AttentionResult part = attention_forward_unchecked(call, qv.get(), kv_k.get(), kv_v.get(), t.causal != 0, c.scale);
    MergeArgs m = c.acc;
    m.heads = call.q_heads;
    m.rows = t.q_count;
    m.acc_out += g * c.acc.acc_out_strides[1] + t.q_start * c.acc.acc_out_strides[2];
    m.acc_lse += g * c.acc.acc_lse_strides[1] + t.q_start * c.acc.acc_lse_strides[2];
    m.acc_out_strides[1] *= calls;
    m.acc_lse_strides[1] *= calls;
    merge_block(m, part.out.get(), part.lse.get(), c.cuda, w.device_index);
  }
}

}  // namespace tasp
