#pragma once
// KubeCacheMirror — the informers' caches mirrored into the state store, so that a restart resumes
// the watches where they stopped instead of listing everything again.
//
// What is kept, per resource: one row per object (kStorages: the BackupStorage's JSON; kSecrets: only
// a Secret's resourceVersion, never its data) and, per stream (one watch: all namespaces, or one
// namespace of --namespace's list), the resourceVersion its informer had reached (its checkpoint)
// with the scope (API server and namespace) it was reached in. A stream's checkpoint row is keyed
// "<resource>" for the all-namespaces stream and "<resource>/<namespace>" for one namespace's.
//
// Guarantees:
//  - resume_points() resumes a stream only from a non-empty checkpoint of this very scope. The rows of a
//    namespace no resumed stream covers (another server's cache, a namespace not served now, a first
//    listing that never completed) are erased, to be listed afresh, and none is handed back; the
//    checkpoints of the streams not resumed are voided (emptied), so that a namespace served again
//    later never resumes over rows that are gone.
//  - A checkpoint written before namespaces were lists (one namespace, keyed "<resource>" with scope
//    "<server> namespace=<ns>") is taken over by that namespace's stream: an upgrade still resumes.
//  - A stored BackupStorage whose JSON does not parse is left out of a resume (the relist after a
//    410 would bring it back).
//  - Without a store (null) nothing is persisted and nothing is resumed.
//  - restore_objects() hands the objects over one at a time as it reads them: a restart never holds
//    every stored row (or every parsed object) at once, only the one being handed over.
// Assumes: resume_points() then restore_objects() run before the reactor does (it reads
// SQLite, blocking); the writes come from the reactor thread (the store groups them into transactions
// on its own writer thread).
#include <boost/json/value.hpp>

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace stowage::persistence {
class StateStore;
struct KubeCheckpoint;
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
  // Per stream, by its namespace ("" = the all-namespaces stream): one entry for each stream.
  struct Loaded {
    std::map<std::string, Resume> storages, secrets;
  };

  // `store` may be null. `server` names the API server; `namespaces` the streams (empty: one stream
  // over all namespaces).
  KubeCacheMirror(persistence::StateStore* store, std::string server, std::vector<std::string> namespaces);

  // Step 1: each stream's checkpoint (Resume::objects left empty); voids the checkpoints not resumed
  // and clears a resource none of whose streams resumes.
  Loaded resume_points();
  // Step 2, after step 1 with its result: each object of a resumed stream, as it is read, to `each`
  // with the resource (kStorages or kSecrets) and the namespace of the stream it belongs to. Rows no
  // resumed stream covers are erased; a BackupStorage whose JSON does not parse is skipped.
  using RestoredSink = std::function<void(const char* resource, const std::string& stream_namespace, RestoredObject&&)>;
  void restore_objects(const Loaded& points, const RestoredSink& each);

  // The stream of `resource` (kStorages or kSecrets) in `stream_namespace` ("" = all) has everything
  // up to `resource_version`.
  void checkpoint(const char* resource, const std::string& stream_namespace, const std::string& resource_version);
  void storage_upserted(const boost::json::value& object);
  void secret_upserted(const std::string& ns, const std::string& name, const std::string& resource_version);
  void removed(const char* resource, const std::string& ns, const std::string& name);

  // The checkpoint row's key and scope of a stream (for tests and the log).
  static std::string checkpoint_key(const std::string& resource, const std::string& stream_namespace);
  std::string scope_of(const std::string& stream_namespace) const;

 private:
  void resume_streams(const std::string& resource, const std::vector<persistence::KubeCheckpoint>& checkpoints,
                      std::map<std::string, Resume>& streams);
  // The stream among `streams` that holds objects of namespace `ns`, or null.
  const std::string* stream_of(const std::map<std::string, Resume>& streams, const std::string& ns) const;

  persistence::StateStore* store_;
  std::string server_;
  std::vector<std::string> streams_;  // {""}, or the namespaces
};

}  // namespace stowage::engine
