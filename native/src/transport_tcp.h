// The TCP transport: one rank per process (processes on one machine or on several), for CPU
// tensors. A TcpMesh is this process's rank: a full mesh of TCP connections to every peer, made
// once (tcp_mesh_connect) with the addresses a rendezvous exchanged (Java: ProcessGroup), then
// used by every forward run. Why our own: docs/ARCHITECTURE.md ("Between processes").
//
// Wire: every message is a fixed header of int64 words (kind, run, step, dst_buffer, dst_start,
// count, payload bytes) and its payload. DESC carries a rank's run descriptor; DATA carries the keys
// then the values of `count` tokens straight into the receiver's buffer dst_buffer; PIECE carries a
// rank's whole piece for the receiver in an all-to-all run, straight into the receive tensor it
// allocated before the run agreed; REDUCE one rank's values of an all-reduce; FAIL a failure's text;
// BYE says that the peer closes on purpose. Forwards, backwards and all-to-alls share one run
// counter: every run starts with DESC to every peer and check_agreement over every pair, and nothing
// of a run lands before it agreed. One reader thread per peer reads what arrives: a DATA message
// waits (in the socket) until this rank finished step - 1, so the buffer it lands in is free; its
// destination must be the next receive the program expects from that peer, inside the buffer. A
// PIECE lands only if the run is an all-to-all that expects a piece from that peer, not yet
// arrived, of exactly the agreed byte count. A connection that ends without BYE, or a BYE while
// the run still needs something from that peer, fails the mesh at once, naming the rank.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "all_to_all.h"
#include "executor.h"
#include "executor_backward.h"

namespace tasp {

class TcpMesh;

// Listens on `bind_host` (a numeric IPv4 or IPv6 address) on an ephemeral port. Every wait on a
// peer (connecting, a transfer, an arrival) gives up after timeout_ms and fails the mesh.
TcpMesh* tcp_mesh_create(int world, int rank, const std::string& bind_host, int64_t timeout_ms);
int tcp_mesh_port(const TcpMesh& mesh);
int tcp_mesh_world(const TcpMesh& mesh);
// Connects to every peer (hosts[r], ports[r]); a connection is accepted only if it presents
// `token` (the session's, from the rendezvous). Returns when all are connected, or throws naming
// the ranks that did not connect in time.
void tcp_mesh_connect(TcpMesh& mesh, const std::vector<std::string>& hosts, const std::vector<int>& ports,
                      uint64_t token);
// Sums each tensor over the ranks, in place, in fp32 (summed in double, in rank order, so every rank
// gets the same values): every rank passes the same number of tensors with the same element counts,
// contiguous float32 on the CPU. Not during a forward or backward.
void tcp_all_reduce(TcpMesh& mesh, const std::vector<AtenTensorHandle>& tensors);
// Fails the mesh (first failure wins) and tells the peers.
void tcp_mesh_fail(TcpMesh& mesh, const std::string& message);
// Says goodbye to the peers, stops the reader threads and closes every socket.
void tcp_mesh_destroy(TcpMesh* mesh);

// Runs this rank's lowered plan over the mesh (see executor.h); q, k, v on the CPU.
RankResult tcp_rank_forward(TcpMesh& mesh, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                            AtenTensorHandle k, AtenTensorHandle v, const double* scale);

// The backward of tcp_rank_forward over the mesh (see executor_backward.h).
RankGradients tcp_rank_backward(TcpMesh& mesh, const int64_t* program, int64_t program_len, const int64_t* return_map,
                                int64_t return_map_len, AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k,
                                AtenTensorHandle v, AtenTensorHandle out, AtenTensorHandle lse, const double* scale);

// An all-to-all over the mesh (see all_to_all.h for its semantics and promises), CPU tensors only:
// every rank of the mesh calls it, in the same order as its forwards and backwards (they share the
// mesh's runs). Ranks that disagree on a piece fail alike (TASP_ERR_ARGUMENT, naming the pair) and
// the mesh stays usable; any other failure (bad input on one rank, a timeout, a lost or departed
// peer) fails the mesh on every rank (TASP_ERR_GROUP there). stats: comm (sending), wait (for the
// peers' pieces), bytes sent, total.
AllToAllResult tcp_all_to_all(TcpMesh& mesh, const std::vector<AtenTensorHandle>& sends,
                              const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like);

}  // namespace tasp
