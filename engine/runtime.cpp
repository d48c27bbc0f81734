#include "engine/runtime.hpp"

#include "kube/api_client.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stowage::engine {

namespace {
std::unique_ptr<persistence::StateStore> open_store(const config::Config& c, boost::asio::io_context& io) {
  persistence::StoreOptions o{c.commit_interval, c.synchronous == "full"};
  auto r = persistence::StateStore::open(c.state_dir, io.get_executor(), o);
  if (!r.ok()) throw StartupError(r.error());
  return std::move(r.value());
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
LocalSettings local_settings(const config::Config& c) {
  LocalSettings local;
  local.root = c.local_root;
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

}  // namespace

std::int64_t wall_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StateDirLock::StateDirLock(const std::filesystem::path& state_dir) {
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  auto file = state_dir / "stowage.lock";
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0)
    throw StartupError("cannot open " + file.string() + ": " + std::strerror(errno) +
                       " (set --state-dir to a writable directory)");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd_);
    throw StartupError("another stowage process is using the state directory " + state_dir.string() +
                       ": stop it first, or give this one its own --state-dir");
  }
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) ::close(fd_);
}

Runtime::Runtime(const config::Config& c, OfflineSource source) : Runtime(c, std::move(source), std::nullopt) {}

Runtime::Runtime(const config::Config& c, KubernetesSource source) : Runtime(c, std::nullopt, std::move(source)) {}

Runtime::Runtime(const config::Config& c, std::optional<OfflineSource> offline_source,
                 std::optional<KubernetesSource> kube_source)
    : pool(static_cast<std::size_t>(c.local_io_threads)),
      lock(c.state_dir),
      store(open_store(c, io)),
      fingerprinter(load_fingerprinter(c)),
      queue(store.get(), wall_now_ms),
      facts(store.get(), store->load_facts()),
      http(io.get_executor(), http_options(c)),
      backends(pool, local_settings(c), http,
               CloudSettings::from_environment(c.gcs_endpoint, static_cast<std::size_t>(c.backend_max_connections))),
      offline(offline_source ? std::make_unique<OfflineWorld>(store.get(), store->load_objects(),
                                                              std::move(offline_source->source_id), queue,
                                                              offline_source->deletions,
                                                              LocationSettings{backends.local().root, false})
                             : nullptr),
      api(kube_source ? make_api_client(c, http, std::move(kube_source->client), metrics) : nullptr),
      kube(kube_source ? std::make_unique<KubeWorld>(io.get_executor(), *api, queue, store.get(),
                                                           std::move(kube_source->options))
                       : nullptr),
      reconciler(target(), backends, facts, fingerprinter, ReconcilerOptions{c.operator_version, &metrics}),
      controller(io.get_executor(), queue, reconciler,
                 ControllerOptions{c.workers, c.retry_base, c.retry_cap, c.permanent_retry, c.revalidate_period}, wall_now_ms,
                 &metrics),
      lag(io.get_executor()) {}

ReconcileTarget& Runtime::target() {
  if (offline) return *offline;
  return *kube;
}

Runtime::~Runtime() {
  controller.stop();
  if (kube) kube->stop();
  lag.stop();
  store->flush_blocking();
  pool.join();
}

}  // namespace stowage::engine
