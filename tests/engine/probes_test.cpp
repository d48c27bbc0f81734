// The metrics and probe listeners on loopback: every family served and accepted by the real
// `promtool check metrics`, fetched with our http::Client and with curl (or python3); /healthz,
// /readyz, 404 and 405; keep-alive; slow clients cut off without holding up others; limits; a
// taken port; controller-runtime's bind address forms. The reactor runs on a thread of its own
// so the test thread can play blocking clients.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/http_client.hpp"
#include "common/liveness.hpp"
#include "common/metrics.hpp"
#include "engine/facts.hpp"
#include "engine/metrics.hpp"
#include "engine/object_cache.hpp"
#include "engine/probes.hpp"
#include "kube/conditions.hpp"
#include "engine/support.hpp"

using namespace stowage;
using namespace std::chrono_literals;
namespace asio = boost::asio;

namespace {

// Runs `io` on a thread until destroyed. Declare it after the servers it serves, so it stops (and
// joins) before they are destroyed.
class ReactorThread {
 public:
  explicit ReactorThread(asio::io_context& io)
      : io_(io), guard_(asio::make_work_guard(io)), thread_([&io] { io.run(); }) {}
  ~ReactorThread() {
    io_.stop();
    thread_.join();
  }

 private:
  asio::io_context& io_;
  asio::executor_work_guard<asio::io_context::executor_type> guard_;
  std::thread thread_;
};

http::HttpResult fetch(int port, const std::string& method, const std::string& target, http::Client* shared = nullptr,
                       asio::io_context* shared_io = nullptr) {
  asio::io_context own_io;
  asio::io_context& io = shared_io ? *shared_io : own_io;
  http::Client own(io.get_executor());
  http::Client& client = shared ? *shared : own;
  auto origin = http::Url::parse("http://127.0.0.1:" + std::to_string(port)).value();
  auto future = asio::co_spawn(io, client.send(origin, {}, http::Request{method, target, {}, ""}), asio::use_future);
  io.restart();
  io.run();
  return future.get();
}

// A shell command's output (stdout and stderr) and exit status.
std::pair<std::string, int> shell(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return {"popen failed", -1};
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;) out.append(buf, n);
  int status = ::pclose(pipe);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

bool have(const std::string& program) { return shell("command -v " + program).second == 0; }

// A blocking loopback socket, for clients that misbehave on purpose.
struct RawClient {
  int fd = -1;
  explicit RawClient(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~RawClient() { ::close(fd); }
  // True while the server keeps the connection open and has sent nothing (a non-blocking peek).
  bool still_waiting() const {
    char c;
    return ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
  void send(const std::string& bytes) const { ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL); }
  // Everything the server sends until it closes (or 10 s pass); "" when it closed without a word.
  std::string read_to_close() {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<std::size_t>(n));
    closed_by_server = n == 0;  // else the 10 s receive timeout ended the read
    return out;
  }
  bool closed_by_server = false;  // the last read_to_close ended because the server closed
};

struct Readiness {
  std::mutex mutex;
  std::optional<std::string> reason;
  engine::ReadinessCheck check() {
    return [this] {
      std::lock_guard lock(mutex);
      return reason;
    };
  }
  void set(std::optional<std::string> r) {
    std::lock_guard lock(mutex);
    reason = std::move(r);
  }
};

// Every family, with samples, as the engine will fill them.
void populate(engine::Metrics& m) {
  using engine::ReconcileResult;
  m.controller_started("backupstorage", 16);
  m.reconcile_finished("backupstorage", ReconcileResult::Success, 120ms);
  m.reconcile_finished("backupstorage", ReconcileResult::Success, 40ms);
  m.reconcile_finished("backupstorage", ReconcileResult::Error, 2500ms);
  m.reconcile_finished("backupstorage", ReconcileResult::RequeueAfter, 7ms);
  m.active_workers.inc({"backupstorage"});
  m.workqueue_depth.set({"backupstorage"}, 3);
  m.workqueue_adds_total.inc({"backupstorage"}, 7);
  m.workqueue_queue_duration_seconds.observe({"backupstorage"}, 0.0004);
  m.workqueue_work_duration_seconds.observe({"backupstorage"}, 0.12);
  m.workqueue_retries_total.inc({"backupstorage"});
  m.workqueue_unfinished_work_seconds.set({"backupstorage"}, 0.5);
  m.workqueue_longest_running_processor_seconds.set({"backupstorage"}, 0.5);
  m.rest_request_finished(200, "GET", "10.96.0.1:443", 30ms);
  m.rest_request_finished(409, "PUT", "10.96.0.1:443", 12ms);
  m.rest_request_finished(std::nullopt, "GET", "10.96.0.1:443", 10s);
  m.leader_election_master_status.set({"stowage-leader"}, 1);
  m.leader_election_master_status.set({"odd \"lease\" \\ with\na newline"}, 0);  // escaping, end to end
  m.backend_uploads_total.inc({"s3", "success"});
  m.backend_uploads_total.inc({"gcs", "error"});
  m.backend_request_duration_seconds.observe({"s3", "put"}, 0.3);
  m.backend_request_duration_seconds.observe({"azure", "list"}, 0.05);
  m.event_loop_sampled(2ms);
  m.event_loop_sampled(80ms);
  m.event_loop_sampled(1ms);
  m.backupstorages.set({"Ready"}, 2);
  m.backupstorages.set({"NotReady"}, 1);
  m.storages_observed({{"demo", "s3-a", "s3", true, 1767225600.5, false},
                       {"demo", "odd \"name\"", "local", false, std::nullopt, true}});
}

const std::vector<std::string> kFamilies = {
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds",
    "controller_runtime_active_workers",
    "controller_runtime_max_concurrent_reconciles",
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds",
    "workqueue_retries_total",
    "workqueue_unfinished_work_seconds",
    "workqueue_longest_running_processor_seconds",
    "rest_client_requests_total",
    "rest_client_request_duration_seconds",
    "leader_election_master_status",
    "stowage_backend_uploads_total",
    "stowage_backend_request_duration_seconds",
    "stowage_event_loop_lag_seconds",
    "stowage_event_loop_lag_distribution_seconds",
    "stowage_event_loop_longest_stall_seconds",
    "stowage_backupstorages",
    "stowage_backupstorage_ready",
    "stowage_backupstorage_last_initialized_timestamp_seconds",
    "stowage_backupstorage_wipeout_failed",
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TEST_CASE("metrics: every family is served and the real promtool check metrics accepts it") {
  auto dir = test::temp_dir("probes-metrics");
  metrics::Registry registry;
  engine::Metrics m(registry);
  populate(m);
  const std::string expected = registry.expose();
  for (const auto& family : kFamilies) {
    INFO(family);
    CHECK(expected.find("# TYPE " + family + " ") != std::string::npos);
  }
  CHECK(expected.find("controller_runtime_reconcile_total{controller=\"backupstorage\",result=\"requeue\"} 0\n") !=
        std::string::npos);
  CHECK(expected.find("controller_runtime_reconcile_errors_total{controller=\"backupstorage\"} 1\n") !=
        std::string::npos);
  CHECK(expected.find("rest_client_requests_total{code=\"<error>\",method=\"GET\",host=\"10.96.0.1:443\"} 1\n") !=
        std::string::npos);
  CHECK(expected.find("stowage_event_loop_longest_stall_seconds 0.08\n") != std::string::npos);
  CHECK(expected.find("workqueue_queue_duration_seconds_bucket{name=\"backupstorage\",le=\"0.001\"} 1\n") !=
        std::string::npos);

  asio::io_context io;
  engine::HttpServer server(io.get_executor(), std::string(engine::kMetricsBindAddressFlag));
  engine::serve_metrics(server, registry);
  REQUIRE(server.start("127.0.0.1:0").ok());
  const int port = server.port();
  ReactorThread reactor(io);

  // Our own client.
  auto r = fetch(port, "GET", "/metrics");
  REQUIRE(r.ok());
  CHECK(r.value().status == 200);
  CHECK(r.value().header("content-type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(r.value().body == expected);

  // Someone else's client: curl, else python3's urllib.
  const auto body_file = dir / "metrics.txt";
  const auto head_file = dir / "headers.txt";
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/metrics";
  if (have("curl")) {
    auto [out, rc] = shell("curl -sS --max-time 20 -D " + head_file.string() + " -o " + body_file.string() + " " + url);
    INFO(out);
    REQUIRE(rc == 0);
    CHECK(lower(test::read_file(head_file)).find("content-type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
          std::string::npos);
  } else {
    auto [out, rc] = shell("python3 -c 'import sys, urllib.request\n"
                           "r = urllib.request.urlopen(sys.argv[1], timeout=20)\n"
                           "assert r.headers[\"Content-Type\"] == \"text/plain; version=0.0.4; charset=utf-8\"\n"
                           "open(sys.argv[2], \"wb\").write(r.read())' " +
                           url + " " + body_file.string());
    INFO(out);
    REQUIRE(rc == 0);
  }
  CHECK(test::read_file(body_file) == expected);

  // The real parser and linter. Missing promtool is a failure: CI installs it (.ci/install-deps).
  INFO("promtool comes with the Debian package prometheus (apt-get install prometheus; .ci/install-deps does it)");
  REQUIRE(have("promtool"));
  auto [lint, rc] = shell("promtool check metrics < " + body_file.string());
  INFO(lint);
  CHECK(rc == 0);
  CHECK(lint.empty());
}

namespace {

kube::BackupStorage storage_for_metrics(const std::string& ns, const std::string& name, const std::string& provider,
                                        const std::string& phase) {
  kube::BackupStorage s;
  s.metadata.namespace_ = ns;
  s.metadata.name = name;
  s.metadata.uid = "uid-" + name;
  s.spec.storage.provider = provider;
  s.status.phase = phase;
  return s;
}

// The metrics text checked by the real promtool; its complaints, or "" when it accepts it.
std::string promtool_complaints(const std::string& text, const test::fs::path& dir) {
  test::write_file(dir / "metrics.txt", text);
  auto [lint, rc] = shell("promtool check metrics < " + (dir / "metrics.txt").string());
  return rc == 0 && lint.empty() ? "" : "rc " + std::to_string(rc) + ": " + lint;
}

}  // namespace

TEST_CASE("metrics: one series per storage for ready, last initialized and wipeout failed, gone with the storage") {
  auto dir = test::temp_dir("probes-storage-series");
  REQUIRE(have("promtool"));
  metrics::Registry registry;
  engine::Metrics m(registry);
  engine::ObjectCache cache;
  engine::FactBook facts(nullptr, {});
  cache.upsert(storage_for_metrics("demo", "ready", "s3", "Ready"));
  auto failing = storage_for_metrics("demo", "wiping", "local", "Ready");
  kube::Condition wipe;
  wipe.type = kube::kConditionWipeOut;
  wipe.status = "False";
  wipe.reason = kube::kReasonWipeOutFailed;
  failing.status.conditions.push_back(wipe);
  cache.upsert(failing);
  cache.upsert(storage_for_metrics("apps", "never", "gcs", "NotReady"));
  facts.record({"demo", "ready", "uid-ready", 1, "id", "fp", 1767225600500});
  facts.record({"demo", "wiping", "uid-earlier-storage", 1, "id", "fp", 1000});  // another uid: not this one's

  m.storages_observed(engine::storage_samples(cache, facts));
  std::string text = registry.expose();
  INFO(text);
  for (const char* line :
       {"stowage_backupstorage_ready{namespace=\"demo\",name=\"ready\",provider=\"s3\"} 1\n",
        "stowage_backupstorage_ready{namespace=\"apps\",name=\"never\",provider=\"gcs\"} 0\n",
        "stowage_backupstorage_ready{namespace=\"demo\",name=\"wiping\",provider=\"local\"} 1\n",
        "stowage_backupstorage_last_initialized_timestamp_seconds{namespace=\"demo\",name=\"ready\",provider=\"s3\"} "
        "1.7672256005e+09\n",  // Go's 'g' formatting, as client_golang prints it
        "stowage_backupstorage_wipeout_failed{namespace=\"demo\",name=\"wiping\",provider=\"local\"} 1\n",
        "stowage_backupstorage_wipeout_failed{namespace=\"demo\",name=\"ready\",provider=\"s3\"} 0\n",
        "# TYPE stowage_backupstorage_last_initialized_timestamp_seconds gauge\n"}) {
    INFO(line);
    CHECK(text.find(line) != std::string::npos);
  }
  // No record for this uid: no timestamp series (never a misleading 0 or another storage's time).
  CHECK(text.find("last_initialized_timestamp_seconds{namespace=\"apps\"") == std::string::npos);
  CHECK(text.find("last_initialized_timestamp_seconds{namespace=\"demo\",name=\"wiping\"") == std::string::npos);
  CHECK(promtool_complaints(text, dir).empty());

  // One storage deleted, one changing provider: their old series go, the new provider's appears.
  cache.erase_storage({"demo", "wiping"});
  cache.upsert(storage_for_metrics("apps", "never", "azure", "NotReady"));
  m.storages_observed(engine::storage_samples(cache, facts));
  text = registry.expose();
  CHECK(text.find("name=\"wiping\"") == std::string::npos);
  CHECK(text.find("provider=\"gcs\"") == std::string::npos);
  CHECK(text.find("stowage_backupstorage_ready{namespace=\"apps\",name=\"never\",provider=\"azure\"} 0\n") !=
        std::string::npos);
  CHECK(promtool_complaints(text, dir).empty());

  // None left: the families show nothing at all, and the text is still valid.
  cache.erase_storage({"demo", "ready"});
  cache.erase_storage({"apps", "never"});
  m.storages_observed(engine::storage_samples(cache, facts));
  text = registry.expose();
  CHECK(text.find("stowage_backupstorage_") == std::string::npos);
  CHECK(promtool_complaints(text, dir).empty());
}

TEST_CASE("metrics: the per-storage series are swept in slices that each stop when time is up, ending as one pass") {
  metrics::Registry sliced_registry, reference_registry;
  engine::Metrics sliced(sliced_registry), reference(reference_registry);
  engine::ObjectCache cache;
  engine::FactBook facts(nullptr, {});
  auto name = [](int i) { return "s-" + std::to_string(1000 + i); };
  for (int i = 0; i < 300; ++i) cache.upsert(storage_for_metrics("demo", name(i), "local", i % 3 ? "Ready" : "NotReady"));
  facts.record({"demo", name(7), "uid-" + name(7), 1, "id", "fp", 1767225600500});

  // Time is always up: each call does one slice (kSweepCheckEvery storages at most) and says where to go on.
  auto always_out_of_time = [] { return true; };
  int slices = 0;
  std::optional<engine::Metrics::SweepCursor> cursor;
  do {
    cursor = sliced.sweep_storages(cache, facts, cursor, always_out_of_time);
    ++slices;
    if (slices == 2) {
      REQUIRE(cursor);
      // Between two slices the cache changes, ahead of the cursor and behind it.
      cache.erase_storage({"demo", name(250)});                                     // ahead: never shown
      cache.upsert(storage_for_metrics("demo", name(260), "s3", "Ready"));         // ahead: a new provider
      cache.upsert(storage_for_metrics("demo", name(299) + "-new", "gcs", "Ready"));  // ahead: a new storage
    }
    REQUIRE(slices < 100);
  } while (cursor);
  CHECK(slices >= 300 / engine::Metrics::kSweepCheckEvery);

  reference.storages_observed(engine::storage_samples(cache, facts));
  CHECK(sliced_registry.expose() == reference_registry.expose());

  // Later changes: a storage behind any cursor goes, one turns Ready; a pass with time to spare is one slice.
  cache.erase_storage({"demo", name(0)});
  cache.upsert(storage_for_metrics("demo", name(3), "local", "Ready"));
  CHECK_FALSE(sliced.sweep_storages(cache, facts, std::nullopt, [] { return false; }));
  reference.storages_observed(engine::storage_samples(cache, facts));
  std::string text = sliced_registry.expose();
  CHECK(text == reference_registry.expose());
  CHECK(text.find("name=\"" + name(0) + "\"") == std::string::npos);
  CHECK(text.find("stowage_backupstorage_ready{namespace=\"demo\",name=\"" + name(3) + "\",provider=\"local\"} 1\n") !=
        std::string::npos);
}

TEST_CASE("probes: /metrics is rendered on the pool given, and the reactor runs other work meanwhile") {
  metrics::Registry registry;
  registry.gauge("stowage_test_rendered", "A gauge for this test.").set(1);
  asio::io_context io;
  asio::thread_pool pool(1);
  engine::HttpServer server(io.get_executor(), std::string(engine::kMetricsBindAddressFlag));
  // Once the render has begun, a handler is posted to the reactor and the render waits for it: on
  // the reactor it would wait in vain (until the 5 s bound, then answer "blocked"); on the pool it
  // sees that handler run.
  std::promise<void> render_began, reactor_ran;
  auto began = render_began.get_future();
  auto ran = reactor_ran.get_future().share();
  server.route_on("/metrics", pool.get_executor(), [&registry, &render_began, ran] {
    render_began.set_value();
    bool free = ran.wait_for(std::chrono::seconds(5)) == std::future_status::ready;
    return engine::HttpResponse{200, "text/plain", free ? registry.expose() : "blocked"};
  });
  REQUIRE(server.start("127.0.0.1:0").ok());
  const int port = server.port();
  ReactorThread reactor(io);
  auto answer = std::async(std::launch::async, [port] { return fetch(port, "GET", "/metrics"); });
  began.wait();
  asio::post(io, [&reactor_ran] { reactor_ran.set_value(); });
  auto r = answer.get();
  REQUIRE(r.ok());
  CHECK(r.value().status == 200);
  CHECK(r.value().body.find("stowage_test_rendered 1\n") != std::string::npos);
  pool.join();
}

TEST_CASE("probes: healthz answers ok and readyz gives the engine's reason until it is ready") {
  Readiness readiness;
  readiness.set("caches not synced: backupstorages list failed: connection refused");
  asio::io_context io;
  engine::HttpServer server(io.get_executor(), std::string(engine::kHealthProbeBindAddressFlag));
  engine::serve_probes(server, readiness.check());
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  auto health = fetch(server.port(), "GET", "/healthz");
  REQUIRE(health.ok());
  CHECK(health.value().status == 200);
  CHECK(health.value().body == "ok");
  CHECK(health.value().header("content-type") == "text/plain; charset=utf-8");

  auto not_ready = fetch(server.port(), "GET", "/readyz");
  REQUIRE(not_ready.ok());
  CHECK(not_ready.value().status == 503);
  CHECK(not_ready.value().body == "not ready: caches not synced: backupstorages list failed: connection refused");

  readiness.set(std::nullopt);
  auto ready = fetch(server.port(), "GET", "/readyz?verbose");  // a query string is ignored
  REQUIRE(ready.ok());
  CHECK(ready.value().status == 200);
  CHECK(ready.value().body == "ok");
}

TEST_CASE("probes: healthz fails with 500 naming the loops that stopped and why") {
  common::Liveness liveness;
  asio::io_context io;
  engine::HttpServer server(io.get_executor(), std::string(engine::kHealthProbeBindAddressFlag));
  engine::serve_probes(server, {}, [&]() -> std::optional<std::string> {
    if (liveness.healthy()) return std::nullopt;
    return liveness.describe();
  });
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  auto healthy = fetch(server.port(), "GET", "/healthz");
  REQUIRE(healthy.ok());
  CHECK(healthy.value().status == 200);
  liveness.report("backupstorages informer", "an exception: boom");
  auto unhealthy = fetch(server.port(), "GET", "/healthz");
  REQUIRE(unhealthy.ok());
  CHECK(unhealthy.value().status == 500);
  CHECK(unhealthy.value().body == "unhealthy: backupstorages informer stopped: an exception: boom");
  auto ready = fetch(server.port(), "GET", "/readyz");  // readiness is the engine's own question
  REQUIRE(ready.ok());
  CHECK(ready.value().status == 200);
}

TEST_CASE("probes: unknown paths answer 404, other methods 405, a failing handler 500, HEAD no body") {
  metrics::Registry registry;
  asio::io_context io;
  engine::HttpServer server(io.get_executor(), "--health-probe-bind-address");
  engine::serve_probes(server, {});
  engine::serve_metrics(server, registry);
  server.route("/broken", []() -> engine::HttpResponse { throw std::runtime_error("a bug"); });
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  auto missing = fetch(server.port(), "GET", "/nope");
  REQUIRE(missing.ok());
  CHECK(missing.value().status == 404);
  for (std::string method : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    INFO(method);
    auto refused = fetch(server.port(), method, "/healthz");
    REQUIRE(refused.ok());
    CHECK(refused.value().status == 405);
    CHECK(refused.value().header("allow") == "GET, HEAD");
  }
  auto broken = fetch(server.port(), "GET", "/broken");
  REQUIRE(broken.ok());
  CHECK(broken.value().status == 500);

  auto head = fetch(server.port(), "HEAD", "/healthz");
  REQUIRE(head.ok());
  CHECK(head.value().status == 200);
  CHECK(head.value().header("content-length") == "2");
  CHECK(head.value().body.empty());
}

TEST_CASE("http server: a POST route gets the body, other methods on it 405 naming POST, its limit 413") {
  asio::io_context io;
  engine::HttpServerOptions options;
  options.max_body_bytes = 1000;
  engine::HttpServer server(io.get_executor(), "--webhook-bind-address", options);
  server.route_post("/echo", [](std::string_view body) {
    return engine::HttpResponse{200, "application/json", "got " + std::string(body)};
  });
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  asio::io_context client_io;
  http::Client client(client_io.get_executor());
  auto origin = http::Url::parse("http://127.0.0.1:" + std::to_string(server.port())).value();
  auto send = [&](const std::string& method, const std::string& body) {
    auto future = asio::co_spawn(client_io, client.send(origin, {}, http::Request{method, "/echo", {}, body}),
                                 asio::use_future);
    client_io.restart();
    client_io.run();
    return future.get();
  };
  auto echoed = send("POST", "{\"a\":1}");
  REQUIRE(echoed.ok());
  CHECK(echoed.value().status == 200);
  CHECK(echoed.value().body == "got {\"a\":1}");
  CHECK(echoed.value().header("content-type") == "application/json");
  for (std::string method : {"GET", "PUT", "HEAD"}) {
    INFO(method);
    auto refused = send(method, "");
    REQUIRE(refused.ok());
    CHECK(refused.value().status == 405);
    CHECK(refused.value().header("allow") == "POST");
  }
  RawClient big(server.port());
  big.send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + std::string(5000, 'b'));
  CHECK(big.read_to_close().starts_with("HTTP/1.1 413 "));
}

TEST_CASE("probes: one keep-alive connection serves many requests") {
  asio::io_context io;
  engine::HttpServer server(io.get_executor(), "--health-probe-bind-address");
  engine::serve_probes(server, {});
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  asio::io_context client_io;
  http::Client client(client_io.get_executor());
  for (int i = 0; i < 5; ++i) {
    auto r = fetch(server.port(), "GET", i % 2 ? "/healthz" : "/readyz", &client, &client_io);
    REQUIRE(r.ok());
    CHECK(r.value().status == 200);
  }
  CHECK(client.stats().connections_opened == 1);
}

TEST_CASE("probes: slow clients are cut off after the read timeout and never hold up others") {
  asio::io_context io;
  engine::HttpServerOptions options;
  options.read_timeout = 1000ms;
  engine::HttpServer server(io.get_executor(), "--health-probe-bind-address", options);
  engine::serve_probes(server, {});
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  const auto start = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 8; ++i) {
    slow.push_back(std::make_unique<RawClient>(server.port()));
    slow.back()->send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");  // and never the rest
  }
  RawClient silent(server.port());  // connects, says nothing

  for (int i = 0; i < 3; ++i) {
    auto r = fetch(server.port(), "GET", "/healthz");
    REQUIRE(r.ok());
    CHECK(r.value().status == 200);
  }
  // Served while the slow ones still hang on.
  for (auto& client : slow) CHECK(client->still_waiting());
  CHECK(silent.still_waiting());

  for (auto& client : slow) {
    CHECK(client->read_to_close().empty());
    CHECK(client->closed_by_server);
  }
  CHECK(silent.read_to_close().empty());
  CHECK(silent.closed_by_server);
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 950ms);
  // Cut off by the 1 s read timeout, not by anything slower; each client above saw the server close
  // (not its own 10 s receive timeout). The bound is wide for a loaded machine.
  CHECK(waited < 20s);
}

TEST_CASE("probes: oversized requests are refused and the connection closed") {
  asio::io_context io;
  engine::HttpServer server(io.get_executor(), "--health-probe-bind-address");
  engine::serve_probes(server, {});
  REQUIRE(server.start("127.0.0.1:0").ok());
  ReactorThread reactor(io);

  RawClient big_header(server.port());
  big_header.send("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(10000, 'a') + "\r\n\r\n");
  CHECK(big_header.read_to_close().starts_with("HTTP/1.1 431 "));

  RawClient big_body(server.port());
  big_body.send("POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + std::string(100000, 'b'));
  CHECK(big_body.read_to_close().starts_with("HTTP/1.1 413 "));

  RawClient garbage(server.port());
  garbage.send("NOT HTTP AT ALL\r\n\r\n");
  CHECK(garbage.read_to_close().starts_with("HTTP/1.1 400 "));

  auto still = fetch(server.port(), "GET", "/healthz");
  REQUIRE(still.ok());
  CHECK(still.value().status == 200);
}

TEST_CASE("probes: a port already taken fails with an error naming the address and the flag") {
  asio::io_context io;
  engine::HttpServer first(io.get_executor(), "--metrics-bind-address");
  REQUIRE(first.start("127.0.0.1:0").ok());
  const std::string taken = "127.0.0.1:" + std::to_string(first.port());

  engine::HttpServer second(io.get_executor(), "--health-probe-bind-address");
  auto r = second.start(taken);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error() == "cannot listen on " + taken +
                         " (--health-probe-bind-address): Address already in use; free the port or give "
                         "--health-probe-bind-address another address (0 disables it)");
  CHECK_FALSE(second.listening());

  auto bad = second.start("localhost");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().starts_with("--health-probe-bind-address \"localhost\": missing port"));
}

TEST_CASE("probes: 0 leaves a listener off, the wildcard address takes IPv4, stop closes it") {
  asio::io_context io;
  engine::HttpServer off(io.get_executor(), "--metrics-bind-address");
  REQUIRE(off.start("0").ok());
  CHECK_FALSE(off.listening());
  CHECK(off.port() == 0);

  engine::HttpServer any(io.get_executor(), "--health-probe-bind-address");
  engine::serve_probes(any, {});
  REQUIRE(any.start(":0").ok());
  const int port = any.port();
  REQUIRE(port != 0);
  ReactorThread reactor(io);
  auto r = fetch(port, "GET", "/healthz");  // to 127.0.0.1
  REQUIRE(r.ok());
  CHECK(r.value().body == "ok");

  RawClient idle(port);  // an open keep-alive connection: stop() closes it too
  std::promise<void> stopped;
  asio::post(io, [&] {
    any.stop();
    stopped.set_value();
  });
  stopped.get_future().wait();
  CHECK(idle.read_to_close().empty());
  CHECK_FALSE(fetch(port, "GET", "/healthz").ok());
}

TEST_CASE("probes: bind addresses parse in controller-runtime's forms") {
  auto parse = [](std::string_view text) { return engine::parse_bind_address(text, "--metrics-bind-address"); };
  auto any = parse(":8080");
  REQUIRE(any.ok());
  REQUIRE(any.value());
  CHECK(any.value()->host.empty());
  CHECK(any.value()->port == 8080);
  CHECK(any.value()->text() == ":8080");

  auto v4 = parse("127.0.0.1:8081").value();
  REQUIRE(v4);
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 8081);

  auto v6 = parse("[::1]:9090").value();
  REQUIRE(v6);
  CHECK(v6->host == "::1");
  CHECK(v6->text() == "[::1]:9090");

  CHECK(parse("localhost:8080").value()->host == "127.0.0.1");
  CHECK(parse("0.0.0.0:0").value()->port == 0);
  CHECK_FALSE(parse("0").value());  // disabled
  CHECK_FALSE(parse("").value());

  for (std::string_view bad : {"8080", "::1:8080", "[::1]", "[::1", "[nope]:80", ":99999", ":http", ":-1", "1.2.3:80",
                               "example.com:80", ":", "127.0.0.1:"}) {
    INFO(bad);
    auto r = parse(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().starts_with("--metrics-bind-address \"" + std::string(bad) + "\": "));
    CHECK(r.error().ends_with("expected [HOST]:PORT, e.g. :8080, 127.0.0.1:8080 or [::1]:8080, or 0 to disable"));
  }
  CHECK(engine::kMetricsBindAddressDefault == ":8080");
  CHECK(engine::kHealthProbeBindAddressDefault == ":8081");
}
