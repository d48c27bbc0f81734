// The HTTP client through an HTTP proxy (TlsSettings::proxy_url): real tunnels opened with CONNECT by
// tests/servers/connect_proxy.py to the real test server (tests/servers/http_test_server.py), TLS
// verified end to end with the origin's name, and every way the proxy can fail.
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <string>

#include "common/http_client.hpp"
#include "support/connect_proxy.hpp"
#include "support/http_test_server.hpp"

using namespace stowage;
namespace fs = std::filesystem;

using test_support::ConnectProxy;
using test_support::get;
using test_support::run;
using TestServer = test_support::HttpTestServer;

namespace {

http::TlsSettings through(const std::string& proxy_url, const std::string& ca_pem = "",
                          const std::string& server_name = "") {
  return http::TlsSettings{ca_pem, false, server_name, "", "", proxy_url};
}

std::string authority(int port) { return "127.0.0.1:" + std::to_string(port); }

}  // namespace

TEST_CASE("proxy URLs: http only, user info percent-decoded, no secret in any error") {
  auto plain = http::Proxy::parse("http://127.0.0.1:3128");
  REQUIRE(plain.ok());
  CHECK(plain.value().host == "127.0.0.1");
  CHECK(plain.value().port == "3128");
  CHECK_FALSE(plain.value().has_credentials);
  CHECK(plain.value().label() == "proxy 127.0.0.1:3128");

  auto with_user = http::Proxy::parse("HTTP://us%40er:p%3Ass%2F@proxy.example/ignored");
  REQUIRE(with_user.ok());
  CHECK(with_user.value().host == "proxy.example");
  CHECK(with_user.value().port == "80");
  CHECK(with_user.value().username == "us@er");
  CHECK(with_user.value().password == "p:ss/");
  CHECK(with_user.value().has_credentials);
  CHECK(with_user.value().label() == "proxy proxy.example:80");

  auto v6 = http::Proxy::parse("http://[::1]:8080");
  REQUIRE(v6.ok());
  CHECK(v6.value().host == "::1");
  CHECK(v6.value().label() == "proxy [::1]:8080");

  auto https = http::Proxy::parse("https://proxy.example:3128");
  REQUIRE_FALSE(https.ok());
  CHECK(https.error() == "proxy scheme https is not supported; use an http:// proxy");
  auto socks = http::Proxy::parse("socks5://user:topsecret@proxy.example:1080");
  REQUIRE_FALSE(socks.ok());
  CHECK(socks.error() == "proxy scheme socks5 is not supported; use an http:// proxy");

  for (const char* bad : {"http://user:topsecret@:3128", "http://user:topsecret@proxy:99999",
                          "http://user:topsecret@proxy:12ab", "user:topsecret@proxy:3128", "http://[::1"}) {
    auto r = http::Proxy::parse(bad);
    INFO(bad);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.error(), Catch::StartsWith("proxy URL"));
    CHECK(r.error().find("topsecret") == std::string::npos);
  }
}

TEST_CASE("https through an http proxy: TLS verified with the origin's name, one tunnel for keep-alive requests") {
  auto dir = test_support::temp_dir("proxy-https");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs);
  ConnectProxy proxy(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto settings = through(proxy.url(), certs.ca_pem());

  for (int i = 0; i < 5; ++i) {
    auto r = run(io, client.send(server.url("https"), settings, get("/echo?i=" + std::to_string(i))));
    REQUIRE(r.ok());
    CHECK(r.value().status == 200);
    CHECK(r.value().body == "GET /echo?i=" + std::to_string(i) + "\n");
  }
  auto stats = proxy.stats();
  CHECK(stats.tunnels == 1);
  REQUIRE(stats.connects.size() == 1);
  CHECK(stats.connects[0] == authority(server.port) + " without-auth");
  CHECK(client.stats().connections_opened == 1);

  // The origin's host name travels in CONNECT and is what TLS verifies: the certificate names
  // localhost, and the proxy (not the client) resolves it.
  auto by_name = http::Url::parse("https://localhost:" + std::to_string(server.port)).value();
  auto named = run(io, client.send(by_name, settings, get("/echo")));
  REQUIRE(named.ok());
  CHECK(proxy.stats().connects.back() == "localhost:" + std::to_string(server.port) + " without-auth");

  // Verification stays on inside the tunnel.
  auto untrusted = run(io, client.send(server.url("https"), through(proxy.url()), get("/echo")));
  REQUIRE_FALSE(untrusted.ok());
  CHECK(untrusted.error().kind == http::HttpError::Kind::TlsVerify);
  CHECK_THAT(untrusted.error().message, Catch::Contains("via proxy " + authority(proxy.port())));
  auto wrong_name = run(io, client.send(server.url("https"), through(proxy.url(), certs.ca_pem(), "other.example"),
                                        get("/echo")));
  REQUIRE_FALSE(wrong_name.ok());
  CHECK(wrong_name.error().kind == http::HttpError::Kind::TlsVerify);
}

TEST_CASE("connections through one proxy, another proxy, other credentials or none never share a pool") {
  auto dir = test_support::temp_dir("proxy-pools");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs);
  ConnectProxy first(dir), second(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto url = server.url("https");
  auto send = [&](const http::TlsSettings& settings) {
    auto r = run(io, client.send(url, settings, get("/echo")));
    REQUIRE(r.ok());
    CHECK(r.value().status == 200);
  };

  send(through(first.url(), certs.ca_pem()));
  send(http::TlsSettings{certs.ca_pem()});  // direct
  CHECK(first.tunnels() == 1);
  CHECK(client.stats().connections_opened == 2);
  send(through(second.url(), certs.ca_pem()));
  CHECK(second.tunnels() == 1);
  CHECK(first.tunnels() == 1);
  send(through(first.url(), certs.ca_pem()));  // its pooled tunnel again
  send(http::TlsSettings{certs.ca_pem()});     // its pooled direct connection again
  CHECK(first.tunnels() == 1);
  CHECK(client.stats().connections_opened == 3);
  send(through(first.url("someone:pw"), certs.ca_pem()));  // same proxy, other credentials: a tunnel of its own
  auto stats = first.stats();
  CHECK(stats.tunnels == 2);
  REQUIRE(stats.connects.size() == 2);
  CHECK(stats.connects[1] == authority(server.port) + " with-auth");
}

TEST_CASE("proxy authentication: the URL's credentials are accepted, a 407 is a clear permanent error") {
  auto dir = test_support::temp_dir("proxy-auth");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs);
  ConnectProxy proxy(dir, {std::make_pair(std::string("stowage"), std::string("s3cr3t/p@ss")), {}, "", {}});
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto url = server.url("https");

  auto ok = run(io, client.send(url, through(proxy.url("stowage:s3cr3t%2Fp%40ss"), certs.ca_pem()), get("/echo")));
  REQUIRE(ok.ok());
  CHECK(ok.value().status == 200);
  CHECK(proxy.tunnels() == 1);

  auto wrong = run(io, client.send(url, through(proxy.url("stowage:wrong-pass"), certs.ca_pem()), get("/echo")));
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().kind == http::HttpError::Kind::Connect);
  CHECK_FALSE(wrong.error().transient());
  CHECK_THAT(wrong.error().message, Catch::Contains("proxy " + authority(proxy.port())) &&
                                        Catch::Contains("407 Proxy Authentication Required") &&
                                        Catch::Contains("not accepted"));
  CHECK(wrong.error().message.find("wrong-pass") == std::string::npos);
  CHECK(wrong.error().message.find("s3cr3t") == std::string::npos);

  auto anonymous = run(io, client.send(url, through(proxy.url(), certs.ca_pem()), get("/echo")));
  REQUIRE_FALSE(anonymous.ok());
  CHECK_FALSE(anonymous.error().transient());
  CHECK_THAT(anonymous.error().message, Catch::Contains("407") && Catch::Contains("USER:PASSWORD@HOST:PORT"));

  auto stats = proxy.stats();
  CHECK(stats.tunnels == 1);
  CHECK(stats.refused == 2);
}

TEST_CASE("an unreachable proxy is a transient connect error that names the proxy, not its password") {
  auto dir = test_support::temp_dir("proxy-down");
  TestServer server(dir);
  boost::asio::io_context io;
  http::ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(2000);
  http::Client client(io.get_executor(), options);
  int closed = test_support::free_port();
  auto settings = through("http://stowage:topsecret@127.0.0.1:" + std::to_string(closed));

  auto refused = run(io, client.send(server.url(), settings, get("/echo")));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == http::HttpError::Kind::Connect);
  CHECK(refused.error().transient());
  CHECK_THAT(refused.error().message, Catch::Contains("proxy " + authority(closed)) && Catch::Contains("refused"));
  CHECK(refused.error().message.find("topsecret") == std::string::npos);

  // A proxy that goes away after serving: the pooled tunnel dies with it, the next call fails cleanly.
  ConnectProxy proxy(dir);
  auto via = through(proxy.url("stowage:topsecret"));
  REQUIRE(run(io, client.send(server.url(), via, get("/echo"))).ok());
  int port = proxy.port();
  proxy.stop();
  auto gone = run(io, client.send(server.url(), via, get("/echo")));
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().transient());
  CHECK_THAT(gone.error().message, Catch::Contains("proxy " + authority(port)));
  CHECK(gone.error().message.find("topsecret") == std::string::npos);
}

TEST_CASE("a proxy that refuses CONNECT, cannot reach the origin, hangs up or stays silent gives a clear error") {
  auto dir = test_support::temp_dir("proxy-refusals");
  TestServer server(dir);
  boost::asio::io_context io;
  http::ClientOptions options;
  options.connect_timeout = std::chrono::milliseconds(500);
  http::Client client(io.get_executor(), options);
  const std::string target = authority(server.port);

  ConnectProxy strict(dir, {std::nullopt, {443}, "", {}});
  auto forbidden = run(io, client.send(server.url(), through(strict.url()), get("/echo")));
  REQUIRE_FALSE(forbidden.ok());
  CHECK(forbidden.error().kind == http::HttpError::Kind::Connect);
  CHECK_FALSE(forbidden.error().transient());
  CHECK(forbidden.error().message ==
        "proxy " + authority(strict.port()) + " refused CONNECT " + target + " with status 403 (Forbidden)");

  ConnectProxy open(dir);
  int closed = test_support::free_port();
  auto down = http::Url::parse("http://" + authority(closed)).value();
  auto unreachable = run(io, client.send(down, through(open.url()), get("/echo")));
  REQUIRE_FALSE(unreachable.ok());
  CHECK(unreachable.error().transient());
  CHECK_THAT(unreachable.error().message,
             Catch::Contains("could not reach " + authority(closed)) && Catch::Contains("502"));

  ConnectProxy hangs_up(dir, {std::nullopt, {}, "close", {}});
  auto cut = run(io, client.send(server.url(), through(hangs_up.url()), get("/echo")));
  REQUIRE_FALSE(cut.ok());
  CHECK(cut.error().kind == http::HttpError::Kind::Reset);
  CHECK(cut.error().transient());
  CHECK_THAT(cut.error().message, Catch::Contains("proxy " + authority(hangs_up.port()) + " closed the connection"));

  ConnectProxy silent(dir, {std::nullopt, {}, "silent", {}});
  auto started = std::chrono::steady_clock::now();
  auto hung = run(io, client.send(server.url(), through(silent.url()), get("/echo")));
  REQUIRE_FALSE(hung.ok());
  CHECK(hung.error().kind == http::HttpError::Kind::Timeout);
  CHECK(hung.error().transient());
  CHECK_THAT(hung.error().message, Catch::Contains("CONNECT " + target + " through proxy"));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
}

TEST_CASE("watches stream through the proxy, one tunnel each") {
  auto dir = test_support::temp_dir("proxy-stream");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs);
  ConnectProxy proxy(dir, {std::make_pair(std::string("w"), std::string("pw")), {}, "", {}});
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto settings = through(proxy.url("w:pw"), certs.ca_pem());
  int status = 0;
  std::string body;
  int pieces = 0;
  std::function<void(const http::Response&)> on_head = [&](const http::Response& head) { status = head.status; };
  std::function<bool(std::string_view)> on_data = [&](std::string_view d) {
    body += d;
    ++pieces;
    return true;
  };

  auto done = run(io, client.stream(server.url("https"), settings, get("/stream/4/50"), on_head, on_data,
                                    std::chrono::milliseconds(2000)));
  REQUIRE(done.ok());
  CHECK(status == 200);
  CHECK(body == "event 0\nevent 1\nevent 2\nevent 3\n");
  CHECK(pieces >= 4);
  CHECK(proxy.tunnels() == 1);

  body.clear();
  auto again = run(io, client.stream(server.url("https"), settings, get("/stream/2/10"), on_head, on_data,
                                     std::chrono::milliseconds(2000)));
  REQUIRE(again.ok());
  CHECK(body == "event 0\nevent 1\n");
  CHECK(proxy.tunnels() == 2);

  // The idle timeout still catches a stalled stream inside the tunnel.
  auto stalled = run(io, client.stream(server.url("https"), settings, get("/stall"), on_head, on_data,
                                       std::chrono::milliseconds(300)));
  REQUIRE_FALSE(stalled.ok());
  CHECK(stalled.error().kind == http::HttpError::Kind::Timeout);
  CHECK(proxy.tunnels() == 3);
}

TEST_CASE("a plain http origin is tunnelled with CONNECT too, and a closed tunnel is replaced") {
  auto dir = test_support::temp_dir("proxy-http");
  TestServer server(dir);
  ConnectProxy proxy(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto settings = through(proxy.url());
  for (int i = 0; i < 3; ++i) {
    auto r = run(io, client.send(server.url(), settings, http::Request{"PUT", "/echo", {}, "body " + std::to_string(i)}));
    REQUIRE(r.ok());
    CHECK(r.value().body == "PUT /echo\nbody " + std::to_string(i));
  }
  auto stats = proxy.stats();
  CHECK(stats.tunnels == 1);
  REQUIRE(stats.connects.size() == 1);
  CHECK(stats.connects[0] == authority(server.port) + " without-auth");

  // The origin closes after each answer (Connection: close): each request gets a fresh tunnel.
  for (int i = 0; i < 2; ++i) {
    auto r = run(io, client.send(server.url(), settings, get("/close")));
    REQUIRE(r.ok());
    CHECK(r.value().body == "bye");
  }
  auto after = run(io, client.send(server.url(), settings, get("/echo")));
  REQUIRE(after.ok());
  CHECK(proxy.tunnels() == 3);
}

TEST_CASE("https and socks5 proxy URLs fail every call with a clear permanent error") {
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto origin = http::Url::parse("https://127.0.0.1:6443").value();
  for (std::string scheme : {"https", "socks5"}) {
    auto settings = through(scheme + "://user:topsecret@127.0.0.1:3128");
    auto sent = run(io, client.send(origin, settings, get("/")));
    REQUIRE_FALSE(sent.ok());
    CHECK(sent.error().kind == http::HttpError::Kind::Connect);
    CHECK_FALSE(sent.error().transient());
    CHECK(sent.error().message == "proxy scheme " + scheme + " is not supported; use an http:// proxy");
    std::function<void(const http::Response&)> on_head = [](const http::Response&) {};
    std::function<bool(std::string_view)> on_data = [](std::string_view) { return true; };
    auto watched = run(io, client.stream(origin, settings, get("/"), on_head, on_data, std::chrono::seconds(1)));
    REQUIRE_FALSE(watched.ok());
    CHECK(watched.error().message == sent.error().message);
  }
  CHECK(client.stats().connections_opened == 0);
}
