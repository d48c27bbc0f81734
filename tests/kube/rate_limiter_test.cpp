// RateLimiter (client-go's token bucket) on a fake clock: the burst passes at once, then one token
// per 1/qps, waiters in call order, the bucket never holds more than the burst, qps <= 0 is
// unlimited. One test against the test API server: 25 requests at qps 10 / burst 5 take >= 2 s.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <vector>

#include "common/http_client.hpp"
#include "kube/api_client.hpp"
#include "kube/rate_limiter.hpp"
#include "support/api_server.hpp"

using namespace stowage;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using kube::RateLimiter;

namespace {

// Time that moves only in advance(); sleepers whose deadline has come are woken in deadline order
// (ties in the order they went to sleep), each through a steady_timer at max() cancelled as a signal.
class FakeClock final : public kube::RateLimiterClock {
 public:
  time_point now() const override { return now_; }

  asio::awaitable<bool> sleep_until(time_point deadline) override {
    ++sleeps_;
    if (deadline <= now_) co_return true;
    auto sleeper = std::make_shared<Sleeper>(co_await asio::this_coro::executor, deadline, next_seq_++);
    sleepers_.push_back(sleeper);
    co_await sleeper->signal.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return sleeper->woken;
  }

  void advance(std::chrono::nanoseconds d) {
    now_ += d;
    std::stable_sort(sleepers_.begin(), sleepers_.end(),
                     [](const auto& a, const auto& b) { return a->deadline < b->deadline; });
    auto due = std::find_if(sleepers_.begin(), sleepers_.end(), [this](const auto& s) { return s->deadline > now_; });
    for (auto it = sleepers_.begin(); it != due; ++it) {
      (*it)->woken = true;
      (*it)->signal.cancel();
    }
    sleepers_.erase(sleepers_.begin(), due);
  }

  int sleeps() const { return sleeps_; }
  std::size_t sleeping() const { return sleepers_.size(); }

 private:
  struct Sleeper {
    Sleeper(asio::any_io_executor ex, time_point d, int s)
        : signal(ex, asio::steady_timer::time_point::max()), deadline(d), seq(s) {}
    asio::steady_timer signal;
    time_point deadline;
    int seq;
    bool woken = false;
  };
  time_point now_{std::chrono::hours(1000)};
  std::vector<std::shared_ptr<Sleeper>> sleepers_;
  int next_seq_ = 0;
  int sleeps_ = 0;
};

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// A coroutine's arguments live in its frame (a lambda's captures would not outlive the lambda).
asio::awaitable<void> acquire_one(RateLimiter& limiter, std::vector<int>& done, int index) {
  const bool granted = co_await limiter.acquire();
  if (granted) done.push_back(index);
}

// Starts `n` acquirers in order; each appends its index to `done` when it has its token.
void start_acquirers(asio::io_context& io, RateLimiter& limiter, int first, int n, std::vector<int>& done) {
  for (int i = first; i < first + n; ++i) asio::co_spawn(io, acquire_one(limiter, done, i), rethrow);
  io.restart();
  io.poll();
}

void settle(asio::io_context& io) {
  io.restart();
  io.poll();
}

using Elapsed = std::chrono::steady_clock::duration;

asio::awaitable<void> timed_get(kube::ApiClient& api, std::chrono::steady_clock::time_point started,
                                std::vector<Elapsed>& finished, int& failures) {
  auto r = co_await api.get("/api/v1/namespaces/default/configmaps");
  if (!r.ok()) ++failures;
  finished.push_back(std::chrono::steady_clock::now() - started);
}

std::vector<int> range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("the burst passes at once, then one token per 1/qps") {
  asio::io_context io;
  auto clock = std::make_shared<FakeClock>();
  RateLimiter limiter(10, 5, clock);
  std::vector<int> done;
  start_acquirers(io, limiter, 0, 8, done);
  CHECK(done == range(0, 5));  // the bucket starts full
  CHECK(clock->sleeping() == 3);

  clock->advance(99ms);
  settle(io);
  CHECK(done == range(0, 5));
  clock->advance(1ms);  // 100 ms: one token
  settle(io);
  CHECK(done == range(0, 6));
  clock->advance(150ms);  // 250 ms: the second waiter (due at 200 ms), not the third (300 ms)
  settle(io);
  CHECK(done == range(0, 7));
  clock->advance(50ms);
  settle(io);
  CHECK(done == range(0, 8));
  CHECK(clock->sleeping() == 0);
  CHECK(limiter.tokens() == Approx(0).margin(1e-9));
}

TEST_CASE("waiters get their tokens first come first served and try_acquire does not overtake them") {
  asio::io_context io;
  auto clock = std::make_shared<FakeClock>();
  RateLimiter limiter(4, 1, clock);
  std::vector<int> done;
  start_acquirers(io, limiter, 0, 1, done);
  REQUIRE(done == std::vector<int>{0});
  start_acquirers(io, limiter, 1, 5, done);
  CHECK_FALSE(limiter.try_acquire());  // five waiters are ahead
  CHECK(limiter.tokens() == Approx(-5));

  // All five become due at once: they still complete in the order they asked.
  clock->advance(10s);
  settle(io);
  CHECK(done == range(0, 6));
  // The long pause refilled only up to the burst.
  CHECK(limiter.tokens() == Approx(1));
  CHECK(limiter.try_acquire());
  CHECK_FALSE(limiter.try_acquire());

  // One at a time again: 250 ms each, in order.
  start_acquirers(io, limiter, 6, 3, done);
  for (int expected = 7; expected <= 9; ++expected) {
    clock->advance(250ms);
    settle(io);
    CHECK(done == range(0, expected));
  }
}

TEST_CASE("a long idle time refills the bucket to the burst and no further") {
  asio::io_context io;
  auto clock = std::make_shared<FakeClock>();
  RateLimiter limiter(2, 3, clock);
  int taken = 0;
  while (limiter.try_acquire()) ++taken;
  CHECK(taken == 3);
  clock->advance(1h);
  taken = 0;
  while (limiter.try_acquire()) ++taken;
  CHECK(taken == 3);
  clock->advance(500ms);  // half a second at 2 qps: one token
  CHECK(limiter.try_acquire());
  CHECK_FALSE(limiter.try_acquire());

  // A fractional rate: 0.5 qps is one token every 2 s.
  RateLimiter slow(0.5, 1, clock);
  std::vector<int> done;
  start_acquirers(io, slow, 0, 2, done);
  CHECK(done == std::vector<int>{0});
  clock->advance(1999ms);
  settle(io);
  CHECK(done == std::vector<int>{0});
  clock->advance(1ms);
  settle(io);
  CHECK(done == std::vector<int>{0, 1});
}

TEST_CASE("qps 0 or below is unlimited and never sleeps") {
  asio::io_context io;
  auto clock = std::make_shared<FakeClock>();
  for (double qps : {0.0, -1.0}) {
    RateLimiter limiter(qps, 1, clock);
    CHECK(limiter.unlimited());
    std::vector<int> done;
    start_acquirers(io, limiter, 0, 1000, done);
    CHECK(done.size() == 1000);
    for (int i = 0; i < 100; ++i) CHECK(limiter.try_acquire());
  }
  CHECK(clock->sleeps() == 0);
}

TEST_CASE("a burst below 1 counts as 1") {
  auto clock = std::make_shared<FakeClock>();
  RateLimiter limiter(10, 0, clock);
  CHECK(limiter.burst() == 1);
  CHECK(limiter.try_acquire());
  CHECK_FALSE(limiter.try_acquire());
}

TEST_CASE("the real clock: 4 tokens at qps 20 burst 1 take about 150 ms without blocking the reactor") {
  asio::io_context io;
  RateLimiter limiter(20, 1);
  std::vector<int> done;
  int ticks = 0;
  bool stop = false;
  auto ticker = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(io);
    while (!stop) {
      t.expires_after(5ms);
      co_await t.async_wait(asio::use_awaitable);
      ++ticks;
    }
  };
  asio::co_spawn(io, ticker(), asio::detached);
  auto started = std::chrono::steady_clock::now();
  auto four = [&]() -> asio::awaitable<void> {
    for (int i = 0; i < 4; ++i) {
      const bool granted = co_await limiter.acquire();
      if (granted) done.push_back(i);
    }
    stop = true;
  };
  asio::co_spawn(io, four(), asio::detached);
  io.run();
  auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(done == range(0, 4));
  CHECK(elapsed >= 145ms);
  CHECK(ticks >= 5);  // the timer kept running while the limiter waited
}

TEST_CASE("25 requests at qps 10 burst 5 take at least 2 s against the test API server") {
  test_support::TestApiServer server(test_support::fresh_temp_dir("ratelimit"), "tok");
  asio::io_context io;
  http::Client http(io.get_executor());
  kube::ClientConfig config = server.client_config();
  kube::ApiClientOptions options;
  options.qps = 10;
  options.burst = 5;
  kube::ApiClient api(http, config, options);

  // All 25 are started at once; each notes when its answer came.
  const auto started = std::chrono::steady_clock::now();
  std::vector<Elapsed> finished;
  int failures = 0;
  for (int i = 0; i < 25; ++i) asio::co_spawn(io, timed_get(api, started, finished, failures), rethrow);
  io.run();
  REQUIRE(finished.size() == 25);
  CHECK(failures == 0);
  std::sort(finished.begin(), finished.end());
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  INFO("first answer after " << ms(finished.front()) << " ms, last after " << ms(finished.back()) << " ms");
  // Token k (0-based) is available at (k - 4) * 100 ms for k >= 5: the 25th at 2 s. A request can
  // only finish after its token, so these are lower bounds whatever the machine's load.
  for (std::size_t k = 5; k < finished.size(); ++k) CHECK(finished[k] >= std::chrono::milliseconds((k - 4) * 100 - 5));
  CHECK(finished.back() >= 1995ms);
  CHECK(finished.back() < 30s);
}
