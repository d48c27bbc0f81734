#include <catch2/catch.hpp>

#include "persistence/work_queue.hpp"

using namespace stowage::persistence;

namespace {
struct FakeClock {
  std::int64_t now = 1'000'000;
  WorkQueue::Clock fn() {
    return [this] { return now; };
  }
};
QueueKey key(const std::string& name) { return {"BackupStorage", "demo", name}; }
}  // namespace

TEST_CASE("a key is pending at most once") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  q.add(key("a"), "added");
  q.add(key("a"), "changed");
  q.add(key("a"), "changed again");
  CHECK(q.pending() == 1);
  auto item = q.claim();
  REQUIRE(item);
  CHECK(item->key == key("a"));
  CHECK_FALSE(q.claim());
}

TEST_CASE("a key being processed is not handed out again, adds during processing collapse into one re-run") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  q.add(key("a"), "added");
  REQUIRE(q.claim());
  q.add(key("a"), "secret changed");
  q.add(key("a"), "secret changed");
  CHECK_FALSE(q.claim());  // never twice at once
  CHECK(q.processing() == 1);
  q.complete(key("a"));
  auto again = q.claim();
  REQUIRE(again);
  CHECK(again->reason == "secret changed");
  q.complete(key("a"));
  CHECK(q.size() == 0);
  CHECK_FALSE(q.claim());
}

TEST_CASE("earliest deadline wins and items come out in due order") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  q.add(key("late"), "x", clock.now + 5000);
  q.add(key("soon"), "x", clock.now + 1000);
  q.add(key("late"), "x", clock.now + 500);  // moves earlier
  q.add(key("soon"), "x", clock.now + 9000);  // later: ignored
  CHECK(q.next_due() == clock.now + 500);
  CHECK_FALSE(q.claim());
  clock.now += 600;
  CHECK(q.claim()->key == key("late"));
  CHECK_FALSE(q.claim());
  clock.now += 500;
  CHECK(q.claim()->key == key("soon"));
}

TEST_CASE("fail counts attempts and delays, success forgets them") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  q.add(key("a"), "added");
  q.claim();
  q.fail(key("a"), "disk full", clock.now + 2000);
  auto row = q.get(key("a"));
  REQUIRE(row);
  CHECK(row->attempts == 1);
  CHECK(row->last_error == "disk full");
  CHECK_FALSE(q.claim());
  clock.now += 2000;
  REQUIRE(q.claim());
  q.fail(key("a"), "disk full", clock.now + 4000);
  CHECK(q.get(key("a"))->attempts == 2);
  clock.now += 4000;
  REQUIRE(q.claim());
  q.complete_after(key("a"), clock.now + 60000, "periodic");
  CHECK(q.get(key("a"))->attempts == 0);
  CHECK(q.next_due() == clock.now + 60000);
}

TEST_CASE("an add during a failing run re-runs at once instead of waiting for the backoff") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  q.add(key("a"), "added");
  q.claim();
  q.add(key("a"), "secret created");
  q.fail(key("a"), "secret missing", clock.now + 600000);
  CHECK(q.next_due() == clock.now);
}

TEST_CASE("restore re-queues pending and in-flight items, in-flight ones count an attempt") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  q.restore({QueueRow{key("pending"), "added", 0, clock.now + 100, "", ItemState::Pending},
             QueueRow{key("inflight"), "added", 2, clock.now + 99999, "", ItemState::Processing}});
  CHECK(q.size() == 2);
  auto first = q.claim();
  REQUIRE(first);
  CHECK(first->key == key("inflight"));
  CHECK(first->attempts == 3);
  CHECK_FALSE(q.claim());
  clock.now += 100;
  CHECK(q.claim()->key == key("pending"));
}

TEST_CASE("on_added fires when work becomes pending") {
  FakeClock clock;
  WorkQueue q(nullptr, clock.fn());
  int woken = 0;
  q.on_added([&] { ++woken; });
  q.add(key("a"), "x");
  CHECK(woken == 1);
  q.add(key("a"), "x");  // already pending at the same time: nothing new
  CHECK(woken == 1);
  q.claim();
  q.add(key("a"), "x");  // dirty while processing: nothing to do until completion
  CHECK(woken == 1);
  q.complete(key("a"));
  CHECK(woken == 2);
}
