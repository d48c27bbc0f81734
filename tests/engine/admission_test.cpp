// The admission webhook's rules and answers, without a server: KubeStash's defaults as a JSONPatch,
// KubeStash's four validation rules with its exact messages, stowage's own (nested locations, the
// provider's section, local paths), what an update that leaves spec.storage alone or an object being
// deleted may do, and the AdmissionReview answers of both endpoints (uid echoed, 403 with the
// message, 400 for a body that is no AdmissionReview, 503 before the caches have synced).
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include "common/crypto.hpp"
#include "engine/admission_defaults.hpp"
#include "engine/admission_rules.hpp"
#include "engine/webhook.hpp"
#include "kube/yaml_json.hpp"
#include "support/log_capture.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

json::value yaml(const std::string& text) {
  auto docs = kube::parse_yaml_documents(text);
  INFO(text);
  REQUIRE(docs.ok());
  REQUIRE(docs.value().size() == 1);
  return docs.value().front().value;
}

// A BackupStorage `ns/name` whose spec is the YAML flow mapping `spec` (and `status`, when given).
json::value storage_json(const std::string& name, const std::string& spec, const std::string& ns = "demo",
                         const std::string& status = "") {
  return yaml("apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
              ", namespace: " + ns + ", uid: uid-" + name + ", creationTimestamp: \"2026-01-01T00:00:01Z\"}\nspec: " +
              spec + (status.empty() ? "" : "\nstatus: " + status) + "\n");
}

kube::BackupStorage storage(const std::string& name, const std::string& spec, const std::string& ns = "demo",
                            const std::string& status = "") {
  auto parsed = kube::parse_backup_storage(storage_json(name, spec, ns, status));
  INFO((parsed.ok() ? "" : parsed.error().to_string()));
  REQUIRE(parsed.ok());
  return parsed.value();
}

std::string s3(const std::string& bucket, const std::string& prefix, const std::string& region = "us-east-1",
               const std::string& extra = "") {
  return "{storage: {provider: s3, s3: {bucket: \"" + bucket + "\", prefix: \"" + prefix + "\", region: " + region +
         ", secretName: s}}" + extra + "}";
}

std::string host_path(const std::string& path, const std::string& extra = "") {
  return "{storage: {provider: local, local: {mountPath: /safe/data, hostPath: {path: \"" + path + "\"}}}" + extra +
         "}";
}

// The informers' caches, holding the storages given.
struct Caches {
  ObjectCache cache;
  LocationIndex locations{LocationSettings{"/", true}};
  explicit Caches(std::vector<kube::BackupStorage> storages = {}) {
    for (auto& s : storages) {
      locations.put(s);
      cache.upsert(std::move(s));
    }
  }
  AdmissionCaches view() const { return {cache, locations}; }
};

// Applies the add/replace operations backup_storage_defaults makes (paths of object members only).
void apply(json::value& object, const json::array& patch) {
  for (const auto& op : patch) {
    std::string path(op.at("path").as_string());
    json::value* at = &object;
    std::size_t start = 1;
    for (;;) {
      std::size_t slash = path.find('/', start);
      std::string key = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      if (slash == std::string::npos) {
        at->as_object()[key] = op.at("value");
        break;
      }
      at = &at->as_object()[key];
      start = slash + 1;
    }
  }
}

}  // namespace

TEST_CASE("admission defaults: usagePolicy from Same when it is absent or null, as KubeStash's Default") {
  for (const char* spec : {"{storage: {provider: gcs, gcs: {bucket: b}}}",
                           "{storage: {provider: gcs, gcs: {bucket: b}}, usagePolicy: null}"}) {
    INFO(spec);
    json::value object = storage_json("a", spec);
    auto patch = backup_storage_defaults(object);
    REQUIRE(patch.size() == 1);
    CHECK(patch.at(0).at("op") == "add");
    CHECK(patch.at(0).at("path") == "/spec/usagePolicy");
    CHECK(patch.at(0).at("value") == json::parse(R"({"allowedNamespaces":{"from":"Same"}})"));
    apply(object, patch);
    CHECK(object.at("spec").at("usagePolicy").at("allowedNamespaces").at("from") == "Same");
    CHECK(backup_storage_defaults(object).empty());  // a second call (the API server may re-invoke) adds nothing
  }
  // A policy given is left as it is, even one KubeStash's schema defaults further.
  CHECK(backup_storage_defaults(storage_json("a", "{storage: {provider: gcs, gcs: {bucket: b}}, usagePolicy: "
                                                  "{allowedNamespaces: {from: All}}}"))
            .empty());
  // No spec at all: one is added with the policy.
  json::value bare = yaml("apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: x}\n");
  auto patch = backup_storage_defaults(bare);
  REQUIRE(patch.size() == 1);
  CHECK(patch.at(0).at("path") == "/spec");
  // Not an object: nothing (the schema refuses it).
  CHECK(backup_storage_defaults(json::value("text")).empty());
}

TEST_CASE("admission defaults: trailing slashes trimmed from the fields KubeStash trims, and only those") {
  json::value object = storage_json(
      "a",
      "{storage: {provider: s3, s3: {bucket: \"b/\", endpoint: \"https://minio:9000//\", prefix: \"/backup/demo/\", "
      "region: \"r/\", secretName: \"s/\"}, gcs: {bucket: \"g/\", prefix: \"p/\"}, azure: {container: \"c/\", "
      "prefix: \"/x/\", storageAccount: \"acc/\"}}, usagePolicy: {allowedNamespaces: {from: Same}}}");
  auto patch = backup_storage_defaults(object);
  std::map<std::string, std::string> replaced;
  for (const auto& op : patch) {
    CHECK(op.at("op") == "replace");
    replaced[std::string(op.at("path").as_string())] = std::string(op.at("value").as_string());
  }
  CHECK(replaced == std::map<std::string, std::string>{{"/spec/storage/s3/bucket", "b"},
                                                       {"/spec/storage/s3/endpoint", "https://minio:9000"},
                                                       {"/spec/storage/s3/prefix", "/backup/demo"},
                                                       {"/spec/storage/gcs/bucket", "g"},
                                                       {"/spec/storage/gcs/prefix", "p"},
                                                       {"/spec/storage/azure/prefix", "/x"}});
  apply(object, patch);
  CHECK(backup_storage_defaults(object).empty());
  // A field of the wrong type is left for the schema to refuse.
  CHECK(backup_storage_defaults(storage_json("a", "{storage: {provider: s3, s3: {bucket: 7}}, usagePolicy: {}}")).empty());
}

TEST_CASE("admission: a second default storage in a namespace is refused with KubeStash's message") {
  Caches caches({storage("first", s3("b1", "p", "us-east-1", ", default: true"))});
  auto second = storage("second", s3("b2", "p", "us-east-1", ", default: true"));
  CHECK(validate_create(second, caches.view()) == std::string(kMultipleDefaults));
  CHECK(validate_create(second, caches.view()) ==
        std::string("multiple default BackupStorages are not allowed within the same namespace"));
  // Another namespace, or not default: allowed.
  CHECK_FALSE(validate_create(storage("second", s3("b2", "p", "us-east-1", ", default: true"), "other"), caches.view()));
  CHECK_FALSE(validate_create(storage("second", s3("b2", "p")), caches.view()));
  // The default storage itself may be updated (it is not "another" default).
  auto first = storage("first", s3("b1", "p", "us-east-1", ", default: true, deletionPolicy: WipeOut"));
  CHECK_FALSE(validate_update(first, storage("first", s3("b1", "p", "us-east-1", ", default: true")), caches.view()));
  // Turning another storage into a second default by an update is refused too.
  Caches two({storage("first", s3("b1", "p", "us-east-1", ", default: true")), storage("second", s3("b2", "p"))});
  CHECK(validate_update(second, storage("second", s3("b2", "p")), two.view()) == std::string(kMultipleDefaults));
}

TEST_CASE("admission: from Selector without a selector is refused with KubeStash's message, an empty one passes") {
  Caches caches;
  auto policy = [](const std::string& allowed) { return s3("b", "p", "us-east-1", ", usagePolicy: {allowedNamespaces: " + allowed + "}"); };
  CHECK(validate_create(storage("a", policy("{from: Selector}")), caches.view()) ==
        std::string("selector cannot be empty for usage policy of type \"Selector\""));
  CHECK(validate_create(storage("a", policy("{from: Selector, selector: null}")), caches.view()) ==
        std::string(kEmptySelector));
  CHECK_FALSE(validate_create(storage("a", policy("{from: Selector, selector: {}}")), caches.view()));
  CHECK_FALSE(validate_create(storage("a", policy("{from: Selector, selector: {matchLabels: {team: a}}}")), caches.view()));
  CHECK_FALSE(validate_create(storage("a", policy("{from: All}")), caches.view()));
  // On an update as well.
  CHECK(validate_update(storage("a", policy("{from: Selector}")), storage("a", policy("{from: All}")), caches.view()) ==
        std::string(kEmptySelector));
}

TEST_CASE("admission: spec.storage of a storage in use cannot change, with KubeStash's message") {
  const std::string in_use = "{repositories: [{name: r, namespace: demo, path: p/r, synced: true}]}";
  auto old = storage("a", s3("b", "p"), "demo", in_use);
  Caches caches({old});
  auto moved = storage("a", s3("b", "q"), "demo", in_use);
  CHECK(validate_update(moved, old, caches.view()) == std::string("BackupStorage is currently in use and cannot be modified"));
  // Another part of the spec may change; so may spec.storage once no Repository uses the storage.
  CHECK_FALSE(validate_update(storage("a", s3("b", "p", "us-east-1", ", deletionPolicy: WipeOut"), "demo", in_use), old,
                              caches.view()));
  CHECK_FALSE(validate_update(storage("a", s3("b", "q")), storage("a", s3("b", "p")), caches.view()));
  // A field at its zero value equals one left out (Go's DeepEqual of the typed spec).
  auto explicit_zero = storage("a", "{storage: {provider: s3, s3: {bucket: \"b\", prefix: \"p\", region: us-east-1, "
                                    "secretName: s, maxConnections: 0, insecureTLS: false}}}", "demo", in_use);
  CHECK_FALSE(validate_update(explicit_zero, old, caches.view()));
}

TEST_CASE("admission: two storages on the same bucket directory are refused with KubeStash's message, cluster-wide") {
  Caches caches({storage("s3", s3("b", "backup/demo")),
                 storage("gcs", "{storage: {provider: gcs, gcs: {bucket: g, prefix: p}}}", "team-a"),
                 storage("az", "{storage: {provider: azure, azure: {storageAccount: acc, container: c, prefix: p}}}")});
  const std::string kMessage = "no two BackupStorage should point to the same directory of the same bucket";
  CHECK(validate_create(storage("copy", s3("b", "backup/demo"), "other"), caches.view()) == kMessage);
  CHECK(validate_create(storage("copy", "{storage: {provider: gcs, gcs: {bucket: g, prefix: p}}}"), caches.view()) ==
        kMessage);
  CHECK(validate_create(storage("copy", "{storage: {provider: azure, azure: {storageAccount: acc, container: c, "
                                        "prefix: p}}}"),
                        caches.view()) == kMessage);
  // Other places pass.
  CHECK_FALSE(validate_create(storage("copy", s3("b", "backup/other")), caches.view()));
  CHECK_FALSE(validate_create(storage("copy", s3("c", "backup/demo")), caches.view()));
  CHECK_FALSE(validate_create(storage("copy", "{storage: {provider: azure, azure: {storageAccount: other, container: "
                                              "c, prefix: p}}}"),
                              caches.view()));
  // The storage itself, updated, does not conflict with its own cached version.
  CHECK_FALSE(validate_update(storage("s3", s3("b", "backup/demo", "us-east-1", ", deletionPolicy: WipeOut")),
                              storage("s3", s3("b", "backup/demo")), caches.view()));
}

TEST_CASE("admission: stowage refuses nested and equivalent locations too, naming the other storage") {
  Caches caches({storage("team", s3("b", "backup")),
                 storage("disk", host_path("/data/backups"))});
  auto inside = validate_create(storage("sub", s3("b", "backup/team-b")), caches.view());
  REQUIRE(inside);
  CHECK_THAT(*inside, Catch::StartsWith("this BackupStorage (S3 bucket `b` prefix `backup/team-b` at AWS) lies inside "
                                        "the location of BackupStorage demo/team (S3 bucket `b` prefix `backup` at AWS)"));
  CHECK_THAT(*inside, Catch::Contains("a WipeOut of either would delete the other's backups"));
  auto holds = validate_create(storage("all", s3("b", "")), caches.view());
  REQUIRE(holds);
  CHECK_THAT(*holds, Catch::Contains("holds the location of BackupStorage demo/team"));
  // The same directory written differently (KubeStash compares as written and misses it): the
  // region does not make another AWS bucket, a leading slash or "./" another prefix.
  auto same = validate_create(storage("same", s3("b", "/backup/./", "eu-west-1")), caches.view());
  REQUIRE(same);
  CHECK_THAT(*same, Catch::Contains("is at the same location as BackupStorage demo/team"));
  // Local volumes, which KubeStash never compares.
  auto disk = validate_create(storage("disk2", host_path("/data/backups/x")), caches.view());
  REQUIRE(disk);
  CHECK_THAT(*disk, Catch::Contains("lies inside the location of BackupStorage demo/disk (hostPath /data/backups)"));
  // A tenant refused for another namespace's location learns that the place is taken, not by whom or
  // at which path.
  auto other = validate_create(storage("disk2", host_path("/data/backups/x"), "other"), caches.view());
  REQUIRE(other);
  CHECK_THAT(*other, Catch::Contains("lies inside the location of a BackupStorage in another namespace"));
  CHECK_THAT(*other, !Catch::Contains("demo/disk") && !Catch::Contains("(hostPath /data/backups)"));
  // Siblings and look-alikes pass.
  CHECK_FALSE(validate_create(storage("sibling", s3("b", "backup2")), caches.view()));
  CHECK_FALSE(validate_create(storage("sibling", host_path("/data/backups2")), caches.view()));
  // An update that moves a storage into another's location is refused as well.
  Caches apart({storage("team", s3("b", "backup")), storage("sub", s3("b", "elsewhere"))});
  CHECK(validate_update(storage("sub", s3("b", "backup/x")), storage("sub", s3("b", "elsewhere")), apart.view()));
}

TEST_CASE("admission: the provider's section must be there, and no other provider's") {
  Caches caches;
  auto refused = [&](const std::string& spec) { return validate_create(storage("a", spec), caches.view()).value_or(""); };
  CHECK(refused("{storage: {provider: s3}}") ==
        "spec.storage.s3 is missing for provider s3: add it, or set provider to the section given");
  CHECK(refused("{storage: {provider: b2, s3: {bucket: b}}}") ==
        "spec.storage.provider \"b2\" is not supported: use one of local, s3, gcs, azure");
  CHECK(refused("{storage: {s3: {bucket: b}}}") == "spec.storage.provider is not set: set it to one of local, s3, gcs, azure");
  CHECK(refused("{storage: {provider: s3, s3: {bucket: b}, gcs: {bucket: g}}}") ==
        "spec.storage.gcs is given but provider is s3: remove it, or set provider to gcs");
  CHECK(refused("{storage: {provider: gcs, gcs: {bucket: g}}}").empty());
}

TEST_CASE("admission: local paths are absolute and without '..'") {
  Caches caches;
  auto refused = [&](const std::string& local) {
    return validate_create(storage("a", "{storage: {provider: local, local: " + local + "}}"), caches.view()).value_or("");
  };
  CHECK(refused("{mountPath: safe/data, hostPath: {path: /data}}") ==
        "spec.storage.local.mountPath must be an absolute path without '..', got \"safe/data\"");
  CHECK(refused("{mountPath: /safe/../etc, hostPath: {path: /data}}") ==
        "spec.storage.local.mountPath must be an absolute path without '..', got \"/safe/../etc\"");
  CHECK(refused("{mountPath: /safe, hostPath: {path: /data/../etc}}") ==
        "spec.storage.local.hostPath.path must be an absolute path without '..', got \"/data/../etc\"");
  CHECK(refused("{mountPath: /safe, subPath: /abs, hostPath: {path: /data}}") ==
        "spec.storage.local.subPath must be a relative path without '..', got \"/abs\"");
  CHECK(refused("{mountPath: /safe, subPath: a/../../b, persistentVolumeClaim: {claimName: c}}") ==
        "spec.storage.local.subPath must be a relative path without '..', got \"a/../../b\"");
  CHECK(refused("{mountPath: /safe, nfs: {server: nfs.example, path: exports}}") ==
        "spec.storage.local.nfs.path must be an absolute path without '..', got \"exports\"");
  CHECK(refused("{mountPath: /safe}") ==
        "spec.storage.local has no volume source: add one of hostPath, persistentVolumeClaim, nfs, ...");
  CHECK(refused("{mountPath: /safe/data, subPath: team-a, nfs: {server: nfs.example, path: /exports}}").empty());
}

TEST_CASE("admission: an update that leaves spec.storage alone is judged by KubeStash's rules only, a deleting storage passes") {
  // Two nested storages accepted before the webhook existed: either may still have its labels changed.
  auto outer = storage("outer", s3("b", "backup"));
  auto inner = storage("inner", s3("b", "backup/x"));
  Caches caches({outer, inner});
  auto relabelled = inner;
  relabelled.metadata.labels["team"] = "a";
  CHECK_FALSE(validate_update(relabelled, inner, caches.view()));
  // Moving it is judged.
  CHECK(validate_update(storage("inner", s3("b", "backup/y")), inner, caches.view()));
  // A second default being deleted may lose its finalizer, which KubeStash's webhook would refuse.
  Caches defaults({storage("one", s3("b1", "p", "us-east-1", ", default: true")),
                   storage("two", s3("b2", "p", "us-east-1", ", default: true"))});
  auto deleting = storage("two", s3("b2", "p", "us-east-1", ", default: true"));
  deleting.metadata.deletion_timestamp = "2026-01-01T00:00:09Z";
  auto released = deleting;
  released.metadata.finalizers.clear();
  CHECK_FALSE(validate_update(released, deleting, defaults.view()));
  // Without the deletion it is KubeStash's refusal.
  CHECK(validate_update(storage("two", s3("b2", "p", "us-east-1", ", default: true")),
                        storage("two", s3("b2", "p", "us-east-1", ", default: true")), defaults.view()) ==
        std::string(kMultipleDefaults));
  // A deleting storage cannot move its data elsewhere either.
  auto moved = deleting;
  moved.spec.storage.s3->prefix = "elsewhere";
  CHECK(validate_update(moved, deleting, defaults.view()));
}

namespace {

std::string review(const std::string& operation, const json::value& object, const json::value& old = nullptr,
                   const std::string& uid = "e911857d-c318-11e8-bbad-025000000001") {
  json::object request{{"uid", uid},
                       {"kind", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"kind", "BackupStorage"}}},
                       {"resource", {{"group", "storage.kubestash.com"}, {"version", "v1alpha1"}, {"resource", "backupstorages"}}},
                       {"name", object.at("metadata").at("name")},
                       {"namespace", object.at("metadata").at("namespace")},
                       {"operation", operation},
                       {"object", object}};
  if (!old.is_null()) request["oldObject"] = old;
  return json::serialize(json::object{{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", request}});
}

json::object response_of(const std::string& answer) {
  json::value parsed = json::parse(answer);
  CHECK(parsed.at("apiVersion") == "admission.k8s.io/v1");
  CHECK(parsed.at("kind") == "AdmissionReview");
  return parsed.at("response").as_object();
}

}  // namespace

TEST_CASE("webhook answers: the uid echoed, a refusal as 403 with KubeStash's message, the defaults as a JSONPatch") {
  Caches caches({storage("first", s3("b1", "p", "us-east-1", ", default: true"))});
  auto refused = response_of(validate_review(review("CREATE", storage_json("second", s3("b2", "p", "us-east-1", ", default: true"))),
                                             caches.view()));
  CHECK(refused.at("uid") == "e911857d-c318-11e8-bbad-025000000001");
  CHECK(refused.at("allowed") == false);
  CHECK(refused.at("status").at("code") == 403);
  CHECK(refused.at("status").at("reason") == "Forbidden");
  CHECK(refused.at("status").at("message").as_string() == kMultipleDefaults);

  auto allowed = response_of(validate_review(review("CREATE", storage_json("second", s3("b2", "p")), nullptr, "u2"),
                                             caches.view()));
  CHECK(allowed.at("uid") == "u2");
  CHECK(allowed.at("allowed") == true);
  CHECK_FALSE(allowed.contains("patch"));

  // UPDATE reads oldObject.
  const std::string in_use = "{repositories: [{name: r, namespace: demo}]}";
  auto update = response_of(validate_review(review("UPDATE", storage_json("first", s3("b1", "q", "us-east-1", ", default: true"), "demo", in_use),
                                                   storage_json("first", s3("b1", "p", "us-east-1", ", default: true"), "demo", in_use)),
                                            caches.view()));
  CHECK(update.at("status").at("message").as_string() == kInUse);

  auto mutated = response_of(mutate_review(review("CREATE", storage_json("m", "{storage: {provider: gcs, gcs: {bucket: \"g/\"}}}"))));
  CHECK(mutated.at("allowed") == true);
  CHECK(mutated.at("patchType") == "JSONPatch");
  auto patch = crypto::base64_decode(std::string(mutated.at("patch").as_string()));
  REQUIRE(patch);
  CHECK(json::parse(*patch) == json::parse(R"([{"op":"add","path":"/spec/usagePolicy","value":{"allowedNamespaces":{"from":"Same"}}},
                                               {"op":"replace","path":"/spec/storage/gcs/bucket","value":"g"}])"));
  // Nothing to default: no patch at all.
  auto unchanged = response_of(mutate_review(review("CREATE", storage_json("m", "{storage: {provider: gcs, gcs: {bucket: g}}, "
                                                                                 "usagePolicy: {allowedNamespaces: {from: All}}}"))));
  CHECK(unchanged.at("allowed") == true);
  CHECK_FALSE(unchanged.contains("patch"));
}

TEST_CASE("webhook answers: not synced yet, unreadable objects and bodies, other operations") {
  Caches caches;
  auto early = response_of(validate_review(review("CREATE", storage_json("a", s3("b", "p"))), std::nullopt));
  CHECK(early.at("allowed") == false);
  CHECK(early.at("status").at("code") == 503);
  CHECK_THAT(std::string(early.at("status").at("message").as_string()), Catch::Contains("have not synced yet"));

  // An object that is no BackupStorage: 400 naming the field.
  json::value odd = storage_json("a", s3("b", "p"));
  odd.at("spec").as_object()["default"] = "yes";
  auto unreadable = response_of(validate_review(review("CREATE", odd), caches.view()));
  CHECK(unreadable.at("allowed") == false);
  CHECK(unreadable.at("status").at("code") == 400);
  CHECK_THAT(std::string(unreadable.at("status").at("message").as_string()),
             Catch::StartsWith("cannot read the BackupStorage: request.object.spec.default: expected"));

  for (const char* body : {"", "{", "[]", "{\"apiVersion\":\"admission.k8s.io/v1beta1\",\"kind\":\"AdmissionReview\"}"}) {
    INFO(body);
    for (const auto& answer : {validate_review(body, caches.view()), mutate_review(body)}) {
      auto r = response_of(answer);
      CHECK(r.at("allowed") == false);
      CHECK(r.at("status").at("code") == 400);
      CHECK(r.at("uid") == "");
    }
  }
  // DELETE (not registered, but harmless) and a status subresource pass untouched.
  auto del = json::parse(review("DELETE", storage_json("a", s3("b", "p"))));
  CHECK(response_of(validate_review(json::serialize(del), std::nullopt)).at("allowed") == true);
  auto status = json::parse(review("UPDATE", storage_json("a", "{storage: {provider: s3}}"), storage_json("a", s3("b", "p"))));
  status.at("request").as_object()["subResource"] = "status";
  CHECK(response_of(validate_review(json::serialize(status), caches.view())).at("allowed") == true);
}

TEST_CASE("webhook answers: bodies that are not AdmissionReviews, from whoever reaches the port, warn once a minute at most") {
  test_support::LogCapture logs;
  for (int i = 0; i < 5; ++i) {
    auto answer = response_of(mutate_review("not json"));
    CHECK(answer.at("allowed") == false);
    CHECK(answer.at("status").at("code") == 400);
  }
  const std::string what = "is not an AdmissionReview v1";
  INFO(logs.all());
  CHECK(logs.count("warning", what) <= 1);  // one, or none when an earlier test warned within the minute
  CHECK(logs.count("warning", what) + logs.count("debug", what) == 5);
}
