// Runs one rank's lowered plan (a "program", built by the Java planner) over a transport
// (transport.h: in-process groups, NCCL).
//
// Program (int64 words), version 1:
//   header: magic, version, rank, world, steps, q_tokens, kv_tokens, recv_capacity
//   per step: n_sends, n_recvs, n_tasks, then
//     n_sends x (peer, src_buffer, src_start, count, dst_buffer, dst_start)
//     n_recvs x (peer, dst_buffer, dst_start, count)
//     n_tasks x (q_start, q_count, buffer, kv_start, kv_count, causal)
// Buffers: 0 and 1 are the double-buffered receive buffers, 2 is the rank's own key/value shard.
// Tokens are positions along the sequence axis of (B, S, H, D) buffers, so a token range of a
// buffer is one strided copy and one attention operand, never a concatenation.
//
// Per step t (executor.cpp, run_rank): the transport starts step t's transfers, which overwrite
// buffer t % 2 once nobody reads it any more; meanwhile this thread runs the step's attention tasks
// on what step t-1 received and merges them into fp32 accumulators; then the transport completes
// (or orders) step t's transfers.
#pragma once

#include <cstdint>
#include <vector>

#include "group.h"
#include "torch_api.h"

namespace tasp {

constexpr int64_t kProgramMagic = 0x7A5B0001;
constexpr int64_t kProgramVersion = 1;

struct RankStats {
  double compute_ms = 0;   // attention and merge
  double comm_ms = 0;      // copies and emulated link time, on the communication thread
  double wait_ms = 0;      // waiting for peers (receivers ready, arrivals)
  double total_ms = 0;
  int64_t bytes_sent = 0;
  int64_t buffer_bytes = 0;  // what the executor allocated for this rank: staging, receive buffers, accumulators
  std::vector<double> step_compute_ms, step_comm_ms, step_wait_ms;
};

struct RankResult {
  Tensor out;  // (B, Hq, Sq, D), input dtype
  Tensor lse;  // (B, Hq, Sq), fp32
  RankStats stats;
};

// The in-process transport's entry: q (B, Hq, Sq, D); k, v (B, Hkv, Skv, D): this rank's shard,
// in the plan's local order.
RankResult rank_forward(Group& group, int rank, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                        AtenTensorHandle k, AtenTensorHandle v, const double* scale);

}  // namespace tasp
