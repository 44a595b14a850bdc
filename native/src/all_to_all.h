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
#include <string>
#include <vector>

#include "executor.h"
#include "executor_common.h"
#include "group.h"
#include "torch_api.h"

namespace tasp {

// One rank's all-to-all, checked and described before anything moves; shared by every transport
// (in-process here, TCP in transport_tcp.cpp, NCCL in transport_nccl.cpp), so that all of them check
// the same things and agree through the same run descriptor.
struct AllToAllShape {
  RunDescriptor descriptor;              // kind all-to-all; per-peer hashes of each piece's shape and dtype
  std::vector<TensorInfo> send_info;     // per peer; meaningful where sends[p] is not null
  std::vector<int64_t> send_bytes;       // per peer: bytes of the piece for p (0: none)
  std::vector<int64_t> recv_bytes;       // per peer: bytes expected from p (0 where nothing comes)
  int64_t expected = 0;                  // how many peers send to this rank
  TensorInfo like;                       // the exchange's dtype and device
};

// Checks the arguments (one piece and one shape per rank, nothing to itself, matching dtype and
// device, no negative size) and describes the exchange; throws TASP_ERR_ARGUMENT naming the problem.
// `transport` names the caller in messages ("all-to-all", "tcp all-to-all", ...).
AllToAllShape describe_all_to_all(const std::string& transport, int rank, int world,
                                  const std::vector<AtenTensorHandle>& sends,
                                  const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like);

// The receive tensors of an all-to-all: per peer, a fresh contiguous tensor of the expected shape with
// `like`'s dtype and device, or null where nothing comes.
std::vector<Tensor> allocate_receives(const AllToAllShape& shape, const std::vector<std::vector<int64_t>>& recv_sizes);

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
