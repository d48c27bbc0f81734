#pragma once
// BackendFactory — turns a BackupStorage (and its Secret) into a storage::Backend, or into a
// clear, permanent reason why it cannot: provider missing or unknown, its section missing, the
// Secret without the keys KubeStash requires, a local volume without a usable path.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "kube/model.hpp"
#include "storage/backend.hpp"

namespace boost::asio {
class thread_pool;
}

namespace stowage::http {
class Client;
}

namespace stowage::engine {

// What the cloud backends take from the process rather than from a BackupStorage.
struct CloudSettings {
  std::string gcs_endpoint;           // gcs.endpoint / STOWAGE_GCS_ENDPOINT
  std::string storage_emulator_host;  // STORAGE_EMULATOR_HOST (GCS emulator convention: no authentication)
  std::string gce_metadata_host;      // GCE_METADATA_HOST
  std::size_t max_connections = 16;   // when a storage's maxConnections is 0
  // Credential-less S3: the controller's own AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN.
  std::string aws_access_key_id, aws_secret_access_key, aws_session_token;

  static CloudSettings from_environment(std::string gcs_endpoint, std::size_t max_connections);
};

// Where a local storage's directory is, as seen by this process (see README "Local volumes"):
// absolute and lexically normal, beneath `root`; or why the spec gives none.
Result<std::filesystem::path, std::string> local_directory(const std::filesystem::path& root,
                                                           const kube::LocalSpec& local);

// Where local storages may live, as seen by this process.
struct LocalSettings {
  std::filesystem::path root = "/";  // local.root: every local path is resolved beneath it
  // Never wiped, nor anything that holds them or lies inside them: the state directory, the manifest folder.
  std::vector<std::filesystem::path> protected_paths;
};

class BackendFactory {
 public:
  BackendFactory(boost::asio::thread_pool& io_pool, LocalSettings local, http::Client& http, CloudSettings cloud);

  // The secret is null when the storage names none or it does not exist (the caller reports that).
  Result<std::unique_ptr<storage::Backend>, std::string> make(const kube::BackupStorage& storage,
                                                               const kube::Secret* secret) const;

  // The keys KubeStash requires in the provider's Secret (empty for local).
  static std::vector<std::string> required_keys(const std::string& provider);

  const LocalSettings& local() const { return local_; }

 private:
  using Made = Result<std::unique_ptr<storage::Backend>, std::string>;
  Made make_s3(const kube::BackupStorage& s, const kube::Secret* secret) const;
  Made make_gcs(const kube::BackupStorage& s, const kube::Secret* secret) const;
  Made make_azure(const kube::BackupStorage& s, const kube::Secret* secret) const;
  std::size_t connections(std::int64_t from_spec) const;

  boost::asio::thread_pool& pool_;
  LocalSettings local_;
  http::Client& http_;
  CloudSettings cloud_;
};

}  // namespace stowage::engine
