// The controller's own GCS identity end to end through the real binary: `stowage init -f` with a GCS
// storage without a secretName and GOOGLE_APPLICATION_CREDENTIALS naming a service-account key file or
// an external_account file (workload identity federation). The GCS test server checks the JWT's RS256
// signature against the key's public half, STS's subject token and audience, and the impersonation
// call's Bearer token; its storage API takes only tokens it issued. Offline, every namespace may use
// the identity. And `stowage run` names at start the identity sources it found, never their values.
#include <catch2/catch.hpp>

#include <csignal>

#include "scoped_environment.hpp"
#include "support.hpp"
#include "support/gcs_server.hpp"

namespace {

using test_support::GcsServer;

constexpr const char* kAudience = "//iam.googleapis.com/projects/7/locations/global/workloadIdentityPools/k8s/providers/kind";
constexpr const char* kSubjectToken = "eyJhbGciOiJSUzI1NiJ9.e2e-projected-subject-token.c2ln";
constexpr const char* kImpersonated = "stowage-backup@p.iam.gserviceaccount.com";

// Every variable a cloud identity is read from, unset unless a test sets it.
const char* kIdentityVariables[] = {"GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST", "STORAGE_EMULATOR_HOST",
                                    "STOWAGE_GCS_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                    "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ROLE_ARN",
                                    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_EC2_METADATA_DISABLED",
                                    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"};

struct Rig {
  test::fs::path dir = test::temp_dir("gcs-identity-e2e");
  int runs = 0;

  static std::string manifest(const std::string& name) {
    return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
           ", namespace: demo}\nspec:\n  storage:\n    provider: gcs\n    gcs: {bucket: stowage, prefix: " + name +
           "}\n  deletionPolicy: Delete\n";
  }

  std::vector<std::pair<std::string, std::string>> environment(
      std::vector<std::pair<std::string, std::string>> variables) const {
    std::vector<std::pair<std::string, std::string>> all;
    for (const char* v : kIdentityVariables) all.emplace_back(v, "");
    all.emplace_back("AWS_EC2_METADATA_DISABLED", "true");
    all.emplace_back("HOME", dir.string());
    for (auto& v : variables) all.push_back(std::move(v));
    return all;
  }

  // `stowage init` of one storage `name` against `server`, with the variables given.
  test::RunResult init(const GcsServer& server, const std::string& name,
                       std::vector<std::pair<std::string, std::string>> variables) {
    variables.emplace_back("STOWAGE_GCS_ENDPOINT", server.endpoint());
    test::ScopedEnvironment scoped(environment(std::move(variables)));
    auto file = dir / (name + ".yaml");
    test::write_file(file, manifest(name));
    return test::run({"init", "-f", file.string(), "--state-dir", (dir / ("state-" + std::to_string(++runs))).string(),
                      "--timeout", "60s"},
                     dir, std::chrono::seconds(120));
  }

  test::fs::path write(const std::string& name, const std::string& text) {
    auto path = dir / name;
    test::write_file(path, text);
    return path;
  }
};

GcsServer::Options federation() {
  GcsServer::Options o;
  o.sts_subject_token = kSubjectToken;
  o.sts_audience = kAudience;
  o.impersonate_email = kImpersonated;
  o.require_impersonation = true;
  return o;
}

}  // namespace

TEST_CASE("gcs identity e2e: a service-account key file in GOOGLE_APPLICATION_CREDENTIALS", "[cloud]") {
  GcsServer server;
  Rig rig;
  auto adc = rig.write("key.json", server.key_json());
  auto ok = rig.init(server, "key-file", {{"GOOGLE_APPLICATION_CREDENTIALS", adc.string()}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/key-file\tReady"));
  CHECK(server.object("stowage", "key-file/metadata.yaml").has_value());
  CHECK(server.stat("token_exchanges") == 1);
  CHECK(server.stat("metadata_tokens") == 0);
  CHECK((ok.out + ok.err).find("PRIVATE KEY") == std::string::npos);

  // Another key under the same email and key id: the server's signature check refuses it.
  auto impostor = rig.write("impostor.json", server.wrong_key_json());
  auto refused = rig.init(server, "impostor", {{"GOOGLE_APPLICATION_CREDENTIALS", impostor.string()}});
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK_THAT(refused.out, Catch::Contains("demo/impostor\tNotReady") &&
                              Catch::Contains("GOOGLE_APPLICATION_CREDENTIALS file " + impostor.string()) &&
                              Catch::Contains("Invalid JWT Signature"));
  CHECK_FALSE(server.object("stowage", "impostor/metadata.yaml").has_value());
}

TEST_CASE("gcs identity e2e: an external_account file: STS exchange and impersonation", "[cloud]") {
  GcsServer server(federation());
  Rig rig;
  auto token = rig.write("subject-token", std::string(kSubjectToken) + "\n");
  auto adc = rig.write("external.json",
                       test_support::external_account_json(kAudience, server.sts_url(), token.string(), "",
                                                           server.impersonation_url(kImpersonated)));
  auto ok = rig.init(server, "federated", {{"GOOGLE_APPLICATION_CREDENTIALS", adc.string()}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/federated\tReady"));
  CHECK(server.object("stowage", "federated/metadata.yaml").has_value());
  CHECK(server.stat("sts_exchanges") == 1);
  CHECK(server.stat("impersonations") == 1);
  CHECK((ok.out + ok.err).find("e2e-projected-subject-token") == std::string::npos);

  // A wrong subject token: NotReady naming the source, the token nowhere in status or log.
  test::write_file(token, "eyJhbGciOiJSUzI1NiJ9.stale-subject-token.c2ln");
  auto refused = rig.init(server, "federated-refused", {{"GOOGLE_APPLICATION_CREDENTIALS", adc.string()}});
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK_THAT(refused.out, Catch::Contains("demo/federated-refused\tNotReady") &&
                              Catch::Contains("GOOGLE_APPLICATION_CREDENTIALS file " + adc.string() +
                                              " (external_account)") &&
                              Catch::Contains("invalid_grant"));
  CHECK((refused.out + refused.err).find("stale-subject-token") == std::string::npos);
  CHECK_FALSE(server.object("stowage", "federated-refused/metadata.yaml").has_value());
  CHECK(server.stat("sts_refused") >= 1);
}

TEST_CASE("run: the start-up log names the cloud identity sources found, never their values", "[cloud]") {
  Rig rig;
  auto manifests = rig.dir / "manifests";
  test::fs::create_directories(manifests);
  auto adc = rig.write("adc.json", R"({"type":"external_account"})");
  auto web_token = rig.write("aws-token", "aws-web-identity-token-value");
  auto azure_token = rig.write("azure-token", "azure-federated-token-value");
  auto log = rig.dir / "run.log";
  test::ScopedEnvironment scoped(rig.environment({{"GOOGLE_APPLICATION_CREDENTIALS", adc.string()},
                                                  {"AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/secret-role"},
                                                  {"AWS_WEB_IDENTITY_TOKEN_FILE", web_token.string()},
                                                  {"AZURE_CLIENT_ID", "00000000-1111-2222-3333-client-id"},
                                                  {"AZURE_TENANT_ID", "contoso-tenant.onmicrosoft.com"},
                                                  {"AZURE_FEDERATED_TOKEN_FILE", azure_token.string()}}));
  auto child = test::Child::spawn({"run", "--manifests", manifests.string(), "--state-dir",
                                   (rig.dir / "state").string(), "--log-file", log.string()},
                                  rig.dir / "out", rig.dir / "err");
  REQUIRE(test::eventually([&] { return test::count_of(log, "cloud identities found:") == 1; }));
  child.signal(SIGTERM);
  CHECK(child.wait() == 0);
  std::string text = test::read_file(log);
  CHECK_THAT(text, Catch::Contains("cloud identities found: aws web identity (AWS_ROLE_ARN, "
                                   "AWS_WEB_IDENTITY_TOKEN_FILE), gcs application credentials file "
                                   "(GOOGLE_APPLICATION_CREDENTIALS), gcs metadata server (not probed), azure "
                                   "workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE), "
                                   "azure managed identity (IMDS, AZURE_CLIENT_ID) (not probed)"));
  for (const char* secret : {"secret-role", "aws-web-identity-token-value", "azure-federated-token-value",
                             "client-id", "tenant", "external_account"})
    CHECK(text.find(secret) == std::string::npos);
}
