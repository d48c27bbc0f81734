// The AWS default chain end to end through the real binary: `stowage init -f` with an S3 storage
// without a secretName, the controller's identity coming from web identity (IRSA), container
// credentials (EKS Pod Identity: full URI + token file), IMDSv2, or a shared config profile. Each
// identity server (tests/servers/aws_identity_server.py) checks the token or header it is given and
// hands out temporary credentials from moto's signed AssumeRole, so moto (auth on) verifies key,
// secret and session token on every S3 request. Offline, every namespace may use the identity.
#include <catch2/catch.hpp>

#include "scoped_environment.hpp"
#include "support.hpp"
#include "support/aws_identity_server.hpp"
#include "support/moto_server.hpp"

namespace {

using test_support::AwsIdentityServer;
using test_support::MotoServer;

// Every variable the chain reads, unset unless a test sets it: the test machine's own AWS setup
// never leaks in.
const char* kChainVariables[] = {"AWS_ACCESS_KEY_ID",
                                 "AWS_SECRET_ACCESS_KEY",
                                 "AWS_SESSION_TOKEN",
                                 "AWS_PROFILE",
                                 "AWS_DEFAULT_PROFILE",
                                 "AWS_SHARED_CREDENTIALS_FILE",
                                 "AWS_CONFIG_FILE",
                                 "AWS_ROLE_ARN",
                                 "AWS_WEB_IDENTITY_TOKEN_FILE",
                                 "AWS_ROLE_SESSION_NAME",
                                 "AWS_ENDPOINT_URL",
                                 "AWS_ENDPOINT_URL_STS",
                                 "AWS_STS_REGIONAL_ENDPOINTS",
                                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                 "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                                 "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                                 "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                 "AWS_EC2_METADATA_SERVICE_ENDPOINT",
                                 "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                                 "AWS_EC2_METADATA_DISABLED",
                                 "AWS_REGION",
                                 "AWS_DEFAULT_REGION"};

struct Rig {
  test::fs::path dir = test::temp_dir("aws-identity");
  MotoServer moto;
  int runs = 0;

  Rig() { moto.make_bucket("aws-identity"); }

  std::string manifest(const std::string& name) const {
    return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
           ", namespace: demo}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: " + moto.endpoint() +
           ", bucket: aws-identity, region: us-east-1, prefix: " + name + "}\n  deletionPolicy: Delete\n";
  }

  // `stowage init` of one storage `name`, with the chain's variables as given (all others unset,
  // instance metadata off unless given, HOME in the test's folder).
  test::RunResult init(const std::string& name, std::vector<std::pair<std::string, std::string>> variables) {
    std::vector<std::pair<std::string, std::string>> all;
    for (const char* v : kChainVariables) all.emplace_back(v, "");
    all.emplace_back("AWS_EC2_METADATA_DISABLED", "true");
    all.emplace_back("HOME", dir.string());
    for (auto& v : variables) all.push_back(std::move(v));
    test::ScopedEnvironment scoped(all);
    auto file = dir / (name + ".yaml");
    test::write_file(file, manifest(name));
    return test::run({"init", "-f", file.string(), "--state-dir", (dir / ("state-" + std::to_string(++runs))).string(),
                      "--timeout", "60s"},
                     dir, std::chrono::seconds(120));
  }

  bool initialized(const std::string& name) const {
    return moto.get_object("aws-identity", name + "/metadata.yaml").has_value();
  }
};

}  // namespace

TEST_CASE("aws identity e2e: IRSA web identity through STS, the credentials checked by moto", "[cloud]") {
  Rig rig;
  auto token = rig.dir / "irsa-token";
  test::write_file(token, "eyJhbGciOi.the-projected-token.sig\n");
  AwsIdentityServer sts(rig.moto, rig.dir, {"sts", token});

  auto ok = rig.init("irsa", {{"AWS_ROLE_ARN", MotoServer::role_arn()},
                              {"AWS_WEB_IDENTITY_TOKEN_FILE", token.string()},
                              {"AWS_ENDPOINT_URL_STS", sts.url()}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/irsa\tReady"));
  CHECK(rig.initialized("irsa"));
  CHECK(sts.exchanges() == 1);
  CHECK_THAT(ok.err + ok.out, Catch::Contains("AWS identity sources found: web identity (AWS_ROLE_ARN, "
                                              "AWS_WEB_IDENTITY_TOKEN_FILE); S3 storages without a secretName use "
                                              "web identity"));
  CHECK((ok.out + ok.err).find("the-projected-token") == std::string::npos);

  // A token STS refuses: NotReady, the source and the STS code named, the token nowhere.
  auto wrong = rig.dir / "wrong-token";
  test::write_file(wrong, "eyJhbGciOi.a-stale-token.sig");
  auto refused = rig.init("irsa-refused", {{"AWS_ROLE_ARN", MotoServer::role_arn()},
                                           {"AWS_WEB_IDENTITY_TOKEN_FILE", wrong.string()},
                                           {"AWS_ENDPOINT_URL_STS", sts.url()}});
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK_THAT(refused.out, Catch::Contains("demo/irsa-refused\tNotReady") && Catch::Contains("web identity") &&
                              Catch::Contains("InvalidIdentityToken"));
  CHECK((refused.out + refused.err).find("a-stale-token") == std::string::npos);
  CHECK_FALSE(rig.initialized("irsa-refused"));
}

TEST_CASE("aws identity e2e: EKS Pod Identity container credentials, full URI and token file", "[cloud]") {
  Rig rig;
  auto token = rig.dir / "pod-identity-token";
  test::write_file(token, "pod-identity-authorization-value\n");
  AwsIdentityServer container(rig.moto, rig.dir, {"container", token});

  auto ok = rig.init("pod", {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", container.url() + "/v1/credentials"},
                             {"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token.string()}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/pod\tReady"));
  CHECK(rig.initialized("pod"));
  CHECK(container.exchanges() == 1);
  CHECK((ok.out + ok.err).find("pod-identity-authorization-value") == std::string::npos);

  // Without the token: the endpoint refuses, the storage says which source and which variable.
  auto refused = rig.init("pod-refused", {{"AWS_CONTAINER_CREDENTIALS_FULL_URI", container.url() + "/v1/credentials"}});
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK_THAT(refused.out, Catch::Contains("demo/pod-refused\tNotReady") && Catch::Contains("container credentials") &&
                              Catch::Contains("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"));
  CHECK(container.refused() >= 1);
}

TEST_CASE("aws identity e2e: instance metadata IMDSv2", "[cloud]") {
  Rig rig;
  AwsIdentityServer imds(rig.moto, rig.dir, {"imds", {}});

  auto ok = rig.init("imds", {{"AWS_EC2_METADATA_DISABLED", ""}, {"AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/imds\tReady"));
  CHECK(rig.initialized("imds"));
  CHECK(imds.exchanges() == 1);
  CHECK(imds.refused() == 0);  // no IMDSv1 request (a GET without a session token) was ever made

  // Turned off, and no other source: NotReady, saying what would give it an identity.
  auto none = rig.init("imds-off", {});
  CHECK(none.code == 1);
  CHECK_THAT(none.out, Catch::Contains("demo/imds-off\tNotReady") && Catch::Contains("no AWS identity of its own"));
  CHECK_THAT(none.err + none.out, Catch::Contains("AWS identity: no source found"));
}

TEST_CASE("aws identity e2e: shared files: a config profile with a web identity role, and static keys", "[cloud]") {
  Rig rig;
  auto token = rig.dir / "profile-token";
  test::write_file(token, "profile-web-identity-token");
  AwsIdentityServer sts(rig.moto, rig.dir, {"sts", token});
  auto config = rig.dir / "aws-config";
  test::write_file(config, "[default]\nregion = us-east-1\n\n[profile backup]\nrole_arn = " + MotoServer::role_arn() +
                               "\nweb_identity_token_file = " + token.string() + "\nrole_session_name = stowage-e2e\n");

  auto ok =
      rig.init("profile",
               {{"AWS_CONFIG_FILE", config.string()}, {"AWS_PROFILE", "backup"}, {"AWS_ENDPOINT_URL_STS", sts.url()}});
  INFO(ok.out << ok.err);
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/profile\tReady"));
  CHECK(rig.initialized("profile"));
  CHECK(sts.exchanges() == 1);
  CHECK_THAT(ok.err + ok.out, Catch::Contains("use shared files profile `backup`"));

  // The default profile of ~/.aws/credentials ($HOME is the test folder) with the IAM user's keys.
  const auto& c = rig.moto.credentials();
  test::write_file(rig.dir / ".aws" / "credentials", "[default]\naws_access_key_id = " + c.access_key_id +
                                                         "\naws_secret_access_key = " + c.secret_access_key + "\n");
  auto keys = rig.init("profile-keys", {});
  INFO(keys.out << keys.err);
  CHECK(keys.code == 0);
  CHECK_THAT(keys.out, Catch::Contains("demo/profile-keys\tReady"));
  CHECK(rig.initialized("profile-keys"));
  CHECK((keys.out + keys.err).find(c.secret_access_key) == std::string::npos);

  // AWS_PROFILE naming a profile neither file has: NotReady, saying so (not another identity).
  auto missing = rig.init("profile-missing", {{"AWS_PROFILE", "nope"}, {"AWS_CONFIG_FILE", config.string()}});
  CHECK(missing.code == 1);
  CHECK_THAT(missing.out, Catch::Contains("demo/profile-missing\tNotReady") && Catch::Contains("profile `nope`"));
}
