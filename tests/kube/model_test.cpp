// BackupStorage and Secret parsing: KubeStash's example manifests, defaults, every type mismatch,
// names, Secret data, status and object writers.
#include "kube/model.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "kube/yaml_json.hpp"

using namespace stowage::kube;
namespace json = boost::json;

namespace {

json::value yaml(const std::string& text) {
  auto docs = parse_yaml_documents(text);
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  return docs.value()[0].value;
}

BackupStorage storage_from(const std::string& text) {
  auto parsed = parse_backup_storage(yaml(text));
  INFO((parsed.ok() ? std::string() : parsed.error().to_string()));
  REQUIRE(parsed.ok());
  return parsed.value();
}

const char* kS3 = R"(
apiVersion: storage.kubestash.com/v1alpha1
kind: BackupStorage
metadata: {name: s3-storage, namespace: demo}
spec:
  storage:
    provider: s3
    s3: {endpoint: https://s3.us-west-1.amazonaws.com, bucket: kubestash-demo, region: us-west-1,
         prefix: /backup/demo/deployment/kubestash-demo, secretName: s3-secret}
  usagePolicy: {allowedNamespaces: {from: All}}
  default: true
  deletionPolicy: WipeOut
)";

std::string with_storage(const std::string& storage) {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: st, namespace: demo}\n"
         "spec:\n  storage:\n" +
         storage;
}

json::value minimal() {
  return json::parse(R"({"apiVersion":"storage.kubestash.com/v1alpha1","kind":"BackupStorage",
                         "metadata":{"name":"st"}})");
}

// Sets `path` ("a.b[0].c") in `root`, creating objects and arrays on the way.
void set_path(json::value& root, const std::string& path, json::value v) {
  json::value* at = &root;
  std::size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '[') {
      std::size_t close = path.find(']', pos);
      auto index = static_cast<std::size_t>(std::stoul(path.substr(pos + 1, close - pos - 1)));
      if (!at->is_array()) *at = json::array{};
      while (at->get_array().size() <= index) at->get_array().push_back(json::object{});
      at = &at->get_array()[index];
      pos = close + 1;
    } else {
      if (path[pos] == '.') ++pos;
      std::size_t end = path.find_first_of(".[", pos);
      std::string key = path.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      if (!at->is_object()) *at = json::object{};
      at = &at->get_object()[key];
      pos = end == std::string::npos ? path.size() : end;
    }
  }
  *at = std::move(v);
}

}  // namespace

TEST_CASE("the KubeStash S3 example parses to the typed fields") {
  auto bs = storage_from(kS3);
  CHECK(bs.metadata.name == "s3-storage");
  CHECK(bs.metadata.namespace_ == "demo");
  CHECK(bs.spec.storage.provider == "s3");
  REQUIRE(bs.spec.storage.s3);
  CHECK(bs.spec.storage.s3->endpoint == "https://s3.us-west-1.amazonaws.com");
  CHECK(bs.spec.storage.s3->bucket == "kubestash-demo");
  CHECK(bs.spec.storage.s3->region == "us-west-1");
  CHECK(bs.spec.storage.s3->prefix == "/backup/demo/deployment/kubestash-demo");
  CHECK(bs.spec.storage.s3->secret_name == "s3-secret");
  CHECK(bs.spec.storage.s3->max_connections == 0);
  CHECK_FALSE(bs.spec.storage.s3->insecure_tls);
  CHECK(bs.spec.storage.secret_name() == "s3-secret");
  CHECK(bs.spec.usage_from == "All");
  CHECK(bs.spec.usage_policy == json::parse(R"({"allowedNamespaces":{"from":"All"}})"));
  CHECK(bs.spec.is_default);
  CHECK(bs.spec.deletion_policy == "WipeOut");
  CHECK_FALSE(bs.spec.storage.gcs);
  CHECK_FALSE(bs.spec.storage.azure);
  CHECK_FALSE(bs.spec.storage.local);
  CHECK(bs.status.phase.empty());
}

TEST_CASE("s3 extras: maxConnections and insecureTLS") {
  auto bs = storage_from(with_storage(
      "    provider: s3\n    s3: {bucket: b, endpoint: https://minio.local, maxConnections: 10, insecureTLS: true}\n"));
  CHECK(bs.spec.storage.s3->max_connections == 10);
  CHECK(bs.spec.storage.s3->insecure_tls);
  CHECK(bs.spec.storage.secret_name().empty());
}

TEST_CASE("the KubeStash GCS and Azure examples parse") {
  auto gcs = storage_from(
      with_storage("    provider: gcs\n    gcs: {bucket: kubestash-demo, prefix: demo, secretName: gcs-secret}\n"));
  REQUIRE(gcs.spec.storage.gcs);
  CHECK(gcs.spec.storage.gcs->bucket == "kubestash-demo");
  CHECK(gcs.spec.storage.gcs->prefix == "demo");
  CHECK(gcs.spec.storage.secret_name() == "gcs-secret");

  auto azure = storage_from(with_storage(
      "    provider: azure\n    azure: {storageAccount: kubestash, container: kubestash-demo, prefix: /backup/demo,"
      " secretName: azure-secret, maxConnections: 4}\n"));
  REQUIRE(azure.spec.storage.azure);
  CHECK(azure.spec.storage.azure->storage_account == "kubestash");
  CHECK(azure.spec.storage.azure->container == "kubestash-demo");
  CHECK(azure.spec.storage.azure->prefix == "/backup/demo");
  CHECK(azure.spec.storage.azure->max_connections == 4);
  CHECK(azure.spec.storage.secret_name() == "azure-secret");
}

TEST_CASE("local storages: hostPath, PVC and NFS volume sources") {
  auto host = storage_from(
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: local-storage, namespace: "
      "demo}\n"
      "spec:\n  storage:\n    provider: local\n    local:\n      mountPath: /safe/data\n"
      "      hostPath:\n        path: /data/kubestash-test/storage\n"
      "  runtimeSettings:\n    pod:\n      securityContext:\n        runAsUser: 0\n");
  REQUIRE(host.spec.storage.local);
  const auto& l = *host.spec.storage.local;
  CHECK(l.mount_path == "/safe/data");
  CHECK(l.volume_type == "hostPath");
  CHECK(l.host_path == "/data/kubestash-test/storage");
  CHECK(l.volume_source == json::parse(R"({"hostPath":{"path":"/data/kubestash-test/storage"}})").as_object());
  CHECK(host.spec.runtime_settings.at("pod").at("securityContext").at("runAsUser") == json::value(0));
  CHECK(host.spec.storage.secret_name().empty());

  auto pvc = storage_from(with_storage(
      "    provider: local\n    local:\n      mountPath: /safe/data\n      subPath: team-a\n      maxConnections: 2\n"
      "      persistentVolumeClaim: {claimName: storage-pvc}\n"));
  CHECK(pvc.spec.storage.local->volume_type == "persistentVolumeClaim");
  CHECK(pvc.spec.storage.local->sub_path == "team-a");
  CHECK(pvc.spec.storage.local->max_connections == 2);
  CHECK(pvc.spec.storage.local->host_path.empty());
  CHECK(pvc.spec.storage.local->volume_source.at("persistentVolumeClaim").at("claimName") ==
        json::value("storage-pvc"));
  CHECK_FALSE(pvc.spec.storage.local->volume_source.contains("mountPath"));

  auto nfs =
      storage_from(with_storage("    provider: local\n    local:\n      mountPath: /safe/data\n"
                                "      nfs: {server: \"nfs-service.storage.svc.cluster.local\", path: \"/\"}\n"));
  CHECK(nfs.spec.storage.local->volume_type == "nfs");
  CHECK(nfs.spec.storage.local->volume_source.at("nfs").at("server") ==
        json::value("nfs-service.storage.svc.cluster.local"));

  auto empty_dir = storage_from(with_storage("    provider: local\n    local: {mountPath: /m, emptyDir: {}}\n"));
  CHECK(empty_dir.spec.storage.local->volume_type == "emptyDir");
}

TEST_CASE("missing optional fields take the defaults") {
  auto parsed = parse_backup_storage(minimal());
  REQUIRE(parsed.ok());
  const auto& bs = parsed.value();
  CHECK(bs.metadata.namespace_ == "default");
  CHECK(bs.spec.storage.provider.empty());
  CHECK(bs.spec.deletion_policy == "Delete");
  CHECK(bs.spec.usage_from == "Same");
  CHECK(bs.spec.usage_policy.is_null());
  CHECK(bs.spec.runtime_settings.is_null());
  CHECK_FALSE(bs.spec.is_default);
  CHECK(bs.spec.storage.secret_name().empty());
  CHECK(bs.metadata.generation == 0);
  CHECK(bs.status.conditions.empty());
}

TEST_CASE("null fields count as absent") {
  auto v = minimal();
  set_path(v, "spec.storage.provider", nullptr);
  set_path(v, "spec.deletionPolicy", nullptr);
  set_path(v, "metadata.namespace", nullptr);
  set_path(v, "status", nullptr);
  auto parsed = parse_backup_storage(v);
  REQUIRE(parsed.ok());
  CHECK(parsed.value().spec.deletion_policy == "Delete");
  CHECK(parsed.value().metadata.namespace_ == "default");
}

TEST_CASE("every type mismatch names its path") {
  struct Row {
    const char* set;      // path set on a valid minimal object
    const char* bad;      // JSON of the wrong value
    const char* path;     // expected error path (defaults to `set`)
    const char* message;  // expected message
  };
  const Row rows[] = {
      {"spec.storage.s3.maxConnections", R"("ten")", nullptr, R"(expected an integer, got a string ("ten"))"},
      {"spec.storage.s3.maxConnections", "1.5", nullptr, "expected an integer, got a number (1.5)"},
      {"spec.storage.s3.maxConnections", "true", nullptr, "expected an integer, got a boolean (true)"},
      {"spec.storage.s3.bucket", "5", nullptr, "expected a string, got a number (5)"},
      {"spec.storage.s3.endpoint", "[]", nullptr, "expected a string, got an array"},
      {"spec.storage.s3.prefix", "{}", nullptr, "expected a string, got an object"},
      {"spec.storage.s3.region", "false", nullptr, "expected a string, got a boolean (false)"},
      {"spec.storage.s3.secretName", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.s3.insecureTLS", R"("yes")", nullptr, R"(expected a boolean, got a string ("yes"))"},
      {"spec.storage.s3", R"("x")", nullptr, R"(expected an object, got a string ("x"))"},
      {"spec.storage.gcs.bucket", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.gcs.prefix", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.gcs.secretName", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.gcs.maxConnections", R"("1")", nullptr, R"(expected an integer, got a string ("1"))"},
      {"spec.storage.gcs", "[]", nullptr, "expected an object, got an array"},
      {"spec.storage.azure.storageAccount", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.azure.container", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.azure.prefix", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.azure.secretName", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.azure.maxConnections", "{}", nullptr, "expected an integer, got an object"},
      {"spec.storage.azure", "3", nullptr, "expected an object, got a number (3)"},
      {"spec.storage.local.mountPath", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.local.subPath", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage.local.maxConnections", R"("2")", nullptr, R"(expected an integer, got a string ("2"))"},
      {"spec.storage.local.hostPath.path", "3", nullptr, "expected a string, got a number (3)"},
      {"spec.storage.local.hostPath", R"("/data")", nullptr,
       R"(expected an object (a volume source), got a string ("/data"))"},
      {"spec.storage.local", "[]", nullptr, "expected an object, got an array"},
      {"spec.storage.provider", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.storage", R"("s3")", nullptr, R"(expected an object, got a string ("s3"))"},
      {"spec.default", R"("true")", nullptr, R"(expected a boolean, got a string ("true"))"},
      {"spec.deletionPolicy", "1", nullptr, "expected a string, got a number (1)"},
      {"spec.usagePolicy", "[]", nullptr, "expected an object, got an array"},
      {"spec.usagePolicy.allowedNamespaces", "1", nullptr, "expected an object, got a number (1)"},
      {"spec.usagePolicy.allowedNamespaces.from", "true", nullptr, "expected a string, got a boolean (true)"},
      {"spec.runtimeSettings", R"("x")", nullptr, R"(expected an object, got a string ("x"))"},
      {"spec", R"("x")", nullptr, R"(expected an object, got a string ("x"))"},
      {"metadata", R"("x")", nullptr, R"(expected an object, got a string ("x"))"},
      {"metadata.name", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.namespace", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.uid", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.resourceVersion", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.creationTimestamp", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.deletionTimestamp", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.generation", R"("1")", nullptr, R"(expected an integer, got a string ("1"))"},
      {"metadata.labels", "[]", nullptr, "expected an object, got an array"},
      {"metadata.labels.app", "1", nullptr, "expected a string, got a number (1)"},
      {"metadata.annotations.note", "true", nullptr, "expected a string, got a boolean (true)"},
      {"metadata.finalizers", R"("x")", nullptr, R"(expected an array of strings, got a string ("x"))"},
      {"metadata.finalizers[1]", "2", nullptr, "expected a string, got a number (2)"},
      {"status", R"("x")", nullptr, R"(expected an object, got a string ("x"))"},
      {"status.phase", "1", nullptr, "expected a string, got a number (1)"},
      {"status.totalSize", "1", nullptr, "expected a string, got a number (1)"},
      {"status.repositories", "{}", nullptr, "expected an array, got an object"},
      {"status.repositories[0]", R"("x")", nullptr, R"(expected an object, got a string ("x"))"},
      {"status.repositories[0].name", "1", nullptr, "expected a string, got a number (1)"},
      {"status.repositories[0].namespace", "1", nullptr, "expected a string, got a number (1)"},
      {"status.repositories[0].path", "1", nullptr, "expected a string, got a number (1)"},
      {"status.repositories[1].size", "1", nullptr, "expected a string, got a number (1)"},
      {"status.repositories[0].synced", R"("yes")", nullptr, R"(expected a boolean, got a string ("yes"))"},
      {"status.repositories[0].error", "1", nullptr, "expected a string, got a number (1)"},
      {"status.conditions", "1", nullptr, "expected an array, got a number (1)"},
      {"status.conditions[0].type", "1", nullptr, "expected a string, got a number (1)"},
      {"status.conditions[0].status", "true", nullptr, "expected a string, got a boolean (true)"},
      {"status.conditions[0].reason", "1", nullptr, "expected a string, got a number (1)"},
      {"status.conditions[0].message", "1", nullptr, "expected a string, got a number (1)"},
      {"status.conditions[0].severity", "1", nullptr, "expected a string, got a number (1)"},
      {"status.conditions[0].lastTransitionTime", "1", nullptr, "expected a string, got a number (1)"},
      {"status.conditions[2].observedGeneration", R"("2")", nullptr, R"(expected an integer, got a string ("2"))"},
      {"kind", "1", nullptr, "expected a string, got a number (1)"},
      {"apiVersion", "1", nullptr, "expected a string, got a number (1)"},
  };
  for (const auto& row : rows) {
    INFO("set " << row.set << " = " << row.bad);
    json::value v = minimal();
    if (std::string(row.set).rfind("metadata.finalizers[", 0) == 0) set_path(v, "metadata.finalizers[0]", "a");
    set_path(v, row.set, json::parse(row.bad));
    auto parsed = parse_backup_storage(v);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().path == (row.path ? row.path : row.set));
    CHECK(parsed.error().message == row.message);
  }
}

TEST_CASE("long strings are shortened in error messages") {
  json::value v = minimal();
  set_path(v, "spec.default", json::string(std::string(500, 'x')));
  auto parsed = parse_backup_storage(v);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().message.size() < 120);
  CHECK(parsed.error().message.find("...") != std::string::npos);
}

TEST_CASE("an integral double is accepted as an integer") {
  json::value v = minimal();
  set_path(v, "spec.storage.s3.maxConnections", 10.0);
  auto parsed = parse_backup_storage(v);
  REQUIRE(parsed.ok());
  CHECK(parsed.value().spec.storage.s3->max_connections == 10);
}

TEST_CASE("the object must be a BackupStorage of the served version") {
  auto not_object = parse_backup_storage(json::parse("[]"));
  REQUIRE_FALSE(not_object.ok());
  CHECK(not_object.error().path.empty());
  CHECK(not_object.error().message.find("expected an object") == 0);

  json::value v = minimal();
  v.as_object()["apiVersion"] = "storage.kubestash.com/v1";
  auto wrong_version = parse_backup_storage(v);
  REQUIRE_FALSE(wrong_version.ok());
  CHECK(wrong_version.error().path == "apiVersion");
  CHECK(wrong_version.error().message ==
        R"(apiVersion "storage.kubestash.com/v1" is not served for BackupStorage; use storage.kubestash.com/v1alpha1)");

  v.as_object().erase("apiVersion");
  auto missing_version = parse_backup_storage(v);
  REQUIRE_FALSE(missing_version.ok());
  CHECK(missing_version.error().path == "apiVersion");
  CHECK(missing_version.error().message.find("storage.kubestash.com/v1alpha1") != std::string::npos);

  json::value other = minimal();
  other.as_object()["kind"] = "Repository";
  auto wrong_kind = parse_backup_storage(other);
  REQUIRE_FALSE(wrong_kind.ok());
  CHECK(wrong_kind.error().path == "kind");
  CHECK(wrong_kind.error().message == R"(expected "BackupStorage", got "Repository")");
}

TEST_CASE("names must be DNS-1123 subdomains and namespaces DNS-1123 labels") {
  for (const std::string& name :
       std::vector<std::string>{"Foo", "a_b", "-a", "a-", "a..b", "a.-b", ".a", "a.", std::string(254, 'a'), "a b"}) {
    INFO("name: " << name);
    json::value v = minimal();
    set_path(v, "metadata.name", json::string(name));
    auto parsed = parse_backup_storage(v);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().path == "metadata.name");
    CHECK(parsed.error().message.find("lower case alphanumeric characters, '-' or '.'") != std::string::npos);
  }
  for (const std::string& name : std::vector<std::string>{"a", "s3-storage", "a.b-c.d", "0abc",
                                                          std::string(63, 'a') + "." + std::string(189, 'b')}) {
    INFO("name: " << name);
    json::value v = minimal();
    set_path(v, "metadata.name", json::string(name));
    CHECK(parse_backup_storage(v).ok());
  }
  json::value unnamed = minimal();
  unnamed.as_object()["metadata"] = json::object{};
  auto missing = parse_backup_storage(unnamed);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().path == "metadata.name");
  CHECK(missing.error().message == "a name is required");
  unnamed.as_object().erase("metadata");
  CHECK(parse_backup_storage(unnamed).error().path == "metadata.name");

  for (const std::string& ns : std::vector<std::string>{"Demo", "a.b", std::string(64, 'a'), "-x"}) {
    INFO("namespace: " << ns);
    json::value v = minimal();
    set_path(v, "metadata.namespace", json::string(ns));
    auto parsed = parse_backup_storage(v);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().path == "metadata.namespace");
    CHECK(parsed.error().message.find("RFC 1123 label") != std::string::npos);
  }
  json::value empty_ns = minimal();
  set_path(empty_ns, "metadata.namespace", "");
  CHECK(parse_backup_storage(empty_ns).value().metadata.namespace_ == "default");
}

TEST_CASE("deletionPolicy and usage policy values are checked") {
  json::value v = minimal();
  set_path(v, "spec.deletionPolicy", "Retain");
  auto bad = parse_backup_storage(v);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().path == "spec.deletionPolicy");
  CHECK(bad.error().message == R"(unsupported value "Retain": supported values: "Delete", "WipeOut")");

  json::value from = minimal();
  set_path(from, "spec.usagePolicy.allowedNamespaces.from", "Any");
  auto bad_from = parse_backup_storage(from);
  REQUIRE_FALSE(bad_from.ok());
  CHECK(bad_from.error().path == "spec.usagePolicy.allowedNamespaces.from");
  CHECK(bad_from.error().message == R"(unsupported value "Any": supported values: "All", "Selector", "Same")");

  json::value selector = minimal();
  set_path(selector, "spec.usagePolicy.allowedNamespaces.from", "Selector");
  set_path(selector, "spec.usagePolicy.allowedNamespaces.selector.matchLabels.team", "a");
  auto ok = parse_backup_storage(selector);
  REQUIRE(ok.ok());
  CHECK(ok.value().spec.usage_from == "Selector");
  CHECK(ok.value().spec.usage_policy.at("allowedNamespaces").at("selector").at("matchLabels").at("team") ==
        json::value("a"));

  json::value no_from = minimal();
  set_path(no_from, "spec.usagePolicy.allowedNamespaces", json::object{});
  CHECK(parse_backup_storage(no_from).value().spec.usage_from == "Same");
}

TEST_CASE("secret_name follows the provider") {
  StorageSpec s;
  s.s3 = S3Spec{};
  s.s3->secret_name = "s3-secret";
  s.gcs = GcsSpec{};
  s.gcs->secret_name = "gcs-secret";
  s.azure = AzureSpec{};
  s.azure->secret_name = "azure-secret";
  s.provider = "s3";
  CHECK(s.secret_name() == "s3-secret");
  s.provider = "gcs";
  CHECK(s.secret_name() == "gcs-secret");
  s.provider = "azure";
  CHECK(s.secret_name() == "azure-secret");
  s.provider = "local";
  CHECK(s.secret_name().empty());
  s.provider = "b2";
  CHECK(s.secret_name().empty());
  StorageSpec absent;
  absent.provider = "s3";
  CHECK(absent.secret_name().empty());
}

TEST_CASE("metadata is parsed whole") {
  auto meta = parse_object_meta(json::parse(R"({
    "name": "st", "namespace": "demo", "uid": "1234", "resourceVersion": "77", "generation": 3,
    "creationTimestamp": "2025-04-21T12:29:15Z", "deletionTimestamp": "2025-04-22T00:00:00Z",
    "labels": {"app": "x"}, "annotations": {"note": "y"}, "finalizers": ["kubestash.com/cleanup"],
    "managedFields": [{"manager": "kubectl"}]})"));
  REQUIRE(meta.ok());
  const auto& m = meta.value();
  CHECK(m.name == "st");
  CHECK(m.namespace_ == "demo");
  CHECK(m.uid == "1234");
  CHECK(m.resource_version == "77");
  CHECK(m.generation == 3);
  CHECK(m.creation_timestamp == "2025-04-21T12:29:15Z");
  CHECK(m.deletion_timestamp == "2025-04-22T00:00:00Z");
  CHECK(m.labels.get("app") == "x");
  CHECK(m.annotations.get("note") == "y");
  CHECK(m.finalizers == std::vector<std::string>{"kubestash.com/cleanup"});
  CHECK(parse_object_meta(nullptr).value().namespace_ == "default");
}

TEST_CASE("status parses and writes with KubeStash's field names") {
  json::value status = json::parse(R"({
    "phase": "Ready", "totalSize": "1.134 MiB",
    "repositories": [{"name": "repo", "namespace": "demo", "path": "/repo", "size": "1.134 MiB", "synced": true},
                     {"name": "broken", "synced": false, "error": "no access"}],
    "conditions": [{"type": "BackendInitialized", "status": "True", "observedGeneration": 2,
                    "lastTransitionTime": "2025-04-21T12:29:15Z", "reason": "BackendInitializationSucceeded",
                    "message": "Successfully initialized backend."},
                   {"type": "BackendSecretFound", "status": "False", "severity": "Error",
                    "lastTransitionTime": "2025-04-21T12:29:15Z", "reason": "BackendSecretNotAvailable"}]})");
  auto parsed = parse_status(status);
  REQUIRE(parsed.ok());
  const auto& s = parsed.value();
  CHECK(s.phase == "Ready");
  CHECK(s.total_size == "1.134 MiB");
  REQUIRE(s.repositories.size() == 2);
  CHECK(s.repositories[0].namespace_ == "demo");
  CHECK(s.repositories[0].synced);
  CHECK(s.repositories[1].error == "no access");
  REQUIRE(s.conditions.size() == 2);
  CHECK(s.conditions[0].observed_generation == 2);
  CHECK(s.conditions[1].severity == "Error");
  CHECK(status_to_json(s) == status);  // field order as KubeStash/kmodules write them, omitempty respected
}

TEST_CASE("status_to_json omits empty fields as Go's omitempty does") {
  CHECK(status_to_json(BackupStorageStatus{}) == json::object{});
  BackupStorageStatus s;
  s.phase = "NotReady";
  Condition c;
  c.type = "BackendInitialized";
  c.status = "False";
  s.conditions.push_back(c);
  s.repositories.push_back(RepositoryStatus{});
  CHECK(status_to_json(s) == json::parse(R"({"phase":"NotReady","repositories":[{"synced":false}],
      "conditions":[{"type":"BackendInitialized","status":"False","lastTransitionTime":null}]})"));
  CHECK(parse_status(status_to_json(s)).ok());
}

TEST_CASE("to_json keeps unknown fields and writes typed metadata and status") {
  auto bs = storage_from(std::string(kS3) + "  futureField: {x: 1}\nstatus: {phase: Old}\nextra: kept\n");
  CHECK(bs.raw.at("spec").at("futureField").at("x") == json::value(1));
  bs.metadata.uid = "uid-1";
  bs.metadata.generation = 4;
  bs.metadata.resource_version = "99";
  bs.metadata.creation_timestamp = "2025-04-21T12:29:15Z";
  bs.metadata.finalizers = {"kubestash.com/cleanup"};
  bs.status.phase = "Ready";
  bs.status.total_size = "0 B";
  json::value out = to_json(bs);
  CHECK(out.at("extra") == json::value("kept"));
  CHECK(out.at("spec") == bs.raw.at("spec"));
  CHECK(out.at("apiVersion") == json::value("storage.kubestash.com/v1alpha1"));
  CHECK(out.at("metadata") == json::parse(R"({"name":"s3-storage","namespace":"demo","uid":"uid-1",
      "resourceVersion":"99","generation":4,"creationTimestamp":"2025-04-21T12:29:15Z",
      "finalizers":["kubestash.com/cleanup"]})"));
  CHECK(out.at("status") == json::parse(R"({"phase":"Ready","totalSize":"0 B"})"));

  bs.raw = out;
  bs.metadata.finalizers.clear();  // finalizer removed: it must not come back from raw
  CHECK_FALSE(to_json(bs).at("metadata").as_object().contains("finalizers"));

  auto reparsed = parse_backup_storage(out);
  REQUIRE(reparsed.ok());
  CHECK(reparsed.value().metadata.generation == 4);
  CHECK(reparsed.value().status.phase == "Ready");
}

TEST_CASE("to_json of a storage built in code has apiVersion and kind") {
  BackupStorage bs;
  bs.metadata.name = "x";
  bs.metadata.namespace_ = "demo";
  json::value out = to_json(bs);
  CHECK(out.at("apiVersion") == json::value("storage.kubestash.com/v1alpha1"));
  CHECK(out.at("kind") == json::value("BackupStorage"));
  CHECK(out.at("metadata") == json::parse(R"({"name":"x","namespace":"demo"})"));
  CHECK(parse_backup_storage(out).ok());
}

// ---------------------------------------------------------------------------------------------
// Secret.

TEST_CASE("secret data is Base64-decoded and stringData wins") {
  auto parsed = parse_secret(json::parse(R"({
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s3-secret", "namespace": "demo"},
    "data": {"AWS_ACCESS_KEY_ID": "YWRtaW4=", "AWS_SECRET_ACCESS_KEY": "c2VjcmV0IQ==", "EMPTY": "",
             "BROKEN": "bm90$YmFzZTY0", "FIXED": "%%%"},
    "stringData": {"AWS_ACCESS_KEY_ID": "override", "FIXED": "now-valid"}})"));
  REQUIRE(parsed.ok());
  const auto& s = parsed.value();
  CHECK(s.type == "Opaque");
  CHECK(s.metadata.name == "s3-secret");
  CHECK(s.metadata.namespace_ == "demo");
  CHECK(s.data.at("AWS_ACCESS_KEY_ID") == "override");
  CHECK(s.data.at("AWS_SECRET_ACCESS_KEY") == "secret!");
  CHECK(s.data.at("EMPTY").empty());
  CHECK(s.data.at("FIXED") == "now-valid");
  CHECK_FALSE(s.data.count("BROKEN"));
  CHECK(s.invalid_keys == std::vector<std::string>{"BROKEN"});
}

TEST_CASE("secret type, kind and value errors never show the value") {
  auto typed = parse_secret(json::parse(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"tls"},
      "type":"kubernetes.io/tls"})"));
  REQUIRE(typed.ok());
  CHECK(typed.value().type == "kubernetes.io/tls");
  CHECK(typed.value().metadata.namespace_ == "default");
  CHECK(typed.value().data.empty());

  auto number = parse_secret(json::parse(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
      "data":{"KEY":123456789}})"));
  REQUIRE_FALSE(number.ok());
  CHECK(number.error().path == "data.KEY");
  CHECK(number.error().message == "expected a Base64 string, got a number");

  auto string_data = parse_secret(json::parse(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
      "stringData":{"KEY":true}})"));
  REQUIRE_FALSE(string_data.ok());
  CHECK(string_data.error().path == "stringData.KEY");
  CHECK(string_data.error().message == "expected a string, got a boolean");

  auto data_type = parse_secret(json::parse(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},
      "data":["x"]})"));
  REQUIRE_FALSE(data_type.ok());
  CHECK(data_type.error().path == "data");

  auto kind = parse_secret(json::parse(R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"s"}})"));
  REQUIRE_FALSE(kind.ok());
  CHECK(kind.error().path == "kind");
  auto version = parse_secret(json::parse(R"({"apiVersion":"v2","kind":"Secret","metadata":{"name":"s"}})"));
  REQUIRE_FALSE(version.ok());
  CHECK(version.error().message == R"(apiVersion "v2" is not served for Secret; use v1)");
  auto name = parse_secret(json::parse(R"({"apiVersion":"v1","kind":"Secret","metadata":{"name":"Bad_Name"}})"));
  REQUIRE_FALSE(name.ok());
  CHECK(name.error().path == "metadata.name");
}

TEST_CASE("a secret manifest in YAML with stringData") {
  auto parsed =
      parse_secret(yaml("apiVersion: v1\nkind: Secret\nmetadata:\n  name: gcs-secret\n  namespace: demo\n"
                        "stringData:\n  GOOGLE_PROJECT_ID: \"0123\"\n  GOOGLE_SERVICE_ACCOUNT_JSON_KEY: |\n    "
                        "{\"type\": \"service_account\"}\n"));
  REQUIRE(parsed.ok());
  CHECK(parsed.value().data.at("GOOGLE_PROJECT_ID") == "0123");
  CHECK(parsed.value().data.at("GOOGLE_SERVICE_ACCOUNT_JSON_KEY") == "{\"type\": \"service_account\"}\n");
}

// The form the informers' cache keeps (Unknown::Drop): typed only, the repeated JSON shared.
json::value cached_storage(const std::string& name, const std::string& ns) {
  return json::parse(R"({"apiVersion":"storage.kubestash.com/v1alpha1","kind":"BackupStorage",
    "metadata":{"name":")" + name + R"(","namespace":")" + ns + R"(",
      "labels":{"team":"a","app.kubernetes.io/name":"backupstorage"},
      "annotations":{"note":"n","kubectl.kubernetes.io/last-applied-configuration":"{\"a huge\":\"copy\"}"},
      "managedFields":[{"manager":"kubectl","operation":"Apply","fieldsV1":{"f:spec":{}}}]},
    "spec":{"storage":{"provider":"local","local":{"mountPath":"/m","hostPath":{"path":"/data/x"}}},
      "usagePolicy":{"allowedNamespaces":{"from":"All"}},
      "runtimeSettings":{"pod":{"securityContext":{"runAsUser":65534}}},"futureField":{"x":1}},
    "status":{"phase":"Ready","futureStatus":"x"}})");
}

TEST_CASE("a storage parsed for the cache keeps no raw copy, no last-applied annotation, and shares repeated JSON") {
  auto a = parse_backup_storage(cached_storage("a", "ns1"), Unknown::Drop);
  auto b = parse_backup_storage(cached_storage("b", "ns2"), Unknown::Drop);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a.value().raw.is_null());
  CHECK(a.value().metadata.labels.get("team") == "a");
  CHECK(a.value().metadata.annotations.get("note") == "n");
  CHECK_FALSE(a.value().metadata.annotations.contains("kubectl.kubernetes.io/last-applied-configuration"));
  // Equal JSON is held once, by both objects.
  CHECK(&a.value().spec.runtime_settings.get() == &b.value().spec.runtime_settings.get());
  CHECK(&a.value().spec.usage_policy.get() == &b.value().spec.usage_policy.get());
  CHECK(&a.value().spec.storage.local->volume_source.get() == &b.value().spec.storage.local->volume_source.get());
  CHECK(a.value().spec.runtime_settings.at("pod").at("securityContext").at("runAsUser") == json::value(65534));
  CHECK(a.value().spec.storage.local->host_path == "/data/x");
  // A status member this model does not know is remembered by name (a status write nulls it).
  CHECK(a.value().status.other_fields == std::vector<std::string>{"futureStatus"});
  // Unknown::Keep (the manifest source) still keeps the object as given.
  CHECK(parse_backup_storage(cached_storage("a", "ns1")).value().raw.at("spec").at("futureField").at("x") ==
        json::value(1));
}

TEST_CASE("StringMap keeps its entries sorted by key, replaces on set and iterates as a map") {
  StringMap m;
  CHECK(m.empty());
  m.set("b", "2");
  m.set("a", "1");
  m.set("c", std::string(300, 'x'));  // a length past one varint byte
  m.set("b", "two");
  std::vector<std::string> seen;
  for (const auto& [k, v] : m) seen.push_back(std::string(k) + "=" + std::string(v.substr(0, 3)));
  CHECK(seen == std::vector<std::string>{"a=1", "b=two", "c=xxx"});
  CHECK(m.size() == 3);
  CHECK(m.get("c").size() == 300);
  CHECK_FALSE(m.find("d").has_value());
  CHECK(m.erase("b"));
  CHECK_FALSE(m.contains("b"));
  CHECK(m.size() == 2);
  StringMap other;
  other.set("c", std::string(300, 'x'));
  other.set("a", "1");
  CHECK(m == other);
}

TEST_CASE("StringMap::assign builds the map set() would, from entries in any order, the last duplicate winning") {
  const std::string long_value(300, 'x');  // a length past one varint byte
  std::vector<StringMap::Entry> entries{{"b", "2"}, {"c", long_value}, {"a", "1"}, {"b", "two"}};
  StringMap assigned;
  assigned.set("stale", "gone");
  assigned.assign(entries);
  StringMap built;
  built.set("b", "2");
  built.set("c", long_value);
  built.set("a", "1");
  built.set("b", "two");
  CHECK(assigned == built);
  CHECK(assigned.size() == 3);
  CHECK(assigned.get("b") == "two");
  CHECK_FALSE(assigned.contains("stale"));
  std::vector<StringMap::Entry> none;
  assigned.assign(none);
  CHECK(assigned.empty());
}
