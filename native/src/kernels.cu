// CUDA flavor: the library's own kernels. Compiled to PTX only (never linked against a CUDA
// runtime); cmake/embed_ptx.cmake lowers the PTX ISA version and embeds it, and cuda_driver.cpp
// loads it through the driver. Entry points are extern "C" so their names are stable.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "merge.h"

namespace {

constexpr int kWarp = 32;

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// Loads 4 consecutive elements of the partial output as floats (aligned: checked by the host).
__device__ __forceinline__ float4 load4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4(const __half* p) {
  uint2 raw = *reinterpret_cast<const uint2*>(p);
  __half2 a = *reinterpret_cast<__half2*>(&raw.x), b = *reinterpret_cast<__half2*>(&raw.y);
  float2 fa = __half22float2(a), fb = __half22float2(b);
  return make_float4(fa.x, fa.y, fb.x, fb.y);
}
__device__ __forceinline__ float4 load4(const __nv_bfloat16* p) {
  uint2 raw = *reinterpret_cast<const uint2*>(p);
  // bf16 -> fp32 is a 16-bit shift: no conversion instruction needed.
  return make_float4(__uint_as_float(raw.x << 16), __uint_as_float(raw.x & 0xffff0000u), __uint_as_float(raw.y << 16),
                     __uint_as_float(raw.y & 0xffff0000u));
}

// One warp per (batch, head, row): the row's log-sum-exp update is computed once per lane from the
// same two values, then the lanes stride over the head dimension, 4 elements at a time when the
// host found every row aligned and dense (kVec = 4), else one at a time.
template <typename T, int kVec>
__device__ void merge_rows(const tasp::MergeArgs& m) {
  const int64_t warps_per_block = blockDim.x / kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * warps_per_block + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= m.batch * m.heads * m.rows) return;
  const int64_t s = row % m.rows;
  const int64_t h = (row / m.rows) % m.heads;
  const int64_t b = row / (m.rows * m.heads);
  const float block_lse =
      m.block_lse[b * m.block_lse_strides[0] + h * m.block_lse_strides[1] + s * m.block_lse_strides[2]];
  // -inf: the block saw no key for this row; +inf or NaN: the kernel's mark of a fully masked row.
  // Either way the partial is empty and must not touch the accumulator.
  if (!isfinite(block_lse)) return;
  float* acc_lse = m.acc_lse + b * m.acc_lse_strides[0] + h * m.acc_lse_strides[1] + s * m.acc_lse_strides[2];
  const float old_lse = *acc_lse;
  // An accumulator row with a non-finite LSE holds nothing yet (whatever its values): the block
  // replaces it, so stale values (NaN) never leak in through a zero weight.
  const bool acc_empty = !isfinite(old_lse);
  const float hi = acc_empty ? block_lse : fmaxf(old_lse, block_lse);
  const float lse = acc_empty ? block_lse : hi + log1pf(expf(fminf(old_lse, block_lse) - hi));
  const float w_old = acc_empty ? 0.0f : expf(old_lse - lse);
  const float w_new = expf(block_lse - lse);
  float* acc = m.acc_out + b * m.acc_out_strides[0] + h * m.acc_out_strides[1] + s * m.acc_out_strides[2];
  const T* part = static_cast<const T*>(m.block_out) + b * m.block_out_strides[0] + h * m.block_out_strides[1] +
                  s * m.block_out_strides[2];
  if (kVec == 4) {
    for (int64_t d = 4 * lane; d < m.dim; d += 4 * kWarp) {
      float4 a = *reinterpret_cast<float4*>(acc + d);
      float4 p = load4(part + d);
      a.x = acc_empty ? w_new * p.x : w_old * a.x + w_new * p.x;
      a.y = acc_empty ? w_new * p.y : w_old * a.y + w_new * p.y;
      a.z = acc_empty ? w_new * p.z : w_old * a.z + w_new * p.z;
      a.w = acc_empty ? w_new * p.w : w_old * a.w + w_new * p.w;
      *reinterpret_cast<float4*>(acc + d) = a;
    }
  } else {
    for (int64_t d = lane; d < m.dim; d += kWarp) {
      const float x = to_float(part[d * m.block_out_strides[3]]);
      acc[d] = acc_empty ? w_new * x : w_old * acc[d] + w_new * x;
    }
  }
  __syncwarp();  // every lane read the old LSE before it changes
  if (lane == 0) *acc_lse = lse;
}

}  // namespace

extern "C" {
__global__ void tasp_merge_f32(tasp::MergeArgs m) { merge_rows<float, 1>(m); }
__global__ void tasp_merge_f16(tasp::MergeArgs m) { merge_rows<__half, 1>(m); }
__global__ void tasp_merge_bf16(tasp::MergeArgs m) { merge_rows<__nv_bfloat16, 1>(m); }
__global__ void tasp_merge_f32_vec4(tasp::MergeArgs m) { merge_rows<float, 4>(m); }
__global__ void tasp_merge_f16_vec4(tasp::MergeArgs m) { merge_rows<__half, 4>(m); }
__global__ void tasp_merge_bf16_vec4(tasp::MergeArgs m) { merge_rows<__nv_bfloat16, 4>(m); }

// Fills n floats with `value` (the accumulators' -inf), without a host-to-device copy.
__global__ void tasp_fill_f32(float* data, int64_t n, float value) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    data[i] = value;
  }
}
}
