// `stowage run`: the long-running controller, on a manifest folder (offline mode) or against a
// Kubernetes API server (a kubeconfig, or in-cluster).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <malloc.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "engine/cloud_identities.hpp"
#include "engine/commands.hpp"
#include "engine/manifest_source.hpp"
#include "engine/probes.hpp"
#include "engine/runtime.hpp"
#include "engine/serving_certificate.hpp"
#include "engine/webhook.hpp"
#include "engine/webhook_certs.hpp"
#include "kube/admission_review.hpp"
#include "kube/api_client.hpp"
#include "kube/leader_elector.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;

namespace {

// SIGINT/SIGTERM from the start until Runtime::run() has its handlers. They are blocked (threads started
// meanwhile inherit the mask and never take them), and a thread of this class's own waits for them
// on a signalfd: one that comes during start-up (a kubeconfig on a hung mount, a large kubeconfig
// being parsed, a large state store being checked) ends the process at once, with exit code 0 as
// a normal stop. Nothing is half-written by that: nothing has been reconciled yet, the state store
// commits atomically (SQLite), and fingerprint.key is renamed into place complete. As PID 1, whose
// signals without a handler the kernel drops, a blocked signal is still queued, so none is lost.
// release() hands over to run(): a signal the thread has not taken stays pending and is delivered
// to run()'s handler. Without signalfd (a sandbox refusing it) signals are only held, as before.
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
      if (handed_over_) return;  // Runtime::run() takes any signal from here on
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

// The identities storages without a secretName could use, by name, so an operator sees at start
// which one the process will lend (where --ambient-credentials-namespaces allows).
void log_cloud_identities() { spdlog::info("{}", cloud_identities_line(cloud_identity_sources(ProcessView::real()))); }

int run_offline(const config::Config& config) {
  // One malloc arena for all threads (before any is started). The folder is parsed on the I/O pool,
  // which with its own arena keeps the high-water mark of the first scan (every parsed object and its
  // JSON at once) as holes the reactor's thread, which holds the objects from then on, cannot reuse:
  // 10,000 storages peaked at 94 MiB with per-thread arenas, 77 MiB with one. The threads other than
  // the reactor allocate little once the folder is read.
  ::mallopt(M_ARENA_MAX, 1);
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
  ManifestSourceOptions options{dir, config.manifests_debounce, config.manifests_poll_interval, false,
                                config.manifests_delete_grace, {}};
  options.budgets = budgets_from(config);
  // Storages recorded from this folder: absent from it at start, they are deleted only after the
  // grace, like any other removal. Those whose deletion had begun are OfflineWorld's to finish.
  for (const auto& record : rt.store().load_objects()) {
    if (record.source == dir.string() && !record.deleting)
      options.known_storages.push_back({record.namespace_, record.name});
  }
  ManifestSource source(rt.io().get_executor(), rt.pool(), std::move(options), rt.world());
  spdlog::info("stowage {} watching {} (state in {})", config.operator_version, dir.string(),
               rt.store().path().string());
  log_cloud_identities();
  bool loaded = false;
  RunHooks hooks;
  hooks.start_source = [&] {
    source.start([&] {
      spdlog::info("manifests loaded: {} BackupStorages; reconciling", rt.world().cache().storages().size());
      loaded = true;
      rt.controller().start();
    });
  };
  hooks.stop_source = [&] { source.stop(); };
  hooks.readiness = [&]() -> std::optional<std::string> {
    if (loaded) return std::nullopt;
    return std::string("the manifest folder has not been read yet");
  };
  hooks.cache = [&]() -> const ObjectCache& { return rt.world().cache(); };
  hooks.stop_signals_handled = [&] { held.release(); };
  return rt.run(std::move(hooks));
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
  webhook.certificate = std::make_unique<ServingCertificate>(rt.io().get_executor(), rt.pool().get_executor(),
                                                             config.webhook_cert_dir);
  (void)webhook.certificate->load();  // a failure is logged; the watch picks the files up once they are there
  webhook.certificate->start();
  HttpServerOptions options;
  options.max_body_bytes = kube::kMaxAdmissionReviewBytes;
  options.max_connections = 32;
  options.tls = [certificate = webhook.certificate.get()] { return certificate->current(); };
  webhook.server = std::make_unique<HttpServer>(rt.io().get_executor(), std::string(kWebhookBindAddressFlag), options);
  serve_webhooks(*webhook.server, [&rt]() -> std::optional<AdmissionCaches> {
    if (!rt.kube().synced()) return std::nullopt;
    return AdmissionCaches{rt.kube().cache(), rt.kube().locations(), rt.kube().namespaces()};
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
  std::string scope = "all namespaces";
  if (!config.kube_namespaces.empty()) {
    scope = config.kube_namespaces.size() == 1 ? "namespace " : "namespaces ";
    for (std::size_t i = 0; i < config.kube_namespaces.size(); ++i) scope += (i ? ", " : "") + config.kube_namespaces[i];
  }
  spdlog::info("stowage {} watching BackupStorages in {} on {} (state in {})", config.operator_version, scope,
               client.value().describe(), fs::absolute(config.state_dir).string());
  log_ambient_credentials(config);
  log_cloud_identities();
  std::string lease_namespace =
      config.leader_election_namespace.empty() ? client.value().namespace_ : config.leader_election_namespace;
  KubeWorldOptions options{config.kube_namespaces, std::random_device{}(), client.value().server.to_string(),
                           std::nullopt};
  options.local_root = config.local_root;
  options.failed_cleanup_retry = config.permanent_retry;
  options.watch_idle_timeout = config.kube_watch_idle_timeout;
  if (*volume_mode == "job") {
    VolumeJobSettings jobs;
    jobs.image = config.volume_job_image;
    jobs.operator_version = config.operator_version;
    options.volume_jobs = jobs;
  }
  const std::string context_namespace = client.value().namespace_;
  Runtime rt(config, KubernetesSource{std::move(client.value()), std::move(options)});
  // --webhook-cert-self-signed: every replica, leading or not, keeps its webhook's certificates.
  auto webhook_certs = start_webhook_certs(config, rt.io().get_executor(), rt.api(), context_namespace);
  if (!webhook_certs.ok()) {
    spdlog::error("{}", webhook_certs.error());
    return 2;
  }

  // Reconciling starts once the caches are synced and, with --leader-elect, while this process leads.
  bool synced = false, leading = !config.leader_elect, shutting_down = false;
  auto maybe_start = [&] {
    if (synced && leading) rt.controller().start();
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
    rt.metrics().leader_election_master_status.set({lo.name}, 0);
    kube::LeaderCallbacks callbacks;
    callbacks.on_started_leading = [&, name = lo.name] {
      spdlog::info("leading (Lease {}/{}); reconciling", lease_namespace, name);
      rt.metrics().leader_election_master_status.set({name}, 1);
      leading = true;
      maybe_start();
    };
    callbacks.on_stopped_leading = [&, name = lo.name] {
      rt.metrics().leader_election_master_status.set({name}, 0);
      if (shutting_down) return;  // our own release at a clean stop
      // As controller-runtime: a leader that could not renew stops at once; a restart campaigns anew.
      spdlog::error("leadership of Lease {}/{} lost; stopping so that another replica takes over", lease_namespace,
                    name);
      leading = false;
      rt.stop_now();  // the source and the controller stop; the reactor once the store has committed
      elector->stop();
    };
    callbacks.on_new_leader = [](const std::string& identity) { spdlog::info("the leader is now {}", identity); };
    elector = std::make_unique<kube::LeaderElector>(rt.io().get_executor(), rt.api(), lo, std::move(callbacks));
    spdlog::info("leader election on Lease {}/{} as {}", lease_namespace, lo.name, elector->identity());
  }
  Webhook webhook;
  if (!start_webhook(rt, config, webhook)) return 1;

  RunHooks hooks;
  hooks.start_source = [&] {
    rt.kube().start([&] {
      spdlog::info("caches synced: {} BackupStorages; {}", rt.kube().cache().storages().size(),
                   leading ? "reconciling" : "standing by for the Lease");
      synced = true;
      maybe_start();
    });
    if (elector) elector->start();
  };
  hooks.stop_source = [&] { rt.kube().stop(); };
  hooks.readiness = [&]() -> std::optional<std::string> {
    if (auto why = webhook.problem(); !why.empty()) return why;
    if (rt.kube().synced()) return std::nullopt;  // a synced standby is ready too: it stands by correctly
    std::string why = rt.kube().problem();
    return "caches not synced" + (why.empty() ? std::string() : ": " + why);
  };
  hooks.cache = [&]() -> const ObjectCache& { return rt.kube().cache(); };
  hooks.stop_signals_handled = [&] { held.release(); };
  hooks.stop_listeners = [&] { webhook.stop(); };
  if (elector) {
    hooks.before_exit = [&](std::function<void()> done) {
      shutting_down = true;
      if (!elector->is_leader()) return done();
      auto release = elector->async_release();
      boost::asio::co_spawn(rt.io(), std::move(release),
                            [done](std::exception_ptr, Result<Ok, kube::ApiError> r) {
                              if (!r.ok()) spdlog::warn("releasing the Lease failed: {}", r.error().message);
                              else spdlog::info("Lease released");
                              done();
                            });
    };
  }
  return rt.run(std::move(hooks));
}

}  // namespace

int run_command(const config::Config& config) {
  if (!config.manifests.empty()) return run_offline(config);
  return run_kubernetes(config);
}

}  // namespace stowage::engine
