// The libtorch C shim as resolved at run time (see tasp_abi.h), plus small RAII and metadata
// helpers over AtenTensorHandle. Required functions are resolved by tasp_init; kernels are
// resolved on first use so that a libtorch without one still serves the others.
#pragma once

#include <string>
#include <vector>

#include "errors.h"
#include "tasp_abi.h"

namespace tasp {

struct TorchApi {
  aoti_int_getter_fn dtype_float32 = nullptr;
  aoti_int_getter_fn dtype_float16 = nullptr;
  aoti_int_getter_fn dtype_bfloat16 = nullptr;
  aoti_int_getter_fn device_type_cpu = nullptr;
  aoti_int_getter_fn device_type_cuda = nullptr;
  aoti_get_i32_fn get_dtype = nullptr;
  aoti_get_i32_fn get_device_type = nullptr;
  aoti_get_i32_fn get_device_index = nullptr;
  aoti_get_i64_fn get_dim = nullptr;
  aoti_get_i64_fn get_storage_offset = nullptr;
  aoti_get_i64_array_fn get_sizes = nullptr;
  aoti_get_i64_array_fn get_strides = nullptr;
  aoti_delete_tensor_fn delete_tensor = nullptr;
  aoti_new_uninitialized_tensor_fn new_uninitialized_tensor = nullptr;
  aoti_empty_strided_fn empty_strided = nullptr;
  aoti_reinterpret_tensor_fn reinterpret_tensor = nullptr;
  aoti_copy_fn copy = nullptr;
  aoti_get_data_ptr_fn get_data_ptr = nullptr;
  aoti_zero_fn zero = nullptr;  // optional (null when this libtorch's shim lacks it): use zero_()
};

// The resolved API; throws TASP_ERR_STATE when tasp_init has not succeeded.
const TorchApi& torch();

// Resolves the libtorch shim (idempotent, thread-safe).
void init_torch(const char* libtorch_dir);

// Looks up an optional shim function once; `cuda` selects libtorch_cuda. Throws TASP_ERR_SYMBOL
// naming the symbol and the library searched.
void* torch_symbol(const char* name, bool cuda);

template <typename F>
F torch_fn(const char* name, bool cuda) {
  return reinterpret_cast<F>(torch_symbol(name, cuda));
}

// Raw memory of t (its storage offset applied).
void* data_ptr(AtenTensorHandle t);
// Fills t with zeros in place.
void zero_(AtenTensorHandle t);

// Raw memory of t (its storage offset applied).
void* data_ptr(AtenTensorHandle t);
// Fills t with zeros in place.
void zero_(AtenTensorHandle t);

// Throws TASP_ERR_TORCH when a shim call failed. libtorch prints its own message to stderr.
void check_torch(AOTITorchError err, const char* call);

// An owned handle: deleted on scope exit unless released.
class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(AtenTensorHandle h) : h_(h) {}
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;
  Tensor(Tensor&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  Tensor& operator=(Tensor&& o) noexcept;
  ~Tensor();
  AtenTensorHandle get() const { return h_; }
  AtenTensorHandle* out() { return &h_; }
  AtenTensorHandle release() {
    AtenTensorHandle h = h_;
    h_ = nullptr;
    return h;
  }

 private:
  AtenTensorHandle h_ = nullptr;
};

// Metadata of a (borrowed) tensor.
struct TensorInfo {
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;
  int64_t storage_offset = 0;
  int32_t dtype = 0;
  int32_t device_type = 0;
  int32_t device_index = 0;
};

TensorInfo info(AtenTensorHandle t);
std::string shape_string(const std::vector<int64_t>& sizes);
std::string dtype_name(int32_t dtype);
std::string device_name(int32_t device_type, int32_t device_index);

// New contiguous tensor of the given shape, dtype and device.
Tensor empty(const std::vector<int64_t>& sizes, int32_t dtype, int32_t device_type, int32_t device_index);
// View of `t` with other sizes/strides over the same storage, starting `offset_increment`
// elements after t's own storage offset (the shim's _reinterpret_tensor adds the two).
Tensor view(AtenTensorHandle t, const std::vector<int64_t>& sizes, const std::vector<int64_t>& strides,
            int64_t offset_increment);
std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& sizes);

}  // namespace tasp
