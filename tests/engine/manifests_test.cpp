// Manifest reading: every bad input ends in a message naming the file and line.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>

#include "config/config.hpp"
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
  auto listing = list_manifest_files(dir);
  CHECK(listing.error.empty());
  CHECK(listing.problems.empty());
  REQUIRE(listing.files.size() == 3);
  CHECK(listing.files[0].filename() == "a.yml");
  CHECK(listing.files[1].filename() == "b.yaml");
  CHECK(listing.files[2].filename() == "c.json");
  CHECK(listing.dirs == std::vector<test::fs::path>{dir, dir / "sub"});
  CHECK_THAT(list_manifest_files(dir / "missing").error, Catch::Contains("does not exist"));
}

// Two links to "." made the old recursive listing walk 2^n paths (730 MB after 20 s, never done).
TEST_CASE("links that loop back to a folder already entered are skipped and reported, each once") {
  auto dir = test::temp_dir("list-loops");
  test::write_file(dir / "s.yaml", "");
  test::write_file(dir / "sub/t.yaml", "");
  test::write_file(dir / "other/u.yaml", "");
  test::fs::create_directory_symlink(".", dir / "a");
  test::fs::create_directory_symlink(".", dir / "b");
  test::fs::create_directory_symlink("..", dir / "sub/up");
  test::fs::create_directory_symlink("../other", dir / "sub/again");  // the same folder by another path
  auto started = std::chrono::steady_clock::now();
  auto listing = list_manifest_files(dir);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  CHECK(listing.error.empty());
  // Sub-folders are claimed as their parent is listed: "other" by its own name, so sub/again is the
  // second path to it.
  CHECK(listing.files == std::vector<test::fs::path>{dir / "other/u.yaml", dir / "s.yaml", dir / "sub/t.yaml"});
  REQUIRE(listing.problems.size() == 4);
  CHECK(listing.problems[0] == (dir / "a").string() + ": leads to the folder " + dir.string() +
                                   ", which is already read (a symbolic link loop?): skipped");
  CHECK_THAT(listing.problems[1], Catch::StartsWith((dir / "b").string() + ": leads to the folder " + dir.string()));
  CHECK_THAT(listing.problems[2],
             Catch::StartsWith((dir / "sub/again").string() + ": leads to the folder " + (dir / "other").string()));
  CHECK_THAT(listing.problems[3],
             Catch::StartsWith((dir / "sub/up").string() + ": leads to the folder " + dir.string()));
}

TEST_CASE("the budgets' defaults are the settings' defaults") {
  ManifestBudgets defaults;
  ManifestBudgets configured = budgets_from(stowage::config::Config{});
  CHECK(configured.max_file_size == defaults.max_file_size);
  CHECK(configured.max_documents_per_file == defaults.max_documents_per_file);
  CHECK(configured.max_objects == defaults.max_objects);
  CHECK(configured.max_alias_expansion == defaults.max_alias_expansion);
}

// The old reader took a 148 MB manifest whole, then 1.39 GB to parse it.
TEST_CASE("a file over the size budget is refused from its size, without being read") {
  auto dir = test::temp_dir("size-budget");
  auto huge = dir / "huge.yaml";
  test::write_file(huge, "");
  test::fs::resize_file(huge, std::uintmax_t{8} << 30);  // 8 GiB, sparse: reading it would take all memory
  auto started = std::chrono::steady_clock::now();
  auto c = read_manifest_file(huge);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(1));
  CHECK(c.unreadable);
  CHECK(c.budget_exceeded);
  REQUIRE(c.problems.size() == 1);
  CHECK(c.problems[0] == huge.string() + ": 8589934592 bytes, over manifests.max-file-size (4Mi): the file is not "
                                         "read; split it, or raise --manifests-max-file-size");

  ManifestBudgets small;
  small.max_file_size = 1024;
  test::write_file(dir / "ok.yaml", test::local_storage("ok", "/d/ok"));
  CHECK(read_manifest_file(dir / "ok.yaml", small).storages.size() == 1);
  test::write_file(dir / "big.yaml", test::local_storage("big", "/d/" + std::string(1000, 'x')));
  CHECK_THAT(read_manifest_file(dir / "big.yaml", small).problems.at(0),
             Catch::Contains("over manifests.max-file-size (1Ki)"));
}

TEST_CASE("documents past the per-file budget are not read, and the problem says which setting raises it") {
  ManifestBudgets budgets;
  budgets.max_documents_per_file = 3;
  std::string text;
  for (int i = 1; i <= 5; ++i)
    text += test::local_storage("s" + std::to_string(i), "/d/" + std::to_string(i)) + "---\n";
  auto c = parse_manifest_text("docs.yaml", text, budgets);
  CHECK(c.unreadable);
  CHECK(c.budget_exceeded);
  CHECK_FALSE(c.limited_by_other_files);  // the file alone is over it: reading it again would not help
  CHECK(c.storages.size() == 3);
  REQUIRE(c.problems.size() == 1);
  CHECK_THAT(c.problems[0], Catch::StartsWith("docs.yaml:43:1: more than 3 documents in one file "
                                              "(manifests.max-documents-per-file)") &&
                                Catch::Contains("raise --manifests-max-documents-per-file"));
}

TEST_CASE("objects past the folder's budget are not loaded: the files before take theirs first") {
  ManifestBudgets budgets;
  budgets.max_objects = 4;
  auto dir = test::temp_dir("objects-budget");
  std::string list = "apiVersion: v1\nkind: List\nitems:\n";
  for (int i = 0; i < 3; ++i)
    list += "- {apiVersion: v1, kind: Secret, metadata: {name: s" + std::to_string(i) + ", namespace: demo}}\n";
  test::write_file(dir / "a.yaml", list);
  test::write_file(dir / "b.yaml", test::local_storage("b1", "/d/b1") + "---\n" + test::local_storage("b2", "/d/b2"));
  auto read = read_manifest_files({dir / "a.yaml", dir / "b.yaml"}, budgets);
  REQUIRE(read.size() == 2);
  CHECK_FALSE(read[0].unreadable);
  CHECK(read[0].secrets.size() == 3);
  CHECK(read[1].unreadable);
  CHECK(read[1].budget_exceeded);
  CHECK(read[1].limited_by_other_files);
  REQUIRE(read[1].storages.size() == 1);
  CHECK(read[1].storages[0].object.metadata.name == "b1");
  REQUIRE(read[1].problems.size() == 1);
  CHECK(read[1].problems[0] == (dir / "b.yaml").string() +
                                   ":15: past manifests.max-objects (4 BackupStorages and Secrets for all files "
                                   "together, 1 of them left for this file after the files before it): this object "
                                   "and those after it in the file are not loaded; raise --manifests-max-objects, "
                                   "or keep fewer objects in the folder");

  // One List over the budget on its own stops at the budget too.
  budgets.max_objects = 2;
  auto alone = parse_manifest_text("list.yaml", list, budgets);
  CHECK(alone.secrets.size() == 2);
  CHECK(alone.budget_exceeded);
  CHECK_FALSE(alone.limited_by_other_files);
}

TEST_CASE("alias expansion is budgeted for all files together and names yaml.max-alias-expansion") {
  std::string bomb = "apiVersion: v1\nkind: Secret\nmetadata: {name: laughs, namespace: demo}\n"
                     "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'i'; ++c, ++prev) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 9; ++i) bomb += std::string(i ? ", *" : "*") + prev;
    bomb += "]\n";
  }
  auto c = parse_manifest_text("laughs.yaml", bomb);
  CHECK(c.budget_exceeded);
  CHECK(c.secrets.empty());
  REQUIRE(c.problems.size() == 1);
  CHECK_THAT(c.problems[0], Catch::StartsWith("laughs.yaml:") &&
                                Catch::Contains("YAML aliases here would expand past yaml.max-alias-expansion (4Mi "
                                                "for all files together; an alias bomb?)") &&
                                Catch::Contains("raise --yaml-max-alias-expansion"));

  // What one file's aliases used is taken from what the next may use.
  ManifestBudgets budgets;
  budgets.max_alias_expansion = 4096;
  auto dir = test::temp_dir("alias-budget");
  const std::string labels = "labels: &l {team: a, tier: backup}\n";
  std::string uses = "apiVersion: v1\nkind: Secret\nmetadata: {name: NAME, namespace: demo}\n" + labels + "copies: [";
  for (int i = 0; i < 40; ++i) uses += std::string(i ? ", " : "") + "*l";  // 40 x 63 bytes
  uses += "]\n";
  auto named = [&](const std::string& name) {
    std::string text = uses;
    text.replace(text.find("NAME"), 4, name);
    return text;
  };
  test::write_file(dir / "a.yaml", named("a"));
  test::write_file(dir / "b.yaml", named("b"));
  auto read = read_manifest_files({dir / "a.yaml", dir / "b.yaml"}, budgets);
  CHECK_FALSE(read[0].unreadable);
  CHECK(read[0].alias_bytes > 2048);
  CHECK(read[1].budget_exceeded);
  CHECK(read[1].limited_by_other_files);
  CHECK_THAT(read[1].problems.at(0), Catch::Contains("4Ki for all files together, ") &&
                                         Catch::Contains(" of it left for this file after the files before it"));
}

TEST_CASE("a file reports at most kMaxProblemsPerFile problems, then how many more, then the budget that stopped it") {
  ManifestBudgets budgets;
  budgets.max_documents_per_file = 100;
  std::string text;
  for (int i = 0; i < 150; ++i) text += "kind: ConfigMap\n---\n";
  auto c = parse_manifest_text("junk.yaml", text, budgets);
  REQUIRE(c.problems.size() == kMaxProblemsPerFile + 2);
  CHECK(c.problems[kMaxProblemsPerFile] == "... and 80 more problems in the same file");
  CHECK_THAT(c.problems.back(), Catch::Contains("more than 100 documents"));
}
