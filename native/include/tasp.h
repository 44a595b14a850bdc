// tasp's own C API: what the JNI layer calls, and what a GPU test harness (ctypes, C++) can call
// directly. Tensors cross as AtenTensorHandle (a heap torch::Tensor*, the same pointer DJL's
// PtNDArray holds); every returned handle is new and owned by the caller.
// Every function returns TASP_OK or an error code; tasp_last_error() gives the message of the
// last failure on the calling thread.
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TASP_API __attribute__((visibility("default")))

#define TASP_OK 0
#define TASP_ERR_ARGUMENT 1   // bad input: shapes, dtypes, devices
#define TASP_ERR_SYMBOL 2     // a libtorch function is missing from the loaded libtorch
#define TASP_ERR_TORCH 3      // a libtorch call failed
#define TASP_ERR_STATE 4      // not initialized, or a CUDA call on a CPU-only build
#define TASP_ERR_GROUP 5      // the sequence-parallel group failed (a peer timed out or raised)

// Backends, as reported by tasp_attention_forward.
#define TASP_BACKEND_CPU_FLASH 1
#define TASP_BACKEND_CUDA_FLASH 2
#define TASP_BACKEND_CUDA_EFFICIENT 3

typedef void* tasp_tensor;  // AtenTensorHandle

// Resolves the libtorch C shim from the libtorch already loaded in this process (by DJL or by
// Python's torch). `libtorch_dir` (may be NULL) is tried when the libraries are not found by
// name. Safe to call more than once.
TASP_API int tasp_init(const char* libtorch_dir);

// "cpu" or "cuda": what this build of the library was compiled for.
TASP_API const char* tasp_flavor(void);
TASP_API const char* tasp_version(void);
TASP_API const char* tasp_last_error(void);

// Attention on one device. q: (B, Hq, Sq, D); k, v: (B, Hkv, Sk, D) with Hq a multiple of Hkv.
// fp32, fp16 or bf16; all on one device. causal needs Sq == Sk. has_scale = 0: 1/sqrt(D).
// Returns out (B, Hq, Sq, D) in the input dtype and lse (B, Hq, Sq) in fp32 (natural log).
// *backend tells which kernel ran.
TASP_API int tasp_attention_forward(tasp_tensor q, tasp_tensor k, tasp_tensor v, int causal, int has_scale, double scale,
                           tasp_tensor* out, tasp_tensor* lse, int* backend);

// Gradients of attention given the forward's out and lse (which may be the *global* out/lse of a
// sequence-parallel forward: each block's backward is then exact). dk, dv have k's head count.
TASP_API int tasp_attention_backward(tasp_tensor dout, tasp_tensor q, tasp_tensor k, tasp_tensor v, tasp_tensor out,
                            tasp_tensor lse, int causal, int has_scale, double scale, tasp_tensor* dq,
                            tasp_tensor* dk, tasp_tensor* dv);

// Attention recorded by libtorch's autograd (see attention.h): out (B, H, Sq, D) with a grad_fn when
// the calling thread's grad mode is on and an input requires gradients. q, k, v need equal head
// counts; no dropout. CPU: libtorch's flash kernel; CUDA: scaled_dot_product_attention.
TASP_API int tasp_attention_forward_recorded(tasp_tensor q, tasp_tensor k, tasp_tensor v, int causal, int has_scale,
                                             double scale, tasp_tensor* out);

// The calling thread's autograd grad mode (libtorch keeps it per thread): *previous gets the old
// value (may be NULL).
TASP_API int tasp_set_grad_mode(int enabled, int* previous);

// Folds a partial result into an accumulator, in place, in fp32 (log-sum-exp merge):
// acc_out (B, H, S, D) (last dimension dense) and acc_lse (B, H, S) fp32; block_out any float dtype and
// strides; block_lse fp32. A row whose LSE is infinite (-inf: no key yet; +inf: what kernels write
// for a fully masked row) is empty, on either side: it adds nothing and never makes a NaN. On CUDA it
// runs on libtorch's current stream.
TASP_API int tasp_merge_partial(tasp_tensor acc_out, tasp_tensor acc_lse, tasp_tensor block_out, tasp_tensor block_lse);

// ---- Sequence-parallel groups (in-process transport) -------------------------------------------
// A group of `world_size` ranks in this process, one thread per rank. Before any byte moves, the ranks
// of a run compare what each was asked to do (shapes, dtypes, device, mask, scale, and the transfers
// of their lowered programs); a disagreement fails every rank at once (TASP_ERR_ARGUMENT) naming the
// rank and what differs. Every wait on a peer gives up after timeout_ms and then fails the whole
// group: every rank's call returns TASP_ERR_GROUP with the first failure's message. A failed group
// stays failed: later calls fail at once, saying so; destroy it and make a new one. Each rank is run
// by one caller at a time: a rank entered again while it runs fails the group at once.
typedef void* tasp_group;
TASP_API int tasp_group_create(int world_size, int64_t timeout_ms, tasp_group* out);
// Emulated fabric: each transfer from src to dst arrives bytes / bytes_per_second after its step's
// transfers start on that link (0: no limit).
TASP_API int tasp_group_set_link_rate(tasp_group g, int src, int dst, double bytes_per_second);
// Test hooks: a silent rank posts no sends; a faulty rank fails at the start of step `step` (-1: never).
TASP_API int tasp_group_set_silent(tasp_group g, int rank, int silent);
TASP_API int tasp_group_set_fault(tasp_group g, int rank, int64_t step);
TASP_API int tasp_group_fail(tasp_group g, const char* message);
// *failed = 1 and *message (valid until this thread's next call) = the first failure, or 0 and "".
TASP_API int tasp_group_failure(tasp_group g, int* failed, const char** message);
// Must not race with tasp_rank_forward on the same group (the Java NativeGroup counts callers).
TASP_API int tasp_group_destroy(tasp_group g);
// Groups and NCCL communicators created and not yet destroyed in this process (leak checks).
TASP_API int tasp_live_objects(int64_t* groups, int64_t* communicators);

// Statistics of a rank run: TASP_STATS_TOTALS numbers (compute ms, comm ms, wait ms, total ms, bytes
// sent, bytes of buffers allocated for this rank), then TASP_STATS_PER_STEP per step (compute ms,
// comm ms, wait ms). A program's step count is its word 4.
#define TASP_STATS_TOTALS 6
#define TASP_STATS_PER_STEP 3
#define TASP_STATS_LENGTH(steps) (TASP_STATS_TOTALS + TASP_STATS_PER_STEP * (steps))

// Runs one rank's lowered plan (see native/src/executor.h for the program format): q (B, Hq, Sq, D),
// k, v (B, Hkv, Skv, D) are the rank's shard in the plan's local order. Returns the rank's output
// (input dtype) and fp32 LSE; stats (may be NULL) has room for stats_len numbers and gets at most
// TASP_STATS_LENGTH(steps) of them.
TASP_API int tasp_rank_forward(tasp_group g, int rank, const int64_t* program, int64_t program_len, tasp_tensor q,
                               tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out,
                               tasp_tensor* lse, double* stats, int64_t stats_len);

// ---- All-to-all (in-process groups): the transfer of head-parallel attention (Ulysses, hybrids) --
// Rank `rank` of a group of `world` ranks sends sends[p] (NULL: nothing) to each rank p and receives
// from each p a tensor of sizes recv_sizes[p*ndim .. p*ndim+ndim) (recv_sizes[p*ndim] < 0: nothing),
// with the dtype and device of `like`; received[p] (world entries) gets a new handle, NULL where
// nothing came. Every rank of the group calls it, in the same order as its forwards; ranks that
// disagree on a piece's shape fail at once (TASP_ERR_ARGUMENT), naming the pair. stats as for
// tasp_rank_forward with no steps (TASP_STATS_TOTALS numbers).
TASP_API int tasp_rank_all_to_all(tasp_group g, int rank, int world, const tasp_tensor* sends, const int64_t* recv_sizes,
                                  int ndim, tasp_tensor like, tasp_tensor* received, double* stats, int64_t stats_len);

// ---- Distributed backward (every transport) ----------------------------------------------------
// One rank's part of the backward of tasp_rank_forward (see native/src/executor_backward.h): the same
// program, its return map (lowered from the same plan), the rank's shard q, k, v, its forward out
// and lse, and dout. Returns dq (q's shape), dk, dv (k's shape), exact, accumulated in fp32; the
// key/value gradients of received keys travel back to their owners through the transport, in fp32.
// stats as for tasp_rank_forward, for one step more than the program (the backward's last step
// sends the last returns): TASP_STATS_LENGTH(steps + 1) numbers.
TASP_API int tasp_rank_backward(tasp_group g, int rank, const int64_t* program, int64_t program_len,
                                const int64_t* return_map, int64_t return_map_len, tasp_tensor dout, tasp_tensor q,
                                tasp_tensor k, tasp_tensor v, tasp_tensor out, tasp_tensor lse, int has_scale,
                                double scale, tasp_tensor* dq, tasp_tensor* dk, tasp_tensor* dv, double* stats,
                                int64_t stats_len);

// ---- NCCL transport (one rank per GPU; CUDA flavor) ----------------------------------------------
// nccl_path: NULL or "" for libnccl.so.2. Loading NCCL happens only here: its absence is an error
// only for callers that ask for it.
TASP_API int tasp_nccl_version(const char* nccl_path, int* version);
// 128 bytes that name a new communicator; rank 0 makes it and hands it to the others.
TASP_API int tasp_nccl_unique_id(const char* nccl_path, char* out128);
typedef void* tasp_nccl_comm;
TASP_API int tasp_nccl_comm_create(const char* nccl_path, int world, int rank, const char* unique_id128, int device,
                                   int64_t timeout_ms, tasp_nccl_comm* out);
// Finalizes and frees the communicator, bounded by its timeout (aborted past it, e.g. after a peer
// died). Must not race with a forward on it: call tasp_nccl_comm_abort first and wait for it.
TASP_API int tasp_nccl_comm_destroy(tasp_nccl_comm comm);
// From any thread: a forward in flight aborts the communicator at its next poll and fails; with none
// in flight it is aborted now. An aborted communicator cannot run again.
TASP_API int tasp_nccl_comm_abort(tasp_nccl_comm comm);
// As tasp_rank_forward, over NCCL; q, k, v on the communicator's GPU. One collective at a time per
// communicator; every wait polls NCCL against the communicator's timeout (since the last progress).
TASP_API int tasp_nccl_rank_forward(tasp_nccl_comm comm, const int64_t* program, int64_t program_len, tasp_tensor q,
                                    tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out,
                                    tasp_tensor* lse, double* stats, int64_t stats_len);
// As tasp_tcp_all_reduce, over NCCL (ncclAllReduce, sum): contiguous float32 on the communicator's GPU.
TASP_API int tasp_nccl_all_reduce(tasp_nccl_comm comm, const tasp_tensor* tensors, int64_t n);
// As tasp_rank_backward, over NCCL.
TASP_API int tasp_nccl_rank_backward(tasp_nccl_comm comm, const int64_t* program, int64_t program_len,
                                     const int64_t* return_map, int64_t return_map_len, tasp_tensor dout,
                                     tasp_tensor q, tasp_tensor k, tasp_tensor v, tasp_tensor out, tasp_tensor lse,
                                     int has_scale, double scale, tasp_tensor* dq, tasp_tensor* dk, tasp_tensor* dv,
                                     double* stats, int64_t stats_len);
// This rank will not run the collective its peers are starting (bad input found before the call):
// takes part in the agreement exchange with `why`, so every rank fails at once, naming this one.
TASP_API int tasp_nccl_reject(tasp_nccl_comm comm, const char* why);
// As tasp_rank_all_to_all, over NCCL (the communicator's ranks and world; pieces and `like` on its
// GPU): the ranks agree through the descriptor exchange first (a disagreement, or a peer's
// tasp_nccl_reject, fails every rank with TASP_ERR_ARGUMENT and leaves the communicator usable; bad
// input here is sent to the peers the same way), then one NCCL group of sends and receives; the
// current libtorch stream waits for the transfers. A timeout or an NCCL error aborts the communicator.
TASP_API int tasp_nccl_all_to_all(tasp_nccl_comm comm, int world, const tasp_tensor* sends, const int64_t* recv_sizes,
                                  int ndim, tasp_tensor like, tasp_tensor* received, double* stats, int64_t stats_len);

// ---- TCP transport (one rank per process, CPU tensors; native/src/transport_tcp.h) -------------
// This process's rank: listens on bind_host (a numeric IP address) at an ephemeral port (*port),
// then tasp_tcp_mesh_connect makes a full mesh with the peers' addresses (exchanged by a
// rendezvous). Every wait on a peer gives up after timeout_ms; a peer whose connection closes
// without a goodbye fails every rank at once, naming it (TASP_ERR_GROUP).
typedef void* tasp_tcp_mesh;
TASP_API int tasp_tcp_mesh_create(int world, int rank, const char* bind_host, int64_t timeout_ms, tasp_tcp_mesh* out,
                                  int* port);
// hosts[r], ports[r]: rank r's listening address; token: the session's, which every rank presents.
TASP_API int tasp_tcp_mesh_connect(tasp_tcp_mesh mesh, const char* const* hosts, const int* ports, uint64_t token);
TASP_API int tasp_tcp_mesh_fail(tasp_tcp_mesh mesh, const char* message);
// Says goodbye to the peers and closes.
TASP_API int tasp_tcp_mesh_destroy(tasp_tcp_mesh mesh);
// As tasp_rank_forward, over the mesh; q, k, v on the CPU.
TASP_API int tasp_tcp_rank_forward(tasp_tcp_mesh mesh, const int64_t* program, int64_t program_len, tasp_tensor q,
                                   tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out,
                                   tasp_tensor* lse, double* stats, int64_t stats_len);

// Sums each of n tensors over the mesh's ranks, in place, in fp32 (parameter gradients of training
// across processes): every rank passes the same number of tensors with the same element counts,
// contiguous float32 on the CPU; every rank gets the same values.
TASP_API int tasp_tcp_all_reduce(tasp_tcp_mesh mesh, const tasp_tensor* tensors, int64_t n);
// As tasp_rank_backward, over the mesh.
TASP_API int tasp_tcp_rank_backward(tasp_tcp_mesh mesh, const int64_t* program, int64_t program_len,
                                    const int64_t* return_map, int64_t return_map_len, tasp_tensor dout, tasp_tensor q,
                                    tasp_tensor k, tasp_tensor v, tasp_tensor out, tasp_tensor lse, int has_scale,
                                    double scale, tasp_tensor* dq, tasp_tensor* dk, tasp_tensor* dv, double* stats,
                                    int64_t stats_len);
// As tasp_rank_all_to_all, over the mesh (CPU tensors; world: the mesh's). Every rank of the mesh
// calls it in the same order as its forwards and backwards. Ranks that disagree on a piece fail
// alike (TASP_ERR_ARGUMENT, naming the pair) and the mesh stays usable; bad input on one rank, a
// timeout or a lost peer fails the mesh on every rank.
TASP_API int tasp_tcp_all_to_all(tasp_tcp_mesh mesh, int world, const tasp_tensor* sends, const int64_t* recv_sizes,
                                 int ndim, tasp_tensor like, tasp_tensor* received, double* stats, int64_t stats_len);

// Element types for tasp_cast.
#define TASP_DTYPE_FLOAT32 0
#define TASP_DTYPE_FLOAT16 1
#define TASP_DTYPE_BFLOAT16 2
#define TASP_DTYPE_FLOAT64 3

// A contiguous copy of `t` converted to `dtype` (one of TASP_DTYPE_*), on t's device. DJL 0.36's
// PyTorch engine aborts the process when asked to convert to bfloat16; this is the safe route.
TASP_API int tasp_cast(tasp_tensor t, int dtype, tasp_tensor* out);

// The element type of t as a TASP_DTYPE_* code, or -1 for any other type. (DJL 0.36 reports
// bfloat16 tensors as UNKNOWN.)
TASP_API int tasp_dtype(tasp_tensor t, int* dtype);

// Frees a handle returned by this library (harnesses only; in Java the NDManager owns them).
TASP_API int tasp_tensor_free(tasp_tensor t);

#ifdef __cplusplus
}  // extern "C"
#endif
