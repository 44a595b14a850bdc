// The communication thread of one run, shared by the in-process and TCP transports: runs each posted
// step's sends in step order, off the compute thread, so a step's transfers overlap its attention.
// The thread starts in the constructor: construct it as the last member of its owner, so everything
// `run_step` uses exists before it runs and is destroyed after the thread has joined.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace tasp {

class StepThread {
 public:
  explicit StepThread(std::function<void(int64_t)> run_step)
      : run_step_(std::move(run_step)), thread_([this] { loop(); }) {}

  ~StepThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  StepThread(const StepThread&) = delete;
  StepThread& operator=(const StepThread&) = delete;

  // Lets the thread run every step up to `step`.
  void post(int64_t step) {
    std::lock_guard<std::mutex> lock(mutex_);
    posted_ = step;
    cv_.notify_all();
  }

  // Waits until the sends of `step` are done, or until `deadline` (then returns false); rethrows what
  // the thread hit.
  bool wait_done(int64_t step, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    bool done = cv_.wait_until(lock, deadline, [&] { return done_ >= step || error_; });
    if (error_) std::rethrow_exception(error_);
    return done;
  }

  // The same without a deadline, for transports whose every send has its own.
  void wait_done(int64_t step) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return done_ >= step || error_; });
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void loop() {
    int64_t next = 0;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || posted_ >= next; });
        if (stop_) return;
      }
      try {
        run_step_(next);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
        cv_.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      done_ = next++;
      cv_.notify_all();
    }
  }

  std::function<void(int64_t)> run_step_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int64_t posted_ = -1;
  int64_t done_ = -1;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts after the state above exists
};

}  // namespace tasp
