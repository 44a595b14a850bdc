// The C API of tasp.h: every entry point catches everything and returns a code.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>
#include <string>

#include "all_to_all.h"
#include "attention.h"
#include "executor.h"
#include "executor_backward.h"
#include "transport_nccl.h"
#include "transport_tcp.h"
#include "group.h"
#include "nccl.h"
#include "errors.h"
#include "tasp.h"
#include "torch_api.h"

#ifndef TASP_VERSION
#define TASP_VERSION "dev"
#endif
#ifndef TASP_FLAVOR_NAME
#define TASP_FLAVOR_NAME "cpu"
#endif

namespace tasp {
namespace {
thread_local std::string g_last_error;

template <typename F>
int guarded(F&& body) {
  try {
    body();
    g_last_error.clear();
    return TASP_OK;
  } catch (const Error& e) {
    g_last_error = e.what();
    return e.code();
  } catch (const std::exception& e) {
    g_last_error = std::string("unexpected native error: ") + e.what();
    return TASP_ERR_STATE;
  } catch (...) {
    g_last_error = "unexpected native error";
    return TASP_ERR_STATE;
  }
}

AtenTensorHandle handle(tasp_tensor t) { return static_cast<AtenTensorHandle>(t); }

std::atomic<int64_t> g_live_groups{0};
std::atomic<int64_t> g_live_comms{0};
thread_local std::string g_failure_text;
}  // namespace

}  // namespace tasp

using tasp::guarded;
using tasp::handle;

extern "C" {

int tasp_init(const char* libtorch_dir) {
  return guarded([&] { tasp::init_torch(libtorch_dir); });
}

const char* tasp_flavor(void) { return TASP_FLAVOR_NAME; }

const char* tasp_version(void) { return TASP_VERSION; }

const char* tasp_last_error(void) { return tasp::g_last_error.c_str(); }

int tasp_attention_forward(tasp_tensor q, tasp_tensor k, tasp_tensor v, int causal, int has_scale, double scale,
                           tasp_tensor* out, tasp_tensor* lse, int* backend) {
  return guarded([&] {
    if (out == nullptr || lse == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "attention: null output pointer");
    tasp::AttentionResult r =
        tasp::attention_forward(handle(q), handle(k), handle(v), causal != 0, has_scale ? &scale : nullptr);
    if (backend != nullptr) *backend = r.backend;
    *out = r.out.release();
    *lse = r.lse.release();
  });
}

int tasp_attention_backward(tasp_tensor dout, tasp_tensor q, tasp_tensor k, tasp_tensor v, tasp_tensor out,
                            tasp_tensor lse, int causal, int has_scale, double scale, tasp_tensor* dq,
                            tasp_tensor* dk, tasp_tensor* dv) {
  return guarded([&] {
    if (dq == nullptr || dk == nullptr || dv == nullptr) {
      tasp::fail(TASP_ERR_ARGUMENT, "attention backward: null output pointer");
    }
    tasp::AttentionGrads g = tasp::attention_backward(handle(dout), handle(q), handle(k), handle(v), handle(out),
                                                      handle(lse), causal != 0, has_scale ? &scale : nullptr);
    *dq = g.dq.release();
    *dk = g.dk.release();
    *dv = g.dv.release();
  });
}

int tasp_attention_forward_recorded(tasp_tensor q, tasp_tensor k, tasp_tensor v, int causal, int has_scale,
                                    double scale, tasp_tensor* out) {
  return guarded([&] {
    if (out == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "recorded attention: null output pointer");
    *out = tasp::attention_forward_recorded(handle(q), handle(k), handle(v), causal != 0, has_scale ? &scale : nullptr)
               .release();
  });
}

int tasp_set_grad_mode(int enabled, int* previous) {
  return guarded([&] {
    bool was = tasp::grad_mode_enabled();
    tasp::set_grad_mode(enabled != 0);
    if (previous != nullptr) *previous = was ? 1 : 0;
  });
}

int tasp_merge_partial(tasp_tensor acc_out, tasp_tensor acc_lse, tasp_tensor block_out, tasp_tensor block_lse) {
  return guarded([&] { tasp::merge_partial(handle(acc_out), handle(acc_lse), handle(block_out), handle(block_lse)); });
}

int tasp_cast(tasp_tensor t, int dtype, tasp_tensor* out) {
  return guarded([&] {
    if (out == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "cast: null output pointer");
    *out = tasp::cast(handle(t), dtype).release();
  });
}

int tasp_dtype(tasp_tensor t, int* dtype) {
  return guarded([&] {
    if (dtype == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "dtype: null output pointer");
    *dtype = tasp::dtype_code(handle(t));
  });
}

int tasp_group_create(int world_size, int64_t timeout_ms, tasp_group* out) {
  return guarded([&] {
    if (out == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "group: null output pointer");
    *out = new tasp::Group(world_size, timeout_ms);
    ++tasp::g_live_groups;
  });
}

namespace {
tasp::Group& group_of(tasp_group g) {
  if (g == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "group: null group");
  return *static_cast<tasp::Group*>(g);
}
}  // namespace

int tasp_group_set_link_rate(tasp_group g, int src, int dst, double bytes_per_second) {
  return guarded([&] { group_of(g).set_link_rate(src, dst, bytes_per_second); });
}

int tasp_group_set_silent(tasp_group g, int rank, int silent) {
  return guarded([&] { group_of(g).set_silent(rank, silent != 0); });
}

int tasp_group_set_fault(tasp_group g, int rank, int64_t step) {
  return guarded([&] { group_of(g).set_fault(rank, step); });
}

int tasp_group_fail(tasp_group g, const char* message) {
  return guarded([&] { group_of(g).fail(message ? message : "failed by the caller"); });
}

int tasp_group_failure(tasp_group g, int* failed, const char** message) {
  return guarded([&] {
    if (failed == nullptr || message == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "group: null output pointer");
    tasp::g_failure_text.clear();
    *failed = 0;
    try {
      group_of(g).check();
    } catch (const tasp::Error& e) {
      *failed = 1;
      tasp::g_failure_text = e.what();
    }
    *message = tasp::g_failure_text.c_str();
  });
}

int tasp_group_destroy(tasp_group g) {
  return guarded([&] {
    if (g == nullptr) return;
    delete static_cast<tasp::Group*>(g);
    --tasp::g_live_groups;
  });
}

int tasp_live_objects(int64_t* groups, int64_t* communicators) {
  return guarded([&] {
    if (groups != nullptr) *groups = tasp::g_live_groups.load();
    if (communicators != nullptr) *communicators = tasp::g_live_comms.load();
  });
}

int tasp_nccl_version(const char* nccl_path, int* version) {
  return guarded([&] {
    if (version == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "nccl: null output pointer");
    const tasp::NcclApi& api = tasp::nccl(nccl_path);
    tasp::check_nccl(api, api.get_version(version), "ncclGetVersion");
  });
}

int tasp_nccl_unique_id(const char* nccl_path, char* out128) {
  return guarded([&] {
    if (out128 == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "nccl: null output pointer");
    const tasp::NcclApi& api = tasp::nccl(nccl_path);
    ncclUniqueId id;
    tasp::check_nccl(api, api.get_unique_id(&id), "ncclGetUniqueId");
    std::memcpy(out128, id.internal, TASP_NCCL_UNIQUE_ID_BYTES);
  });
}

int tasp_nccl_comm_create(const char* nccl_path, int world, int rank, const char* unique_id128, int device,
                          int64_t timeout_ms, tasp_nccl_comm* out) {
  return guarded([&] {
    if (out == nullptr || unique_id128 == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "nccl: null pointer");
    *out = tasp::nccl_comm_create(nccl_path, world, rank, unique_id128, device, timeout_ms);
    ++tasp::g_live_comms;
  });
}

int tasp_nccl_comm_destroy(tasp_nccl_comm comm) {
  return guarded([&] {
    if (comm == nullptr) return;
    --tasp::g_live_comms;
    tasp::nccl_comm_destroy(static_cast<tasp::NcclComm*>(comm));
  });
}

int tasp_nccl_comm_abort(tasp_nccl_comm comm) {
  return guarded([&] { tasp::nccl_comm_abort(static_cast<tasp::NcclComm*>(comm)); });
}

int tasp_nccl_reject(tasp_nccl_comm comm, const char* why) {
  return guarded([&] {
    if (comm == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "nccl: null communicator");
    tasp::nccl_reject(*static_cast<tasp::NcclComm*>(comm), why != nullptr ? why : "rejected by the caller");
  });
}

namespace {
void write_stats(const tasp::RankStats& s, double* stats, int64_t stats_len) {
  if (stats == nullptr) return;
  std::vector<double> all(TASP_STATS_TOTALS + TASP_STATS_PER_STEP * s.step_compute_ms.size(), 0.0);
  all[0] = s.compute_ms;
  all[1] = s.comm_ms;
  all[2] = s.wait_ms;
  all[3] = s.total_ms;
  all[4] = static_cast<double>(s.bytes_sent);
  all[5] = static_cast<double>(s.buffer_bytes);
  for (size_t i = 0; i < s.step_compute_ms.size(); ++i) {
    all[TASP_STATS_TOTALS + TASP_STATS_PER_STEP * i] = s.step_compute_ms[i];
    all[TASP_STATS_TOTALS + TASP_STATS_PER_STEP * i + 1] = i < s.step_comm_ms.size() ? s.step_comm_ms[i] : 0.0;
    all[TASP_STATS_TOTALS + TASP_STATS_PER_STEP * i + 2] = i < s.step_wait_ms.size() ? s.step_wait_ms[i] : 0.0;
  }
  size_t n = std::min(all.size(), static_cast<size_t>(std::max<int64_t>(stats_len, 0)));
  std::memcpy(stats, all.data(), n * sizeof(double));
}

void write_gradients(tasp::RankGradients& r, tasp_tensor* dq, tasp_tensor* dk, tasp_tensor* dv, double* stats,
                     int64_t stats_len) {
  write_stats(r.stats, stats, stats_len);
  *dq = r.dq.release();
  *dk = r.dk.release();
  *dv = r.dv.release();
}
}  // namespace

namespace {
// The C API's flat all-to-all arguments as the core's: per rank a piece (null: none) and a shape of
// ndim sizes (a first size below 0: nothing comes from that rank). Shared by every transport's entry.
struct AllToAllArgs {
  std::vector<AtenTensorHandle> sends;
  std::vector<std::vector<int64_t>> recv_sizes;
};

AllToAllArgs unpack_all_to_all(const char* what, int world, const tasp_tensor* sends, const int64_t* recv_sizes,
                               int ndim, tasp_tensor like, tasp_tensor* received) {
  if (sends == nullptr || recv_sizes == nullptr || received == nullptr || like == nullptr || world < 1 || ndim < 1) {
    tasp::fail(TASP_ERR_ARGUMENT, std::string(what) + ": null pointer or empty shape");
  }
  AllToAllArgs a;
  a.sends.resize(static_cast<size_t>(world));
  a.recv_sizes.resize(static_cast<size_t>(world));
  for (int p = 0; p < world; ++p) {
    a.sends[static_cast<size_t>(p)] = handle(sends[p]);
    const int64_t* shape = recv_sizes + static_cast<size_t>(p) * ndim;
    if (shape[0] >= 0) a.recv_sizes[static_cast<size_t>(p)].assign(shape, shape + ndim);
  }
  return a;
}

void write_received(tasp::AllToAllResult& res, tasp_tensor* received, double* stats, int64_t stats_len) {
  write_stats(res.stats, stats, stats_len);
  for (size_t p = 0; p < res.received.size(); ++p) received[p] = res.received[p].release();
}
}  // namespace

int tasp_rank_all_to_all(tasp_group g, int rank, int world, const tasp_tensor* sends, const int64_t* recv_sizes,
                         int ndim, tasp_tensor like, tasp_tensor* received, double* stats, int64_t stats_len) {
  return guarded([&] {
    AllToAllArgs a = unpack_all_to_all("all-to-all", world, sends, recv_sizes, ndim, like, received);
    tasp::Group& group = group_of(g);
    if (world != group.world_size()) {
      tasp::fail(TASP_ERR_ARGUMENT, "all-to-all: " + std::to_string(world) + " pieces for a group of " +
                                        std::to_string(group.world_size()));
    }
    tasp::AllToAllResult res = tasp::rank_all_to_all(group, rank, a.sends, a.recv_sizes, handle(like));
    write_received(res, received, stats, stats_len);
  });
}

int tasp_nccl_all_to_all(tasp_nccl_comm comm, int world, const tasp_tensor* sends, const int64_t* recv_sizes,
                         int ndim, tasp_tensor like, tasp_tensor* received, double* stats, int64_t stats_len) {
  return guarded([&] {
    if (comm == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "nccl all-to-all: null communicator");
    tasp::NcclComm& c = *static_cast<tasp::NcclComm*>(comm);
    AllToAllArgs a;
    try {
      a = unpack_all_to_all("nccl all-to-all", world, sends, recv_sizes, ndim, like, received);
    } catch (const tasp::Error& bad) {
      // The peers are starting the exchange: tell them, so they fail now instead of timing out.
      try {
        tasp::nccl_reject(c, bad.what());
      } catch (...) {
      }
      throw;
    }
    tasp::AllToAllResult res = tasp::nccl_all_to_all(c, a.sends, a.recv_sizes, handle(like));
    write_received(res, received, stats, stats_len);
  });
}

int tasp_nccl_rank_forward(tasp_nccl_comm comm, const int64_t* program, int64_t program_len, tasp_tensor q,
                           tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out,
                           tasp_tensor* lse, double* stats, int64_t stats_len) {
  return guarded([&] {
    if (comm == nullptr || out == nullptr || lse == nullptr || program == nullptr) {
      tasp::fail(TASP_ERR_ARGUMENT, "nccl executor: null pointer");
    }
    tasp::RankResult r = tasp::nccl_rank_forward(*static_cast<tasp::NcclComm*>(comm), program, program_len,
                                                 handle(q), handle(k), handle(v), has_scale ? &scale : nullptr);
    write_stats(r.stats, stats, stats_len);
    *out = r.out.release();
    *lse = r.lse.release();
  });
}

int tasp_rank_forward(tasp_group g, int rank, const int64_t* program, int64_t program_len, tasp_tensor q,
                      tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out, tasp_tensor* lse,
                      double* stats, int64_t stats_len) {
  return guarded([&] {
    if (out == nullptr || lse == nullptr || program == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "executor: null pointer");
    tasp::RankResult r = tasp::rank_forward(group_of(g), rank, program, program_len, handle(q), handle(k), handle(v),
                                            has_scale ? &scale : nullptr);
    write_stats(r.stats, stats, stats_len);
    *out = r.out.release();
    *lse = r.lse.release();
  });
}

int tasp_rank_backward(tasp_group g, int rank, const int64_t* program, int64_t program_len, const int64_t* return_map,
                       int64_t return_map_len, tasp_tensor dout, tasp_tensor q, tasp_tensor k, tasp_tensor v,
                       tasp_tensor out, tasp_tensor lse, int has_scale, double scale, tasp_tensor* dq, tasp_tensor* dk,
                       tasp_tensor* dv, double* stats, int64_t stats_len) {
  return guarded([&] {
    if (program == nullptr || dq == nullptr || dk == nullptr || dv == nullptr) {
      tasp::fail(TASP_ERR_ARGUMENT, "backward: null pointer");
    }
    tasp::RankGradients r = tasp::rank_backward(group_of(g), rank, program, program_len, return_map, return_map_len,
                                                handle(dout), handle(q), handle(k), handle(v), handle(out),
                                                handle(lse), has_scale ? &scale : nullptr);
    write_gradients(r, dq, dk, dv, stats, stats_len);
  });
}

int tasp_nccl_rank_backward(tasp_nccl_comm comm, const int64_t* program, int64_t program_len,
                            const int64_t* return_map, int64_t return_map_len, tasp_tensor dout, tasp_tensor q,
                            tasp_tensor k, tasp_tensor v, tasp_tensor out, tasp_tensor lse, int has_scale,
                            double scale, tasp_tensor* dq, tasp_tensor* dk, tasp_tensor* dv, double* stats,
                            int64_t stats_len) {
  return guarded([&] {
    if (comm == nullptr || program == nullptr || dq == nullptr || dk == nullptr || dv == nullptr) {
      tasp::fail(TASP_ERR_ARGUMENT, "nccl backward: null pointer");
    }
    tasp::RankGradients r = tasp::nccl_rank_backward(*static_cast<tasp::NcclComm*>(comm), program, program_len,
                                                     return_map, return_map_len, handle(dout), handle(q), handle(k),
                                                     handle(v), handle(out), handle(lse), has_scale ? &scale : nullptr);
    write_gradients(r, dq, dk, dv, stats, stats_len);
  });
}

namespace {
tasp::TcpMesh& mesh_of(tasp_tcp_mesh m) {
  if (m == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "tcp transport: null mesh");
  return *static_cast<tasp::TcpMesh*>(m);
}
}  // namespace

int tasp_tcp_mesh_create(int world, int rank, const char* bind_host, int64_t timeout_ms, tasp_tcp_mesh* out,
                         int* port) {
  return guarded([&] {
    if (out == nullptr || port == nullptr || bind_host == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "tcp transport: null pointer");
    tasp::TcpMesh* mesh = tasp::tcp_mesh_create(world, rank, bind_host, timeout_ms);
    *port = tasp::tcp_mesh_port(*mesh);
    *out = mesh;
  });
}

int tasp_tcp_mesh_connect(tasp_tcp_mesh m, const char* const* hosts, const int* ports, uint64_t token) {
  return guarded([&] {
    tasp::TcpMesh& mesh = mesh_of(m);
    if (hosts == nullptr || ports == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "tcp transport: null addresses");
    std::vector<std::string> h;
    std::vector<int> p;
    for (int r = 0; r < tasp::tcp_mesh_world(mesh); ++r) {
      if (hosts[r] == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "tcp transport: no address for rank " + std::to_string(r));
      h.emplace_back(hosts[r]);
      p.push_back(ports[r]);
    }
    tasp::tcp_mesh_connect(mesh, h, p, token);
  });
}

int tasp_tcp_mesh_fail(tasp_tcp_mesh m, const char* message) {
  return guarded([&] { tasp::tcp_mesh_fail(mesh_of(m), message ? message : "failed by the caller"); });
}

int tasp_tcp_mesh_destroy(tasp_tcp_mesh m) {
  return guarded([&] { tasp::tcp_mesh_destroy(static_cast<tasp::TcpMesh*>(m)); });
}

int tasp_tcp_rank_forward(tasp_tcp_mesh m, const int64_t* program, int64_t program_len, tasp_tensor q, tasp_tensor k,
                          tasp_tensor v, int has_scale, double scale, tasp_tensor* out, tasp_tensor* lse,
                          double* stats, int64_t stats_len) {
  return guarded([&] {
    if (out == nullptr || lse == nullptr || program == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "tcp executor: null pointer");
    tasp::RankResult r = tasp::tcp_rank_forward(mesh_of(m), program, program_len, handle(q), handle(k), handle(v),
                                                has_scale ? &scale : nullptr);
    write_stats(r.stats, stats, stats_len);
    *out = r.out.release();
    *lse = r.lse.release();
  });
}

int tasp_tcp_rank_backward(tasp_tcp_mesh m, const int64_t* program, int64_t program_len, const int64_t* return_map,
                           int64_t return_map_len, tasp_tensor dout, tasp_tensor q, tasp_tensor k, tasp_tensor v,
                           tasp_tensor out, tasp_tensor lse, int has_scale, double scale, tasp_tensor* dq,
                           tasp_tensor* dk, tasp_tensor* dv, double* stats, int64_t stats_len) {
  return guarded([&] {
    if (program == nullptr || dq == nullptr || dk == nullptr || dv == nullptr) {
      tasp::fail(TASP_ERR_ARGUMENT, "tcp backward: null pointer");
    }
    tasp::RankGradients r = tasp::tcp_rank_backward(mesh_of(m), program, program_len, return_map, return_map_len,
                                                    handle(dout), handle(q), handle(k), handle(v), handle(out),
                                                    handle(lse), has_scale ? &scale : nullptr);
    write_gradients(r, dq, dk, dv, stats, stats_len);
  });
}

int tasp_tcp_all_to_all(tasp_tcp_mesh m, int world, const tasp_tensor* sends, const int64_t* recv_sizes, int ndim,
                        tasp_tensor like, tasp_tensor* received, double* stats, int64_t stats_len) {
  return guarded([&] {
    tasp::TcpMesh& mesh = mesh_of(m);
    AllToAllArgs a = unpack_all_to_all("tcp all-to-all", world, sends, recv_sizes, ndim, like, received);
    // A world other than the mesh's fails in describe_all_to_all, on the mesh: the peers learn it too.
    tasp::AllToAllResult res = tasp::tcp_all_to_all(mesh, a.sends, a.recv_sizes, handle(like));
    write_received(res, received, stats, stats_len);
  });
}

namespace {
std::vector<AtenTensorHandle> tensor_list(const tasp_tensor* tensors, int64_t n) {
  if (n < 0 || (n > 0 && tensors == nullptr)) tasp::fail(TASP_ERR_ARGUMENT, "all-reduce: no tensors");
  std::vector<AtenTensorHandle> out;
  for (int64_t i = 0; i < n; ++i) {
    if (tensors[i] == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "all-reduce: null tensor " + std::to_string(i));
    out.push_back(handle(tensors[i]));
  }
  return out;
}
}  // namespace

int tasp_tcp_all_reduce(tasp_tcp_mesh m, const tasp_tensor* tensors, int64_t n) {
  return guarded([&] { tasp::tcp_all_reduce(mesh_of(m), tensor_list(tensors, n)); });
}

int tasp_nccl_all_reduce(tasp_nccl_comm comm, const tasp_tensor* tensors, int64_t n) {
  return guarded([&] {
    if (comm == nullptr) tasp::fail(TASP_ERR_ARGUMENT, "nccl: null communicator");
    tasp::nccl_all_reduce(*static_cast<tasp::NcclComm*>(comm), tensor_list(tensors, n));
  });
}

int tasp_tensor_free(tasp_tensor t) {
  return guarded([&] {
    if (t != nullptr) tasp::check_torch(tasp::torch().delete_tensor(handle(t)), "aoti_torch_delete_tensor_object");
  });
}

}  // extern "C"
