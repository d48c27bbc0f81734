// S3Backend when the network or the store misbehaves: moto (auth on) behind
// tests/servers/fault_proxy.py, which forwards requests unchanged (Host included: SigV4 signs it)
// and injects 503s, SlowDown, TCP resets, truncated answers, delays and canned answers. Every case
// must end in success or a clear error - never a hang or a crash - and the canned answers drive
// the paths moto cannot show: region correction, AWS virtual-hosted addressing, a store without
// DeleteObjects, per-key delete failures, If-None-Match doing the create-only work.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <set>
#include <vector>

#include "storage/metadata.hpp"
#include "storage/s3_backend.hpp"
#include "support/fault_proxy.hpp"
#include "support/moto_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;
using test_support::FaultProxy;
using test_support::MotoServer;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

MotoServer& moto() {
  static MotoServer server;
  return server;
}

struct Harness {
  explicit Harness(const std::string& bucket, http::ClientOptions client_options = {})
      : bucket(bucket), proxy(moto().endpoint()), client(io.get_executor(), client_options) {
    moto().make_bucket(bucket);
  }

  S3Options options(const std::string& prefix = "p") const {
    S3Options o;
    o.endpoint = proxy.endpoint();
    o.bucket = bucket;
    o.prefix = prefix;
    o.access_key_id = moto().credentials().access_key_id;
    o.secret_access_key = moto().credentials().secret_access_key;
    o.retry.base = std::chrono::milliseconds(20);
    return o;
  }

  // The requests the proxy saw with a given method.
  std::vector<boost::json::object> seen(const std::string& method) const {
    std::vector<boost::json::object> out;
    for (const auto& entry : proxy.requests())
      if (entry.as_object().at("method").as_string() == method) out.push_back(entry.as_object());
    return out;
  }

  std::string bucket;
  FaultProxy proxy;
  boost::asio::io_context io;
  http::Client client;
};

std::string text(const boost::json::object& entry, const char* field) {
  const auto& v = entry.at(field);
  return v.is_string() ? std::string(v.as_string()) : std::string();
}

double elapsed_ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

TEST_CASE("S3 through the proxy: requests pass unchanged and stay signed") {
  Harness h("proxy-plain");
  S3Backend backend(h.client, h.options());
  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(moto().get_object("proxy-plain", "p/metadata.yaml") == kBody);
  auto puts = h.seen("PUT");
  REQUIRE(puts.size() == 1);
  CHECK(text(puts[0], "host") == "127.0.0.1:" + std::to_string(h.proxy.port()));
  CHECK(text(puts[0], "path") == "/proxy-plain/p/metadata.yaml");
}

TEST_CASE("S3 a burst of 503 SlowDown is retried with backoff, then Created") {
  Harness h("slowdown-burst");

  SECTION("the server names the delay (x-amz-retry-after)") {
    S3Backend backend(h.client, h.options("named"));
    h.proxy.inject(R"({"mode": "slowdown", "count": 3, "method": "PUT", "retry_after_ms": 150})");
    const auto start = Clock::now();
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE(created.ok());
    CHECK(created.value() == CreateOutcome::Created);
    CHECK(elapsed_ms(start) >= 3 * 150);
    CHECK(h.seen("PUT").size() == 4);
    CHECK(moto().get_object("slowdown-burst", "named/metadata.yaml") == kBody);
  }
  SECTION("full-jitter backoff of its own (plain 503s)") {
    auto options = h.options("jitter");
    options.retry.base = std::chrono::milliseconds(100);
    S3Backend backend(h.client, options);
    h.proxy.inject(R"({"mode": "status503", "count": 3, "method": "PUT"})");
    const auto start = Clock::now();
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE(created.ok());
    CHECK(created.value() == CreateOutcome::Created);
    // Three draws from [0,100], [0,200], [0,400] ms: all under 10 ms together has odds below 1e-5.
    CHECK(elapsed_ms(start) >= 10);
    CHECK(elapsed_ms(start) < 5000);
    auto puts = h.seen("PUT");
    REQUIRE(puts.size() == 4);
    CHECK(moto().get_object("slowdown-burst", "jitter/metadata.yaml") == kBody);
  }
}

TEST_CASE("S3 throttling that outlasts the retries ends in a transient error with the code") {
  Harness h("slowdown-forever");
  auto options = h.options();
  options.retry.max_attempts = 3;
  S3Backend backend(h.client, options);
  h.proxy.inject(R"({"mode": "slowdown", "count": 1000, "retry_after_ms": 30})");
  auto result = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().transient);
  CHECK(result.error().code == "SlowDown");
  CHECK(result.error().message.find("503") != std::string::npos);
  CHECK(result.error().message.find("request id fault-") != std::string::npos);
  REQUIRE(result.error().retry_after);
  CHECK(*result.error().retry_after == std::chrono::milliseconds(30));
  CHECK(h.seen("GET").size() == 3);
}

TEST_CASE("S3 connection resets: retried to success, or a transient ConnectionReset") {
  Harness h("resets");
  S3Backend backend(h.client, h.options());
  h.proxy.inject(R"({"mode": "reset", "count": 2})");
  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);

  h.proxy.inject(R"({"mode": "reset", "count": 1000})");
  auto failed = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().transient);
  CHECK(failed.error().code == "ConnectionReset");
  CHECK(failed.error().message.find(h.proxy.endpoint()) != std::string::npos);
}

TEST_CASE("S3 truncated answers: retried to success, or a transient error") {
  Harness h("truncated");
  S3Backend backend(h.client, h.options());
  REQUIRE(run(h.io, backend.create_metadata(kBody)).ok());

  // A GET whose body stops half way: the read is retried and succeeds.
  h.proxy.inject(R"({"mode": "truncate", "count": 1, "method": "GET"})");
  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().meta);

  // A PUT that reached the store but whose answer was cut: the retry meets the object and
  // If-None-Match, so the outcome is AlreadyExists - the object is there with our content either way.
  S3Backend other(h.client, h.options("other"));
  h.proxy.inject(R"({"mode": "truncate", "count": 1, "method": "PUT"})");
  auto created = run(h.io, other.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(moto().get_object("truncated", "other/metadata.yaml") == kBody);

  h.proxy.inject(R"({"mode": "truncate", "count": 1000})");
  auto failed = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().transient);
  CHECK((failed.error().code == "ConnectionReset" || failed.error().code == "BadResponse"));
}

TEST_CASE("S3 an answer slower than the request timeout is a clear transient Timeout") {
  http::ClientOptions client_options;
  client_options.request_timeout = std::chrono::milliseconds(400);
  Harness h("slow-answers", client_options);
  auto options = h.options();
  options.retry.max_attempts = 2;
  S3Backend backend(h.client, options);
  h.proxy.inject(R"({"mode": "delay", "count": 1000, "delay_ms": 3000})");
  const auto start = Clock::now();
  auto result = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().transient);
  CHECK(result.error().code == "Timeout");
  CHECK(result.error().message.find("timed out") != std::string::npos);
  CHECK(elapsed_ms(start) < 2500);
}

TEST_CASE("S3 If-None-Match keeps create-only when the HEAD does not see the object") {
  Harness h("if-none-match");
  moto().put_object("if-none-match", "p/metadata.yaml", "apiVersion: v1\n");
  S3Backend backend(h.client, h.options());
  h.proxy.inject(R"({"mode": "respond", "count": 1, "method": "HEAD", "status": 404})");
  auto result = run(h.io, backend.create_metadata(kBody));
  REQUIRE(result.ok());
  CHECK(result.value() == CreateOutcome::AlreadyExists);  // moto's 412 on the conditional PUT
  CHECK(h.seen("PUT").size() == 1);
  CHECK(moto().get_object("if-none-match", "p/metadata.yaml") == "apiVersion: v1\n");

  // 409 ConditionalRequestConflict (a concurrent conditional write) that persists: AlreadyExists.
  S3Backend second(h.client, h.options("q"));
  h.proxy.inject(R"({"mode": "respond", "count": 1000, "method": "PUT", "status": 409,
      "body": "<Error><Code>ConditionalRequestConflict</Code><Message>busy</Message></Error>"})");
  auto conflict = run(h.io, second.create_metadata(kBody));
  REQUIRE(conflict.ok());
  CHECK(conflict.value() == CreateOutcome::AlreadyExists);
}

TEST_CASE("S3 wrong region (AuthorizationHeaderMalformed): switched, retried once, remembered") {
  Harness h("region-body");
  S3Backend backend(h.client, h.options());
  CHECK(backend.region() == "us-east-1");
  // Only a GET can carry the error body (a HEAD answer has none).
  h.proxy.inject(R"({"mode": "respond", "count": 1, "method": "GET", "status": 400, "body":
      "<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-nl-1'</Message><Region>eu-nl-1</Region><RequestId>R1</RequestId></Error>"})");
  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK_FALSE(state.value().exists);
  CHECK(backend.region() == "eu-nl-1");
  auto gets = h.seen("GET");
  REQUIRE(gets.size() == 2);
  CHECK(text(gets[0], "scope").find("/us-east-1/s3/") != std::string::npos);
  CHECK(text(gets[1], "scope").find("/eu-nl-1/s3/") != std::string::npos);

  // Remembered: the next calls sign for eu-nl-1 at once. The read just found the key absent, so
  // the create goes straight to its conditional PUT (no HEAD repeating that read).
  h.proxy.reset();
  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  auto requests = h.proxy.requests();
  REQUIRE(requests.size() == 1);
  CHECK(text(requests[0].as_object(), "method") == "PUT");
  for (const auto& entry : requests)
    CHECK(text(entry.as_object(), "scope").find("/eu-nl-1/s3/") != std::string::npos);

  // Only once: a second create (no read in between) checks with a HEAD again.
  h.proxy.reset();
  auto again = run(h.io, backend.create_metadata(kBody));
  REQUIRE(again.ok());
  CHECK(again.value() == CreateOutcome::AlreadyExists);
  REQUIRE(h.proxy.requests().size() == 1);
  CHECK(text(h.proxy.requests()[0].as_object(), "method") == "HEAD");
}

TEST_CASE("S3 wrong region (301 with x-amz-bucket-region on HEAD bucket): switched, a second refusal is reported") {
  Harness h("region-header");
  S3Backend backend(h.client, h.options());
  h.proxy.inject(R"({"mode": "respond", "count": 1, "method": "HEAD", "status": 301,
      "headers": {"x-amz-bucket-region": "ap-south-2"}})");
  auto ok = run(h.io, backend.check_access());
  REQUIRE(ok.ok());
  CHECK(backend.region() == "ap-south-2");

  // Only one correction per call: a store that keeps redirecting gets a clear permanent error.
  h.proxy.inject(R"({"mode": "respond", "count": 1000, "status": 301, "body":
      "<Error><Code>PermanentRedirect</Code><Message>moved</Message><Endpoint>region-header.s3.eu-west-3.amazonaws.com</Endpoint></Error>"})");
  auto refused = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(refused.ok());
  CHECK_FALSE(refused.error().transient);
  CHECK(refused.error().code == "PermanentRedirect");
  CHECK(refused.error().message.find("spec.storage.s3.region") != std::string::npos);
  CHECK(h.seen("GET").size() == 2);
}

TEST_CASE("S3 on AWS: virtual-hosted addressing, and the host follows a region correction") {
  Harness h("vhost-bucket");
  auto options = h.options("/backup/demo/");
  options.endpoint.clear();  // AWS
  options.connect_to = h.proxy.endpoint();
  S3Backend backend(h.client, options);
  CHECK(backend.identity() == "s3:https://s3.amazonaws.com/vhost-bucket/backup/demo");
  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(moto().get_object("vhost-bucket", "backup/demo/metadata.yaml") == kBody);
  auto puts = h.seen("PUT");
  REQUIRE(puts.size() == 1);
  CHECK(text(puts[0], "host") == "vhost-bucket.s3.us-east-1.amazonaws.com");
  CHECK(text(puts[0], "path") == "/backup/demo/metadata.yaml");

  h.proxy.reset();
  h.proxy.inject(R"({"mode": "respond", "count": 1, "status": 301, "headers": {"x-amz-bucket-region": "eu-west-1"}})");
  REQUIRE(run(h.io, backend.check_access()).ok());
  auto heads = h.seen("HEAD");
  REQUIRE(heads.size() == 2);
  CHECK(text(heads[1], "host") == "vhost-bucket.s3.eu-west-1.amazonaws.com");
  CHECK(text(heads[1], "path") == "/");
  CHECK(text(heads[1], "scope").find("/eu-west-1/s3/") != std::string::npos);

  // WipeOut on the virtual host too (listing at "/?list-type=2...").
  auto report = run(h.io, backend.wipe({}));
  REQUIRE(report.done());
  CHECK(report.removed == 1);
  CHECK(moto().list_keys("vhost-bucket").empty());
}

TEST_CASE("S3 on AWS: endpoint forms, dotted bucket names, the global endpoint") {
  Harness h("aws.dotted.bucket");
  moto().make_bucket("aws-forms");
  struct Case {
    std::string endpoint, bucket, region;
    std::string host, path, scope_region;
  };
  const std::vector<Case> cases = {
      // KubeStash's documented example: a regional endpoint, virtual-hosted.
      {"https://s3.us-west-1.amazonaws.com", "aws-forms", "us-west-1", "aws-forms.s3.us-west-1.amazonaws.com", "/",
       "us-west-1"},
      // The region named by the endpoint when the spec gives none; the legacy dash form too.
      {"https://s3.eu-central-1.amazonaws.com/", "aws-forms", "", "aws-forms.s3.eu-central-1.amazonaws.com", "/",
       "eu-central-1"},
      {"https://s3-ap-southeast-2.amazonaws.com", "aws-forms", "", "aws-forms.s3.ap-southeast-2.amazonaws.com", "/",
       "ap-southeast-2"},
      // The global endpoint: us-east-1.
      {"https://s3.amazonaws.com", "aws-forms", "", "aws-forms.s3.us-east-1.amazonaws.com", "/", "us-east-1"},
      // A dotted bucket cannot be a TLS-valid virtual host: path-style on the regional host.
      {"", "aws.dotted.bucket", "eu-west-1", "s3.eu-west-1.amazonaws.com", "/aws.dotted.bucket", "eu-west-1"},
      // Any other amazonaws.com host (dualstack, FIPS, VPC endpoints) is kept, with the bucket in front.
      {"https://s3.dualstack.us-east-2.amazonaws.com", "aws-forms", "",
       "aws-forms.s3.dualstack.us-east-2.amazonaws.com", "/", "us-east-2"},
  };
  for (const auto& c : cases) {
    INFO(c.endpoint + " " + c.bucket);
    h.proxy.reset();
    auto options = h.options();
    options.endpoint = c.endpoint;
    options.bucket = c.bucket;
    options.region = c.region;
    options.connect_to = h.proxy.endpoint();
    S3Backend backend(h.client, options);
    auto ok = run(h.io, backend.check_access());
    CHECK(ok.ok());
    auto heads = h.seen("HEAD");
    REQUIRE(heads.size() == 1);
    CHECK(text(heads[0], "host") == c.host);
    CHECK(text(heads[0], "path") == c.path);
    CHECK(text(heads[0], "scope").find("/" + c.scope_region + "/s3/") != std::string::npos);
  }
}

TEST_CASE("S3 WipeOut on a store without DeleteObjects deletes key by key") {
  Harness h("no-multi-delete");
  moto().put_objects("no-multi-delete", "p/obj-", 25);
  moto().put_object("no-multi-delete", "keep/me", "x");
  auto options = h.options();
  options.list_page_size = 10;
  options.max_connections = 4;
  S3Backend backend(h.client, options);
  REQUIRE(run(h.io, backend.create_metadata(kBody)).ok());
  h.proxy.inject(R"({"mode": "respond", "count": 1000, "method": "POST", "status": 501,
      "body": "<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>"})");
  auto report = run(h.io, backend.wipe({}));
  REQUIRE(report.done());
  CHECK(report.removed == 26);
  CHECK(moto().list_keys("no-multi-delete") == std::vector<std::string>{"keep/me"});
  CHECK(h.seen("POST").size() == 1);     // refused once, then remembered
  CHECK(h.seen("DELETE").size() == 26);  // metadata.yaml last, by DeleteObject too
}

TEST_CASE("S3 WipeOut splits a page into DeleteObjects batches sent side by side") {
  Harness h("batches");
  moto().put_objects("batches", "p/obj-", 300);
  moto().put_object("batches", "q/keep", "x");
  auto options = h.options();
  options.max_connections = 3;
  S3Backend backend(h.client, options);
  REQUIRE(run(h.io, backend.create_metadata(kBody)).ok());
  auto report = run(h.io, backend.wipe({}));
  REQUIRE(report.done());
  CHECK(report.removed == 301);
  CHECK(moto().list_keys("batches") == std::vector<std::string>{"q/keep"});
  CHECK(h.seen("POST").size() == 4);  // 300 keys, 3 at once: 3 batches of 100; then metadata.yaml
}

TEST_CASE("S3 WipeOut reports per-key DeleteObjects failures") {
  Harness h("delete-errors");
  moto().put_objects("delete-errors", "p/obj-", 3);
  S3Backend backend(h.client, h.options());
  REQUIRE(run(h.io, backend.create_metadata(kBody)).ok());
  h.proxy.inject(R"({"mode": "respond", "count": 1, "method": "POST", "status": 200, "body":
      "<DeleteResult><Error><Key>p/obj-00001</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>"})");
  auto result = run(h.io, backend.wipe({}));
  REQUIRE(result.error);
  CHECK_FALSE(result.error->transient);
  CHECK(result.error->code == "AccessDenied");
  CHECK(result.error->message.find("1 of 3 objects") != std::string::npos);
  CHECK(result.error->message.find("p/obj-00001") != std::string::npos);
  CHECK(result.removed == 2);  // what the store's answer says it deleted
  CHECK(moto().get_object("delete-errors", "p/metadata.yaml") == kBody);  // kept: the wipe did not finish

  // Nothing was deleted by the canned answer: a second WipeOut removes all three, then metadata.yaml.
  auto again = run(h.io, backend.wipe({}));
  REQUIRE(again.done());
  CHECK(again.removed == 4);
  CHECK(moto().list_keys("delete-errors").empty());
}

TEST_CASE("S3 AccessDenied names the bucket, the operation and the permission") {
  Harness h("denied");
  S3Backend backend(h.client, h.options());
  h.proxy.inject(R"({"mode": "respond", "count": 1, "method": "GET", "status": 403,
      "body": "<Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>REQ123</RequestId></Error>"})");
  auto result = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(result.ok());
  CHECK_FALSE(result.error().transient);
  CHECK(result.error().code == "AccessDenied");
  CHECK(result.error().message.find("`denied`") != std::string::npos);
  CHECK(result.error().message.find("read p/metadata.yaml") != std::string::npos);
  CHECK(result.error().message.find("s3:GetObject") != std::string::npos);
  CHECK(result.error().message.find("request id REQ123") != std::string::npos);
  CHECK(h.seen("GET").size() == 1);  // permanent: not retried
}

// Header injection through the credentials: a Secret value with a line break would add a header of
// its own to a request on a connection pooled with other tenants' requests. The S3 backend refuses
// such credentials before building any request: nothing reaches the server, and the error names
// the key and the position, never the value.
TEST_CASE("S3 credentials holding a line break never reach the server, and the error names the key") {
  Harness h("injection");
  struct Case {
    const char* key;
    std::string access_key_id, session_token;
    const char* expected;
  };
  const std::string id = moto().credentials().access_key_id;
  const Case cases[] = {
      {"AWS_ACCESS_KEY_ID", "AKIA\r\nX-Injected: yes", "",
       "AWS_ACCESS_KEY_ID contains a control character (at byte 4)"},
      {"AWS_SESSION_TOKEN", id, "FwoGZXIvYXdzE\nX-Injected: yes",
       "AWS_SESSION_TOKEN contains a control character (at byte 13)"},
      {"AWS_SESSION_TOKEN", id, std::string(8 * 1024 + 1, 'T'), "AWS_SESSION_TOKEN is longer than 8192 bytes"},
  };
  for (const auto& c : cases) {
    INFO(c.expected);
    auto options = h.options();
    options.access_key_id = c.access_key_id;
    options.session_token = c.session_token;
    S3Backend backend(h.client, options);
    auto read = run(h.io, backend.read_metadata());
    REQUIRE_FALSE(read.ok());
    CHECK_FALSE(read.error().transient);
    CHECK(read.error().code == "InvalidCredentials");
    CHECK_THAT(read.error().message, Catch::Contains(c.expected));
    CHECK(read.error().message.find("Injected") == std::string::npos);
    CHECK(read.error().message.find("FwoG") == std::string::npos);
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().code == "InvalidCredentials");
    CHECK_FALSE(run(h.io, backend.check_access()).ok());
  }
  CHECK(h.proxy.requests().empty());  // not one request reached the server
  CHECK(h.client.stats().connections_opened == 0);

  // The same backend with a clean key goes through the same proxy: the observation above is real.
  S3Backend clean(h.client, h.options());
  REQUIRE(run(h.io, clean.read_metadata()).ok());
  CHECK(h.seen("GET").size() == 1);
}

// A server's region hint is signed into the next request (the credential scope of Authorization):
// one that is not a region name is ignored, neither signed nor quoted.
TEST_CASE("S3 a region hint with a line break is not signed into the next request") {
  Harness h("region-inject");
  S3Backend backend(h.client, h.options());
  h.proxy.inject(R"({"mode": "respond", "count": 1, "method": "GET", "status": 400, "body":
      "<Error><Code>AuthorizationHeaderMalformed</Code><Message>wrong region</Message><Region>eu-nl-1&#13;&#10;X-Injected: yes</Region><RequestId>R1</RequestId></Error>"})");
  auto state = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(state.ok());
  CHECK(state.error().code == "AuthorizationHeaderMalformed");
  CHECK(state.error().message.find("Injected") == std::string::npos);
  CHECK(backend.region() == "us-east-1");
  CHECK(h.seen("GET").size() == 1);  // not retried with the server's "region"
}
