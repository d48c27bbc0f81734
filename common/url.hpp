#pragma once
// The one URL parser: every URL the controller is given (storage endpoints, proxy URLs, the
// kubeconfig's server and proxy-url, emulator hosts) is split here, on Boost.URL's RFC 3986
// grammar, so that all of them accept and refuse the same texts. Callers keep their own policy on
// top (which schemes, whether user info or a query may be there, which default port) and their own
// words for the subject ("endpoint", "proxy URL", "clusters[0].cluster.server").
//
// Guarantees:
//  - A text with a control character or a space is refused first (common/header_values.hpp), with
//    its position only.
//  - No problem quotes the text or a part of it, except a scheme (letters, digits, "+-.") and a
//    port made of digits: a URL may hold a password (user info, or "user:password" written without
//    "@host", which reads as host and port) or a signature in its query.
//  - A parsed port is a number from 1 to 65535; a ':' with no port after it is refused (a port left
//    out by a template is a mistake, not a request for the default).
//  - A host is an IPv4 address, a bracketed IPv6 address (kept without brackets) or a name of
//    letters, digits, '-', '.' and '_' (no percent-encoding, no RFC 3986 sub-delimiters: nothing
//    a resolver would take); a URL without one is refused ("has no host").
//  - User info, query and fragment are reported, not judged: the caller refuses or drops them.
// Assumes: a text without "scheme://" is "host[:port][/path]" (client-go's and the cloud SDKs'
// habit), given the caller's default scheme; without one such a text is refused.
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace stowage::url {

struct Parts {
  std::string scheme;         // lower case: as written, or the default scheme
  bool scheme_given = false;  // the text began with "scheme://"
  std::string host;           // IPv6 without brackets; never empty
  bool ipv6 = false;
  std::uint16_t port = 0;     // the explicit port; 0 when the text named none
  bool has_userinfo = false;  // "user[:password]@" was there
  std::string user;           // percent-decoded
  std::string password;       // percent-decoded; a secret: never in a message
  std::string path;           // as written (percent-encoded); "" when none
  bool has_query = false;     // '?' was there
  std::string query;          // after '?', as written (percent-encoded); "" when none
  bool has_fragment = false;  // '#' was there

  // The explicit port, or the scheme's default (443 for https, 80 for http, 1080 for socks5, else 0).
  std::uint16_t port_or_default() const;
  // "host" or "[v6]", as it goes before ":port" or into a Host header.
  std::string bracketed_host() const;
};

// The default port of a scheme (lower case): 443, 80, 1080, or 0 when unknown.
std::uint16_t default_port(std::string_view scheme);

// Whether the text begins with "scheme://" (RFC 3986 scheme characters).
bool has_scheme(std::string_view text);

// Splits `text`; a text without "scheme://" gets `default_scheme` (refused when that is empty).
// The problem is a predicate for a subject the caller names: "has no host", "has the port
// \"99999\", which is not a number from 1 to 65535", "contains a control character (at byte 4)".
Result<Parts, std::string> parse(std::string_view text, std::string_view default_scheme);

}  // namespace stowage::url
