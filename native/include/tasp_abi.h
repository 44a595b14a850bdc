// The one header that declares what tasp uses of foreign C ABIs:
//   * PyTorch's stable C shim (torch/csrc/inductor/aoti_torch/c/shim.h and
//     generated/c_shim_{cpu,cuda}.h), resolved at run time from the libtorch that DJL loaded.
//   * NCCL's C API (nccl.h), resolved at run time from libnccl.so.2 when NCCL is asked for.
//   * The CUDA driver API (cuda.h), resolved at run time from libcuda.so.1 (CUDA flavor). The
//     library links no CUDA runtime: its kernels ship as PTX that the driver compiles, so it runs
//     with whatever driver DJL's CUDA libtorch runs with (see native/src/cuda_driver.h).
// Nothing here is linked at build time: every entry is a function-pointer type, looked up with
// dlsym. The shim is append-only across PyTorch versions, so the signatures below hold for
// libtorch 2.4 and later (checked against PyTorch 2.7 and 2.11 headers).
#pragma once

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#ifndef __cplusplus
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

// ---- libtorch C shim -----------------------------------------------------------------------
typedef int32_t AOTITorchError;  // 0 = success
#define TASP_AOTI_SUCCESS 0
struct AtenTensorOpaque;
typedef struct AtenTensorOpaque* AtenTensorHandle;  // a heap torch::Tensor*, as in DJL's PtNDArray

typedef int32_t (*aoti_int_getter_fn)(void);  // aoti_torch_dtype_*, aoti_torch_device_type_*
typedef AOTITorchError (*aoti_get_i32_fn)(AtenTensorHandle, int32_t*);
typedef AOTITorchError (*aoti_get_i64_fn)(AtenTensorHandle, int64_t*);
typedef AOTITorchError (*aoti_get_i64_array_fn)(AtenTensorHandle, int64_t**);
typedef AOTITorchError (*aoti_delete_tensor_fn)(AtenTensorHandle);
typedef AOTITorchError (*aoti_new_uninitialized_tensor_fn)(AtenTensorHandle*);
typedef AOTITorchError (*aoti_empty_strided_fn)(int64_t ndim, const int64_t* sizes, const int64_t* strides,
                                                int32_t dtype, int32_t device_type, int32_t device_index,
                                                AtenTensorHandle* ret);
typedef AOTITorchError (*aoti_reinterpret_tensor_fn)(AtenTensorHandle self, int64_t ndim, const int64_t* sizes,
                                                     const int64_t* strides, int64_t storage_offset,
                                                     AtenTensorHandle* ret);
typedef AOTITorchError (*aoti_copy_fn)(AtenTensorHandle self, AtenTensorHandle src, int32_t non_blocking);
typedef AOTITorchError (*aoti_zero_fn)(AtenTensorHandle self);  // aoti_torch_zero_
typedef AOTITorchError (*aoti_get_data_ptr_fn)(AtenTensorHandle, void**);  // aoti_torch_get_data_ptr

// aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu
typedef AOTITorchError (*aoti_cpu_flash_fwd_fn)(AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value,
                                                double dropout_p, int32_t is_causal, AtenTensorHandle* attn_mask,
                                                double* scale, AtenTensorHandle* out, AtenTensorHandle* logsumexp);
// aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu_backward
typedef AOTITorchError (*aoti_cpu_flash_bwd_fn)(AtenTensorHandle grad_out, AtenTensorHandle query, AtenTensorHandle key,
                                                AtenTensorHandle value, AtenTensorHandle out, AtenTensorHandle logsumexp,
                                                double dropout_p, int32_t is_causal, AtenTensorHandle* attn_mask,
                                                double* scale, AtenTensorHandle* grad_query, AtenTensorHandle* grad_key,
                                                AtenTensorHandle* grad_value);
// aoti_torch_cuda__scaled_dot_product_flash_attention
typedef AOTITorchError (*aoti_cuda_flash_fwd_fn)(AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value,
                                                 double dropout_p, int32_t is_causal, int32_t return_debug_mask,
                                                 double* scale, AtenTensorHandle* out, AtenTensorHandle* logsumexp,
                                                 AtenTensorHandle* cum_seq_q, AtenTensorHandle* cum_seq_k,
                                                 int64_t* max_q, int64_t* max_k, AtenTensorHandle* philox_seed,
                                                 AtenTensorHandle* philox_offset, AtenTensorHandle* debug_attn_mask);
// aoti_torch_cuda__scaled_dot_product_flash_attention_backward
typedef AOTITorchError (*aoti_cuda_flash_bwd_fn)(AtenTensorHandle grad_out, AtenTensorHandle query, AtenTensorHandle key,
                                                 AtenTensorHandle value, AtenTensorHandle out, AtenTensorHandle logsumexp,
                                                 AtenTensorHandle cum_seq_q, AtenTensorHandle cum_seq_k, int64_t max_q,
                                                 int64_t max_k, double dropout_p, int32_t is_causal,
                                                 AtenTensorHandle philox_seed, AtenTensorHandle philox_offset,
                                                 double* scale, AtenTensorHandle* grad_query, AtenTensorHandle* grad_key,
                                                 AtenTensorHandle* grad_value);
// aoti_torch_cuda__scaled_dot_product_efficient_attention
typedef AOTITorchError (*aoti_cuda_efficient_fwd_fn)(AtenTensorHandle query, AtenTensorHandle key, AtenTensorHandle value,
                                                     AtenTensorHandle* attn_bias, int32_t compute_log_sumexp,
                                                     double dropout_p, int32_t is_causal, double* scale,
                                                     AtenTensorHandle* out, AtenTensorHandle* logsumexp,
                                                     AtenTensorHandle* philox_seed, AtenTensorHandle* philox_offset);
// aoti_torch_cuda__scaled_dot_product_efficient_attention_backward
typedef AOTITorchError (*aoti_cuda_efficient_bwd_fn)(AtenTensorHandle grad_out, AtenTensorHandle query, AtenTensorHandle key,
                                                     AtenTensorHandle value, AtenTensorHandle attn_bias,
                                                     AtenTensorHandle out, AtenTensorHandle logsumexp,
                                                     AtenTensorHandle philox_seed, AtenTensorHandle philox_offset,
                                                     double dropout_p, const int32_t* grad_input_mask,
                                                     int64_t grad_input_mask_len, int32_t is_causal, double* scale,
                                                     AtenTensorHandle* grad_query, AtenTensorHandle* grad_key,
                                                     AtenTensorHandle* grad_value, AtenTensorHandle* grad_bias);
// aoti_torch_{cpu,cuda}_add_Tensor: self + alpha * other, with type promotion
typedef AOTITorchError (*aoti_add_tensor_fn)(AtenTensorHandle self, AtenTensorHandle other, double alpha,
                                             AtenTensorHandle* ret);
// aoti_torch_new_tensor_handle: a second handle to the same tensor (the dispatcher stack consumes handles)
typedef AOTITorchError (*aoti_new_tensor_handle_fn)(AtenTensorHandle orig, AtenTensorHandle* new_handle);
// aoti_torch_call_dispatcher (libtorch 2.7): calls an operator through the full dispatcher, autograd
// included. One StableIValue (64 bits) per schema argument: a tensor is a handle that libtorch takes
// ownership of; a double its bits; a bool or an int as an integer; an optional None is 0 and an
// optional with a value points to a heap StableIValue that libtorch deletes. Results come back in
// stack[0..] as new owned handles.
typedef uint64_t StableIValue;
typedef AOTITorchError (*aoti_call_dispatcher_fn)(const char* op_name, const char* overload_name, StableIValue* stack);
// aoti_torch_grad_mode_is_enabled / aoti_torch_grad_mode_set_enabled: the calling thread's grad mode
typedef bool (*aoti_grad_mode_is_enabled_fn)(void);
typedef void (*aoti_grad_mode_set_enabled_fn)(bool enabled);
// aoti_torch_get_current_cuda_stream (libtorch_cuda)
typedef AOTITorchError (*aoti_get_current_cuda_stream_fn)(int32_t device_index, void** ret_stream);

// ---- NCCL (nccl.h, stable C API since NCCL 2.0) -----------------------------------------------
typedef struct ncclComm* ncclComm_t;
typedef int ncclResult_t;   // 0 = ncclSuccess, 7 = ncclInProgress
typedef int ncclDataType_t;  // ncclInt8 = 0 ... ncclUint8 = 1; we send raw bytes as ncclUint8
#define TASP_NCCL_SUCCESS 0
#define TASP_NCCL_IN_PROGRESS 7
#define TASP_NCCL_UINT8 1
#define TASP_NCCL_FLOAT32 7  // ncclFloat32 (ncclFloat)
typedef int ncclRedOp_t;     // ncclSum = 0
#define TASP_NCCL_SUM 0
#define TASP_NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[TASP_NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
typedef void* tasp_cuda_stream;  // cudaStream_t

// ncclConfig_t as of NCCL 2.17 (struct version 21700). NCCL reads a config by its size and version
// fields, so newer libraries accept this layout; fields left at TASP_NCCL_CONFIG_UNDEF_INT/NULL keep
// NCCL's defaults. We set only `blocking = 0`: a nonblocking communicator returns ncclInProgress
// from init and group calls, and we poll ncclCommGetAsyncError against a deadline instead of
// blocking inside NCCL.
#define TASP_NCCL_CONFIG_MAGIC 0xcafebeefu
#define TASP_NCCL_CONFIG_VERSION 21700u
#define TASP_NCCL_CONFIG_UNDEF_INT INT_MIN
typedef struct {
  size_t size;
  unsigned int magic;
  unsigned int version;
  int blocking;
  int cgaClusterSize;
  int minCTAs;
  int maxCTAs;
  const char* netName;
} tasp_nccl_config;

typedef ncclResult_t (*nccl_get_version_fn)(int* version);
typedef ncclResult_t (*nccl_get_unique_id_fn)(ncclUniqueId* id);
typedef ncclResult_t (*nccl_comm_init_rank_config_fn)(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank,
                                                      tasp_nccl_config* config);  // NCCL >= 2.14
typedef ncclResult_t (*nccl_comm_finalize_fn)(ncclComm_t comm);                    // NCCL >= 2.14
typedef ncclResult_t (*nccl_comm_abort_fn)(ncclComm_t comm);
typedef ncclResult_t (*nccl_comm_destroy_fn)(ncclComm_t comm);
typedef ncclResult_t (*nccl_comm_get_async_error_fn)(ncclComm_t comm, ncclResult_t* async_error);
typedef const char* (*nccl_get_error_string_fn)(ncclResult_t result);
typedef ncclResult_t (*nccl_group_start_fn)(void);
typedef ncclResult_t (*nccl_group_end_fn)(void);
typedef ncclResult_t (*nccl_send_fn)(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer,
                                     ncclComm_t comm, tasp_cuda_stream stream);
typedef ncclResult_t (*nccl_recv_fn)(void* recvbuff, size_t count, ncclDataType_t datatype, int peer,
                                     ncclComm_t comm, tasp_cuda_stream stream);
typedef ncclResult_t (*nccl_all_gather_fn)(const void* sendbuff, void* recvbuff, size_t sendcount,
                                           ncclDataType_t datatype, ncclComm_t comm, tasp_cuda_stream stream);
typedef ncclResult_t (*nccl_all_reduce_fn)(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype,
                                           ncclRedOp_t op, ncclComm_t comm, tasp_cuda_stream stream);

// ---- CUDA driver API (cuda.h; the driver's ABI is stable, versioned names where cuda.h maps one) --
// Our own names for cuda.h's types: the enums are plain ints here, the handles the same opaque
// structs. gpu/run_gpu_checks.sh compares each signature's shape (arity, and each parameter's
// size and kind) with cuda.h.
typedef int tasp_cu_result;  // CUresult: 0 = CUDA_SUCCESS
typedef int tasp_cu_device;  // CUdevice
typedef struct CUctx_st* tasp_cu_context;
typedef struct CUmod_st* tasp_cu_module;
typedef struct CUfunc_st* tasp_cu_function;
typedef struct CUstream_st* tasp_cu_stream;  // the same handle as a cudaStream_t
typedef struct CUevent_st* tasp_cu_event;
typedef int tasp_cu_jit_option;  // CUjit_option
typedef unsigned long long tasp_cu_deviceptr;  // CUdeviceptr
#define TASP_CU_SUCCESS 0
#define TASP_CU_ERROR_NOT_READY 600
#define TASP_CU_JIT_ERROR_LOG_BUFFER 5
#define TASP_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES 6
#define TASP_CU_STREAM_NON_BLOCKING 1
#define TASP_CU_EVENT_DISABLE_TIMING 2

typedef tasp_cu_result (*cu_init_fn)(unsigned int flags);                                  // cuInit
typedef tasp_cu_result (*cu_get_error_string_fn)(tasp_cu_result error, const char** str);  // cuGetErrorString
typedef tasp_cu_result (*cu_device_get_fn)(tasp_cu_device* device, int ordinal);          // cuDeviceGet
typedef tasp_cu_result (*cu_device_primary_ctx_retain_fn)(tasp_cu_context* ctx, tasp_cu_device dev);
typedef tasp_cu_result (*cu_ctx_push_current_fn)(tasp_cu_context ctx);    // cuCtxPushCurrent_v2
typedef tasp_cu_result (*cu_ctx_pop_current_fn)(tasp_cu_context* ctx);    // cuCtxPopCurrent_v2
typedef tasp_cu_result (*cu_ctx_set_current_fn)(tasp_cu_context ctx);     // cuCtxSetCurrent
typedef tasp_cu_result (*cu_module_load_data_ex_fn)(tasp_cu_module* module, const void* image, unsigned int num_options,
                                                    tasp_cu_jit_option* options, void** option_values);
typedef tasp_cu_result (*cu_module_get_function_fn)(tasp_cu_function* fn, tasp_cu_module module, const char* name);
typedef tasp_cu_result (*cu_launch_kernel_fn)(tasp_cu_function f, unsigned int grid_x, unsigned int grid_y,
                                              unsigned int grid_z, unsigned int block_x, unsigned int block_y,
                                              unsigned int block_z, unsigned int shared_bytes, tasp_cu_stream stream,
                                              void** params, void** extra);
typedef tasp_cu_result (*cu_stream_create_fn)(tasp_cu_stream* stream, unsigned int flags);  // cuStreamCreate
typedef tasp_cu_result (*cu_stream_destroy_fn)(tasp_cu_stream stream);                     // cuStreamDestroy_v2
typedef tasp_cu_result (*cu_stream_query_fn)(tasp_cu_stream stream);                       // cuStreamQuery
typedef tasp_cu_result (*cu_stream_wait_event_fn)(tasp_cu_stream stream, tasp_cu_event event, unsigned int flags);
typedef tasp_cu_result (*cu_event_create_fn)(tasp_cu_event* event, unsigned int flags);    // cuEventCreate
typedef tasp_cu_result (*cu_event_destroy_fn)(tasp_cu_event event);                       // cuEventDestroy_v2
typedef tasp_cu_result (*cu_event_record_fn)(tasp_cu_event event, tasp_cu_stream stream);  // cuEventRecord
typedef tasp_cu_result (*cu_event_query_fn)(tasp_cu_event event);                         // cuEventQuery
// cuMemcpyHtoDAsync_v2 and cuMemcpyDtoH_v2 (the typedef names spell cuda.h's HtoD / DtoH)
typedef tasp_cu_result (*cu_memcpy_hto_d_async_fn)(tasp_cu_deviceptr dst, const void* src, size_t bytes,
                                                   tasp_cu_stream stream);
typedef tasp_cu_result (*cu_memcpy_dto_h_fn)(void* dst, tasp_cu_deviceptr src, size_t bytes);

#ifdef __cplusplus
}  // extern "C"
#endif
