// Pieces the executor and the transports share (executor.cpp, transport_inprocess.cpp,
// transport_nccl.cpp): the parsed program, token-major views of (B, S, H, D) buffers, fp32
// accumulators and one attention task with its merge.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attention.h"
#include "merge.h"
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

// Dense tensors a rank needs on every run (receive buffers, token-major staging, 16-bit
// accumulators), kept between runs and layers instead of allocated per call: a run takes what an
// earlier run of the same shapes gave back. Owned (shared) by an in-process group, one per rank,
// and by every RankBuffers made from it, so whatever holds buffers last returns them, even after the
// group closed. Entries that the last two runs did not take are freed when a run starts, so a
// rank keeps at most about two runs' worth of buffers.
class BufferPool {
 public:
  // A dense tensor of these sizes, dtype and device: one kept from an earlier run, or a new one.
  Tensor take(const std::vector<int64_t>& sizes, int32_t dtype, int32_t device_type, int32_t device_index);
  // Keeps t (dense, made by take, referenced by nobody else) for a later take of its shape.
  void give(Tensor t);
  // A run starts: frees what the previous two runs left untaken.
  void start_run();
  int64_t pooled_bytes() const;  // held for later runs, not counting what runs hold now

 private:
  struct Entry {
    std::vector<int64_t> sizes;
    int32_t dtype, device_type, device_index;
    Tensor tensor;
    int64_t bytes;
    int64_t last_run;
  };
  mutable std::mutex mutex_;
  std::vector<Entry> free_;
  int64_t run_ = 0;
};

// One rank's buffers of a run, token-major (B, S, H, D), with their capacities in tokens:
//   0, 1: the double-buffered key/value receive buffers (input dtype; k holds keys, v values);
//   2: the rank's own key/value shard;
//   3, 4: (backward) the key/value gradients this rank computed on received keys in a step, by
//         step parity, before they go back to the keys' owners (fp32; k holds dk, v holds dv);
//   5, 6: (backward) what peers return to this rank in a step, by step parity (fp32), added into
//         its own gradient accumulators in the next step.
// Peers write into the receive buffers (0, 1, 5, 6) and read nothing; a peer's communication thread
// holds its own reference for as long as it may write, so a rank that fails and returns early never
// frees memory a peer still copies into. A buffer a run does not use has capacity 0. Buffer 2 may be
// the caller's k and v seen through a transpose, with any strides (stage_key_values says when);
// pooled tensors go back to their pool when the last reference goes, never while a peer may write.
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
  int64_t strides[kBufferCount][4] = {};  // of k[i] and v[i] alike, (B, S, H, D) order (buffers 0-2)
  int64_t staged_bytes = 0;                // what staging and receive buffers 0 and 1 hold (k and v)
  std::shared_ptr<BufferPool> pool;        // where k[i], v[i] with pooled[i] go back
  bool pooled[kBufferCount] = {false, false, false, false, false, false, false};
  RankBuffers() = default;
  RankBuffers(const RankBuffers&) = delete;
  RankBuffers& operator=(const RankBuffers&) = delete;
  ~RankBuffers();
};

// A rank's buffers for program p: k and v staged token-major as buffer 2, receive buffers 0 and 1.
std::shared_ptr<RankBuffers> stage_key_values(const Program& p, AtenTensorHandle k, AtenTensorHandle v);

// How run_rank may lay out a run's buffers.
struct StagingOptions {
  // The transport sends from buffer 2 with any strides (the in-process transport copies through
  // views); otherwise it must be dense token-major (NCCL, TCP send raw byte ranges).
  bool sends_any_strides = false;
  // The attention kernel reads any strides with a dense last dimension (libtorch's CPU flash
  // kernel); otherwise operands must be token-major (kernel_layout_ok).
  bool kernel_reads_any_strides = false;
  std::shared_ptr<BufferPool> pool;  // null: allocate, free after the run
};

// stage_key_values, staging only what must be: buffer 2 is k and v themselves (views, no copy) when
// they are dense token-major already (as DJL's (B, S, E) embeddings reshaped to (B, S, H, D) and
// transposed are) or when both the transport and the kernel read their strides.
std::shared_ptr<RankBuffers> stage_key_values(const Program& p, AtenTensorHandle k, const TensorInfo& ki,
                                              AtenTensorHandle v, const TensorInfo& vi, const StagingOptions& o);

// Whether a (B, H, S, D) tensor is a transposed view of dense (B, S, H, D) memory (strides of
// size-1 dimensions do not matter).
bool dense_token_major(const TensorInfo& ti);
// Whether `ti` is laid out as a contiguous tensor of its sizes. Dimensions of size 1 address nothing, so
// their strides may be anything (a one-head slice of a batch of one, a view of a view) and are not compared.
bool dense_ignoring_unit_dims(const TensorInfo& ti);

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
// `pool` (may be null) supplies out; lse is always new (it is the run's result).
Accumulators make_accumulators(int64_t batch, int64_t heads, int64_t tokens, int64_t dim, const TensorInfo& like,
                               BufferPool* pool = nullptr);

// What every attention task of a forward run reads, resolved once per run: the query (any strides
// the kernel reads, (B, H, S, D) order), the key/value buffers, the accumulators' raw memory, the
// scale. Tasks make only views and kernel calls.
struct TaskContext {
  AttentionShape shape;  // whole q (q_len: the rank's query tokens); kv_len unused
  AtenTensorHandle q = nullptr;
  int64_t q_strides[4] = {};
  const RankBuffers* kv = nullptr;
  MergeArgs acc;  // the whole accumulators (block fields unset)
  bool cuda = false;
  double scale = 0;
};
TaskContext task_context(AtenTensorHandle q, const TensorInfo& qi, int64_t kv_heads, const RankBuffers& kv,
                         Accumulators& acc, const double* scale);

// Attention of q tokens [q_start, +q_count) over k/v tokens [kv_start, +kv_count), merged into the
// accumulators. Grouped-query attention on the CPU runs one kernel call per member of a query-head
// group over the shared key/value heads (views, no copies).
void run_task(const Task& t, const TaskContext& c);

}  // namespace tasp
