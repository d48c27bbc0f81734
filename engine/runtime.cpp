#include "engine/runtime.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "common/child_reaper.hpp"
#include "common/http_client.hpp"
#include "common/liveness.hpp"
#include "engine/backends.hpp"
#include "engine/facts.hpp"
#include "engine/probes.hpp"
#include "engine/reconciler.hpp"
#include "kube/api_client.hpp"
#include "persistence/fingerprint.hpp"
#include "persistence/sqlite_state_store.hpp"
#include "persistence/work_queue.hpp"

namespace stowage::engine {

namespace {
std::unique_ptr<persistence::StateStore> open_store(const config::Config& c, boost::asio::io_context& io,
                                                    const Runtime::StoreOpener& opener) {
  if (opener) return opener(io.get_executor());
  persistence::StoreOptions o{c.commit_interval, c.synchronous == "full"};
  auto r = persistence::SqliteStateStore::open(c.state_dir, io.get_executor(), o);
  if (!r.ok()) throw StartupError(r.error());
  return std::move(r.value());
}

// Orphans come only to PID 1 and subreapers; elsewhere each exec plugin's waiter reaps its own child.
std::unique_ptr<process::ChildReaper> reap_orphans(boost::asio::io_context& io) {
  if (!process::receives_orphans()) return nullptr;
  spdlog::info("running as {}: orphaned processes (an exec plugin's leftovers) are reaped here",
               ::getpid() == 1 ? "PID 1" : "a child subreaper");
  try {
    return std::make_unique<process::ChildReaper>(io.get_executor());
  } catch (const std::exception& e) {
    throw StartupError(std::string(e.what()) + ": orphaned processes could not be reaped");
  }
}

persistence::Fingerprinter load_fingerprinter(const config::Config& c) {
  auto r = persistence::Fingerprinter::load_or_create(c.state_dir);
  if (!r.ok()) throw StartupError(r.error());
  return std::move(r.value());
}
std::unique_ptr<kube::ApiClient> make_api_client(const config::Config& c, http::Client& http, kube::ClientConfig client,
                                                 Metrics& metrics) {
  kube::ApiClientOptions options;
  options.qps = c.kube_qps;
  options.burst = c.kube_burst;
  std::string host = client.server.host + ":" + std::to_string(client.server.port);
  options.on_request = [&metrics, host](std::optional<int> status, std::string_view method,
                                        std::chrono::duration<double> took) {
    metrics.rest_request_finished(status, method, host, took);
  };
  return std::make_unique<kube::ApiClient>(http, std::move(client), std::move(options));
}

// The client for the API server and the backends. Like client-go and the cloud SDKs, requests that
// have no proxy configured (a kubeconfig's proxy-url) take HTTPS_PROXY / HTTP_PROXY / NO_PROXY.
http::ClientOptions http_options(const config::Config& c) {
  http::ClientOptions o;
  o.connect_timeout = c.backend_connect_timeout;
  o.handshake_timeout = c.backend_connect_timeout;
  o.request_timeout = c.backend_request_timeout;
  o.default_max_connections = static_cast<std::size_t>(c.backend_max_connections);
  auto environment = http::ProxyEnvironment::from_process();
  if (!environment.empty()) {
    for (auto [name, value] : {std::pair{"HTTPS_PROXY", &environment.https_proxy},
                               std::pair{"HTTP_PROXY", &environment.http_proxy}}) {
      if (value->empty()) continue;
      auto proxy = http::Proxy::parse(http::ProxyEnvironment::as_url(*value));
      // Never the URL itself in a log: it may hold a password.
      if (proxy.ok())
        spdlog::info("{}: requests go through {} (NO_PROXY: {}; never for localhost or loopback)", name,
                     proxy.value().label(), environment.no_proxy.empty() ? "unset" : environment.no_proxy);
      else
        spdlog::warn("{} cannot be used: {}; requests it applies to will fail until it is fixed or unset", name,
                     proxy.error());
    }
    o.environment_proxies = std::make_shared<const http::ProxyEnvironment>(std::move(environment));
  }
  return o;
}

// The state directory and the manifest folder are never wiped, whatever a storage's path says.
LocalSettings local_settings(const config::Config& c, std::shared_ptr<const std::atomic<bool>> stop) {
  LocalSettings local;
  local.root = c.local_root;
  local.stop = std::move(stop);
  for (const auto& dir : {c.state_dir, c.manifests}) {
    if (dir.empty()) continue;
    std::error_code ec;
    auto absolute = std::filesystem::absolute(dir, ec);
    if (ec) absolute = dir;
    auto real = std::filesystem::weakly_canonical(absolute, ec);
    local.protected_paths.push_back(ec ? absolute.lexically_normal() : real);
  }
  return local;
}

// Which AWS identity sources the environment configures, by name only (never a key or a path's
// content): the first is what S3 storages without a secretName use.
void log_aws_identity(const storage::aws::Chain& chain) {
  for (const auto& warning : chain.warnings) spdlog::warn("AWS identity: {}", warning);
  if (!chain.active()) {
    spdlog::info("AWS identity: no source found (S3 storages without a secretName stay NotReady)");
    return;
  }
  std::string names;
  for (const auto& name : chain.names()) names += (names.empty() ? "" : "; ") + name;
  spdlog::info("AWS identity sources found: {}; S3 storages without a secretName use {}", names,
               chain.active()->name);
}

// The same for Azure: the chain always ends with managed identity (IMDS).
void log_azure_identity(const storage::azure::Chain& chain) {
  if (!chain.active()) return;
  std::string names;
  for (const auto& name : chain.names()) names += (names.empty() ? "" : "; ") + name;
  spdlog::info("Azure identity sources found: {}; Azure storages without a secretName use {}", names,
               chain.active()->name);
}

// The offline modes' user is the operator, who gives the process its credentials for their own
// manifests: every namespace may use them. Against an API server, anyone who may create a
// BackupStorage picks its namespace: only those the operator named may (see AmbientCredentialsPolicy).
CloudSettings cloud_settings(const config::Config& c, bool offline) {
  auto cloud = CloudSettings::from_environment(c.gcs_endpoint, static_cast<std::size_t>(c.backend_max_connections));
  cloud.ambient = offline ? AmbientCredentialsPolicy::everyone()
                          : AmbientCredentialsPolicy::only(c.ambient_credentials_namespaces);
  cloud.azure_endpoint = c.azure_endpoint;
  log_aws_identity(cloud.aws_chain);
  log_azure_identity(cloud.azure_chain);
  return cloud;
}

}  // namespace

namespace {

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// mkdir(2) for a missing parent of the state directory; EEXIST is fine (someone was quicker).
void make_parent(const std::filesystem::path& parent, const std::filesystem::path& state_dir) {
  if (::mkdir(parent.c_str(), 0755) == 0 || errno == EEXIST) return;
  throw StartupError("cannot create " + parent.string() + " for the state directory " + state_dir.string() + ": " +
                     std::strerror(errno) + " (set --state-dir to a writable directory)");
}

// The state directory exists and only its owner may enter it: created 0700 whatever the umask
// (mkdir with 0700, so it is never more open, then fchmod in case the umask took owner bits),
// missing parents 0755 (less under a stricter umask). An existing directory is left as it is, with
// a warning when group or others may enter it.
void prepare_state_directory(const std::filesystem::path& given) {
  std::filesystem::path dir = given.lexically_normal();
  if (!dir.has_filename() && dir.has_relative_path()) dir = dir.parent_path();  // "state/" -> "state"
  std::filesystem::path partial;
  for (const auto& part : dir.parent_path()) {
    partial /= part;
    if (struct stat st {}; ::stat(partial.c_str(), &st) != 0) make_parent(partial, dir);
  }
  if (::mkdir(dir.c_str(), 0700) == 0) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || ::fchmod(fd, 0700) != 0)
      spdlog::warn("cannot set the mode of the new state directory {} to 0700: {}", dir.string(), std::strerror(errno));
    if (fd >= 0) ::close(fd);
    return;
  }
  if (errno != EEXIST)
    throw StartupError("cannot create the state directory " + dir.string() + ": " + std::strerror(errno) +
                       " (set --state-dir to a writable directory)");
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    throw StartupError("the state directory " + dir.string() + " is not a directory: remove it or set --state-dir");
  if ((st.st_mode & 077) != 0)
    spdlog::warn("the state directory {} has mode {}: group or others may enter it (the database and fingerprint.key "
                 "are 0600, but names and sizes show); run chmod 700 {}",
                 dir.string(), octal_mode(st.st_mode), dir.string());
}

}  // namespace

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StateDirLock::StateDirLock(const std::filesystem::path& state_dir) {
  prepare_state_directory(state_dir);
  auto file = state_dir / "stowage.lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd_ < 0)
    throw StartupError("cannot open " + file.string() + ": " + std::strerror(errno) +
                       " (set --state-dir to a writable directory)");
  if (struct stat st {}; ::fstat(fd_, &st) == 0 && (st.st_mode & 07777) != 0600) ::fchmod(fd_, 0600);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    throw StartupError("another stowage process is using the state directory " + state_dir.string() +
                       ": stop it first, or give this one its own --state-dir");
  }
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) ::close(fd_);
}


namespace {

// The stop's time limits: after the grace period the reconciles still in flight are cancelled and
// get kCancelWait to end; the store then gets kDurableWait to confirm its last commit on the
// reactor, and after the reactor the rest of the time up to kStopSlack past the grace period
// (less kExitMargin) to flush; past it, what is not committed is abandoned (replayed at the next
// start). The watchdog ends the process at grace + kStopSlack whatever still hangs.
constexpr std::chrono::milliseconds kCancelWait{300}, kDurableWait{700}, kStopSlack{2000}, kExitMargin{400};

}  // namespace

struct Runtime::Parts {
  Parts(const config::Config& c, std::optional<OfflineSource> offline_source,
        std::optional<KubernetesSource> kube_source, const StoreOpener& open)
      : pool(static_cast<std::size_t>(c.local_io_threads)),
        lock(c.state_dir),
        reaper(reap_orphans(io)),
        store(open_store(c, io, open)),
        fingerprinter(load_fingerprinter(c)),
        queue(store.get(), wall_now_ms),
        facts(store.get(), store->load_facts()),
        http(io.get_executor(), http_options(c)),
        backends(pool, local_settings(c, pool_stop), http, cloud_settings(c, offline_source.has_value())),
        offline(offline_source ? std::make_unique<OfflineWorld>(store.get(), store->load_objects(),
                                                                std::move(offline_source->source_id), queue,
                                                                offline_source->deletions,
                                                                LocationSettings{backends.local().root, false})
                               : nullptr),
        api(kube_source ? make_api_client(c, http, std::move(kube_source->client), metrics) : nullptr),
        kube(kube_source ? std::make_unique<KubeWorld>(io.get_executor(), *api, queue, store.get(),
                                                       std::move(kube_source->options))
                         : nullptr),
        reconciler(target(), backends, facts, fingerprinter,
                   ReconcilerOptions{c.operator_version, &metrics, c.revalidate_period}),
        controller(io.get_executor(), queue, reconciler,
                   ControllerOptions{c.workers, c.retry_base, c.retry_cap, c.permanent_retry, c.max_interrupted},
                   &metrics),
        lag(io.get_executor()),
        max_pending_bytes(c.store_max_pending_bytes),
        grace(c.shutdown_grace),
        metrics_address(c.metrics_bind_address),
        health_address(c.health_bind_address) {}

  ReconcileTarget& target() {
    if (offline) return *offline;
    return *kube;
  }

  boost::asio::io_context io{1};
  boost::asio::thread_pool pool;
  // Set by cancel_work(): long work on the pool (local wipes) checks it between entries and ends early.
  std::shared_ptr<std::atomic<bool>> pool_stop = std::make_shared<std::atomic<bool>>(false);
  metrics::Registry registry;
  Metrics metrics{registry};
  // Builds the /metrics text off the reactor. One thread of its own, not the I/O pool: every thread
  // that renders keeps a malloc arena the size of the text (megabytes at 10,000 storages), and the
  // pool's threads would each keep one. Declared after the registry: stopped and joined before it goes.
  boost::asio::thread_pool metrics_render{1};
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

  std::uint64_t max_pending_bytes;
  std::chrono::milliseconds grace;
  std::string metrics_address, health_address;
};

struct Runtime::Running {
  Running(boost::asio::io_context& io, RunHooks h)
      : hooks(std::move(h)), gauges(io), signals(io, SIGINT, SIGTERM), grace(io), durable(io) {}

  RunHooks hooks;
  std::unique_ptr<HttpServer> metrics_server, probe_server;
  boost::asio::steady_timer gauges;
  boost::asio::signal_set signals;
  boost::asio::steady_timer grace, durable;
  std::optional<std::chrono::steady_clock::time_point> exit_deadline;  // set when the stop begins
  std::optional<Metrics::SweepCursor> gauge_sweep;  // where the per-storage series' sweep goes on
  bool stopping = false, finishing = false;
  int exit_code = 0;
};

// A thread that ends the process at `deadline` unless disarmed (by its destructor) first.
class Runtime::Watchdog {
 public:
  Watchdog(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds grace)
      : thread_([this, deadline, grace] { watch(deadline, grace); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(m_);
      disarmed_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  void watch(std::chrono::steady_clock::time_point deadline, std::chrono::milliseconds grace) {
    std::unique_lock lock(m_);
    if (cv_.wait_until(lock, deadline, [this] { return disarmed_; })) return;
    spdlog::error("the stop has taken longer than shutdown.grace-period ({} ms) + {} ms: exiting now; unfinished "
                  "work is replayed at the next start",
                  grace.count(), kStopSlack.count());
    spdlog::default_logger()->flush();
    ::_exit(1);
  }

  std::mutex m_;
  std::condition_variable cv_;
  bool disarmed_ = false;
  std::thread thread_;  // last: starts once the rest is ready
};

Runtime::Runtime(const config::Config& c, OfflineSource source, StoreOpener open_store)
    : Runtime(c, std::move(source), std::nullopt, std::move(open_store)) {}

Runtime::Runtime(const config::Config& c, KubernetesSource source, StoreOpener open_store)
    : Runtime(c, std::nullopt, std::move(source), std::move(open_store)) {}

Runtime::Runtime(const config::Config& c, std::optional<OfflineSource> offline_source,
                 std::optional<KubernetesSource> kube_source, StoreOpener open_store)
    : parts_(std::make_unique<Parts>(c, std::move(offline_source), std::move(kube_source), open_store)) {
  parts_->controller.set_claim_gate([this] { return store_backlog(); });
}

Runtime::~Runtime() {
  running_.reset();
  auto& p = *parts_;
  p.controller.stop();
  if (p.kube) p.kube->stop();
  p.lag.stop();
  p.pool_stop->store(true);  // the reactor has stopped: nothing awaits the pool's results any more
  p.pool.join();
  // Bounded: run() has flushed (or abandoned) already; elsewhere a failing disk must not hang the exit.
  if (!p.store->flush_within(std::chrono::seconds(1))) p.store->abandon();
}

boost::asio::io_context& Runtime::io() { return parts_->io; }
boost::asio::thread_pool& Runtime::pool() { return parts_->pool; }
persistence::StateStore& Runtime::store() { return *parts_->store; }
Controller& Runtime::controller() { return parts_->controller; }
LagMonitor& Runtime::lag() { return parts_->lag; }
Metrics& Runtime::metrics() { return parts_->metrics; }
http::Client& Runtime::http() { return parts_->http; }
OfflineWorld& Runtime::world() { return *parts_->offline; }
KubeWorld& Runtime::kube() { return *parts_->kube; }
kube::ApiClient& Runtime::api() { return *parts_->api; }

void Runtime::cancel_work() {
  parts_->controller.cancel_in_flight();
  parts_->pool_stop->store(true);
}

std::optional<std::string> Runtime::store_backlog() const {
  const auto& p = *parts_;
  const std::uint64_t behind = p.store->uncommitted_bytes();
  if (behind <= p.max_pending_bytes) return std::nullopt;
  return "the state store " + p.store->path().string() + " is " + std::to_string(behind) +
         " bytes behind (store.max-pending-bytes is " + std::to_string(p.max_pending_bytes) +
         "): its commits are failing or slow (a full or failing disk?); see the store's error log";
}

// No new work is claimed while the store is behind, whatever the source says.
std::optional<std::string> Runtime::readiness() const {
  if (auto behind = store_backlog()) return "not taking new work: " + *behind;
  if (!running_) return std::string("not running");
  if (running_->hooks.readiness) return running_->hooks.readiness();
  return std::nullopt;
}

int Runtime::run(RunHooks hooks) {
  auto& p = *parts_;
  running_ = std::make_unique<Running>(p.io, std::move(hooks));
  auto& r = *running_;
  restore_queue();
  if (!start_listeners()) {
    running_.reset();
    return 1;
  }
  p.lag.start();
  refresh_gauges();
  r.signals.async_wait([this](boost::system::error_code ec, int signal) {
    if (!ec) on_signal(signal);
  });
  common::Liveness::process().on_first_end(p.io.get_executor(), [this](const common::LoopEnd& first) {
    running_->exit_code = 1;
    if (running_->stopping) return;
    spdlog::info("{} stopped: finishing {} reconciles in flight (up to {} ms), then exiting with code 1 so that "
                 "the process is restarted",
                 first.loop, parts_->controller.in_flight(), parts_->grace.count());
    begin_stop();
  });
  if (r.hooks.start_source) r.hooks.start_source();
  if (r.hooks.stop_signals_handled) r.hooks.stop_signals_handled();
  p.io.run();
  common::Liveness::process().on_first_end(p.io.get_executor(), nullptr);  // its captures end here
  if (!flush_state()) r.exit_code = 1;
  spdlog::info("stopped; longest reactor stall {} ms", p.lag.longest().count() / 1000.0);
  const int exit_code = r.exit_code;
  running_.reset();
  return exit_code;
}

void Runtime::request_stop() {
  if (!running_ || running_->stopping) return;
  spdlog::info("stop requested: finishing {} reconciles in flight (up to {} ms), then stopping",
               parts_->controller.in_flight(), parts_->grace.count());
  begin_stop();
}

void Runtime::stop_now() {
  if (!running_) return;
  running_->exit_code = 1;
  parts_->controller.stop();
  if (running_->hooks.stop_source) running_->hooks.stop_source();
  parts_->store->when_durable([this] { parts_->io.stop(); });
}

void Runtime::restore_queue() {
  auto& p = *parts_;
  p.controller.restore(p.store->load_queue());
  if (p.queue.size() > 0) spdlog::info("replaying {} work items left from the previous run", p.queue.size());
}

// Starts the /metrics and /healthz,/readyz listeners the configuration asks for; false (after
// logging why) when one cannot listen.
bool Runtime::start_listeners() {
  auto& p = *parts_;
  auto listen = [&](std::unique_ptr<HttpServer>& server, std::string_view flag, const std::string& address) {
    auto parsed = parse_bind_address(address, flag);
    if (!parsed.ok()) {
      spdlog::error("{}", parsed.error());
      return false;
    }
    if (!parsed.value()) return true;  // "0": off
    server = std::make_unique<HttpServer>(p.io.get_executor(), std::string(flag));
    if (flag == kMetricsBindAddressFlag)
      serve_metrics(*server, p.registry, p.metrics_render.get_executor());
    else
      serve_probes(*server, [this] { return readiness(); });
    auto started = server->start(address);
    if (!started.ok()) {
      spdlog::error("{}", started.error());
      return false;
    }
    spdlog::info("serving {} on port {} ({})", flag == kMetricsBindAddressFlag ? "/metrics" : "/healthz and /readyz",
                 server->port(), flag);
    return true;
  };
  return listen(running_->metrics_server, kMetricsBindAddressFlag, p.metrics_address) &&
         listen(running_->probe_server, kHealthProbeBindAddressFlag, p.health_address);
}

// Gauges read from the engine's state once a second.
void Runtime::refresh_gauges() {
  auto& p = *parts_;
  auto& r = *running_;
  p.metrics.event_loop_longest_stall_seconds.set(std::chrono::duration<double>(p.lag.longest()).count());
  p.metrics.event_loop_lag_seconds.set(std::chrono::duration<double>(p.lag.percentile(99)).count());
  p.metrics.workqueue_depth.set({"backupstorage"}, static_cast<double>(p.queue.due()));
  if (r.hooks.cache) {
    double ready = 0, not_ready = 0;
    for (const auto& [_, s] : r.hooks.cache().storages()) (s.status.phase == "Ready" ? ready : not_ready) += 1;
    p.metrics.backupstorages.set({"Ready"}, ready);
    p.metrics.backupstorages.set({"NotReady"}, not_ready);
    r.gauge_sweep.reset();
    sweep_storage_gauges();
    return;
  }
  r.gauges.expires_after(kGaugePeriod);
  r.gauges.async_wait([this](boost::system::error_code ec) {
    if (!ec) refresh_gauges();
  });
}

// The per-storage series, a slice of at most about kGaugeSlice per reactor turn (10,000 storages
// take tens of milliseconds in one go); the next refresh is due kGaugePeriod after the sweep ends.
void Runtime::sweep_storage_gauges() {
  auto& p = *parts_;
  auto& r = *running_;
  auto until = std::chrono::steady_clock::now() + kGaugeSlice;
  r.gauge_sweep = p.metrics.sweep_storages(r.hooks.cache(), p.facts, r.gauge_sweep,
                                           [until] { return std::chrono::steady_clock::now() >= until; });
  bool more = r.gauge_sweep.has_value();
  r.gauges.expires_after(more ? std::chrono::steady_clock::duration::zero() : kGaugePeriod);
  r.gauges.async_wait([this, more](boost::system::error_code ec) {
    if (ec) return;
    if (more)
      sweep_storage_gauges();
    else
      refresh_gauges();
  });
}

void Runtime::on_signal(int signal) {
  auto& r = *running_;
  if (r.stopping) {
    spdlog::warn("second signal: stopping now; unfinished work is replayed at the next start");
    parts_->io.stop();
    return;
  }
  spdlog::info("signal {}: finishing {} reconciles in flight (up to {} ms), then stopping", signal,
               parts_->controller.in_flight(), parts_->grace.count());
  r.signals.async_wait([this](boost::system::error_code ec, int next) {
    if (!ec) on_signal(next);
  });
  begin_stop();
}

// A signal and a loop that died (the liveness policy, both modes) stop alike: the source stops,
// the reconciles in flight get the grace period, and what is left is replayed at the next start.
void Runtime::begin_stop() {
  auto& p = *parts_;
  auto& r = *running_;
  r.stopping = true;
  r.exit_deadline = std::chrono::steady_clock::now() + p.grace + kStopSlack - std::chrono::milliseconds(100);
  watchdog_ = std::make_unique<Watchdog>(*r.exit_deadline, p.grace);
  if (r.hooks.stop_source) r.hooks.stop_source();
  p.controller.stop();
  if (p.controller.idle()) return finish();
  p.controller.on_idle([this] { finish(); });
  r.grace.expires_after(p.grace);
  r.grace.async_wait([this](boost::system::error_code e) {
    if (e || !running_) return;
    spdlog::warn("grace period over with {} reconciles in flight; they are replayed at the next start",
                 parts_->controller.in_flight());
    cancel_work();  // each ends at its next await; the last one to end calls finish (on_idle)
    running_->grace.expires_after(kCancelWait);
    running_->grace.async_wait([this](boost::system::error_code cancelled) {
      if (!cancelled) finish();
    });
  });
}

void Runtime::finish() {
  if (!running_ || running_->finishing) return;
  auto& r = *running_;
  r.finishing = true;
  parts_->lag.stop();
  r.gauges.cancel();
  if (r.metrics_server) r.metrics_server->stop();
  if (r.probe_server) r.probe_server->stop();
  if (r.hooks.stop_listeners) r.hooks.stop_listeners();
  auto last = [this] {
    parts_->store->when_durable([this] { parts_->io.stop(); });
    running_->durable.expires_after(kDurableWait);  // a failing disk must not hold the reactor
    running_->durable.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      spdlog::warn("the state store has not confirmed its last commit within {} ms; stopping anyway",
                   kDurableWait.count());
      parts_->io.stop();
    });
  };
  if (r.hooks.before_exit)
    r.hooks.before_exit(last);
  else
    last();
}

// After the reactor: the store's last writes, up to the exit deadline; abandoned past it (false).
bool Runtime::flush_state() {
  auto& p = *parts_;
  auto limit = p.grace;
  if (const auto& deadline = running_->exit_deadline)
    limit = std::max(std::chrono::milliseconds(0),
                     std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - kExitMargin -
                                                                           std::chrono::steady_clock::now()));
  if (p.store->flush_within(limit)) return true;
  p.store->abandon();
  return false;
}

}  // namespace stowage::engine
