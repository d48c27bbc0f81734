#pragma once
// Reconciler — KubeStash's BackupStorage logic for one key, read top to bottom:
//   newest object -> (deleted? apply the deletion policy) -> Secret (BackendSecretFound) ->
//   backend (BackendInitialized: metadata.yaml create-only, skipped when the state store remembers
//   this exact storage as initialized) -> phase -> status, written only when it changed.
// It returns what should happen next; the retry policy lives in the Controller, not here.
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <string>

#include "engine/backends.hpp"
#include "engine/facts.hpp"
#include "engine/target.hpp"
#include "persistence/fingerprint.hpp"

namespace stowage::engine {

struct Outcome {
  enum Kind {
    Done,       // settled; nothing to do until something changes
    Transient,  // failed, worth retrying soon (backoff)
    Permanent,  // failed in a way only a change can fix (long delay, still re-checked)
  };
  Kind kind = Done;
  std::string error;  // secret-free, for the queue row and logs
  bool ready = false;
};

struct Metrics;

struct ReconcilerOptions {
  std::string operator_version = "v0.1.0";
  Metrics* metrics = nullptr;  // backend uploads and request latency, when set
};

class Reconciler {
 public:
  using WallNow = std::function<std::chrono::system_clock::time_point()>;

  Reconciler(ReconcileTarget& target, const BackendFactory& backends, FactBook& facts,
             const persistence::Fingerprinter& fingerprinter, ReconcilerOptions options,
             WallNow now = [] { return std::chrono::system_clock::now(); });

  // revalidate: check the backend even when the state store says this exact storage is initialized.
  boost::asio::awaitable<Outcome> reconcile(ObjectKey key, bool revalidate = false);

 private:
  boost::asio::awaitable<Outcome> initialize(const kube::BackupStorage& s, const kube::Secret* secret,
                                             kube::BackupStorageStatus& status, bool revalidate);
  boost::asio::awaitable<Outcome> remove(const kube::BackupStorage& s);
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
