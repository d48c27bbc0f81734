#include "engine/admission_rules.hpp"

#include <filesystem>
#include <tuple>

#include "engine/backends.hpp"

namespace stowage::engine {

namespace {

bool same_object(const kube::BackupStorage& a, const kube::BackupStorage& b) {
  return a.metadata.namespace_ == b.metadata.namespace_ && a.metadata.name == b.metadata.name;
}

// ---- KubeStash's rules ---------------------------------------------------------------------------

std::optional<std::string> second_default(const kube::BackupStorage& storage, const ObjectCache& cache) {
  if (!storage.spec.is_default) return std::nullopt;
  for (const auto& [key, other] : cache.storages())
    if (key.namespace_ == storage.metadata.namespace_ && !same_object(storage, other) && other.spec.is_default)
      return std::string(kMultipleDefaults);
  return std::nullopt;
}

// KubeStash refuses a nil selector (absent or null); an empty one ({}) passes, as in Go.
std::optional<std::string> empty_selector(const kube::BackupStorage& storage) {
  if (storage.spec.usage_from != "Selector") return std::nullopt;
  const auto* policy = storage.spec.usage_policy.if_object();
  const auto* allowed = policy ? policy->if_contains("allowedNamespaces") : nullptr;
  const auto* selector = allowed && allowed->is_object() ? allowed->get_object().if_contains("selector") : nullptr;
  if (selector && !selector->is_null()) return std::nullopt;
  return std::string(kEmptySelector);
}

// reflect.DeepEqual over KubeStash's typed spec.storage: a field at its zero value equals one left
// out, a section present (even empty) differs from one absent.
bool same_storage(const kube::StorageSpec& a, const kube::StorageSpec& b) {
  auto s3 = [](const kube::S3Spec& s) {
    return std::tie(s.endpoint, s.bucket, s.prefix, s.region, s.secret_name, s.max_connections, s.insecure_tls);
  };
  auto gcs = [](const kube::GcsSpec& s) { return std::tie(s.bucket, s.prefix, s.secret_name, s.max_connections); };
  auto azure = [](const kube::AzureSpec& s) {
    return std::tie(s.storage_account, s.container, s.prefix, s.secret_name, s.max_connections);
  };
  auto local = [](const kube::LocalSpec& s) {
    return std::tie(s.mount_path, s.sub_path, s.max_connections, s.volume_source);
  };
  auto same = [](const auto& x, const auto& y, auto fields) {
    return x.has_value() == y.has_value() && (!x || fields(*x) == fields(*y));
  };
  return a.provider == b.provider && same(a.s3, b.s3, s3) && same(a.gcs, b.gcs, gcs) && same(a.azure, b.azure, azure) &&
         same(a.local, b.local, local);
}

std::optional<std::string> storage_in_use(const kube::BackupStorage& storage, const kube::BackupStorage& old) {
  if (same_storage(old.spec.storage, storage.spec.storage) || storage.status.repositories.empty()) return std::nullopt;
  return std::string(kInUse);
}

// KubeStash's isPointToSameDir: the fields compared as written.
bool same_directory(const kube::StorageSpec& a, const kube::StorageSpec& b) {
  if (a.provider != b.provider) return false;
  if (a.provider == "s3" && a.s3 && b.s3)
    return a.s3->bucket == b.s3->bucket && a.s3->region == b.s3->region && a.s3->prefix == b.s3->prefix;
  if (a.provider == "gcs" && a.gcs && b.gcs) return a.gcs->bucket == b.gcs->bucket && a.gcs->prefix == b.gcs->prefix;
  if (a.provider == "azure" && a.azure && b.azure)
    return a.azure->storage_account == b.azure->storage_account && a.azure->container == b.azure->container &&
           a.azure->prefix == b.azure->prefix;
  return false;
}

std::optional<std::string> shared_directory(const kube::BackupStorage& storage, const ObjectCache& cache) {
  for (const auto& [key, other] : cache.storages())
    if (!same_object(storage, other) && same_directory(storage.spec.storage, other.spec.storage))
      return std::string(kSameDirectory);
  return std::nullopt;
}

// ---- stowage's own -------------------------------------------------------------------------------

constexpr const char* kProviders[] = {"local", "s3", "gcs", "azure"};

std::optional<std::string> provider_section(const kube::StorageSpec& st) {
  if (st.provider.empty()) return std::string("spec.storage.provider is not set: set it to one of local, s3, gcs, azure");
  const bool present[] = {st.local.has_value(), st.s3.has_value(), st.gcs.has_value(), st.azure.has_value()};
  bool known = false;
  for (std::size_t i = 0; i < std::size(kProviders); ++i) {
    if (st.provider != kProviders[i]) continue;
    known = true;
    if (!present[i])
      return "spec.storage." + st.provider + " is missing for provider " + st.provider + ": add it, or set provider to "
             "the section given";
  }
  if (!known)
    return "spec.storage.provider \"" + st.provider + "\" is not supported: use one of local, s3, gcs, azure";
  for (std::size_t i = 0; i < std::size(kProviders); ++i)
    if (present[i] && st.provider != kProviders[i])
      return "spec.storage." + std::string(kProviders[i]) + " is given but provider is " + st.provider +
             ": remove it, or set provider to " + kProviders[i];
  return std::nullopt;
}

bool has_dotdot(const std::filesystem::path& p) {
  for (const auto& part : p)
    if (part == "..") return true;
  return false;
}

std::optional<std::string> local_paths(const kube::StorageSpec& st) {
  if (st.provider != "local" || !st.local) return std::nullopt;
  // The engine's own reading of mountPath, subPath and hostPath.path (under "/", the paths as written).
  auto dir = local_directory("/", *st.local);
  if (!dir.ok()) return dir.error();
  if (st.local->volume_type == "nfs") {
    const auto* nfs = st.local->volume_source.if_contains("nfs");
    const auto* path = nfs && nfs->is_object() ? nfs->get_object().if_contains("path") : nullptr;
    std::string text = path && path->is_string() ? std::string(path->get_string()) : std::string();
    std::filesystem::path p(text);
    if (text.empty() || !p.is_absolute() || has_dotdot(p))
      return "spec.storage.local.nfs.path must be an absolute path without '..', got \"" + text + "\"";
  }
  return std::nullopt;
}

std::optional<std::string> overlapping_location(const kube::BackupStorage& storage, const LocationIndex& locations) {
  auto overlaps = locations.overlaps_with(storage);
  if (overlaps.empty()) return std::nullopt;
  const Overlap& o = overlaps.front();
  std::optional<StorageLocation> own = location_of(storage, locations.settings());
  std::string self = own ? " (" + own->label + ")" : std::string();
  return "this BackupStorage" + self + " " + describe(o.nesting) + " " + other_storage(o, storage.metadata.namespace_) +
         ": a WipeOut of either would delete the other's backups; give each a location of its own";
}

std::optional<std::string> stowage_rules(const kube::BackupStorage& storage, const LocationIndex& locations) {
  if (auto refused = provider_section(storage.spec.storage)) return refused;
  if (auto refused = local_paths(storage.spec.storage)) return refused;
  return overlapping_location(storage, locations);
}

}  // namespace

std::optional<std::string> validate_create(const kube::BackupStorage& storage, const AdmissionCaches& caches) {
  if (auto refused = second_default(storage, caches.cache)) return refused;
  if (auto refused = empty_selector(storage)) return refused;
  if (auto refused = shared_directory(storage, caches.cache)) return refused;
  return stowage_rules(storage, caches.locations);
}

std::optional<std::string> validate_update(const kube::BackupStorage& storage, const kube::BackupStorage& old,
                                           const AdmissionCaches& caches) {
  const bool storage_changed = !same_storage(old.spec.storage, storage.spec.storage);
  if (!old.metadata.deletion_timestamp.empty() && !storage_changed) return std::nullopt;
  if (auto refused = second_default(storage, caches.cache)) return refused;
  if (auto refused = empty_selector(storage)) return refused;
  if (auto refused = storage_in_use(storage, old)) return refused;
  if (auto refused = shared_directory(storage, caches.cache)) return refused;
  if (!storage_changed) return std::nullopt;
  return stowage_rules(storage, caches.locations);
}

}  // namespace stowage::engine
