// The distributed attention backward over any transport (executor_backward.cpp).
//
// Each rank replays its forward program: the same key/value transfers over the same transport, step
// by step, double-buffered and overlapped with compute. Where the forward ran attention on a block,
// the backward runs the flash backward of that block with the rank's *global* output, LSE and output
// gradient, which gives that block's exact share of dq, dk and dv:
//   * dq adds up locally, in fp32;
//   * dk and dv of the rank's own keys add up in its fp32 accumulators;
//   * dk and dv of keys received in step t - 1 and computed on in step t are summed (fp32) into the
//     rank's return buffer of parity t (buffers 3, 4; executor_common.h) and leave in step t + 1, as
//     transfers of their own next to that step's key/value transfers, so they overlap step t + 1's
//     compute. They land in a return-receive buffer of parity t + 1 (buffers 5, 6) of either
//       - the rank the chunk was passed on to (a chain, as along ring and TASP cycles): it adds them,
//         before posting step t + 2, into its own return buffer for that chunk, which it sends on in
//         step t + 2; the accumulator trails the chunk one step behind over the same links, and the
//         last holder sends it to the owner (on a Hamiltonian cycle, its successor); or
//       - the owner (chunks passed on to several ranks), which adds them into its fp32 key gradients.
//     The backward has one step more than the forward: the last returns.
// Returns travel in fp32: a partial in the input dtype would be rounded once per rank that computed
// on the chunk, an error that grows with the world size; fp32 keeps the sum exact to fp32 rounding at
// any world size, for 2x the bytes of a bf16 return (the same bytes for fp32 inputs).
// Memory per rank stays O(S / n): two return buffers of the receive capacity, two return-receive
// buffers of the most tokens returned to the rank in one step.
//
// The return map (one array per rank, lowered by RankProgram.returnMapsAll from the same plan),
// version 3:
//   header: magic, version, forward steps S, return capacity (tokens, buffers 5 and 6)
//   per backward step b = 0 .. S: n_sends, n_recvs, then
//     n_sends x (peer, src_start, count, dst_start): tokens [src_start, + count) of return buffer
//               3 + (b - 1) % 2 go to the peer's return-receive buffer 5 + b % 2 at dst_start;
//     n_recvs x (peer, dst_start, count, kind, start): tokens [dst_start, + count) of this rank's
//               buffer 5 + b % 2 come from `peer` and add into its own key tokens [start, + count)
//               (kind 0) or into its return buffer 3 + b % 2 at start (kind 1, sent on in b + 1).
// Per peer pair the sends and receives of a step are in the same order (every transport pairs them).
#pragma once

#include <cstdint>

#include "executor.h"
#include "group.h"
#include "torch_api.h"

namespace tasp {

class Transport;

constexpr int64_t kReturnMapMagic = 0x7A5B0B01;
constexpr int64_t kReturnMapVersion = 3;

struct RankGradients {
  Tensor dq;  // (B, Hq, Sq, D), input dtype
  Tensor dk;  // (B, Hkv, Skv, D)
  Tensor dv;
  RankStats stats;
};

// One rank's backward over `transport`: q, k, v its shard (as for the forward); out, lse its forward
// result; dout the gradient of out. `program` is the forward's program, `return_map` its return map.
RankGradients run_backward(Transport& transport, const int64_t* program, int64_t program_len,
                           const int64_t* return_map, int64_t return_map_len, AtenTensorHandle dout,
                           AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, AtenTensorHandle out,
                           AtenTensorHandle lse, const double* scale);

// The in-process transport's entry (every rank of the group calls it from its own thread).
RankGradients rank_backward(Group& group, int rank, const int64_t* program, int64_t program_len,
                            const int64_t* return_map, int64_t return_map_len, AtenTensorHandle dout,
                            AtenTensorHandle q, AtenTensorHandle k, AtenTensorHandle v, AtenTensorHandle out,
                            AtenTensorHandle lse, const double* scale);

}  // namespace tasp
