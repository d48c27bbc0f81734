#pragma once
// WorkQueue — the durable work queue, with client-go's workqueue semantics:
//  - a key is pending at most once (adding it again keeps one entry; the earliest due time wins);
//  - a key being processed is never handed out again until it is completed or failed;
//  - adds that arrive while it is processed collapse into one re-run right after it.
// Every change is journaled to the StateStore (grouped commits), so after a crash or kill -9
// `restore()` brings back everything that was pending or in flight.
//
// Poison items: an item that was in flight when the process ended (crash, kill -9, a grace period
// that ran out) counts one more failed attempt and one more *interrupted* attempt, and runs again
// when the caller's policy says (the error policy's backoff, or a parked item's slow schedule): it
// is never due at once, so an item that crashes the process cannot loop. While its last attempt was
// interrupted an add does not bring it forward (a source lists everything again at each start, and
// that must not defeat the backoff). Any attempt that ends, in success or failure, resets the
// interrupted count.
//
// Time: the schedule runs on a monotonic clock, so a wall-clock step delays or releases nothing.
// The wall clock is used only to journal due times as Unix milliseconds and to convert them back at
// restore. Both clocks are injected. Reactor thread only.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "persistence/records.hpp"

namespace stowage::persistence {

class StateStore;

class WorkQueue {
 public:
  using Millis = std::chrono::milliseconds;
  using SteadyTime = std::chrono::steady_clock::time_point;
  using Clock = std::function<std::int64_t()>;       // the wall clock, Unix ms: only for the journal
  using SteadyClock = std::function<SteadyTime()>;  // the schedule's clock
  // When to run an item found interrupted at restore; its row already counts the interruption
  // (attempts and interrupted both one higher than when it was claimed).
  using InterruptedPolicy = std::function<Millis(const QueueRow&)>;

  // A claimed item, and how long it had been due before it was claimed.
  struct Claimed : QueueRow {
    Millis overdue{0};
  };

  // store may be null (tests, bench baselines).
  WorkQueue(StateStore* store, Clock wall_clock, SteadyClock steady_clock = &std::chrono::steady_clock::now);

  // Start-up: re-queues rows loaded from the store; pending ones keep their due time, in-flight ones
  // are due after `retry_interrupted(row)`. Call before anything is added.
  void restore(const std::vector<QueueRow>& rows, const InterruptedPolicy& retry_interrupted);

  // Queues `key` to run `after` from now. See the semantics above.
  void add(const QueueKey& key, const std::string& reason, Millis after = Millis(0));

  // Hands out the pending item with the earliest due time if it is due now.
  std::optional<Claimed> claim();

  // Finished successfully: the item's attempts are forgotten; it is re-run at once if it was added
  // meanwhile, else removed.
  void complete(const QueueKey& key);

  // Finished successfully, but wants another look `after` from now (RequeueAfter): attempts forgotten.
  void complete_after(const QueueKey& key, Millis after, const std::string& reason);

  // Failed: attempts + 1, retried `retry_after` from now (or at once if it was added meanwhile).
  void fail(const QueueKey& key, const std::string& error, Millis retry_after);

  // Cut short by the process's own stop (a cancelled reconcile at the end of the grace period):
  // pending again, due now, with its attempts and interrupted count as they were before the claim,
  // so that the next start runs it at once and an orderly stop never counts towards parking it.
  void release(const QueueKey& key);

  // How long until the earliest pending item is due (zero when one is due already); nullopt when
  // none is pending.
  std::optional<std::chrono::steady_clock::duration> next_due_in() const;

  // Called (on the reactor) whenever an item becomes pending: lets the runner wake up.
  void on_added(std::function<void()> callback) { on_added_ = std::move(callback); }

  std::size_t pending() const { return schedule_.size(); }
  // Pending items already due now (client-go's queue depth: items scheduled later, such as
  // revalidations, are not waiting yet). Amortized O(1): each item crosses "due" once.
  std::size_t due() const { return schedule_.due_at(steady_()); }
  std::size_t processing() const { return processing_; }
  std::size_t size() const { return items_.size(); }
  std::optional<QueueRow> get(const QueueKey& key) const;

 private:
  // Pending keys by due time, with a running count of those already due: a boundary iterator
  // separates entries at or before the latest time asked about from the later ones, and only moves
  // forward (the clock is monotonic), so each entry is counted once after it was inserted.
  class Schedule {
   public:
    using Entries = std::multimap<SteadyTime, std::string>;
    Entries::iterator insert(SteadyTime at, std::string id);
    void erase(Entries::iterator it);
    std::size_t due_at(SteadyTime now) const;
    std::size_t size() const { return entries_.size(); }
    bool empty() const { return entries_.empty(); }
    const Entries::value_type& first() const { return *entries_.begin(); }

   private:
    Entries entries_;
    mutable SteadyTime seen_ = SteadyTime::min();        // the latest `now` due_at was asked about
    mutable Entries::iterator boundary_ = entries_.end();  // the first entry after seen_
    mutable std::size_t due_ = 0;                        // entries at or before seen_
  };

  struct Item {
    explicit Item(QueueRow r) : row(std::move(r)) {}
    QueueRow row;
    bool dirty = false;  // added while processing
    SteadyTime due{};
    Schedule::Entries::iterator due_it;
    bool scheduled = false;
  };

  void schedule(Item& item, SteadyTime at);
  void unschedule(Item& item);
  void journal(Item& item);
  void forget(const std::string& id);
  Item* find(const QueueKey& key);
  SteadyTime after_now(Millis after) const;
  SteadyTime steady_of(std::int64_t wall_ms) const;
  std::int64_t wall_of(SteadyTime t) const;

  StateStore* store_;
  Clock wall_;
  SteadyClock steady_;
  // by QueueKey::str(); an ordered map: no rehash, so no multi-millisecond pause as the queue grows
  std::map<std::string, Item> items_;
  Schedule schedule_;  // pending items by due time
  std::size_t processing_ = 0;
  std::function<void()> on_added_;
};

}  // namespace stowage::persistence
