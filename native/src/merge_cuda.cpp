// CUDA flavor: the fp32 log-sum-exp merge (kernels.cu) and a device fill, launched through the
// driver API on libtorch's current stream of the tensors' device.
#include <cstdint>
#include <string>

#include "cuda_driver.h"
#include "merge.h"

namespace tasp {
namespace {

constexpr uint32_t kWarpsPerBlock = 8;

bool aligned(const void* p, int64_t bytes) { return reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(bytes) == 0; }

// Whether every row of both outputs starts 16-byte (fp32) or 8-byte (16-bit) aligned and is dense,
// so that the kernel can move 4 elements per load.
bool vectorizable(const MergeArgs& m) {
  const int64_t elem = m.block_dtype == MergeDtype::kFloat32 ? 4 : 2;
  if (m.dim % 4 != 0 || m.block_out_strides[3] != 1 || m.acc_out_strides[3] != 1) return false;
  if (!aligned(m.acc_out, 16) || !aligned(m.block_out, 4 * elem)) return false;
  for (int i = 0; i < 3; ++i) {
    if (m.acc_out_strides[i] % 4 != 0 || m.block_out_strides[i] % 4 != 0) return false;
  }
  return true;
}

const char* kernel_name(MergeDtype dtype, bool vec) {
  switch (dtype) {
    case MergeDtype::kFloat32:
      return vec ? "tasp_merge_f32_vec4" : "tasp_merge_f32";
    case MergeDtype::kFloat16:
      return vec ? "tasp_merge_f16_vec4" : "tasp_merge_f16";
    case MergeDtype::kBFloat16:
      return vec ? "tasp_merge_bf16_vec4" : "tasp_merge_bf16";
  }
  return "tasp_merge_f32";
}

}  // namespace

void merge_cuda(const MergeArgs& m, int32_t device_index) {
  const int64_t rows = m.batch * m.heads * m.rows;
  if (rows == 0) return;
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks > 0x7fffffff) fail(TASP_ERR_ARGUMENT, "merge: " + std::to_string(rows) + " rows are too many for one launch");
  tasp_cu_stream stream = torch_current_stream(device_index);
  CudaContextScope scope(device_index);
  tasp_cu_function fn = cuda_kernel(device_index, kernel_name(m.block_dtype, vectorizable(m)));
  MergeArgs args = m;
  void* params[] = {&args};
  cuda_launch(fn, static_cast<uint32_t>(blocks), kWarpsPerBlock * 32, stream, params, "merge kernel launch");
}

void fill_cuda(float* data, int64_t n, float value, int32_t device_index) {
  if (n == 0) return;
  const uint32_t threads = 256;
  const int64_t wanted = (n + threads - 1) / threads;
  const uint32_t blocks = static_cast<uint32_t>(wanted < 4096 ? wanted : 4096);
  tasp_cu_stream stream = torch_current_stream(device_index);
  CudaContextScope scope(device_index);
  tasp_cu_function fn = cuda_kernel(device_index, "tasp_fill_f32");
  void* params[] = {&data, &n, &value};
  cuda_launch(fn, blocks, threads, stream, params, "fill kernel launch");
}

}  // namespace tasp
