#include "nccl.h"

#include <dlfcn.h>

#include <mutex>

#include "errors.h"

namespace tasp {
namespace {
std::mutex g_mutex;
NcclApi g_api;
bool g_loaded = false;

template <typename F>
void resolve(void* lib, F& slot, const char* name, const std::string& path) {
  void* p = dlsym(lib, name);
  if (p == nullptr) fail(TASP_ERR_SYMBOL, std::string("NCCL symbol ") + name + " not found in " + path);
  slot = reinterpret_cast<F>(p);
}
}  // namespace

const NcclApi& nccl(const char* path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_loaded) return g_api;
  std::string p = path != nullptr && path[0] != '\0' ? path : "libnccl.so.2";
  void* lib = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* why = dlerror();
    fail(TASP_ERR_SYMBOL, "NCCL was requested but " + p + " could not be loaded (" + (why ? why : "unknown") +
                              "); install NCCL 2.x or set tasp.nccl.library / TASP_NCCL_LIBRARY to libnccl.so.2");
  }
  NcclApi api;
  api.path = p;
  resolve(lib, api.get_version, "ncclGetVersion", p);
  resolve(lib, api.get_unique_id, "ncclGetUniqueId", p);
  // Nonblocking communicators (ncclConfig_t.blocking = 0) need NCCL 2.14 or later.
  resolve(lib, api.comm_init_rank_config, "ncclCommInitRankConfig", p);
  resolve(lib, api.comm_finalize, "ncclCommFinalize", p);
  resolve(lib, api.comm_abort, "ncclCommAbort", p);
  resolve(lib, api.comm_destroy, "ncclCommDestroy", p);
  resolve(lib, api.comm_get_async_error, "ncclCommGetAsyncError", p);
  resolve(lib, api.get_error_string, "ncclGetErrorString", p);
  resolve(lib, api.group_start, "ncclGroupStart", p);
  resolve(lib, api.group_end, "ncclGroupEnd", p);
  resolve(lib, api.send, "ncclSend", p);
  resolve(lib, api.recv, "ncclRecv", p);
  resolve(lib, api.all_gather, "ncclAllGather", p);
  resolve(lib, api.all_reduce, "ncclAllReduce", p);
  g_api = api;
  g_loaded = true;
  return g_api;
}

void check_nccl(const NcclApi& api, ncclResult_t r, const char* call) {
  if (r != TASP_NCCL_SUCCESS) {
    fail(TASP_ERR_TORCH, std::string(call) + " failed: " + (api.get_error_string ? api.get_error_string(r) : "?") +
                             " (NCCL error " + std::to_string(r) + ")");
  }
}

}  // namespace tasp
