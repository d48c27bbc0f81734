// The small text fields that come from outside over HTTP or from a tenant's spec: the Retry-After and
// x-amz-retry-after headers (storage/retry), endpoint and proxy URLs (common/http_client: a
// storage's `endpoint`, a kubeconfig's `server` and `proxy-url`, all split by common/url), NO_PROXY matching, percent-decoding
// (S3 keys with encoding-type=url) and RFC 3339 times (API objects, exec credentials). The whole
// input goes to each. Never throws; a server's requested delay is never negative.
#include <chrono>

#include "common/http_client.hpp"
#include "common/time_format.hpp"
#include "common/url.hpp"
#include "fuzz/fuzz_support.hpp"
#include "storage/retry.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage;
  std::string text(fuzz::text_of(data, size));
  for (const char* name : {"retry-after", "x-amz-retry-after"}) {
    http::Response response;
    response.status = 503;
    response.headers = {{name, text}};
    auto delay = storage::retry_after(response);
    if (delay) fuzz::require(delay->count() >= 0, "a negative Retry-After delay");
  }
  // The one URL parser (common/url.hpp) behind every endpoint, proxy and kubeconfig server.
  for (const char* default_scheme : {"https", ""}) {
    auto parts = url::parse(text, default_scheme);
    if (!parts) continue;
    fuzz::require(!parts.value().host.empty(), "a parsed URL without a host");
    (void)parts.value().port_or_default();
    (void)parts.value().bracketed_host();
  }
  auto url = http::Url::parse(text);
  if (url) {
    fuzz::require(url.value().port != "0" && url.value().port.size() <= 5, "an endpoint port out of range");
    (void)url.value().origin();
    (void)url.value().host_header();
    http::ProxyEnvironment environment;
    environment.https_proxy = "http://proxy.test:3128";
    environment.http_proxy = "http://proxy.test:3128";
    environment.no_proxy = text;
    (void)environment.proxy_for(url.value());
  }
  auto proxy = http::Proxy::parse(text);
  if (proxy) (void)proxy.value().label();
  (void)http::percent_decode(text);
  (void)http::form_decode(text);
  auto time = parse_rfc3339(text);
  if (time) (void)rfc3339(*time);
  return 0;
}
