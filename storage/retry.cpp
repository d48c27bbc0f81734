// The shared retry loop for cloud requests (policy described in retry.hpp).
#include "storage/retry.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <random>

namespace stowage::storage {

bool transient_status(int status) {
  return status == 408 || status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

bool transient_s3_code(std::string_view code) {
  return code == "RequestTimeout" || code == "SlowDown" || code.rfind("Throttling", 0) == 0 ||
         code == "RequestLimitExceeded" || code == "InternalError" || code == "ServiceUnavailable";
}

// A server's delay is capped here, before any unit conversion can overflow (a hostile "Retry-After:
// 9223372036854776" would otherwise wrap to a negative number of milliseconds); the policy's cap
// then applies as usual.
constexpr long kMaxServerDelaySeconds = 3600;

std::optional<std::chrono::milliseconds> retry_after(const http::Response& r) {
  if (auto ms = r.header("x-amz-retry-after"); !ms.empty()) {
    char* end = nullptr;
    long v = std::strtol(ms.c_str(), &end, 10);
    if (end && *end == '\0' && v >= 0) return std::chrono::milliseconds(std::min(v, kMaxServerDelaySeconds * 1000));
  }
  if (auto s = r.header("retry-after"); !s.empty()) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (end && *end == '\0' && v >= 0) return std::chrono::seconds(std::min(v, kMaxServerDelaySeconds));
  }
  return std::nullopt;
}

boost::asio::awaitable<http::HttpResult> send_with_retries(http::Client& client, const http::Url& origin,
                                                           const http::TlsSettings& tls,
                                                           std::function<http::Request()> make_request, bool idempotent,
                                                           std::size_t max_connections, RetryPolicy policy,
                                                           std::function<bool(const http::Response&)> transient) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto executor = co_await boost::asio::this_coro::executor;
  int attempts = idempotent ? std::max(1, policy.max_attempts) : 1;
  for (int attempt = 0;; ++attempt) {
    auto result = co_await client.send(origin, tls, make_request(), max_connections);
    bool retry = false;
    std::optional<std::chrono::milliseconds> asked;
    if (!result.ok()) {
      retry = result.error().transient();
    } else if (result.value().status >= 300) {
      retry = transient ? transient(result.value()) : transient_status(result.value().status);
      asked = retry_after(result.value());
    }
    if (!retry || attempt + 1 >= attempts) co_return result;
    // Full jitter: a uniform draw from [0, min(cap, base * 2^attempt)], unless the server said when.
    auto ceiling = std::min<std::int64_t>(policy.cap.count(), policy.base.count() << std::min(attempt, 20));
    std::chrono::milliseconds delay(std::uniform_int_distribution<std::int64_t>(0, ceiling)(rng));
    if (asked) delay = std::min(*asked, policy.cap);
    spdlog::debug("{}: attempt {} failed ({}); retrying in {} ms", origin.origin(), attempt + 1,
                  result.ok() ? "HTTP " + std::to_string(result.value().status) : result.error().message,
                  delay.count());
    boost::asio::steady_timer timer(executor, delay);
    co_await timer.async_wait(boost::asio::use_awaitable);
  }
}

}  // namespace stowage::storage
