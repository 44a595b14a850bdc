// CUDA flavor: the NCCL executor (see executor_nccl.h).
#include <cuda_runtime.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "errors.h"
#include "executor_common.h"
#include "executor_nccl.h"
#include "nccl.h"

namespace tasp {

struct NcclComm {
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  int world = 0;
  int rank = 0;
  int device = 0;
  std::chrono::milliseconds timeout{0};
  bool aborted = false;
};

namespace {

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fail(TASP_ERR_TORCH, std::string(what) + ": " + cudaGetErrorString(err));
}

// Waits for a stream, polling NCCL's asynchronous error; aborts the communicator past the deadline.
void wait_stream(NcclComm& c, cudaStream_t stream, Clock::time_point deadline, const std::string& what) {
  while (true) {
    cudaError_t q = cudaStreamQuery(stream);
    if (q == cudaSuccess) return;
    if (q != cudaErrorNotReady) check_cuda(q, what.c_str());
    ncclResult_t async = TASP_NCCL_SUCCESS;
    c.api->comm_get_async_error(c.comm, &async);
    if (async != TASP_NCCL_SUCCESS && async != TASP_NCCL_IN_PROGRESS) {
      c.api->comm_abort(c.comm);
      c.aborted = true;
      fail(TASP_ERR_GROUP, "rank " + std::to_string(c.rank) + ": NCCL failed while " + what + ": " +
                               c.api->get_error_string(async));
    }
    if (Clock::now() > deadline) {
      c.api->comm_abort(c.comm);
      c.aborted = true;
      fail(TASP_ERR_GROUP, "rank " + std::to_string(c.rank) + ": no progress within " +
                               std::to_string(c.timeout.count()) + " ms while " + what +
                               " (communicator aborted)");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
}

void* data_of(AtenTensorHandle t) {
  void* p = nullptr;
  check_torch(torch_fn<aoti_get_data_ptr_fn>("aoti_torch_get_data_ptr", false)(t, &p), "aoti_torch_get_data_ptr");
  return p;
}

struct StreamGuard {
  cudaStream_t stream = nullptr;
  ~StreamGuard() {
    if (stream) cudaStreamDestroy(stream);
  }
};

struct EventGuard {
  cudaEvent_t event = nullptr;
  ~EventGuard() {
    if (event) cudaEventDestroy(event);
  }
};

}  // namespace

NcclComm* nccl_comm_create(const char* nccl_path, int world, int rank, const char* unique_id, int device,
                           int64_t timeout_ms) {
  if (world < 1 || rank < 0 || rank >= world) {
    fail(TASP_ERR_ARGUMENT, "nccl: rank " + std::to_string(rank) + " of " + std::to_string(world));
  }
  if (timeout_ms < 1) fail(TASP_ERR_ARGUMENT, "nccl: timeout must be at least 1 ms");
  const NcclApi& api = nccl(nccl_path);
  auto c = std::make_unique<NcclComm>();
  c->api = &api;
  c->world = world;
  c->rank = rank;
  c->device = device;
  c->timeout = std::chrono::milliseconds(timeout_ms);
  ncclUniqueId id;
  std::memcpy(id.internal, unique_id, TASP_NCCL_UNIQUE_ID_BYTES);
  // ncclCommInitRank blocks until every rank joined; it runs on a helper thread so that a peer that
  // never joins costs a timeout here, not a hang. (That helper stays blocked inside NCCL then: the
  // process should exit after such a failure.)
  struct InitState {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    ncclResult_t result = TASP_NCCL_SUCCESS;
    ncclComm_t comm = nullptr;
    cudaError_t device_error = cudaSuccess;
  };
  auto state = std::make_shared<InitState>();
  std::thread([state, &api, world, rank, id, device] {
    cudaError_t e = cudaSetDevice(device);
    ncclComm_t comm = nullptr;
    ncclResult_t r = e == cudaSuccess ? api.comm_init_rank(&comm, world, id, rank) : TASP_NCCL_SUCCESS;
    std::lock_guard<std::mutex> lock(state->m);
    state->device_error = e;
    state->result = r;
    state->comm = comm;
    state->done = true;
    state->cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(state->m);
  if (!state->cv.wait_for(lock, c->timeout, [&] { return state->done; })) {
    fail(TASP_ERR_GROUP, "nccl: rank " + std::to_string(rank) + " of " + std::to_string(world) +
                             ": not every rank joined within " + std::to_string(timeout_ms) + " ms");
  }
  check_cuda(state->device_error, "cudaSetDevice");
  check_nccl(api, state->result, "ncclCommInitRank");
  c->comm = state->comm;
  return c.release();
}

void nccl_comm_destroy(NcclComm* comm) {
  if (comm == nullptr) return;
  if (comm->comm != nullptr) {
    if (comm->aborted) {
      // ncclCommAbort already freed it.
    } else {
      comm->api->comm_destroy(comm->comm);
    }
  }
  delete comm;
}

RankResult nccl_rank_forward(NcclComm& c, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                             AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  if (c.aborted) fail(TASP_ERR_GROUP, "nccl: the communicator was aborted by an earlier failure");
  auto t_start = Clock::now();
  const TorchApi& api = torch();
  Program p = parse(program, program_len, c.rank, c.world);
  TensorInfo qi = info(q), ki = info(k), vi = info(v);
  if (qi.device_type != api.device_type_cuda() || qi.device_index != c.device) {
    fail(TASP_ERR_ARGUMENT, "nccl: rank " + std::to_string(c.rank) + " runs on cuda:" + std::to_string(c.device) +
                                ", got tensors on " + device_name(qi.device_type, qi.device_index));
  }
  if (qi.sizes.size() != 4 || ki.sizes != vi.sizes || qi.sizes[2] != p.q_tokens || ki.sizes[2] != p.kv_tokens) {
    fail(TASP_ERR_ARGUMENT, "nccl executor: q " + shape_string(qi.sizes) + ", k " + shape_string(ki.sizes) +
                                " do not match the program (" + std::to_string(p.q_tokens) + " tokens)");
  }
  check_cuda(cudaSetDevice(c.device), "cudaSetDevice");
  const int64_t batch = qi.sizes[0], heads = qi.sizes[1], dim = qi.sizes[3], kv_heads = ki.sizes[1];
  Tensor q_tm = to_token_major(q);
  Tensor k_own = to_token_major(k), v_own = to_token_major(v);
  int64_t cap = std::max<int64_t>(p.recv_capacity, 1);
  Tensor k_buf[2] = {empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index),
                     empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index)};
  Tensor v_buf[2] = {empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index),
                     empty({batch, cap, kv_heads, dim}, ki.dtype, ki.device_type, ki.device_index)};
  AtenTensorHandle kb[3] = {k_buf[0].get(), k_buf[1].get(), k_own.get()};
  AtenTensorHandle vb[3] = {v_buf[0].get(), v_buf[1].get(), v_own.get()};
  int64_t seq_len[3] = {cap, cap, p.kv_tokens};
  const int64_t token_bytes = kv_heads * dim * element_size(ki.dtype);
  Accumulators acc = make_accumulators(batch, heads, p.q_tokens, dim, qi);
  const int64_t buffer_bytes = element_size(qi.dtype) * (2 * batch * heads * p.q_tokens * dim +
                                                         2 * batch * kv_heads * dim * (p.kv_tokens + 2 * cap)) +
                               4 * batch * heads * p.q_tokens * (dim + 1);

  void* torch_stream = nullptr;
  check_torch(torch_fn<aoti_get_current_cuda_stream_fn>("aoti_torch_get_current_cuda_stream", true)(c.device,
                                                                                                  &torch_stream),
              "aoti_torch_get_current_cuda_stream");
  auto compute = static_cast<cudaStream_t>(torch_stream);
  StreamGuard comm_stream;
  check_cuda(cudaStreamCreateWithFlags(&comm_stream.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  size_t steps = p.steps.size();
  std::vector<EventGuard> computed(steps), landed(steps);
  for (size_t s = 0; s < steps; ++s) {
    check_cuda(cudaEventCreateWithFlags(&computed[s].event, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventCreateWithFlags(&landed[s].event, cudaEventDisableTiming), "cudaEventCreate");
  }
  RankResult result;
  result.stats.buffer_bytes = buffer_bytes;
  auto deadline = Clock::now() + c.timeout * static_cast<int64_t>(steps + 1);
  for (size_t s = 0; s < steps; ++s) {
    const StepProgram& sp = p.steps[s];
    // Transfers of step s overwrite buffer s % 2, which the compute of step s-1 read.
    if (s >= 1) check_cuda(cudaStreamWaitEvent(comm_stream.stream, computed[s - 1].event, 0), "cudaStreamWaitEvent");
    if (!sp.sends.empty() || !sp.recvs.empty()) {
      check_nccl(*c.api, c.api->group_start(), "ncclGroupStart");
      // Messages pair per peer in order: K then V, batch by batch, entry by entry, on both sides.
      for (const Send& x : sp.sends) {
        for (int kv = 0; kv < 2; ++kv) {
          AtenTensorHandle buf = kv == 0 ? kb[x.src_buffer] : vb[x.src_buffer];
          char* base = static_cast<char*>(data_of(buf));
          for (int64_t b = 0; b < batch; ++b) {
            const char* ptr = base + (b * seq_len[x.src_buffer] + x.src_start) * token_bytes;
            check_nccl(*c.api, c.api->send(ptr, static_cast<size_t>(x.count * token_bytes), TASP_NCCL_UINT8,
                                           static_cast<int>(x.peer), c.comm, comm_stream.stream),
                       "ncclSend");
          }
        }
        result.stats.bytes_sent += 2 * batch * x.count * token_bytes;
      }
      for (const Recv& x : sp.recvs) {
        for (int kv = 0; kv < 2; ++kv) {
          AtenTensorHandle buf = kv == 0 ? kb[x.dst_buffer] : vb[x.dst_buffer];
          char* base = static_cast<char*>(data_of(buf));
          for (int64_t b = 0; b < batch; ++b) {
            char* ptr = base + (b * seq_len[x.dst_buffer] + x.dst_start) * token_bytes;
            check_nccl(*c.api, c.api->recv(ptr, static_cast<size_t>(x.count * token_bytes), TASP_NCCL_UINT8,
                                           static_cast<int>(x.peer), c.comm, comm_stream.stream),
                       "ncclRecv");
          }
        }
      }
      ncclResult_t r = c.api->group_end();
      if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) check_nccl(*c.api, r, "ncclGroupEnd");
    }
    check_cuda(cudaEventRecord(landed[s].event, comm_stream.stream), "cudaEventRecord");
    // Attention of step s reads what step s-1 received.
    if (s >= 1) check_cuda(cudaStreamWaitEvent(compute, landed[s - 1].event, 0), "cudaStreamWaitEvent");
    auto t0 = Clock::now();
    for (const Task& t : sp.tasks) run_task(t, q_tm.get(), kb[t.buffer], vb[t.buffer], acc, scale);
    double enqueue_ms = ms_since(t0);  // host time to enqueue; GPU time is in total_ms
    result.stats.compute_ms += enqueue_ms;
    result.stats.step_compute_ms.push_back(enqueue_ms);
    result.stats.step_comm_ms.push_back(0.0);  // asynchronous on the communication stream
    result.stats.step_wait_ms.push_back(0.0);
    check_cuda(cudaEventRecord(computed[s].event, compute), "cudaEventRecord");
    if (Clock::now() > deadline) fail(TASP_ERR_GROUP, "nccl: rank " + std::to_string(c.rank) + " ran out of time");
  }
  check_cuda(cudaStreamWaitEvent(compute, landed[steps - 1].event, 0), "cudaStreamWaitEvent");
  result.out = empty({batch, heads, p.q_tokens, dim}, qi.dtype, qi.device_type, qi.device_index);
  check_torch(torch().copy(result.out.get(), acc.out.get(), 0), "aoti_torch_copy_");
  result.lse = std::move(acc.lse);
  // Buffers are freed on return: the transfers must be done (with a deadline), and so must the
  // attention that reads them.
  auto t_wait = Clock::now();
  wait_stream(c, comm_stream.stream, deadline, "waiting for this rank's transfers");
  wait_stream(c, compute, deadline, "waiting for this rank's attention");
  result.stats.wait_ms = ms_since(t_wait);
  result.stats.total_ms = ms_since(t_start);
  return result;
}

}  // namespace tasp
