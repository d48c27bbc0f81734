// The reconciler on real local backends (temp folders), with the offline world as its target.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <set>

#include "engine/backends.hpp"
#include "engine/facts.hpp"
#include "engine/manifests.hpp"
#include "engine/offline_world.hpp"
#include "engine/reconciler.hpp"
#include "kube/conditions.hpp"
#include "persistence/work_queue.hpp"
#include "common/http_client.hpp"
#include "support.hpp"

using namespace stowage;
using namespace stowage::engine;

namespace {

constexpr std::chrono::milliseconds kRevalidate = std::chrono::minutes(10);

// Settled and Ready: the outcome asks to come back after the revalidate period.
bool ready(const Outcome& out) { return out.kind == Outcome::Done && out.requeue_after == kRevalidate; }

struct Rig {
  test::fs::path dir;
  boost::asio::io_context io;
  boost::asio::thread_pool pool{2};
  persistence::WorkQueue queue{nullptr, [] { return std::int64_t{0}; }};
  OfflineWorld world{nullptr, {}, "/manifests", queue, true};
  http::Client http{io.get_executor()};
  BackendFactory backends;
  FactBook facts{nullptr, {}};
  persistence::Fingerprinter fp;
  Reconciler reconciler;

  explicit Rig(const std::string& name, std::chrono::milliseconds revalidate = kRevalidate)
      : dir(test::temp_dir(name)),
        backends(pool, LocalSettings{dir / "root", {}}, http, CloudSettings{}),
        fp(persistence::Fingerprinter::load_or_create(dir).value()),
        reconciler(world, backends, facts, fp, ReconcilerOptions{"v9.9.9", nullptr, revalidate}) {
    test::fs::create_directories(dir / "root");  // local.root exists: it is the administrator's
  }
  ~Rig() { pool.join(); }

  void apply(const std::string& yaml) {
    auto contents = parse_manifest_text("test.yaml", yaml);
    INFO((contents.problems.empty() ? std::string() : contents.problems.front()));
    REQUIRE(contents.problems.empty());
    for (auto& s : contents.secrets) world.secret_upserted(s.object);
    for (auto& s : contents.storages) world.storage_upserted(s.object);
  }

  Outcome reconcile(const std::string& name, const std::string& ns = "demo", ReconcileRequest request = {}) {
    auto f = boost::asio::co_spawn(io, reconciler.reconcile({ns, name}, request), boost::asio::use_future);
    io.restart();
    io.run();
    return f.get();
  }

  // The names of the storages queued since the last call (the queue is drained).
  std::set<std::string> queued() {
    std::set<std::string> names;
    while (auto row = queue.claim()) {
      names.insert(row->key.name);
      queue.complete(row->key);
    }
    return names;
  }

  kube::BackupStorageStatus status(const std::string& name, const std::string& ns = "demo") {
    auto found = world.get({ns, name});
    REQUIRE(found);
    return found->object.status;
  }

  const kube::Condition* condition(const std::string& name, std::string_view type, const std::string& ns = "demo") {
    static kube::BackupStorageStatus keep;
    keep = status(name, ns);
    return kube::find_condition(keep.conditions, type);
  }
};

// A local storage created at a given time (the order decides which of two overlapping ones wins).
std::string local_at(const std::string& name, const std::string& host_path, const std::string& policy,
                     const std::string& created) {
  std::string yaml = test::local_storage(name, host_path, policy);
  auto at = yaml.find("  namespace: demo\n");
  return yaml.insert(at, "  creationTimestamp: \"" + created + "\"\n");
}

const char* kValidMeta =
    "apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\ncreationTimestamp: \"2020-01-01T00:00:00Z\"\n"
    "operatorVersion: v0.0.1\n";

std::string s3(const std::string& name, const std::string& secret) {
  return "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: " + name +
         ", namespace: demo}\nspec:\n  storage:\n    provider: s3\n    s3: {endpoint: http://127.0.0.1:9, bucket: b, "
         "secretName: " + secret + "}\n";
}

}  // namespace

TEST_CASE("a local storage is initialized: metadata.yaml written and both rules of the phase hold") {
  Rig rig("local-ready");
  rig.apply(test::local_storage("local", "/data/one"));
  auto out = rig.reconcile("local");
  CHECK(out.kind == Outcome::Done);
  CHECK(ready(out));
  auto file = rig.dir / "root/data/one/metadata.yaml";
  REQUIRE(test::fs::exists(file));
  std::string text = test::read_file(file);
  CHECK_THAT(text, Catch::StartsWith("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\n"));
  CHECK_THAT(text, Catch::Contains("operatorVersion: v9.9.9"));
  auto st = rig.status("local");
  CHECK(st.phase == "Ready");
  const auto* init = kube::find_condition(st.conditions, kube::kConditionBackendInitialized);
  REQUIRE(init);
  CHECK(init->status == "True");
  CHECK(init->reason == "BackendInitializationSucceeded");
  CHECK(init->message == "Successfully initialized backend.");
  CHECK(init->observed_generation == 1);
  CHECK_FALSE(kube::find_condition(st.conditions, kube::kConditionBackendSecretFound));
}

TEST_CASE("an unchanged, remembered storage does not touch its backend again, a spec change does") {
  Rig rig("facts");
  rig.apply(test::local_storage("local", "/data/one"));
  rig.reconcile("local");
  auto file = rig.dir / "root/data/one/metadata.yaml";
  test::fs::remove(file);
  rig.reconcile("local");
  CHECK_FALSE(test::fs::exists(file));  // remembered: no backend call at all
  rig.apply(test::local_storage("local", "/data/one", "WipeOut"));  // spec change: generation 2
  rig.reconcile("local");
  CHECK(test::fs::exists(file));
  CHECK(rig.condition("local", kube::kConditionBackendInitialized)->observed_generation == 2);
}

TEST_CASE("an existing metadata.yaml is kept, and an invalid one is reported and left alone") {
  Rig rig("existing");
  test::write_file(rig.dir / "root/data/keep/metadata.yaml",
                   "apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\ncreationTimestamp: "
                   "\"2020-01-01T00:00:00Z\"\noperatorVersion: v0.0.1\n");
  test::write_file(rig.dir / "root/data/bad/metadata.yaml", "hello: [\n");
  rig.apply(test::local_storage("keep", "/data/keep") + "---\n" + test::local_storage("bad", "/data/bad"));
  CHECK(ready(rig.reconcile("keep")));
  CHECK_THAT(test::read_file(rig.dir / "root/data/keep/metadata.yaml"), Catch::Contains("2020-01-01T00:00:00Z"));
  auto out = rig.reconcile("bad");
  CHECK(out.kind == Outcome::Permanent);
  CHECK(rig.status("bad").phase == "NotReady");
  CHECK_THAT(rig.condition("bad", kube::kConditionBackendInitialized)->message,
             Catch::Contains("not a valid BackendMeta") && Catch::Contains("left untouched"));
  CHECK(test::read_file(rig.dir / "root/data/bad/metadata.yaml") == "hello: [\n");
}

TEST_CASE("bad specs end NotReady with a reason that says how to fix them") {
  Rig rig("bad-specs");
  rig.apply(
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: noprov, namespace: demo}\n"
      "spec: {storage: {}}\n---\n"
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: ftp, namespace: demo}\n"
      "spec: {storage: {provider: ftp}}\n---\n"
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: nolocal, namespace: demo}\n"
      "spec: {storage: {provider: local}}\n---\n"
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: novolume, namespace: demo}\n"
      "spec: {storage: {provider: local, local: {mountPath: /x}}}\n");
  struct Case {
    const char* name;
    const char* says;
  } cases[] = {{"noprov", "spec.storage.provider is not set"},
               {"ftp", "\"ftp\" is not supported: use one of local, s3, gcs, azure"},
               {"nolocal", "spec.storage.local is missing"},
               {"novolume", "has no volume source"}};
  for (const auto& c : cases) {
    INFO(c.name);
    auto out = rig.reconcile(c.name);
    CHECK(out.kind == Outcome::Permanent);
    CHECK(rig.status(c.name).phase == "NotReady");
    const auto* init = rig.condition(c.name, kube::kConditionBackendInitialized);
    REQUIRE(init);
    CHECK(init->status == "False");
    CHECK(init->reason == "BackendInitializationFailed");
    CHECK_THAT(init->message, Catch::Contains(c.says));
  }
}

TEST_CASE("secrets: missing, incomplete, not Base64, then complete") {
  Rig rig("secrets");
  rig.apply(s3("s3", "creds"));
  auto out = rig.reconcile("s3");
  CHECK(out.kind == Outcome::Permanent);
  const auto* found = rig.condition("s3", kube::kConditionBackendSecretFound);
  REQUIRE(found);
  CHECK(found->status == "False");
  CHECK(found->reason == "BackendSecretNotAvailable");
  CHECK_THAT(found->message, Catch::Contains("demo/creds not found") && Catch::Contains("AWS_SECRET_ACCESS_KEY"));
  CHECK(rig.status("s3").phase == "NotReady");

  rig.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: demo}\nstringData: {AWS_ACCESS_KEY_ID: x}\n");
  rig.reconcile("s3");
  CHECK(rig.condition("s3", kube::kConditionBackendSecretFound)->status == "True");
  CHECK(rig.condition("s3", kube::kConditionBackendSecretFound)->message == "Backend secret exists.");
  CHECK(rig.condition("s3", kube::kConditionBackendInitialized)->message ==
        "storage secret demo/creds missing AWS_SECRET_ACCESS_KEY key");

  rig.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: demo}\n"
            "data: {AWS_ACCESS_KEY_ID: eA==, AWS_SECRET_ACCESS_KEY: '***not-base64***'}\n");
  rig.reconcile("s3");
  auto msg = rig.condition("s3", kube::kConditionBackendInitialized)->message;
  CHECK_THAT(msg, Catch::Contains("AWS_SECRET_ACCESS_KEY is not valid Base64"));
  CHECK_THAT(msg, !Catch::Contains("***not-base64***"));

  rig.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: demo}\n"
            "stringData: {AWS_ACCESS_KEY_ID: key, AWS_SECRET_ACCESS_KEY: secret}\n");
  // Now complete: the backend is really called, and a closed port is a transient failure that names it.
  auto out2 = rig.reconcile("s3");
  CHECK(out2.kind == Outcome::Transient);
  CHECK_THAT(rig.condition("s3", kube::kConditionBackendInitialized)->message, Catch::Contains("127.0.0.1:9"));
}

TEST_CASE("an unusable local path ends NotReady with the filesystem's reason") {
  Rig rig("unusable");
  test::write_file(rig.dir / "root/data/file", "not a directory");
  rig.apply(test::local_storage("blocked", "/data/file/sub"));
  auto out = rig.reconcile("blocked");
  CHECK(out.kind != Outcome::Done);
  CHECK(rig.status("blocked").phase == "NotReady");
  CHECK_THAT(rig.condition("blocked", kube::kConditionBackendInitialized)->message, Catch::Contains("/data/file"));
}

TEST_CASE("lastTransitionTime moves only when a condition's status flips") {
  Rig rig("transition");
  rig.apply(test::local_storage("local", "/data/t"));
  rig.reconcile("local");
  auto first = rig.condition("local", kube::kConditionBackendInitialized)->last_transition_time;
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  rig.apply(test::local_storage("local", "/data/t", "WipeOut"));
  rig.reconcile("local");
  CHECK(rig.condition("local", kube::kConditionBackendInitialized)->last_transition_time == first);
}

TEST_CASE("deletion: Delete keeps the data, WipeOut removes it, both forget the storage") {
  Rig rig("delete");
  rig.apply(test::local_storage("keep", "/data/keep", "Delete") + "---\n" +
            test::local_storage("wipe", "/data/wipe", "WipeOut"));
  rig.reconcile("keep");
  rig.reconcile("wipe");
  test::write_file(rig.dir / "root/data/wipe/repo/snap-1", "data");
  rig.world.storage_removed({"demo", "keep"});
  rig.world.storage_removed({"demo", "wipe"});
  CHECK(rig.reconcile("keep").kind == Outcome::Done);
  CHECK(rig.reconcile("wipe").kind == Outcome::Done);
  CHECK(test::fs::exists(rig.dir / "root/data/keep/metadata.yaml"));
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/wipe/metadata.yaml"));
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/wipe/repo/snap-1"));
  CHECK_FALSE(rig.world.get({"demo", "keep"}));
  CHECK_FALSE(rig.world.get({"demo", "wipe"}));
}

TEST_CASE("overlap: the younger of two nested storages is never initialized, and is once the older is gone") {
  Rig rig("overlap");
  rig.apply(local_at("old", "/data/x", "WipeOut", "2026-01-01T00:00:01Z") + "---\n" +
            local_at("young", "/data/x/inner", "Delete", "2026-01-01T00:00:02Z"));
  CHECK(ready(rig.reconcile("old")));
  auto out = rig.reconcile("young");
  CHECK(out.kind == Outcome::Permanent);
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/x/inner/metadata.yaml"));
  CHECK(rig.status("young").phase == "NotReady");
  const auto* c = rig.condition("young", kube::kConditionBackendInitialized);
  REQUIRE(c);
  CHECK(c->status == "False");
  CHECK(c->reason == "StorageLocationConflict");
  CHECK_THAT(c->message, Catch::Contains("lies inside the location of BackupStorage demo/old") &&
                             Catch::Contains("which is older") && Catch::Contains("never wiped"));

  // The older one's WipeOut leaves the younger one's location alone, then the younger one is queued.
  test::write_file(rig.dir / "root/data/x/snap-1", "old's backup");
  test::write_file(rig.dir / "root/data/x/inner/keep-me", "young's data");
  rig.queued();
  rig.world.storage_removed({"demo", "old"});
  CHECK(rig.reconcile("old").kind == Outcome::Done);
  CHECK_FALSE(rig.world.get({"demo", "old"}));
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/x/snap-1"));
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/x/metadata.yaml"));
  CHECK(test::read_file(rig.dir / "root/data/x/inner/keep-me") == "young's data");
  CHECK(rig.queued().count("young"));
  CHECK(ready(rig.reconcile("young")));
  CHECK(test::fs::exists(rig.dir / "root/data/x/inner/metadata.yaml"));
}

TEST_CASE("overlap: a storage in another namespace is not named to the tenant whose storage is refused") {
  Rig rig("overlap-tenants");
  std::string young = local_at("young", "/data/t/inner", "Delete", "2026-01-01T00:00:02Z");
  young.replace(young.find("  namespace: demo\n"), 18, "  namespace: tenant-b\n");
  rig.apply(local_at("secret-project", "/data/t", "Delete", "2026-01-01T00:00:01Z") + "---\n" + young);
  CHECK(ready(rig.reconcile("secret-project")));
  auto out = rig.reconcile("young", "tenant-b");
  CHECK(out.kind == Outcome::Permanent);
  const auto* c = rig.condition("young", kube::kConditionBackendInitialized, "tenant-b");
  REQUIRE(c);
  CHECK(c->reason == "StorageLocationConflict");
  CHECK_THAT(c->message, Catch::Contains("lies inside the location of a BackupStorage in another namespace"));
  CHECK_THAT(c->message, !Catch::Contains("secret-project") && !Catch::Contains("/data/t ") &&
                             !Catch::Contains("demo/"));
}

TEST_CASE("WipeOut deletes nothing where an older storage shares the location or nothing shows ownership") {
  Rig rig("refused");
  rig.apply(local_at("first", "/data/shared", "Delete", "2026-01-01T00:00:01Z") + "---\n" +
            local_at("second", "/data/shared", "WipeOut", "2026-01-01T00:00:02Z") + "---\n" +
            local_at("foreign", "/data/foreign", "WipeOut", "2026-01-01T00:00:03Z"));
  CHECK(ready(rig.reconcile("first")));
  CHECK_FALSE(ready(rig.reconcile("second")));
  test::write_file(rig.dir / "root/data/shared/snap-1", "first's backup");

  // The younger one at the same place: deleted without touching the older one's data.
  rig.world.storage_removed({"demo", "second"});
  CHECK(rig.reconcile("second").kind == Outcome::Done);
  CHECK_FALSE(rig.world.get({"demo", "second"}));
  CHECK(test::fs::exists(rig.dir / "root/data/shared/snap-1"));
  CHECK(test::fs::exists(rig.dir / "root/data/shared/metadata.yaml"));

  // A directory whose metadata.yaml is missing, then one whose metadata.yaml is not a BackendMeta.
  for (std::string meta : {"", "hello: [\n"}) {
    INFO("metadata.yaml: " << (meta.empty() ? "missing" : meta));
    rig.apply(local_at("foreign", "/data/foreign", "WipeOut", "2026-01-01T00:00:03Z"));
    test::fs::remove_all(rig.dir / "root/data/foreign");
    test::write_file(rig.dir / "root/data/foreign/backup", "not ours to delete");
    if (!meta.empty()) test::write_file(rig.dir / "root/data/foreign/metadata.yaml", meta);
    rig.world.storage_removed({"demo", "foreign"});
    CHECK(rig.reconcile("foreign").kind == Outcome::Done);
    CHECK_FALSE(rig.world.get({"demo", "foreign"}));
    CHECK(test::read_file(rig.dir / "root/data/foreign/backup") == "not ours to delete");
  }
}

TEST_CASE("a WipeOut that fails keeps the object, reports WipeOut=False with what to do, and succeeds later") {
  Rig rig("wipe-fails");
  rig.apply(test::local_storage("stuck", "/data/p/stuck", "WipeOut"));
  CHECK(ready(rig.reconcile("stuck")));
  // A path component turns into a file: the wipe cannot reach the directory (ENOTDIR, permanent).
  test::fs::remove_all(rig.dir / "root/data/p");
  test::write_file(rig.dir / "root/data/p", "a file in the way");
  rig.world.storage_removed({"demo", "stuck"});
  auto out = rig.reconcile("stuck");
  CHECK(out.kind == Outcome::Permanent);
  auto found = rig.world.get({"demo", "stuck"});
  REQUIRE(found);  // the object stays until its data is gone
  CHECK(found->deleting);
  const auto* c = kube::find_condition(found->object.status.conditions, kube::kConditionWipeOut);
  REQUIRE(c);
  CHECK(c->status == "False");
  CHECK(c->reason == "WipeOutFailed");
  CHECK_THAT(c->message, Catch::Contains("failed before removing anything") && Catch::Contains("Not a directory") &&
                             Catch::Contains("deletionPolicy to Delete"));

  // Fixed: the next attempt wipes and the object goes.
  test::fs::remove(rig.dir / "root/data/p");
  test::write_file(rig.dir / "root/data/p/stuck/metadata.yaml", kValidMeta);
  test::write_file(rig.dir / "root/data/p/stuck/snap-1", "data");
  CHECK(rig.reconcile("stuck").kind == Outcome::Done);
  CHECK_FALSE(rig.world.get({"demo", "stuck"}));
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/p/stuck/snap-1"));
}

namespace {

// The offline world, except that reading a Secret fails as an unreachable API server would.
struct UnreachableSecrets final : ReconcileTarget {
  OfflineWorld& world;
  explicit UnreachableSecrets(OfflineWorld& w) : world(w) {}
  std::optional<Lookup> get(const ObjectKey& key) override { return world.get(key); }
  boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey) override {
    co_return Err(TargetError{"reading the Secret: the API server is unreachable", true});
  }
  boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& o) override {
    co_return co_await world.ensure_finalizer(o);
  }
  boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& o,
                                                        kube::BackupStorageStatus st) override {
    co_return co_await world.write_status(o, std::move(st));
  }
  boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& o) override {
    co_return co_await world.deletion_done(o);
  }
  const LocationIndex& locations() const override { return world.locations(); }
};

}  // namespace

TEST_CASE("a WipeOut failing transiently is retried with backoff, and reported from the 5th failure in a row") {
  Rig rig("wipe-transient");
  rig.apply(s3("cloud", "creds") + "  deletionPolicy: WipeOut\n");
  rig.world.storage_removed({"demo", "cloud"});
  UnreachableSecrets target(rig.world);
  Reconciler reconciler(target, rig.backends, rig.facts, rig.fp, ReconcilerOptions{"v9.9.9"});
  auto attempt = [&](int attempts) {
    auto f = boost::asio::co_spawn(rig.io, reconciler.reconcile({"demo", "cloud"}, {false, attempts}),
                                   boost::asio::use_future);
    rig.io.restart();
    rig.io.run();
    return f.get();
  };
  auto wipe_condition = [&]() -> std::optional<kube::Condition> {
    auto found = rig.world.get({"demo", "cloud"});
    REQUIRE(found);
    const auto* c = kube::find_condition(found->object.status.conditions, kube::kConditionWipeOut);
    return c ? std::optional<kube::Condition>(*c) : std::nullopt;
  };
  for (int attempts = 0; attempts < kWipeTransientLimit - 1; ++attempts) {
    INFO("attempt " << attempts + 1);
    CHECK(attempt(attempts).kind == Outcome::Transient);
    CHECK_FALSE(wipe_condition());
  }
  auto fifth = attempt(kWipeTransientLimit - 1);
  CHECK(fifth.kind == Outcome::Permanent);
  auto c = wipe_condition();
  REQUIRE(c);
  CHECK(c->reason == "WipeOutFailed");
  CHECK_THAT(c->message, Catch::Contains("the API server is unreachable") &&
                             Catch::Contains("failed before removing anything"));
  CHECK(rig.world.get({"demo", "cloud"})->deleting);  // kept: its data may still be there
}

namespace {

// The offline world, plus Repositories and Snapshots that use the storage, as KubeWorld reports them:
// `still_there` is what each call of delete_dependents leaves (or `failure`, when set); `calls`
// records the order of the deletion's steps.
struct WithDependents final : ReconcileTarget {
  OfflineWorld& world;
  std::vector<std::string> still_there;
  std::optional<TargetError> failure;
  std::vector<std::string> calls;
  int status_writes = 0;
  explicit WithDependents(OfflineWorld& w) : world(w) {}
  std::optional<Lookup> get(const ObjectKey& key) override { return world.get(key); }
  boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey key) override {
    co_return co_await world.secret(std::move(key));
  }
  boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& o) override {
    co_return co_await world.ensure_finalizer(o);
  }
  boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& o,
                                                        kube::BackupStorageStatus st) override {
    ++status_writes;
    co_return co_await world.write_status(o, std::move(st));
  }
  boost::asio::awaitable<TargetResult<Dependents>> delete_dependents(const kube::BackupStorage&) override {
    calls.push_back("delete_dependents");
    if (failure) co_return Err(*failure);
    co_return Dependents{still_there};
  }
  boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& o) override {
    calls.push_back("deletion_done");
    co_return co_await world.deletion_done(o);
  }
  const LocationIndex& locations() const override { return world.locations(); }
};

}  // namespace

TEST_CASE("deletion waits for the storage's Repositories and Snapshots to go, then wipes and lets it go") {
  Rig rig("dependents");
  rig.apply(test::local_storage("wiped", "/data/wiped", "WipeOut") + "---\n" +
            test::local_storage("kept", "/data/kept", "Delete"));
  CHECK(ready(rig.reconcile("wiped")));
  CHECK(ready(rig.reconcile("kept")));
  test::write_file(rig.dir / "root/data/wiped/snap-1", "backup");
  WithDependents target(rig.world);
  Reconciler reconciler(target, rig.backends, rig.facts, rig.fp, ReconcilerOptions{"v9.9.9"});
  auto attempt = [&](const std::string& name) {
    auto f = boost::asio::co_spawn(rig.io, reconciler.reconcile({"demo", name}), boost::asio::use_future);
    rig.io.restart();
    rig.io.run();
    return f.get();
  };
  auto condition = [&](const std::string& name) -> std::optional<kube::Condition> {
    auto found = rig.world.get({"demo", name});
    REQUIRE(found);
    const auto* c = kube::find_condition(found->object.status.conditions, kube::kConditionRepositoriesDeleted);
    return c ? std::optional<kube::Condition>(*c) : std::nullopt;
  };

  for (const std::string name : {"wiped", "kept"}) {
    INFO(name);
    target.calls.clear();
    target.still_there = {"Snapshot demo/snap-1 (finalizers: kubestash.com/cleanup)",
                          "Repository demo/repo (after its Snapshots)"};
    rig.world.storage_removed({"demo", name});
    auto waiting = attempt(name);
    CHECK(waiting.kind == Outcome::Transient);  // retried with backoff, never in a busy loop
    CHECK_THAT(waiting.error, Catch::Contains("waiting for 2 objects"));
    auto c = condition(name);
    REQUIRE(c);
    CHECK(c->status == "False");
    CHECK(c->reason == "WaitingForRepositories");
    CHECK_THAT(c->message, Catch::Contains("Snapshot demo/snap-1 (finalizers: kubestash.com/cleanup)") &&
                               Catch::Contains("Repository demo/repo"));
    CHECK(rig.world.get({"demo", name})->deleting);  // kept, with its finalizer
    if (name == "wiped") CHECK(test::fs::exists(rig.dir / "root/data/wiped/snap-1"));  // not wiped while they are there
    CHECK(target.calls == std::vector<std::string>{"delete_dependents"});

    // Still waiting for the same ones: the status is not written again.
    int writes = target.status_writes;
    CHECK(attempt(name).kind == Outcome::Transient);
    CHECK(target.status_writes == writes);

    // All gone: the policy is applied and the object goes.
    target.still_there.clear();
    CHECK(attempt(name).kind == Outcome::Done);
    CHECK_FALSE(rig.world.get({"demo", name}));
    CHECK(target.calls.back() == "deletion_done");
  }
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/wiped/snap-1"));  // WipeOut, after its Repositories
  CHECK(test::fs::exists(rig.dir / "root/data/kept/metadata.yaml"));  // Delete keeps the data
}

TEST_CASE("deletion: Repositories that cannot be deleted keep the storage and its data, and say why") {
  Rig rig("dependents-fail");
  rig.apply(test::local_storage("wiped", "/data/wiped", "WipeOut"));
  CHECK(ready(rig.reconcile("wiped")));
  WithDependents target(rig.world);
  target.failure = TargetError{"deleting Repository demo/repo: forbidden (HTTP 403); the controller's ClusterRole "
                               "needs delete on repositories.storage.kubestash.com",
                               false};
  Reconciler reconciler(target, rig.backends, rig.facts, rig.fp, ReconcilerOptions{"v9.9.9"});
  rig.world.storage_removed({"demo", "wiped"});
  auto f = boost::asio::co_spawn(rig.io, reconciler.reconcile({"demo", "wiped"}), boost::asio::use_future);
  rig.io.restart();
  rig.io.run();
  auto out = f.get();
  CHECK(out.kind == Outcome::Permanent);
  auto found = rig.world.get({"demo", "wiped"});
  REQUIRE(found);
  CHECK(found->deleting);
  const auto* c = kube::find_condition(found->object.status.conditions, kube::kConditionRepositoriesDeleted);
  REQUIRE(c);
  CHECK(c->reason == "RepositoryDeletionFailed");
  CHECK_THAT(c->message, Catch::Contains("needs delete on repositories.storage.kubestash.com"));
  CHECK(test::fs::exists(rig.dir / "root/data/wiped/metadata.yaml"));
  CHECK(target.calls == std::vector<std::string>{"delete_dependents"});
}

TEST_CASE("the outcome says when to come back: a Ready storage after the revalidate period, nothing else") {
  SECTION("Ready, with a period: back after it") {
    Rig rig("requeue-ready");
    rig.apply(test::local_storage("local", "/data/one"));
    auto out = rig.reconcile("local");
    CHECK(out.kind == Outcome::Done);
    REQUIRE(out.requeue_after);
    CHECK(*out.requeue_after == kRevalidate);
  }
  SECTION("Ready, with revalidation off: not until something changes") {
    Rig rig("requeue-off", std::chrono::milliseconds(0));
    rig.apply(test::local_storage("local", "/data/one"));
    auto out = rig.reconcile("local");
    CHECK(out.kind == Outcome::Done);
    CHECK_FALSE(out.requeue_after);
  }
  SECTION("a failure: the controller's error policy decides, not the outcome") {
    Rig rig("requeue-failed");
    rig.apply(s3("cloud", "missing"));  // its Secret does not exist
    auto out = rig.reconcile("cloud");
    CHECK(out.kind == Outcome::Permanent);
    CHECK_FALSE(out.requeue_after);
  }
  SECTION("gone: nothing to come back for") {
    Rig rig("requeue-gone");
    auto out = rig.reconcile("nobody");
    CHECK(out.kind == Outcome::Done);
    CHECK_FALSE(out.requeue_after);
  }
}
