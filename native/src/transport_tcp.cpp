// The TCP transport between processes (see transport_tcp.h for the wire and the rules).
#include "transport_tcp.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "all_to_all.h"
#include "errors.h"
#include "step_thread.h"
#include "transport.h"

namespace tasp {
namespace {

constexpr int64_t kHelloMagic = 0x7A5B7C01;
constexpr int64_t kData = 0x7A5B0D01, kFailMsg = 0x7A5B0D02, kBye = 0x7A5B0D03, kDesc = 0x7A5B0D04;
constexpr int64_t kReduce = 0x7A5B0D05;           // one rank's values of one all-reduce
constexpr int64_t kPiece = 0x7A5B0D06;            // one rank's piece for one peer in an all-to-all run
constexpr int64_t kMaxReduceValues = int64_t{1} << 30;  // 4 GiB of fp32 per all-reduce
constexpr int64_t kHeaderWords = 7;  // kind, run, step, dst_buffer, dst_start, count, payload bytes
constexpr int64_t kMaxFailText = 4096;

using Deadline = Clock::time_point;

int remaining_ms(Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1 << 30));
}

std::string sys_error(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Waits until fd is readable (events = POLLIN) or writable (POLLOUT); false at the deadline.
// deadline == Deadline::max(): no deadline.
bool wait_fd(int fd, short events, Deadline deadline) {
  while (true) {
    pollfd p{fd, events, 0};
    int timeout = deadline == Deadline::max() ? -1 : remaining_ms(deadline);
    int rc = ::poll(&p, 1, timeout);
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) fail(TASP_ERR_GROUP, sys_error("poll"));
  }
}

enum class Io { kOk, kClosed, kTimeout, kError };

// Reads exactly n bytes. kClosed: the peer closed before the first byte (at a message boundary
// that is a clean end; inside a message it is a loss).
Io read_exact(int fd, void* buf, size_t n, Deadline deadline) {
  char* p = static_cast<char*>(buf);
  size_t done = 0;
  while (done < n) {
    if (!wait_fd(fd, POLLIN, deadline)) return Io::kTimeout;
    ssize_t r = ::recv(fd, p + done, n - done, 0);
    if (r > 0) {
      done += static_cast<size_t>(r);
    } else if (r == 0) {
      return Io::kClosed;
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return errno == ECONNRESET ? Io::kClosed : Io::kError;
    }
  }
  return Io::kOk;
}

Io write_exact(int fd, const void* buf, size_t n, Deadline deadline) {
  const char* p = static_cast<const char*>(buf);
  size_t done = 0;
  while (done < n) {
    if (!wait_fd(fd, POLLOUT, deadline)) return Io::kTimeout;
    ssize_t r = ::send(fd, p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r >= 0) {
      done += static_cast<size_t>(r);
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return (errno == EPIPE || errno == ECONNRESET) ? Io::kClosed : Io::kError;
    }
  }
  return Io::kOk;
}

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

Address numeric_address(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    fail(TASP_ERR_ARGUMENT, "tcp transport: '" + host + "' is not a numeric IP address (" + gai_strerror(rc) + ")");
  }
  Address a;
  std::memcpy(&a.addr, res->ai_addr, res->ai_addrlen);
  a.len = res->ai_addrlen;
  ::freeaddrinfo(res);
  return a;
}

void tune(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int flags = ::fcntl(fd, F_GETFL, 0);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// Connects before the deadline, retrying while the peer is not listening yet; -1 at the deadline.
int connect_until(const Address& a, Deadline deadline) {
  while (Clock::now() < deadline) {
    int fd = ::socket(a.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) fail(TASP_ERR_GROUP, sys_error("tcp transport: socket"));
    int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
    if (rc != 0 && errno == EINPROGRESS) {
      if (wait_fd(fd, POLLOUT, deadline)) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
      }
    }
    if (rc == 0) {
      tune(fd);
      return fd;
    }
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += (i ? ", " : "") + std::to_string(ranks[i]);
  return s;
}

struct Expected {
  int64_t step;
  Recv recv;
};

// The receive side of one all-to-all run: per peer the tensor its piece lands in (null where
// nothing comes) and the exact byte count expected.
struct Pieces {
  std::vector<Tensor> recv;
  std::vector<int64_t> bytes;
};

}  // namespace

class TcpMesh {
 public:
  TcpMesh(int world, int rank, const std::string& bind_host, int64_t timeout_ms)
      : world_(world), rank_(rank), timeout_(timeout_ms), peers_(static_cast<size_t>(std::max(world, 1))),
        descs_(static_cast<size_t>(std::max(world, 1))), last_desc_(static_cast<size_t>(std::max(world, 1)), 0),
        reduce_in_(static_cast<size_t>(std::max(world, 1))) {
    if (world < 1 || rank < 0 || rank >= world) {
      fail(TASP_ERR_ARGUMENT, "tcp transport: rank " + std::to_string(rank) + " outside a world of " + std::to_string(world));
    }
    if (timeout_ms < 1) fail(TASP_ERR_ARGUMENT, "tcp transport: timeout must be at least 1 ms");
    Address a = numeric_address(bind_host, 0);
    listener_ = ::socket(a.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener_ < 0) fail(TASP_ERR_GROUP, sys_error("tcp transport: socket"));
    if (::bind(listener_, reinterpret_cast<const sockaddr*>(&a.addr), a.len) != 0 || ::listen(listener_, world) != 0) {
      std::string why = sys_error(("tcp transport: listen on " + bind_host).c_str());
      ::close(listener_);
      fail(TASP_ERR_GROUP, why);
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &len);
    port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                               : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  }

  ~TcpMesh() { close_all(); }

  int rank() const { return rank_; }
  int world() const { return world_; }
  int port() const { return port_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  void connect(const std::vector<std::string>& hosts, const std::vector<int>& ports, uint64_t token) {
    if (static_cast<int>(hosts.size()) != world_ || static_cast<int>(ports.size()) != world_) {
      fail(TASP_ERR_ARGUMENT, "tcp transport: need one address per rank");
    }
    if (connected_) fail(TASP_ERR_STATE, "tcp transport: already connected");
    const Deadline deadline = Clock::now() + timeout_;
    // Rank r connects to every lower rank and accepts every higher one: no cycle of waits.
    for (int p = 0; p < rank_; ++p) {
      int fd = connect_until(numeric_address(hosts[static_cast<size_t>(p)], ports[static_cast<size_t>(p)]), deadline);
      if (fd < 0) {
        fail(TASP_ERR_GROUP, "tcp transport: rank " + std::to_string(rank_) + " could not connect to rank " +
                                 std::to_string(p) + " at " + hosts[static_cast<size_t>(p)] + ":" +
                                 std::to_string(ports[static_cast<size_t>(p)]) + " within " +
                                 std::to_string(timeout_.count()) + " ms");
      }
      int64_t hello[3] = {kHelloMagic, static_cast<int64_t>(token), rank_};
      int64_t reply[3] = {0, 0, 0};
      if (write_exact(fd, hello, sizeof hello, deadline) != Io::kOk ||
          read_exact(fd, reply, sizeof reply, deadline) != Io::kOk || reply[0] != kHelloMagic ||
          reply[1] != static_cast<int64_t>(token) || reply[2] != p) {
        ::close(fd);
        fail(TASP_ERR_GROUP, "tcp transport: rank " + std::to_string(p) + " at " + hosts[static_cast<size_t>(p)] +
                                 ":" + std::to_string(ports[static_cast<size_t>(p)]) +
                                 " did not answer as rank " + std::to_string(p) + " of this session");
      }
      peers_[static_cast<size_t>(p)].fd = fd;
    }
    int missing = world_ - 1 - rank_;
    while (missing > 0) {
      if (!wait_fd(listener_, POLLIN, deadline)) {
        std::vector<int> late;
        for (int p = rank_ + 1; p < world_; ++p) {
          if (peers_[static_cast<size_t>(p)].fd < 0) late.push_back(p);
        }
        fail(TASP_ERR_GROUP, "tcp transport: rank(s) " + rank_list(late) + " did not connect to rank " +
                                 std::to_string(rank_) + " within " + std::to_string(timeout_.count()) + " ms");
      }
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) continue;
      tune(fd);
      int64_t hello[3] = {0, 0, 0};
      Deadline hello_deadline = std::min(deadline, Clock::now() + std::chrono::seconds(5));
      bool ok = read_exact(fd, hello, sizeof hello, hello_deadline) == Io::kOk && hello[0] == kHelloMagic &&
                hello[1] == static_cast<int64_t>(token) && hello[2] > rank_ && hello[2] < world_ &&
                peers_[static_cast<size_t>(hello[2])].fd < 0;
      int64_t reply[3] = {kHelloMagic, static_cast<int64_t>(token), rank_};
      if (!ok || write_exact(fd, reply, sizeof reply, deadline) != Io::kOk) {
        ::close(fd);  // not a rank of this session (or a duplicate): ignore it
        continue;
      }
      peers_[static_cast<size_t>(hello[2])].fd = fd;
      --missing;
    }
    ::close(listener_);
    listener_ = -1;
    connected_ = true;
    for (int p = 0; p < world_; ++p) {
      if (p != rank_) peers_[static_cast<size_t>(p)].reader = std::thread([this, p] { read_loop(p); });
    }
  }

  // ---- failure -------------------------------------------------------------------------------

  void fail_mesh(const std::string& message) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (failed_) return;
      failed_ = true;
      failure_ = message;
      telling_ = true;
    }
    cv_.notify_all();
    tell_peers(kFailMsg, message);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      telling_ = false;
    }
    cv_.notify_all();
  }

  void check() const {
    std::lock_guard<std::mutex> lock(mutex_);
    check_locked();
  }

  // ---- one run ---------------------------------------------------------------------------------

  // Starts run `run_ + 1` for `program` with `own` buffers; until agree() passes no DATA lands.
  void begin_run(const Program& program, std::shared_ptr<const RankBuffers> own) {
    std::vector<std::vector<Expected>> expected(static_cast<size_t>(world_));
    for (size_t s = 0; s < program.steps.size(); ++s) {
      for (const Recv& r : program.steps[s].recvs) {
        expected[static_cast<size_t>(r.peer)].push_back({static_cast<int64_t>(s), r});
      }
    }
    for (int b = 0; b < kBufferCount; ++b) {
      if (own->k[b].get() == nullptr) continue;  // a buffer this run does not use
      // Dense (B, S, H, D): a token range of one batch element is one run of bytes.
      for (AtenTensorHandle t : {own->k[b].get(), own->v[b].get()}) {
        TensorInfo ti = info(t);
        if (ti.sizes.size() != 4 || !dense_ignoring_unit_dims(ti) || ti.sizes[0] != own->batch ||
            ti.sizes[1] < own->capacity_tokens[b] ||
            ti.sizes[2] * ti.sizes[3] * element_size(ti.dtype) != own->token_bytes[b]) {
          fail(TASP_ERR_STATE, "tcp transport: buffers must be dense (batch, tokens, heads, dim) and hold their capacity");
        }
      }
    }
    std::unique_lock<std::mutex> lock(mutex_);
    open_run(lock);
    own_ = std::move(own);
    expected_ = std::move(expected);
    cursor_.assign(static_cast<size_t>(world_), 0);
    arrived_.assign(program.steps.size(), 0);
    completed_ = 0;
    pieces_.reset();
    cv_.notify_all();
  }

  // Starts run `run_ + 1` as an all-to-all that receives into `pieces`; until agree() passes no
  // PIECE lands. It takes the same run numbers as forwards and backwards, so every rank's runs of
  // either kind stay in one sequence.
  void begin_all_to_all(std::shared_ptr<const Pieces> pieces) {
    std::unique_lock<std::mutex> lock(mutex_);
    open_run(lock);
    own_.reset();
    expected_.assign(static_cast<size_t>(world_), {});
    cursor_.assign(static_cast<size_t>(world_), 0);
    arrived_.assign(1, 0);
    completed_ = 0;
    pieces_ = std::move(pieces);
    piece_arrived_.assign(static_cast<size_t>(world_), 0);
    cv_.notify_all();
  }

  // Sends this rank's run descriptor to every peer, waits for theirs and checks that all agree
  // (check_agreement over every pair: every rank sees the same descriptors and fails alike). Then
  // DATA may land.
  void agree(const RunDescriptor& mine) {
    std::vector<int64_t> words = encode_descriptor(mine, world_);
    const int64_t run = run_;
    int64_t header[kHeaderWords] = {kDesc, run, 0, 0, 0, 0, static_cast<int64_t>(words.size() * sizeof(int64_t))};
    for (int p = 0; p < world_; ++p) {
      if (p == rank_) continue;
      Io io = send_message(p, header, words.data());
      if (io != Io::kOk) send_failed(p, io, "run descriptor");
    }
    std::vector<RunDescriptor> all(static_cast<size_t>(world_));
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto missing = [&] {
        std::vector<int> who;
        for (int p = 0; p < world_; ++p) {
          if (p != rank_ && descs_[static_cast<size_t>(p)].count(run) == 0) who.push_back(p);
        }
        return who;
      };
      wait_for(lock, [&] { return missing().empty(); },
               [&] { return "rank " + std::to_string(rank_) + " waited for the run descriptors of rank(s) " +
                            rank_list(missing()); });
      for (int p = 0; p < world_; ++p) {
        if (p == rank_) continue;
        auto& pending = descs_[static_cast<size_t>(p)];
        all[static_cast<size_t>(p)] = decode_descriptor(pending[run].data(), world_);
        pending.erase(run);
      }
    }
    all[static_cast<size_t>(rank_)] = mine;
    std::vector<const RunDescriptor*> views;
    for (const RunDescriptor& d : all) views.push_back(&d);
    check_agreement(rank_, views, /*all_pairs=*/true, /*same_device=*/false);
    std::lock_guard<std::mutex> lock(mutex_);
    phase_ = Phase::kActive;
    cv_.notify_all();
  }

  // Waits for `count` arrivals of `step`, then marks the step complete (its buffer may be refilled).
  void complete_step(int64_t step, int64_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    wait_for(lock, [&] { return arrived_[static_cast<size_t>(step)] >= count; },
             [&] { return "rank " + std::to_string(rank_) + " waited for " + missing_senders(step) + " in step " +
                          std::to_string(step); });
    completed_ = step + 1;
    cv_.notify_all();
  }

  // Ends the run: no reader writes into the buffers any more once this returns.
  void end_run() noexcept {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return writers_ == 0; });
    phase_ = Phase::kIdle;
    own_.reset();
    pieces_.reset();
    cv_.notify_all();
  }

  // Sends one DATA message: the keys, then the values, of `count` tokens of buffer `src`.
  void send_data(int64_t step, const Send& s, const RankBuffers& own) {
    Peer& peer = peers_[static_cast<size_t>(s.peer)];
    const int64_t token_bytes = own.token_bytes[s.src_buffer];
    const int64_t segment = s.count * token_bytes;
    int64_t header[kHeaderWords] = {kData, run_, step, s.dst_buffer, s.dst_start, s.count, 2 * own.batch * segment};
    const Deadline deadline = Clock::now() + timeout_;
    std::lock_guard<std::timed_mutex> lock(peer.send_mutex);
    Io io = write_exact(peer.fd, header, sizeof header, deadline);
    for (const Tensor* buf : {&own.k[s.src_buffer], &own.v[s.src_buffer]}) {
      const char* base = static_cast<const char*>(data_ptr(buf->get()));
      const int64_t batch_stride = info(buf->get()).sizes[1] * token_bytes;
      for (int64_t b = 0; b < own.batch && io == Io::kOk; ++b) {
        io = write_exact(peer.fd, base + b * batch_stride + s.src_start * token_bytes, static_cast<size_t>(segment),
                         deadline);
      }
    }
    if (io != Io::kOk) send_failed(static_cast<int>(s.peer), io, "data", " (step " + std::to_string(step) + ")");
  }

  // Sends one PIECE message: this rank's whole piece for `p` in the current all-to-all run, `bytes`
  // from `data` (contiguous). The peer's reader drains it on its own thread once that rank agreed,
  // so two ranks that send each other large pieces at once never wait on each other.
  void send_piece(int p, const void* data, int64_t bytes) {
    int64_t header[kHeaderWords] = {kPiece, run_, 0, 0, 0, 0, bytes};
    Io io = send_message(p, header, data);
    if (io != Io::kOk) send_failed(p, io, "all-to-all piece");
  }

  // Waits until the piece of every peer that sends to this rank arrived.
  void wait_pieces() {
    std::unique_lock<std::mutex> lock(mutex_);
    auto missing = [&] {
      std::vector<int> who;
      for (int p = 0; p < world_; ++p) {
        if (needs_piece_locked(p)) who.push_back(p);
      }
      return who;
    };
    wait_for(lock, [&] { return missing().empty(); },
             [&] { return "rank " + std::to_string(rank_) + " waited for the all-to-all pieces of rank(s) " +
                          rank_list(missing()); });
  }

  // Sums `count` floats over the ranks, in place. Each rank sends its values to every peer (one
  // REDUCE message each) and sums all ranks' values in rank order, in double, so every rank gets the
  // same bits. Not during a run; every wait has the mesh's deadline.
  void all_reduce(float* values, int64_t count) {
    if (count < 0 || count > kMaxReduceValues) {
      fail(TASP_ERR_ARGUMENT, "tcp transport: all-reduce of " + std::to_string(count) + " values (at most " +
                                  std::to_string(kMaxReduceValues) + ")");
    }
    int64_t seq;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check_locked();
      if (!connected_) fail(TASP_ERR_STATE, "tcp transport: not connected");
      if (phase_ != Phase::kIdle) fail(TASP_ERR_STATE, "tcp transport: an all-reduce cannot run inside a forward");
      seq = ++reduce_seq_;
    }
    const int64_t bytes = count * static_cast<int64_t>(sizeof(float));
    for (int p = 0; p < world_; ++p) {
      if (p == rank_) continue;
      int64_t header[kHeaderWords] = {kReduce, seq, 0, 0, 0, count, bytes};
      Io io = send_message(p, header, values);
      if (io != Io::kOk) send_failed(p, io, "all-reduce values");
    }
    std::vector<std::vector<float>> theirs(static_cast<size_t>(world_));
    {
      std::unique_lock<std::mutex> lock(mutex_);
      auto missing = [&] {
        std::vector<int> who;
        for (int p = 0; p < world_; ++p) {
          if (p != rank_ && reduce_in_[static_cast<size_t>(p)].count(seq) == 0) who.push_back(p);
        }
        return who;
      };
      wait_for(lock, [&] { return missing().empty(); },
               [&] { return "rank " + std::to_string(rank_) + " waited for the all-reduce values of rank(s) " +
                            rank_list(missing()); });
      for (int p = 0; p < world_; ++p) {
        if (p == rank_) continue;
        auto& pending = reduce_in_[static_cast<size_t>(p)];
        theirs[static_cast<size_t>(p)] = std::move(pending[seq]);
        pending.erase(seq);
      }
    }
    for (int p = 0; p < world_; ++p) {
      if (p != rank_ && static_cast<int64_t>(theirs[static_cast<size_t>(p)].size()) != count) {
        std::string why = "tcp transport: rank " + std::to_string(p) + " all-reduces " +
                          std::to_string(theirs[static_cast<size_t>(p)].size()) + " values, rank " +
                          std::to_string(rank_) + " " + std::to_string(count) +
                          " (every rank must pass the same parameters)";
        fail_mesh(why);
        check();
      }
    }
    for (int64_t i = 0; i < count; ++i) {
      double sum = 0;
      for (int p = 0; p < world_; ++p) {
        sum += p == rank_ ? values[i] : theirs[static_cast<size_t>(p)][static_cast<size_t>(i)];
      }
      values[i] = static_cast<float>(sum);
    }
  }

  void close_all() noexcept {
    if (connected_) tell_peers(kBye, "");
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (Peer& p : peers_) {
      if (p.fd >= 0) ::shutdown(p.fd, SHUT_RDWR);
    }
    for (Peer& p : peers_) {
      if (p.reader.joinable()) p.reader.join();
      if (p.fd >= 0) ::close(p.fd);
      p.fd = -1;
    }
    if (listener_ >= 0) ::close(listener_);
    listener_ = -1;
    connected_ = false;
  }

  // Wakes threads blocked on sockets after a failure (the mesh is dead from then on).
  void shutdown_sockets() noexcept {
    // The failure's FAIL messages go out first (fail_mesh may still be writing them on another
    // thread, e.g. a reader that heard of a peer's failure): a peer that saw this rank's socket close
    // first would blame a lost connection instead of the failure's cause. tell_peers is bounded
    // (200 ms lock + 1 s write per peer), so is this wait.
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait_for(lock, std::chrono::milliseconds(1300) * std::max(world_, 1), [&] { return !telling_; });
    }
    for (Peer& p : peers_) {
      if (p.fd >= 0) ::shutdown(p.fd, SHUT_RDWR);
    }
  }

 private:
  struct Peer {
    int fd = -1;
    std::thread reader;
    std::timed_mutex send_mutex;
    bool left = false;  // said BYE
  };

  static std::string lost_text(int peer, const std::string& when) {
    return "lost rank " + std::to_string(peer) + ": its connection closed " + when +
           " (the process died, was killed or closed its transport)";
  }

  void check_locked() const {
    if (failed_) fail(TASP_ERR_GROUP, failure_);
  }

  // Takes the next run number for a run of any kind (mutex held): the mesh must be connected, not
  // failed, idle, and every peer still there. The run then agrees (phase kAgreeing).
  void open_run(std::unique_lock<std::mutex>& lock) {
    check_locked();
    if (!connected_) fail(TASP_ERR_STATE, "tcp transport: not connected");
    if (phase_ != Phase::kIdle) {
      fail(TASP_ERR_STATE, "tcp transport: a run is already active on this rank (one run at a time)");
    }
    for (int p = 0; p < world_; ++p) {
      if (peers_[static_cast<size_t>(p)].left) {
        lock.unlock();
        fail_mesh("rank " + std::to_string(p) + " left the group (it closed its transport)");  // tells the peers
        check();
      }
    }
    ++run_;
    phase_ = Phase::kAgreeing;
  }

  // Writes one message to `p` (header, then header[6] bytes of payload) under p's send lock, within
  // the mesh's deadline.
  Io send_message(int p, const int64_t* header, const void* payload) {
    Peer& peer = peers_[static_cast<size_t>(p)];
    const Deadline deadline = Clock::now() + timeout_;
    std::lock_guard<std::timed_mutex> lock(peer.send_mutex);
    Io io = write_exact(peer.fd, header, kHeaderWords * sizeof(int64_t), deadline);
    if (io == Io::kOk && header[6] > 0) io = write_exact(peer.fd, payload, static_cast<size_t>(header[6]), deadline);
    return io;
  }

  // A send of `what` to `p` that did not complete: fails the mesh naming p (it took nothing for the
  // timeout, it left, or its connection was lost) and throws.
  [[noreturn]] void send_failed(int p, Io io, const std::string& what, const std::string& context = "") {
    bool left;
    {
      std::unique_lock<std::mutex> state(mutex_);
      if (io != Io::kTimeout) await_reason_locked(state, p);
      left = peers_[static_cast<size_t>(p)].left;
    }
    std::string why = io == Io::kTimeout ? "rank " + std::to_string(p) + " took no " + what + " from rank " +
                                               std::to_string(rank_) + " for " + std::to_string(timeout_.count()) +
                                               " ms" + context
                      : left ? "rank " + std::to_string(p) + " left the group (it closed its transport)"
                             : lost_text(p, "while rank " + std::to_string(rank_) + " was sending to it");
    fail_mesh(why);
    check();
    fail(TASP_ERR_GROUP, why);  // not reached: the mesh failed
  }

  // Whether the current all-to-all still waits for p's piece (mutex held).
  bool needs_piece_locked(int p) const {
    const size_t i = static_cast<size_t>(p);
    return pieces_ != nullptr && pieces_->recv[i].get() != nullptr && piece_arrived_[i] == 0;
  }

  // Whether the current run still needs something from p (mutex held): its run descriptor, a
  // transfer of the program or an all-to-all piece. A peer that leaves while it does fails the run.
  bool needs_from_locked(int p) const {
    const size_t i = static_cast<size_t>(p);
    if (phase_ == Phase::kIdle) return false;
    if (phase_ == Phase::kAgreeing && last_desc_[i] < run_) return true;
    return cursor_[i] < expected_[i].size() || needs_piece_locked(p);
  }

  template <typename Ready, typename What>
  void wait_for(std::unique_lock<std::mutex>& lock, Ready ready, What what) {
    const Deadline deadline = Clock::now() + timeout_;
    while (!ready()) {
      check_locked();
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && !ready()) {
        check_locked();
        std::string why = what() + " for " + std::to_string(timeout_.count()) + " ms";
        lock.unlock();
        fail_mesh(why);
        lock.lock();
        check_locked();
      }
    }
    check_locked();
  }

  // The peers whose receives of `step` have not arrived yet (mutex held).
  std::string missing_senders(int64_t step) const {
    std::vector<int> who;
    for (int p = 0; p < world_; ++p) {
      const auto& list = expected_[static_cast<size_t>(p)];
      size_t c = cursor_[static_cast<size_t>(p)];
      if (c < list.size() && list[c].step <= step) who.push_back(p);
    }
    return who.empty() ? std::string("peers") : "rank(s) " + rank_list(who);
  }

  void tell_peers(int64_t kind, const std::string& text) noexcept {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(text.size()), kMaxFailText);
    int64_t header[kHeaderWords] = {kind, 0, 0, 0, 0, 0, n};
    for (int p = 0; p < world_; ++p) {
      Peer& peer = peers_[static_cast<size_t>(p)];
      if (p == rank_ || peer.fd < 0) continue;
      // A sender blocked in a transfer holds the lock: then the peer learns from the closed socket.
      if (!peer.send_mutex.try_lock_for(std::chrono::milliseconds(200))) continue;
      const Deadline deadline = Clock::now() + std::chrono::seconds(1);
      if (write_exact(peer.fd, header, sizeof header, deadline) == Io::kOk && n > 0) {
        write_exact(peer.fd, text.data(), static_cast<size_t>(n), deadline);
      }
      peer.send_mutex.unlock();
    }
  }

  // One per peer: reads its messages until the mesh stops, fails, or the peer says goodbye.
  void read_loop(int p) noexcept {
    Peer& peer = peers_[static_cast<size_t>(p)];
    try {
      while (true) {
        int64_t h[kHeaderWords];
        Io io = read_exact(peer.fd, h, sizeof h, Deadline::max());
        if (io != Io::kOk) {
          lost(p, "");
          return;
        }
        if (h[0] == kBye) {
          bool needed;
          {
            std::lock_guard<std::mutex> lock(mutex_);
            peer.left = true;
            needed = needs_from_locked(p);
          }
          cv_.notify_all();  // a send to p that failed meanwhile waits for this (await_reason_locked)
          if (needed) {
            fail_mesh("rank " + std::to_string(p) + " left the group before sending what rank " +
                      std::to_string(rank_) + " needs");
          }
          return;
        }
        if (h[0] == kFailMsg) {
          std::string text(static_cast<size_t>(std::clamp<int64_t>(h[6], 0, kMaxFailText)), '\0');
          if (!text.empty()) read_exact(peer.fd, text.data(), text.size(), Clock::now() + std::chrono::seconds(1));
          fail_mesh("rank " + std::to_string(p) + " failed: " + text);
          return;
        }
        if (h[0] == kDesc) {
          if (!receive_descriptor(p, h)) return;
          continue;
        }
        if (h[0] == kReduce) {
          if (!receive_reduce(p, h)) return;
          continue;
        }
        if (h[0] == kPiece) {
          if (!receive_piece(p, h)) return;
          continue;
        }
        if (h[0] != kData) {
          fail_mesh("tcp transport: rank " + std::to_string(p) + " sent a message of unknown kind");
          return;
        }
        if (!receive(p, h)) return;
      }
    } catch (const std::exception& e) {
      fail_mesh("tcp transport: reading from rank " + std::to_string(p) + ": " + e.what());
    }
  }

  void lost(int p, const std::string& when) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      if (await_reason_locked(lock, p)) return;
    }
    fail_mesh(lost_text(p, when.empty() ? "without a goodbye" : when));
  }

  // A rank that fails tells its peers why (FAIL) and closes its connections at once, and so does a
  // rank that failed because of it, so a connection can close here while the message with the cause
  // is still unread on another socket (or behind a send that was still writing). Waits a moment
  // (mutex held through `lock`) for the cause or p's goodbye before the connection counts as lost,
  // so that every rank reports the first cause. Returns whether one came (or the mesh is stopping).
  bool await_reason_locked(std::unique_lock<std::mutex>& lock, int p) {
    return cv_.wait_for(lock, std::chrono::milliseconds(500),
                        [&] { return failed_ || stopping_ || peers_[static_cast<size_t>(p)].left; });
  }

  // A DESC message from p: its run descriptor for its next run, kept until agree() reads it.
  bool receive_descriptor(int p, const int64_t* h) {
    const int64_t words = descriptor_words(world_);
    if (h[6] != words * static_cast<int64_t>(sizeof(int64_t)) || h[1] < 1) {
      fail_mesh("tcp transport: rank " + std::to_string(p) + " sent a malformed run descriptor");
      return false;
    }
    std::vector<int64_t> buf(static_cast<size_t>(words));
    if (read_exact(peers_[static_cast<size_t>(p)].fd, buf.data(), buf.size() * sizeof(int64_t),
                   Clock::now() + timeout_) != Io::kOk) {
      lost(p, "in the middle of a run descriptor");
      return false;
    }
    std::string bad;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // A peer sends its descriptor for run r once its run r - 1 ended, which needed this rank's
      // descriptor for r - 1: it is at most one run ahead, so at most two wait here.
      const int64_t oldest = phase_ == Phase::kAgreeing ? run_ : run_ + 1;
      auto& pending = descs_[static_cast<size_t>(p)];
      if (h[1] < oldest || h[1] > oldest + 1 || pending.count(h[1]) != 0) {
        bad = "tcp transport: rank " + std::to_string(p) + " sent a run descriptor for run " + std::to_string(h[1]) +
              " while rank " + std::to_string(rank_) + " is at run " + std::to_string(run_);
      } else {
        pending[h[1]] = std::move(buf);
        last_desc_[static_cast<size_t>(p)] = h[1];
        cv_.notify_all();
      }
    }
    if (!bad.empty()) {
      fail_mesh(bad);
      return false;
    }
    return true;
  }

  // A REDUCE message from p: its values for all-reduce h[1], read into a buffer of their own (sized
  // by the header, at most kMaxReduceValues) and kept until all_reduce takes them. A peer is at most
  // one all-reduce ahead (it cannot finish one without this rank's values).
  bool receive_reduce(int p, const int64_t* h) {
    const int64_t seq = h[1], count = h[5];
    if (count < 0 || count > kMaxReduceValues || h[6] != count * static_cast<int64_t>(sizeof(float))) {
      fail_mesh("tcp transport: rank " + std::to_string(p) + " sent a malformed all-reduce message");
      return false;
    }
    std::string bad;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (seq < reduce_seq_ || seq > reduce_seq_ + 1 || reduce_in_[static_cast<size_t>(p)].count(seq) != 0) {
        bad = "tcp transport: rank " + std::to_string(p) + " sent values of all-reduce " + std::to_string(seq) +
              " while rank " + std::to_string(rank_) + " is at all-reduce " + std::to_string(reduce_seq_);
      }
    }
    if (!bad.empty()) {
      fail_mesh(bad);
      return false;
    }
    std::vector<float> values(static_cast<size_t>(count));
    if (count > 0 && read_exact(peers_[static_cast<size_t>(p)].fd, values.data(), values.size() * sizeof(float),
                                Clock::now() + timeout_) != Io::kOk) {
      lost(p, "in the middle of all-reduce values");
      return false;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    reduce_in_[static_cast<size_t>(p)][seq] = std::move(values);
    cv_.notify_all();
    return true;
  }

  // A DATA message from p: waits until its buffer is free, checks it against the program, reads
  // the payload into place. False when the reader must stop.
  bool receive(int p, const int64_t* h) {
    const int64_t run = h[1], step = h[2], dst_buffer = h[3], dst_start = h[4], count = h[5], bytes = h[6];
    std::unique_lock<std::mutex> lock(mutex_);
    // No deadline here: this rank may legitimately compute for long; the sender's wait has one.
    cv_.wait(lock, [&] {
      return failed_ || stopping_ || run_ > run ||
             (run_ == run && phase_ != Phase::kAgreeing && (phase_ != Phase::kActive || completed_ >= step));
    });
    if (failed_ || stopping_) return false;
    auto protocol = [&](const std::string& why) { return protocol_error(lock, p, why); };
    if (run_ != run || phase_ != Phase::kActive) {
      return protocol("data of run " + std::to_string(run) + " while rank " + std::to_string(rank_) + " is in run " +
                      std::to_string(run_) + (phase_ == Phase::kActive ? "" : " (not running)"));
    }
    const auto& list = expected_[static_cast<size_t>(p)];
    size_t& c = cursor_[static_cast<size_t>(p)];
    if (c >= list.size() || list[c].step != step || list[c].recv.dst_buffer != dst_buffer ||
        list[c].recv.dst_start != dst_start || list[c].recv.count != count) {
      return protocol("tokens [" + std::to_string(dst_start) + ", +" + std::to_string(count) + ") of buffer " +
                      std::to_string(dst_buffer) + " in step " + std::to_string(step) +
                      " that rank " + std::to_string(rank_) + "'s program does not expect");
    }
    if (!is_receive_buffer(dst_buffer) || dst_start < 0 || count < 1 ||
        dst_start + count > own_->capacity_tokens[dst_buffer] || bytes != own_->transfer_bytes(dst_buffer, count)) {
      return protocol("a transfer that does not fit receive buffer " + std::to_string(dst_buffer));
    }
    ++writers_;
    std::shared_ptr<const RankBuffers> own = own_;  // alive while this reader writes into it
    AtenTensorHandle targets[2] = {own->k[dst_buffer].get(), own->v[dst_buffer].get()};
    const int64_t token_bytes = own->token_bytes[dst_buffer];
    const int64_t segment = count * token_bytes, batch_stride = info(targets[0]).sizes[1] * token_bytes;
    lock.unlock();

    const Deadline deadline = Clock::now() + timeout_;
    Io io = Io::kOk;
    for (AtenTensorHandle t : targets) {
      char* base = static_cast<char*>(data_ptr(t));
      for (int64_t b = 0; b < own->batch && io == Io::kOk; ++b) {
        io = read_exact(peers_[static_cast<size_t>(p)].fd, base + b * batch_stride + dst_start * token_bytes,
                        static_cast<size_t>(segment), deadline);
      }
    }

    lock.lock();
    --writers_;
    if (io == Io::kOk) {
      ++arrived_[static_cast<size_t>(step)];
      ++c;
    }
    cv_.notify_all();
    lock.unlock();
    return read_done(p, io);
  }

  // A PIECE message from p: waits until this rank's run h[1] agreed, checks that it is an all-to-all
  // that expects a piece from p not yet here, of exactly h[6] bytes (the size both sides agreed on),
  // then reads the payload straight into that piece's receive tensor. False when the reader must stop.
  bool receive_piece(int p, const int64_t* h) {
    const int64_t run = h[1], bytes = h[6];
    const size_t i = static_cast<size_t>(p);
    std::unique_lock<std::mutex> lock(mutex_);
    // No deadline here (as for DATA): the sender's wait has one.
    cv_.wait(lock, [&] { return failed_ || stopping_ || run_ > run || (run_ == run && phase_ != Phase::kAgreeing); });
    if (failed_ || stopping_) return false;
    if (run_ != run || phase_ != Phase::kActive || pieces_ == nullptr) {
      return protocol_error(lock, p, "an all-to-all piece of run " + std::to_string(run) + " while rank " +
                                         std::to_string(rank_) + " is in run " + std::to_string(run_) +
                                         (phase_ == Phase::kActive ? " (not an all-to-all)" : " (not running)"));
    }
    if (!needs_piece_locked(p)) {
      return protocol_error(lock, p, std::string(pieces_->recv[i].get() == nullptr ? "an" : "a second") +
                                         " all-to-all piece that rank " + std::to_string(rank_) +
                                         " does not expect in run " + std::to_string(run));
    }
    if (bytes != pieces_->bytes[i]) {
      return protocol_error(lock, p, "an all-to-all piece of " + std::to_string(bytes) + " bytes, rank " +
                                         std::to_string(rank_) + " expects " + std::to_string(pieces_->bytes[i]));
    }
    ++writers_;
    std::shared_ptr<const Pieces> pieces = pieces_;  // alive while this reader writes into it
    void* target = data_ptr(pieces->recv[i].get());
    lock.unlock();

    Io io = read_exact(peers_[i].fd, target, static_cast<size_t>(bytes), Clock::now() + timeout_);

    lock.lock();
    --writers_;
    if (io == Io::kOk) piece_arrived_[i] = 1;
    cv_.notify_all();
    lock.unlock();
    return read_done(p, io);
  }

  // A message from p that does not fit what this rank expects: fails the mesh naming it.
  bool protocol_error(std::unique_lock<std::mutex>& lock, int p, const std::string& why) {
    lock.unlock();
    fail_mesh("tcp transport: rank " + std::to_string(p) + " sent " + why);
    return false;
  }

  // After a payload read from p: fails the mesh if it did not complete. False when the reader must stop.
  bool read_done(int p, Io io) {
    if (io == Io::kTimeout) {
      fail_mesh("rank " + std::to_string(p) + " stopped sending in the middle of a transfer for " +
                std::to_string(timeout_.count()) + " ms");
    } else if (io != Io::kOk) {
      lost(p, "in the middle of a transfer");
    }
    return io == Io::kOk;
  }

  const int world_, rank_;
  const std::chrono::milliseconds timeout_;
  int listener_ = -1;
  int port_ = 0;
  bool connected_ = false;
  std::vector<Peer> peers_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool failed_ = false, stopping_ = false;
  bool telling_ = false;  // fail_mesh is sending the failure to the peers
  std::string failure_;
  // The current run (guarded by mutex_; run_ and the buffers change only in start_run).
  int64_t run_ = 0;
  enum class Phase { kIdle, kAgreeing, kActive };
  Phase phase_ = Phase::kIdle;
  std::shared_ptr<const RankBuffers> own_;
  std::vector<std::map<int64_t, std::vector<int64_t>>> descs_;  // per peer: run -> its descriptor, not yet used
  std::vector<int64_t> last_desc_;                               // per peer: the last run it sent a descriptor for
  int64_t reduce_seq_ = 0;                                       // all-reduces this rank started
  std::vector<std::map<int64_t, std::vector<float>>> reduce_in_;  // per peer: all-reduce -> its values
  std::vector<std::vector<Expected>> expected_;
  std::vector<size_t> cursor_;
  std::vector<int64_t> arrived_;
  int64_t completed_ = 0;
  std::shared_ptr<const Pieces> pieces_;  // the current all-to-all's receive tensors (null in other runs)
  std::vector<char> piece_arrived_;       // per peer, in the current all-to-all
  int writers_ = 0;
};

namespace {

// The communication thread of one run: sends each posted step, in order.
class TcpSender {
 public:
  TcpSender(TcpMesh& mesh, const Program& program, std::shared_ptr<const RankBuffers> own)
      : step_comm_ms(program.steps.size(), 0.0), mesh_(mesh), program_(program), own_(std::move(own)),
        thread_([this](int64_t step) { send_step(step); }) {}

  void post(int64_t step) { thread_.post(step); }

  // Each send has its own deadline (TcpMesh::send_data), so this wait ends.
  void wait_done(int64_t step) { thread_.wait_done(step); }

  double comm_ms = 0;
  int64_t bytes_sent = 0;
  std::vector<double> step_comm_ms;

 private:
  void send_step(int64_t step) {
    auto t0 = Clock::now();
    for (const Send& s : program_.steps[static_cast<size_t>(step)].sends) {
      mesh_.send_data(step, s, *own_);
      bytes_sent += own_->transfer_bytes(s.src_buffer, s.count);
    }
    step_comm_ms[static_cast<size_t>(step)] = ms_since(t0);
    comm_ms += step_comm_ms[static_cast<size_t>(step)];
  }

  TcpMesh& mesh_;
  const Program& program_;
  std::shared_ptr<const RankBuffers> own_;
  StepThread thread_;  // last: starts after everything it uses, joins before they go
};

class TcpTransport final : public Transport {
 public:
  explicit TcpTransport(TcpMesh& mesh) : mesh_(mesh) {}

  ~TcpTransport() override {
    sender_.reset();
    if (started_) mesh_.end_run();
  }

  int rank() const override { return mesh_.rank(); }
  int world() const override { return mesh_.world(); }

  void check_device(const TensorInfo& q) const override {
    if (q.device_type != torch().device_type_cpu()) {
      fail(TASP_ERR_ARGUMENT, "tcp transport: moves host memory; tensors on " +
                                  device_name(q.device_type, q.device_index) + " need the NCCL transport");
    }
  }

  void start(const Program& program, const RunDescriptor& descriptor,
             std::shared_ptr<const RankBuffers> own) override {
    program_ = &program;
    mesh_.begin_run(program, own);
    started_ = true;
    try {
      mesh_.agree(descriptor);
    } catch (const Error& e) {
      // Every rank saw the same descriptors and fails alike: the mesh itself stays usable.
      agreement_failed_ = e.code() == TASP_ERR_ARGUMENT;
      throw;
    }
    sender_ = std::make_unique<TcpSender>(mesh_, program, std::move(own));
  }

  void post(int64_t step) override { sender_->post(step); }
  void before_compute(int64_t) override {}  // step - 1's arrivals were awaited in after_compute(step - 1)

  void after_compute(int64_t step) override {
    auto t0 = Clock::now();
    sender_->wait_done(step);
    mesh_.complete_step(step, static_cast<int64_t>(program_->steps[static_cast<size_t>(step)].recvs.size()));
    double waited = ms_since(t0);
    wait_ms_ += waited;
    step_wait_ms_.push_back(waited);
  }

  void finish() override {}
  void check() const override { mesh_.check(); }

  void abort(const std::string& why, bool group_error) noexcept override {
    if (agreement_failed_) return;
    if (!group_error) mesh_.fail_mesh("rank " + std::to_string(mesh_.rank()) + ": " + why);
    mesh_.shutdown_sockets();  // wakes a sender or reader blocked on a socket; the mesh is dead now
    sender_.reset();
  }

  void report(RankStats& stats) override {
    stats.comm_ms = sender_->comm_ms;
    stats.wait_ms = wait_ms_;
    stats.bytes_sent = sender_->bytes_sent;
    stats.step_comm_ms = sender_->step_comm_ms;
    stats.step_wait_ms = step_wait_ms_;
  }

 private:
  TcpMesh& mesh_;
  const Program* program_ = nullptr;
  bool started_ = false;
  bool agreement_failed_ = false;
  std::unique_ptr<TcpSender> sender_;
  double wait_ms_ = 0;
  std::vector<double> step_wait_ms_;
};

}  // namespace

TcpMesh* tcp_mesh_create(int world, int rank, const std::string& bind_host, int64_t timeout_ms) {
  return new TcpMesh(world, rank, bind_host, timeout_ms);
}

int tcp_mesh_port(const TcpMesh& mesh) { return mesh.port(); }

int tcp_mesh_world(const TcpMesh& mesh) { return mesh.world(); }

void tcp_mesh_connect(TcpMesh& mesh, const std::vector<std::string>& hosts, const std::vector<int>& ports,
                      uint64_t token) {
  mesh.connect(hosts, ports, token);
}

void tcp_mesh_fail(TcpMesh& mesh, const std::string& message) { mesh.fail_mesh(message); }

void tcp_all_reduce(TcpMesh& mesh, const std::vector<AtenTensorHandle>& tensors) {
  std::vector<float> flat;
  std::vector<std::pair<float*, size_t>> where;
  for (size_t i = 0; i < tensors.size(); ++i) {
    TensorInfo ti = info(tensors[i]);
    if (ti.dtype != torch().dtype_float32() || ti.device_type != torch().device_type_cpu() ||
        ti.strides != contiguous_strides(ti.sizes)) {
      fail(TASP_ERR_ARGUMENT, "tcp transport: all-reduce tensor " + std::to_string(i) +
                                  " must be contiguous float32 on the CPU, got " + dtype_name(ti.dtype) + " " +
                                  shape_string(ti.sizes) + " on " + device_name(ti.device_type, ti.device_index));
    }
    size_t n = 1;
    for (int64_t z : ti.sizes) n *= static_cast<size_t>(z);
    float* p = static_cast<float*>(data_ptr(tensors[i]));
    where.emplace_back(p, n);
    flat.insert(flat.end(), p, p + n);
  }
  mesh.all_reduce(flat.data(), static_cast<int64_t>(flat.size()));
  size_t at = 0;
  for (auto& [p, n] : where) {
    std::copy(flat.begin() + static_cast<std::ptrdiff_t>(at), flat.begin() + static_cast<std::ptrdiff_t>(at + n), p);
    at += n;
  }
}

void tcp_mesh_destroy(TcpMesh* mesh) { delete mesh; }

RankResult tcp_rank_forward(TcpMesh& mesh, const int64_t* program, int64_t program_len, AtenTensorHandle q,
                            AtenTensorHandle k, AtenTensorHandle v, const double* scale) {
  TcpTransport t(mesh);
  return run_rank(t, program, program_len, q, k, v, scale);
}

RankGradients tcp_rank_backward(TcpMesh& mesh, const int64_t* program, int64_t program_len, const int64_t* return_map,
                                int64_t return_map_len, AtenTensorHandle dout, AtenTensorHandle q, AtenTensorHandle k,
                                AtenTensorHandle v, AtenTensorHandle out, AtenTensorHandle lse, const double* scale) {
  TcpTransport t(mesh);
  return run_backward(t, program, program_len, return_map, return_map_len, dout, q, k, v, out, lse, scale);
}

AllToAllResult tcp_all_to_all(TcpMesh& mesh, const std::vector<AtenTensorHandle>& sends,
                              const std::vector<std::vector<int64_t>>& recv_sizes, AtenTensorHandle like) {
  const auto t_start = Clock::now();
  const int rank = mesh.rank(), world = mesh.world();
  AllToAllResult result;
  bool started = false, disagreed = false;
  try {
    const AllToAllShape shape = describe_all_to_all("tcp all-to-all", rank, world, sends, recv_sizes, like);
    if (shape.like.device_type != torch().device_type_cpu()) {
      fail(TASP_ERR_ARGUMENT, "tcp all-to-all: rank " + std::to_string(rank) + ": moves host memory; tensors on " +
                                  device_name(shape.like.device_type, shape.like.device_index) +
                                  " need the NCCL transport");
    }
    // A piece goes out as one run of bytes: a strided one is copied into a contiguous tensor first,
    // before the run starts (an allocation failure then fails before any byte moves).
    std::vector<Tensor> dense(static_cast<size_t>(world));
    std::vector<AtenTensorHandle> out(static_cast<size_t>(world), nullptr);
    for (size_t p = 0; p < out.size(); ++p) {
      if (sends[p] == nullptr) continue;
      const TensorInfo& s = shape.send_info[p];
      out[p] = sends[p];
      if (s.strides != contiguous_strides(s.sizes)) {
        dense[p] = empty(s.sizes, s.dtype, s.device_type, s.device_index);
        check_torch(torch().copy(dense[p].get(), sends[p], 0), "aoti_torch_copy_ (tcp all-to-all piece)");
        out[p] = dense[p].get();
      }
    }
    auto pieces = std::make_shared<Pieces>();
    pieces->recv = allocate_receives(shape, recv_sizes);
    pieces->bytes = shape.recv_bytes;

    mesh.begin_all_to_all(pieces);
    started = true;
    try {
      mesh.agree(shape.descriptor);
    } catch (const Error& e) {
      // Every rank saw the same descriptors and fails alike: the mesh itself stays usable.
      disagreed = e.code() == TASP_ERR_ARGUMENT;
      throw;
    }
    // Starting with the next rank up spreads the first pieces over every receiver.
    const auto t_send = Clock::now();
    for (int step = 1; step < world; ++step) {
      const int p = (rank + step) % world;
      const size_t i = static_cast<size_t>(p);
      if (out[i] == nullptr) continue;
      mesh.send_piece(p, data_ptr(out[i]), shape.send_bytes[i]);
      result.stats.bytes_sent += shape.send_bytes[i];
    }
    result.stats.comm_ms = ms_since(t_send);
    const auto t_wait = Clock::now();
    mesh.wait_pieces();
    result.stats.wait_ms = ms_since(t_wait);
    mesh.end_run();
    // The caller's own handles: the receive tensors stay alive as long as these do.
    result.received.resize(static_cast<size_t>(world));
    for (size_t p = 0; p < result.received.size(); ++p) {
      if (pieces->recv[p].get() != nullptr) {
        result.received[p] = view(pieces->recv[p].get(), recv_sizes[p], contiguous_strides(recv_sizes[p]), 0);
      }
    }
  } catch (const std::exception& e) {
    if (!disagreed) {
      // Anything else fails every rank: bad input here (the peers would wait for this rank's
      // descriptor), a send or a wait that failed (the mesh already did: the first failure wins).
      mesh.fail_mesh(e.what());
      mesh.shutdown_sockets();  // wakes readers blocked on sockets, so that end_run returns
    }
    if (started) mesh.end_run();
    throw;
  }
  result.stats.total_ms = ms_since(t_start);
  return result;
}

}  // namespace tasp
