// End to end through the real binary with one storage of each cloud provider, against the real
// servers (moto with authentication on, Azurite, the GCS test server): `stowage init` and
// `stowage run --manifests`, including WipeOut of an S3 prefix on deletion.
#include <catch2/catch.hpp>

#include "common/crypto.hpp"
#include "support.hpp"
#include "support/azurite_server.hpp"
#include "support/gcs_server.hpp"
#include "support/moto_server.hpp"

namespace {

std::string b64(const std::string& s) { return stowage::crypto::base64_encode(s); }

std::string secret(const std::string& name, const std::vector<std::pair<std::string, std::string>>& data) {
  std::string out = "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: demo}\ndata:\n";
  for (const auto& [k, v] : data) out += "  " + k + ": " + b64(v) + "\n";
  return out + "---\n";
}

std::string storage(const std::string& name, const std::string& provider, const std::string& section,
                    const std::string& policy = "Delete") {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
         ", namespace: demo}\nspec:\n  storage:\n    provider: " + provider + "\n    " + provider + ": " + section +
         "\n  deletionPolicy: " + policy + "\n---\n";
}

struct Servers {
  test_support::MotoServer moto;
  test_support::AzuriteServer azurite;
  test_support::GcsServer gcs;
  Servers() {
    moto.make_bucket("stowage-e2e");
    azurite.create_container("stowage-e2e");
  }
  std::string s3_manifest(const std::string& name, const std::string& prefix, const std::string& policy = "Delete") {
    return storage(name, "s3",
                   "{endpoint: " + moto.endpoint() + ", bucket: stowage-e2e, region: us-east-1, prefix: " + prefix +
                       ", secretName: s3-creds}",
                   policy);
  }
  std::string manifests() {
    const auto& c = moto.credentials();
    return secret("s3-creds", {{"AWS_ACCESS_KEY_ID", c.access_key_id}, {"AWS_SECRET_ACCESS_KEY", c.secret_access_key}}) +
           secret("azure-creds", {{"AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string()}}) +
           secret("gcs-creds", {{"GOOGLE_SERVICE_ACCOUNT_JSON_KEY", gcs.key_json()}}) +
           s3_manifest("s3", "/backup/s3/") +
           storage("azure", "azure",
                   "{storageAccount: " + azurite.account() + ", container: stowage-e2e, prefix: /backup/azure, "
                   "secretName: azure-creds}") +
           storage("gcs", "gcs", "{bucket: stowage, prefix: backup/gcs, secretName: gcs-creds}");
  }
};

}  // namespace

TEST_CASE("init and run initialize one storage of each cloud provider against real servers", "[cloud]") {
  Servers servers;
  auto dir = test::temp_dir("cloud");
  auto manifests = dir / "manifests", state = dir / "state";
  test::write_file(manifests / "all.yaml", servers.manifests());
  std::vector<std::string> common{"--state-dir", state.string(), "--gcs-endpoint", servers.gcs.endpoint()};

  auto args = std::vector<std::string>{"init", "-f", (manifests / "all.yaml").string()};
  args.insert(args.end(), common.begin(), common.end());
  auto init = test::run(args, dir);
  INFO(init.out << init.err);
  CHECK(init.code == 0);
  CHECK_THAT(init.out, Catch::Contains("demo/s3\tReady") && Catch::Contains("demo/azure\tReady") &&
                           Catch::Contains("demo/gcs\tReady"));
  auto s3_meta = servers.moto.get_object("stowage-e2e", "backup/s3/metadata.yaml");
  REQUIRE(s3_meta);
  CHECK_THAT(*s3_meta, Catch::StartsWith("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\n"));
  auto [azure_status, azure_meta] = servers.azurite.get_blob("stowage-e2e", "backup/azure/metadata.yaml");
  CHECK(azure_status == 200);
  CHECK_THAT(azure_meta, Catch::Contains("kind: BackendMeta"));
  CHECK(servers.gcs.object("stowage", "backup/gcs/metadata.yaml").has_value());

  // The controller on the same folder: everything is remembered, nothing is uploaded again; a new
  // WipeOut storage is initialized, and deleting its manifest wipes exactly its prefix.
  test::write_file(manifests / "wipe.yaml", servers.s3_manifest("wipe", "/backup/wipe/", "WipeOut"));
  servers.moto.put_objects("stowage-e2e", "backup/wipe/repo/snap-", 1100);  // two listing pages
  auto run_args = std::vector<std::string>{"run", "--manifests", manifests.string(), "--manifests-debounce", "20ms",
                                           "--manifests-delete-grace", "0s"};
  run_args.insert(run_args.end(), common.begin(), common.end());
  auto child = test::Child::spawn(run_args, dir / "run.out", dir / "run.err");
  CHECK(test::eventually([&] { return servers.moto.get_object("stowage-e2e", "backup/wipe/metadata.yaml").has_value(); }));
  auto uploads_before = servers.gcs.stat("api.upload");
  test::fs::remove(manifests / "wipe.yaml");
  CHECK(test::eventually([&] {
    for (const auto& k : servers.moto.list_keys("stowage-e2e"))
      if (k.rfind("backup/wipe/", 0) == 0) return false;
    return true;
  }));
  CHECK(servers.moto.get_object("stowage-e2e", "backup/s3/metadata.yaml").has_value());  // outside the prefix
  // Progress after the first listing page, in the log (and as a WipeOut condition in the status).
  CHECK(test::eventually([&] {
    return test::read_file(dir / "run.err").find("demo/wipe: WipeOut in progress: ") != std::string::npos;
  }));
  CHECK(test::eventually([&] { return test::read_file(dir / "run.err").find("WipeOut removed 1101 files") != std::string::npos; }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  CHECK(servers.gcs.stat("api.upload") == uploads_before);
  auto get = test::run({"get", "bs", "-n", "demo", "--state-dir", state.string()}, dir);
  CHECK_THAT(get.out, Catch::Contains("s3 ") && Catch::Contains("azure ") && Catch::Contains("gcs "));
  CHECK_THAT(get.out, !Catch::Contains("NotReady"));
  CHECK_THAT(get.out, !Catch::Contains("wipe"));
}

TEST_CASE("a wrong S3 secret ends NotReady with an actionable reason and no secret in it", "[cloud]") {
  test_support::MotoServer moto;
  moto.make_bucket("stowage-bad");
  auto dir = test::temp_dir("cloud-bad");
  const std::string wrong = "WrongSecret" + stowage::crypto::hex(stowage::crypto::random_bytes(8));
  test::write_file(dir / "bad.yaml",
                   secret("s3-creds", {{"AWS_ACCESS_KEY_ID", moto.credentials().access_key_id},
                                       {"AWS_SECRET_ACCESS_KEY", wrong}}) +
                       storage("bad", "s3", "{endpoint: " + moto.endpoint() + ", bucket: stowage-bad, secretName: s3-creds}"));
  auto init = test::run({"init", "-f", (dir / "bad.yaml").string(), "--state-dir", (dir / "state").string()}, dir);
  CHECK(init.code == 1);
  CHECK_THAT(init.out, Catch::Contains("demo/bad\tNotReady") && Catch::Contains("AWS_SECRET_ACCESS_KEY"));
  CHECK(init.out.find(wrong) == std::string::npos);
  CHECK(init.err.find(wrong) == std::string::npos);
}

namespace {

// A storage manifest with a creation time: of two overlapping storages the older one wins.
std::string storage_at(const std::string& name, const std::string& provider, const std::string& section,
                       const std::string& policy, const std::string& created) {
  std::string yaml = storage(name, provider, section, policy);
  return yaml.insert(yaml.find("namespace: demo}"), "creationTimestamp: \"" + created + "\", ");
}

// The storage's BackendInitialized reason and message as `stowage get -o json` shows them.
std::string initialized(const test::fs::path& state, const test::fs::path& dir, const std::string& name) {
  auto got = test::run({"get", "bs", name, "-n", "demo", "-o", "json", "--state-dir", state.string()}, dir);
  return got.out;
}

}  // namespace

TEST_CASE("overlapping cloud storages: only the older is initialized, and its WipeOut keeps the other's data",
          "[cloud]") {
  Servers servers;
  auto dir = test::temp_dir("cloud-overlap");
  auto manifests = dir / "manifests", state = dir / "state";
  const auto& c = servers.moto.credentials();
  std::string s3_section = "{endpoint: " + servers.moto.endpoint() + ", bucket: stowage-e2e, secretName: s3-creds, prefix: ";
  std::string azure_section = "{storageAccount: " + servers.azurite.account() +
                              ", container: stowage-e2e, secretName: azure-creds, prefix: ";
  test::write_file(manifests / "secrets.yaml",
                   secret("s3-creds", {{"AWS_ACCESS_KEY_ID", c.access_key_id}, {"AWS_SECRET_ACCESS_KEY", c.secret_access_key}}) +
                       secret("azure-creds", {{"AZURE_STORAGE_CONNECTION_STRING", servers.azurite.connection_string()}}));
  test::write_file(manifests / "outer.yaml",
                   storage_at("s3-outer", "s3", s3_section + "team}", "WipeOut", "2026-01-01T00:00:01Z") +
                       storage_at("azure-outer", "azure", azure_section + "team}", "WipeOut", "2026-01-01T00:00:01Z"));
  test::write_file(manifests / "inner.yaml",
                   storage_at("s3-inner", "s3", s3_section + "/team/b/}", "Delete", "2026-01-01T00:00:02Z") +
                       storage_at("s3-same", "s3", s3_section + "team/}", "Delete", "2026-01-01T00:00:03Z") +
                       storage_at("azure-inner", "azure", azure_section + "team/b}", "Delete", "2026-01-01T00:00:02Z"));
  // The inner location already holds data (say, from before stowage ran).
  servers.moto.put_object("stowage-e2e", "team/b/repo/snap-1", "inner's backup");
  servers.azurite.put_blob("stowage-e2e", "team/b/repo/snap-1", "inner's backup");

  auto child = test::Child::spawn({"run", "--manifests", manifests.string(), "--state-dir", state.string(),
                                   "--manifests-debounce", "20ms", "--manifests-delete-grace", "0s"},
                                  dir / "run.out", dir / "run.err");
  CHECK(test::eventually([&] { return servers.moto.get_object("stowage-e2e", "team/metadata.yaml").has_value(); }));
  CHECK(test::eventually([&] { return servers.azurite.get_blob("stowage-e2e", "team/metadata.yaml").first == 200; }));
  for (std::string name : {"s3-inner", "s3-same", "azure-inner"}) {
    INFO(name);
    CHECK(test::eventually([&] { return initialized(state, dir, name).find("StorageLocationConflict") != std::string::npos; }));
  }
  CHECK_THAT(initialized(state, dir, "s3-inner"), Catch::Contains("lies inside the location of BackupStorage demo/s3-outer"));
  CHECK_THAT(initialized(state, dir, "s3-same"), Catch::Contains("is at the same location as BackupStorage demo/s3-outer"));
  CHECK_FALSE(servers.moto.get_object("stowage-e2e", "team/b/metadata.yaml"));
  CHECK(servers.azurite.get_blob("stowage-e2e", "team/b/metadata.yaml").first == 404);

  // The outer storages go with WipeOut: their own data goes, the inner location stays.
  servers.moto.put_objects("stowage-e2e", "team/repo/snap-", 5);
  servers.azurite.put_blob("stowage-e2e", "team/repo/snap-1", "outer's backup");
  test::fs::remove(manifests / "outer.yaml");
  CHECK(test::eventually([&] { return !servers.moto.get_object("stowage-e2e", "team/metadata.yaml").has_value(); }));
  CHECK(test::eventually([&] { return servers.azurite.get_blob("stowage-e2e", "team/metadata.yaml").first == 404; }));
  CHECK_FALSE(servers.moto.get_object("stowage-e2e", "team/repo/snap-0"));
  CHECK(servers.moto.get_object("stowage-e2e", "team/b/repo/snap-1") == std::optional<std::string>("inner's backup"));
  CHECK(servers.azurite.get_blob("stowage-e2e", "team/repo/snap-1").first == 404);
  CHECK(servers.azurite.get_blob("stowage-e2e", "team/b/repo/snap-1").second == "inner's backup");

  // The inner storages are then initialized; s3-same, younger than s3-inner and holding it, still is not.
  CHECK(test::eventually([&] { return servers.moto.get_object("stowage-e2e", "team/b/metadata.yaml").has_value(); }));
  CHECK(test::eventually([&] { return servers.azurite.get_blob("stowage-e2e", "team/b/metadata.yaml").first == 200; }));
  CHECK_THAT(initialized(state, dir, "s3-same"), Catch::Contains("holds the location of BackupStorage demo/s3-inner"));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}
