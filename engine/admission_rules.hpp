#pragma once
// The validating admission webhook's rules for a BackupStorage: pure functions over the object (and,
// for an update, its old version) and the informers' caches. No backend call, no API request, no
// I/O: an answer takes microseconds per storage cached, far inside any webhook timeout.
//
// KubeStash's four rules, in KubeStash's order and with its messages word for word (create and update):
//  1. spec.default while another storage of the namespace has it: kMultipleDefaults;
//  2. usagePolicy.allowedNamespaces.from Selector without a selector: kEmptySelector;
//  3. (update) spec.storage changed while status.repositories is not empty: kInUse;
//  4. another storage anywhere with the same provider and, as written, the same s3 bucket+region+prefix,
//     gcs bucket+prefix or azure storageAccount+container+prefix: kSameDirectory.
// Then stowage's own, which judge only spec.storage, and so run on a create and on an update that
// changes spec.storage (an object accepted before this webhook existed can still have its labels or
// finalizers changed):
//  5. a known provider whose section is there, and no section of another provider;
//  6. local: mountPath and hostPath.path (and nfs.path) absolute without "..", subPath relative
//     without "..";
//  7. no other storage's location equal to this one's, holding it or inside it, with paths cleaned
//     as the engine cleans them and S3 endpoints compared as the engine compares them
//     (engine/locations.hpp): a WipeOut of one would delete the other's backups.
// An object being deleted (the old version has a deletionTimestamp) passes every rule while its
// spec.storage stays as it was: removing the last finalizer must never be refused.
// Limits: the caches are the controller's, so with --namespace only that namespace's storages are
// compared (KubeStash lists the whole cluster).
#include <optional>
#include <string>
#include <string_view>

#include "engine/locations.hpp"
#include "engine/object_cache.hpp"
#include "kube/model.hpp"

namespace stowage::engine {

inline constexpr std::string_view kMultipleDefaults =
    "multiple default BackupStorages are not allowed within the same namespace";
inline constexpr std::string_view kEmptySelector = "selector cannot be empty for usage policy of type \"Selector\"";
inline constexpr std::string_view kInUse = "BackupStorage is currently in use and cannot be modified";
inline constexpr std::string_view kSameDirectory =
    "no two BackupStorage should point to the same directory of the same bucket";

// What the rules read besides the object: every BackupStorage the controller's informers hold, and
// their locations.
struct AdmissionCaches {
  const ObjectCache& cache;
  const LocationIndex& locations;
  // The namespaces the informers watch (--namespace); empty: all. The caches know nothing of others.
  std::vector<std::string> namespaces = {};
};

// nullopt when `storage` may be created, else the message that refuses it.
std::optional<std::string> validate_create(const kube::BackupStorage& storage, const AdmissionCaches& caches);
// nullopt when `old` may become `storage`, else the message that refuses it.
std::optional<std::string> validate_update(const kube::BackupStorage& storage, const kube::BackupStorage& old,
                                           const AdmissionCaches& caches);

}  // namespace stowage::engine
