#pragma once
// The seams between a source of objects and the reconciler.
//  SourceSink: what a source (the manifest folder) tells the engine.
//  ReconcileTarget: what the reconciler reads (the newest object, its Secret) and where its results
//  go (the finalizer, status, the end of a deletion). OfflineWorld implements both for the offline
//  mode; KubeWorld implements ReconcileTarget against the API server (reads from KubeSource, writes
//  through KubeTarget).
// Reads of the object are synchronous (a local cache); everything that may talk to an API server
// is a coroutine whose failure says whether it is worth retrying.
#include <boost/asio/awaitable.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "engine/locations.hpp"
#include "engine/object_cache.hpp"
#include "engine/repositories.hpp"
#include "engine/volume_job.hpp"
#include "kube/model.hpp"

namespace stowage::engine {

class SourceSink {
 public:
  virtual ~SourceSink() = default;
  virtual void storage_upserted(kube::BackupStorage storage) = 0;
  virtual void storage_removed(const ObjectKey& key) = 0;
  virtual void secret_upserted(kube::Secret secret) = 0;
  virtual void secret_removed(const ObjectKey& key) = 0;
  // The first complete listing has been delivered: absent objects can now be taken as deleted.
  virtual void synced() = 0;
};

struct Lookup {
  kube::BackupStorage object;
  bool deleting = false;  // the object is gone from the source, or has a deletionTimestamp and our finalizer
  // Non-empty when the object as stored cannot be read (a field of the wrong type): the message
  // names the field. `object` then holds what could be read (metadata, status).
  std::string invalid;
};

struct TargetError {
  std::string message;  // secret-free: names the object and what failed
  bool transient = true;
};
template <class T>
using TargetResult = Result<T, TargetError>;

// What is left, after a round of deletes, of the objects that go with a storage being deleted (its
// Repositories and their Snapshots): each still there, named with the finalizers that hold it.
struct Dependents {
  std::vector<std::string> waiting;  // "Snapshot demo/snap-1 (finalizers: x)"; empty: all gone
};

class ReconcileTarget {
 public:
  virtual ~ReconcileTarget() = default;
  virtual std::optional<Lookup> get(const ObjectKey& key) = 0;
  // The Secret, or nothing when it does not exist.
  virtual boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey key) = 0;
  // The cleanup finalizer is on the object (added first, before any status write).
  virtual boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& object) = 0;
  virtual boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& object,
                                                                kube::BackupStorageStatus status) = 0;
  // Deletes the Repositories that use the storage (spec.storageRef) and their Snapshots (same
  // namespace, spec.repository), each Repository only once its Snapshots are gone, and says which are
  // still there (held by finalizers of other controllers). Repeated calls delete nothing twice. The
  // offline mode has no such objects.
  virtual boost::asio::awaitable<TargetResult<Dependents>> delete_dependents(const kube::BackupStorage& /*object*/) {
    co_return Dependents{};
  }
  // Cleanup is over: the object may go (the finalizer is removed).
  virtual boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& object) = 0;
  // The Repositories that use the storage, for status.repositories and status.totalSize. The offline
  // mode has none: its statuses keep whatever the manifests' status said (nothing).
  virtual StorageRepositories repositories(const ObjectKey& /*storage*/) { return {}; }
  // Whether local volumes go through Jobs (Kubernetes mode, local.volume-mode=job) instead of being
  // written by this process.
  virtual bool volume_jobs() const { return false; }
  // The Job of `kind` for the storage: created when missing, else its outcome as last seen. A cleanup
  // Job leaves `keep` alone (other storages' locations inside the volume, relative to it); a failed
  // one is replaced by a new run once it has been failed for the permanent retry period.
  virtual boost::asio::awaitable<TargetResult<JobOutcome>> volume_job(const kube::BackupStorage& /*object*/,
                                                                     VolumeJobKind /*kind*/,
                                                                     std::vector<std::string> /*keep*/) {
    co_return Err(TargetError{"volume Jobs are not available in this mode", false});
  }
  // Where every storage the source still has (being deleted included) keeps its data.
  virtual const LocationIndex& locations() const = 0;
  // A state change worth an Event (best effort, returns at once). The offline mode has no Events.
  virtual void event(const kube::BackupStorage& /*object*/, bool /*warning*/, const std::string& /*reason*/,
                     const std::string& /*action*/, const std::string& /*note*/) {}
};

}  // namespace stowage::engine
