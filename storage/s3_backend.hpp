#pragma once
// The S3 backend: metadata.yaml in an S3 bucket (AWS, or any S3-compatible store: MinIO, Ceph RGW,
// ...), over the shared http::Client, signed with SigV4 (s3_signer.hpp).
//
// Addressing: an empty endpoint or an *.amazonaws.com one is AWS, virtual-hosted style
// (https://bucket.s3.<region>.amazonaws.com/key; a bucket name with dots stays path-style there, as
// the *.s3.<region>.amazonaws.com certificate cannot cover it); any other endpoint is used as given,
// path-style (endpoint/bucket/key), http:// allowed. Trailing slashes of bucket, endpoint and prefix
// are ignored. The region defaults to us-east-1 (or the one an AWS endpoint names) and is corrected
// once from the server's answer (x-amz-bucket-region, or <Region> in AuthorizationHeaderMalformed /
// PermanentRedirect), then kept for later calls.
//
// Guarantees (storage::Backend's, plus):
//  - create_metadata() is create-only through `If-None-Match: *` (412/409 -> AlreadyExists). An
//    existence check precedes the PUT, so stores that ignore If-None-Match still never overwrite an
//    existing file on a later call (only a true race between two writers is unprotected there): a
//    HEAD, unless this backend's read_metadata() found the key absent within the last 30 s (the
//    reconciler reads, then creates: that read is the check, and the HEAD would repeat it).
//  - Every request goes through storage::send_with_retries, freshly signed per attempt; transient
//    failures (5xx, SlowDown, RequestTimeout, resets, timeouts) come back transient with the S3 code,
//    everything else permanent with what to fix; messages carry the request id, never a credential.
//  - wipe() is wipe_objects() (object_wipe.hpp): only with a valid metadata.yaml at the storage's
//    own key, never inside another storage's location, metadata.yaml last. It removes only objects
//    whose key starts with "<prefix>/" (the whole bucket when the prefix is empty), ListObjectsV2
//    page by page (the progress hook after each), each page deleted with DeleteObjects batches (or
//    DeleteObject per key where DeleteObjects is refused), up to maxConnections requests at once
//    (8 when unset). A bucket that does not exist has nothing to delete.
//
// Assumes the caller's executor is the single reactor: the remembered region and the store quirks
// learnt at run time are plain members.
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storage/aws_credentials.hpp"
#include "storage/backend.hpp"
#include "common/http_client.hpp"
#include "storage/object_wipe.hpp"
#include "storage/retry.hpp"
#include "storage/s3_signer.hpp"

namespace stowage::storage {

struct S3Options {
  std::string endpoint;  // "" = AWS; "https://minio.example:9000"; used as given otherwise
  std::string bucket, prefix, region;
  std::string access_key_id, secret_access_key, session_token;
  // The controller's own identity instead of the keys above (a storage without a secretName): asked
  // before every call, told when S3 refuses what it gave (see aws_credentials.hpp).
  std::shared_ptr<aws::CredentialProvider> credential_provider;
  http::TlsSettings tls;
  std::size_t max_connections = 0;  // 0 = the client's default

  // Beyond KubeStash's fields; the defaults are what production uses.
  std::size_t list_page_size = 1000;  // max-keys per ListObjectsV2 page (tests use small pages)
  RetryPolicy retry;
  // Connect here ("http://127.0.0.1:9000") instead of the endpoint's host, still sending and signing
  // the endpoint's Host (and TLS name): curl's --connect-to. For private DNS setups and for tests of
  // AWS addressing against a loopback server.
  std::string connect_to;
};

// ObjectStore is inherited privately: its calls exist for wipe() only.
class S3Backend final : public Backend, private ObjectStore {
 public:
  S3Backend(http::Client& client, S3Options options);

  std::string identity() const override;
  std::string metadata_location() const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_metadata() override;
  boost::asio::awaitable<BackendResult<CreateOutcome>> create_metadata(std::string body) override;
  boost::asio::awaitable<WipeReport> wipe(WipePlan plan) override;
  boost::asio::awaitable<BackendResult<Ok>> check_access() override;

  // The region requests are signed for now (after any correction).
  const std::string& region() const { return region_; }

  // One S3 request, described independently of where the bucket lives (public for tests).
  struct Call {
    std::string operation;   // for messages: "read metadata.yaml", "list objects", ...
    std::string permission;  // the IAM action it needs, for AccessDenied messages: "s3:GetObject"
    std::string method;
    std::string key;    // object key; empty = the bucket itself
    std::string query;  // encoded "list-type=2&max-keys=1000"
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
  };

 private:
  struct Place {
    http::Url origin;         // where to connect
    std::string host;         // Host header (signed)
    std::string path_prefix;  // "" (virtual-hosted) or "/bucket" (path-style), after any endpoint path
  };

  Place place() const;
  std::string target(const Call& call, const Place& where) const;
  std::string endpoint_label() const;
  boost::asio::awaitable<Result<http::Response, BackendError>> execute(const Call& call);
  BackendError error_from(const Call& call, const http::Response& response) const;
  BackendError error_from(const Call& call, const http::HttpError& error) const;
  std::string check_credential(const std::string& variable) const;  // "check AWS_SECRET_ACCESS_KEY", or the source

  boost::asio::awaitable<BackendResult<Ok>> diagnose_forbidden(const Call& call);
  boost::asio::awaitable<Result<std::vector<std::string>, BackendError>> list_page(const std::string& list_prefix,
                                                                                   std::string& token,
                                                                                   bool& truncated);
  boost::asio::awaitable<DeleteOutcome> delete_batch(std::vector<std::string> keys);
  boost::asio::awaitable<DeleteOutcome> delete_one(std::string key);

  // ObjectStore (for wipe()):
  std::string object_directory() const override;
  std::string object_location(const std::string& key) const override;
  boost::asio::awaitable<BackendResult<MetadataState>> read_own_metadata() override;
  boost::asio::awaitable<BackendResult<ObjectPage>> list_objects(std::string token) override;
  boost::asio::awaitable<BackendResult<std::optional<std::string>>> read_object(std::string key,
                                                                                  std::size_t limit) override;
  boost::asio::awaitable<DeleteOutcome> delete_objects(std::vector<std::string> keys) override;
  bool bucket_missing(const BackendError& error) const override;
  std::size_t parallel_requests() const;

  http::Client& client_;
  S3Options options_;
  s3::Credentials credentials_;
  bool aws_ = false;
  bool aws_standard_host_ = false;  // s3.<region>.amazonaws.com: the host follows the region
  std::string region_;
  std::string key_;  // metadata.yaml's key
  std::string dir_;  // "backup/demo/" (every key under the prefix starts with it), "" for the root

  // Learnt at run time from the store's answers:
  bool slash_in_query_rejected_ = false;  // signatures over a query value holding '/' fail (moto)
  bool multi_delete_refused_ = false;     // DeleteObjects not implemented
  // When read_metadata() last found metadata.yaml absent (one create_metadata() may skip its HEAD).
  std::optional<std::chrono::steady_clock::time_point> seen_absent_;
};

}  // namespace stowage::storage
