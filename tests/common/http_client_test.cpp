// The HTTP client against a real HTTP/1.1 server (tests/servers/http_test_server.py) on loopback:
// keep-alive pooling, the connection bound, TLS verification modes, timeouts.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/http_client.hpp"
#include "support/http_test_server.hpp"

using namespace stowage;
namespace fs = std::filesystem;

using test_support::get;
using test_support::run;
using TestServer = test_support::HttpTestServer;

namespace {
fs::path temp(const std::string& name) { return test_support::temp_dir(name); }
}  // namespace

TEST_CASE("URLs parse with defaults and clear errors") {
  auto u = http::Url::parse("https://s3.example.com").value();
  CHECK(u.port == "443");
  CHECK(u.path == "/");
  CHECK(u.host_header() == "s3.example.com");
  auto p = http::Url::parse("http://127.0.0.1:9000/minio/").value();
  CHECK(p.host_header() == "127.0.0.1:9000");
  CHECK(p.path == "/minio/");
  CHECK(http::Url::parse("[::1]:8443").value().host == "::1");
  CHECK_FALSE(http::Url::parse("ftp://x").ok());
  CHECK_FALSE(http::Url::parse("https://x:port").ok());
}

TEST_CASE("uri_encode keeps unreserved characters and, on request, slashes") {
  CHECK(http::uri_encode("a b/c~d", false) == "a%20b%2Fc~d");
  CHECK(http::uri_encode("a b/c~d", true) == "a%20b/c~d");
  CHECK(http::uri_encode("test$file.text", true) == "test%24file.text");
}

TEST_CASE("requests reuse one keep-alive connection and respect the connection bound") {
  auto dir = temp("pool");
  TestServer server(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  for (int i = 0; i < 10; ++i) {
    auto r = run(io, client.send(server.url(), {}, get("/echo"), 4));
    REQUIRE(r.ok());
    CHECK(r.value().status == 200);
    CHECK(r.value().body == "GET /echo\n");
  }
  CHECK(client.stats().connections_opened == 1);

  // 20 concurrent slow requests with a bound of 3 connections.
  int done = 0;
  for (int i = 0; i < 20; ++i)
    boost::asio::co_spawn(io, client.send(server.url(), {}, get("/slow/30"), 3),
                          [&](std::exception_ptr, http::HttpResult r) { done += r.ok() ? 1 : 0; });
  io.restart();
  io.run();
  CHECK(done == 20);
  CHECK(client.stats().connections_opened <= 3);
}

TEST_CASE("a server that closes the connection is followed by a fresh one") {
  auto dir = temp("close");
  TestServer server(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  for (int i = 0; i < 3; ++i) {
    auto r = run(io, client.send(server.url(), {}, get("/close")));
    REQUIRE(r.ok());
    CHECK(r.value().body == "bye");
  }
  CHECK(client.stats().connections_opened == 3);
}

TEST_CASE("TLS: verified with the given CA, refused without it, skipped when insecure") {
  auto dir = temp("tls");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto url = server.url("https");

  auto trusted = run(io, client.send(url, http::TlsSettings{certs.ca_pem(), false, ""}, get("/echo")));
  REQUIRE(trusted.ok());
  CHECK(trusted.value().status == 200);

  auto untrusted = run(io, client.send(url, http::TlsSettings{}, get("/echo")));
  REQUIRE_FALSE(untrusted.ok());
  CHECK(untrusted.error().kind == http::HttpError::Kind::TlsVerify);
  CHECK_FALSE(untrusted.error().transient());
  CHECK_THAT(untrusted.error().message, Catch::Contains("not trusted") && Catch::Contains("CA_CERT_DATA"));

  auto wrong_name = run(io, client.send(url, http::TlsSettings{certs.ca_pem(), false, "other.example"}, get("/echo")));
  REQUIRE_FALSE(wrong_name.ok());
  CHECK(wrong_name.error().kind == http::HttpError::Kind::TlsVerify);

  auto insecure = run(io, client.send(url, http::TlsSettings{"", true, ""}, get("/echo")));
  REQUIRE(insecure.ok());

  auto bad_ca = run(io, client.send(url, http::TlsSettings{"not a pem", false, ""}, get("/echo")));
  REQUIRE_FALSE(bad_ca.ok());
  CHECK_THAT(bad_ca.error().message, Catch::Contains("CA_CERT_DATA is not a valid PEM"));
}

TEST_CASE("connection refused and timeouts are transient errors that name the endpoint") {
  boost::asio::io_context io;
  http::ClientOptions opts;
  opts.request_timeout = std::chrono::milliseconds(300);
  http::Client client(io.get_executor(), opts);
  int closed = test_support::free_port();
  auto refused = run(io, client.send(http::Url::parse("http://127.0.0.1:" + std::to_string(closed)).value(), {},
                                     get("/")));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().kind == http::HttpError::Kind::Connect);
  CHECK(refused.error().transient());
  CHECK_THAT(refused.error().message, Catch::Contains("127.0.0.1:" + std::to_string(closed)));

  auto dir = temp("timeout");
  TestServer server(dir);
  auto slow = run(io, client.send(server.url(), {}, get("/slow/2000")));
  REQUIRE_FALSE(slow.ok());
  CHECK(slow.error().kind == http::HttpError::Kind::Timeout);
  CHECK(slow.error().transient());
}

TEST_CASE("percent and form decoding") {
  CHECK(http::percent_decode("a%20b+c%2Fd%zz%4") == "a b+c/d%zz%4");
  CHECK(http::form_decode("a%20b+c") == "a b c");
}

TEST_CASE("mutual TLS: the client certificate is presented when given") {
  auto dir = temp("mtls");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs, true);
  auto [cert, key] = certs.client_cert_and_key();
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto url = server.url("https");
  http::TlsSettings with{certs.ca_pem(), false, "", cert, key};
  auto ok = run(io, client.send(url, with, get("/echo")));
  REQUIRE(ok.ok());
  CHECK(ok.value().status == 200);
  auto refused = run(io, client.send(url, http::TlsSettings{certs.ca_pem(), false, "", "", ""}, get("/echo")));
  CHECK_FALSE(refused.ok());
  http::TlsSettings mismatched{certs.ca_pem(), false, "", cert, "garbage"};
  auto bad = run(io, client.send(url, mismatched, get("/echo")));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("client certificate"));
  CHECK(bad.error().message.find("garbage") == std::string::npos);
}

TEST_CASE("streaming: chunks arrive as they are sent, the idle timeout catches a stalled stream") {
  auto dir = temp("stream");
  TestServer server(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  std::string body;
  int status = 0, pieces = 0;
  auto on_head = [&](const http::Response& head) { status = head.status; };
  auto on_data = [&](std::string_view d) {
    body += d;
    ++pieces;
    return true;
  };
  auto done = run(io, client.stream(server.url(), {}, get("/stream/5/50"), on_head, on_data,
                                    std::chrono::milliseconds(2000)));
  REQUIRE(done.ok());
  CHECK(status == 200);
  CHECK(body == "event 0\nevent 1\nevent 2\nevent 3\nevent 4\n");
  CHECK(pieces >= 5);  // delivered as they came, not at the end

  std::string first;
  auto stop_early = [&](std::string_view d) {
    first += d;
    return false;
  };
  auto stopped = run(io, client.stream(server.url(), {}, get("/stream/100/20"), on_head, stop_early,
                                       std::chrono::milliseconds(2000)));
  CHECK(stopped.ok());
  CHECK(first == "event 0\n");

  auto started = std::chrono::steady_clock::now();
  std::string seen;
  auto record = [&](std::string_view d) {
    seen += d;
    return true;
  };
  auto stalled = run(io, client.stream(server.url(), {}, get("/stall"), on_head, record,
                                       std::chrono::milliseconds(300)));
  REQUIRE_FALSE(stalled.ok());
  CHECK(stalled.error().kind == http::HttpError::Kind::Timeout);
  CHECK(seen == "event 0\n");
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
}
