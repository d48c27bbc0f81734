// Confinement of the local backend on a real filesystem: a directory outside local.root is refused by
// every operation, symlinks are refused wherever they sit on the way (below the root, as the last
// component, as metadata.yaml), missing hostPath directories are never created through a symlink, and
// a symlink inside a wiped tree is unlinked while what it points at survives. Each case runs twice:
// with openat2, and with the component-by-component walk that kernels without openat2 get.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <boost/asio/thread_pool.hpp>

#include <filesystem>
#include <set>
#include <string>

#include "storage/local_backend.hpp"
#include "storage/local_fs.hpp"
#include "storage/metadata.hpp"
#include "local_test_support.hpp"
#include "test_support.hpp"

using namespace stowage;
using namespace stowage::storage;
using stowage::storage::testing::read_file;
using stowage::storage::testing::run;
using stowage::storage::testing::TempDir;
using stowage::storage::testing::write_file;
namespace fs = std::filesystem;

namespace {

const std::string& kBody = stowage::storage::testing::kMetadataBody;

using Harness = stowage::storage::testing::LocalHarness;

// Runs the test body once with openat2 and once with the fallback walk, restoring openat2 after.
struct Resolution {
  explicit Resolution(bool openat2) { local_fs::use_openat2(openat2); }
  ~Resolution() { local_fs::use_openat2(true); }
};

const char* name_of(bool openat2) { return openat2 ? "openat2" : "the openat walk"; }

std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.insert(entry.path().filename().string());
  return names;
}

// A storage's data where nothing may touch it: a valid metadata.yaml and one file.
void plant(const fs::path& dir) {
  fs::create_directories(dir);
  write_file(dir / "metadata.yaml", kBody);
  write_file(dir / "backup", "precious");
}

bool planted_intact(const fs::path& dir) {
  return read_file(dir / "metadata.yaml") == kBody && read_file(dir / "backup") == "precious" &&
         names_in(dir) == std::set<std::string>{"metadata.yaml", "backup"};
}

}  // namespace

TEST_CASE("this kernel has openat2, so both resolutions are exercised") {
  if (!local_fs::openat2_available())
    WARN("openat2 is missing on this kernel: the \"openat2\" runs below take the fallback walk too");
  SUCCEED();
}

TEST_CASE("a directory outside local.root is refused by every operation, nothing read, written or deleted") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", outside = tmp.path() / "outside";
  fs::create_directories(root);
  plant(outside);

  // Given directly, and spelled with ".." (the factory refuses "..", but the backend must not rely on it).
  for (const fs::path& dir : {outside, root / ".." / "outside", root / "a" / ".." / ".." / "outside"}) {
    INFO(dir.string());
    for (bool create : {false, true}) {
      auto backend = h.backend(root, dir, create);
      auto read = run(h.io, backend.read_metadata());
      REQUIRE_FALSE(read.ok());
      CHECK(read.error().code == "OutsideRoot");
      CHECK_FALSE(read.error().transient);
      CHECK_THAT(read.error().message, Catch::Contains(outside.string()) && Catch::Contains("not under local.root " +
                                                                                            root.string()));
      auto created = run(h.io, backend.create_metadata(render_metadata({"2030-01-01T00:00:00Z", "evil"})));
      REQUIRE_FALSE(created.ok());
      CHECK(created.error().code == "OutsideRoot");
      auto access = run(h.io, backend.check_access());
      REQUIRE_FALSE(access.ok());
      CHECK(access.error().code == "OutsideRoot");
      auto wiped = run(h.io, backend.wipe({}));
      REQUIRE(wiped.refused.has_value());
      CHECK(wiped.refused->code == "ProtectedLocation");
      CHECK(wiped.removed == 0);
    }
  }
  CHECK(planted_intact(outside));
  CHECK(fs::is_empty(root));
}

TEST_CASE("a symlink below the root, on the way to the directory, is refused by name and nothing behind it is touched") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", elsewhere = tmp.path() / "elsewhere";
  fs::create_directories(root / "data");
  plant(elsewhere / "x");
  fs::create_directory_symlink(elsewhere, root / "data" / "link");  // R/data/link -> /elsewhere

  for (bool create : {false, true}) {
    INFO("create_directory " << create);
    auto backend = h.backend(root, root / "data" / "link" / "x", create);
    const std::string named = (root / "data" / "link").string() + " is a symbolic link: stowage never follows "
                                                                  "symlinks below local.root (" + root.string() + ")";
    auto read = run(h.io, backend.read_metadata());
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().code == "SymlinkRefused");
    CHECK_FALSE(read.error().transient);
    CHECK_THAT(read.error().message, Catch::StartsWith(named));
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().code == "SymlinkRefused");
    auto access = run(h.io, backend.check_access());
    REQUIRE_FALSE(access.ok());
    CHECK(access.error().code == "SymlinkRefused");
    auto wiped = run(h.io, backend.wipe({}));
    REQUIRE(wiped.error.has_value());
    CHECK(wiped.error->code == "SymlinkRefused");
    CHECK_THAT(wiped.error->message, Catch::StartsWith(named));
    CHECK(wiped.removed == 0);
  }
  CHECK(planted_intact(elsewhere / "x"));
}

TEST_CASE("a symlink as the directory itself is refused: another storage's data behind it survives a wipe") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", elsewhere = tmp.path() / "elsewhere";
  fs::create_directories(root / "data");
  plant(elsewhere);
  fs::create_directory_symlink(elsewhere, root / "data" / "link");

  for (const fs::path& dir : {root / "data" / "link", root / "data" / "link" / "."}) {
    auto backend = h.backend(root, dir);
    auto read = run(h.io, backend.read_metadata());
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().code == "SymlinkRefused");
    CHECK_THAT(read.error().message, Catch::StartsWith((root / "data" / "link").string() + " is a symbolic link"));
    auto wiped = run(h.io, backend.wipe({}));
    REQUIRE(wiped.error.has_value());
    CHECK(wiped.error->code == "SymlinkRefused");
    CHECK(wiped.removed == 0);
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE_FALSE(created.ok());
  }
  CHECK(planted_intact(elsewhere));
  CHECK(fs::is_symlink(root / "data" / "link"));
}

TEST_CASE("the root itself may be a symlink (the admin's choice) but nothing below it may") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path real_root = tmp.path() / "real-root", root = tmp.path() / "root-link";
  fs::create_directories(real_root);
  fs::create_directory_symlink(real_root, root);

  auto backend = h.backend(root, root / "data" / "s", /*create_directory=*/true);
  auto created = run(h.io, backend.create_metadata(kBody));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::Created);
  CHECK(read_file(real_root / "data" / "s" / "metadata.yaml") == kBody);
  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().meta.has_value());
  // Below the root nothing is followed, even a link that stays inside it.
  fs::create_directory_symlink(real_root / "data" / "s", real_root / "data" / "inner-link");
  auto inner = h.backend(root, root / "data" / "inner-link");
  auto through = run(h.io, inner.read_metadata());
  REQUIRE_FALSE(through.ok());
  CHECK(through.error().code == "SymlinkRefused");
  auto wiped_through = run(h.io, inner.wipe({}));
  REQUIRE(wiped_through.error.has_value());
  CHECK(wiped_through.error->code == "SymlinkRefused");

  write_file(real_root / "data" / "s" / "f", "x");
  auto wiped = run(h.io, backend.wipe({}));
  REQUIRE(wiped.done());
  CHECK(wiped.removed == 2);
  CHECK(fs::is_empty(real_root / "data" / "s"));
}

TEST_CASE("hostPath directories are never created through a symlink") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", elsewhere = tmp.path() / "elsewhere";
  fs::create_directories(root / "real");
  fs::create_directories(elsewhere);
  fs::create_directory_symlink(elsewhere, root / "a");                         // first component
  fs::create_directory_symlink(elsewhere, root / "real" / "b");                // in the middle
  fs::create_symlink(elsewhere / "not-yet", root / "real" / "dangling");       // to nothing (yet)

  struct Case {
    fs::path dir;
    fs::path link;
  };
  for (const auto& c : {Case{root / "a" / "b" / "c", root / "a"}, Case{root / "real" / "b" / "c", root / "real" / "b"},
                        Case{root / "real" / "b", root / "real" / "b"},
                        Case{root / "real" / "dangling" / "x", root / "real" / "dangling"}}) {
    INFO(c.dir.string());
    auto backend = h.backend(root, c.dir, /*create_directory=*/true);
    auto created = run(h.io, backend.create_metadata(kBody));
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().code == "SymlinkRefused");
    CHECK_THAT(created.error().message, Catch::StartsWith(c.link.string() + " is a symbolic link"));
  }
  CHECK(fs::is_empty(elsewhere));
  CHECK_FALSE(fs::exists(elsewhere / "not-yet"));
  CHECK(names_in(root / "real") == std::set<std::string>{"b", "dangling"});
}

TEST_CASE("metadata.yaml as a symlink is never followed: invalid, kept, and it proves no ownership") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", dir = root / "s", elsewhere = tmp.path() / "elsewhere";
  plant(elsewhere);
  fs::create_directories(dir);
  write_file(dir / "data", "x");
  fs::create_symlink(elsewhere / "metadata.yaml", dir / "metadata.yaml");
  auto backend = h.backend(root, dir);

  auto state = run(h.io, backend.read_metadata());
  REQUIRE(state.ok());
  CHECK(state.value().exists);
  CHECK_FALSE(state.value().meta.has_value());
  CHECK_THAT(state.value().invalid_reason, Catch::Contains("is a symbolic link"));
  auto created = run(h.io, backend.create_metadata(render_metadata({"2030-01-01T00:00:00Z", "v9"})));
  REQUIRE(created.ok());
  CHECK(created.value() == CreateOutcome::AlreadyExists);
  auto wiped = run(h.io, backend.wipe({}));
  REQUIRE(wiped.refused.has_value());
  CHECK(wiped.refused->code == "InvalidMetadata");
  CHECK(read_file(dir / "data") == "x");
  CHECK(fs::is_symlink(dir / "metadata.yaml"));
  CHECK(planted_intact(elsewhere));
}

TEST_CASE("symlinks inside a wiped tree are unlinked and what they point at survives") {
  const bool openat2 = GENERATE(true, false);
  INFO(name_of(openat2));
  Resolution resolution(openat2);
  Harness h;
  TempDir tmp;
  const fs::path root = tmp.path() / "root", dir = root / "s", elsewhere = tmp.path() / "elsewhere";
  plant(elsewhere);
  fs::create_directories(dir / "sub" / "deeper");
  write_file(dir / "metadata.yaml", kBody);
  write_file(dir / "sub" / "file", "mine");
  fs::create_directory_symlink(elsewhere, dir / "sub" / "dir-link");
  fs::create_directory_symlink(elsewhere, dir / "sub" / "deeper" / "dir-link");
  fs::create_symlink(elsewhere / "backup", dir / "file-link");
  fs::create_symlink("/", dir / "root-link");
  fs::create_symlink("../../..", dir / "sub" / "up-link");

  auto wiped = run(h.io, h.backend(root, dir).wipe({}));
  REQUIRE(wiped.done());
  CHECK(wiped.removed == 2);  // sub/file and metadata.yaml; links are not counted
  CHECK(fs::is_empty(dir));
  CHECK(planted_intact(elsewhere));
}
