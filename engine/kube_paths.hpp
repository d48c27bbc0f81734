#pragma once
// The API paths the Kubernetes mode reads and writes: KubeStash's group-version
// (storage.kubestash.com/v1alpha1: BackupStorages, Repositories, Snapshots) and core Secrets and
// batch Jobs. One spelling of each, for the source, the target and the dependents' deleter.
#include <string>

#include "engine/object_cache.hpp"

namespace stowage::engine {

inline constexpr const char* kKubeStashApiPath = "/apis/storage.kubestash.com/v1alpha1";

// The collection `plural` under `group_path` in namespace `ns`, or in every namespace when `ns` is "".
inline std::string collection_path(const std::string& group_path, const std::string& plural, const std::string& ns) {
  return ns.empty() ? group_path + "/" + plural : group_path + "/namespaces/" + ns + "/" + plural;
}
// A KubeStash collection (by its plural: "backupstorages", "repositories", "snapshots").
inline std::string kubestash_collection_path(const std::string& plural, const std::string& ns) {
  return collection_path(kKubeStashApiPath, plural, ns);
}
// One namespaced KubeStash object.
inline std::string kubestash_object_path(const std::string& plural, const ObjectKey& key) {
  return kubestash_collection_path(plural, key.namespace_) + "/" + key.name;
}
inline std::string secret_path(const ObjectKey& key) {
  return collection_path("/api/v1", "secrets", key.namespace_) + "/" + key.name;
}

}  // namespace stowage::engine
