// CUDA flavor: the NCCL transport (see transport.h and transport_nccl.h).
#include <cuda_runtime.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

#include "errors.h"
#include "executor_common.h"
#include "transport.h"
#include "transport_nccl.h"
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

namespace {

// One rank per GPU over NCCL. Per step: the communication stream first waits until the compute
// stream finished step - 1 (whose attention read the buffer this step overwrites), then runs the
// step's sends and receives as one NCCL group and records `landed[step]`; the compute stream waits
// for `landed[step - 1]` before the step's attention and records `computed[step]` after it. Messages
// pair per peer in order: K then V, batch element by batch element, entry by entry, on both sides
// (the Java lowering lists sends and receives in the same transfer order).
class NcclTransport final : public Transport {
 public:
  explicit NcclTransport(NcclComm& c) : c_(c) {
    if (c_.aborted) fail(TASP_ERR_GROUP, "nccl: the communicator was aborted by an earlier failure");
  }

  ~NcclTransport() override {
    for (cudaEvent_t e : computed_) cudaEventDestroy(e);
    for (cudaEvent_t e : landed_) cudaEventDestroy(e);
    if (comm_stream_ != nullptr) cudaStreamDestroy(comm_stream_);
  }

  int rank() const override { return c_.rank; }
  int world() const override { return c_.world; }

  void check_device(const TensorInfo& q) const override {
    if (q.device_type != torch().device_type_cuda() || q.device_index != c_.device) {
      fail(TASP_ERR_ARGUMENT, "nccl: rank " + std::to_string(c_.rank) + " runs on cuda:" + std::to_string(c_.device) +
                                  ", got tensors on " + device_name(q.device_type, q.device_index));
    }
  }

  void start(const Program& program, const RankBuffers& own, const TokenGeometry& geometry) override {
    program_ = &program;
    own_ = own;
    geometry_ = geometry;
    seq_len_[0] = seq_len_[1] = std::max<int64_t>(program.recv_capacity, 1);
    seq_len_[2] = program.kv_tokens;
    check_cuda(cudaSetDevice(c_.device), "cudaSetDevice");
    void* torch_stream = nullptr;
    check_torch(torch_fn<aoti_get_current_cuda_stream_fn>("aoti_torch_get_current_cuda_stream", true)(c_.device,
                                                                                                    &torch_stream),
                "aoti_torch_get_current_cuda_stream");
    compute_ = static_cast<cudaStream_t>(torch_stream);
    check_cuda(cudaStreamCreateWithFlags(&comm_stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    size_t steps = program.steps.size();
    computed_.assign(steps, nullptr);
    landed_.assign(steps, nullptr);
    for (size_t s = 0; s < steps; ++s) {
      check_cuda(cudaEventCreateWithFlags(&computed_[s], cudaEventDisableTiming), "cudaEventCreate");
      check_cuda(cudaEventCreateWithFlags(&landed_[s], cudaEventDisableTiming), "cudaEventCreate");
    }
    deadline_ = Clock::now() + c_.timeout * static_cast<int64_t>(steps + 1);
  }

  void post(int64_t step) override {
    const StepProgram& sp = program_->steps[static_cast<size_t>(step)];
    if (step >= 1) {
      check_cuda(cudaStreamWaitEvent(comm_stream_, computed_[static_cast<size_t>(step - 1)], 0),
                 "cudaStreamWaitEvent");
    }
    if (!sp.sends.empty() || !sp.recvs.empty()) {
      check_nccl(*c_.api, c_.api->group_start(), "ncclGroupStart");
      for (const Send& x : sp.sends) {
        each_segment(x.src_buffer, x.src_start, x.count, [&](void* ptr, size_t bytes) {
          check_nccl(*c_.api, c_.api->send(ptr, bytes, TASP_NCCL_UINT8, static_cast<int>(x.peer), c_.comm,
                                           comm_stream_),
                     "ncclSend");
        });
        bytes_sent_ += 2 * geometry_.batch * x.count * geometry_.token_bytes;
      }
      for (const Recv& x : sp.recvs) {
        each_segment(x.dst_buffer, x.dst_start, x.count, [&](void* ptr, size_t bytes) {
          check_nccl(*c_.api, c_.api->recv(ptr, bytes, TASP_NCCL_UINT8, static_cast<int>(x.peer), c_.comm,
                                           comm_stream_),
                     "ncclRecv");
        });
      }
      ncclResult_t r = c_.api->group_end();
      if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) check_nccl(*c_.api, r, "ncclGroupEnd");
    }
    check_cuda(cudaEventRecord(landed_[static_cast<size_t>(step)], comm_stream_), "cudaEventRecord");
  }

  void before_compute(int64_t step) override {
    if (step >= 1) {
      check_cuda(cudaStreamWaitEvent(compute_, landed_[static_cast<size_t>(step - 1)], 0), "cudaStreamWaitEvent");
    }
  }

  void after_compute(int64_t step) override {
    check_cuda(cudaEventRecord(computed_[static_cast<size_t>(step)], compute_), "cudaEventRecord");
    step_comm_ms_.push_back(0.0);  // asynchronous on the communication stream: not timed per step
    step_wait_ms_.push_back(0.0);
    if (Clock::now() > deadline_) fail(TASP_ERR_GROUP, "nccl: rank " + std::to_string(c_.rank) + " ran out of time");
  }

  void finish() override {
    check_cuda(cudaStreamWaitEvent(compute_, landed_.back(), 0), "cudaStreamWaitEvent");
    // The buffers are freed when the executor returns: the transfers, and the attention that reads
    // them, must be done; both waits poll against the deadline and abort the communicator past it.
    auto t0 = Clock::now();
    wait_stream(c_, comm_stream_, deadline_, "waiting for this rank's transfers");
    wait_stream(c_, compute_, deadline_, "waiting for this rank's attention");
    wait_ms_ += ms_since(t0);
  }

  void check() const override {
    if (c_.aborted) fail(TASP_ERR_GROUP, "nccl: the communicator was aborted");
  }

  void abort(const std::string&, bool) noexcept override {
    // NCCL peers blocked in a collective with this rank only return when the communicator is
    // aborted; after that it cannot be used again.
    if (!c_.aborted && c_.comm != nullptr) {
      c_.api->comm_abort(c_.comm);
      c_.aborted = true;
    }
  }

  void report(RankStats& stats) override {
    stats.bytes_sent = bytes_sent_;
    stats.wait_ms = wait_ms_;
    stats.step_comm_ms = step_comm_ms_;
    stats.step_wait_ms = step_wait_ms_;
  }

 private:
  // Calls fn(pointer, bytes) for each batch element's segment of tokens [start, start + count) of
  // the K buffer, then of the V buffer.
  template <typename Fn>
  void each_segment(int64_t buffer, int64_t start, int64_t count, Fn fn) {
    for (int kv = 0; kv < 2; ++kv) {
      AtenTensorHandle t = kv == 0 ? own_.k[buffer] : own_.v[buffer];
      char* base = static_cast<char*>(data_of(t));
      for (int64_t b = 0; b < geometry_.batch; ++b) {
        fn(base + (b * seq_len_[buffer] + start) * geometry_.token_bytes,
           static_cast<size_t>(count * geometry_.token_bytes));
      }
    }
  }

  NcclComm& c_;
  const Program* program_ = nullptr;
  RankBuffers own_;
  TokenGeometry geometry_;
  int64_t seq_len_[3] = {0, 0, 0};
  cudaStream_t compute_ = nullptr;
  cudaStream_t comm_stream_ = nullptr;
  std::vector<cudaEvent_t> computed_, landed_;
  Clock::time_point deadline_;
  int64_t bytes_sent_ = 0;
  double wait_ms_ = 0;
  std::vector<double> step_comm_ms_, step_wait_ms_;
};

}  // namespace

RankResult nccl_rank_forward(NcclComm& c, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                             AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  NcclTransport transport(c);
  return run_rank(transport, program, program_len, q, k, v, scale);
}

}  // namespace tasp
