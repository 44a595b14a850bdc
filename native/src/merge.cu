// CUDA flavor: the fp32 log-sum-exp merge as one kernel, on libtorch's current stream.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "errors.h"
#include "merge.h"
#include "torch_api.h"

namespace tasp {
namespace {

template <typename T>
__device__ float to_float(T x);
template <>
__device__ float to_float<float>(float x) { return x; }
template <>
__device__ float to_float<__half>(__half x) { return __half2float(x); }
template <>
__device__ float to_float<__nv_bfloat16>(__nv_bfloat16 x) { return __bfloat162float(x); }

// One block per (batch, head, row); threads stride over the head dimension.
template <typename T>
__global__ void merge_kernel(MergeArgs m, const T* block_out) {
  int64_t row = blockIdx.x;
  int64_t s = row % m.rows;
  int64_t h = (row / m.rows) % m.heads;
  int64_t b = row / (m.rows * m.heads);
  float block_lse = m.block_lse[b * m.block_lse_strides[0] + h * m.block_lse_strides[1] + s * m.block_lse_strides[2]];
  if (block_lse == -INFINITY) return;
  float* acc_lse = m.acc_lse + b * m.acc_lse_strides[0] + h * m.acc_lse_strides[1] + s * m.acc_lse_strides[2];
  float old_lse = *acc_lse;
  float hi = fmaxf(old_lse, block_lse);
  float lse = hi + logf(expf(old_lse - hi) + expf(block_lse - hi));
  float w_old = old_lse == -INFINITY ? 0.0f : expf(old_lse - lse);
  float w_new = expf(block_lse - lse);
  float* acc = m.acc_out + b * m.acc_out_strides[0] + h * m.acc_out_strides[1] + s * m.acc_out_strides[2];
  int64_t base = b * m.block_out_strides[0] + h * m.block_out_strides[1] + s * m.block_out_strides[2];
  for (int64_t d = threadIdx.x; d < m.dim; d += blockDim.x) {
    acc[d] = w_old * acc[d] + w_new * to_float(block_out[base + d * m.block_out_strides[3]]);
  }
  __syncthreads();  // every thread read acc_lse's old value before it changes
  if (threadIdx.x == 0) *acc_lse = lse;
}

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fail(TASP_ERR_TORCH, std::string(what) + ": " + cudaGetErrorString(err));
}

}  // namespace

void merge_cuda(const MergeArgs& m, int32_t device_index) {
  int64_t rows = m.batch * m.heads * m.rows;
  if (rows == 0) return;
  void* stream = nullptr;
  auto get_stream = torch_fn<aoti_get_current_cuda_stream_fn>("aoti_torch_get_current_cuda_stream", true);
  check_torch(get_stream(device_index, &stream), "aoti_torch_get_current_cuda_stream");
  int previous = 0;
  check_cuda(cudaGetDevice(&previous), "cudaGetDevice");
  check_cuda(cudaSetDevice(device_index), "cudaSetDevice");
  dim3 grid(static_cast<unsigned>(rows));
  dim3 block(m.dim >= 128 ? 128 : 64);
  auto s = static_cast<cudaStream_t>(stream);
  switch (m.block_dtype) {
    case MergeDtype::kFloat32:
      merge_kernel<float><<<grid, block, 0, s>>>(m, static_cast<const float*>(m.block_out));
      break;
    case MergeDtype::kFloat16:
      merge_kernel<__half><<<grid, block, 0, s>>>(m, static_cast<const __half*>(m.block_out));
      break;
    case MergeDtype::kBFloat16:
      merge_kernel<__nv_bfloat16><<<grid, block, 0, s>>>(m, static_cast<const __nv_bfloat16*>(m.block_out));
      break;
  }
  cudaError_t launch = cudaGetLastError();
  cudaSetDevice(previous);
  check_cuda(launch, "merge kernel launch");
}

}  // namespace tasp
