#pragma once
// The Azure Blob backend: metadata.yaml in a container of a storage account, over the Blob REST
// API with Shared Key, a SAS token or a Microsoft Entra bearer token, through the shared http::Client
// and send_with_retries.
//
// Where it writes:
//  - https://<storageAccount>.blob.core.windows.net/<container>/<metadata_key(prefix)>, or under
//    `endpoint` (azure.endpoint, `{account}` replaced by storageAccount: sovereign clouds, Azure
//    Stack, emulators), or under a connection string's BlobEndpoint (which wins). An endpoint with a path (Azurite's
//    http://127.0.0.1:10000/devstoreaccount1) is path-style: blob paths go below that path, and
//    the account (AccountName, else storageAccount, else the path's first segment) signs.
// Credentials, first match wins:
//  1. the connection string's AccountKey or SharedAccessSignature (its AccountName applies too);
//  2. account_key (AZURE_ACCOUNT_KEY, Shared Key), else sas_token (AZURE_SAS_TOKEN);
//  3. token_provider: `Authorization: Bearer` with its token (workload identity, managed identity,
//     a service principal); a token the service refuses with 401 is handed back (rejected()) so the
//     next attempt fetches a fresh one;
//  4. none: requests go unsigned (public containers only).
// Guarantees (see storage::Backend):
//  - create_metadata() is a PUT with If-None-Match: *; 409 BlobAlreadyExists or 412 means
//    AlreadyExists. A retried PUT whose first attempt landed also reports AlreadyExists.
//  - wipe() is wipe_objects() (object_wipe.hpp): only with a valid metadata.yaml at the storage's
//    own key, never inside another storage's location, metadata.yaml last. It lists the prefix's
//    blobs page by page (NextMarker; the progress hook after each page) and deletes each page with
//    at most max_connections (default 8) deletes in flight; snapshots go with their blob. A missing
//    container counts as nothing to delete.
//  - check_access() reads the container's properties (Shared Key) or lists one blob (SAS: a
//    container-scoped service SAS may not read container properties).
//  - Every request is signed afresh per attempt (x-ms-date is part of the signature).
//  - A bad option or connection string does not throw: every operation then returns the same
//    permanent InvalidConfiguration error (also available from configuration_error()).
//  - Messages name the endpoint, account, container and request id, never a key, SAS or signature.
// Assumes the caller's executor is the single reactor (the delete workers share state unlocked).
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "storage/azure_auth.hpp"
#include "storage/backend.hpp"
#include "common/http_client.hpp"
#include "storage/object_wipe.hpp"
#include "storage/retry.hpp"

namespace stowage::storage {

namespace azure {
class TokenProvider;  // storage/azure_credentials.hpp
}

struct AzureOptions {
  std::string storage_account, container, prefix;
  std::string account_key, sas_token, connection_string;  // AZURE_ACCOUNT_KEY, AZURE_SAS_TOKEN,
                                                         // AZURE_STORAGE_CONNECTION_STRING
  std::shared_ptr<azure::TokenProvider> token_provider;  // Entra tokens, when no key, SAS or connection string
  std::string endpoint;  // "" = https://{account}.blob.core.windows.net; `{account}` is replaced
  http::TlsSettings tls;
  std::size_t max_connections = 0;  // 0 = the client's default for requests, 8 deletes in flight
  std::size_t list_page_size = 0;   // List Blobs maxresults; 0 = the service's default (5000)
  RetryPolicy retry;
};

// ObjectStore is inherited privately: its calls exist for wipe() only.
class AzureBackend final : public Backend, private ObjectStore {
 public:
  AzureBackend(http::Client& client, AzureOptions options);

  std::string identity() const override;
  std::string metadata_location() const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_metadata() override;
  boost::asio::awaitable<BackendResult<CreateOutcome>> create_metadata(std::string body) override;
  boost::asio::awaitable<WipeReport> wipe(WipePlan plan) override;
  boost::asio::awaitable<BackendResult<Ok>> check_access() override;

  const std::optional<BackendError>& configuration_error() const { return config_error_; }
  const std::string& endpoint() const { return endpoint_; }  // e.g. "http://127.0.0.1:10000/devstoreaccount1"
  const std::string& account() const { return account_; }

 private:
  struct Anonymous {};
  struct Bearer {};  // options_.token_provider's token, fetched for every request
  using Credential = std::variant<Anonymous, azure::SharedKey, azure::SasToken, Bearer>;
  struct DeleteRun;

  void resolve();
  std::string blob_target(const std::string& key) const;
  std::string container_target() const;
  boost::asio::awaitable<BackendResult<http::Response>> send(std::string method, std::string target,
                                                std::vector<std::pair<std::string, std::string>> headers,
                                                std::string body);
  boost::asio::awaitable<BackendResult<bool>> delete_blob(const std::string& name);  // false: was already gone
  boost::asio::awaitable<void> delete_worker(std::shared_ptr<DeleteRun> run);
  BackendError error_from(const http::Response& response, const std::string& doing) const;
  BackendError error_from(const http::HttpError& error) const;

  // ObjectStore (for wipe()):
  std::string object_directory() const override;
  std::string object_location(const std::string& key) const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_own_metadata() override;
  boost::asio::awaitable<BackendResult<ObjectPage>> list_objects(std::string marker) override;
  boost::asio::awaitable<BackendResult<std::optional<std::string>>> read_object(std::string key,
                                                                                  std::size_t limit) override;
  boost::asio::awaitable<DeleteOutcome> delete_objects(std::vector<std::string> names) override;
  bool bucket_missing(const BackendError& error) const override;

  http::Client& client_;
  AzureOptions options_;
  std::optional<BackendError> config_error_;
  std::string endpoint_;   // without a trailing slash
  http::Url origin_;
  std::string base_path_;  // the endpoint's path without a trailing slash ("" or "/devstoreaccount1")
  std::string account_;
  Credential credential_;
  std::string key_;        // metadata_key(prefix)
  std::string directory_;  // the key's directory with a trailing slash, "" at the container root
  std::string bearer_;     // the last token sent (Bearer), handed back to the provider on a 401
};

}  // namespace stowage::storage
