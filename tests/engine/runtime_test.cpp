// Runtime's lifecycle with an in-memory state store (tests/support/fake_store.hpp) behind it: the
// stop's bounded flush, and the backpressure a store that falls behind puts on claiming and /readyz.
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <string>

#include "engine/manifests.hpp"
#include "engine/runtime.hpp"
#include "support.hpp"
#include "support/fake_store.hpp"

using namespace stowage;
using namespace stowage::engine;
using namespace std::chrono_literals;
using test_support::FakeStore;

namespace {

constexpr auto kGrace = 200ms;

config::Config test_config(const std::string& name) {
  auto dir = test::temp_dir(name);
  config::Config c;
  c.state_dir = dir / "state";
  c.local_root = dir / "root";
  test::fs::create_directories(c.local_root);
  c.local_io_threads = 1;
  c.shutdown_grace = kGrace;
  return c;
}

// A Runtime on a FakeStore; `fake` points at it for the test to steer and inspect.
struct Rig {
  explicit Rig(const std::string& name, std::uint64_t max_pending_bytes = 64u << 20)
      : config(test_config(name)) {
    config.store_max_pending_bytes = max_pending_bytes;
    rt = std::make_unique<Runtime>(config, OfflineSource{"runtime-test", true},
                                   [this](boost::asio::any_io_executor reactor) {
                                     auto store = std::make_unique<FakeStore>(std::move(reactor));
                                     fake = store.get();
                                     return store;
                                   });
  }
  config::Config config;
  FakeStore* fake = nullptr;
  std::unique_ptr<Runtime> rt;
};

persistence::QueueRow queue_row(const std::string& name) {
  return {{"BackupStorage", "demo", name}, "added", 0, 0, "", persistence::ItemState::Pending};
}

}  // namespace

TEST_CASE("runtime: a stop whose store cannot commit gives up what is left and exits 1 within grace + 2 s") {
  Rig rig("runtime-abandon");
  RunHooks hooks;
  hooks.start_source = [&] {
    boost::asio::post(rig.rt->io(), [&] {
      rig.fake->stall_commits();  // a full disk from here on
      rig.rt->store().put(queue_row("never-committed"));
      rig.rt->request_stop();
    });
  };
  hooks.stop_source = [] {};
  const auto started = std::chrono::steady_clock::now();
  const int code = rig.rt->run(std::move(hooks));
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK(code == 1);
  CHECK(rig.fake->abandoned());
  CHECK(took < kGrace + 2s);
  // The flush after the reactor was bounded by what was left of the deadline, not the whole grace.
  REQUIRE(rig.fake->flush_limits().size() >= 1);
  CHECK(rig.fake->flush_limits().front() < kGrace + 2s);
  CHECK(rig.fake->load_queue().empty());  // nothing half-written: what did not commit is simply not there
}

TEST_CASE("runtime: a stop with a store that commits writes everything and exits 0") {
  Rig rig("runtime-clean-stop");
  RunHooks hooks;
  bool source_stopped = false;
  hooks.start_source = [&] {
    boost::asio::post(rig.rt->io(), [&] {
      rig.fake->stall_commits();  // behind, but it catches up while the stop waits for it
      rig.rt->store().put(queue_row("committed-at-the-stop"));
      rig.rt->request_stop();
      boost::asio::post(rig.rt->io(), [&] { rig.fake->resume_commits(); });
    });
  };
  hooks.stop_source = [&] { source_stopped = true; };
  const int code = rig.rt->run(std::move(hooks));
  CHECK(code == 0);
  CHECK(source_stopped);
  CHECK_FALSE(rig.fake->abandoned());
  auto rows = rig.fake->load_queue();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].key.name == "committed-at-the-stop");
}

TEST_CASE("runtime: while the store is store.max-pending-bytes behind nothing is claimed and /readyz says why") {
  Rig rig("runtime-backlog", /*max_pending_bytes=*/1000);
  boost::asio::steady_timer check(rig.rt->io()), give_up(rig.rt->io());
  int outcomes = 0;
  std::optional<std::string> ready_before, ready_while_behind, ready_after;
  std::size_t reconciles_while_behind = 99;
  RunHooks hooks;
  hooks.readiness = [] { return std::optional<std::string>(); };  // the source is ready throughout
  hooks.stop_source = [] {};
  hooks.cache = [&]() -> const ObjectCache& { return rig.rt->world().cache(); };
  hooks.start_source = [&] {
    ready_before = rig.rt->readiness();
    rig.fake->stall_commits();
    persistence::ObjectRecord big{"demo", "filler", "uid", 1, "", "runtime-test", "", std::string(2000, 'x'), "{}"};
    rig.rt->store().put(big);  // 2 KB the disk has not taken
    auto contents = parse_manifest_text("test.yaml", test::local_storage("a", "/data/a"));
    REQUIRE(contents.problems.empty());
    for (auto& s : contents.storages) rig.rt->world().storage_upserted(s.object);
    rig.rt->controller().on_outcome([&](const persistence::QueueKey&, const Outcome&) {
      ++outcomes;
      rig.rt->request_stop();
    });
    rig.rt->controller().start();
    check.expires_after(600ms);  // three of the controller's gate rechecks
    check.async_wait([&](boost::system::error_code) {
      ready_while_behind = rig.rt->readiness();
      reconciles_while_behind = rig.rt->controller().reconciles();
      rig.fake->resume_commits();
      ready_after = rig.rt->readiness();
    });
    give_up.expires_after(10s);
    give_up.async_wait([&](boost::system::error_code ec) {
      if (!ec) rig.rt->request_stop();
    });
  };
  const int code = rig.rt->run(std::move(hooks));
  give_up.cancel();
  CHECK(code == 0);
  CHECK_FALSE(ready_before);
  REQUIRE(ready_while_behind);
  CHECK_THAT(*ready_while_behind, Catch::StartsWith("not taking new work: the state store /fake/state.db is "));
  CHECK_THAT(*ready_while_behind, Catch::Contains("store.max-pending-bytes is 1000"));
  CHECK(reconciles_while_behind == 0);
  CHECK_FALSE(ready_after);
  CHECK(outcomes == 1);  // claimed once the store caught up
  CHECK(test::fs::exists(rig.config.local_root / "data/a/metadata.yaml"));
}

TEST_CASE("runtime: readiness is the source's once the store keeps up, and not before run()") {
  Rig rig("runtime-readiness");
  CHECK(rig.rt->readiness() == std::optional<std::string>("not running"));
  std::optional<std::string> while_running;
  RunHooks hooks;
  hooks.readiness = [] { return std::optional<std::string>("the manifest folder has not been read yet"); };
  hooks.stop_source = [] {};
  hooks.start_source = [&] {
    boost::asio::post(rig.rt->io(), [&] {
      while_running = rig.rt->readiness();
      rig.rt->request_stop();
    });
  };
  CHECK(rig.rt->run(std::move(hooks)) == 0);
  CHECK(while_running == std::optional<std::string>("the manifest folder has not been read yet"));
}
