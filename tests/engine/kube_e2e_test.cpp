// `stowage run --kubeconfig` end to end: the real binary against the test API server over TLS, with
// objects made by the real kubectl, local volumes on disk and S3 on moto (authentication on).
#include <boost/json.hpp>
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include "common/crypto.hpp"
#include "common/time_format.hpp"
#include "support.hpp"
#include "scoped_environment.hpp"
#include "kube_cluster.hpp"
#include "support/api_server.hpp"
#include "support/connect_proxy.hpp"
#include "support/azurite_server.hpp"
#include "support/gcs_server.hpp"
#include "support/moto_server.hpp"
#include "storage/metadata.hpp"

namespace json = boost::json;
using test_support::TestApiServer;

namespace {

std::string b64(const std::string& s) { return stowage::crypto::base64_encode(s); }

std::string s3_secret(const test_support::MotoCredentials& c, const std::string& secret_key) {
  return "apiVersion: v1\nkind: Secret\nmetadata: {name: s3-creds, namespace: demo}\ndata:\n  AWS_ACCESS_KEY_ID: " +
         b64(c.access_key_id) + "\n  AWS_SECRET_ACCESS_KEY: " + b64(secret_key) + "\n";
}

std::string s3_storage(const std::string& name, const std::string& endpoint, const std::string& prefix) {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
         ", namespace: demo}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: " + endpoint +
         ", bucket: kube-e2e, region: us-east-1, prefix: " + prefix + ", secretName: s3-creds}\n  deletionPolicy: Delete\n";
}

struct Cluster : kube_e2e::KubeCluster {
  test::fs::path kubeconfig;

  explicit Cluster(const std::string& name, std::vector<std::string> server_args = {})
      : KubeCluster("kube-" + name, "e2e-token-do-not-log", std::move(server_args)),
        kubeconfig(server.write_kubeconfig("demo")) {}

  bool condition(const std::string& bs, const std::string& type, const std::string& status) const {
    auto [code, out] =
        server.kubectl("get bs " + bs + " -n demo -o jsonpath='{.status.conditions[?(@.type==\"" + type + "\")].status}'");
    return code == 0 && out == status;
  }
  test::Child start(const std::string& log_name, std::vector<std::string> extra = {}) const {
    return run(kubeconfig, log_name, "trace", std::move(extra));
  }
};

const json::value* find_condition(const json::value& bs, const std::string& type) {
  for (const auto& c : bs.at("status").at("conditions").as_array())
    if (c.at("type").as_string() == type) return &c;
  return nullptr;
}

std::string text(const json::value& v) { return std::string(v.as_string()); }

}  // namespace

TEST_CASE("run against an API server: kubectl-made storages go Ready, Secret changes re-reconcile, deletes finish") {
  Cluster cluster("lifecycle");
  test_support::MotoServer moto;
  moto.make_bucket("kube-e2e");
  const auto& creds = moto.credentials();
  cluster.apply("objects", test::local_storage("local", "/data/k1") + "---\n" + s3_secret(creds, creds.secret_access_key) +
                               "---\n" + s3_storage("s3", moto.endpoint(), "/backup/s3"));
  auto child = cluster.start("run");
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("local") == "Ready" && cluster.phase("s3") == "Ready"; }));
  // kubectl wait sees the conditions as it would on a real cluster.
  cluster.kubectl("wait --for=condition=BackendInitialized bs/s3 bs/local -n demo --timeout=10s");

  // Status and finalizer exactly as KubeStash writes them.
  json::value s3 = cluster.get("bs s3 -n demo");
  CHECK(text(s3.at("status").at("phase")) == "Ready");
  const auto* found = find_condition(s3, "BackendSecretFound");
  REQUIRE(found);
  CHECK(text(found->at("status")) == "True");
  CHECK(text(found->at("reason")) == "BackendSecretAvailable");
  const auto* init = find_condition(s3, "BackendInitialized");
  REQUIRE(init);
  CHECK(text(init->at("reason")) == "BackendInitializationSucceeded");
  CHECK(init->at("observedGeneration") == s3.at("metadata").at("generation"));
  CHECK(json::serialize(s3.at("metadata").at("finalizers")) == R"(["kubestash.com/cleanup"])");
  json::value local = cluster.get("bs local -n demo");
  CHECK(find_condition(local, "BackendSecretFound") == nullptr);  // no Secret for a local volume
  auto local_meta = cluster.root / "data/k1/metadata.yaml";
  REQUIRE(test::fs::exists(local_meta));
  CHECK_THAT(test::read_file(local_meta), Catch::Contains("kind: BackendMeta"));
  REQUIRE(moto.get_object("kube-e2e", "backup/s3/metadata.yaml"));

  // A wrong key in the Secret: the storage is checked again and turns NotReady with the reason.
  cluster.apply("secret", s3_secret(creds, "not-the-key"));
  REQUIRE(test::eventually([&] { return cluster.phase("s3") == "NotReady"; }));
  json::value broken = cluster.get("bs s3 -n demo");
  const auto* failed = find_condition(broken, "BackendInitialized");
  REQUIRE(failed);
  CHECK(text(failed->at("status")) == "False");
  CHECK_THAT(text(failed->at("message")), Catch::Contains("SignatureDoesNotMatch") || Catch::Contains("signature"));
  // Fixed again: Ready.
  cluster.apply("secret", s3_secret(creds, creds.secret_access_key));
  REQUIRE(test::eventually([&] { return cluster.phase("s3") == "Ready"; }));

  // The Secret deleted: BackendSecretFound=False with the keys to create.
  cluster.kubectl("delete secret s3-creds -n demo");
  REQUIRE(test::eventually([&] { return cluster.condition("s3", "BackendSecretFound", "False"); }));
  json::value missing = cluster.get("bs s3 -n demo");
  CHECK(text(find_condition(missing, "BackendSecretFound")->at("reason")) == "BackendSecretNotAvailable");
  CHECK_THAT(text(find_condition(missing, "BackendSecretFound")->at("message")),
             Catch::Contains("demo/s3-creds not found") && Catch::Contains("AWS_ACCESS_KEY_ID"));

  // Each state change was reported as an Event about its storage.
  REQUIRE(test::eventually([&] {
    auto events = cluster.get("events.events.k8s.io -n demo");
    bool ready = false, warned = false;
    for (const auto& e : events.at("items").as_array()) {
      if (e.at("regarding").at("name") != "s3") continue;
      if (e.at("type") == "Normal" && e.at("reason") == "BackendInitializationSucceeded") ready = true;
      if (e.at("type") == "Warning" && e.at("reason") == "BackendInitializationFailed" &&
          e.at("reportingController") == "stowage")
        warned = true;
    }
    return ready && warned;
  }));

  // Deletion: kubectl delete waits for the finalizer to go; Delete keeps the data.
  cluster.kubectl("delete bs local -n demo --timeout=20s");
  CHECK(cluster.server.kubectl("get bs local -n demo").first != 0);
  CHECK(test::fs::exists(local_meta));

  // WipeOut of a storage whose Secret is gone cannot authenticate: the object still goes (as
  // KubeStash lets it), with a Warning Event saying the data was kept.
  cluster.apply("wipe", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: wipe, "
                        "namespace: demo}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: " + moto.endpoint() +
                        ", bucket: kube-e2e, prefix: /wipe, secretName: s3-creds}\n  deletionPolicy: WipeOut\n");
  REQUIRE(test::eventually([&] { return cluster.condition("wipe", "BackendSecretFound", "False"); }));
  cluster.kubectl("delete bs wipe -n demo --timeout=20s");
  REQUIRE(test::eventually([&] {
    auto events = cluster.get("events.events.k8s.io -n demo");
    for (const auto& e : events.at("items").as_array())
      if (e.at("regarding").at("name") == "wipe" && e.at("reason") == "WipeOutFailed" && e.at("type") == "Warning")
        return true;
    return false;
  }));

  // A field of the wrong type: NotReady naming the field, no crash.
  cluster.apply("bad", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: bad, "
                       "namespace: demo}\nspec:\n  storage:\n    provider: local\n    local:\n      mountPath: 5\n      "
                       "hostPath: {path: /data/bad}\n");
  REQUIRE(test::eventually([&] { return cluster.phase("bad") == "NotReady"; }));
  CHECK_THAT(text(find_condition(cluster.get("bs bad -n demo"), "BackendInitialized")->at("message")),
             Catch::Contains("spec.storage.local.mountPath"));

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  std::string log = cluster.log("run");
  // Nothing secret in the log, even at trace level.
  CHECK(log.find("e2e-token-do-not-log") == std::string::npos);
  CHECK(log.find(creds.secret_access_key) == std::string::npos);
  CHECK(log.find("not-the-key") == std::string::npos);
}

TEST_CASE("re-validation: a deleted bucket or a revoked key turns a Ready S3 storage NotReady within a period") {
  Cluster cluster("revalidate");
  test_support::MotoServer moto;
  moto.make_bucket("kube-e2e");
  moto.make_bucket("doomed");
  const auto& creds = moto.credentials();
  std::string doomed = s3_storage("gone", moto.endpoint(), "/g");
  doomed.replace(doomed.find("bucket: kube-e2e"), 16, "bucket: doomed");
  cluster.apply("objects", s3_secret(creds, creds.secret_access_key) + "---\n" +
                               s3_storage("kept", moto.endpoint(), "/k") + "---\n" + doomed);
  auto child = cluster.start("run", {"--revalidate-period", "1s"});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("kept") == "Ready" && cluster.phase("gone") == "Ready"; }));
  auto initialized = [&](const std::string& bs) {
    json::value object = cluster.get("bs " + bs + " -n demo");
    const auto* c = find_condition(object, "BackendInitialized");
    return c ? text(c->at("status")) + ": " + text(c->at("message")) : std::string();
  };

  // Nothing changed in the cluster: only the periodic check can see the bucket go.
  moto.remove_bucket("doomed");
  REQUIRE(test::eventually([&] { return cluster.phase("gone") == "NotReady"; }));
  std::string gone = initialized("gone");
  INFO(gone);
  CHECK(gone.rfind("False: ", 0) == 0);
  CHECK_THAT(gone, Catch::Contains("doomed"));
  CHECK(cluster.phase("kept") == "Ready");

  // The key is revoked in IAM; the Secret still holds it.
  moto.revoke_access_key();
  REQUIRE(test::eventually([&] { return cluster.phase("kept") == "NotReady"; }));
  std::string kept = initialized("kept");
  INFO(kept);
  CHECK(kept.rfind("False: ", 0) == 0);
  CHECK_THAT(kept, Catch::Contains("AWS_ACCESS_KEY_ID"));
  CHECK(kept.find(creds.secret_access_key) == std::string::npos);
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("run against an API server survives watch faults, and a restart resumes its watches and writes nothing") {
  Cluster cluster("faults");
  std::string storages;
  for (int i = 0; i < 20; ++i) storages += test::local_storage("s" + std::to_string(i), "/data/f" + std::to_string(i)) + "---\n";
  cluster.apply("first", storages);
  auto child = cluster.start("run");
  LAZY_INFO(cluster.log("run"));
  auto all_ready = [&](int n) {
    auto [code, out] = cluster.server.kubectl("get bs -n demo -o json");
    if (code != 0) return false;
    auto list = json::parse(out);
    int ready = 0;
    for (const auto& item : list.at("items").as_array()) {
      const auto* st = item.as_object().if_contains("status");
      if (st && st->as_object().contains("phase") && st->at("phase") == "Ready") ++ready;
    }
    return ready == n;
  };
  REQUIRE(test::eventually([&] { return all_ready(20); }));

  // Each fault, then one more storage that must still arrive.
  const std::vector<json::value> faults = {
      {{"action", "drop_watch"}, {"path", "/backupstorages"}},
      {{"action", "garbage_watch"}, {"path", "/backupstorages"}},
      {{"action", "fail"}, {"code", 410}, {"verb", "watch"}, {"path", "/backupstorages"}},
      {{"action", "fail"}, {"code", 500}, {"verb", "watch"}, {"count", 2}},
      {{"action", "fail"}, {"code", 429}, {"retry_after", 1}, {"verb", "watch"}},
      {{"action", "fail"}, {"code", 504}, {"verb", "list"}, {"count", 2}, {"path", "v1alpha1/backupstorages"}},
  };
  int n = 20;
  std::string log_name = "run";
  for (std::size_t f = 0; f < faults.size(); ++f) {
    const auto& fault = faults[f];
    INFO("fault " << json::serialize(fault));
    if (f == 3) {
      // client-go's backoff grows with each failure and only resets after 2 minutes without one, so
      // six back-to-back faults would push the delay to its cap (30 s, up to 60 s with jitter). A
      // restart halfway keeps the test short (and the restart itself resumes the watches).
      child.signal(SIGTERM);
      REQUIRE(child.wait(std::chrono::seconds(20)) == 0);
      log_name = "run2";
      child = cluster.start(log_name);
    }
    cluster.server.control(fault);
    if (fault.at("action") == "fail") {
      if (fault.at("verb") == "list") cluster.server.control({{"action", "compact"}});
      cluster.server.control({{"action", "close_watches"}});
    }
    cluster.apply("more-" + std::to_string(n), test::local_storage("s" + std::to_string(n), "/data/f" + std::to_string(n)));
    ++n;
    REQUIRE(test::eventually([&] { return all_ready(n); }, std::chrono::seconds(90)));
  }
  auto stats = cluster.server.stats();
  // No hot loop: a handful of watches per fault.
  CHECK(stats.at("watch_connections").to_number<int>() < 80);

  child.signal(SIGTERM);
  REQUIRE(child.wait(std::chrono::seconds(20)) == 0);
  for (int i = 0; i < n; ++i) {
    INFO("storage s" << i);
    std::string what = "demo/s" + std::to_string(i) + ": created ";
    CHECK(test::count_of(cluster.dir / "run.log", what) + test::count_of(cluster.dir / "run2.log", what) == 1);
  }
  struct stat before {};
  REQUIRE(::stat((cluster.root / "data/f0/metadata.yaml").c_str(), &before) == 0);

  // A restart: the caches fill again, every storage is still Ready, and no backend is written.
  cluster.server.control({{"action", "reset_stats"}});
  auto again = cluster.start("restart");
  REQUIRE(test::eventually([&] { return cluster.log("restart").find("caches synced") != std::string::npos; }));
  test::eventually([] { return false; }, std::chrono::seconds(2));  // let any (wrong) work happen
  std::string log = cluster.log("restart");
  INFO(log);
  CHECK(log.find(": created ") == std::string::npos);
  CHECK(log.find("already exists") == std::string::npos);  // not even read: the state store remembers
  CHECK_THAT(log, Catch::Contains("restored " + std::to_string(n) + " BackupStorages"));
  // The BackupStorage watch resumed from its stored resourceVersion: nothing was listed again. (The
  // Secret watch's resourceVersion predates the compaction above, so it gets a 410 and relists.)
  auto by_path = cluster.server.stats().at("requests_by_path").as_object();
  CHECK(by_path.if_contains("list /apis/storage.kubestash.com/v1alpha1/backupstorages") == nullptr);
  CHECK(by_path.if_contains("watch /apis/storage.kubestash.com/v1alpha1/backupstorages") != nullptr);
  CHECK(all_ready(n));
  struct stat after {};
  REQUIRE(::stat((cluster.root / "data/f0/metadata.yaml").c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  auto restart_stats = cluster.server.stats();
  // No status write either: each storage's status is already what it should be.
  CHECK(restart_stats.at("requests_by_verb").as_object().if_contains("patch") == nullptr);
  again.signal(SIGTERM);
  CHECK(again.wait(std::chrono::seconds(20)) == 0);

  // Changes made while the controller is down arrive through the resumed watch: a moved volume is
  // initialized, a deletion (held by the finalizer) completes.
  cluster.kubectl(R"(patch bs s0 -n demo --type=merge -p '{"spec":{"storage":{"local":{"hostPath":{"path":"/data/moved"}}}}}')");
  cluster.kubectl("delete bs s1 -n demo --wait=false");
  cluster.server.control({{"action", "reset_stats"}});
  auto third = cluster.start("third");
  LAZY_INFO(cluster.log("third"));
  REQUIRE(test::eventually([&] { return test::fs::exists(cluster.root / "data/moved/metadata.yaml"); }));
  REQUIRE(test::eventually([&] { return cluster.server.kubectl("get bs s1 -n demo").first != 0; }));
  auto third_paths = cluster.server.stats().at("requests_by_path").as_object();
  CHECK(third_paths.if_contains("list /apis/storage.kubestash.com/v1alpha1/backupstorages") == nullptr);
  third.signal(SIGTERM);
  CHECK(third.wait(std::chrono::seconds(20)) == 0);
  CHECK(test::count_of(cluster.dir / "third.log", ": created ") == 1);
}

TEST_CASE("run against a bad API server configuration: clear messages, backoff, no crash") {
  auto dir = test::temp_dir("kube-bad");
  SECTION("malformed kubeconfig names the field and exits 2") {
    test::write_file(dir / "kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 5}\n"
                                         "current-context: x\n");
    auto r = test::run({"run", "--kubeconfig", (dir / "kubeconfig").string(), "--state-dir", (dir / "s1").string()},
                       dir);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("kubeconfig") && Catch::Contains("clusters[0]"));
  }
  SECTION("no configuration at all says how to give one") {
    auto r = test::run({"run", "--state-dir", (dir / "s2").string()}, dir);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("--kubeconfig") && Catch::Contains("--manifests"));
  }
  SECTION("an unreachable server is retried with backoff and logged, and the process keeps running") {
    int port = test_support::free_port();
    test::write_file(dir / "kubeconfig", "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: "
                                         "'https://127.0.0.1:" + std::to_string(port) + "'}\nusers:\n- name: u\n  user: "
                                         "{token: t}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\n"
                                         "current-context: x\n");
    int probe_port = test_support::free_port();
    auto child = test::Child::spawn({"run", "--kubeconfig", (dir / "kubeconfig").string(), "--state-dir",
                                     (dir / "s3").string(), "--health-probe-bind-address",
                                     "127.0.0.1:" + std::to_string(probe_port)},
                                    dir / "unreachable.out", dir / "unreachable.log");
    test::eventually([] { return false; }, std::chrono::seconds(4));
    // Not ready, and /readyz says why; alive all the same.
    auto [ready_code, ready_body] = test_support::plain_http(probe_port, "GET", "/readyz");
    CHECK(ready_code == 503);
    CHECK_THAT(ready_body, Catch::Contains("caches not synced") && Catch::Contains("list failed"));
    CHECK(test_support::plain_http(probe_port, "GET", "/healthz").first == 200);
    std::string log = test::read_file(dir / "unreachable.log");
    INFO(log);
    CHECK_THAT(log, Catch::Contains("backupstorages: list failed") && Catch::Contains("next attempt in"));
    // Backoff, not a hot loop: a few attempts in 4 s (800 ms doubling), not hundreds.
    CHECK(test::count_of(dir / "unreachable.log", "backupstorages: list failed") <= 6);
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);
  }
  SECTION("a server certificate from an unknown CA and a refused token are named") {
    Cluster cluster("bad-tls");
    auto other = test_support::make_certificates(dir / "other-ca");
    std::string config = test::read_file(cluster.kubeconfig);
    auto at = config.find(cluster.server.certs.ca_cert.string());
    REQUIRE(at != std::string::npos);
    config.replace(at, cluster.server.certs.ca_cert.string().size(), other.ca_cert.string());
    auto wrong_ca = dir / "wrong-ca.kubeconfig";
    test::write_file(wrong_ca, config);
    auto child = test::Child::spawn({"run", "--kubeconfig", wrong_ca.string(), "--state-dir", (dir / "s4").string()},
                                    dir / "tls.out", dir / "tls.log");
    REQUIRE(test::eventually([&] { return test::count_of(dir / "tls.log", "list failed") >= 1; }));
    CHECK_THAT(test::read_file(dir / "tls.log"), Catch::Contains("not trusted"));
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);

    std::string bad_token = test::read_file(cluster.kubeconfig);
    bad_token.replace(bad_token.find("e2e-token-do-not-log"), 20, "some-other-token-xyz");
    auto refused = dir / "refused.kubeconfig";
    test::write_file(refused, bad_token);
    auto child2 = test::Child::spawn({"run", "--kubeconfig", refused.string(), "--state-dir", (dir / "s5").string()},
                                     dir / "401.out", dir / "401.log");
    REQUIRE(test::eventually([&] { return test::count_of(dir / "401.log", "list failed") >= 1; }));
    std::string log = test::read_file(dir / "401.log");
    CHECK_THAT(log, Catch::Contains("refused the bearer token") && Catch::Contains("401"));
    CHECK(log.find("some-other-token-xyz") == std::string::npos);
    child2.signal(SIGTERM);
    CHECK(child2.wait(std::chrono::seconds(20)) == 0);
  }
}

TEST_CASE("two controllers with --leader-elect: one leads, a kill -9 hands over, nothing is initialized twice") {
  Cluster cluster("leader");
  std::string storages;
  for (int i = 0; i < 5; ++i) storages += test::local_storage("l" + std::to_string(i), "/data/l" + std::to_string(i)) + "---\n";
  cluster.apply("first", storages);
  std::vector<std::string> election{"--leader-elect", "--leader-elect-lease-duration", "2s",
                                    "--leader-elect-renew-deadline", "1500ms", "--leader-elect-retry-period", "300ms"};
  auto with_state = [&](const std::string& dir) {
    auto args = election;
    args.insert(args.end(), {"--state-dir", (cluster.dir / dir).string()});
    return args;
  };
  // Both share the volumes (as replicas of one Deployment would share a cluster), each its own state.
  auto a = cluster.start("a", with_state("state-a"));
  auto b = cluster.start("b", with_state("state-b"));
  auto leads = [&](const std::string& log) { return cluster.log(log).find("leading (Lease") != std::string::npos; };
  REQUIRE(test::eventually([&] { return leads("a") || leads("b"); }));
  test::eventually([] { return false; }, std::chrono::seconds(1));
  REQUIRE(leads("a") != leads("b"));  // exactly one
  bool a_leads = leads("a");
  auto& leader = a_leads ? a : b;
  std::string standby_log = a_leads ? "b" : "a";
  LAZY_INFO(cluster.log("a") << "\n----\n" << cluster.log("b"));
  REQUIRE(test::eventually([&] { return test::fs::exists(cluster.root / "data/l4/metadata.yaml"); }));
  auto lease = cluster.get("lease stowage-leader -n demo");
  CHECK(json::value_to<std::string>(lease.at("spec").at("holderIdentity")).find('_') != std::string::npos);

  leader.kill9();
  auto killed_at = std::chrono::steady_clock::now();
  cluster.apply("second", test::local_storage("l5", "/data/l5"));
  REQUIRE(test::eventually([&] { return leads(standby_log); }, std::chrono::seconds(10)));
  auto took = std::chrono::steady_clock::now() - killed_at;
  CHECK(took < std::chrono::milliseconds(2000 + 2 * 660 + 1000));  // lease + a jittered retry, with slack
  REQUIRE(test::eventually([&] { return cluster.phase("l5") == "Ready"; }));
  auto& standby = a_leads ? b : a;
  standby.signal(SIGTERM);
  CHECK(standby.wait(std::chrono::seconds(20)) == 0);
  // Every storage was created once, by whichever process created it.
  for (int i = 0; i <= 5; ++i) {
    std::string what = "demo/l" + std::to_string(i) + ": created ";
    INFO(what);
    CHECK(test::count_of(cluster.dir / "a.log", what) + test::count_of(cluster.dir / "b.log", what) == 1);
  }
  // The clean stop released the Lease.
  CHECK_THAT(cluster.log(standby_log), Catch::Contains("Lease released"));
  CHECK(json::value_to<std::string>(cluster.get("lease stowage-leader -n demo").at("spec").at("holderIdentity")).empty());
}

TEST_CASE("run takes HTTPS_PROXY as client-go does: the API server is reached through the proxy") {
  Cluster cluster("env-proxy");
  test_support::ConnectProxyOptions options;
  options.hosts = {{"kube.stowage.test", "127.0.0.1"}};  // only the proxy can resolve it; not loopback
  test_support::ConnectProxy proxy(cluster.dir, options);
  cluster.apply("storage", test::local_storage("p0", "/data/p0"));
  auto proxied = cluster.dir / "kubeconfig-proxied";
  test::write_file(proxied, "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n"
                            "    server: https://kube.stowage.test:" + std::to_string(cluster.server.port) +
                            "\n    tls-server-name: localhost\n    certificate-authority: " +
                            cluster.server.certs.ca_cert.string() + "\nusers:\n- name: test\n  user:\n    token: " +
                            cluster.server.token +
                            "\ncontexts:\n- name: test\n  context: {cluster: test, user: test, namespace: demo}\n");
  cluster.kubeconfig = proxied;
  ::setenv("HTTPS_PROXY", ("127.0.0.1:" + std::to_string(proxy.port())).c_str(), 1);  // no scheme: http://
  auto child = cluster.start("run");
  ::unsetenv("HTTPS_PROXY");
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("p0") == "Ready"; }));
  auto stats = proxy.stats();
  CHECK(stats.tunnels >= 1);
  for (const auto& c : stats.connects) CHECK(c.rfind("kube.stowage.test:", 0) == 0);
  CHECK_THAT(cluster.log("run"), Catch::Contains("HTTPS_PROXY: requests go through proxy 127.0.0.1:" +
                                                 std::to_string(proxy.port())));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("run serves /metrics that promtool accepts, and /healthz and /readyz") {
  Cluster cluster("metrics");
  cluster.apply("first", test::local_storage("m0", "/data/m0"));
  int metrics_port = test_support::free_port(), probe_port = test_support::free_port();
  auto child = cluster.start("run", {"--metrics-bind-address", "127.0.0.1:" + std::to_string(metrics_port),
                                     "--health-probe-bind-address", "127.0.0.1:" + std::to_string(probe_port),
                                     "--leader-elect"});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("m0") == "Ready"; }));
  REQUIRE(test::eventually([&] { return test_support::plain_http(probe_port, "GET", "/readyz").first == 200; }));
  CHECK(test_support::plain_http(probe_port, "GET", "/healthz").first == 200);
  test::eventually([] { return false; }, std::chrono::milliseconds(1200));  // one refresh of the gauges
  auto [status, body] = test_support::plain_http(metrics_port, "GET", "/metrics");
  REQUIRE(status == 200);
  for (const char* family :
       {"controller_runtime_reconcile_total{controller=\"backupstorage\",result=\"success\"}",
        "controller_runtime_reconcile_time_seconds_bucket", "workqueue_adds_total{name=\"backupstorage\"}",
        "workqueue_depth{name=\"backupstorage\"}", "rest_client_requests_total{code=\"200\",method=\"GET\"",
        "leader_election_master_status{name=\"stowage-leader\"} 1", "stowage_backupstorages{phase=\"Ready\"} 1",
        "stowage_event_loop_longest_stall_seconds",
        "stowage_backend_uploads_total{provider=\"local\",result=\"success\"} 1"}) {
    INFO(family);
    CHECK(body.find(family) != std::string::npos);
  }
  // A reconcile held up (its finalizer patch delayed 2.5 s at the API server) shows in the
  // unfinished-work gauges while it runs, and they fall back to 0 when it is done.
  auto gauge = [&](const std::string& name) {
    auto [code, text] = test_support::plain_http(metrics_port, "GET", "/metrics");
    std::string prefix = name + "{name=\"backupstorage\"} ";
    auto at = text.find("\n" + prefix);
    return code == 200 && at != std::string::npos ? std::stod(text.substr(at + 1 + prefix.size())) : -1.0;
  };
  CHECK(gauge("workqueue_longest_running_processor_seconds") == 0);
  cluster.server.control({{"action", "delay"}, {"ms", 2500}, {"verb", "patch"}, {"path", "backupstorages/m1"}});
  cluster.apply("second", test::local_storage("m1", "/data/m1"));
  CHECK(test::eventually([&] { return gauge("workqueue_longest_running_processor_seconds") >= 1.0; }));
  CHECK(gauge("workqueue_unfinished_work_seconds") >= 1.0);
  REQUIRE(test::eventually([&] { return cluster.phase("m1") == "Ready"; }));
  CHECK(test::eventually([&] {
    return gauge("workqueue_longest_running_processor_seconds") == 0 && gauge("workqueue_unfinished_work_seconds") == 0;
  }));
  // One series per storage in the per-storage families; a deleted storage's go with it.
  auto metrics_text = [&] { return test_support::plain_http(metrics_port, "GET", "/metrics").second; };
  const std::string m1_labels = "{namespace=\"demo\",name=\"m1\",provider=\"local\"}";
  CHECK(test::eventually([&] {
    std::string text = metrics_text();
    return text.find("stowage_backupstorage_ready" + m1_labels + " 1\n") != std::string::npos &&
           text.find("stowage_backupstorage_wipeout_failed" + m1_labels + " 0\n") != std::string::npos &&
           text.find("stowage_backupstorage_last_initialized_timestamp_seconds" + m1_labels + " 1") != std::string::npos;
  }));
  CHECK(metrics_text().find("stowage_backupstorage_ready{namespace=\"demo\",name=\"m0\",provider=\"local\"} 1\n") !=
        std::string::npos);
  cluster.kubectl("delete bs m1 -n demo --timeout=30s");
  CHECK(test::eventually([&] { return metrics_text().find("name=\"m1\"") == std::string::npos; }));
  CHECK(metrics_text().find("name=\"m0\"") != std::string::npos);
  std::tie(status, body) = test_support::plain_http(metrics_port, "GET", "/metrics");
  test::write_file(cluster.dir / "metrics.txt", body);
  std::string cmd = "promtool check metrics < '" + (cluster.dir / "metrics.txt").string() + "' > '" +
                    (cluster.dir / "promtool.out").string() + "' 2>&1";
  int rc = std::system(cmd.c_str());
  INFO(test::read_file(cluster.dir / "promtool.out"));
  CHECK(rc == 0);
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("Repositories that use a storage appear in its status with KubeStash's total size") {
  Cluster cluster("repositories");
  cluster.apply("storage", test::local_storage("r0", "/data/r0"));
  auto repository = [](const std::string& name, const std::string& storage) {
    return "apiVersion: storage.kubestash.com/v1alpha1\nkind: Repository\nmetadata: {name: " + name +
           ", namespace: demo}\nspec:\n  storageRef: {name: " + storage + ", namespace: demo}\n  path: /repo/" + name +
           "\n  appRef: {apiGroup: apps, kind: Deployment, name: app, namespace: demo}\n";
  };
  cluster.apply("repos", repository("ra", "r0") + "---\n" + repository("rb", "r0") + "---\n" + repository("rc", "other"));
  cluster.kubectl(R"(patch repositories ra -n demo --subresource=status --type=merge -p '{"status":{"size":"1.500 MiB"}}')");
  cluster.kubectl(R"(patch repositories rb -n demo --subresource=status --type=merge -p '{"status":{"size":"512 B"}}')");
  auto child = cluster.start("run");
  LAZY_INFO(cluster.log("run"));
  auto total = [&] {
    auto [code, out] = cluster.server.kubectl("get bs r0 -n demo -o jsonpath={.status.totalSize}");
    return code == 0 ? out : "";
  };
  REQUIRE(test::eventually([&] { return total() == "1.500 MiB"; }));  // 1572864 + 512 bytes
  auto bs = cluster.get("bs r0 -n demo");
  const auto& repos = bs.at("status").at("repositories").as_array();
  REQUIRE(repos.size() == 2);
  CHECK(text(repos[0].at("name")) == "ra");
  CHECK(text(repos[0].at("path")) == "/repo/ra");
  CHECK(text(repos[0].at("size")) == "1.500 MiB");
  CHECK(text(repos[1].at("name")) == "rb");
  // A Repository moving away changes the storage's status at once.
  cluster.kubectl("delete repositories ra -n demo");
  REQUIRE(test::eventually([&] { return total() == "512 B"; }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("local volumes through initializer Jobs: the test plays the kubelet, the storage follows the Job") {
  Cluster cluster("volume-job");
  cluster.apply("v0", test::local_storage("v0", "/data/v0"));
  auto child = cluster.start("run", {"--local-volume-mode", "job", "--volume-job-image", "stowage:test"});
  LAZY_INFO(cluster.log("run"));
  auto job_of = [&](const std::string& storage) -> std::optional<json::value> {
    auto [code, out] = cluster.server.kubectl("get jobs -n demo -l kubestash.com/invoker-name=" + storage + " -o json");
    if (code != 0) return std::nullopt;
    auto list = json::parse(out);
    if (list.at("items").as_array().empty()) return std::nullopt;
    return list.at("items").as_array()[0];
  };
  REQUIRE(test::eventually([&] { return job_of("v0").has_value(); }));
  json::value job = *job_of("v0");
  std::string name = text(job.at("metadata").at("name"));
  const auto& pod = job.at("spec").at("template").at("spec");
  const auto& container = pod.at("containers").as_array()[0];
  CHECK(text(container.at("image")) == "stowage:test");
  const auto& args = container.at("args").as_array();
  REQUIRE(args.size() >= 3);
  CHECK(text(args[0]) == "init-volume");
  CHECK(text(args[2]) == "/safe/data");  // the storage's mountPath
  CHECK(text(pod.at("volumes").as_array()[0].at("hostPath").at("path")) == "/data/v0");
  CHECK(text(job.at("metadata").at("labels").at("app.kubernetes.io/managed-by")) == "kubestash.com");
  CHECK(cluster.phase("v0") != "Ready");  // not before the Job has run

  // The kubelet's part: run the Job's command with the volume mounted (here: a folder of this test).
  auto node = cluster.dir / "node/data/v0";
  test::fs::create_directories(node);
  std::vector<std::string> command;
  for (const auto& a : args) command.push_back(text(a));
  command[2] = node.string();
  auto ran = test::run(command, cluster.dir);
  INFO(ran.out << ran.err);
  REQUIRE(ran.code == 0);
  CHECK_THAT(test::read_file(node / "metadata.yaml"), Catch::Contains("kind: BackendMeta"));
  cluster.kubectl("patch job " + name + R"( -n demo --subresource=status --type=merge -p '{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}')");
  REQUIRE(test::eventually([&] { return cluster.phase("v0") == "Ready"; }));
  CHECK_FALSE(test::fs::exists(cluster.root / "data/v0"));  // the controller itself wrote nothing

  // A Job that fails: NotReady with the Job's reason.
  cluster.apply("v1", test::local_storage("v1", "/data/v1"));
  REQUIRE(test::eventually([&] { return job_of("v1").has_value(); }));
  std::string failed = text(job_of("v1")->at("metadata").at("name"));
  // The kubelet's part again, on a volume where the command cannot write (a file stands where the
  // directory should be): its last line becomes the pod's termination message
  // (terminationMessagePolicy FallbackToLogsOnError; /dev/termination-log does not exist here).
  auto broken = cluster.dir / "node/data/v1";
  test::write_file(broken, "not a directory");
  std::vector<std::string> failing;
  json::value failing_job = *job_of("v1");
  for (const auto& a : failing_job.at("spec").at("template").at("spec").at("containers").as_array()[0].at("args").as_array())
    failing.push_back(text(a));
  failing[2] = broken.string();
  auto refused = test::run(failing, cluster.dir);
  REQUIRE(refused.code != 0);
  std::string last_line = refused.err.empty() ? refused.out : refused.err;
  while (!last_line.empty() && last_line.back() == '\n') last_line.pop_back();
  last_line = last_line.substr(last_line.rfind('\n') + 1);
  INFO("termination message: " << last_line);
  REQUIRE_FALSE(last_line.empty());
  json::value failed_pod = {{"apiVersion", "v1"}, {"kind", "Pod"},
                     {"metadata", {{"name", failed + "-x1"}, {"namespace", "demo"},
                                   {"labels", {{"batch.kubernetes.io/job-name", failed}}}}},
                     {"spec", {{"containers", json::array{{{"name", "init"}, {"image", "stowage:test"}}}}}}};
  cluster.apply("pod", json::serialize(failed_pod));
  json::value pod_status = {{"status", {{"phase", "Failed"},
                                        {"containerStatuses", json::array{{{"name", "init"},
                                                                           {"state", {{"terminated", {{"exitCode", refused.code},
                                                                                                      {"reason", "Error"},
                                                                                                      {"message", last_line},
                                                                                                      {"finishedAt", "2026-11-26T20:00:00Z"}}}}}}}}}}};
  test::write_file(cluster.dir / "pod-status.json", json::serialize(pod_status));
  cluster.kubectl("patch pod " + failed + "-x1 -n demo --subresource=status --type=merge --patch-file '" +
                  (cluster.dir / "pod-status.json").string() + "'");
  cluster.kubectl("patch job " + failed + R"( -n demo --subresource=status --type=merge -p '{"status":{"failed":4,"conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded","message":"Job has reached the specified backoff limit"}]}}')");
  REQUIRE(test::eventually([&] {
    auto bs = cluster.get("bs v1 -n demo");
    const auto* st = bs.as_object().if_contains("status");
    if (!st || !st->as_object().contains("conditions")) return false;
    const auto* c = find_condition(bs, "BackendInitialized");
    return c && text(c->at("status")) == "False" && text(c->at("message")).find("BackoffLimitExceeded") != std::string::npos;
  }));
  {
    json::value v1 = cluster.get("bs v1 -n demo");
    const auto* c = find_condition(v1, "BackendInitialized");
    REQUIRE(c);
    CHECK_THAT(text(c->at("message")), Catch::Contains(last_line));  // why, in the status: the pod's own words
  }
  CHECK(cluster.phase("v1") == "NotReady");

  // WipeOut of a Job-initialized volume: the cleaner Job runs, then the object goes. A storage of the
  // same name created later gets a cleaner Job of its own, not the one its predecessor left behind.
  auto cleaner_uid = [&]() -> std::string {
    auto [code, out] = cluster.server.kubectl("get job cleanup-w -n demo -o json");
    if (code != 0) return "";
    return text(json::parse(out).at("metadata").at("labels").at("stowage.dev/storage-uid"));
  };
  auto complete = [&](const std::string& job) {
    cluster.kubectl("patch job " + job + R"( -n demo --subresource=status --type=merge -p '{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}')");
  };
  std::string previous;
  for (int round = 0; round < 2; ++round) {
    INFO("round " << round);
    cluster.apply("w" + std::to_string(round), test::local_storage("w", "/data/w", "WipeOut"));
    std::string uid = text(cluster.get("bs w -n demo").at("metadata").at("uid"));
    CHECK(uid != previous);
    // Deleted only once the controller has put its finalizer on (else there is nothing to clean up).
    REQUIRE(test::eventually([&] {
      auto [code, out] = cluster.server.kubectl("get bs w -n demo -o jsonpath={.metadata.finalizers}");
      return code == 0 && out.find("kubestash.com/cleanup") != std::string::npos;
    }));
    cluster.kubectl("delete bs w -n demo --wait=false");
    bool cleaner = test::eventually([&] { return cleaner_uid() == uid; });
    if (!cleaner) FAIL(cluster.log("run"));
    complete("cleanup-w");
    REQUIRE(test::eventually([&] { return cluster.server.kubectl("get bs w -n demo").first != 0; }));
    previous = uid;
  }
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("the lifecycle in a cluster for Azure and GCS: Ready, a broken key, fixed, Delete keeps, WipeOut empties") {
  Cluster cluster("providers");
  test_support::AzuriteServer azurite;
  test_support::GcsServer gcs;
  azurite.create_container("kube-e2e");
  auto secret = [](const std::string& name, const std::string& key, const std::string& value) {
    return "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: demo}\ndata:\n  " + key + ": " +
           b64(value) + "\n";
  };
  auto azure_secret = [&](const std::string& account_key) {
    std::string cs = azurite.connection_string();
    if (!account_key.empty()) {
      auto at = cs.find("AccountKey=");
      auto end = cs.find(';', at);
      cs.replace(at + 11, end - at - 11, account_key);
    }
    return secret("azure-creds", "AZURE_STORAGE_CONNECTION_STRING", cs);
  };
  auto storage = [](const std::string& name, const std::string& provider, const std::string& section,
                    const std::string& policy) {
    return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
           ", namespace: demo}\nspec:\n  storage:\n    provider: " + provider + "\n    " + provider + ": " + section +
           "\n  deletionPolicy: " + policy + "\n";
  };
  cluster.apply("objects",
                azure_secret("") + "---\n" + secret("gcs-creds", "GOOGLE_SERVICE_ACCOUNT_JSON_KEY", gcs.key_json()) +
                    "---\n" +
                    storage("az", "azure", "{storageAccount: " + azurite.account() +
                                               ", container: kube-e2e, prefix: /az, secretName: azure-creds}", "WipeOut") +
                    "---\n" + storage("gc", "gcs", "{bucket: stowage, prefix: gc, secretName: gcs-creds}", "Delete"));
  auto child = cluster.start("run", {"--gcs-endpoint", gcs.endpoint()});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("az") == "Ready" && cluster.phase("gc") == "Ready"; }));
  CHECK(azurite.get_blob("kube-e2e", "az/metadata.yaml").first == 200);
  CHECK(gcs.object("stowage", "gc/metadata.yaml").has_value());

  // Broken keys: NotReady with the reason; fixed: Ready again.
  cluster.apply("bad", azure_secret(b64("not-the-account-key-not-the-account-key")) + "---\n" +
                           secret("gcs-creds", "GOOGLE_SERVICE_ACCOUNT_JSON_KEY", gcs.wrong_key_json()));
  REQUIRE(test::eventually([&] { return cluster.phase("az") == "NotReady" && cluster.phase("gc") == "NotReady"; }));
  cluster.apply("good", azure_secret("") + "---\n" + secret("gcs-creds", "GOOGLE_SERVICE_ACCOUNT_JSON_KEY", gcs.key_json()));
  REQUIRE(test::eventually([&] { return cluster.phase("az") == "Ready" && cluster.phase("gc") == "Ready"; }));

  // Delete keeps the data; WipeOut empties the prefix (reporting its progress in the status on the
  // way: the only status write during a deletion); both objects go.
  azurite.put_blob("kube-e2e", "az/repo/snap-1", "a backup");  // metadata.yaml itself goes last, after it
  cluster.server.control({{"action", "reset_stats"}});
  cluster.kubectl("delete bs gc az -n demo --timeout=30s");
  CHECK(gcs.object("stowage", "gc/metadata.yaml").has_value());
  CHECK(azurite.list_blobs("kube-e2e", "az/").empty());
  auto by_path = cluster.server.stats().at("requests_by_path").as_object();
  CHECK(by_path.if_contains("patch /apis/storage.kubestash.com/v1alpha1/namespaces/demo/backupstorages/az/status") !=
        nullptr);
  CHECK(by_path.if_contains("patch /apis/storage.kubestash.com/v1alpha1/namespaces/demo/backupstorages/gc/status") ==
        nullptr);
  CHECK_THAT(cluster.log("run"), Catch::Contains("demo/az: WipeOut in progress: 1 objects removed so far"));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

TEST_CASE("local volumes against an API server: Jobs by default, direct writes only beneath a root of their own") {
  Cluster cluster("volume-default");
  cluster.apply("d0", test::local_storage("d0", "/data/d0"));
  // No mode given: an initializer Job, and the controller writes nothing into its own filesystem.
  auto child = cluster.start("run", {"--local-volume-mode", "auto"});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] {
    auto [code, out] = cluster.server.kubectl("get jobs -n demo -l kubestash.com/invoker-name=d0 -o name");
    return code == 0 && out.find("job.batch/init-d0") != std::string::npos;
  }));
  CHECK_FALSE(test::fs::exists(cluster.root / "data/d0"));
  CHECK_FALSE(test::fs::exists("/data/d0"));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);

  // Direct writes with the filesystem root as local.root (the default, or given) are refused at start.
  for (std::vector<std::string> root : {std::vector<std::string>{}, std::vector<std::string>{"--local-root", "/"},
                                        std::vector<std::string>{"--local-root", "/tmp/.."}}) {
    std::vector<std::string> args{"run", "--kubeconfig", cluster.kubeconfig.string(), "--state-dir",
                                  (cluster.dir / "direct-state").string(), "--local-volume-mode", "direct"};
    args.insert(args.end(), root.begin(), root.end());
    auto r = test::run(args, cluster.dir);
    INFO(r.err);
    CHECK(r.code == 2);
    CHECK_THAT(r.err, Catch::Contains("local.volume-mode is direct") && Catch::Contains("--local-root") &&
                          Catch::Contains("--local-volume-mode job"));
  }
}

TEST_CASE("cleaner Jobs keep nested storages, a refused wipe lets the object go, a failed one stays and runs again") {
  Cluster cluster("cleaner-jobs");
  auto child = cluster.start("run", {"--local-volume-mode", "job", "--volume-job-image", "stowage:test",
                                     "--permanent-retry", "3s"});
  LAZY_INFO(cluster.log("run"));
  auto jobs_of = [&](const std::string& storage) {
    auto [code, out] = cluster.server.kubectl("get jobs -n demo -l kubestash.com/invoker-name=" + storage + " -o json");
    return code == 0 ? json::parse(out).at("items").as_array() : json::array();
  };
  auto job_named = [&](const std::string& name) -> std::optional<json::value> {
    auto [code, out] = cluster.server.kubectl("get job " + name + " -n demo -o json");
    if (code != 0) return std::nullopt;
    return json::parse(out);
  };
  auto complete = [&](const std::string& job) {
    cluster.kubectl("patch job " + job + R"( -n demo --subresource=status --type=merge -p '{"status":{"succeeded":1,"conditions":[{"type":"Complete","status":"True"}]}}')");
  };
  // The kubelet's and the Job controller's part of a failed run: the pod ended with `message` as
  // its termination message, and the Job failed now.
  int pods = 0;
  auto fail = [&](const std::string& job, const std::string& message, int exit_code) {
    std::string pod = job + "-p" + std::to_string(++pods);
    json::value manifest = {{"apiVersion", "v1"}, {"kind", "Pod"},
                            {"metadata", {{"name", pod}, {"namespace", "demo"},
                                          {"labels", {{"batch.kubernetes.io/job-name", job}}}}},
                            {"spec", {{"containers", json::array{{{"name", "cleanup"}, {"image", "stowage:test"}}}}}}};
    cluster.apply(pod, json::serialize(manifest));
    json::value terminated = {{"exitCode", exit_code}, {"reason", "Error"}, {"message", message}};
    json::value status = {{"status", {{"phase", "Failed"},
                                      {"containerStatuses", json::array{{{"name", "cleanup"},
                                                                         {"state", {{"terminated", terminated}}}}}}}}};
    test::write_file(cluster.dir / (pod + ".json"), json::serialize(status));
    cluster.kubectl("patch pod " + pod + " -n demo --subresource=status --type=merge --patch-file '" +
                    (cluster.dir / (pod + ".json")).string() + "'");
    json::value job_status = {{"status", {{"failed", 1},
                                          {"conditions", json::array{{{"type", "Failed"}, {"status", "True"},
                                                                      {"reason", "PodFailurePolicy"},
                                                                      {"lastTransitionTime", stowage::rfc3339(stowage::WallClock::now())}}}}}}};
    test::write_file(cluster.dir / (job + "-status.json"), json::serialize(job_status));
    cluster.kubectl("patch job " + job + " -n demo --subresource=status --type=merge --patch-file '" +
                    (cluster.dir / (job + "-status.json")).string() + "'");
  };
  auto ready_by_job = [&](const std::string& storage, const std::string& path, const std::string& policy) {
    cluster.apply(storage, test::local_storage(storage, path, policy));
    REQUIRE(test::eventually([&] { return !jobs_of(storage).empty(); }));
    complete(text(jobs_of(storage)[0].at("metadata").at("name")));
    REQUIRE(test::eventually([&] { return cluster.phase(storage) == "Ready"; }));
  };
  auto delete_when_finalized = [&](const std::string& storage) {
    REQUIRE(test::eventually([&] {
      auto [code, out] = cluster.server.kubectl("get bs " + storage + " -n demo -o jsonpath={.metadata.finalizers}");
      return code == 0 && out.find("kubestash.com/cleanup") != std::string::npos;
    }));
    cluster.kubectl("delete bs " + storage + " -n demo --wait=false");
  };

  // Two nested storages: only the older gets an initializer Job.
  ready_by_job("outer", "/data/c", "WipeOut");
  cluster.apply("inner", test::local_storage("inner", "/data/c/inner", "Delete"));
  REQUIRE(test::eventually([&] {
    auto [code, out] = cluster.server.kubectl(
        "get bs inner -n demo -o jsonpath='{.status.conditions[?(@.type==\"BackendInitialized\")].reason}'");
    return code == 0 && out == "StorageLocationConflict";
  }));
  CHECK(jobs_of("inner").empty());

  // The older one goes: its cleaner Job leaves the younger one's location alone.
  delete_when_finalized("outer");
  REQUIRE(test::eventually([&] { return job_named("cleanup-outer").has_value(); }));
  json::value first = *job_named("cleanup-outer");
  std::vector<std::string> args;
  for (const auto& a : first.at("spec").at("template").at("spec").at("containers").as_array()[0].at("args").as_array())
    args.push_back(text(a));
  CHECK(args == std::vector<std::string>{"wipe-volume", "--path", "/safe/data", "--keep", "inner"});

  // A failed wipe keeps the object and says why; after the permanent retry period the Job runs again.
  fail("cleanup-outer", "error: cannot remove /safe/data/repo: Device or resource busy", 2);
  REQUIRE(test::eventually([&] { return cluster.condition("outer", "WipeOut", "False"); }));
  auto outer = cluster.get("bs outer -n demo");
  const auto* wipe = find_condition(outer, "WipeOut");
  REQUIRE(wipe);
  CHECK(text(wipe->at("reason")) == "WipeOutFailed");
  CHECK_THAT(text(wipe->at("message")), Catch::Contains("Device or resource busy") &&
                                            Catch::Contains("deletionPolicy to Delete"));
  std::string first_uid = text(first.at("metadata").at("uid"));
  REQUIRE(test::eventually([&] {
    auto again = job_named("cleanup-outer");
    return again && text(again->at("metadata").at("uid")) != first_uid;
  }));
  CHECK(cluster.phase("outer") != "");  // still there while its data may be
  complete("cleanup-outer");
  REQUIRE(test::eventually([&] { return cluster.server.kubectl("get bs outer -n demo").first != 0; }));

  // Then the younger one is initialized.
  REQUIRE(test::eventually([&] { return !jobs_of("inner").empty(); }));

  // A cleaner Job that refuses (exit 3: nothing shows the volume is the storage's) lets the object go.
  ready_by_job("r", "/data/r", "WipeOut");
  delete_when_finalized("r");
  REQUIRE(test::eventually([&] { return job_named("cleanup-r").has_value(); }));
  fail("cleanup-r", "refused: /safe/data/metadata.yaml does not exist, so nothing shows that this storage owns the "
                    "data there: nothing was deleted", 3);
  REQUIRE(test::eventually([&] { return cluster.server.kubectl("get bs r -n demo").first != 0; }));
  CHECK_THAT(cluster.log("run"), Catch::Contains("demo/r: deleted without wiping its data"));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}

namespace {

using test::ScopedEnvironment;  // scoped_environment.hpp

std::string bare_storage(const std::string& ns, const std::string& name, const std::string& provider,
                         const std::string& section, const std::string& policy = "Delete") {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
         ", namespace: " + ns + "}\nspec:\n  storage:\n    provider: " + provider + "\n    " + provider + ": " +
         section + "\n  deletionPolicy: " + policy + "\n";
}

}  // namespace

TEST_CASE("ambient credentials: the controller's own AWS keys and metadata token only where --ambient-credentials-namespaces allows") {
  Cluster cluster("ambient");
  test_support::MotoServer moto;
  moto.make_bucket("kube-e2e");
  test_support::GcsServer gcs;  // also the metadata server (GCE_METADATA_HOST)
  const auto& creds = moto.credentials();
  // Another team's backups, their storage deleted with Delete: a valid metadata.yaml stays with them.
  moto.put_object("kube-e2e", "victim/metadata.yaml", stowage::storage::render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"}));
  moto.put_object("kube-e2e", "victim/repo/snap-1", "a backup");
  // The controller's own identity: moto's key in its environment, the GCS server as its metadata server.
  ScopedEnvironment identity({{"AWS_ACCESS_KEY_ID", creds.access_key_id},
                              {"AWS_SECRET_ACCESS_KEY", creds.secret_access_key},
                              {"AWS_SESSION_TOKEN", ""},
                              {"GCE_METADATA_HOST", gcs.host_port()}});
  auto s3 = [&](const std::string& ns, const std::string& name, const std::string& prefix,
                const std::string& policy = "Delete") {
    return bare_storage(ns, name, "s3", "{endpoint: " + moto.endpoint() + ", bucket: kube-e2e, prefix: " + prefix + "}",
                        policy);
  };
  auto gcs_storage = [&](const std::string& ns, const std::string& prefix) {
    return bare_storage(ns, "gcs-own", "gcs", "{bucket: stowage, prefix: " + prefix + "}");
  };
  cluster.apply("objects", s3("demo", "s3-own", "own/demo") + "---\n" + s3("trusted", "s3-own", "own/trusted") +
                               "---\n" + gcs_storage("demo", "own-demo") + "---\n" + gcs_storage("trusted", "own-trusted") +
                               "---\n" + s3("demo", "taker", "victim", "WipeOut"));
  auto phase = [&](const std::string& ns, const std::string& bs) {
    auto [code, out] = cluster.server.kubectl("get bs " + bs + " -n " + ns + " -o jsonpath={.status.phase}");
    return code == 0 ? out : "";
  };
  auto initialized = [&](const std::string& ns, const std::string& bs) {
    json::value object = cluster.get("bs " + bs + " -n " + ns);
    const auto* c = find_condition(object, "BackendInitialized");
    return c ? text(c->at("status")) + ": " + text(c->at("message")) : std::string();
  };
  auto warned = [&](const std::string& ns, const std::string& bs, const std::string& reason,
                    const std::string& note_part) {
    auto events = cluster.get("events.events.k8s.io -n " + ns);
    for (const auto& e : events.at("items").as_array())
      if (text(e.at("regarding").at("name")) == bs && text(e.at("reason")) == reason && e.at("type") == "Warning" &&
          text(e.at("note")).find(note_part) != std::string::npos)
        return true;
    return false;
  };
  const std::vector<std::string> permanent_retry{"--gcs-endpoint", gcs.endpoint(), "--permanent-retry", "1s"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.end(), permanent_retry.begin(), permanent_retry.end());
    return args;
  };
  {
    auto child = cluster.start("run", with({"--ambient-credentials-namespaces", "trusted"}));
    LAZY_INFO(cluster.log("run"));
    REQUIRE(test::eventually([&] {
      return phase("trusted", "s3-own") == "Ready" && phase("trusted", "gcs-own") == "Ready" &&
             phase("demo", "s3-own") == "NotReady" && phase("demo", "gcs-own") == "NotReady" &&
             phase("demo", "taker") == "NotReady";
    }));
    CHECK(initialized("demo", "s3-own") ==
          "False: spec.storage.s3.secretName is empty and namespace demo may not use the controller's own credentials: "
          "set secretName, or add demo to --ambient-credentials-namespaces");
    CHECK(initialized("demo", "gcs-own") ==
          "False: spec.storage.gcs.secretName is empty and namespace demo may not use the controller's own "
          "credentials: set secretName, or add demo to --ambient-credentials-namespaces");
    CHECK(moto.get_object("kube-e2e", "own/trusted/metadata.yaml").has_value());
    CHECK(gcs.object("stowage", "own-trusted/metadata.yaml").has_value());
    CHECK(gcs.stat("metadata_tokens") >= 1);
    // Nothing written for the refused ones.
    for (const auto& key : moto.list_keys("kube-e2e")) CHECK(key.rfind("own/demo", 0) != 0);
    for (const auto& name : gcs.objects("stowage")) CHECK(name.rfind("own-demo", 0) != 0);
    CHECK_THAT(cluster.log("run"), Catch::Contains("may use this process's own cloud credentials in namespaces "
                                                   "trusted only"));

    // A WipeOut through the controller's identity is refused too: the object goes, the other team's data stays.
    cluster.kubectl("delete bs taker -n demo --timeout=30s");
    CHECK(moto.get_object("kube-e2e", "victim/repo/snap-1").has_value());
    CHECK(moto.get_object("kube-e2e", "victim/metadata.yaml").has_value());
    REQUIRE(test::eventually([&] { return warned("demo", "taker", "WipeOutFailed", "--ambient-credentials-namespaces"); }));

    // Naming a Secret that does not exist never falls back on the controller's identity, even for a WipeOut.
    cluster.apply("named", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: named, "
                           "namespace: trusted}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: " +
                               moto.endpoint() + ", bucket: kube-e2e, prefix: victim, secretName: gone}\n  "
                               "deletionPolicy: WipeOut\n");
    REQUIRE(test::eventually([&] {
      auto [code, out] = cluster.server.kubectl(
          "get bs named -n trusted -o jsonpath='{.status.conditions[?(@.type==\"BackendSecretFound\")].status}'");
      return code == 0 && out == "False";
    }));
    cluster.kubectl("delete bs named -n trusted --timeout=30s");
    CHECK(moto.get_object("kube-e2e", "victim/repo/snap-1").has_value());
    CHECK(moto.get_object("kube-e2e", "victim/metadata.yaml").has_value());
    REQUIRE(test::eventually([&] { return warned("trusted", "named", "WipeOutFailed", "trusted/gone"); }));
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);
    std::string log = cluster.log("run");
    CHECK(log.find(creds.secret_access_key) == std::string::npos);
  }

  // "*": every namespace may; the refused storages are checked again and go Ready.
  {
    auto child = cluster.start("run-all", with({"--ambient-credentials-namespaces", "*"}));
    LAZY_INFO(cluster.log("run-all"));
    REQUIRE(test::eventually([&] { return phase("demo", "s3-own") == "Ready" && phase("demo", "gcs-own") == "Ready"; }));
    CHECK(moto.get_object("kube-e2e", "own/demo/metadata.yaml").has_value());
    CHECK(gcs.object("stowage", "own-demo/metadata.yaml").has_value());
    child.signal(SIGTERM);
    CHECK(child.wait(std::chrono::seconds(20)) == 0);
  }

  // Offline, without the setting: the user is the operator, every namespace may.
  auto manifests = cluster.dir / "offline.yaml";
  test::write_file(manifests, s3("demo", "offline-s3", "offline/s3") + "---\n" + gcs_storage("demo", "offline-gcs"));
  auto offline = test::run({"init", "-f", manifests.string(), "--state-dir", (cluster.dir / "offline-state").string(),
                            "--gcs-endpoint", gcs.endpoint(), "--timeout", "30s"},
                           cluster.dir);
  INFO(offline.out << offline.err);
  CHECK(offline.code == 0);
  CHECK(moto.get_object("kube-e2e", "offline/s3/metadata.yaml").has_value());
  CHECK(gcs.object("stowage", "offline-gcs/metadata.yaml").has_value());

  // A value that is not a namespace name stops the start (exit 2), naming the flag.
  auto bad = test::run({"run", "--kubeconfig", cluster.kubeconfig.string(), "--state-dir",
                        (cluster.dir / "bad-state").string(), "--ambient-credentials-namespaces", "demo,Team_A"},
                       cluster.dir);
  CHECK(bad.code == 2);
  CHECK_THAT(bad.err, Catch::Contains("flag --ambient-credentials-namespaces: \"Team_A\" is not a namespace name"));
}

TEST_CASE("volume Jobs: an LD_PRELOAD in runtimeSettings leaves the storage NotReady naming the field, and no Job") {
  Cluster cluster("volume-job-env");
  std::string preload = test::local_storage("preload", "/data/preload");
  preload += "  runtimeSettings:\n    container:\n      env:\n      - {name: TZ, value: UTC}\n"
             "      - {name: LD_PRELOAD, value: /safe/data/x.so}\n";
  cluster.apply("objects", preload + "---\n" + test::local_storage("plain", "/data/plain"));
  auto child = cluster.start("run", {"--local-volume-mode", "job", "--volume-job-image", "stowage:test"});
  LAZY_INFO(cluster.log("run"));
  auto jobs_of = [&](const std::string& storage) {
    return cluster.get("jobs -n demo -l kubestash.com/invoker-name=" + storage).at("items").as_array();
  };
  REQUIRE(test::eventually([&] {
    return cluster.condition("preload", "BackendInitialized", "False") && !jobs_of("plain").empty();
  }));
  CHECK(cluster.phase("preload") == "NotReady");
  json::value refused = cluster.get("bs preload -n demo");
  const auto* init = find_condition(refused, "BackendInitialized");
  REQUIRE(init);
  CHECK_THAT(text(init->at("message")),
             Catch::Contains("spec.runtimeSettings.container.env[1].name: LD_PRELOAD is not allowed in volume Jobs"));
  CHECK(jobs_of("preload").empty());

  // The other storage's Job has Pod Security "restricted" defaults, as the API server stored them.
  json::array plain = jobs_of("plain");
  const auto& pod = plain[0].at("spec").at("template").at("spec");
  CHECK(pod.at("securityContext") ==
        json::parse(R"({"runAsUser": 65534, "runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})"));
  CHECK(pod.at("containers").at(0).at("securityContext") ==
        json::parse(R"({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})"));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}
