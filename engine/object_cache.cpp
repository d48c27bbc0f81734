#include "engine/object_cache.hpp"

namespace stowage::engine {

void ObjectCache::unindex(const kube::BackupStorage& storage) {
  auto secret = storage.spec.storage.secret_name();
  if (secret.empty()) return;
  auto it = by_secret_.find({storage.metadata.namespace_, secret});
  if (it == by_secret_.end()) return;
  it->second.erase(storage.metadata.name);
  if (it->second.empty()) by_secret_.erase(it);
}

void ObjectCache::upsert(kube::BackupStorage storage) {
  auto key = key_of(storage.metadata);
  if (auto it = storages_.find(key); it != storages_.end()) unindex(it->second);
  auto secret = storage.spec.storage.secret_name();
  if (!secret.empty()) by_secret_[{key.namespace_, secret}].insert(key.name);
  storages_.insert_or_assign(key, std::move(storage));
}

bool ObjectCache::erase_storage(const ObjectKey& key) {
  auto it = storages_.find(key);
  if (it == storages_.end()) return false;
  unindex(it->second);
  storages_.erase(it);
  return true;
}

const kube::BackupStorage* ObjectCache::storage(const ObjectKey& key) const {
  auto it = storages_.find(key);
  return it == storages_.end() ? nullptr : &it->second;
}

void ObjectCache::upsert(kube::Secret secret) {
  auto key = key_of(secret.metadata);
  secrets_.insert_or_assign(key, std::move(secret));
}

bool ObjectCache::erase_secret(const ObjectKey& key) { return secrets_.erase(key) > 0; }

const kube::Secret* ObjectCache::secret(const ObjectKey& key) const {
  auto it = secrets_.find(key);
  return it == secrets_.end() ? nullptr : &it->second;
}

std::vector<ObjectKey> ObjectCache::storages_using_secret(const ObjectKey& secret) const {
  std::vector<ObjectKey> out;
  auto it = by_secret_.find(secret);
  if (it == by_secret_.end()) return out;
  for (const auto& name : it->second) out.push_back({secret.namespace_, name});
  return out;
}

}  // namespace stowage::engine
