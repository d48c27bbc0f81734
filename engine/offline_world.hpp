#pragma once
// OfflineWorld — the offline (manifest) mode's stand-in for the API server: it admits objects
// from the manifest source the way the API server would (a stable uid, a generation that moves
// only when the spec changes, a creation time), keeps their status in the state store, and feeds
// keys to the work queue. Removing a manifest deletes its storage (the deletion policy applies),
// but only for objects that this same manifest folder created.
#include <map>
#include <string>
#include <vector>

#include "engine/object_cache.hpp"
#include "engine/target.hpp"
#include "persistence/records.hpp"

namespace stowage::persistence {
class StateStore;
class WorkQueue;
}  // namespace stowage::persistence

namespace stowage::engine {

class OfflineWorld final : public SourceSink, public ReconcileTarget {
 public:
  // source_id: the manifest folder's absolute path. deletions: false for `stowage init`, which
  // never deletes anything.
  OfflineWorld(persistence::StateStore* store, const std::vector<persistence::ObjectRecord>& records,
               std::string source_id, persistence::WorkQueue& queue, bool deletions,
               LocationSettings locations = {});

  void storage_upserted(kube::BackupStorage storage) override;
  void storage_removed(const ObjectKey& key) override;
  void secret_upserted(kube::Secret secret) override;
  void secret_removed(const ObjectKey& key) override;
  void synced() override;

  std::optional<Lookup> get(const ObjectKey& key) override;
  boost::asio::awaitable<TargetResult<std::optional<kube::Secret>>> secret(ObjectKey key) override;
  boost::asio::awaitable<TargetResult<Ok>> ensure_finalizer(const kube::BackupStorage& object) override;
  boost::asio::awaitable<TargetResult<Ok>> write_status(const kube::BackupStorage& object,
                                                        kube::BackupStorageStatus status) override;
  boost::asio::awaitable<TargetResult<Ok>> deletion_done(const kube::BackupStorage& object) override;
  const LocationIndex& locations() const override { return locations_; }

  const ObjectCache& cache() const { return cache_; }

 private:
  void save(const persistence::ObjectRecord& record);
  void forget(const ObjectKey& key);
  void enqueue(const ObjectKey& key, const std::string& reason);
  void enqueue_overlapping(const std::vector<ObjectKey>& keys, const ObjectKey& changed);

  persistence::StateStore* store_;
  std::string source_id_;
  persistence::WorkQueue& queue_;
  bool deletions_;
  ObjectCache cache_;
  std::map<ObjectKey, persistence::ObjectRecord> records_;
  // Every recorded storage, from any folder, until its deletion is done: their data is still there.
  LocationIndex locations_;
};

}  // namespace stowage::engine
