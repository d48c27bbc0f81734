// deploy/overlays as a user gets them: each kustomization (deploy/base and every directory under
// deploy/overlays, so an overlay added later is checked too) rendered by the real `kubectl kustomize`,
// every pod template in it checked against Pod Security "restricted" (support/pod_security.hpp, itself
// shown to refuse a spec broken in each way the standard forbids), and the rendered stream applied with
// `kubectl apply --server-side` to the test API server with RBAC enforced. The Prometheus Operator's
// CRDs are not available offline: data/crds/ holds minimal stand-ins that the test installs first, as a
// user installs the real ones (an overlay needing other CRDs adds its stand-ins there). Then what each
// overlay is for: ha (two replicas on two nodes, leader election), namespaced (its list of namespaces
// named alike everywhere, Roles there and no cluster-wide Secret access: the service account is refused
// Secrets elsewhere), monitoring (the
// ServiceMonitor finds the metrics port, the alerts pass `promtool test rules` and name only series the
// real binary serves). kubectl and promtool must be on PATH: without them these tests fail.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "deploy/kustomize.hpp"
#include "support/api_server.hpp"
#include "support/pod_security.hpp"

namespace json = boost::json;
namespace fs = std::filesystem;
using namespace deploy_test;

namespace {

const std::string kServiceAccount = "system:serviceaccount:stowage-system:stowage";
const fs::path kTestData = fs::path(STOWAGE_SOURCE_DIR) / "tests/deploy/data";

// deploy/base and every overlay directory, in name order.
std::vector<fs::path> kustomizations() {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(kDeploy + "/overlays"))
    if (entry.is_directory() && fs::exists(entry.path() / "kustomization.yaml")) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  out.insert(out.begin(), fs::path(kBase));
  return out;
}

std::string label_of(const fs::path& kustomization) {
  return kustomization.parent_path().filename().string() + "/" + kustomization.filename().string();
}

struct PodTemplate {
  std::string where;  // "Deployment/stowage"
  json::object metadata, spec;
};

// The pod templates of the workload kinds among `objects` (a Pod is its own template).
std::vector<PodTemplate> pod_templates(const std::vector<json::object>& objects) {
  static const std::set<std::string> kWithTemplate{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"};
  std::vector<PodTemplate> out;
  for (const auto& o : objects) {
    const std::string kind = text_of(o.at("kind"));
    const json::object* pod = nullptr;
    if (kWithTemplate.count(kind)) pod = &o.at("spec").at("template").as_object();
    if (kind == "CronJob") pod = &o.at("spec").at("jobTemplate").at("spec").at("template").as_object();
    if (kind == "Pod") pod = &o;
    if (!pod) continue;
    const auto* metadata = pod->if_contains("metadata");
    out.push_back({kind_and_name(o), metadata ? metadata->as_object() : json::object{}, pod->at("spec").as_object()});
  }
  return out;
}

std::map<std::string, json::object> by_kind_and_name(const std::vector<json::object>& objects) {
  std::map<std::string, json::object> out;
  for (const auto& o : objects) out[kind_and_name(o)] = o;
  return out;
}

json::object& the_container(json::object& pod_spec) { return pod_spec.at("containers").as_array()[0].as_object(); }

std::vector<std::string> args_of(const json::object& deployment) {
  std::vector<std::string> out;
  for (const auto& a : deployment.at("spec").at("template").at("spec").at("containers").at(0).at("args").as_array())
    out.push_back(text_of(a));
  return out;
}

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// The test API server with RBAC on, the service account of the manifests as a second user, and the
// stand-in CRDs installed.
struct Cluster {
  test_support::TestApiServer server;
  fs::path sa_kubeconfig;

  explicit Cluster(const fs::path& dir)
      : server(dir / "apiserver", "admin-token-do-not-log",
               {"--authorize-rbac", "--token-user", "sa-token-do-not-log=" + kServiceAccount}) {
    server.write_kubeconfig();
    sa_kubeconfig = server.write_kubeconfig_for_user("sa.kubeconfig", {{"token", "sa-token-do-not-log"}});
    for (const auto& crds : fs::directory_iterator(kTestData / "crds")) {
      auto [code, out] = server.kubectl("apply --server-side -f '" + crds.path().string() + "'");
      INFO(out);
      REQUIRE(code == 0);
    }
  }

  std::pair<int, std::string> as_service_account(const std::string& args) const {
    return server.kubectl_with(sa_kubeconfig, args);
  }
};

}  // namespace

TEST_CASE("overlays: every kustomization renders, and every pod template passes Pod Security restricted") {
  auto dir = test_support::fresh_temp_dir("overlays-restricted");
  std::set<std::string> seen;
  for (const auto& k : kustomizations()) {
    INFO(label_of(k));
    auto rendered = render(k, dir);
    auto named = by_kind_and_name(rendered.objects);
    // The base's parts are in every overlay.
    for (const char* expected : {"Deployment/stowage", "Service/stowage-metrics", "PodDisruptionBudget/stowage"})
      CHECK(named.count(expected) == 1);
    auto templates = pod_templates(rendered.objects);
    CHECK_FALSE(templates.empty());
    for (const auto& t : templates) {
      auto violations = test_support::restricted_violations(t.spec, t.metadata);
      std::string listed;
      for (const auto& v : violations) listed += "\n  " + v;
      INFO(t.where << " breaks Pod Security restricted:" << listed);
      CHECK(violations.empty());
    }
    seen.insert(k.filename().string());
  }
  for (const char* overlay : {"base", "ha", "namespaced", "monitoring"}) CHECK(seen.count(overlay) == 1);
}

TEST_CASE("overlays: the restricted check refuses each thing Pod Security restricted forbids") {
  auto dir = test_support::fresh_temp_dir("overlays-restricted-bad");
  auto templates = pod_templates(render(kBase, dir).objects);
  REQUIRE(templates.size() == 1);
  const json::object good = templates[0].spec;
  REQUIRE(test_support::restricted_violations(good).empty());

  struct Bad {
    const char* what;
    std::function<void(json::object& pod, json::object& metadata)> mutate;
    const char* expected;
  };
  auto container_sc = [](json::object& pod) -> json::object& {
    return the_container(pod)["securityContext"].as_object();
  };
  const std::vector<Bad> cases{
      {"host network", [](json::object& p, json::object&) { p["hostNetwork"] = true; }, "hostNetwork"},
      {"host PID", [](json::object& p, json::object&) { p["hostPID"] = true; }, "hostPID"},
      {"host IPC", [](json::object& p, json::object&) { p["hostIPC"] = true; }, "hostIPC"},
      {"a hostPath volume",
       [](json::object& p, json::object&) {
         p["volumes"].as_array().push_back(json::parse(R"({"name": "root", "hostPath": {"path": "/"}})"));
       },
       "type hostPath"},
      {"an NFS volume",
       [](json::object& p, json::object&) {
         p["volumes"].as_array().push_back(json::parse(R"({"name": "n", "nfs": {"server": "s", "path": "/"}})"));
       },
       "type nfs"},
      {"a privileged container", [&](json::object& p, json::object&) { container_sc(p)["privileged"] = true; },
       "privileged"},
      {"privilege escalation allowed",
       [&](json::object& p, json::object&) { container_sc(p).erase("allowPrivilegeEscalation"); },
       "allowPrivilegeEscalation"},
      {"capabilities not dropped", [&](json::object& p, json::object&) { container_sc(p).erase("capabilities"); },
       "drop does not include ALL"},
      {"a capability added",
       [&](json::object& p, json::object&) {
         container_sc(p)["capabilities"] = json::parse(R"({"drop": ["ALL"], "add": ["SYS_ADMIN"]})");
       },
       "capabilities.add SYS_ADMIN"},
      {"a baseline capability beyond NET_BIND_SERVICE",
       [&](json::object& p, json::object&) {
         container_sc(p)["capabilities"] = json::parse(R"({"drop": ["ALL"], "add": ["CHOWN"]})");
       },
       "capabilities.add CHOWN"},
      {"runAsNonRoot nowhere",
       [&](json::object& p, json::object&) {
         p["securityContext"].as_object().erase("runAsNonRoot");
         container_sc(p).erase("runAsNonRoot");
       },
       "runAsNonRoot is not true"},
      {"runAsNonRoot false in the container", [&](json::object& p, json::object&) { container_sc(p)["runAsNonRoot"] = false; },
       "runAsNonRoot false"},
      {"user 0", [&](json::object& p, json::object&) { container_sc(p)["runAsUser"] = 0; }, "runAsUser 0"},
      {"no seccomp profile", [](json::object& p, json::object&) { p["securityContext"].as_object().erase("seccompProfile"); },
       "no seccompProfile"},
      {"seccomp Unconfined",
       [](json::object& p, json::object&) {
         p["securityContext"].as_object()["seccompProfile"] = json::parse(R"({"type": "Unconfined"})");
       },
       "seccompProfile.type Unconfined"},
      {"a host port",
       [&](json::object& p, json::object&) { the_container(p)["ports"].as_array()[0].as_object()["hostPort"] = 8080; },
       "hostPort 8080"},
      {"an unsafe sysctl",
       [](json::object& p, json::object&) {
         p["securityContext"].as_object()["sysctls"] = json::parse(R"([{"name": "kernel.msgmax", "value": "1"}])");
       },
       "sysctl kernel.msgmax"},
      {"an unmasked /proc", [&](json::object& p, json::object&) { container_sc(p)["procMount"] = "Unmasked"; },
       "procMount Unmasked"},
      {"an SELinux type", [&](json::object& p, json::object&) { container_sc(p)["seLinuxOptions"] = json::parse(R"({"type": "spc_t"})"); },
       "seLinuxOptions.type spc_t"},
      {"a Windows host process",
       [&](json::object& p, json::object&) { container_sc(p)["windowsOptions"] = json::parse(R"({"hostProcess": true})"); },
       "hostProcess"},
      {"AppArmor unconfined (field)",
       [&](json::object& p, json::object&) { container_sc(p)["appArmorProfile"] = json::parse(R"({"type": "Unconfined"})"); },
       "appArmorProfile.type Unconfined"},
      {"AppArmor unconfined (annotation)",
       [](json::object&, json::object& m) {
         m["annotations"] = json::parse(R"({"container.apparmor.security.beta.kubernetes.io/stowage": "unconfined"})");
       },
       "annotation container.apparmor"},
      {"an init container without a security context",
       [](json::object& p, json::object&) {
         p["initContainers"] = json::parse(R"([{"name": "init", "image": "busybox"}])");
       },
       "container init: allowPrivilegeEscalation"},
  };
  for (const auto& bad : cases) {
    INFO(bad.what);
    json::object pod = good, metadata;
    bad.mutate(pod, metadata);
    auto violations = test_support::restricted_violations(pod, metadata);
    std::string listed;
    for (const auto& v : violations) listed += "\n  " + v;
    INFO("violations:" << listed);
    CHECK(std::any_of(violations.begin(), violations.end(),
                      [&](const std::string& v) { return v.find(bad.expected) != std::string::npos; }));
  }
}

TEST_CASE("overlays: ha runs two replicas on two nodes with leader election, one kept through a drain") {
  auto dir = test_support::fresh_temp_dir("overlays-ha");
  auto named = by_kind_and_name(render(kDeploy + "/overlays/ha", dir).objects);
  const auto& deployment = named.at("Deployment/stowage");
  CHECK(deployment.at("spec").at("replicas") == 2);
  CHECK(contains(args_of(deployment), "--leader-elect"));
  const auto& pod_labels = deployment.at("spec").at("template").at("metadata").at("labels");
  const auto& required = deployment.at("spec").at("template").at("spec").at("affinity").at("podAntiAffinity").at(
      "requiredDuringSchedulingIgnoredDuringExecution");
  REQUIRE(required.as_array().size() == 1);
  CHECK(required.at(0).at("topologyKey") == "kubernetes.io/hostname");
  CHECK(required.at(0).at("labelSelector").at("matchLabels") == pod_labels);  // it repels its own pods
  // Anti-affinity leaves no node for a surge pod on two nodes: the update replaces one pod at a time.
  CHECK(deployment.at("spec").at("strategy").at("rollingUpdate").at("maxSurge") == 0);
  const auto& pdb = named.at("PodDisruptionBudget/stowage");
  CHECK(pdb.at("spec").at("maxUnavailable") == 1);
  CHECK(pdb.at("spec").at("selector").at("matchLabels") == pod_labels);
}

// "team-a,team-b" -> {team-a, team-b}.
std::set<std::string> split_list(const std::string& text) {
  std::set<std::string> out;
  for (std::size_t start = 0; start <= text.size();) {
    auto comma = std::min(text.find(',', start), text.size());
    out.insert(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

// Whether `rule` (an RBAC PolicyRule) reaches Secrets: the core group (or "*") and secrets (or "*").
bool grants_secrets(const json::value& rule) {
  auto has = [&](const char* field, const char* name) {
    const auto* list = rule.as_object().if_contains(field);
    if (!list) return false;
    for (const auto& v : list->as_array())
      if (v == name || v == "*") return true;
    return false;
  };
  return has("apiGroups", "") && has("resources", "secrets");
}

TEST_CASE("overlays: namespaced serves its list of namespaces through Roles there, with no cluster-wide Secret access") {
  auto dir = test_support::fresh_temp_dir("overlays-namespaced");
  auto rendered = render(kDeploy + "/overlays/namespaced", dir);
  auto named = by_kind_and_name(rendered.objects);
  auto base = by_kind_and_name(render(kBase, dir).objects);
  const std::set<std::string> served{"team-a", "team-b"};

  // The list in the controller's --namespace, and the same names everywhere else it is written.
  std::set<std::string> flagged;
  for (const auto& arg : args_of(named.at("Deployment/stowage")))
    if (arg.rfind("--namespace=", 0) == 0) flagged = split_list(arg.substr(std::string("--namespace=").size()));
  CHECK(flagged == served);
  std::set<std::string> roles, role_bindings;
  for (const auto& o : rendered.objects) {
    const std::string ns = o.at("metadata").as_object().contains("namespace") ? text_of(o.at("metadata").at("namespace")) : "";
    if (ns == "stowage-system") continue;
    if (o.at("kind") == "Role") {
      roles.insert(ns);
      CHECK(o.at("metadata").at("name") == "stowage");
      // The base ClusterRole's rules, written once in deploy/base/rbac.yaml, copied in whole.
      CHECK(o.at("rules") == base.at("ClusterRole/stowage").at("rules"));
    }
    if (o.at("kind") == "RoleBinding") {
      role_bindings.insert(ns);
      CHECK(o.at("roleRef").at("kind") == "Role");
      CHECK(o.at("roleRef").at("name") == "stowage");
    }
  }
  CHECK(roles == served);
  CHECK(role_bindings == served);
  for (const char* config : {"MutatingWebhookConfiguration/stowage", "ValidatingWebhookConfiguration/stowage"}) {
    INFO(config);
    const auto& selector = named.at(config).at("webhooks").at(0).at("namespaceSelector").at("matchExpressions").at(0);
    CHECK(selector.at("key") == "kubernetes.io/metadata.name");
    CHECK(selector.at("operator") == "In");
    std::set<std::string> values;
    for (const auto& v : selector.at("values").as_array()) values.insert(text_of(v));
    CHECK(values == served);
  }

  // No cluster-wide Secret access: no ClusterRole that reaches Secrets is installed at all, and the only
  // ClusterRoleBinding left is the webhook configurations' (cluster-scoped objects, resourceNames stowage).
  CHECK(named.count("ClusterRole/stowage") == 0);
  CHECK(named.count("ClusterRoleBinding/stowage") == 0);
  for (const auto& o : rendered.objects) {
    INFO(kind_and_name(o));
    if (o.at("kind") == "ClusterRole")
      for (const auto& rule : o.at("rules").as_array()) CHECK_FALSE(grants_secrets(rule));
    if (o.at("kind") == "ClusterRoleBinding") {
      CHECK(o.at("metadata").at("name") == "stowage-webhook-certs");
      CHECK(o.at("roleRef").at("name") == "stowage-webhook-certs");
    }
  }
  for (const auto& rule : named.at("ClusterRole/stowage-webhook-certs").at("rules").as_array()) {
    CHECK(rule.at("apiGroups") == json::array{"admissionregistration.k8s.io"});
    CHECK(rule.at("resourceNames") == json::array{"stowage"});
  }
  // The base itself does grant Secrets cluster-wide (the check above can fail).
  bool base_grants = false;
  for (const auto& rule : base.at("ClusterRole/stowage").at("rules").as_array()) base_grants |= grants_secrets(rule);
  CHECK(base_grants);
}

TEST_CASE("overlays: monitoring scrapes the metrics port, and its alerts pass promtool on stowage's own series") {
  auto dir = test_support::fresh_temp_dir("overlays-monitoring");
  auto rendered = render(kDeploy + "/overlays/monitoring", dir);
  auto named = by_kind_and_name(rendered.objects);

  // ServiceMonitor -> Service (by labels, port by name) -> the Deployment's container port.
  const auto& monitor = named.at("ServiceMonitor/stowage");
  const auto& service = named.at("Service/stowage-metrics");
  for (const auto& kv : monitor.at("spec").at("selector").at("matchLabels").as_object())
    CHECK(service.at("metadata").at("labels").as_object().if_contains(kv.key()) != nullptr);
  for (const auto& kv : monitor.at("spec").at("selector").at("matchLabels").as_object())
    CHECK(service.at("metadata").at("labels").at(kv.key()) == kv.value());
  const auto& endpoint = monitor.at("spec").at("endpoints").at(0);
  CHECK(endpoint.at("honorLabels") == true);  // the storages' own namespace label survives the scrape
  const auto& service_port = service.at("spec").at("ports").at(0);
  CHECK(service_port.at("name") == endpoint.at("port"));
  const auto& deployment = named.at("Deployment/stowage");
  for (const auto& kv : service.at("spec").at("selector").as_object())
    CHECK(deployment.at("spec").at("template").at("metadata").at("labels").at(kv.key()) == kv.value());
  bool port_found = false;
  for (const auto& p : deployment.at("spec").at("template").at("spec").at("containers").at(0).at("ports").as_array())
    if (p.at("name") == service_port.at("targetPort")) {
      port_found = true;
      CHECK(contains(args_of(deployment), "--metrics-bind-address=:" + std::to_string(p.at("containerPort").as_int64())));
    }
  CHECK(port_found);

  // The alerts: promtool checks the rules and runs data/prometheusrule_test.yaml against them.
  const auto& rule = named.at("PrometheusRule/stowage");
  std::ofstream(dir / "rules.json") << json::serialize(json::object{{"groups", rule.at("spec").at("groups")}});
  fs::copy_file(kTestData / "prometheusrule_test.yaml", dir / "prometheusrule_test.yaml",
                fs::copy_options::overwrite_existing);
  for (const std::string& command : {"promtool check rules '" + (dir / "rules.json").string() + "'",
                                    "promtool test rules '" + (dir / "prometheusrule_test.yaml").string() + "'"}) {
    auto result = run(command, dir / "promtool.err");
    INFO(command << "\n" << result.out << result.err);
    CHECK(result.code == 0);
  }
  std::set<std::string> alerts;
  for (const auto& group : rule.at("spec").at("groups").as_array())
    for (const auto& r : group.at("rules").as_array()) alerts.insert(text_of(r.at("alert")));
  CHECK(alerts == std::set<std::string>{"StowageBackupStorageNotReady", "StowageBackupStorageWipeOutFailed",
                                        "StowageControllerDown", "StowageReconcileErrors"});

  // Every series the alerts read (but Prometheus's own `up`) is one the real binary serves: a storage
  // in the offline mode, /metrics scraped.
  std::set<std::string> series;
  static const std::regex kSelector("([a-zA-Z_:][a-zA-Z0-9_:]*)\\{");
  for (const auto& group : rule.at("spec").at("groups").as_array())
    for (const auto& r : group.at("rules").as_array()) {
      std::string expr = text_of(r.at("expr"));
      for (std::sregex_iterator m(expr.begin(), expr.end(), kSelector), end; m != end; ++m)
        if ((*m)[1] != "up") series.insert((*m)[1]);
    }
  CHECK(series.size() == 3);
  fs::create_directories(dir / "manifests");
  fs::create_directories(dir / "data");
  std::ofstream(dir / "manifests/local.yaml")
      << "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: local, namespace: demo}\n"
         "spec:\n  storage:\n    provider: local\n    local: {mountPath: /data, hostPath: {path: /data}}\n"
         "  deletionPolicy: WipeOut\n";
  const int port = test_support::free_port();
  auto stowage = test_support::Server::start(
      {STOWAGE_BINARY, "run", "--manifests", (dir / "manifests").string(), "--state-dir", (dir / "state").string(),
       "--local-root", dir.string(), "--metrics-bind-address", "127.0.0.1:" + std::to_string(port)},
      dir / "stowage.log");
  stowage.wait_for_port(port, dir / "stowage.log");
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = test_support::plain_http(port, "GET", "/metrics").second;
    if (metrics.find("stowage_backupstorage_ready{namespace=\"demo\",name=\"local\",provider=\"local\"} 1") !=
        std::string::npos)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(metrics << "\n" << read_text(dir / "stowage.log"));
  for (const auto& name : series) {
    INFO(name);
    CHECK(metrics.find("\n" + name + "{") != std::string::npos);
  }
}

TEST_CASE("overlays: each rendered kustomization applies with kubectl apply --server-side, RBAC enforced") {
  auto dir = test_support::fresh_temp_dir("overlays-apply");
  for (const auto& k : kustomizations()) {
    INFO(label_of(k));
    auto work = dir / k.filename();
    fs::create_directories(work);
    auto rendered = render(k, work);
    auto manifest = work / "rendered.yaml";
    std::ofstream(manifest) << rendered.text;
    Cluster cluster(work);
    for (const auto& o : rendered.objects) {  // the namespaces an overlay binds in exist before it is applied
      const auto* ns = o.at("metadata").as_object().if_contains("namespace");
      if (ns && o.at("kind") == "RoleBinding" && *ns != "stowage-system")
        REQUIRE(cluster.server.kubectl("create namespace " + text_of(*ns)).first == 0);
    }
    auto [code, out] = cluster.server.kubectl("apply --server-side -f '" + manifest.string() + "'");
    INFO("kubectl exited " << code << "\n" << out);
    REQUIRE(code == 0);
    for (const auto& o : rendered.objects) {
      CHECK(out.find(applied_line(o)) != std::string::npos);
      const auto* ns = o.at("metadata").as_object().if_contains("namespace");
      // kind.group/name, as applied_line() has it: "deployment.apps/stowage serverside-applied"
      std::string line = applied_line(o);
      std::string resource = line.substr(0, line.find('/'));
      auto [got, stored] = cluster.server.kubectl("get " + resource + " " + text_of(o.at("metadata").at("name")) +
                                                   (ns ? " -n " + text_of(*ns) : "") + " -o name");
      INFO(kind_and_name(o) << ": " << stored);
      CHECK(got == 0);
    }
  }
}

TEST_CASE("overlays: under namespaced the service account reads Secrets in its namespaces only") {
  auto dir = test_support::fresh_temp_dir("overlays-namespaced-rbac");
  auto rendered = render(kDeploy + "/overlays/namespaced", dir);
  auto manifest = dir / "rendered.yaml";
  std::ofstream(manifest) << rendered.text;
  Cluster cluster(dir);
  for (const char* ns : {"team-a", "team-b", "other"})
    REQUIRE(cluster.server.kubectl(std::string("create namespace ") + ns).first == 0);
  auto [code, out] = cluster.server.kubectl("apply --server-side -f '" + manifest.string() + "'");
  INFO(out);
  REQUIRE(code == 0);

  for (const char* ns : {"team-a", "team-b"})
    for (const char* what : {"secrets", "backupstorages", "jobs", "repositories"}) {
      const std::string allowed = std::string("get ") + what + " -n " + ns;
      auto [c, o] = cluster.as_service_account(allowed);
      INFO(allowed << ": " << o);
      CHECK(c == 0);
    }
  auto [lease_code, lease] = cluster.as_service_account("get lease stowage-leader -n stowage-system");
  CHECK_THAT(lease, Catch::Contains("NotFound"));  // allowed to look, nothing there yet
  for (const auto& [refused, message] : std::vector<std::pair<std::string, std::string>>{
           {"get secrets -A", "cannot list resource \"secrets\" in API group \"\" at the cluster scope"},
           {"get secrets -n other", "cannot list resource \"secrets\" in API group \"\" in the namespace \"other\""},
           {"get secrets -n stowage-system", "cannot list resource \"secrets\" in API group \"\" in the namespace \"stowage-system\""},
           {"get backupstorages -n other", "cannot list resource \"backupstorages\""},
           {"get backupstorages -A", "at the cluster scope"}}) {
    auto [c, o] = cluster.as_service_account(refused);
    INFO(refused << ": " << o);
    CHECK(c != 0);
    CHECK_THAT(o, Catch::Contains(message));
  }
}
