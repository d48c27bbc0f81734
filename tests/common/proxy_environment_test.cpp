// Which proxy the environment picks (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, Go's rules), and a real
// tunnel opened because of it: http::Client with ClientOptions::environment_proxies against
// tests/servers/connect_proxy.py, which resolves a name the client cannot (so it is not loopback).
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

#include "common/http_client.hpp"
#include "common/proxy_environment.hpp"
#include "support/connect_proxy.hpp"
#include "support/http_test_server.hpp"

using namespace stowage;
using test_support::get;
using test_support::run;

namespace {

http::Url url(const std::string& text) { return http::Url::parse(text).value(); }

http::ProxyEnvironment env(std::string no_proxy) {
  http::ProxyEnvironment e;
  e.https_proxy = "http://proxy.corp:3128";
  e.http_proxy = "plain-proxy.corp:8080";  // no scheme: http:// is assumed
  e.no_proxy = std::move(no_proxy);
  return e;
}

}  // namespace

TEST_CASE("the environment's proxy by scheme, never for localhost or loopback") {
  auto e = env("");
  CHECK(e.proxy_for(url("https://kube.example.com:6443")) == "http://proxy.corp:3128");
  CHECK(e.proxy_for(url("http://minio.example.com:9000")) == "http://plain-proxy.corp:8080");
  CHECK(e.proxy_for(url("https://localhost:6443")).empty());
  CHECK(e.proxy_for(url("https://LOCALHOST")).empty());
  CHECK(e.proxy_for(url("https://127.0.0.1:6443")).empty());
  CHECK(e.proxy_for(url("https://127.8.9.10")).empty());
  CHECK(e.proxy_for(url("https://[::1]:443")).empty());
  CHECK(e.proxy_for(url("https://10.0.0.1")) == "http://proxy.corp:3128");

  http::ProxyEnvironment only_http;
  only_http.http_proxy = "http://p:1";
  CHECK(only_http.proxy_for(url("https://kube.example.com")).empty());  // HTTP_PROXY is not used for https
  CHECK(only_http.proxy_for(url("http://kube.example.com")) == "http://p:1");
  only_http.cgi = true;  // REQUEST_METHOD set: HTTP_PROXY may come from a request header
  CHECK(only_http.proxy_for(url("http://kube.example.com")).empty());
  CHECK(http::ProxyEnvironment{}.empty());
}

TEST_CASE("NO_PROXY: star, domains and subdomains, IPs, CIDRs and ports, as Go reads it") {
  auto https = [](const std::string& no_proxy, const std::string& target) {
    return !env(no_proxy).proxy_for(url(target)).empty();
  };
  CHECK_FALSE(https("*", "https://anything.example"));
  CHECK_FALSE(https(" * ", "https://10.1.2.3"));
  // A domain matches itself and its subdomains; a leading dot or "*." only the subdomains.
  CHECK_FALSE(https("example.com", "https://example.com"));
  CHECK_FALSE(https("example.com", "https://kube.example.com"));
  CHECK(https("example.com", "https://notexample.com"));
  CHECK(https(".example.com", "https://example.com"));
  CHECK_FALSE(https(".example.com", "https://a.b.example.com"));
  CHECK(https("*.example.com", "https://example.com"));
  CHECK_FALSE(https("*.example.com", "https://a.example.com"));
  // Case and blanks do not matter; empty entries are skipped; later entries still count.
  CHECK_FALSE(https(" , EXAMPLE.com ,", "https://Kube.Example.COM"));
  CHECK_FALSE(https("other.org,svc.cluster.local", "https://kubernetes.default.svc.cluster.local"));
  // Ports: only that port (the default one when the URL has none).
  CHECK_FALSE(https("example.com:6443", "https://kube.example.com:6443"));
  CHECK(https("example.com:6443", "https://kube.example.com:443"));
  CHECK_FALSE(https("example.com:443", "https://kube.example.com"));
  // IPs and CIDRs match IP hosts only; domains never match IPs.
  CHECK_FALSE(https("10.0.0.5", "https://10.0.0.5:6443"));
  CHECK(https("10.0.0.5", "https://10.0.0.6"));
  CHECK_FALSE(https("10.0.0.5:6443", "https://10.0.0.5:6443"));
  CHECK(https("10.0.0.5:6443", "https://10.0.0.5:443"));
  CHECK_FALSE(https("10.0.0.0/8", "https://10.200.3.4"));
  CHECK(https("10.0.0.0/8", "https://11.0.0.1"));
  CHECK_FALSE(https("172.16.0.0/12", "https://172.31.255.255"));
  CHECK(https("172.16.0.0/12", "https://172.32.0.0"));
  CHECK_FALSE(https("fd00::/8", "https://[fd12::1]:6443"));
  CHECK(https("fd00::/8", "https://[fe80::1]"));
  CHECK_FALSE(https("[2001:db8::1]:443", "https://[2001:db8::1]"));
  CHECK_FALSE(https("2001:db8::1", "https://[2001:db8::1]:6443"));
  CHECK(https("10.0.0.0", "https://ten.example"));
  CHECK(https("10.0.0.0/99", "https://10.0.0.1"));  // not a CIDR: ignored
  CHECK(https("example.com", "https://93.184.216.34"));
}

TEST_CASE("a request with no proxy of its own tunnels through the one the environment picks") {
  auto dir = test_support::temp_dir("proxy-environment");
  auto certs = test_support::make_certificates(dir / "certs");
  test_support::HttpTestServer server(dir, &certs);
  test_support::ConnectProxyOptions options;
  options.hosts = {{"origin.stowage.test", "127.0.0.1"}};
  test_support::ConnectProxy proxy(dir, options);

  http::ProxyEnvironment e;
  e.https_proxy = "127.0.0.1:" + std::to_string(proxy.port());  // no scheme, as people often write it
  http::ClientOptions client_options;
  client_options.environment_proxies = std::make_shared<const http::ProxyEnvironment>(e);
  boost::asio::io_context io;
  http::Client client(io.get_executor(), client_options);
  // The certificate names localhost: the kubeconfig's tls-server-name does the same for a cluster.
  http::TlsSettings tls{certs.ca_pem(), false, "localhost"};
  auto origin = url("https://origin.stowage.test:" + std::to_string(server.port));
  auto r = run(io, client.send(origin, tls, get("/echo")));
  REQUIRE(r.ok());
  CHECK(r.value().body == "GET /echo\n");
  REQUIRE(proxy.stats().connects.size() == 1);
  CHECK(proxy.stats().connects[0] == "origin.stowage.test:" + std::to_string(server.port) + " without-auth");

  // Loopback goes direct whatever the environment says; a proxy named by the caller wins.
  auto direct = run(io, client.send(server.url("https"), http::TlsSettings{certs.ca_pem()}, get("/echo")));
  REQUIRE(direct.ok());
  CHECK(proxy.stats().connects.size() == 1);
  http::TlsSettings elsewhere{certs.ca_pem(), false, "localhost", "", "", "http://127.0.0.1:1"};
  auto refused = run(io, client.send(origin, elsewhere, get("/echo")));
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.error().message, Catch::Contains("proxy 127.0.0.1:1"));

  // NO_PROXY sends it direct: the client then resolves the name itself, and cannot.
  e.no_proxy = ".stowage.test";
  client_options.environment_proxies = std::make_shared<const http::ProxyEnvironment>(e);
  http::Client exempt(io.get_executor(), client_options);
  auto unresolved = run(io, exempt.send(origin, tls, get("/echo")));
  REQUIRE_FALSE(unresolved.ok());
  CHECK(unresolved.error().kind == http::HttpError::Kind::Resolve);
  CHECK(proxy.stats().connects.size() == 1);
}
