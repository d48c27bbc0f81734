#pragma once
// EventRecorder — writes Kubernetes Events (events.k8s.io/v1) about the objects stowage manages,
// aggregating repeats into series as client-go's tools/events does (event_broadcaster.go).
//
// Flow: record() files the occurrence under its isomorphism key and returns at once; one coroutine
// on the recorder's executor drains a bounded FIFO of pending writes through kube::Api:
//   first occurrence              -> POST the Event (name "<regarding.name>.<hex unix nanoseconds>")
//   repeat within `series_window` -> merge-PATCH {"series": {"count": N, "lastObservedTime": T}}
//   repeat after a quiet window   -> a new Event (a new series)
//
// Guarantees:
// - record() never blocks and never throws; it may be called from any thread. It only touches memory.
// - The isomorphism key is client-go's getKey(): type, action, reason, reportingController,
//   reportingInstance and the whole regarding reference (apiVersion, kind, namespace, name, uid,
//   resourceVersion). The note is NOT part of it: a repeat whose note differs joins the series and the
//   Event keeps its first note, as in client-go. (`related` is not supported, so it is always empty.)
// - One write per key at a time, and coalescing: repeats that arrive while a key's write is queued or
//   in flight only move the counters in memory; the next write (one PATCH) carries the latest count.
//   Where client-go only refreshes a running series every 30 minutes, each coalesced change is written
//   once, so `kubectl get events` shows the current count.
// - Bounded memory: at most `queue_capacity` pending writes (the oldest is dropped, counted and logged
//   at warn when full) and at most `max_series` remembered keys; a key quiet for `series_window` is
//   forgotten.
// - Best effort: a transient failure (transport, 408/429/5xx) is retried up to `max_attempts` times
//   with full-jitter backoff (honouring Retry-After up to `retry_cap`), then dropped. A permanent one
//   (403 without RBAC, 422, ...) is dropped and logged at warn once per HTTP status and reason. A PATCH
//   answered 404 (the Event expired or was deleted) re-creates the Event with its series, as client-go.
// - Logs name the Event and its reason, never the note nor any credential.
//
// Assumes: the executor is single-threaded (the project's one reactor); the Api outlives every
// write, i.e. stays alive until the executor's context has stopped running. Destroying the recorder
// (or stop()) abandons what is still queued: call async_flush() first for a clean shutdown.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/time_format.hpp"

namespace stowage::kube {

class Api;

// The object an Event is about (core/v1 ObjectReference without fieldPath).
struct ObjectReference {
  std::string api_version;  // "storage.kubestash.com/v1alpha1"
  std::string kind;         // "BackupStorage"
  std::string namespace_;   // "" for a cluster-scoped object (its Events go to "default")
  std::string name;
  std::string uid;
  std::string resource_version;

  auto operator<=>(const ObjectReference&) const = default;
};

enum class EventType { Normal, Warning };
const char* to_string(EventType type);

struct EventRecorderOptions {
  std::string reporting_controller = "stowage";
  std::string reporting_instance;  // "" = this host's name (the pod name in a cluster)
  std::size_t queue_capacity = 1000;  // pending writes; the oldest is dropped beyond this
  std::size_t max_series = 4096;      // keys remembered for aggregation; when full, the quietest eighth is forgotten
  std::chrono::seconds series_window{6 * 60};  // client-go's finishTime
  int max_attempts = 5;                         // per write, the first one included
  std::chrono::milliseconds retry_base{500};
  std::chrono::milliseconds retry_cap{10'000};
  std::uint64_t retry_seed = 0;  // 0 = random
  // The wall clock for eventTime, series.lastObservedTime, the name and the window (tests inject it).
  std::function<WallClock::time_point()> now;  // empty = system_clock::now
};

// Counters since construction (for metrics and tests).
struct EventRecorderStats {
  std::uint64_t created = 0;  // Events created (a re-creation after a 404 included)
  std::uint64_t patched = 0;  // series PATCHes accepted
  std::uint64_t failed = 0;   // requests that failed (each retry counts; the 404 that re-creates does not)
  std::uint64_t dropped = 0;  // writes given up: queue full, permanent rejection, retries exhausted, stopped
};

class EventRecorder {
 public:
  EventRecorder(boost::asio::any_io_executor executor, Api& api, EventRecorderOptions options = {});
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // Notes one occurrence now; the write happens later on the executor.
  void record(ObjectReference regarding, EventType type, std::string reason, std::string action,
              std::string note) noexcept;

  // Completes once nothing is queued and no write is in flight (or the recorder is stopped).
  // Await it on the recorder's executor.
  boost::asio::awaitable<void> async_flush();

  // Stops accepting records and ends the drain loop after the write in flight; idempotent.
  void stop();

  EventRecorderStats stats() const;
  std::size_t pending() const;         // writes queued
  std::size_t cached_series() const;   // keys remembered for aggregation

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The Event body helpers, exposed for tests.
// RFC 3339 in UTC with microseconds, as metav1.MicroTime: "2026-11-26T17:00:00.123456Z".
std::string rfc3339_micro(WallClock::time_point t);
// Invalid UTF-8 sequences replaced by U+FFFD, then cut to at most `max_bytes` at a character boundary.
std::string truncate_utf8(std::string_view text, std::size_t max_bytes);

}  // namespace stowage::kube
