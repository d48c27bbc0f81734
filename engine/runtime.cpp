#include "engine/runtime.hpp"

#include "kube/api_client.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace stowage::engine {

namespace {
std::unique_ptr<persistence::StateStore> open_store(const config::Config& c, boost::asio::io_context& io) {
  persistence::StoreOptions o{c.commit_interval, c.synchronous == "full"};
  auto r = persistence::StateStore::open(c.state_dir, io.get_executor(), o);
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

// The offline modes' user is the operator, who gives the process its credentials for their own
// manifests: every namespace may use them. Against an API server, anyone who may create a
// BackupStorage picks its namespace: only those the operator named may (see AmbientCredentialsPolicy).
CloudSettings cloud_settings(const config::Config& c, bool offline) {
  auto cloud = CloudSettings::from_environment(c.gcs_endpoint, static_cast<std::size_t>(c.backend_max_connections));
  cloud.ambient = offline ? AmbientCredentialsPolicy::everyone()
                          : AmbientCredentialsPolicy::only(c.ambient_credentials_namespaces);
  log_aws_identity(cloud.aws_chain);
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

Runtime::Runtime(const config::Config& c, OfflineSource source) : Runtime(c, std::move(source), std::nullopt) {}

Runtime::Runtime(const config::Config& c, KubernetesSource source) : Runtime(c, std::nullopt, std::move(source)) {}

Runtime::Runtime(const config::Config& c, std::optional<OfflineSource> offline_source,
                 std::optional<KubernetesSource> kube_source)
    : pool(static_cast<std::size_t>(c.local_io_threads)),
      lock(c.state_dir),
      reaper(reap_orphans(io)),
      store(open_store(c, io)),
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
      reconciler(target(), backends, facts, fingerprinter, ReconcilerOptions{c.operator_version, &metrics, c.revalidate_period}),
      controller(io.get_executor(), queue, reconciler,
                 ControllerOptions{c.workers, c.retry_base, c.retry_cap, c.permanent_retry, c.max_interrupted},
                 &metrics),
      lag(io.get_executor()),
      max_pending_bytes_(c.store_max_pending_bytes) {
  controller.set_claim_gate([this] { return store_backlog(); });
}

void Runtime::cancel_work() {
  controller.cancel_in_flight();
  pool_stop->store(true);
}

std::optional<std::string> Runtime::store_backlog() const {
  const std::uint64_t behind = store->uncommitted_bytes();
  if (behind <= max_pending_bytes_) return std::nullopt;
  return "the state store " + store->path().string() + " is " + std::to_string(behind) +
         " bytes behind (store.max-pending-bytes is " + std::to_string(max_pending_bytes_) +
         "): its commits are failing or slow (a full or failing disk?); see the store's error log";
}

ReconcileTarget& Runtime::target() {
  if (offline) return *offline;
  return *kube;
}

Runtime::~Runtime() {
  controller.stop();
  if (kube) kube->stop();
  lag.stop();
  pool_stop->store(true);  // the reactor has stopped: nothing awaits the pool's results any more
  pool.join();
  // Bounded: serve() has flushed (or abandoned) already; elsewhere a failing disk must not hang the exit.
  if (!store->flush_within(std::chrono::seconds(1))) store->abandon();
}

}  // namespace stowage::engine
