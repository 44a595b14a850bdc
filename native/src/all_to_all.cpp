#include "all_to_all.h"

#include <algorithm>
#include <memory>
#include <thread>
#include <utility>

#include "executor_common.h"

namespace tasp {
namespace {

// What a rank of an all-to-all publishes: its receive tensors, one per peer (null where none).
struct AllToAllBuffers : RankBuffers {
  std::vector<Tensor> recv;
  std::vector<std::vector<int64_t>> sizes;
  std::vector<int64_t> bytes;
  int32_t dtype = 0;
};

constexpr uint64_t kOffset = 1469598103934665603ull;

uint64_t mix(uint64_t h, int64_t word) {
  for (int i = 0; i < 8; ++i) {
    h ^= static_cast<uint64_t>(word >> (8 * i)) & 0xffu;
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t piece_hash(const std::vector<int64_t>& sizes, int64_t dtype) {
  uint64_t h = mix(kOffset, static_cast<int64_t>(sizes.size()));
  h = mix(h, dtype);
  for (int64_t s : sizes) h = mix(h, s);
  return h;
}

int64_t numel(const std::vector<int64_t>& sizes) {
  int64_t n = 1;
  for (int64_t s : sizes) n *= s;
  return n;
}

std::string who(const std::string& transport, int rank) { return transport + ": rank " + std::to_string(rank); }

}  // namespace

AllToAllShape describe_all_to_all(const std::string& transport, int rank, int world,
                                  const std::vector<AtenTensorHandle>& sends,
                                  const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like) {
  if (rank < 0 || rank >= world) {
    fail(TASP_ERR_ARGUMENT, who(transport, rank) + " outside a group of " + std::to_string(world));
  }
  if (static_cast<int>(sends.size()) != world || static_cast<int>(recv_sizes.size()) != world) {
    fail(TASP_ERR_ARGUMENT, who(transport, rank) + ": one send and one receive shape per rank of " +
                                std::to_string(world) + " are needed, got " + std::to_string(sends.size()) + " and " +
                                std::to_string(recv_sizes.size()));
  }
  if (like == nullptr) fail(TASP_ERR_ARGUMENT, who(transport, rank) + ": no tensor gives the dtype and device");
  if (sends[static_cast<size_t>(rank)] != nullptr || !recv_sizes[static_cast<size_t>(rank)].empty()) {
    fail(TASP_ERR_ARGUMENT, who(transport, rank) + ": a rank keeps its own piece; it sends nothing to itself");
  }
  AllToAllShape shape;
  shape.like = info(like);
  const TensorInfo& li = shape.like;
  const int64_t elem = element_size(li.dtype);
  const int64_t dtype = dtype_tasp_code(li.dtype);
  shape.send_info.resize(static_cast<size_t>(world));
  shape.send_bytes.assign(static_cast<size_t>(world), 0);
  shape.recv_bytes.assign(static_cast<size_t>(world), 0);
  RunDescriptor& d = shape.descriptor;
  d.kind = static_cast<int64_t>(RunKind::kAllToAll);
  d.world = world;
  d.steps = 1;
  d.q_dtype = d.kv_dtype = dtype;
  d.device_type = li.device_type;
  d.device_index = li.device_index;
  d.sends_to.assign(static_cast<size_t>(world), kOffset);
  d.recvs_from.assign(static_cast<size_t>(world), kOffset);
  uint64_t program = mix(kOffset, rank);
  for (int p = 0; p < world; ++p) {
    const size_t i = static_cast<size_t>(p);
    if (sends[i] != nullptr) {
      shape.send_info[i] = info(sends[i]);
      const TensorInfo& s = shape.send_info[i];
      if (s.dtype != li.dtype || s.device_type != li.device_type || s.device_index != li.device_index) {
        fail(TASP_ERR_ARGUMENT, who(transport, rank) + ": the piece for rank " + std::to_string(p) + " is " +
                                    dtype_name(s.dtype) + " on " + device_name(s.device_type, s.device_index) +
                                    ", the exchange is " + dtype_name(li.dtype) + " on " +
                                    device_name(li.device_type, li.device_index));
      }
      shape.send_bytes[i] = numel(s.sizes) * elem;
      d.sends_to[i] = piece_hash(s.sizes, dtype);
      program = mix(mix(program, p), static_cast<int64_t>(d.sends_to[i]));
    }
    const std::vector<int64_t>& r = recv_sizes[i];
    if (!r.empty()) {
      for (int64_t s : r) {
        if (s < 0) {
          fail(TASP_ERR_ARGUMENT, who(transport, rank) + ": negative size in the shape expected from rank " +
                                      std::to_string(p));
        }
      }
      shape.recv_bytes[i] = numel(r) * elem;
      ++shape.expected;
      d.recvs_from[i] = piece_hash(r, dtype);
      program = mix(mix(program, -1 - p), static_cast<int64_t>(d.recvs_from[i]));
    }
  }
  d.program_hash = program;
  return shape;
}

std::vector<Tensor> allocate_receives(const AllToAllShape& shape, const std::vector<std::vector<int64_t>>& recv_sizes) {
  std::vector<Tensor> recv(recv_sizes.size());
  for (size_t i = 0; i < recv_sizes.size(); ++i) {
    if (!recv_sizes[i].empty()) {
      recv[i] = empty(recv_sizes[i], shape.like.dtype, shape.like.device_type, shape.like.device_index);
    }
  }
  return recv;
}


AllToAllResult rank_all_to_all(Group& group, int rank, const std::vector<AtenTensorHandle>& sends,
                               const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like) {
  auto t_start = Clock::now();
  const int world = group.world_size();
  AllToAllResult result;
  bool joined = false;
  try {
    const AllToAllShape shape = describe_all_to_all("all-to-all", rank, world, sends, recv_sizes, like);
    auto buffers = std::make_shared<AllToAllBuffers>();
    buffers->recv = allocate_receives(shape, recv_sizes);
    buffers->sizes = recv_sizes;
    buffers->bytes = shape.recv_bytes;
    buffers->dtype = shape.like.dtype;
    // The caller gets its own handles on the received tensors; the published ones live as long as a
    // writer holds the buffers.
    result.received.resize(static_cast<size_t>(world));
    for (int p = 0; p < world; ++p) {
      const size_t i = static_cast<size_t>(p);
      if (buffers->recv[i].get() != nullptr) {
        result.received[i] = view(buffers->recv[i].get(), recv_sizes[i], contiguous_strides(recv_sizes[i]), 0);
      }
    }
    const std::vector<TensorInfo>& send_info = shape.send_info;
    const int32_t dtype = shape.like.dtype;
    const int64_t run = group.join(rank, shape.descriptor, buffers);
    joined = true;
    // Every rank agreed, so every rank of this run published AllToAllBuffers.
    auto t0 = Clock::now();
    std::vector<std::pair<Clock::time_point, int>> arrivals;
    for (int p = 0; p < world; ++p) {
      const size_t i = static_cast<size_t>(p);
      if (sends[i] == nullptr) continue;
      group.check();
      auto peer = std::static_pointer_cast<const AllToAllBuffers>(group.buffers(p, run));
      if (!peer) fail(TASP_ERR_GROUP, who("all-to-all", rank) + ": rank " + std::to_string(p) + " left before receiving");
      const size_t me = static_cast<size_t>(rank);
      const int64_t bytes = shape.send_bytes[i];
      if (peer->recv.size() != static_cast<size_t>(world) || peer->recv[me].get() == nullptr ||
          peer->sizes[me] != send_info[i].sizes || peer->dtype != dtype || peer->bytes[me] != bytes) {
        fail(TASP_ERR_ARGUMENT, who("all-to-all", rank) + ": the piece " + shape_string(send_info[i].sizes) + " for rank " +
                                    std::to_string(p) + " does not fit what it published (" +
                                    (peer->recv.size() > me ? shape_string(peer->sizes[me]) : std::string("nothing")) +
                                    ")");
      }
      check_torch(torch().copy(peer->recv[me].get(), sends[i], 0), "aoti_torch_copy_ (all-to-all piece)");
      result.stats.bytes_sent += bytes;
      double rate = group.link_rate(rank, p);
      double seconds = rate > 0 ? static_cast<double>(bytes) / rate : 0.0;
      arrivals.emplace_back(t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)), p);
    }
    std::stable_sort(arrivals.begin(), arrivals.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& a : arrivals) {
      if (Clock::now() < a.first) std::this_thread::sleep_until(a.first);
      group.mark_arrived(a.second, 0);
    }
    result.stats.comm_ms = ms_since(t0);
    auto t_wait = Clock::now();
    group.wait_arrivals(rank, 0, shape.expected);
    result.stats.wait_ms = ms_since(t_wait);
    group.leave(rank);
  } catch (const Error& err) {
    if (err.code() != TASP_ERR_GROUP) group.fail("rank " + std::to_string(rank) + ": " + err.what(), err.code());
    if (joined) group.leave(rank);
    throw;
  } catch (const std::exception& err) {
    group.fail("rank " + std::to_string(rank) + ": " + err.what());
    if (joined) group.leave(rank);
    throw;
  }
  result.stats.total_ms = ms_since(t_start);
  return result;
}

}  // namespace tasp
