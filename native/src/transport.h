// What the executor needs from a transport: move a step's key/value chunks between ranks while the
// step's attention runs, and fail every rank when one fails. Two implementations:
//   * InProcessTransport (transport_inprocess.cpp): ranks are threads of this process; a sender
//     copies into the receiver's buffer (host memcpy, or device copies for virtual GPU ranks),
//     optionally rate-limited per link (emulated fabric);
//   * NcclTransport (transport_nccl.cpp, CUDA flavor): one rank per GPU, grouped ncclSend/ncclRecv
//     on a communication stream, ordered against libtorch's compute stream with events.
// The step protocol (executor.cpp): start, then per step post -> before_compute -> attention ->
// after_compute, then finish; abort on any error. The backward (executor_backward.cpp) calls
// before_compute first, adds what came back, returns_added, then post -> compute -> after_compute.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "executor.h"
#include "executor_common.h"
#include "group.h"

namespace tasp {

class Transport {
 public:
  virtual ~Transport() = default;
  virtual int rank() const = 0;
  virtual int world() const = 0;
  // Throws TASP_ERR_ARGUMENT when the tensors are on a device this transport cannot serve.
  virtual void check_device(const TensorInfo& q) const = 0;
  // Publishes this rank's descriptor and buffers; returns when every rank has started this run and
  // all descriptors agree (check_agreement), before any byte moves. Throws otherwise, on every rank.
  virtual void start(const Program& program, const RunDescriptor& descriptor,
                     std::shared_ptr<const RankBuffers> own) = 0;
  // Starts step `step`'s sends and receives; they may run while the step's attention runs.
  virtual void post(int64_t step) = 0;
  // Before step `step`'s attention, which reads what step - 1 received.
  virtual void before_compute(int64_t step) = 0;
  // After step `step`'s attention was issued: completes or orders the step's transfers.
  virtual void after_compute(int64_t step) = 0;
  // Backward: the returns that step - 1 received were added into the buffers step `step` sends from
  // (called after before_compute(step), before post(step)); orders those sends after the adds.
  virtual void returns_added(int64_t /*step*/) {}
  // After the last step: every transfer done, so the buffers can be freed.
  virtual void finish() = 0;
  // Throws if a peer already failed (checked between attention tasks).
  virtual void check() const = 0;
  // This rank failed (before or after start): tell the peers so that none of them waits for it.
  // `group_error`: the failure came from the group itself (the peers know already).
  virtual void abort(const std::string& why, bool group_error) noexcept = 0;
  // Adds the transport's timings and counts.
  virtual void report(RankStats& stats) = 0;
  // Whether sends read buffer 2 through its strides (then the caller's k and v can be it, uncopied);
  // otherwise buffer 2 must be dense token-major.
  virtual bool sends_any_strides() const { return false; }
  // Where this rank's run buffers come from and go back to between runs; null: allocated per run.
  virtual std::shared_ptr<BufferPool> buffer_pool() { return nullptr; }
};

// Runs one rank's program over a transport (the step loop shared by every transport).
RankResult run_rank(Transport& transport, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                    AtenTensorHandle k, AtenTensorHandle v, const double* scale);

// The in-process transport of `rank` in `group`.
std::unique_ptr<Transport> in_process_transport(Group& group, int rank);

}  // namespace tasp
