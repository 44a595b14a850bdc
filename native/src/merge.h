// The fp32 log-sum-exp merge of partial attention results, on raw memory: a loop on the CPU, a
// kernel on CUDA (kernels.cu, launched by merge_cuda.cpp;
// CUDA flavor only). attention.cpp checks shapes and fills MergeArgs.
#pragma once

#include <cstdint>

namespace tasp {

enum class MergeDtype { kFloat32, kFloat16, kBFloat16 };

struct MergeArgs {
  int64_t batch = 0, heads = 0, rows = 0, dim = 0;
  float* acc_out = nullptr;        // (B, H, S, D) fp32, last dimension dense
  float* acc_lse = nullptr;        // (B, H, S) fp32
  const void* block_out = nullptr;  // (B, H, S, D), any strides, block_dtype
  const float* block_lse = nullptr;  // (B, H, S) fp32, any strides
  int64_t acc_out_strides[4] = {0, 0, 0, 0};
  int64_t acc_lse_strides[3] = {0, 0, 0};
  int64_t block_out_strides[4] = {0, 0, 0, 0};
  int64_t block_lse_strides[3] = {0, 0, 0};
  MergeDtype block_dtype = MergeDtype::kFloat32;
};

void merge_cpu(const MergeArgs& m);
// Runs on libtorch's current CUDA stream of the device; throws on a CPU-only build.
void merge_cuda(const MergeArgs& m, int32_t device_index);
// Fills n floats of device memory with `value` on libtorch's current stream (no host copy).
void fill_cuda(float* data, int64_t n, float value, int32_t device_index);

}  // namespace tasp
