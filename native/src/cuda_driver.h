// CUDA flavor: the CUDA driver API, resolved at run time from libcuda.so.1, and the library's own
// kernels (kernels.cu), shipped as PTX that the driver compiles for the card it finds.
//
// Why no CUDA runtime: a runtime linked at build time (static or shared) ties the library to the
// toolkit that built it: a CUDA 13 runtime needs a CUDA 13 driver, while DJL's CUDA builds of
// libtorch run on CUDA 12 (and 11.8) drivers. The driver API is stable across versions, and PTX of
// an old ISA version (TASP_PTX_VERSION in CMakeLists.txt) is compiled by any driver since that
// version. Streams are shared with libtorch as plain handles (a cudaStream_t is a CUstream), and
// NCCL (which brings its own runtime) sees the device through the current context.
#pragma once

#include <cstdint>
#include <string>

#include "errors.h"
#include "tasp_abi.h"

namespace tasp {

struct CudaDriver {
  cu_init_fn init = nullptr;
  cu_get_error_string_fn get_error_string = nullptr;
  cu_device_get_fn device_get = nullptr;
  cu_device_primary_ctx_retain_fn primary_ctx_retain = nullptr;
  cu_ctx_push_current_fn ctx_push = nullptr;
  cu_ctx_pop_current_fn ctx_pop = nullptr;
  cu_ctx_set_current_fn ctx_set_current = nullptr;
  cu_module_load_data_ex_fn module_load_data_ex = nullptr;
  cu_module_get_function_fn module_get_function = nullptr;
  cu_launch_kernel_fn launch_kernel = nullptr;
  cu_stream_create_fn stream_create = nullptr;
  cu_stream_destroy_fn stream_destroy = nullptr;
  cu_stream_query_fn stream_query = nullptr;
  cu_stream_wait_event_fn stream_wait_event = nullptr;
  cu_event_create_fn event_create = nullptr;
  cu_event_destroy_fn event_destroy = nullptr;
  cu_event_record_fn event_record = nullptr;
  cu_event_query_fn event_query = nullptr;
  cu_memcpy_hto_d_async_fn memcpy_htod_async = nullptr;
  cu_memcpy_dto_h_fn memcpy_dtoh = nullptr;
};

// The driver, loaded and initialized once (thread-safe). Throws TASP_ERR_STATE naming the library
// or symbol that is missing.
const CudaDriver& cuda_driver();

// Throws TASP_ERR_TORCH ("<what>: <driver's message> (CUresult n)") unless result is success.
void check_cu(tasp_cu_result result, const char* what);

// Makes device `device_index`'s primary context (the one libtorch uses) current on this thread
// for the scope, and restores the previous one.
class CudaContextScope {
 public:
  explicit CudaContextScope(int32_t device_index);
  ~CudaContextScope();
  CudaContextScope(const CudaContextScope&) = delete;
  CudaContextScope& operator=(const CudaContextScope&) = delete;

 private:
  bool pushed_ = false;
};

// Makes device `device_index`'s primary context current on this thread and leaves it so: what
// cudaSetDevice does, for code (NCCL) that asks the runtime which device is current.
void cuda_set_device(int32_t device_index);

// A CUDA event without timing, destroyed with the scope.
class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  tasp_cu_event get() const { return event_; }
  // Records the event on `stream` and makes `waiter` wait for it (an ordering between streams).
  void order(tasp_cu_stream stream, tasp_cu_stream waiter);

 private:
  tasp_cu_event event_ = nullptr;
};

// A kernel of kernels.cu (by its extern "C" name) on a device, loaded from the embedded PTX the
// first time the device asks (the driver's JIT log is in the error if that fails). Call inside a
// CudaContextScope of the same device.
tasp_cu_function cuda_kernel(int32_t device_index, const char* name);

// Launches `fn` on `stream` with a 1-D grid; throws with `what` on failure.
void cuda_launch(tasp_cu_function fn, uint32_t blocks, uint32_t threads, tasp_cu_stream stream, void** params,
                 const char* what);

// libtorch's current stream of the device (NULL: the legacy default stream).
tasp_cu_stream torch_current_stream(int32_t device_index);

}  // namespace tasp
