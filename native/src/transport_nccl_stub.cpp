// CPU flavor: NCCL moves GPU memory, which this build never sees.
#include "errors.h"
#include "transport_nccl.h"

namespace tasp {

struct NcclComm {};

namespace {
[[noreturn]] void no_cuda() {
  fail(TASP_ERR_STATE, "the NCCL transport needs the cuda flavor of the tasp native library and GPU tensors");
}
}  // namespace

NcclComm* nccl_comm_create(const char*, int, int, const char*, int, int64_t) { no_cuda(); }

void nccl_comm_destroy(NcclComm* comm) { delete comm; }

void nccl_comm_abort(NcclComm*) {}

RankResult nccl_rank_forward(NcclComm&, const int64_t*, int64_t, AtenTensorHandle, AtenTensorHandle,
                             AtenTensorHandle, const double*) {
  no_cuda();
}

RankGradients nccl_rank_backward(NcclComm&, const int64_t*, int64_t, const int64_t*, int64_t, AtenTensorHandle,
                                 AtenTensorHandle, AtenTensorHandle, AtenTensorHandle, AtenTensorHandle,
                                 AtenTensorHandle, const double*) {
  no_cuda();
}

void nccl_all_reduce(NcclComm&, const std::vector<AtenTensorHandle>&) { no_cuda(); }

AllToAllResult nccl_all_to_all(NcclComm&, const std::vector<AtenTensorHandle>&,
                               const std::vector<std::vector<int64_t>>&, AtenTensorHandle) {
  no_cuda();
}

void nccl_reject(NcclComm&, const std::string&) { no_cuda(); }

}  // namespace tasp
