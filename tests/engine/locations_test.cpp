// Which storages overlap: locations per provider, cleaning, nesting, age, and what each change affects.
#include <catch2/catch.hpp>

#include "engine/locations.hpp"
#include "engine/manifests.hpp"

using namespace stowage;
using namespace stowage::engine;

namespace {

// A storage from a spec fragment (YAML flow mapping under spec.storage), created at `created`.
kube::BackupStorage storage(const std::string& name, const std::string& storage_spec, const std::string& created,
                            const std::string& ns = "demo") {
  std::string yaml = "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
                     ", namespace: " + ns + ", uid: uid-" + name + ", creationTimestamp: \"" + created +
                     "\"}\nspec:\n  storage: " + storage_spec + "\n";
  auto contents = parse_manifest_text("test.yaml", yaml);
  INFO(yaml << (contents.problems.empty() ? "" : contents.problems.front()));
  REQUIRE(contents.storages.size() == 1);
  return contents.storages.front().object;
}

std::string s3(const std::string& bucket, const std::string& prefix, const std::string& endpoint = "") {
  return "{provider: s3, s3: {bucket: \"" + bucket + "\", prefix: \"" + prefix + "\", endpoint: \"" + endpoint +
         "\", secretName: s}}";
}

std::string host_path(const std::string& path, const std::string& sub = "") {
  return "{provider: local, local: {mountPath: /safe/data, subPath: \"" + sub + "\", hostPath: {path: \"" + path +
         "\"}}}";
}

std::string pvc(const std::string& claim, const std::string& sub) {
  return "{provider: local, local: {mountPath: /safe/data, subPath: \"" + sub +
         "\", persistentVolumeClaim: {claimName: " + claim + "}}}";
}

const std::string kT1 = "2026-01-01T00:00:01Z", kT2 = "2026-01-01T00:00:02Z", kT3 = "2026-01-01T00:00:03Z";

ObjectKey key(const std::string& name, const std::string& ns = "demo") { return {ns, name}; }

}  // namespace

TEST_CASE("locations: S3 endpoints, buckets and prefixes are compared as the store sees them") {
  LocationSettings settings;
  auto loc = [&](const std::string& spec) { return location_of(storage("x", spec, kT1), settings).value(); };
  // Trailing slashes, case of the host, an empty vs an explicit AWS endpoint, and Go's path cleaning.
  CHECK(loc(s3("b", "/backup/demo/", "https://MinIO:9000/")).space == loc(s3("b", "backup/demo", "https://minio:9000")).space);
  CHECK(loc(s3("b", "/backup/demo/")).path == "backup/demo");
  CHECK(loc(s3("b", "a//./b")).path == "a/b");
  CHECK(loc(s3("b", "", "")).space == loc(s3("b", "", "https://s3.us-west-1.amazonaws.com")).space);
  CHECK(loc(s3("b", "")).path.empty());
  CHECK(loc(s3("b", "p", "http://minio:9000")).space != loc(s3("b", "p", "http://other:9000")).space);
  CHECK(loc(s3("b", "p")).space != loc(s3("c", "p")).space);
  CHECK(loc(s3("b", "p")).label == "S3 bucket `b` prefix `p` at AWS");
  // No bucket: no location (the storage is NotReady for that anyway).
  CHECK_FALSE(location_of(storage("x", s3("", "p"), kT1), settings));
}

TEST_CASE("locations: S3 endpoints are read by the endpoint parser: default ports, IPv6, unusable endpoints") {
  LocationSettings settings;
  auto space = [&](const std::string& endpoint) {
    auto at = location_of(storage("x", s3("b", "p", endpoint), kT1), settings);
    return at ? at->space : std::string("(none)");
  };
  // One store however its web port and scheme are written (a reverse proxy serves both).
  CHECK(space("https://minio.example") == "s3:minio.example/b");
  CHECK(space("https://minio.example:443") == "s3:minio.example/b");
  CHECK(space("HTTP://MinIO.example:80/") == "s3:minio.example/b");
  CHECK(space("minio.example") == "s3:minio.example/b");
  // Other ports are other servers; a path is part of the store.
  CHECK(space("http://minio.example:9000") == "s3:minio.example:9000/b");
  CHECK(space("http://minio.example:9000/tenant-a/") == "s3:minio.example:9000/tenant-a/b");
  CHECK(space("https://[FD00::1]:9000") == "s3:[fd00::1]:9000/b");
  CHECK(space("https://S3.eu-west-1.amazonaws.com:443") == "s3:aws/b");
  // An endpoint the backend refuses holds no data, so it overlaps nothing (and no label shows a password).
  CHECK(space("https://admin:secret@minio.example") == "(none)");
  CHECK(space("https://minio.example:99999") == "(none)");
  CHECK(space("https://minio.example/?sig=x") == "(none)");
}

TEST_CASE("locations: GCS, Azure and local volumes") {
  LocationSettings direct{"/srv/volumes", false};
  LocationSettings jobs{"/srv/volumes", true};
  auto loc = [&](const std::string& spec, const LocationSettings& s, const std::string& ns = "demo") {
    return location_of(storage("x", spec, kT1, ns), s);
  };
  auto gcs = loc("{provider: gcs, gcs: {bucket: g, prefix: /p/q/, secretName: s}}", direct).value();
  CHECK(gcs.space == "gcs:g");
  CHECK(gcs.path == "p/q");
  auto azure = loc("{provider: azure, azure: {storageAccount: Acct, container: c, prefix: p, secretName: s}}", direct);
  CHECK(azure.value().space == "azure:acct/c");

  // Direct: the directory the backend writes, beneath local.root.
  auto host = loc(host_path("/data/x", "sub"), direct).value();
  CHECK(host.space == "local");
  CHECK(host.path == "srv/volumes/data/x/sub");
  auto mounted = loc(pvc("claim", "ignored"), direct).value();
  CHECK(mounted.path == "srv/volumes/safe/data");  // the volume is mounted at mountPath, subPath applied
  CHECK_FALSE(loc(host_path("/data/../x"), direct));  // refused by the backend: no location

  // Jobs: the volume source itself.
  auto node = loc(host_path("/data/x/", "sub"), jobs).value();
  CHECK(node.space == "hostPath");
  CHECK(node.path == "data/x/sub");
  auto claim = loc(pvc("claim", "a/b"), jobs).value();
  CHECK(claim.space == "pvc:demo/claim");
  CHECK(claim.path == "a/b");
  CHECK(loc(pvc("claim", "a/b"), jobs, "other").value().space == "pvc:other/claim");  // claims are per namespace
  auto nfs = loc("{provider: local, local: {mountPath: /m, nfs: {server: NFS.example, path: /exports/}}}", jobs);
  CHECK(nfs.value().space == "nfs:nfs.example");
  CHECK(nfs.value().path == "exports");
  CHECK_FALSE(loc("{provider: local, local: {mountPath: /m, emptyDir: {}}}", jobs));  // per pod: never shared
}

TEST_CASE("locations: equal and nested locations overlap, neighbours do not, and the older wins") {
  LocationIndex index;
  CHECK(index.put(storage("outer", s3("b", "backup"), kT1)).empty());
  CHECK(index.put(storage("neighbour", s3("b", "backup2"), kT1)).empty());
  CHECK(index.put(storage("other-bucket", s3("c", "backup/team-b"), kT1)).empty());
  CHECK(index.put(storage("inner", s3("b", "/backup/team-b/"), kT2)) == std::vector<ObjectKey>{key("outer")});
  CHECK(index.put(storage("same", s3("b", "backup/"), kT3)) == std::vector<ObjectKey>{key("inner"), key("outer")});

  // outer is the oldest: no conflict; it holds inner's location and shares its own with same.
  CHECK_FALSE(index.conflict(key("outer")));
  auto of_outer = index.overlaps(key("outer"));
  REQUIRE(of_outer.size() == 2);
  CHECK(of_outer[0].other == key("inner"));
  CHECK(of_outer[0].nesting == Nesting::Inside);
  CHECK_FALSE(of_outer[0].other_is_older);
  CHECK(of_outer[1].other == key("same"));
  CHECK(of_outer[1].nesting == Nesting::Same);

  auto inner = index.conflict(key("inner"));
  REQUIRE(inner);
  CHECK(inner->other == key("outer"));
  CHECK(inner->nesting == Nesting::Holds);
  CHECK(describe(inner->nesting) == "lies inside the location of");
  auto same = index.conflict(key("same"));
  REQUIRE(same);
  CHECK(same->other == key("outer"));  // the oldest of the older ones
  CHECK_FALSE(index.conflict(key("neighbour")));
  CHECK(index.overlaps(key("neighbour")).empty());

  // An empty prefix holds the whole bucket; of outer and neighbour (same age) the smaller uid is older.
  index.put(storage("root", s3("b", ""), kT3));
  CHECK(index.overlaps(key("root")).size() == 4);
  CHECK(index.conflict(key("root"))->other == key("neighbour"));
}

TEST_CASE("locations: ties in age are broken by uid, and every change names the storages it affects") {
  LocationIndex index;
  index.put(storage("b", host_path("/data/x"), kT1));
  index.put(storage("a", host_path("/data/x"), kT1));
  CHECK(index.conflict(key("b"))->other == key("a"));  // uid-a < uid-b
  CHECK_FALSE(index.conflict(key("a")));

  // Moving a away frees b; moving it back conflicts again; an unchanged put affects nobody.
  CHECK(index.put(storage("a", host_path("/data/y"), kT1)) == std::vector<ObjectKey>{key("b")});
  CHECK_FALSE(index.conflict(key("b")));
  CHECK(index.put(storage("a", host_path("/data/y"), kT1)).empty());
  CHECK(index.put(storage("a", host_path("/data/x/inside"), kT1)) == std::vector<ObjectKey>{key("b")});
  CHECK(index.conflict(key("b"))->nesting == Nesting::Inside);

  // Gone for good: the storages it overlapped are named; a storage without a location leaves the index.
  CHECK(index.erase(key("a")) == std::vector<ObjectKey>{key("b")});
  CHECK_FALSE(index.conflict(key("b")));
  CHECK(index.erase(key("a")).empty());
  index.put(storage("b", s3("", "p"), kT1));
  CHECK(index.location(key("b")) == nullptr);
  CHECK(index.size() == 0);
}

TEST_CASE("locations: the same claim in two namespaces is two places, nested subPaths of one claim overlap") {
  LocationIndex index({"/", true});
  index.put(storage("a", pvc("claim", "backups"), kT1, "team-a"));
  index.put(storage("b", pvc("claim", "backups"), kT2, "team-b"));
  index.put(storage("c", pvc("claim", "backups/c"), kT2, "team-a"));
  CHECK_FALSE(index.conflict({"team-b", "b"}));
  auto c = index.conflict({"team-a", "c"});
  REQUIRE(c);
  CHECK(c->other == ObjectKey{"team-a", "a"});
  CHECK(c->other_label == "PersistentVolumeClaim team-a/claim subPath backups");
}

TEST_CASE("locations: within the same second an initialized storage is never displaced by a newcomer") {
  LocationIndex index;
  auto in_use = storage("zz-in-use", host_path("/data/x"), kT1);
  kube::Condition c;
  c.type = "BackendInitialized";
  c.status = "True";
  in_use.status.conditions.push_back(c);
  index.put(in_use);
  // Created in the same second, with a uid that sorts first: it still loses.
  CHECK(index.put(storage("aa-newcomer", host_path("/data/x/inner"), kT1)) == std::vector<ObjectKey>{key("zz-in-use")});
  CHECK_FALSE(index.conflict(key("zz-in-use")));
  CHECK(index.conflict(key("aa-newcomer"))->other == key("zz-in-use"));
  // An older storage still wins over an initialized younger one.
  index.put(storage("older", host_path("/data"), "2025-12-31T23:59:59Z"));
  CHECK(index.conflict(key("zz-in-use"))->other == key("older"));
}
