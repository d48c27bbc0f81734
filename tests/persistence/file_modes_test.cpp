// The state directory's files under hostile conditions: a symlink planted at fingerprint.key.tmp,
// a stale temp left by a crash, umask 000, and companions (-wal, -shm) left wider than 0600.
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "persistence/fingerprint.hpp"
#include "persistence/sqlite_state_store.hpp"

using namespace stowage::persistence;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("stowage-test-modes-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode;
}

// umask 000 while it lives (the case: everything the process creates is as open as it asks).
struct OpenUmask {
  mode_t previous = ::umask(0);
  ~OpenUmask() { ::umask(previous); }
};

}  // namespace

TEST_CASE("a symlink planted at fingerprint.key.tmp is not followed: its target is untouched") {
  auto dir = temp_dir("fp-symlink");
  auto target = dir / "precious";
  std::ofstream(target) << "precious data";
  fs::create_directories(dir / "state");
  fs::create_symlink(target, dir / "state" / "fingerprint.key.tmp");

  auto loaded = Fingerprinter::load_or_create(dir / "state");
  REQUIRE(loaded.ok());
  CHECK(slurp(target) == "precious data");
  CHECK(mode_of(target) == (S_IFREG | (mode_of(target) & 07777)));
  const auto key = dir / "state" / "fingerprint.key";
  CHECK(S_ISREG(mode_of(key)));  // not the symlink renamed into place
  CHECK((mode_of(key) & 07777) == 0600);
  CHECK(fs::file_size(key) == 32);
  CHECK_FALSE(fs::exists(fs::symlink_status(dir / "state" / "fingerprint.key.tmp")));

  // The key is the one written: a second load gives the same fingerprints.
  auto again = Fingerprinter::load_or_create(dir / "state");
  REQUIRE(again.ok());
  CHECK(again.value().fingerprint({{"k", "v"}}) == loaded.value().fingerprint({{"k", "v"}}));
}

TEST_CASE("a stale fingerprint.key.tmp left by a crash is replaced, and the key is 0600 under umask 000") {
  auto dir = temp_dir("fp-stale");
  std::ofstream(dir / "fingerprint.key.tmp") << "half a ke";
  ::chmod((dir / "fingerprint.key.tmp").c_str(), 0666);
  {
    OpenUmask open;
    REQUIRE(Fingerprinter::load_or_create(dir).ok());
  }
  CHECK((mode_of(dir / "fingerprint.key") & 07777) == 0600);
  CHECK(fs::file_size(dir / "fingerprint.key") == 32);
  CHECK_FALSE(fs::exists(dir / "fingerprint.key.tmp"));
}

TEST_CASE("an existing fingerprint.key readable by others is made 0600 and still used") {
  auto dir = temp_dir("fp-wide");
  auto first = Fingerprinter::load_or_create(dir);
  REQUIRE(first.ok());
  ::chmod((dir / "fingerprint.key").c_str(), 0644);
  auto second = Fingerprinter::load_or_create(dir);
  REQUIRE(second.ok());
  CHECK((mode_of(dir / "fingerprint.key") & 07777) == 0600);
  CHECK(second.value().fingerprint({{"k", "v"}}) == first.value().fingerprint({{"k", "v"}}));
}

TEST_CASE("state.db and its -wal and -shm are 0600 under umask 000, also when left wider by an earlier run") {
  auto dir = temp_dir("store");
  auto check_modes = [&] {
    for (const char* name : {"state.db", "state.db-wal", "state.db-shm"}) {
      INFO(name);
      REQUIRE(fs::exists(dir / name));
      CHECK((mode_of(dir / name) & 07777) == 0600);
    }
  };
  {
    OpenUmask open;
    boost::asio::io_context io;
    auto store = SqliteStateStore::open(dir, io.get_executor(), StoreOptions{std::chrono::milliseconds(5), true});
    REQUIRE(store.ok());
    check_modes();  // WAL mode: both companions exist while the store is open
    // Companions made wider by someone else (SQLite itself only fixes the mode of an empty one):
    // the next open makes them 0600 again.
    for (const char* name : {"state.db-wal", "state.db-shm"}) ::chmod((dir / name).c_str(), 0644);
    auto reopened = SqliteStateStore::open(dir, io.get_executor(), StoreOptions{std::chrono::milliseconds(5), true});
    REQUIRE(reopened.ok());
    check_modes();
  }
}
