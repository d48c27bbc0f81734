#pragma once
// VolumeJobs — the lifecycle of the helper Jobs of local-volume BackupStorages (local.volume-mode=job)
// against the API server: which Job a storage has, creating it, reading its outcome, retiring it.
// The Jobs themselves are built by engine/volume_job.hpp (pure); this class does the I/O.
//
// Flow: the Job informer (owned by the source, KubeSource) hands every Job carrying kVolumeJobSelector's
// labels to job_upserted()/job_removed(); `on_change` then names the storage (from the invoker labels)
// to queue. A reconcile asks run() for the Job of a kind: it is created once (a 409 reads the Job that
// won the race), and its outcome is read from the cached Job (for a failed one, with its pods'
// termination messages).
//
// Guarantees:
//  - At most one Job per storage and kind is created per reconcile; a Job already known (cached, or
//    created by an earlier run) is never created again.
//  - cleanup-<name> is KubeStash's fixed name: a cleaner Job left by an earlier storage of the same
//    name (another kLabelStorageUid) is never taken for this one's; it is deleted first.
//  - A cleaner Job failed for `failed_cleanup_retry` is deleted and run again (the permanent retry).
//  - Retiring deletes the very Job meant (its uid as a DELETE precondition: a Job created meanwhile
//    under the name is never the one deleted), and the retired uid's late watch events are ignored, so
//    they cannot stand in for its successor. 404 and 409 on that DELETE mean it is already gone.
//  - The cache is changed by the informer whenever run() awaits: no iterator into it is held across a
//    co_await.
// Assumes: one reactor thread; `api` outlives this object and the coroutines run() starts.
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/time_format.hpp"
#include "engine/object_cache.hpp"
#include "engine/target.hpp"
#include "engine/volume_job.hpp"

namespace stowage::kube {
class Api;
}

namespace stowage::engine {

struct VolumeJobsOptions {
  VolumeJobSettings settings;  // for build_volume_job (wipe_keep is set per run)
  // A failed cleaner Job is run again once it has been failed this long (the permanent retry period).
  std::chrono::milliseconds failed_cleanup_retry{600000};
  std::function<WallClock::time_point()> now = [] { return WallClock::now(); };
};

class VolumeJobs {
 public:
  // Called with the storage a Job belongs to (its invoker labels) and why, when the Job changes.
  using OnChange = std::function<void(const ObjectKey& storage, const std::string& reason)>;

  VolumeJobs(kube::Api& api, VolumeJobsOptions options, OnChange on_change);

  // The Job informer's events.
  void job_upserted(boost::json::value job);
  // `last`: the object as the DELETED event carried it (null after a relist).
  void job_removed(const std::string& ns, const std::string& name, const boost::json::value& last);

  // The Job of `kind` for the storage: created when missing, else its outcome as last seen. A cleanup
  // Job leaves `keep` alone (paths relative to the volume).
  boost::asio::awaitable<TargetResult<JobOutcome>> run(const kube::BackupStorage& object, VolumeJobKind kind,
                                                      std::vector<std::string> keep);

  // The Job known under `job` (namespace/name), or nullptr.
  const boost::json::value* cached(const ObjectKey& job) const;

 private:
  // Deletes the Job under `job_key` whose uid is `uid` and forgets it, so that a new one can be created.
  boost::asio::awaitable<TargetResult<Ok>> retire(const ObjectKey& job_key, const std::string& uid,
                                                  const std::string& why);

  kube::Api& api_;
  VolumeJobsOptions options_;
  OnChange on_change_;
  std::map<ObjectKey, boost::json::value> jobs_;  // by namespace/name
  std::set<std::string> retired_uids_;           // Jobs we deleted whose DELETED event is still to come
};

}  // namespace stowage::engine
