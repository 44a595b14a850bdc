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

// Folds a partial result into an accumulator, in place, in fp32 (log-sum-exp merge):
// acc_out (B, H, S, D) (last dimension dense) and acc_lse (B, H, S) fp32; block_out any float dtype and
// strides; block_lse fp32. Rows whose acc_lse is -inf are empty. On CUDA it runs on libtorch's
// current stream.
TASP_API int tasp_merge_partial(tasp_tensor acc_out, tasp_tensor acc_lse, tasp_tensor block_out, tasp_tensor block_lse);

// ---- Sequence-parallel groups (in-process transport) -------------------------------------------
// A group of `world_size` ranks in this process, one thread per rank. Every wait on a peer gives up
// after timeout_ms and then fails the whole group: every rank's call returns TASP_ERR_GROUP with
// the first failure's message. A failed group stays failed; destroy it and make a new one.
typedef void* tasp_group;
TASP_API int tasp_group_create(int world_size, int64_t timeout_ms, tasp_group* out);
// Emulated fabric: transfers from src to dst take at least bytes / bytes_per_second (0: no limit).
TASP_API int tasp_group_set_link_rate(tasp_group g, int src, int dst, double bytes_per_second);
// Test hook: a silent rank posts no sends.
TASP_API int tasp_group_set_silent(tasp_group g, int rank, int silent);
TASP_API int tasp_group_fail(tasp_group g, const char* message);
TASP_API int tasp_group_destroy(tasp_group g);

// Runs one rank's lowered plan (see native/src/executor.h for the program format): q (B, Hq, Sq, D),
// k, v (B, Hkv, Skv, D) are the rank's shard in the plan's local order. Returns the rank's output
// (input dtype) and fp32 LSE; stats (may be NULL) gets 6 + 3 * steps numbers (steps = program word 4):
// compute ms, comm ms, wait ms, total ms, bytes sent, bytes of buffers allocated for this rank, then
// per step compute ms, comm ms, wait ms.
TASP_API int tasp_rank_forward(tasp_group g, int rank, const int64_t* program, int64_t program_len, tasp_tensor q,
                               tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out,
                               tasp_tensor* lse, double* stats);

// ---- NCCL transport (one rank per GPU; CUDA flavor) ----------------------------------------------
// nccl_path: NULL or "" for libnccl.so.2. Loading NCCL happens only here: its absence is an error
// only for callers that ask for it.
TASP_API int tasp_nccl_version(const char* nccl_path, int* version);
// 128 bytes that name a new communicator; rank 0 makes it and hands it to the others.
TASP_API int tasp_nccl_unique_id(const char* nccl_path, char* out128);
typedef void* tasp_nccl_comm;
TASP_API int tasp_nccl_comm_create(const char* nccl_path, int world, int rank, const char* unique_id128, int device,
                                   int64_t timeout_ms, tasp_nccl_comm* out);
TASP_API int tasp_nccl_comm_destroy(tasp_nccl_comm comm);
// As tasp_rank_forward, over NCCL; q, k, v on the communicator's GPU.
TASP_API int tasp_nccl_rank_forward(tasp_nccl_comm comm, const int64_t* program, int64_t program_len, tasp_tensor q,
                                    tasp_tensor k, tasp_tensor v, int has_scale, double scale, tasp_tensor* out,
                                    tasp_tensor* lse, double* stats);

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
