// gcs::TokenSource and gcs::TokenRegistry against the GCS test server's token endpoint and
// metadata server: caching until 60 s before expiry, one refresh in flight for many callers, a
// rejected token dropped, and which backends share a source.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storage/gcs_auth.hpp"
#include "storage/gcs_token.hpp"
#include "support/gcs_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;
using stowage::storage::testing::spawn;
using stowage::storage::gcs::TokenSource;
using test_support::GcsServer;

namespace {

gcs::ServiceAccountKey key_of(const std::string& json) {
  auto key = gcs::parse_service_account_key(json);
  REQUIRE(key.ok());
  return key.value();
}

struct Harness {
  boost::asio::io_context io;
  http::Client client{io.get_executor()};

  std::string token(gcs::TokenSource& source) {
    auto t = run(io, source.token(client, {}));
    REQUIRE(t.ok());
    return t.value();
  }
};

}  // namespace

TEST_CASE("gcs token: a token is reused until half its lifetime, then refreshed") {
  GcsServer server(GcsServer::Options::with_token_lifetime(2));  // fresh for one second
  Harness h;
  auto source = gcs::TokenSource::for_service_account(key_of(server.key_json()));
  std::string first = h.token(*source);
  CHECK(first.rfind("ya29.", 0) == 0);
  CHECK(h.token(*source) == first);
  CHECK(server.stat("token_exchanges") == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  std::string second = h.token(*source);
  CHECK(second != first);
  CHECK(server.stat("token_exchanges") == 2);
  CHECK(source->fetches() == 2);
}

TEST_CASE("gcs token: refreshed 5 minutes before expiry, or at half the lifetime when it is 10 minutes or less") {
  using std::chrono::seconds;
  CHECK(TokenSource::refresh_after(seconds(3600)) == std::chrono::minutes(55));
  CHECK(TokenSource::refresh_after(seconds(900)) == std::chrono::minutes(10));
  CHECK(TokenSource::refresh_after(seconds(600)) == seconds(300));
  CHECK(TokenSource::refresh_after(seconds(4)) == seconds(2));
  CHECK(TokenSource::refresh_after(seconds(1)) == std::chrono::milliseconds(500));
}

TEST_CASE("gcs token: concurrent callers share one exchange") {
  GcsServer server;
  Harness h;
  server.fault(R"({"mode":"delay","seconds":0.3,"count":1,"target":"token"})");  // keep the refresh in flight
  auto source = gcs::TokenSource::for_service_account(key_of(server.key_json()));
  std::vector<std::future<std::optional<BackendResult<std::string>>>> calls;
  for (int i = 0; i < 16; ++i) calls.push_back(spawn(h.io, source->token(h.client, {})));
  h.io.restart();
  h.io.run();
  std::set<std::string> tokens;
  for (auto& c : calls) {
    auto r = *c.get();
    REQUIRE(r.ok());
    tokens.insert(r.value());
  }
  CHECK(tokens.size() == 1);
  CHECK(server.stat("token_requests") == 1);
  CHECK(source->fetches() == 1);
}

TEST_CASE("gcs token: invalidate drops only the token that was rejected") {
  GcsServer server;
  Harness h;
  auto source = gcs::TokenSource::for_service_account(key_of(server.key_json()));
  std::string first = h.token(*source);
  source->invalidate("some-older-token");
  CHECK(h.token(*source) == first);
  source->invalidate(first);
  CHECK(h.token(*source) != first);
  CHECK(server.stat("token_exchanges") == 2);
}

TEST_CASE("gcs token: the metadata server's token") {
  GcsServer server;
  Harness h;
  auto source = gcs::TokenSource::for_metadata_server(server.host_port());
  CHECK(source->token_uri() == "http://" + server.host_port());
  std::string token = h.token(*source);
  CHECK(h.token(*source) == token);
  CHECK(server.stat("metadata_tokens") == 1);
  CHECK(source->principal() == "the metadata server's default service account");
}

TEST_CASE("gcs token: token endpoint errors are values with safe, actionable messages") {
  GcsServer server;
  Harness h;

  SECTION("another private key: invalid_grant, permanent") {
    auto source = gcs::TokenSource::for_service_account(key_of(server.wrong_key_json()));
    auto r = run(h.io, source->token(h.client, {}));
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.error().transient);
    CHECK(r.error().code == "InvalidGrant");
    CHECK(r.error().message.find("PRIVATE KEY") == std::string::npos);
    CHECK(r.error().message.find("eyJ") == std::string::npos);  // no JWT
  }
  SECTION("another client_email: invalid_grant naming the cause") {
    auto key = key_of(server.key_json());
    key.client_email = "someone-else@stowage-test.iam.gserviceaccount.com";
    auto r = run(h.io, gcs::TokenSource::for_service_account(key)->token(h.client, {}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message ==
          "GCS token exchange refused: check GOOGLE_SERVICE_ACCOUNT_JSON_KEY (Invalid email or User ID)");
  }
  SECTION("a token_uri the server does not answer to: the aud is wrong") {
    auto key = key_of(server.key_json());
    key.token_uri = server.endpoint() + "/token?x=1";
    auto r = run(h.io, gcs::TokenSource::for_service_account(key)->token(h.client, {}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "InvalidGrant");
    CHECK(r.error().message.find("aud") != std::string::npos);
  }
  SECTION("a lasting 503 is transient") {
    server.fault(R"({"mode":"status503","count":100,"target":"token","retry_after":0})");
    auto r = run(h.io, gcs::TokenSource::for_service_account(key_of(server.key_json()))->token(h.client, {}));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().transient);
    CHECK(r.error().code == "TokenExchangeUnavailable");
  }
}

TEST_CASE("gcs token: the registry shares a source per identity, and keeps it a while after its last user") {
  GcsServer server;
  gcs::TokenRegistry registry;
  auto key = key_of(server.key_json());
  auto a = registry.service_account(key);
  auto b = registry.service_account(key);
  CHECK(a == b);
  auto impostor = registry.service_account(key_of(server.wrong_key_json()));  // same email and id, other key
  CHECK(impostor != a);
  auto rotated_key = key;
  rotated_key.private_key_id = "rotated";
  CHECK(registry.service_account(rotated_key) != a);
  CHECK(registry.metadata_server("") == registry.metadata_server(""));
  CHECK(registry.metadata_server("") != registry.metadata_server("127.0.0.1:1"));

  // A backend made per reconcile and dropped after it keeps its token for the next one.
  TokenSource* first = a.get();
  a.reset();
  b.reset();
  CHECK(registry.service_account(key).get() == first);
}

TEST_CASE("gcs token: the registry forgets sources unused for its idle time") {
  GcsServer server;
  gcs::TokenRegistry registry(std::chrono::seconds(0));
  auto key = key_of(server.key_json());
  auto a = registry.service_account(key);
  std::weak_ptr<gcs::TokenSource> weak = a;
  registry.metadata_server("");  // a lookup sweeps
  CHECK_FALSE(weak.expired());   // still in use
  a.reset();
  registry.metadata_server("");
  CHECK(weak.expired());
}

// A token server is named inside a Secret (token_uri), so it may be anyone's: a token that would
// add a header of its own to every storage request (on connections pooled with other tenants') is
// refused, permanently, naming the endpoint and the position, and never cached.
TEST_CASE("gcs token: a token with a line break or a space is refused, never cached, never quoted") {
  GcsServer server;
  Harness h;
  auto source = gcs::TokenSource::for_service_account(key_of(server.key_json()));
  server.fault(R"({"mode":"token_suffix","suffix":"\r\nX-Injected: yes","count":1,"target":"token"})");
  auto injected = run(h.io, source->token(h.client, {}));
  REQUIRE_FALSE(injected.ok());
  CHECK_FALSE(injected.error().transient);
  CHECK(injected.error().code == "InvalidAccessToken");
  // "ya29.test-" and 32 characters of token_urlsafe(24): the line break is at byte 42.
  CHECK(injected.error().message == "the token endpoint " + server.token_uri() +
                                        " returned an access_token that contains a control character (at byte 42)");
  CHECK(h.token(*source).rfind("ya29.test-", 0) == 0);  // the next call exchanges again: nothing was cached

  server.fault(R"({"mode":"token_suffix","suffix":" other","count":1,"target":"token"})");
  source->invalidate(h.token(*source));
  auto spaced = run(h.io, source->token(h.client, {}));
  REQUIRE_FALSE(spaced.ok());
  CHECK_THAT(spaced.error().message, Catch::Contains("is not an RFC 6750 bearer token: the character at byte 42"));
  CHECK(spaced.error().message.find("ya29") == std::string::npos);

  auto metadata = gcs::TokenSource::for_metadata_server(server.host_port());
  server.fault(R"({"mode":"token_suffix","suffix":"\nX-Injected: yes","count":1,"target":"metadata"})");
  auto from_metadata = run(h.io, metadata->token(h.client, {}));
  REQUIRE_FALSE(from_metadata.ok());
  CHECK(from_metadata.error().code == "InvalidAccessToken");
  CHECK(from_metadata.error().message == "the GCS metadata server http://" + server.host_port() +
                                             " returned an access_token that contains a control character (at byte 42)");
}
