#include "persistence/work_queue.hpp"

#include <cstdlib>

#include <algorithm>

#include "persistence/state_store.hpp"

namespace stowage::persistence {

namespace {
// A journaled due time further than this from the wall clock's now (a corrupt row, a clock far
// off) is taken as this far: the conversion to the steady clock must not overflow.
constexpr std::int64_t kLongestShiftMs = std::int64_t{10} * 366 * 24 * 3600 * 1000;
}  // namespace

// ---- Schedule ---------------------------------------------------------------------------------

WorkQueue::Schedule::Entries::iterator WorkQueue::Schedule::insert(SteadyTime at, std::string id) {
  auto it = entries_.emplace(at, std::move(id));  // after any equal ones: the boundary stays valid
  if (at <= seen_)
    ++due_;
  else if (boundary_ == entries_.end() || at < boundary_->first)
    boundary_ = it;
  return it;
}

void WorkQueue::Schedule::erase(Entries::iterator it) {
  if (it->first <= seen_)
    --due_;
  else if (it == boundary_)
    boundary_ = std::next(it);
  entries_.erase(it);
}

std::size_t WorkQueue::Schedule::due_at(SteadyTime now) const {
  if (now <= seen_) return due_;
  seen_ = now;
  for (; boundary_ != entries_.end() && boundary_->first <= seen_; ++boundary_) ++due_;
  return due_;
}

// ---- WorkQueue --------------------------------------------------------------------------------

WorkQueue::WorkQueue(StateStore* store, Clock wall_clock, SteadyClock steady_clock)
    : store_(store), wall_(std::move(wall_clock)), steady_(std::move(steady_clock)) {}

WorkQueue::Item* WorkQueue::find(const QueueKey& key) {
  auto it = items_.find(key.str());
  return it == items_.end() ? nullptr : &it->second;
}

WorkQueue::SteadyTime WorkQueue::after_now(Millis after) const { return steady_() + std::max(after, Millis(0)); }

WorkQueue::SteadyTime WorkQueue::steady_of(std::int64_t wall_ms) const {
  std::int64_t now = wall_();
  return steady_() + Millis(std::clamp(wall_ms, now - kLongestShiftMs, now + kLongestShiftMs) - now);
}

std::int64_t WorkQueue::wall_of(SteadyTime t) const {
  return wall_() + std::chrono::duration_cast<Millis>(t - steady_()).count();
}

// The journal holds the due time as wall-clock Unix ms, computed when written.
void WorkQueue::journal(Item& item) {
  item.row.next_attempt_ms = wall_of(item.due);
  if (store_) store_->put(item.row);
}

void WorkQueue::schedule(Item& item, SteadyTime at) {
  unschedule(item);
  item.row.state = ItemState::Pending;
  item.due = at;
  item.due_it = schedule_.insert(at, item.row.key.str());
  item.scheduled = true;
}

void WorkQueue::unschedule(Item& item) {
  if (!item.scheduled) return;
  schedule_.erase(item.due_it);
  item.scheduled = false;
}

void WorkQueue::forget(const std::string& id) {
  auto it = items_.find(id);
  if (it == items_.end()) return;
  unschedule(it->second);
  if (store_) store_->erase_queue(it->second.row.key);
  items_.erase(it);
}

void WorkQueue::restore(const std::vector<QueueRow>& rows, const InterruptedPolicy& retry_interrupted) {
  for (const auto& row : rows) {
    auto [it, inserted] = items_.emplace(row.key.str(), Item(row));
    if (!inserted) continue;
    Item& item = it->second;
    SteadyTime due = steady_of(row.next_attempt_ms);
    if (row.state == ItemState::Processing) {
      // The process ended while this ran: a failed attempt, and one more interrupted in a row.
      item.row.attempts += 1;
      item.row.interrupted += 1;
      item.row.reason = "interrupted";
      item.row.last_error = "interrupted: the process stopped while this item was being processed";
      due = after_now(retry_interrupted(item.row));
    }
    schedule(item, due);
    // A pending row is journaled already, as it is now: rewriting it would put every item back into
    // the store on every start (10,000 rows and their batch in memory at 10,000 storages). Only a
    // changed one is: interrupted, or its due time moved (clamped into the shift the clock allows).
    if (row.state == ItemState::Processing || std::llabs(wall_of(due) - row.next_attempt_ms) > 1000) journal(item);
  }
  if (!schedule_.empty() && on_added_) on_added_();
}

void WorkQueue::add(const QueueKey& key, const std::string& reason, Millis after) {
  SteadyTime at = after_now(after);
  Item* item = find(key);
  if (!item) {
    auto [it, _] = items_.emplace(key.str(), Item(QueueRow{key, reason, 0, 0, "", ItemState::Pending}));
    schedule(it->second, at);
    journal(it->second);
    if (on_added_) on_added_();
    return;
  }
  if (item->row.state == ItemState::Processing) {
    item->dirty = true;  // collapses into one re-run after the current one
    item->row.reason = reason;
    return;
  }
  // Earliest due time wins, except over the backoff of an item whose last attempt was interrupted.
  if (at < item->due && item->row.interrupted == 0) {
    item->row.reason = reason;
    schedule(*item, at);
    journal(*item);
    if (on_added_) on_added_();
  }
}

std::optional<WorkQueue::Claimed> WorkQueue::claim() {
  if (schedule_.empty()) return std::nullopt;
  SteadyTime now = steady_();
  if (schedule_.first().first > now) return std::nullopt;
  Item& item = items_.at(schedule_.first().second);
  unschedule(item);
  item.row.state = ItemState::Processing;
  item.dirty = false;
  ++processing_;
  journal(item);
  Claimed claimed{item.row};
  claimed.overdue = std::chrono::duration_cast<Millis>(now - item.due);
  return claimed;
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
  item->row.interrupted = 0;
  item->row.last_error.clear();
  schedule(*item, steady_());
  journal(*item);
  if (on_added_) on_added_();
}

void WorkQueue::complete_after(const QueueKey& key, Millis after, const std::string& reason) {
  Item* item = find(key);
  if (!item || item->row.state != ItemState::Processing) return;
  --processing_;
  item->row.attempts = 0;
  item->row.interrupted = 0;
  item->row.last_error.clear();
  item->row.reason = reason;
  schedule(*item, item->dirty ? steady_() : after_now(after));
  journal(*item);
  if (on_added_) on_added_();
}

void WorkQueue::fail(const QueueKey& key, const std::string& error, Millis retry_after) {
  Item* item = find(key);
  if (!item || item->row.state != ItemState::Processing) return;
  --processing_;
  item->row.attempts += 1;
  item->row.interrupted = 0;  // this attempt ended: the process survived it
  item->row.last_error = error;
  item->row.reason = "retry";
  schedule(*item, item->dirty ? steady_() : after_now(retry_after));
  journal(*item);
  if (on_added_) on_added_();
}

void WorkQueue::release(const QueueKey& key) {
  Item* item = find(key);
  if (!item || item->row.state != ItemState::Processing) return;
  --processing_;
  schedule(*item, steady_());
  journal(*item);
  if (on_added_) on_added_();
}

std::optional<std::chrono::steady_clock::duration> WorkQueue::next_due_in() const {
  if (schedule_.empty()) return std::nullopt;
  return std::max(schedule_.first().first - steady_(), std::chrono::steady_clock::duration::zero());
}

std::optional<QueueRow> WorkQueue::get(const QueueKey& key) const {
  auto it = items_.find(key.str());
  if (it == items_.end()) return std::nullopt;
  return it->second.row;
}

}  // namespace stowage::persistence
