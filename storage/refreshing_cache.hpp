#pragma once
// One credential (AWS keys, an Azure token) cached in front of the exchange that obtains it, shared by
// the AWS and Azure providers (storage/aws_credentials.*, storage/azure_credentials.*).
//
// Guarantees:
// - Single flight: however many callers wait, one exchange runs; the others wait on a timer and get
//   its outcome (a success or the same error).
// - A value that expires is replaced kRefreshMargin before it does, or at half its lifetime when that
//   is short (refresh_time); a value without expiry is kept until dropped.
// - A failed refresh keeps a value still valid for more than kKeepThroughFailure; a value handed out
//   already expired is an error naming the clock.
// - Errors are prefixed with the subject and source ("AWS credentials from web identity (...): ..."),
//   never with the value.
// Thread-safe (the state is locked); a waiter is woken on its own executor. Include only in .cpp files:
// it brings Asio's timers with it.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/time_format.hpp"
#include "storage/backend.hpp"

namespace stowage::storage {

template <class V>
struct Expiring {
  V value;
  std::optional<WallClock::time_point> expires_at;  // nothing: never expires
};

// How the cache speaks of what it holds.
struct CacheWording {
  std::string subject;       // "AWS credentials", "Azure token"
  std::string source;        // the source's name
  std::string expired_code;  // "AwsCredentialsExpired"
  std::string expired_what;  // "credentials that have already expired"
};

inline constexpr std::chrono::minutes kRefreshMargin{5};
inline constexpr std::chrono::seconds kKeepThroughFailure{10};

// When a value fetched at `now` that expires at `expires_at` is replaced.
inline WallClock::time_point refresh_time(WallClock::time_point now, WallClock::time_point expires_at) {
  const auto lifetime = expires_at - now;
  if (lifetime <= std::chrono::seconds(0)) return now;
  if (lifetime > 2 * kRefreshMargin) return expires_at - kRefreshMargin;
  return now + lifetime / 2;
}

template <class V>
class RefreshingCache {
 public:
  using Fetch = std::function<boost::asio::awaitable<BackendResult<Expiring<V>>>()>;

  RefreshingCache(CacheWording wording, Fetch fetch, std::function<WallClock::time_point()> now)
      : wording_(std::move(wording)), fetch_(std::move(fetch)), now_(std::move(now)), state_(std::make_shared<State>()) {}

  // A value valid now, fetched if needed (see the guarantees above).
  boost::asio::awaitable<BackendResult<V>> get() {
    namespace asio = boost::asio;
    auto executor = co_await asio::this_coro::executor;
    State& st = *state_;
    for (;;) {
      std::shared_ptr<Waiter> waiter;
      std::uint64_t generation = 0;
      {
        std::lock_guard lock(st.mutex);
        if (st.cached && (!st.cached->expires_at || now_() < st.refresh_at)) co_return st.cached->value;
        if (!st.refreshing) {
          st.refreshing = true;
          ++st.fetches;
        } else {
          waiter = std::make_shared<Waiter>(executor);
          st.waiters.push_back(waiter);
          generation = st.generation;
        }
      }
      if (!waiter) {
        RefreshGuard guard{state_, std::nullopt};
        auto fetched = co_await fetch_();
        BackendResult<V> outcome = settle(std::move(fetched));
        guard.outcome = outcome;
        co_return outcome;
      }
      co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
      {
        std::lock_guard lock(st.mutex);
        if (st.generation != generation && st.last_outcome) co_return *st.last_outcome;
      }
      asio::cancellation_state cancellation = co_await asio::this_coro::cancellation_state;
      if (cancellation.cancelled() != asio::cancellation_type::none)
        co_return Err(BackendError{true, "Cancelled", wording_.subject + " request cancelled", std::nullopt});
    }
  }

  // Forgets the cached value if `refused(value, expires_at)` says it is the one a server refused.
  template <class Pred>
  void drop_if(Pred refused) {
    std::lock_guard lock(state_->mutex);
    if (state_->cached && refused(state_->cached->value, state_->cached->expires_at)) {
      state_->cached.reset();
      state_->refresh_at = {};
    }
  }

  std::uint64_t fetches() const {  // exchanges started (tests, metrics)
    std::lock_guard lock(state_->mutex);
    return state_->fetches;
  }

 private:
  struct Waiter {
    boost::asio::any_io_executor executor;
    boost::asio::steady_timer timer;
    explicit Waiter(boost::asio::any_io_executor ex)
        : executor(ex), timer(ex, std::chrono::steady_clock::time_point::max()) {}
  };
  struct State {
    std::mutex mutex;
    std::optional<Expiring<V>> cached;
    WallClock::time_point refresh_at{};
    bool refreshing = false;
    std::uint64_t generation = 0;
    std::optional<BackendResult<V>> last_outcome;
    std::vector<std::shared_ptr<Waiter>> waiters;
    std::uint64_t fetches = 0;
  };
  // Ends the flight however the fetch ends (an exception, a cancellation): waiters are woken.
  struct RefreshGuard {
    std::shared_ptr<State> state;
    std::optional<BackendResult<V>> outcome;
    ~RefreshGuard() {
      std::vector<std::shared_ptr<Waiter>> waiters;
      {
        std::lock_guard lock(state->mutex);
        state->refreshing = false;
        ++state->generation;
        state->last_outcome = std::move(outcome);
        waiters.swap(state->waiters);
      }
      for (auto& w : waiters)
        boost::asio::post(w->executor, [w] { w->timer.expires_at(std::chrono::steady_clock::time_point::min()); });
    }
  };

  BackendResult<V> settle(BackendResult<Expiring<V>> fetched) {
    State& st = *state_;
    std::lock_guard lock(st.mutex);
    const auto now = now_();
    if (fetched && fetched.value().expires_at && *fetched.value().expires_at <= now)
      return Err(BackendError{false, wording_.expired_code,
                              wording_.subject + " from " + wording_.source + ": the source handed out " +
                                  wording_.expired_what + " (check this machine's clock)",
                              std::nullopt});
    if (fetched) {
      st.cached = fetched.value();
      if (st.cached->expires_at) st.refresh_at = refresh_time(now, *st.cached->expires_at);
      return st.cached->value;
    }
    if (st.cached && st.cached->expires_at && now + kKeepThroughFailure < *st.cached->expires_at)
      return st.cached->value;  // still valid: keep using it, try again on the next call
    st.cached.reset();
    BackendError e = fetched.error();
    e.message = wording_.subject + " from " + wording_.source + ": " + e.message;
    return Err(std::move(e));
  }

  CacheWording wording_;
  Fetch fetch_;
  std::function<WallClock::time_point()> now_;
  std::shared_ptr<State> state_;
};

}  // namespace stowage::storage
