#pragma once
// One retry policy for every cloud provider (storage-backends.md, "Retry guidance"):
//  - transient: HTTP 408, 429, 500, 502, 503, 504; S3 codes RequestTimeout, SlowDown, Throttling*,
//    RequestLimitExceeded; connection failures, timeouts and resets;
//  - only requests that are idempotent or protected by a precondition (If-None-Match: *,
//    ifGenerationMatch=0) are retried — callers say so;
//  - full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)], base 200 ms,
//    cap 20 s, at most 5 attempts; a server's Retry-After (seconds) or x-amz-retry-after (ms) is
//    honoured instead when given (capped at the cap);
//  - permanent errors (bad credentials, missing bucket, TLS verification) come back at once.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include "common/http_client.hpp"

namespace stowage::storage {

struct RetryPolicy {
  int max_attempts = 5;
  std::chrono::milliseconds base{200};
  std::chrono::milliseconds cap{20000};
};

bool transient_status(int status);
bool transient_s3_code(std::string_view code);
// The server's requested delay, if any (Retry-After in seconds, x-amz-retry-after in milliseconds).
std::optional<std::chrono::milliseconds> retry_after(const http::Response& response);

// Sends what `make_request` builds (called again for every attempt, so each is freshly signed)
// and retries transient failures per the policy. `transient` decides for a non-2xx response
// (default: transient_status). Returns the last response or error. Non-idempotent requests are
// sent once.
boost::asio::awaitable<http::HttpResult> send_with_retries(
    http::Client& client, const http::Url& origin, const http::TlsSettings& tls,
    std::function<http::Request()> make_request, bool idempotent, std::size_t max_connections = 0,
    RetryPolicy policy = {}, std::function<bool(const http::Response&)> transient = nullptr);

}  // namespace stowage::storage
