// deploy/base as a user gets it: rendered by the real kubectl's kustomize (no warning printed), every
// namespaced object in stowage-system, the CRDs exactly as their files, and the rendered stream applied
// with `kubectl apply --server-side` to the test API server twice (create, then a no-op re-apply), the
// stored CRDs equal to what was applied. The test API server stores CustomResourceDefinitions but does
// not act on them (the storage.kubestash.com kinds it serves are its own); crds_test.cpp checks their
// schemas. kubectl must be on PATH: without it these tests fail, they do not skip.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <sys/wait.h>

#include "kube/yaml_json.hpp"
#include "support/api_server.hpp"

namespace json = boost::json;

namespace {

const std::string kBase = std::string(STOWAGE_SOURCE_DIR) + "/deploy/base";
const std::set<std::string> kClusterScopedKinds{"Namespace", "CustomResourceDefinition", "ClusterRole",
                                                "ClusterRoleBinding", "MutatingWebhookConfiguration",
                                                "ValidatingWebhookConfiguration", "PriorityClass"};
const char* const kCrdNames[] = {"backupstorages.storage.kubestash.com", "repositories.storage.kubestash.com",
                                 "snapshots.storage.kubestash.com"};

struct Output {
  int code = -1;
  std::string out, err;
};

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// `command` through the shell, its standard output and error kept apart.
Output run(const std::string& command, const std::filesystem::path& err_file) {
  Output result;
  FILE* pipe = ::popen((command + " 2>'" + err_file.string() + "'").c_str(), "r");
  REQUIRE(pipe);
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) result.out.append(buf, n);
  int status = ::pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.err = read_text(err_file);
  return result;
}

struct Rendered {
  std::string text;
  std::vector<json::object> objects;
};

Rendered render_base(const std::filesystem::path& dir) {
  auto result = run("kubectl kustomize '" + kBase + "'", dir / "kustomize.err");
  INFO("kubectl kustomize deploy/base exited " << result.code << "\n" << result.err);
  REQUIRE(result.code == 0);
  CHECK(result.err.empty());
  auto docs = stowage::kube::parse_yaml_documents(result.out);
  INFO((docs.ok() ? "" : docs.error().message));
  REQUIRE(docs.ok());
  Rendered rendered{result.out, {}};
  for (auto& doc : docs.value()) rendered.objects.push_back(doc.value.as_object());
  return rendered;
}

std::string kind_and_name(const json::object& o) {
  return std::string(o.at("kind").as_string()) + "/" + std::string(o.at("metadata").at("name").as_string());
}

// What `kubectl apply --server-side` prints for `o`: "deployment.apps/stowage serverside-applied".
std::string applied_line(const json::object& o) {
  std::string kind(o.at("kind").as_string()), api_version(o.at("apiVersion").as_string());
  for (auto& c : kind) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto slash = api_version.find('/');
  std::string group = slash == std::string::npos ? "" : "." + api_version.substr(0, slash);
  return kind + group + "/" + std::string(o.at("metadata").at("name").as_string()) + " serverside-applied";
}

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
                               "RoleBinding/stowage-leader-election", "Deployment/stowage", "Service/stowage-webhook",
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
  bool secret_volume = false;
  for (const auto& v : pod.at("volumes").as_array())
    secret_volume = secret_volume || (v.at("name") == volume.c_str() && v.as_object().contains("secret"));
  CHECK(secret_volume);
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
  CHECK(out == "2");
}
