// The Controller's backpressure gate and its cancellation of reconciles in flight, on the real
// reconciler with local backends (temp folders) and the offline world as its target.
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <catch2/catch.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>

#include "common/http_client.hpp"
#include "engine/backends.hpp"
#include "engine/controller.hpp"
#include "engine/facts.hpp"
#include "engine/manifests.hpp"
#include "engine/offline_world.hpp"
#include "engine/reconciler.hpp"
#include "persistence/work_queue.hpp"
#include "support.hpp"

using namespace stowage;
using namespace stowage::engine;

namespace {

struct Rig {
  test::fs::path dir;
  boost::asio::io_context io;
  boost::asio::thread_pool pool{1};
  std::shared_ptr<std::atomic<bool>> pool_stop = std::make_shared<std::atomic<bool>>(false);
  persistence::WorkQueue queue{nullptr, [] { return std::int64_t{0}; }};
  OfflineWorld world{nullptr, {}, "/manifests", queue, true};
  http::Client http{io.get_executor()};
  BackendFactory backends;
  FactBook facts{nullptr, {}};
  persistence::Fingerprinter fp;
  Reconciler reconciler;
  Controller controller;

  explicit Rig(const std::string& name)
      : dir(test::temp_dir(name)),
        backends(pool, LocalSettings{dir / "root", {}, pool_stop}, http, CloudSettings{}),
        fp(persistence::Fingerprinter::load_or_create(dir).value()),
        reconciler(world, backends, facts, fp, ReconcilerOptions{"v9.9.9"}),
        controller(io.get_executor(), queue, reconciler, ControllerOptions{}) {
    test::fs::create_directories(dir / "root");
  }
  ~Rig() {
    controller.stop();
    pool_stop->store(true);
    pool.join();
  }

  void apply(const std::string& yaml) {
    auto contents = parse_manifest_text("test.yaml", yaml);
    REQUIRE(contents.problems.empty());
    for (auto& s : contents.storages) world.storage_upserted(s.object);
  }

  // Runs the reactor until `done` or `limit`; whether `done` came true.
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(20));
    }
    return done();
  }
  void run_for(std::chrono::milliseconds d) {
    run_until([] { return false; }, d);
  }
};

std::size_t files_under(const test::fs::path& dir) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = test::fs::recursive_directory_iterator(dir, ec); !ec && it != test::fs::recursive_directory_iterator();
       it.increment(ec))
    n += it->is_regular_file() ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("controller: nothing is claimed while the claim gate names a reason, and claiming resumes when it clears") {
  Rig rig("controller-gate");
  std::optional<std::string> behind = "the state store is 70000000 bytes behind";
  int asked = 0;
  rig.controller.set_claim_gate([&] {
    ++asked;
    return behind;
  });
  rig.apply(test::local_storage("a", "/data/a") + "---\n" + test::local_storage("b", "/data/b"));
  rig.controller.start();
  rig.run_for(std::chrono::milliseconds(600));
  CHECK(rig.controller.reconciles() == 0);
  CHECK(rig.queue.pending() == 2);
  REQUIRE(rig.controller.paused());
  CHECK(*rig.controller.paused() == *behind);
  CHECK(asked >= 2);  // asked again while paused (every Controller::kGateRecheck), not only once
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/a/metadata.yaml"));

  behind.reset();
  CHECK(rig.run_until([&] { return rig.controller.reconciles() == 2 && rig.controller.idle(); }));
  CHECK_FALSE(rig.controller.paused());
  CHECK(test::fs::exists(rig.dir / "root/data/a/metadata.yaml"));
  CHECK(test::fs::exists(rig.dir / "root/data/b/metadata.yaml"));

  // Closed again: a new storage waits until it opens.
  behind = "again";
  rig.apply(test::local_storage("c", "/data/c"));
  rig.run_for(std::chrono::milliseconds(400));
  CHECK(rig.controller.reconciles() == 2);
  CHECK_FALSE(test::fs::exists(rig.dir / "root/data/c/metadata.yaml"));
  behind.reset();
  CHECK(rig.run_until([&] { return test::fs::exists(rig.dir / "root/data/c/metadata.yaml"); }));
}

TEST_CASE("controller: cancel_in_flight ends a wipe in flight and hands its item back due at once") {
  Rig rig("controller-cancel");
  rig.apply(test::local_storage("big", "/data/big", "WipeOut"));
  rig.controller.start();
  auto data = rig.dir / "root/data/big";
  REQUIRE(rig.run_until([&] { return rig.controller.reconciles() == 1 && rig.controller.idle(); }));
  REQUIRE(test::fs::exists(data / "metadata.yaml"));
  for (int d = 0; d < 50; ++d) {
    auto sub = data / "repo" / ("d" + std::to_string(d));
    test::fs::create_directories(sub);
    for (int i = 0; i < 1000; ++i) ::close(::open((sub / std::to_string(i)).c_str(), O_WRONLY | O_CREAT, 0644));
  }
  bool idle = false;
  rig.controller.on_idle([&] { idle = true; });
  rig.world.storage_removed({"demo", "big"});
  REQUIRE(rig.run_until([&] { return rig.controller.in_flight() == 1; }));
  rig.run_for(std::chrono::milliseconds(100));  // the wipe is under way
  REQUIRE(rig.controller.in_flight() == 1);
  rig.controller.stop();
  rig.controller.cancel_in_flight();
  rig.pool_stop->store(true);
  auto cancelled_at = std::chrono::steady_clock::now();
  CHECK(rig.run_until([&] { return rig.controller.idle(); }, std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - cancelled_at < std::chrono::milliseconds(1000));
  CHECK(idle);
  auto left = files_under(data);
  INFO(left << " files left");
  CHECK(left > 0);  // cut short: 50,000 files take longer than 100 ms to delete
  CHECK(test::fs::exists(data / "metadata.yaml"));  // removed last: the next attempt can still prove ownership
  auto row = rig.queue.get({"BackupStorage", "demo", "big"});
  REQUIRE(row);
  CHECK(row->state == persistence::ItemState::Pending);
  CHECK(row->attempts == 0);
  CHECK(row->interrupted == 0);
  CHECK(rig.queue.processing() == 0);
}
