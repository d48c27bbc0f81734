#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "persistence/work_queue.hpp"
#include "support/fake_store.hpp"

using namespace stowage::persistence;
using namespace std::chrono_literals;

namespace {
// Both of the queue's clocks, moved by hand: `wall` is Unix ms (it may step), `steady` only advances.
struct FakeClocks {
  std::int64_t wall = 1'700'000'000'000;
  WorkQueue::SteadyTime steady = WorkQueue::SteadyTime(1000h);
  void advance(std::chrono::milliseconds d) {
    wall += d.count();
    steady += d;
  }
  WorkQueue make(StateStore* store = nullptr) {
    return WorkQueue(store, [this] { return wall; }, [this] { return steady; });
  }
};
QueueKey key(const std::string& name) { return {"BackupStorage", "demo", name}; }
// The policy the tests hand to restore(): a fixed delay per interrupted count, recorded.
struct Policy {
  std::vector<QueueRow> asked;
  WorkQueue::InterruptedPolicy fn() {
    return [this](const QueueRow& row) {
      asked.push_back(row);
      return std::chrono::milliseconds(1000 * row.interrupted);
    };
  }
};
}  // namespace

TEST_CASE("a key is pending at most once") {
  FakeClocks clock;
  auto q = clock.make();
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
  FakeClocks clock;
  auto q = clock.make();
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
  FakeClocks clock;
  auto q = clock.make();
  q.add(key("late"), "x", 5000ms);
  q.add(key("soon"), "x", 1000ms);
  q.add(key("late"), "x", 500ms);   // moves earlier
  q.add(key("soon"), "x", 9000ms);  // later: ignored
  CHECK(q.next_due_in() == 500ms);
  CHECK_FALSE(q.claim());
  clock.advance(600ms);
  auto late = q.claim();
  REQUIRE(late);
  CHECK(late->key == key("late"));
  CHECK(late->overdue == 100ms);
  CHECK_FALSE(q.claim());
  clock.advance(500ms);
  CHECK(q.claim()->key == key("soon"));
}

TEST_CASE("fail counts attempts and delays, success forgets them") {
  FakeClocks clock;
  auto q = clock.make();
  q.add(key("a"), "added");
  q.claim();
  q.fail(key("a"), "disk full", 2000ms);
  auto row = q.get(key("a"));
  REQUIRE(row);
  CHECK(row->attempts == 1);
  CHECK(row->last_error == "disk full");
  CHECK(row->next_attempt_ms == clock.wall + 2000);  // journaled as wall-clock time
  CHECK_FALSE(q.claim());
  clock.advance(2000ms);
  REQUIRE(q.claim());
  q.fail(key("a"), "disk full", 4000ms);
  CHECK(q.get(key("a"))->attempts == 2);
  clock.advance(4000ms);
  REQUIRE(q.claim());
  q.complete_after(key("a"), 60000ms, "periodic");
  CHECK(q.get(key("a"))->attempts == 0);
  CHECK(q.next_due_in() == 60000ms);
}

TEST_CASE("an add during a failing run re-runs at once instead of waiting for the backoff") {
  FakeClocks clock;
  auto q = clock.make();
  q.add(key("a"), "added");
  q.claim();
  q.add(key("a"), "secret created");
  q.fail(key("a"), "secret missing", 600000ms);
  CHECK(q.next_due_in() == 0ms);
}

TEST_CASE("restore re-queues pending items at their journaled time and backs off in-flight ones") {
  FakeClocks clock;
  auto q = clock.make();
  Policy policy;
  q.restore({QueueRow{key("pending"), "added", 0, clock.wall + 100, "", ItemState::Pending},
             QueueRow{key("inflight"), "added", 2, clock.wall - 5000, "", ItemState::Processing, 1}},
            policy.fn());
  CHECK(q.size() == 2);
  // The policy saw the interruption counted: one more attempt, one more interrupted in a row.
  REQUIRE(policy.asked.size() == 1);
  CHECK(policy.asked[0].key == key("inflight"));
  CHECK(policy.asked[0].attempts == 3);
  CHECK(policy.asked[0].interrupted == 2);
  auto inflight = q.get(key("inflight"));
  CHECK(inflight->state == ItemState::Pending);
  CHECK(inflight->next_attempt_ms == clock.wall + 2000);  // the policy's delay, from now
  CHECK_THAT(inflight->last_error, Catch::StartsWith("interrupted"));
  // Nothing is due at once: an item that crashed the process does not run again straight away.
  CHECK_FALSE(q.claim());
  clock.advance(100ms);
  CHECK(q.claim()->key == key("pending"));
  CHECK_FALSE(q.claim());
  clock.advance(1900ms);
  auto again = q.claim();
  REQUIRE(again);
  CHECK(again->key == key("inflight"));
  CHECK(again->interrupted == 2);  // still counted while it runs: a crash now makes it 3
}

TEST_CASE("restore writes back only the rows it changes: pending ones stay as journaled") {
  boost::asio::io_context io;
  test_support::FakeStore store(io.get_executor());
  store.stall_commits();  // what restore writes stays counted in uncommitted_bytes
  FakeClocks clock;
  auto q = clock.make(&store);
  Policy policy;
  std::vector<QueueRow> rows;
  for (int i = 0; i < 100; ++i)
    rows.push_back(QueueRow{key("p" + std::to_string(i)), "added", 0, clock.wall + 600000, "", ItemState::Pending});
  q.restore(rows, policy.fn());
  CHECK(q.size() == 100);
  CHECK(store.uncommitted_bytes() == 0);
  CHECK(q.get(key("p7"))->next_attempt_ms == clock.wall + 600000);

  // An interrupted row changes (attempts, backoff): that one is written.
  q.restore({QueueRow{key("inflight"), "added", 0, clock.wall, "", ItemState::Processing}}, policy.fn());
  CHECK(store.uncommitted_bytes() > 0);
  store.resume_commits();
  io.run_for(100ms);
  auto stored = store.load_queue();
  REQUIRE(stored.size() == 1);
  CHECK(stored[0].key == key("inflight"));
  CHECK(stored[0].interrupted == 1);
}

TEST_CASE("an item whose last attempt was interrupted is not brought forward by an add") {
  FakeClocks clock;
  auto q = clock.make();
  Policy policy;
  q.restore({QueueRow{key("poison"), "added", 0, clock.wall, "", ItemState::Processing}}, policy.fn());
  q.add(key("poison"), "changed");  // every start lists every storage again
  CHECK(q.next_due_in() == 1000ms);
  CHECK_FALSE(q.claim());
  clock.advance(1000ms);
  REQUIRE(q.claim());
}

TEST_CASE("an attempt that ends, in success or failure, resets the interrupted count") {
  FakeClocks clock;
  auto q = clock.make();
  Policy policy;
  q.restore({QueueRow{key("a"), "added", 3, clock.wall, "", ItemState::Processing, 4},
             QueueRow{key("b"), "added", 3, clock.wall, "", ItemState::Processing, 4},
             QueueRow{key("c"), "added", 3, clock.wall, "", ItemState::Processing, 4}},
            policy.fn());
  clock.advance(5000ms);
  for (int i = 0; i < 3; ++i) REQUIRE(q.claim());
  q.fail(key("a"), "timeout", 1000ms);
  q.complete_after(key("b"), 1000ms, "revalidate");
  q.add(key("c"), "changed");  // dirty: complete() keeps it queued
  q.complete(key("c"));
  CHECK(q.get(key("a"))->interrupted == 0);
  CHECK(q.get(key("b"))->interrupted == 0);
  CHECK(q.get(key("c"))->interrupted == 0);
  // And so adds bring them forward again.
  q.add(key("a"), "changed");
  CHECK(q.next_due_in() == 0ms);
}

TEST_CASE("a wall-clock step neither delays nor releases the schedule") {
  FakeClocks clock;
  auto q = clock.make();
  q.add(key("retry"), "x", 5000ms);
  q.add(key("revalidate"), "x", 600000ms);
  clock.wall += 3'600'000;  // the wall clock jumps an hour ahead; no time passes
  CHECK_FALSE(q.claim());
  CHECK(q.due() == 0);
  CHECK(q.next_due_in() == 5000ms);
  clock.wall -= 7'200'000;  // and then an hour behind where it was
  clock.steady += 5000ms;   // five seconds pass
  auto retry = q.claim();
  REQUIRE(retry);
  CHECK(retry->key == key("retry"));
  CHECK(retry->overdue == 0ms);
  CHECK(q.next_due_in() == 595000ms);
  // The journal converts with the wall clock of the moment it writes.
  q.fail(key("retry"), "e", 1000ms);
  CHECK(q.get(key("retry"))->next_attempt_ms == clock.wall + 1000);
}

TEST_CASE("restore converts journaled wall times to the new process's steady clock") {
  FakeClocks before;
  auto q1 = before.make();
  q1.add(key("a"), "x", 30000ms);
  auto row = q1.get(key("a"));
  REQUIRE(row);
  // A new process: its steady clock has another origin; 10 s of wall time went by.
  FakeClocks after;
  after.wall = before.wall + 10000;
  after.steady = WorkQueue::SteadyTime(5h);
  auto q2 = after.make();
  Policy policy;
  q2.restore({*row}, policy.fn());
  CHECK(policy.asked.empty());
  CHECK(q2.next_due_in() == 20000ms);
}

TEST_CASE("the due count stays right under adds, claims, removals and reschedules") {
  FakeClocks clock;
  auto q = clock.make();
  std::mt19937 rng(13);
  // A model: each pending key's due time, and which keys are claimed.
  std::map<std::string, WorkQueue::SteadyTime> pending;
  std::set<std::string> claimed;
  auto model_due = [&] {
    std::size_t n = 0;
    for (const auto& [_, at] : pending) n += at <= clock.steady ? 1 : 0;
    return n;
  };
  for (int step = 0; step < 20000; ++step) {
    std::string name = "k" + std::to_string(rng() % 40);
    auto delay = std::chrono::milliseconds(rng() % 3 == 0 ? 0 : rng() % 5000);
    switch (rng() % 6) {
      case 0:
      case 1:
        if (claimed.count(name)) break;  // adds to a claimed key only mark it dirty: kept out of the model
        q.add(key(name), "x", delay);
        if (!pending.count(name) || clock.steady + delay < pending[name]) pending[name] = clock.steady + delay;
        break;
      case 2:
        if (auto item = q.claim()) {
          pending.erase(item->key.name);
          claimed.insert(item->key.name);
        }
        break;
      case 3:
        if (claimed.erase(name)) q.complete(key(name));
        break;
      case 4:
        if (claimed.erase(name)) {
          q.fail(key(name), "e", delay);
          pending[name] = clock.steady + delay;
        }
        break;
      case 5:
        clock.advance(std::chrono::milliseconds(rng() % 700));
        break;
    }
    if (step % 7 == 0 || (rng() % 2)) {  // asked at irregular moments: the index moves lazily
      INFO("step " << step);
      REQUIRE(q.due() == model_due());
      REQUIRE(q.pending() == pending.size());
    }
  }
}

TEST_CASE("on_added fires when work becomes pending") {
  FakeClocks clock;
  auto q = clock.make();
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

TEST_CASE("release hands a claimed item back due at once, counting no attempt and no interruption") {
  FakeClocks clock;
  auto q = clock.make();
  Policy policy;
  q.restore({QueueRow{key("a"), "added", 2, clock.wall - 10, "boom", ItemState::Pending, 1}}, policy.fn());
  auto claimed = q.claim();
  REQUIRE(claimed);
  CHECK(q.processing() == 1);
  q.release(key("a"));
  CHECK(q.processing() == 0);
  auto row = q.get(key("a"));
  REQUIRE(row);
  CHECK(row->state == ItemState::Pending);
  CHECK(row->attempts == 2);
  CHECK(row->interrupted == 1);
  CHECK(row->next_attempt_ms == clock.wall);
  // Due now: claimed again at once (the next start would run it first).
  auto again = q.claim();
  REQUIRE(again);
  CHECK(again->key == key("a"));
  q.complete(key("a"));
  // Releasing what is not being processed changes nothing.
  q.add(key("b"), "added", 1000ms);
  q.release(key("b"));
  q.release(key("missing"));
  CHECK(q.processing() == 0);
  CHECK(q.size() == 1);
  CHECK(q.get(key("b"))->next_attempt_ms == clock.wall + 1000);
}

// Through an in-memory store (tests/support/fake_store.hpp): what the queue journals is what a
// restart finds, after every kind of change, and a store that fell behind replays its last commit.
namespace {
using test_support::FakeStore;
void check_journal_matches(const WorkQueue& q, FakeStore& store, const std::vector<QueueKey>& keys) {
  auto rows = store.load_queue();
  for (const auto& k : keys) {
    INFO(k.str());
    auto live = q.get(k);
    auto stored = std::find_if(rows.begin(), rows.end(), [&](const QueueRow& r) { return r.key == k; });
    REQUIRE(live.has_value() == (stored != rows.end()));
    if (!live) continue;
    CHECK(stored->state == live->state);
    CHECK(stored->attempts == live->attempts);
    CHECK(stored->interrupted == live->interrupted);
    CHECK(stored->next_attempt_ms == live->next_attempt_ms);
    CHECK(stored->last_error == live->last_error);
    // An add while processing is not journaled (a restart re-runs an item found in flight anyway),
    // so only a pending item's reason must match.
    if (live->state == ItemState::Pending) CHECK(stored->reason == live->reason);
  }
}
}  // namespace

TEST_CASE("every change to the queue reaches its store: a restart after any of them finds the queue as it was") {
  FakeClocks clock;
  boost::asio::io_context io;
  FakeStore store(io.get_executor());
  auto q = clock.make(&store);
  const std::vector<QueueKey> keys{key("a"), key("b"), key("c")};
  q.add(key("a"), "added");
  q.add(key("b"), "added", 5s);
  q.add(key("c"), "added");
  check_journal_matches(q, store, keys);
  REQUIRE(q.claim()->key == key("a"));
  check_journal_matches(q, store, keys);
  q.fail(key("a"), "timeout", 2s);
  check_journal_matches(q, store, keys);
  REQUIRE(q.claim()->key == key("c"));
  q.complete_after(key("c"), 60s, "revalidate");
  check_journal_matches(q, store, keys);
  clock.advance(2s);
  REQUIRE(q.claim()->key == key("a"));
  q.add(key("a"), "secret changed");  // while processing: one re-run right after
  check_journal_matches(q, store, keys);
  q.complete(key("a"));
  check_journal_matches(q, store, keys);
  REQUIRE(q.claim()->key == key("a"));
  q.release(key("a"));
  check_journal_matches(q, store, keys);
  REQUIRE(q.claim()->key == key("a"));
  q.complete(key("a"));
  check_journal_matches(q, store, keys);
  CHECK_FALSE(q.get(key("a")));
}

TEST_CASE("a restart after the store fell behind replays its last commit: work is redone, never lost") {
  FakeClocks clock;
  boost::asio::io_context io;
  FakeStore store(io.get_executor());
  {
    auto q = clock.make(&store);
    q.add(key("done-in-time"), "added");
    q.add(key("done-late"), "added");
    REQUIRE(q.claim()->key == key("done-in-time"));
    q.complete(key("done-in-time"));
    store.stall_commits();  // a full disk: nothing more commits
    REQUIRE(q.claim()->key == key("done-late"));
    q.complete(key("done-late"));
    CHECK(store.uncommitted_bytes() > 0);
    store.abandon();  // the stop's deadline passed
  }
  auto q = clock.make(&store);
  Policy policy;
  q.restore(store.load_queue(), policy.fn());
  CHECK_FALSE(q.get(key("done-in-time")));
  auto redo = q.get(key("done-late"));
  REQUIRE(redo);  // its completion never committed: it runs again
  CHECK(redo->state == ItemState::Pending);
  CHECK(policy.asked.empty());  // its claim never committed either: no interruption is counted
  CHECK(q.claim()->key == key("done-late"));
}
