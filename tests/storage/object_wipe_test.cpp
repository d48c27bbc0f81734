// wipe_objects() (storage/object_wipe.hpp) over an in-process ObjectStore: the algorithm's rules
// one by one, with every call it makes recorded - which keys it read, listed and handed to delete,
// and in which order. cloud_wipe_test.cpp runs the same rules against moto, Azurite and the GCS
// test server through the real backends.
#include <catch2/catch.hpp>

#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "storage/metadata.hpp"
#include "storage/object_wipe.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::run;

namespace {

namespace asio = boost::asio;

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});
const std::string kInvalid = "apiVersion: v1\nkind: ConfigMap\n";

// A bucket in memory, seen as one storage's directory. Listing pages resume after the last key
// returned (as S3, GCS and Azure do); each call can be made to fail through `fail`.
class FakeStore final : public ObjectStore {
 public:
  explicit FakeStore(std::string dir) : dir_(std::move(dir)) {}

  std::map<std::string, std::string> objects;  // the whole bucket
  std::size_t page_size = 3;
  bool honour_range = true;
  bool bucket_exists = true;
  // Called before every call with ("read-own" | "list" | "read" | "delete", key or token); an
  // error it returns is that call's answer.
  std::function<std::optional<BackendError>(const std::string& call, const std::string& arg)> fail;

  // What the wipe did.
  std::size_t lists = 0;
  std::vector<std::string> reads;
  std::vector<std::string> deleted;  // in order
  std::size_t largest_page = 0;

  std::vector<std::string> keys() const {
    std::vector<std::string> out;
    for (const auto& [key, body] : objects) out.push_back(key);
    return out;
  }

  std::string object_directory() const override { return dir_; }
  std::string object_location(const std::string& key) const override { return "fake://bucket/" + key; }

  asio::awaitable<BackendResult<MetadataState>> read_own_metadata() override {
    if (auto e = failure("read-own", dir_ + "metadata.yaml")) co_return Err(*e);
    MetadataState state;
    auto it = objects.find(dir_ + "metadata.yaml");
    if (it == objects.end()) co_return state;
    state.exists = true;
    state.meta = parse_metadata(it->second, state.invalid_reason);
    co_return state;
  }

  asio::awaitable<BackendResult<ObjectPage>> list_objects(std::string token) override {
    ++lists;
    if (auto e = failure("list", token)) co_return Err(*e);
    ObjectPage page;
    for (auto it = objects.upper_bound(token); it != objects.end(); ++it) {
      if (!it->first.starts_with(dir_)) continue;
      if (page.keys.size() == page_size) {
        page.next = page.keys.back();
        break;
      }
      page.keys.push_back(it->first);
    }
    largest_page = std::max(largest_page, page.keys.size());
    co_return page;
  }

  asio::awaitable<BackendResult<std::optional<std::string>>> read_object(std::string key,
                                                                          std::size_t limit) override {
    reads.push_back(key);
    if (auto e = failure("read", key)) co_return Err(*e);
    auto it = objects.find(key);
    if (it == objects.end()) co_return std::optional<std::string>();
    co_return std::optional<std::string>(honour_range ? it->second.substr(0, limit + 1) : it->second);
  }

  asio::awaitable<DeleteOutcome> delete_objects(std::vector<std::string> keys) override {
    DeleteOutcome outcome;
    for (const auto& key : keys) {
      REQUIRE(key.starts_with(dir_));
      if (auto e = failure("delete", key)) {
        outcome.error = *e;
        co_return outcome;
      }
      outcome.removed += objects.erase(key);
      deleted.push_back(key);
    }
    co_return outcome;
  }

  bool bucket_missing(const BackendError& error) const override { return error.code == "NoBucket"; }

 private:
  std::optional<BackendError> failure(const std::string& call, const std::string& arg) {
    if (!bucket_exists) return BackendError{false, "NoBucket", "no such bucket", std::nullopt};
    return fail ? fail(call, arg) : std::nullopt;
  }

  std::string dir_;
};

struct Harness {
  asio::io_context io;
  std::vector<std::size_t> progress;  // every count the hook was given

  WipeReport wipe(FakeStore& store, WipePlan plan = {}) {
    Backend::DeleteProgress hook = [this](std::size_t removed) -> asio::awaitable<void> {
      progress.push_back(removed);
      co_return;
    };
    return run(io, wipe_objects(store, std::move(plan), std::move(hook)));
  }
};

void put_all(FakeStore& store, const std::vector<std::string>& keys, const std::string& body = "x") {
  for (const auto& key : keys) store.objects[key] = body;
}

}  // namespace

TEST_CASE("object wipe: without metadata.yaml nothing is listed or deleted: refused NotOwned") {
  FakeStore store("backup/demo/");
  put_all(store, {"backup/demo/a", "backup/demo/b/c"});
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.refused);
  CHECK_FALSE(report.error);
  CHECK(report.refused->code == "NotOwned");
  CHECK(report.refused->message.find("fake://bucket/backup/demo/metadata.yaml does not exist") == 0);
  CHECK(report.removed == 0);
  CHECK(store.lists == 0);
  CHECK(store.keys().size() == 2);
}

TEST_CASE("object wipe: an invalid metadata.yaml: refused InvalidMetadata, nothing deleted") {
  FakeStore store("backup/demo/");
  put_all(store, {"backup/demo/a"});
  store.objects["backup/demo/metadata.yaml"] = kInvalid;
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.refused);
  CHECK(report.refused->code == "InvalidMetadata");
  CHECK(report.refused->message.find("is not a valid BackendMeta") != std::string::npos);
  CHECK(store.deleted.empty());
  CHECK(store.keys().size() == 2);
}

TEST_CASE("object wipe: a failure to read metadata.yaml is the error, as classified, and nothing is deleted") {
  FakeStore store("p/");
  put_all(store, {"p/a"});
  store.objects["p/metadata.yaml"] = kBody;
  store.fail = [](const std::string& call, const std::string&) -> std::optional<BackendError> {
    if (call == "read-own") return BackendError{true, "Unavailable", "503", std::nullopt};
    return std::nullopt;
  };
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.error);
  CHECK_FALSE(report.refused);
  CHECK(report.error->transient);
  CHECK(report.error->code == "Unavailable");
  CHECK(store.lists == 0);
  CHECK(store.keys().size() == 2);
}

TEST_CASE("object wipe: everything under the directory goes, metadata.yaml last, neighbours stay") {
  FakeStore store("backup/demo/");
  const std::vector<std::string> inside = {"backup/demo/a",       "backup/demo/b/c",         "backup/demo/m",
                                           "backup/demo/n/o/p",   "backup/demo/repo/snap-1", "backup/demo/z",
                                           "backup/demo/zz/top"};
  const std::vector<std::string> outside = {"backup/demo2/x", "backup/demo2/metadata.yaml", "backup/demo",
                                            "backup/demo.x",  "backup/dem",                 "other/backup/demo/x"};
  put_all(store, inside);
  put_all(store, outside);
  store.objects["backup/demo2/metadata.yaml"] = kBody;
  store.objects["backup/demo/metadata.yaml"] = kBody;
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.done());
  CHECK(report.removed == inside.size() + 1);
  CHECK(report.left.empty());
  auto expected = outside;
  std::sort(expected.begin(), expected.end());
  CHECK(store.keys() == expected);
  REQUIRE_FALSE(store.deleted.empty());
  CHECK(store.deleted.back() == "backup/demo/metadata.yaml");
  CHECK(store.reads.empty());  // no nested metadata.yaml to look at
  // 8 keys, 3 a page: 3 pages, listed twice; the hook after each page of the delete pass.
  CHECK(store.lists == 6);
  CHECK(h.progress == std::vector<std::size_t>{3, 5, 7});
}

TEST_CASE("object wipe: another storage's location below is kept and reported, an invalid metadata.yaml is data") {
  FakeStore store("backup/demo/");
  store.objects["backup/demo/metadata.yaml"] = kBody;
  put_all(store, {"backup/demo/a", "backup/demo/team-b/repo/1", "backup/demo/team-b/repo/2",
                  "backup/demo/team-b/x/metadata.yaml", "backup/demo/team-c/data", "backup/demo/team-b0/data"});
  store.objects["backup/demo/team-b/metadata.yaml"] = kBody;
  store.objects["backup/demo/team-c/metadata.yaml"] = kInvalid;
  store.objects["backup/demo/deep/er/metadata.yaml"] = kBody;
  store.objects["backup/demo/deep/er/x"] = "x";
  store.objects["backup/demo/deep/other"] = "x";
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.done());
  CHECK(report.left == std::vector<std::string>{
                           "fake://bucket/backup/demo/deep/er: another storage's metadata.yaml",
                           "fake://bucket/backup/demo/team-b: another storage's metadata.yaml",
                       });
  CHECK(store.keys() == std::vector<std::string>{"backup/demo/deep/er/metadata.yaml", "backup/demo/deep/er/x",
                                                 "backup/demo/team-b/metadata.yaml", "backup/demo/team-b/repo/1",
                                                 "backup/demo/team-b/repo/2", "backup/demo/team-b/x/metadata.yaml"});
  CHECK(report.removed == 6);  // a, deep/other, team-b0/data, team-c/data, team-c/metadata.yaml, own
  // team-b/x/metadata.yaml sorts after team-b/metadata.yaml: inside a kept location, never read.
  CHECK(store.reads == std::vector<std::string>{"backup/demo/deep/er/metadata.yaml",
                                                "backup/demo/team-b/metadata.yaml",
                                                "backup/demo/team-c/metadata.yaml"});
}

TEST_CASE("object wipe: an outer storage found after an inner one replaces it in `left`") {
  FakeStore store("");
  store.objects["metadata.yaml"] = kBody;
  store.objects["t/a/metadata.yaml"] = kBody;  // sorts before t/metadata.yaml
  store.objects["t/metadata.yaml"] = kBody;
  store.objects["t/a/x"] = "x";
  store.objects["u"] = "x";
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.done());
  CHECK(report.left == std::vector<std::string>{"fake://bucket/t: another storage's metadata.yaml"});
  CHECK(store.keys() == std::vector<std::string>{"t/a/metadata.yaml", "t/a/x", "t/metadata.yaml"});
  CHECK(report.removed == 2);
}

TEST_CASE("object wipe: the plan's kept locations are never deleted, and are reported") {
  FakeStore store("p/");
  store.objects["p/metadata.yaml"] = kBody;
  put_all(store, {"p/a", "p/live/x/1", "p/live/x/2", "p/live/y", "p/live/x0", "p/team/metadata.yaml"});
  Harness h;
  auto report = h.wipe(store, WipePlan{{"live/x", "team"}});
  REQUIRE(report.done());
  CHECK(report.left == std::vector<std::string>{"fake://bucket/p/live/x: another storage's location",
                                                "fake://bucket/p/team: another storage's location"});
  CHECK(store.keys() == std::vector<std::string>{"p/live/x/1", "p/live/x/2", "p/team/metadata.yaml"});
  CHECK(store.reads.empty());  // team/metadata.yaml is inside a kept location already
  CHECK(report.removed == 4);
}

TEST_CASE("object wipe: a plan entry that is not a clean relative path refuses the wipe before any request") {
  for (const std::string bad : {"", "/x", "x/", "a//b", "..", "a/../b", ".", "./a"}) {
    INFO("kept location `" << bad << "`");
    FakeStore store("p/");
    store.objects["p/metadata.yaml"] = kBody;
    store.objects["p/a"] = "x";
    bool called = false;
    store.fail = [&](const std::string&, const std::string&) -> std::optional<BackendError> {
      called = true;
      return std::nullopt;
    };
    Harness h;
    auto report = h.wipe(store, WipePlan{{"ok", bad}});
    REQUIRE(report.refused);
    CHECK(report.refused->code == "InvalidPlan");
    CHECK(report.refused->message.find("`" + bad + "`") != std::string::npos);
    CHECK(report.refused->message.find("nothing was deleted") != std::string::npos);
    CHECK_FALSE(called);
    CHECK(store.keys().size() == 2);
  }
}

TEST_CASE("object wipe: a failing delete stops the wipe with the count so far, metadata.yaml stays, a retry finishes") {
  FakeStore store("p/");
  store.objects["p/metadata.yaml"] = kBody;
  for (int i = 0; i < 10; ++i) store.objects["p/obj-" + std::to_string(i)] = "x";
  int deletes = 0;
  store.fail = [&](const std::string& call, const std::string&) -> std::optional<BackendError> {
    if (call == "delete" && ++deletes > 4) return BackendError{false, "AccessDenied", "denied", std::nullopt};
    return std::nullopt;
  };
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.error);
  CHECK_FALSE(report.refused);
  CHECK(report.error->code == "AccessDenied");
  CHECK(report.removed == 4);
  CHECK(store.objects.count("p/metadata.yaml") == 1);
  CHECK(store.keys().size() == 7);

  store.fail = nullptr;
  auto retry = h.wipe(store);
  REQUIRE(retry.done());
  CHECK(retry.removed == 7);
  CHECK(store.keys().empty());
}

TEST_CASE("object wipe: a failure while looking for other storages deletes nothing") {
  for (const std::string failing : {"list", "read"}) {
    INFO(failing);
    FakeStore store("p/");
    store.objects["p/metadata.yaml"] = kBody;
    put_all(store, {"p/a", "p/b/metadata.yaml", "p/c"});
    store.fail = [&](const std::string& call, const std::string&) -> std::optional<BackendError> {
      if (call == failing) return BackendError{true, "Timeout", "timed out", std::nullopt};
      return std::nullopt;
    };
    Harness h;
    auto report = h.wipe(store);
    REQUIRE(report.error);
    CHECK(report.error->transient);
    CHECK(report.removed == 0);
    CHECK(store.deleted.empty());
  }
}

TEST_CASE("object wipe: a nested metadata.yaml over the size cap is data, even from a store ignoring ranges") {
  for (bool honour_range : {true, false}) {
    FakeStore store("p/");
    store.honour_range = honour_range;
    store.objects["p/metadata.yaml"] = kBody;
    store.objects["p/big/metadata.yaml"] = kBody + "# " + std::string(kMaxNestedMetadataBytes, 'x') + "\n";
    store.objects["p/empty/metadata.yaml"] = "";
    store.objects["p/big/data"] = "x";
    Harness h;
    auto report = h.wipe(store);
    REQUIRE(report.done());
    CHECK(report.left.empty());
    CHECK(store.keys().empty());
    CHECK(report.removed == 4);
  }
}

TEST_CASE("object wipe: a nested metadata.yaml deleted between listing and reading is skipped") {
  FakeStore store("p/");
  store.objects["p/metadata.yaml"] = kBody;
  put_all(store, {"p/gone/metadata.yaml", "p/gone/x"});
  store.fail = [&](const std::string& call, const std::string& key) -> std::optional<BackendError> {
    if (call == "read") store.objects.erase(key);  // someone else deletes it just before the read
    return std::nullopt;
  };
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.done());
  CHECK(store.keys().empty());
  CHECK(report.removed == 2);
}

TEST_CASE("object wipe: an empty prefix wipes the whole bucket except other storages") {
  FakeStore store("");
  store.objects["metadata.yaml"] = kBody;
  store.objects["backup/demo/metadata.yaml"] = kBody;
  put_all(store, {"a", "backup/demo/repo/1", "backup/other/1", "z/z"});
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.done());
  CHECK(store.keys() == std::vector<std::string>{"backup/demo/metadata.yaml", "backup/demo/repo/1"});
  CHECK(report.left == std::vector<std::string>{"fake://bucket/backup/demo: another storage's metadata.yaml"});
  CHECK(report.removed == 4);
}

TEST_CASE("object wipe: a missing bucket has nothing to delete") {
  FakeStore store("p/");
  store.bucket_exists = false;
  Harness h;
  auto report = h.wipe(store);
  CHECK(report.done());
  CHECK(report.removed == 0);
}

TEST_CASE("object wipe: memory and requests scale with pages and nested metadata.yaml, not with objects") {
  FakeStore store("p/");
  store.page_size = 100;
  store.objects["p/metadata.yaml"] = kBody;
  for (int i = 0; i < 5000; ++i) store.objects["p/data/" + std::to_string(100000 + i)] = "x";
  store.objects["p/n1/metadata.yaml"] = kBody;
  store.objects["p/n2/metadata.yaml"] = kInvalid;
  Harness h;
  auto report = h.wipe(store);
  REQUIRE(report.done());
  CHECK(report.removed == 5000 + 2);
  CHECK(store.largest_page <= 100);
  CHECK(store.reads.size() == 2);             // one per nested metadata.yaml
  CHECK(store.lists == 2 * 51);               // 5003 keys, 100 a page, listed twice
  CHECK(h.progress.size() == 51);             // after each page of the delete pass
  CHECK(std::is_sorted(h.progress.begin(), h.progress.end()));
}
