#pragma once
// WipeOut for the object stores (S3, GCS, Azure Blob), written once over the few calls it needs
// from them (ObjectStore). Each cloud backend's wipe() is wipe_objects() over itself.
//
// The flow:
//  1. The plan: every kept location must be relative, slash-separated, without an empty, "." or
//     ".." segment; otherwise the wipe is refused (InvalidPlan) before any request.
//  2. Ownership: the storage's own metadata.yaml must be a valid BackendMeta. Missing or invalid:
//     refused (NotOwned / InvalidMetadata, see ownership_refusal()), nothing deleted. A failure to
//     read it is the wipe's error.
//  3. Discovery pass: the storage's directory is listed once. Every "<dir><rel>/metadata.yaml"
//     (rel non-empty) outside a location already kept is read (at most kMaxNestedMetadataBytes);
//     a valid BackendMeta means "<rel>/" is another storage's location: it is kept. An invalid one
//     (or one larger than the cap) is ordinary data.
//  4. Delete pass: the directory is listed again; every key is deleted except those inside kept
//     locations and the own metadata.yaml, page by page, with the store's own batching and
//     parallelism; the progress hook is awaited after each page with the count so far.
//  5. Last, the own metadata.yaml - only when the delete pass finished without error, so that a
//     retry of an interrupted wipe can still prove ownership.
//
// Guarantees:
//  - nothing is deleted before ownership is proven and the discovery pass has finished;
//  - no key outside the directory, inside a kept location, or (before step 5) equal to the own
//    metadata.yaml is ever handed to ObjectStore::delete_objects();
//  - the first failure stops the wipe: `error` (classified by the store), `removed` so far;
//  - `left` names each kept location: "<location>: another storage's metadata.yaml" (found in the
//    discovery pass) or "<location>: another storage's location" (from the plan);
//  - a bucket (container) that does not exist holds nothing to delete: done, 0 removed;
//  - memory is one listing page plus the kept locations (the plan's and one per valid nested
//    metadata.yaml), never proportional to the number of objects.
// Costs: two listings of the directory instead of one, one read of the own metadata.yaml, one
// read per nested "*/metadata.yaml" key, one delete request for the own metadata.yaml.
// Assumptions:
//  - a listing continued after some of its keys were deleted neither repeats nor skips the keys
//    after them (S3 continuation tokens, GCS page tokens and Azure markers resume after a name);
//  - another storage created inside this one while the wipe runs is protected only through the
//    plan (the reconciler knows the live storages); the discovery pass sees what existed then.
//  - the store and the progress hook outlive the wipe; everything runs on the caller's executor.
#include <boost/asio/awaitable.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "storage/backend.hpp"

namespace stowage::storage {

// A nested metadata.yaml larger than this is not a BackendMeta (KubeStash's is ~120 bytes).
inline constexpr std::size_t kMaxNestedMetadataBytes = 1u << 20;

// One page of a listing.
struct ObjectPage {
  std::vector<std::string> keys;  // full keys, each starting with the store's directory
  std::string next;               // the continuation token; empty after the last page
};

// What one delete_objects() call did: `removed` counts what it removed even when it then failed.
struct DeleteOutcome {
  std::size_t removed = 0;
  std::optional<BackendError> error;
};

// The calls a wipe needs from an object store, as one storage (bucket + prefix) sees it.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Every key of the storage starts with this: "backup/demo/", or "" for the whole bucket.
  virtual std::string object_directory() const = 0;

  // A key as messages name it: "s3://bucket/key", "gs://bucket/key", "azure://account/container/key".
  virtual std::string object_location(const std::string& key) const = 0;

  // The storage's own metadata.yaml, exactly as Backend::read_metadata() reads it.
  virtual boost::asio::awaitable<BackendResult<MetadataState>> read_own_metadata() = 0;

  // One page of the keys under object_directory() (and only those), from `token` ("" = first page).
  virtual boost::asio::awaitable<BackendResult<ObjectPage>> list_objects(std::string token) = 0;

  // The start of one object: all of it, or at least `limit` + 1 bytes when it is larger (a store
  // that ignores the range may send more). nullopt when it does not exist.
  virtual boost::asio::awaitable<BackendResult<std::optional<std::string>>> read_object(std::string key,
                                                                                          std::size_t limit) = 0;

  // Deletes `keys` with the store's own batching and parallelism. A key already gone is no failure.
  virtual boost::asio::awaitable<DeleteOutcome> delete_objects(std::vector<std::string> keys) = 0;

  // Whether `error` (from any call above) means the bucket or container itself does not exist.
  virtual bool bucket_missing(const BackendError& error) const = 0;
};

// The whole wipe, as described at the top of this file. `progress` may be empty.
boost::asio::awaitable<WipeReport> wipe_objects(ObjectStore& store, WipePlan plan, Backend::DeleteProgress progress);

}  // namespace stowage::storage
