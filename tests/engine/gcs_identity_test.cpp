// BackendFactory::make_gcs with the controller's own identity from GOOGLE_APPLICATION_CREDENTIALS,
// against the GCS test server: a storage without secretName gets the file's identity only in a
// namespace --ambient-credentials-namespaces allows; one token source (one exchange) serves every
// storage; a broken file is reported naming the file, never replaced by the metadata server.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/http_client.hpp"
#include "engine/backends.hpp"
#include "engine/manifests.hpp"
#include "storage/metadata.hpp"
#include "support.hpp"
#include "support/gcs_server.hpp"

using namespace stowage;
using namespace stowage::engine;
using test_support::GcsServer;

namespace {

constexpr const char* kAudience = "//iam.googleapis.com/projects/9/locations/global/workloadIdentityPools/w/providers/p";
constexpr const char* kSubjectToken = "eyJhbGciOiJSUzI1NiJ9.engine-subject-token.c2ln";

struct Rig {
  test::fs::path dir = test::temp_dir("gcs-identity");
  boost::asio::io_context io;
  boost::asio::thread_pool pool{2};
  http::Client http{io.get_executor()};
  std::unique_ptr<BackendFactory> factory;

  ~Rig() { pool.join(); }

  // The factory as `stowage run` makes it, with GOOGLE_APPLICATION_CREDENTIALS holding `adc_json`.
  void start(const GcsServer& server, const std::string& adc_json, std::vector<std::string> allowed) {
    CloudSettings cloud;
    cloud.gcs_endpoint = server.endpoint();
    cloud.gcs_application_credentials = {(dir / "adc.json").string(), adc_json, {}};
    cloud.ambient = AmbientCredentialsPolicy::only(std::move(allowed));
    factory = std::make_unique<BackendFactory>(pool, LocalSettings{dir, {}}, http, cloud);
  }

  kube::BackupStorage storage(const std::string& ns, const std::string& name) {
    auto contents = parse_manifest_text(
        "test.yaml", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
                         ", namespace: " + ns + "}\nspec:\n  storage:\n    provider: gcs\n    gcs: {bucket: stowage, "
                         "prefix: " + ns + "/" + name + "}\n  deletionPolicy: Delete\n");
    REQUIRE(contents.problems.empty());
    REQUIRE(contents.storages.size() == 1);
    return contents.storages.front().object;
  }

  template <class T>
  T await(boost::asio::awaitable<T> op) {
    auto f = boost::asio::co_spawn(io, std::move(op), boost::asio::use_future);
    io.restart();
    io.run();
    return f.get();
  }
};

const std::string kBody = storage::render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

}  // namespace

TEST_CASE("gcs identity: a key file in GOOGLE_APPLICATION_CREDENTIALS serves storages without secretName, only in "
          "allowed namespaces") {
  GcsServer server;
  Rig rig;
  rig.start(server, server.key_json(), {"ops"});

  auto refused = rig.factory->make(rig.storage("demo", "taker"), nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error() ==
        "spec.storage.gcs.secretName is empty and namespace demo may not use the controller's own credentials: set "
        "secretName, or add demo to --ambient-credentials-namespaces");

  auto made = rig.factory->make(rig.storage("ops", "backup"), nullptr);
  REQUIRE(made.ok());
  auto created = rig.await(made.value()->create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(server.object("stowage", "ops/backup/metadata.yaml").has_value());
  CHECK(server.stat("token_exchanges") == 1);  // the JWT bearer grant, checked against the key's public half
  CHECK(server.stat("metadata_tokens") == 0);  // the file comes first, not the metadata server
  CHECK(server.stat("api.upload") == 1);
}

TEST_CASE("gcs identity: an external account: one exchange serves 100 storages made by the factory") {
  GcsServer::Options options;
  options.sts_subject_token = kSubjectToken;
  options.sts_audience = kAudience;
  options.impersonate_email = "backup@p.iam.gserviceaccount.com";
  options.require_impersonation = true;
  GcsServer server(options);
  Rig rig;
  auto token_file = rig.dir / "token";
  test::write_file(token_file, kSubjectToken);
  rig.start(server,
            test_support::external_account_json(kAudience, server.sts_url(), token_file.string(), "",
                                                server.impersonation_url("backup@p.iam.gserviceaccount.com")),
            {"*"});
  server.fault(R"({"mode":"delay","seconds":0.3,"count":1,"target":"token"})");  // keep the exchange in flight

  std::vector<std::unique_ptr<storage::Backend>> backends;
  for (int i = 0; i < 100; ++i) {
    auto made = rig.factory->make(rig.storage("team-" + std::to_string(i % 7), "s" + std::to_string(i)), nullptr);
    REQUIRE(made.ok());
    backends.push_back(std::move(made.value()));
  }
  std::vector<std::future<storage::BackendResult<storage::CreateOutcome>>> calls;
  for (auto& b : backends) calls.push_back(boost::asio::co_spawn(rig.io, b->create_metadata(kBody), boost::asio::use_future));
  rig.io.restart();
  rig.io.run();
  for (auto& c : calls) REQUIRE(c.get().ok());
  CHECK(server.stat("sts_exchanges") == 1);
  CHECK(server.stat("impersonations") == 1);
  CHECK(server.objects("stowage").size() == 100);
}

TEST_CASE("gcs identity: a broken GOOGLE_APPLICATION_CREDENTIALS file is named, never skipped for the metadata "
          "server") {
  GcsServer server;
  Rig rig;
  rig.start(server, R"({"type":"authorized_user","refresh_token":"1//do-not-print"})", {"*"});
  auto made = rig.factory->make(rig.storage("demo", "broken"), nullptr);
  REQUIRE_FALSE(made.ok());
  CHECK_THAT(made.error(), Catch::StartsWith("GOOGLE_APPLICATION_CREDENTIALS file " + (rig.dir / "adc.json").string() +
                                             ": field `type` is neither `service_account` nor `external_account`"));
  CHECK(made.error().find("do-not-print") == std::string::npos);
  CHECK(server.stat("metadata_tokens") == 0);
}
