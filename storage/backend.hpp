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
//  - wipe() deletes only what the storage can be shown to own: nothing at all unless a valid
//    BackendMeta metadata.yaml sits at the storage's own location, never anything inside the
//    locations the plan says to keep, and metadata.yaml itself last (so an interrupted wipe can
//    still prove ownership when it is retried).
#include <boost/asio/awaitable.hpp>

#include <functional>

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

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

// What a WipeOut must leave alone beyond the backend's own rules.
struct WipePlan {
  // Other storages' locations inside this one, relative to this storage's directory or prefix,
  // slash-separated without leading or trailing slashes ("team-b", "x/y"): never entered.
  std::vector<std::string> keep;
};

// What a wipe did. Exactly one of three shapes:
//  - refused: nothing was deleted, by rule (the storage cannot be shown to own the place, the place
//    is protected, or the plan is malformed); `refused->code` says which: NotOwned, InvalidMetadata,
//    ProtectedLocation, InvalidPlan.
//  - error: the wipe stopped on a failure (transient or permanent); `removed` objects were already
//    gone, so it is partial when removed > 0.
//  - neither: done; `left` lists what was deliberately left ("where: why"), e.g. another storage's
//    location or a mount point.
struct WipeReport {
  std::optional<BackendError> refused;
  std::optional<BackendError> error;
  std::size_t removed = 0;
  std::vector<std::string> left;
  bool done() const { return !refused && !error; }
};
// Why a wipe is refused when metadata.yaml is missing or not a valid BackendMeta (`state.meta` unset).
BackendError ownership_refusal(const MetadataState& state, const std::string& location);

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

  // WipeOut: proves ownership (a valid metadata.yaml at the storage's own location), then deletes
  // everything under the storage's prefix/directory except what `plan` keeps, metadata.yaml last.
  // The progress hook (when set) is awaited with the count so far as the wipe goes.
  virtual boost::asio::awaitable<WipeReport> wipe(WipePlan plan) = 0;

  using DeleteProgress = std::function<boost::asio::awaitable<void>(std::size_t removed_so_far)>;
  void on_delete_progress(DeleteProgress progress) { delete_progress_ = std::move(progress); }

  // A cheap check that the place exists and is reachable with the given credentials.
  virtual boost::asio::awaitable<BackendResult<Ok>> check_access() = 0;

 protected:
  DeleteProgress delete_progress_;
};

}  // namespace stowage::storage
