// KubeCacheMirror — the informers' caches in a real state store (SQLite in a temp folder), across
// "restarts" (the store closed and opened again): what a run wrote the next resumes; another scope's
// cache or an incomplete one is cleared and listed afresh; a row that does not parse is left out.
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "engine/kube_cache_mirror.hpp"
#include "persistence/records.hpp"
#include "persistence/sqlite_state_store.hpp"
#include "support.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

constexpr const char* kServer = "https://api.example:6443";
using Names = std::vector<std::string>;

// Both restart steps, with every object collected into its stream's Resume (what KubeSource receives
// one object at a time).
KubeCacheMirror::Loaded load_all(KubeCacheMirror& mirror) {
  KubeCacheMirror::Loaded out = mirror.resume_points();
  mirror.restore_objects(out, [&](const char* resource, const std::string& stream_namespace,
                                  KubeCacheMirror::RestoredObject&& object) {
    auto& streams = resource == std::string_view(KubeCacheMirror::kStorages) ? out.storages : out.secrets;
    streams[stream_namespace].objects.push_back(std::move(object));
  });
  return out;
}

json::value storage(const std::string& name, const std::string& rv, const std::string& ns = "demo") {
  return json::object{{"apiVersion", "storage.kubestash.com/v1alpha1"},
                      {"kind", "BackupStorage"},
                      {"metadata", {{"name", name}, {"namespace", ns}, {"uid", "uid-" + name}, {"resourceVersion", rv}}},
                      {"spec", {{"deletionPolicy", "Delete"}}}};
}

// One run of the controller: the store opened, `work` done with a mirror of `server` and `namespaces`, every write
// committed, the store closed. Returns what the mirror loaded at the start.
KubeCacheMirror::Loaded session(const test::fs::path& dir, const std::string& server,
                                const std::function<void(KubeCacheMirror&, persistence::StateStore&)>& work = {},
                                const Names& namespaces = {}) {
  boost::asio::io_context io;
  auto opened = persistence::SqliteStateStore::open(dir, io.get_executor(), persistence::StoreOptions{});
  REQUIRE(opened.ok());
  auto store = std::move(opened.value());
  KubeCacheMirror mirror(store.get(), server, namespaces);
  auto loaded = load_all(mirror);
  if (work) work(mirror, *store);
  bool durable = false;
  store->when_durable([&] { durable = true; });
  io.run_for(std::chrono::seconds(5));
  REQUIRE(durable);
  return loaded;
}

}  // namespace

TEST_CASE("KubeCacheMirror: what one run wrote, the next resumes from: objects, Secret versions and checkpoints") {
  auto dir = test::temp_dir("mirror-resume");
  auto first = session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.storage_upserted(storage("s1", "101"));
    m.storage_upserted(storage("s2", "102"));
    m.removed(KubeCacheMirror::kStorages, "demo", "s2");
    m.storage_upserted(storage("s1", "103"));  // the newer version wins
    m.secret_upserted("demo", "creds", "104");
    m.checkpoint(KubeCacheMirror::kStorages, "", "105");
    m.checkpoint(KubeCacheMirror::kSecrets, "", "106");
  });
  CHECK_FALSE(first.storages[""].resumed());  // a fresh store: list
  CHECK_FALSE(first.secrets[""].resumed());

  auto second = session(dir, kServer);
  REQUIRE(second.storages[""].resumed());
  CHECK(second.storages[""].resource_version == "105");
  REQUIRE(second.storages[""].objects.size() == 1);
  const auto& s1 = second.storages[""].objects[0];
  CHECK((s1.namespace_ == "demo" && s1.name == "s1" && s1.resource_version == "103"));
  CHECK(s1.object == storage("s1", "103"));
  REQUIRE(second.secrets[""].resumed());
  CHECK(second.secrets[""].resource_version == "106");
  REQUIRE(second.secrets[""].objects.size() == 1);
  CHECK(second.secrets[""].objects[0].name == "creds");
  CHECK(second.secrets[""].objects[0].resource_version == "104");
  CHECK(second.secrets[""].objects[0].object.is_null());  // a Secret's data is never stored
}

TEST_CASE("KubeCacheMirror: each namespace's stream resumes from its own checkpoint with its own objects") {
  auto dir = test::temp_dir("mirror-namespaces");
  const Names ab{"team-a", "team-b"};
  session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.storage_upserted(storage("s1", "101", "team-a"));
    m.storage_upserted(storage("s2", "102", "team-b"));
    m.secret_upserted("team-b", "creds", "103");
    m.checkpoint(KubeCacheMirror::kStorages, "team-a", "110");
    m.checkpoint(KubeCacheMirror::kStorages, "team-b", "120");
    m.checkpoint(KubeCacheMirror::kSecrets, "team-a", "111");
    m.checkpoint(KubeCacheMirror::kSecrets, "team-b", "121");
  }, ab);
  auto second = session(dir, kServer, {}, ab);
  REQUIRE(second.storages.size() == 2);
  CHECK(second.storages["team-a"].resource_version == "110");
  CHECK(second.storages["team-b"].resource_version == "120");
  REQUIRE(second.storages["team-a"].objects.size() == 1);
  CHECK(second.storages["team-a"].objects[0].name == "s1");
  REQUIRE(second.storages["team-b"].objects.size() == 1);
  CHECK(second.storages["team-b"].objects[0].name == "s2");
  CHECK(second.secrets["team-a"].resource_version == "111");
  CHECK(second.secrets["team-a"].objects.empty());
  CHECK(second.secrets["team-b"].resource_version == "121");
  CHECK(second.secrets["team-b"].objects.size() == 1);

  // team-b leaves the list, team-c joins: team-a resumes, team-c lists, team-b's rows go.
  auto third = session(dir, kServer, {}, {"team-a", "team-c"});
  CHECK(third.storages["team-a"].resumed());
  CHECK(third.storages["team-a"].objects.size() == 1);
  CHECK_FALSE(third.storages["team-c"].resumed());
  CHECK(third.storages.count("team-b") == 0);
  // ... and its checkpoint with them: served again, team-b lists afresh instead of resuming over nothing.
  auto fourth = session(dir, kServer, {}, ab);
  CHECK(fourth.storages["team-a"].resumed());
  CHECK_FALSE(fourth.storages["team-b"].resumed());
  CHECK(fourth.storages["team-b"].objects.empty());
  CHECK_FALSE(fourth.secrets["team-b"].resumed());
  CHECK(fourth.secrets["team-b"].objects.empty());
}

TEST_CASE("KubeCacheMirror: a single-namespace run's checkpoint (before lists) is taken over by that namespace") {
  auto dir = test::temp_dir("mirror-legacy");
  // What a version serving one namespace wrote: the checkpoint under the resource's own key.
  session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore& store) {
    m.storage_upserted(storage("s1", "101", "team-a"));
    store.put(persistence::KubeCheckpoint{KubeCacheMirror::kStorages, std::string(kServer) + " namespace=team-a", "105"});
  }, {"team-a"});
  auto upgraded = session(dir, kServer, {}, {"team-a", "team-b"});
  CHECK(upgraded.storages["team-a"].resource_version == "105");
  REQUIRE(upgraded.storages["team-a"].objects.size() == 1);
  CHECK_FALSE(upgraded.storages["team-b"].resumed());
  // Taken over for good: the next run resumes from the namespace's own key.
  auto again = session(dir, kServer, {}, {"team-a", "team-b"});
  CHECK(again.storages["team-a"].resource_version == "105");
  CHECK(again.storages["team-a"].objects.size() == 1);
}

TEST_CASE("KubeCacheMirror: an all-namespaces cache is not resumed by a list of namespaces, nor the reverse") {
  auto dir = test::temp_dir("mirror-all-to-list");
  session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.storage_upserted(storage("s1", "101", "team-a"));
    m.checkpoint(KubeCacheMirror::kStorages, "", "105");
  });
  auto listed = session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.storage_upserted(storage("s2", "106", "team-a"));
    m.checkpoint(KubeCacheMirror::kStorages, "team-a", "107");
  }, {"team-a"});
  CHECK_FALSE(listed.storages["team-a"].resumed());
  CHECK(listed.storages["team-a"].objects.empty());
  auto all = session(dir, kServer);
  CHECK_FALSE(all.storages[""].resumed());
  CHECK(all.storages[""].objects.empty());
}

TEST_CASE("KubeCacheMirror: another scope's cache is neither resumed nor kept") {
  auto dir = test::temp_dir("mirror-scope");
  session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.storage_upserted(storage("s1", "101"));
    m.secret_upserted("demo", "creds", "102");
    m.checkpoint(KubeCacheMirror::kStorages, "", "103");
    m.checkpoint(KubeCacheMirror::kSecrets, "", "104");
  });
  auto other = session(dir, "https://other.example:6443");
  CHECK_FALSE(other.storages[""].resumed());
  CHECK(other.storages[""].objects.empty());
  CHECK_FALSE(other.secrets[""].resumed());
  CHECK(other.secrets[""].objects.empty());
  // Cleared, not just skipped: the first scope lists afresh too.
  auto back = session(dir, kServer);
  CHECK_FALSE(back.storages[""].resumed());
  CHECK(back.storages[""].objects.empty());
  CHECK_FALSE(back.secrets[""].resumed());
}

TEST_CASE("KubeCacheMirror: a resource whose listing never completed is cleared, while the other resumes") {
  auto dir = test::temp_dir("mirror-incomplete");
  session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.storage_upserted(storage("s1", "101"));
    m.checkpoint(KubeCacheMirror::kStorages, "", "102");
    m.secret_upserted("demo", "creds", "103");  // no Secret checkpoint: the listing was cut short
    m.checkpoint(KubeCacheMirror::kSecrets, "", "");
  });
  auto second = session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore&) {
    m.checkpoint(KubeCacheMirror::kSecrets, "", "104");  // this run's listing of Secrets completes, empty
  });
  CHECK(second.storages[""].resumed());
  CHECK(second.storages[""].objects.size() == 1);
  CHECK_FALSE(second.secrets[""].resumed());
  CHECK(second.secrets[""].objects.empty());
  auto third = session(dir, kServer);
  CHECK(third.secrets[""].resumed());
  CHECK(third.secrets[""].objects.empty());  // the incomplete run's row went with the clear
}

TEST_CASE("KubeCacheMirror: a stored BackupStorage that does not parse is left out of a resume") {
  auto dir = test::temp_dir("mirror-bad-row");
  session(dir, kServer, [](KubeCacheMirror& m, persistence::StateStore& store) {
    m.storage_upserted(storage("s1", "101"));
    store.put(persistence::KubeObjectRecord{KubeCacheMirror::kStorages, "demo", "broken", "102", "{\"metadata\":"});
    m.checkpoint(KubeCacheMirror::kStorages, "", "103");
  });
  auto second = session(dir, kServer);
  REQUIRE(second.storages[""].objects.size() == 1);
  CHECK(second.storages[""].objects[0].name == "s1");
}

TEST_CASE("KubeCacheMirror without a store persists and resumes nothing") {
  KubeCacheMirror mirror(nullptr, kServer, {});
  mirror.storage_upserted(storage("s1", "101"));
  mirror.secret_upserted("demo", "creds", "102");
  mirror.checkpoint(KubeCacheMirror::kStorages, "", "103");
  mirror.removed(KubeCacheMirror::kSecrets, "demo", "creds");
  auto loaded = load_all(mirror);
  CHECK_FALSE(loaded.storages[""].resumed());
  CHECK(loaded.storages[""].objects.empty());
  CHECK_FALSE(loaded.secrets[""].resumed());
}
