// Azure storages without an account key, end to end through the real binary, against Azurite with
// OAuth on (HTTPS, `--oauth basic`: it checks each bearer token's audience, issuer and lifetime) and
// tests/servers/azure_token_server.py as Microsoft Entra (checking tenant, client id, grant, scope and
// the federated assertion or the client secret) or as IMDS (checking `Metadata: true`). stowage trusts
// Azurite's test CA through SSL_CERT_FILE (OpenSSL's default verify paths) and reaches it through
// --azure-endpoint with the {account} placeholder.
//  - offline (`stowage init -f`, every namespace may use the identity): workload identity, managed
//    identity and a Secret's service principal; a refused assertion; 100 storages, one exchange;
//  - Kubernetes mode: only the namespaces --ambient-credentials-namespaces names.
#include <catch2/catch.hpp>

#include "common/crypto.hpp"
#include "kube_cluster.hpp"
#include "scoped_environment.hpp"
#include "support.hpp"
#include "support/azure_token_server.hpp"
#include "support/azurite_server.hpp"

namespace {

using test_support::AzureTokenServer;
using test_support::AzuriteServer;

const char* kAzureVariables[] = {"AZURE_TENANT_ID",          "AZURE_CLIENT_ID",      "AZURE_CLIENT_SECRET",
                                 "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
                                 "SSL_CERT_FILE"};

struct Rig {
  test::fs::path dir = test::temp_dir("azure-identity");
  AzuriteServer azurite{/*tls=*/true, /*oauth=*/true};
  int runs = 0;

  Rig() { azurite.create_container("identity"); }

  std::string endpoint_flag() const { return "https://127.0.0.1:" + std::to_string(azurite.port()) + "/{account}"; }

  std::string storage(const std::string& name, const std::string& ns = "demo", const std::string& secret = "") const {
    return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
           ", namespace: " + ns + "}\nspec:\n  storage:\n    provider: azure\n    azure: {storageAccount: " +
           azurite.account() + ", container: identity, prefix: " + name +
           (secret.empty() ? "" : ", secretName: " + secret) + "}\n  deletionPolicy: Delete\n";
  }

  // Every Azure variable unset unless given; SSL_CERT_FILE = Azurite's CA.
  std::vector<std::pair<std::string, std::string>> environment(std::vector<std::pair<std::string, std::string>> given) const {
    std::vector<std::pair<std::string, std::string>> all;
    for (const char* v : kAzureVariables) all.emplace_back(v, "");
    all.emplace_back("SSL_CERT_FILE", azurite.ca_file().string());
    for (auto& v : given) all.push_back(std::move(v));
    return all;
  }

  test::RunResult init(const std::string& manifest, std::vector<std::pair<std::string, std::string>> variables) {
    test::ScopedEnvironment scoped(environment(std::move(variables)));
    auto file = dir / ("manifest-" + std::to_string(++runs) + ".yaml");
    test::write_file(file, manifest);
    return test::run({"init", "-f", file.string(), "--state-dir", (dir / ("state-" + std::to_string(runs))).string(),
                      "--azure-endpoint", endpoint_flag(), "--timeout", "90s"},
                     dir, std::chrono::seconds(150));
  }

  bool initialized(const std::string& name) const { return azurite.get_blob("identity", name + "/metadata.yaml").first == 200; }
};

std::vector<std::pair<std::string, std::string>> workload(const AzureTokenServer& entra, const test::fs::path& token) {
  return {{"AZURE_TENANT_ID", entra.tenant()},
          {"AZURE_CLIENT_ID", entra.client_id()},
          {"AZURE_FEDERATED_TOKEN_FILE", token.string()},
          {"AZURE_AUTHORITY_HOST", entra.url() + "/"}};
}

}  // namespace

TEST_CASE("azure identity e2e: workload identity, Bearer to Azurite, a refused assertion named by source", "[cloud]") {
  Rig rig;
  auto token = rig.dir / "azure-identity-token";
  test::write_file(token, "eyJhbGciOi.projected-service-account-token.sig\n");
  AzureTokenServer entra(rig.dir, {"entra", token, {}, 3600});

  auto ok = rig.init(rig.storage("wi"), workload(entra, token));
  INFO(ok.out << ok.err << test::read_file(entra.log()));
  CHECK(ok.code == 0);
  CHECK_THAT(ok.out, Catch::Contains("demo/wi\tReady"));
  CHECK(rig.initialized("wi"));
  CHECK(entra.exchanges() == 1);
  CHECK_THAT(ok.err + ok.out,
             Catch::Contains("Azure identity sources found: workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, "
                             "AZURE_FEDERATED_TOKEN_FILE); managed identity (IMDS, AZURE_CLIENT_ID); Azure storages "
                             "without a secretName use workload identity"));
  CHECK((ok.out + ok.err).find("projected-service-account-token") == std::string::npos);
  CHECK((ok.out + ok.err).find("eyJ") == std::string::npos);  // no JWT, sent or received

  // An assertion Entra refuses: NotReady, the source and Entra's code named, the assertion nowhere.
  auto stale = rig.dir / "stale-token";
  test::write_file(stale, "eyJhbGciOi.a-stale-assertion.sig");
  auto refused = rig.init(rig.storage("wi-refused"), workload(entra, stale));
  INFO(refused.out << refused.err);
  CHECK(refused.code == 1);
  CHECK_THAT(refused.out, Catch::Contains("demo/wi-refused\tNotReady") && Catch::Contains("workload identity") &&
                              Catch::Contains("AADSTS700213"));
  CHECK((refused.out + refused.err).find("a-stale-assertion") == std::string::npos);
  CHECK_FALSE(rig.initialized("wi-refused"));
  CHECK(entra.refused() >= 1);
}

TEST_CASE("azure identity e2e: 100 storages without a Secret, one token exchange", "[cloud]") {
  Rig rig;
  auto token = rig.dir / "azure-identity-token";
  test::write_file(token, "eyJhbGciOi.crowd.sig");
  AzureTokenServer entra(rig.dir, {"entra", token, {}, 3600});
  std::string manifest;
  for (int i = 0; i < 100; ++i) manifest += rig.storage("crowd-" + std::to_string(i)) + "---\n";
  auto ok = rig.init(manifest, workload(entra, token));
  INFO(ok.out.substr(0, 4000) << ok.err.substr(0, 4000));
  CHECK(ok.code == 0);
  int ready = 0;
  for (int i = 0; i < 100; ++i) ready += ok.out.find("demo/crowd-" + std::to_string(i) + "\tReady") != std::string::npos;
  CHECK(ready == 100);
  CHECK(rig.initialized("crowd-0"));
  CHECK(rig.initialized("crowd-99"));
  CHECK(entra.exchanges() == 1);
}

TEST_CASE("azure identity e2e: managed identity through IMDS, and a service principal in the Secret", "[cloud]") {
  Rig rig;
  AzureTokenServer imds(rig.dir, {"imds", {}, {}, 3600});
  auto mi = rig.init(rig.storage("mi"), {{"AZURE_POD_IDENTITY_AUTHORITY_HOST", imds.url()},
                                          {"AZURE_CLIENT_ID", imds.client_id()}});
  INFO(mi.out << mi.err << test::read_file(imds.log()));
  CHECK(mi.code == 0);
  CHECK_THAT(mi.out, Catch::Contains("demo/mi\tReady"));
  CHECK(rig.initialized("mi"));
  CHECK(imds.exchanges() == 1);
  CHECK_THAT(mi.err + mi.out, Catch::Contains("Azure storages without a secretName use managed identity (IMDS, "
                                              "AZURE_POD_IDENTITY_AUTHORITY_HOST, AZURE_CLIENT_ID)"));

  // A service principal's secret in the storage's Secret (no ambient identity involved).
  auto secret_file = rig.dir / "client-secret";
  test::write_file(secret_file, "Zx8Q~service-principal-secret");
  AzureTokenServer entra(rig.dir, {"entra", {}, secret_file, 3600});
  auto secret = [&](const std::string& name, const std::string& client_secret) {
    using stowage::crypto::base64_encode;
    return "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: demo}\ndata:\n  AZURE_TENANT_ID: " +
           base64_encode(entra.tenant()) + "\n  AZURE_CLIENT_ID: " + base64_encode(entra.client_id()) +
           "\n  AZURE_CLIENT_SECRET: " + base64_encode(client_secret) + "\n---\n";
  };
  auto sp = rig.init(secret("sp", "Zx8Q~service-principal-secret") + rig.storage("sp", "demo", "sp") + "---\n" +
                         secret("sp-wrong", "Zx8Q~not-the-secret") + rig.storage("sp-wrong", "demo", "sp-wrong"),
                     {{"AZURE_AUTHORITY_HOST", entra.url()}});
  INFO(sp.out << sp.err);
  CHECK(sp.code == 1);
  CHECK_THAT(sp.out, Catch::Contains("demo/sp\tReady"));
  CHECK(rig.initialized("sp"));
  CHECK_THAT(sp.out, Catch::Contains("demo/sp-wrong\tNotReady") && Catch::Contains("storage secret demo/sp-wrong") &&
                         Catch::Contains("AADSTS7000215"));
  CHECK_FALSE(rig.initialized("sp-wrong"));
  CHECK((sp.out + sp.err).find("not-the-secret") == std::string::npos);
  CHECK((sp.out + sp.err).find("service-principal-secret") == std::string::npos);
}

TEST_CASE("azure identity e2e: against an API server, only namespaces --ambient-credentials-namespaces names", "[cloud]") {
  Rig rig;
  auto token = rig.dir / "azure-identity-token";
  test::write_file(token, "eyJhbGciOi.kube-mode.sig");
  AzureTokenServer entra(rig.dir, {"entra", token, {}, 3600});
  kube_e2e::KubeCluster cluster("azure-ambient", "e2e-token-do-not-log", {});
  const auto kubeconfig = cluster.server.write_kubeconfig("demo");
  cluster.apply("storages", rig.storage("own-trusted", "trusted") + "---\n" + rig.storage("own-demo", "demo"));
  test::ScopedEnvironment scoped(rig.environment(workload(entra, token)));
  auto child = cluster.run(kubeconfig, "run", "debug",
                           {"--ambient-credentials-namespaces", "trusted", "--azure-endpoint", rig.endpoint_flag(),
                            "--permanent-retry", "1s"});
  auto phase = [&](const std::string& ns, const std::string& bs) {
    auto [code, out] = cluster.server.kubectl("get bs " + bs + " -n " + ns + " -o jsonpath={.status.phase}");
    return code == 0 ? out : "";
  };
  INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return phase("trusted", "own-trusted") == "Ready" && phase("demo", "own-demo") == "NotReady"; }));
  CHECK(rig.initialized("own-trusted"));
  CHECK_FALSE(rig.initialized("own-demo"));
  auto [code, message] = cluster.server.kubectl(
      "get bs own-demo -n demo -o jsonpath='{.status.conditions[?(@.type==\"BackendInitialized\")].message}'");
  CHECK(message ==
        "spec.storage.azure.secretName is empty and namespace demo may not use the controller's own credentials: set "
        "secretName, or add demo to --ambient-credentials-namespaces");
  CHECK(entra.exchanges() == 1);
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  CHECK(cluster.log("run").find("kube-mode.sig") == std::string::npos);
}
