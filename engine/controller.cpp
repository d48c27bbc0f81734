#include "engine/controller.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

namespace stowage::engine {

struct Controller::Timer {
  explicit Timer(boost::asio::any_io_executor ex) : t(std::move(ex)) {}
  boost::asio::steady_timer t;
};

namespace {
constexpr std::string_view kName = "backupstorage";  // controller and work-queue name in metrics
}

Controller::Controller(boost::asio::any_io_executor executor, persistence::WorkQueue& queue, KeyReconciler& reconciler,
                       ControllerOptions options, Metrics* metrics)
    : executor_(executor),
      queue_(queue),
      reconciler_(reconciler),
      options_(options),
      backoff_(options.retry_base, options.retry_cap),
      timer_(std::make_unique<Timer>(executor)),
      unfinished_timer_(std::make_unique<Timer>(executor)),
      metrics_(metrics) {
  queue_.on_added([this] {
    if (metrics_) metrics_->workqueue_adds_total.inc({kName});
    if (running_ && !pump_posted_) {
      pump_posted_ = true;
      boost::asio::post(executor_, [this] { pump(); });
    }
  });
}

Controller::~Controller() { queue_.on_added(nullptr); }

void Controller::start() {
  if (metrics_) {
    metrics_->controller_started(kName, options_.workers);
    metrics_->workqueue_parked_items.set({kName}, static_cast<double>(parked_.size()));
  }
  running_ = true;
  pump();
}

void Controller::stop() {
  running_ = false;
  timer_->t.cancel();
  unfinished_timer_->t.cancel();  // its handler then touches nothing (the controller may be gone)
  unfinished_timer_armed_ = false;
}

bool Controller::idle() const { return in_flight_ == 0; }

void Controller::cancel_in_flight() {
  running_ = false;
  cancelling_ = true;
  if (!cancels_.empty())
    spdlog::warn("cancelling {} reconciles in flight; their items run again at the next start", cancels_.size());
  // Emitting never completes a reconcile inline (Asio posts completions), so cancels_ stays intact here.
  for (auto& [serial, signal] : cancels_) signal->emit(boost::asio::cancellation_type::terminal);
}

// Asks the gate; logs when claiming pauses and when it resumes.
bool Controller::gate_closed() {
  std::optional<std::string> why = claim_gate_ ? claim_gate_() : std::nullopt;
  if (why && !paused_)
    spdlog::warn("not claiming new work: {}; reconciles in flight finish, and claiming resumes when this clears",
                 *why);
  else if (!why && paused_)
    spdlog::info("claiming work again (it was paused: {})", *paused_);
  paused_ = std::move(why);
  return paused_.has_value();
}

std::chrono::milliseconds Controller::retry_delay(const Outcome& outcome, int attempts) {
  if (outcome.kind == Outcome::Permanent) return options_.permanent_retry;
  return backoff_.next(attempts);
}

void Controller::restore(const std::vector<persistence::QueueRow>& rows) {
  queue_.restore(rows, [this](const persistence::QueueRow& row) { return interrupted_delay(row); });
}

std::chrono::milliseconds Controller::interrupted_delay(const persistence::QueueRow& row) {
  if (row.interrupted < options_.max_interrupted) {
    // The same backoff as a failed attempt after the failures before this one.
    Outcome interrupted;
    interrupted.kind = Outcome::Transient;
    auto delay = retry_delay(interrupted, row.attempts - 1);
    spdlog::warn("{}: the previous process ended while reconciling it ({} of {} interrupted attempts in a row "
                 "before it is parked); retry in {} ms",
                 row.key.object_name(), row.interrupted, options_.max_interrupted, delay.count());
    return delay;
  }
  parked_.insert(row.key.str());
  if (metrics_) metrics_->workqueue_parked_items.set({kName}, static_cast<double>(parked_.size()));
  spdlog::error("{}: parked: the process ended {} times in a row while reconciling it (reconcile.max-interrupted "
                "is {}); it is retried only every {} ms (reconcile.permanent-retry) until an attempt finishes. "
                "Look for the cause (out of memory, a crash) in the previous process's log and report it",
                row.key.object_name(), row.interrupted, options_.max_interrupted, options_.permanent_retry.count());
  return options_.permanent_retry;
}

// Claims due items up to the concurrency limit, then sleeps until the next one is due.
void Controller::pump() {
  pump_posted_ = false;
  if (!running_) return;
  if (gate_closed()) {
    timer_->t.expires_after(kGateRecheck);
    timer_->t.async_wait([this](boost::system::error_code ec) {
      if (!ec) pump();
    });
    return;
  }
  while (in_flight_ < static_cast<std::size_t>(options_.workers)) {
    auto item = queue_.claim();
    if (!item) break;
    if (metrics_)
      metrics_->workqueue_queue_duration_seconds.observe({kName},
                                                         std::max<std::int64_t>(0, item->overdue.count()) / 1000.0);
    run(std::move(*item));
  }
  if (metrics_) metrics_->workqueue_depth.set({kName}, static_cast<double>(queue_.due()));
  arm_timer();
}

void Controller::arm_timer() {
  auto wait = queue_.next_due_in();
  if (!wait || in_flight_ >= static_cast<std::size_t>(options_.workers)) return;
  timer_->t.expires_after(*wait);
  timer_->t.async_wait([this](boost::system::error_code ec) {
    if (!ec) pump();
  });
}

void Controller::run(persistence::QueueRow item) {
  ++in_flight_;
  ++reconciles_;
  spdlog::trace("{}: reconcile (reason: {}, attempts: {})", item.key.object_name(), item.reason, item.attempts);
  ObjectKey key{item.key.namespace_, item.key.name};
  if (metrics_) metrics_->active_workers.inc({kName});
  auto started = std::chrono::steady_clock::now();
  auto slot = processing_.insert(started);
  if (metrics_) arm_unfinished_work_timer();
  ReconcileRequest request{item.reason == kRevalidateReason, item.attempts};
  const std::uint64_t serial = reconciles_;
  auto& cancel = *cancels_.emplace(serial, std::make_unique<boost::asio::cancellation_signal>()).first->second;
  auto done = [this, item = std::move(item), started, slot, serial](std::exception_ptr ep, Outcome outcome) {
    cancels_.erase(serial);
    processing_.erase(slot);
    if (ep && cancelling_) {
      outcome = Outcome::transient("cancelled: the process is stopping");
    } else if (ep) {
      // A bug, not a backend failure: keep the item, back off, say so loudly.
      try {
        std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        outcome = Outcome::transient(std::string("internal error: ") + e.what());
      }
      spdlog::error("{}: reconcile threw: {}", item.key.object_name(), outcome.error);
    }
    if (metrics_) {
      auto took = std::chrono::steady_clock::now() - started;
      metrics_->active_workers.dec({kName});
      metrics_->workqueue_work_duration_seconds.observe(
          {kName}, std::chrono::duration<double>(took).count());
      metrics_->reconcile_finished(
          kName, outcome.kind == Outcome::Done ? ReconcileResult::Success : ReconcileResult::Error,
          took);
      if (outcome.kind != Outcome::Done) metrics_->workqueue_retries_total.inc({kName});
      refresh_unfinished_work();
    }
    if (cancelling_)
      release(item);
    else
      finish(item, outcome);
  };
  boost::asio::co_spawn(executor_, reconciler_.reconcile(key, request),
                        boost::asio::bind_cancellation_slot(cancel.slot(), std::move(done)));
}

// A reconcile cut short by cancel_in_flight(): its item goes back to the queue as it was.
void Controller::release(const persistence::QueueRow& item) {
  --in_flight_;
  queue_.release(item.key);
  spdlog::info("{}: reconcile cut short by the stop; it runs again at the next start", item.key.object_name());
  if (in_flight_ == 0 && on_idle_) on_idle_();
}

void Controller::refresh_unfinished_work() {
  double unfinished = 0, longest = 0;
  auto now = std::chrono::steady_clock::now();
  for (auto start : processing_) unfinished += std::chrono::duration<double>(now - start).count();
  if (!processing_.empty()) longest = std::chrono::duration<double>(now - *processing_.begin()).count();
  metrics_->workqueue_unfinished_work_seconds.set({kName}, unfinished);
  metrics_->workqueue_longest_running_processor_seconds.set({kName}, longest);
}

void Controller::arm_unfinished_work_timer() {
  if (unfinished_timer_armed_) return;
  unfinished_timer_armed_ = true;
  unfinished_timer_->t.expires_after(std::chrono::milliseconds(500));
  unfinished_timer_->t.async_wait([this](boost::system::error_code ec) {
    if (ec) return;  // cancelled: stopped or destroyed
    unfinished_timer_armed_ = false;
    refresh_unfinished_work();
    if (!processing_.empty() && running_) arm_unfinished_work_timer();
  });
}

void Controller::finish(const persistence::QueueRow& item, const Outcome& outcome) {
  --in_flight_;
  if (parked_.erase(item.key.str()) && metrics_)  // an attempt ended without ending the process
    metrics_->workqueue_parked_items.set({kName}, static_cast<double>(parked_.size()));
  if (outcome.kind == Outcome::Done) {
    if (outcome.requeue_after)
      queue_.complete_after(item.key, *outcome.requeue_after, kRevalidateReason);
    else
      queue_.complete(item.key);
  } else {
    auto delay = retry_delay(outcome, item.attempts);
    spdlog::debug("{}: retry in {} ms: {}", item.key.object_name(), delay.count(), outcome.error);
    queue_.fail(item.key, outcome.error, delay);
  }
  if (observer_) observer_(item.key, outcome);
  if (running_) {
    if (!pump_posted_) {
      pump_posted_ = true;
      boost::asio::post(executor_, [this] { pump(); });
    }
  } else if (in_flight_ == 0 && on_idle_) {
    on_idle_();
  }
}

}  // namespace stowage::engine
