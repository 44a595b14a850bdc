// CPU flavor: CUDA tensors cannot reach this build (libtorch_cuda is not loaded with it).
#include "errors.h"
#include "merge.h"

namespace tasp {

void merge_cuda(const MergeArgs&, int32_t) {
  fail(TASP_ERR_STATE, "merge on a CUDA tensor needs the cuda flavor of the tasp native library");
}

void fill_cuda(float*, int64_t, float, int32_t) {
  fail(TASP_ERR_STATE, "a CUDA fill needs the cuda flavor of the tasp native library");
}

}  // namespace tasp
