#pragma once
// RateLimiter — client-go's client-side token bucket (flowcontrol.NewTokenBucketRateLimiter, which is
// golang.org/x/time/rate underneath): at most `burst` requests at once, then `qps` a second.
//
// Guarantees:
// - The bucket starts full (`burst` tokens) and refills continuously at `qps` tokens a second, up to
//   `burst`. qps <= 0 means unlimited: acquire() never waits. A burst below 1 counts as 1.
// - acquire() never blocks the thread: a caller that finds the bucket empty reserves the next token
//   at once (the count may go below zero, as in x/time/rate) and sleeps on the clock until that
//   token's time. Reservations are handed out in call order and their times only grow, so waiters
//   are served first come, first served, and try_acquire() never overtakes a waiter.
// - A waiter whose sleep is cancelled gets false and keeps its reservation spent (x/time/rate's
//   Wait does the same when its context ends): the next callers are not moved forward.
//
// Assumes: one reactor thread (nothing here is synchronised); the clock is monotonic.
//
// Defaults elsewhere: ApiClientOptions (kube/api_client.hpp) uses controller-runtime's qps 20 /
// burst 30; client-go's own rest.Config defaults are qps 5 / burst 10.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <memory>

namespace stowage::kube {

// Time as the limiter sees it. Tests inject a fake one that only moves when told to.
class RateLimiterClock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~RateLimiterClock() = default;
  virtual time_point now() const = 0;
  // Completes with true once now() >= deadline, or with false when the wait was cancelled.
  virtual boost::asio::awaitable<bool> sleep_until(time_point deadline) = 0;
};

// std::chrono::steady_clock, sleeping on a steady_timer of the awaiting coroutine's executor.
std::shared_ptr<RateLimiterClock> steady_rate_limiter_clock();

class RateLimiter {
 public:
  RateLimiter(double qps, int burst, std::shared_ptr<RateLimiterClock> clock = steady_rate_limiter_clock());

  // Takes a token, waiting for it when the bucket is empty. true: the token is the caller's;
  // false: the wait was cancelled (the caller should give up rather than send).
  boost::asio::awaitable<bool> acquire();
  // Takes a token only when one is available now (client-go's TryAccept).
  bool try_acquire();

  double qps() const { return qps_; }
  int burst() const { return burst_; }
  bool unlimited() const { return qps_ <= 0; }
  // Tokens in the bucket at the clock's now (negative: that many reservations are waiting).
  double tokens();

 private:
  void refill(RateLimiterClock::time_point now);

  double qps_;
  int burst_;
  std::shared_ptr<RateLimiterClock> clock_;
  double tokens_;
  RateLimiterClock::time_point last_;
};

}  // namespace stowage::kube
