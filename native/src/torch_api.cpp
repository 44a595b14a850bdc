#include "torch_api.h"

#include <dlfcn.h>
#include <link.h>

#include <mutex>
#include <sstream>

namespace tasp {
namespace {

std::mutex g_mutex;
TorchApi g_api;
bool g_ready = false;
void* g_cpu_lib = nullptr;
void* g_cuda_lib = nullptr;

std::string loaded_path(void* handle) {
  struct link_map* map = nullptr;
  if (handle != nullptr && dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != nullptr && map->l_name != nullptr) {
    return map->l_name;
  }
  return "(unknown path)";
}

// Finds a library that is already loaded (DJL loads libtorch with System.load, which is
// RTLD_LOCAL, so symbols must be looked up through this handle, not the global namespace).
// Falls back to the explicit directory: dlopen of an already-mapped path returns the same object.
void* open_loaded(const char* soname, const char* dir) {
  void* h = dlopen(soname, RTLD_NOW | RTLD_NOLOAD);
  if (h == nullptr && dir != nullptr && dir[0] != '\0') {
    std::string path = std::string(dir) + "/" + soname;
    h = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
    if (h == nullptr) {
      h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    }
  }
  return h;
}

template <typename F>
void require(F& slot, const char* name) {
  void* p = dlsym(g_cpu_lib, name);
  if (p == nullptr) {
    fail(TASP_ERR_SYMBOL, std::string("libtorch symbol ") + name + " not found in " + loaded_path(g_cpu_lib));
  }
  slot = reinterpret_cast<F>(p);
}

}  // namespace

void init_torch(const char* libtorch_dir) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_ready) {
    return;
  }
  g_cpu_lib = open_loaded("libtorch_cpu.so", libtorch_dir);
  if (g_cpu_lib == nullptr) {
    fail(TASP_ERR_STATE,
         std::string("libtorch_cpu.so is not loaded in this process: load DJL's PyTorch engine first "
                     "(Engine.getEngine(\"PyTorch\")) or import torch; ") +
             (libtorch_dir ? std::string("also tried directory ") + libtorch_dir : std::string("no directory given")));
  }
  g_cuda_lib = open_loaded("libtorch_cuda.so", libtorch_dir);  // absent on CPU-only libtorch
  TorchApi api;
  require(api.dtype_float32, "aoti_torch_dtype_float32");
  require(api.dtype_float16, "aoti_torch_dtype_float16");
  require(api.dtype_bfloat16, "aoti_torch_dtype_bfloat16");
  require(api.device_type_cpu, "aoti_torch_device_type_cpu");
  require(api.device_type_cuda, "aoti_torch_device_type_cuda");
  require(api.get_dtype, "aoti_torch_get_dtype");
  require(api.get_device_type, "aoti_torch_get_device_type");
  require(api.get_device_index, "aoti_torch_get_device_index");
  require(api.get_dim, "aoti_torch_get_dim");
  require(api.get_storage_offset, "aoti_torch_get_storage_offset");
  require(api.get_sizes, "aoti_torch_get_sizes");
  require(api.get_strides, "aoti_torch_get_strides");
  require(api.delete_tensor, "aoti_torch_delete_tensor_object");
  require(api.new_uninitialized_tensor, "aoti_torch_new_uninitialized_tensor");
  require(api.empty_strided, "aoti_torch_empty_strided");
  require(api.reinterpret_tensor, "aoti_torch__reinterpret_tensor");
  require(api.copy, "aoti_torch_copy_");
  require(api.get_data_ptr, "aoti_torch_get_data_ptr");
  api.zero = reinterpret_cast<aoti_zero_fn>(dlsym(g_cpu_lib, "aoti_torch_zero_"));
  g_api = api;
  g_ready = true;
}

const TorchApi& torch() {
  if (!g_ready) {
    fail(TASP_ERR_STATE, "the native library is not initialized: call tasp_init after libtorch is loaded");
  }
  return g_api;
}

void* torch_symbol(const char* name, bool cuda) {
  torch();  // initialized?
  void* lib = cuda ? g_cuda_lib : g_cpu_lib;
  if (lib == nullptr) {
    fail(TASP_ERR_SYMBOL, std::string("libtorch symbol ") + name +
                              " needs libtorch_cuda.so, which is not loaded: DJL's PyTorch engine runs a CPU-only "
                              "libtorch (set PYTORCH_FLAVOR to a CUDA flavor to use GPUs)");
  }
  void* p = dlsym(lib, name);
  if (p == nullptr) {
    fail(TASP_ERR_SYMBOL, std::string("libtorch symbol ") + name + " not found in " + loaded_path(lib));
  }
  return p;
}

void check_torch(AOTITorchError err, const char* call) {
  if (err != TASP_AOTI_SUCCESS) {
    fail(TASP_ERR_TORCH, std::string("libtorch call ") + call + " failed (error " + std::to_string(err) +
                             "; libtorch printed the cause to standard error)");
  }
}

void* data_ptr(AtenTensorHandle t) {
  void* p = nullptr;
  check_torch(torch().get_data_ptr(t, &p), "aoti_torch_get_data_ptr");
  return p;
}

void zero_(AtenTensorHandle t) {
  const TorchApi& api = torch();
  if (api.zero == nullptr) {
    fail(TASP_ERR_SYMBOL, std::string("libtorch symbol aoti_torch_zero_ not found in ") + loaded_path(g_cpu_lib));
  }
  check_torch(api.zero(t), "aoti_torch_zero_");
}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    if (h_ != nullptr) {
      g_api.delete_tensor(h_);
    }
    h_ = o.h_;
    o.h_ = nullptr;
  }
  return *this;
}

Tensor::~Tensor() {
  if (h_ != nullptr && g_ready) {
    g_api.delete_tensor(h_);
  }
}

TensorInfo info(AtenTensorHandle t) {
  if (t == nullptr) {
    fail(TASP_ERR_ARGUMENT, "null tensor handle");
  }
  const TorchApi& api = torch();
  TensorInfo r;
  int64_t dim = 0;
  int64_t* sizes = nullptr;
  int64_t* strides = nullptr;
  check_torch(api.get_dim(t, &dim), "aoti_torch_get_dim");
  check_torch(api.get_sizes(t, &sizes), "aoti_torch_get_sizes");
  check_torch(api.get_strides(t, &strides), "aoti_torch_get_strides");
  check_torch(api.get_storage_offset(t, &r.storage_offset), "aoti_torch_get_storage_offset");
  check_torch(api.get_dtype(t, &r.dtype), "aoti_torch_get_dtype");
  check_torch(api.get_device_type(t, &r.device_type), "aoti_torch_get_device_type");
  check_torch(api.get_device_index(t, &r.device_index), "aoti_torch_get_device_index");
  r.sizes.assign(sizes, sizes + dim);
  r.strides.assign(strides, strides + dim);
  return r;
}

std::string shape_string(const std::vector<int64_t>& sizes) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < sizes.size(); ++i) {
    s << (i ? ", " : "") << sizes[i];
  }
  s << ")";
  return s.str();
}

std::string dtype_name(int32_t dtype) {
  const TorchApi& api = torch();
  if (dtype == api.dtype_float32()) return "float32";
  if (dtype == api.dtype_float16()) return "float16";
  if (dtype == api.dtype_bfloat16()) return "bfloat16";
  return "dtype#" + std::to_string(dtype);
}

std::string device_name(int32_t device_type, int32_t device_index) {
  const TorchApi& api = torch();
  if (device_type == api.device_type_cpu()) return "cpu";
  if (device_type == api.device_type_cuda()) return "cuda:" + std::to_string(device_index);
  return "device#" + std::to_string(device_type) + ":" + std::to_string(device_index);
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> strides(sizes.size());
  int64_t s = 1;
  for (size_t i = sizes.size(); i-- > 0;) {
    strides[i] = s;
    s *= sizes[i] > 0 ? sizes[i] : 1;
  }
  return strides;
}

Tensor empty(const std::vector<int64_t>& sizes, int32_t dtype, int32_t device_type, int32_t device_index) {
  std::vector<int64_t> strides = contiguous_strides(sizes);
  Tensor t;
  check_torch(torch().empty_strided(static_cast<int64_t>(sizes.size()), sizes.data(), strides.data(), dtype,
                                    device_type, device_index, t.out()),
              "aoti_torch_empty_strided");
  return t;
}

Tensor view(AtenTensorHandle t, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides,
            int64_t offset_increment) {
  Tensor v;
  check_torch(torch().reinterpret_tensor(t, static_cast<int64_t>(sizes.size()), sizes.data(), strides.data(),
                                         offset_increment, v.out()),
              "aoti_torch__reinterpret_tensor");
  return v;
}

}  // namespace tasp
