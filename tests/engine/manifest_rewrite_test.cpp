// The real `stowage run --manifests` against the ways a manifest gets rewritten in place (the shell
// truncating before the writer writes, `stowage get -o yaml >`, a save cut mid-object), while it
// runs and while it is stopped: a WipeOut storage and its backup files are never touched. And a
// real removal still deletes, after the delete grace and not before.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "engine/manifests.hpp"
#include "support.hpp"

namespace {

using namespace std::chrono_literals;

struct Folder {
  test::fs::path dir, manifests, state, root, saved, log;
  test::fs::path meta, backup1, backup2;
  explicit Folder(const std::string& name)
      : dir(test::temp_dir(name)),
        manifests(dir / "manifests"),
        state(dir / "state"),
        root(dir / "root"),
        saved(dir / "saved.yaml"),
        log(dir / "run.err"),
        meta(root / "data/prod/metadata.yaml"),
        backup1(root / "data/prod/repo-1.bin"),
        backup2(root / "data/prod/repo-2.bin") {
    test::fs::create_directories(root);  // local.root must exist
    test::write_file(saved, test::local_storage("prod", "/data/prod", "WipeOut"));
    test::write_file(manifests / "prod.yaml", test::read_file(saved));
  }

  test::Child run(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"run", "--manifests", manifests.string(), "--state-dir", state.string(),
                                  "--local-root", root.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return test::Child::spawn(args, dir / "run.out", log);
  }
  std::string get_prod() const {
    return test::run({"get", "bs", "prod", "-n", "demo", "--state-dir", state.string()}, dir).out;
  }
  bool ready() const { return get_prod().find(" Ready ") != std::string::npos; }
  bool intact() const {
    return test::fs::exists(meta) && test::fs::exists(backup1) && test::fs::exists(backup2);
  }
  // Up and Ready, with two backup files beside metadata.yaml.
  void ready_with_backups() const {
    REQUIRE(test::eventually([&] { return test::fs::exists(meta) && ready(); }));
    test::write_file(backup1, "snapshot one");
    test::write_file(backup2, "snapshot two");
  }
  void shell(const std::string& command) const {
    INFO(command);
    REQUIRE(std::system(("bash -c '" + command + "'").c_str()) == 0);
  }
  // A few seconds on, nothing was deleted and the storage is still Ready.
  void check_untouched(const char* step) const {
    INFO(step);
    std::this_thread::sleep_for(3s);
    CHECK(intact());
    std::string log_text = test::read_file(log);
    CHECK(log_text.find("deleted") == std::string::npos);
    CHECK(log_text.find("WipeOut") == std::string::npos);
    CHECK(ready());
  }
};

}  // namespace

TEST_CASE("run: a manifest rewritten in place never deletes its storage (default grace)") {
  Folder f("rewrite");
  auto child = f.run();
  f.ready_with_backups();
  const std::string target = (f.manifests / "prod.yaml").string();

  // (a) Truncated by the shell, written half a second later.
  f.shell("(sleep 0.5; cat " + f.saved.string() + ") > " + target);
  f.check_untouched("truncate, pause, write");

  // (b) What `kubectl get bs prod -o yaml > prod.yaml` does, with stowage's own get: the shell
  // truncates before the command runs. What it prints is a manifest the folder takes back.
  f.shell(std::string(STOWAGE_BINARY) + " get bs prod -n demo -o yaml --state-dir " + f.state.string() + " > " + target);
  auto printed = stowage::engine::parse_manifest_text(target, test::read_file(target));
  INFO((printed.problems.empty() ? std::string() : printed.problems.front()));
  CHECK_FALSE(printed.unreadable);
  CHECK(printed.storages.size() == 1);
  f.check_untouched("get -o yaml >");
  auto problems_before = test::count_of(f.log, "prod.yaml:");

  // (c) A save cut mid-object, completed a second later.
  const std::string full = test::read_file(f.saved);
  const auto cut = full.find("kind: BackupStorage") + std::string("kind: BackupStora").size();
  test::write_file(target, full.substr(0, cut));
  std::this_thread::sleep_for(1s);
  std::ofstream(target, std::ios::binary | std::ios::app) << full.substr(cut);
  f.check_untouched("cut mid-object, then completed");
  CHECK(test::count_of(f.log, "kind BackupStora (storage.kubestash.com/v1alpha1) is not handled here") == 1);
  CHECK(test::count_of(f.log, "prod.yaml:") == problems_before + 1);

  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
}

TEST_CASE("run: a manifest truncated while stowage is stopped deletes nothing at the next start") {
  Folder f("rewrite-restart");
  {
    // Re-validation queues the storage again every 500 ms: at the restart that work is replayed
    // at once, and must find the storage alive rather than gone.
    auto child = f.run({"--revalidate-period", "500ms"});
    f.ready_with_backups();
    std::this_thread::sleep_for(1s);
    child.signal(SIGTERM);
    REQUIRE(child.wait(std::chrono::seconds(15)) == 0);
  }
  test::write_file(f.manifests / "prod.yaml", "");
  std::this_thread::sleep_for(1s);  // the queued re-validation is due by now
  auto child = f.run({"--revalidate-period", "500ms"});
  REQUIRE(test::eventually([&] { return test::count_of(f.log, "manifests loaded") == 2; }));
  f.check_untouched("truncated while stopped");

  // Put back: nothing changes; then a real removal while stopped deletes after the grace.
  test::write_file(f.manifests / "prod.yaml", test::read_file(f.saved));
  std::this_thread::sleep_for(1s);
  child.signal(SIGTERM);
  REQUIRE(child.wait(std::chrono::seconds(15)) == 0);
  CHECK(f.intact());
  test::fs::remove(f.manifests / "prod.yaml");
  auto started = std::chrono::steady_clock::now();
  auto again = f.run({"--manifests-delete-grace", "2s"});
  REQUIRE(test::eventually([&] { return !test::fs::exists(f.backup1); }));
  CHECK(std::chrono::steady_clock::now() - started >= 2s);
  CHECK(test::count_of(f.log, "BackupStorage demo/prod no longer in") == 1);
  // The files go first, the log line after them.
  CHECK(test::eventually([&] { return test::count_of(f.log, "demo/prod: deleted; WipeOut") == 1; }));
  again.signal(SIGTERM);
  CHECK(again.wait(std::chrono::seconds(15)) == 0);
}

TEST_CASE("run: removing a manifest deletes its storage after the delete grace, not before") {
  Folder f("rewrite-remove");
  auto child = f.run({"--manifests-delete-grace", "1s"});
  f.ready_with_backups();
  auto removed_at = std::chrono::steady_clock::now();
  test::fs::remove(f.manifests / "prod.yaml");
  REQUIRE(test::eventually([&] { return test::count_of(f.log, "BackupStorage demo/prod no longer in") == 1; }));
  bool early = std::chrono::steady_clock::now() - removed_at < 800ms;
  if (early) CHECK(f.intact());  // (a slow machine may have spent the grace already)
  REQUIRE(test::eventually([&] { return !test::fs::exists(f.backup1) && !test::fs::exists(f.backup2); }));
  CHECK(std::chrono::steady_clock::now() - removed_at >= 1s);
  CHECK(test::eventually([&] { return test::count_of(f.log, "demo/prod: deleted; WipeOut removed") == 1; }));
  CHECK(test::eventually([&] { return f.get_prod().empty(); }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
}
