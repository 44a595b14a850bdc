// NCCL communicators and the executor over them: one rank per GPU, in this process or another,
// joined by a unique id (the transport itself: transport_nccl.cu, CUDA flavor; the CPU flavor
// reports that it cannot, transport_nccl_stub.cpp).
#pragma once

#include <cstdint>

#include "executor.h"
#include "torch_api.h"

namespace tasp {

struct NcclComm;

// Joins rank `rank` of `world` ranks to the communicator named by `unique_id` (128 bytes) on CUDA
// device `device`. Gives up after timeout_ms.
NcclComm* nccl_comm_create(const char* nccl_path, int world, int rank, const char* unique_id, int device,
                           int64_t timeout_ms);
void nccl_comm_destroy(NcclComm* comm);

RankResult nccl_rank_forward(NcclComm& comm, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                             AtenTensorHandle k, AtenTensorHandle v, const double* scale);

}  // namespace tasp
