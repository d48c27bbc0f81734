#pragma once
// http::ProxyEnvironment — which proxy a request takes when the caller names none, read from the
// environment the way Go's net/http (and so client-go, the AWS, GCS and Azure SDKs in Go) does:
//  - HTTPS_PROXY (else https_proxy) for https:// origins, HTTP_PROXY (else http_proxy) for http://
//    ones; an empty variable counts as unset. A value without a scheme ("proxy:3128") is taken as
//    http://. With REQUEST_METHOD set (a CGI environment) HTTP_PROXY is not trusted and not used.
//  - Never for "localhost" or a loopback address (127.0.0.0/8, ::1), whatever the variables say.
//  - NO_PROXY (else no_proxy): comma-separated, case-insensitive, blanks ignored. "*" alone: no
//    proxy for anything. An IP ("10.0.0.5", "[::1]:8443") or CIDR ("10.0.0.0/8") matches IP hosts;
//    a domain ("example.com") matches itself and its subdomains, ".example.com" or "*.example.com"
//    only its subdomains; an entry with ":PORT" matches only that port (the origin's port, default
//    443/80). Domains never match IP hosts.
// Only the choice is made here; the proxy URL is used (and an unusable one reported) as a
// kubeconfig's proxy-url is: see http::Proxy and TlsSettings::proxy_url.
#include <string>

namespace stowage::http {

struct Url;

struct ProxyEnvironment {
  std::string http_proxy;   // HTTP_PROXY / http_proxy
  std::string https_proxy;  // HTTPS_PROXY / https_proxy
  std::string no_proxy;     // NO_PROXY / no_proxy
  bool cgi = false;         // REQUEST_METHOD is set

  static ProxyEnvironment from_process();
  bool empty() const { return http_proxy.empty() && https_proxy.empty(); }
  // The proxy URL for requests to `origin` ("http://..." form), or "" to connect directly.
  std::string proxy_for(const Url& origin) const;
  // A variable's value as a proxy URL: "http://" prepended when it names no scheme.
  static std::string as_url(const std::string& value);
};

}  // namespace stowage::http
