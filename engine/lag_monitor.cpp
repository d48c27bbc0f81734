#include "engine/lag_monitor.hpp"

#include <boost/asio/steady_timer.hpp>

namespace stowage::engine {

struct LagMonitor::Timer {
  explicit Timer(boost::asio::any_io_executor ex) : t(std::move(ex)) {}
  boost::asio::steady_timer t;
};

LagMonitor::LagMonitor(boost::asio::any_io_executor executor, std::chrono::milliseconds tick)
    : timer_(std::make_unique<Timer>(std::move(executor))), tick_(tick) {}

LagMonitor::~LagMonitor() = default;

void LagMonitor::start() {
  running_ = true;
  arm();
}

void LagMonitor::stop() {
  running_ = false;
  timer_->t.cancel();
}

void LagMonitor::arm() {
  due_ = std::chrono::steady_clock::now() + tick_;
  timer_->t.expires_at(due_);
  timer_->t.async_wait([this](boost::system::error_code ec) {
    if (ec || !running_) return;
    auto late = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - due_);
    if (late.count() < 0) late = std::chrono::microseconds(0);
    longest_ = std::max(longest_, late);
    auto bucket = std::min<std::uint64_t>(static_cast<std::uint64_t>(late.count() / 1000), histogram_.size() - 1);
    ++histogram_[bucket];
    ++samples_;
    arm();
  });
}

std::chrono::microseconds LagMonitor::percentile(double p) const {
  if (samples_ == 0) return std::chrono::microseconds(0);
  auto wanted = static_cast<std::uint64_t>(static_cast<double>(samples_) * p / 100.0);
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < histogram_.size(); ++i) {
    seen += histogram_[i];
    if (seen >= wanted && seen > 0) return std::chrono::milliseconds(i + 1);  // upper edge of the bucket
  }
  return longest_;
}

}  // namespace stowage::engine
