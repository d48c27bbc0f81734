#pragma once
// KeyReconciler — the one operation the Controller needs from the business logic: reconcile the
// object behind a key and say what should happen next. Reconciler implements it; the Controller's
// unit tests put a scripted fake behind it. Light on purpose: no backend, target or store headers.
//
// Contract: reconcile() runs on the Controller's executor, is never called twice at once for one
// key, and ends at its next await when the Controller emits a terminal cancellation (the stop's
// grace period is over). A thrown exception is a bug, not a backend failure: the Controller logs
// it and treats it as Transient.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "engine/object_cache.hpp"

namespace stowage::engine {

struct Outcome {
  enum Kind {
    Done,       // settled; nothing to do until something changes
    Transient,  // failed, worth retrying soon (backoff)
    Permanent,  // failed in a way only a change can fix (long delay, still re-checked)
  };
  Kind kind = Done;
  std::string error;  // secret-free, for the queue row and logs
  // Done only: when to come back although nothing changed (a Ready storage's backend is checked
  // again then: the item returns with kRevalidateReason); nullopt = not until something changes.
  // Transient and Permanent are rescheduled by the controller's error policy.
  std::optional<std::chrono::milliseconds> requeue_after;

  static Outcome done() { return {}; }
  static Outcome done_after(std::chrono::milliseconds delay) { return {Done, {}, delay}; }
  static Outcome transient(std::string error) { return {Transient, std::move(error), std::nullopt}; }
  static Outcome permanent(std::string error) { return {Permanent, std::move(error), std::nullopt}; }
};

struct ReconcileRequest {
  bool revalidate = false;  // check the backend even when the state store says it is initialized
  int attempts = 0;         // failed attempts of this key so far (the queue's count)
};

class KeyReconciler {
 public:
  virtual ~KeyReconciler() = default;
  virtual boost::asio::awaitable<Outcome> reconcile(ObjectKey key, ReconcileRequest request) = 0;
};

}  // namespace stowage::engine
