#pragma once
// Controller — runs the reconciler over the durable work queue on the reactor:
//  - at most `workers` reconciles at once, never two for one key (the queue guarantees it);
//  - the error policy: Transient -> full-jitter backoff (retry-base doubling to retry-cap),
//    Permanent -> retried after permanent-retry (any change to the object or its Secret re-runs
//    it at once), Done -> forgotten until something changes, or, when the outcome says
//    requeue_after (a Ready storage with a revalidate period), queued again after that long with
//    kRevalidateReason (its backend is then checked even though nothing changed);
//  - an item the previous process was running when it ended (crash, kill -9) is retried with the
//    Transient backoff; after `max_interrupted` such attempts in a row it is parked: an error log
//    naming the storage, the stowage_workqueue_parked_items gauge, and retries only every
//    permanent-retry until an attempt ends (success or failure) without the process ending;
//  - the schedule is monotonic (the queue's steady clock): a wall-clock step moves no retry;
//  - stop(): no new work is claimed; drained() completes when in-flight reconciles have finished.
//    cancel_in_flight() (the grace period is over) emits a terminal cancellation to every reconcile
//    in flight (each is co_spawned with its own cancellation slot): each ends at its next await and
//    its item is released to the queue, due at once at the next start, no attempt counted;
//  - backpressure: while the claim gate names a reason (the state store's writer is behind), no new
//    work is claimed (reconciles in flight finish); it is asked again every kGateRecheck, and
//    claiming resumes once it names none.
// Nothing runs before the source has delivered its first listing (start() is called after it).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/backoff.hpp"
#include "engine/metrics.hpp"
#include "engine/key_reconciler.hpp"
#include "persistence/work_queue.hpp"

namespace stowage::engine {

struct ControllerOptions {
  int workers = 16;
  std::chrono::milliseconds retry_base{1000};
  std::chrono::milliseconds retry_cap{300000};
  std::chrono::milliseconds permanent_retry{600000};
  // Consecutive attempts cut short by the process's end after which an item is parked.
  int max_interrupted = 5;
};

inline constexpr const char* kRevalidateReason = "revalidate";

class Controller {
 public:
  using Observer = std::function<void(const persistence::QueueKey&, const Outcome&)>;

  // metrics may be null; otherwise the reconcile and work-queue families are kept up to date.
  Controller(boost::asio::any_io_executor executor, persistence::WorkQueue& queue, KeyReconciler& reconciler,
             ControllerOptions options, Metrics* metrics = nullptr);
  ~Controller();

  // Start-up: hands the rows the previous process left to the queue, applying the error policy to
  // those it was running when it ended (see above). Before start().
  void restore(const std::vector<persistence::QueueRow>& rows);

  void start();
  void stop();
  // Terminal cancellation of every reconcile in flight (see above). Reactor thread.
  void cancel_in_flight();
  // `why_not` returns why no work may be claimed now, or nullopt. Null: always claim.
  using ClaimGate = std::function<std::optional<std::string>()>;
  void set_claim_gate(ClaimGate why_not) { claim_gate_ = std::move(why_not); }
  // Why claiming is paused now (the gate's last answer), or nullopt.
  const std::optional<std::string>& paused() const { return paused_; }
  static constexpr std::chrono::milliseconds kGateRecheck{200};
  bool idle() const;  // nothing in flight
  std::size_t in_flight() const { return in_flight_; }
  std::uint64_t reconciles() const { return reconciles_; }
  void on_outcome(Observer observer) { observer_ = std::move(observer); }
  void on_idle(std::function<void()> callback) { on_idle_ = std::move(callback); }

  // The delay the error policy picks for an outcome after `attempts` earlier failures.
  std::chrono::milliseconds retry_delay(const Outcome& outcome, int attempts);
  // The delay for an item found interrupted at start (`row` counts the interruption); parks it at
  // max_interrupted.
  std::chrono::milliseconds interrupted_delay(const persistence::QueueRow& row);
  std::size_t parked() const { return parked_.size(); }

 private:
  void pump();
  void arm_timer();
  void run(persistence::QueueRow item);
  void finish(const persistence::QueueRow& item, const Outcome& outcome);
  void release(const persistence::QueueRow& item);
  bool gate_closed();
  // workqueue_unfinished_work_seconds and workqueue_longest_running_processor_seconds from the
  // reconciles in flight; refreshed every 500 ms while any runs (as client-go does), 0 when none.
  void refresh_unfinished_work();
  void arm_unfinished_work_timer();

  struct Timer;
  boost::asio::any_io_executor executor_;
  persistence::WorkQueue& queue_;
  KeyReconciler& reconciler_;
  ControllerOptions options_;
  FullJitterBackoff backoff_;
  std::unique_ptr<Timer> timer_;
  std::unique_ptr<Timer> unfinished_timer_;
  bool unfinished_timer_armed_ = false;
  std::multiset<std::chrono::steady_clock::time_point> processing_;  // start times of reconciles in flight
  std::set<std::string> parked_;  // QueueKey::str() of the parked items
  // One cancellation signal per reconcile in flight, by a serial number; emitted by cancel_in_flight().
  std::map<std::uint64_t, std::unique_ptr<boost::asio::cancellation_signal>> cancels_;
  bool cancelling_ = false;
  ClaimGate claim_gate_;
  std::optional<std::string> paused_;
  std::size_t in_flight_ = 0;
  std::uint64_t reconciles_ = 0;
  bool running_ = false;
  bool pump_posted_ = false;
  Observer observer_;
  std::function<void()> on_idle_;
  Metrics* metrics_ = nullptr;
};

}  // namespace stowage::engine
