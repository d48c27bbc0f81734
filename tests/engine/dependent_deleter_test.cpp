// DependentDeleter — a storage's Repositories and their Snapshots deleted against the in-process
// FakeApi (tests/support/fake_api.hpp): uid preconditions, Snapshots matched on spec.repository, a
// Repository only after its Snapshots, objects held by finalizers waited for and named, and the
// 403/404/409 answers.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "engine/dependent_deleter.hpp"
#include "engine/repositories.hpp"
#include "kube/api.hpp"
#include "kube/repository.hpp"
#include "support/fake_api.hpp"
#include "support/run_awaitable.hpp"

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

const std::string kGroup = "/apis/storage.kubestash.com/v1alpha1/namespaces/";
const ObjectKey kStorage{"demo", "s1"};

std::string repositories(const std::string& ns) { return kGroup + ns + "/repositories"; }
std::string snapshots(const std::string& ns) { return kGroup + ns + "/snapshots"; }

json::value repository(const std::string& ns, const std::string& name, const ObjectKey& storage,
                       json::array finalizers = {}) {
  json::object meta{{"name", name}, {"namespace", ns}};
  if (!finalizers.empty()) meta["finalizers"] = std::move(finalizers);
  return json::object{{"apiVersion", "storage.kubestash.com/v1alpha1"},
                      {"kind", "Repository"},
                      {"metadata", std::move(meta)},
                      {"spec", {{"path", "/" + name}, {"storageRef", {{"name", storage.name}, {"namespace", storage.namespace_}}}}}};
}

json::value snapshot(const std::string& ns, const std::string& name, const std::string& repo, json::array finalizers = {}) {
  json::object meta{{"name", name}, {"namespace", ns}};
  if (!finalizers.empty()) meta["finalizers"] = std::move(finalizers);
  return json::object{{"apiVersion", "storage.kubestash.com/v1alpha1"},
                      {"kind", "Snapshot"},
                      {"metadata", std::move(meta)},
                      {"spec", {{"repository", repo}}}};
}

struct Rig {
  boost::asio::io_context io;
  test_support::FakeApi api{io.get_executor()};
  RepositoryIndex index;
  DependentDeleter deleter{api, index};

  // Stores the Repository in the fake and indexes it as the Repository informer would.
  json::value add_repository(json::value object) {
    const std::string ns(object.at("metadata").at("namespace").as_string());
    json::value stored = api.put(repositories(ns), std::move(object));
    auto parsed = kube::parse_repository(stored);
    REQUIRE(parsed.ok());
    index.upsert(parsed.value());
    return stored;
  }

  TargetResult<Dependents> round(const ObjectKey& storage = kStorage) {
    return test_support::run_awaitable(io, deleter.delete_for(storage));
  }

  // The bodies of the DELETE requests on `path`.
  std::vector<json::value> deletes(const std::string& path) const {
    std::vector<json::value> out;
    for (const auto& r : api.requests())
      if (r.verb == "delete" && r.path == path) out.push_back(r.body);
    return out;
  }
};

json::value uid_precondition(const json::value& object) {
  return json::value{{"preconditions", {{"uid", object.at("metadata").at("uid")}}}};
}

}  // namespace

TEST_CASE("DependentDeleter deletes a storage's Repositories and their Snapshots, each with its uid as a precondition") {
  Rig rig;
  auto r1 = rig.add_repository(repository("demo", "r1", kStorage));
  auto r2 = rig.add_repository(repository("backup", "r2", kStorage));
  auto other = rig.add_repository(repository("demo", "r3", {"demo", "s2"}));  // another storage's
  auto snap1 = rig.api.put(snapshots("demo"), snapshot("demo", "r1-a", "r1"));
  auto snap2 = rig.api.put(snapshots("backup"), snapshot("backup", "r2-a", "r2"));
  rig.api.put(snapshots("demo"), snapshot("demo", "r3-a", "r3"));        // of the other storage's Repository
  rig.api.put(snapshots("backup"), snapshot("backup", "x-a", "r1"));     // "r1" in another namespace: not r1's

  auto left = rig.round();
  REQUIRE(left.ok());
  CHECK(left.value().waiting.empty());
  CHECK(rig.deletes(snapshots("demo") + "/r1-a") == std::vector<json::value>{uid_precondition(snap1)});
  CHECK(rig.deletes(snapshots("backup") + "/r2-a") == std::vector<json::value>{uid_precondition(snap2)});
  CHECK(rig.deletes(repositories("demo") + "/r1") == std::vector<json::value>{uid_precondition(r1)});
  CHECK(rig.deletes(repositories("backup") + "/r2") == std::vector<json::value>{uid_precondition(r2)});
  CHECK(rig.api.count("delete") == 4);
  CHECK(rig.api.object(repositories("demo") + "/r3"));
  CHECK(rig.api.object(snapshots("demo") + "/r3-a"));
  CHECK(rig.api.object(snapshots("backup") + "/x-a"));
  CHECK(rig.api.count("list", snapshots("demo")) == 1);  // one listing per namespace
  CHECK(rig.api.count("list", snapshots("backup")) == 1);
}

TEST_CASE("DependentDeleter waits for objects held by finalizers, names them, and deletes nothing twice") {
  Rig rig;
  rig.add_repository(repository("demo", "r1", kStorage, {"kubestash.com/cleanup"}));
  rig.api.put(snapshots("demo"), snapshot("demo", "r1-a", "r1", {"kubestash.com/cleanup", "other.io/hold"}));

  auto first = rig.round();
  REQUIRE(first.ok());
  CHECK(first.value().waiting == std::vector<std::string>{
                                     "Snapshot demo/r1-a (finalizers: kubestash.com/cleanup, other.io/hold)",
                                     "Repository demo/r1 (after its Snapshots)"});
  CHECK(rig.api.count("delete", snapshots("demo") + "/r1-a") == 1);
  CHECK(rig.api.count("delete", repositories("demo") + "/r1") == 0);  // not before its Snapshots

  // The Snapshot now has its deletionTimestamp: waited for, not deleted again.
  auto second = rig.round();
  REQUIRE(second.ok());
  CHECK(second.value().waiting == first.value().waiting);
  CHECK(rig.api.count("delete") == 1);

  // Its finalizers gone, the Repository is deleted, and is held by its own finalizer in turn.
  rig.api.erase(snapshots("demo") + "/r1-a");
  auto third = rig.round();
  REQUIRE(third.ok());
  CHECK(third.value().waiting == std::vector<std::string>{"Repository demo/r1 (finalizers: kubestash.com/cleanup)"});
  CHECK(rig.api.count("delete", repositories("demo") + "/r1") == 1);
}

TEST_CASE("DependentDeleter: an object gone (404) or replaced under its name (409) is gone, and the newcomer is kept") {
  Rig rig;
  auto old_repo = rig.add_repository(repository("demo", "r1", kStorage));
  rig.add_repository(repository("demo", "r2", kStorage));
  // r1 replaced by another object of the name that the index has not heard of; r2 gone meanwhile.
  rig.api.erase(repositories("demo") + "/r1");
  auto newcomer = rig.api.put(repositories("demo"), repository("demo", "r1", kStorage));
  REQUIRE(newcomer.at("metadata").at("uid") != old_repo.at("metadata").at("uid"));
  rig.api.erase(repositories("demo") + "/r2");

  auto left = rig.round();
  REQUIRE(left.ok());
  CHECK(left.value().waiting.empty());
  CHECK(rig.deletes(repositories("demo") + "/r1") == std::vector<json::value>{uid_precondition(old_repo)});
  REQUIRE(rig.api.object(repositories("demo") + "/r1"));
  CHECK(rig.api.object(repositories("demo") + "/r1")->at("metadata").at("uid") == newcomer.at("metadata").at("uid"));
}

TEST_CASE("DependentDeleter: failed requests end the round and say whether to retry, 403 naming the permission") {
  Rig rig;
  rig.add_repository(repository("demo", "r1", kStorage));
  rig.api.put(snapshots("demo"), snapshot("demo", "r1-a", "r1"));
  SECTION("listing the Snapshots is forbidden") {
    rig.api.fail_next("list", snapshots("demo"), test_support::FakeApi::status_error(403, "forbidden"));
    auto left = rig.round();
    REQUIRE_FALSE(left.ok());
    CHECK_FALSE(left.error().transient);
    CHECK_THAT(left.error().message, Catch::Contains("needs list on snapshots.storage.kubestash.com"));
    CHECK(rig.api.count("delete") == 0);
  }
  SECTION("deleting a Snapshot is forbidden") {
    rig.api.fail_next("delete", snapshots("demo") + "/r1-a", test_support::FakeApi::status_error(403, "forbidden"));
    auto left = rig.round();
    REQUIRE_FALSE(left.ok());
    CHECK_FALSE(left.error().transient);
    CHECK_THAT(left.error().message, Catch::Contains("deleting Snapshot demo/r1-a"));
    CHECK_THAT(left.error().message, Catch::Contains("needs delete on snapshots.storage.kubestash.com"));
    CHECK(rig.api.count("delete", repositories("demo") + "/r1") == 0);
  }
  SECTION("the API server is unavailable while deleting the Repository") {
    rig.api.fail_next("delete", repositories("demo") + "/r1", test_support::FakeApi::status_error(503, "unavailable"));
    auto left = rig.round();
    REQUIRE_FALSE(left.ok());
    CHECK(left.error().transient);
    CHECK(rig.api.object(repositories("demo") + "/r1"));
  }
}

TEST_CASE("DependentDeleter: a storage no Repository uses makes no request") {
  Rig rig;
  rig.add_repository(repository("demo", "r3", {"demo", "s2"}));
  auto left = rig.round();
  REQUIRE(left.ok());
  CHECK(left.value().waiting.empty());
  CHECK(rig.api.requests().empty());
}
