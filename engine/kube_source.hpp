#pragma once
// KubeSource — the Kubernetes mode's source: informers -> ObjectCache -> WorkQueue. What the
// reconciler reads (get, secret, locations, repositories) comes from here; nothing here writes to
// the API server (KubeTarget, engine/kube_target.hpp, does).
//  - Namespaces: with options.namespaces empty, each informer below watches all namespaces; with a
//    list, each runs once per namespace (a "stream": its own list, watch, resourceVersion, 410 and
//    relist), all feeding the one cache and queue, and nothing outside the list is ever requested
//    (only .../namespaces/<ns>/... paths: Roles in those namespaces are all the RBAC it needs).
//    synced() waits for every stream.
//  - BackupStorages: a full informer into the ObjectCache. A key is queued when the object is new,
//    its spec (generation), uid or deletionTimestamp changed, or our finalizer was taken off; a
//    change of status alone is not queued (it is our own write coming back).
//    An object that cannot be read is kept apart with its problem (get() returns what could be read,
//    `invalid` says why) and keeps the location it had in the LocationIndex: its data has not moved.
//    A change of a storage's location queues the storages whose overlaps it changed.
//  - Secrets: a metadata-only informer (PartialObjectMetadata: no Secret data is held for Secrets no
//    storage uses) tells which Secrets exist and when they change, and queues the storages that use
//    one; the data of a Secret a storage references is fetched with one GET and kept until its
//    resourceVersion moves.
//  - Both informers' objects (BackupStorage JSON; only the resourceVersion of a Secret) and each
//    stream's resourceVersion are kept in the state store (KubeCacheMirror, engine/kube_cache_mirror.hpp):
//    a restart restores the caches, takes each resumed stream as synced at once and resumes its watch
//    where it stopped (a namespace added to the list since is listed); the changes made meanwhile
//    arrive as events (or, when the server has compacted that far, a relist of that stream reports
//    them: what vanished is removed and its key queued).
//  - Repositories (storage.kubestash.com/v1alpha1): a third informer indexes them by the storage
//    they reference (RepositoryIndex); a change queues the storages it touches, whose
//    status.repositories and status.totalSize are recomputed (not persisted: listed at start).
//  - Volume Jobs (with local.volume-mode=job): the Jobs carrying kVolumeJobSelector's labels are
//    watched and handed to VolumeJobs (engine/volume_jobs.hpp), which queues the storages they name.
//  - A write's answer from the API server (finalizers_written, status_written) enters the cache at
//    once, for the object the cache holds (same uid): a re-run before the watch event comes back
//    does not write again.
// Assumes: one reactor thread; the Api, queue and VolumeJobs outlive the source. The constructor
// reads the state store (blocking): build the source before the reactor runs.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/kube_cache_mirror.hpp"
#include "engine/locations.hpp"
#include "engine/object_cache.hpp"
#include "engine/repositories.hpp"
#include "engine/target.hpp"

namespace stowage::kube {
class Api;
class Informer;
}  // namespace stowage::kube

namespace stowage::persistence {
class StateStore;
class WorkQueue;
}  // namespace stowage::persistence

namespace stowage::engine {

class VolumeJobs;

inline constexpr const char* kCleanupFinalizer = "kubestash.com/cleanup";

// Whether `storage` carries kCleanupFinalizer.
bool has_cleanup_finalizer(const kube::BackupStorage& storage);

struct KubeSourceOptions {
  std::vector<std::string> namespaces;  // served; empty = all namespaces (one cluster-wide watch per kind)
  std::uint64_t seed = 0;  // for the informers' jitter
  // The API server, as recorded (with the namespace) with the cached objects in the state store: a
  // cache of another server or namespace is dropped, never resumed from.
  std::string server;
  LocationSettings locations;
  // Every informer's watch is opened again once nothing has arrived on it for this long.
  std::chrono::milliseconds watch_idle_timeout{90000};
};

class KubeSource {
 public:
  // `store` may be null (nothing is persisted or resumed). `jobs`, when not null, receives the volume
  // Jobs' events (the Job informer runs only then).
  KubeSource(boost::asio::any_io_executor executor, kube::Api& api, persistence::WorkQueue& queue,
             persistence::StateStore* store, KubeSourceOptions options, VolumeJobs* jobs = nullptr);
  ~KubeSource();
  KubeSource(const KubeSource&) = delete;
  KubeSource& operator=(const KubeSource&) = delete;

  // Starts the informers; `on_synced` runs once, when all have delivered a complete listing (at
  // once for the restored ones).
  void start(std::function<void()> on_synced);
  void stop();
  bool synced() const;
  // Why the source is not synced yet ("" when it is): the informers' last failures.
  std::string problem() const;

  const ObjectCache& cache() const { return cache_; }
  // The storage as the reconciler sees it: nullopt when it is gone, or being deleted without our
  // finalizer (not ours to clean up, as KubeStash).
  std::optional<Lookup> get(const ObjectKey& key) const;
  // The Secret's data: from memory while its resourceVersion is the one the informer knows, else
  // one GET. nullopt when the Secret does not exist.
  boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey key);
  const LocationIndex& locations() const { return locations_; }
  const RepositoryIndex& repositories() const { return repositories_; }

  // The API server's answer to a write of the object at `key`: its finalizers, or its status, enter
  // the cached object if that is still the one written (same uid).
  void finalizers_written(const ObjectKey& key, const boost::json::value& answer);
  void status_written(const ObjectKey& key, const boost::json::value& answer);

  // Queues the storage `key` with `reason` (for the log).
  void enqueue(const ObjectKey& key, const std::string& reason);

  // Whether objects in namespace `ns` are watched (always, without a list of namespaces).
  bool serves(const std::string& ns) const;
  const std::vector<std::string>& namespaces() const { return options_.namespaces; }

  struct Stats {
    std::uint64_t secret_gets = 0;
    std::size_t restored_storages = 0, restored_secrets = 0;
  };
  const Stats& stats() const { return stats_; }

 private:
  // One namespace's informers ("" = all namespaces).
  struct Stream {
    std::string namespace_;
    bool storages_resumed = false, secrets_resumed = false;
    std::unique_ptr<kube::Informer> storages, secrets, repositories;
    std::unique_ptr<kube::Informer> jobs;  // only with volume Jobs
    bool synced() const;
  };
  void add_stream(const std::string& ns, std::uint64_t seed, KubeCacheMirror::Loaded& restored, VolumeJobs* jobs);
  // One restored object (of `resource`) into the caches of the stream of `stream_namespace`.
  void restore(const char* resource, const std::string& stream_namespace, KubeCacheMirror::RestoredObject&& object);
  // The stream watching namespace `ns`, or null when it is not served.
  const Stream* stream_of(const std::string& ns) const;
  void storage_upserted(boost::json::value object);
  void storage_invalid(const boost::json::value& object, std::string problem);
  void storage_removed(const std::string& ns, const std::string& name);
  void secret_upserted(const boost::json::value& object);
  void secret_removed(const std::string& ns, const std::string& name);
  void secret_changed(const ObjectKey& secret, const std::string& why);
  void repository_upserted(const boost::json::value& object);
  void check_synced();

  boost::asio::any_io_executor executor_;
  kube::Api& api_;
  persistence::WorkQueue& queue_;
  KubeSourceOptions options_;
  KubeCacheMirror mirror_;  // the informers' caches in the state store
  bool restoring_ = false;  // storage_upserted from the store: neither persisted again nor queued
  std::vector<Stream> streams_;  // one ("" = all namespaces), or one per namespace served
  std::function<void()> on_synced_;
  bool synced_reported_ = false;

  ObjectCache cache_;
  RepositoryIndex repositories_;
  // Every storage the API server still has (being deleted included).
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
