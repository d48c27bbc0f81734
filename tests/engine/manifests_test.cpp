// Manifest reading: every bad input ends in a message naming the file and line.
#include <catch2/catch.hpp>

#include <algorithm>

#include "engine/manifests.hpp"
#include "support.hpp"

using namespace stowage::engine;

namespace {
bool any_contains(const std::vector<std::string>& v, const std::string& s) {
  for (const auto& x : v)
    if (x.find(s) != std::string::npos) return true;
  return false;
}
}  // namespace

TEST_CASE("multi-document files with storages, secrets and a List") {
  auto c = parse_manifest_text("a.yaml",
                               test::local_storage("one", "/d/1") + "---\n# a comment only\n---\n" +
                                   "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: demo}\n"
                                   "stringData: {K: v}\n---\n"
                                   "apiVersion: v1\nkind: List\nitems:\n- " +
                                   std::string("{apiVersion: storage.kubestash.com/v1alpha1, kind: BackupStorage, "
                                               "metadata: {name: two}, spec: {storage: {provider: local}}}\n"));
  CHECK(c.problems.empty());
  REQUIRE(c.storages.size() == 2);
  REQUIRE(c.secrets.size() == 1);
  CHECK(c.storages[0].at.where() == "a.yaml:1");
  CHECK(c.storages[1].object.metadata.namespace_ == "default");
}

TEST_CASE("malformed YAML names the file, line and column, and marks the file unreadable") {
  auto c = parse_manifest_text("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: [x\n");
  CHECK(c.unreadable);
  REQUIRE(c.problems.size() == 1);
  CHECK_THAT(c.problems[0], Catch::StartsWith("bad.yaml:") && Catch::Contains("not valid YAML"));
}

TEST_CASE("unknown kinds, missing kinds, bad fields and bad names are reported per document") {
  auto c = parse_manifest_text(
      "m.yaml",
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\n"
      "metadata: {name: nokind}\n---\n"
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: Bad_Name}\n"
      "spec: {storage: {provider: local}}\n---\n"
      "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStorage\nmetadata: {name: typed}\n"
      "spec: {storage: {provider: s3, s3: {bucket: 42, maxConnections: ten}}}\n---\n" +
          test::local_storage("fine", "/d"));
  CHECK(c.unreadable);  // any problem: the file does not say for sure what it holds
  CHECK(c.storages.size() == 1);
  CHECK(any_contains(c.problems, "m.yaml:1: kind Deployment (apps/v1) is not handled"));
  CHECK(any_contains(c.problems, "only BackupStorage (storage.kubestash.com/v1alpha1) and Secret (v1) are read"));
  CHECK(any_contains(c.problems, "m.yaml:5: the document has no kind"));
  CHECK(any_contains(c.problems, "m.yaml:7: BackupStorage: metadata.name"));
  CHECK(any_contains(c.problems, "m.yaml:12: BackupStorage: spec.storage.s3.bucket: expected a string"));
}

TEST_CASE("a file that fails in any way is unreadable, and the objects that parse are still listed") {
  struct Case {
    const char* what;
    std::string text;     // the whole file, or what follows a good storage
    bool after_good;
    const char* problem;  // after "e.yaml:LINE: "
  };
  std::string typed = test::local_storage("typed", "/d/t");
  typed.insert(typed.find("metadata:\n") + 10, "  labels: [oops]\n");
  auto c = GENERATE_COPY(values<Case>({
      {"empty", "", false, "the file holds no document"},
      {"whitespace only", "  \n\n\t\n", false, "the file holds no document"},
      {"comments only", "# nothing yet\n---\n# still nothing\n", false, "the file holds no document"},
      {"cut mid-object", "apiVersion: storage.kubestash.com/v1alpha1\nkind: BackupStora", true,
       "kind BackupStora (storage.kubestash.com/v1alpha1) is not handled here"},
      {"a field of the wrong type", typed, true, "BackupStorage: metadata.labels"},
      {"a document that is not a mapping", "- a\n", true, "a manifest document must be a mapping"},
      {"a document without kind", "metadata: {name: x}\n", true, "the document has no kind"},
      {"a List without items", "apiVersion: v1\nkind: List\n", true, "a List must have `items:`"},
      {"a Secret that does not parse", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: [1]\n", true,
       "Secret: "},
  }));
  INFO(c.what);
  const std::string good = test::local_storage("good", "/d/good") + "---\n";
  int line = c.after_good ? int(std::count(good.begin(), good.end(), '\n')) + 1 : 1;
  auto contents = parse_manifest_text("e.yaml", c.after_good ? good + c.text : c.text);
  CHECK(contents.unreadable);
  INFO((contents.problems.empty() ? std::string() : contents.problems.front()));
  CHECK(any_contains(contents.problems, "e.yaml:" + std::to_string(line) + ": " + c.problem));
  if (c.after_good) {
    REQUIRE(contents.storages.size() == 1);
    CHECK(contents.storages[0].object.metadata.name == "good");
  }
}

TEST_CASE("a clean file, an empty List included, is not unreadable") {
  auto c = parse_manifest_text("ok.yaml", test::local_storage("one", "/d/1") + "---\n# a comment\n");
  CHECK_FALSE(c.unreadable);
  CHECK(c.problems.empty());
  auto list = parse_manifest_text("list.yaml", "apiVersion: v1\nkind: List\nitems: []\n");
  CHECK_FALSE(list.unreadable);
  CHECK(list.storages.empty());
}

TEST_CASE("duplicate names: the first in path order wins, the second is reported with both places") {
  Snapshot snap;
  add_to_snapshot(snap, parse_manifest_text("a.yaml", test::local_storage("dup", "/d/a")));
  add_to_snapshot(snap, parse_manifest_text("b.yaml", test::local_storage("dup", "/d/b")));
  REQUIRE(snap.storages.size() == 1);
  CHECK(snap.storages.begin()->second.object.spec.storage.local->host_path == "/d/a");
  REQUIRE(snap.problems.size() == 1);
  CHECK_THAT(snap.problems[0], Catch::Contains("b.yaml:1") && Catch::Contains("already defined at a.yaml:1"));
}

TEST_CASE("listing a folder: recursive, sorted, hidden entries skipped, a missing folder reported") {
  auto dir = test::temp_dir("list");
  test::write_file(dir / "b.yaml", "");
  test::write_file(dir / "a.yml", "");
  test::write_file(dir / "sub/c.json", "");
  test::write_file(dir / "notes.txt", "");
  test::write_file(dir / "..data/hidden.yaml", "");
  test::write_file(dir / ".hidden.yaml", "");
  std::string err;
  auto files = list_manifest_files(dir, err);
  CHECK(err.empty());
  REQUIRE(files.size() == 3);
  CHECK(files[0].filename() == "a.yml");
  CHECK(files[1].filename() == "b.yaml");
  CHECK(files[2].filename() == "c.json");
  list_manifest_files(dir / "missing", err);
  CHECK_THAT(err, Catch::Contains("does not exist"));
}
