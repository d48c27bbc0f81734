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
                               "Service/stowage-metrics", "PodDisruptionBudget/stowage"})
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
