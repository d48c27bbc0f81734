#pragma once
// BackendFactory — turns a BackupStorage (and its Secret) into a storage::Backend, or into a
// clear, permanent reason why it cannot: provider missing or unknown, its section missing, the
// Secret without the keys KubeStash requires, a local volume without a usable path, a storage
// without a Secret that may not use the controller's own identity (AmbientCredentialsPolicy).
#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "kube/model.hpp"
#include "storage/aws_identity.hpp"
#include "storage/azure_identity.hpp"
#include "storage/backend.hpp"

namespace boost::asio {
class thread_pool;
}

namespace stowage::http {
class Client;
}

namespace stowage::storage::aws {
class CredentialProvider;
}

namespace stowage::storage::azure {
class TokenProvider;
class ServicePrincipalRegistry;
}

namespace stowage::storage::gcs {
class TokenSource;
}

namespace stowage::engine {

// Which storages may use the controller's own cloud identity: those without a secretName in a
// namespace the operator named (ambient-credentials.namespaces), or in any namespace when it said "*"
// or when the process runs offline (its user is the operator). Anywhere else, a storage without a
// secretName would borrow the controller's identity: initialize, probe and WipeOut whatever that
// identity can reach, a whole bucket for an empty prefix.
struct AmbientCredentialsPolicy {
  bool every_namespace = false;
  std::vector<std::string> namespaces;

  static AmbientCredentialsPolicy only(std::vector<std::string> names);  // a "*" among them means every one
  static AmbientCredentialsPolicy everyone() { return {true, {}}; }
  bool allows(const std::string& namespace_) const;
};

// The one gate in front of every use of the controller's own identity by a storage without a
// secretName — the AWS_* environment keys, the GCE metadata server's token, and any workload identity
// added later (IRSA, Azure workload identity): call it before using one. Empty when `storage` may use
// it, else the NotReady message (naming the field, the namespace and the setting that would allow it).
std::string ambient_credentials_refusal(const AmbientCredentialsPolicy& policy, const kube::BackupStorage& storage);

// What the cloud backends take from the process rather than from a BackupStorage.
struct CloudSettings {
  std::string gcs_endpoint;           // gcs.endpoint / STOWAGE_GCS_ENDPOINT
  std::string storage_emulator_host;  // STORAGE_EMULATOR_HOST (GCS emulator convention: no authentication)
  std::string gce_metadata_host;      // GCE_METADATA_HOST
  // GOOGLE_APPLICATION_CREDENTIALS, read once at start (parsed by the factory): a service-account key
  // file or an external account. When set it comes before the metadata server, as in Google's SDKs.
  struct GcsApplicationCredentials {
    std::string path;     // "" = not set
    std::string text;     // the file's content
    std::string problem;  // the file could not be read (then every storage it would serve says so)
  } gcs_application_credentials;
  std::size_t max_connections = 16;   // when a storage's maxConnections is 0
  // Credential-less S3: the AWS default chain's sources found in the environment (environment keys,
  // shared files, web identity, container credentials, instance metadata); the first is used.
  storage::aws::Chain aws_chain;
  AmbientCredentialsPolicy ambient;  // who may use those and the metadata server; default: nobody
  // Credential-less Azure: service principal (environment), workload identity, managed identity
  // (storage/azure_identity.hpp); the first is used. Service principals in Secrets use
  // azure_authority_host (AZURE_AUTHORITY_HOST, default https://login.microsoftonline.com/).
  storage::azure::Chain azure_chain;
  std::string azure_authority_host;
  std::string azure_endpoint;  // azure.endpoint: "" = https://{account}.blob.core.windows.net

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
  // Raised when the process stops: local wipes end between entries (storage::LocalBackendOptions::stop).
  std::shared_ptr<const std::atomic<bool>> stop = nullptr;
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
  std::shared_ptr<storage::aws::CredentialProvider> aws_identity_;  // null: the chain found no source
  std::shared_ptr<storage::azure::TokenProvider> azure_identity_;   // the Azure chain's first source
  std::shared_ptr<storage::azure::ServicePrincipalRegistry> azure_principals_;  // Secrets' service principals
  std::shared_ptr<storage::gcs::TokenSource> gcs_identity_;  // GOOGLE_APPLICATION_CREDENTIALS; null: none or broken
  std::string gcs_identity_problem_;                         // why GOOGLE_APPLICATION_CREDENTIALS cannot be used
};

}  // namespace stowage::engine
