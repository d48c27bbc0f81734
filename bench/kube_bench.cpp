// stowage-kube-bench: the real `stowage run --kubeconfig` binary against the test API server
// (tests/apiserver/apiserver.py, TLS, loopback) with N BackupStorages (local provider), beside a
// baseline measured in the same run.
//
// 1. First start. N BackupStorages (local provider: hostPath /data/<ns> + subPath <name>, ~1 KB of
//    JSON each, no finalizer yet) are seeded through /__control across --namespaces namespaces. Then
//    `stowage run --kubeconfig K --state-dir S --local-root R --metrics-bind-address 127.0.0.1:P
//    --health-probe-bind-address 127.0.0.1:P2 --log-level warn --kube-api-qps Q --kube-api-burst B`
//    runs as a child process. Measured:
//    - time to all Ready: from the fork until the server has sent the last of the N status writes
//      that set status.phase=Ready. This process watches the BackupStorages itself from the seeded
//      resourceVersion (the server's truth, event by event, not the controller's own gauge; the server
//      serializes each event once for all watchers, so the extra watch costs it little);
//    - settled: Ready, and then no API write and no reconcile for 2 s with no worker busy (the
//      controller's Events trail the status writes: they drain through one writer). Not the queue
//      depth: stowage's workqueue_depth also counts the revalidations it schedules 10 minutes ahead
//      (client-go's depth counts only what is due), so it reads N at rest;
//    - API writes per storage, from the server's counters (/__stats) at settle time: JSON patches of
//      the object (the kubestash.com/cleanup finalizer), merge patches of /status, Event creates and
//      patches;
//    - CPU seconds (utime+stime of the child from /proc/PID/stat at Ready and at settle; wait4 for the
//      whole run incl. shutdown), peak RSS (VmHWM), and the reactor's event-loop lag: the p99 gauge
//      (stowage_event_loop_lag_seconds, refreshed each second, scraped just after Ready) and the
//      longest stall (stowage_event_loop_longest_stall_seconds) from /metrics;
//    - metadata.yaml files under R.
// 2. Restart with all N Ready. SIGTERM, wait, reset the server's counters, start the same command on
//    the same state directory. Measured: time from the fork to steady state, polled every 100 ms:
//    /readyz answers 200 (caches synced: the log line "caches synced" is at info level, and this
//    runs at warn), stowage_backupstorages{phase="Ready"} == N and
//    controller_runtime_active_workers == 0; then 3 s more are watched. Reported: API writes during
//    the restart (expected 0), backend writes (expected 0: metadata.yaml files whose inode or mtime
//    changed, or new ones; stowage_backend_uploads_total is registered but not counted by the engine
//    yet), reconciles run (controller_runtime_reconcile_total), and the list/watch requests made (a
//    BackupStorage list means it relisted instead of resuming its watch).
// 3. Baseline (after the controller has stopped): the bare work the controller cannot avoid for N
//    storages, on N fresh BackupStorages (namespaces base-*): per storage, the finalizer JSON patch
//    (test + add, as the controller sends it), the create-only metadata.yaml write (mkdir -p, temp
//    file, fsync, renameat2 RENAME_NOREPLACE, fsync of the directory) on a pool of 4 threads (the
//    controller's local.io-threads), then a merge patch of /status with the status body the
//    controller wrote — 16 storages in flight (its reconcile.workers), no client-side rate limit, one
//    kube::ApiClient over http::Client. No Events, no reads, no state store. The ratio is the
//    controller's time to all Ready over the baseline's time.
//
// The client-side rate limit is off by default here (--qps 0): with stowage's default (20 qps, burst
// 30) the 2 writes per storage alone take at least 2N/20 s (1,000 s for 10,000) whatever else
// happens; `--qps 20 --burst 30 --timeout 1200` measures that. The server is one Python process (about one core under its GIL) on the same 2 cores
// as the controller, so where it is saturated the figures say how much of the server's capacity the
// controller uses rather than how fast the controller could go.
//
// 4. CPU per storage: stowage's user+sys (from /proc at Ready) over N, beside the plain loop's own
//    CPU over N in the same run. With --runs R the whole run (fresh server, fresh state) repeats R
//    times and a summary gives each figure's min / median / max, the ratio of every run included.
//
// Profiling: --wrap "valgrind --tool=callgrind --callgrind-out-file=/tmp/x/cg.%p" puts those words
// before stowage's command line (the wrapper must run the binary in its own process, as valgrind
// does: the CPU and memory figures are read off that pid). Give a longer --timeout then.
//
// Usage: stowage-kube-bench [--storages N (10000)] [--namespaces N (100)] [--stowage PATH]
//                           [--qps Q (0 = off)] [--burst B (30)] [--timeout SECONDS (240)]
//                           [--runs R (1)] [--wrap "COMMAND WORDS"]
// Exit status: 0 when all N became Ready, the restart reached steady state and wrote no backend file;
// 1 otherwise; 2 on bad usage.
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>  // renameat2
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_support.hpp"
#include "common/http_client.hpp"
#include "kube/api_client.hpp"
#include "kube/client_config.hpp"
#include "kube/watch_stream.hpp"
#include "storage/metadata.hpp"
#include "support/api_server.hpp"
#include <spdlog/spdlog.h>

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace json = boost::json;

using Clock = std::chrono::steady_clock;
using namespace stowage;

namespace {

constexpr const char* kGroupVersion = "/apis/storage.kubestash.com/v1alpha1";
constexpr int kBaselineWorkers = 16;    // stowage's reconcile.workers default
constexpr int kBaselineFsThreads = 4;   // stowage's local.io-threads default
constexpr auto kQuiet = std::chrono::seconds(2);  // "settled": no API write for this long

using namespace bench;
long process_kib(pid_t pid, const char* field) { return bench::status_kib(field, pid); }

// ------------------------------------------------------------------------------------- the objects

struct Layout {
  int storages = 10000, namespaces = 100;
  std::string prefix = "ns-";  // "base-" for the baseline's copies
  std::string ns(int i) const { return prefix + std::to_string(i % namespaces); }
  std::string name(int i) const { return "bs-" + padded(i); }
  std::string path(int i) const { return std::string(kGroupVersion) + "/namespaces/" + ns(i) + "/backupstorages/" + name(i); }
};

// A BackupStorage as a team would write it (~1 KB as the server stores it): a local volume on a
// hostPath with a subPath per storage, labels, a namespace selector, pod runtime settings. No
// finalizer: the controller adds it.
json::value storage_object(const Layout& l, int i) {
  std::string ns = l.ns(i), name = l.name(i), team = "team-" + std::to_string(i % 17);
  return json::value{
      {"apiVersion", "storage.kubestash.com/v1alpha1"},
      {"kind", "BackupStorage"},
      {"metadata",
       {{"name", name},
        {"namespace", ns},
        {"labels",
         {{"app.kubernetes.io/name", "backupstorage"},
          {"app.kubernetes.io/instance", name},
          {"app.kubernetes.io/managed-by", "stowage-kube-bench"},
          {"app.kubernetes.io/part-of", "kubestash"},
          {"team", team}}},
        {"annotations", {{"kubestash.com/description", "nightly backups of " + ns + " for " + team}}}}},
      {"spec",
       {{"storage",
         {{"provider", "local"},
          {"local",
           {{"mountPath", "/safe/data"},
            {"subPath", name},
            {"hostPath", {{"path", "/data/" + ns}, {"type", "DirectoryOrCreate"}}}}}}},
        {"usagePolicy",
         {{"allowedNamespaces",
           {{"from", "Selector"}, {"selector", {{"matchLabels", {{"kubernetes.io/metadata.name", ns}}}}}}}}},
        {"default", false},
        {"deletionPolicy", "Delete"},
        {"runtimeSettings",
         {{"pod",
           {{"securityContext", {{"runAsUser", 0}, {"fsGroup", 65534}}},
            {"nodeSelector", {{"kubernetes.io/os", "linux"}}}}}}}}}};
}

void seed(const test_support::TestApiServer& server, const Layout& l) {
  for (int start = 0; start < l.storages; start += 1000) {
    json::array batch;
    for (int i = start; i < std::min(l.storages, start + 1000); ++i) batch.push_back(storage_object(l, i));
    server.control(json::value{{"action", "create"}, {"objects", std::move(batch)}});
  }
}

// ---------------------------------------------------------------------------------- small helpers

std::string text_at(const json::value& v, std::initializer_list<const char*> path) {
  const json::value* at = &v;
  for (const char* key : path) {
    const auto* o = at->if_object();
    at = o ? o->if_contains(key) : nullptr;
    if (!at) return {};
  }
  return at->is_string() ? std::string(at->get_string()) : std::string();
}

std::int64_t int_at(const json::value& v, const char* object, const std::string& key) {
  const auto* o = v.if_object();
  const auto* inner = o ? o->if_contains(object) : nullptr;
  const auto* io = inner ? inner->if_object() : nullptr;
  const auto* n = io ? io->if_contains(key) : nullptr;
  return n && n->is_int64() ? n->get_int64() : 0;
}

// Sum of the samples of metric `name` (Prometheus text) whose label set contains every
// `label="value"` in `want`; NaN when there is none.
double metric(const std::string& text, std::string_view name, std::initializer_list<std::string_view> want = {}) {
  double sum = 0;
  bool found = false;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line.compare(0, name.size(), name) != 0) continue;
    if (line.size() <= name.size() || (line[name.size()] != '{' && line[name.size()] != ' ')) continue;
    auto space = line.rfind(' ');
    std::string labels = line[name.size()] == '{' ? line.substr(name.size(), space - name.size()) : std::string();
    bool match = true;
    for (auto w : want) match = match && labels.find(w) != std::string::npos;
    if (!match) continue;
    sum += std::atof(line.c_str() + space + 1);
    found = true;
  }
  return found ? sum : std::nan("");
}

struct Writes {  // API writes by kind, from the server's requests_by_path
  std::int64_t object_patches = 0, status_patches = 0, event_creates = 0, event_patches = 0, other = 0;
  std::int64_t lists = 0, watches = 0, gets = 0;
  std::map<std::string, std::int64_t> list_paths;  // "list /apis/..." -> count
  std::int64_t total() const { return object_patches + status_patches + event_creates + event_patches + other; }
};

Writes writes_of(const json::value& stats) {
  Writes w;
  const auto* by_path = stats.as_object().if_contains("requests_by_path");
  if (!by_path || !by_path->is_object()) return w;
  for (const auto& [key_sv, count_v] : by_path->as_object()) {
    std::string key(key_sv);
    std::int64_t n = count_v.is_int64() ? count_v.get_int64() : 0;
    auto space = key.find(' ');
    std::string verb = key.substr(0, space), path = key.substr(space + 1);
    bool events = path.find("/events") != std::string::npos;
    if (verb == "list") {
      w.lists += n;
      w.list_paths[key] += n;
    } else if (verb == "watch") {
      w.watches += n;
    } else if (verb == "get") {
      w.gets += n;
    } else if (verb == "patch" && events) {
      w.event_patches += n;
    } else if (verb == "create" && events) {
      w.event_creates += n;
    } else if (verb == "patch" && path.size() > 7 && path.compare(path.size() - 7, 7, "/status") == 0) {
      w.status_patches += n;
    } else if (verb == "patch" && path.find("/backupstorages/") != std::string::npos) {
      w.object_patches += n;
    } else {
      w.other += n;
    }
  }
  return w;
}

struct FileStamp {
  ino_t ino = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

// Every metadata.yaml under `root`, with its inode and mtime.
std::map<std::string, FileStamp> metadata_files(const fs::path& root) {
  std::map<std::string, FileStamp> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename() != "metadata.yaml") continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;
    out[it->path().string()] = FileStamp{st.st_ino, st.st_mtim.tv_sec * 1'000'000'000LL + st.st_mtim.tv_nsec};
  }
  return out;
}

std::string tail_of(const fs::path& file, std::size_t lines) {
  std::ifstream in(file);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  std::string out;
  for (std::size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) out += "    " + all[i] + "\n";
  return out;
}

// The warning and error lines of a stowage text log ("<time> <level> <message>"): how many, and the
// first few distinct messages (without the time).
std::pair<std::size_t, std::vector<std::string>> warnings_in(const fs::path& file, std::size_t keep = 3) {
  std::ifstream in(file);
  std::size_t n = 0;
  std::vector<std::string> first;
  for (std::string line; std::getline(in, line);) {
    auto space = line.find(' ');
    if (space == std::string::npos) continue;
    std::string rest = line.substr(space + 1);
    if (rest.rfind("warning ", 0) != 0 && rest.rfind("error ", 0) != 0 && rest.rfind("critical ", 0) != 0) continue;
    ++n;
    if (first.size() < keep && std::find(first.begin(), first.end(), rest) == first.end()) first.push_back(rest);
  }
  return {n, first};
}

// ----------------------------------------------------------------------------- the stowage child

struct Stowage {
  pid_t pid = -1;
  int status = 0;
  struct rusage usage {};
  Stowage() = default;
  Stowage(const Stowage&) = delete;
  Stowage& operator=(const Stowage&) = delete;
  ~Stowage() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }

  // `wrap`: a command the binary's command line is appended to (e.g. valgrind --tool=callgrind ...),
  // found on PATH; it must exec the binary in the same process (as valgrind does), since the CPU and
  // memory figures are read off this pid.
  void start(const std::string& binary, const std::vector<std::string>& args, const fs::path& log,
             const std::vector<std::string>& wrap = {}) {
    pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // never outlive the bench
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<std::string> copy = wrap;
      copy.push_back(binary);
      copy.insert(copy.end(), args.begin(), args.end());
      std::vector<char*> argv;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp(copy[0].c_str(), argv.data());
      ::_exit(127);
    }
  }
  // False once it has exited (then `status` and `usage` are set).
  bool running() {
    if (pid <= 0) return false;
    if (::wait4(pid, &status, WNOHANG, &usage) != pid) return true;
    pid = -1;
    return false;
  }
  // SIGTERM, then waits up to `limit` (SIGKILL after it). Returns the exit code (128+signal if killed).
  int stop(std::chrono::seconds limit) {
    if (pid > 0) {
      ::kill(pid, SIGTERM);
      auto deadline = Clock::now() + limit;
      while (running() && Clock::now() < deadline) ::usleep(10'000);
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::wait4(pid, &status, 0, &usage);
        pid = -1;
      }
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
  double usage_cpu() const {
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  }
};

// ----------------------------------------------------------------------------------- the driver

struct Options {
  Layout layout;
  std::string stowage = STOWAGE_BINARY;
  int qps = 0, burst = 30;
  int timeout = 240;
  int runs = 1;
  std::vector<std::string> wrap;  // --wrap "valgrind --tool=callgrind": words put before the binary
};

struct FirstStart {
  bool all_ready = false, settled = false;
  int ready = 0;
  double ready_secs = 0, first_ready_secs = 0, settled_secs = 0;
  double cpu_at_ready = 0, cpu_at_settle = 0, cpu_total = 0, server_cpu = 0, bench_cpu = 0;
  long hwm_kib = 0, maxrss_kib = 0;
  double lag_p99 = NAN, longest_stall = NAN, reconciles = NAN, depth = NAN;
  Writes writes;
  std::size_t files = 0;
  int exit_code = 0;
  double stop_secs = 0;
  std::string error;
};

struct Restart {
  bool steady = false;
  double synced_secs = -1, steady_secs = 0, cpu = 0, cpu_total = 0, server_cpu = 0;
  long hwm_kib = 0;
  double reconciles = NAN, ready_gauge = NAN, lag_p99 = NAN, longest_stall = NAN;
  Writes writes;
  std::size_t changed_files = 0, files = 0;
  int exit_code = 0;
  std::string error;
};

struct Baseline {
  double secs = 0, api_secs = 0, client_cpu = 0, server_cpu = 0;
  int failed = 0;
  std::string first_error;
};

class Bench {
 public:
  Bench(const Options& o, test_support::TestApiServer& server, const fs::path& dir)
      : opt_(o), l_(o.layout), server_(server), dir_(dir), http_(io_.get_executor()) {
    kube::ClientConfig config = server.client_config();
    api_ = std::make_unique<kube::ApiClient>(http_, config, kube::ApiClientOptions{0, 0, {}, {}});
    metrics_port_ = test_support::free_port();
    health_port_ = test_support::free_port();
    metrics_origin_ = http::Url::parse("http://127.0.0.1:" + std::to_string(metrics_port_)).value();
    health_origin_ = http::Url::parse("http://127.0.0.1:" + std::to_string(health_port_)).value();
    kubeconfig_ = server.write_kubeconfig("default");
    fs::create_directories(dir_ / "root");  // local.root must exist
  }

  std::vector<std::string> stowage_args() const {
    return {"run",
            "--kubeconfig",
            kubeconfig_.string(),
            "--state-dir",
            (dir_ / "state").string(),
            "--local-root",
            (dir_ / "root").string(),
            "--local-volume-mode",
            "direct",
            "--metrics-bind-address",
            "127.0.0.1:" + std::to_string(metrics_port_),
            "--health-probe-bind-address",
            "127.0.0.1:" + std::to_string(health_port_),
            "--log-level",
            "warn",
            "--kube-api-qps",
            std::to_string(opt_.qps),
            "--kube-api-burst",
            std::to_string(opt_.burst)};
  }
  fs::path log(int run) const { return dir_ / ("stowage-" + std::to_string(run) + ".log"); }

  template <class F>
  void run(F&& flow) {
    asio::co_spawn(io_, std::forward<F>(flow), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    io_.run();
    io_.restart();
  }

  // ---- async helpers (every argument of a co_awaited call is a named local)

  asio::awaitable<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(io_, d);
    co_await t.async_wait(asio::use_awaitable);
  }
  // GET on a plain-HTTP port of the child: {status, body}; status 0 when nothing answered.
  asio::awaitable<std::pair<int, std::string>> plain_get(http::Url origin, std::string target) {
    http::Request request{"GET", std::move(target), {}, ""};
    http::TlsSettings tls;
    auto r = co_await http_.send(origin, tls, request);
    if (!r.ok()) co_return std::pair<int, std::string>{0, ""};
    co_return std::pair<int, std::string>{r.value().status, std::move(r.value().body)};
  }
  asio::awaitable<std::string> scrape() {
    std::string target = "/metrics";
    auto got = co_await plain_get(metrics_origin_, target);
    co_return got.first == 200 ? std::move(got.second) : std::string();
  }
  asio::awaitable<json::value> server_stats() {
    std::string path = "/__stats";
    auto r = co_await api_->get(path);
    if (!r.ok()) throw std::runtime_error("/__stats: " + r.error().message);
    co_return std::move(r.value());
  }
  std::int64_t write_verbs(const json::value& stats) const {
    std::int64_t n = 0;
    for (const char* verb : {"create", "update", "patch", "delete", "deletecollection"})
      n += int_at(stats, "requests_by_verb", verb);
    return n;
  }

  // ---- 1. the first start

  asio::awaitable<void> first_start(FirstStart& f) {
    std::string seeded_rv = text_at(server_.stats(), {"resourceVersion"});
    std::unordered_map<std::string, bool> ready;  // "ns/name" -> status.phase == Ready
    int ready_count = 0;
    Clock::time_point t0 = Clock::now();
    double server0 = process_cpu_seconds(server_.proc.pid()), bench0 = cpu_seconds();
    Stowage child;
    child.start(opt_.stowage, stowage_args(), log(1), opt_.wrap);

    // The server's view, event by event: a watch from the seeded resourceVersion.
    asio::cancellation_signal stop_watch;
    bool watch_failed = false, watch_stopping = false, watch_done = false;
    auto watcher = [&]() -> asio::awaitable<void> {
      std::string rv = seeded_rv;
      std::function<bool(kube::WatchEvent)> on_event = [&](kube::WatchEvent e) {
        if (watch_stopping) return false;
        if (!e.resource_version.empty()) rv = e.resource_version;
        if (e.type != kube::WatchEventType::Added && e.type != kube::WatchEventType::Modified) return true;
        std::string ns = text_at(e.object, {"metadata", "namespace"});
        if (ns.rfind(l_.prefix, 0) != 0) return true;
        bool now = text_at(e.object, {"status", "phase"}) == "Ready";
        bool& was = ready[ns + "/" + text_at(e.object, {"metadata", "name"})];
        if (now == was) return true;
        was = now;
        ready_count += now ? 1 : -1;
        if (now && f.first_ready_secs == 0) f.first_ready_secs = seconds_since(t0);
        if (ready_count == l_.storages && !f.all_ready) {
          f.all_ready = true;
          f.ready_secs = seconds_since(t0);
          f.cpu_at_ready = process_cpu_seconds(child.pid);
        }
        return true;
      };
      for (int attempt = 0; attempt < 5; ++attempt) {
        kube::WatchOptions wo;
        wo.resource_version = rv;
        wo.timeout_seconds = 1800;
        wo.allow_bookmarks = true;
        std::string path = std::string(kGroupVersion) + "/backupstorages";
        auto r = co_await api_->watch(path, wo, on_event);
        if (watch_stopping) co_return;
        if (!r.ok()) std::printf("  (bench watch ended: %s; watching again)\n", r.error().message.c_str());
      }
      watch_failed = true;
    };
    asio::co_spawn(io_, watcher,
                   asio::bind_cancellation_slot(stop_watch.slot(), [&](std::exception_ptr) { watch_done = true; }));
    // Ends the watch and waits for it: its callbacks refer to this frame.
    auto end_watch = [&]() -> asio::awaitable<void> {
      watch_stopping = true;
      stop_watch.emit(asio::cancellation_type::terminal);
      while (!watch_done) co_await sleep(std::chrono::milliseconds(10));
    };

    // Until all Ready: sample the child every 500 ms.
    auto deadline = t0 + std::chrono::seconds(opt_.timeout);
    std::string last_metrics;
    while (!f.all_ready && !watch_failed && Clock::now() < deadline && child.running()) {
      co_await sleep(std::chrono::milliseconds(500));
      f.hwm_kib = std::max(f.hwm_kib, process_kib(child.pid, "VmHWM"));
    }
    if (!f.all_ready) {
      co_await end_watch();
      f.ready = ready_count;
      f.error = child.running() ? (watch_failed ? "the bench's watch failed" : "timed out")
                                : "stowage exited with status " + std::to_string(child.stop(std::chrono::seconds(0)));
      f.error += " with " + std::to_string(ready_count) + " of " + std::to_string(l_.storages) + " Ready";
      child.stop(std::chrono::seconds(15));
      co_return;
    }
    f.ready = ready_count;
    // The lag gauges just after Ready (the p99 covers the process's life so far).
    auto m = co_await scrape();
    f.lag_p99 = metric(m, "stowage_event_loop_lag_seconds");
    std::printf("  all %d Ready after %.2f s (first after %.2f s); stowage cpu %.2f s so far\n", l_.storages,
                f.ready_secs, f.first_ready_secs, f.cpu_at_ready);
    std::fflush(stdout);

    // Settled: no API write and no reconcile for kQuiet, no worker busy. (workqueue_depth is no use
    // here: stowage counts the revalidations it has scheduled for later in it, so it stays at N.)
    std::int64_t last_writes = -1;
    double last_reconciles = -1;
    Clock::time_point last_change = Clock::now();
    auto settle_deadline = Clock::now() + std::chrono::seconds(opt_.timeout);
    json::value stats;
    while (Clock::now() < settle_deadline && child.running()) {
      co_await sleep(std::chrono::milliseconds(250));
      stats = co_await server_stats();
      m = co_await scrape();
      if (m.empty()) continue;
      f.hwm_kib = std::max(f.hwm_kib, process_kib(child.pid, "VmHWM"));
      auto w = write_verbs(stats);
      double reconciles = metric(m, "controller_runtime_reconcile_total");
      if (w != last_writes || reconciles != last_reconciles) {
        last_writes = w;
        last_reconciles = reconciles;
        last_change = Clock::now();
        f.settled_secs = seconds_since(t0);  // the poll that saw the last change
        f.cpu_at_settle = process_cpu_seconds(child.pid);
        continue;
      }
      if (metric(m, "controller_runtime_active_workers", {"controller=\"backupstorage\""}) == 0 &&
          Clock::now() - last_change >= kQuiet) {
        f.settled = true;
        break;
      }
    }
    co_await end_watch();
    f.server_cpu = process_cpu_seconds(server_.proc.pid()) - server0;
    f.bench_cpu = cpu_seconds() - bench0;
    f.writes = writes_of(stats);
    f.longest_stall = metric(m, "stowage_event_loop_longest_stall_seconds");
    f.reconciles = metric(m, "controller_runtime_reconcile_total");
    f.depth = metric(m, "workqueue_depth", {"name=\"backupstorage\""});
    f.hwm_kib = std::max(f.hwm_kib, process_kib(child.pid, "VmHWM"));
    if (!f.settled) f.error = "did not settle (writes kept coming or the queue stayed busy)";
    auto t_stop = Clock::now();
    f.exit_code = child.stop(std::chrono::seconds(30));
    f.stop_secs = seconds_since(t_stop);
    f.cpu_total = child.usage_cpu();
    f.maxrss_kib = child.usage.ru_maxrss;
    if (f.exit_code != 0 && f.error.empty()) f.error = "stowage exited with status " + std::to_string(f.exit_code);
    f.files = metadata_files(dir_ / "root").size();
  }

  // ---- 2. the restart

  asio::awaitable<void> restart(Restart& r) {
    auto before = metadata_files(dir_ / "root");
    server_.control(json::value{{"action", "reset_stats"}});
    double server0 = process_cpu_seconds(server_.proc.pid());
    Clock::time_point t0 = Clock::now();
    Stowage child;
    child.start(opt_.stowage, stowage_args(), log(2), opt_.wrap);
    auto deadline = t0 + std::chrono::seconds(opt_.timeout);
    std::string m;
    while (Clock::now() < deadline && child.running()) {
      co_await sleep(std::chrono::milliseconds(100));
      std::string readyz = "/readyz";
      auto probe = co_await plain_get(health_origin_, readyz);
      if (probe.first != 200) continue;
      if (r.synced_secs < 0) r.synced_secs = seconds_since(t0);
      m = co_await scrape();
      if (metric(m, "stowage_backupstorages", {"phase=\"Ready\""}) == l_.storages &&
          metric(m, "controller_runtime_active_workers", {"controller=\"backupstorage\""}) == 0) {
        r.steady = true;
        r.steady_secs = seconds_since(t0);
        r.cpu = process_cpu_seconds(child.pid);
        break;
      }
    }
    if (!r.steady) {
      r.error = child.running() ? "no steady state in " + std::to_string(opt_.timeout) + " s"
                                : "stowage exited with status " + std::to_string(child.stop(std::chrono::seconds(0)));
      child.stop(std::chrono::seconds(15));
      co_return;
    }
    std::printf("  steady after %.2f s (/readyz 200 after %.2f s); watching 3 s more\n", r.steady_secs, r.synced_secs);
    std::fflush(stdout);
    co_await sleep(std::chrono::milliseconds(3000));  // let any (wrong) work happen
    m = co_await scrape();
    auto stats = co_await server_stats();
    r.server_cpu = process_cpu_seconds(server_.proc.pid()) - server0;
    r.writes = writes_of(stats);
    r.reconciles = metric(m, "controller_runtime_reconcile_total");
    r.ready_gauge = metric(m, "stowage_backupstorages", {"phase=\"Ready\""});
    r.lag_p99 = metric(m, "stowage_event_loop_lag_seconds");
    r.longest_stall = metric(m, "stowage_event_loop_longest_stall_seconds");
    r.hwm_kib = process_kib(child.pid, "VmHWM");
    r.exit_code = child.stop(std::chrono::seconds(30));
    r.cpu_total = child.usage_cpu();
    if (r.exit_code != 0) r.error = "stowage exited with status " + std::to_string(r.exit_code);
    auto after = metadata_files(dir_ / "root");
    r.files = after.size();
    for (const auto& [path, stamp] : before) {
      auto it = after.find(path);
      r.changed_files += it == after.end() || !(it->second == stamp);
    }
    for (const auto& [path, _] : after) r.changed_files += before.count(path) == 0;
  }

  // ---- 3. the baseline

  asio::awaitable<void> baseline(Baseline& b, json::value status) {
    Layout bl = l_;
    bl.prefix = "base-";
    seed(server_, bl);
    const fs::path root = dir_ / "baseline-root";
    const std::string body = storage::render_metadata({"2026-01-01T00:00:00Z", "v0.1.0"});
    asio::thread_pool pool(kBaselineFsThreads);
    auto pool_executor = pool.get_executor();
    std::atomic<int> fs_failed{0};
    // The create-only write the local backend does, as plain syscalls.
    auto write_file = [&](int i) {
      fs::path d = root / "data" / bl.ns(i) / bl.name(i);
      std::error_code ec;
      fs::create_directories(d, ec);
      fs::path tmp = d / ".metadata.yaml.tmp", final = d / "metadata.yaml";
      int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      bool ok = fd >= 0 && ::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()) &&
                ::fsync(fd) == 0;
      if (fd >= 0) ::close(fd);
      ok = ok && ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final.c_str(), RENAME_NOREPLACE) == 0;
      int dfd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ok = ok && dfd >= 0 && ::fsync(dfd) == 0;
      if (dfd >= 0) ::close(dfd);
      if (!ok) ++fs_failed;
    };
    json::value finalizer = json::array{json::object{{"op", "test"}, {"path", "/metadata/finalizers"}, {"value", nullptr}},
                                        json::object{{"op", "add"},
                                                     {"path", "/metadata/finalizers"},
                                                     {"value", json::array{"kubestash.com/cleanup"}}}};
    json::value status_patch = json::object{{"status", std::move(status)}};
    int next = 0;
    double api_busy = 0;
    auto note = [&](const Result<json::value, kube::ApiError>& result) {
      if (result.ok()) return;
      ++b.failed;
      if (b.first_error.empty()) b.first_error = result.error().message;
    };
    auto worker = [&]() -> asio::awaitable<void> {
      while (next < bl.storages) {
        int i = next++;
        std::string path = bl.path(i);
        std::string json_patch = kube::kJsonPatch;
        json::value ops = finalizer;
        auto t = Clock::now();
        auto added = co_await api_->patch(path, json_patch, ops);
        api_busy += seconds_since(t);
        note(added);
        auto job = [&write_file, i]() -> asio::awaitable<void> {
          write_file(i);
          co_return;
        };
        co_await asio::co_spawn(pool_executor, job, asio::use_awaitable);
        std::string status_path = path + "/status";
        std::string merge = kube::kMergePatch;
        json::value patch = status_patch;
        t = Clock::now();
        auto written = co_await api_->patch(status_path, merge, patch);
        api_busy += seconds_since(t);
        note(written);
      }
    };
    double cpu0 = cpu_seconds(), server0 = process_cpu_seconds(server_.proc.pid());
    auto t0 = Clock::now();
    int done = 0;
    for (int k = 0; k < kBaselineWorkers; ++k)
      asio::co_spawn(io_, worker, [&](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
        ++done;
      });
    while (done < kBaselineWorkers) co_await sleep(std::chrono::milliseconds(5));
    b.secs = seconds_since(t0);
    b.client_cpu = cpu_seconds() - cpu0;
    b.server_cpu = process_cpu_seconds(server_.proc.pid()) - server0;
    b.api_secs = api_busy / kBaselineWorkers;
    pool.join();
    if (fs_failed > 0) {
      ++b.failed;
      if (b.first_error.empty()) b.first_error = std::to_string(fs_failed.load()) + " metadata.yaml writes failed";
    }
  }

  asio::awaitable<json::value> first_status() {
    std::string path = l_.path(0);
    auto r = co_await api_->get(path);
    if (!r.ok()) throw std::runtime_error("GET " + path + ": " + r.error().message);
    const auto* st = r.value().as_object().if_contains("status");
    co_return st ? *st : json::value(json::object{});
  }

 private:
  const Options& opt_;
  const Layout& l_;
  test_support::TestApiServer& server_;
  fs::path dir_, kubeconfig_;
  asio::io_context io_{1};
  http::Client http_;
  std::unique_ptr<kube::ApiClient> api_;
  int metrics_port_ = 0, health_port_ = 0;
  http::Url metrics_origin_, health_origin_;
};

std::string per(double n, int storages) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", n / storages);
  return buf;
}

// One run's headline figures, for the summary over --runs.
struct RunFigures {
  bool ok = false;
  double ready_secs = 0, baseline_secs = 0, ratio = NAN;
  double cpu_ms_per_storage = NAN, baseline_cpu_ms_per_storage = NAN;
  double lag_p99_ms = NAN, longest_stall_ms = NAN, peak_rss_mib = NAN, restart_secs = NAN;
  std::int64_t restart_writes = -1;
};

int run(const Options& opt, RunFigures& figures) {
  const Layout& l = opt.layout;
  auto total = Clock::now();
  char host[256] = {};
  ::gethostname(host, sizeof host);
  struct utsname u {};
  ::uname(&u);
  std::printf("stowage-kube-bench on %s: %s, %ld cores, %.1f GiB, kernel %s (load average %s)\n", host,
              cpu_model().c_str(), ::sysconf(_SC_NPROCESSORS_ONLN), kib_field("/proc/meminfo", "MemTotal") / 1048576.0,
              u.release, load_average().c_str());
  std::string limit = opt.qps == 0 ? std::string("off (--kube-api-qps 0)")
                                   : "qps " + std::to_string(opt.qps) + ", burst " + std::to_string(opt.burst);
  std::printf("%d BackupStorages (local provider) in %d namespaces on the test API server (Python, TLS, loopback); "
              "stowage %s; client-side rate limit %s\n\n",
              l.storages, l.namespaces, opt.stowage.c_str(), limit.c_str());
  std::fflush(stdout);

  auto dir = test_support::fresh_temp_dir("kube-bench");
  std::string history = std::to_string(std::max(100000, 8 * l.storages));
  test_support::TestApiServer server(dir / "apiserver", "kube-bench-token", {"--history", history});
  auto t_seed = Clock::now();
  seed(server, l);
  std::printf("seeded %d BackupStorages in %.1f s through /__control\n", l.storages, seconds_since(t_seed));
  std::fflush(stdout);

  Bench bench(opt, server, dir);
  std::vector<std::string> problems;

  std::printf("\n[1] first start: stowage run from an empty state directory until all are Ready\n");
  std::fflush(stdout);
  FirstStart f;
  bench.run([&]() -> asio::awaitable<void> { co_await bench.first_start(f); });
  auto [warnings1, warning_lines1] = warnings_in(bench.log(1));
  if (!f.error.empty()) {
    problems.push_back("first start: " + f.error);
    std::printf("  FAILED: %s\n  stowage log (last lines, %s):\n%s", f.error.c_str(), bench.log(1).c_str(),
                tail_of(bench.log(1), 15).c_str());
  }
  if (f.all_ready) {
    std::printf("  settled after %.2f s; stopped in %.2f s (exit %d); %zu metadata.yaml files; %zu warning/error "
                "log lines\n",
                f.settled_secs, f.stop_secs, f.exit_code, f.files, warnings1);
    for (const auto& line : warning_lines1) std::printf("    %.300s\n", line.c_str());
  }
  std::fflush(stdout);

  Restart r;
  Baseline b;
  if (f.all_ready) {
    std::printf("\n[2] restart with all %d Ready (same state directory)\n", l.storages);
    std::fflush(stdout);
    bench.run([&]() -> asio::awaitable<void> { co_await bench.restart(r); });
    if (!r.error.empty()) {
      problems.push_back("restart: " + r.error);
      std::printf("  FAILED: %s\n  stowage log (last lines):\n%s", r.error.c_str(), tail_of(bench.log(2), 15).c_str());
    }
    auto [warnings2, warning_lines2] = warnings_in(bench.log(2));
    if (warnings2 > 0) std::printf("  %zu warning/error log lines, e.g.:\n", warnings2);
    for (const auto& line : warning_lines2) std::printf("    %.300s\n", line.c_str());
    if (r.steady && r.changed_files > 0)
      problems.push_back("restart: " + std::to_string(r.changed_files) + " metadata.yaml files written again");
    if (r.steady && r.writes.total() > 0)
      std::printf("  NOTE: %lld API writes during the restart (expected none)\n",
                  static_cast<long long>(r.writes.total()));

    std::printf("\n[3] baseline: finalizer patch + metadata.yaml write + status patch per storage, %d in flight, "
                "on %d fresh BackupStorages\n",
                kBaselineWorkers, l.storages);
    std::fflush(stdout);
    bench.run([&]() -> asio::awaitable<void> {
      auto status = co_await bench.first_status();
      co_await bench.baseline(b, std::move(status));
    });
    if (b.failed > 0) problems.push_back("baseline: " + std::to_string(b.failed) + " failures: " + b.first_error);
    std::printf("  %d storages in %.2f s = %.0f storages/s; cpu: client %.2f s, server %.2f s\n", l.storages, b.secs,
                l.storages / b.secs, b.client_cpu, b.server_cpu);
  }

  // The table.
  std::printf("\n== stowage-kube-bench: %s, %ld cores; %d BackupStorages (local, %d namespaces); rate limit %s\n",
              cpu_model().c_str(), ::sysconf(_SC_NPROCESSORS_ONLN), l.storages, l.namespaces, limit.c_str());
  auto mib = [](long kib) { return kib / 1024.0; };
  auto ms = [](double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f ms", s * 1000.0);
    return std::isnan(s) ? std::string("n/a") : std::string(buf);
  };
  if (f.all_ready) {
    const Writes& w = f.writes;
    std::printf("first start\n");
    std::printf("  %-42s %.2f s (%.0f storages/s); baseline %.2f s; ratio %.2f%s\n", "time to all Ready", f.ready_secs,
                l.storages / f.ready_secs, b.secs, b.secs > 0 ? f.ready_secs / b.secs : 0.0,
                opt.qps > 0 ? " (the baseline has no client-side rate limit)" : "");
    std::printf("  %-42s %.2f s\n", "time to settled (Events written, all idle)", f.settled_secs);
    std::printf("  %-42s %s (finalizer %s, status %s, Event creates %s, Event patches %s, other %s)\n",
                "API writes per storage", per(static_cast<double>(w.total()), l.storages).c_str(),
                per(static_cast<double>(w.object_patches), l.storages).c_str(),
                per(static_cast<double>(w.status_patches), l.storages).c_str(),
                per(static_cast<double>(w.event_creates), l.storages).c_str(),
                per(static_cast<double>(w.event_patches), l.storages).c_str(),
                per(static_cast<double>(w.other), l.storages).c_str());
    if (w.event_creates < l.storages)
      std::printf("  %-42s %lld of %d (each storage turning Ready gets one; see the log warnings above)\n",
                  "Events not written", static_cast<long long>(l.storages - w.event_creates), l.storages);
    std::printf("  %-42s %lld lists, %lld watches, %lld gets\n", "API reads", static_cast<long long>(w.lists),
                static_cast<long long>(w.watches), static_cast<long long>(w.gets));
    std::printf("  %-42s %.2f s to Ready, %.2f s to settled, %.2f s in all (server %.2f s, this bench %.2f s)\n",
                "CPU seconds of stowage", f.cpu_at_ready, f.cpu_at_settle, f.cpu_total, f.server_cpu, f.bench_cpu);
    std::printf("  %-42s %.3f ms to Ready (user+sys, /proc); the plain loop %.3f ms (its own CPU); ratio %.2f\n",
                "CPU per storage", 1000.0 * f.cpu_at_ready / l.storages, 1000.0 * b.client_cpu / l.storages,
                b.client_cpu > 0 ? f.cpu_at_ready / b.client_cpu : 0.0);
    std::printf("  %-42s %.1f MiB (VmHWM; wait4 maxrss %.1f MiB)\n", "peak RSS", mib(f.hwm_kib), mib(f.maxrss_kib));
    std::printf("  %-42s p99 %s, longest stall %s\n", "event-loop lag", ms(f.lag_p99).c_str(),
                ms(f.longest_stall).c_str());
    std::printf("  %-42s %zu metadata.yaml\n", "files written", f.files);
    std::printf("  %-42s %.0f reconciles; workqueue_depth %.0f (revalidations scheduled for later)\n",
                "at settle time", f.reconciles, f.depth);
  }
  if (r.steady) {
    std::string lists;
    for (const auto& [k, n] : r.writes.list_paths) lists += (lists.empty() ? "" : ", ") + k + " x" + std::to_string(n);
    bool relisted = r.writes.list_paths.count("list " + std::string(kGroupVersion) + "/backupstorages") > 0;
    std::printf("restart with all Ready\n");
    std::printf("  %-42s %.2f s (caches synced, /readyz 200, after %.2f s)\n", "time to steady state", r.steady_secs,
                r.synced_secs);
    std::printf("  %-42s %lld (status %lld, finalizer %lld, Events %lld)\n", "API writes during the restart",
                static_cast<long long>(r.writes.total()), static_cast<long long>(r.writes.status_patches),
                static_cast<long long>(r.writes.object_patches),
                static_cast<long long>(r.writes.event_creates + r.writes.event_patches));
    std::printf("  %-42s %zu (metadata.yaml files new or with a new inode or mtime, of %zu); reconciles %.0f\n",
                "backend writes", r.changed_files, r.files, r.reconciles);
    std::printf("  %-42s %s (%lld watches; lists: %s)\n", "relisted BackupStorages",
                relisted ? "YES" : "no, resumed its watch", static_cast<long long>(r.writes.watches),
                lists.empty() ? "none" : lists.c_str());
    std::printf("  %-42s %.2f s to steady, %.2f s in all (server %.2f s); peak RSS %.1f MiB; lag p99 %s, longest "
                "stall %s\n",
                "CPU seconds of stowage", r.cpu, r.cpu_total, r.server_cpu, mib(r.hwm_kib), ms(r.lag_p99).c_str(),
                ms(r.longest_stall).c_str());
  }
  std::printf("total %.1f s; load average now %s\n", seconds_since(total), load_average().c_str());

  figures.ok = f.all_ready && b.secs > 0;
  figures.ready_secs = f.ready_secs;
  figures.baseline_secs = b.secs;
  if (figures.ok) figures.ratio = f.ready_secs / b.secs;
  figures.cpu_ms_per_storage = 1000.0 * f.cpu_at_ready / l.storages;
  figures.baseline_cpu_ms_per_storage = 1000.0 * b.client_cpu / l.storages;
  figures.lag_p99_ms = 1000.0 * f.lag_p99;
  figures.longest_stall_ms = 1000.0 * f.longest_stall;
  figures.peak_rss_mib = mib(f.hwm_kib);
  if (r.steady) {
    figures.restart_secs = r.steady_secs;
    figures.restart_writes = r.writes.total();
  }

  if (!problems.empty()) {
    std::printf("\nFAILED: %zu problem(s); first: %s (files kept in %s)\n", problems.size(), problems.front().c_str(),
                dir.c_str());
    return 1;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

// min / median / max of one figure over the runs (NaN ones left out).
std::string spread(const std::vector<RunFigures>& all, double RunFigures::*field, const char* format) {
  std::vector<double> v;
  for (const auto& f : all)
    if (!std::isnan(f.*field)) v.push_back(f.*field);
  if (v.empty()) return "n/a";
  std::sort(v.begin(), v.end());
  auto fmt = [&](double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, format, x);
    return std::string(buf);
  };
  double median = v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  return fmt(v.front()) + " / " + fmt(median) + " / " + fmt(v.back());
}

void print_summary(const std::vector<RunFigures>& all, int storages) {
  std::printf("\n== summary over %zu runs (min / median / max); %d storages; load average now %s\n", all.size(),
              storages, load_average().c_str());
  std::printf("  %-42s", "per run: ratio (stowage s / baseline s)");
  for (const auto& f : all) std::printf(" %.2f (%.2f/%.2f)", f.ratio, f.ready_secs, f.baseline_secs);
  std::printf("\n");
  std::printf("  %-42s %s\n", "10k to Ready vs plain loop, ratio", spread(all, &RunFigures::ratio, "%.2f").c_str());
  std::printf("  %-42s %s\n", "stowage CPU ms per storage (to Ready)",
              spread(all, &RunFigures::cpu_ms_per_storage, "%.3f").c_str());
  std::printf("  %-42s %s\n", "plain loop CPU ms per storage",
              spread(all, &RunFigures::baseline_cpu_ms_per_storage, "%.3f").c_str());
  std::printf("  %-42s %s\n", "event-loop lag p99, ms", spread(all, &RunFigures::lag_p99_ms, "%.1f").c_str());
  std::printf("  %-42s %s\n", "longest stall, ms", spread(all, &RunFigures::longest_stall_ms, "%.1f").c_str());
  std::printf("  %-42s %s\n", "peak RSS, MiB", spread(all, &RunFigures::peak_rss_mib, "%.1f").c_str());
  std::printf("  %-42s %s; API writes", "restart to steady, s", spread(all, &RunFigures::restart_secs, "%.2f").c_str());
  for (const auto& f : all) std::printf(" %lld", static_cast<long long>(f.restart_writes));
  std::printf("\n");
}

bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (i + 1 >= argc) return false;
    std::string v = argv[++i];
    if (a == "--storages")
      o.layout.storages = std::atoi(v.c_str());
    else if (a == "--namespaces")
      o.layout.namespaces = std::atoi(v.c_str());
    else if (a == "--stowage")
      o.stowage = v;
    else if (a == "--qps")
      o.qps = std::atoi(v.c_str());
    else if (a == "--burst")
      o.burst = std::atoi(v.c_str());
    else if (a == "--timeout")
      o.timeout = std::atoi(v.c_str());
    else if (a == "--runs")
      o.runs = std::atoi(v.c_str());
    else if (a == "--wrap") {
      std::istringstream words(v);
      o.wrap.clear();
      for (std::string w; words >> w;) o.wrap.push_back(w);
    } else
      return false;
  }
  return o.layout.storages > 0 && o.layout.namespaces > 0 && o.qps >= 0 && o.burst >= 1 && o.timeout > 0 &&
         o.runs >= 1 && o.runs <= 20;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  Options options;
  if (!parse_options(argc, argv, options)) {
    std::fprintf(stderr,
                 "usage: %s [--storages N (10000)] [--namespaces N (100)] [--stowage PATH (%s)]\n"
                 "          [--qps Q (0 = no client-side limit)] [--burst B (30)] [--timeout SECONDS (240)]\n"
                 "          [--runs N (1)] [--wrap \"COMMAND WORDS\" (put before stowage's command line, e.g.\n"
                 "          \"valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%%p\"; give a longer --timeout)]\n",
                 argv[0], STOWAGE_BINARY);
    return 2;
  }
  if (::access(options.stowage.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "stowage-kube-bench: %s is not an executable; build it or give --stowage PATH\n",
                 options.stowage.c_str());
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  try {
    std::vector<RunFigures> all;
    int rc = 0;
    for (int k = 0; k < options.runs; ++k) {
      if (options.runs > 1) std::printf("\n######## run %d of %d\n", k + 1, options.runs);
      RunFigures figures;
      rc = std::max(rc, run(options, figures));
      all.push_back(figures);
    }
    if (options.runs > 1) print_summary(all, options.layout.storages);
    return rc;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stowage-kube-bench: %s\n", e.what());
    return 1;
  }
}
