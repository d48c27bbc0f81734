// The self-signed webhook certificates end to end, through the test API server's admission: the real
// `stowage run --webhook-cert-self-signed` (two replicas sharing the Secret) with deploy/base's webhook
// configurations, whose Service the API server reaches at the first replica (--webhook-service).
// Certificates live 30 s (the test knob STOWAGE_TEST_WEBHOOK_CERT_LIFETIME, engine/webhook_certs.hpp):
// the serving certificate is renewed at ~9 s and expires at ~15 s, the CA is renewed at ~19 s.
// Proven: caBundle is written, kubectl is refused with KubeStash's message (the API server trusted
// the CA); after the CA's renewal the Secret holds new certificates, caBundle holds the new CA and
// the old one, both replicas serve the Secret's new certificate, kubectl is still refused with the
// message and an allowed storage is still admitted; the replicas made the CA once and renewed it
// once between them.
// Then the README's uninstall order ("Install in a cluster"): with the controller gone, the storages
// keep their finalizer and their data; the webhook configurations left behind refuse the finalizer's
// removal; once they are deleted, the finalizer comes off with kubectl patch and the data stays.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <sys/wait.h>

#include "common/crypto.hpp"
#include "kube_cluster.hpp"
#include "scoped_environment.hpp"
#include "support.hpp"
#include "support/lazy_info.hpp"

namespace json = boost::json;

namespace {

const std::string kWebhooks = std::string(STOWAGE_SOURCE_DIR) + "/deploy/base/webhook.yaml";
constexpr const char* kRefusal =
    "admission webhook \"vbackupstorage.kb.io\" denied the request: multiple default BackupStorages are not "
    "allowed within the same namespace";

// `command`'s standard output (its standard error is dropped).
std::string output_of(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  ::pclose(pipe);
  return out;
}

// The SHA-256 fingerprint of the first certificate in `pem` ("" when there is none).
std::string fingerprint(const test::fs::path& scratch, const std::string& pem) {
  test::write_file(scratch / "fingerprint.pem", pem);
  return output_of("openssl x509 -noout -fingerprint -sha256 -in '" + (scratch / "fingerprint.pem").string() +
                   "' 2>/dev/null");
}

// The fingerprint of the certificate a TLS server on 127.0.0.1:port presents ("" when none).
std::string served_fingerprint(int port) {
  return output_of("timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                   " -servername stowage-webhook.stowage-system.svc </dev/null 2>/dev/null"
                   " | openssl x509 -noout -fingerprint -sha256 2>/dev/null");
}

std::vector<std::string> certificates_in(const std::string& pem) {
  const std::string end = "-----END CERTIFICATE-----";
  std::vector<std::string> out;
  for (std::size_t from = 0, at; (at = pem.find(end, from)) != std::string::npos; from = at + end.size()) {
    auto begin = pem.find("-----BEGIN CERTIFICATE-----", from);
    out.push_back(pem.substr(begin, at + end.size() - begin));
  }
  return out;
}

struct SecretData {
  std::string ca_crt, tls_crt;
};

SecretData secret(const kube_e2e::KubeCluster& cluster) {
  auto data = cluster.get("secret stowage-webhook-cert -n stowage-system").at("data");
  auto decode = [&](const char* key) {
    return stowage::crypto::base64_decode(std::string(data.at(key).as_string())).value_or("");
  };
  return {decode("ca.crt"), decode("tls.crt")};
}

// The caBundle of every webhook in the configuration, decoded ("" for a webhook without one).
std::vector<std::string> ca_bundles(const kube_e2e::KubeCluster& cluster, const std::string& kind) {
  auto [code, out] = cluster.server.kubectl("get " + kind + " stowage -o json");
  if (code != 0) return {};
  std::vector<std::string> bundles;
  const json::value configuration = json::parse(out);
  for (const auto& webhook : configuration.at("webhooks").as_array()) {
    const auto* bundle = webhook.at("clientConfig").as_object().if_contains("caBundle");
    bundles.push_back(bundle ? stowage::crypto::base64_decode(std::string(bundle->as_string())).value_or("?")
                             : std::string());
  }
  return bundles;
}

// Both configurations' webhooks carry exactly `ca_crt` as their caBundle.
bool bundles_are(const kube_e2e::KubeCluster& cluster, const std::string& ca_crt) {
  for (const char* kind : {"mutatingwebhookconfiguration", "validatingwebhookconfiguration"}) {
    auto bundles = ca_bundles(cluster, kind);
    if (bundles.empty()) return false;
    for (const auto& bundle : bundles)
      if (bundle != ca_crt) return false;
  }
  return true;
}

// Waits until the process's /readyz says 200: the webhook has a certificate and its caches have synced.
bool ready(int probe_port) {
  return test::eventually([&] {
    try {
      return test_support::plain_http(probe_port, "GET", "/readyz").first == 200;
    } catch (const std::exception&) {
      return false;  // not listening yet
    }
  });
}

// kubectl apply of a second default storage in demo: its exit code and output.
std::pair<int, std::string> apply_second_default(const kube_e2e::KubeCluster& cluster) {
  auto file = cluster.dir / "second.yaml";
  test::write_file(file, test::local_storage("second", "/data/second") + "  default: true\n");
  return cluster.server.kubectl("apply -f '" + file.string() + "'");
}

}  // namespace

TEST_CASE("webhook rotation e2e: self-signed certificates renewed under two replicas, admission trusted throughout") {
  const int webhook_a = test_support::free_port(), webhook_b = test_support::free_port();
  kube_e2e::KubeCluster cluster(
      "kube-webhook-rotation", "webhook-token-do-not-log",
      {"--webhook-service", "stowage-system/stowage-webhook:443=127.0.0.1:" + std::to_string(webhook_a)});
  auto kubeconfig = cluster.server.write_kubeconfig("demo");
  cluster.apply("first", test::local_storage("first", "/data/first") + "  default: true\n");
  cluster.kubectl("apply -f '" + kWebhooks + "'");
  // As shipped: no caBundle, so the API server cannot trust any webhook certificate yet.
  REQUIRE(ca_bundles(cluster, "validatingwebhookconfiguration") == std::vector<std::string>{""});

  test::ScopedEnvironment lifetime(
      std::vector<std::pair<std::string, std::string>>{{"STOWAGE_TEST_WEBHOOK_CERT_LIFETIME", "30s"}});
  const int probes_a = test_support::free_port(), probes_b = test_support::free_port();
  auto replica = [&](const std::string& name, int port, int probes) {
    return cluster.run(kubeconfig, name, "debug",
                       {"--webhook-bind-address", "127.0.0.1:" + std::to_string(port), "--webhook-cert-self-signed",
                        "--webhook-service-namespace", "stowage-system", "--webhook-cert-dir",
                        (cluster.dir / (name + "-certs")).string(), "--state-dir", (cluster.dir / (name + "-state")).string(),
                        "--leader-elect", "--health-probe-bind-address", "127.0.0.1:" + std::to_string(probes)});
  };
  auto a = replica("run-a", webhook_a, probes_a);
  auto b = replica("run-b", webhook_b, probes_b);
  LAZY_INFO("replica a:\n" + cluster.log("run-a") + "\nreplica b:\n" + cluster.log("run-b"));
  // Ready: the webhook has a certificate and answers from synced caches.
  REQUIRE(ready(probes_a));
  REQUIRE(ready(probes_b));

  // The CA reaches both configurations, and both replicas serve the Secret's certificate.
  REQUIRE(test::eventually([&] {
    auto [code, out] = cluster.server.kubectl("get secret stowage-webhook-cert -n stowage-system -o name");
    return code == 0 && bundles_are(cluster, secret(cluster).ca_crt);
  }));
  const SecretData first = secret(cluster);
  REQUIRE(certificates_in(first.ca_crt).size() == 1);
  const std::string first_ca = certificates_in(first.ca_crt).front();
  CHECK(test::eventually([&] {
    const std::string want = fingerprint(cluster.dir, secret(cluster).tls_crt);
    return served_fingerprint(webhook_a) == want && served_fingerprint(webhook_b) == want;
  }));

  // The API server trusted the self-signed CA: KubeStash's refusal, not a failed call.
  auto [code, out] = apply_second_default(cluster);
  INFO(out);
  CHECK(code != 0);
  CHECK_THAT(out, Catch::Contains(kRefusal));

  // The CA is renewed at 2/3 of its 30 s (the first serving certificate has expired by then).
  REQUIRE(test::eventually([&] { return certificates_in(secret(cluster).ca_crt).front() != first_ca; },
                           std::chrono::seconds(40)));
  const SecretData renewed = secret(cluster);
  CHECK(fingerprint(cluster.dir, renewed.tls_crt) != fingerprint(cluster.dir, first.tls_crt));
  auto cas = certificates_in(renewed.ca_crt);
  REQUIRE(cas.size() == 2);  // the new CA, then the old one while it is valid
  CHECK(cas[1] == first_ca);
  // The bundle follows: the new CA and the old one, in both configurations.
  CHECK(test::eventually([&] { return bundles_are(cluster, secret(cluster).ca_crt); }));
  CHECK(certificates_in(ca_bundles(cluster, "validatingwebhookconfiguration").front()).size() == 2);
  // Both replicas reloaded: each serves the Secret's current certificate (signed by the new CA).
  CHECK(test::eventually([&] {
    const std::string want = fingerprint(cluster.dir, secret(cluster).tls_crt);
    return served_fingerprint(webhook_a) == want && served_fingerprint(webhook_b) == want;
  }));

  // Admission still works through the API server: refused with the message, and an allowed one admitted.
  std::tie(code, out) = apply_second_default(cluster);
  CHECK(code != 0);
  CHECK_THAT(out, Catch::Contains(kRefusal));
  cluster.apply("third", test::local_storage("third", "/data/third"));
  CHECK(cluster.kubectl("get bs third -n demo -o jsonpath={.spec.usagePolicy.allowedNamespaces.from}") == "Same");

  // No fight over the Secret: one CA made and one CA renewal between the two replicas, nothing replaced.
  const std::string logs = cluster.log("run-a") + cluster.log("run-b");
  CHECK(test::count_of(cluster.dir / "run-a.log", "made a CA (until") +
            test::count_of(cluster.dir / "run-b.log", "made a CA (until") ==
        1);
  CHECK(test::count_of(cluster.dir / "run-a.log", "renewed the CA") +
            test::count_of(cluster.dir / "run-b.log", "renewed the CA") ==
        1);
  CHECK(logs.find("replacing it with a new CA") == std::string::npos);
  CHECK(logs.find("PRIVATE KEY") == std::string::npos);

  a.signal(SIGTERM);
  b.signal(SIGTERM);
  CHECK(a.wait(std::chrono::seconds(20)) == 0);
  CHECK(b.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("webhook rotation e2e: the README's uninstall order keeps a WipeOut storage's data and lets the object go") {
  const int webhook_port = test_support::free_port(), probe_port = test_support::free_port();
  kube_e2e::KubeCluster cluster(
      "kube-webhook-uninstall", "webhook-token-do-not-log",
      {"--webhook-service", "stowage-system/stowage-webhook:443=127.0.0.1:" + std::to_string(webhook_port)});
  auto kubeconfig = cluster.server.write_kubeconfig("demo");
  cluster.kubectl("apply -f '" + kWebhooks + "'");
  auto controller = cluster.run(kubeconfig, "run", "debug",
                                {"--webhook-bind-address", "127.0.0.1:" + std::to_string(webhook_port),
                                 "--webhook-cert-self-signed", "--webhook-service-namespace", "stowage-system",
                                 "--webhook-cert-dir", (cluster.dir / "certs").string(), "--health-probe-bind-address",
                                 "127.0.0.1:" + std::to_string(probe_port)});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(ready(probe_port));
  REQUIRE(test::eventually([&] { return !ca_bundles(cluster, "validatingwebhookconfiguration").front().empty(); }));
  cluster.apply("kept", test::local_storage("kept", "/data/kept", "WipeOut"));
  REQUIRE(test::eventually([&] { return cluster.phase("kept") == "Ready"; }));
  test::write_file(cluster.root / "data/kept/backup.dat", "a backup");

  // 1. The controller goes (kubectl delete deployment stowage): the storage keeps its finalizer.
  controller.signal(SIGTERM);
  REQUIRE(controller.wait(std::chrono::seconds(20)) == 0);
  cluster.kubectl("delete bs kept -n demo --wait=false");
  CHECK_FALSE(cluster.kubectl("get bs kept -n demo -o jsonpath={.metadata.deletionTimestamp}").empty());
  CHECK(cluster.kubectl("get bs kept -n demo -o jsonpath={.metadata.finalizers}") == R"(["kubestash.com/cleanup"])");
  // Removing the finalizer is an UPDATE: the webhook configurations left behind refuse it (failurePolicy Fail).
  // The README's command: removes kubestash.com/cleanup only where it is the first finalizer.
  const std::string unfinalize =
      R"(patch bs kept -n demo --type json -p '[{"op":"test","path":"/metadata/finalizers/0","value":"kubestash.com/cleanup"},)"
      R"({"op":"remove","path":"/metadata/finalizers/0"}]')";
  auto [code, out] = cluster.server.kubectl(unfinalize);
  INFO(out);
  CHECK(code != 0);
  CHECK_THAT(out, Catch::Contains("failed calling webhook"));
  // 2. The webhook configurations go; 3. the finalizer comes off and the object goes, the data stays.
  cluster.kubectl("delete mutatingwebhookconfiguration,validatingwebhookconfiguration stowage");
  cluster.kubectl(unfinalize);
  auto [left, listing] = cluster.server.kubectl("get bs -n demo -o name");
  CHECK(left == 0);
  CHECK(listing.empty());
  CHECK(test::fs::exists(cluster.root / "data/kept/metadata.yaml"));
  CHECK(test::read_file(cluster.root / "data/kept/backup.dat") == "a backup");
}
