#pragma once
// storage::Backend — what the reconciler needs from a place that holds backups.
//
// Guarantees every implementation keeps:
//  - create_metadata() is create-only: an existing object is never overwritten, and when two
//    writers race, exactly one creates it and the other sees AlreadyExists.
//  - Every operation is asynchronous on the caller's executor (the single reactor); blocking
//    work (disk, fsync) runs elsewhere and resumes the caller on its own executor.
//  - Errors are values (BackendError), classified transient or permanent, with a message that is
//    safe to show in a status or a log: it never holds a credential, token or signature.
#include <boost/asio/awaitable.hpp>

#include <functional>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>

#include "common/result.hpp"

namespace stowage::storage {

struct BackendError {
  bool transient = false;  // worth retrying soon (timeouts, 5xx, throttling, EIO, ...)
  std::string code;        // short machine-readable cause: "PermissionDenied", "ReadOnlyFilesystem", "NotMounted", ...
  std::string message;     // what, where, and how to fix it; no secrets
  std::optional<std::chrono::milliseconds> retry_after;  // server-requested delay, when one was given
};

template <class T>
using BackendResult = Result<T, BackendError>;

// The parsed content of metadata.yaml (config.kubestash.com/v1alpha1 BackendMeta).
struct BackendMeta {
  std::string creation_timestamp;  // RFC 3339
  std::string operator_version;
};

struct MetadataState {
  bool exists = false;
  std::optional<BackendMeta> meta;  // set when it exists and is a valid BackendMeta
  std::string invalid_reason;       // set when it exists but is not a valid BackendMeta
};

enum class CreateOutcome { Created, AlreadyExists };

class Backend {
 public:
  virtual ~Backend() = default;

  // A stable, secret-free description of where this backend writes, e.g. "local:/data/x" or
  // "s3:https://s3.example.com/bucket/prefix". Used in messages and as the backend identity
  // remembered in the state store.
  virtual std::string identity() const = 0;

  // Where metadata.yaml lives, for messages ("/data/x/metadata.yaml", "s3://bucket/p/metadata.yaml").
  virtual std::string metadata_location() const = 0;

  virtual boost::asio::awaitable<BackendResult<MetadataState>> read_metadata() = 0;

  // Create metadata.yaml with `body` unless it already exists (create-only, see above).
  virtual boost::asio::awaitable<BackendResult<CreateOutcome>> create_metadata(std::string body) = 0;

  // Delete every object under the backend's prefix/directory (WipeOut). Returns how many were removed.
  // Cloud backends await the progress hook (when set) after each page with the count so far.
  virtual boost::asio::awaitable<BackendResult<std::size_t>> delete_all() = 0;

  using DeleteProgress = std::function<boost::asio::awaitable<void>(std::size_t removed_so_far)>;
  void on_delete_progress(DeleteProgress progress) { delete_progress_ = std::move(progress); }

  // A cheap check that the place exists and is reachable with the given credentials.
  virtual boost::asio::awaitable<BackendResult<Ok>> check_access() = 0;

 protected:
  DeleteProgress delete_progress_;
};

}  // namespace stowage::storage
