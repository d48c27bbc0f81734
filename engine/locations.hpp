#pragma once
// Where each live BackupStorage keeps its data, and which storages overlap.
//
// Two storages overlap when they use the same place (same provider, same endpoint or account, same
// bucket or container; for local volumes the same volume) and their paths are equal or one lies
// inside the other, compared segment by segment after the slashes are trimmed ("backup" holds
// "backup/team-b" but not "backup2"). A WipeOut of one would then delete the other's backups. The
// engine therefore (both modes, independently of any admission webhook):
//  - initializes only the older of two overlapping storages (creationTimestamp; within the same
//    second, the one already initialized, so that a newcomer never displaces a storage in use; then
//    uid): the younger is reported with StorageLocationConflict and never initialized nor wiped;
//  - never wipes a storage whose location equals an older one's or lies inside another's, and keeps
//    the locations of storages nested inside the one being wiped (WipePlan::keep).
// The index holds every storage the source still has, including those being deleted (their data is
// there until their cleanup ends); the world removes an entry only when the object is gone for good.
// Each change returns the storages whose overlaps may have changed, to be reconciled again.
//
// Paths are compared as written in the spec, cleaned as KubeStash cleans a prefix: a storage cannot
// hide an overlap with "a//b" or "a/./b". Local directories (direct mode) are those the backend
// uses, resolved beneath local.root without symlinks (the backend refuses symlinks on the way).
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/object_cache.hpp"
#include "kube/model.hpp"

namespace stowage::engine {

struct StorageLocation {
  std::string space;  // "s3:aws/bucket", "gcs:bucket", "azure:account/container", "local", "hostPath",
                      // "pvc:ns/claim", "nfs:server"
  std::string path;   // cleaned, no leading or trailing slash; "" = the whole space
  std::string label;  // for messages: "s3 bucket `b` prefix `p` at https://minio:9000"
};

struct LocationSettings {
  std::filesystem::path local_root = "/";
  bool volume_jobs = false;  // local volumes are reached through Jobs (their volume source is the place)
};

// The storage's location, or nothing when it has none that could overlap (an unusable spec, an
// emptyDir or another per-pod volume).
std::optional<StorageLocation> location_of(const kube::BackupStorage& storage, const LocationSettings& settings);

enum class Nesting { Same, Inside, Holds };  // how the other storage's location relates to this one's

struct Overlap {
  ObjectKey other;
  Nesting nesting = Nesting::Same;
  bool other_is_older = false;
  std::string other_label;  // the other storage's location, for messages
};

class LocationIndex {
 public:
  explicit LocationIndex(LocationSettings settings = {});

  // Records (or moves) the storage's location. Returns the other storages whose overlaps changed.
  std::vector<ObjectKey> put(const kube::BackupStorage& storage);
  // The storage is gone for good. Returns the storages that overlapped it.
  std::vector<ObjectKey> erase(const ObjectKey& key);

  // Every other storage overlapping this one, oldest first.
  std::vector<Overlap> overlaps(const ObjectKey& key) const;
  // The oldest storage older than this one that overlaps it: this one must not be initialized.
  std::optional<Overlap> conflict(const ObjectKey& key) const;
  // The storage's own location, as recorded.
  const StorageLocation* location(const ObjectKey& key) const;
  // Every storage recorded (other than one of the candidate's namespace and name) that would overlap
  // `candidate` were it put, by key; `other_is_older` is true for all (they exist already). For the
  // admission webhook: it judges an object the index does not have yet, or has in an older version.
  std::vector<Overlap> overlaps_with(const kube::BackupStorage& candidate) const;

  const LocationSettings& settings() const { return settings_; }
  std::size_t size() const { return entries_.size(); }

 private:
  struct Age {
    std::string creation_timestamp;  // RFC 3339 in UTC, second precision: compares as text
    bool pending = true;             // not (yet) initialized: loses a tie in the same second
    std::string uid;
    auto operator<=>(const Age&) const = default;
  };
  struct Entry {
    StorageLocation where;
    Age age;
  };
  using Path = std::map<std::string, std::set<ObjectKey>>;  // path -> storages there
  void unlink(const ObjectKey& key, const Entry& entry);
  std::vector<ObjectKey> overlapping(const StorageLocation& where, const ObjectKey& except) const;
  // How the recorded `other` relates to a storage at `where`.
  Overlap overlap(const StorageLocation& where, const ObjectKey& other) const;

  LocationSettings settings_;
  std::map<ObjectKey, Entry> entries_;
  std::map<std::string, Path> spaces_;  // space -> paths
};

// For messages: "is at the same location as", "lies inside the location of", "holds the location of".
std::string describe(Nesting nesting);

// For messages a tenant reads (status, admission refusals): "BackupStorage ns/name (its location)" when
// the other storage is in the reader's namespace, else "a BackupStorage in another namespace": a tenant
// learns that a place is taken, never another namespace's storage names or prefixes.
std::string other_storage(const Overlap& overlap, std::string_view reader_namespace);

}  // namespace stowage::engine
