// The TCP transport: one rank per process (processes on one machine or on several), for CPU
// tensors. A TcpMesh is this process's rank: a full mesh of TCP connections to every peer, made
// once (tcp_mesh_connect) with the addresses a rendezvous exchanged (Java: ProcessGroup), then
// used by every forward run. Why our own: docs/ARCHITECTURE.md ("Between processes").
//
// Wire: every message is a fixed header of int64 words (kind, run, step, dst_buffer, dst_start,
// count, payload bytes) and its payload. DATA carries the keys then the values of `count` tokens
// straight into the receiver's buffer dst_buffer; FAIL carries a failure's text; BYE says that the
// peer closes on purpose. One reader thread per peer reads what arrives: a DATA message waits
// (in the socket) until this rank finished step - 1, so the buffer it lands in is free; its
// destination must be the next receive the program expects from that peer, inside the buffer.
// A connection that ends without BYE fails the mesh at once, naming the lost rank.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace tasp
