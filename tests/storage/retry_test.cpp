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

TEST_CASE("retry_after caps a server delay before converting it (fuzz: http_fields)") {
  auto with = [](std::string name, std::string value) {
    http::Response response;
    response.status = 503;
    response.headers = {{std::move(name), std::move(value)}};
    return retry_after(response);
  };
  CHECK(with("retry-after", "7") == std::chrono::milliseconds(7000));
  CHECK(with("x-amz-retry-after", "250") == std::chrono::milliseconds(250));
  // Found by fuzz/http_fields_fuzz.cpp (fuzz/corpus/http_fields/huge-retry-after): 9223372036854776 s
  // in milliseconds overflows int64; it used to wrap to a negative delay.
  CHECK(with("retry-after", "9223372036854776") == std::chrono::hours(1));
  CHECK(with("retry-after", "9223372036854775807") == std::chrono::hours(1));
  CHECK(with("x-amz-retry-after", "9223372036854775807") == std::chrono::hours(1));
  CHECK_FALSE(with("retry-after", "-1").has_value());
  CHECK_FALSE(with("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT").has_value());
}
