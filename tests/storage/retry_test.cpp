// The retry policy against a real HTTP/1.1 server (tests/servers/http_test_server.py) on loopback.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/http_client.hpp"
#include "storage/retry.hpp"
#include "support/process.hpp"

using namespace stowage;
using namespace stowage::storage;
namespace fs = std::filesystem;

namespace {

struct TestServer {
  int port = test_support::free_port();
  fs::path log;
  test_support::Server proc;
  TestServer(const fs::path& dir, const test_support::TestCertificates* certs = nullptr) : log(dir / "server.log") {
    std::vector<std::string> argv{"python3", std::string(STOWAGE_SOURCE_DIR) + "/tests/servers/http_test_server.py",
                                  "--port", std::to_string(port)};
    if (certs) {
      argv.insert(argv.end(), {"--cert", certs->server_cert.string(), "--key", certs->server_key.string()});
    }
    proc = test_support::Server::start(argv, log);
    proc.wait_for_port(port, log);
  }
  http::Url url(const std::string& scheme = "http") const {
    return http::Url::parse(scheme + "://127.0.0.1:" + std::to_string(port)).value();
  }
};

fs::path temp(const std::string& name) {
  auto d = fs::temp_directory_path() / ("stowage-http-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

template <class T>
T run(boost::asio::io_context& io, boost::asio::awaitable<T> op) {
  auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
  io.restart();
  io.run();
  return f.get();
}

http::Request get(const std::string& target) { return http::Request{"GET", target, {}, ""}; }

}  // namespace

TEST_CASE("send_with_retries retries 503s, honours Retry-After, and sends non-idempotent requests once") {
  auto dir = temp("retry");
  TestServer server(dir);
  boost::asio::io_context io;
  http::Client client(io.get_executor());
  auto ok = run(io, send_with_retries(client, server.url(), {}, [] { return get("/flaky/a/3"); }, true));
  REQUIRE(ok.ok());
  CHECK(ok.value().status == 200);
  CHECK(ok.value().body == "ok after 3");

  auto gave_up = run(io, send_with_retries(client, server.url(), {}, [] { return get("/flaky/b/10"); }, true, 0,
                                           RetryPolicy{3, std::chrono::milliseconds(1), std::chrono::milliseconds(5)}));
  REQUIRE(gave_up.ok());
  CHECK(gave_up.value().status == 503);

  auto once = run(io, send_with_retries(client, server.url(), {}, [] { return get("/flaky/c/1"); }, false));
  REQUIRE(once.ok());
  CHECK(once.value().status == 503);

  auto permanent = run(io, send_with_retries(client, server.url(), {}, [] { return get("/status/403"); }, true));
  CHECK(permanent.value().status == 403);
}
