#include "engine/kube_cache_mirror.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <set>

#include "kube/json_path.hpp"
#include "persistence/records.hpp"
#include "persistence/state_store.hpp"

namespace stowage::engine {

namespace json = boost::json;

KubeCacheMirror::KubeCacheMirror(persistence::StateStore* store, std::string server, std::vector<std::string> namespaces)
    : store_(store), server_(std::move(server)), streams_(std::move(namespaces)) {
  if (streams_.empty()) streams_.push_back("");
}

std::string KubeCacheMirror::checkpoint_key(const std::string& resource, const std::string& stream_namespace) {
  return stream_namespace.empty() ? resource : resource + "/" + stream_namespace;
}

// The form scopes had when one namespace (or all) was served, so that their checkpoints still match.
std::string KubeCacheMirror::scope_of(const std::string& stream_namespace) const {
  return server_ + " namespace=" + stream_namespace;
}

// The namespace key of the stream among `streams` that holds objects of namespace `ns`, or null.
const std::string* KubeCacheMirror::stream_of(const std::map<std::string, Resume>& streams, const std::string& ns) const {
  if (auto all = streams.find(""); all != streams.end()) return &all->first;
  auto found = streams.find(ns);
  return found == streams.end() ? nullptr : &found->first;
}

namespace {
bool none_resumed(const std::map<std::string, KubeCacheMirror::Resume>& streams) {
  for (const auto& [ns, resume] : streams)
    if (resume.resumed()) return false;
  return true;
}
}  // namespace

KubeCacheMirror::Loaded KubeCacheMirror::resume_points() {
  Loaded out;
  for (const auto& ns : streams_) {
    out.storages[ns];
    out.secrets[ns];
  }
  if (!store_) return out;
  const auto checkpoints = store_->load_kube_checkpoints();
  resume_streams(kStorages, checkpoints, out.storages);
  resume_streams(kSecrets, checkpoints, out.secrets);
  // A resource none of whose streams resumes goes at once, rows and all.
  if (none_resumed(out.storages)) store_->clear_kube(kStorages);
  if (none_resumed(out.secrets)) store_->clear_kube(kSecrets);
  return out;
}

void KubeCacheMirror::restore_objects(const Loaded& points, const RestoredSink& each) {
  if (!store_) return;
  // Cleared by resume_points (the clear is not committed yet: its rows are still read here).
  const bool clear_storages = none_resumed(points.storages), clear_secrets = none_resumed(points.secrets);
  if (clear_storages && clear_secrets) return;
  store_->scan_kube_objects([&](persistence::KubeObjectRecord& row) {
    const bool storages = row.resource == kStorages;
    if (!storages && row.resource != kSecrets) return;
    if (storages ? clear_storages : clear_secrets) return;
    const auto& streams = storages ? points.storages : points.secrets;
    const std::string* stream = stream_of(streams, row.namespace_);
    if (!stream || !streams.at(*stream).resumed()) {
      store_->erase_kube_object(row.resource, row.namespace_, row.name);
      return;
    }
    json::value object;  // null for a Secret
    if (storages) {
      boost::system::error_code ec;
      object = json::parse(row.object_json, ec);
      if (ec) return;  // the relist after a 410 would bring it back; a resume leaves it out
    }
    each(storages ? kStorages : kSecrets, *stream,
         {std::move(row.namespace_), std::move(row.name), std::move(row.resource_version), std::move(object)});
  });
}

// Finds each stream's checkpoint (taking over a single-namespace one of the old form) and voids
// every other checkpoint of `resource`: the rows it was consistent with are erased now.
void KubeCacheMirror::resume_streams(const std::string& resource,
                                     const std::vector<persistence::KubeCheckpoint>& checkpoints,
                                     std::map<std::string, Resume>& streams) {
  auto find = [&](const std::string& key, const std::string& scope) -> std::string {
    for (const auto& c : checkpoints)
      if (c.resource == key && c.scope == scope) return c.resource_version;
    return "";
  };
  std::set<std::string> live;
  for (auto& [ns, resume] : streams) {
    const std::string key = checkpoint_key(resource, ns), scope = scope_of(ns);
    resume.resource_version = find(key, scope);
    if (resume.resource_version.empty() && key != resource) {
      resume.resource_version = find(resource, scope);  // written by a version that served one namespace
      if (resume.resumed()) {
        spdlog::info("{} in namespace {}: resuming from the checkpoint of a single-namespace run", resource, ns);
        store_->put(persistence::KubeCheckpoint{key, scope, resume.resource_version});
      }
    }
    if (resume.resumed()) live.insert(key);
  }
  for (const auto& c : checkpoints) {
    const bool of_resource = c.resource == resource || c.resource.rfind(resource + "/", 0) == 0;
    if (!of_resource || c.resource_version.empty() || live.count(c.resource)) continue;
    store_->put(persistence::KubeCheckpoint{c.resource, c.scope, ""});
  }
}

void KubeCacheMirror::checkpoint(const char* resource, const std::string& stream_namespace,
                                 const std::string& resource_version) {
  if (store_)
    store_->put(persistence::KubeCheckpoint{checkpoint_key(resource, stream_namespace), scope_of(stream_namespace),
                                            resource_version});
}

void KubeCacheMirror::storage_upserted(const json::value& object) {
  if (!store_) return;
  store_->put(persistence::KubeObjectRecord{kStorages, kube::metadata_text(object, "namespace"),
                                            kube::metadata_text(object, "name"),
                                            kube::metadata_text(object, "resourceVersion"), json::serialize(object)});
}

void KubeCacheMirror::secret_upserted(const std::string& ns, const std::string& name,
                                      const std::string& resource_version) {
  if (store_) store_->put(persistence::KubeObjectRecord{kSecrets, ns, name, resource_version, ""});
}

void KubeCacheMirror::removed(const char* resource, const std::string& ns, const std::string& name) {
  if (store_) store_->erase_kube_object(resource, ns, name);
}

}  // namespace stowage::engine
