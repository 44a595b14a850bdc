// CUDA flavor: the NCCL transport (see transport.h and transport_nccl.h).
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "cuda_driver.h"
#include "errors.h"
#include "executor_common.h"
#include "nccl.h"
#include "transport.h"
#include "executor_backward.h"
#include "transport_nccl.h"

namespace tasp {

struct NcclComm {
  const NcclApi* api = nullptr;
  ncclComm_t comm = nullptr;
  int world = 0;
  int rank = 0;
  int device = 0;
  std::chrono::milliseconds timeout{0};
  std::mutex mutex;                         // guards busy and aborted against nccl_comm_abort
  bool busy = false;                        // a forward (or a reject) is running on it
  bool aborted = false;                     // ncclCommAbort ran: the communicator is gone
  std::atomic<bool> abort_requested{false};  // set by nccl_comm_abort while busy
};

namespace {

std::string who(const NcclComm& c) { return "nccl: rank " + std::to_string(c.rank) + " of " + std::to_string(c.world); }

// Aborts the communicator (idempotent). Only the thread that owns it (busy) or nccl_comm_abort with
// no forward in flight calls this.
void abort_comm(NcclComm& c) {
  std::lock_guard<std::mutex> lock(c.mutex);
  if (!c.aborted && c.comm != nullptr) c.api->comm_abort(c.comm);
  c.aborted = true;
}

// Polls `ready` until it returns true. Fails (TASP_ERR_GROUP) and aborts the communicator when NCCL
// reports an asynchronous error, when an abort was requested, or when `timeout` passes without
// progress; `ready` may push the deadline out when something progressed.
void poll(NcclComm& c, const std::string& what, const std::function<bool(Clock::time_point&)>& ready) {
  Clock::time_point deadline = Clock::now() + c.timeout;
  while (true) {
    ncclResult_t async = TASP_NCCL_SUCCESS;
    ncclResult_t r = c.api->comm_get_async_error(c.comm, &async);
    if (r != TASP_NCCL_SUCCESS) async = r;
    if (async != TASP_NCCL_SUCCESS && async != TASP_NCCL_IN_PROGRESS) {
      abort_comm(c);
      fail(TASP_ERR_GROUP, who(c) + ": NCCL failed while " + what + ": " + c.api->get_error_string(async) +
                               " (communicator aborted)");
    }
    if (c.abort_requested.load()) {
      abort_comm(c);
      fail(TASP_ERR_GROUP, who(c) + ": the communicator was closed or aborted while " + what);
    }
    if (ready(deadline)) return;
    if (Clock::now() > deadline) {
      abort_comm(c);
      fail(TASP_ERR_GROUP, who(c) + ": no progress within " + std::to_string(c.timeout.count()) + " ms while " +
                               what + " (communicator aborted)");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

// Until the communicator has no operation in progress (nonblocking init, group end, finalize).
void wait_nccl_ready(NcclComm& c, const std::string& what) {
  poll(c, what, [&](Clock::time_point&) {
    ncclResult_t async = TASP_NCCL_IN_PROGRESS;
    c.api->comm_get_async_error(c.comm, &async);
    return async == TASP_NCCL_SUCCESS;
  });
}

// Until every event completed; each completion pushes the deadline out (a progress deadline).
void wait_events(NcclComm& c, const std::vector<tasp_cu_event>& events, const std::string& what) {
  size_t next = 0;
  poll(c, what, [&](Clock::time_point& deadline) {
    while (next < events.size()) {
      tasp_cu_result q = cuda_driver().event_query(events[next]);
      if (q == TASP_CU_ERROR_NOT_READY) return false;
      check_cu(q, what.c_str());
      ++next;
      deadline = Clock::now() + c.timeout;
    }
    return true;
  });
}

void* data_of(AtenTensorHandle t) {
  void* p = nullptr;
  check_torch(torch_fn<aoti_get_data_ptr_fn>("aoti_torch_get_data_ptr", false)(t, &p), "aoti_torch_get_data_ptr");
  return p;
}

// Keeps ncclGroupStart/End paired when a call inside the group throws.
class NcclGroupCall {
 public:
  explicit NcclGroupCall(NcclComm& c) : c_(c) {
    check_nccl(*c_.api, c_.api->group_start(), "ncclGroupStart");
    open_ = true;
  }
  ~NcclGroupCall() {
    if (open_) c_.api->group_end();  // unwinding: close the group; the caller aborts the communicator
  }
  void end(const std::string& what) {
    open_ = false;
    ncclResult_t r = c_.api->group_end();
    if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) check_nccl(*c_.api, r, "ncclGroupEnd");
    wait_nccl_ready(c_, what);  // nonblocking: the operations are enqueued once NCCL says success
  }

 private:
  NcclComm& c_;
  bool open_ = false;
};

// A communication stream of one collective, destroyed with the scope. Destroying a stream with work
// still queued is allowed: the driver frees it once that work completed.
class OwnedStream {
 public:
  OwnedStream() { check_cu(cuda_driver().stream_create(&stream_, TASP_CU_STREAM_NON_BLOCKING), "cuStreamCreate"); }
  ~OwnedStream() {
    if (stream_ != nullptr) cuda_driver().stream_destroy(stream_);
  }
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  tasp_cu_stream get() const { return stream_; }

 private:
  tasp_cu_stream stream_ = nullptr;
};

void check_on_device(const NcclComm& c, const TensorInfo& t) {
  if (t.device_type != torch().device_type_cuda() || t.device_index != c.device) {
    fail(TASP_ERR_ARGUMENT, "nccl: rank " + std::to_string(c.rank) + " runs on cuda:" + std::to_string(c.device) +
                                ", got tensors on " + device_name(t.device_type, t.device_index));
  }
}

// Every rank's run descriptor, by rank: one ncclAllGather of fixed-size encodings on `stream`, which
// first waits for `compute` (the exchange's buffers are allocated there). Used by every collective
// that agrees before it moves data (forward, backward, all-to-all, a rank's rejection).
std::vector<RunDescriptor> exchange_descriptors(NcclComm& c, tasp_cu_stream compute, tasp_cu_stream stream,
                                                const RunDescriptor& mine) {
  const int64_t words = descriptor_words(c.world);
  std::vector<int64_t> host = encode_descriptor(mine, c.world);
  std::vector<int64_t> gathered(static_cast<size_t>(words * c.world));
  const int32_t f32 = torch().dtype_float32();
  const int32_t cuda = torch().device_type_cuda();
  Tensor send = empty({2 * words}, f32, cuda, c.device);  // 8-byte words as pairs of floats
  Tensor recv = empty({2 * words * c.world}, f32, cuda, c.device);
  CudaEvent allocated;  // the buffers were made on the compute stream
  allocated.order(compute, stream);
  const size_t bytes = static_cast<size_t>(words) * sizeof(int64_t);
  check_cu(cuda_driver().memcpy_htod_async(reinterpret_cast<tasp_cu_deviceptr>(data_of(send.get())), host.data(),
                                           bytes, stream),
           "cuMemcpyHtoDAsync");
  ncclResult_t r =
      c.api->all_gather(data_of(send.get()), data_of(recv.get()), bytes, TASP_NCCL_UINT8, c.comm, stream);
  if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) check_nccl(*c.api, r, "ncclAllGather");
  wait_nccl_ready(c, "exchanging run descriptors");
  CudaEvent gathered_event;
  check_cu(cuda_driver().event_record(gathered_event.get(), stream), "cuEventRecord");
  wait_events(c, {gathered_event.get()}, "waiting for every rank's run descriptor");
  // The stream is idle now, so this copy cannot block on a peer.
  check_cu(cuda_driver().memcpy_dtoh(gathered.data(), reinterpret_cast<tasp_cu_deviceptr>(data_of(recv.get())),
                                     bytes * c.world),
           "cuMemcpyDtoH");
  std::vector<RunDescriptor> all;
  for (int r2 = 0; r2 < c.world; ++r2) {
    all.push_back(decode_descriptor(&gathered[static_cast<size_t>(r2 * words)], c.world));
  }
  return all;
}

// Throws TASP_ERR_ARGUMENT unless the exchanged descriptors agree (every pair's transfers too). All
// ranks saw the same descriptors, so all fail alike and nothing has moved: the communicator stays usable.
void check_all_agree(const NcclComm& c, const std::vector<RunDescriptor>& all) {
  std::vector<const RunDescriptor*> views;
  for (const RunDescriptor& d : all) views.push_back(&d);
  check_agreement(c.rank, views, /*all_pairs=*/true, /*same_device=*/false);
}

// After a failure past the agreement: NCCL peers blocked in a transfer with this rank return only
// when the communicator is aborted (it cannot be used again). The compute stream, which owns the
// memory of the buffers freed on return, then waits for `stream`, so no later kernel reuses memory a
// transfer still touches.
void abort_and_drain(NcclComm& c, tasp_cu_stream stream, tasp_cu_stream compute) noexcept {
  try {
    abort_comm(c);
  } catch (...) {
  }
  if (stream == nullptr) return;
  tasp_cu_event drained = nullptr;
  if (cuda_driver().event_create(&drained, TASP_CU_EVENT_DISABLE_TIMING) == TASP_CU_SUCCESS) {
    cuda_driver().event_record(drained, stream);
    cuda_driver().stream_wait_event(compute, drained, 0);
    cuda_driver().event_destroy(drained);
  }
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
  cuda_set_device(device);
  // Nonblocking: init returns at once (ncclInProgress) and we poll it against the timeout, so a peer
  // that never joins costs a timeout and an abort, never a thread stuck inside NCCL.
  tasp_nccl_config config;
  config.size = sizeof(config);
  config.magic = TASP_NCCL_CONFIG_MAGIC;
  config.version = TASP_NCCL_CONFIG_VERSION;
  config.blocking = 0;
  config.cgaClusterSize = TASP_NCCL_CONFIG_UNDEF_INT;
  config.minCTAs = TASP_NCCL_CONFIG_UNDEF_INT;
  config.maxCTAs = TASP_NCCL_CONFIG_UNDEF_INT;
  config.netName = nullptr;
  ncclResult_t r = api.comm_init_rank_config(&c->comm, world, id, rank, &config);
  if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) {
    if (c->comm != nullptr) api.comm_abort(c->comm);
    check_nccl(api, r, "ncclCommInitRankConfig");
  }
  if (c->comm == nullptr) fail(TASP_ERR_TORCH, who(*c) + ": ncclCommInitRankConfig returned no communicator");
  try {
    wait_nccl_ready(*c, "waiting for every rank to join (ncclCommInitRankConfig)");
  } catch (const Error& e) {
    fail(TASP_ERR_GROUP, std::string(e.what()) + "; not every rank joined");
  }
  return c.release();
}

void nccl_comm_abort(NcclComm* comm) {
  if (comm == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(comm->mutex);
    if (comm->busy) {
      comm->abort_requested = true;  // the forward aborts it at its next poll
      return;
    }
  }
  abort_comm(*comm);
}

void nccl_comm_destroy(NcclComm* comm) {
  if (comm == nullptr) return;
  std::unique_ptr<NcclComm> owned(comm);
  if (comm->aborted || comm->comm == nullptr) return;  // ncclCommAbort freed it
  // Finalize flushes what is in flight; with a dead peer it never completes, so it is bounded by the
  // timeout and the communicator is aborted past it instead of blocking in ncclCommDestroy.
  try {
    ncclResult_t r = comm->api->comm_finalize(comm->comm);
    if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) check_nccl(*comm->api, r, "ncclCommFinalize");
    wait_nccl_ready(*comm, "finalizing the communicator");
  } catch (const Error&) {
    abort_comm(*comm);
    return;
  }
  comm->api->comm_destroy(comm->comm);
}

namespace {

// One rank per GPU over NCCL. Start: the ranks exchange run descriptors (ncclAllGather) and check
// them before any key or value moves; the communication stream then waits for the compute stream
// (the staged inputs and the freshly allocated buffers). Per step: the communication stream waits
// until the compute stream finished step - 1 (whose attention read the buffer this step
// overwrites), then runs the step's sends and receives as one NCCL group and records
// `landed[step]`; the compute stream waits for `landed[step - 1]` before the step's attention and
// records `computed[step]` after it. Messages pair per peer in order: K then V, batch element by
// batch element, entry by entry, on both sides (the agreement check compares these orders).
class NcclTransport final : public Transport {
 public:
  explicit NcclTransport(NcclComm& c) : c_(c) {
    cuda_set_device(c_.device);
    void* torch_stream = nullptr;
    check_torch(torch_fn<aoti_get_current_cuda_stream_fn>("aoti_torch_get_current_cuda_stream", true)(c_.device,
                                                                                                    &torch_stream),
                "aoti_torch_get_current_cuda_stream");
    compute_ = static_cast<tasp_cu_stream>(torch_stream);
    check_cu(cuda_driver().stream_create(&comm_stream_, TASP_CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  }

  ~NcclTransport() override {
    for (tasp_cu_event e : computed_) cuda_driver().event_destroy(e);
    for (tasp_cu_event e : landed_) cuda_driver().event_destroy(e);
    if (inputs_ready_ != nullptr) cuda_driver().event_destroy(inputs_ready_);
    if (comm_stream_ != nullptr) cuda_driver().stream_destroy(comm_stream_);
  }

  int rank() const override { return c_.rank; }
  int world() const override { return c_.world; }

  void check_device(const TensorInfo& q) const override { check_on_device(c_, q); }

  void start(const Program& program, const RunDescriptor& descriptor,
             std::shared_ptr<const RankBuffers> own) override {
    program_ = &program;
    own_ = std::move(own);
    std::vector<RunDescriptor> all = exchange(descriptor);
    try {
      check_all_agree(c_, all);
    } catch (const Error&) {
      agreement_failed_ = true;  // every rank saw the same descriptors and fails the same way
      throw;
    }
    size_t steps = program.steps.size();
    computed_.assign(steps, nullptr);
    landed_.assign(steps, nullptr);
    for (size_t s = 0; s < steps; ++s) {
      check_cu(cuda_driver().event_create(&computed_[s], TASP_CU_EVENT_DISABLE_TIMING), "cuEventCreate");
      check_cu(cuda_driver().event_create(&landed_[s], TASP_CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    }
    // The staged shard and the receive buffers were made on the compute stream.
    check_cu(cuda_driver().event_create(&inputs_ready_, TASP_CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    check_cu(cuda_driver().event_record(inputs_ready_, compute_), "cuEventRecord");
    check_cu(cuda_driver().stream_wait_event(comm_stream_, inputs_ready_, 0), "cuStreamWaitEvent");
  }

  void post(int64_t step) override {
    check();
    const StepProgram& sp = program_->steps[static_cast<size_t>(step)];
    if (step >= 1) {
      check_cu(cuda_driver().stream_wait_event(comm_stream_, computed_[static_cast<size_t>(step - 1)], 0),
                 "cuStreamWaitEvent");
    }
    if (!sp.sends.empty() || !sp.recvs.empty()) {
      NcclGroupCall group(c_);
      for (const Send& x : sp.sends) {
        each_segment(x.src_buffer, x.src_start, x.count, [&](void* ptr, size_t bytes) {
          check_nccl(*c_.api, c_.api->send(ptr, bytes, TASP_NCCL_UINT8, static_cast<int>(x.peer), c_.comm,
                                           comm_stream_),
                     "ncclSend");
        });
        bytes_sent_ += own_->transfer_bytes(x.src_buffer, x.count);
      }
      for (const Recv& x : sp.recvs) {
        each_segment(x.dst_buffer, x.dst_start, x.count, [&](void* ptr, size_t bytes) {
          check_nccl(*c_.api, c_.api->recv(ptr, bytes, TASP_NCCL_UINT8, static_cast<int>(x.peer), c_.comm,
                                           comm_stream_),
                     "ncclRecv");
        });
      }
      group.end("posting the transfers of step " + std::to_string(step));
    }
    check_cu(cuda_driver().event_record(landed_[static_cast<size_t>(step)], comm_stream_), "cuEventRecord");
  }

  void before_compute(int64_t step) override {
    if (step >= 1) {
      check_cu(cuda_driver().stream_wait_event(compute_, landed_[static_cast<size_t>(step - 1)], 0), "cuStreamWaitEvent");
    }
  }

  // The sends of `step` read what the compute stream just added: the communication stream waits for it.
  void returns_added(int64_t) override {
    CudaEvent added;
    added.order(compute_, comm_stream_);
  }

  void after_compute(int64_t step) override {
    check_cu(cuda_driver().event_record(computed_[static_cast<size_t>(step)], compute_), "cuEventRecord");
    step_comm_ms_.push_back(0.0);  // asynchronous on the communication stream: not timed per step
    step_wait_ms_.push_back(0.0);
  }

  void finish() override {
    check_cu(cuda_driver().stream_wait_event(compute_, landed_.back(), 0), "cuStreamWaitEvent");
    // The buffers are freed when the executor returns: the transfers, and the attention that reads
    // them, must be done. Each completed step counts as progress.
    auto t0 = Clock::now();
    std::vector<tasp_cu_event> order;
    for (size_t s = 0; s < landed_.size(); ++s) {
      order.push_back(landed_[s]);
      order.push_back(computed_[s]);
    }
    wait_events(c_, order, "waiting for this rank's transfers and attention");
    wait_ms_ += ms_since(t0);
  }

  void check() const override {
    if (c_.aborted) fail(TASP_ERR_GROUP, who(c_) + ": the communicator was aborted");
    if (c_.abort_requested.load()) fail(TASP_ERR_GROUP, who(c_) + ": the communicator was closed or aborted");
  }

  void abort(const std::string& why, bool) noexcept override {
    try {
      if (!exchange_tried_) {
        // Failed before the agreement exchange (bad input on this rank): take part in it with the
        // reason, so every peer fails now, naming this rank, and the communicator stays usable.
        exchange(describe_error(RunKind::kForward, c_.world, why));
        return;
      }
      if (agreement_failed_) return;  // nothing moved; every rank failed the same check
    } catch (...) {
    }
    abort_and_drain(c_, comm_stream_, compute_);
  }

  void report(RankStats& stats) override {
    stats.bytes_sent = bytes_sent_;
    stats.wait_ms = wait_ms_;
    stats.step_comm_ms = step_comm_ms_;
    stats.step_wait_ms = step_wait_ms_;
  }

  // All ranks' descriptors, by rank.
  std::vector<RunDescriptor> exchange(const RunDescriptor& mine) {
    exchange_tried_ = true;
    return exchange_descriptors(c_, compute_, comm_stream_, mine);
  }

 private:
  // Calls fn(pointer, bytes) for each batch element's segment of tokens [start, start + count) of
  // the K buffer, then of the V buffer.
  template <typename Fn>
  void each_segment(int64_t buffer, int64_t start, int64_t count, Fn fn) {
    for (int kv = 0; kv < 2; ++kv) {
      AtenTensorHandle t = kv == 0 ? own_->k[buffer].get() : own_->v[buffer].get();
      TensorInfo ti = info(t);  // (B, S, H, D), dense per batch element
      const int64_t e = element_size(ti.dtype);
      char* base = static_cast<char*>(data_of(t));
      for (int64_t b = 0; b < own_->batch; ++b) {
        fn(base + (b * ti.strides[0] + start * ti.strides[1]) * e,
           static_cast<size_t>(count * own_->token_bytes[buffer]));
      }
    }
  }

  NcclComm& c_;
  const Program* program_ = nullptr;
  std::shared_ptr<const RankBuffers> own_;
  tasp_cu_stream compute_ = nullptr;
  tasp_cu_stream comm_stream_ = nullptr;
  tasp_cu_event inputs_ready_ = nullptr;
  std::vector<tasp_cu_event> computed_, landed_;
  bool exchange_tried_ = false;
  bool agreement_failed_ = false;
  int64_t bytes_sent_ = 0;
  double wait_ms_ = 0;
  std::vector<double> step_comm_ms_, step_wait_ms_;
};

// Marks the communicator busy for one collective; one caller at a time.
class Busy {
 public:
  explicit Busy(NcclComm& c) : c_(c) {
    std::lock_guard<std::mutex> lock(c_.mutex);
    if (c_.aborted) fail(TASP_ERR_GROUP, who(c_) + ": the communicator was aborted by an earlier failure; join a new one");
    if (c_.busy) {
      fail(TASP_ERR_STATE, who(c_) + ": the communicator is already running a collective on another thread "
                                     "(one at a time per communicator)");
    }
    c_.busy = true;
  }
  ~Busy() {
    std::lock_guard<std::mutex> lock(c_.mutex);
    c_.busy = false;
    if (c_.abort_requested.load() && !c_.aborted && c_.comm != nullptr) {
      c_.api->comm_abort(c_.comm);
      c_.aborted = true;
    }
  }

 private:
  NcclComm& c_;
};

}  // namespace

RankResult nccl_rank_forward(NcclComm& c, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                             AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  Busy busy(c);
  NcclTransport transport(c);
  return run_rank(transport, program, program_len, q, k, v, scale);
}

RankGradients nccl_rank_backward(NcclComm& c, const int64_t* program, int64_t program_len,
                                 const int64_t* return_map, int64_t return_map_len, AtenTensorHandle dout,
                                 AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, AtenTensorHandle out,
                                 AtenTensorHandle lse, const double* scale) {
  Busy busy(c);
  NcclTransport transport(c);
  return run_backward(transport, program, program_len, return_map, return_map_len, dout, q, k, v, out, lse, scale);
}

void nccl_all_reduce(NcclComm& c, const std::vector<AtenTensorHandle>& tensors) {
  Busy busy(c);
  cuda_set_device(c.device);
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorInfo ti = info(tensors[i]);
    if (ti.dtype != torch().dtype_float32() || ti.device_type != torch().device_type_cuda() ||
        ti.device_index != c.device || ti.strides != contiguous_strides(ti.sizes)) {
      fail(TASP_ERR_ARGUMENT, who(c) + ": all-reduce tensor " + std::to_string(i) + " must be contiguous float32 on cuda:" +
                                  std::to_string(c.device) + ", got " + dtype_name(ti.dtype) + " " +
                                  shape_string(ti.sizes) + " on " + device_name(ti.device_type, ti.device_index));
    }
  }
  tasp_cu_stream compute = torch_current_stream(c.device);
  OwnedStream owned;
  tasp_cu_stream stream = owned.get();
  try {
    CudaEvent inputs;  // the gradients were written on the compute stream
    inputs.order(compute, stream);
    {
      NcclGroupCall group(c);
      for (AtenTensorHandle t : tensors) {
        TensorInfo ti = info(t);
        size_t n = 1;
        for (int64_t z : ti.sizes) n *= static_cast<size_t>(z);
        if (n == 0) continue;
        void* p = data_of(t);
        ncclResult_t r = c.api->all_reduce(p, p, n, TASP_NCCL_FLOAT32, TASP_NCCL_SUM, c.comm, stream);
        if (r != TASP_NCCL_SUCCESS && r != TASP_NCCL_IN_PROGRESS) check_nccl(*c.api, r, "ncclAllReduce");
      }
      group.end("posting the all-reduce");
    }
    CudaEvent done;
    check_cu(cuda_driver().event_record(done.get(), stream), "cuEventRecord");
    wait_events(c, {done.get()}, "waiting for the all-reduce");
  } catch (...) {
    abort_comm(c);  // a peer may be blocked in the collective: only an abort releases it
    throw;
  }
}

AllToAllResult nccl_all_to_all(NcclComm& c, const std::vector<AtenTensorHandle>& sends,
                               const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like) {
  const auto t_start = Clock::now();
  Busy busy(c);
  cuda_set_device(c.device);
  tasp_cu_stream compute = torch_current_stream(c.device);
  OwnedStream owned;
  tasp_cu_stream stream = owned.get();
  AllToAllShape shape;
  try {
    shape = describe_all_to_all("nccl all-to-all", c.rank, c.world, sends, recv_sizes, like);
    check_on_device(c, shape.like);  // describe_all_to_all checked that every piece is where `like` is
  } catch (const std::exception& bad) {
    // Bad input on this rank: take part in the agreement exchange with the reason, so every peer
    // fails now naming this rank (check_agreement reports errors first) and the communicator stays
    // usable. If that exchange fails too, the communicator is aborted.
    try {
      exchange_descriptors(c, compute, stream, describe_error(RunKind::kAllToAll, c.world, bad.what()));
    } catch (...) {
      abort_and_drain(c, stream, compute);
    }
    throw;
  }
  std::vector<RunDescriptor> all;
  try {
    all = exchange_descriptors(c, compute, stream, shape.descriptor);
  } catch (...) {
    abort_and_drain(c, stream, compute);  // a peer may still be inside the all-gather
    throw;
  }
  check_all_agree(c, all);  // nothing moved yet: a disagreement leaves the communicator usable
  AllToAllResult result;
  try {
    const size_t world = static_cast<size_t>(c.world);
    std::vector<Tensor> recv = allocate_receives(shape, recv_sizes);
    // NCCL sends bytes from one pointer: a piece that is not contiguous is first copied into a
    // contiguous temporary, on the compute stream like everything that wrote the pieces.
    std::vector<Tensor> staged(world);
    std::vector<void*> send_ptr(world, nullptr);
    for (size_t p = 0; p < world; ++p) {
      if (shape.send_bytes[p] == 0) continue;  // no piece, or an empty one (its receiver expects 0 bytes too)
      const TensorInfo& s = shape.send_info[p];
      AtenTensorHandle src = sends[p];
      if (s.strides != contiguous_strides(s.sizes)) {
        staged[p] = empty(s.sizes, s.dtype, s.device_type, s.device_index);
        check_torch(torch().copy(staged[p].get(), src, 0), "aoti_torch_copy_ (nccl all-to-all piece)");
        src = staged[p].get();
      }
      send_ptr[p] = data_of(src);
    }
    CudaEvent written;  // pieces, copies and receive tensors were made on the compute stream
    written.order(compute, stream);
    bool any = false;
    for (size_t p = 0; p < world; ++p) any = any || shape.send_bytes[p] > 0 || shape.recv_bytes[p] > 0;
    if (any) {
      // Both sides skip empty transfers: the agreed shapes make them empty on both.
      NcclGroupCall group(c);
      for (size_t p = 0; p < world; ++p) {
        const int peer = static_cast<int>(p);
        if (shape.send_bytes[p] > 0) {
          check_nccl(*c.api,
                     c.api->send(send_ptr[p], static_cast<size_t>(shape.send_bytes[p]), TASP_NCCL_UINT8, peer, c.comm,
                                 stream),
                     "ncclSend");
          result.stats.bytes_sent += shape.send_bytes[p];
        }
        if (shape.recv_bytes[p] > 0) {
          check_nccl(*c.api,
                     c.api->recv(data_of(recv[p].get()), static_cast<size_t>(shape.recv_bytes[p]), TASP_NCCL_UINT8,
                                 peer, c.comm, stream),
                     "ncclRecv");
        }
      }
      group.end("posting the all-to-all");
    }
    CudaEvent done;  // later kernels on the compute stream read the received tensors
    done.order(stream, compute);
    const auto t_wait = Clock::now();
    // Also keeps the temporaries and the caller's pieces alive until NCCL has read them.
    wait_events(c, {done.get()}, "waiting for the all-to-all's transfers");
    result.stats.wait_ms = ms_since(t_wait);
    result.received = std::move(recv);
  } catch (...) {
    abort_and_drain(c, stream, compute);  // peers may be blocked in a transfer with this rank
    throw;
  }
  result.stats.total_ms = ms_since(t_start);
  return result;
}

void nccl_reject(NcclComm& c, const std::string& why) {
  Busy busy(c);
  NcclTransport transport(c);
  transport.abort(why, false);
}

}  // namespace tasp
