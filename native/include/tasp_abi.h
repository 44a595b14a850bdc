// The one header that declares what tasp uses of foreign C ABIs:
//   * PyTorch's stable C shim (torch/csrc/inductor/aoti_torch/c/shim.h and
//     generated/c_shim_{cpu,cuda}.h), resolved at run time from the libtorch that DJL loaded.
//   * NCCL's C API (nccl.h), resolved at run time from libnccl.so.2 when NCCL is asked for.
// Nothing here is linked at build time: every entry is a function-pointer type, looked up with
// dlsym. The shim is append-only across PyTorch versions, so the signatures below hold for
// libtorch 2.4 and later (checked against PyTorch 2.7 and 2.11 headers).
#pragma once

#include <stddef.h>
#include <stdint.h>

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
// aoti_torch_get_current_cuda_stream (libtorch_cuda)
typedef AOTITorchError (*aoti_get_current_cuda_stream_fn)(int32_t device_index, void** ret_stream);

// ---- NCCL (nccl.h, stable C API since NCCL 2.0) -----------------------------------------------
typedef struct ncclComm* ncclComm_t;
typedef int ncclResult_t;   // 0 = ncclSuccess, 7 = ncclInProgress
typedef int ncclDataType_t;  // ncclInt8 = 0 ... ncclUint8 = 1; we send raw bytes as ncclUint8
#define TASP_NCCL_SUCCESS 0
#define TASP_NCCL_IN_PROGRESS 7
#define TASP_NCCL_UINT8 1
#define TASP_NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[TASP_NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;
typedef void* tasp_cuda_stream;  // cudaStream_t

typedef ncclResult_t (*nccl_get_version_fn)(int* version);
typedef ncclResult_t (*nccl_get_unique_id_fn)(ncclUniqueId* id);
typedef ncclResult_t (*nccl_comm_init_rank_fn)(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank);
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

#ifdef __cplusplus
}  // extern "C"
#endif
