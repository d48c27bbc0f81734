// The liveness registry and the completion handler every long-running loop's co_spawn uses: a loop
// that ends outside stop() (an exception, or a return) is reported once, with why, and the handler
// hears of the first end on its executor; an end after stop() is quiet.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>

#include <stdexcept>
#include <thread>

#include "common/liveness.hpp"

using namespace stowage;
namespace asio = boost::asio;

namespace {

// A loop of the kind the engine runs: turns of the reactor until stopped, a handler called each turn.
asio::awaitable<void> loop(const bool& stopped, const std::function<void(int)>& handler, int turns_before_return) {
  for (int turn = 0; !stopped; ++turn) {
    if (turn == turns_before_return) co_return;
    handler(turn);
    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  }
}

}  // namespace

TEST_CASE("a loop whose handler throws is reported once with the exception, and the first end reaches the handler") {
  asio::io_context io;
  common::Liveness liveness;
  std::vector<common::LoopEnd> heard;
  liveness.on_first_end(io.get_executor(), [&](const common::LoopEnd& first) { heard.push_back(first); });
  bool stopped = false;
  std::function<void(int)> throws_at_3 = [](int turn) {
    if (turn == 3) throw std::runtime_error("handler failed on turn 3");
  };
  std::function<void(int)> quiet = [](int) {};
  auto completion = common::loop_completion("configmaps informer", [&] { return stopped; }, &liveness);
  asio::co_spawn(io, loop(stopped, throws_at_3, -1), completion);
  // The same loop's name ending again (a second co_spawn of it) is not a second end.
  auto again = common::loop_completion("configmaps informer", [&] { return stopped; }, &liveness);
  asio::co_spawn(io, loop(stopped, quiet, 5), again);
  io.run();

  CHECK_FALSE(liveness.healthy());
  auto ended = liveness.ended();
  REQUIRE(ended.size() == 1);
  CHECK(ended[0].loop == "configmaps informer");
  CHECK(ended[0].reason == "an exception: handler failed on turn 3");
  CHECK(liveness.describe() == "configmaps informer stopped: an exception: handler failed on turn 3");
  REQUIRE(heard.size() == 1);
  CHECK(heard[0].loop == "configmaps informer");
}

TEST_CASE("a loop that returns by itself is reported with its own reason, or a default one") {
  asio::io_context io;
  common::Liveness liveness;
  bool stopped = false;
  std::function<void(int)> quiet = [](int) {};
  asio::co_spawn(io, loop(stopped, quiet, 2),
                 common::loop_completion("election loop", [&] { return stopped; }, &liveness,
                                         [] { return std::string("the reflector has nothing to do next (a bug)"); }));
  asio::co_spawn(io, loop(stopped, quiet, 1), common::loop_completion("manifest source", {}, &liveness));
  io.run();
  auto ended = liveness.ended();
  REQUIRE(ended.size() == 2);
  CHECK(ended[1].loop == "election loop");  // it ran one turn longer
  CHECK(ended[1].reason == "the reflector has nothing to do next (a bug)");
  CHECK(ended[0].loop == "manifest source");
  CHECK(ended[0].reason == "it returned without being stopped");
}

TEST_CASE("a loop that ends after stop() is not reported, whether it returns or throws") {
  asio::io_context io;
  common::Liveness liveness;
  bool handler_called = false;
  liveness.on_first_end(io.get_executor(), [&](const common::LoopEnd&) { handler_called = true; });
  bool stopped = false;
  std::function<void(int)> stop_at_2 = [&](int turn) {
    if (turn == 2) stopped = true;
  };
  std::function<void(int)> stop_then_throw = [&](int turn) {
    if (turn == 1) {
      stopped = true;
      throw std::runtime_error("operation aborted by stop()");
    }
  };
  asio::co_spawn(io, loop(stopped, stop_at_2, -1), common::loop_completion("a", [&] { return stopped; }, &liveness));
  asio::co_spawn(io, loop(stopped, stop_then_throw, -1),
                 common::loop_completion("b", [&] { return stopped; }, &liveness));
  io.run();
  CHECK(liveness.healthy());
  CHECK(liveness.describe().empty());
  CHECK_FALSE(handler_called);
}

TEST_CASE("a report from another thread reaches the handler on its executor, and a late handler hears of it at once") {
  asio::io_context io;
  common::Liveness liveness;
  std::thread::id reactor_thread = std::this_thread::get_id(), heard_on;
  int heard = 0;
  liveness.on_first_end(io.get_executor(), [&](const common::LoopEnd& first) {
    ++heard;
    heard_on = std::this_thread::get_id();
    CHECK(first.loop == "state store writer");
  });
  auto guard = asio::make_work_guard(io);
  std::thread writer([&] {
    liveness.report("state store writer", "an exception: prepare failed: no such table: queue");
    liveness.report("state store writer", "a second end of the same loop");
    liveness.report("backupstorages informer", "an exception: boom");
  });
  writer.join();
  guard.reset();
  io.run();
  CHECK(heard == 1);
  CHECK(heard_on == reactor_thread);
  CHECK(liveness.describe() ==
        "state store writer stopped: an exception: prepare failed: no such table: queue; "
        "backupstorages informer stopped: an exception: boom");

  // A handler registered after the first end hears of it (posted), once.
  asio::io_context later;
  int late = 0;
  liveness.on_first_end(later.get_executor(), [&](const common::LoopEnd& first) {
    ++late;
    CHECK(first.loop == "state store writer");
  });
  later.run();
  CHECK(late == 1);
}
