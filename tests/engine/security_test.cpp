// No secret value (nor its Base64 form) reaches a log line, the state database or the output of
// `stowage get`, even at trace level.
#include <catch2/catch.hpp>

#include "common/crypto.hpp"
#include "support.hpp"

TEST_CASE("no secret value appears in logs or in the database") {
  auto dir = test::temp_dir("secrets");
  auto manifests = dir / "manifests", state = dir / "state";
  const std::string key_id = "AKIA-STOWAGE-" + stowage::crypto::hex(stowage::crypto::random_bytes(6));
  const std::string secret = "SeCrEt-" + stowage::crypto::hex(stowage::crypto::random_bytes(12));
  const std::string bad = "not*base64*" + stowage::crypto::hex(stowage::crypto::random_bytes(6));
  test::write_file(manifests / "s3.yaml",
                   "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: demo}\ndata:\n"
                   "  AWS_ACCESS_KEY_ID: " + stowage::crypto::base64_encode(key_id) + "\n"
                   "  AWS_SECRET_ACCESS_KEY: " + stowage::crypto::base64_encode(secret) + "\n---\n"
                   "apiVersion: v1\nkind: Secret\nmetadata: {name: broken, namespace: demo}\ndata:\n"
                   "  AWS_SECRET_ACCESS_KEY: '" + bad + "'\n---\n"
                   "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: s3, namespace: demo}\n"
                   "spec: {storage: {provider: s3, s3: {bucket: b, endpoint: http://127.0.0.1:9, secretName: creds}}}\n"
                   "---\napiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\n"
                   "metadata: {name: s3b, namespace: demo}\n"
                   "spec: {storage: {provider: s3, s3: {bucket: c, endpoint: http://127.0.0.1:9, secretName: broken}}}\n");
  auto log = dir / "trace.log";
  auto child = test::Child::spawn({"run", "--manifests", manifests.string(), "--state-dir", state.string(),
                                   "--log-level", "trace", "--log-format", "json", "--log-file", log.string()},
                                  dir / "out", dir / "err");
  REQUIRE(test::eventually([&] {
    auto r = test::run({"get", "bs", "-n", "demo", "--state-dir", state.string()}, dir);
    return r.out.find("s3b") != std::string::npos && r.out.find("NotReady") != std::string::npos;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
  auto yaml = test::run({"get", "bs", "-A", "-o", "yaml", "--state-dir", state.string()}, dir);
  CHECK_THAT(yaml.out, Catch::Contains("missing AWS_ACCESS_KEY_ID") || Catch::Contains("not valid Base64"));

  std::string everything = test::read_file(log) + test::read_file(dir / "out") + test::read_file(dir / "err") +
                           yaml.out + yaml.err;
  for (const auto& e : test::fs::directory_iterator(state)) everything += test::read_file(e.path());
  REQUIRE(everything.find("\"level\":\"trace\"") != std::string::npos);  // trace logging really ran
  for (const auto& needle : {key_id, secret, bad, stowage::crypto::base64_encode(key_id),
                             stowage::crypto::base64_encode(secret)}) {
    INFO(needle);
    CHECK(everything.find(needle) == std::string::npos);
  }
}
