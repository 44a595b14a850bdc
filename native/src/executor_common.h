// Pieces the executor and the transports share (executor.cpp, transport_inprocess.cpp,
// transport_nccl.cpp): the parsed program, token-major views of (B, S, H, D) buffers, fp32
// accumulators and one attention task with its merge.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
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

// What kind of program a run executes. Every rank of a run must run the same kind; a new kind (the
// distributed backward) adds a value here and its own fields to RunDescriptor if it needs any.
enum class RunKind : int64_t { kForward = 1, kBackward = 2, kAllToAll = 3 };
const char* run_kind_name(int64_t kind);

// What a rank publishes when it joins a run. Every transport compares the descriptors of all ranks
// (check_agreement) before any byte moves, so ranks called with different shapes, dtypes, devices,
// masks, scales or plans fail at once, all of them, with a message naming the rank and what differs,
// instead of writing past each other's buffers.
struct RunDescriptor {
  // Equal on every rank:
  int64_t kind = 0, world = 0, steps = 0;
  int64_t batch = 0, q_heads = 0, kv_heads = 0, head_dim = 0;
  int64_t q_dtype = -1, kv_dtype = -1;  // TASP_DTYPE_* codes
  int64_t device_type = 0, device_index = 0;  // the index is compared only where ranks share a device
  int64_t causal = 0;                          // the program has causally masked tasks
  int64_t has_scale = 0;
  double scale = 0;
  // Per rank (named in messages):
  int64_t q_tokens = 0, kv_tokens = 0, recv_capacity = 0;
  uint64_t program_hash = 0;  // this rank's whole lowered program
  // Per peer: a hash of the ordered transfers this rank sends to / expects from that peer. What r
  // sends to p must hash like what p expects from r.
  std::vector<uint64_t> sends_to, recvs_from;
  // Non-empty: this rank cannot run (bad input); the reason (transports that exchange descriptors
  // between processes use it to fail every rank at once).
  std::string error;
};

RunDescriptor describe(RunKind kind, const Program& p, const TensorInfo& q, const TensorInfo& kv, const double* scale);
// A descriptor of a rank that cannot run, for the exchange.
RunDescriptor describe_error(RunKind kind, int world, const std::string& error);

// Throws TASP_ERR_ARGUMENT when the ranks disagree, naming the rank(s) and what differs. `me` is the
// calling rank; `all_pairs`: check the transfers between every pair of ranks (transports whose
// ranks cannot fail each other quickly), otherwise only those of `me` (the in-process group fails
// the others). `same_device`: ranks must also agree on the device index.
void check_agreement(int me, const std::vector<const RunDescriptor*>& all, bool all_pairs, bool same_device);

// Fixed-size encoding of a descriptor for a world of `world` ranks, for byte exchanges (NCCL).
int64_t descriptor_words(int world);
std::vector<int64_t> encode_descriptor(const RunDescriptor& d, int world);
RunDescriptor decode_descriptor(const int64_t* words, int world);

// One rank's buffers of a run, token-major (B, S, H, D), with their capacities in tokens:
//   0, 1: the double-buffered key/value receive buffers (input dtype; k holds keys, v values);
//   2: the rank's own key/value shard;
//   3, 4: (backward) the key/value gradients this rank computed on received keys in a step, by
//         step parity, before they go back to the keys' owners (fp32; k holds dk, v holds dv);
//   5, 6: (backward) what peers return to this rank in a step, by step parity (fp32), added into
//         its own gradient accumulators in the next step.
// Peers write into the receive buffers (0, 1, 5, 6) and read nothing; a peer's communication thread
// holds its own reference for as long as it may write, so a rank that fails and returns early never
// frees memory a peer still copies into. A buffer a run does not use has capacity 0.
constexpr int kBufferCount = 7;
constexpr int64_t kOwnBuffer = 2;
constexpr int64_t kReturnSendBuffer = 3;  // + step parity
constexpr int64_t kReturnRecvBuffer = 5;  // + step parity
inline bool is_receive_buffer(int64_t b) { return b == 0 || b == 1 || b == 5 || b == 6; }

struct RankBuffers {
  Tensor k[kBufferCount], v[kBufferCount];
  int64_t capacity_tokens[kBufferCount] = {0, 0, 0, 0, 0, 0, 0};
  // One token of one batch element of k (or v) of each buffer: heads * D * element size.
  int64_t token_bytes[kBufferCount] = {0, 0, 0, 0, 0, 0, 0};
  int64_t batch = 0;
  int64_t capacity_bytes(int64_t buffer) const { return batch * capacity_tokens[buffer] * token_bytes[buffer]; }
  // Bytes one transfer of `count` tokens of `buffer` moves (keys and values).
  int64_t transfer_bytes(int64_t buffer, int64_t count) const { return 2 * batch * count * token_bytes[buffer]; }
};

// A rank's buffers for program p: k and v staged token-major as buffer 2, receive buffers 0 and 1.
std::shared_ptr<RankBuffers> stage_key_values(const Program& p, AtenTensorHandle k, AtenTensorHandle v);

// (B, S, H, D) buffer -> view (B, H, count, D) of tokens [start, start + count).
Tensor token_view(AtenTensorHandle buffer, int64_t start, int64_t count);
// The same tokens as a (B, count, H, D) view, for copies between buffers.
Tensor token_rows(AtenTensorHandle buffer, int64_t start, int64_t count);
void copy_tokens(AtenTensorHandle dst, int64_t dst_start, AtenTensorHandle src, int64_t src_start, int64_t count);
// (B, H, S, D) input -> new dense (B, S, H, D) buffer with the same values.
Tensor to_token_major(AtenTensorHandle t);
// Bytes per element of a float32/float16/bfloat16 tensor; throws TASP_ERR_ARGUMENT for others.
int64_t element_size(int32_t dtype);
// TASP_DTYPE_* code of a libtorch dtype, -1 for others.
int64_t dtype_tasp_code(int32_t dtype);

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
