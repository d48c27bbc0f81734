// KubeWorld as the reconciler's target, against the in-process FakeApi (tests/support/fake_api.hpp):
// the finalizer and status writes, what they do to the cache, their 404/409/422 handling, and a
// storage replaced by another of the same name. Watch events are held back where a test stands for a
// re-run that comes before the API server's event.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <set>

#include "common/http_client.hpp"
#include "engine/backends.hpp"
#include "engine/facts.hpp"
#include "engine/kube_world.hpp"
#include "engine/reconciler.hpp"
#include "kube/conditions.hpp"
#include "persistence/fingerprint.hpp"
#include "persistence/work_queue.hpp"
#include "support.hpp"
#include "support/fake_api.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

constexpr const char* kStorages = "/apis/storage.kubestash.com/v1alpha1/namespaces/demo/backupstorages";
const ObjectKey kKey{"demo", "s1"};
const std::string kPath = std::string(kStorages) + "/s1";
const std::string kStatusPath = kPath + "/status";

json::value local_storage(const std::string& name, json::array finalizers = {}) {
  json::object meta{{"name", name}, {"namespace", "demo"}};
  if (!finalizers.empty()) meta["finalizers"] = std::move(finalizers);
  return json::object{
      {"apiVersion", "storage.kubestash.com/v1alpha1"},
      {"kind", "BackupStorage"},
      {"metadata", std::move(meta)},
      {"spec",
       {{"storage",
         {{"provider", "local"}, {"local", {{"mountPath", "/safe/data"}, {"hostPath", {{"path", "/data/" + name}}}}}}},
        {"deletionPolicy", "Delete"}}}};
}

json::array finalizers_of(const json::value* object) {
  REQUIRE(object);
  const auto* f = object->as_object().at("metadata").as_object().if_contains("finalizers");
  return f ? f->as_array() : json::array();
}

struct Rig {
  test::fs::path dir;
  boost::asio::io_context io;
  test_support::FakeApi api{io.get_executor()};
  persistence::WorkQueue queue{nullptr, [] { return std::int64_t{0}; }};
  std::unique_ptr<KubeWorld> world;

  explicit Rig(const std::string& name) : dir(test::temp_dir("kube-world-" + name)) {
    test::fs::create_directories(dir / "root");
  }
  ~Rig() {
    if (world) world->stop();
    io.restart();
    io.run_for(std::chrono::seconds(5));  // the stopped watches and the Event writer end
  }

  // Builds the world and runs the reactor until its informers have listed everything.
  void start() {
    KubeWorldOptions options;
    options.local_root = dir / "root";
    world = std::make_unique<KubeWorld>(io.get_executor(), api, queue, nullptr, options);
    bool synced = false;
    world->start([&] { synced = true; });
    run_until([&] { return synced; });
    settle();
  }

  template <class Done>
  void run_until(Done done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!done()) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      io.restart();
      io.run_one_for(std::chrono::milliseconds(20));
    }
  }

  // Runs what is ready (requests, watch events, Event writes) until nothing is left but waiting.
  void settle() {
    for (;;) {
      io.restart();
      if (io.poll() == 0) return;
    }
  }

  template <class T>
  T run(boost::asio::awaitable<T> work) {
    std::optional<T> result;
    boost::asio::co_spawn(io, std::move(work), [&](std::exception_ptr e, T value) {
      if (e) std::rethrow_exception(e);
      result.emplace(std::move(value));
    });
    run_until([&] { return result.has_value(); });
    settle();
    return std::move(*result);
  }

  kube::BackupStorage cached(const ObjectKey& key = kKey) {
    auto found = world->get(key);
    REQUIRE(found);
    return found->object;
  }

  std::set<std::string> queued() {
    std::set<std::string> names;
    while (auto row = queue.claim()) {
      names.insert(row->key.name);
      queue.complete(row->key);
    }
    return names;
  }
};

kube::BackupStorageStatus ready_status(std::string total_size = "") {
  kube::BackupStorageStatus st;
  kube::Condition c;
  c.type = kube::kConditionBackendInitialized;
  c.status = "True";
  c.reason = kube::kReasonBackendInitializationSucceeded;
  c.message = "Successfully initialized backend.";
  c.observed_generation = 1;
  c.last_transition_time = "2026-01-01T00:00:00Z";
  st.conditions.push_back(c);
  st.phase = kube::kPhaseReady;
  st.total_size = std::move(total_size);
  return st;
}

// The reconciler on a real local backend (a temp folder), with the rig's KubeWorld as its target.
struct Reconciling {
  boost::asio::thread_pool pool{2};
  http::Client http;
  BackendFactory backends;
  FactBook facts{nullptr, {}};
  persistence::Fingerprinter fingerprinter;
  Reconciler reconciler;

  explicit Reconciling(Rig& rig)
      : http(rig.io.get_executor()),
        backends(pool, LocalSettings{rig.dir / "root", {}}, http, CloudSettings{}),
        fingerprinter(persistence::Fingerprinter::load_or_create(rig.dir).value()),
        reconciler(*rig.world, backends, facts, fingerprinter, ReconcilerOptions{"v9.9.9"},
                   [] { return std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000)); }) {}
  ~Reconciling() { pool.join(); }
};

}  // namespace

TEST_CASE("ensure_finalizer adds the cleanup finalizer with a guarded JSON patch, and the cache knows at once") {
  Rig rig("finalizer-add");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.api.hold_watches(true);  // the MODIFIED event has not come back when the reconciler runs again

  auto added = rig.run(rig.world->ensure_finalizer(rig.cached()));
  REQUIRE(added.ok());
  REQUIRE(rig.api.count("patch", kPath) == 1);
  const auto& request = rig.api.requests().back();
  CHECK(request.content_type == kube::kJsonPatch);
  // `test null` on a missing member: another writer adding the first finalizer meanwhile makes it fail.
  CHECK(request.body == json::parse(R"([{"op":"test","path":"/metadata/finalizers","value":null},
                                        {"op":"add","path":"/metadata/finalizers","value":["kubestash.com/cleanup"]}])"));
  CHECK(finalizers_of(rig.api.object(kPath)) == json::array{kCleanupFinalizer});

  auto again = rig.run(rig.world->ensure_finalizer(rig.cached()));
  REQUIRE(again.ok());
  CHECK(rig.api.count("patch", kPath) == 1);
}

TEST_CASE("ensure_finalizer appends to other controllers' finalizers, testing the list it saw") {
  Rig rig("finalizer-append");
  rig.api.put(kStorages, local_storage("s1", {"other.io/hold"}));
  rig.start();
  REQUIRE(rig.run(rig.world->ensure_finalizer(rig.cached())).ok());
  CHECK(rig.api.requests().back().body ==
        json::parse(R"([{"op":"test","path":"/metadata/finalizers","value":["other.io/hold"]},
                        {"op":"add","path":"/metadata/finalizers/-","value":"kubestash.com/cleanup"}])"));
  CHECK(finalizers_of(rig.api.object(kPath)) == json::array{"other.io/hold", kCleanupFinalizer});
}

TEST_CASE("ensure_finalizer: an object that moved on (422 from the test, 409) is a transient error, and so is a 404") {
  Rig rig("finalizer-moved");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.api.hold_watches(true);
  auto seen = rig.cached();

  SECTION("another writer added a finalizer since the cache saw the object: the test fails with 422") {
    rig.api.put(kStorages, local_storage("s1", {"other.io/hold"}));
    auto result = rig.run(rig.world->ensure_finalizer(seen));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
    CHECK_THAT(result.error().message, Catch::Contains("the finalizers changed while kubestash.com/cleanup was being added"));
    CHECK(finalizers_of(rig.api.object(kPath)) == json::array{"other.io/hold"});  // not added blindly
  }
  SECTION("409 Conflict") {
    rig.api.fail_next("patch", kPath, test_support::FakeApi::status_error(409, "conflict"));
    auto result = rig.run(rig.world->ensure_finalizer(seen));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
    CHECK_THAT(result.error().message, Catch::Contains("retrying with the newer object"));
  }
  SECTION("404: the object is gone; the retry finds it deleted") {
    rig.api.erase(kPath);
    auto result = rig.run(rig.world->ensure_finalizer(seen));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
  }
  SECTION("500 is transient, 403 is not") {
    rig.api.fail_next("patch", kPath, test_support::FakeApi::status_error(500, "etcd timeout"));
    auto result = rig.run(rig.world->ensure_finalizer(seen));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
    rig.api.fail_next("patch", kPath, test_support::FakeApi::status_error(403, "forbidden"));
    result = rig.run(rig.world->ensure_finalizer(seen));
    REQUIRE_FALSE(result.ok());
    CHECK_FALSE(result.error().transient);
  }
}

TEST_CASE("write_status merge-patches /status, and the cache holds the written status before the event comes back") {
  Rig rig("status-cache");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.api.hold_watches(true);

  auto status = ready_status("1.5 GiB");
  REQUIRE(rig.run(rig.world->write_status(rig.cached(), status)).ok());
  REQUIRE(rig.api.count("patch", kStatusPath) == 1);
  CHECK(rig.api.requests().back().content_type == kube::kMergePatch);
  CHECK(rig.api.object(kPath)->at("status").at("phase") == "Ready");
  // Read by the next reconcile at once: the same status is not written again.
  CHECK(kube::status_to_json(rig.cached().status) == kube::status_to_json(status));

  // A field the next status leaves out is nulled, as the cache's copy of the object says it is there.
  auto next = ready_status();
  next.phase = kube::kPhaseNotReady;
  REQUIRE(rig.run(rig.world->write_status(rig.cached(), next)).ok());
  CHECK(rig.api.requests().back().body.at("status").at("totalSize").is_null());
  CHECK_FALSE(rig.api.object(kPath)->at("status").as_object().contains("totalSize"));
  CHECK(kube::status_to_json(rig.cached().status) == kube::status_to_json(next));
}

TEST_CASE("a reconcile run again before its status event comes back writes no status and no Event again") {
  Rig rig("rerun");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  Reconciling reconciling(rig);
  const std::string events = "/apis/events.k8s.io/v1/namespaces/demo/events";

  rig.api.hold_watches(true);  // the API server's events come late
  auto first = rig.run(reconciling.reconciler.reconcile(kKey, {}));
  CHECK(first.kind == Outcome::Done);
  CHECK(rig.api.count("patch", kStatusPath) == 1);
  CHECK(rig.api.count("create", events) == 1);  // BackendInitializationSucceeded

  auto second = rig.run(reconciling.reconciler.reconcile(kKey, {}));
  CHECK(second.kind == Outcome::Done);
  CHECK(rig.api.count("patch", kStatusPath) == 1);
  CHECK(rig.api.count("create", events) + rig.api.count_under("patch", events) == 1);
}

TEST_CASE("write_status: a storage gone meanwhile is no error, other failures say whether to retry") {
  Rig rig("status-errors");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.api.hold_watches(true);
  auto seen = rig.cached();
  SECTION("404") {
    rig.api.erase(kPath);
    CHECK(rig.run(rig.world->write_status(seen, ready_status())).ok());
  }
  SECTION("500 and 422") {
    rig.api.fail_next("patch", kStatusPath, test_support::FakeApi::status_error(500, "etcd timeout"));
    auto result = rig.run(rig.world->write_status(seen, ready_status()));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
    rig.api.fail_next("patch", kStatusPath, test_support::FakeApi::status_error(422, "status.phase: Unsupported value"));
    result = rig.run(rig.world->write_status(seen, ready_status()));
    REQUIRE_FALSE(result.ok());
    CHECK_FALSE(result.error().transient);
    CHECK(rig.cached().status.phase.empty());  // nothing written, nothing cached
  }
}

TEST_CASE("write_status: the answer of another storage that took the name does not enter the cache") {
  Rig rig("status-uid");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.api.hold_watches(true);
  auto seen = rig.cached();
  rig.api.erase(kPath);
  rig.api.put(kStorages, local_storage("s1"));  // a new uid under the same name, not seen yet
  REQUIRE(rig.api.object(kPath)->at("metadata").at("uid") != json::value(seen.metadata.uid));
  REQUIRE(rig.run(rig.world->write_status(seen, ready_status())).ok());
  CHECK(rig.cached().metadata.uid == seen.metadata.uid);
  CHECK(rig.cached().status.phase.empty());
}

TEST_CASE("deletion_done removes the cleanup finalizer at its index, guarded by a test, and the last one lets the object go") {
  Rig rig("deletion-done");
  rig.api.put(kStorages, local_storage("s1", {"other.io/hold", kCleanupFinalizer}));
  rig.api.put(kStorages, local_storage("s2", {kCleanupFinalizer}));
  rig.run(rig.api.remove(kPath));
  rig.run(rig.api.remove(std::string(kStorages) + "/s2"));
  rig.start();
  auto found = rig.world->get(kKey);
  REQUIRE(found);
  REQUIRE(found->deleting);

  REQUIRE(rig.run(rig.world->deletion_done(found->object)).ok());
  CHECK(rig.api.requests().back().body == json::parse(R"([{"op":"test","path":"/metadata/finalizers/1","value":"kubestash.com/cleanup"},
                                                          {"op":"remove","path":"/metadata/finalizers/1"}])"));
  CHECK(finalizers_of(rig.api.object(kPath)) == json::array{"other.io/hold"});
  CHECK_FALSE(rig.world->get(kKey));  // the event came back: no longer ours to clean up

  ObjectKey s2{"demo", "s2"};
  REQUIRE(rig.run(rig.world->deletion_done(rig.cached(s2))).ok());
  CHECK_FALSE(rig.api.object(std::string(kStorages) + "/s2"));
  CHECK_FALSE(rig.world->get(s2));
}

TEST_CASE("deletion_done: 404 is done, and a finalizer list that moved on (422, 409) is retried") {
  Rig rig("deletion-errors");
  rig.api.put(kStorages, local_storage("s1", {"other.io/hold", kCleanupFinalizer}));
  rig.run(rig.api.remove(kPath));
  rig.start();
  rig.api.hold_watches(true);
  auto seen = rig.cached();
  SECTION("404") {
    rig.api.erase(kPath);
    CHECK(rig.run(rig.world->deletion_done(seen)).ok());
  }
  SECTION("the other finalizer went first: index 1 is no longer ours, the test fails (422)") {
    auto now = *rig.api.object(kPath);
    now.at("metadata").as_object()["finalizers"] = json::array{kCleanupFinalizer};
    rig.api.put(kStorages, now);
    auto result = rig.run(rig.world->deletion_done(seen));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
    CHECK_THAT(result.error().message, Catch::Contains("the finalizers changed while kubestash.com/cleanup was being removed"));
    CHECK(finalizers_of(rig.api.object(kPath)) == json::array{kCleanupFinalizer});  // not removed blindly
  }
  SECTION("409") {
    rig.api.fail_next("patch", kPath, test_support::FakeApi::status_error(409, "conflict"));
    auto result = rig.run(rig.world->deletion_done(seen));
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().transient);
  }
}

TEST_CASE("a storage deleted and created again under its name is followed by its new uid and reconciled afresh") {
  Rig rig("uid");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  Reconciling reconciling(rig);
  REQUIRE(rig.run(reconciling.reconciler.reconcile(kKey, {})).kind == Outcome::Done);
  std::string old_uid = rig.cached().metadata.uid;
  rig.queued();

  rig.api.hold_watches(true);
  rig.api.erase(kPath);
  rig.api.put(kStorages, local_storage("s1"));  // no finalizer, no status
  rig.api.hold_watches(false);
  rig.settle();
  auto now = rig.cached();
  CHECK(now.metadata.uid != old_uid);
  CHECK(now.metadata.uid == rig.api.object(kPath)->at("metadata").at("uid").as_string());
  CHECK(now.status.phase.empty());
  CHECK(rig.queued() == std::set<std::string>{"s1"});

  // The newcomer gets its own finalizer and status: nothing is taken over from the storage that went.
  std::size_t finalizer_patches = rig.api.count("patch", kPath), status_patches = rig.api.count("patch", kStatusPath);
  REQUIRE(rig.run(reconciling.reconciler.reconcile(kKey, {})).kind == Outcome::Done);
  CHECK(rig.api.count("patch", kPath) == finalizer_patches + 1);
  CHECK(rig.api.count("patch", kStatusPath) == status_patches + 1);
  CHECK(finalizers_of(rig.api.object(kPath)) == json::array{kCleanupFinalizer});
  CHECK(rig.api.object(kPath)->at("status").at("phase") == "Ready");
}
