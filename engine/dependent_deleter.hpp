#pragma once
// DependentDeleter — deletes the KubeStash objects that go with a BackupStorage being deleted: the
// Repositories that use it (from the RepositoryIndex, fed by the Repository informer) and their
// Snapshots (listed in the Repository's namespace, one listing per namespace and call, matched on
// spec.repository: no Snapshot is cached).
//
// Guarantees:
//  - Every DELETE carries the object's uid as a precondition: an object created meanwhile under the
//    name (409) is never deleted, and counts as gone; so does a 404.
//  - A Repository is deleted only once its Snapshots are gone; an object already being deleted
//    (deletionTimestamp set) is not deleted again, only waited for, and every object still there is
//    named with the finalizers that hold it (Dependents::waiting).
//  - Repeated calls delete nothing twice; a failed request ends the round with a TargetError (403
//    says which permission the controller's ClusterRole lacks).
// Assumes: one reactor thread; `api` and `repositories` outlive the coroutines delete_for() starts.
// The index changes (Repository events) while a round awaits: it is copied at the start.
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <vector>

#include "engine/object_cache.hpp"
#include "engine/target.hpp"

namespace stowage::kube {
class Api;
}

namespace stowage::engine {

class RepositoryIndex;

class DependentDeleter {
 public:
  DependentDeleter(kube::Api& api, const RepositoryIndex& repositories);

  // One round of deletes for the storage `storage`: what is still there afterwards.
  boost::asio::awaitable<TargetResult<Dependents>> delete_for(ObjectKey storage);

 private:
  // Deletes one Repository or Snapshot (`resource`: its plural) by name with its uid as a
  // precondition: nullopt once it is gone (or the name now holds another object), else how it is
  // named in a RepositoriesDeleted message, with the finalizers that hold it.
  boost::asio::awaitable<TargetResult<std::optional<std::string>>> delete_one(std::string resource, ObjectKey key,
                                                                             std::string uid);
  // The Snapshots of namespace `ns`, listed page by page.
  boost::asio::awaitable<TargetResult<std::vector<boost::json::value>>> snapshots_in(std::string ns);

  kube::Api& api_;
  const RepositoryIndex& repositories_;
};

}  // namespace stowage::engine
