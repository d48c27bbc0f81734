#pragma once
// Runtime — one process's assembled engine and its lifecycle: the reactor (one io_context on one
// thread), the I/O pool for disk work, the state store, the durable queue, and the reconcile loop,
// wired in the order data flows: source -> world (store) -> queue -> controller -> reconciler ->
// backend -> status. A mode (offline, Kubernetes; see run_command.cpp) brings its source and
// RunHooks; run() does the rest.
//
// Start order (each step needs the ones before it):
//  1. Construction: the state directory's lock, the state store (opened, checked), the fingerprint
//     key, the queue and facts loaded from the store, the HTTP client, backends, the world (offline
//     or Kubernetes), the reconciler and the controller. Nothing runs yet: the reactor has not run.
//  2. run(): the queue is restored from the store (items left by the previous run), before any
//     source adds to it.
//  3. The /metrics and /healthz,/readyz listeners; /readyz fails until the source says it is ready
//     (and whenever the store is store.max-pending-bytes behind).
//  4. The lag monitor and the gauges (refreshed once a second).
//  5. The stop handlers: SIGINT/SIGTERM, and the liveness policy (a loop that died stops the
//     process like a signal, then exits 1). Only then are the stop signals held during start-up
//     released (RunHooks::stop_signals_handled), so that none is lost or half-handled.
//  6. The source starts (RunHooks::start_source); it starts the controller once it is ready
//     (manifests read; caches synced and, with leader election, leading).
//  7. The reactor runs until the stop below ends it.
//
// Stop order (request_stop(), a signal, or a loop that died; a second signal stops at once):
//  1. The exit watchdog is armed: whatever still hangs, the process ends at grace + 2 s (exit 1).
//  2. The source stops taking events (RunHooks::stop_source): nothing new is queued.
//  3. The controller stops claiming; the reconciles in flight get the grace period to finish.
//  4. Past the grace period they are cancelled (cancel_work(): each ends at its next await, long
//     pool work at its next entry) and get 300 ms more; their items are replayed at the next start.
//  5. Then the lag monitor, the gauges and the listeners stop, RunHooks::before_exit runs (the
//     Lease is released), and the reactor stops once the store confirms its last commit, or after
//     700 ms without it (a failing disk must not hold the reactor).
//  6. After the reactor: the store gets what is left of grace + 2 s (less a margin) to commit; past
//     it, what is not committed is abandoned (replayed at the next start) and the exit code is 1.
//  7. ~Runtime: the controller, world and lag monitor stop, the I/O pool is told to stop and
//     joined, the store gets one more bounded flush; the watchdog is disarmed last.
// stop_now() (leadership lost) skips the grace period: the source and the controller stop, and the
// reactor stops once the store confirms.
//
// Assumes: every call but the constructors, run() and the destructor comes from the reactor thread.
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "config/config.hpp"
#include "engine/controller.hpp"
#include "engine/kube_world.hpp"
#include "engine/lag_monitor.hpp"
#include "engine/metrics.hpp"
#include "engine/offline_world.hpp"
#include "kube/client_config.hpp"
#include "persistence/state_store.hpp"

namespace boost::asio {
class io_context;
class thread_pool;
}  // namespace boost::asio

namespace stowage::http {
class Client;
}
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

// What a mode adds to Runtime::run(). Every hook is called on the reactor thread.
struct RunHooks {
  // Starts the source (start order, step 6); it starts the controller once it is ready.
  std::function<void()> start_source;
  // The source stops taking events (stop order, step 2).
  std::function<void()> stop_source;
  // nullopt when the source is ready for /readyz, else why not.
  std::function<std::optional<std::string>()> readiness;
  // The storages known now (for the phase gauges).
  std::function<const ObjectCache&()> cache;
  // Runs last before the reactor stops (releasing a Lease); calls `done` when finished. Optional.
  std::function<void(std::function<void()> done)> before_exit;
  // run() handles SIGINT/SIGTERM from here on (start order, step 5). Optional.
  std::function<void()> stop_signals_handled;
  // Stops the listeners the mode started itself (the admission webhook), with the others. Optional.
  std::function<void()> stop_listeners;
};

class Runtime {
 public:
  // Opens the state store on the reactor `reactor`. By default: the SQLite one in the state directory.
  using StoreOpener = std::function<std::unique_ptr<persistence::StateStore>(boost::asio::any_io_executor reactor)>;

  Runtime(const config::Config& config, OfflineSource source, StoreOpener open_store = {});
  Runtime(const config::Config& config, KubernetesSource source, StoreOpener open_store = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs the process (start order steps 2-7, then stop order steps 1-6) and returns its exit code:
  // 0 after a signal, 1 when a loop died, leadership was lost, a listener could not start or the
  // store had to abandon writes. Once per Runtime.
  int run(RunHooks hooks);
  // Begins the orderly stop, as SIGTERM does. While run() runs.
  void request_stop();
  // Stops without the grace period (leadership lost): exit code 1, the source and the controller
  // stop, and the reactor stops once the store confirms its last commit. While run() runs.
  void stop_now();

  // The grace period is over: cancels every reconcile in flight (terminal) and raises the I/O pool's
  // stop flag. Their items are replayed at the next start.
  void cancel_work();
  // Why no new work should be claimed now (the store's writer is store.max-pending-bytes behind), or nullopt.
  std::optional<std::string> store_backlog() const;
  // What /readyz answers: nullopt when ready, else why not (the store's backlog first, then the
  // source's RunHooks::readiness while run() runs).
  std::optional<std::string> readiness() const;

  boost::asio::io_context& io();
  boost::asio::thread_pool& pool();
  persistence::StateStore& store();
  Controller& controller();
  LagMonitor& lag();
  Metrics& metrics();
  http::Client& http();
  OfflineWorld& world();  // the offline modes only
  KubeWorld& kube();      // the Kubernetes mode only
  kube::ApiClient& api();  // the Kubernetes mode only

 private:
  struct Parts;    // the components, in construction order
  struct Running;  // run()'s state: listeners, timers, signals, the stop's progress
  class Watchdog;  // ends the process when the stop overruns its deadline

  Runtime(const config::Config& config, std::optional<OfflineSource> offline_source,
          std::optional<KubernetesSource> kube_source, StoreOpener open_store);
  void restore_queue();
  bool start_listeners();
  void refresh_gauges();
  void sweep_storage_gauges();
  static constexpr std::chrono::seconds kGaugePeriod{1};
  static constexpr std::chrono::microseconds kGaugeSlice{500};
  void on_signal(int signal);
  void begin_stop();
  void finish();
  bool flush_state();

  // Declared first: destroyed last, so the deadline still holds while ~Runtime joins and flushes.
  std::unique_ptr<Watchdog> watchdog_;
  std::unique_ptr<Parts> parts_;
  std::unique_ptr<Running> running_;
};

}  // namespace stowage::engine
