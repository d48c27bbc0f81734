#pragma once
// KubeWorld — the Kubernetes mode as the reconciler's ReconcileTarget: a thin facade over its parts,
// each with its own header comment.
//  - KubeSource (engine/kube_source.hpp): the informers (BackupStorages, metadata-only Secrets,
//    Repositories, volume Jobs) -> ObjectCache -> WorkQueue, the state store's mirror of the caches
//    (KubeCacheMirror) for a resume, invalid objects, the LocationIndex, the RepositoryIndex and the
//    Secret data cache. get(), secret(), locations(), repositories(), synced() and problem() read it.
//  - KubeTarget (engine/kube_target.hpp): the finalizer and status writes (which update the source's
//    cache from the server's answer) and Events.
//  - DependentDeleter (engine/dependent_deleter.hpp): a deleted storage's Repositories and Snapshots.
//  - VolumeJobs (engine/volume_jobs.hpp, with local.volume-mode=job): the helper Jobs of local
//    volumes; the source's Job informer feeds it, and a change queues the storage a Job names.
// Everything runs on the reactor; failures are TargetErrors that say whether a retry may help.
#include <boost/asio/any_io_executor.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <filesystem>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/dependent_deleter.hpp"
#include "engine/kube_source.hpp"
#include "engine/kube_target.hpp"
#include "engine/object_cache.hpp"
#include "engine/target.hpp"

namespace stowage::kube {
class Api;
}  // namespace stowage::kube

namespace stowage::persistence {
class StateStore;
class WorkQueue;
}

namespace stowage::engine {

class VolumeJobs;

struct KubeWorldOptions {
  // The namespaces served, each watched on its own (KubeSource); empty = all namespaces.
  std::vector<std::string> namespaces;
  std::uint64_t seed = 0;  // for the informers' jitter
  // The API server, as recorded (with the namespace) with the cached objects in the state store: a
  // cache of another server or namespace is dropped, never resumed from.
  std::string server;
  // Set: local volumes are initialized and wiped by Jobs (watched with kVolumeJobSelector).
  std::optional<VolumeJobSettings> volume_jobs;
  // Where local volumes are resolved (direct mode); whether Jobs reach them is taken from volume_jobs.
  std::filesystem::path local_root = "/";
  // A failed cleaner Job is run again once it has been failed this long (the permanent retry period).
  std::chrono::milliseconds failed_cleanup_retry{600000};
  // Every informer's watch is opened again once nothing has arrived on it for this long.
  std::chrono::milliseconds watch_idle_timeout{90000};
};

class KubeWorld final : public ReconcileTarget {
 public:
  // `store` may be null (nothing is persisted or resumed). Reads the store: call before the reactor runs.
  KubeWorld(boost::asio::any_io_executor executor, kube::Api& api, persistence::WorkQueue& queue,
            persistence::StateStore* store, KubeWorldOptions options);
  ~KubeWorld() override;

  // Starts the informers; `on_synced` runs once, when all (in every namespace) have delivered a
  // complete listing.
  void start(std::function<void()> on_synced);
  void stop();
  bool synced() const;
  // Why the source is not synced yet ("" when it is): the informers' last failures.
  std::string problem() const;
  const ObjectCache& cache() const { return source_->cache(); }
  // The namespaces served (empty: all).
  const std::vector<std::string>& namespaces() const { return source_->namespaces(); }

  std::optional<Lookup> get(const ObjectKey& key) override;
  boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey key) override;
  boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& object) override;
  boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& object,
                                                        kube::BackupStorageStatus status) override;
  boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& object) override;
  boost::asio::awaitable<TargetResult<Dependents>> delete_dependents(const kube::BackupStorage& object) override;
  void event(const kube::BackupStorage& object, bool warning, const std::string& reason, const std::string& action,
             const std::string& note) override;
  const LocationIndex& locations() const override { return source_->locations(); }
  StorageRepositories repositories(const ObjectKey& storage) override {
    return source_->repositories().status_for(storage);
  }
  bool volume_jobs() const override { return options_.volume_jobs.has_value(); }
  boost::asio::awaitable<TargetResult<JobOutcome>> volume_job(const kube::BackupStorage& object, VolumeJobKind kind,
                                                             std::vector<std::string> keep) override;

  struct Stats {
    std::uint64_t secret_gets = 0, status_writes = 0, finalizer_writes = 0;
    std::size_t restored_storages = 0, restored_secrets = 0;
  };
  // The parts' counters, gathered at each call.
  const Stats& stats() const;

 private:
  KubeWorldOptions options_;
  std::unique_ptr<VolumeJobs> volume_jobs_;  // only with volume Jobs
  std::unique_ptr<KubeSource> source_;
  std::unique_ptr<KubeTarget> target_;
  std::unique_ptr<DependentDeleter> dependents_;  // over the source's RepositoryIndex
  mutable Stats stats_;
};

}  // namespace stowage::engine
