#include "engine/backends.hpp"

#include "storage/local_backend.hpp"

namespace stowage::engine {

namespace {
namespace fs = std::filesystem;

bool has_dotdot(const fs::path& p) {
  for (const auto& part : p)
    if (part == "..") return true;
  return false;
}

std::string check_secret(const kube::BackupStorage& s, const kube::Secret* secret) {
  if (!secret) return {};
  std::string where = secret->metadata.namespace_ + "/" + secret->metadata.name;
  for (const auto& k : secret->invalid_keys)
    return "storage secret " + where + ": the value of key " + k +
           " is not valid Base64; encode it with `base64 -w0` or put the plain value under stringData";
  for (const auto& k : BackendFactory::required_keys(s.spec.storage.provider))
    if (!secret->data.count(k)) return "storage secret " + where + " missing " + k + " key";
  return {};
}
}  // namespace

BackendFactory::BackendFactory(boost::asio::thread_pool& io_pool, fs::path local_root)
    : pool_(io_pool), local_root_(std::move(local_root)) {}

std::vector<std::string> BackendFactory::required_keys(const std::string& provider) {
  if (provider == "s3") return {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"};
  if (provider == "gcs") return {"GOOGLE_SERVICE_ACCOUNT_JSON_KEY"};
  if (provider == "azure") return {"AZURE_ACCOUNT_KEY"};
  return {};
}

Result<fs::path, std::string> BackendFactory::local_directory(const kube::LocalSpec& local) const {
  if (local.volume_type.empty())
    return std::string("spec.storage.local has no volume source: add one of hostPath, persistentVolumeClaim, nfs, ...");
  fs::path mount(local.mount_path);
  if (local.mount_path.empty() || !mount.is_absolute())
    return "spec.storage.local.mountPath must be an absolute path, got \"" + local.mount_path + "\"";
  fs::path sub(local.sub_path);
  if (sub.is_absolute() || has_dotdot(sub))
    return "spec.storage.local.subPath must be a relative path without '..', got \"" + local.sub_path + "\"";
  fs::path inside;
  if (local.volume_type == "hostPath") {
    fs::path host(local.host_path);
    if (local.host_path.empty() || !host.is_absolute())
      return "spec.storage.local.hostPath.path must be an absolute path, got \"" + local.host_path + "\"";
    inside = host.relative_path() / sub;
  } else {
    inside = mount.relative_path();  // the volume is mounted there, subPath already applied
  }
  return (local_root_ / inside).lexically_normal();
}

Result<std::unique_ptr<storage::Backend>, std::string> BackendFactory::make(const kube::BackupStorage& s,
                                                                            const kube::Secret* secret) const {
  const auto& st = s.spec.storage;
  if (st.provider.empty())
    return std::string("spec.storage.provider is not set: set it to one of local, s3, gcs, azure");
  if (st.provider == "local") {
    if (!st.local) return std::string("spec.storage.local is missing for provider local");
    auto dir = local_directory(*st.local);
    if (!dir.ok()) return dir.error();
    storage::LocalBackendOptions opts{dir.value(), st.local->volume_type == "hostPath"};
    return std::unique_ptr<storage::Backend>(std::make_unique<storage::LocalBackend>(pool_, std::move(opts)));
  }
  if (st.provider == "s3" || st.provider == "gcs" || st.provider == "azure") {
    bool has_section = (st.provider == "s3" && st.s3) || (st.provider == "gcs" && st.gcs) ||
                       (st.provider == "azure" && st.azure);
    if (!has_section) return "spec.storage." + st.provider + " is missing for provider " + st.provider;
    if (auto err = check_secret(s, secret); !err.empty()) return err;
    return "provider " + st.provider +
           " is not available in this build yet: stowage 0.1 initializes local volumes only (cloud backends are "
           "the next release)";
  }
  return "spec.storage.provider \"" + st.provider + "\" is not supported: use one of local, s3, gcs, azure";
}

}  // namespace stowage::engine
