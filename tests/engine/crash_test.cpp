// kill -9 at random moments while 200 storages are being initialized; after restarts all of
// them end Ready, every metadata.yaml is valid and was written once, and the store is intact.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <regex>

#include "support.hpp"

namespace {

std::uint64_t inode_of(const test::fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? st.st_ino : 0;
}

}  // namespace

TEST_CASE("kill -9 loses nothing and writes nothing twice", "[crash]") {
  constexpr int kStorages = 200;
  auto dir = test::temp_dir("crash");
  auto manifests = dir / "manifests", state = dir / "state", root = dir / "root";
  test::fs::create_directories(root);
  for (int f = 0; f < 10; ++f) {
    std::string text;
    for (int i = f * 20; i < (f + 1) * 20; ++i)
      text += test::local_storage("s" + std::to_string(i), "/data/s" + std::to_string(i)) + "---\n";
    test::write_file(manifests / ("batch-" + std::to_string(f) + ".yaml"), text);
  }
  auto log = dir / "stowage.log";
  std::vector<std::string> args{"run",          "--manifests", manifests.string(), "--state-dir",
                                state.string(), "--local-root", root.string(),     "--log-file",
                                log.string(),   "--workers",   "2",                "--local-io-threads", "1"};
  auto meta = [&](int i) { return root / ("data/s" + std::to_string(i)) / "metadata.yaml"; };

  std::map<int, std::uint64_t> first_inode;
  auto remember_inodes = [&] {
    for (int i = 0; i < kStorages; ++i)
      if (auto ino = inode_of(meta(i)); ino && !first_inode.count(i)) first_inode[i] = ino;
  };
  std::mt19937 rng(std::random_device{}());
  auto present = [&] {
    int n = 0;
    for (int i = 0; i < kStorages; ++i) n += test::fs::exists(meta(i)) ? 1 : 0;
    return n;
  };
  int kills = 0, mid_work_kills = 0;
  // Kill at random moments while work is under way: after a random amount of new progress, plus
  // a random sub-millisecond-to-few-millisecond jitter, so kills land between any two steps.
  for (int round = 0; round < 40 && present() < kStorages; ++round) {
    int before = present();
    int target = before + std::uniform_int_distribution<int>(1, 25)(rng);
    auto child = test::Child::spawn(args, dir / "out", dir / "err");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (present() < target && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(0, 3000)(rng)));
    child.kill9();
    ++kills;
    int after = present();
    if (after > 0 && after < kStorages) ++mid_work_kills;
    remember_inodes();
  }
  INFO("kill -9 rounds: " << kills << ", mid-work: " << mid_work_kills);
  CHECK(mid_work_kills >= 3);
  // The last run is left to finish, then stopped cleanly (once it is up: a signal that arrives
  // before a program's main() runs kills any program).
  auto started_before = test::count_of(log, "manifests loaded");
  auto child = test::Child::spawn(args, dir / "out", dir / "err");
  REQUIRE(test::eventually([&] { return test::count_of(log, "manifests loaded") > started_before; }));
  bool all = test::eventually(
      [&] {
        for (int i = 0; i < kStorages; ++i)
          if (!test::fs::exists(meta(i))) return false;
        auto r = test::run({"get", "bs", "-n", "demo", "--state-dir", state.string()}, dir);
        std::size_t ready = 0;
        for (std::size_t p = r.out.find(" Ready "); p != std::string::npos; p = r.out.find(" Ready ", p + 1)) ++ready;
        return ready == kStorages;
      },
      std::chrono::seconds(120));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(20)) == 0);
  REQUIRE(all);
  remember_inodes();

  // Every metadata.yaml is valid and is the one first seen: nothing was replaced.
  for (int i = 0; i < kStorages; ++i) {
    INFO("storage s" << i);
    auto text = test::read_file(meta(i));
    CHECK_THAT(text, Catch::StartsWith("apiVersion: config.kubestash.com/v1alpha1\nkind: BackendMeta\n"
                                       "creationTimestamp: \""));
    CHECK(inode_of(meta(i)) == first_inode[i]);
  }
  // And the log says each was created at most once across all runs.
  std::string logs = test::read_file(log);
  std::map<std::string, int> created;
  std::regex re("created (\\S+/metadata\\.yaml)");
  for (auto it = std::sregex_iterator(logs.begin(), logs.end(), re); it != std::sregex_iterator(); ++it)
    ++created[(*it)[1]];
  for (const auto& [path, n] : created) {
    INFO(path);
    CHECK(n == 1);
  }
  CHECK(created.size() <= kStorages);
  CHECK(kills >= 3);
  // At least one restart found queued work from the run it replaced, and replayed it.
  CHECK_THAT(logs, Catch::Contains("replaying"));
  // The store is intact.
  FILE* p = ::popen(("sqlite3 " + (state / "state.db").string() + " 'PRAGMA integrity_check'").c_str(), "r");
  REQUIRE(p);
  char buf[64] = {};
  REQUIRE(std::fgets(buf, sizeof buf, p));
  ::pclose(p);
  CHECK(std::string(buf) == "ok\n");
}
