#pragma once
// WorkQueue — the durable work queue, with client-go's workqueue semantics:
//  - a key is pending at most once (adding it again keeps one entry; the earliest deadline wins);
//  - a key being processed is never handed out again until it is completed or failed;
//  - adds that arrive while it is processed collapse into one re-run right after it.
// Every change is journaled to the StateStore (grouped commits), so after a crash or kill -9
// `restore()` brings back everything that was pending or in flight; in-flight items count the
// interrupted run as a failed attempt, so an item that crashes the process backs off.
// Reactor thread only. Time is wall-clock Unix milliseconds from an injected clock.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "persistence/records.hpp"

namespace stowage::persistence {

class StateStore;

class WorkQueue {
 public:
  using Clock = std::function<std::int64_t()>;  // now, Unix ms

  WorkQueue(StateStore* store, Clock clock);  // store may be null (tests, bench baselines)

  // Start-up: re-queues rows loaded from the store (pending and in-flight alike).
  void restore(const std::vector<QueueRow>& rows);

  // Queues `key` to run at `at_ms` (0 = now). See the semantics above.
  void add(const QueueKey& key, const std::string& reason, std::int64_t at_ms = 0);

  // Hands out the pending item with the earliest due time if it is due now.
  std::optional<QueueRow> claim();

  // Finished successfully: the item's attempts are forgotten; it is re-run at once if it was added
  // meanwhile, else removed.
  void complete(const QueueKey& key);

  // Finished successfully, but wants another look at `at_ms` (RequeueAfter): attempts forgotten.
  void complete_after(const QueueKey& key, std::int64_t at_ms, const std::string& reason);

  // Failed: attempts + 1, retried at `retry_at_ms` (or at once if it was added meanwhile).
  void fail(const QueueKey& key, const std::string& error, std::int64_t retry_at_ms);

  // Earliest due time among pending items, or nullopt when none is pending.
  std::optional<std::int64_t> next_due() const;

  // Called (on the reactor) whenever an item becomes pending: lets the runner wake up.
  void on_added(std::function<void()> callback) { on_added_ = std::move(callback); }

  std::size_t pending() const { return due_.size(); }
  // Pending items already due at `now_ms` (client-go's queue depth: items scheduled later, such as
  // revalidations, are not waiting yet). Counts up to the first later one.
  std::size_t due_by(std::int64_t now_ms) const {
    std::size_t n = 0;
    for (auto it = due_.begin(); it != due_.end() && it->first <= now_ms; ++it) ++n;
    return n;
  }
  std::size_t processing() const { return processing_; }
  std::size_t size() const { return items_.size(); }
  std::optional<QueueRow> get(const QueueKey& key) const;

 private:
  struct Item {
    explicit Item(QueueRow r) : row(std::move(r)) {}
    QueueRow row;
    bool dirty = false;  // added while processing
    std::multimap<std::int64_t, std::string>::iterator due_it;
    bool scheduled = false;
  };

  void schedule(Item& item, std::int64_t at_ms);
  void unschedule(Item& item);
  void journal(const Item& item);
  void forget(const std::string& id);
  Item* find(const QueueKey& key);

  StateStore* store_;
  Clock clock_;
  // by QueueKey::str(); an ordered map: no rehash, so no multi-millisecond pause as the queue grows
  std::map<std::string, Item> items_;
  std::multimap<std::int64_t, std::string> due_;      // pending items by due time
  std::size_t processing_ = 0;
  std::function<void()> on_added_;
};

}  // namespace stowage::persistence
