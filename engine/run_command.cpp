// `stowage run`: the long-running controller, on a manifest folder (offline mode) or against a
// Kubernetes API server (a kubeconfig, or in-cluster).
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <random>

#include "engine/commands.hpp"
#include "engine/manifest_source.hpp"
#include "engine/runtime.hpp"

namespace stowage::engine {

namespace fs = std::filesystem;

namespace {

// Holds SIGINT/SIGTERM until serve() has its handlers: a stop request during start-up is then
// handled gracefully like any other (threads started meanwhile inherit the mask and never take it).
class HeldStopSignals {
 public:
  HeldStopSignals() {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &previous_);
  }
  ~HeldStopSignals() { release(); }
  void release() {
    if (released_) return;
    released_ = true;
    pthread_sigmask(SIG_SETMASK, &previous_, nullptr);  // a signal that came meanwhile is delivered now
  }

 private:
  sigset_t previous_;
  bool released_ = false;
};

// Runs the reactor until SIGINT/SIGTERM: then stops the source, lets the reconciles in flight
// finish (up to the grace period), makes the state store durable and returns.
int serve(Runtime& rt, const config::Config& config, HeldStopSignals& held, const std::function<void()>& stop_source) {
  rt.lag.start();
  boost::asio::signal_set signals(rt.io, SIGINT, SIGTERM);
  boost::asio::steady_timer grace(rt.io);
  bool stopping = false;
  auto finish = [&] {
    rt.lag.stop();
    rt.store->when_durable([&] { rt.io.stop(); });
  };
  std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (stopping) {
      spdlog::warn("second signal: stopping now; unfinished work is replayed at the next start");
      rt.io.stop();
      return;
    }
    stopping = true;
    spdlog::info("signal {}: finishing {} reconciles in flight (up to {} ms), then stopping", sig,
                 rt.controller.in_flight(), config.shutdown_grace.count());
    stop_source();
    rt.controller.stop();
    signals.async_wait(on_signal);
    if (rt.controller.idle()) return finish();
    rt.controller.on_idle(finish);
    grace.expires_after(config.shutdown_grace);
    grace.async_wait([&](boost::system::error_code e) {
      if (e) return;
      spdlog::warn("grace period over with {} reconciles in flight; they are replayed at the next start",
                   rt.controller.in_flight());
      finish();
    });
  };
  signals.async_wait(on_signal);
  held.release();
  rt.io.run();
  rt.store->flush_blocking();
  spdlog::info("stopped; longest reactor stall {} ms", rt.lag.longest().count() / 1000.0);
  return 0;
}

void restore_queue(Runtime& rt) {
  rt.queue.restore(rt.store->load_queue());
  if (rt.queue.size() > 0) spdlog::info("replaying {} work items left from the previous run", rt.queue.size());
}

int run_offline(const config::Config& config) {
  HeldStopSignals held;
  fs::path dir = fs::absolute(config.manifests).lexically_normal();
  if (std::error_code ec; !fs::is_directory(dir, ec)) {
    spdlog::error("manifest folder {} does not exist or is not a directory: create it or fix --manifests",
                  dir.string());
    return 2;
  }
  Runtime rt(config, OfflineSource{dir.string(), /*deletions=*/true});
  restore_queue(rt);
  ManifestSource source(rt.io.get_executor(), rt.pool,
                        ManifestSourceOptions{dir, config.manifests_debounce, config.manifests_poll_interval, false},
                        rt.world());
  spdlog::info("stowage {} watching {} (state in {})", config.operator_version, dir.string(),
               rt.store->path().string());
  source.start([&] {
    spdlog::info("manifests loaded: {} BackupStorages; reconciling", rt.world().cache().storages().size());
    rt.controller.start();
  });
  return serve(rt, config, held, [&] { source.stop(); });
}

int run_kubernetes(const config::Config& config) {
  HeldStopSignals held;
  kube::LoadOptions load;
  load.kubeconfig = config.kubeconfig;
  load.context = config.kube_context;
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
  KubeWorldOptions options{config.kube_namespace, std::random_device{}(),
                           client.value().server.to_string() + " namespace=" + config.kube_namespace};
  Runtime rt(config, KubernetesSource{std::move(client.value()), std::move(options)});
  restore_queue(rt);
  rt.kube->start([&] {
    spdlog::info("caches synced: {} BackupStorages; reconciling", rt.kube->cache().storages().size());
    rt.controller.start();
  });
  return serve(rt, config, held, [&] { rt.kube->stop(); });
}

}  // namespace

int run_command(const config::Config& config) {
  if (!config.manifests.empty()) return run_offline(config);
  return run_kubernetes(config);
}

}  // namespace stowage::engine
