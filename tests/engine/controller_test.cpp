// The Controller's policies (worker limit, one reconcile per key, error policy, revalidation, stop)
// with a scripted KeyReconciler behind it and a store-less WorkQueue on a clock the test moves.
// The schedule is read from the queue (a row's due time minus the test's wall clock is exactly the
// delay the Controller chose); the reactor is driven by polling until it is quiet, so the checks
// are on order and counts, not on how long the machine took.
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <catch2/catch.hpp>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>

#include "engine/controller.hpp"
#include "engine/key_reconciler.hpp"
#include "persistence/work_queue.hpp"
#include "support/log_capture.hpp"

using namespace stowage;
using namespace stowage::engine;
using Millis = std::chrono::milliseconds;

namespace {

// The queue's schedule clock, moved only by the test; its wall clock follows it.
struct TestClock {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point{} + std::chrono::hours(24);
  std::int64_t wall_ms() const {
    return 1'700'000'000'000 + std::chrono::duration_cast<Millis>(now.time_since_epoch()).count();
  }
  void advance(Millis d) { now += d; }
};

// A KeyReconciler that records every call and answers from a script. With `hold` set, each
// reconcile stays open until the test releases it (or the Controller cancels it).
class ScriptedReconciler : public KeyReconciler {
 public:
  struct Call {
    std::string name;
    ReconcileRequest request;
  };
  // Shared with the coroutine frames, which the io_context may destroy after this object.
  struct State {
    std::vector<Call> calls;
    std::multiset<std::string> running;  // names of the reconciles open now
    std::size_t max_running = 0;
    int same_key_overlaps = 0;  // calls that began while the same key was running
    bool hold = false;
    struct Held {
      explicit Held(boost::asio::any_io_executor ex) : timer(std::move(ex), std::chrono::steady_clock::time_point::max()) {}
      boost::asio::steady_timer timer;
      std::optional<Outcome> outcome;
    };
    std::map<std::string, std::shared_ptr<Held>> held;
    // Not held: what a reconcile returns (may throw). Default: Done.
    std::function<Outcome(const Call&)> answer = [](const Call&) { return Outcome::done(); };
  };

  explicit ScriptedReconciler(boost::asio::any_io_executor ex) : ex_(std::move(ex)) {}

  boost::asio::awaitable<Outcome> reconcile(ObjectKey key, ReconcileRequest request) override {
    auto state = state_;
    Call call{key.name, request};
    state->calls.push_back(call);
    if (state->running.count(key.name)) ++state->same_key_overlaps;
    auto me = state->running.insert(key.name);
    state->max_running = std::max(state->max_running, state->running.size());
    struct Leave {
      std::shared_ptr<State> s;
      std::multiset<std::string>::iterator it;
      ~Leave() { s->running.erase(it); }
    } leave{state, me};
    if (state->hold) {
      auto held = std::make_shared<State::Held>(ex_);
      state->held[key.name] = held;
      co_await held->timer.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
      if (state->held[key.name] == held) state->held.erase(key.name);
      // Woken without an outcome: the Controller cancelled it (as a backend call would end).
      if (!held->outcome) throw boost::system::system_error(boost::asio::error::operation_aborted);
      co_return *held->outcome;
    }
    co_await boost::asio::post(ex_, boost::asio::use_awaitable);  // a real reconcile suspends at least once
    co_return state->answer(call);
  }

  State& state() { return *state_; }
  std::size_t calls() const { return state_->calls.size(); }
  std::size_t calls_of(const std::string& name) const {
    return std::count_if(state_->calls.begin(), state_->calls.end(), [&](const Call& c) { return c.name == name; });
  }
  std::vector<std::string> held() const {
    std::vector<std::string> names;
    for (auto& [name, h] : state_->held) names.push_back(name);
    return names;
  }
  void release(const std::string& name, Outcome outcome = Outcome::done()) {
    auto it = state_->held.find(name);
    REQUIRE(it != state_->held.end());
    it->second->outcome = std::move(outcome);
    it->second->timer.cancel();
  }

 private:
  boost::asio::any_io_executor ex_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

persistence::QueueKey key_of(const std::string& name) { return {"BackupStorage", "demo", name}; }

struct Rig {
  boost::asio::io_context io;
  TestClock clock;
  persistence::WorkQueue queue{nullptr, [this] { return clock.wall_ms(); }, [this] { return clock.now; }};
  ScriptedReconciler fake{io.get_executor()};
  std::vector<std::pair<std::string, Outcome>> outcomes;  // what the observer was told, in order
  int idle_calls = 0;
  Controller controller;

  explicit Rig(ControllerOptions options) : controller(io.get_executor(), queue, fake, options) {
    controller.on_outcome([this](const persistence::QueueKey& k, const Outcome& o) { outcomes.emplace_back(k.name, o); });
    controller.on_idle([this] { ++idle_calls; });
  }
  ~Rig() { controller.stop(); }

  void add(const std::string& name, const std::string& reason = "added") { queue.add(key_of(name), reason); }
  persistence::QueueRow row(const std::string& name) {
    auto r = queue.get(key_of(name));
    REQUIRE(r);
    return *r;
  }
  // The delay the Controller scheduled the item's next run after (the test clock has not moved since).
  std::int64_t scheduled_in(const std::string& name) { return row(name).next_attempt_ms - clock.wall_ms(); }

  // Runs every handler ready now until none is: what the Controller does without time moving.
  void drain() {
    for (int i = 0; i < 100000; ++i) {
      io.restart();
      if (io.poll() == 0) return;
    }
    FAIL("the reactor never went quiet");
  }
  // Runs the reactor until `done` or `limit` (the Controller's timers wait real time for what the
  // test clock schedules, so a retry a few ms ahead takes that long to be claimed).
  template <class Pred>
  bool run_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      io.restart();
      io.run_for(std::chrono::milliseconds(10));
    }
    return done();
  }
};

ControllerOptions options(int workers, Millis base, Millis cap, Millis permanent) {
  ControllerOptions o;
  o.workers = workers;
  o.retry_base = base;
  o.retry_cap = cap;
  o.permanent_retry = permanent;
  return o;
}

using test_support::LogCapture;

}  // namespace

TEST_CASE("controller: never more reconciles at once than workers, and every queued key is reconciled") {
  Rig rig(options(3, Millis(1000), Millis(60000), Millis(600000)));
  rig.fake.state().hold = true;
  for (int i = 0; i < 8; ++i) rig.add("s" + std::to_string(i));
  rig.controller.start();
  rig.drain();
  CHECK(rig.fake.calls() == 3);
  CHECK(rig.controller.in_flight() == 3);
  CHECK(rig.queue.pending() == 5);

  // Each finish frees one worker, which claims one more; never a fourth at once.
  for (int round = 0; round < 8; ++round) {
    auto held = rig.fake.held();
    REQUIRE_FALSE(held.empty());
    rig.fake.release(held.front());
    rig.drain();
    CHECK(rig.fake.state().running.size() <= 3);
  }
  CHECK(rig.fake.held().empty());
  CHECK(rig.fake.state().max_running == 3);
  CHECK(rig.fake.calls() == 8);
  std::set<std::string> names;
  for (auto& c : rig.fake.state().calls) names.insert(c.name);
  CHECK(names.size() == 8);
  CHECK(rig.queue.size() == 0);
  CHECK(rig.controller.idle());
}

TEST_CASE("controller: a key changed while it is reconciled is not run twice at once, and runs once more after") {
  Rig rig(options(4, Millis(1000), Millis(60000), Millis(600000)));
  rig.fake.state().hold = true;
  rig.add("a");
  rig.controller.start();
  rig.drain();
  REQUIRE(rig.fake.calls() == 1);

  // Two changes while it runs: a free worker, but the key is busy.
  rig.add("a", "changed");
  rig.drain();
  rig.add("a", "changed again");
  rig.drain();
  CHECK(rig.fake.calls() == 1);
  CHECK(rig.controller.in_flight() == 1);

  // The changes collapse into exactly one re-run right after.
  rig.fake.release("a");
  rig.drain();
  CHECK(rig.fake.calls() == 2);
  CHECK(rig.fake.held() == std::vector<std::string>{"a"});
  rig.fake.release("a");
  rig.drain();
  CHECK(rig.fake.calls() == 2);
  CHECK(rig.fake.state().same_key_overlaps == 0);
  CHECK(rig.fake.state().max_running == 1);
  CHECK(rig.queue.size() == 0);
  CHECK(rig.outcomes.size() == 2);
}

TEST_CASE("controller: a Transient outcome is retried after a full-jitter delay whose ceiling doubles per attempt") {
  const Millis base(16), cap(128);
  Rig rig(options(16, base, cap, std::chrono::hours(1)));
  rig.fake.state().answer = [](const ScriptedReconciler::Call&) { return Outcome::transient("backend said no"); };
  rig.add("flaky");
  rig.controller.start();
  for (int i = 0; i < 8; ++i) {
    INFO("attempt " << i);
    REQUIRE(rig.run_until([&] { return rig.outcomes.size() == static_cast<std::size_t>(i + 1); }));
    CHECK(rig.fake.state().calls[i].request.attempts == i);
    auto row = rig.row("flaky");
    CHECK(row.attempts == i + 1);
    CHECK(row.reason == "retry");
    CHECK(row.last_error == "backend said no");
    auto delay = rig.scheduled_in("flaky");
    CHECK(delay >= 10);
    CHECK(delay <= std::min(cap.count(), base.count() << i));
    // Not before it is due.
    rig.drain();
    CHECK(rig.fake.calls() == static_cast<std::size_t>(i + 1));
    rig.clock.advance(Millis(delay));
  }
  // Success forgets the attempts and the item.
  rig.fake.state().answer = [](const ScriptedReconciler::Call&) { return Outcome::done(); };
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 9; }));
  CHECK(rig.fake.state().calls[8].request.attempts == 8);
  CHECK_FALSE(rig.queue.get(key_of("flaky")));
}

TEST_CASE("controller: the Transient backoff reaches beyond the base with many attempts, and never beyond the cap") {
  const Millis base(1000), cap(300000);
  Rig rig(options(16, base, cap, std::chrono::hours(1)));
  rig.fake.state().answer = [](const ScriptedReconciler::Call&) { return Outcome::transient("still failing"); };
  std::vector<persistence::QueueRow> rows;
  for (int i = 0; i < 8; ++i)
    rows.push_back({key_of("r" + std::to_string(i)), "retry", 10, rig.clock.wall_ms(), "still failing",
                    persistence::ItemState::Pending, 0});
  rig.controller.restore(rows);
  rig.controller.start();
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 8; }));
  std::int64_t longest = 0;
  for (int i = 0; i < 8; ++i) {
    auto name = "r" + std::to_string(i);
    CHECK(rig.row(name).attempts == 11);
    auto delay = rig.scheduled_in(name);
    CHECK(delay >= 10);
    CHECK(delay <= cap.count());
    longest = std::max(longest, delay);
  }
  for (auto& c : rig.fake.state().calls) CHECK(c.request.attempts == 10);
  // Ceiling min(cap, base * 2^10) = cap: eight draws all at or below the base would have a chance
  // of (1/300)^8; a policy that ignored the attempts would never exceed it.
  CHECK(longest > base.count());
}

TEST_CASE("controller: Permanent is retried after exactly permanent-retry, and Done is forgotten") {
  const Millis permanent(50);
  Rig rig(options(16, Millis(16), Millis(32), permanent));
  rig.fake.state().answer = [](const ScriptedReconciler::Call& c) {
    return c.name == "bad" ? Outcome::permanent("the bucket does not exist") : Outcome::done();
  };
  rig.add("bad");
  rig.add("fine");
  rig.controller.start();
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 2; }));
  CHECK_FALSE(rig.queue.get(key_of("fine")));
  auto row = rig.row("bad");
  CHECK(row.attempts == 1);
  CHECK(row.last_error == "the bucket does not exist");
  CHECK(rig.scheduled_in("bad") == permanent.count());

  // 1 ms early: not run (the Controller's timer fires, finds nothing due, and waits again).
  rig.clock.advance(permanent - Millis(1));
  rig.run_until([] { return false; }, Millis(150));
  CHECK(rig.fake.calls() == 2);
  rig.clock.advance(Millis(1));
  REQUIRE(rig.run_until([&] { return rig.fake.calls() == 3; }));
  CHECK(rig.fake.state().calls[2].name == "bad");
  CHECK(rig.fake.state().calls[2].request.attempts == 1);
  CHECK(rig.fake.calls_of("fine") == 1);
}

TEST_CASE("controller: Done with requeue_after comes back after that delay as a revalidation") {
  const Millis period(30);
  Rig rig(options(16, Millis(16), Millis(32), std::chrono::hours(1)));
  rig.fake.state().answer = [&](const ScriptedReconciler::Call& c) {
    return c.request.revalidate ? Outcome::done() : Outcome::done_after(period);
  };
  rig.add("ready");
  rig.controller.start();
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 1; }));
  CHECK_FALSE(rig.fake.state().calls[0].request.revalidate);
  auto row = rig.row("ready");
  CHECK(row.reason == kRevalidateReason);
  CHECK(row.attempts == 0);
  CHECK(row.state == persistence::ItemState::Pending);
  CHECK(rig.scheduled_in("ready") == period.count());
  rig.drain();
  CHECK(rig.fake.calls() == 1);

  rig.clock.advance(period);
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 2; }));
  CHECK(rig.fake.state().calls[1].request.revalidate);
  CHECK_FALSE(rig.queue.get(key_of("ready")));  // the revalidation answered plain Done
}

TEST_CASE("controller: a reconcile that throws is logged and retried as Transient, its item kept") {
  LogCapture log;
  const Millis base(16);
  Rig rig(options(16, base, Millis(32), std::chrono::hours(1)));
  rig.fake.state().answer = [](const ScriptedReconciler::Call& c) -> Outcome {
    if (c.request.attempts == 0) throw std::logic_error("boom");
    return Outcome::done();
  };
  rig.add("crashy");
  rig.controller.start();
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 1; }));
  CHECK(rig.outcomes[0].second.kind == Outcome::Transient);
  CHECK(rig.outcomes[0].second.error.find("boom") != std::string::npos);
  CHECK(log.has("error", "demo/crashy", "boom"));
  auto row = rig.row("crashy");
  CHECK(row.attempts == 1);
  CHECK(row.last_error.find("boom") != std::string::npos);
  auto delay = rig.scheduled_in("crashy");
  CHECK(delay >= 10);
  CHECK(delay <= base.count());
  CHECK(rig.controller.idle());

  rig.clock.advance(Millis(delay));
  REQUIRE(rig.run_until([&] { return rig.outcomes.size() == 2; }));
  CHECK(rig.outcomes[1].second.kind == Outcome::Done);
  CHECK_FALSE(rig.queue.get(key_of("crashy")));
}

TEST_CASE("controller: after stop() nothing new is claimed, reconciles in flight finish, then on_idle fires once") {
  Rig rig(options(2, Millis(1000), Millis(60000), Millis(600000)));
  rig.fake.state().hold = true;
  for (auto name : {"a", "b", "c", "d"}) rig.add(name);
  rig.controller.start();
  rig.drain();
  REQUIRE(rig.fake.calls() == 2);

  rig.controller.stop();
  rig.add("e");
  rig.drain();
  CHECK(rig.fake.calls() == 2);

  auto held = rig.fake.held();
  REQUIRE(held.size() == 2);
  rig.fake.release(held[0]);
  rig.drain();
  CHECK(rig.fake.calls() == 2);  // the freed worker claims nothing
  CHECK(rig.idle_calls == 0);    // one still runs
  CHECK_FALSE(rig.controller.idle());
  rig.fake.release(held[1], Outcome::transient("late failure"));
  rig.drain();
  CHECK(rig.fake.calls() == 2);
  CHECK(rig.idle_calls == 1);
  CHECK(rig.controller.idle());
  // Both finished normally: one forgotten, one scheduled for a retry; the rest wait for the next start.
  CHECK(rig.outcomes.size() == 2);
  CHECK_FALSE(rig.queue.get(key_of(held[0])));
  CHECK(rig.row(held[1]).attempts == 1);
  CHECK(rig.queue.pending() == 4);
  CHECK(rig.queue.processing() == 0);
}

TEST_CASE("controller: cancel_in_flight ends a held reconcile and hands its item back without counting an attempt") {
  Rig rig(options(4, Millis(1000), Millis(60000), Millis(600000)));
  rig.fake.state().hold = true;
  rig.controller.restore({{key_of("slow"), "retry", 2, rig.clock.wall_ms(), "earlier failure",
                           persistence::ItemState::Pending, 0}});
  rig.controller.start();
  rig.drain();
  REQUIRE(rig.fake.calls() == 1);
  CHECK(rig.fake.state().calls[0].request.attempts == 2);

  rig.controller.stop();
  rig.controller.cancel_in_flight();
  CHECK(rig.run_until([&] { return rig.controller.idle(); }, std::chrono::seconds(5)));
  CHECK(rig.idle_calls == 1);
  CHECK(rig.fake.state().running.empty());  // the reconcile itself ended, not only the Controller's count
  CHECK(rig.outcomes.empty());              // no outcome: it was cut short, not finished
  auto row = rig.row("slow");
  CHECK(row.state == persistence::ItemState::Pending);
  CHECK(row.attempts == 2);
  CHECK(row.interrupted == 0);
  CHECK(rig.queue.next_due_in() == std::chrono::steady_clock::duration::zero());
  CHECK(rig.fake.calls() == 1);
}
