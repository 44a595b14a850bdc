// A personalized all-to-all between the ranks of an in-process group: each rank sends one tensor to
// each peer it names and receives one tensor of an agreed shape from each peer that names it. It is
// the transfer of head-parallel attention (Ulysses, hybrids): the caller cuts heads and tokens into
// the pieces and puts the received pieces together (runtime/HeadParallelForward.java); this module
// only moves them, under the group's promises (docs/ARCHITECTURE.md, "What a group promises"):
//   * agreement before any byte moves: every rank publishes a run descriptor of kind "all-to-all"
//     whose per-peer hashes cover each piece's shape and dtype; what r sends to p must be what p
//     expects from r, else every rank fails at once naming the pair;
//   * bounds: the receiver allocates and publishes its receive tensors; a sender checks shape, dtype
//     and byte size against them before it copies;
//   * lifetime: a sender holds its own reference to the receiver's published tensors while it copies;
//   * deadlines: every wait (start, arrivals) has the group's timeout and fails every rank;
//   * emulated fabric: each piece counts as arrived when its link's time (bytes / rate) has passed.
// Every rank of the group takes part in every all-to-all (a rank with nothing to exchange too), in
// the same order as its forwards: they share the group's run counter.
#pragma once

#include <cstdint>
#include <vector>

#include "executor.h"
#include "group.h"
#include "torch_api.h"

namespace tasp {

struct AllToAllResult {
  std::vector<Tensor> received;  // per peer; empty where nothing comes from that peer
  RankStats stats;               // comm (copies, link time), wait (for peers), bytes sent, total
};

// `sends[p]`: the piece for rank p, or null (never for `rank` itself); `recv_sizes[p]`: the shape of
// the piece expected from p, or empty. Pieces and received tensors share the dtype and device of
// `like`. Throws TASP_ERR_ARGUMENT for bad input or disagreeing ranks, TASP_ERR_GROUP when the group
// failed (a peer's failure or a timeout); either way every rank of the group fails.
AllToAllResult rank_all_to_all(Group& group, int rank, const std::vector<AtenTensorHandle>& sends,
                               const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like);

}  // namespace tasp
