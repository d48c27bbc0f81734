// Half-open watches, end to end: `stowage run --kubeconfig` against the test API server while every
// watch it holds goes silent with its connection open (no event, no bookmark, no EOF: a hung server
// or load balancer). Each watch is given up after kube.watch-idle-timeout and opened again from its
// resourceVersion, so a storage made with kubectl during the stall still goes Ready. Before
// kube.watch-idle-timeout existed a stalled watch was only replaced after timeoutSeconds + 5 s
// (5 to 10 minutes), and such a storage was not Ready after 120 s.
#include <catch2/catch.hpp>

#include "kube_cluster.hpp"
#include "support.hpp"

TEST_CASE("the idle timeout of watches is 90 s unless set") {
  auto dir = test::temp_dir("watch-idle-default");
  auto printed = test::run({"config", "print"}, dir);
  INFO(printed.err);
  REQUIRE(printed.code == 0);
  CHECK_THAT(printed.out, Catch::Contains("  watch-idle-timeout: 1m30s\n"));
  auto set = test::run({"config", "print", "--watch-idle-timeout", "3s"}, dir);
  REQUIRE(set.code == 0);
  CHECK_THAT(set.out, Catch::Contains("  watch-idle-timeout: 3s\n"));
}

TEST_CASE("every watch stalled with its connection open: a storage created meanwhile is Ready within 120 s") {
  // Bookmarks every second (a real server: about every minute, against the default idle timeout of
  // 90 s), so a healthy watch is never idle for the 3 s this test sets.
  kube_e2e::KubeCluster cluster("kube-stall", "stall-token-do-not-log", {"--bookmark-interval", "1"});
  auto kubeconfig = cluster.server.write_kubeconfig("demo");
  cluster.apply("before", test::local_storage("before", "/data/before"));
  auto child = cluster.run(kubeconfig, "run", "debug", {"--watch-idle-timeout", "3s"});
  LAZY_INFO(cluster.log("run"));
  REQUIRE(test::eventually([&] { return cluster.phase("before") == "Ready"; }));

  cluster.server.control({{"action", "stall_open_watches"}});
  cluster.server.control({{"action", "reset_stats"}});
  const auto stalled_at = std::chrono::steady_clock::now();
  cluster.apply("during", test::local_storage("during", "/data/during"));
  REQUIRE(test::eventually([&] { return cluster.phase("during") == "Ready"; }, std::chrono::seconds(120)));
  const auto took = std::chrono::steady_clock::now() - stalled_at;
  CHECK(took < std::chrono::seconds(30));  // 3 s of silence, a backoff of about a second, the reconcile
  CHECK(test::fs::exists(cluster.root / "data/during/metadata.yaml"));

  // Logged at info with the resource and how long it was silent; re-established, not relisted.
  const std::string log = cluster.log("run");
  CHECK_THAT(log, Catch::Contains("info  backupstorages: no byte on the watch for 3 s (no event, no bookmark: a "
                                  "stalled or half-open connection); watching again from resourceVersion"));
  const auto stats = cluster.server.stats();
  const auto& by_path = stats.at("requests_by_path").as_object();
  CHECK(by_path.if_contains("list /apis/storage.kubestash.com/v1alpha1/backupstorages") == nullptr);
  CHECK(by_path.if_contains("watch /apis/storage.kubestash.com/v1alpha1/backupstorages") != nullptr);
  CHECK(log.find("stall-token-do-not-log") == std::string::npos);

  cluster.server.control({{"action", "clear_faults"}});
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
}
