// The local-volume helper Jobs: their JSON field by field, their names, reading their outcome, the
// init-volume / wipe-volume commands on a real directory, and the Jobs as the test API server and the
// real kubectl take them (kubectl's typed decoding catches a misspelt or mistyped field).
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <regex>
#include <utility>
#include <vector>

#include "engine/volume_commands.hpp"
#include "engine/volume_job.hpp"
#include "kube/model.hpp"
#include "storage/metadata.hpp"
#include "support.hpp"
#include "support/api_server.hpp"
#include "support/pod_security.hpp"

namespace json = boost::json;
using namespace stowage::engine;

namespace {

constexpr const char* kUid = "0b3e6a52-6a1f-4c3e-9d55-2f0c8a7e1b11";

stowage::kube::BackupStorage storage_from(const std::string& spec_json, const std::string& name = "local-storage",
                                          std::int64_t generation = 3, const std::string& extra_metadata = "") {
  auto text = R"({"apiVersion":"storage.kubestash.com/v1alpha1","kind":"BackupStorage","metadata":{"name":")" + name +
              R"(","namespace":"demo","uid":")" + kUid + R"(","generation":)" + std::to_string(generation) +
              extra_metadata + R"(},"spec":)" + spec_json + "}";
  auto parsed = stowage::kube::parse_backup_storage(json::parse(text));
  INFO(text);
  REQUIRE(parsed.ok());
  return parsed.value();
}

const char* kHostPathSpec =
    R"({"storage":{"provider":"local","local":{"mountPath":"/safe/data","hostPath":{"path":"/data/kubestash-test/storage"}}},
        "deletionPolicy":"WipeOut"})";

VolumeJobSettings settings() {
  VolumeJobSettings s;
  s.image = "ghcr.io/example/stowage:v0.3.0";
  s.operator_version = "v0.3.0";
  s.service_account = "stowage-volume-job";
  return s;
}

VolumeJob build(const stowage::kube::BackupStorage& s, VolumeJobKind kind, const VolumeJobSettings& opts = settings()) {
  auto job = build_volume_job(s, kind, opts);
  INFO((job ? "" : job.error().to_string()));
  REQUIRE(job.ok());
  return job.value();
}

const json::value& at(const json::value& v, std::initializer_list<std::string_view> path) {
  const json::value* cur = &v;
  for (auto key : path) {
    INFO("missing " << key << " in " << json::serialize(*cur));
    REQUIRE(cur->is_object());
    cur = cur->get_object().if_contains(key);
    REQUIRE(cur != nullptr);
  }
  return *cur;
}

bool has(const json::value& v, std::string_view key) { return v.is_object() && v.get_object().contains(key); }

const json::value& pod_spec(const VolumeJob& j) { return at(j.job, {"spec", "template", "spec"}); }
const json::value& the_container(const VolumeJob& j) { return pod_spec(j).at("containers").at(0); }

// Every member of `part` is in `whole` with the same value (objects compared member by member, arrays
// element by element). Returns the first difference, "" when none.
std::string missing_in(const json::value& whole, const json::value& part, const std::string& path = "") {
  if (part.is_object()) {
    if (!whole.is_object()) return path + ": not an object in " + json::serialize(whole);
    for (const auto& kv : part.get_object()) {
      const auto* w = whole.get_object().if_contains(kv.key());
      if (!w) return path + "." + std::string(kv.key()) + ": missing";
      if (auto d = missing_in(*w, kv.value(), path + "." + std::string(kv.key())); !d.empty()) return d;
    }
    return "";
  }
  if (part.is_array()) {
    if (!whole.is_array() || whole.get_array().size() != part.get_array().size())
      return path + ": " + json::serialize(whole) + " is not " + json::serialize(part);
    for (std::size_t i = 0; i < part.get_array().size(); ++i)
      if (auto d = missing_in(whole.get_array()[i], part.get_array()[i], path + "[" + std::to_string(i) + "]");
          !d.empty())
        return d;
    return "";
  }
  return whole == part ? "" : path + ": " + json::serialize(whole) + " is not " + json::serialize(part);
}

bool dns_label(const std::string& s) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return s.size() <= 63 && std::regex_match(s, kLabel);
}

}  // namespace

TEST_CASE("volume job: the init Job of a hostPath storage, field by field") {
  auto s = storage_from(kHostPathSpec, "local-storage", 3, R"(,"labels":{"team":"infra"})");
  auto j = build(s, VolumeJobKind::Initialize);
  CHECK(j.ignored_settings.empty());
  CHECK(j.namespace_ == "demo");
  CHECK_THAT(j.name, Catch::Matches("init-local-storage-[0-9a-f]{10}"));

  const auto& job = j.job;
  CHECK(at(job, {"apiVersion"}) == "batch/v1");
  CHECK(at(job, {"kind"}) == "Job");
  CHECK(at(job, {"metadata", "name"}) == json::value(j.name));
  CHECK(at(job, {"metadata", "namespace"}) == "demo");
  CHECK(at(job, {"metadata", "labels"}) == json::parse(R"({
      "team": "infra",
      "app.kubernetes.io/managed-by": "kubestash.com",
      "kubestash.com/invoker-kind": "BackupStorage",
      "kubestash.com/invoker-name": "local-storage",
      "kubestash.com/invoker-namespace": "demo",
      "app.kubernetes.io/component": "kubestash-initializer",
      "stowage.dev/storage-uid": "0b3e6a52-6a1f-4c3e-9d55-2f0c8a7e1b11",
      "stowage.dev/storage-generation": "3"})"));
  CHECK(at(job, {"metadata", "ownerReferences"}) == json::parse(R"([{
      "apiVersion": "storage.kubestash.com/v1alpha1", "kind": "BackupStorage", "name": "local-storage",
      "uid": "0b3e6a52-6a1f-4c3e-9d55-2f0c8a7e1b11", "controller": true, "blockOwnerDeletion": true}])"));

  CHECK(at(job, {"spec", "backoffLimit"}) == 3);
  CHECK(at(job, {"spec", "activeDeadlineSeconds"}) == 600);
  CHECK(at(job, {"spec", "ttlSecondsAfterFinished"}) == 3600);
  CHECK(at(job, {"spec", "podFailurePolicy"}) == json::parse(R"({"rules": [
      {"action": "FailJob", "onExitCodes": {"containerName": "stowage", "operator": "In", "values": [2, 3]}},
      {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]})"));
  CHECK(at(job, {"spec", "template", "metadata", "labels"}) == at(job, {"metadata", "labels"}));
  CHECK_FALSE(has(at(job, {"spec", "template", "metadata"}), "annotations"));

  CHECK(pod_spec(j) == json::parse(R"({
      "restartPolicy": "Never",
      "automountServiceAccountToken": false,
      "serviceAccountName": "stowage-volume-job",
      "securityContext": {"runAsUser": 65534, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
      "containers": [{
        "name": "stowage",
        "image": "ghcr.io/example/stowage:v0.3.0",
        "imagePullPolicy": "IfNotPresent",
        "args": ["init-volume", "--path", "/safe/data", "--operator-version", "v0.3.0"],
        "volumeMounts": [{"name": "storage", "mountPath": "/safe/data"}],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
      "volumes": [{"name": "storage", "hostPath": {"path": "/data/kubestash-test/storage"}}]})"));

  SECTION("deterministic, and a command when one is configured") {
    CHECK(build(s, VolumeJobKind::Initialize).job == job);
    auto opts = settings();
    opts.command = {"/usr/bin/stowage"};
    opts.operator_version.clear();
    auto with_command = build(s, VolumeJobKind::Initialize, opts);
    CHECK(at(the_container(with_command), {"command"}) == json::parse(R"(["/usr/bin/stowage"])"));
    CHECK(at(the_container(with_command), {"args"}) == json::parse(R"(["init-volume", "--path", "/safe/data"])"));
  }
}

TEST_CASE("volume job: a PVC storage with subPath and runtimeSettings") {
  auto s = storage_from(R"({
      "storage": {"provider": "local", "local": {"mountPath": "/backup", "subPath": "team-a/storage",
                  "persistentVolumeClaim": {"claimName": "storage-pvc"}}},
      "runtimeSettings": {
        "pod": {
          "podLabels": {"app": "backup", "kubestash.com/invoker-name": "spoofed"},
          "podAnnotations": {"sidecar.istio.io/inject": "false"},
          "nodeSelector": {"kubernetes.io/os": "linux"},
          "serviceAccountName": "custom-sa",
          "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": "arn"},
          "securityContext": {"fsGroup": 65534, "runAsGroup": 65534},
          "imagePullSecrets": [{"name": "regcred"}],
          "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "backup", "effect": "NoSchedule"}],
          "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
              {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
          "priorityClassName": "backup-critical",
          "somethingNew": true
        },
        "container": {
          "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}},
          "securityContext": {"readOnlyRootFilesystem": true, "runAsNonRoot": true},
          "env": [{"name": "TZ", "value": "UTC"}],
          "nice": {"adjustment": 5},
          "livenessProbe": {"exec": {"command": ["true"]}}
        }
      }})");
  auto j = build(s, VolumeJobKind::Initialize);
  CHECK(j.ignored_settings == std::vector<std::string>{"spec.runtimeSettings.pod.serviceAccountAnnotations",
                                                       "spec.runtimeSettings.pod.somethingNew",
                                                       "spec.runtimeSettings.container.nice",
                                                       "spec.runtimeSettings.container.livenessProbe"});
  const auto& pod = pod_spec(j);
  const auto& labels = at(j.job, {"spec", "template", "metadata", "labels"});
  CHECK(labels.at("app") == "backup");
  CHECK(labels.at("kubestash.com/invoker-name") == "local-storage");  // ours win over podLabels
  CHECK(at(j.job, {"metadata", "labels"}).get_object().size() == 7);  // podLabels stay on the pod
  CHECK(at(j.job, {"spec", "template", "metadata", "annotations"}) ==
        json::parse(R"({"sidecar.istio.io/inject": "false"})"));
  CHECK(pod.at("serviceAccountName") == "custom-sa");
  CHECK(pod.at("automountServiceAccountToken") == false);
  CHECK(pod.at("securityContext") == json::parse(R"({"runAsUser": 65534, "fsGroup": 65534, "runAsGroup": 65534,
                                                     "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})"));
  CHECK(pod.at("nodeSelector") == json::parse(R"({"kubernetes.io/os": "linux"})"));
  CHECK(pod.at("imagePullSecrets") == json::parse(R"([{"name": "regcred"}])"));
  CHECK(pod.at("tolerations").at(0).at("effect") == "NoSchedule");
  CHECK(pod.at("affinity").at("nodeAffinity").is_object());
  CHECK(pod.at("priorityClassName") == "backup-critical");
  CHECK_FALSE(has(pod, "podLabels"));
  CHECK_FALSE(has(pod, "somethingNew"));
  CHECK(pod.at("volumes") == json::parse(R"([{"name": "storage", "persistentVolumeClaim": {"claimName": "storage-pvc"}}])"));

  const auto& c = the_container(j);
  CHECK(c.at("volumeMounts") == json::parse(R"([{"name": "storage", "mountPath": "/backup", "subPath": "team-a/storage"}])"));
  CHECK(c.at("args") == json::parse(R"(["init-volume", "--path", "/backup", "--operator-version", "v0.3.0"])"));
  CHECK(c.at("resources") == json::parse(R"({"limits": {"memory": "128Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}})"));
  CHECK(c.at("securityContext") == json::parse(R"({"readOnlyRootFilesystem": true, "runAsNonRoot": true,
                                                   "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})"));
  CHECK(c.at("env") == json::parse(R"([{"name": "TZ", "value": "UTC"}])"));
  CHECK_FALSE(has(c, "nice"));
  CHECK_FALSE(has(c, "livenessProbe"));

  SECTION("runAsUser 0 for a hostPath replaces the default user, without runAsNonRoot; null removes it") {
    auto root = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "hostPath": {"path": "/x"}}},
                                 "runtimeSettings": {"pod": {"securityContext": {"runAsUser": 0}}}})");
    CHECK(pod_spec(build(root, VolumeJobKind::Initialize)).at("securityContext") ==
          json::parse(R"({"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}})"));
    auto image_user = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "hostPath": {"path": "/x"}}},
                                       "runtimeSettings": {"pod": {"securityContext": {"runAsUser": null}}}})");
    CHECK(pod_spec(build(image_user, VolumeJobKind::Initialize)).at("securityContext") ==
          json::parse(R"({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})"));
  }
}

TEST_CASE("volume job: the cleanup Job of an NFS storage") {
  auto s = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                              "nfs": {"server": "nfs-service.storage.svc.cluster.local", "path": "/"}}},
                            "deletionPolicy": "WipeOut"})",
                        "nfs-storage");
  auto j = build(s, VolumeJobKind::Cleanup);
  CHECK(j.name == "cleanup-nfs-storage");  // KubeStash's name
  CHECK_FALSE(has(at(j.job, {"metadata"}), "ownerReferences"));  // it runs while the storage is being deleted
  CHECK(at(j.job, {"metadata", "labels", "app.kubernetes.io/component"}) == "kubestash-cleaner");
  CHECK(at(j.job, {"metadata", "labels", "stowage.dev/storage-generation"}) == "3");
  const auto& c = the_container(j);
  CHECK(c.at("args") == json::parse(R"(["wipe-volume", "--path", "/safe/data"])"));
  CHECK(c.at("volumeMounts") == json::parse(R"([{"name": "storage", "mountPath": "/safe/data"}])"));
  CHECK(pod_spec(j).at("volumes") ==
        json::parse(R"([{"name": "storage", "nfs": {"server": "nfs-service.storage.svc.cluster.local", "path": "/"}}])"));
  CHECK(pod_spec(j).at("restartPolicy") == "Never");
  // The cleanup Job's name does not change with the generation; the init Job's does.
  auto next = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                                 "nfs": {"server": "nfs", "path": "/"}}}})",
                           "nfs-storage", 4);
  CHECK(volume_job_name(next, VolumeJobKind::Cleanup) == j.name);
  CHECK(volume_job_name(next, VolumeJobKind::Initialize) != volume_job_name(s, VolumeJobKind::Initialize));
}

TEST_CASE("volume job: names are DNS labels of at most 63 characters") {
  const std::string a(60, 'a');
  auto plain = storage_from(kHostPathSpec, a + "-bc");               // 63 characters, the API's limit
  auto dotted63 = storage_from(kHostPathSpec, a.substr(0, 58) + "-b.cd");  // 63 characters with a dot
  REQUIRE(plain.metadata.name.size() == 63);
  REQUIRE(dotted63.metadata.name.size() == 63);
  for (const auto* storage : {&plain, &dotted63}) {
    for (auto kind : {VolumeJobKind::Initialize, VolumeJobKind::Cleanup}) {
      auto name = volume_job_name(*storage, kind);
      INFO(name);
      CHECK(dns_label(name));
      CHECK(build(*storage, kind).name == name);
    }
    CHECK_THAT(volume_job_name(*storage, VolumeJobKind::Initialize), Catch::Matches("init-a{47}-[0-9a-f]{10}"));
    CHECK_THAT(volume_job_name(*storage, VolumeJobKind::Cleanup), Catch::Matches("cleanup-a{44}-[0-9a-f]{10}"));
  }
  // Cut to the same prefix, told apart by the hash.
  CHECK(volume_job_name(plain, VolumeJobKind::Initialize) != volume_job_name(dotted63, VolumeJobKind::Initialize));
  CHECK(volume_job_name(plain, VolumeJobKind::Cleanup) != volume_job_name(dotted63, VolumeJobKind::Cleanup));
  // A dotted name is rewritten and therefore hashed, so "a.b" and "a-b" never share a cleanup Job.
  auto dotted = storage_from(kHostPathSpec, "team.storage");
  auto dashed = storage_from(kHostPathSpec, "team-storage");
  CHECK_THAT(volume_job_name(dotted, VolumeJobKind::Cleanup), Catch::Matches("cleanup-team-storage-[0-9a-f]{10}"));
  CHECK(volume_job_name(dashed, VolumeJobKind::Cleanup) == "cleanup-team-storage");
  CHECK(volume_job_name(dotted, VolumeJobKind::Initialize) != volume_job_name(dashed, VolumeJobKind::Initialize));
  // A name that fits exactly keeps KubeStash's form.
  auto fits = storage_from(kHostPathSpec, std::string(55, 'c'));
  CHECK(volume_job_name(fits, VolumeJobKind::Cleanup) == "cleanup-" + std::string(55, 'c'));
}

TEST_CASE("volume job: a bad local spec or runtimeSettings is an error naming the field") {
  auto error_of = [](const std::string& spec) {
    auto job = build_volume_job(storage_from(spec), VolumeJobKind::Initialize, settings());
    REQUIRE_FALSE(job.ok());
    return job.error().to_string();
  };
  CHECK_THAT(error_of(R"({"storage": {"provider": "s3", "s3": {"bucket": "b"}}})"),
             Catch::StartsWith("spec.storage.local: missing"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "/d"}}})"),
             Catch::Contains("no volume source"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "hostPath": {"path": "/x"},
                                                                      "nfs": {"server": "s", "path": "/"}}}})"),
             Catch::Contains("more than one volume source given (hostPath, nfs)"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "data", "hostPath": {"path": "/x"}}}})"),
             Catch::StartsWith("spec.storage.local.mountPath: must be an absolute path"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "subPath": "a/../../b",
                                                                      "hostPath": {"path": "/x"}}}})"),
             Catch::StartsWith("spec.storage.local.subPath:"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "hostPath": {"path": "/x"}}},
                          "runtimeSettings": {"pod": {"nodeSelector": {"zone": 1}}}})"),
             Catch::Equals("spec.runtimeSettings.pod.nodeSelector: expected an object of strings"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "hostPath": {"path": "/x"}}},
                          "runtimeSettings": {"container": {"env": {"TZ": "UTC"}}}})"),
             Catch::Equals("spec.runtimeSettings.container.env: expected a list of objects"));
  CHECK_THAT(error_of(R"({"storage": {"provider": "local", "local": {"mountPath": "/d", "hostPath": {"path": "/x"}}},
                          "runtimeSettings": {"pod": "yes"}})"),
             Catch::Equals("spec.runtimeSettings.pod: expected an object"));
  auto no_image = settings();
  no_image.image.clear();
  CHECK_FALSE(build_volume_job(storage_from(kHostPathSpec), VolumeJobKind::Cleanup, no_image).ok());
  auto from_a_file = storage_from(kHostPathSpec);
  from_a_file.metadata.uid.clear();
  auto no_uid = build_volume_job(from_a_file, VolumeJobKind::Initialize, settings());
  REQUIRE_FALSE(no_uid.ok());
  CHECK(no_uid.error().path == "metadata.uid");
}

namespace {

// A hostPath storage with `runtime_settings` (JSON) as its spec.runtimeSettings.
stowage::kube::BackupStorage with_runtime(const std::string& runtime_settings) {
  return storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                                      "hostPath": {"path": "/data/x"}}}, "runtimeSettings": )" +
                      runtime_settings + "}");
}

}  // namespace

TEST_CASE("volume job: Pod Security restricted defaults, and the securityContext fields runtimeSettings set win") {
  const auto restricted_pod = json::parse(
      R"({"runAsUser": 65534, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})");
  const auto restricted_container = json::parse(R"({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})");
  auto pod_sc = [](const std::string& runtime) {
    return pod_spec(build(with_runtime(runtime), VolumeJobKind::Initialize)).at("securityContext");
  };
  auto container_sc = [](const std::string& runtime) {
    return the_container(build(with_runtime(runtime), VolumeJobKind::Initialize)).at("securityContext");
  };

  SECTION("every Job, init and cleanup, with no runtimeSettings or empty securityContexts") {
    for (const auto* runtime : {"null", "{}", R"({"pod": {"securityContext": {}}, "container": {"securityContext": {}}})"})
      for (auto kind : {VolumeJobKind::Initialize, VolumeJobKind::Cleanup}) {
        INFO(runtime);
        auto j = build(with_runtime(runtime), kind);
        CHECK(pod_spec(j).at("securityContext") == restricted_pod);
        CHECK(the_container(j).at("securityContext") == restricted_container);
      }
  }
  SECTION("the pod: given keys win one by one, null removes ours") {
    CHECK(pod_sc(R"({"pod": {"securityContext": {"runAsNonRoot": false}}})") ==
          json::parse(R"({"runAsUser": 65534, "runAsNonRoot": false, "seccompProfile": {"type": "RuntimeDefault"}})"));
    CHECK(pod_sc(R"({"pod": {"securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}})") ==
          json::parse(R"({"runAsUser": 65534, "runAsNonRoot": true,
                          "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}})"));
    CHECK(pod_sc(R"({"pod": {"securityContext": {"seccompProfile": null, "runAsNonRoot": null}}})") ==
          json::parse(R"({"runAsUser": 65534})"));
  }
  SECTION("runAsNonRoot is not forced on a container told to run as root") {
    // KubeStash's hostPath advice, at the pod or at the container: the kubelet would refuse to start it.
    CHECK_FALSE(pod_sc(R"({"pod": {"securityContext": {"runAsUser": 0}}})").as_object().contains("runAsNonRoot"));
    CHECK_FALSE(pod_sc(R"({"container": {"securityContext": {"runAsUser": 0}}})").as_object().contains("runAsNonRoot"));
    // The container's user is the one that runs: root at the pod, 1000 in the container, is not root.
    CHECK(pod_sc(R"({"pod": {"securityContext": {"runAsUser": 0}}, "container": {"securityContext": {"runAsUser": 1000}}})")
              .at("runAsNonRoot") == true);
    // Said explicitly, it stands, even beside runAsUser 0 (the API server and kubelet then judge it).
    CHECK(pod_sc(R"({"pod": {"securityContext": {"runAsUser": 0, "runAsNonRoot": true}}})").at("runAsNonRoot") == true);
    CHECK(pod_sc(R"({"pod": {"securityContext": {"runAsUser": 1000}}})").at("runAsNonRoot") == true);
  }
  SECTION("the container: given keys win one by one, null removes ours") {
    CHECK(container_sc(R"({"container": {"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}}}})") ==
          json::parse(R"({"allowPrivilegeEscalation": false, "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]}})"));
    CHECK(container_sc(R"({"container": {"securityContext": {"allowPrivilegeEscalation": true}}})") ==
          json::parse(R"({"allowPrivilegeEscalation": true, "capabilities": {"drop": ["ALL"]}})"));
    CHECK(container_sc(R"({"container": {"securityContext": {"capabilities": null, "readOnlyRootFilesystem": true}}})") ==
          json::parse(R"({"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true})"));
  }
  SECTION("privileged or CAP_SYS_ADMIN: no allowPrivilegeEscalation false, which the API server refuses beside them") {
    CHECK(container_sc(R"({"container": {"securityContext": {"privileged": true}}})") ==
          json::parse(R"({"privileged": true, "capabilities": {"drop": ["ALL"]}})"));
    CHECK(container_sc(R"({"container": {"securityContext": {"capabilities": {"add": ["CAP_SYS_ADMIN"]}}}})") ==
          json::parse(R"({"capabilities": {"add": ["CAP_SYS_ADMIN"]}})"));
    CHECK(container_sc(R"({"container": {"securityContext": {"privileged": false}}})").at("allowPrivilegeEscalation") == false);
  }
}

TEST_CASE("volume job: the pods pass Pod Security restricted but for a volume type the storage chooses") {
  // support/pod_security.hpp is the check deploy/overlays' pod templates pass (tests/deploy/overlays_test.cpp).
  auto violations = [](const VolumeJob& j) {
    return test_support::restricted_violations(pod_spec(j).as_object(),
                                               at(j.job, {"spec", "template", "metadata"}).as_object());
  };
  const char* kPvc = R"({"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                         "persistentVolumeClaim": {"claimName": "storage-pvc"}}}, "deletionPolicy": "WipeOut",
                         "runtimeSettings": {"pod": {"podAnnotations": {"a": "b"}, "securityContext": {"fsGroup": 65534}},
                                             "container": {"resources": {"limits": {"memory": "64Mi"}}}}})";
  for (auto kind : {VolumeJobKind::Initialize, VolumeJobKind::Cleanup}) {
    auto j = build(storage_from(kPvc), kind);
    INFO(json::serialize(j.job));
    CHECK(violations(j).empty());
    // hostPath (KubeStash's example) and NFS volumes are the user's choice; nothing else is refused.
    CHECK(violations(build(storage_from(kHostPathSpec), kind)) ==
          std::vector<std::string>{"volume storage: type hostPath is not allowed"});
  }
  // runtimeSettings can ask for root; then the pod is no longer restricted, as Pod Security would say.
  CHECK_FALSE(violations(build(with_runtime(R"({"container": {"securityContext": {"runAsUser": 0}}})"),
                               VolumeJobKind::Initialize))
                  .empty());
}

TEST_CASE("volume job: LD_*, STOWAGE_* and other code-loading variables, and envFrom, are refused naming the field") {
  auto error_of = [](const std::string& container, VolumeJobKind kind = VolumeJobKind::Initialize) {
    auto job = build_volume_job(with_runtime(R"({"container": )" + container + "}"), kind, settings());
    if (job.ok()) return std::string("built");
    return job.error().to_string();
  };
  CHECK(error_of(R"({"env": [{"name": "TZ", "value": "UTC"}, {"name": "HOME", "value": "/tmp"},
                             {"name": "LD_PRELOAD", "value": "/safe/data/x.so"}]})") ==
        "spec.runtimeSettings.container.env[2].name: LD_PRELOAD is not allowed in volume Jobs (the dynamic loader "
        "would run code from a file it names, which may lie on the storage's own volume): remove it");
  CHECK(error_of(R"({"env": [{"name": "STOWAGE_LOG_FILE", "value": "/safe/data/log"}]})", VolumeJobKind::Cleanup) ==
        "spec.runtimeSettings.container.env[0].name: STOWAGE_LOG_FILE is not allowed in volume Jobs (STOWAGE_* "
        "variables are stowage's own settings, which the controller alone sets): remove it");
  for (const auto* name : {"LD_LIBRARY_PATH", "LD_AUDIT", "LD_", "STOWAGE_", "GCONV_PATH", "OPENSSL_CONF",
                           "OPENSSL_MODULES", "OPENSSL_ENGINES"}) {
    INFO(name);
    // By any means: a plain value or one taken from a ConfigMap.
    CHECK_THAT(error_of(std::string(R"({"env": [{"name": ")") + name +
                        R"(", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]})"),
               Catch::StartsWith("spec.runtimeSettings.container.env[0].name: " + std::string(name) +
                                 " is not allowed in volume Jobs ("));
  }
  // A huge name is cut in the message (it goes into the status).
  const std::string huge = "LD_" + std::string(5000, 'X');
  CHECK(error_of(R"({"env": [{"name": ")" + huge + R"("}]})") ==
        "spec.runtimeSettings.container.env[0].name: " + huge.substr(0, 100) +
            "... is not allowed in volume Jobs (the dynamic loader would run code from a file it names, which may "
            "lie on the storage's own volume): remove it");
  // Names that only look alike are the user's own.
  CHECK(error_of(R"({"env": [{"name": "LDAP_URI", "value": "x"}, {"name": "ld_preload", "value": "x"},
                             {"name": "MY_LD_PRELOAD", "value": "x"}, {"name": "STOWAGE", "value": "x"},
                             {"name": "OPENSSL_CONF_X", "value": "x"}]})") == "built");
  CHECK(error_of(R"({"env": [{"value": "no name"}]})") == "spec.runtimeSettings.container.env[0].name: expected a string");
  CHECK(error_of(R"({"env": [{"name": 5}]})") == "spec.runtimeSettings.container.env[0].name: expected a string");
  // envFrom could set any of them from a ConfigMap or Secret the controller never sees.
  for (const auto* from : {R"([{"configMapRef": {"name": "extra"}}])", R"([{"secretRef": {"name": "s"}, "prefix": "X_"}])"})
    for (auto kind : {VolumeJobKind::Initialize, VolumeJobKind::Cleanup})
      CHECK_THAT(error_of(std::string(R"({"envFrom": )") + from + "}", kind),
                 Catch::StartsWith("spec.runtimeSettings.container.envFrom: not allowed in volume Jobs") &&
                     Catch::Contains("list the variables under env instead"));
  CHECK(error_of(R"({"envFrom": null, "env": [{"name": "TZ", "value": "UTC"}]})") == "built");  // null is absent
}

TEST_CASE("volume job: the outcome of running, complete and failed Jobs") {
  auto job = [](const std::string& status) {
    return json::parse(R"({"apiVersion": "batch/v1", "kind": "Job", "spec": {"backoffLimit": 3}, "status": )" + status +
                       "}");
  };
  auto pod = [](const std::string& phase, const std::string& container_status) {
    return json::parse(R"({"metadata": {"name": "p"}, "status": {"phase": ")" + phase +
                       R"(", "containerStatuses": [)" + container_status + "]}}");
  };

  SECTION("no status yet, or pods still running: Running") {
    CHECK(job_outcome(json::parse(R"({"spec": {}})")).state == JobOutcome::Running);
    auto out = job_outcome(job(R"({"active": 1})"));
    CHECK(out.state == JobOutcome::Running);
    CHECK(out.message.empty());
  }
  SECTION("a pod that cannot start says why while the Job runs") {
    json::array pods{pod("Pending", R"({"name": "stowage", "state": {"waiting": {"reason": "ImagePullBackOff",
                                          "message": "Back-off pulling image \"x\""}}})")};
    auto out = job_outcome(job(R"({"active": 1})"), pods);
    CHECK(out.state == JobOutcome::Running);
    CHECK(out.message == "ImagePullBackOff: Back-off pulling image \"x\"");
    auto unschedulable = json::parse(R"({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
        "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available"}]}})");
    CHECK(job_outcome(job(R"({"active": 1})"), json::array{unschedulable}).message ==
          "Unschedulable: 0/3 nodes are available");
  }
  SECTION("a failed attempt below the backoff limit: still Running, with the attempt's message") {
    json::object list{{"kind", "PodList"},
                      {"items", json::array{pod("Failed", R"({"name": "stowage", "state": {"terminated": {"exitCode": 1,
                           "message": "cannot write /safe/data/.metadata.yaml.tmp-1: Input/output error\n",
                           "finishedAt": "2025-04-21T12:00:00Z"}}})")}}};
    auto out = job_outcome(job(R"({"active": 1, "failed": 1})"), list);
    CHECK(out.state == JobOutcome::Running);
    CHECK(out.failed_pods == 1);
    CHECK(out.message == "attempt 1 of 4 failed: cannot write /safe/data/.metadata.yaml.tmp-1: Input/output error");
  }
  SECTION("Complete: Succeeded, with the command's report") {
    json::array pods{pod("Succeeded", R"j({"name": "stowage", "state": {"terminated": {"exitCode": 0,
                       "message": "created /safe/data/metadata.yaml (operatorVersion v0.3.0)"}}})j")};
    auto out = job_outcome(job(R"({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]})"), pods);
    CHECK(out.state == JobOutcome::Succeeded);
    CHECK(out.message == "created /safe/data/metadata.yaml (operatorVersion v0.3.0)");
    CHECK(job_outcome(job(R"({"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]})")).state ==
          JobOutcome::Succeeded);
    CHECK(job_outcome(job(R"({"conditions": [{"type": "Complete", "status": "False"}]})")).state ==
          JobOutcome::Running);
  }
  SECTION("Failed by the pod failure policy: the newest pod's termination message") {
    json::array pods{
        pod("Failed", R"({"name": "stowage", "state": {"terminated": {"exitCode": 1, "message": "older",
              "finishedAt": "2025-04-21T12:00:00Z"}}})"),
        pod("Failed", R"j({"name": "stowage", "state": {"terminated": {"exitCode": 2,
              "message": "/safe/data/metadata.yaml exists but is not a valid BackendMeta (kind is \"X\")",
              "finishedAt": "2025-04-21T12:01:00Z"}}})j")};
    auto out = job_outcome(job(R"({"failed": 2, "conditions": [{"type": "Failed", "status": "True",
        "reason": "PodFailurePolicy", "message": "Container stowage for pod demo/p failed with exit code 2"}]})"),
                           pods);
    CHECK(out.state == JobOutcome::Failed);
    CHECK(out.reason == "PodFailurePolicy");
    CHECK(out.message == "/safe/data/metadata.yaml exists but is not a valid BackendMeta (kind is \"X\")");
  }
  SECTION("Failed without pods: the condition's message; FailureTarget counts as failed") {
    auto out = job_outcome(job(R"({"failed": 4, "conditions": [{"type": "FailureTarget", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})"));
    CHECK(out.state == JobOutcome::Failed);
    CHECK(out.reason == "BackoffLimitExceeded");
    CHECK(out.message == "Job has reached the specified backoff limit");
  }
  SECTION("DeadlineExceeded while the image never pulled: both reasons") {
    json::array pods{pod("Pending", R"({"name": "stowage", "state": {"waiting": {"reason": "ErrImagePull"}}})")};
    auto out = job_outcome(job(R"({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
        "message": "Job was active longer than specified deadline"}]})"),
                           pods);
    CHECK(out.state == JobOutcome::Failed);
    CHECK(out.message == "Job was active longer than specified deadline; ErrImagePull");
  }
  SECTION("failed beyond backoffLimit before the controller wrote a condition; OOMKilled without a message") {
    json::array pods{pod("Failed", R"({"name": "stowage", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}})")};
    auto out = job_outcome(job(R"({"failed": 4})"), pods);
    CHECK(out.state == JobOutcome::Failed);
    CHECK(out.reason == "BackoffLimitExceeded");
    CHECK(out.message == "container stowage exited with code 137 (OOMKilled)");
  }
}

TEST_CASE("volume job: termination_message reads the stowage container first") {
  auto pod = json::parse(R"({"status": {"containerStatuses": [
      {"name": "istio-proxy", "state": {"terminated": {"message": "sidecar said"}}},
      {"name": "stowage", "state": {"waiting": {}}, "lastState": {"terminated": {"message": "  permission denied\n"}}}]}})");
  CHECK(termination_message(pod) == "permission denied");
  CHECK(termination_message(json::parse(R"({"status": {}})")).empty());
  CHECK(termination_message(json::parse("[]")).empty());
}

TEST_CASE("init-volume: creates metadata.yaml, keeps a valid one, refuses an invalid one") {
  auto dir = test::temp_dir("init-volume");
  auto volume = dir / "volume";
  test::fs::create_directories(volume);
  auto log = dir / "termination-log";
  test::write_file(log, "");
  VolumeCommandOptions opts{log};
  auto file = volume / "metadata.yaml";
  auto inode = [](const test::fs::path& p) {
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    return st.st_ino;
  };

  REQUIRE(init_volume(volume, "v0.3.0", opts) == kVolumeExitOk);
  std::string reason;
  auto meta = stowage::storage::parse_metadata(test::read_file(file), reason);
  REQUIRE(meta);
  CHECK(meta->operator_version == "v0.3.0");
  CHECK_THAT(test::read_file(file), Catch::StartsWith("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\n"));
  CHECK(test::read_file(log) == "created " + file.string() + " (operatorVersion v0.3.0)");

  SECTION("a second run keeps the file: same inode, same bytes") {
    auto before = test::read_file(file);
    auto ino = inode(file);
    CHECK(init_volume(volume, "v9.9.9", opts) == kVolumeExitOk);
    CHECK(inode(file) == ino);
    CHECK(test::read_file(file) == before);
    CHECK_THAT(test::read_file(log), Catch::StartsWith("kept " + file.string() + " (created ") &&
                                         Catch::EndsWith(" by v0.3.0)"));
  }
  SECTION("an invalid file is refused, untouched, with the reason in the termination log") {
    test::write_file(file, "apiVersion: config.kubestash.com/v1alpha1\nkind: Something\n");
    auto ino = inode(file);
    CHECK(init_volume(volume, "v0.3.0", opts) == kVolumeExitPermanent);
    CHECK(inode(file) == ino);
    CHECK(test::read_file(file) == "apiVersion: config.kubestash.com/v1alpha1\nkind: Something\n");
    CHECK_THAT(test::read_file(log), Catch::Contains("exists but is not a valid BackendMeta") &&
                                         Catch::Contains("kind is \"Something\"") &&
                                         Catch::Contains("never overwrites it"));
  }
  SECTION("nothing mounted: a permanent failure; a missing termination log is not created") {
    VolumeCommandOptions no_log{dir / "no-such-log"};
    CHECK(init_volume(dir / "not-mounted", "v0.3.0", no_log) == kVolumeExitPermanent);
    CHECK_FALSE(test::fs::exists(dir / "no-such-log"));
    CHECK_FALSE(test::fs::exists(dir / "not-mounted"));
    CHECK(init_volume(dir / "not-mounted", "v0.3.0", opts) == kVolumeExitPermanent);
    CHECK_THAT(test::read_file(log), Catch::Contains("not mounted"));
  }
  SECTION("a symlink on the way is never followed: a permanent failure naming it, nothing written") {
    auto elsewhere = dir / "elsewhere";
    test::fs::create_directories(elsewhere);
    test::fs::create_directory_symlink(elsewhere, dir / "link");
    CHECK(init_volume(dir / "link", "v0.3.0", opts) == kVolumeExitPermanent);
    CHECK(init_volume(dir / "link" / ".", "v0.3.0", opts) == kVolumeExitPermanent);
    CHECK_THAT(test::read_file(log), Catch::StartsWith((dir / "link").string() + " is a symbolic link") &&
                                         Catch::Contains("never follows symlinks"));
    CHECK(test::fs::is_empty(elsewhere));
  }
  test::fs::remove_all(dir);
}

namespace {

const std::string kMeta = stowage::storage::render_metadata({"2025-04-21T12:29:15Z", "v0.3.0"});

// Runs wipe-volume and returns its exit code with the line it left in the termination log.
std::pair<int, std::string> wipe(const test::fs::path& volume, const test::fs::path& log,
                                 const std::vector<std::string>& keep = {}) {
  test::write_file(log, "");
  int code = wipe_volume(volume, keep, VolumeCommandOptions{log});
  return {code, test::read_file(log)};
}

}  // namespace

TEST_CASE("wipe-volume: removes what is under an owned path, not the path, and follows no symlink out") {
  auto dir = test::temp_dir("wipe-volume");
  auto volume = dir / "volume", outside = dir / "outside";
  test::write_file(volume / "metadata.yaml", kMeta);
  test::write_file(volume / "repo/data/00/abc", "y");
  test::write_file(volume / "repo/.hidden", "z");
  test::fs::create_directories(volume / "empty");
  test::write_file(outside / "precious", "keep me");
  test::fs::create_directory_symlink(outside, volume / "link-to-outside");
  test::fs::create_directory_symlink(outside, volume / "repo/data/nested-link");
  test::fs::create_symlink(outside / "precious", volume / "file-link");
  auto log = dir / "termination-log";

  CHECK(wipe(volume, log) == std::pair{kVolumeExitOk, "removed 3 files under " + volume.string()});
  CHECK(test::fs::is_directory(volume));
  CHECK(test::fs::is_empty(volume));
  CHECK(test::read_file(outside / "precious") == "keep me");

  // Again: metadata.yaml went last, so nothing shows the volume is ours any more.
  auto [again, line] = wipe(volume, log);
  CHECK(again == kVolumeExitRefused);
  CHECK_THAT(line, Catch::StartsWith("refused: " + (volume / "metadata.yaml").string() + " does not exist") &&
                       Catch::EndsWith("nothing was deleted"));
  test::fs::remove_all(dir);
}

TEST_CASE("wipe-volume: refused (exit 3) without a valid metadata.yaml or on a protected path, nothing deleted") {
  auto dir = test::temp_dir("wipe-volume-refused");
  auto volume = dir / "volume";
  test::write_file(volume / "repo/data", "y");
  auto log = dir / "termination-log";

  auto [missing, missing_line] = wipe(volume, log);
  CHECK(missing == kVolumeExitRefused);
  CHECK_THAT(missing_line, Catch::StartsWith("refused: ") && Catch::Contains("does not exist"));
  CHECK(test::read_file(volume / "repo/data") == "y");

  test::write_file(volume / "metadata.yaml", "apiVersion: config.kubestash.com/v1alpha1\nkind: Something\n");
  auto [invalid, invalid_line] = wipe(volume, log);
  CHECK(invalid == kVolumeExitRefused);
  CHECK_THAT(invalid_line, Catch::StartsWith("refused: ") && Catch::Contains("is not a valid BackendMeta") &&
                               Catch::Contains("kind is \"Something\""));
  CHECK(test::read_file(volume / "repo/data") == "y");

  auto [gone, gone_line] = wipe(dir / "missing", log);
  CHECK(gone == kVolumeExitRefused);
  CHECK_THAT(gone_line, Catch::StartsWith("refused: directory " + (dir / "missing").string() + " does not exist"));
  CHECK_FALSE(test::fs::exists(dir / "missing"));

  for (const char* path : {"/", "/etc", "/var", "/proc/self", "/dev/shm"}) {
    INFO(path);
    auto [code, line] = wipe(path, log);
    CHECK(code == kVolumeExitRefused);
    CHECK_THAT(line, Catch::StartsWith(std::string("refused: refusing to wipe ") + path + ": ") &&
                         Catch::Contains("sub-directory") && Catch::EndsWith("nothing was deleted"));
  }
  CHECK(wipe("/", log).second ==
        "refused: refusing to wipe /: it is /, the whole filesystem; point the storage at a sub-directory of its "
        "own; nothing was deleted");
  auto [escape, escape_line] = wipe(volume, log, {"../outside"});
  CHECK(escape == kVolumeExitRefused);
  CHECK_THAT(escape_line, Catch::Contains("\"../outside\" is not a path inside it"));
  CHECK(test::read_file(volume / "repo/data") == "y");
  test::fs::remove_all(dir);
}

TEST_CASE("wipe-volume: --keep and nested storages are left in place and reported") {
  auto dir = test::temp_dir("wipe-volume-keep");
  auto volume = dir / "volume";
  test::write_file(volume / "metadata.yaml", kMeta);
  test::write_file(volume / "mine/a", "1");
  test::write_file(volume / "team-a/data", "theirs");              // kept by --keep
  test::write_file(volume / "x/team-b/data", "theirs");            // kept by --keep, below a removed level
  test::write_file(volume / "x/mine", "2");
  test::write_file(volume / "nested/metadata.yaml", kMeta);        // another storage's location
  test::write_file(volume / "nested/data", "theirs");
  auto log = dir / "termination-log";

  auto [code, line] = wipe(volume, log, {"team-a", "x/team-b"});
  CHECK(code == kVolumeExitOk);
  CHECK_THAT(line, Catch::StartsWith("removed 3 files under " + volume.string() + "; left 3: "));
  CHECK_THAT(line, Catch::Contains((volume / "team-a").string() + ": another storage's location") &&
                       Catch::Contains((volume / "x/team-b").string() + ": another storage's location") &&
                       Catch::Contains((volume / "nested").string() + ": another storage's metadata.yaml"));
  CHECK(test::read_file(volume / "team-a/data") == "theirs");
  CHECK(test::read_file(volume / "x/team-b/data") == "theirs");
  CHECK(test::read_file(volume / "nested/data") == "theirs");
  CHECK_FALSE(test::fs::exists(volume / "mine"));
  CHECK_FALSE(test::fs::exists(volume / "x/mine"));
  CHECK_FALSE(test::fs::exists(volume / "metadata.yaml"));
  test::fs::remove_all(dir);
}

TEST_CASE("wipe-volume: a symlink on the way fails permanently (exit 2) and a partial failure says what was removed") {
  auto dir = test::temp_dir("wipe-volume-fail");
  auto volume = dir / "volume", elsewhere = dir / "elsewhere";
  test::write_file(elsewhere / "metadata.yaml", kMeta);
  test::write_file(elsewhere / "data", "keep me");
  test::fs::create_directory_symlink(elsewhere, dir / "link");
  auto log = dir / "termination-log";

  auto [linked, linked_line] = wipe(dir / "link", log);
  CHECK(linked == kVolumeExitPermanent);
  CHECK_THAT(linked_line, Catch::StartsWith((dir / "link").string() + " is a symbolic link: stowage never follows "
                                                                       "symlinks below local.root (/)"));
  CHECK(test::read_file(elsewhere / "data") == "keep me");

  // A directory whose parent cannot change (immutable) cannot be removed once emptied: stop there.
  test::write_file(volume / "metadata.yaml", kMeta);
  test::write_file(volume / "frozen/d/1", "1");
  test::write_file(volume / "frozen/d/2", "2");
  int fd = ::open((volume / "frozen").c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  int flags = 0;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0 || (flags |= FS_IMMUTABLE_FL, ::ioctl(fd, FS_IOC_SETFLAGS, &flags)) != 0) {
    WARN("partial failure not checked: cannot make a directory immutable here (" << std::strerror(errno) << ")");
    ::close(fd);
    test::fs::remove_all(dir);
    return;
  }
  auto [partial, partial_line] = wipe(volume, log);
  flags &= ~FS_IMMUTABLE_FL;
  ::ioctl(fd, FS_IOC_SETFLAGS, &flags);
  ::close(fd);
  CHECK(partial == kVolumeExitPermanent);
  CHECK_THAT(partial_line, Catch::StartsWith("cannot remove directory " + (volume / "frozen/d").string() +
                                             ": Operation not permitted") &&
                               Catch::EndsWith("(removed 2 files under " + volume.string() +
                                               " before stopping; metadata.yaml is kept for a retry)"));
  CHECK(test::fs::exists(volume / "metadata.yaml"));
  CHECK(wipe(volume, log) == std::pair{kVolumeExitOk, "removed 1 files under " + volume.string()});
  test::fs::remove_all(dir);
}

TEST_CASE("wipe-volume: the binary takes --keep more than once and exits 3 on a refusal") {
  auto dir = test::temp_dir("wipe-volume-cli");
  auto volume = dir / "volume";
  test::write_file(volume / "metadata.yaml", kMeta);
  test::write_file(volume / "a/data", "theirs");
  test::write_file(volume / "b/data", "theirs");
  test::write_file(volume / "c/data", "mine");
  auto kept = test::Child::spawn({"wipe-volume", "--path", volume.string(), "--keep", "a", "--keep", "b"},
                                 dir / "out", dir / "err");
  CHECK(kept.wait() == kVolumeExitOk);
  CHECK_THAT(test::read_file(dir / "out"), Catch::StartsWith("removed 2 files under " + volume.string() + "; left 2: "));
  CHECK(test::read_file(volume / "a/data") == "theirs");
  CHECK(test::read_file(volume / "b/data") == "theirs");
  CHECK_FALSE(test::fs::exists(volume / "c"));

  auto refused = test::Child::spawn({"wipe-volume", "--path", volume.string()}, dir / "out2", dir / "err2");
  CHECK(refused.wait() == kVolumeExitRefused);
  CHECK_THAT(test::read_file(dir / "err2"), Catch::StartsWith("refused: "));
  CHECK(test::read_file(volume / "a/data") == "theirs");
  test::fs::remove_all(dir);
}

TEST_CASE("volume job: the API server, kubectl create and kubectl's typed decoding take every Job") {
  auto dir = test::temp_dir("volume-job-kubectl");
  test_support::TestApiServer server(dir / "apiserver", "volume-job-token");
  server.write_kubeconfig("demo");
  auto kubectl = [&](const std::string& args) {
    auto [code, out] = server.kubectl(args);
    INFO("kubectl " << args << "\n" << out);
    REQUIRE(code == 0);
    return out;
  };
  // No server at all: `set image --local` decodes the file into Go's batch/v1 Job and prints it back
  // (only when the image changes), so a misspelt field disappears and a mistyped one fails the command.
  auto typed = [&](const test::fs::path& file) {
    std::string cmd = "KUBECONFIG=/dev/null kubectl set image --local -f '" + file.string() +
                      "' stowage=example.test/typed-check -o json 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = ::pclose(p);
    INFO(cmd << "\n" << out);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
    return json::parse(out);
  };

  auto full = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/backup", "subPath": "a/b",
                                 "persistentVolumeClaim": {"claimName": "storage-pvc"}}},
      "runtimeSettings": {
        "pod": {"podLabels": {"app": "backup"}, "podAnnotations": {"a": "b"}, "nodeSelector": {"kubernetes.io/os": "linux"},
                "serviceAccountName": "custom-sa", "automountServiceAccountToken": true, "nodeName": "node-1",
                "securityContext": {"fsGroup": 65534, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                "imagePullSecrets": [{"name": "regcred"}], "schedulerName": "default-scheduler",
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30}],
                "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10,
                    "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": {"app": "backup"}}}}]}},
                "priorityClassName": "high", "priority": 1000, "readinessGates": [{"conditionType": "example.com/ready"}],
                "runtimeClassName": "runc", "enableServiceLinks": false,
                "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway",
                                               "labelSelector": {"matchLabels": {"app": "backup"}}}]},
        "container": {"resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "50m"}},
                      "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                          "capabilities": {"drop": ["ALL"]}, "runAsUser": 1000},
                      "env": [{"name": "TZ", "value": "UTC"},
                              {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}}})",
                           "full-settings");
  auto host = storage_from(kHostPathSpec, "host");
  auto nfs = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                                "nfs": {"server": "nfs.example", "path": "/exports"}}}})",
                          "nfs.storage");
  // Root for a hostPath, privileged: the defaults that would contradict it are left out.
  auto root = storage_from(R"({"storage": {"provider": "local", "local": {"mountPath": "/safe/data",
                                 "hostPath": {"path": "/data/root"}}},
      "runtimeSettings": {"pod": {"securityContext": {"runAsUser": 0}},
                          "container": {"securityContext": {"privileged": true, "capabilities": {"add": ["CAP_SYS_ADMIN"]}}}}})",
                           "root-host");
  std::vector<VolumeJob> jobs;
  for (const auto* s : {&full, &host, &nfs, &root})
    for (auto kind : {VolumeJobKind::Initialize, VolumeJobKind::Cleanup}) jobs.push_back(build(*s, kind));

  for (const auto& j : jobs) {
    INFO(j.name);
    auto file = dir / (j.name + ".json");
    test::write_file(file, json::serialize(j.job));

    auto decoded = typed(file);
    auto expected = j.job;
    expected.at_pointer("/spec/template/spec/containers/0/image") = "example.test/typed-check";
    CHECK(missing_in(decoded, expected) == "");

    auto dry = json::parse(kubectl("create --dry-run=client -f '" + file.string() + "' -o json"));
    CHECK(missing_in(dry, j.job) == "");

    CHECK_THAT(kubectl("create -f '" + file.string() + "'"), Catch::Contains("job.batch/" + j.name + " created"));
    auto stored = json::parse(kubectl("get job " + j.name + " -n demo -o json"));
    CHECK(missing_in(stored, j.job) == "");
    CHECK(at(stored, {"metadata", "uid"}).is_string());
  }
  {  // the typed check has teeth: a misspelt field is dropped by the decoding
    auto misspelt = jobs.front().job;
    auto& c = misspelt.at_pointer("/spec/template/spec/containers/0").as_object();
    c["terminationMessagePolicyy"] = c["terminationMessagePolicy"];
    c.erase("terminationMessagePolicy");
    auto file = dir / "misspelt.json";
    test::write_file(file, json::serialize(misspelt));
    misspelt.at_pointer("/spec/template/spec/containers/0/image") = "example.test/typed-check";
    CHECK_THAT(missing_in(typed(file), misspelt), Catch::Contains("terminationMessagePolicyy: missing"));
  }
  CHECK_THAT(kubectl("get jobs -n demo -l " + std::string(kVolumeJobSelector) + " -o name"),
             Catch::Contains("job.batch/cleanup-host") && Catch::Contains("job.batch/init-full-settings-"));
  CHECK(kubectl("get jobs -n demo -l stowage.dev/storage-generation=3,app.kubernetes.io/component=kubestash-cleaner -o name")
            .size() > 0);
  test::fs::remove_all(dir);
}
