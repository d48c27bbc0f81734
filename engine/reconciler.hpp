#pragma once
// Reconciler — KubeStash's BackupStorage logic for one key, read top to bottom:
//   newest object -> (deleted? apply the deletion policy) -> Secret (BackendSecretFound) ->
//   location (an older storage at the same or a nested location: StorageLocationConflict) ->
//   backend (BackendInitialized: metadata.yaml create-only, skipped when the state store remembers
//   this exact storage as initialized) -> phase -> status, written only when it changed.
// It returns what should happen next; the retry policy lives in the Controller, not here.
//
// Deletion, under both policies, first deletes the Repositories that use the storage and their
// Snapshots (as KubeStash does) and waits until they are gone: while some are held by other
// controllers' finalizers, or the deletes fail, the storage keeps its finalizer, a
// RepositoriesDeleted=False condition names what it waits for, and the reconcile ends Transient
// (backoff; a Repository's removal queues the storage at once). Only then is the data wiped
// (WipeOut) and the finalizer removed. Before the wipe, not after: no backup can still be writing
// into a Repository that exists (its objects are gone), the Repositories' own cleanup (KubeStash's
// Repository deletionPolicy) still finds the storage and its data in place, and the wipe's proof of
// ownership (the storage's own metadata.yaml) is untouched by deleting cluster objects. A wipe that
// then fails leaves the Repositories deleted and the data in place, which re-creating the storage
// with policy Delete re-uses.
// Deletion with WipeOut deletes only what the storage owns (see storage::Backend::wipe):
//  - refused, nothing deleted, the deletion completes with a Warning: the location equals an older
//    storage's or lies inside another live storage's; the backend finds no valid metadata.yaml there
//    or the place is protected; the spec or Secret is unusable (as KubeStash, deletion is not blocked);
//  - other live storages' locations nested inside are kept (WipePlan::keep);
//  - a wipe that fails (a permanent error, or the 5th transient one in a row) keeps the object: the
//    WipeOut condition says what was removed, what was left and why, a Warning Event is emitted, and
//    it is retried on the permanent schedule until it succeeds or the policy is changed to Delete.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/backends.hpp"
#include "engine/facts.hpp"
#include "engine/key_reconciler.hpp"
#include "engine/target.hpp"
#include "persistence/fingerprint.hpp"

namespace stowage::engine {

struct Metrics;

// Transient wipe failures in a row after which the WipeOut condition reports the failure and the
// wipe moves to the permanent schedule.
inline constexpr int kWipeTransientLimit = 5;

struct ReconcilerOptions {
  std::string operator_version = "v0.1.0";
  Metrics* metrics = nullptr;  // backend uploads and request latency, when set
  // A storage found Ready is checked again this long after (Outcome::requeue_after); 0 = never.
  std::chrono::milliseconds revalidate_period{0};
};

class Reconciler : public KeyReconciler {
 public:
  using WallNow = std::function<std::chrono::system_clock::time_point()>;

  Reconciler(ReconcileTarget& target, const BackendFactory& backends, FactBook& facts,
             const persistence::Fingerprinter& fingerprinter, ReconcilerOptions options,
             WallNow now = [] { return std::chrono::system_clock::now(); });

  boost::asio::awaitable<Outcome> reconcile(ObjectKey key, ReconcileRequest request = {}) override;

 private:
  struct Wipe;
  // Done for a storage found Ready: back after options_.revalidate_period (if any).
  Outcome ready() const;
  boost::asio::awaitable<Outcome> initialize(const kube::BackupStorage& s, const kube::Secret* secret,
                                             kube::BackupStorageStatus& status, bool revalidate);
  boost::asio::awaitable<Outcome> remove(const kube::BackupStorage& object, int attempts);
  // Step 1 of a deletion: the storage's Repositories and Snapshots deleted. nullopt once none is
  // left (a RepositoriesDeleted condition from earlier attempts is dropped from `s`), else what the
  // reconcile returns (waiting, or the deletes failed), with the condition saying why.
  boost::asio::awaitable<std::optional<Outcome>> delete_dependents(kube::BackupStorage& s);
  boost::asio::awaitable<Wipe> wipe_with_job(const kube::BackupStorage& s, std::vector<std::string> keep);
  boost::asio::awaitable<Wipe> wipe_directly(const kube::BackupStorage& s, std::vector<std::string> keep);
  // Writes a WipeOut condition on the object being deleted (best effort: a failed write is logged).
  boost::asio::awaitable<void> wipe_condition(const kube::BackupStorage& s, std::string_view reason,
                                              std::string message);
  // Writes `status` on the object being deleted when it differs (best effort: a failed write is
  // logged); true when it was written.
  boost::asio::awaitable<bool> write_while_deleting(const kube::BackupStorage& s, kube::BackupStorageStatus status);
  boost::asio::awaitable<Outcome> deletion_done(const kube::BackupStorage& s);
  // Writes the status when it changed (phase computed here); a failed write replaces `outcome`.
  boost::asio::awaitable<Outcome> publish(const kube::BackupStorage& s, kube::BackupStorageStatus status,
                                          Outcome outcome);

  ReconcileTarget& target_;
  const BackendFactory& backends_;
  FactBook& facts_;
  const persistence::Fingerprinter& fingerprinter_;
  ReconcilerOptions options_;
  WallNow now_;
};

}  // namespace stowage::engine
