// CPU flavor: NCCL moves GPU memory, which this build never sees.
#include "errors.h"
#include "transport_nccl.h"

namespace tasp {

struct NcclComm {};

NcclComm* nccl_comm_create(const char*, int, int, const char*, int, int64_t) {
  fail(TASP_ERR_STATE, "the NCCL transport needs the cuda flavor of the tasp native library and GPU tensors");
}

void nccl_comm_destroy(NcclComm* comm) { delete comm; }

RankResult nccl_rank_forward(NcclComm&, const int64_t*, int64_t, AtenTensorHandle, AtenTensorHandle,
                             AtenTensorHandle, const double*) {
  fail(TASP_ERR_STATE, "the NCCL transport needs the cuda flavor of the tasp native library and GPU tensors");
}

}  // namespace tasp
