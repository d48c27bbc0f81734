// Issue 9's reproductions, end to end through BackendFactory: a BackupStorage's local paths become
// a LocalBackend confined beneath local.root, and WipeOut of what the storage does not own deletes
// nothing. `..` in hostPath or mountPath is refused by the factory; `/` is the local root; the state
// directory is protected; a symlink on the way is never followed; a foreign metadata.yaml proves
// nothing.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "common/http_client.hpp"
#include "engine/backends.hpp"
#include "kube/model.hpp"
#include "storage/backend.hpp"
#include "storage/metadata.hpp"
#include "support.hpp"

using namespace stowage;
using namespace stowage::engine;

namespace {

const std::string kMeta = storage::render_metadata({"2025-04-21T12:29:15Z", "v0.1.0"});

struct Rig {
  test::fs::path dir = test::temp_dir("local-paths");
  test::fs::path root = dir / "root";
  boost::asio::io_context io;
  boost::asio::thread_pool pool{2};
  http::Client http{io.get_executor()};
  BackendFactory backends{pool, LocalSettings{root, {root / "state"}}, http, CloudSettings{}};

  Rig() { test::fs::create_directories(root / "state"); }
  ~Rig() {
    pool.join();
    test::fs::remove_all(dir);
  }

  // A WipeOut storage with this `local` section.
  Result<std::unique_ptr<storage::Backend>, std::string> make(const std::string& local_json) {
    auto text = R"({"apiVersion":"storage.kubestash.com/v1alpha1","kind":"BackupStorage",
                    "metadata":{"name":"s","namespace":"demo","uid":"u-1","generation":1},
                    "spec":{"storage":{"provider":"local","local":)" +
                local_json + R"(},"deletionPolicy":"WipeOut"}})";
    auto parsed = kube::parse_backup_storage(boost::json::parse(text));
    REQUIRE(parsed.ok());
    return backends.make(parsed.value(), nullptr);
  }

  storage::WipeReport wipe(storage::Backend& backend) {
    auto f = boost::asio::co_spawn(io, backend.wipe({}), boost::asio::use_future);
    io.restart();
    io.run();
    return f.get();
  }
};

bool refused(const storage::WipeReport& r, const std::string& code) {
  return r.refused && r.refused->code == code && r.removed == 0;
}

}  // namespace

TEST_CASE("local paths: '..' in hostPath or mountPath never leaves local.root") {
  Rig rig;
  test::write_file(rig.dir / "outside" / "metadata.yaml", kMeta);
  test::write_file(rig.dir / "outside" / "data", "theirs");
  auto host = rig.make(R"({"mountPath":"/data","hostPath":{"path":"/../outside"}})");
  REQUIRE_FALSE(host.ok());
  CHECK_THAT(host.error(), Catch::Contains("hostPath.path") && Catch::Contains(".."));
  auto mount = rig.make(R"({"mountPath":"/../o5","persistentVolumeClaim":{"claimName":"c"}})");
  REQUIRE_FALSE(mount.ok());
  CHECK_THAT(mount.error(), Catch::Contains("mountPath") && Catch::Contains(".."));
  CHECK(test::read_file(rig.dir / "outside" / "data") == "theirs");
}

TEST_CASE("local paths: hostPath / is the local root and is never wiped, other storages' data included") {
  Rig rig;
  test::write_file(rig.root / "metadata.yaml", kMeta);
  test::write_file(rig.root / "other" / "metadata.yaml", kMeta);
  test::write_file(rig.root / "other" / "data", "theirs");
  auto made = rig.make(R"({"mountPath":"/data","hostPath":{"path":"/"}})");
  REQUIRE(made.ok());
  auto report = rig.wipe(*made.value());
  INFO((report.refused ? report.refused->message : "not refused"));
  CHECK(refused(report, "ProtectedLocation"));
  CHECK(test::read_file(rig.root / "other" / "data") == "theirs");
  CHECK(test::read_file(rig.root / "metadata.yaml") == kMeta);
}

TEST_CASE("local paths: a storage whose directory is the state directory, or holds it, never deletes state.db") {
  Rig rig;
  test::write_file(rig.root / "state" / "state.db", "sqlite");
  test::write_file(rig.root / "state" / "metadata.yaml", kMeta);
  auto state = rig.make(R"({"mountPath":"/data","hostPath":{"path":"/state"}})");
  REQUIRE(state.ok());
  auto report = rig.wipe(*state.value());
  INFO((report.refused ? report.refused->message : "not refused"));
  CHECK(refused(report, "ProtectedLocation"));
  CHECK(test::read_file(rig.root / "state" / "state.db") == "sqlite");
}

TEST_CASE("local paths: a symlink on the way (R/data/link -> elsewhere) is never followed, init or wipe") {
  Rig rig;
  auto elsewhere = rig.dir / "elsewhere";
  test::write_file(elsewhere / "metadata.yaml", kMeta);
  test::write_file(elsewhere / "data", "theirs");
  test::fs::create_directories(rig.root / "data");
  test::fs::create_directory_symlink(elsewhere, rig.root / "data" / "link");
  for (const char* local : {R"({"mountPath":"/data","hostPath":{"path":"/data/link"}})",
                            R"({"mountPath":"/data","hostPath":{"path":"/data/link","subPath":"x"}})",
                            R"({"mountPath":"/data/link","persistentVolumeClaim":{"claimName":"c"}})"}) {
    INFO(local);
    auto made = rig.make(local);
    REQUIRE(made.ok());
    auto report = rig.wipe(*made.value());
    REQUIRE(report.error.has_value());
    CHECK(report.error->code == "SymlinkRefused");
    CHECK_FALSE(report.error->transient);
    auto created = [&] {
      auto f = boost::asio::co_spawn(rig.io, made.value()->create_metadata(kMeta), boost::asio::use_future);
      rig.io.restart();
      rig.io.run();
      return f.get();
    }();
    REQUIRE_FALSE(created.ok());
    CHECK(created.error().code == "SymlinkRefused");
  }
  CHECK(test::read_file(elsewhere / "data") == "theirs");
  CHECK_FALSE(test::fs::exists(elsewhere / "x"));
}

TEST_CASE("local paths: a directory holding a foreign or invalid metadata.yaml is not emptied") {
  Rig rig;
  test::write_file(rig.root / "shared" / "metadata.yaml", "apiVersion: example.com/v1\nkind: Other\n");
  test::write_file(rig.root / "shared" / "data", "theirs");
  auto made = rig.make(R"({"mountPath":"/data","hostPath":{"path":"/shared"}})");
  REQUIRE(made.ok());
  auto report = rig.wipe(*made.value());
  CHECK(refused(report, "InvalidMetadata"));
  CHECK(test::read_file(rig.root / "shared" / "data") == "theirs");
}
