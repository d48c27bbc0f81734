#pragma once
// Runtime — one process's assembled engine: the reactor (one io_context on one thread), the I/O
// pool for disk work, the state store, the durable queue, and the reconcile loop, wired in the
// order data flows: source -> world (store) -> queue -> controller -> reconciler -> backend -> status.
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>

#include "common/child_reaper.hpp"
#include "config/config.hpp"
#include "engine/backends.hpp"
#include "engine/controller.hpp"
#include "engine/facts.hpp"
#include "engine/lag_monitor.hpp"
#include "engine/metrics.hpp"
#include "engine/kube_world.hpp"
#include "engine/offline_world.hpp"
#include "engine/reconciler.hpp"
#include "persistence/fingerprint.hpp"
#include "persistence/state_store.hpp"
#include "persistence/work_queue.hpp"
#include "common/http_client.hpp"
#include "kube/client_config.hpp"

namespace stowage::kube {
class ApiClient;
}

namespace stowage::engine {

class StartupError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::int64_t wall_now_ms();

// Holds an exclusive lock on <state-dir>/stowage.lock (mode 0600) for the process's life: two
// controllers writing one state store would break its guarantees. Creates the state directory first,
// 0700 whatever the umask, and warns (once, at start) when an existing one lets group or others in.
class StateDirLock {
 public:
  explicit StateDirLock(const std::filesystem::path& state_dir);  // throws StartupError
  ~StateDirLock();
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;

 private:
  int fd_ = -1;
};

// Where a Runtime's objects come from.
struct OfflineSource {
  std::string source_id;  // the manifest folder (absolute) or "init"
  bool deletions = true;  // whether absent objects are deleted
};
struct KubernetesSource {
  kube::ClientConfig client;
  KubeWorldOptions options;
};

class Runtime {
 public:
  Runtime(const config::Config& config, OfflineSource source);
  Runtime(const config::Config& config, KubernetesSource source);
  ~Runtime();

  boost::asio::io_context io{1};
  boost::asio::thread_pool pool;
  // Set by cancel_work(): long work on the pool (local wipes) checks it between entries and ends early.
  std::shared_ptr<std::atomic<bool>> pool_stop = std::make_shared<std::atomic<bool>>(false);
  metrics::Registry registry;
  Metrics metrics{registry};
  StateDirLock lock;
  // As PID 1 (or a subreaper): reaps orphaned processes that exec plugins leave behind. Else null.
  std::unique_ptr<process::ChildReaper> reaper;
  std::unique_ptr<persistence::StateStore> store;
  persistence::Fingerprinter fingerprinter;
  persistence::WorkQueue queue;
  FactBook facts;
  http::Client http;
  BackendFactory backends;
  std::unique_ptr<OfflineWorld> offline;  // the offline modes
  std::unique_ptr<kube::ApiClient> api;   // the Kubernetes mode
  std::unique_ptr<KubeWorld> kube;        // the Kubernetes mode
  Reconciler reconciler;
  Controller controller;
  LagMonitor lag;

  OfflineWorld& world() { return *offline; }

  // The grace period is over: cancels every reconcile in flight (terminal) and raises pool_stop.
  // Their items are replayed at the next start. Reactor thread.
  void cancel_work();
  // Why no new work should be claimed now (the store's writer is store.max-pending-bytes behind), or nullopt.
  std::optional<std::string> store_backlog() const;

 private:
  Runtime(const config::Config& config, std::optional<OfflineSource> offline_source,
          std::optional<KubernetesSource> kube_source);
  ReconcileTarget& target();
  std::uint64_t max_pending_bytes_;
};

}  // namespace stowage::engine
