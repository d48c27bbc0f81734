// The token bucket of rate_limiter.hpp, as reservations: each acquire() takes its token at once
// (possibly on credit) and sleeps until the credit is paid back by the refill.
#include "kube/rate_limiter.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cmath>
#include <utility>

namespace stowage::kube {
namespace {

namespace asio = boost::asio;

class SteadyClock final : public RateLimiterClock {
 public:
  time_point now() const override { return std::chrono::steady_clock::now(); }
  asio::awaitable<bool> sleep_until(time_point deadline) override {
    asio::steady_timer timer(co_await asio::this_coro::executor, deadline);
    auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec;
  }
};

}  // namespace

std::shared_ptr<RateLimiterClock> steady_rate_limiter_clock() { return std::make_shared<SteadyClock>(); }

RateLimiter::RateLimiter(double qps, int burst, std::shared_ptr<RateLimiterClock> clock)
    : qps_(qps), burst_(std::max(burst, 1)), clock_(std::move(clock)), tokens_(burst_), last_(clock_->now()) {}

void RateLimiter::refill(RateLimiterClock::time_point now) {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed * qps_);
  last_ = now;
}

double RateLimiter::tokens() {
  if (unlimited()) return burst_;
  refill(clock_->now());
  return tokens_;
}

bool RateLimiter::try_acquire() {
  if (unlimited()) return true;
  refill(clock_->now());
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

asio::awaitable<bool> RateLimiter::acquire() {
  if (unlimited()) co_return true;
  const auto now = clock_->now();
  refill(now);
  tokens_ -= 1;
  if (tokens_ >= 0) co_return true;
  // The debt is paid back at qps tokens a second; round to the nearest nanosecond so that a
  // whole number of periods lands exactly on the period (0.1 s at 10 qps, not 0.1 s + 1 ns).
  const double wait_seconds = -tokens_ / qps_;
  const auto wait = std::chrono::nanoseconds(std::llround(wait_seconds * 1e9));
  co_return co_await clock_->sleep_until(now + wait);
}

}  // namespace stowage::kube
