#pragma once
// The seams between a source of objects and the reconciler.
//  SourceSink: what a source (manifest folder now, Kubernetes watches next) tells the engine.
//  ReconcileTarget: what the reconciler reads (the newest object, its Secret) and where its results
//  go (status, the end of a deletion). The offline mode implements both in OfflineWorld.
#include <optional>
#include <string>

#include "engine/object_cache.hpp"
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
  bool deleting = false;  // the object is gone from the source (or has a deletionTimestamp)
};

class ReconcileTarget {
 public:
  virtual ~ReconcileTarget() = default;
  virtual std::optional<Lookup> get(const ObjectKey& key) = 0;
  virtual const kube::Secret* secret(const ObjectKey& key) = 0;
  virtual void write_status(const ObjectKey& key, const kube::BackupStorageStatus& status) = 0;
  virtual void deletion_done(const ObjectKey& key) = 0;
};

}  // namespace stowage::engine
