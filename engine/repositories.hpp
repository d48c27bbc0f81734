#pragma once
// RepositoryIndex — which KubeStash Repositories use which BackupStorage, fed by a Repository
// informer, and the `status.repositories` / `status.totalSize` a BackupStorage should show.
//
// Guarantees:
// - Pure: no I/O, no clock. Upsert/remove return the storages whose status_for() result changed, so
//   a Repository whose status moved in a field a storage does not show (lastBackupTime, snapshotCount,
//   conditions, ...) queues nothing; moving a Repository to another storage returns both storages.
// - status_for(storage) lists every indexed Repository whose storage() is that storage, sorted by
//   namespace then name (the API server's list order; KubeStash's order is not known, see below),
//   each as {name, namespace, path = spec.path as written, size = status.size as written, synced =
//   true, error = ""}; total_size is format_size of the sum of parse_size over the non-empty sizes,
//   or "" when no Repository uses the storage. A size that does not parse adds nothing and is named
//   in `problems` (never in the status).
// - Memory: one small entry per Repository (its storage, path, size and uid), not the object.
//
// KubeStash (confirmed; kubestash/apimachinery apis/storage/v1alpha1/backupstorage_types.go):
// RepositoryInfo {name, namespace, path, size, synced *bool, error *string} with omitempty, "Repositories
// holds the information of all Repositories using this BackupStorage", and TotalSize "is simply the
// summation of sizes of all Repositories using this BackupStorage". A Repository uses a storage through
// spec.storageRef {name, namespace}; KubeStash's webhooks compare both fields
// (webhooks/core/v1alpha1/backupconfiguration.go storageRefMatched). kubestash/docs
// docs/concepts/crds/backupstorage/index.md shows an entry copied from its Repository (path
// "/demo/data" = spec.path, size "12.222 MiB" = status.size, synced: true, no error) and totalSize equal
// to the one size; "synced indicates whether the repo is synced with the storage state", "error
// specifies the reason in case of Repository sync failure". `kubectl get backupstorage` output in
// KubeStash/KubeDB guides shows an empty TOTAL-SIZE for a fresh storage and "3.292 KiB" once backups
// exist.
// Not confirmed (KubeStash's controller source, kubestash/kubestash pkg/controllers, could not be read
// here), so decided as a user would expect and written down:
// - The order of the entries (controller-runtime's cache lists in no fixed order): namespace, name.
// - synced/error: most likely they describe syncing the storage's recorded Repositories back into the
//   cluster (the docs: a re-created storage "will sync the corresponding Repositories"; an older API
//   had a RepositorySynced condition); stowage does not re-create Repositories from backend data, so
//   every entry is a Repository that exists in the cluster: synced true, no error.
// - Sizes parsed back to bytes and summed (KubeStash's exported ConvertSizeToByte/FormatBytes are the
//   natural way and the only size arithmetic it has); truncation makes a sum of "1.083 KiB" read as 1108
//   bytes, as KubeStash's would.
// - totalSize "" (omitted) with no Repository; "0 B" when Repositories exist but none has a size yet.
// - A storageRef without a namespace means the Repository's own namespace; a Repository being deleted
//   (deletionTimestamp set) or paused still uses its storage until it is gone.
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/object_cache.hpp"
#include "kube/model.hpp"
#include "kube/repository.hpp"

namespace stowage::engine {

struct StorageRepositories {
  std::vector<kube::RepositoryStatus> repositories;  // for BackupStorageStatus::repositories
  std::string total_size;                            // for BackupStorageStatus::total_size
  // "<ns>/<name>: <why>" for each size that could not be read (logged or sent as an Event, never
  // written into the status).
  std::vector<std::string> problems;
};

class RepositoryIndex {
 public:
  // The storages a change of `repo` touches: the one the index has for it now (if any) and the one
  // `repo` names, once each, sorted.
  std::vector<ObjectKey> storages_affected(const kube::Repository& repo) const;

  // Records `repo`; returns the storages whose status_for() changed (empty when nothing visible did).
  std::vector<ObjectKey> upsert(const kube::Repository& repo);
  // Forgets the Repository; returns the storage it used (empty when it was not indexed).
  std::vector<ObjectKey> remove(const ObjectKey& repo);

  StorageRepositories status_for(const ObjectKey& storage) const;

  // The Repositories that use `storage` (namespace, name and uid), sorted: what a deletion of the
  // storage deletes. A copy, since the index changes while the caller awaits.
  struct RepositoryRef {
    ObjectKey key;
    std::string uid;
  };
  std::vector<RepositoryRef> repositories_using(const ObjectKey& storage) const;

  std::size_t size() const { return entries_.size(); }
  bool contains(const ObjectKey& repo) const { return entries_.count(repo) > 0; }

 private:
  struct Entry {
    ObjectKey storage;
    std::string path, size;
    std::string uid;  // not shown in any status: a change of it alone touches no storage
    bool shows_same(const Entry& o) const { return storage == o.storage && path == o.path && size == o.size; }
  };
  std::map<ObjectKey, Entry> entries_;                   // repository -> what it shows
  std::map<ObjectKey, std::set<ObjectKey>> by_storage_;  // storage -> its repositories (sorted)
};

}  // namespace stowage::engine
