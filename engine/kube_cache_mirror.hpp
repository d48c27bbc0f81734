#pragma once
// KubeCacheMirror — the informers' caches mirrored into the state store, so that a restart resumes
// the watches where they stopped instead of listing everything again.
//
// What is kept, per resource: one row per object (kStorages: the BackupStorage's JSON; kSecrets: only
// a Secret's resourceVersion, never its data) and the resourceVersion the informer had reached (its
// checkpoint) with the scope (API server and namespace) it was reached in.
//
// Guarantees:
//  - load() resumes a resource only from a non-empty checkpoint of this very scope. A resource
//    without one (another scope's cache, or a first listing that never completed) is cleared, to be
//    listed afresh, and none of its rows is handed back.
//  - A stored BackupStorage whose JSON does not parse is left out of a resume (the relist after a
//    410 would bring it back).
//  - Without a store (null) nothing is persisted and nothing is resumed.
// Assumes: load() runs before the reactor does (it reads SQLite, blocking); the writes come from the
// reactor thread (the store groups them into transactions on its own writer thread).
#include <boost/json/value.hpp>

#include <string>
#include <vector>

namespace stowage::persistence {
class StateStore;
}

namespace stowage::engine {

class KubeCacheMirror {
 public:
  static constexpr const char* kStorages = "backupstorages";
  static constexpr const char* kSecrets = "secrets";

  struct RestoredObject {
    std::string namespace_, name, resource_version;
    boost::json::value object;  // the BackupStorage; null for a Secret
  };
  // Where one informer resumes: its resourceVersion ("" = list afresh) and the objects it had then.
  struct Resume {
    std::string resource_version;
    std::vector<RestoredObject> objects;
    bool resumed() const { return !resource_version.empty(); }
  };
  struct Loaded {
    Resume storages, secrets;
  };

  // `store` may be null. `scope` names the API server and namespace the caches belong to.
  KubeCacheMirror(persistence::StateStore* store, std::string scope);

  // Blocking: before the reactor runs. Clears the resources that cannot be resumed (see above).
  Loaded load();

  // The informer of `resource` (kStorages or kSecrets) has everything up to `resource_version`.
  void checkpoint(const char* resource, const std::string& resource_version);
  void storage_upserted(const boost::json::value& object);
  void secret_upserted(const std::string& ns, const std::string& name, const std::string& resource_version);
  void removed(const char* resource, const std::string& ns, const std::string& name);

 private:
  persistence::StateStore* store_;
  std::string scope_;
};

}  // namespace stowage::engine
