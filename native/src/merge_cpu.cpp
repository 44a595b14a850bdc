#include <cmath>
#include <cstring>

#include "merge.h"

namespace tasp {
namespace {

float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

float f16_to_float(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

template <MergeDtype D>
float load(const void* base, int64_t offset) {
  if constexpr (D == MergeDtype::kFloat32) {
    return static_cast<const float*>(base)[offset];
  } else if constexpr (D == MergeDtype::kBFloat16) {
    return bf16_to_float(static_cast<const uint16_t*>(base)[offset]);
  } else {
    return f16_to_float(static_cast<const uint16_t*>(base)[offset]);
  }
}

// One instantiation per block dtype and per "last dimension dense" (then the row loop is a plain
// array loop the compiler vectorizes; the merge runs once per attention task on every query row).
template <MergeDtype D, bool kDense>
void merge_rows(const MergeArgs& m) {
  const int64_t d_stride = kDense ? 1 : m.block_out_strides[3];
  for (int64_t b = 0; b < m.batch; ++b) {
    for (int64_t h = 0; h < m.heads; ++h) {
      for (int64_t s = 0; s < m.rows; ++s) {
        float* acc_lse = m.acc_lse + b * m.acc_lse_strides[0] + h * m.acc_lse_strides[1] + s * m.acc_lse_strides[2];
        float block_lse = m.block_lse[b * m.block_lse_strides[0] + h * m.block_lse_strides[1] + s * m.block_lse_strides[2]];
        // A non-finite LSE marks an empty partial: -inf when the block saw no key for this row, +inf
        // (or NaN) where a kernel marked a fully masked row. It contributes nothing (no NaN); an
        // accumulator row in that state holds nothing yet, whatever its values.
        if (!std::isfinite(block_lse)) continue;
        float old_lse = *acc_lse;
        bool acc_empty = !std::isfinite(old_lse);
        float hi = acc_empty || block_lse > old_lse ? block_lse : old_lse;
        float lse = acc_empty ? block_lse : hi + std::log(std::exp(old_lse - hi) + std::exp(block_lse - hi));
        float w_old = acc_empty ? 0.0f : std::exp(old_lse - lse);
        float w_new = std::exp(block_lse - lse);
        float* __restrict acc = m.acc_out + b * m.acc_out_strides[0] + h * m.acc_out_strides[1] + s * m.acc_out_strides[2];
        const int64_t base = b * m.block_out_strides[0] + h * m.block_out_strides[1] + s * m.block_out_strides[2];
        if (acc_empty) {
          for (int64_t d = 0; d < m.dim; ++d) acc[d] = w_new * load<D>(m.block_out, base + d * d_stride);
        } else {
          for (int64_t d = 0; d < m.dim; ++d) acc[d] = w_old * acc[d] + w_new * load<D>(m.block_out, base + d * d_stride);
        }
        *acc_lse = lse;
      }
    }
  }
}

template <MergeDtype D>
void merge_dtype(const MergeArgs& m) {
  if (m.block_out_strides[3] == 1 || m.dim == 1) {
    merge_rows<D, true>(m);
  } else {
    merge_rows<D, false>(m);
  }
}

}  // namespace

void merge_cpu(const MergeArgs& m) {
  switch (m.block_dtype) {
    case MergeDtype::kFloat32:
      return merge_dtype<MergeDtype::kFloat32>(m);
    case MergeDtype::kBFloat16:
      return merge_dtype<MergeDtype::kBFloat16>(m);
    case MergeDtype::kFloat16:
      return merge_dtype<MergeDtype::kFloat16>(m);
  }
}

}  // namespace tasp
