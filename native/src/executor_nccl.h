// The executor over NCCL: one rank per GPU, in this process or another, joined by a unique id.
// Per step: the step's sends and receives as one NCCL group on a communication stream, after the
// compute stream finished reading the buffer they overwrite; the step's attention on libtorch's
// current stream after the previous step's transfers landed; fp32 merge; double buffers. Waits on
// the GPU are polled against a deadline and abort the communicator when it passes.
// The CUDA flavor implements it (executor_nccl.cu); the CPU flavor reports that it cannot.
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
