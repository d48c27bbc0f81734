// `stowage run`: the long-running controller, on a manifest folder (offline mode) or against a
// Kubernetes API server (a kubeconfig, or in-cluster).
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include <boost/asio/co_spawn.hpp>

#include "common/liveness.hpp"
#include "engine/commands.hpp"
#include "engine/manifest_source.hpp"
#include "engine/probes.hpp"
#include "engine/runtime.hpp"
#include "engine/serving_certificate.hpp"
#include "engine/webhook.hpp"
#include "kube/admission_review.hpp"
#include "kube/api_client.hpp"
#include "kube/leader_elector.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;

namespace {

// SIGINT/SIGTERM from the start until serve() has its handlers. They are blocked (threads started
// meanwhile inherit the mask and never take them), and a thread of this class's own waits for them
// on a signalfd: one that comes during start-up (a kubeconfig on a hung mount, a large kubeconfig
// being parsed, a large state store being checked) ends the process at once, with exit code 0 as
// a normal stop. Nothing is half-written by that: nothing has been reconciled yet, the state store
// commits atomically (SQLite), and fingerprint.key is renamed into place complete. As PID 1, whose
// signals without a handler the kernel drops, a blocked signal is still queued, so none is lost.
// release() hands over to serve(): a signal the thread has not taken stays pending and is delivered
// to serve()'s handler. Without signalfd (a sandbox refusing it) signals are only held, as before.
class HeldStopSignals {
 public:
  HeldStopSignals() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &previous_);
    signals_fd_ = ::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK);
    wake_fd_ = ::eventfd(0, EFD_CLOEXEC);
    if (signals_fd_ >= 0 && wake_fd_ >= 0)
      watcher_ = std::thread([this] { watch(); });
    else
      spdlog::debug("signals during start-up are held until it ends (no signalfd: {})", std::strerror(errno));
  }
  ~HeldStopSignals() { release(); }
  HeldStopSignals(const HeldStopSignals&) = delete;
  HeldStopSignals& operator=(const HeldStopSignals&) = delete;

  void release() {
    if (released_) return;
    released_ = true;
    if (watcher_.joinable()) {
      {
        std::lock_guard lock(m_);
        handed_over_ = true;
      }
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_fd_, &one, sizeof one);
      watcher_.join();
    }
    if (signals_fd_ >= 0) ::close(signals_fd_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);  // a signal that came meanwhile is delivered now
  }

 private:
  void watch() {
    pollfd fds[2] = {{signals_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
    for (;;) {
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      std::lock_guard lock(m_);
      if (handed_over_) return;  // serve() takes any signal from here on
      if ((fds[0].revents & POLLIN) == 0) continue;
      signalfd_siginfo info{};
      if (::read(signals_fd_, &info, sizeof info) != static_cast<ssize_t>(sizeof info)) continue;
      spdlog::info("signal {} during start-up: stopping (nothing has been reconciled yet; nothing to finish)",
                   info.ssi_signo);
      spdlog::default_logger()->flush();
      ::_exit(0);
    }
  }

  sigset_t previous_;
  bool released_ = false;
  int signals_fd_ = -1, wake_fd_ = -1;
  std::mutex m_;
  bool handed_over_ = false;
  std::thread watcher_;
};

// What serve() needs to know about the source besides stopping it.
struct ServeHooks {
  std::function<void()> stop_source;
  // nullopt when ready for /readyz, else why not.
  std::function<std::optional<std::string>()> readiness;
  // The storages known now (for the phase gauge).
  std::function<const ObjectCache&()> cache;
  // Runs last before the process stops (releasing a Lease); calls `done` when finished.
  std::function<void(std::function<void()> done)> before_exit;
  // Stops the listeners the source started itself (the admission webhook), with the others.
  std::function<void()> stop_listeners;
};

// /readyz fails while the state store's writer is store.max-pending-bytes behind (no new work is
// claimed then), whatever the source says.
ReadinessCheck unless_store_behind(Runtime& rt, ReadinessCheck source_ready) {
  return [&rt, source_ready = std::move(source_ready)]() -> std::optional<std::string> {
    if (auto behind = rt.store_backlog()) return "not taking new work: " + *behind;
    return source_ready();
  };
}

// Starts the /metrics and /healthz,/readyz listeners the configuration asks for; false (after
// logging why) when one cannot listen.
bool start_listeners(Runtime& rt, const config::Config& config, const ServeHooks& hooks,
                     std::unique_ptr<HttpServer>& metrics_server, std::unique_ptr<HttpServer>& probe_server) {
  auto listen = [&](std::unique_ptr<HttpServer>& server, std::string_view flag, const std::string& address) {
    auto parsed = parse_bind_address(address, flag);
    if (!parsed.ok()) {
      spdlog::error("{}", parsed.error());
      return false;
    }
    if (!parsed.value()) return true;  // "0": off
    server = std::make_unique<HttpServer>(rt.io.get_executor(), std::string(flag));
    if (flag == kMetricsBindAddressFlag)
      serve_metrics(*server, rt.registry);
    else
      serve_probes(*server, unless_store_behind(rt, hooks.readiness));
    auto started = server->start(address);
    if (!started.ok()) {
      spdlog::error("{}", started.error());
      return false;
    }
    spdlog::info("serving {} on port {} ({})", flag == kMetricsBindAddressFlag ? "/metrics" : "/healthz and /readyz",
                 server->port(), flag);
    return true;
  };
  return listen(metrics_server, kMetricsBindAddressFlag, config.metrics_bind_address) &&
         listen(probe_server, kHealthProbeBindAddressFlag, config.health_bind_address);
}

// The stop's time limits: after the grace period the reconciles still in flight are cancelled and
// get kCancelWait to end; the store then gets kDurableWait to confirm its last commit on the
// reactor, and after the reactor the rest of the time up to kStopSlack past the grace period
// (less kExitMargin) to flush; past it, what is not committed is abandoned (replayed at the next
// start). A watchdog thread ends the process at grace + kStopSlack whatever still hangs.
constexpr std::chrono::milliseconds kCancelWait{300}, kDurableWait{700}, kStopSlack{2000}, kExitMargin{400};

std::chrono::steady_clock::time_point arm_exit_deadline(std::chrono::milliseconds grace) {
  auto deadline = std::chrono::steady_clock::now() + grace + kStopSlack - std::chrono::milliseconds(100);
  std::thread([deadline, grace] {
    std::this_thread::sleep_until(deadline);
    spdlog::error("the stop has taken longer than shutdown.grace-period ({} ms) + {} ms: exiting now; unfinished "
                  "work is replayed at the next start",
                  grace.count(), kStopSlack.count());
    spdlog::default_logger()->flush();
    ::_exit(1);
  }).detach();
  return deadline;
}

// After the reactor: the store's last writes, up to the exit deadline; abandoned past it (false).
bool flush_state(Runtime& rt, std::optional<std::chrono::steady_clock::time_point> exit_deadline,
                 std::chrono::milliseconds grace) {
  auto limit = grace;
  if (exit_deadline)
    limit = std::max(std::chrono::milliseconds(0),
                     std::chrono::duration_cast<std::chrono::milliseconds>(*exit_deadline - kExitMargin -
                                                                           std::chrono::steady_clock::now()));
  if (rt.store->flush_within(limit)) return true;
  rt.store->abandon();
  return false;
}

// Runs the reactor until SIGINT/SIGTERM: then stops the source, lets the reconciles in flight
// finish (up to the grace period), makes the state store durable and returns. `exit_code` may be
// set meanwhile (leadership lost).
int serve(Runtime& rt, const config::Config& config, HeldStopSignals& held, const ServeHooks& hooks,
          int& exit_code) {
  std::unique_ptr<HttpServer> metrics_server, probe_server;
  if (!start_listeners(rt, config, hooks, metrics_server, probe_server)) return 1;
  rt.lag.start();

  // Gauges read from the engine's state once a second.
  boost::asio::steady_timer gauges(rt.io);
  std::function<void()> refresh = [&] {
    rt.metrics.event_loop_longest_stall_seconds.set(std::chrono::duration<double>(rt.lag.longest()).count());
    rt.metrics.event_loop_lag_seconds.set(std::chrono::duration<double>(rt.lag.percentile(99)).count());
    rt.metrics.workqueue_depth.set({"backupstorage"}, static_cast<double>(rt.queue.due()));
    double ready = 0, not_ready = 0;
    for (const auto& [_, s] : hooks.cache().storages()) (s.status.phase == "Ready" ? ready : not_ready) += 1;
    rt.metrics.backupstorages.set({"Ready"}, ready);
    rt.metrics.backupstorages.set({"NotReady"}, not_ready);
    rt.metrics.storages_observed(storage_samples(hooks.cache(), rt.facts));
    gauges.expires_after(std::chrono::seconds(1));
    gauges.async_wait([&](boost::system::error_code ec) {
      if (!ec) refresh();
    });
  };
  refresh();

  boost::asio::signal_set signals(rt.io, SIGINT, SIGTERM);
  boost::asio::steady_timer grace(rt.io), durable(rt.io);
  std::optional<std::chrono::steady_clock::time_point> exit_deadline;  // set when the stop begins
  bool stopping = false, finishing = false;
  auto finish = [&] {
    if (finishing) return;
    finishing = true;
    rt.lag.stop();
    gauges.cancel();
    if (metrics_server) metrics_server->stop();
    if (probe_server) probe_server->stop();
    if (hooks.stop_listeners) hooks.stop_listeners();
    auto last = [&] {
      rt.store->when_durable([&] { rt.io.stop(); });
      durable.expires_after(kDurableWait);  // a failing disk must not hold the reactor
      durable.async_wait([&](boost::system::error_code ec) {
        if (ec) return;
        spdlog::warn("the state store has not confirmed its last commit within {} ms; stopping anyway",
                     kDurableWait.count());
        rt.io.stop();
      });
    };
    if (hooks.before_exit)
      hooks.before_exit(last);
    else
      last();
  };
  // A signal and a loop that died (the liveness policy, both modes) stop alike: the source stops,
  // the reconciles in flight get the grace period, and what is left is replayed at the next start.
  auto begin_stop = [&] {
    stopping = true;
    exit_deadline = arm_exit_deadline(config.shutdown_grace);
    hooks.stop_source();
    rt.controller.stop();
    if (rt.controller.idle()) return finish();
    rt.controller.on_idle(finish);
    grace.expires_after(config.shutdown_grace);
    grace.async_wait([&](boost::system::error_code e) {
      if (e) return;
      spdlog::warn("grace period over with {} reconciles in flight; they are replayed at the next start",
                   rt.controller.in_flight());
      rt.cancel_work();  // each ends at its next await; the last one to end calls finish (on_idle)
      grace.expires_after(kCancelWait);
      grace.async_wait([&](boost::system::error_code cancelled) {
        if (!cancelled) finish();
      });
    });
  };
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (stopping) {
      spdlog::warn("second signal: stopping now; unfinished work is replayed at the next start");
      rt.io.stop();
      return;
    }
    spdlog::info("signal {}: finishing {} reconciles in flight (up to {} ms), then stopping", sig,
                 rt.controller.in_flight(), config.shutdown_grace.count());
    signals.async_wait(on_signal);
    begin_stop();
  };
  common::Liveness::process().on_first_end(rt.io.get_executor(), [&](const common::LoopEnd& first) {
    exit_code = 1;
    if (stopping) return;
    spdlog::info("{} stopped: finishing {} reconciles in flight (up to {} ms), then exiting with code 1 so that "
                 "the process is restarted",
                 first.loop, rt.controller.in_flight(), config.shutdown_grace.count());
    begin_stop();
  });
  signals.async_wait(on_signal);
  held.release();
  rt.io.run();
  common::Liveness::process().on_first_end(rt.io.get_executor(), nullptr);  // its captures end here
  if (!flush_state(rt, exit_deadline, config.shutdown_grace)) exit_code = 1;
  spdlog::info("stopped; longest reactor stall {} ms", rt.lag.longest().count() / 1000.0);
  return exit_code;
}

void restore_queue(Runtime& rt) {
  rt.controller.restore(rt.store->load_queue());
  if (rt.queue.size() > 0) spdlog::info("replaying {} work items left from the previous run", rt.queue.size());
}

int run_offline(const config::Config& config) {
  HeldStopSignals held;
  if (config.webhook_bind_address != "0" && !config.webhook_bind_address.empty())
    spdlog::warn("{} is ignored in the offline mode: the admission webhook is for an API server",
                 kWebhookBindAddressFlag);
  fs::path dir = fs::absolute(config.manifests).lexically_normal();
  if (std::error_code ec; !fs::is_directory(dir, ec)) {
    spdlog::error("manifest folder {} does not exist or is not a directory: create it or fix --manifests",
                  dir.string());
    return 2;
  }
  Runtime rt(config, OfflineSource{dir.string(), /*deletions=*/true});
  restore_queue(rt);
  ManifestSourceOptions options{dir, config.manifests_debounce, config.manifests_poll_interval, false,
                                config.manifests_delete_grace, {}};
  options.budgets = budgets_from(config);
  // Storages recorded from this folder: absent from it at start, they are deleted only after the
  // grace, like any other removal. Those whose deletion had begun are OfflineWorld's to finish.
  for (const auto& record : rt.store->load_objects()) {
    if (record.source == dir.string() && !record.deleting)
      options.known_storages.push_back({record.namespace_, record.name});
  }
  ManifestSource source(rt.io.get_executor(), rt.pool, std::move(options), rt.world());
  spdlog::info("stowage {} watching {} (state in {})", config.operator_version, dir.string(),
               rt.store->path().string());
  bool loaded = false;
  source.start([&] {
    spdlog::info("manifests loaded: {} BackupStorages; reconciling", rt.world().cache().storages().size());
    loaded = true;
    rt.controller.start();
  });
  ServeHooks hooks;
  hooks.stop_source = [&] { source.stop(); };
  hooks.readiness = [&]() -> std::optional<std::string> {
    if (loaded) return std::nullopt;
    return std::string("the manifest folder has not been read yet");
  };
  hooks.cache = [&]() -> const ObjectCache& { return rt.world().cache(); };
  int exit_code = 0;
  return serve(rt, config, held, hooks, exit_code);
}

// Against an API server anyone who may create a BackupStorage names its local path. Written directly,
// that path is in this process's own filesystem: only allowed beneath a local.root of the admin's
// choosing, never `/`. Returns the mode to use, or nothing (after saying why) when it is refused.
std::optional<std::string> kubernetes_volume_mode(const config::Config& config) {
  if (config.local_volume_mode != "direct") return std::string("job");
  std::error_code ec;
  fs::path root = fs::weakly_canonical(fs::absolute(config.local_root, ec), ec);
  if (ec || root == root.root_path()) {
    spdlog::error("local.volume-mode is direct, but local.root is {}: against an API server, anyone who can create a "
                  "BackupStorage could then create, read and wipe paths anywhere in this process's filesystem. Give "
                  "--local-root a directory of its own for the volumes (not /), or use --local-volume-mode job (the "
                  "default)",
                  config.local_root.string());
    return std::nullopt;
  }
  return std::string("direct");
}

// The admission webhook's listener and certificate, when --webhook-bind-address asks for them.
struct Webhook {
  std::unique_ptr<ServingCertificate> certificate;
  std::unique_ptr<HttpServer> server;

  // Why /readyz must fail ("" when it need not): no certificate has loaded yet.
  std::string problem() const {
    if (!certificate || certificate->current()) return "";
    return "the admission webhook has no serving certificate yet: " + certificate->problem();
  }
  void stop() {
    if (server) server->stop();
    if (certificate) certificate->stop();
  }
};

// Starts the webhook when the configuration asks for it; false (after logging why) when it cannot listen.
bool start_webhook(Runtime& rt, const config::Config& config, Webhook& webhook) {
  auto parsed = parse_bind_address(config.webhook_bind_address, kWebhookBindAddressFlag);
  if (!parsed.ok()) {
    spdlog::error("{}", parsed.error());
    return false;
  }
  if (!parsed.value()) return true;  // "0": off
  webhook.certificate = std::make_unique<ServingCertificate>(rt.io.get_executor(), rt.pool.get_executor(),
                                                             config.webhook_cert_dir);
  (void)webhook.certificate->load();  // a failure is logged; the watch picks the files up once they are there
  webhook.certificate->start();
  HttpServerOptions options;
  options.max_body_bytes = kube::kMaxAdmissionReviewBytes;
  options.max_connections = 32;
  options.tls = [certificate = webhook.certificate.get()] { return certificate->current(); };
  webhook.server = std::make_unique<HttpServer>(rt.io.get_executor(), std::string(kWebhookBindAddressFlag), options);
  serve_webhooks(*webhook.server, [&rt]() -> std::optional<AdmissionCaches> {
    if (!rt.kube->synced()) return std::nullopt;
    return AdmissionCaches{rt.kube->cache(), rt.kube->locations()};
  });
  auto started = webhook.server->start(config.webhook_bind_address);
  if (!started.ok()) {
    spdlog::error("{}", started.error());
    return false;
  }
  spdlog::info("serving the BackupStorage admission webhook over HTTPS on port {} ({}), certificate from {}",
               webhook.server->port(), kWebhookBindAddressFlag, config.webhook_cert_dir.string());
  return true;
}

// Against an API server the process's own cloud identity is lent only to the namespaces named (the
// Runtime applies the policy); say which, so that a refusal is never a surprise.
void log_ambient_credentials(const config::Config& config) {
  const auto& names = config.ambient_credentials_namespaces;
  std::string who;
  for (const auto& name : names) who += (who.empty() ? "" : ", ") + name;
  if (names.empty())
    spdlog::info("storages without secretName may not use this process's own cloud credentials in any namespace "
                 "(--ambient-credentials-namespaces names those that may)");
  else if (who == "*")
    spdlog::info("storages without secretName in every namespace may use this process's own cloud credentials "
                 "(--ambient-credentials-namespaces *)");
  else
    spdlog::info("storages without secretName may use this process's own cloud credentials in namespaces {} only "
                 "(--ambient-credentials-namespaces)",
                 who);
}

int run_kubernetes(const config::Config& config) {
  HeldStopSignals held;
  auto volume_mode = kubernetes_volume_mode(config);
  if (!volume_mode) return 2;
  kube::LoadOptions load;
  load.kubeconfig = config.kubeconfig;
  load.context = config.kube_context;
  load.budgets = {config.kube_max_kubeconfig_size, config.yaml_max_alias_expansion};
  auto client = kube::load_client_config(load, kube::process_environment());
  if (!client.ok()) {
    spdlog::error("no Kubernetes API server to use: {}. Give --kubeconfig FILE, set KUBECONFIG, or run in a "
                  "cluster; or give --manifests DIR for the offline mode",
                  client.error().to_string());
    return 2;
  }
  for (const auto& warning : client.value().warnings) spdlog::warn("{}", warning);
  if (const auto& proxy = client.value().proxy_url; !proxy.empty()) {
    if (auto parsed = http::Proxy::parse(proxy); !parsed.ok()) {
      spdlog::error("the kubeconfig's proxy-url cannot be used ({}): {}", client.value().source, parsed.error());
      return 2;
    }
  }
  std::string scope = config.kube_namespace.empty() ? "all namespaces" : "namespace " + config.kube_namespace;
  spdlog::info("stowage {} watching BackupStorages in {} on {} (state in {})", config.operator_version, scope,
               client.value().describe(), fs::absolute(config.state_dir).string());
  log_ambient_credentials(config);
  std::string lease_namespace =
      config.leader_election_namespace.empty() ? client.value().namespace_ : config.leader_election_namespace;
  KubeWorldOptions options{config.kube_namespace, std::random_device{}(),
                           client.value().server.to_string() + " namespace=" + config.kube_namespace, std::nullopt};
  options.local_root = config.local_root;
  options.failed_cleanup_retry = config.permanent_retry;
  options.watch_idle_timeout = config.kube_watch_idle_timeout;
  if (*volume_mode == "job") {
    VolumeJobSettings jobs;
    jobs.image = config.volume_job_image;
    jobs.operator_version = config.operator_version;
    options.volume_jobs = jobs;
  }
  Runtime rt(config, KubernetesSource{std::move(client.value()), std::move(options)});
  restore_queue(rt);

  // Reconciling starts once the caches are synced and, with --leader-elect, while this process leads.
  bool synced = false, leading = !config.leader_elect, shutting_down = false;
  int exit_code = 0;
  auto maybe_start = [&] {
    if (synced && leading) rt.controller.start();
  };
  std::unique_ptr<kube::LeaderElector> elector;
  if (config.leader_elect) {
    kube::LeaderElectionOptions lo;
    lo.namespace_ = lease_namespace;
    lo.name = config.leader_election_id;
    lo.lease_duration = config.leader_lease_duration;
    lo.renew_deadline = config.leader_renew_deadline;
    lo.retry_period = config.leader_retry_period;
    if (auto bad = kube::validate(lo)) {
      spdlog::error("leader election settings: {}", *bad);
      return 2;
    }
    rt.metrics.leader_election_master_status.set({lo.name}, 0);
    kube::LeaderCallbacks callbacks;
    callbacks.on_started_leading = [&, name = lo.name] {
      spdlog::info("leading (Lease {}/{}); reconciling", lease_namespace, name);
      rt.metrics.leader_election_master_status.set({name}, 1);
      leading = true;
      maybe_start();
    };
    callbacks.on_stopped_leading = [&, name = lo.name] {
      rt.metrics.leader_election_master_status.set({name}, 0);
      if (shutting_down) return;  // our own release at a clean stop
      // As controller-runtime: a leader that could not renew stops at once; a restart campaigns anew.
      spdlog::error("leadership of Lease {}/{} lost; stopping so that another replica takes over", lease_namespace,
                    name);
      leading = false;
      exit_code = 1;
      rt.controller.stop();
      rt.kube->stop();
      elector->stop();
      rt.store->when_durable([&] { rt.io.stop(); });
    };
    callbacks.on_new_leader = [](const std::string& identity) { spdlog::info("the leader is now {}", identity); };
    elector = std::make_unique<kube::LeaderElector>(rt.io.get_executor(), *rt.api, lo, std::move(callbacks));
    spdlog::info("leader election on Lease {}/{} as {}", lease_namespace, lo.name, elector->identity());
  }
  rt.kube->start([&] {
    spdlog::info("caches synced: {} BackupStorages; {}", rt.kube->cache().storages().size(),
                 leading ? "reconciling" : "standing by for the Lease");
    synced = true;
    maybe_start();
  });
  if (elector) elector->start();

  Webhook webhook;
  if (!start_webhook(rt, config, webhook)) return 1;

  ServeHooks hooks;
  hooks.stop_source = [&] { rt.kube->stop(); };
  hooks.readiness = [&]() -> std::optional<std::string> {
    if (auto why = webhook.problem(); !why.empty()) return why;
    if (rt.kube->synced()) return std::nullopt;  // a synced standby is ready too: it stands by correctly
    std::string why = rt.kube->problem();
    return "caches not synced" + (why.empty() ? std::string() : ": " + why);
  };
  hooks.stop_listeners = [&] { webhook.stop(); };
  hooks.cache = [&]() -> const ObjectCache& { return rt.kube->cache(); };
  if (elector) {
    hooks.before_exit = [&](std::function<void()> done) {
      shutting_down = true;
      if (!elector->is_leader()) return done();
      auto release = elector->async_release();
      boost::asio::co_spawn(rt.io, std::move(release),
                            [done](std::exception_ptr, Result<Ok, kube::ApiError> r) {
                              if (!r.ok()) spdlog::warn("releasing the Lease failed: {}", r.error().message);
                              else spdlog::info("Lease released");
                              done();
                            });
    };
  }
  return serve(rt, config, held, hooks, exit_code);
}

}  // namespace

int run_command(const config::Config& config) {
  if (!config.manifests.empty()) return run_offline(config);
  return run_kubernetes(config);
}

}  // namespace stowage::engine
