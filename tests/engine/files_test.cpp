// The files the real binary makes, under umask 000 (the case: 0777 state directory, 0644
// log): the state directory 0700 (its missing parents 0755), state.db and its -wal and -shm,
// fingerprint.key and the lock 0600, the log file 0600; warnings for an existing state directory
// or log file open to others; and temp files left by a kill -9 in an initialized storage's
// directory removed at its next reconcile (`stowage run`) and by `stowage init-volume`.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <chrono>

#include "support.hpp"

namespace {

mode_t permissions(const test::fs::path& p) {
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) return 07777;  // "no such file" never matches a mode below
  return st.st_mode & 07777;
}

void set_age(const test::fs::path& path, std::chrono::seconds age) {
  const auto when = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - age);
  struct timespec times[2] = {{when, 0}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
}

struct Env {
  test::fs::path dir, state, root, manifests, log;
  explicit Env(const std::string& name, const std::string& state_below = "state")
      : dir(test::temp_dir(name)),
        state(dir / state_below),
        root(dir / "root"),
        manifests(dir / "manifests"),
        log(dir / "stowage.log") {
    test::fs::create_directories(manifests);
    test::fs::create_directories(root);
    test::write_file(manifests / "a.yaml", test::local_storage("a", "/data/a"));
  }

  // `stowage run` on the manifest folder, started with umask `mask`.
  test::Child run(mode_t mask, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"run",        "--manifests", manifests.string(), "--state-dir", state.string(),
                                  "--local-root", root.string(), "--log-file",     log.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    const mode_t previous = ::umask(mask);  // the child inherits it at fork
    auto child = test::Child::spawn(args, dir / "run.out", dir / "run.err");
    ::umask(previous);
    return child;
  }

  bool ready() const {
    auto r = test::run({"get", "bs", "a", "-n", "demo", "--state-dir", state.string()}, dir);
    return r.out.find("Ready") != std::string::npos && r.out.find("NotReady") == std::string::npos;
  }
};

}  // namespace

TEST_CASE("under umask 000 the state directory is 0700, its files and the log file 0600") {
  Env env("umask", "deep/er/state");  // two missing parents
  auto child = env.run(0);
  REQUIRE(test::eventually([&] { return env.ready(); }));
  LAZY_INFO(test::read_file(env.log));
  CHECK(permissions(env.state) == 0700);
  CHECK(permissions(env.dir / "deep") == 0755);
  CHECK(permissions(env.dir / "deep/er") == 0755);
  for (const char* name : {"state.db", "state.db-wal", "state.db-shm", "fingerprint.key", "stowage.lock"}) {
    INFO(name);
    CHECK(permissions(env.state / name) == 0600);
  }
  CHECK(permissions(env.log) == 0600);
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
  const std::string log = test::read_file(env.log);
  CHECK(log.find("has mode") == std::string::npos);  // nothing to warn about in what it made itself
}

TEST_CASE("an existing state directory or log file open to others is warned about, and left as it is") {
  Env env("wide");
  test::fs::create_directories(env.state);
  ::chmod(env.state.c_str(), 0755);
  test::write_file(env.log, "");
  ::chmod(env.log.c_str(), 0644);
  auto child = env.run(022);
  REQUIRE(test::eventually([&] { return env.ready(); }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
  const std::string log = test::read_file(env.log);
  INFO(log);
  CHECK_THAT(log, Catch::Contains("the state directory " + env.state.string() + " has mode 0755") &&
                      Catch::Contains("run chmod 700 " + env.state.string()));
  CHECK_THAT(log, Catch::Contains("the log file " + env.log.string() + " has mode 0644") &&
                      Catch::Contains("run chmod 600 " + env.log.string()));
  CHECK(permissions(env.state) == 0755);  // the admin's choice: warned about, not changed
  CHECK(permissions(env.log) == 0644);
}

TEST_CASE("a log file named by a dangling symlink is created no wider than 0600 under umask 000") {
  // An existing name is the admin's and is followed (a symlink on purpose, /dev/stdout); the file
  // made through a dangling one is still private.
  Env env("log-symlink");
  const auto elsewhere = env.dir / "elsewhere.log";
  test::fs::create_symlink(elsewhere, env.log);
  auto child = env.run(0);
  REQUIRE(test::eventually([&] { return env.ready(); }));
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
  CHECK(test::fs::is_symlink(env.log));
  CHECK(permissions(elsewhere) == 0600);
  CHECK_THAT(test::read_file(elsewhere), Catch::Contains("manifests loaded"));
}

TEST_CASE("a temp file left by a kill -9 in an initialized storage's directory goes at its next reconcile") {
  Env env("stale-temp");
  auto child = env.run(022, {"--revalidate-period", "300ms"});
  REQUIRE(test::eventually([&] { return env.ready(); }));
  const auto volume = env.root / "data/a";
  REQUIRE(test::fs::exists(volume / "metadata.yaml"));
  // What a kill -9 between the temp file and its rename leaves, an hour ago; one being written now;
  // and a symlink named like a temp pointing outside the volume.
  const auto stale = volume / ".metadata.yaml.tmp-0123456789abcdef";
  const auto young = volume / ".metadata.yaml.tmp-fedcba9876543210";
  const auto link = volume / ".metadata.yaml.tmp-x";
  const auto target = env.dir / "outside";
  test::write_file(stale, "apiVersion: config.kube");
  test::write_file(young, "apiVersion: config.kube");
  test::write_file(target, "not yours");
  set_age(stale, std::chrono::hours(1));
  set_age(target, std::chrono::hours(1));
  test::fs::create_symlink(target, link);
  set_age(link, std::chrono::hours(1));

  CHECK(test::eventually([&] { return !test::fs::exists(stale); }, std::chrono::seconds(10)));
  CHECK(test::fs::exists(young));
  CHECK(test::fs::is_symlink(link));
  CHECK(test::read_file(target) == "not yours");
  child.signal(SIGTERM);
  CHECK(child.wait(std::chrono::seconds(15)) == 0);
}

TEST_CASE("init-volume on an initialized volume removes a stale temp file and keeps metadata.yaml") {
  auto dir = test::temp_dir("init-volume-temp");
  const auto volume = dir / "volume";
  test::fs::create_directories(volume);
  auto first = test::run({"init-volume", "--path", volume.string()}, dir);
  INFO(first.out << first.err);
  REQUIRE(first.code == 0);
  const std::string meta = test::read_file(volume / "metadata.yaml");
  const auto stale = volume / ".metadata.yaml.tmp-0123456789abcdef";
  const auto young = volume / ".metadata.yaml.tmp-fedcba9876543210";
  test::write_file(stale, "apiVersion");
  test::write_file(young, "apiVersion");
  set_age(stale, std::chrono::minutes(2));

  auto again = test::run({"init-volume", "--path", volume.string()}, dir);
  INFO(again.out << again.err);
  CHECK(again.code == 0);
  CHECK_THAT(again.out, Catch::StartsWith("kept "));
  CHECK_FALSE(test::fs::exists(stale));
  CHECK(test::fs::exists(young));
  CHECK(test::read_file(volume / "metadata.yaml") == meta);
}
