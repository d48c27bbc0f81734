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
