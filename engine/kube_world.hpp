#pragma once
// KubeWorld — the Kubernetes source and target: BackupStorages and Secrets come from the API server
// through two informers, results go back to it.
//  - BackupStorages: a full informer (all namespaces, or one) into the engine's ObjectCache. A key is
//    queued when the object is new, its spec (generation), uid or deletionTimestamp changed, or our
//    finalizer was taken off; a change of status alone is not queued (it is our own write coming back).
//  - Secrets: a metadata-only informer (PartialObjectMetadata: no Secret data is held for Secrets no
//    storage uses) tells which Secrets exist and when they change; the data of a Secret a storage
//    references is fetched with one GET and kept until its resourceVersion moves.
//  - Both informers' objects (BackupStorage JSON; only the resourceVersion of a Secret) and their
//    resourceVersions are kept in the state store (KubeCacheMirror, engine/kube_cache_mirror.hpp): a
//    restart restores the caches, takes them as synced at once and resumes both watches where they
//    stopped; the changes made meanwhile arrive as events (or, when the server has compacted that
//    far, a relist reports them).
//  - Repositories (storage.kubestash.com/v1alpha1): a third informer indexes them by the storage
//    they reference; a change queues the storages it touches, whose status.repositories and
//    status.totalSize are recomputed (the Repository cache is not persisted: it is listed at start).
//  - Deleting a storage deletes its Repositories (from that index) and their Snapshots (listed in
//    the Repository's namespace and matched on spec.repository only then: no Snapshot is cached),
//    each DELETE with the object's uid as a precondition; an object held by finalizers is not
//    deleted again, only waited for (DependentDeleter, engine/dependent_deleter.hpp).
//  - Volume Jobs (with local.volume-mode=job): the Jobs carrying kVolumeJobSelector's labels are
//    watched and handed to VolumeJobs (engine/volume_jobs.hpp), which creates, reads and retires
//    them; a change queues the storage their invoker labels name.
//  - Events (events.k8s.io/v1) for state changes, with repeats aggregated into a series.
//  - Writes as KubeStash makes them: status by merge patch of /status (fields that disappeared are
//    nulled), the finalizer kubestash.com/cleanup added and removed by JSON patch guarded by `test`
//    (409/422 mean the object moved on: retried with the newer one), 404 taken as "gone". A written
//    status and an added finalizer enter the cache at once, from the server's answer: a re-run
//    before the watch event comes back does not write them again.
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
#include "engine/kube_cache_mirror.hpp"
#include "engine/object_cache.hpp"
#include "engine/target.hpp"

namespace stowage::kube {
class Api;
class EventRecorder;
class Informer;
struct ApiError;
}  // namespace stowage::kube

namespace stowage::persistence {
class StateStore;
class WorkQueue;
}

namespace stowage::engine {

class VolumeJobs;

inline constexpr const char* kCleanupFinalizer = "kubestash.com/cleanup";

struct KubeWorldOptions {
  std::string namespace_;  // "" = all namespaces
  std::uint64_t seed = 0;  // for the informers' jitter
  // The API server and namespace, as recorded with the cached objects in the state store: a cache
  // of another scope is dropped, never resumed from.
  std::string scope;
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

  // Starts both informers; `on_synced` runs once, when both have delivered a complete listing.
  void start(std::function<void()> on_synced);
  void stop();
  bool synced() const;
  // Why the source is not synced yet ("" when it is): the informers' last failures.
  std::string problem() const;
  const ObjectCache& cache() const { return cache_; }

  std::optional<Lookup> get(const ObjectKey& key) override;
  boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey key) override;
  boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& object) override;
  boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& object,
                                                        kube::BackupStorageStatus status) override;
  boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& object) override;
  boost::asio::awaitable<TargetResult<Dependents>> delete_dependents(const kube::BackupStorage& object) override;
  void event(const kube::BackupStorage& object, bool warning, const std::string& reason, const std::string& action,
             const std::string& note) override;
  const LocationIndex& locations() const override { return locations_; }
  StorageRepositories repositories(const ObjectKey& storage) override { return repositories_.status_for(storage); }
  bool volume_jobs() const override { return options_.volume_jobs.has_value(); }
  boost::asio::awaitable<TargetResult<JobOutcome>> volume_job(const kube::BackupStorage& object, VolumeJobKind kind,
                                                             std::vector<std::string> keep) override;

  struct Stats {
    std::uint64_t secret_gets = 0, status_writes = 0, finalizer_writes = 0;
    std::size_t restored_storages = 0, restored_secrets = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  void storage_upserted(boost::json::value object);
  void storage_removed(const std::string& ns, const std::string& name);
  void secret_changed(const std::string& ns, const std::string& name, const std::string& why);
  void enqueue(const ObjectKey& key, const std::string& reason);
  void check_synced();
  // After a status write: the cached object (same uid as `answer`, the server's reply) takes its status.
  void remember_status(const ObjectKey& key, const boost::json::value& answer);

  boost::asio::any_io_executor executor_;
  kube::Api& api_;
  persistence::WorkQueue& queue_;
  KubeWorldOptions options_;
  KubeCacheMirror mirror_;  // the informers' caches in the state store
  bool storages_resumed_ = false, secrets_resumed_ = false;
  bool restoring_ = false;  // storage_upserted from the store: neither persisted again nor queued
  std::unique_ptr<kube::Informer> storages_;
  std::unique_ptr<kube::Informer> secrets_;
  std::unique_ptr<kube::Informer> repository_informer_;
  std::unique_ptr<kube::Informer> job_informer_;  // only with volume Jobs
  std::unique_ptr<VolumeJobs> volume_jobs_;       // only with volume Jobs
  std::unique_ptr<kube::EventRecorder> events_;
  RepositoryIndex repositories_;
  DependentDeleter dependents_;  // over repositories_
  std::function<void()> on_synced_;
  bool synced_reported_ = false;

  ObjectCache cache_;
  // Every storage the API server still has (being deleted included). An object that cannot be read
  // keeps the location it had: its data has not moved.
  LocationIndex locations_;
  struct Invalid {
    kube::BackupStorage partial;  // metadata and what else could be read
    std::string problem;
  };
  std::map<ObjectKey, Invalid> invalid_;
  struct CachedSecret {
    std::string resource_version;
    kube::Secret secret;
  };
  std::map<ObjectKey, CachedSecret> secret_data_;
  Stats stats_;
};

}  // namespace stowage::engine
