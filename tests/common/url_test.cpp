// Endpoint and proxy URLs as the one parser (common/url.hpp, on Boost.URL) reads them: ports,
// user info, queries, IPv6 literals, scheme case. Every refusal is checked for what it must not
// quote.
#include <catch2/catch.hpp>

#include "common/http_client.hpp"
#include "common/url.hpp"

using namespace stowage;

namespace {

std::string endpoint_error(const std::string& text) {
  auto url = http::Url::parse(text);
  INFO(text);
  REQUIRE_FALSE(url.ok());
  return url.error();
}

std::string proxy_error(const std::string& text) {
  auto proxy = http::Proxy::parse(text);
  INFO(text);
  REQUIRE_FALSE(proxy.ok());
  return proxy.error();
}

}  // namespace

TEST_CASE("endpoint ports outside 1..65535 are refused with a message naming the port") {
  CHECK(endpoint_error("https://minio.example:99999") ==
        "endpoint has the port \"99999\", which is not a number from 1 to 65535");
  CHECK(endpoint_error("http://minio.example:0/bucket") ==
        "endpoint has the port \"0\", which is not a number from 1 to 65535");
  CHECK(proxy_error("http://proxy.example:65536") ==
        "proxy URL has the port \"65536\", which is not a number from 1 to 65535");
  CHECK(http::Url::parse("https://minio.example:65535").value().port == "65535");
  CHECK(http::Url::parse("minio.example:00443").value().port == "443");  // leading zeros are still 443
}

TEST_CASE("a ':' with no port after it is refused: a port left out by a template is a mistake") {
  CHECK(endpoint_error("https://minio.example:") ==
        "endpoint has ':' but no port after it: write HOST:PORT, or leave out the ':'");
  CHECK(endpoint_error("http://minio.example:/bucket") ==
        "endpoint has ':' but no port after it: write HOST:PORT, or leave out the ':'");
  CHECK(proxy_error("http://proxy.example:") ==
        "proxy URL has ':' but no port after it: write HOST:PORT, or leave out the ':'");
  CHECK(http::Url::parse("http://minio.example").value().port == "80");  // no ':' at all: the default
}

TEST_CASE("a port that is not a number is refused without quoting it: it may be a password") {
  // "user:password" written without "@host" reads as a host and a port.
  const std::string error = endpoint_error("https://admin:hunter2");
  CHECK(error == "endpoint has a port that is not a number from 1 to 65535");
  CHECK(proxy_error("http://admin:hunter2/").find("hunter2") == std::string::npos);
}

TEST_CASE("an endpoint with a user name or password is refused, and the credential is not quoted") {
  for (const char* text : {"https://admin:s3cr3t@minio.example:9000", "https://admin:s3cr3t@minio.example",
                           "admin:s3cr3t@minio.example", "http://s3cr3t@[::1]:9000/b"}) {
    const std::string error = endpoint_error(text);
    INFO(text);
    CHECK(error == "endpoint has a user name or password before '@': put credentials in the storage's Secret");
    CHECK(error.find("s3cr3t") == std::string::npos);
  }
  // A proxy URL carries them on purpose (Proxy-Authorization).
  auto proxy = http::Proxy::parse("http://admin:s3cr3t@proxy.example:3128");
  REQUIRE(proxy.ok());
  CHECK(proxy.value().password == "s3cr3t");
}

TEST_CASE("an endpoint with a query or fragment is refused, and the query, maybe a signature, is not quoted") {
  for (const char* text : {"https://acct.blob.core.windows.net/?sv=2022-11-02&sig=SIGNATURE",
                           "https://minio.example:9000/bucket?X-Amz-Signature=SIGNATURE", "https://h/path#SIGNATURE",
                           "https://h?SIGNATURE"}) {
    const std::string error = endpoint_error(text);
    INFO(text);
    CHECK(error == "endpoint has a query or fragment ('?' or '#'): write SCHEME://HOST[:PORT][/PATH]");
    CHECK(error.find("SIGNATURE") == std::string::npos);
  }
  // A proxy ignores them, as it ignores a path.
  CHECK(http::Proxy::parse("http://proxy.example:3128/?x=1#y").value().label() == "proxy proxy.example:3128");
}

TEST_CASE("IPv6 endpoints: bracketed, kept without brackets, and nothing else passes for one") {
  auto v6 = http::Url::parse("https://[fd00::1]:9000/minio").value();
  CHECK(v6.host == "fd00::1");
  CHECK(v6.port == "9000");
  CHECK(v6.path == "/minio");
  CHECK(v6.host_header() == "[fd00::1]:9000");
  CHECK(v6.origin() == "https://[fd00::1]:9000");
  auto loopback = http::Url::parse("http://[::1]").value();
  CHECK(loopback.port == "80");
  CHECK(loopback.host_header() == "[::1]");
  CHECK(http::Url::parse("[::ffff:10.0.0.1]:8443").value().host == "::ffff:10.0.0.1");

  CHECK(endpoint_error("https://fd00::1:9000") ==
        "endpoint has an IPv6 address without brackets: write https://[ADDRESS]:PORT");
  CHECK(endpoint_error("https://[fd00::1]9000") == "endpoint has text after the IPv6 address");
  CHECK(endpoint_error("https://[fd00::1") == "endpoint has an IPv6 address without the closing ']'");
  CHECK(endpoint_error("https://[minio.example]:9000") == "endpoint has a bracketed host that is not an IPv6 address");
  CHECK(proxy_error("http://[::1]x:3128") == "proxy URL has text after the IPv6 address");
}

TEST_CASE("schemes are case-insensitive, hosts are names or addresses") {
  auto upper = http::Url::parse("HTTPS://MinIO.Example:9000/Bucket").value();
  CHECK(upper.scheme == "https");
  CHECK(upper.host == "MinIO.Example");  // as written; DNS and certificate names ignore case
  CHECK(upper.path == "/Bucket");
  CHECK(http::Url::parse("Http://minio").value().port == "80");
  CHECK(http::Proxy::parse("HTTP://proxy.example").value().port == "80");
  CHECK(endpoint_error("FTP://minio") ==
        "endpoint has the scheme \"ftp\", which is not supported: write http:// or https://");

  CHECK(endpoint_error("https://") == "endpoint has no host");
  CHECK(endpoint_error("https://:9000") == "endpoint has no host");
  CHECK(endpoint_error("https://mi%6eio.example") ==
        "endpoint has a host name with characters other than letters, digits, '-', '.' and '_'");
  CHECK(endpoint_error("https://minio,example") ==
        "endpoint has a host name with characters other than letters, digits, '-', '.' and '_'");
  CHECK(endpoint_error("https://minio.example/a b") == "endpoint contains a space (at byte 23)");
  CHECK(endpoint_error("https://minio.example/a\"b") ==
        "endpoint has a path, query or fragment with characters a URL does not allow (percent-encode them)");
}

TEST_CASE("whitespace and control characters are refused by position, before anything else, never quoted") {
  CHECK(endpoint_error("https://admin:s3cr3t@minio\t.example") == "endpoint contains a control character (at byte 26)");
  CHECK(endpoint_error(" https://minio.example") == "endpoint contains a space (at byte 0)");
  CHECK(endpoint_error("https://minio.example\n") ==
        "endpoint contains a control character (at byte 21: a line break at the end)");
  CHECK(endpoint_error(std::string("https://minio.example\0/x", 24)) ==
        "endpoint contains a control character (at byte 21)");
  CHECK(proxy_error("http://admin:s3\x7f" "cr3t@proxy:3128") == "proxy URL contains a control character (at byte 15)");
  CHECK(endpoint_error("") == "endpoint is empty");
}

TEST_CASE("the shared parser reports user info, query and the scheme's default port to its callers") {
  auto parts = url::parse("SOCKS5://us%40er:p%3Ass@proxy.example/x?y#z", "").value();
  CHECK(parts.scheme == "socks5");
  CHECK(parts.scheme_given);
  CHECK(parts.user == "us@er");
  CHECK(parts.password == "p:ss");
  CHECK(parts.port == 0);
  CHECK(parts.port_or_default() == 1080);
  CHECK(parts.path == "/x");
  CHECK(parts.has_query);
  CHECK(parts.has_fragment);
  auto bare = url::parse("minio.example:9000", "http").value();
  CHECK_FALSE(bare.scheme_given);
  CHECK(bare.scheme == "http");
  CHECK(bare.port == 9000);
  REQUIRE_FALSE(url::parse("minio.example:9000", "").ok());
  CHECK(url::parse("minio.example:9000", "").error() == "has no scheme: write SCHEME://HOST[:PORT]");
}

TEST_CASE("a password with a raw '@' reads as Go's net/url reads it: the user info ends at the last '@'") {
  // kubectl and client-go accept "http://user:p@ss@proxy:3128" (Go takes the authority's last '@'),
  // so a kubeconfig's proxy-url or an HTTPS_PROXY that works with them works here too.
  auto proxy = http::Proxy::parse("http://user:p@ss@w@rd@proxy.example:3128/");
  REQUIRE(proxy.ok());
  CHECK(proxy.value().host == "proxy.example");
  CHECK(proxy.value().port == "3128");
  CHECK(proxy.value().username == "user");
  CHECK(proxy.value().password == "p@ss@w@rd");
  // An '@' after the authority (in a path or query) is not user info.
  auto path_at = url::parse("http://proxy.example:3128/a@b?c=d@e", "");
  REQUIRE(path_at.ok());
  CHECK_FALSE(path_at.value().has_userinfo);
  CHECK(path_at.value().host == "proxy.example");
  CHECK(path_at.value().path == "/a@b");
  // An endpoint still refuses user info, however many '@' it has.
  auto endpoint = http::Url::parse("https://a@b@minio.example");
  REQUIRE_FALSE(endpoint.ok());
  CHECK(endpoint.error().find("a@b") == std::string::npos);
}
