// RepositoryIndex: the Repository -> BackupStorage index and the status it yields (see the header
// for what is KubeStash's and what is decided here). Guarantees: an upsert or remove returns exactly
// the storages whose status_for() result differs afterwards; the index never holds a storage with no
// Repository.
#include "engine/repositories.hpp"

#include <algorithm>
#include <limits>

namespace stowage::engine {
namespace {

ObjectKey storage_of(const kube::Repository& repo) {
  auto ref = repo.storage();
  return {ref.namespace_, ref.name};
}

}  // namespace

std::vector<ObjectKey> RepositoryIndex::storages_affected(const kube::Repository& repo) const {
  std::vector<ObjectKey> out{storage_of(repo)};
  if (auto it = entries_.find(key_of(repo.metadata)); it != entries_.end() && it->second.storage != out.front())
    out.push_back(it->second.storage);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<ObjectKey> RepositoryIndex::upsert(const kube::Repository& repo) {
  ObjectKey key = key_of(repo.metadata);
  Entry next{storage_of(repo), repo.spec.path, repo.status.size, repo.metadata.uid};
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.shows_same(next)) {
    it->second.uid = next.uid;
    return {};
  }
  std::vector<ObjectKey> changed = storages_affected(repo);
  if (it != entries_.end() && it->second.storage != next.storage) {
    auto old = by_storage_.find(it->second.storage);
    old->second.erase(key);
    if (old->second.empty()) by_storage_.erase(old);
  }
  by_storage_[next.storage].insert(key);
  entries_[key] = std::move(next);
  return changed;
}

std::vector<ObjectKey> RepositoryIndex::remove(const ObjectKey& repo) {
  auto it = entries_.find(repo);
  if (it == entries_.end()) return {};
  ObjectKey storage = it->second.storage;
  auto users = by_storage_.find(storage);
  users->second.erase(repo);
  if (users->second.empty()) by_storage_.erase(users);
  entries_.erase(it);
  return {storage};
}

std::vector<RepositoryIndex::RepositoryRef> RepositoryIndex::repositories_using(const ObjectKey& storage) const {
  std::vector<RepositoryRef> out;
  auto users = by_storage_.find(storage);
  if (users == by_storage_.end()) return out;
  for (const ObjectKey& key : users->second) out.push_back({key, entries_.at(key).uid});
  return out;
}

StorageRepositories RepositoryIndex::status_for(const ObjectKey& storage) const {
  StorageRepositories out;
  auto users = by_storage_.find(storage);
  if (users == by_storage_.end()) return out;
  std::uint64_t total = 0;
  for (const ObjectKey& key : users->second) {
    const Entry& e = entries_.at(key);
    kube::RepositoryStatus r;
    r.name = key.name;
    r.namespace_ = key.namespace_;
    r.path = e.path;
    r.size = e.size;
    r.synced = true;
    out.repositories.push_back(std::move(r));
    if (e.size.empty()) continue;  // no backup yet
    auto bytes = kube::parse_size(e.size);
    if (!bytes) {
      out.problems.push_back(key.str() + ": status.size " + bytes.error().message + "; it is left out of totalSize");
      continue;
    }
    // Saturates rather than wraps: 16 EiB is far beyond any storage, but a wrong total is worse than a capped one.
    total = bytes.value() > std::numeric_limits<std::uint64_t>::max() - total
                ? std::numeric_limits<std::uint64_t>::max()
                : total + bytes.value();
  }
  out.total_size = kube::format_size(total);
  return out;
}

}  // namespace stowage::engine
