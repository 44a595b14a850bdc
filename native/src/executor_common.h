// Pieces the executor and the transports share (executor.cpp, transport_inprocess.cpp,
// transport_nccl.cu): the parsed program, token-major views of (B, S, H, D) buffers, fp32
// accumulators and one attention task with its merge.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "attention.h"
#include "torch_api.h"

namespace tasp {

using Clock = std::chrono::steady_clock;

inline double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Send {
  int64_t peer, src_buffer, src_start, count, dst_buffer, dst_start;
};
struct Recv {
  int64_t peer, dst_buffer, dst_start, count;
};
struct Task {
  int64_t q_start, q_count, buffer, kv_start, kv_count, causal;
};
struct StepProgram {
  std::vector<Send> sends;
  std::vector<Recv> recvs;
  std::vector<Task> tasks;
};
struct Program {
  int64_t rank = 0, world = 0, q_tokens = 0, kv_tokens = 0, recv_capacity = 0;
  std::vector<StepProgram> steps;
};

// Parses and checks a program word by word; throws TASP_ERR_ARGUMENT naming what is wrong.
Program parse(const int64_t* words, int64_t n, int rank, int world);

// (B, S, H, D) buffer -> view (B, H, count, D) of tokens [start, start + count).
Tensor token_view(AtenTensorHandle buffer, int64_t start, int64_t count);
// The same tokens as a (B, count, H, D) view, for copies between buffers.
Tensor token_rows(AtenTensorHandle buffer, int64_t start, int64_t count);
void copy_tokens(AtenTensorHandle dst, int64_t dst_start, AtenTensorHandle src, int64_t src_start, int64_t count);
// (B, H, S, D) input -> new dense (B, S, H, D) buffer with the same values.
Tensor to_token_major(AtenTensorHandle t);
int64_t element_size(int32_t dtype);

struct Accumulators {
  Tensor out;  // (B, H, S, D) fp32, zero
  Tensor lse;  // (B, H, S) fp32, -inf: a row that has seen no key yet
  int64_t batch = 0, heads = 0, tokens = 0, dim = 0;
};
Accumulators make_accumulators(int64_t batch, int64_t heads, int64_t tokens, int64_t dim, const TensorInfo& like);

// Attention of q tokens [q_start, +q_count) over k/v tokens [kv_start, +kv_count), merged into acc.
void run_task(const Task& t, AtenTensorHandle q_tm, AtenTensorHandle k_buf, AtenTensorHandle v_buf, Accumulators& acc,
              const double* scale);

}  // namespace tasp
