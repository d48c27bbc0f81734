// No secret value (nor its Base64 form) reaches a log line, the state database or the output of
// `stowage get`, even at trace level; in the Kubernetes mode, nor an Event or the status. Secret
// values that would inject a header never reach a server, and their errors name the key.
#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include "common/crypto.hpp"
#include "kube_cluster.hpp"
#include "support.hpp"
#include "support/http_test_server.hpp"

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

namespace {

std::string b64(const std::string& s) { return stowage::crypto::base64_encode(s); }

// The two cases as manifests: an S3 key id carrying a header of its own, and an Azure
// connection string with the account key pasted bare (the parser used to quote it as a setting
// name). Both endpoints are the test server, which counts the connections made to it.
struct HostileSecrets {
  std::string key_id = "AKIA" + stowage::crypto::hex(stowage::crypto::random_bytes(6));  // 16 bytes
  std::string injected = key_id + "\r\nX-Injected: yes";
  std::string secret = "SeCrEt-" + stowage::crypto::hex(stowage::crypto::random_bytes(12));
  std::string account_key = b64("account-key-" + stowage::crypto::hex(stowage::crypto::random_bytes(20)));
  std::string key_body = account_key.substr(0, account_key.find('='));  // what the old parser quoted

  std::string manifests(int port) const {
    const std::string endpoint = "http://127.0.0.1:" + std::to_string(port);
    const std::string cs = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;" + account_key +
                           ";BlobEndpoint=" + endpoint + "/devstoreaccount1";
    return "apiVersion: v1\nkind: Secret\nmetadata: {name: s3-creds, namespace: demo}\ndata:\n"
           "  AWS_ACCESS_KEY_ID: " + b64(injected) + "\n  AWS_SECRET_ACCESS_KEY: " + b64(secret) + "\n---\n"
           "apiVersion: v1\nkind: Secret\nmetadata: {name: az-creds, namespace: demo}\ndata:\n"
           "  AZURE_STORAGE_CONNECTION_STRING: " + b64(cs) + "\n---\n"
           "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: s3i, namespace: demo}\n"
           "spec:\n  storage:\n    provider: s3\n    s3: {bucket: b, endpoint: '" + endpoint +
           "', secretName: s3-creds}\n  deletionPolicy: Delete\n---\n"
           "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: azi, namespace: demo}\n"
           "spec:\n  storage:\n    provider: azure\n    azure: {storageAccount: devstoreaccount1, container: c, "
           "secretName: az-creds}\n  deletionPolicy: Delete\n";
  }
  // The status messages that say what is wrong, by key and position.
  static constexpr const char* kS3Message =
      "storage secret demo/s3-creds: AWS_ACCESS_KEY_ID contains a control character (at byte 16): fix the value";
  static constexpr const char* kAzureMessage =
      "part 3 of AZURE_STORAGE_CONNECTION_STRING is not a setting Azure storage knows";

  void check_absent(const std::string& everything) const {
    for (const auto& needle : {key_id, secret, key_body, account_key.substr(0, 16), b64(injected), b64(secret),
                               b64(key_id), std::string("X-Injected")}) {
      INFO(needle);
      CHECK(everything.find(needle) == std::string::npos);
    }
  }
};

std::string files_in(const test::fs::path& dir) {
  std::string all;
  for (const auto& e : test::fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) all += test::read_file(e.path());
  return all;
}

// The server's count of TCP connections so far, asked on a connection of its own (counted too).
int connections_seen(const test_support::HttpTestServer& server) {
  boost::asio::io_context io;
  stowage::http::Client client(io.get_executor());
  auto stats = test_support::run(io, client.send(server.url(), {}, test_support::get("/stats")));
  REQUIRE(stats.ok());
  return static_cast<int>(boost::json::parse(stats.value().body).at("connections").to_number<std::int64_t>());
}

}  // namespace

TEST_CASE("a Secret value that would inject a header, or an Azure key pasted bare, is named, never echoed") {
  auto dir = test::temp_dir("hostile-secrets");
  auto manifests = dir / "manifests", state = dir / "state";
  test_support::HttpTestServer server(dir);
  const int connections_before = connections_seen(server);
  HostileSecrets h;
  test::write_file(manifests / "hostile.yaml", h.manifests(server.port));
  auto log = dir / "trace.log";
  auto child = test::Child::spawn({"run", "--manifests", manifests.string(), "--state-dir", state.string(),
                                   "--log-level", "trace", "--log-format", "json", "--log-file", log.string()},
                                  dir / "out", dir / "err");
  auto yaml = [&] { return test::run({"get", "bs", "-n", "demo", "-o", "yaml", "--state-dir", state.string()}, dir); };
  REQUIRE(test::eventually([&] {
    auto out = yaml().out;
    return out.find(HostileSecrets::kS3Message) != std::string::npos &&
           out.find(HostileSecrets::kAzureMessage) != std::string::npos;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
  auto status = yaml();
  CHECK_THAT(status.out, Catch::Contains("phase: NotReady"));
  CHECK(test::count_of(log, "demo/s3i: NotReady") + test::count_of(log, "demo/azi: NotReady") >= 2);

  std::string everything =
      test::read_file(log) + test::read_file(dir / "out") + test::read_file(dir / "err") + status.out + status.err;
  everything += files_in(state);
  REQUIRE(everything.find("\"level\":\"trace\"") != std::string::npos);  // trace logging really ran
  h.check_absent(everything);
  CHECK(connections_seen(server) == connections_before + 1);  // the check's own: nothing reached the endpoint
}

TEST_CASE("in a cluster too: the status, the Event, the log and state.db name the key, never the value") {
  kube_e2e::KubeCluster cluster("kube-hostile-secrets", "hostile-admin-token", {});
  test_support::HttpTestServer server(cluster.dir);
  const int connections_before = connections_seen(server);
  HostileSecrets h;
  const auto kubeconfig = cluster.server.write_kubeconfig("demo");  // kubectl's too
  cluster.apply("hostile", h.manifests(server.port));
  auto child = cluster.run(kubeconfig, "run", "trace", {});
  LAZY_INFO(cluster.log("run"));
  auto messages = [&] {
    std::string out;
    for (const char* bs : {"s3i", "azi"}) {
      auto [code, text] = cluster.server.kubectl(std::string("get bs ") + bs +
                                                 " -n demo -o jsonpath={.status.conditions[*].message}");
      if (code == 0) out += text + "\n";
    }
    return out;
  };
  REQUIRE(test::eventually([&] {
    auto out = messages();
    return out.find(HostileSecrets::kS3Message) != std::string::npos &&
           out.find(HostileSecrets::kAzureMessage) != std::string::npos;
  }));
  std::string events;
  REQUIRE(test::eventually([&] {
    events = cluster.kubectl("get events.events.k8s.io -n demo -o json");
    return events.find("AWS_ACCESS_KEY_ID contains a control character") != std::string::npos &&
           events.find("AZURE_STORAGE_CONNECTION_STRING") != std::string::npos;
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);

  std::string everything = messages() + events + cluster.kubectl("get bs -n demo -o yaml") + cluster.log("run") +
                           test::read_file(cluster.dir / "run.out") + files_in(cluster.state);
  h.check_absent(everything);
  CHECK(connections_seen(server) == connections_before + 1);
}
