// NCCL communicators and the executor over them: one rank per GPU, in this process or another,
// joined by a unique id (the transport itself: transport_nccl.cpp, CUDA flavor; the CPU flavor
// reports that it cannot, transport_nccl_stub.cpp).
//
// Communicators are nonblocking (ncclConfig_t.blocking = 0): no call blocks inside NCCL; every wait
// polls ncclCommGetAsyncError against a progress deadline (the communicator's timeout since the
// last progress) and aborts the communicator past it. An aborted communicator cannot run again.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "all_to_all.h"
#include "executor.h"
#include "executor_backward.h"
#include "torch_api.h"

namespace tasp {

struct NcclComm;

// Joins rank `rank` of `world` ranks to the communicator named by `unique_id` (128 bytes) on CUDA
// device `device`. Gives up (and aborts the half-made communicator) after timeout_ms.
NcclComm* nccl_comm_create(const char* nccl_path, int world, int rank, const char* unique_id, int device,
                           int64_t timeout_ms);
// Frees the communicator: finalizes it (bounded by its timeout; aborts it past that, so a dead peer
// never blocks this). The caller guarantees no forward uses it any more (NcclCommunicator counts).
void nccl_comm_destroy(NcclComm* comm);
// Safe from any thread: a forward in flight aborts the communicator at its next poll (within
// milliseconds) and fails; with none in flight the communicator is aborted now.
void nccl_comm_abort(NcclComm* comm);

RankResult nccl_rank_forward(NcclComm& comm, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                             AtenTensorHandle k, AtenTensorHandle v, const double* scale);
// The backward of nccl_rank_forward (see executor_backward.h); q, k, v, out, lse, dout on its GPU.
RankGradients nccl_rank_backward(NcclComm& comm, const int64_t* program, int64_t program_len,
                                 const int64_t* return_map, int64_t return_map_len, AtenTensorHandle dout,
                                 AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, AtenTensorHandle out,
                                 AtenTensorHandle lse, const double* scale);
// Sums each tensor over the ranks, in place (ncclAllReduce, fp32): every rank passes the same number
// of tensors with the same element counts, contiguous float32 on the communicator's GPU. Returns
// when the sums are complete (polled against the communicator's timeout).
void nccl_all_reduce(NcclComm& comm, const std::vector<AtenTensorHandle>& tensors);
// This rank's part of a personalized all-to-all over NCCL (see all_to_all.h for the arguments): the
// pieces, `like` and the received tensors on the communicator's GPU. The ranks first agree through
// the same descriptor exchange as the forward (a disagreement or a peer's nccl_reject fails every
// rank at once, and the communicator stays usable); bad input on this rank is sent to the peers
// through that exchange. Then one NCCL group of sends and receives on a stream of its own, ordered
// after libtorch's current stream; libtorch's stream waits for the transfers before this returns.
// A timeout or an NCCL error aborts the communicator.
AllToAllResult nccl_all_to_all(NcclComm& comm, const std::vector<AtenTensorHandle>& sends,
                               const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like);
// This rank cannot run the collective the others are starting (bad input found before the native
// call): takes part in the agreement exchange with `why`, so every rank fails at once, naming it.
void nccl_reject(NcclComm& comm, const std::string& why);

}  // namespace tasp
