#pragma once
// LeaderElector — leader election on a coordination.k8s.io/v1 Lease, as client-go's
// tools/leaderelection does it (leaderelection.go, resourcelock/leaselock.go).
//
// Flow: one coroutine on the reactor repeats tryAcquireOrRenew:
//   GET the Lease    404 -> create it with us as holder (a losing race is a 409 AlreadyExists)
//                    record (spec) differs from the one last observed -> remember it, observed_time = now
//                    held by someone else and observed_time + its leaseDurationSeconds > now -> wait
//                    else PUT it with the observed resourceVersion: renewTime = now; when the record
//                    already names us, acquireTime and leaseTransitions stay, else acquireTime = now
//                    and leaseTransitions + 1
//   then sleeps: retry_period while leading (the renew loop), retry_period x [1, 2.2) otherwise
//   (client-go's jitter factor 1.2, so candidates do not poll in step).
//
// Guarantees:
// - Two winners are impossible on the server: every write carries the resourceVersion the decision
//   was made on (a concurrent write makes it a 409), and a create races only against creates.
// - Validity is judged by the local (steady) time at which this elector last saw the record change,
//   never by the holder's renewTime: clocks of different hosts need not agree. The duration is the
//   record's leaseDurationSeconds (so a released lease, leaseDurationSeconds 1, frees at once);
//   ours when the record has none.
// - Local leadership lasts renew_deadline from the START of the last successful attempt. A timer
//   ends it at that instant even while a renewal is still in flight (client-go cancels the request
//   at renewDeadline instead), so a hung API server cannot keep us leading. Since another
//   candidate's observed_time of that record is no earlier than this start, it can take over no
//   sooner than start + lease_duration > start + renew_deadline: the two never overlap (assuming
//   the two steady clocks run at the same rate, as client-go assumes).
// - Seeing the lease held by someone else while leading ends leadership at once (client-go waits for
//   the renew deadline).
// - on_started_leading and on_stopped_leading alternate, starting with started: stopped is called
//   only after started (client-go also calls OnStoppedLeading when it never led).
// - After losing leadership (renew deadline, lease taken over) the elector calls
//   on_stopped_leading and campaigns again: client-go's Run returns and the binary exits; here the
//   owner decides in on_stopped_leading — stop(), exit the process, or let the elector campaign.
//   Leader-only work must be stopped when on_stopped_leading returns.
// - Should the loop end anyway outside stop() (an exception), the end is reported to
//   options.liveness ("leader election NS/NAME loop"), which makes the process unhealthy.
// - Failures of GET/POST/PUT never end the loop: each is logged (warn, with the Api's message,
//   which names the verb and path and never a credential); a 409 (another candidate was first) at
//   debug; a 403 at error once per episode of failures, with the RBAC rule to grant, then at debug.
// - Release (stop() with release_on_cancel, or async_release()): when the last observed record names
//   us, PUT holderIdentity "", leaseDurationSeconds 1, acquireTime = renewTime = now (leaseTransitions
//   kept), with that record's resourceVersion; after a 409 the lease is read again and the release
//   retried while it still names us. Other candidates then take over at their next attempt.
//
// Assumes: one single-threaded reactor runs the elector (is_leader() alone may be read from any
// thread); the Api outlives the elector's requests (keep the reactor running until they
// end); callbacks run on the reactor and may call stop() but must not destroy the elector.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/liveness.hpp"
#include "common/result.hpp"
#include "common/time_format.hpp"
#include "kube/api.hpp"

namespace stowage::kube {

struct LeaderElectionOptions {
  std::string namespace_;                // where the Lease lives
  std::string name = "stowage-leader";   // the Lease's name
  std::string identity;                  // "" = default_leader_identity()
  std::chrono::milliseconds lease_duration{15000};  // written as leaseDurationSeconds (rounded up)
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_cancel = true;  // stop() releases the lease when the last record names us
  std::uint64_t seed = 0;         // for the retry jitter; 0 = random
  common::Liveness* liveness = nullptr;  // where the loop's end outside stop() is reported; null: the process's
};

// client-go's rules: lease_duration > renew_deadline > 1.2 x retry_period, retry_period > 0,
// lease_duration >= 1 s, namespace, name and identity (after defaulting) not empty. The message
// names the first broken rule.
std::optional<std::string> validate(const LeaderElectionOptions& options);

// hostname + "_" + 16 random hex digits (client-go: hostname + "_" + a UUID).
std::string default_leader_identity();

struct LeaderCallbacks {
  std::function<void()> on_started_leading;
  std::function<void()> on_stopped_leading;
  // The holder seen in the Lease changed (ours included); not called for an empty (released) holder.
  std::function<void(const std::string& identity)> on_new_leader;
};

// Where the elector reads time: `steady` for observed_time and the renew deadline, `wall` for the
// acquireTime/renewTime it writes. Tests move them; sleeps use real timers of the remaining time.
struct LeaderElectionClocks {
  std::function<std::chrono::steady_clock::time_point()> steady = [] { return std::chrono::steady_clock::now(); };
  std::function<WallClock::time_point()> wall = [] { return WallClock::now(); };
};

struct LeaderElectionStatus {
  bool leading = false;            // leader_election_master_status{name=...}: 1 when true
  std::string leader;              // holderIdentity last observed ("" = none, or not read yet)
  std::string last_error;          // the last failed request's message ("" after a success)
  std::uint64_t attempts = 0;      // tryAcquireOrRenew rounds
  std::uint64_t failures = 0;      // failed requests (409s included)
  std::uint64_t acquisitions = 0;  // on_started_leading calls
  std::uint64_t losses = 0;        // on_stopped_leading calls (stop() included)
};

class LeaderElector {
 public:
  // Throws std::invalid_argument when validate(options) fails (check configuration with validate()).
  LeaderElector(boost::asio::any_io_executor executor, Api& api, LeaderElectionOptions options,
                LeaderCallbacks callbacks, LeaderElectionClocks clocks = {});
  // Ends campaigning without releasing and without callbacks (a request in flight is abandoned).
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Starts campaigning; once only (a stopped elector does not start again).
  void start();
  // Stops campaigning: when leading, on_stopped_leading at once; then, with release_on_cancel, the
  // release is sent in the background (keep the reactor running until it ends). Idempotent.
  void stop();
  // stop() that always releases (whatever release_on_cancel says) and completes when the release
  // has been answered: Ok when the lease no longer names us (or never did).
  boost::asio::awaitable<Result<Ok, ApiError>> async_release();

  bool is_leader() const;
  int master_status() const { return is_leader() ? 1 : 0; }  // leader_election_master_status
  std::string leader_identity() const;                        // holder last observed
  const std::string& identity() const;
  const LeaderElectionOptions& options() const;
  LeaderElectionStatus status() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace stowage::kube
