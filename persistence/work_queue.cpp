#include "persistence/work_queue.hpp"

#include "persistence/state_store.hpp"

namespace stowage::persistence {

WorkQueue::WorkQueue(StateStore* store, Clock clock) : store_(store), clock_(std::move(clock)) {}

WorkQueue::Item* WorkQueue::find(const QueueKey& key) {
  auto it = items_.find(key.str());
  return it == items_.end() ? nullptr : &it->second;
}

void WorkQueue::journal(const Item& item) {
  if (store_) store_->put(item.row);
}

void WorkQueue::schedule(Item& item, std::int64_t at_ms) {
  unschedule(item);
  item.row.state = ItemState::Pending;
  item.row.next_attempt_ms = at_ms;
  item.due_it = due_.emplace(at_ms, item.row.key.str());
  item.scheduled = true;
}

void WorkQueue::unschedule(Item& item) {
  if (!item.scheduled) return;
  due_.erase(item.due_it);
  item.scheduled = false;
}

void WorkQueue::forget(const std::string& id) {
  auto it = items_.find(id);
  if (it == items_.end()) return;
  unschedule(it->second);
  if (store_) store_->erase_queue(it->second.row.key);
  items_.erase(it);
}

void WorkQueue::restore(const std::vector<QueueRow>& rows) {
  for (const auto& row : rows) {
    Item item(row);
    if (row.state == ItemState::Processing) {
      // The process died while this ran: count it as a failed attempt and run it again now.
      item.row.attempts += 1;
      item.row.next_attempt_ms = std::min(item.row.next_attempt_ms, clock_());
      item.row.last_error = "interrupted: the process stopped while this item was being processed";
    }
    auto [it, inserted] = items_.emplace(row.key.str(), std::move(item));
    if (!inserted) continue;
    schedule(it->second, it->second.row.next_attempt_ms);
    journal(it->second);
  }
  if (!due_.empty() && on_added_) on_added_();
}

void WorkQueue::add(const QueueKey& key, const std::string& reason, std::int64_t at_ms) {
  std::int64_t now = clock_();
  if (at_ms < now) at_ms = now;
  Item* item = find(key);
  if (!item) {
    auto [it, _] = items_.emplace(key.str(), Item(QueueRow{key, reason, 0, at_ms, "", ItemState::Pending}));
    schedule(it->second, at_ms);
    journal(it->second);
    if (on_added_) on_added_();
    return;
  }
  if (item->row.state == ItemState::Processing) {
    item->dirty = true;  // collapses into one re-run after the current one
    item->row.reason = reason;
    return;
  }
  if (at_ms < item->row.next_attempt_ms) {  // earliest deadline wins
    item->row.reason = reason;
    schedule(*item, at_ms);
    journal(*item);
    if (on_added_) on_added_();
  }
}

std::optional<QueueRow> WorkQueue::claim() {
  if (due_.empty() || due_.begin()->first > clock_()) return std::nullopt;
  Item& item = items_.at(due_.begin()->second);
  unschedule(item);
  item.row.state = ItemState::Processing;
  item.dirty = false;
  ++processing_;
  journal(item);
  return item.row;
}

void WorkQueue::complete(const QueueKey& key) {
  Item* item = find(key);
  if (!item || item->row.state != ItemState::Processing) return;
  --processing_;
  if (!item->dirty) {
    forget(key.str());
    return;
  }
  item->row.attempts = 0;
  item->row.last_error.clear();
  schedule(*item, clock_());
  journal(*item);
  if (on_added_) on_added_();
}

void WorkQueue::complete_after(const QueueKey& key, std::int64_t at_ms, const std::string& reason) {
  Item* item = find(key);
  if (!item || item->row.state != ItemState::Processing) return;
  --processing_;
  item->row.attempts = 0;
  item->row.last_error.clear();
  item->row.reason = reason;
  schedule(*item, item->dirty ? clock_() : at_ms);
  journal(*item);
  if (on_added_) on_added_();
}

void WorkQueue::fail(const QueueKey& key, const std::string& error, std::int64_t retry_at_ms) {
  Item* item = find(key);
  if (!item || item->row.state != ItemState::Processing) return;
  --processing_;
  item->row.attempts += 1;
  item->row.last_error = error;
  item->row.reason = "retry";
  schedule(*item, item->dirty ? clock_() : retry_at_ms);
  journal(*item);
  if (on_added_) on_added_();
}

std::optional<std::int64_t> WorkQueue::next_due() const {
  if (due_.empty()) return std::nullopt;
  return due_.begin()->first;
}

std::optional<QueueRow> WorkQueue::get(const QueueKey& key) const {
  auto it = items_.find(key.str());
  if (it == items_.end()) return std::nullopt;
  return it->second.row;
}

}  // namespace stowage::persistence
