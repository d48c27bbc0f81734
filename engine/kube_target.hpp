#pragma once
// KubeTarget — the Kubernetes mode's writes of a BackupStorage, as KubeStash makes them:
//  - the status by merge patch of /status (fields that disappeared from it are nulled);
//  - the finalizer kubestash.com/cleanup added and removed by JSON patch guarded by `test`;
//  - Events (events.k8s.io/v1) for state changes, with repeats aggregated into a series
//    (kube::EventRecorder).
// Guarantees:
//  - 409 and 422 (a failed `test`) mean the object moved on since the cache saw it: a transient
//    TargetError, so the reconcile is retried with the newer object. 404 means the object is gone:
//    a status write and the finalizer's removal are then done; adding the finalizer fails (transient:
//    the retry finds the object deleted).
//  - A written status and an added finalizer enter the source's cache at once, from the server's
//    answer (KubeSource::status_written, finalizers_written): a re-run before the watch event comes
//    back writes neither again, and emits no second Event.
//  - Failures are TargetErrors that say whether a retry may help.
// Assumes: one reactor thread; the Api and the source outlive the target and its coroutines.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "engine/target.hpp"

namespace stowage::kube {
class Api;
class EventRecorder;
}  // namespace stowage::kube

namespace stowage::engine {

class KubeSource;

class KubeTarget {
 public:
  KubeTarget(boost::asio::any_io_executor executor, kube::Api& api, KubeSource& source);
  ~KubeTarget();
  KubeTarget(const KubeTarget&) = delete;
  KubeTarget& operator=(const KubeTarget&) = delete;

  // Stops the Event writer (Events not sent yet are dropped).
  void stop();

  boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& object);
  boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& object,
                                                        kube::BackupStorageStatus status);
  boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& object);
  void event(const kube::BackupStorage& object, bool warning, const std::string& reason, const std::string& action,
             const std::string& note);

  struct Stats {
    std::uint64_t status_writes = 0, finalizer_writes = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  kube::Api& api_;
  KubeSource& source_;
  std::unique_ptr<kube::EventRecorder> events_;
  Stats stats_;
};

}  // namespace stowage::engine
