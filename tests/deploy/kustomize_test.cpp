// deploy/base as a user gets it: rendered by the real kubectl's kustomize (no warning printed), every
// namespaced object in stowage-system, the CRDs exactly as their files, and the rendered stream applied
// with `kubectl apply --server-side` to the test API server twice (create, then a no-op re-apply), the
// stored CRDs equal to what was applied. The test API server serves the storage.kubestash.com kinds as
// its own built-ins, whatever CRDs are stored; crds_test.cpp checks their schemas. overlays_test.cpp
// does the same for deploy/overlays and checks every pod template against Pod Security "restricted". kubectl must be on PATH: without it these tests fail, they do not skip.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>

#include "deploy/kustomize.hpp"
#include "support/api_server.hpp"

namespace json = boost::json;
using namespace deploy_test;

namespace {

const std::set<std::string> kClusterScopedKinds{"Namespace", "CustomResourceDefinition", "ClusterRole",
                                                "ClusterRoleBinding", "MutatingWebhookConfiguration",
                                                "ValidatingWebhookConfiguration", "PriorityClass"};
const char* const kCrdNames[] = {"backupstorages.storage.kubestash.com", "repositories.storage.kubestash.com",
                                 "snapshots.storage.kubestash.com"};

Rendered render_base(const std::filesystem::path& dir) { return render(kBase, dir); }

}  // namespace

TEST_CASE("kustomize: kubectl kustomize renders deploy/base with every namespaced object in stowage-system") {
  auto dir = test_support::fresh_temp_dir("kustomize-render");
  auto rendered = render_base(dir);
  std::map<std::string, json::object> by_name;
  for (const auto& o : rendered.objects) {
    const auto& metadata = o.at("metadata").as_object();
    INFO(kind_and_name(o));
    if (kClusterScopedKinds.count(std::string(o.at("kind").as_string())))
      CHECK_FALSE(metadata.contains("namespace"));
    else
      CHECK(metadata.at("namespace") == "stowage-system");
    by_name[kind_and_name(o)] = o;
  }
  for (const char* expected : {"Namespace/stowage-system", "ServiceAccount/stowage", "ClusterRole/stowage",
                               "ClusterRoleBinding/stowage", "Role/stowage-leader-election",
                               "RoleBinding/stowage-leader-election", "Deployment/stowage",
                               "Service/stowage-metrics", "PodDisruptionBudget/stowage", "Service/stowage-webhook",
                               "MutatingWebhookConfiguration/stowage", "ValidatingWebhookConfiguration/stowage"})
    CHECK(by_name.count(expected) == 1);
  // The CRDs go out exactly as written: kustomize's namespace does not touch cluster-scoped objects.
  for (const char* name : kCrdNames) {
    INFO(name);
    REQUIRE(by_name.count(std::string("CustomResourceDefinition/") + name) == 1);
    auto plural = std::string(name).substr(0, std::string(name).find('.'));
    auto file = stowage::kube::parse_yaml_documents(read_text(kBase + "/crds/" + plural + ".yaml"));
    REQUIRE(file.ok());
    CHECK(by_name[std::string("CustomResourceDefinition/") + name] == file.value().at(0).value.as_object());
  }
  // The service account the bindings name is the one in the rendered namespace.
  for (const char* binding : {"ClusterRoleBinding/stowage", "RoleBinding/stowage-leader-election"}) {
    INFO(binding);
    CHECK(by_name[binding].at("subjects").at(0).at("namespace") == "stowage-system");
  }
}

namespace {

// The value of `--name=VALUE` among the container's args ("" when absent).
std::string arg_value(const json::object& container, const std::string& name) {
  for (const auto& arg : container.at("args").as_array()) {
    std::string text(arg.as_string());
    if (text.starts_with(name + "=")) return text.substr(name.size() + 1);
  }
  return "";
}

}  // namespace

TEST_CASE("kustomize: the admission webhooks reach the Deployment's webhook port with KubeStash's paths and rules") {
  auto dir = test_support::fresh_temp_dir("kustomize-webhook");
  auto rendered = render_base(dir);
  std::map<std::string, json::object> by_name;
  for (const auto& o : rendered.objects) by_name[kind_and_name(o)] = o;
  REQUIRE(by_name.count("Deployment/stowage") == 1);
  const auto& pod = by_name["Deployment/stowage"].at("spec").at("template").at("spec").as_object();
  const auto& container = pod.at("containers").at(0).as_object();
  // The container serves the webhook on 9443 from the mounted certificate.
  CHECK(arg_value(container, "--webhook-bind-address") == ":9443");
  const std::string cert_dir = arg_value(container, "--webhook-cert-dir");
  CHECK_FALSE(cert_dir.empty());
  bool port_named = false;
  for (const auto& port : container.at("ports").as_array())
    port_named = port_named || (port.at("name") == "webhook" && port.at("containerPort") == 9443);
  CHECK(port_named);
  std::string volume;
  for (const auto& mount : container.at("volumeMounts").as_array())
    if (mount.at("mountPath") == cert_dir.c_str()) volume = std::string(mount.at("name").as_string());
  REQUIRE_FALSE(volume.empty());
  // The base makes its certificate itself (--webhook-cert-self-signed writes the files): a writable
  // emptyDir; deploy/overlays/cert-manager mounts cert-manager's Secret there instead.
  bool writable_volume = false;
  for (const auto& v : pod.at("volumes").as_array())
    writable_volume = writable_volume || (v.at("name") == volume.c_str() && v.as_object().contains("emptyDir"));
  CHECK(writable_volume);
  // The Service selects the pods and targets that port.
  REQUIRE(by_name.count("Service/stowage-webhook") == 1);
  const auto& service = by_name["Service/stowage-webhook"].at("spec").as_object();
  CHECK(service.at("selector") == by_name["Deployment/stowage"].at("spec").at("selector").at("matchLabels"));
  CHECK(service.at("ports").at(0).at("targetPort") == "webhook");
  const auto service_port = service.at("ports").at(0).at("port");

  const std::pair<const char*, const char*> configurations[] = {
      {"MutatingWebhookConfiguration/stowage", "/mutate-storage-kubestash-com-v1alpha1-backupstorage"},
      {"ValidatingWebhookConfiguration/stowage", "/validate-storage-kubestash-com-v1alpha1-backupstorage"}};
  for (const auto& [name, path] : configurations) {
    INFO(name);
    REQUIRE(by_name.count(name) == 1);
    const auto& webhooks = by_name[name].at("webhooks").as_array();
    REQUIRE(webhooks.size() == 1);
    const auto& hook = webhooks.at(0).as_object();
    CHECK(hook.at("admissionReviewVersions") == json::array{"v1"});
    CHECK(hook.at("sideEffects") == "None");
    CHECK(hook.at("failurePolicy") == "Fail");
    // The handler answers from its caches in milliseconds; the API server allows 1 to 30 s.
    CHECK(hook.at("timeoutSeconds").as_int64() >= 1);
    CHECK(hook.at("timeoutSeconds").as_int64() <= 10);
    const auto& svc = hook.at("clientConfig").at("service").as_object();
    CHECK(svc.at("name") == "stowage-webhook");
    CHECK(svc.at("namespace") == "stowage-system");
    CHECK(svc.at("path") == path);
    CHECK(svc.at("port") == service_port);
    const auto& rule = hook.at("rules").at(0).as_object();
    CHECK(rule.at("apiGroups") == json::array{"storage.kubestash.com"});
    CHECK(rule.at("apiVersions") == json::array{"v1alpha1"});
    CHECK(rule.at("operations") == json::array{"CREATE", "UPDATE"});
    CHECK(rule.at("resources") == json::array{"backupstorages"});  // not backupstorages/status
  }
}

TEST_CASE("kustomize: the rendered base applies with kubectl apply --server-side, and again as a no-op") {
  auto dir = test_support::fresh_temp_dir("kustomize-apply");
  auto rendered = render_base(dir);
  auto manifest = dir / "base.yaml";
  std::ofstream(manifest) << rendered.text;
  test_support::TestApiServer server(dir / "apiserver", "admin-token-do-not-log");
  server.write_kubeconfig();

  for (const char* round : {"first apply", "second apply"}) {
    auto [code, out] = server.kubectl("apply --server-side -f '" + manifest.string() + "'");
    INFO(round << ": kubectl exited " << code << "\n" << out);
    REQUIRE(code == 0);
    for (const auto& o : rendered.objects) CHECK(out.find(applied_line(o)) != std::string::npos);
  }
  for (const char* name : kCrdNames) {
    auto [code, out] = server.kubectl(std::string("get crd ") + name + " -o json");
    INFO(name << ": " << out);
    REQUIRE(code == 0);
    auto stored = json::parse(out).as_object();
    const json::object* applied = nullptr;
    for (const auto& o : rendered.objects)
      if (o.at("metadata").at("name") == name) applied = &o;
    REQUIRE(applied);
    CHECK(stored.at("spec") == applied->at("spec"));
    CHECK(stored.at("metadata").at("generation") == 1);  // the second apply changed nothing
  }
  auto [code, out] = server.kubectl("get deployment stowage -n stowage-system -o jsonpath={.spec.replicas}");
  CHECK(code == 0);
  CHECK(out == "1");  // two in deploy/overlays/ha
}

namespace {

const std::string kCertDir = "/tmp/k8s-webhook-server/serving-certs";  // --webhook-cert-dir's default

const json::object& only(const Rendered& r, const std::string& kind, const std::string& name) {
  const json::object* found = nullptr;
  for (const auto& o : r.objects)
    if (kind_and_name(o) == kind + "/" + name) {
      REQUIRE(found == nullptr);
      found = &o;
    }
  INFO(kind << "/" << name);
  REQUIRE(found);
  return *found;
}

const json::object& container_of(const json::object& deployment) {
  return deployment.at("spec").at("template").at("spec").at("containers").at(0).as_object();
}

std::string env_of(const json::object& container, const std::string& name) {
  if (const auto* env = container.if_contains("env"))
    for (const auto& e : env->as_array())
      if (e.at("name") == name.c_str()) return std::string(e.at("value").as_string());
  return "";
}

// The volume mounted at the cert dir.
const json::object& cert_dir_volume(const json::object& deployment) {
  std::string volume;
  for (const auto& m : container_of(deployment).at("volumeMounts").as_array())
    if (m.at("mountPath") == kCertDir.c_str()) volume = std::string(m.at("name").as_string());
  INFO("no volume mounted at " << kCertDir);
  REQUIRE_FALSE(volume.empty());
  for (const auto& v : deployment.at("spec").at("template").at("spec").at("volumes").as_array())
    if (v.at("name") == volume.c_str()) return v.as_object();
  FAIL("no volume " << volume);
  throw;
}

const char* const kStandInConfigurations = R"(# Stand-ins for a base without webhook configurations yet.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: stowage}
webhooks:
  - name: mutate.stowage.dev
    clientConfig: {service: {name: stowage-webhook, namespace: stowage-system, path: /mutate}}
    sideEffects: None
    admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: stowage}
webhooks:
  - name: validate.stowage.dev
    clientConfig: {service: {name: stowage-webhook, namespace: stowage-system, path: /validate}}
    sideEffects: None
    admissionReviewVersions: [v1]
)";

}  // namespace

TEST_CASE("kustomize: the base makes the webhook's certificates itself, with the RBAC that needs") {
  auto dir = test_support::fresh_temp_dir("kustomize-self-signed");
  auto rendered = render(kBase, dir);
  const auto& deployment = only(rendered, "Deployment", "stowage");
  CHECK(env_of(container_of(deployment), "STOWAGE_WEBHOOK_CERT_SELF_SIGNED") == "true");
  CHECK(cert_dir_volume(deployment).contains("emptyDir"));  // written by the process
  for (const char* name : {"Role/stowage-webhook-certs", "RoleBinding/stowage-webhook-certs",
                           "ClusterRole/stowage-webhook-certs", "ClusterRoleBinding/stowage-webhook-certs"}) {
    bool found = false;
    for (const auto& o : rendered.objects) found = found || kind_and_name(o) == name;
    CHECK(found);
  }
}

TEST_CASE("kustomize: deploy/overlays/cert-manager takes the certificate from cert-manager and injects its CA") {
  auto dir = test_support::fresh_temp_dir("kustomize-cert-manager");
  // A copy of deploy/, with stand-in webhook configurations if its base has none (yet).
  auto copy = dir / "deploy";
  std::filesystem::copy(std::string(STOWAGE_SOURCE_DIR) + "/deploy", copy, std::filesystem::copy_options::recursive);
  bool has_configurations = false;
  for (const auto& o : render(copy / "base", dir).objects)
    has_configurations = has_configurations || o.at("kind") == "ValidatingWebhookConfiguration";
  if (!has_configurations) {
    std::ofstream(copy / "base" / "stand-in-webhooks.yaml") << kStandInConfigurations;
    std::ofstream(copy / "base" / "kustomization.yaml", std::ios::app) << "  - stand-in-webhooks.yaml\n";
  }
  auto rendered = render(copy / "overlays" / "cert-manager", dir);

  const auto& certificate = only(rendered, "Certificate", "stowage-webhook");
  CHECK(certificate.at("metadata").at("namespace") == "stowage-system");
  const auto& spec = certificate.at("spec").as_object();
  CHECK(spec.at("dnsNames") == json::array{"stowage-webhook.stowage-system.svc",
                                           "stowage-webhook.stowage-system.svc.cluster.local"});
  const auto& issuer = only(rendered, "Issuer", std::string(spec.at("issuerRef").at("name").as_string()));
  CHECK(issuer.at("spec").as_object().contains("selfSigned"));

  // The process makes no certificate and reads cert-manager's Secret, read-only.
  const auto& deployment = only(rendered, "Deployment", "stowage");
  CHECK(env_of(container_of(deployment), "STOWAGE_WEBHOOK_CERT_SELF_SIGNED") == "false");
  const auto& volume = cert_dir_volume(deployment);
  CHECK_FALSE(volume.contains("emptyDir"));
  CHECK(volume.at("secret").at("secretName") == spec.at("secretName"));
  for (const auto& m : container_of(deployment).at("volumeMounts").as_array())
    if (m.at("mountPath") == kCertDir.c_str()) CHECK(m.at("readOnly") == true);

  // cainjector writes the CA into every webhook configuration.
  int configurations = 0;
  for (const auto& o : rendered.objects) {
    std::string kind(o.at("kind").as_string());
    if (kind != "MutatingWebhookConfiguration" && kind != "ValidatingWebhookConfiguration") continue;
    ++configurations;
    INFO(kind_and_name(o));
    CHECK(o.at("metadata").at("annotations").at("cert-manager.io/inject-ca-from") == "stowage-system/stowage-webhook");
  }
  CHECK(configurations >= 2);
}
