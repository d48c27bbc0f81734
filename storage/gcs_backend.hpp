#pragma once
// The Google Cloud Storage backend: metadata.yaml in a bucket, over the JSON API.
//
//   create  POST   {endpoint}/upload/storage/v1/b/BUCKET/o?uploadType=media&name=KEY&ifGenerationMatch=0
//   read    GET    {endpoint}/storage/v1/b/BUCKET/o/KEY?alt=media
//   list    GET    {endpoint}/storage/v1/b/BUCKET/o?prefix=DIR/&pageToken=T
//   delete  DELETE {endpoint}/storage/v1/b/BUCKET/o/KEY
//   access  GET    {endpoint}/storage/v1/b/BUCKET
//
// Guarantees (besides storage::Backend's):
//  - create is create-only through ifGenerationMatch=0 (412 -> AlreadyExists), which also makes it
//    safe to retry; every call goes through storage::send_with_retries;
//  - authentication: a service-account key's token (TokenSource, shared by every backend using the
//    same key through a TokenRegistry); without a key, the controller's own identity (the
//    GOOGLE_APPLICATION_CREDENTIALS source the engine hands in) or else the metadata server's token;
//    none in emulator mode; a 401 drops the token and retries once with a fresh one;
//  - errors say what to fix: a refused key names GOOGLE_SERVICE_ACCOUNT_JSON_KEY, a 403 names the
//    bucket and the service account, a missing bucket is named; transient statuses stay transient;
//  - wipe() is wipe_objects() (object_wipe.hpp): only with a valid metadata.yaml at the storage's
//    own key, never inside another storage's location, metadata.yaml last. It deletes only objects
//    under "<prefix>/" (all of the bucket for an empty prefix), page by page (the progress hook
//    after each), up to 8 deletes in flight (fewer when maxConnections is lower); a missing bucket
//    has nothing to delete.
// Assumptions: the Client and the TokenRegistry outlive the backend; the backend's coroutines run
// on the reactor the Client was made for.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/backend.hpp"
#include "storage/gcs_token.hpp"
#include "common/http_client.hpp"
#include "storage/object_wipe.hpp"
#include "storage/retry.hpp"

namespace stowage::storage {

inline constexpr std::string_view kGcsDefaultEndpoint = "https://storage.googleapis.com";

struct GcsOptions {
  std::string bucket, prefix;
  // The Secret's GOOGLE_SERVICE_ACCOUNT_JSON_KEY; empty: `own_identity`, else the metadata server's
  // token (workload identity).
  std::string service_account_json;
  // The controller's own identity from GOOGLE_APPLICATION_CREDENTIALS (a key file or an external
  // account), one source shared by every storage without a Secret; null: the metadata server.
  std::shared_ptr<gcs::TokenSource> own_identity;
  // Default https://storage.googleapis.com; STOWAGE_GCS_ENDPOINT overrides it (the engine passes it).
  std::string endpoint;
  // STORAGE_EMULATOR_HOST: the endpoint comes from it (http:// when it has no scheme), no authentication.
  bool emulator = false;
  std::string metadata_host;        // GCE_METADATA_HOST ("host[:port]"); empty: metadata.google.internal
  http::TlsSettings tls;            // for the endpoint, and for the token URI when it has the endpoint's origin
  std::size_t max_connections = 0;  // 0: the client's default
  RetryPolicy retry;                // per request, token fetches included (tests shorten it)
  std::size_t list_page_size = 0;   // maxResults of a listing; 0: the server's default (1000)
};

// ObjectStore is inherited privately: its calls exist for wipe() only.
class GcsBackend final : public Backend, private ObjectStore {
 public:
  // Tokens come from TokenRegistry::process_wide(): every backend in the process that names the
  // same key (or the same metadata server) shares one cached token.
  GcsBackend(http::Client& client, GcsOptions options);
  GcsBackend(http::Client& client, GcsOptions options, gcs::TokenRegistry& tokens);

  std::string identity() const override;           // "gcs:" + endpoint + "/" + bucket + "/" + prefix
  std::string metadata_location() const override;  // "gs://bucket/key"
  boost::asio::awaitable<BackendResult<MetadataState>> read_metadata() override;
  boost::asio::awaitable<BackendResult<CreateOutcome>> create_metadata(std::string body) override;
  boost::asio::awaitable<WipeReport> wipe(WipePlan plan) override;
  boost::asio::awaitable<BackendResult<Ok>> check_access() override;

  // Who the requests speak for, for messages and tests.
  std::string principal() const;

 private:
  struct ApiCall {
    std::string method;
    std::string target;  // below the endpoint's path, already encoded
    std::string body;
    std::string content_type;
    std::vector<std::pair<std::string, std::string>> headers;  // beyond Accept, Content-Type, Authorization
  };
  struct DeleteRun;

  boost::asio::awaitable<BackendResult<http::Response>> send(ApiCall call, bool idempotent, std::string what);
  boost::asio::awaitable<BackendResult<std::string>> access_token();
  boost::asio::awaitable<BackendResult<bool>> delete_object(std::string name);  // false: already gone
  boost::asio::awaitable<void> delete_worker(std::shared_ptr<DeleteRun> run);
  BackendError status_error(const http::Response& response, const std::string& what) const;

  // ObjectStore (for wipe()):
  std::string object_directory() const override;
  std::string object_location(const std::string& key) const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_own_metadata() override;
  boost::asio::awaitable<BackendResult<ObjectPage>> list_objects(std::string token) override;
  boost::asio::awaitable<BackendResult<std::optional<std::string>>> read_object(std::string key,
                                                                                  std::size_t limit) override;
  boost::asio::awaitable<DeleteOutcome> delete_objects(std::vector<std::string> names) override;
  bool bucket_missing(const BackendError& error) const override;
  std::string object_path(const std::string& name) const;
  http::TlsSettings token_tls() const;

  http::Client& client_;
  GcsOptions options_;
  std::string endpoint_;  // normalized, no trailing slash
  std::optional<http::Url> origin_;
  std::string base_path_;                     // the endpoint's own path, "" or "/base"
  std::string key_;                           // metadata.yaml's object name
  std::string dir_;                           // the prefix as a listing prefix: "" or "backup/demo/"
  std::optional<BackendError> setup_error_;   // a bad key or endpoint: every call answers with it
  std::shared_ptr<gcs::TokenSource> tokens_;  // null in emulator mode
};

}  // namespace stowage::storage
