// The admission webhook end to end: the real `stowage run` against the test API server, serving
// HTTPS on --webhook-bind-address with the certificate openssl made in --webhook-cert-dir; curl
// posts AdmissionReviews and verifies the server against the CA. A second default storage is
// refused with KubeStash's message, the defaults come back as a JSONPatch, and replacing the files
// in the cert dir (another CA's certificate) makes the server present the new certificate to new
// connections. Then the same through the test API server's admission: kubectl apply is refused
// with `admission webhook "vbackupstorage.kb.io" denied the request: <KubeStash's message>`, the
// defaults are in the stored object, and the controller's own finalizer removal passes the webhook.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <sys/wait.h>

#include "common/crypto.hpp"
#include "kube_cluster.hpp"
#include "support.hpp"
#include "support/lazy_info.hpp"

namespace json = boost::json;

namespace {

constexpr const char* kValidate = "/validate-storage-kubestash-com-v1alpha1-backupstorage";
constexpr const char* kMutate = "/mutate-storage-kubestash-com-v1alpha1-backupstorage";

struct Curl {
  int code = -1;
  std::string out;
};

// POSTs `body` to https://127.0.0.1:port/path, verifying the server against `ca`.
Curl post(const test::fs::path& dir, int port, const std::string& path, const std::string& body,
          const test::fs::path& ca) {
  test::write_file(dir / "review.json", body);
  std::string command = "curl -sS --max-time 10 --cacert '" + ca.string() +
                        "' -H 'Content-Type: application/json' --data-binary @'" + (dir / "review.json").string() +
                        "' https://127.0.0.1:" + std::to_string(port) + path + " 2>&1";
  Curl result;
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) result.out.append(buf, n);
  int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string review(const std::string& uid, const std::string& name, const json::object& spec) {
  json::object object{{"apiVersion", "storage.kubestash.com/v1alpha1"},
                      {"kind", "BackupStorage"},
                      {"metadata", {{"name", name}, {"namespace", "demo"}}},
                      {"spec", spec}};
  json::object request{
      {"uid", uid},
      {"kind", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"kind", "BackupStorage"}}},
      {"resource", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"resource", "backupstorages"}}},
      {"name", name},
      {"namespace", "demo"},
      {"operation", "CREATE"},
      {"object", object}};
  return json::serialize(json::object{{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", request}});
}

json::object local_spec(const std::string& path, bool is_default) {
  return json::object{{"storage",
                       {{"provider", "local"},
                        {"local", {{"mountPath", "/safe/data"}, {"hostPath", {{"path", path}}}}}}},
                      {"default", is_default}};
}

// Puts the pair in the cert dir as a writer would: each file written aside, then renamed over.
void install(const test_support::TestCertificates& certs, const test::fs::path& dir) {
  test::fs::create_directories(dir);
  test::fs::copy_file(certs.server_cert, dir / ".tls.crt.new", test::fs::copy_options::overwrite_existing);
  test::fs::copy_file(certs.server_key, dir / ".tls.key.new", test::fs::copy_options::overwrite_existing);
  test::fs::rename(dir / ".tls.crt.new", dir / "tls.crt");
  test::fs::rename(dir / ".tls.key.new", dir / "tls.key");
}

}  // namespace

TEST_CASE("webhook e2e: HTTPS from the cert dir, KubeStash's refusal, the defaults, and a rotated certificate") {
  kube_e2e::KubeCluster cluster("kube-webhook", "webhook-token-do-not-log", {});
  auto kubeconfig = cluster.server.write_kubeconfig("demo");
  auto first_ca = test_support::make_certificates(cluster.dir / "ca-first");
  auto second_ca = test_support::make_certificates(cluster.dir / "ca-second");
  const auto cert_dir = cluster.dir / "webhook-certs";
  install(first_ca, cert_dir);
  cluster.apply("default", test::local_storage("first", "/data/first") + "  default: true\n");

  const int webhook_port = test_support::free_port(), probe_port = test_support::free_port();
  auto child = cluster.run(kubeconfig, "run", "debug",
                           {"--webhook-bind-address", "127.0.0.1:" + std::to_string(webhook_port), "--webhook-cert-dir",
                            cert_dir.string(), "--health-probe-bind-address", "127.0.0.1:" + std::to_string(probe_port)});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] {
    try {
      return test_support::plain_http(probe_port, "GET", "/readyz").first == 200;
    } catch (const std::exception&) {
      return false;  // not listening yet
    }
  }));

  // A second default storage in the namespace: KubeStash's refusal, word for word.
  auto refused = post(cluster.dir, webhook_port, kValidate, review("uid-1", "second", local_spec("/data/second", true)),
                      first_ca.ca_cert);
  INFO(refused.out);
  REQUIRE(refused.code == 0);
  auto response = json::parse(refused.out).at("response");
  CHECK(response.at("uid") == "uid-1");
  CHECK(response.at("allowed") == false);
  CHECK(response.at("status").at("code") == 403);
  CHECK(response.at("status").at("message") == "multiple default BackupStorages are not allowed within the same namespace");
  // Not default: allowed.
  auto allowed = post(cluster.dir, webhook_port, kValidate, review("uid-2", "second", local_spec("/data/second", false)),
                      first_ca.ca_cert);
  REQUIRE(allowed.code == 0);
  CHECK(json::parse(allowed.out).at("response").at("allowed") == true);
  // The defaults.
  auto mutated = post(cluster.dir, webhook_port, kMutate, review("uid-3", "third", local_spec("/data/third", false)),
                      first_ca.ca_cert);
  REQUIRE(mutated.code == 0);
  auto mutation = json::parse(mutated.out).at("response");
  CHECK(mutation.at("patchType") == "JSONPatch");
  auto patch = stowage::crypto::base64_decode(std::string(mutation.at("patch").as_string()));
  REQUIRE(patch);
  CHECK(json::parse(*patch) ==
        json::parse(R"([{"op":"add","path":"/spec/usagePolicy","value":{"allowedNamespaces":{"from":"Same"}}}])"));

  // Rotation: another CA's certificate in the files; new connections get it, the old CA no longer verifies.
  install(second_ca, cert_dir);
  CHECK(test::eventually([&] {
    return post(cluster.dir, webhook_port, kValidate, review("uid-4", "second", local_spec("/data/second", true)),
                second_ca.ca_cert)
               .code == 0;
  }));
  auto stale = post(cluster.dir, webhook_port, kValidate, review("uid-5", "second", local_spec("/data/second", true)),
                    first_ca.ca_cert);
  CHECK(stale.code != 0);  // curl: the certificate does not verify against the first CA
  CHECK_THAT(cluster.log("run"), Catch::Contains("serving the new certificate"));

  // A pair that does not load (a key of another certificate) keeps the second one in service.
  test::fs::copy_file(first_ca.server_key, cert_dir / "tls.key", test::fs::copy_options::overwrite_existing);
  CHECK(test::eventually([&] { return cluster.log("run").find("is not a usable PEM private key of the certificate") != std::string::npos; }));
  auto kept = post(cluster.dir, webhook_port, kValidate, review("uid-6", "second", local_spec("/data/second", false)),
                   second_ca.ca_cert);
  CHECK(kept.code == 0);

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  // The webhook never logs the key.
  CHECK(cluster.log("run").find("PRIVATE KEY") == std::string::npos);
}

namespace {

// Both webhook configurations of deploy/base/webhook.yaml, calling `url` (the test's address) with `ca`.
std::string configurations(int port, const test_support::TestCertificates& ca) {
  const std::string bundle = stowage::crypto::base64_encode(ca.ca_pem());
  auto one = [&](const char* kind, const char* name, const char* path) {
    return std::string("apiVersion: admissionregistration.k8s.io/v1\nkind: ") + kind +
           "\nmetadata: {name: stowage}\nwebhooks:\n- name: " + name +
           "\n  admissionReviewVersions: [v1]\n  sideEffects: None\n  failurePolicy: Fail\n  timeoutSeconds: 5\n"
           "  clientConfig:\n    url: https://127.0.0.1:" + std::to_string(port) + path + "\n    caBundle: " + bundle +
           "\n  rules:\n  - {apiGroups: [storage.kubestash.com], apiVersions: [v1alpha1], operations: [CREATE, UPDATE], "
           "resources: [backupstorages], scope: Namespaced}\n";
  };
  return one("MutatingWebhookConfiguration", "mbackupstorage.kb.io", kMutate) + "---\n" +
         one("ValidatingWebhookConfiguration", "vbackupstorage.kb.io", kValidate);
}

}  // namespace

TEST_CASE("webhook e2e: kubectl apply through the API server's admission: refused, defaulted, and deletions pass") {
  kube_e2e::KubeCluster cluster("kube-webhook-apply", "webhook-token-do-not-log", {});
  auto kubeconfig = cluster.server.write_kubeconfig("demo");
  auto ca = test_support::make_certificates(cluster.dir / "ca");
  const auto cert_dir = cluster.dir / "webhook-certs";
  install(ca, cert_dir);
  cluster.apply("first", test::local_storage("first", "/data/first") + "  default: true\n");

  const int webhook_port = test_support::free_port(), probe_port = test_support::free_port();
  auto child = cluster.run(kubeconfig, "run", "debug",
                           {"--webhook-bind-address", "127.0.0.1:" + std::to_string(webhook_port), "--webhook-cert-dir",
                            cert_dir.string(), "--health-probe-bind-address", "127.0.0.1:" + std::to_string(probe_port)});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("first") == "Ready"; }));
  cluster.apply("webhooks", configurations(webhook_port, ca));

  // A second default storage: kubectl prints KubeStash's refusal.
  auto file = cluster.dir / "second.yaml";
  test::write_file(file, test::local_storage("second", "/data/second") + "  default: true\n");
  auto [code, out] = cluster.server.kubectl("apply -f '" + file.string() + "'");
  INFO(out);
  CHECK(code != 0);
  CHECK_THAT(out, Catch::Contains("admission webhook \"vbackupstorage.kb.io\" denied the request: multiple default "
                                  "BackupStorages are not allowed within the same namespace"));
  // Inside the first one's directory: stowage's own refusal, naming it.
  test::write_file(file, test::local_storage("nested", "/data/first/team-b"));
  std::tie(code, out) = cluster.server.kubectl("apply -f '" + file.string() + "'");
  CHECK(code != 0);
  CHECK_THAT(out, Catch::Contains("lies inside the location of BackupStorage demo/first"));
  // Allowed, with KubeStash's default in the stored object; the controller makes it Ready.
  cluster.apply("third", test::local_storage("third", "/data/third"));
  CHECK(cluster.kubectl("get bs third -n demo -o jsonpath={.spec.usagePolicy.allowedNamespaces.from}") == "Same");
  REQUIRE(test::eventually([&] { return cluster.phase("third") == "Ready"; }));
  // Deleting goes through the webhook too (the finalizer's removal is an UPDATE): it finishes.
  cluster.kubectl("delete bs third first -n demo --timeout=30s");
  auto [left, listing] = cluster.server.kubectl("get bs -n demo -o name");
  CHECK(left == 0);
  CHECK(listing.empty());

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}
