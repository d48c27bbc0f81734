#pragma once
// LagMonitor — measures how long the reactor is kept from running ready work ("event-loop lag"):
// a timer due every `tick` records how late it fires. A handler that blocks for 80 ms shows up as an
// 80 ms stall. Reports the longest stall and the 99th percentile.
#include <boost/asio/any_io_executor.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>

namespace stowage::engine {

class LagMonitor {
 public:
  explicit LagMonitor(boost::asio::any_io_executor executor,
                      std::chrono::milliseconds tick = std::chrono::milliseconds(10));
  ~LagMonitor();
  void start();
  void stop();

  std::chrono::microseconds longest() const { return longest_; }
  std::chrono::microseconds percentile(double p) const;  // p in (0, 100]
  std::uint64_t samples() const { return samples_; }

 private:
  void arm();
  struct Timer;
  std::unique_ptr<Timer> timer_;
  std::chrono::milliseconds tick_;
  std::chrono::steady_clock::time_point due_;
  std::chrono::microseconds longest_{0};
  std::array<std::uint64_t, 1001> histogram_{};  // lateness in ms, last bucket = 1 s or more
  std::uint64_t samples_ = 0;
  bool running_ = false;
};

}  // namespace stowage::engine
