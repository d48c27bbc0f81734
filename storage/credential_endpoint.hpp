#pragma once
// Where a credential exchange sends its request (an STS, a token endpoint, a metadata server, a
// container credentials URI): the origin to connect to and the request target. One rule for every
// identity source: http or https only (these endpoints are often plain http on a link-local address),
// no user name or password before '@' (a credential in a URL would reach logs), no fragment; the
// path and the query are kept (RFC 6749 3.2 lets a token endpoint URI carry a query).
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

}  // namespace stowage::storage
