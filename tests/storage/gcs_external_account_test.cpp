// The controller's own GCS identity from GOOGLE_APPLICATION_CREDENTIALS of type external_account
// (workload identity federation), against the GCS test server: its STS endpoint checks the grant,
// the audience and the subject token (equal to what the test wrote to the file), its
// generateAccessToken checks the federated Bearer token, and its storage API accepts only the tokens
// it issued (with --require-impersonation, only impersonated ones).
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "storage/gcs_auth.hpp"
#include "storage/gcs_backend.hpp"
#include "storage/gcs_token.hpp"
#include "storage/metadata.hpp"
#include "support/gcs_server.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;
using stowage::storage::testing::spawn;
using test_support::GcsServer;

namespace {

constexpr const char* kAudience =
    "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/stowage/providers/kind";
constexpr const char* kSubjectToken = "eyJhbGciOiJSUzI1NiJ9.the-projected-ksa-token.c2lnbmF0dXJl";
constexpr const char* kImpersonated = "backup@stowage-test.iam.gserviceaccount.com";
constexpr const char* kSource = "GOOGLE_APPLICATION_CREDENTIALS file /test/adc.json (external_account)";

GcsServer::Options federation(int lifetime = 3600, bool impersonation = false) {
  GcsServer::Options o;
  o.sts_subject_token = kSubjectToken;
  o.sts_audience = kAudience;
  o.impersonate_email = kImpersonated;
  o.require_impersonation = impersonation;
  o.token_lifetime = lifetime;
  return o;
}

struct Harness {
  std::filesystem::path dir;
  boost::asio::io_context io;
  boost::asio::thread_pool files{1};
  http::Client client{io.get_executor()};

  Harness() {
    static int n = 0;
    dir = std::filesystem::temp_directory_path() /
          ("stowage-gcs-federation-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    std::filesystem::create_directories(dir);
  }
  ~Harness() {
    files.join();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  std::filesystem::path write(const std::string& name, const std::string& text) {
    auto path = dir / name;
    std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
    return path;
  }

  // The source GOOGLE_APPLICATION_CREDENTIALS would give, from the file's JSON.
  std::shared_ptr<gcs::TokenSource> source(const std::string& adc_json) {
    auto parsed = gcs::parse_application_credentials(adc_json, "GOOGLE_APPLICATION_CREDENTIALS file /test/adc.json");
    REQUIRE(parsed.ok());
    auto* account = std::get_if<gcs::ExternalAccount>(&parsed.value());
    REQUIRE(account != nullptr);
    return gcs::TokenSource::for_external_account(*account, kSource, files.get_executor());
  }

  GcsBackend backend(const GcsServer& server, std::shared_ptr<gcs::TokenSource> identity,
                     const std::string& prefix = "federated") {
    return GcsBackend(client, options(server, std::move(identity), prefix));
  }
  static GcsOptions options(const GcsServer& server, std::shared_ptr<gcs::TokenSource> identity,
                            const std::string& prefix) {
    GcsOptions o;
    o.bucket = "stowage";
    o.prefix = prefix;
    o.endpoint = server.endpoint();
    o.own_identity = std::move(identity);
    o.retry = RetryPolicy{3, std::chrono::milliseconds(10), std::chrono::milliseconds(50)};
    return o;
  }
};

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

}  // namespace

TEST_CASE("gcs external account: the subject token file traded at STS opens the storage API") {
  GcsServer server(federation());
  Harness h;
  auto token_file = h.write("token", std::string(kSubjectToken) + "\n");
  auto source = h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string()));
  auto backend = h.backend(server, source);

  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(server.object("stowage", "federated/metadata.yaml").has_value());
  CHECK(run(h.io, backend.check_access()).ok());
  CHECK(server.stat("sts_exchanges") == 1);  // the token is cached
  CHECK(server.stat("unauthenticated") == 0);
  CHECK(backend.principal() == std::string("the external account of ") + kSource);
}

TEST_CASE("gcs external account: a json subject token file, by subject_token_field_name") {
  GcsServer server(federation());
  Harness h;
  auto token_file = h.write("token.json", std::string(R"({"id_token":")") + kSubjectToken + R"(","other":"x"})");
  auto source =
      h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string(), "id_token"));
  auto backend = h.backend(server, source);
  CHECK(run(h.io, backend.check_access()).ok());
  CHECK(server.stat("sts_exchanges") == 1);

  // The field missing: the file and the field are named, its content is not.
  h.write("token.json", R"({"access_token":"not-this-one"})");
  source->invalidate(run(h.io, source->token(h.client, {})).value());
  auto missing = run(h.io, source->token(h.client, {}));
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message == std::string(kSource) + ": the subject token file " + token_file.string() +
                                       " has no string field `id_token`");
  CHECK(missing.error().message.find("not-this-one") == std::string::npos);
}

TEST_CASE("gcs external account: impersonation: the federated token buys the service account's token") {
  GcsServer server(federation(3600, /*impersonation=*/true));
  Harness h;
  auto token_file = h.write("token", kSubjectToken);

  SECTION("with service_account_impersonation_url the storage API accepts the impersonated token") {
    auto source = h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string(), "",
                                                                server.impersonation_url(kImpersonated)));
    auto backend = h.backend(server, source);
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE(created.ok());
    CHECK(server.object("stowage", "federated/metadata.yaml").has_value());
    CHECK(server.stat("sts_exchanges") == 1);
    CHECK(server.stat("impersonations") == 1);
    CHECK(server.stat("impersonations_refused") == 0);
    CHECK(server.stat("unauthenticated") == 0);
  }
  SECTION("a service account the pool may not impersonate: refused, naming the source") {
    auto source = h.source(test_support::external_account_json(
        kAudience, server.sts_url(), token_file.string(), "",
        server.impersonation_url("someone-else@stowage-test.iam.gserviceaccount.com")));
    auto r = run(h.io, source->token(h.client, {}));
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(r.error().transient);
    CHECK(r.error().code == "ImpersonationRefused");
    CHECK_THAT(r.error().message, Catch::Contains(kSource) && Catch::Contains("HTTP 403"));
    CHECK(r.error().message.find("federated-") == std::string::npos);  // no federated token in it
  }
  SECTION("without impersonation the federated token alone is refused by this storage API") {
    auto source = h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string()));
    auto backend = h.backend(server, source);
    auto r = run(h.io, backend.check_access());
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "Unauthenticated");
    CHECK_THAT(r.error().message, Catch::Contains("check " + std::string(kSource)));
  }
}

TEST_CASE("gcs external account: a wrong subject token is refused naming the source, never quoting the token, "
          "the file is re-read for every exchange") {
  GcsServer server(federation());
  Harness h;
  auto token_file = h.write("token", "eyJhbGciOiJSUzI1NiJ9.a-stale-token.c2ln");
  auto source = h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string()));
  auto backend = h.backend(server, source);

  auto refused = run(h.io, backend.check_access());
  REQUIRE_FALSE(refused.ok());
  CHECK_FALSE(refused.error().transient);
  CHECK(refused.error().code == "TokenExchangeRefused");
  CHECK_THAT(refused.error().message, Catch::Contains(kSource) && Catch::Contains("invalid_grant") &&
                                          Catch::Contains(token_file.string()));
  CHECK(refused.error().message.find("a-stale-token") == std::string::npos);
  CHECK(server.stat("sts_refused") == 1);

  // A wrong audience: STS names it (invalid_target); the file's path, not its content.
  auto other = h.source(test_support::external_account_json("//iam.googleapis.com/projects/1/other",
                                                           server.sts_url(), token_file.string()));
  auto wrong_audience = run(h.io, other->token(h.client, {}));
  REQUIRE_FALSE(wrong_audience.ok());
  CHECK_THAT(wrong_audience.error().message, Catch::Contains("invalid_target"));

  // The kubelet rotates the token: the next exchange reads the new one.
  h.write("token", kSubjectToken);
  CHECK(run(h.io, backend.check_access()).ok());
  CHECK(server.stat("sts_exchanges") == 1);

  // The file gone: a transient error naming it.
  std::filesystem::remove(token_file);
  source->invalidate(run(h.io, source->token(h.client, {})).value());
  auto gone = run(h.io, source->token(h.client, {}));
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == "SubjectTokenUnreadable");
  CHECK(gone.error().message == std::string(kSource) + ": the subject token file " + token_file.string() +
                                    " (credential_source.file) cannot be opened");
}

TEST_CASE("gcs external account: tokens that live 2 s are refreshed before they are used expired") {
  GcsServer server(federation(/*lifetime=*/2, /*impersonation=*/true));
  Harness h;
  auto token_file = h.write("token", kSubjectToken);
  auto source = h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string(), "",
                                                              server.impersonation_url(kImpersonated)));
  auto backend = h.backend(server, source);
  // A call every 200 ms for 4.4 s: the server refuses an expired token (401), so a token used past
  // its expiry would show up as an unauthenticated call (and a 401-driven retry).
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(4400);
  int calls = 0;
  while (std::chrono::steady_clock::now() < until) {
    auto r = run(h.io, backend.check_access());
    REQUIRE(r.ok());
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  CHECK(server.stat("unauthenticated") == 0);
  CHECK(server.stat("sts_exchanges") >= 3);  // refreshed at half-life, well before each token's end
  CHECK(server.stat("impersonations") == server.stat("sts_exchanges"));
  CHECK(server.stat("sts_exchanges") < calls);  // and reused in between
}

TEST_CASE("gcs external account: one exchange serves 100 storages") {
  GcsServer server(federation(3600, /*impersonation=*/true));
  Harness h;
  auto token_file = h.write("token", kSubjectToken);
  auto source = h.source(test_support::external_account_json(kAudience, server.sts_url(), token_file.string(), "",
                                                              server.impersonation_url(kImpersonated)));
  server.fault(R"({"mode":"delay","seconds":0.3,"count":1,"target":"token"})");  // keep the exchange in flight
  std::vector<std::unique_ptr<GcsBackend>> backends;
  for (int i = 0; i < 100; ++i)
    backends.push_back(std::make_unique<GcsBackend>(h.client, Harness::options(server, source, "s" + std::to_string(i))));
  std::vector<std::future<std::optional<BackendResult<CreateOutcome>>>> calls;
  for (auto& b : backends) calls.push_back(spawn(h.io, b->create_metadata(kBody)));
  h.io.restart();
  h.io.run();
  int created = 0;
  for (auto& c : calls) {
    auto r = c.get();
    REQUIRE(r.has_value());
    REQUIRE(r->ok());
    created += r->value() == CreateOutcome::Created ? 1 : 0;
  }
  CHECK(created == 100);
  CHECK(server.stat("sts_exchanges") == 1);
  CHECK(server.stat("impersonations") == 1);
  CHECK(source->fetches() == 1);
  CHECK(server.objects("stowage").size() == 100);
}
