#include "cuda_driver.h"

#include <dlfcn.h>

#include <array>
#include <memory>
#include <mutex>
#include <vector>

#include "torch_api.h"

// The PTX of kernels.cu, embedded at build time by cmake/embed_ptx.cmake.
extern "C" const char tasp_kernels_ptx[];

namespace tasp {
namespace {

constexpr int kMaxDevices = 64;

std::string driver_error(tasp_cu_result result) {
  const char* text = nullptr;
  try {
    if (cuda_driver().get_error_string) cuda_driver().get_error_string(result, &text);
  } catch (const Error&) {
  }
  return std::string(text ? text : "unknown CUDA error") + " (CUresult " + std::to_string(result) + ")";
}

CudaDriver load_driver() {
  const char* path = "libcuda.so.1";
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    fail(TASP_ERR_STATE, std::string("CUDA flavor: cannot load the CUDA driver ") + path + ": " +
                             (why ? why : "not found") + " (is an NVIDIA driver installed?)");
  }
  CudaDriver d;
  auto sym = [&](auto& field, const char* name) {
    void* p = dlsym(lib, name);
    if (p == nullptr) {
      fail(TASP_ERR_SYMBOL, std::string("CUDA flavor: the driver's ") + path + " has no " + name +
                                " (driver too old?)");
    }
    field = reinterpret_cast<std::remove_reference_t<decltype(field)>>(p);
  };
  sym(d.init, "cuInit");
  sym(d.get_error_string, "cuGetErrorString");
  sym(d.device_get, "cuDeviceGet");
  sym(d.primary_ctx_retain, "cuDevicePrimaryCtxRetain");
  sym(d.ctx_push, "cuCtxPushCurrent_v2");
  sym(d.ctx_pop, "cuCtxPopCurrent_v2");
  sym(d.ctx_set_current, "cuCtxSetCurrent");
  sym(d.module_load_data_ex, "cuModuleLoadDataEx");
  sym(d.module_get_function, "cuModuleGetFunction");
  sym(d.launch_kernel, "cuLaunchKernel");
  sym(d.stream_create, "cuStreamCreate");
  sym(d.stream_destroy, "cuStreamDestroy_v2");
  sym(d.stream_query, "cuStreamQuery");
  sym(d.stream_wait_event, "cuStreamWaitEvent");
  sym(d.event_create, "cuEventCreate");
  sym(d.event_destroy, "cuEventDestroy_v2");
  sym(d.event_record, "cuEventRecord");
  sym(d.event_query, "cuEventQuery");
  sym(d.memcpy_htod_async, "cuMemcpyHtoDAsync_v2");
  sym(d.memcpy_dtoh, "cuMemcpyDtoH_v2");
  tasp_cu_result r = d.init(0);
  if (r != TASP_CU_SUCCESS) {
    const char* text = nullptr;
    d.get_error_string(r, &text);
    fail(TASP_ERR_STATE, std::string("CUDA flavor: cuInit failed: ") + (text ? text : "unknown error") +
                             " (CUresult " + std::to_string(r) + ")");
  }
  return d;  // the library handle stays open for the life of the process
}

struct DeviceState {
  std::once_flag once;
  tasp_cu_context context = nullptr;
  tasp_cu_module module = nullptr;
  std::string error;  // why the context or module could not be made, if it failed
};

std::array<DeviceState, kMaxDevices>& devices() {
  static std::array<DeviceState, kMaxDevices> states;
  return states;
}

DeviceState& device_state(int32_t device_index) {
  if (device_index < 0 || device_index >= kMaxDevices) {
    fail(TASP_ERR_ARGUMENT, "CUDA device index " + std::to_string(device_index) + " out of range");
  }
  DeviceState& s = devices()[static_cast<size_t>(device_index)];
  std::call_once(s.once, [&] {
    const CudaDriver& d = cuda_driver();
    tasp_cu_device dev = 0;
    tasp_cu_result r = d.device_get(&dev, device_index);
    if (r == TASP_CU_SUCCESS) r = d.primary_ctx_retain(&s.context, dev);
    if (r != TASP_CU_SUCCESS) {
      s.error = "cannot use CUDA device " + std::to_string(device_index) + ": " + driver_error(r);
    }
  });
  if (!s.error.empty() && s.context == nullptr) fail(TASP_ERR_TORCH, s.error);
  return s;
}

}  // namespace

const CudaDriver& cuda_driver() {
  static std::once_flag once;
  static std::unique_ptr<CudaDriver> driver;
  static std::string error;
  static int code = TASP_OK;
  std::call_once(once, [] {
    try {
      driver = std::make_unique<CudaDriver>(load_driver());
    } catch (const Error& e) {
      error = e.what();
      code = e.code();
    }
  });
  if (!driver) fail(code, error);
  return *driver;
}

void check_cu(tasp_cu_result result, const char* what) {
  if (result != TASP_CU_SUCCESS) fail(TASP_ERR_TORCH, std::string(what) + ": " + driver_error(result));
}

CudaContextScope::CudaContextScope(int32_t device_index) {
  DeviceState& s = device_state(device_index);
  check_cu(cuda_driver().ctx_push(s.context), "cuCtxPushCurrent");
  pushed_ = true;
}

CudaContextScope::~CudaContextScope() {
  if (pushed_) {
    tasp_cu_context previous = nullptr;
    cuda_driver().ctx_pop(&previous);
  }
}

void cuda_set_device(int32_t device_index) {
  DeviceState& s = device_state(device_index);
  check_cu(cuda_driver().ctx_set_current(s.context), "cuCtxSetCurrent");
}

CudaEvent::CudaEvent() {
  check_cu(cuda_driver().event_create(&event_, TASP_CU_EVENT_DISABLE_TIMING), "cuEventCreate");
}

CudaEvent::~CudaEvent() {
  if (event_ != nullptr) cuda_driver().event_destroy(event_);
}

void CudaEvent::order(tasp_cu_stream stream, tasp_cu_stream waiter) {
  check_cu(cuda_driver().event_record(event_, stream), "cuEventRecord");
  check_cu(cuda_driver().stream_wait_event(waiter, event_, 0), "cuStreamWaitEvent");
}

tasp_cu_function cuda_kernel(int32_t device_index, const char* name) {
  static std::mutex mutex;
  DeviceState& s = device_state(device_index);
  const CudaDriver& d = cuda_driver();
  std::lock_guard<std::mutex> lock(mutex);
  if (s.module == nullptr) {
    std::vector<char> log(8192, '\0');
    std::array<tasp_cu_jit_option, 2> options = {TASP_CU_JIT_ERROR_LOG_BUFFER, TASP_CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
    std::array<void*, 2> values = {log.data(), reinterpret_cast<void*>(static_cast<uintptr_t>(log.size() - 1))};
    tasp_cu_result r = d.module_load_data_ex(&s.module, tasp_kernels_ptx, 2, options.data(), values.data());
    if (r != TASP_CU_SUCCESS) {
      s.module = nullptr;
      fail(TASP_ERR_TORCH, "CUDA flavor: the driver could not compile the library's kernels (PTX) for device " +
                               std::to_string(device_index) + ": " + driver_error(r) + "; JIT log: " + log.data());
    }
  }
  tasp_cu_function fn = nullptr;
  tasp_cu_result r = d.module_get_function(&fn, s.module, name);
  if (r != TASP_CU_SUCCESS) fail(TASP_ERR_TORCH, std::string("CUDA flavor: no kernel ") + name + ": " + driver_error(r));
  return fn;
}

void cuda_launch(tasp_cu_function fn, uint32_t blocks, uint32_t threads, tasp_cu_stream stream, void** params,
                 const char* what) {
  check_cu(cuda_driver().launch_kernel(fn, blocks, 1, 1, threads, 1, 1, 0, stream, params, nullptr), what);
}

tasp_cu_stream torch_current_stream(int32_t device_index) {
  void* stream = nullptr;
  auto get_stream = torch_fn<aoti_get_current_cuda_stream_fn>("aoti_torch_get_current_cuda_stream", true);
  check_torch(get_stream(device_index, &stream), "aoti_torch_get_current_cuda_stream");
  return static_cast<tasp_cu_stream>(stream);
}

}  // namespace tasp
