#pragma once
// What every credential exchange (an STS, a token endpoint, a metadata server, a container
// credentials URI) does the same way: where it sends its request (the origin to connect to and the
// request target), the form POST a token endpoint takes, and a metadata request bounded in time.
// The target rule: One rule for every
// identity source: http or https only (these endpoints are often plain http on a link-local address),
// no user name or password before '@' (a credential in a URL would reach logs), no fragment; the
// path and the query are kept (RFC 6749 3.2 lets a token endpoint URI carry a query).
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <string>
#include <string_view>

#include "common/http_client.hpp"
#include "common/result.hpp"

namespace stowage::storage {

struct CredentialEndpoint {
  http::Url origin;    // scheme, host, port; path "/" when the text had none
  std::string target;  // path and "?query"
};

// The problem is a predicate for a subject the caller names ("is not an http(s) URL"); it never
// quotes the text (common/url.hpp).
Result<CredentialEndpoint, std::string> credential_endpoint(std::string_view text);

// POST `body` (already form-encoded) to `target`, asking for `accept`.
http::Request form_post(std::string target, std::string body, std::string_view accept = "application/json",
                        std::string_view content_type = "application/x-www-form-urlencoded");

// One request without TLS settings of its own, ended after `timeout` with a Timeout error ("no answer
// within N s"): the loser of the race is cancelled, which the client handles (its slot is given
// back). For instance metadata services, which answer in milliseconds when they answer at all.
boost::asio::awaitable<http::HttpResult> send_within(http::Client& client, http::Url origin, http::Request request,
                                                     std::chrono::seconds timeout);

}  // namespace stowage::storage
