// RepositoryIndex: Repositories added, changed, moved between two storages and removed, as an
// informer delivers them; which storages each change touches; status.repositories and totalSize.
#include "engine/repositories.hpp"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

using namespace stowage;
using namespace stowage::engine;
namespace json = boost::json;

namespace {

const ObjectKey kA{"backup", "storage-a"};
const ObjectKey kB{"backup", "storage-b"};

kube::Repository repo(const std::string& ns, const std::string& name, const ObjectKey& storage, const std::string& path,
                      const std::string& size = "") {
  json::object spec{{"path", path}, {"storageRef", {{"name", storage.name}, {"namespace", storage.namespace_}}}};
  json::object o{{"apiVersion", "storage.kubestash.com/v1alpha1"},
                 {"kind", "Repository"},
                 {"metadata", {{"name", name}, {"namespace", ns}}},
                 {"spec", spec}};
  if (!size.empty()) o["status"] = {{"size", size}, {"phase", "Ready"}};
  auto parsed = kube::parse_repository(o);
  INFO((parsed.ok() ? std::string() : parsed.error().to_string()));
  REQUIRE(parsed.ok());
  return parsed.value();
}

std::vector<ObjectKey> keys(std::initializer_list<ObjectKey> k) { return k; }

std::vector<std::string> names(const StorageRepositories& s) {
  std::vector<std::string> out;
  for (const auto& r : s.repositories) out.push_back(r.namespace_ + "/" + r.name);
  return out;
}

}  // namespace

TEST_CASE("repositories: an unused storage shows no repositories and no total") {
  RepositoryIndex index;
  auto s = index.status_for(kA);
  CHECK(s.repositories.empty());
  CHECK(s.total_size.empty());
  CHECK(s.problems.empty());
  CHECK(index.remove({"apps", "nothing"}).empty());
}

TEST_CASE("repositories: entries copy the Repository and the total sums the sizes") {
  RepositoryIndex index;
  CHECK(index.upsert(repo("demo", "gcs-demo-repo", kA, "/demo/data", "12.222 MiB")) == keys({kA}));
  auto one = index.status_for(kA);
  REQUIRE(one.repositories.size() == 1);
  const auto& r = one.repositories[0];
  CHECK(r.name == "gcs-demo-repo");
  CHECK(r.namespace_ == "demo");
  CHECK(r.path == "/demo/data");  // spec.path as written
  CHECK(r.size == "12.222 MiB");  // status.size as written
  CHECK(r.synced);
  CHECK(r.error.empty());
  CHECK(one.total_size == "12.222 MiB");  // as in KubeStash's documented example

  CHECK(index.upsert(repo("demo", "second", kA, "/demo/second", "1.500 KiB")) == keys({kA}));
  CHECK(index.upsert(repo("apps", "third", kA, "/apps/third", "1024 B")) == keys({kA}));
  auto three = index.status_for(kA);
  // 12815695 + 1536 + 1024 bytes.
  CHECK(three.total_size == kube::format_size(12815695 + 1536 + 1024));
  CHECK(three.total_size == "12.224 MiB");
  CHECK(names(three) == std::vector<std::string>{"apps/third", "demo/gcs-demo-repo", "demo/second"});
  CHECK(index.status_for(kB).repositories.empty());
}

TEST_CASE("repositories: a Repository without a size yet counts as 0 B") {
  RepositoryIndex index;
  index.upsert(repo("demo", "fresh", kA, "/demo/fresh"));
  auto s = index.status_for(kA);
  REQUIRE(s.repositories.size() == 1);
  CHECK(s.repositories[0].size.empty());
  CHECK(s.total_size == "0 B");
  index.upsert(repo("demo", "old", kA, "/demo/old", "1023 B"));
  CHECK(index.status_for(kA).total_size == "1023 B");
  index.upsert(repo("demo", "fresh", kA, "/demo/fresh", "2 B"));
  CHECK(index.status_for(kA).total_size == "1.001 KiB");  // 1025 bytes
}

TEST_CASE("repositories: totals cross units as KubeStash formats them") {
  RepositoryIndex index;
  index.upsert(repo("demo", "a", kA, "a", "1000 B"));
  index.upsert(repo("demo", "b", kA, "b", "24 B"));
  CHECK(index.status_for(kA).total_size == "1024 B");  // strictly greater than the unit for KiB
  index.upsert(repo("demo", "c", kA, "c", "1 B"));
  CHECK(index.status_for(kA).total_size == "1.001 KiB");
  index.upsert(repo("demo", "d", kA, "d", "1024.000 GiB"));
  CHECK(index.status_for(kA).total_size == "1.000 TiB");
}

TEST_CASE("repositories: a size that does not parse is left out of the total and reported") {
  RepositoryIndex index;
  index.upsert(repo("demo", "good", kA, "good", "2.000 KiB"));
  index.upsert(repo("demo", "odd", kA, "odd", "12 MB"));
  auto s = index.status_for(kA);
  REQUIRE(s.repositories.size() == 2);
  CHECK(s.repositories[1].size == "12 MB");  // shown as the Repository has it
  CHECK(s.repositories[1].error.empty());
  CHECK(s.total_size == "2.000 KiB");
  REQUIRE(s.problems.size() == 1);
  CHECK(s.problems[0].rfind("demo/odd: status.size \"12 MB\" is not a size: unknown unit \"MB\"", 0) == 0);
}

TEST_CASE("repositories: moving a Repository updates both storages") {
  RepositoryIndex index;
  index.upsert(repo("demo", "r1", kA, "/r1", "1 B"));
  index.upsert(repo("demo", "r2", kA, "/r2", "2 B"));
  index.upsert(repo("demo", "r3", kB, "/r3", "4 B"));
  CHECK(index.status_for(kA).total_size == "3 B");
  CHECK(index.status_for(kB).total_size == "4 B");

  auto moved = repo("demo", "r1", kB, "/r1", "1 B");
  CHECK(index.storages_affected(moved) == keys({kA, kB}));
  CHECK(index.upsert(moved) == keys({kA, kB}));
  CHECK(names(index.status_for(kA)) == std::vector<std::string>{"demo/r2"});
  CHECK(names(index.status_for(kB)) == std::vector<std::string>{"demo/r1", "demo/r3"});
  CHECK(index.status_for(kA).total_size == "2 B");
  CHECK(index.status_for(kB).total_size == "5 B");
  CHECK(index.storages_affected(moved) == keys({kB}));  // now indexed where it points

  // Moving the last Repository off a storage leaves it empty, with no total.
  CHECK(index.upsert(repo("demo", "r2", kB, "/r2", "2 B")) == keys({kA, kB}));
  CHECK(index.status_for(kA).repositories.empty());
  CHECK(index.status_for(kA).total_size.empty());
  CHECK(index.status_for(kB).total_size == "7 B");
}

TEST_CASE("repositories: only visible changes touch a storage") {
  RepositoryIndex index;
  auto r = repo("demo", "r", kA, "/r", "1.000 MiB");
  CHECK(index.upsert(r) == keys({kA}));
  CHECK(index.upsert(r).empty());  // the same again (a resync)
  auto later = r;
  later.status.last_backup_time = "2025-01-01T00:00:00Z";
  later.status.snapshot_count = 9;
  later.metadata.resource_version = "42";
  CHECK(index.upsert(later).empty());  // nothing a storage shows
  later.status.size = "2.000 MiB";
  CHECK(index.upsert(later) == keys({kA}));
  later.spec.path = "/elsewhere";
  CHECK(index.upsert(later) == keys({kA}));
  CHECK(index.status_for(kA).repositories[0].path == "/elsewhere");
}

TEST_CASE("repositories: removing a Repository touches the storage it used") {
  RepositoryIndex index;
  index.upsert(repo("demo", "r1", kA, "/r1", "1 B"));
  index.upsert(repo("other", "r1", kA, "/other", "2 B"));  // same name, another namespace
  CHECK(index.size() == 2);
  CHECK(index.remove({"demo", "r1"}) == keys({kA}));
  CHECK(index.remove({"demo", "r1"}).empty());  // already gone (a relist's late DELETED)
  CHECK(names(index.status_for(kA)) == std::vector<std::string>{"other/r1"});
  CHECK(index.status_for(kA).total_size == "2 B");
  CHECK(index.remove({"other", "r1"}) == keys({kA}));
  CHECK_FALSE(index.contains({"other", "r1"}));
  CHECK(index.status_for(kA).total_size.empty());
  CHECK(index.size() == 0);
}

TEST_CASE("repositories: storageRef without namespace means the Repository's namespace") {
  RepositoryIndex index;
  json::value o = json::parse(R"({"apiVersion":"storage.kubestash.com/v1alpha1","kind":"Repository",
      "metadata":{"name":"r","namespace":"backup"},"spec":{"storageRef":{"name":"storage-a"},"path":"/r"}})");
  auto parsed = kube::parse_repository(o);
  REQUIRE(parsed.ok());
  CHECK(index.upsert(parsed.value()) == keys({kA}));
  CHECK(names(index.status_for(kA)) == std::vector<std::string>{"backup/r"});
  // Storages with the same name in other namespaces are other storages.
  index.upsert(repo("apps", "r", ObjectKey{"apps", "storage-a"}, "/r", "1 B"));
  CHECK(index.status_for(kA).repositories.size() == 1);
  CHECK(index.status_for(ObjectKey{"apps", "storage-a"}).total_size == "1 B");
}

TEST_CASE("repositories: the status writes as KubeStash's RepositoryInfo") {
  RepositoryIndex index;
  index.upsert(repo("demo", "gcs-demo-repo", kA, "/demo/data", "12.222 MiB"));
  auto s = index.status_for(kA);
  kube::BackupStorageStatus status;
  status.phase = "Ready";
  status.repositories = s.repositories;
  status.total_size = s.total_size;
  json::value written = kube::status_to_json(status);
  CHECK(written.at("totalSize") == "12.222 MiB");
  CHECK(written.at("repositories") ==
        json::parse(R"([{"name":"gcs-demo-repo","namespace":"demo","path":"/demo/data","size":"12.222 MiB",
                         "synced":true}])"));
  auto back = kube::parse_status(written);
  REQUIRE(back.ok());
  CHECK(back.value().repositories.size() == 1);
  CHECK(back.value().total_size == "12.222 MiB");
}
