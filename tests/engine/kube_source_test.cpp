// KubeSource against the in-process FakeApi (tests/support/fake_api.hpp) and, where a restart is
// involved, a real state store in a temp folder: what reaches the cache and the queue, what a restart
// resumes from, how a 410, a stalled watch and a name taken by a new object are handled, and when a
// Secret's data is read again.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>

#include "engine/kube_paths.hpp"
#include "engine/kube_source.hpp"
#include "kube/api.hpp"
#include "persistence/sqlite_state_store.hpp"
#include "persistence/work_queue.hpp"
#include "support.hpp"
#include "support/fake_api.hpp"
#include "support/run_awaitable.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

constexpr const char* kStorages = "/apis/storage.kubestash.com/v1alpha1/namespaces/demo/backupstorages";
constexpr const char* kSecrets = "/api/v1/namespaces/demo/secrets";
const ObjectKey kKey{"demo", "s1"};
const ObjectKey kOther{"demo", "s2"};
const std::string kPath = std::string(kStorages) + "/s1";

json::value local_storage(const std::string& name, const std::string& host_path = "", const std::string& ns = "demo") {
  return json::object{
      {"apiVersion", "storage.kubestash.com/v1alpha1"},
      {"kind", "BackupStorage"},
      {"metadata", {{"name", name}, {"namespace", ns}}},
      {"spec",
       {{"storage",
         {{"provider", "local"},
          {"local", {{"mountPath", "/safe/data"}, {"hostPath", {{"path", host_path.empty() ? "/data/" + name : host_path}}}}}}},
        {"deletionPolicy", "Delete"}}}};
}

// A Secret whose key "password" holds `base64`.
json::value secret(const std::string& name, const std::string& base64, const std::string& ns = "demo") {
  return json::object{{"apiVersion", "v1"},
                      {"kind", "Secret"},
                      {"metadata", {{"name", name}, {"namespace", ns}}},
                      {"data", {{"password", base64}}}};
}

// The resourceVersion the last watch of `path` asked for, from `from` on in the request log.
std::string last_watch_rv(const test_support::FakeApi& api, const std::string& path, std::size_t from = 0) {
  std::string rv = "(none)";
  for (std::size_t i = from; i < api.requests().size(); ++i) {
    const auto& r = api.requests()[i];
    if (r.verb == "watch" && r.path == path) rv = r.resource_version;
  }
  return rv;
}

// The first watch of `path` from `from` on: the resourceVersion it asked for.
std::string first_watch_rv(const test_support::FakeApi& api, const std::string& path, std::size_t from) {
  for (std::size_t i = from; i < api.requests().size(); ++i) {
    const auto& r = api.requests()[i];
    if (r.verb == "watch" && r.path == path) return r.resource_version;
  }
  return "(none)";
}

std::size_t count_from(const test_support::FakeApi& api, const std::string& verb, const std::string& path,
                       std::size_t from) {
  std::size_t n = 0;
  for (std::size_t i = from; i < api.requests().size(); ++i)
    if (api.requests()[i].verb == verb && api.requests()[i].path == path) ++n;
  return n;
}

struct Rig {
  test::fs::path dir;
  boost::asio::io_context io;
  test_support::FakeApi api{io.get_executor()};
  persistence::WorkQueue queue{nullptr, [] { return std::int64_t{0}; }};
  std::unique_ptr<persistence::StateStore> store;
  std::unique_ptr<KubeSource> source;
  KubeSourceOptions options;

  explicit Rig(const std::string& name) : dir(test::temp_dir("kube-source-" + name)) {
    test::fs::create_directories(dir / "root");
    options.namespaces = {"demo"};
    options.server = "fake-api";
    options.locations.local_root = dir / "root";
  }
  ~Rig() { shut_down(); }

  void open_store() {
    auto opened = persistence::SqliteStateStore::open(dir / "state", io.get_executor(), persistence::StoreOptions{});
    REQUIRE(opened.ok());
    store = std::move(opened.value());
  }
  // The source as a start of the process builds it: reads the store (if open), requests nothing.
  void build() { source = std::make_unique<KubeSource>(io.get_executor(), api, queue, store.get(), options); }
  // Starts the source and runs the reactor until it is synced and nothing is left but waiting.
  void start() {
    if (!source) build();
    bool synced = false;
    source->start([&synced] { synced = true; });
    REQUIRE(run_until([&] { return synced; }));
    settle();
  }
  // The process ends: the source stops, every write commits, the store closes.
  void shut_down() {
    if (!source) return;
    source->stop();
    settle();
    if (store) {
      bool durable = false;
      store->when_durable([&durable] { durable = true; });
      run_until([&] { return durable; });
    }
    source.reset();
    store.reset();
    settle();
  }

  template <class Done>
  bool run_until(Done done, std::chrono::seconds limit = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      io.restart();
      io.run_one_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  // Runs what is ready (requests, watch events) until nothing is left but waiting.
  void settle() {
    for (;;) {
      io.restart();
      if (io.poll() == 0) return;
    }
  }

  std::set<std::string> queued() {
    std::set<std::string> names;
    while (auto row = queue.claim()) {
      names.insert(row->key.name);
      queue.complete(row->key);
    }
    return names;
  }

  std::string uid(const ObjectKey& key = kKey) {
    auto found = source->get(key);
    return found ? found->object.metadata.uid : "";
  }
};

}  // namespace

TEST_CASE("KubeSource: a restart restores the caches from the store and resumes the watches where they stopped") {
  Rig rig("restore");
  rig.open_store();
  rig.api.put(kStorages, local_storage("s1"));
  rig.api.put(kSecrets, secret("creds", "b25l"));
  rig.start();
  CHECK(rig.queued() == std::set<std::string>{"s1"});
  const std::string reached = last_watch_rv(rig.api, kStorages);
  const std::string secrets_reached = last_watch_rv(rig.api, kSecrets);
  rig.shut_down();

  rig.api.put(kStorages, local_storage("s2"));  // made while the controller was down
  std::size_t restart = rig.api.requests().size();
  rig.open_store();
  rig.build();
  CHECK(rig.source->stats().restored_storages == 1);
  CHECK(rig.source->stats().restored_secrets == 1);
  CHECK(rig.uid(kKey) == rig.api.object(kPath)->at("metadata").at("uid").as_string());  // before any request
  CHECK(rig.api.requests().size() == restart);

  rig.start();
  // No listing of what was restored: each watch goes on from the resourceVersion the last run reached.
  CHECK(count_from(rig.api, "list", kStorages, restart) == 0);
  CHECK(count_from(rig.api, "list", kSecrets, restart) == 0);
  CHECK(first_watch_rv(rig.api, kStorages, restart) == reached);
  CHECK(first_watch_rv(rig.api, kSecrets, restart) == secrets_reached);
  // The change made meanwhile arrives as an event and is queued; the restored storage is not queued again.
  CHECK(rig.uid(kOther) == rig.api.object(std::string(kStorages) + "/s2")->at("metadata").at("uid").as_string());
  CHECK(rig.queued() == std::set<std::string>{"s2"});

  // A bookmark moves the resumption point past changes the source does not watch.
  auto unrelated = rig.api.put("/api/v1/namespaces/demo/configmaps", json::object{{"metadata", {{"name", "other"}}}});
  std::string bookmarked = std::string(unrelated.at("metadata").at("resourceVersion").as_string());
  rig.api.bookmark();
  rig.settle();
  rig.shut_down();
  restart = rig.api.requests().size();
  rig.open_store();
  rig.start();
  CHECK(first_watch_rv(rig.api, kStorages, restart) == bookmarked);
  CHECK(rig.source->stats().restored_storages == 2);
}

TEST_CASE("KubeSource: a watch answered 410 Expired relists, and a storage deleted meanwhile leaves the cache and is queued") {
  Rig rig("expired");
  rig.api.put(kStorages, local_storage("s1"));
  rig.api.put(kStorages, local_storage("s2"));
  rig.start();
  rig.queued();

  rig.api.hold_watches(true);  // the DELETED event never reaches the source
  rig.api.erase(std::string(kStorages) + "/s2");
  rig.api.compact();       // and the server forgets it: a watch from before now is too old
  std::size_t before = rig.api.requests().size();
  rig.api.end_watches();   // the watch closes; watching again from its resourceVersion gets 410
  REQUIRE(rig.run_until([&] { return !rig.source->get(kOther); }));
  rig.settle();

  CHECK(count_from(rig.api, "watch", kStorages, before) >= 1);
  CHECK(count_from(rig.api, "list", kStorages, before) == 1);
  CHECK(rig.source->cache().storage(kOther) == nullptr);
  CHECK(rig.source->locations().location(kOther) == nullptr);
  CHECK(rig.source->get(kKey));
  // Only the difference is queued: s1, unchanged, is not.
  CHECK(rig.queued() == std::set<std::string>{"s2"});
  rig.api.hold_watches(false);
}

TEST_CASE("KubeSource: a storage deleted and created again under its name, seen only by a relist, is taken as a new object") {
  Rig rig("recreated");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.queued();
  std::string old_uid = rig.uid();
  // What writes to the storage that is about to go answer: its status written, our finalizer added.
  json::value status_answer = *rig.api.object(kPath);
  status_answer.as_object()["status"] = json::object{{"phase", "Ready"}};
  json::value finalizer_answer = *rig.api.object(kPath);
  finalizer_answer.at("metadata").as_object()["finalizers"] = json::array{kCleanupFinalizer};

  rig.api.hold_watches(true);
  rig.api.erase(kPath);
  rig.api.put(kStorages, local_storage("s1"));  // generation 1, no finalizer, no status: only the uid differs
  rig.api.compact();
  rig.api.end_watches();
  REQUIRE(rig.run_until([&] { return rig.uid() != old_uid; }));
  rig.settle();
  CHECK(rig.uid() == rig.api.object(kPath)->at("metadata").at("uid").as_string());
  CHECK(rig.queued() == std::set<std::string>{"s1"});

  // A late answer to a write of the storage that went does not enter the newcomer's cache entry.
  rig.source->status_written(kKey, status_answer);
  CHECK(rig.source->get(kKey)->object.status.phase.empty());
  rig.source->finalizers_written(kKey, finalizer_answer);
  CHECK(rig.source->get(kKey)->object.metadata.finalizers.empty());
  // The same answers for the storage the cache holds do enter it.
  status_answer.at("metadata").as_object()["uid"] = rig.uid();
  rig.source->status_written(kKey, status_answer);
  CHECK(rig.source->get(kKey)->object.status.phase == "Ready");
  rig.api.hold_watches(false);
}

TEST_CASE("KubeSource: a change of status alone is not queued, but a spec change or our finalizer taken off is") {
  Rig rig("changes");
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  CHECK(rig.queued() == std::set<std::string>{"s1"});

  auto written = test_support::run_awaitable_until_done(
      rig.io, rig.api.patch(kPath + "/status", kube::kMergePatch, json::parse(R"({"status":{"phase":"Ready"}})")));
  REQUIRE(written.ok());
  rig.settle();
  CHECK(rig.source->cache().storage(kKey)->status.phase == "Ready");  // the event came
  CHECK(rig.queued().empty());

  json::value adding = *rig.api.object(kPath);
  adding.at("metadata").as_object()["finalizers"] = json::array{kCleanupFinalizer};
  rig.api.put(kStorages, adding);  // our own finalizer write coming back
  rig.settle();
  CHECK(rig.source->cache().storage(kKey)->metadata.finalizers.size() == 1);
  CHECK(rig.queued().empty());

  json::value spec = *rig.api.object(kPath);
  spec.at("spec").as_object()["deletionPolicy"] = "WipeOut";
  rig.api.put(kStorages, spec);
  rig.settle();
  CHECK(rig.source->cache().storage(kKey)->metadata.generation == 2);
  CHECK(rig.queued() == std::set<std::string>{"s1"});

  json::value removing = *rig.api.object(kPath);
  removing.at("metadata").as_object()["finalizers"] = json::array();
  rig.api.put(kStorages, removing);
  rig.settle();
  CHECK(rig.queued() == std::set<std::string>{"s1"});
}

TEST_CASE("KubeSource: an object that cannot be read is queued with its problem and keeps its location") {
  Rig rig("invalid");
  rig.api.put(kStorages, local_storage("s1", "/data/shared"));
  rig.start();
  rig.queued();
  REQUIRE(rig.source->locations().location(kKey));
  const StorageLocation before = *rig.source->locations().location(kKey);

  json::value bad = *rig.api.object(kPath);
  bad.at("spec").as_object()["deletionPolicy"] = 7;
  rig.api.put(kStorages, bad);
  rig.settle();
  auto found = rig.source->get(kKey);
  REQUIRE(found);
  CHECK_THAT(found->invalid, Catch::Contains("deletionPolicy"));
  CHECK(found->object.metadata.uid == bad.at("metadata").at("uid").as_string());
  CHECK(rig.source->cache().storage(kKey) == nullptr);
  CHECK(rig.queued() == std::set<std::string>{"s1"});
  // Its data has not moved: the place stays taken, and a newcomer there overlaps it.
  const auto* kept = rig.source->locations().location(kKey);
  REQUIRE(kept);
  CHECK((kept->space == before.space && kept->path == before.path));
  rig.api.put(kStorages, local_storage("s2", "/data/shared"));
  rig.settle();
  auto overlaps = rig.source->locations().overlaps(kOther);
  REQUIRE(overlaps.size() == 1);
  CHECK(overlaps[0].other == kKey);
  CHECK(rig.queued() == std::set<std::string>{"s1", "s2"});
}

TEST_CASE("KubeSource: a Secret's data is read with one GET and again only once its resourceVersion moved") {
  Rig rig("secret");
  const std::string path = std::string(kSecrets) + "/creds";
  rig.api.put(kSecrets, secret("creds", "b25l"));  // "one"
  rig.start();
  const ObjectKey creds{"demo", "creds"};

  auto first = test_support::run_awaitable_until_done(rig.io, rig.source->secret(creds));
  REQUIRE(first.ok());
  REQUIRE(first.value());
  CHECK(first.value()->data.at("password") == "one");
  auto again = test_support::run_awaitable_until_done(rig.io, rig.source->secret(creds));
  REQUIRE((again.ok() && again.value()));
  CHECK(again.value()->data.at("password") == "one");
  CHECK(rig.api.count("get", path) == 1);

  rig.api.put(kSecrets, secret("creds", "dHdv"));  // "two": the metadata watch brings the new resourceVersion
  rig.settle();
  auto changed = test_support::run_awaitable_until_done(rig.io, rig.source->secret(creds));
  REQUIRE((changed.ok() && changed.value()));
  CHECK(changed.value()->data.at("password") == "two");
  CHECK(rig.api.count("get", path) == 2);
  test_support::run_awaitable_until_done(rig.io, rig.source->secret(creds));
  CHECK(rig.api.count("get", path) == 2);
  CHECK(rig.source->stats().secret_gets == 2);

  // A Secret the synced informer does not know is not asked for.
  auto missing = test_support::run_awaitable_until_done(rig.io, rig.source->secret({"demo", "nope"}));
  REQUIRE(missing.ok());
  CHECK_FALSE(missing.value());
  CHECK(rig.api.count("get") == 2);
}

TEST_CASE("KubeSource: a watch that went silent is given up after the idle timeout, and what happened meanwhile arrives") {
  Rig rig("stalled");
  rig.options.watch_idle_timeout = std::chrono::milliseconds(300);
  rig.api.put(kStorages, local_storage("s1"));
  rig.start();
  rig.queued();
  std::size_t watches = rig.api.count("watch", kStorages);

  rig.api.stall_watches();  // connections open, nothing more comes on them
  rig.api.put(kStorages, local_storage("s2"));
  rig.settle();
  CHECK_FALSE(rig.source->get(kOther));
  REQUIRE(rig.run_until([&] { return rig.source->get(kOther).has_value(); }));
  CHECK(rig.api.count("watch", kStorages) > watches);
  CHECK(rig.queued() == std::set<std::string>{"s2"});
}

namespace {

// --namespace=team-a,team-b, with objects in team-c too.
std::string storages_in(const std::string& ns) {
  return "/apis/storage.kubestash.com/v1alpha1/namespaces/" + ns + "/backupstorages";
}
std::string secrets_in(const std::string& ns) { return "/api/v1/namespaces/" + ns + "/secrets"; }

struct TwoNamespaces : Rig {
  explicit TwoNamespaces(const std::string& name) : Rig(name) { options.namespaces = {"team-a", "team-b"}; }
  void put_storage(const std::string& ns, const std::string& name) {
    api.put(storages_in(ns), local_storage(name, "/data/" + ns + "/" + name, ns));
  }
  std::string rv_of(const std::string& ns, const std::string& name) {
    return std::string(api.object(storages_in(ns) + "/" + name)->at("metadata").at("resourceVersion").as_string());
  }
};

}  // namespace

TEST_CASE("KubeSource: with a list of namespaces, each is listed and watched on its own, and a third is never requested") {
  TwoNamespaces rig("namespaces");
  for (const char* ns : {"team-a", "team-b", "team-c"}) {
    rig.put_storage(ns, std::string("s-") + ns);
    rig.api.put(secrets_in(ns), secret("creds", "b25l", ns));
  }
  rig.start();
  CHECK(rig.queued() == std::set<std::string>{"s-team-a", "s-team-b"});
  CHECK(rig.source->get({"team-a", "s-team-a"}));
  CHECK(rig.source->get({"team-b", "s-team-b"}));
  CHECK_FALSE(rig.source->get({"team-c", "s-team-c"}));
  CHECK(rig.source->serves("team-a"));
  CHECK_FALSE(rig.source->serves("team-c"));
  for (const auto& ns : {std::string("team-a"), std::string("team-b")}) {
    CHECK(count_from(rig.api, "list", storages_in(ns), 0) == 1);
    CHECK(count_from(rig.api, "list", secrets_in(ns), 0) == 1);
    CHECK(count_from(rig.api, "list", kubestash_collection_path("repositories", ns), 0) == 1);
    CHECK(count_from(rig.api, "watch", storages_in(ns), 0) == 1);
  }

  // Changes in a served namespace arrive; those in team-c are never seen.
  rig.put_storage("team-b", "later");
  rig.put_storage("team-c", "later");
  rig.settle();
  CHECK(rig.queued() == std::set<std::string>{"later"});
  CHECK(rig.source->get({"team-b", "later"}));
  CHECK_FALSE(rig.source->get({"team-c", "later"}));
  // Every request went to a served namespace's path: Roles in team-a and team-b are enough.
  REQUIRE(!rig.api.requests().empty());
  for (const auto& r : rig.api.requests()) {
    INFO(r.verb << " " << r.path);
    const bool namespaced = r.path.find("/namespaces/team-a/") != std::string::npos ||
                            r.path.find("/namespaces/team-b/") != std::string::npos;
    CHECK(namespaced);
  }
}

TEST_CASE("KubeSource: with a list of namespaces, a Secret is read in its own namespace's stream") {
  TwoNamespaces rig("namespaces-secret");
  rig.api.put(secrets_in("team-b"), secret("creds", "b25l", "team-b"));
  rig.start();
  auto found = test_support::run_awaitable_until_done(rig.io, rig.source->secret({"team-b", "creds"}));
  REQUIRE(found.ok());
  CHECK(found.value().has_value());
  // Known absent from team-a's synced stream: no GET.
  auto absent = test_support::run_awaitable_until_done(rig.io, rig.source->secret({"team-a", "creds"}));
  REQUIRE(absent.ok());
  CHECK_FALSE(absent.value().has_value());
  CHECK(rig.source->stats().secret_gets == 1);
}

TEST_CASE("KubeSource: with a list of namespaces, a restart resumes each namespace's watch from its own resourceVersion") {
  TwoNamespaces rig("namespaces-restore");
  rig.open_store();
  rig.put_storage("team-a", "a1");
  rig.put_storage("team-b", "b1");
  rig.start();
  rig.queued();
  // team-b's stream moves on (an event), team-a's stays at its list: two different resumption points.
  rig.put_storage("team-b", "b2");
  rig.settle();
  CHECK(rig.queued() == std::set<std::string>{"b2"});
  const std::string reached_a = last_watch_rv(rig.api, storages_in("team-a"));
  const std::string reached_b = rig.rv_of("team-b", "b2");
  REQUIRE(reached_a != reached_b);
  rig.shut_down();

  rig.put_storage("team-a", "a2");  // made while the controller was down
  std::size_t restart = rig.api.requests().size();
  rig.open_store();
  rig.build();
  CHECK(rig.source->stats().restored_storages == 3);
  rig.start();
  for (const char* ns : {"team-a", "team-b"}) {
    CHECK(count_from(rig.api, "list", storages_in(ns), restart) == 0);
    CHECK(count_from(rig.api, "list", secrets_in(ns), restart) == 0);
  }
  CHECK(first_watch_rv(rig.api, storages_in("team-a"), restart) == reached_a);
  CHECK(first_watch_rv(rig.api, storages_in("team-b"), restart) == reached_b);
  CHECK(rig.queued() == std::set<std::string>{"a2"});
  CHECK(rig.source->get({"team-a", "a2"}));
}

TEST_CASE("KubeSource: with a list of namespaces, a 410 in one namespace relists that one only") {
  TwoNamespaces rig("namespaces-expired");
  rig.put_storage("team-a", "a1");
  rig.put_storage("team-a", "a2");
  rig.put_storage("team-b", "b1");
  rig.start();
  rig.queued();

  rig.api.hold_watches(true);  // the DELETED event never reaches the source
  rig.api.erase(storages_in("team-a") + "/a2");
  std::size_t before = rig.api.requests().size();
  rig.api.fail_next("watch", storages_in("team-a"), test_support::FakeApi::status_error(410));
  rig.api.end_watches();  // every watch closes; team-a's next one is answered 410 Expired
  REQUIRE(rig.run_until([&] { return !rig.source->get({"team-a", "a2"}); }));
  REQUIRE(rig.run_until([&] { return count_from(rig.api, "watch", storages_in("team-b"), before) >= 1; }));
  rig.settle();

  CHECK(count_from(rig.api, "list", storages_in("team-a"), before) == 1);
  CHECK(count_from(rig.api, "list", storages_in("team-b"), before) == 0);  // team-b watched on from where it was
  CHECK(count_from(rig.api, "list", secrets_in("team-a"), before) == 0);
  CHECK(rig.source->get({"team-a", "a1"}));
  CHECK(rig.source->get({"team-b", "b1"}));
  CHECK(rig.queued() == std::set<std::string>{"a2"});
  rig.api.hold_watches(false);
}

TEST_CASE("KubeSource: with a list of namespaces, it is synced only once every namespace has listed, and says which has not") {
  TwoNamespaces rig("namespaces-synced");
  rig.put_storage("team-a", "a1");
  rig.put_storage("team-b", "b1");
  rig.api.fail_next("list", storages_in("team-b"), test_support::FakeApi::status_error(403, "forbidden in team-b"));
  rig.build();
  bool synced = false;
  rig.source->start([&synced] { synced = true; });
  REQUIRE(rig.run_until([&] { return rig.source->get({"team-a", "a1"}).has_value(); }));
  rig.settle();
  CHECK_FALSE(synced);
  CHECK_FALSE(rig.source->synced());
  CHECK_THAT(rig.source->problem(), Catch::Contains("team-b"));
  // team-b's list is tried again (after its backoff) and succeeds: now, and only now, synced.
  REQUIRE(rig.run_until([&] { return synced; }));
  CHECK(rig.source->synced());
  CHECK(rig.source->problem().empty());
  CHECK(rig.source->get({"team-b", "b1"}));
}
