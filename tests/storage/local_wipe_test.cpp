// LocalBackend::wipe and local_fs::Wipe on a real filesystem: the never-wipe set (/, the local root,
// system directories judged as real paths and as paths under the root, kernel filesystems, the
// protected paths, also through a bind mount), ownership (missing or invalid metadata.yaml), nested
// storages and plan.keep left in place, metadata.yaml removed last (an immutable directory makes a
// removal fail mid-way), a 3,000-deep tree under RLIMIT_NOFILE 256, mount points left in place, a
// directory swapped during the wipe, and the progress hook. Every refusal is checked to delete nothing.
// Mounts run in forked children with a mount namespace of their own (the tests run as root).
#include <catch2/catch.hpp>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "storage/local_backend.hpp"
#include "storage/local_fs.hpp"
#include "storage/metadata.hpp"
#include "local_test_support.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::exit_code_of_child;
using stowage::storage::testing::read_file;
using stowage::storage::testing::run;
using stowage::storage::testing::TempDir;
using stowage::storage::testing::write_file;
namespace fs = std::filesystem;

namespace {

const std::string& kBody = stowage::storage::testing::kMetadataBody;

using Harness = stowage::storage::testing::LocalHarness;

// A storage's data: a valid metadata.yaml, files and a sub-directory.
void plant(const fs::path& dir) {
  fs::create_directories(dir / "repo");
  write_file(dir / "metadata.yaml", kBody);
  write_file(dir / "backup", "precious");
  write_file(dir / "repo" / "snapshot", "precious");
}

bool planted_intact(const fs::path& dir) {
  return read_file(dir / "metadata.yaml") == kBody && read_file(dir / "backup") == "precious" &&
         read_file(dir / "repo" / "snapshot") == "precious";
}

std::string describe(const WipeReport& r) {
  if (r.refused) return "refused " + r.refused->code + ": " + r.refused->message;
  if (r.error) return "error " + r.error->code + ": " + r.error->message;
  std::string out = "done, removed " + std::to_string(r.removed);
  for (const auto& left : r.left) out += "; left " + left;
  return out;
}

bool refused_protected(const WipeReport& r) {
  return r.refused && r.refused->code == "ProtectedLocation" && !r.refused->transient && r.removed == 0 &&
         r.refused->message.find("nothing was deleted") != std::string::npos;
}

// Sets or clears FS_IMMUTABLE_FL on a directory; false where the filesystem has no such flag.
bool set_immutable(const fs::path& dir, bool on) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  int flags = 0;
  bool ok = ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
  flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
  ok = ok && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
  ::close(fd);
  return ok;
}

// In a child: a private mount namespace, so that mounts vanish with it. False when not allowed.
bool private_mounts() {
  return ::unshare(CLONE_NEWNS) == 0 && ::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
}

// `depth` nested directories "d" below `dir`, each holding a file "f"; built through fds, since the
// path is longer than PATH_MAX.
void build_deep_tree(const fs::path& dir, int depth) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  for (int i = 0; i < depth; ++i) {
    REQUIRE(::mkdirat(fd, "d", 0755) == 0);
    int next = ::openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(next >= 0);
    ::close(fd);
    fd = next;
    int file = ::openat(fd, "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    REQUIRE(file >= 0);
    ::close(file);
  }
  ::close(fd);
}

// Removes a tree of any depth (TempDir's remove_all stops at PATH_MAX), one fd per level.
void remove_tree_at(int parent, const char* name) {
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    ::unlinkat(parent, name, 0);
    return;
  }
  std::vector<std::string> names;
  if (DIR* d = ::fdopendir(::dup(fd))) {
    while (const dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
    ::closedir(d);
  }
  for (const auto& n : names) remove_tree_at(fd, n.c_str());
  ::close(fd);
  ::unlinkat(parent, name, AT_REMOVEDIR);
}

}  // namespace

TEST_CASE("wipe refuses / and the local root itself, deleting nothing") {
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root";
  plant(root);

  auto slash = run(h.io, h.backend("/", "/").wipe({}));  // (no /metadata.yaml is ever created here)
  INFO(describe(slash));
  CHECK(refused_protected(slash));
  CHECK_THAT(slash.refused->message, Catch::StartsWith("refusing to wipe /: ") && Catch::Contains("sub-directory"));

  for (const fs::path& dir : {root, root / ".", root / "x" / ".."}) {
    auto wiped = run(h.io, h.backend(root, dir).wipe({}));
    INFO(describe(wiped));
    CHECK(refused_protected(wiped));
    CHECK_THAT(wiped.refused->message, Catch::Contains("local root") && Catch::Contains("sub-directory"));
  }
  // The same root spelled through a symlink: still the root.
  fs::create_directory_symlink(root, tmp.path() / "root-link");
  auto linked = run(h.io, h.backend(tmp.path() / "root-link", tmp.path() / "root-link").wipe({}));
  INFO(describe(linked));
  CHECK(refused_protected(linked));
  CHECK(planted_intact(root));
}

TEST_CASE("wipe refuses system directories, as real paths and as paths under the local root") {
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root";
  // Under the root these would be the node's /etc, /var (holding /var/lib/kubelet), /usr, /proc/x, /dev/x.
  for (const char* rel : {"etc", "var", "var/lib", "var/lib/kubelet", "usr", "lib64", "run",
                          "proc/1", "sys/fs", "dev/shm"}) {
    const fs::path dir = root / rel;
    plant(dir);
    auto wiped = run(h.io, h.backend(root, dir).wipe({}));
    INFO(rel << ": " << describe(wiped));
    CHECK(refused_protected(wiped));
    CHECK(planted_intact(dir));
  }
  // Real system paths (they hold no metadata.yaml, so only the rule's code tells the rule ran first).
  for (const char* dir : {"/etc", "/usr", "/var", "/var/lib/kubelet", "/proc/self", "/sys/kernel", "/dev/shm", "/boot"}) {
    auto wiped = run(h.io, h.backend("/", dir).wipe({}));
    INFO(dir << ": " << describe(wiped));
    CHECK(refused_protected(wiped));
  }
  // Not a system directory: /usr/local/x or R/usr-data is an ordinary place.
  plant(root / "usr-data");
  auto ordinary = run(h.io, h.backend(root, root / "usr-data").wipe({}));
  INFO(describe(ordinary));
  CHECK(ordinary.done());
}

TEST_CASE("wipe refuses a protected path, what lies inside it, and what holds it") {
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", state = root / "a" / "state";
  plant(state);
  plant(state / "inner");
  plant(root / "a");  // holds the state directory
  fs::create_directory_symlink(state, root / "state-link");
  for (const fs::path& dir : {state, state / "inner", root / "a"}) {
    auto wiped = run(h.io, h.backend(root, dir, false, {state}).wipe({}));
    INFO(dir.string() << ": " << describe(wiped));
    CHECK(refused_protected(wiped));
    CHECK_THAT(wiped.refused->message, Catch::Contains(state.string()));
  }
  CHECK(planted_intact(state));
  CHECK(planted_intact(state / "inner"));
  CHECK(planted_intact(root / "a"));

  SECTION("protected paths are compared by identity too: a bind mount of one is refused") {
    fs::create_directories(root / "alias");
    fs::create_directories(root / "alias-of-parent");
    int code = exit_code_of_child([&] {
      if (!private_mounts()) return 77;
      if (::mount(state.c_str(), (root / "alias").c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
      if (::mount((root / "a").c_str(), (root / "alias-of-parent").c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
      Harness child;
      int failures = 0;
      if (!refused_protected(run(child.io, child.backend(root, root / "alias", false, {state}).wipe({})))) failures |= 1;
      if (!refused_protected(run(child.io, child.backend(root, root / "alias-of-parent", false, {state}).wipe({}))))
        failures |= 2;
      if (!refused_protected(run(child.io, child.backend(root, root / "alias" / "inner", false, {state}).wipe({}))))
        failures |= 4;
      return failures;
    });
    if (code == 77) {
      WARN("skipped: mount(2) is not allowed here (bind mounts need CAP_SYS_ADMIN in a mount namespace)");
      return;
    }
    INFO("child exit code (bits: 1 bind of the state dir, 2 bind of its parent, 4 inside the bind)");
    CHECK(code == 0);
    CHECK(planted_intact(state));
    CHECK(planted_intact(state / "inner"));
    CHECK(planted_intact(root / "a"));
  }
}

TEST_CASE("wipe refuses without a valid metadata.yaml of the directory's own, deleting nothing") {
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path(), dir = root / "s";
  fs::create_directories(dir / "repo");
  write_file(dir / "repo" / "data", "theirs");
  auto backend = h.backend(root, dir);

  auto missing = run(h.io, backend.wipe({}));
  INFO(describe(missing));
  REQUIRE(missing.refused.has_value());
  CHECK(missing.refused->code == "NotOwned");
  CHECK_THAT(missing.refused->message, Catch::Contains((dir / "metadata.yaml").string()));

  write_file(dir / "metadata.yaml", "apiVersion: config.kubestash.com/v1alpha1\nkind: Foo\n");
  auto foreign = run(h.io, backend.wipe({}));
  INFO(describe(foreign));
  REQUIRE(foreign.refused.has_value());
  CHECK(foreign.refused->code == "InvalidMetadata");
  CHECK_THAT(foreign.refused->message, Catch::Contains("kind is \"Foo\""));

  fs::remove(dir / "metadata.yaml");
  fs::create_directory(dir / "metadata.yaml");
  auto as_dir = run(h.io, backend.wipe({}));
  REQUIRE(as_dir.refused.has_value());
  CHECK(as_dir.refused->code == "InvalidMetadata");

  CHECK(read_file(dir / "repo" / "data") == "theirs");
  CHECK(fs::is_directory(dir / "metadata.yaml"));

  auto absent = run(h.io, h.backend(root, root / "absent").wipe({}));
  REQUIRE(absent.refused.has_value());
  CHECK(absent.refused->code == "NotOwned");
  CHECK_FALSE(fs::exists(root / "absent"));
}

TEST_CASE("wipe leaves nested storages and plan.keep in place, with the directories on the way") {
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path(), dir = root / "s";
  plant(dir);
  plant(dir / "nested");                       // a valid metadata.yaml: another storage
  plant(dir / "deep" / "er" / "nested");       // also below levels that are otherwise removed
  write_file(dir / "deep" / "mine", "x");
  fs::create_directories(dir / "invalid");     // an invalid metadata.yaml is just a file
  write_file(dir / "invalid" / "metadata.yaml", "kind: Foo\n");
  fs::create_directories(dir / "team-a" / "repo");
  write_file(dir / "team-a" / "repo" / "data", "theirs");
  fs::create_directories(dir / "x" / "team-b");
  write_file(dir / "x" / "team-b" / "data", "theirs");
  write_file(dir / "x" / "mine", "x");

  auto wiped = run(h.io, h.backend(root, dir).wipe(WipePlan{{"team-a", "./x/team-b/", "absent/team-c"}}));
  INFO(describe(wiped));
  REQUIRE(wiped.done());
  std::set<std::string> left(wiped.left.begin(), wiped.left.end());
  CHECK(left == std::set<std::string>{(dir / "nested").string() + ": another storage's metadata.yaml",
                                      (dir / "deep" / "er" / "nested").string() + ": another storage's metadata.yaml",
                                      (dir / "team-a").string() + ": another storage's location",
                                      (dir / "x" / "team-b").string() + ": another storage's location"});
  CHECK(wiped.removed == 6);  // backup, repo/snapshot, deep/mine, invalid/metadata.yaml, x/mine, metadata.yaml
  CHECK(planted_intact(dir / "nested"));
  CHECK(planted_intact(dir / "deep" / "er" / "nested"));
  CHECK(read_file(dir / "team-a" / "repo" / "data") == "theirs");
  CHECK(read_file(dir / "x" / "team-b" / "data") == "theirs");
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  CHECK(names == std::set<std::string>{"nested", "deep", "team-a", "x"});
  CHECK_FALSE(fs::exists(dir / "deep" / "mine"));
  CHECK_FALSE(fs::exists(dir / "x" / "mine"));
}

TEST_CASE("wipe refuses a plan whose locations are not inside the directory, deleting nothing") {
  Harness h;
  TempDir tmp;
  const fs::path dir = tmp.path() / "s";
  plant(dir);
  for (const char* keep : {"../other", "/abs", "", ".", "a/../../b"}) {
    auto wiped = run(h.io, h.backend(tmp.path(), dir).wipe(WipePlan{{"fine", keep}}));
    INFO("keep \"" << keep << "\": " << describe(wiped));
    CHECK(refused_protected(wiped));
  }
  CHECK(planted_intact(dir));
}

TEST_CASE("metadata.yaml goes last: a removal failing mid-way leaves it, and a retry finishes") {
  Harness h;
  TempDir tmp;
  const fs::path dir = tmp.path() / "s";
  plant(dir);
  fs::create_directories(dir / "frozen" / "d");
  for (int i = 0; i < 5; ++i) write_file(dir / "frozen" / "d" / std::to_string(i), "x");
  fs::remove(dir / "backup");
  fs::remove_all(dir / "repo");
  // "frozen" cannot lose entries: d's files go, then removing d itself fails with EPERM.
  if (!set_immutable(dir / "frozen", true)) {
    WARN("skipped: cannot set the immutable flag on " << dir / "frozen" << " (" << std::strerror(errno) << ")");
    return;
  }
  auto backend = h.backend(tmp.path(), dir);
  auto failed = run(h.io, backend.wipe({}));
  set_immutable(dir / "frozen", false);
  INFO(describe(failed));
  REQUIRE(failed.error.has_value());
  CHECK(failed.error->code == "PermissionDenied");
  CHECK_FALSE(failed.error->transient);
  CHECK_THAT(failed.error->message, Catch::StartsWith("cannot remove directory " + (dir / "frozen" / "d").string()));
  CHECK(failed.removed == 5);
  CHECK(read_file(dir / "metadata.yaml") == kBody);

  auto retried = run(h.io, backend.wipe({}));
  INFO(describe(retried));
  REQUIRE(retried.done());
  CHECK(retried.removed == 1);
  CHECK(fs::is_empty(dir));
}

TEST_CASE("a 3,000-deep tree is wiped completely with RLIMIT_NOFILE 256") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "s";
  fs::create_directories(dir);
  write_file(dir / "metadata.yaml", kBody);
  build_deep_tree(dir, 3000);
  int code = exit_code_of_child([&] {
    struct rlimit limit {256, 256};
    if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) return 90;
    Harness h;
    auto wiped = run(h.io, h.backend(tmp.path(), dir).wipe({}));
    if (!wiped.done()) return wiped.error && wiped.error->code == "TooManyOpenFiles" ? 2 : 1;
    if (wiped.removed != 3001) return 3;
    return fs::is_empty(dir) ? 0 : 4;
  });
  int root = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  remove_tree_at(root, "d");  // whatever is left of a failed run
  ::close(root);
  INFO("child exit code (1 failed, 2 EMFILE, 3 wrong count, 4 not empty, 90 setrlimit)");
  CHECK(code == 0);
}

TEST_CASE("mount points inside are left in place and reported, nothing on them touched") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "s", elsewhere = tmp.path() / "elsewhere";
  plant(dir);
  fs::create_directories(dir / "tmpfs");
  fs::create_directories(dir / "repo" / "bind");
  write_file(dir / "bound-file", "placeholder");
  fs::create_directories(elsewhere);
  write_file(elsewhere / "data", "theirs");
  write_file(tmp.path() / "file", "theirs too");
  int code = exit_code_of_child([&] {
    if (!private_mounts()) return 77;
    if (::mount("tmpfs", (dir / "tmpfs").c_str(), "tmpfs", 0, "size=1m") != 0) return 77;
    if (::mount(elsewhere.c_str(), (dir / "repo" / "bind").c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
    if (::mount((tmp.path() / "file").c_str(), (dir / "bound-file").c_str(), nullptr, MS_BIND, nullptr) != 0) return 77;
    write_file(dir / "tmpfs" / "data", "on tmpfs");
    Harness h;
    auto wiped = run(h.io, h.backend(tmp.path(), dir).wipe({}));
    int failures = 0;
    if (!wiped.done()) return 64;
    std::set<std::string> left(wiped.left.begin(), wiped.left.end());
    if (left != std::set<std::string>{(dir / "tmpfs").string() + ": a mount point; left in place",
                                      (dir / "repo" / "bind").string() + ": a mount point; left in place",
                                      (dir / "bound-file").string() + ": a mount point; left in place"})
      failures |= 1;
    if (read_file(dir / "tmpfs" / "data") != "on tmpfs") failures |= 2;
    if (read_file(elsewhere / "data") != "theirs" || read_file(tmp.path() / "file") != "theirs too") failures |= 4;
    if (wiped.removed != 3 || fs::exists(dir / "backup") || fs::exists(dir / "repo" / "snapshot")) failures |= 8;
    if (fs::exists(dir / "metadata.yaml")) failures |= 16;
    return failures;
  });
  if (code == 77) {
    WARN("skipped: mount(2) is not allowed here (tmpfs and bind mounts need CAP_SYS_ADMIN in a mount namespace)");
    return;
  }
  INFO("child exit code (bits: 1 left list, 2 tmpfs data, 4 bind data, 8 own data, 16 metadata.yaml; 64 not done)");
  CHECK(code == 0);
  CHECK(read_file(elsewhere / "data") == "theirs");
  CHECK(read_file(tmp.path() / "file") == "theirs too");
}

TEST_CASE("a directory swapped for another while closed is detected when re-opened: the wipe stops") {
  TempDir tmp;
  const fs::path dir = tmp.path() / "s";
  fs::create_directories(dir);
  write_file(dir / "metadata.yaml", kBody);
  build_deep_tree(dir, 200);
  LocalBackendOptions options;
  options.root = tmp.path();
  options.directory = dir;
  local_fs::Wipe wipe(options, {});
  // Each step does 64 entries at least; three take the walk more than kWipeOpenDirectories deep, so
  // the first level's fd has been closed.
  for (int i = 0; i < 3; ++i) REQUIRE_FALSE(wipe.step(std::chrono::milliseconds(0)));
  fs::rename(dir / "d", tmp.path() / "moved");
  fs::create_directories(dir / "d");
  write_file(dir / "d" / "newcomer", "not ours to judge");
  while (!wipe.step(std::chrono::milliseconds(0))) {
  }
  const WipeReport& report = wipe.report();
  INFO(describe(report));
  REQUIRE(report.error.has_value());
  CHECK(report.error->code == "ChangedDuringWipe");
  CHECK_FALSE(report.error->transient);
  CHECK_THAT(report.error->message, Catch::StartsWith((dir / "d").string() + " was replaced"));
  CHECK(read_file(dir / "d" / "newcomer") == "not ours to judge");
  CHECK(read_file(dir / "metadata.yaml") == kBody);
  int moved = ::open(tmp.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  remove_tree_at(moved, "moved");
  ::close(moved);
}

TEST_CASE("LocalBackend::wipe awaits the progress hook between steps, with growing counts") {
  Harness h;
  TempDir tmp;
  const fs::path dir = tmp.path() / "s";
  fs::create_directories(dir);
  write_file(dir / "metadata.yaml", kBody);
  build_deep_tree(dir, 300);
  LocalBackendOptions options;
  options.root = tmp.path();
  options.directory = dir;
  options.wipe_step = std::chrono::milliseconds(0);  // a step is then 64 entries
  LocalBackend backend(h.pool, options);
  std::vector<std::size_t> seen;
  backend.on_delete_progress([&](std::size_t removed) -> boost::asio::awaitable<void> {
    seen.push_back(removed);
    co_return;
  });
  auto wiped = run(h.io, backend.wipe({}));
  INFO(describe(wiped));
  REQUIRE(wiped.done());
  CHECK(wiped.removed == 301);
  REQUIRE(seen.size() >= 600 / 64 - 1);  // 300 directories and 300 files, 64 entries a step
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  CHECK(seen.back() < 301);  // the hook runs between steps, never after the last
  CHECK(fs::is_empty(dir));
}
