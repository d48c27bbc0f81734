// GcsBackend against the GCS test server (tests/servers/gcs_server.py), which verifies the
// service account's RS256 JWT with Python's `cryptography`, issues tokens, enforces them, and
// implements the JSON API calls with ifGenerationMatch, pagination and injectable faults.
//
// Each test starts its own server and its own TokenRegistry, so no token outlives its test.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <future>
#include <string>
#include <vector>

#include "storage/gcs_backend.hpp"
#include "storage/metadata.hpp"
#include "support/gcs_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;
using stowage::storage::testing::spawn;
using test_support::GcsServer;

namespace {

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

RetryPolicy fast_retries(int attempts = 5) {
  return RetryPolicy{attempts, std::chrono::milliseconds(10), std::chrono::milliseconds(50)};
}

struct Harness {
  boost::asio::io_context io;
  http::Client client;
  gcs::TokenRegistry tokens;
  explicit Harness(http::ClientOptions options = {}) : client(io.get_executor(), options) {}

  GcsBackend backend(GcsOptions options) { return GcsBackend(client, std::move(options), tokens); }

  template <class T>
  T operator()(boost::asio::awaitable<T> op) {
    return run(io, std::move(op));
  }
};

GcsOptions service_account(const GcsServer& server, std::string prefix = "demo", std::string bucket = "stowage") {
  GcsOptions o;
  o.bucket = std::move(bucket);
  o.prefix = std::move(prefix);
  o.service_account_json = server.key_json();
  o.endpoint = server.endpoint();
  o.tls.ca_pem = server.ca_pem();
  o.retry = fast_retries();
  return o;
}

std::string object_data(const GcsServer& server, const std::string& name, const std::string& bucket = "stowage") {
  auto o = server.object(bucket, name);
  REQUIRE(o.has_value());
  return std::string(o->at("data").as_string());
}

std::vector<std::string> names(std::initializer_list<const char*> list) { return {list.begin(), list.end()}; }

}  // namespace

TEST_CASE("gcs: identity and metadata location name the endpoint, bucket and cleaned prefix") {
  Harness h;
  GcsOptions o;
  o.bucket = "kubestash-demo";
  o.prefix = "/backup/demo/";
  o.service_account_json = "";
  auto b = h.backend(o);
  CHECK(b.identity() == "gcs:https://storage.googleapis.com/kubestash-demo/backup/demo");
  CHECK(b.metadata_location() == "gs://kubestash-demo/backup/demo/metadata.yaml");
  o.prefix = "";
  o.endpoint = "https://gcs.internal.example/";
  CHECK(h.backend(o).identity() == "gcs:https://gcs.internal.example/kubestash-demo/");
  CHECK(h.backend(o).metadata_location() == "gs://kubestash-demo/metadata.yaml");
  o.emulator = true;
  o.endpoint = "127.0.0.1:9023";
  CHECK(h.backend(o).identity() == "gcs:http://127.0.0.1:9023/kubestash-demo/");
}

TEST_CASE("gcs: service account: create once, then AlreadyExists with the object unchanged") {
  GcsServer server;
  Harness h;
  auto b = h.backend(service_account(server, "/backup/demo/"));

  auto created = h(b.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  auto stored = server.object("stowage", "backup/demo/metadata.yaml");
  REQUIRE(stored.has_value());
  CHECK(stored->at("data").as_string() == kBody);
  CHECK(stored->at("contentType").as_string() == "application/yaml");
  auto generation = stored->at("generation");

  auto again = h(b.create_metadata(render_metadata({"2030-01-01T00:00:00Z", "v9"})));
  REQUIRE(again.ok());
  CHECK(again.value() == CreateOutcome::AlreadyExists);
  CHECK(object_data(server, "backup/demo/metadata.yaml") == kBody);
  CHECK(server.object("stowage", "backup/demo/metadata.yaml")->at("generation") == generation);

  auto read = h(b.read_metadata());
  REQUIRE(read.ok());
  CHECK(read.value().exists);
  REQUIRE(read.value().meta.has_value());
  CHECK(read.value().meta->creation_timestamp == "2025-04-21T12:29:15Z");
  CHECK(read.value().meta->operator_version == "v0.1.0");
  CHECK(h(b.check_access()).ok());
  CHECK(server.stat("token_exchanges") == 1);
}

TEST_CASE("gcs: read_metadata: absent, and present but not a BackendMeta") {
  GcsServer server;
  Harness h;
  auto b = h.backend(service_account(server, "demo"));
  auto absent = h(b.read_metadata());
  REQUIRE(absent.ok());
  CHECK_FALSE(absent.value().exists);

  server.seed("stowage", {"demo/metadata.yaml"}, "apiVersion: v1\nkind: ConfigMap\n");
  auto invalid = h(b.read_metadata());
  REQUIRE(invalid.ok());
  CHECK(invalid.value().exists);
  CHECK_FALSE(invalid.value().meta.has_value());
  CHECK(invalid.value().invalid_reason.find("apiVersion") != std::string::npos);
  CHECK(h(b.create_metadata(kBody)).value() == CreateOutcome::AlreadyExists);  // kept, not clobbered
}

TEST_CASE("gcs: prefix layout matches KubeStash, and names are percent-encoded") {
  GcsServer server;
  Harness h;
  CHECK(h.backend(service_account(server, "/")).metadata_location() == "gs://stowage/metadata.yaml");
  for (auto [prefix, key] : {std::pair{"", "metadata.yaml"}, std::pair{"/backup/demo/", "backup/demo/metadata.yaml"},
                             std::pair{"a//b/./c", "a/b/c/metadata.yaml"},
                             std::pair{"odd name/with+plus%and?query#frag&amp=é",
                                       "odd name/with+plus%and?query#frag&amp=é/metadata.yaml"}}) {
    INFO("prefix " << prefix);
    auto b = h.backend(service_account(server, prefix));
    CHECK(b.metadata_location() == std::string("gs://stowage/") + key);
    REQUIRE(h(b.create_metadata(kBody)).value() == CreateOutcome::Created);
    CHECK(object_data(server, key) == kBody);
    auto read = h(b.read_metadata());
    REQUIRE(read.ok());
    CHECK(read.value().meta.has_value());
  }
}

TEST_CASE("gcs: WipeOut deletes exactly the prefix, across pages") {
  GcsServer server;
  Harness h;
  auto options = service_account(server, "/team/demo/");
  options.list_page_size = 3;
  auto b = h.backend(options);
  REQUIRE(h(b.create_metadata(kBody)).ok());
  std::vector<std::string> inside;
  for (int i = 0; i < 10; ++i) inside.push_back("team/demo/repo-" + std::to_string(i) + "/snapshot");
  inside.push_back("team/demo/deep/a/b/c");
  server.seed("stowage", inside);
  const auto outside =
      names({"team/demo2/metadata.yaml", "team/demox", "team/dem", "other/team/demo/x", "team/metadata.yaml"});
  server.seed("stowage", outside);

  auto wiped = h(b.wipe({}));
  REQUIRE(wiped.done());
  CHECK(wiped.removed == inside.size() + 1);
  auto left = server.objects("stowage");
  auto expected = outside;
  std::sort(expected.begin(), expected.end());
  CHECK(left == expected);
  CHECK(server.stat("api.list") >= 8);  // 12 objects, 3 a page, listed twice (other storages, then deletes)

  auto again = h(b.wipe({}));
  REQUIRE(again.refused);  // metadata.yaml went last: nothing proves ownership any more
  CHECK(again.refused->code == "NotOwned");
  CHECK_FALSE(h(b.read_metadata()).value().exists);
}

TEST_CASE("gcs: WipeOut with an empty prefix empties the bucket, a missing bucket has nothing to delete") {
  GcsServer::Options options;
  options.buckets = {"stowage", "neighbour"};
  GcsServer server(options);
  Harness h;
  server.seed("stowage", names({"a", "b/c"}));
  server.seed("stowage", names({"metadata.yaml"}), kBody);
  server.seed("neighbour", names({"a"}));
  auto b = h.backend(service_account(server, ""));
  auto all = h(b.wipe({}));
  REQUIRE(all.done());
  CHECK(all.removed == 3);
  CHECK(server.objects("stowage").empty());
  CHECK(server.objects("neighbour").size() == 1);

  auto missing = h.backend(service_account(server, "x", "no-such-bucket"));
  auto wiped = h(missing.wipe({}));
  CHECK(wiped.done());
  CHECK(wiped.removed == 0);
}

TEST_CASE("gcs: a key signed by the wrong private key is refused, permanently, naming the Secret's key") {
  GcsServer server;
  Harness h;
  auto options = service_account(server);
  options.service_account_json = server.wrong_key_json();
  auto b = h.backend(options);
  auto created = h(b.create_metadata(kBody));
  REQUIRE_FALSE(created.ok());
  const auto& e = created.error();
  CHECK_FALSE(e.transient);
  CHECK(e.code == "InvalidGrant");
  CHECK(e.message == "GCS token exchange refused: check GOOGLE_SERVICE_ACCOUNT_JSON_KEY (Invalid JWT Signature.)");
  CHECK(server.objects("stowage").empty());
  CHECK(server.stat("token_requests") == 1);  // a permanent refusal is not retried
  CHECK(server.stat("token_exchanges") == 0);

  SECTION("a refresh that fails is shared by the callers that waited for it") {
    std::vector<std::future<std::optional<BackendResult<MetadataState>>>> reads;
    for (int i = 0; i < 8; ++i) reads.push_back(spawn(h.io, b.read_metadata()));
    h.io.restart();
    h.io.run();
    for (auto& r : reads) {
      auto result = *r.get();
      REQUIRE_FALSE(result.ok());
      CHECK(result.error().code == "InvalidGrant");
    }
    CHECK(server.stat("token_requests") == 2);
  }
}

TEST_CASE("gcs: a bad key file is refused before any request, without echoing it") {
  GcsServer server;
  Harness h;
  auto options = service_account(server);
  std::string key = server.key_json();
  auto at = key.find("BEGIN PRIVATE KEY");
  key.replace(at + 60, 40, std::string(40, '!'));
  options.service_account_json = key;
  auto b = h.backend(options);
  auto r = h(b.check_access());
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().transient);
  CHECK(r.error().code == "InvalidServiceAccountKey");
  CHECK(r.error().message == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `private_key` is not a PEM RSA private key");
  CHECK(server.stat("token_requests") == 0);
  CHECK(server.stat("api.bucket") == 0);
}

TEST_CASE("gcs: the token is exchanged once for many calls and many backends, and concurrent callers share it") {
  GcsServer server;
  Harness h;
  auto first = h.backend(service_account(server, "one"));
  auto second = h.backend(service_account(server, "two"));

  std::vector<std::future<std::optional<BackendResult<CreateOutcome>>>> creates;
  for (int i = 0; i < 8; ++i) creates.push_back(spawn(h.io, (i % 2 ? first : second).create_metadata(kBody)));
  h.io.restart();
  h.io.run();
  int created = 0;
  for (auto& c : creates) {
    auto r = *c.get();
    REQUIRE(r.ok());
    created += r.value() == CreateOutcome::Created;
  }
  CHECK(created == 2);  // one per prefix; the racing others saw AlreadyExists
  for (int i = 0; i < 5; ++i) {
    REQUIRE(h(first.read_metadata()).ok());
    REQUIRE(h(second.check_access()).ok());
  }
  CHECK(server.stat("token_exchanges") == 1);
  CHECK(server.stat("unauthenticated") == 0);
}

TEST_CASE("gcs: a backend made for every reconcile still reuses the token") {
  GcsServer server;
  Harness h;
  for (int i = 0; i < 3; ++i) {
    auto b = h.backend(service_account(server));
    REQUIRE(h(b.check_access()).ok());
  }
  CHECK(server.stat("token_exchanges") == 1);
}

TEST_CASE("gcs: a token the server stops accepting (401) is replaced once") {
  GcsServer server;
  Harness h;
  auto b = h.backend(service_account(server));
  REQUIRE(h(b.check_access()).ok());
  server.revoke_tokens();
  REQUIRE(h(b.create_metadata(kBody)).ok());
  CHECK(server.stat("token_exchanges") == 2);
  CHECK(server.stat("unauthenticated") == 1);
}

TEST_CASE("gcs: metadata-server token mode (workload identity)") {
  GcsServer server;
  Harness h;
  GcsOptions o;
  o.bucket = "stowage";
  o.prefix = "wi";
  o.endpoint = server.endpoint();
  o.metadata_host = server.host_port();
  o.retry = fast_retries();
  auto b = h.backend(o);
  CHECK(b.principal() == "the metadata server's default service account");
  REQUIRE(h(b.create_metadata(kBody)).value() == CreateOutcome::Created);
  REQUIRE(h(b.read_metadata()).value().meta.has_value());
  auto wiped = h(b.wipe({}));
  CHECK(wiped.done());
  CHECK(wiped.removed == 1);
  CHECK(server.stat("metadata_tokens") == 1);
  CHECK(server.stat("token_exchanges") == 0);

  SECTION("an unreachable metadata server is transient and says what to set up") {
    o.metadata_host = "127.0.0.1:" + std::to_string(test_support::free_port());
    o.retry = fast_retries(2);
    auto unreachable = h.backend(o);
    auto r = h(unreachable.check_access());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().transient);
    CHECK(r.error().code == "ConnectFailed");
    CHECK(r.error().message.find("GCS metadata server http://" + o.metadata_host + " unreachable") == 0);
    CHECK(r.error().message.find("secretName") != std::string::npos);
  }
}

TEST_CASE("gcs: emulator mode sends no credentials") {
  GcsServer server(GcsServer::Options::without_auth());
  Harness h;
  GcsOptions o;
  o.bucket = "stowage";
  o.prefix = "emu";
  o.emulator = true;
  o.endpoint = server.host_port();             // STORAGE_EMULATOR_HOST's usual form: no scheme means http
  o.service_account_json = server.key_json();  // ignored in emulator mode
  auto b = h.backend(o);
  REQUIRE(h(b.create_metadata(kBody)).value() == CreateOutcome::Created);
  REQUIRE(h(b.check_access()).ok());
  REQUIRE(h(b.read_metadata()).value().exists);
  auto wiped = h(b.wipe({}));
  CHECK(wiped.done());
  CHECK(wiped.removed == 1);
  CHECK(server.stat("auth_headers") == 0);
  CHECK(server.stat("token_requests") == 0);
  CHECK(server.stat("metadata_tokens") == 0);
}

TEST_CASE("gcs: HTTPS with the test CA, for the API and the token endpoint on the same origin") {
  GcsServer server(GcsServer::Options::with_tls());
  Harness h;
  auto b = h.backend(service_account(server));
  REQUIRE(h(b.create_metadata(kBody)).value() == CreateOutcome::Created);
  CHECK(server.stat("token_exchanges") == 1);

  auto untrusted = service_account(server, "other");
  untrusted.tls.ca_pem.clear();
  gcs::TokenRegistry fresh;
  GcsBackend b2(h.client, untrusted, fresh);
  auto r = h(b2.check_access());
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().transient);
  CHECK(r.error().code == "TlsVerifyFailed");
}

TEST_CASE("gcs: a 503 burst is retried to success, a lasting one is transient") {
  GcsServer server;
  Harness h;
  auto b = h.backend(service_account(server));
  REQUIRE(h(b.check_access()).ok());
  server.fault(R"({"mode":"status503","count":3})");
  auto created = h(b.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(server.stat("faults_served") == 3);

  server.fault(R"({"mode":"status503","count":100,"retry_after":0})");
  auto read = h(b.read_metadata());
  REQUIRE_FALSE(read.ok());
  CHECK(read.error().transient);
  CHECK(read.error().code == "Unavailable");
  CHECK(read.error().message ==
        "GCS answered the read of gs://stowage/demo/metadata.yaml with HTTP 503: injected fault");
  CHECK(read.error().retry_after == std::chrono::milliseconds(0));
  CHECK(server.stat("faults_served") == 3 + 5);
}

TEST_CASE("gcs: a token endpoint 503 burst is retried too") {
  GcsServer server;
  Harness h;
  server.fault(R"({"mode":"status503","count":2,"target":"token"})");
  auto b = h.backend(service_account(server));
  REQUIRE(h(b.check_access()).ok());
  CHECK(server.stat("token_requests") == 3);
  CHECK(server.stat("token_exchanges") == 1);
}

TEST_CASE("gcs: a reply slower than the request timeout is a transient Timeout") {
  GcsServer server;
  http::ClientOptions client_options;
  client_options.request_timeout = std::chrono::milliseconds(300);
  Harness h(client_options);
  auto options = service_account(server);
  options.retry = fast_retries(2);
  auto b = h.backend(options);
  REQUIRE(h(b.check_access()).ok());  // token fetched before the delays start
  server.fault(R"({"mode":"delay","seconds":1.5,"count":2})");
  auto started = std::chrono::steady_clock::now();
  auto r = h(b.read_metadata());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().transient);
  CHECK(r.error().code == "Timeout");
  CHECK(r.error().message.find("GCS read of gs://stowage/demo/metadata.yaml: request to") == 0);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(3));
}

TEST_CASE("gcs: permission and missing-bucket errors are permanent and say what to fix") {
  GcsServer::Options options;
  options.forbidden_buckets = {"locked"};
  options.objects_only_buckets = {"objects-only"};
  GcsServer server(options);
  Harness h;

  auto locked = h.backend(service_account(server, "demo", "locked"));
  for (auto r : {h(locked.check_access()).error(), h(locked.create_metadata(kBody)).error()}) {
    CHECK_FALSE(r.transient);
    CHECK(r.code == "PermissionDenied");
    CHECK(r.message.find("GCS denied service account `stowage-test@stowage-test.iam.gserviceaccount.com` access to "
                         "bucket `locked` (HTTP 403: ") == 0);
    CHECK(r.message.find("roles/storage.objectAdmin") != std::string::npos);
  }

  auto missing = h.backend(service_account(server, "demo", "nope"));
  auto created = h(missing.create_metadata(kBody));
  REQUIRE_FALSE(created.ok());
  CHECK_FALSE(created.error().transient);
  CHECK(created.error().code == "BucketNotFound");
  CHECK(created.error().message == "GCS bucket `nope` does not exist");
  CHECK(h(missing.check_access()).error().message == "GCS bucket `nope` does not exist");
  CHECK(h(missing.read_metadata()).error().code == "BucketNotFound");

  // roles/storage.objectAdmin cannot read bucket metadata; access is then proven by a listing.
  auto objects_only = h.backend(service_account(server, "demo", "objects-only"));
  CHECK(h(objects_only.check_access()).ok());
  CHECK(h(objects_only.create_metadata(kBody)).value() == CreateOutcome::Created);
}

TEST_CASE("gcs: an unreachable endpoint is transient, a bad one is permanent") {
  Harness h;
  GcsOptions o;
  o.bucket = "stowage";
  o.emulator = true;
  o.endpoint = "http://127.0.0.1:" + std::to_string(test_support::free_port());
  o.retry = fast_retries(2);
  auto r = h(h.backend(o).check_access());
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().transient);
  CHECK(r.error().code == "ConnectFailed");

  o.endpoint = "ftp://example.com";
  auto bad = h(h.backend(o).check_access());
  REQUIRE_FALSE(bad.ok());
  CHECK_FALSE(bad.error().transient);
  CHECK(bad.error().code == "InvalidEndpoint");
}

// The issue's case: a token server answering `ya29.tok\r\nX-Injected: yes`. The storage request
// must not carry the smuggled header; it is not sent at all, and the storage says why.
TEST_CASE("gcs: a token with a line break never becomes a header: no storage request is sent") {
  GcsServer server;
  Harness h;
  auto b = h.backend(service_account(server));
  server.fault(R"({"mode":"token_suffix","suffix":"\r\nX-Injected: yes","count":1,"target":"token"})");
  auto r = h(b.read_metadata());
  REQUIRE_FALSE(r.ok());
  CHECK_FALSE(r.error().transient);
  CHECK(r.error().code == "InvalidAccessToken");
  CHECK_THAT(r.error().message, Catch::Contains("the token endpoint " + server.token_uri() +
                                                " returned an access_token that contains a control character"));
  CHECK(r.error().message.find("Injected") == std::string::npos);
  CHECK(server.stat("injected") == 0);
  CHECK(server.stat("api.read") == 0);
  CHECK(server.stat("auth_headers") == 0);

  SECTION("the metadata server's token too") {
    GcsOptions o;
    o.bucket = "stowage";
    o.prefix = "wi";
    o.endpoint = server.endpoint();
    o.metadata_host = server.host_port();
    o.retry = fast_retries();
    auto wi = h.backend(o);
    server.fault(R"({"mode":"token_suffix","suffix":"\r\nX-Injected: yes","count":1,"target":"metadata"})");
    auto m = h(wi.check_access());
    REQUIRE_FALSE(m.ok());
    CHECK(m.error().code == "InvalidAccessToken");
    CHECK(server.stat("injected") == 0);
    CHECK(server.stat("api.bucket") == 0);
  }
}
