#pragma once
// ObjectCache — the engine's local store of the latest BackupStorages and Secrets, keyed by
// namespace/name, fed by a source (manifest folder now, Kubernetes watches next). The reconciler
// always reads the newest object from here: the queue carries keys, never objects.
#include <compare>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "kube/model.hpp"

namespace stowage::engine {

struct ObjectKey {
  std::string namespace_;
  std::string name;
  auto operator<=>(const ObjectKey&) const = default;
  std::string str() const { return namespace_ + "/" + name; }
};

// The key of an object (its namespace and name).
inline ObjectKey key_of(const kube::ObjectMeta& meta) { return {meta.namespace_, meta.name}; }
inline ObjectKey key_of(const kube::BackupStorage& storage) { return key_of(storage.metadata); }

class ObjectCache {
 public:
  void upsert(kube::BackupStorage storage);
  bool erase_storage(const ObjectKey& key);
  const kube::BackupStorage* storage(const ObjectKey& key) const;
  const std::map<ObjectKey, kube::BackupStorage>& storages() const { return storages_; }

  void upsert(kube::Secret secret);
  bool erase_secret(const ObjectKey& key);
  const kube::Secret* secret(const ObjectKey& key) const;

  // The BackupStorages in the secret's namespace that name it as their credentials.
  std::vector<ObjectKey> storages_using_secret(const ObjectKey& secret) const;

 private:
  void unindex(const kube::BackupStorage& storage);
  std::map<ObjectKey, kube::BackupStorage> storages_;
  std::map<ObjectKey, kube::Secret> secrets_;
  std::map<ObjectKey, std::set<std::string>> by_secret_;  // secret key -> storage names
};

}  // namespace stowage::engine
