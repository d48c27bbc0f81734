// LocalBackend against real directories: create-only writes (also under a 16-way race), invalid
// metadata kept, NotMounted vs hostPath, WipeOut of an owned directory, the executor the coroutines
// resume on, and the error mapping. Permission and read-only cases run in forked children (the tests
// run as root). Confinement and the wipe's rules have suites of their own (local_confinement_test,
// local_wipe_test).
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cerrno>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include "storage/local_backend.hpp"
#include "storage/local_fs.hpp"
#include "storage/metadata.hpp"
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

const std::string kBody = render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

struct Harness {
  boost::asio::io_context io;
  boost::asio::thread_pool pool{4};
  ~Harness() { pool.join(); }

  LocalBackend backend(const fs::path& dir, bool create_directory = false) {
    LocalBackendOptions options;
    options.directory = dir;
    options.create_directory = create_directory;
    return LocalBackend(pool, std::move(options));
  }
};

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

ino_t inode_of(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_ino;
}

void set_age(const fs::path& path, std::chrono::seconds age) {
  const auto when = std::chrono::system_clock::now() - age;
  struct timespec times[2];
  times[0].tv_sec = times[1].tv_sec = std::chrono::system_clock::to_time_t(when);
  times[0].tv_nsec = times[1].tv_nsec = 0;
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

}  // namespace

TEST_CASE("identity and metadata_location name the absolute directory") {
  Harness h;
  auto backend = h.backend("/data/x/./y/");
  CHECK(backend.identity() == "local:/data/x/y");
  CHECK(backend.metadata_location() == "/data/x/y/metadata.yaml");
  CHECK(h.backend("relative").identity() == "local:" + (fs::current_path() / "relative").string());
}

TEST_CASE("create_metadata creates once, then reports AlreadyExists and leaves the file alone") {
  Harness h;
  TempDir dir;
  auto backend = h.backend(dir.path());
  const fs::path file = dir.path() / "metadata.yaml";

  auto before = run(h.io, backend.read_metadata());
  REQUIRE(before.ok());
  CHECK_FALSE(before.value().exists);

  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(read_file(file) == kBody);
  CHECK((fs::status(file).permissions() & fs::perms::others_write) == fs::perms::none);
  const ino_t inode = inode_of(file);

  auto again = run(h.io, backend.create_metadata(render_metadata({"2030-01-01T00:00:00Z", "v9"})));
  REQUIRE(again.ok());
  CHECK(again.value() == CreateOutcome::AlreadyExists);
  CHECK(read_file(file) == kBody);
  CHECK(inode_of(file) == inode);
  CHECK(names_in(dir.path()) == std::set<std::string>{"metadata.yaml"});

  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().exists);
  REQUIRE(state.value().meta.has_value());
  CHECK(state.value().meta->creation_timestamp == "2025-04-21T12:29:15Z");
  CHECK(state.value().meta->operator_version == "v0.1.0");
  CHECK(state.value().invalid_reason.empty());
}

TEST_CASE("16 concurrent create_metadata calls: exactly one wins and its body is the file") {
  for (int round = 0; round < 10; ++round) {
    Harness h;
    TempDir dir;
    std::vector<LocalBackend> backends;
    for (int i = 0; i < 16; ++i) backends.push_back(h.backend(dir.path()));
    std::vector<std::future<std::optional<BackendResult<CreateOutcome>>>> results;
    for (int i = 0; i < 16; ++i) {
      std::string body = render_metadata({"2025-04-21T12:29:15Z", "v0." + std::to_string(i)});
      results.push_back(stowage::storage::testing::spawn(h.io, backends[i].create_metadata(body)));
    }
    h.io.run();
    std::vector<int> winners;
    for (int i = 0; i < 16; ++i) {
      auto result = std::move(*results[i].get());
      REQUIRE(result.ok());
      if (result.value() == CreateOutcome::Created) winners.push_back(i);
    }
    REQUIRE(winners.size() == 1);
    CHECK(read_file(dir.path() / "metadata.yaml") ==
          render_metadata({"2025-04-21T12:29:15Z", "v0." + std::to_string(winners[0])}));
    CHECK(names_in(dir.path()) == std::set<std::string>{"metadata.yaml"});
  }
}

TEST_CASE("an existing invalid metadata.yaml is reported and never overwritten") {
  Harness h;
  TempDir dir;
  auto backend = h.backend(dir.path());
  const std::string junk = "apiVersion: config.kubestash.com/v1alpha1\nkind: Foo\n";
  write_file(dir.path() / "metadata.yaml", junk);

  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().exists);
  CHECK_FALSE(state.value().meta.has_value());
  CHECK(state.value().invalid_reason == "kind is \"Foo\", expected BackendMeta");

  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::AlreadyExists);
  CHECK(read_file(dir.path() / "metadata.yaml") == junk);

  SECTION("a directory or an oversized file named metadata.yaml is invalid too") {
    fs::remove(dir.path() / "metadata.yaml");
    fs::create_directory(dir.path() / "metadata.yaml");
    auto as_dir = run(h.io, backend.read_metadata());
    REQUIRE(as_dir.ok());
    CHECK(as_dir.value().invalid_reason.find("not a regular file") != std::string::npos);
    fs::remove(dir.path() / "metadata.yaml");
    write_file(dir.path() / "metadata.yaml", kBody + "# " + std::string(2 << 20, 'x') + "\n");
    auto big = run(h.io, backend.read_metadata());
    REQUIRE(big.ok());
    CHECK(big.value().invalid_reason.find("larger than 1 MiB") != std::string::npos);
  }
}

TEST_CASE("a missing mount directory is NotMounted, permanent, and says how to fix it") {
  Harness h;
  TempDir dir;
  const fs::path missing = dir.path() / "not-mounted";
  auto backend = h.backend(missing);

  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE_FALSE(created.ok());
  CHECK(created.error().code == "NotMounted");
  CHECK_FALSE(created.error().transient);
  CHECK(created.error().message ==
        "directory " + missing.string() +
            " does not exist: the volume is not mounted at mountPath; mount it or fix spec.storage.local.mountPath");
  CHECK_FALSE(fs::exists(missing));

  auto state = run(h.io, backend.read_metadata());
  REQUIRE_FALSE(state.ok());
  CHECK(state.error().code == "NotMounted");

  auto access = run(h.io, backend.check_access());
  REQUIRE_FALSE(access.ok());
  CHECK(access.error().code == "NotMounted");

  auto wiped = run(h.io, backend.wipe({}));
  REQUIRE(wiped.refused.has_value());
  CHECK(wiped.refused->code == "NotOwned");
  CHECK(wiped.removed == 0);
  CHECK_FALSE(fs::exists(missing));
}

TEST_CASE("hostPath mode creates nested directories") {
  Harness h;
  TempDir dir;
  const fs::path nested = dir.path() / "a" / "b" / "c";
  auto backend = h.backend(nested, /*create_directory=*/true);

  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK_FALSE(state.value().exists);
  CHECK(run(h.io, backend.check_access()).ok());  // the nearest existing ancestor is writable

  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(read_file(nested / "metadata.yaml") == kBody);
  struct stat st {};
  REQUIRE(::stat((dir.path() / "a").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777 & ~0755) == 0);
  CHECK(run(h.io, backend.check_access()).ok());
}

TEST_CASE("a file where the directory should be is NotADirectory") {
  Harness h;
  TempDir dir;
  write_file(dir.path() / "file", "x");
  for (bool create : {false, true}) {
    auto backend = h.backend(dir.path() / "file" / "sub", create);
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().code == "NotADirectory");
    CHECK_FALSE(created.error().transient);
    auto access = run(h.io, backend.check_access());
    REQUIRE_FALSE(access.ok());
    CHECK(access.error().code == "NotADirectory");
  }
  auto plain = h.backend(dir.path() / "file");
  auto created = run(h.io, plain.create_metadata(kBody));
  REQUIRE_FALSE(created.ok());
  CHECK(created.error().code == "NotADirectory");
  CHECK(created.error().message.find((dir.path() / "file").string()) != std::string::npos);
}

TEST_CASE("wipe removes everything inside an owned directory, counts files, and keeps the directory") {
  Harness h;
  TempDir dir;
  TempDir outside;
  const fs::path root = dir.path() / "storage";
  fs::create_directories(root / "repo" / "snapshots" / "deep");
  fs::create_directories(root / "empty");
  write_file(root / "metadata.yaml", kBody);
  write_file(root / "repo" / "a", "1");
  write_file(root / "repo" / "snapshots" / "b", "2");
  write_file(root / "repo" / "snapshots" / "deep" / "c", "3");
  write_file(root / ".hidden", "4");
  write_file(outside.path() / "keep", "keep me");
  fs::create_symlink(outside.path(), root / "link-to-outside-dir");
  fs::create_symlink(outside.path() / "keep", root / "repo" / "link-to-outside-file");

  auto backend = h.backend(root);
  auto wiped = run(h.io, backend.wipe({}));
  INFO((wiped.error ? wiped.error->message : wiped.refused ? wiped.refused->message : ""));
  REQUIRE(wiped.done());
  CHECK(wiped.removed == 5);  // metadata.yaml included
  CHECK(wiped.left.empty());
  CHECK(fs::is_directory(root));
  CHECK(fs::is_empty(root));
  CHECK(read_file(outside.path() / "keep") == "keep me");

  auto again = run(h.io, backend.wipe({}));  // metadata.yaml is gone: nothing shows it is ours any more
  REQUIRE(again.refused.has_value());
  CHECK(again.refused->code == "NotOwned");
  auto missing = run(h.io, h.backend(dir.path() / "nope", true).wipe({}));
  REQUIRE(missing.refused.has_value());
  CHECK(missing.refused->code == "NotOwned");
  CHECK_THAT(missing.refused->message, Catch::Contains("does not exist") && Catch::Contains("nothing was deleted"));
  CHECK_FALSE(fs::exists(dir.path() / "nope"));
}

TEST_CASE("stale temp files are removed before a write, fresh ones are left alone") {
  Harness h;
  TempDir dir;
  const fs::path stale = dir.path() / ".metadata.yaml.tmp-0123456789abcdef";
  const fs::path fresh = dir.path() / ".metadata.yaml.tmp-fedcba9876543210";
  write_file(stale, "half");
  write_file(fresh, "in flight");
  set_age(stale, std::chrono::seconds(120));

  auto backend = h.backend(dir.path());
  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(fresh));
}

TEST_CASE("an initialized storage's stale temp files go at the next read, young ones and symlinks stay") {
  // A kill -9 between a temp file and its rename leaves the temp; an initialized storage is never
  // written again, so the reconcile's read is where it goes.
  Harness h;
  TempDir dir, outside;
  write_file(dir.path() / "metadata.yaml", kBody);
  const fs::path stale = dir.path() / ".metadata.yaml.tmp-0123456789abcdef";
  const fs::path young = dir.path() / ".metadata.yaml.tmp-fedcba9876543210";
  const fs::path link = dir.path() / ".metadata.yaml.tmp-x";
  const fs::path target = outside.path() / "precious";
  write_file(stale, "half");
  write_file(young, "in flight");
  write_file(target, "not a temp file");
  set_age(stale, std::chrono::seconds(120));
  set_age(target, std::chrono::seconds(120));
  fs::create_symlink(target, link);
  const auto when = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - std::chrono::minutes(5));
  struct timespec old_times[2] = {{when, 0}, {when, 0}};
  REQUIRE(::utimensat(AT_FDCWD, link.c_str(), old_times, AT_SYMLINK_NOFOLLOW) == 0);  // the link itself is old

  auto backend = h.backend(dir.path());
  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().exists);
  CHECK_FALSE(fs::exists(stale));
  CHECK(fs::exists(young));
  CHECK(fs::is_symlink(link));  // not ours: neither followed nor removed
  CHECK(read_file(target) == "not a temp file");
  CHECK(read_file(dir.path() / "metadata.yaml") == kBody);
}

TEST_CASE("remove_stale_temps reaches the directory confined: nothing outside the root is touched") {
  TempDir root, outside;
  fs::create_directories(root.path() / "vol");
  const fs::path stale_outside = outside.path() / ".metadata.yaml.tmp-0123456789abcdef";
  write_file(stale_outside, "someone else's");
  set_age(stale_outside, std::chrono::seconds(120));
  fs::create_symlink(outside.path(), root.path() / "escape");
  LocalBackendOptions options;
  options.root = root.path();
  options.directory = root.path() / "escape";
  auto removed = local_fs::remove_stale_temps(options);
  REQUIRE_FALSE(removed.ok());
  CHECK(removed.error().code == "SymlinkRefused");
  CHECK(fs::exists(stale_outside));
  options.directory = root.path() / "vol";
  const fs::path stale = root.path() / "vol" / ".metadata.yaml.tmp-aaaaaaaaaaaaaaaa";
  write_file(stale, "half");
  set_age(stale, std::chrono::seconds(120));
  removed = local_fs::remove_stale_temps(options);
  REQUIRE(removed.ok());
  CHECK(removed.value() == 1);
  CHECK_FALSE(fs::exists(stale));
}

TEST_CASE("the link(2) fallback is create-only too") {
  TempDir dir;
  const int dirfd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dirfd >= 0);
  const fs::path target = dir.path() / "metadata.yaml";
  write_file(dir.path() / ".metadata.yaml.tmp-1", "first");
  auto first = local_fs::publish_by_link(dirfd, dir.path(), ".metadata.yaml.tmp-1", "metadata.yaml");
  REQUIRE(first.ok());
  CHECK(first.value() == CreateOutcome::Created);
  CHECK(read_file(target) == "first");

  write_file(dir.path() / ".metadata.yaml.tmp-2", "second");
  auto second = local_fs::publish_by_link(dirfd, dir.path(), ".metadata.yaml.tmp-2", "metadata.yaml");
  REQUIRE(second.ok());
  CHECK(second.value() == CreateOutcome::AlreadyExists);
  CHECK(read_file(target) == "first");

  auto renamed = local_fs::publish_no_replace(dirfd, dir.path(), ".metadata.yaml.tmp-2", "metadata.yaml");
  REQUIRE(renamed.ok());
  CHECK(renamed.value() == CreateOutcome::AlreadyExists);
  CHECK(read_file(target) == "first");

  SECTION("a symlink named like the target counts as existing: nothing is written through it") {
    TempDir outside;
    fs::remove(target);
    fs::create_symlink(outside.path() / "planted", target);
    auto linked = local_fs::publish_by_link(dirfd, dir.path(), ".metadata.yaml.tmp-2", "metadata.yaml");
    REQUIRE(linked.ok());
    CHECK(linked.value() == CreateOutcome::AlreadyExists);
    CHECK_FALSE(fs::exists(outside.path() / "planted"));
  }
  ::close(dirfd);
}

TEST_CASE("errno values map to codes and retry classes") {
  auto check = [](int err, const char* code, bool transient) {
    auto e = local_fs::errno_error(err, "cannot create", "/data/x/metadata.yaml");
    CHECK(e.code == code);
    CHECK(e.transient == transient);
    CHECK(e.message.find("/data/x/metadata.yaml") != std::string::npos);
    CHECK(e.message.find(std::generic_category().message(err)) != std::string::npos);
  };
  check(EACCES, "PermissionDenied", false);
  check(EPERM, "PermissionDenied", false);
  check(EROFS, "ReadOnlyFilesystem", false);
  check(ENOTDIR, "NotADirectory", false);
  check(ELOOP, "SymlinkRefused", false);
  check(EXDEV, "OutsideRoot", false);
  check(EMFILE, "TooManyOpenFiles", false);
  check(ENFILE, "TooManyOpenFiles", false);
  check(EBUSY, "Busy", false);
  check(ENOSPC, "NoSpace", true);
  check(EDQUOT, "NoSpace", true);
  check(EIO, "IOError", true);
  check(EAGAIN, "IOError", true);
  check(EINTR, "IOError", true);
  check(ESTALE, "IOError", true);
  const auto denied = local_fs::errno_error(EACCES, "cannot create a file in", "/data/x");
  CHECK(denied.message.rfind("cannot create a file in /data/x: Permission denied; the process (uid ", 0) == 0);
  CHECK(denied.message.find("runAsUser: 0 for hostPath, fsGroup for a PVC or NFS volume") != std::string::npos);
}

TEST_CASE("every operation resumes the caller on the io_context thread") {
  Harness h;
  TempDir dir;
  auto backend = h.backend(dir.path() / "x", true);
  const auto reactor = std::this_thread::get_id();
  std::vector<std::thread::id> seen;
  auto body = [&]() -> boost::asio::awaitable<void> {
    seen.push_back(std::this_thread::get_id());
    (void)co_await backend.create_metadata(kBody);
    seen.push_back(std::this_thread::get_id());
    (void)co_await backend.read_metadata();
    seen.push_back(std::this_thread::get_id());
    (void)co_await backend.check_access();
    seen.push_back(std::this_thread::get_id());
    (void)co_await backend.wipe({});
    seen.push_back(std::this_thread::get_id());
  };
  run(h.io, body());
  REQUIRE(seen.size() == 5);
  for (auto id : seen) CHECK(id == reactor);
}

TEST_CASE("PermissionDenied for a process without write access (child drops to uid 65534)") {
  if (::geteuid() != 0) {
    WARN("skipped: needs root to drop to uid 65534; running as uid " << ::geteuid());
    return;
  }
  TempDir dir;  // root-owned, 0755: readable but not writable by 65534
  write_file(dir.path() / "existing", "x");
  fs::create_directory(dir.path() / "owned");
  write_file(dir.path() / "owned" / "metadata.yaml", kBody);
  write_file(dir.path() / "owned" / "data", "y");
  int code = exit_code_of_child([&] {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) return 90;
    Harness h;
    int failures = 0;
    auto denied = [&](const auto& result, int bit) {
      bool ok = !result.ok() && result.error().code == "PermissionDenied" && !result.error().transient &&
                result.error().message.find("uid 65534") != std::string::npos &&
                result.error().message.find("runtimeSettings.pod.securityContext") != std::string::npos &&
                result.error().message.find(dir.path().string()) != std::string::npos;
      if (!ok) failures |= bit;
    };
    auto mounted = h.backend(dir.path());
    denied(run(h.io, mounted.create_metadata(kBody)), 1);
    denied(run(h.io, mounted.check_access()), 2);
    auto wiped = run(h.io, h.backend(dir.path() / "owned").wipe({}));  // owned, but not writable by 65534
    if (!wiped.error || wiped.error->code != "PermissionDenied" || wiped.error->transient || wiped.removed != 0)
      failures |= 4;
    auto host_path = h.backend(dir.path() / "a" / "b", true);
    denied(run(h.io, host_path.create_metadata(kBody)), 8);
    denied(run(h.io, host_path.check_access()), 16);
    return failures;
  });
  INFO("child exit code (bits: 1 create, 2 access, 4 wipe, 8 hostPath create, 16 hostPath access; 90 setuid)");
  CHECK(code == 0);
  CHECK(names_in(dir.path()) == std::set<std::string>{"existing", "owned"});
  CHECK(names_in(dir.path() / "owned") == std::set<std::string>{"metadata.yaml", "data"});
}

TEST_CASE("ReadOnlyFilesystem and NoSpace on tmpfs mounts (child in its own mount namespace)") {
  TempDir dir;
  fs::create_directory(dir.path() / "ro");
  fs::create_directory(dir.path() / "tiny");
  int code = exit_code_of_child([&] {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount("none", "/", "none", MS_REC | MS_PRIVATE, nullptr) != 0) return 77;
    if (::mount("tmpfs", (dir.path() / "ro").c_str(), "tmpfs", MS_RDONLY, nullptr) != 0) return 77;
    if (::mount("tmpfs", (dir.path() / "tiny").c_str(), "tmpfs", 0, "size=8k") != 0) return 77;
    Harness h;
    int failures = 0;
    auto expect = [&](const auto& result, const char* code, bool transient, int bit) {
      if (result.ok() || result.error().code != code || result.error().transient != transient) failures |= bit;
    };
    auto ro = h.backend(dir.path() / "ro");
    expect(run(h.io, ro.create_metadata(kBody)), "ReadOnlyFilesystem", false, 1);
    expect(run(h.io, ro.check_access()), "ReadOnlyFilesystem", false, 2);
    expect(run(h.io, h.backend(dir.path() / "ro" / "a", true).create_metadata(kBody)), "ReadOnlyFilesystem", false, 4);
    auto tiny = h.backend(dir.path() / "tiny");
    expect(run(h.io, tiny.create_metadata(std::string(1 << 20, 'x'))), "NoSpace", true, 8);
    if (!fs::is_empty(dir.path() / "tiny")) failures |= 16;  // the temp file was cleaned up
    return failures;
  });
  if (code == 77) {
    WARN("skipped: cannot unshare a mount namespace and mount tmpfs in this sandbox");
    return;
  }
  INFO("child exit code (bits: 1 ro create, 2 ro access, 4 ro hostPath, 8 NoSpace, 16 temp left)");
  CHECK(code == 0);
}
