// stowage-watch-bench: how fast stowage's informers take in a large cluster, beside the test API
// server's own raw streaming rate measured in the same run, and what they cost in memory.
//
// The test API server (tests/apiserver/apiserver.py, over TLS with a CA made by the openssl CLI) is
// seeded through /__control with S BackupStorages (local provider, ~1 KB each with labels) and K
// Secrets (~200 bytes of data each) across 100 namespaces. Then, in this order:
//  1. Raw list baseline: both collections listed at once as the informers list them (limit 500,
//     resourceVersion=0 first, then continue tokens; the Secrets as PartialObjectMetadataList) by
//     http::Client alone, counting items with a byte scan and never parsing JSON. This isolates
//     "how fast can the server emit this traffic" (TLS and HTTP/1.1 included, on the same client
//     stack the informers use). Measured before and after each informer-side run; the mean of the
//     two is that run's baseline.
//  2. The informer side, in a fresh process (this binary re-executed) so its peak RSS is its own:
//     two kube::Informer (BackupStorages full, parsed with kube::parse_backup_storage (typed only,
//     Unknown::Drop) into an engine::ObjectCache as the engine does; Secrets metadata only, looked up in the cache's
//     secret index as the engine does) with the engine's default client-side rate limit (qps 20,
//     burst 30), on one reactor watched by engine::LagMonitor. Measured:
//     - list + sync: from start until both informers are synced (objects/s);
//     - watch, live: M objects (half BackupStorages, half Secrets) are merge-patched by this process
//       (16 requests in flight) while the informers watch: events/s and how far behind the last
//       write the informers were. The Python server's write rate bounds this figure;
//     - watch, backlog: the informers are stopped at their resourceVersions, M more objects are
//       patched, then new informers resume watching from those resourceVersions (the engine's
//       restart path) and the server replays the M events from its history: events/s consumed.
//     Also the reactor's longest stall per phase, the time the informer takes to hand the listed
//     BackupStorages to the handler, peak RSS and the heap still in use after sync.
//  3. Raw watch baseline: the same M backlog events replayed from the same resourceVersion to
//     http::Client::stream, counting newlines (one event per line), both collections at once. A
//     first raw replay before the informers' makes the server serialize each event once (it caches
//     the line, as a real API server's watch cache does), so the informers and this baseline both
//     read ready-made lines.
// The CPU seconds of the client side and of the server are printed per phase: the server is one
// Python process (the GIL makes it about one core), so where it is saturated the ratio says
// "stowage keeps up with the server" rather than how fast stowage could go.
//
// Usage: stowage-watch-bench [--storages N] [--secrets N] [--namespaces N] [--mutations N] [--qps Q] [--burst B]
//                            [--runs N]
// (--qps/--burst: the informer side's client-side rate limit, the engine's 20/30 by default; --qps 0 = off.
// --runs: informer-side processes, 3 by default, each between raw baselines; the table shows medians, each
// ratio taken within its run, as the machine's other load moves all figures between runs.)
// Exit status: 0 when every object and event was seen, 1 otherwise.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json.hpp>
#include <malloc.h>  // mallinfo2
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "bench_objects.hpp"
#include "bench_support.hpp"
#include "kube/json_path.hpp"
#include "common/crypto.hpp"
#include "common/http_client.hpp"
#include "engine/lag_monitor.hpp"
#include "engine/object_cache.hpp"
#include "kube/api_client.hpp"
#include "kube/client_config.hpp"
#include "kube/informer.hpp"
#include "kube/model.hpp"
#include "support/api_server.hpp"
#include <spdlog/spdlog.h>

namespace fs = std::filesystem;
namespace asio = boost::asio;
namespace json = boost::json;

using Clock = std::chrono::steady_clock;
using namespace stowage;

namespace {

constexpr const char* kGroupVersion = "/apis/storage.kubestash.com/v1alpha1";
using bench::kRoundLabel;
constexpr int kWriters = 16;
constexpr auto kChildLimit = std::chrono::seconds(240);  // the informer side gives up after this
constexpr int kLineTimeoutMs = 240'000;                  // the driver waits this long for each report

using namespace bench;
std::int64_t now_ns() { return Clock::now().time_since_epoch().count(); }  // CLOCK_MONOTONIC: same in both processes

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}


// ------------------------------------------------------------------------------------- the objects

struct Layout {
  int storages = 10000, secrets = 10000, namespaces = 100;
  std::string ns(int i) const { return "ns-" + std::to_string(i % namespaces); }
  std::string storage_name(int i) const { return "bs-" + padded(i); }
  std::string secret_name(int i) const { return "secret-" + padded(i); }
  std::string storage_path(int i) const {
    return std::string(kGroupVersion) + "/namespaces/" + ns(i) + "/backupstorages/" + storage_name(i);
  }
  std::string secret_path(int i) const { return "/api/v1/namespaces/" + ns(i) + "/secrets/" + secret_name(i); }
};

// A BackupStorage as a team would write it: local provider on a hostPath, labels, an annotation,
// the cleanup finalizer, a namespace selector and pod runtime settings (~1 KB as the server stores it).
json::value storage_object(const Layout& l, int i) {
  return bench::backup_storage_object(l.ns(i), l.storage_name(i), i, "0");
}
json::value secret_object(const Layout& l, int i) {
  std::string name = l.secret_name(i);
  std::string password = crypto::base64_encode("p4ss-" + name + "-" + std::string(48, static_cast<char>('a' + i % 26)));
  return json::value{
      {"apiVersion", "v1"},
      {"kind", "Secret"},
      {"metadata",
       {{"name", name},
        {"namespace", l.ns(i)},
        {"labels", {{"app.kubernetes.io/managed-by", "stowage-watch-bench"}, {kRoundLabel, "0"}}}}},
      {"type", "Opaque"},
      {"data",
       {{"RESTIC_PASSWORD", password},
        {"AWS_ACCESS_KEY_ID", crypto::base64_encode("AKIA" + padded(i) + "BENCHKEY00")},
        {"AWS_SECRET_ACCESS_KEY", crypto::base64_encode("bench/secret/" + name + "/0123456789abcdefghijkl")}}}};
}

// ------------------------------------------------------------------ lines between the two processes

using Report = std::map<std::string, std::string>;

void write_line(int fd, const std::string& line) {
  std::string data = line + "\n";
  for (std::size_t sent = 0; sent < data.size();) {
    ssize_t n = ::write(fd, data.data() + sent, data.size() - sent);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
}

// One line from `fd` (without the newline); "" on EOF or after `timeout_ms`.
std::string read_line(int fd, std::string& buffer, int timeout_ms) {
  auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto nl = buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return "";
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return "";
    buffer.append(buf, static_cast<std::size_t>(n));
  }
}

// "word key=value key=value ..." -> {"": word, key: value}
Report parse_report(const std::string& line) {
  Report r;
  std::istringstream in(line);
  std::string word;
  in >> word;
  r[""] = word;
  for (std::string kv; in >> kv;) {
    auto eq = kv.find('=');
    if (eq != std::string::npos) r[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return r;
}

double num(const Report& r, const std::string& key) {
  auto it = r.find(key);
  return it == r.end() ? 0 : std::atof(it->second.c_str());
}

// ------------------------------------------------------------------------------ the informer side

// argv after the flag: URL CA_FILE TOKEN MUTATED_STORAGES MUTATED_SECRETS QPS BURST LIVE_ROUND BACKLOG_ROUND
// FD_IN FD_OUT. Reports one line per phase on FD_OUT ("synced ...", "live ...", "backlog ..." or
// "error ..."); reads "go" on FD_IN. The patches of a round carry the label kRoundLabel=ROUND.
constexpr int kInformerSideArgs = 11;
int informer_side(char** a) {
  spdlog::set_level(spdlog::level::warn);
  const std::string url = a[0], ca_file = a[1], token = a[2];
  const int mutated_storages = std::atoi(a[3]), mutated_secrets = std::atoi(a[4]);
  const double qps = std::atof(a[5]);
  const int burst = std::atoi(a[6]);
  const std::string live_round = a[7], backlog_round = a[8];
  const int fd_in = std::atoi(a[9]), fd_out = std::atoi(a[10]);
  const long rss_start = status_kib("VmRSS");
  auto heap_bytes = [] {
    auto m = ::mallinfo2();
    return static_cast<std::int64_t>(m.uordblks + m.hblkhd);
  };
  auto heap_at = [&] { return static_cast<std::size_t>(heap_bytes() / 1024); };
  const std::size_t heap_start = heap_at();

  asio::io_context io{1};
  http::Client http(io.get_executor());
  kube::ClientConfig config;
  auto server = kube::parse_server_url(url, true);
  if (!server.ok()) {
    write_line(fd_out, "error reason=bad-url");
    return 1;
  }
  config.server = server.value();
  config.ca_pem = test_support::read_text(ca_file);
  config.bearer_token = token;
  kube::ApiClient api(http, config, kube::ApiClientOptions{qps, burst, {}, {}});

  engine::ObjectCache cache;
  int phase = 0;  // 0 list+sync, 1 live watch (round 1), 2 backlog watch (round 2)
  int seen_storages = 0, seen_secrets = 0, invalid = 0;
  std::uint64_t secret_lookups = 0;
  std::int64_t first_event_ns = 0, last_event_ns = 0;
  // The first and last BackupStorage handed over during list+sync: the informer hands each page
  // over as it arrives, in slices of about 1 ms (the reactor's longest stall says how long a turn was).
  Clock::time_point first_replace{}, last_replace{};
  std::unique_ptr<kube::Informer> storage_informer, secret_informer;
  std::vector<std::unique_ptr<kube::Informer>> stopped;  // kept alive: their index is part of the memory
  std::vector<std::unique_ptr<engine::LagMonitor>> lags;
  std::function<void()> phase_done;
  // A phase ends at its last handler call (the time is taken there) but is reported a few ms later,
  // from a timer: a LagMonitor tick made late by that very handler call is then counted before the
  // monitor is stopped (a posted report would run first and stop it, hiding the stall).
  Clock::time_point phase_end{};
  asio::steady_timer report_timer(io);
  auto finish_soon = [&] {
    phase_end = Clock::now();
    report_timer.expires_after(std::chrono::milliseconds(5));
    report_timer.async_wait([&](boost::system::error_code ec) {
      if (!ec) phase_done();
    });
  };
  bool failed = false;
  asio::steady_timer settle(io);  // lets the stopped informers' watches close before round 2 is written

  auto round_seen = [&](const std::string& round, bool storage) {
    if (phase == 0 || round != (phase == 1 ? live_round : backlog_round)) return;
    (storage ? seen_storages : seen_secrets)++;
    last_event_ns = now_ns();
    if (first_event_ns == 0) first_event_ns = last_event_ns;
    if (seen_storages == mutated_storages && seen_secrets == mutated_secrets) finish_soon();
  };
  auto make_informers = [&](const std::string& storages_rv, const std::string& secrets_rv) {
    kube::InformerHandlers sh;
    sh.upserted = [&](json::value o) {  // as engine::KubeWorld::storage_upserted: parse, cache
      auto parsed = kube::parse_backup_storage(o, kube::Unknown::Drop);
      if (!parsed.ok()) {
        ++invalid;
        return;
      }
      std::string round(parsed.value().metadata.labels.get(kRoundLabel));
      cache.upsert(std::move(parsed.value()));
      if (phase == 0) {
        last_replace = Clock::now();
        if (first_replace == Clock::time_point{}) first_replace = last_replace;
      }
      round_seen(round, true);
    };
    sh.removed = [&](const std::string& ns, const std::string& name, json::value) { cache.erase_storage({ns, name}); };
    sh.synced = [&] {
      if (phase == 0 && secret_informer && secret_informer->synced()) finish_soon();
    };
    kube::InformerHandlers xh;  // as KubeWorld's secret handler: which storages use this Secret
    xh.upserted = [&](json::value o) {
      engine::ObjectKey key{kube::metadata_text(o, "namespace"), kube::metadata_text(o, "name")};
      secret_lookups += cache.storages_using_secret(key).size() + 1;
      round_seen(kube::string_at(o, {"metadata", "labels", kRoundLabel}), false);
    };
    xh.synced = [&] {
      if (phase == 0 && storage_informer && storage_informer->synced()) finish_soon();
    };
    kube::InformerOptions so;
    so.name = "backupstorages";
    so.path = std::string(kGroupVersion) + "/backupstorages";
    so.reflector.resume_resource_version = storages_rv;
    kube::InformerOptions xo;
    xo.name = "secrets (metadata only)";
    xo.path = "/api/v1/secrets";
    xo.list_accept = kube::kAcceptPartialMetadataList;
    xo.watch_accept = kube::kAcceptPartialMetadata;
    xo.reflector.resume_resource_version = secrets_rv;
    xo.reflector.seed = 1;
    storage_informer = std::make_unique<kube::Informer>(io.get_executor(), api, std::move(so), std::move(sh));
    secret_informer = std::make_unique<kube::Informer>(io.get_executor(), api, std::move(xo), std::move(xh));
  };
  auto new_lag = [&] {
    lags.push_back(std::make_unique<engine::LagMonitor>(io.get_executor(), std::chrono::milliseconds(1)));
    lags.back()->start();
  };
  auto lag_text = [&] {
    auto& lag = *lags.back();
    lag.stop();
    return "stall_ms=" + fmt("%.1f", lag.longest().count() / 1000.0) +
           " p99_ms=" + fmt("%.1f", lag.percentile(99).count() / 1000.0);
  };

  Clock::time_point t0 = Clock::now();
  double cpu0 = cpu_seconds();
  bool reported = false;
  phase_done = [&] {
    if (reported) return;
    if (phase == 0) {
      if (!storage_informer->synced() || !secret_informer->synced()) return;
      reported = true;
      double secs = std::chrono::duration<double>(phase_end - t0).count(), cpu = cpu_seconds() - cpu0;
      long rss_synced = status_kib("VmRSS");
      std::size_t heap_synced = heap_at();  // what is still allocated: the cache and the informers' indexes
      write_line(
          fd_out,
          "synced secs=" + fmt("%.4f", secs) + " cpu=" + fmt("%.3f", cpu) + " storages=" +
              std::to_string(cache.storages().size()) + " storage_index=" + std::to_string(storage_informer->size()) +
              " secrets=" + std::to_string(secret_informer->size()) + " invalid=" + std::to_string(invalid) +
              " rss_start_kib=" + std::to_string(rss_start) + " rss_synced_kib=" + std::to_string(rss_synced) +
              " heap_start_kib=" + std::to_string(heap_start) + " heap_kib=" + std::to_string(heap_synced) +
              " replace_ms=" +
              fmt("%.1f", std::chrono::duration<double, std::milli>(last_replace - first_replace).count()) +
              " hwm_synced_kib=" + std::to_string(status_kib("VmHWM")) +
              " lists=" + std::to_string(storage_informer->stats().lists + secret_informer->stats().lists) +
              " failures=" + std::to_string(storage_informer->stats().failures + secret_informer->stats().failures) +
              " secret_lookups=" + std::to_string(secret_lookups) + " " + lag_text());
      phase = 1;
      reported = false;
      seen_storages = seen_secrets = 0;
      first_event_ns = 0;
      cpu0 = cpu_seconds();
      new_lag();
      return;
    }
    if (seen_storages != mutated_storages || seen_secrets != mutated_secrets) return;
    reported = true;
    double cpu = cpu_seconds() - cpu0;
    storage_informer->stop();
    secret_informer->stop();
    std::string storages_rv = storage_informer->resource_version(), secrets_rv = secret_informer->resource_version();
    std::string failures = std::to_string(storage_informer->stats().failures + secret_informer->stats().failures);
    stopped.push_back(std::move(storage_informer));
    stopped.push_back(std::move(secret_informer));
    if (phase == 1) {
      std::string line = "live first_ns=" + std::to_string(first_event_ns) +
                         " last_ns=" + std::to_string(last_event_ns) + " cpu=" + fmt("%.3f", cpu) +
                         " failures=" + failures + " " + lag_text();
      settle.expires_after(std::chrono::milliseconds(200));
      settle.async_wait([&, line, storages_rv, secrets_rv](boost::system::error_code ec) {
        if (ec) return;
        write_line(fd_out, line);
        // The driver now writes round 2 while nothing here reads, then says "go" (a blocking read:
        // the informers are stopped and nothing else is due on this reactor).
        std::string buffer;
        if (read_line(fd_in, buffer, kLineTimeoutMs) != "go") {
          write_line(fd_out, "error reason=no-go");
          failed = true;
          io.stop();
          return;
        }
        phase = 2;
        reported = false;
        seen_storages = seen_secrets = 0;
        first_event_ns = 0;
        t0 = Clock::now();
        cpu0 = cpu_seconds();
        new_lag();
        make_informers(storages_rv, secrets_rv);
        storage_informer->start();
        secret_informer->start();
      });
      return;
    }
    double secs = std::chrono::duration<double>(phase_end - t0).count();
    struct rusage ru {};
    ::getrusage(RUSAGE_SELF, &ru);
    const long hwm_kib = status_kib("VmHWM");
    // Where the heap goes, by kind: what freeing each holder gives back (after the peak was read).
    // The cache holds the BackupStorages; each informer's index one key and resourceVersion per object.
    const std::size_t cached_storages = cache.storages().size();
    std::int64_t before = heap_bytes();
    { engine::ObjectCache gone = std::move(cache); }
    const std::int64_t cache_bytes = before - heap_bytes();
    before = heap_bytes();
    stopped[0].reset();  // the BackupStorage informer that listed (the resumed ones know only the events)
    const std::int64_t storage_index_bytes = before - heap_bytes();
    before = heap_bytes();
    stopped[1].reset();  // and its Secret informer
    const std::int64_t secret_index_bytes = before - heap_bytes();
    write_line(fd_out, "backlog secs=" + fmt("%.4f", secs) + " cpu=" + fmt("%.3f", cpu) + " failures=" + failures +
                           " rss_end_kib=" + std::to_string(status_kib("VmRSS")) + " hwm_kib=" +
                           std::to_string(hwm_kib) + " maxrss_kib=" + std::to_string(ru.ru_maxrss) +
                           " cached_storages=" + std::to_string(cached_storages) + " cache_bytes=" +
                           std::to_string(cache_bytes) + " storage_index_bytes=" + std::to_string(storage_index_bytes) +
                           " secret_index_bytes=" + std::to_string(secret_index_bytes) + " " + lag_text());
    io.stop();
  };

  asio::steady_timer limit(io, kChildLimit);
  limit.async_wait([&](boost::system::error_code ec) {
    if (ec) return;
    write_line(fd_out, "error reason=timeout phase=" + std::to_string(phase) + " storages_seen=" +
                           std::to_string(phase == 0 ? cache.storages().size() : std::size_t(seen_storages)) +
                           " secrets_seen=" + std::to_string(seen_secrets));
    failed = true;
    io.stop();
  });
  make_informers("", "");
  new_lag();
  storage_informer->start();
  secret_informer->start();
  io.run();
  return failed ? 1 : 0;
}

// ------------------------------------------------------------------------------------- the driver

struct Target {
  http::Url origin;
  http::TlsSettings tls;
  std::string token;
};

struct RawCount {
  std::uint64_t items = 0, bytes = 0, requests = 0;
  std::string error;
};

std::size_t count_of(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The informer's list traffic without the informer: pages of 500, the first at resourceVersion=0,
// items counted by their "uid" (one per object in the server's compact JSON), bodies never parsed.
asio::awaitable<void> raw_list(http::Client& client, const Target& t, std::string path, std::string accept,
                               RawCount& out) {
  std::string token;
  for (bool first = true;; first = false) {
    std::string target = path + "?limit=500";
    if (first)
      target += "&resourceVersion=0";
    else
      target += "&continue=" + http::uri_encode(token, false);
    http::Request request{"GET", target, {{"Accept", accept}, {"Authorization", "Bearer " + t.token}}, ""};
    http::Url origin = t.origin;
    http::TlsSettings tls = t.tls;
    auto result = co_await client.send(origin, tls, request);
    ++out.requests;
    if (!result.ok() || result.value().status != 200) {
      out.error = result.ok() ? "HTTP " + std::to_string(result.value().status) : result.error().message;
      co_return;
    }
    std::string_view body = result.value().body;
    out.bytes += body.size();
    out.items += count_of(body, "\"uid\":\"");
    static constexpr std::string_view kContinue = "\"continue\":\"";
    auto at = body.find(kContinue);
    if (at == std::string_view::npos) co_return;
    at += kContinue.size();
    token = std::string(body.substr(at, body.find('"', at) - at));
    if (token.empty()) co_return;
  }
}

// The informer's watch traffic without the informer: the same query and Accept header, newlines
// counted (the server writes one event per line), until `want` events.
asio::awaitable<void> raw_watch(http::Client& client, const Target& t, std::string path, std::string accept,
                                std::string resource_version, std::uint64_t want, RawCount& out) {
  std::string target =
      path + "?watch=1&resourceVersion=" + resource_version + "&timeoutSeconds=120&allowWatchBookmarks=true";
  http::Request request{"GET", target, {{"Accept", accept}, {"Authorization", "Bearer " + t.token}}, ""};
  http::Url origin = t.origin;
  http::TlsSettings tls = t.tls;
  int status = 0;
  std::function<void(const http::Response&)> on_head = [&](const http::Response& head) { status = head.status; };
  std::function<bool(std::string_view)> on_data = [&](std::string_view data) {
    out.bytes += data.size();
    out.items += static_cast<std::uint64_t>(std::count(data.begin(), data.end(), '\n'));
    return out.items < want;
  };
  std::chrono::milliseconds idle(30'000);
  ++out.requests;
  auto result = co_await client.stream(origin, tls, request, on_head, on_data, idle);
  if (!result.ok()) out.error = result.error().message;
  if (status != 200) out.error = "HTTP " + std::to_string(status);
  if (out.error.empty() && out.items < want)
    out.error = "the watch ended after " + std::to_string(out.items) + " events";
}

struct RawResult {
  double secs = 0, client_cpu = 0, server_cpu = 0;
  std::uint64_t items = 0, bytes = 0;
  std::string error;
};

// Both collections at once on one reactor, as the two informers run.
RawResult raw_phase(const Target& t, pid_t server_pid, bool watch, const std::string& storages_rv,
                    const std::string& secrets_rv, std::uint64_t want_storages, std::uint64_t want_secrets) {
  asio::io_context io{1};
  http::Client client(io.get_executor());
  RawCount storages, secrets;
  std::string storages_path = std::string(kGroupVersion) + "/backupstorages", secrets_path = "/api/v1/secrets";
  RawResult r;
  double cpu0 = cpu_seconds(), server0 = process_cpu_seconds(server_pid);
  auto t0 = Clock::now();
  if (watch) {
    asio::co_spawn(io, raw_watch(client, t, storages_path, "application/json", storages_rv, want_storages, storages),
                   asio::detached);
    asio::co_spawn(io,
                   raw_watch(client, t, secrets_path, kube::kAcceptPartialMetadata, secrets_rv, want_secrets, secrets),
                   asio::detached);
  } else {
    asio::co_spawn(io, raw_list(client, t, storages_path, "application/json", storages), asio::detached);
    asio::co_spawn(io, raw_list(client, t, secrets_path, kube::kAcceptPartialMetadataList, secrets), asio::detached);
  }
  io.run();
  r.secs = seconds_since(t0);
  r.client_cpu = cpu_seconds() - cpu0;
  r.server_cpu = process_cpu_seconds(server_pid) - server0;
  r.items = storages.items + secrets.items;
  r.bytes = storages.bytes + secrets.bytes;
  if (!storages.error.empty()) r.error = "backupstorages: " + storages.error;
  if (!secrets.error.empty()) r.error += (r.error.empty() ? "" : "; ") + std::string("secrets: ") + secrets.error;
  if (r.error.empty() && (storages.items != want_storages || secrets.items != want_secrets))
    r.error = "counted " + std::to_string(storages.items) + " BackupStorages and " + std::to_string(secrets.items) +
              " Secrets, expected " + std::to_string(want_storages) + " and " + std::to_string(want_secrets);
  return r;
}

struct WriteResult {
  double secs = 0, server_cpu = 0;
  std::int64_t start_ns = 0, end_ns = 0;
  int failed = 0;
  std::string first_error;
};

// Merge-patches the first `storages` BackupStorages and `secrets` Secrets (alternating), with
// `kWriters` requests in flight: label round=R, plus a spec change (BackupStorage: its generation
// moves, as when a user edits it) or a data change (Secret). One event each.
WriteResult write_round(const kube::ClientConfig& config, pid_t server_pid, const Layout& l, int round, int storages,
                        int secrets) {
  std::vector<std::pair<std::string, json::value>> patches;
  std::string r = std::to_string(round);
  for (int i = 0; i < std::max(storages, secrets); ++i) {
    if (i < storages)
      patches.emplace_back(
          l.storage_path(i),
          json::value{
              {"metadata", {{"labels", {{kRoundLabel, r}}}}},
              {"spec", {{"storage", {{"local", {{"subPath", l.ns(i) + "/" + l.storage_name(i) + "/r" + r}}}}}}}});
    if (i < secrets)
      patches.emplace_back(l.secret_path(i), json::value{{"metadata", {{"labels", {{kRoundLabel, r}}}}},
                                                         {"data", {{"ROUND", crypto::base64_encode(r)}}}});
  }
  asio::io_context io{1};
  http::Client http(io.get_executor());
  kube::ApiClient api(http, config, kube::ApiClientOptions{0, 0, {}, {}});  // no client-side limit: a load generator
  WriteResult w;
  std::size_t next = 0;
  auto worker = [&]() -> asio::awaitable<void> {
    while (next < patches.size()) {
      std::size_t k = next++;
      std::string path = patches[k].first;
      std::string content_type = kube::kMergePatch;
      json::value body = patches[k].second;
      auto result = co_await api.patch(path, content_type, body);
      if (!result.ok()) {
        ++w.failed;
        if (w.first_error.empty()) w.first_error = result.error().message;
      }
    }
  };
  double server0 = process_cpu_seconds(server_pid);
  auto t0 = Clock::now();
  w.start_ns = now_ns();
  for (int i = 0; i < kWriters; ++i) asio::co_spawn(io, worker(), asio::detached);
  io.run();
  w.end_ns = now_ns();
  w.secs = seconds_since(t0);
  w.server_cpu = process_cpu_seconds(server_pid) - server0;
  return w;
}

std::string rv_of(const json::value& stats) {
  const auto* rv = stats.as_object().if_contains("resourceVersion");
  return rv && rv->is_string() ? std::string(rv->get_string()) : std::string();
}

struct Child {
  pid_t pid = -1;
  int to_child = -1, from_child = -1;
  std::string buffer;
  ~Child() {
    if (to_child >= 0) ::close(to_child);
    if (from_child >= 0) ::close(from_child);
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  Report next(const char* expected, std::string& error) {
    auto line = read_line(from_child, buffer, kLineTimeoutMs);
    auto r = parse_report(line);
    if (r[""] != expected)
      error = "the informer side " +
              (line.empty() ? std::string("said nothing (exited or timed out)") : "said: " + line) +
              " (waiting for \"" + expected + "\")";
    return r;
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  }
};

void spawn(Child& c, const std::vector<std::string>& args) {
  int down[2], up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) throw std::runtime_error("pipe failed");
  // The binary's own path (readlink, not exec of /proc/self/exe: under valgrind that link names
  // the tool, and `valgrind --trace-children=yes` must see this binary started again).
  std::error_code ec;
  std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  if (ec) self = "/proc/self/exe";
  std::vector<std::string> argv{self, "--informer-side"};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(std::to_string(down[0]));
  argv.push_back(std::to_string(up[1]));
  c.pid = ::fork();
  if (c.pid == 0) {
    ::close(down[1]);
    ::close(up[0]);
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(self.c_str(), raw.data());
    ::_exit(127);
  }
  ::close(down[0]);
  ::close(up[1]);
  c.to_child = down[1];
  c.from_child = up[0];
}

struct Options {
  Layout layout;
  int mutations = 5000;
  int qps = 20, burst = 30;  // the informer side's client-side rate limit: the engine's defaults (kube.qps/burst)
  int runs = 3;              // informer-side processes, each with its baselines; the table shows medians
};

bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](int& out) {
      if (i + 1 >= argc) return false;
      out = std::atoi(argv[++i]);
      return true;
    };
    bool ok = false;
    if (a == "--storages")
      ok = value(o.layout.storages);
    else if (a == "--secrets")
      ok = value(o.layout.secrets);
    else if (a == "--namespaces")
      ok = value(o.layout.namespaces);
    else if (a == "--mutations")
      ok = value(o.mutations);
    else if (a == "--qps")
      ok = value(o.qps);
    else if (a == "--burst")
      ok = value(o.burst);
    else if (a == "--runs")
      ok = value(o.runs);
    if (!ok) return false;
  }
  return o.layout.storages > 0 && o.layout.secrets > 0 && o.layout.namespaces > 0 && o.mutations > 1 && o.qps >= 0 &&
         o.burst >= 1 && o.runs >= 1;
}

// One run of the informer side with its baselines.
struct RunFigures {
  RawResult list_before, list_after, watch_raw;
  Report synced, live, backlog;
  double sync_server_cpu = 0, backlog_server_cpu = 0;
  WriteResult live_write;
  double list_rate(int objects) const { return 2.0 * objects / (list_before.secs + list_after.secs); }
  double sync_rate(int objects) const { return objects / num(synced, "secs"); }
  // From the first patch sent to the last event handled.
  double live_rate(int events) const {
    return events / ((num(live, "last_ns") - static_cast<double>(live_write.start_ns)) / 1e9);
  }
};

double worst(std::vector<RunFigures>& runs, const char* phase) {
  double out = 0;
  for (auto& r : runs) {
    const Report& rep = std::string(phase) == "synced" ? r.synced : std::string(phase) == "live" ? r.live : r.backlog;
    out = std::max(out, num(rep, "stall_ms"));
  }
  return out;
}

double total_failures(std::vector<RunFigures>& runs) {
  double out = 0;
  for (auto& r : runs) out += num(r.synced, "failures") + num(r.live, "failures") + num(r.backlog, "failures");
  return out;
}

void print_raw(const char* what, const RawResult& r, const char* unit) {
  if (!r.error.empty()) return;
  std::printf("  %s: %llu %s (%.1f MiB) in %.2f s = %.0f %s/s; cpu: client %.2f s, server %.2f s\n", what,
              static_cast<unsigned long long>(r.items), unit, r.bytes / 1048576.0, r.secs, r.items / r.secs, unit,
              r.client_cpu, r.server_cpu);
  std::fflush(stdout);
}

std::string limit_text(const Options& o) {
  return o.qps == 0 ? std::string("off")
                    : "qps " + std::to_string(o.qps) + ", burst " + std::to_string(o.burst) +
                          (o.qps == 20 && o.burst == 30 ? " (the engine's defaults)" : "");
}

int run(const Options& opt) {
  const Layout& l = opt.layout;
  const int objects = l.storages + l.secrets;
  const int mutated_storages = std::min(opt.mutations / 2, l.storages);
  const int mutated_secrets = std::min(opt.mutations - opt.mutations / 2, l.secrets);
  const int mutated = mutated_storages + mutated_secrets;
  const int writes = 2 * mutated * opt.runs;
  auto total = Clock::now();
  std::vector<std::string> problems;
  auto check = [&](const std::string& what, const std::string& error) {
    if (!error.empty()) {
      problems.push_back(what + ": " + error);
      std::printf("  FAILED %s: %s\n", what.c_str(), error.c_str());
    }
    return error.empty();
  };

  char host[256] = {};
  ::gethostname(host, sizeof host);
  std::printf("stowage-watch-bench on %s: %s, %ld cores (load average %s)\n", host, cpu_model().c_str(),
              ::sysconf(_SC_NPROCESSORS_ONLN), load_average().c_str());
  std::printf(
      "%d BackupStorages + %d Secrets in %d namespaces on the test API server (Python, TLS, loopback); "
      "%d objects patched per watch round; informer client-side limit %s\n\n",
      l.storages, l.secrets, l.namespaces, mutated, limit_text(opt).c_str());
  std::fflush(stdout);

  auto dir = test_support::fresh_temp_dir("watch-bench");
  const std::string bearer = "watch-bench-token";
  std::string history = std::to_string(std::max(100000, 2 * (objects + writes + l.namespaces)));
  test_support::TestApiServer server(dir, bearer, {"--history", history});
  const pid_t server_pid = server.proc.pid();

  // Seed in batches through /__control.
  auto t_seed = Clock::now();
  std::size_t storage_bytes = 0, secret_bytes = 0;
  for (int kind = 0; kind < 2; ++kind) {
    int n = kind == 0 ? l.storages : l.secrets;
    for (int start = 0; start < n; start += 1000) {
      json::array batch;
      for (int i = start; i < std::min(n, start + 1000); ++i)
        batch.push_back(kind == 0 ? storage_object(l, i) : secret_object(l, i));
      server.control(json::value{{"action", "create"}, {"objects", std::move(batch)}});
    }
  }
  auto seeded_rv = rv_of(server.stats());
  Target target{http::Url::parse(server.url()).value(), http::TlsSettings(server.certs.ca_pem()), bearer};
  {
    // Object sizes as served, from one GET each (with a throwaway reactor).
    asio::io_context io{1};
    http::Client client(io.get_executor());
    auto get = [&](std::string path, std::size_t& out) -> asio::awaitable<void> {
      http::Request request{"GET", path, {{"Authorization", "Bearer " + bearer}}, ""};
      http::Url origin = target.origin;
      http::TlsSettings tls = target.tls;
      auto r = co_await client.send(origin, tls, request);
      if (r.ok()) out = r.value().body.size();
    };
    asio::co_spawn(io, get(l.storage_path(0), storage_bytes), asio::detached);
    asio::co_spawn(io, get(l.secret_path(0), secret_bytes), asio::detached);
    io.run();
  }
  std::printf(
      "seeded in %.1f s through /__control (resourceVersion %s); one BackupStorage is %zu bytes of JSON, "
      "one Secret %zu\n",
      seconds_since(t_seed), seeded_rv.c_str(), storage_bytes, secret_bytes);
  std::fflush(stdout);

  // Warm the server's paths once (first-request costs), then the runs.
  const auto want_storages = static_cast<std::uint64_t>(l.storages),
             want_secrets = static_cast<std::uint64_t>(l.secrets);
  const auto want_mutated_storages = static_cast<std::uint64_t>(mutated_storages),
             want_mutated_secrets = static_cast<std::uint64_t>(mutated_secrets);
  raw_phase(target, server_pid, false, "", "", want_storages, want_secrets);
  kube::ClientConfig config;
  config.server = kube::parse_server_url(server.url(), true).value();
  config.ca_pem = server.certs.ca_pem();
  config.bearer_token = bearer;

  std::vector<RunFigures> runs;
  auto list_before = raw_phase(target, server_pid, false, "", "", want_storages, want_secrets);
  for (int k = 0; k < opt.runs && problems.empty(); ++k) {
    std::printf("\nrun %d of %d\n", k + 1, opt.runs);
    RunFigures f;
    f.list_before = list_before;
    if (!check("raw list", f.list_before.error)) break;
    print_raw("raw list baseline", f.list_before, "objects");

    Child child;
    spawn(child, {server.url(), server.certs.ca_cert.string(), bearer, std::to_string(mutated_storages),
                  std::to_string(mutated_secrets), std::to_string(opt.qps), std::to_string(opt.burst),
                  std::to_string(2 * k + 1), std::to_string(2 * k + 2)});
    std::string error;
    double server0 = process_cpu_seconds(server_pid);
    f.synced = child.next("synced", error);
    f.sync_server_cpu = process_cpu_seconds(server_pid) - server0;
    if (!check("informer list+sync", error)) break;
    if (num(f.synced, "storages") != l.storages || num(f.synced, "secrets") != l.secrets ||
        num(f.synced, "invalid") != 0) {
      check("informer list+sync", "synced with " + f.synced["storages"] + " BackupStorages (" + f.synced["invalid"] +
                                      " unreadable) and " + f.synced["secrets"] + " Secrets");
      break;
    }
    std::printf(
        "  informers: %d objects synced in %.2f s = %.0f objects/s (%s list requests); cpu: informer side "
        "%.2f s, server %.2f s; reactor longest stall %s ms, p99 %s ms\n",
        objects, num(f.synced, "secs"), f.sync_rate(objects), f.synced["lists"].c_str(), num(f.synced, "cpu"),
        f.sync_server_cpu, f.synced["stall_ms"].c_str(), f.synced["p99_ms"].c_str());
    std::fflush(stdout);

    // Watch, live: a round written while the informers watch.
    f.live_write = write_round(config, server_pid, l, 2 * k + 1, mutated_storages, mutated_secrets);
    check("patches (live round)",
          f.live_write.failed ? std::to_string(f.live_write.failed) + " failed: " + f.live_write.first_error : "");
    f.live = child.next("live", error);
    if (!check("informer watch (live)", error)) break;
    std::printf(
        "  watch, live: %d patches written in %.2f s = %.0f/s (server cpu %.2f s); the informers handled the "
        "last event %.1f ms after the last write was answered (negative: before) = %.0f events/s; informer "
        "cpu %.2f s, longest stall %s ms\n",
        mutated, f.live_write.secs, mutated / f.live_write.secs, f.live_write.server_cpu,
        (num(f.live, "last_ns") - static_cast<double>(f.live_write.end_ns)) / 1e6, f.live_rate(mutated),
        num(f.live, "cpu"), f.live["stall_ms"].c_str());
    std::fflush(stdout);

    // Watch, backlog: a round written while the informers are stopped, then replayed to them.
    std::string rv_before = rv_of(server.stats());
    auto backlog_write = write_round(config, server_pid, l, 2 * k + 2, mutated_storages, mutated_secrets);
    check("patches (backlog round)",
          backlog_write.failed ? std::to_string(backlog_write.failed) + " failed: " + backlog_write.first_error : "");
    // The server writes each event's JSON line once, for the first plain-JSON watcher that reads it,
    // and reuses it (as a real API server's watch cache does). One raw replay first, so the informers
    // and the raw baseline after them both read the lines ready-made.
    auto warm = raw_phase(target, server_pid, true, rv_before, rv_before, want_mutated_storages, want_mutated_secrets);
    check("raw watch (first replay)", warm.error);
    print_raw("raw watch, first replay (the server serializes each BackupStorage event here)", warm, "events");
    double server1 = process_cpu_seconds(server_pid);
    write_line(child.to_child, "go");
    f.backlog = child.next("backlog", error);
    f.backlog_server_cpu = process_cpu_seconds(server_pid) - server1;
    if (!check("informer watch (backlog)", error)) break;
    std::printf(
        "  watch, backlog: %d events replayed to resumed informers in %.2f s = %.0f events/s; cpu: informer "
        "side %.2f s, server %.2f s; longest stall %s ms\n",
        mutated, num(f.backlog, "secs"), mutated / num(f.backlog, "secs"), num(f.backlog, "cpu"), f.backlog_server_cpu,
        f.backlog["stall_ms"].c_str());
    int status = child.wait();
    if (!check("informer side", status == 0 ? "" : "exited with status " + std::to_string(status))) break;
    f.watch_raw =
        raw_phase(target, server_pid, true, rv_before, rv_before, want_mutated_storages, want_mutated_secrets);
    if (!check("raw watch", f.watch_raw.error)) break;
    print_raw("raw watch baseline (the same events again)", f.watch_raw, "events");

    list_before = raw_phase(target, server_pid, false, "", "", want_storages, want_secrets);
    if (!check("raw list", list_before.error)) break;
    f.list_after = list_before;
    if (k + 1 == opt.runs) print_raw("raw list baseline again", f.list_after, "objects");
    runs.push_back(std::move(f));
  }

  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!problems.empty() || runs.empty()) {
    std::printf("\nFAILED: %zu problem(s); first: %s\n", problems.size(),
                problems.empty() ? "no run completed" : problems.front().c_str());
    return 1;
  }

  // The table: medians over the runs; each ratio is taken within its run (baselines measured just
  // before and after it), then the median of those.
  auto median = [&](const std::function<double(RunFigures&)>& of) {
    std::vector<double> v;
    for (auto& r : runs) v.push_back(of(r));
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  auto cpus = [](double client, double server) { return fmt("%.2f", client) + " / " + fmt("%.2f", server); };
  std::printf(
      "\n== stowage-watch-bench: %s, %ld cores; %d BackupStorages + %d Secrets (%d namespaces); informer "
      "limit %s; median of %zu run(s)\n",
      cpu_model().c_str(), ::sysconf(_SC_NPROCESSORS_ONLN), l.storages, l.secrets, l.namespaces,
      limit_text(opt).c_str(), runs.size());
  std::printf("%-32s %7s %12s %12s %6s %18s %18s\n", "phase", "objects", "raw/s", "informers/s", "ratio",
              "raw cpu cli/srv s", "inf. cpu cli/srv s");
  std::printf("%-32s %7d %12.0f %12.0f %6.2f %18s %18s\n", "list + sync (both kinds at once)", objects,
              median([&](RunFigures& r) { return r.list_rate(objects); }),
              median([&](RunFigures& r) { return r.sync_rate(objects); }),
              median([&](RunFigures& r) { return r.sync_rate(objects) / r.list_rate(objects); }),
              cpus(median([](RunFigures& r) { return (r.list_before.client_cpu + r.list_after.client_cpu) / 2; }),
                   median([](RunFigures& r) { return (r.list_before.server_cpu + r.list_after.server_cpu) / 2; }))
                  .c_str(),
              cpus(median([](RunFigures& r) { return num(r.synced, "cpu"); }),
                   median([](RunFigures& r) { return r.sync_server_cpu; }))
                  .c_str());
  std::printf("%-32s %7d %12.0f %12.0f %6.2f %18s %18s\n", "watch, backlog replay (events)", mutated,
              median([&](RunFigures& r) { return mutated / r.watch_raw.secs; }),
              median([&](RunFigures& r) { return mutated / num(r.backlog, "secs"); }),
              median([&](RunFigures& r) { return r.watch_raw.secs / num(r.backlog, "secs"); }),
              cpus(median([](RunFigures& r) { return r.watch_raw.client_cpu; }),
                   median([](RunFigures& r) { return r.watch_raw.server_cpu; }))
                  .c_str(),
              cpus(median([](RunFigures& r) { return num(r.backlog, "cpu"); }),
                   median([](RunFigures& r) { return r.backlog_server_cpu; }))
                  .c_str());
  std::printf("%-32s %7d %12.0f %12.0f %6.2f %18s %18s\n", "watch, live (raw = patches/s)", mutated,
              median([&](RunFigures& r) { return mutated / r.live_write.secs; }),
              median([&](RunFigures& r) { return r.live_rate(mutated); }),
              median([&](RunFigures& r) { return r.live_rate(mutated) * r.live_write.secs / mutated; }), "-",
              cpus(median([](RunFigures& r) { return num(r.live, "cpu"); }),
                   median([](RunFigures& r) { return r.live_write.server_cpu; }))
                  .c_str());
  double peak_mib = 0;
  for (auto& r : runs) peak_mib = std::max(peak_mib, num(r.backlog, "hwm_kib") / 1024.0);
  const Report& first = runs.front().synced;
  double start_mib = num(first, "rss_start_kib") / 1024.0, heap_mib = num(first, "heap_kib") / 1024.0,
         heap_start_mib = num(first, "heap_start_kib") / 1024.0;
  std::printf(
      "peak RSS of the informer process: %.1f MiB (%.1f MiB at start, %.1f MiB just after sync) = %.0f bytes "
      "per object above start\n",
      peak_mib, start_mib, num(first, "rss_synced_kib") / 1024.0, (peak_mib - start_mib) * 1048576.0 / objects);
  std::printf("heap in use just after sync (mallinfo2): %.1f MiB (%.1f MiB at start) = %.0f bytes per object\n",
              heap_mib, heap_start_mib, (heap_mib - heap_start_mib) * 1048576.0 / objects);
  // By kind, from the heap each holder gave back when freed at the end of the first run.
  const Report& end = runs.front().backlog;
  double per_storage_cache = num(end, "cache_bytes") / std::max(l.storages, 1),
         per_storage_index = num(end, "storage_index_bytes") / std::max(l.storages, 1),
         per_secret = num(end, "secret_index_bytes") / std::max(l.secrets, 1);
  std::printf(
      "heap bytes by kind (freed at the end of the first run): %.0f per BackupStorage (%.0f in the cache + %.0f in "
      "the informer's index), %.0f per Secret (metadata only: its key and resourceVersion in the informer's index)\n",
      per_storage_cache + per_storage_index, per_storage_cache, per_storage_index, per_secret);
  std::printf(
      "reactor longest stall (worst run): %.1f ms during list+sync, %.1f ms live, %.1f ms backlog; handing the "
      "%d listed BackupStorages to the handler spanned %.1f ms from the first to the last (median; page by page, "
      "in slices of ~1 ms)\n",
      worst(runs, "synced"), worst(runs, "live"), worst(runs, "backlog"), l.storages,
      median([](RunFigures& r) { return num(r.synced, "replace_ms"); }));
  std::printf("informer retries (Waits) over all runs: %.0f\n", total_failures(runs));
  std::printf("total %.1f s; load average now %s\n", seconds_since(total), load_average().c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 + kInformerSideArgs && std::string(argv[1]) == "--informer-side") return informer_side(argv + 2);
  spdlog::set_level(spdlog::level::warn);
  Options options;
  if (!parse_options(argc, argv, options)) {
    std::fprintf(
        stderr,
        "usage: %s [--storages N (10000)] [--secrets N (10000)] [--namespaces N (100)] [--mutations N (5000)]\n"
        "          [--qps Q (20; 0 = no client-side limit)] [--burst B (30)] [--runs N (3)]\n",
        argv[0]);
    return 2;
  }
  try {
    return run(options);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stowage-watch-bench: %s\n", e.what());
    return 1;
  }
}
