// NCCL, loaded at run time (libnccl.so.2, or the path set by tasp.nccl.library /
// TASP_NCCL_LIBRARY): nothing links against it, so the library loads where NCCL is absent and
// only a request for NCCL fails, with a message that says what was looked for.
#pragma once

#include <string>

#include "tasp_abi.h"

namespace tasp {

struct NcclApi {
  nccl_get_version_fn get_version = nullptr;
  nccl_get_unique_id_fn get_unique_id = nullptr;
  nccl_comm_init_rank_config_fn comm_init_rank_config = nullptr;
  nccl_comm_finalize_fn comm_finalize = nullptr;
  nccl_comm_abort_fn comm_abort = nullptr;
  nccl_comm_destroy_fn comm_destroy = nullptr;
  nccl_comm_get_async_error_fn comm_get_async_error = nullptr;
  nccl_get_error_string_fn get_error_string = nullptr;
  nccl_group_start_fn group_start = nullptr;
  nccl_group_end_fn group_end = nullptr;
  nccl_send_fn send = nullptr;
  nccl_recv_fn recv = nullptr;
  nccl_all_gather_fn all_gather = nullptr;
  nccl_all_reduce_fn all_reduce = nullptr;
  std::string path;
};

// Loads NCCL once (thread-safe). `path` null or empty: libnccl.so.2 from the loader's search path.
// Throws TASP_ERR_SYMBOL when the library or a function is missing.
const NcclApi& nccl(const char* path);

// Throws TASP_ERR_TORCH with NCCL's message when `r` is not ncclSuccess.
void check_nccl(const NcclApi& api, ncclResult_t r, const char* call);

}  // namespace tasp
