// deploy/base/rbac.yaml is enough, and a missing rule is named: the real `stowage run` as the service account
// deploy/base/rbac.yaml binds (a bearer token the test API server maps to
// system:serviceaccount:stowage-system:stowage), against the server with --authorize-rbac, which decides
// every request of that user from the Roles and bindings stored in it, as a real API server's RBAC
// authorizer does, and with --enforce-owner-references, as the OwnerReferencesPermissionEnforcement
// admission plugin (on in OpenShift) does for the volume Jobs' blockOwnerDeletion. The administrator
// (kubectl here) needs no binding. The server counts every 403.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <optional>

#include "common/crypto.hpp"
#include "support.hpp"
#include "kube_cluster.hpp"
#include "support/api_server.hpp"
#include "support/moto_server.hpp"

namespace json = boost::json;
using test_support::TestApiServer;

namespace {

const std::string kServiceAccount = "system:serviceaccount:stowage-system:stowage";
const std::string kRbacYaml = std::string(STOWAGE_SOURCE_DIR) + "/deploy/base/rbac.yaml";

std::string b64(const std::string& s) { return stowage::crypto::base64_encode(s); }
std::string text(const json::value& v) { return std::string(v.as_string()); }

// The test API server with RBAC on, the namespaces of deploy/base/rbac.yaml and of the storages, and two
// kubeconfigs: the administrator's (kubectl) and the service account's (stowage).
struct RbacCluster : kube_e2e::KubeCluster {
  test::fs::path admin_kubeconfig, sa_kubeconfig;

  explicit RbacCluster(const std::string& name)
      : KubeCluster("rbac-" + name, "admin-token-do-not-log",
                    {"--authorize-rbac", "--enforce-owner-references", "--token-user",
                     "sa-token-do-not-log=" + kServiceAccount}),
        admin_kubeconfig(server.write_kubeconfig("demo")),
        sa_kubeconfig(server.write_kubeconfig_for_user("sa.kubeconfig", {{"token", "sa-token-do-not-log"}},
                                                       "stowage-system")) {
    kubectl("create namespace stowage-system");
    kubectl("create namespace demo");
  }

  // stowage run as the service account, with leader election in stowage-system as deployed.
  test::Child start(const std::string& log_name, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"--leader-elect", "--leader-election-namespace", "stowage-system"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(sa_kubeconfig, log_name, "debug", std::move(args));
  }

  std::int64_t forbidden() const { return server.stats().at("forbidden").as_int64(); }
  std::string denials() const { return json::serialize(server.stats().at("denials")); }
};

std::string rbac_yaml() {
  std::string yaml = test::read_file(kRbacYaml);
  REQUIRE_FALSE(yaml.empty());
  return yaml;
}

// deploy/base/rbac.yaml with `from` (which must be there) replaced by `to`.
std::string rbac_yaml_with(const std::string& from, const std::string& to) {
  std::string yaml = rbac_yaml();
  auto at = yaml.find(from);
  INFO("deploy/base/rbac.yaml no longer holds: " << from);
  REQUIRE(at != std::string::npos);
  return yaml.replace(at, from.size(), to);
}

std::string local_storage(const std::string& name, const std::string& policy = "Delete") {
  return test::local_storage(name, "/data/" + name, policy);
}

std::optional<json::value> job_of(const RbacCluster& c, const std::string& storage, const std::string& ns = "demo") {
  auto [code, out] = c.server.kubectl("get jobs -n " + ns + " -l kubestash.com/invoker-name=" + storage + " -o json");
  if (code != 0) return std::nullopt;
  auto list = json::parse(out);
  if (list.at("items").as_array().empty()) return std::nullopt;
  return list.at("items").as_array()[0];
}

// The kubelet's part of a Job, as kubectl (the administrator) writes it.
void finish_job(const RbacCluster& c, const std::string& job, bool succeeded, const std::string& ns = "demo") {
  std::string status =
      succeeded ? R"({"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}})"
                : R"({"status":{"failed":4,"conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded","message":"Job has reached the specified backoff limit"}]}})";
  c.kubectl("patch job " + job + " -n " + ns + " --subresource=status --type=merge -p '" + status + "'");
}

bool has_event(const RbacCluster& c, const std::string& regarding, const std::string& type, const std::string& reason) {
  auto events = c.get("events.events.k8s.io -n demo");
  for (const auto& e : events.at("items").as_array())
    if (text(e.at("regarding").at("name")) == regarding && text(e.at("type")) == type &&
        text(e.at("reason")) == reason && e.at("reportingController") == "stowage")
      return true;
  return false;
}

}  // namespace

TEST_CASE("rbac e2e: the service account of deploy/base/rbac.yaml can do everything the controller does") {
  RbacCluster cluster("enough");
  cluster.kubectl("apply -f '" + kRbacYaml + "'");
  // The server enforces RBAC for that account: what rbac.yaml does not grant is refused.
  auto [whoami_code, whoami] =
      cluster.server.kubectl_with(cluster.sa_kubeconfig, "auth whoami -o jsonpath={.status.userInfo.username}");
  REQUIRE(whoami_code == 0);
  REQUIRE(whoami == kServiceAccount);
  auto [cm_code, cm_out] = cluster.server.kubectl_with(cluster.sa_kubeconfig, "get configmaps -n demo");
  INFO(cm_out);
  REQUIRE(cm_code != 0);
  REQUIRE_THAT(cm_out, Catch::Contains("cannot list resource \"configmaps\""));
  cluster.server.control({{"action", "reset_stats"}});

  test_support::MotoServer moto;
  moto.make_bucket("rbac-e2e");
  moto.put_objects("rbac-e2e", "wipe/data/", 3);
  const auto& creds = moto.credentials();
  auto s3_storage = [&](const std::string& name, const std::string& prefix, const std::string& policy) {
    return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
           ", namespace: demo}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: " + moto.endpoint() +
           ", bucket: rbac-e2e, region: us-east-1, prefix: " + prefix + ", secretName: s3-creds}\n  deletionPolicy: " +
           policy + "\n";
  };
  std::string secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: s3-creds, namespace: demo}\ndata:\n"
                       "  AWS_ACCESS_KEY_ID: " + b64(creds.access_key_id) +
                       "\n  AWS_SECRET_ACCESS_KEY: " + b64(creds.secret_access_key) + "\n";
  std::string repository = "apiVersion: storage.kubestash.com/v1alpha1\nkind: Repository\nmetadata: {name: repo, "
                           "namespace: demo}\nspec:\n  storageRef: {name: s3, namespace: demo}\n  path: /repo\n"
                           "  appRef: {apiGroup: apps, kind: Deployment, name: app, namespace: demo}\n";
  cluster.apply("objects", secret + "---\n" + s3_storage("s3", "/backup/s3", "Delete") + "---\n" +
                               s3_storage("s3-wipe", "/wipe", "WipeOut") + "---\n" + repository + "---\n" +
                               local_storage("job-ok") + "---\n" + local_storage("job-failed"));
  cluster.kubectl(R"(patch repositories repo -n demo --subresource=status --type=merge -p '{"status":{"size":"512 B"}}')");

  auto child = cluster.start("run", {"--local-volume-mode", "job", "--volume-job-image", "stowage:test"});
  LAZY_INFO(cluster.log("run"));
  INFO("denials: " << cluster.denials());

  // A cloud storage with its Secret: Ready, with the Repository in its status.
  REQUIRE(test::eventually([&] { return cluster.phase("s3") == "Ready" && cluster.phase("s3-wipe") == "Ready"; }));
  REQUIRE(test::eventually([&] {
    auto [code, out] = cluster.server.kubectl("get bs s3 -n demo -o jsonpath={.status.totalSize}");
    return code == 0 && out == "512 B";
  }));
  CHECK(moto.get_object("rbac-e2e", "backup/s3/metadata.yaml").has_value());

  // Local volumes through Jobs: one completes (Ready), one fails (NotReady; its pods are listed).
  REQUIRE(test::eventually([&] { return job_of(cluster, "job-ok") && job_of(cluster, "job-failed"); }));
  finish_job(cluster, text(job_of(cluster, "job-ok")->at("metadata").at("name")), true);
  finish_job(cluster, text(job_of(cluster, "job-failed")->at("metadata").at("name")), false);
  REQUIRE(test::eventually([&] { return cluster.phase("job-ok") == "Ready"; }));
  REQUIRE(test::eventually([&] {
    auto [code, out] = cluster.server.kubectl(
        "get bs job-failed -n demo -o jsonpath='{.status.conditions[?(@.type==\"BackendInitialized\")].message}'");
    return code == 0 && out.find("BackoffLimitExceeded") != std::string::npos;
  }));
  CHECK(cluster.phase("job-failed") == "NotReady");

  // Events, written as the service account.
  REQUIRE(test::eventually([&] {
    return has_event(cluster, "s3", "Normal", "BackendInitializationSucceeded") &&
           has_event(cluster, "job-ok", "Normal", "BackendInitializationSucceeded") &&
           has_event(cluster, "job-failed", "Warning", "BackendInitializationFailed");
  }));

  // The Lease, held in stowage-system.
  auto lease = cluster.get("lease stowage-leader -n stowage-system");
  CHECK_FALSE(text(lease.at("spec").at("holderIdentity")).empty());

  // WipeOut: a cloud prefix emptied; a Job-mode volume through its cleaner Job, twice under one name
  // (the second storage's cleaner replaces the Job its predecessor left: a delete).
  cluster.kubectl("delete bs s3-wipe -n demo --timeout=30s");
  CHECK(moto.list_keys("rbac-e2e").size() == 1);  // only backup/s3/metadata.yaml is left
  for (int round = 0; round < 2; ++round) {
    INFO("WipeOut round " << round);
    cluster.apply("wipe" + std::to_string(round), local_storage("wipe", "WipeOut"));
    std::string uid = text(cluster.get("bs wipe -n demo").at("metadata").at("uid"));
    REQUIRE(test::eventually([&] {
      auto [code, out] = cluster.server.kubectl("get bs wipe -n demo -o jsonpath={.metadata.finalizers}");
      return code == 0 && out.find("kubestash.com/cleanup") != std::string::npos;
    }));
    cluster.kubectl("delete bs wipe -n demo --wait=false");
    REQUIRE(test::eventually([&] {
      auto [code, out] = cluster.server.kubectl("get job cleanup-wipe -n demo -o json");
      return code == 0 &&
             text(json::parse(out).at("metadata").at("labels").at("stowage.dev/storage-uid")) == uid;
    }));
    finish_job(cluster, "cleanup-wipe", true);
    REQUIRE(test::eventually([&] { return cluster.server.kubectl("get bs wipe -n demo").first != 0; }));
  }

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  CHECK_THAT(cluster.log("run"), Catch::Contains("Lease released"));
  // Every request the controller made was allowed by deploy/base/rbac.yaml.
  CHECK(cluster.forbidden() == 0);
  auto stats = cluster.server.stats();
  for (const char* verb : {"list", "watch", "get", "create", "patch", "update", "delete"}) {
    INFO(verb);
    CHECK(stats.at("requests_by_verb").as_object().if_contains(verb) != nullptr);
  }
  // Requests only the controller makes, on its rarer paths, were made (and allowed): the failed Job's
  // pods listed, the predecessor's cleaner Job deleted, the WipeOut progress written, the Lease written.
  const auto& by_path = stats.at("requests_by_path").as_object();
  for (const char* request : {"list /api/v1/namespaces/demo/pods", "delete /apis/batch/v1/namespaces/demo/jobs/cleanup-wipe",
                              "patch /apis/storage.kubestash.com/v1alpha1/namespaces/demo/backupstorages/s3-wipe/status",
                              "create /apis/coordination.k8s.io/v1/namespaces/stowage-system/leases",
                              "update /apis/coordination.k8s.io/v1/namespaces/stowage-system/leases/stowage-leader",
                              "create /apis/events.k8s.io/v1/namespaces/demo/events"}) {
    INFO(request << " in " << json::serialize(by_path));
    CHECK(by_path.if_contains(request) != nullptr);
  }
  std::string log = cluster.log("run");
  CHECK(log.find("sa-token-do-not-log") == std::string::npos);
  CHECK(log.find("forbidden") == std::string::npos);
}

TEST_CASE("rbac e2e: a ClusterRole without create on events is named in the log, and reconciling goes on") {
  RbacCluster cluster("no-events");
  cluster.apply("rbac", rbac_yaml_with("  - apiGroups: [\"events.k8s.io\"]\n    resources: [\"events\"]\n"
                                       "    verbs: [\"create\", \"patch\"]\n",
                                       ""));
  cluster.apply("storage", local_storage("local"));
  auto child = cluster.start("run");
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("local") == "Ready"; }));
  REQUIRE(test::eventually([&] { return cluster.log("run").find("Events cannot be written") != std::string::npos; }));
  std::string log = cluster.log("run");
  CHECK_THAT(log, Catch::Contains("grant create,patch on events.events.k8s.io"));
  CHECK_THAT(log, Catch::Contains("User \\\"" + kServiceAccount + "\\\" cannot create resource \\\"events\\\"") ||
                      Catch::Contains("User \"" + kServiceAccount + "\" cannot create resource \"events\""));
  CHECK(cluster.forbidden() >= 1);
  CHECK_THAT(cluster.denials(), Catch::Contains("cannot create resource \\\"events\\\" in API group "
                                                "\\\"events.k8s.io\\\" in the namespace \\\"demo\\\""));
  // Still running and still reconciling: a second storage goes Ready too.
  cluster.apply("second", local_storage("local-2"));
  REQUIRE(test::eventually([&] { return cluster.phase("local-2") == "Ready"; }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("rbac e2e: without list and watch on secrets the controller says so, and recovers once granted") {
  RbacCluster cluster("no-secret-list");
  cluster.apply("rbac", rbac_yaml_with("    resources: [\"secrets\"]\n    verbs: [\"get\", \"list\", \"watch\"]\n",
                                       "    resources: [\"secrets\"]\n    verbs: [\"get\"]\n"));
  cluster.apply("storage", local_storage("local"));
  auto child = cluster.start("run");
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return test::count_of(cluster.dir / "run.log", "list failed: list /api/v1/secrets: forbidden") >= 1; }));
  std::string log = cluster.log("run");
  CHECK_THAT(log, Catch::Contains("forbidden (HTTP 403"));
  CHECK_THAT(log, Catch::Contains("cannot list resource") && Catch::Contains("secrets") &&
                      Catch::Contains("at the cluster scope"));
  CHECK(cluster.phase("local").empty());  // nothing is reconciled before both caches have synced
  CHECK(cluster.forbidden() >= 1);

  // Granted: the informer's next attempt lists, and the storage goes Ready (the process never stopped).
  cluster.kubectl("apply -f '" + kRbacYaml + "'");
  REQUIRE(test::eventually([&] { return cluster.phase("local") == "Ready"; }, std::chrono::seconds(60)));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("rbac e2e: without update on backupstorages/finalizers the initializer Job is refused, and the storage says why") {
  RbacCluster cluster("no-finalizers");
  cluster.apply("rbac", rbac_yaml_with("  - apiGroups: [\"storage.kubestash.com\"]\n"
                                       "    resources: [\"backupstorages/finalizers\"]  # the volume Jobs' "
                                       "ownerReferences (blockOwnerDeletion)\n    verbs: [\"update\"]\n",
                                       ""));
  cluster.apply("storage", local_storage("local"));
  auto child = cluster.start("run", {"--local-volume-mode", "job", "--volume-job-image", "stowage:test"});
  LAZY_INFO(cluster.log("run"));
  std::string message;
  REQUIRE(test::eventually([&] {
    auto [code, out] = cluster.server.kubectl(
        "get bs local -n demo -o jsonpath='{.status.conditions[?(@.type==\"BackendInitialized\")].message}'");
    message = out;
    return code == 0 && out.find("blockOwnerDeletion") != std::string::npos;
  }));
  INFO(message);
  CHECK_THAT(message, Catch::Contains("cannot update resource \"backupstorages/finalizers\""));
  CHECK(cluster.phase("local") == "NotReady");
  CHECK(cluster.forbidden() >= 1);
  CHECK_FALSE(job_of(cluster, "local").has_value());
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

namespace {

std::string repository_yaml(const std::string& name, const std::string& ns, const std::string& storage) {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: Repository\nmetadata: {name: " + name + ", namespace: " +
         ns + "}\nspec:\n  storageRef: {name: " + storage + ", namespace: demo}\n  path: /" + name +
         "\n  appRef: {apiGroup: apps, kind: Deployment, name: app, namespace: " + ns + "}\n";
}

std::string snapshot_yaml(const std::string& name, const std::string& ns, const std::string& repository,
                          bool held = false) {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: Snapshot\nmetadata:\n  name: " + name +
         "\n  namespace: " + ns + (held ? "\n  finalizers: [example.com/hold]" : "") +
         "\nspec: {repository: " + repository + ", snapshotID: " + name + ", deletionPolicy: Delete}\n";
}

bool exists(const RbacCluster& c, const std::string& what) { return c.server.kubectl("get " + what).first == 0; }

}  // namespace

TEST_CASE("rbac e2e: deleting a BackupStorage deletes its Repositories and their Snapshots first, as KubeStash does") {
  RbacCluster cluster("dependents");
  cluster.kubectl("apply -f '" + kRbacYaml + "'");
  cluster.kubectl("create namespace apps");
  // keep (Delete) has Repositories in demo and apps; wipe (WipeOut) one in demo; other keeps its own.
  // A Snapshot held by a finalizer of another controller in each deleted storage's Repositories, and
  // one in apps naming a Repository "repo-keep" that does not exist there (not keep's).
  cluster.apply("storages", local_storage("keep") + "---\n" + local_storage("wipe", "WipeOut") + "---\n" +
                                local_storage("other"));
  cluster.apply("dependents",
                repository_yaml("repo-keep", "demo", "keep") + "---\n" + repository_yaml("repo-apps", "apps", "keep") +
                    "---\n" + repository_yaml("repo-wipe", "demo", "wipe") + "---\n" +
                    repository_yaml("repo-other", "demo", "other") + "---\n" +
                    snapshot_yaml("snap-1", "demo", "repo-keep") + "---\n" +
                    snapshot_yaml("snap-held", "demo", "repo-keep", true) + "---\n" +
                    snapshot_yaml("snap-apps", "apps", "repo-apps") + "---\n" +
                    snapshot_yaml("snap-wipe", "demo", "repo-wipe", true) + "---\n" +
                    snapshot_yaml("snap-other", "demo", "repo-other") + "---\n" +
                    snapshot_yaml("snap-not-keeps", "apps", "repo-keep"));
  auto child = cluster.start("run");
  LAZY_INFO(cluster.log("run"));
  INFO("denials: " << cluster.denials());
  REQUIRE(test::eventually([&] {
    return cluster.phase("keep") == "Ready" && cluster.phase("wipe") == "Ready" && cluster.phase("other") == "Ready";
  }));
  REQUIRE(test::eventually([&] {  // the Repository cache has them all (status.repositories)
    auto [code, out] = cluster.server.kubectl("get bs keep -n demo -o jsonpath={.status.repositories[*].name}");
    return code == 0 && out == "repo-apps repo-keep";
  }));
  test::write_file(cluster.root / "data/wipe/repo-wipe/data", "a backup");

  cluster.kubectl("delete bs keep wipe -n demo --wait=false");
  // What no finalizer holds goes; the held Snapshots wait, and their Repositories after them; the
  // storages keep their finalizer and say what they wait for; nothing is wiped yet.
  REQUIRE(test::eventually([&] {
    return !exists(cluster, "snapshot snap-1 -n demo") && !exists(cluster, "snapshot snap-apps -n apps") &&
           !exists(cluster, "repository repo-apps -n apps");
  }));
  auto waiting_message = [&](const std::string& bs) {
    auto [code, out] = cluster.server.kubectl(
        "get bs " + bs + " -n demo -o jsonpath='{.status.conditions[?(@.type==\"RepositoriesDeleted\")].message}'");
    return code == 0 ? out : std::string();
  };
  REQUIRE(test::eventually([&] {
    return waiting_message("keep").find("Snapshot demo/snap-held (finalizers: example.com/hold)") != std::string::npos &&
           waiting_message("wipe").find("Snapshot demo/snap-wipe (finalizers: example.com/hold)") != std::string::npos;
  }));
  CHECK_THAT(waiting_message("keep"), Catch::Contains("Repository demo/repo-keep"));
  CHECK_FALSE(cluster.get("snapshot snap-held -n demo").at("metadata").as_object().if_contains("deletionTimestamp") ==
              nullptr);
  CHECK(cluster.get("repository repo-keep -n demo").at("metadata").as_object().if_contains("deletionTimestamp") ==
        nullptr);  // not deleted while its Snapshots are there
  CHECK(exists(cluster, "repository repo-wipe -n demo"));
  CHECK(exists(cluster, "bs keep -n demo"));
  CHECK(exists(cluster, "bs wipe -n demo"));
  CHECK(test::fs::exists(cluster.root / "data/wipe/repo-wipe/data"));  // the wipe comes after the Repositories

  // The other controller lets its Snapshots go: the Repositories follow, then the storages (wiped for WipeOut).
  for (const char* held : {"snap-held", "snap-wipe"})
    cluster.kubectl(std::string("patch snapshot ") + held +
                    " -n demo --type=json -p '[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]'");
  REQUIRE(test::eventually([&] { return !exists(cluster, "bs keep -n demo") && !exists(cluster, "bs wipe -n demo"); },
                           std::chrono::seconds(60)));
  CHECK_FALSE(exists(cluster, "repository repo-keep -n demo"));
  CHECK_FALSE(exists(cluster, "repository repo-wipe -n demo"));
  CHECK_FALSE(exists(cluster, "snapshot snap-held -n demo"));
  CHECK_FALSE(test::fs::exists(cluster.root / "data/wipe/repo-wipe/data"));
  CHECK(test::fs::exists(cluster.root / "data/keep/metadata.yaml"));  // Delete keeps the data
  // Another storage's objects, and a Snapshot of a Repository of the same name elsewhere, stay.
  CHECK(exists(cluster, "repository repo-other -n demo"));
  CHECK(exists(cluster, "snapshot snap-other -n demo"));
  CHECK(exists(cluster, "snapshot snap-not-keeps -n apps"));
  CHECK(cluster.phase("other") == "Ready");

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  // Every request was allowed by deploy/base/rbac.yaml, the deletes among them.
  CHECK(cluster.forbidden() == 0);
  const auto stats = cluster.server.stats();
  const auto& by_path = stats.at("requests_by_path").as_object();
  for (const char* request : {"list /apis/storage.kubestash.com/v1alpha1/namespaces/apps/snapshots",
                              "delete /apis/storage.kubestash.com/v1alpha1/namespaces/demo/snapshots/snap-1",
                              "delete /apis/storage.kubestash.com/v1alpha1/namespaces/apps/repositories/repo-apps",
                              "delete /apis/storage.kubestash.com/v1alpha1/namespaces/demo/repositories/repo-wipe"}) {
    INFO(request << " in " << json::serialize(by_path));
    CHECK(by_path.if_contains(request) != nullptr);
  }
}

TEST_CASE("rbac e2e: deploy/overlays/namespaced is enough for stowage run --namespace=team-a,team-b, and grants nothing elsewhere") {
  RbacCluster cluster("namespaced");
  // The overlay as a user applies it: Roles in team-a and team-b, no ClusterRole for the controller; the
  // one ClusterRoleBinding left is the webhook configurations' (overlays_test.cpp checks its rules).
  std::string rendered = cluster.kubectl("kustomize '" STOWAGE_SOURCE_DIR "/deploy/overlays/namespaced'");
  REQUIRE(rendered.find("kind: RoleBinding") != std::string::npos);
  REQUIRE(rendered.find("kind: ClusterRoleBinding\nmetadata:\n  name: stowage\n") == std::string::npos);
  REQUIRE(rendered.find("kind: ClusterRole\nmetadata:\n  name: stowage\n") == std::string::npos);
  REQUIRE(rendered.find("kind: ClusterRoleBinding\nmetadata:\n  name: stowage-webhook-certs\n") != std::string::npos);
  const std::string flag = "--namespace=team-a,team-b";  // as the overlay's Deployment runs it
  REQUIRE(rendered.find("- " + flag + "\n") != std::string::npos);
  for (const char* ns : {"team-a", "team-b", "other"}) cluster.kubectl(std::string("create namespace ") + ns);
  cluster.apply("namespaced", rendered);
  // This test is about RBAC; admission through stowage's webhook is webhook_e2e_test.cpp's. Without a
  // webhook served here, its configurations (failurePolicy Fail) would refuse every storage.
  cluster.kubectl("delete mutatingwebhookconfiguration stowage");
  cluster.kubectl("delete validatingwebhookconfiguration stowage");

  // A cloud storage with its Secret in each namespace served (each namespace's Secret informer), a local
  // volume through a Job in team-b (its Job informer), and one of each in a namespace not served.
  test_support::MotoServer moto;
  moto.make_bucket("namespaced");
  const auto& creds = moto.credentials();
  auto s3_in = [&](const std::string& ns) {
    return "apiVersion: v1\nkind: Secret\nmetadata: {name: s3-creds, namespace: " + ns + "}\ndata:\n"
           "  AWS_ACCESS_KEY_ID: " + b64(creds.access_key_id) + "\n  AWS_SECRET_ACCESS_KEY: " +
           b64(creds.secret_access_key) + "\n---\n"
           "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: s3, namespace: " + ns +
           "}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: " + moto.endpoint() +
           ", bucket: namespaced, region: us-east-1, prefix: /" + ns + ", secretName: s3-creds}\n"
           "  deletionPolicy: Delete\n";
  };
  cluster.apply("storages", s3_in("team-a") + "---\n" + s3_in("team-b") + "---\n" + s3_in("other") + "---\n" +
                                test::local_storage("mine", "/data/mine", "Delete", "team-b") + "---\n" +
                                test::local_storage("theirs", "/data/theirs", "Delete", "other"));
  auto phase = [&](const std::string& ns, const std::string& name) {
    auto [code, out] = cluster.server.kubectl("get bs " + name + " -n " + ns + " -o jsonpath={.status.phase}");
    return code == 0 ? out : "";
  };

  auto child = cluster.start("run", {flag, "--local-volume-mode", "job", "--volume-job-image", "stowage:test"});
  LAZY_INFO(cluster.log("run"));
  INFO("denials: " << cluster.denials());
  REQUIRE(test::eventually([&] { return phase("team-a", "s3") == "Ready" && phase("team-b", "s3") == "Ready"; }));
  CHECK(moto.get_object("namespaced", "team-a/metadata.yaml").has_value());
  CHECK(moto.get_object("namespaced", "team-b/metadata.yaml").has_value());
  REQUIRE(test::eventually([&] { return job_of(cluster, "mine", "team-b").has_value(); }));
  finish_job(cluster, text(job_of(cluster, "mine", "team-b")->at("metadata").at("name")), true, "team-b");
  REQUIRE(test::eventually([&] { return phase("team-b", "mine") == "Ready"; }));
  CHECK_FALSE(text(cluster.get("lease stowage-leader -n stowage-system").at("spec").at("holderIdentity")).empty());
  CHECK_THAT(cluster.log("run"), Catch::Contains("watching BackupStorages in namespaces team-a, team-b"));

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  // The storages in another namespace were never seen, and nothing the controller asked for was refused.
  CHECK(phase("other", "s3").empty());
  CHECK(phase("other", "theirs").empty());
  CHECK_FALSE(moto.get_object("namespaced", "other/metadata.yaml").has_value());
  CHECK(cluster.forbidden() == 0);
  auto [code, out] = cluster.server.kubectl_with(cluster.sa_kubeconfig, "get secrets -n other");
  CHECK(code != 0);
  CHECK_THAT(out, Catch::Contains("cannot list resource \"secrets\""));
}

namespace {

const char* const kWebhookConfigurations = R"(apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: stowage}
webhooks:
  - name: mutate.backupstorage.stowage.dev
    clientConfig: {service: {name: stowage-webhook, namespace: stowage-system, path: /mutate}}
    sideEffects: None
    admissionReviewVersions: [v1]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: stowage}
webhooks:
  - name: validate.backupstorage.stowage.dev
    clientConfig: {service: {name: stowage-webhook, namespace: stowage-system, path: /validate}}
    sideEffects: None
    admissionReviewVersions: [v1]
  - name: validate-2.backupstorage.stowage.dev
    clientConfig: {service: {name: stowage-webhook, namespace: stowage-system, path: /validate}}
    sideEffects: None
    admissionReviewVersions: [v1]
)";

// The caBundle of every webhook of a configuration, as kubectl's jsonpath prints them.
std::string ca_bundles(const RbacCluster& c, const std::string& kind) {
  auto [code, out] = c.server.kubectl("get " + kind + " stowage -o jsonpath={.webhooks[*].clientConfig.caBundle}");
  return code == 0 ? out : "";
}

}  // namespace

TEST_CASE("rbac e2e: --webhook-cert-self-signed as the service account makes the Secret and the files and writes both "
          "caBundles") {
  RbacCluster cluster("webhook-certs");
  cluster.kubectl("apply -f '" + kRbacYaml + "'");
  cluster.apply("webhooks", kWebhookConfigurations);
  const auto cert_dir = cluster.dir / "certs";

  // Without the flag, nothing of it happens.
  {
    auto child = cluster.start("plain");
    REQUIRE(test::eventually([&] { return cluster.log("plain").find("caches synced") != std::string::npos; }));
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);
    CHECK(cluster.server.kubectl("get secret stowage-webhook-cert -n stowage-system").first != 0);
    CHECK(ca_bundles(cluster, "mutatingwebhookconfiguration").empty());
  }

  std::string ca;
  for (const char* run : {"first", "second"}) {
    INFO(run << " run; denials: " << cluster.denials());
    auto child = cluster.start(run, {"--webhook-cert-self-signed", "--webhook-cert-dir", cert_dir.string()});
    LAZY_INFO(cluster.log(run));
    std::string secret_ca;
    REQUIRE(test::eventually([&] {
      auto [code, out] = cluster.server.kubectl(
          "get secret stowage-webhook-cert -n stowage-system -o jsonpath='{.data.ca\\.crt}'");
      secret_ca = code == 0 ? out : "";
      return !secret_ca.empty() && ca_bundles(cluster, "mutatingwebhookconfiguration") == secret_ca &&
             ca_bundles(cluster, "validatingwebhookconfiguration") == secret_ca + " " + secret_ca;
    }));
    if (ca.empty()) ca = secret_ca;
    CHECK(secret_ca == ca);  // the second run reuses the first's CA
    CHECK(cluster.get("secret stowage-webhook-cert -n stowage-system").at("type") == "kubernetes.io/tls");
    auto [code, crt] =
        cluster.server.kubectl("get secret stowage-webhook-cert -n stowage-system -o jsonpath='{.data.tls\\.crt}'");
    REQUIRE(code == 0);
    REQUIRE(test::eventually([&] { return test::fs::exists(cert_dir / "tls.crt"); }));
    CHECK(b64(test::read_file(cert_dir / "tls.crt")) == crt);
    CHECK((test::fs::status(cert_dir / "tls.key").permissions() & test::fs::perms::all) ==
          (test::fs::perms::owner_read | test::fs::perms::owner_write));
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);
    std::string log = cluster.log(run);
    CHECK(log.find("PRIVATE KEY") == std::string::npos);
    CHECK(log.find("sa-token-do-not-log") == std::string::npos);
  }
  // Every request allowed by deploy/base/rbac.yaml: the create, the reads, the patches.
  CHECK(cluster.forbidden() == 0);
  const auto stats = cluster.server.stats();
  const auto& by_path = stats.at("requests_by_path").as_object();
  for (const char* request :
       {"create /api/v1/namespaces/stowage-system/secrets",
        "get /api/v1/namespaces/stowage-system/secrets/stowage-webhook-cert",
        "patch /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/stowage",
        "patch /apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/stowage"}) {
    INFO(request << " in " << json::serialize(by_path));
    CHECK(by_path.if_contains(request) != nullptr);
  }
}
