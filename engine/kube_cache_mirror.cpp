#include "engine/kube_cache_mirror.hpp"

#include <boost/json.hpp>

#include "kube/json_path.hpp"
#include "persistence/records.hpp"
#include "persistence/state_store.hpp"

namespace stowage::engine {

namespace json = boost::json;

KubeCacheMirror::KubeCacheMirror(persistence::StateStore* store, std::string scope)
    : store_(store), scope_(std::move(scope)) {}

KubeCacheMirror::Loaded KubeCacheMirror::load() {
  Loaded out;
  if (!store_) return out;
  for (const auto& c : store_->load_kube_checkpoints()) {
    bool ours = c.scope == scope_ && !c.resource_version.empty();
    if (c.resource == kStorages && ours) out.storages.resource_version = c.resource_version;
    if (c.resource == kSecrets && ours) out.secrets.resource_version = c.resource_version;
  }
  if (!out.storages.resumed()) store_->clear_kube(kStorages);  // another scope's, or incomplete: list afresh
  if (!out.secrets.resumed()) store_->clear_kube(kSecrets);
  for (auto& row : store_->load_kube_objects()) {
    if (row.resource == kSecrets && out.secrets.resumed()) {
      out.secrets.objects.push_back({std::move(row.namespace_), std::move(row.name), std::move(row.resource_version), nullptr});
    } else if (row.resource == kStorages && out.storages.resumed()) {
      boost::system::error_code ec;
      json::value object = json::parse(row.object_json, ec);
      if (ec) continue;  // the relist after a 410 would bring it back; a resume leaves it out
      out.storages.objects.push_back(
          {std::move(row.namespace_), std::move(row.name), std::move(row.resource_version), std::move(object)});
    }
  }
  return out;
}

void KubeCacheMirror::checkpoint(const char* resource, const std::string& resource_version) {
  if (store_) store_->put(persistence::KubeCheckpoint{resource, scope_, resource_version});
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
