// The retry policy against a real HTTP/1.1 server (tests/servers/http_test_server.py) on loopback.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/http_client.hpp"
#include "storage/retry.hpp"
#include "support/http_test_server.hpp"

using namespace stowage;
using namespace stowage::storage;
namespace fs = std::filesystem;

using test_support::get;
using test_support::run;
using TestServer = test_support::HttpTestServer;

namespace {
fs::path temp(const std::string& name) { return test_support::temp_dir(name); }
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
