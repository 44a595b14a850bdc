// The distributed attention backward over the in-process transport (executor_backward.cpp).
//
// Each rank replays its forward program: the same key/value transfers over the same transport, step
// by step, double-buffered and overlapped with compute. Where the forward ran attention on a block,
// the backward runs the flash backward of that block with the rank's *global* output, LSE and output
// gradient, which gives that block's exact share of dq, dk and dv:
//   * dq adds up locally, in fp32;
//   * dk and dv of the rank's own keys add up in its fp32 accumulators; those of a received chunk
//     are added, in fp32, into the chunk owner's accumulators (a GradientExchange shared by the
//     ranks of one process) right after the step's compute, so memory stays O(S / n) per rank.
// The return map (one array per rank, lowered by RankProgram from the same plan) says, per step,
// where each received key range came from:
//   header: magic, version, steps; per step: n, then n x (buffer, start, count, owner, owner_start)
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "executor.h"
#include "group.h"
#include "torch_api.h"

namespace tasp {

constexpr int64_t kReturnMapMagic = 0x7A5B0B01;
constexpr int64_t kReturnMapVersion = 1;

// Where the dk/dv of received key ranges go: shared by the ranks of one backward run.
class GradientExchange {
 public:
  GradientExchange(int world_size, int64_t timeout_ms);

  int world_size() const { return world_; }
  // Publishes rank's fp32 accumulators (token-major (B, S, Hkv, D)) and waits until every rank has.
  void publish(Group& group, int rank, AtenTensorHandle dk_acc, AtenTensorHandle dv_acc);
  // acc[owner][owner_start .. + count) += part (fp32), under the owner's lock.
  void add_into(int owner, int64_t owner_start, AtenTensorHandle dk_part, AtenTensorHandle dv_part);
  // The rank's own keys: acc[rank] += part, under its lock (peers may add at the same time).
  void add_into_own(int rank, int64_t start, AtenTensorHandle dk_part, AtenTensorHandle dv_part) {
    add_into(rank, start, dk_part, dv_part);
  }
  // This rank made its last addition; waits until every rank has (then every accumulator is final).
  void finish(Group& group, int rank);
  // Wakes every waiter with this failure.
  void fail(const std::string& why);

 private:
  void wait_count(Group& group, int64_t& counter, const char* what);
  [[noreturn]] static void fail_arg(const std::string& why);

  int world_;
  int64_t timeout_ms_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<AtenTensorHandle> dk_, dv_;
  std::vector<std::unique_ptr<std::mutex>> owner_locks_;
  int64_t published_ = 0;
  int64_t finished_ = 0;
  bool failed_ = false;
  std::string failure_;
};

// acc (B, S, H, D) fp32, token rows [start, + count) += part (B, H, count, D).
void add_tokens(AtenTensorHandle acc_tm, int64_t start, AtenTensorHandle part);

struct RankGradients {
  Tensor dq;  // (B, Hq, Sq, D), input dtype
  Tensor dk;  // (B, Hkv, Skv, D)
  Tensor dv;
  RankStats stats;
};

// One rank's backward: q, k, v its shard (as for rank_forward); out, lse its forward result;
// dout the gradient of out. `program` is the forward's program, `return_map` its return map.
RankGradients rank_backward(Group& group, GradientExchange& exchange, int rank, const int64_t* program,
                            int64_t program_len, const int64_t* return_map, int64_t return_map_len,
                            AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v,
                            AtenTensorHandle out, AtenTensorHandle lse, const double* scale);

}  // namespace tasp
