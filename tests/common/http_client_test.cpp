// The HTTP client against a real HTTP/1.1 server (tests/servers/http_test_server.py) on loopback:
// keep-alive pooling, the connection bound, TLS verification modes, timeouts, TCP keepalive, and
// the pools' bounds (leases given back on cancellation, idle connections closed, pools evicted).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <thread>
#include <vector>

#include "common/http_client.hpp"
#include "support/http_test_server.hpp"

using namespace stowage;
namespace fs = std::filesystem;

using test_support::get;
using test_support::run;
using TestServer = test_support::HttpTestServer;

namespace {
fs::path temp(const std::string& name) { return test_support::temp_dir(name); }

// The keepalive options of one of this process's TCP sockets.
struct KeepAliveSeen {
  int on = 0, idle = 0, interval = 0, count = 0;
  bool operator==(const KeepAliveSeen&) const = default;
};

int socket_option(int fd, int level, int name) {
  int value = -1;
  socklen_t size = sizeof value;
  return ::getsockopt(fd, level, name, &value, &size) == 0 ? value : -1;
}

// Every socket of this process connected to 127.0.0.1:`port` (the client's side: the test server
// is another process), read through /proc/self/fd.
std::vector<KeepAliveSeen> sockets_connected_to(int port) {
  std::vector<KeepAliveSeen> out;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    sockaddr_in peer{};
    socklen_t size = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &size) != 0 || peer.sin_family != AF_INET) continue;
    if (ntohs(peer.sin_port) != port || socket_option(fd, SOL_SOCKET, SO_TYPE) != SOCK_STREAM) continue;
    out.push_back({socket_option(fd, SOL_SOCKET, SO_KEEPALIVE), socket_option(fd, IPPROTO_TCP, TCP_KEEPIDLE),
                   socket_option(fd, IPPROTO_TCP, TCP_KEEPINTVL), socket_option(fd, IPPROTO_TCP, TCP_KEEPCNT)});
  }
  return out;
}
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

// The last line of defence against header injection: whatever a caller puts in a request, a
// control character in a header value, a header name that is not a token, or a request target or
// host that would end the request line early is refused before any byte is written: no connection
// is opened (the client's count and the server's agree), and the error names the header, never
// its value.
TEST_CASE("requests that would inject a header are refused before anything reaches a socket") {
  auto dir = temp("inject");
  TestServer server(dir);
  boost::asio::io_context io;
  // The server's count of TCP connections, asked on a connection of its own (which it counts too).
  auto connections_seen = [&] {
    http::Client observer(io.get_executor());
    auto stats = run(io, observer.send(server.url(), {}, get("/stats")));
    REQUIRE(stats.ok());
    return stats.value().body;
  };
  const std::string before = connections_seen();
  http::Client client(io.get_executor());
  auto with_header = [](std::string name, std::string value) {
    http::Request r = get("/echo");
    r.headers.emplace_back("Accept", "*/*");
    r.headers.emplace_back(std::move(name), std::move(value));
    return r;
  };
  struct Case {
    const char* what;
    http::Request request;
    const char* named;  // what the message must say
  };
  http::Request bad_target = get("/echo\r\nX-Injected: yes\r\nX-Other:");
  http::Request bad_method = get("/echo");
  bad_method.method = "GET /x HTTP/1.1\r\nX-Injected: yes\r\n\r\nGET";
  const Case cases[] = {
      {"CRLF in a value", with_header("X-Custom", "AKIA\r\nX-Injected: yes"),
       "the value of header X-Custom contains a control character (at byte 4)"},
      {"LF alone", with_header("X-Custom", "AKIA\nX-Injected: yes"), "header X-Custom contains a control character"},
      {"NUL", with_header("Authorization", std::string("Bearer a\0b", 10)),
       "header Authorization contains a control character (at byte 8)"},
      {"a name that smuggles a header", with_header("X-A: b\r\nX-Injected", "yes"),
       "the name of header 2 is not an RFC 9110 token: the character at byte 3 is not allowed"},
      {"an empty name", with_header("", "yes"), "the name of header 2 is empty"},
      {"CRLF in the target", bad_target, "the request target contains a control character (at byte 5)"},
      {"a method that is not a token", bad_method, "the method is not an RFC 9110 token: the character at byte 3"},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    auto sent = run(io, client.send(server.url(), {}, c.request));
    REQUIRE_FALSE(sent.ok());
    CHECK_FALSE(sent.error().transient());  // never worth a retry
    CHECK_THAT(sent.error().message, Catch::Contains(c.named));
    CHECK_THAT(sent.error().message, Catch::Contains("127.0.0.1:" + std::to_string(server.port)));
    CHECK(sent.error().message.find("Injected") == std::string::npos);
    CHECK(sent.error().message.find("AKIA") == std::string::npos);
  }
  // A host name with a line break (a bucket name from a spec, say) is refused without being quoted.
  http::Url host = server.url();
  host.host = "127.0.0.1\r\nX-Injected: yes";
  auto bad_host = run(io, client.send(host, {}, get("/echo")));
  REQUIRE_FALSE(bad_host.ok());
  CHECK_THAT(bad_host.error().message, Catch::Contains("the host name contains a control character (at byte 9)"));
  CHECK(bad_host.error().message.find("Injected") == std::string::npos);
  // A watch is checked the same way.
  auto ignore_head = [](const http::Response&) {};
  auto ignore_data = [](std::string_view) { return true; };
  auto streamed = run(io, client.stream(server.url(), {}, with_header("X-Custom", "a\r\nX-Injected: yes"), ignore_head,
                                        ignore_data, std::chrono::milliseconds(2000)));
  REQUIRE_FALSE(streamed.ok());
  CHECK_THAT(streamed.error().message, Catch::Contains("header X-Custom contains a control character"));

  CHECK(client.stats().connections_opened == 0);
  CHECK(client.stats().requests == 0);
  auto count = [](const std::string& stats) { return std::stoi(stats.substr(stats.find(':') + 1)); };
  CHECK(count(connections_seen()) == count(before) + 1);  // the second observer's own, and no other

  // Spaces and high bytes are fine in values (RFC 9110), and the client still works.
  auto fine = run(io, client.send(server.url(), {}, with_header("X-Custom", "a b caf\xc3\xa9")));
  REQUIRE(fine.ok());
  CHECK(fine.value().status == 200);
}

TEST_CASE("endpoint and proxy URLs with a control character or a space are refused without being quoted") {
  auto endpoint = http::Url::parse("http://minio.local:9000\r\nX-Injected: yes");
  REQUIRE_FALSE(endpoint.ok());
  CHECK(endpoint.error() == "endpoint contains a control character (at byte 23)");
  auto spaced = http::Url::parse("http://bucket .example.com");
  REQUIRE_FALSE(spaced.ok());
  CHECK(spaced.error() == "endpoint contains a space (at byte 13)");
  auto proxy = http::Proxy::parse("http://user:pa\r\nss@proxy:3128");
  REQUIRE_FALSE(proxy.ok());
  CHECK(proxy.error() == "proxy URL contains a control character (at byte 14)");
}

// A peer that vanishes without a FIN or RST (a half-open connection) is only found by the kernel's
// keepalive probes while nobody writes: every connection has them, pooled ones and streams alike.
TEST_CASE("every connection has TCP keepalive: 30 s idle, probes every 10 s, 3 of them by default") {
  auto dir = temp("keepalive");
  TestServer server(dir);
  const int port = std::stoi(server.url().port);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  REQUIRE(run(io, client.send(server.url(), {}, get("/echo"))).ok());
  // The connection now waits in the pool.
  CHECK(sockets_connected_to(port) == std::vector<KeepAliveSeen>{{1, 30, 10, 3}});

  http::ClientOptions options;
  options.keepalive.idle = std::chrono::seconds(7);
  options.keepalive.interval = std::chrono::seconds(2);
  options.keepalive.count = 4;
  http::Client tuned(io.get_executor(), options);
  std::vector<KeepAliveSeen> while_streaming;
  auto on_head = [](const http::Response&) {};
  auto on_data = [&](std::string_view) {
    while_streaming = sockets_connected_to(port);
    return false;
  };
  REQUIRE(run(io, tuned.stream(server.url(), {}, get("/stall"), on_head, on_data, std::chrono::seconds(5))).ok());
  // The first client's pooled connection, and the stream's own.
  std::sort(while_streaming.begin(), while_streaming.end(),
            [](const KeepAliveSeen& a, const KeepAliveSeen& b) { return a.idle < b.idle; });
  CHECK(while_streaming == std::vector<KeepAliveSeen>{{1, 7, 2, 4}, {1, 30, 10, 3}});
}

// What the backends rely on: send()'s request timeout is one deadline for the whole exchange, so
// an answer whose body stops half-way fails as a timeout rather than hanging.
TEST_CASE("a response whose body stalls half-way fails with a timeout within the request timeout") {
  auto dir = temp("stalled-body");
  TestServer server(dir);
  boost::asio::io_context io;
  http::ClientOptions options;
  options.request_timeout = std::chrono::milliseconds(400);
  http::Client client(io.get_executor(), options);
  const auto started = std::chrono::steady_clock::now();
  auto stalled = run(io, client.send(server.url(), {}, get("/stall")));  // headers, one chunk, then silence
  const auto took = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(stalled.ok());
  CHECK(stalled.error().kind == http::HttpError::Kind::Timeout);
  CHECK(stalled.error().transient());
  CHECK(took >= std::chrono::milliseconds(350));
  CHECK(took < std::chrono::seconds(3));
}

namespace {
// Runs `io` until `done()` holds or `limit` has passed; says whether it holds.
template <class Predicate>
bool run_until(boost::asio::io_context& io, Predicate done, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.run_one_for(std::chrono::milliseconds(20));
    if (io.stopped()) io.restart();
  }
  return done();
}
}  // namespace

// Pool slots and places in the queue are leases: a request that leaves however it leaves (here a
// terminal cancellation, as the controller sends its reconciles at shutdown) gives them back. A
// leaked waiter would swallow the wake-up of a slot given back later, and the requests behind it
// would wait for ever.
TEST_CASE("a thousand requests cancelled while they wait leave no waiter behind and every slot usable") {
  auto dir = temp("cancel");
  TestServer server(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  constexpr std::size_t kSlots = 3;
  constexpr int kCancelled = 1000;

  // kSlots slow requests hold every slot; the first is cancelled half-way through its exchange.
  int held_ok = 0, held_failed = 0;
  boost::asio::cancellation_signal cancel_holder;
  for (std::size_t i = 0; i < kSlots; ++i) {
    auto done = [&](std::exception_ptr e, http::HttpResult r) { (!e && r.ok() ? held_ok : held_failed)++; };
    auto request = client.send(server.url(), {}, get("/slow/1500"), kSlots);
    if (i == 0)
      boost::asio::co_spawn(io, std::move(request), boost::asio::bind_cancellation_slot(cancel_holder.slot(), done));
    else
      boost::asio::co_spawn(io, std::move(request), done);
  }
  std::vector<std::unique_ptr<boost::asio::cancellation_signal>> cancels;
  int aborted = 0, ended_otherwise = 0;
  for (int i = 0; i < kCancelled; ++i) {
    auto& signal = *cancels.emplace_back(std::make_unique<boost::asio::cancellation_signal>());
    auto done = [&](std::exception_ptr e, http::HttpResult) {
      try {
        if (e) std::rethrow_exception(e);
        ++ended_otherwise;
      } catch (const boost::system::system_error& error) {
        (error.code() == boost::asio::error::operation_aborted ? aborted : ended_otherwise)++;
      }
    };
    boost::asio::co_spawn(io, client.send(server.url(), {}, get("/echo"), kSlots),
                          boost::asio::bind_cancellation_slot(signal.slot(), done));
  }
  REQUIRE(run_until(io, [&] { return client.stats().waiters == kCancelled; }, std::chrono::seconds(5)));
  CHECK(client.stats().leased_connections == kSlots);
  for (auto& signal : cancels) signal->emit(boost::asio::cancellation_type::terminal);
  REQUIRE(run_until(io, [&] { return aborted + ended_otherwise == kCancelled; }, std::chrono::seconds(5)));
  CHECK(aborted == kCancelled);
  CHECK(client.stats().waiters == 0);
  cancel_holder.emit(boost::asio::cancellation_type::terminal);
  REQUIRE(run_until(io, [&] { return held_ok + held_failed == static_cast<int>(kSlots); }, std::chrono::seconds(5)));
  CHECK(held_failed == 1);  // the cancelled holder: its connection closed, its slot given back
  auto after = client.stats();
  CHECK(after.waiters == 0);
  CHECK(after.leased_connections == 0);
  CHECK(after.idle_connections == kSlots - 1);
  CHECK(after.pools == 1);

  // Twice as many requests as slots: kSlots of them at once, the others as slots come back.
  const auto opened_before = after.connections_opened;
  int served = 0;
  for (std::size_t i = 0; i < 2 * kSlots; ++i)
    boost::asio::co_spawn(io, client.send(server.url(), {}, get("/slow/200"), kSlots),
                          [&](std::exception_ptr e, http::HttpResult r) { served += !e && r.ok() ? 1 : 0; });
  auto all_placed = [&] { return client.stats().leased_connections == kSlots && client.stats().waiters == kSlots; };
  REQUIRE(run_until(io, all_placed, std::chrono::seconds(5)));
  const auto started = std::chrono::steady_clock::now();
  CHECK(run_until(io, [&] { return served == static_cast<int>(2 * kSlots); }, std::chrono::seconds(10)));
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
  CHECK(client.stats().connections_opened == opened_before + 1);  // for the slot the cancelled holder gave back
  CHECK(client.stats().waiters == 0);
  CHECK(client.stats().leased_connections == 0);
}

// Idle connections are closed by a sweep that every request and every read of a stream runs (the
// client starts no timer: see http_client.hpp); a pool left with nothing is evicted.
TEST_CASE("a connection idle for the idle timeout is closed and its empty pool evicted") {
  auto dir = temp("idle");
  TestServer first(dir), second(dir / "second");
  const int first_port = std::stoi(first.url().port), second_port = std::stoi(second.url().port);
  boost::asio::io_context io;
  http::ClientOptions options;
  options.idle_connection_timeout = std::chrono::milliseconds(500);
  http::Client client(io.get_executor(), options);
  CHECK(http::ClientOptions{}.idle_connection_timeout == std::chrono::seconds(90));

  REQUIRE(run(io, client.send(first.url(), {}, get("/echo"))).ok());
  REQUIRE(run(io, client.send(first.url(), {}, get("/echo"))).ok());  // well within the idle time: reused
  CHECK(client.stats().connections_opened == 1);
  CHECK(client.stats().pools == 1);
  CHECK(sockets_connected_to(first_port).size() == 1);

  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  REQUIRE(run(io, client.send(second.url(), {}, get("/echo"))).ok());
  auto stats = client.stats();
  CHECK(stats.idle_connections_closed == 1);
  CHECK(stats.pools == 1);  // the second server's; the first's was evicted
  CHECK(stats.idle_connections == 1);
  CHECK(sockets_connected_to(first_port).empty());
  CHECK(sockets_connected_to(second_port).size() == 1);

  // A long stream sweeps as it reads: both idle connections go while it runs; once it ends, its
  // pool has nothing left either.
  std::size_t pools_while_streaming = 0;
  auto on_head = [](const http::Response&) {};
  auto on_data = [&](std::string_view) {
    pools_while_streaming = client.stats().pools;
    return true;
  };
  REQUIRE(run(io, client.send(first.url(), {}, get("/echo"))).ok());
  REQUIRE(run(io, client.stream(second.url(), {}, get("/stream/8/150"), on_head, on_data, std::chrono::seconds(5)))
              .ok());
  CHECK(pools_while_streaming == 1);  // the stream's own
  stats = client.stats();
  CHECK(stats.idle_connections_closed == 3);
  CHECK(stats.pools == 0);
  CHECK(stats.idle_connections == 0);
  CHECK(sockets_connected_to(first_port).empty());
  CHECK(sockets_connected_to(second_port).empty());
}

// The pool key is a digest of the whole TLS identity: equal texts share a pool (and its
// connections), another client certificate (an exec plugin's rotated one) never does, and the
// pool of a certificate no longer used goes once its connection has been idle for the idle time.
TEST_CASE("pools: one per TLS identity, shared by equal identities, and a rotated certificate's pool goes") {
  auto dir = temp("identity");
  auto certs = test_support::make_certificates(dir / "certs");
  TestServer server(dir, &certs, true);
  const auto [cert, key] = certs.client_cert_and_key();
  const auto [rotated_cert, rotated_key] = certs.client_cert_and_key();  // a new key pair
  REQUIRE(rotated_key != key);
  boost::asio::io_context io;
  http::ClientOptions options;
  options.idle_connection_timeout = std::chrono::milliseconds(500);
  http::Client client(io.get_executor(), options);
  auto url = server.url("https");
  const int port = server.port;

  REQUIRE(run(io, client.send(url, http::TlsSettings{certs.ca_pem(), false, "", cert, key}, get("/echo"))).ok());
  // The same identity from other strings: the same pool, the same connection.
  REQUIRE(run(io, client.send(url, http::TlsSettings{certs.ca_pem(), false, "", std::string(cert.data(), cert.size()),
                                                     std::string(key.data(), key.size())},
                              get("/echo")))
              .ok());
  CHECK(client.stats().pools == 1);
  CHECK(client.stats().connections_opened == 1);

  const http::TlsSettings rotated{certs.ca_pem(), false, "", rotated_cert, rotated_key};
  REQUIRE(run(io, client.send(url, rotated, get("/echo"))).ok());
  CHECK(client.stats().pools == 2);
  CHECK(client.stats().connections_opened == 2);
  // The verify flag and the server name are part of the identity too.
  REQUIRE(run(io, client.send(url, http::TlsSettings{certs.ca_pem(), true, "", rotated_cert, rotated_key},
                              get("/echo")))
              .ok());
  REQUIRE(run(io, client.send(url, http::TlsSettings{certs.ca_pem(), false, "127.0.0.1", rotated_cert, rotated_key},
                              get("/echo")))
              .ok());
  CHECK(client.stats().pools == 4);
  CHECK(client.stats().connections_opened == 4);

  // Only the rotated identity stays in use: every other pool goes with its idle connection.
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    REQUIRE(run(io, client.send(url, rotated, get("/echo"))).ok());
  }
  auto stats = client.stats();
  CHECK(stats.pools == 1);
  CHECK(stats.idle_connections == 1);
  CHECK(stats.idle_connections_closed == 3);
  CHECK(stats.connections_opened == 4);  // the rotated identity's connection was kept in use throughout
  CHECK(sockets_connected_to(port).size() == 1);
}

// The product's shutdown may end with the io_context destroyed while requests are still suspended
// in it (Runtime destroys its http::Client first, then the io_context): their frames are destroyed
// then, and each gives back what it held, so nothing is left for the client to close later.
TEST_CASE("requests destroyed with their io_context give back their slots, places in the queue and pools") {
  auto dir = temp("destroyed");
  TestServer server(dir);
  auto io = std::make_unique<boost::asio::io_context>();
  http::Client client(io->get_executor());
  for (int i = 0; i < 5; ++i)
    boost::asio::co_spawn(*io, client.send(server.url(), {}, get("/slow/3000"), 2),
                          [](std::exception_ptr, http::HttpResult) {});
  auto placed = [&] { return client.stats().leased_connections == 2 && client.stats().waiters == 3; };
  REQUIRE(run_until(*io, placed, std::chrono::seconds(5)));
  run_until(*io, [] { return false; }, std::chrono::milliseconds(300));  // both requests are on the wire
  CHECK(client.stats().connections_opened == 2);
  io.reset();
  const auto stats = client.stats();
  CHECK(stats.leased_connections == 0);
  CHECK(stats.waiters == 0);
  CHECK(stats.idle_connections == 0);
  CHECK(stats.pools == 0);
}
