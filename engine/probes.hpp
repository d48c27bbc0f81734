#pragma once
// Probes — the two small HTTP listeners a controller-runtime manager runs, on the shared reactor:
//  - the metrics listener (--metrics-bind-address, default ":8080"): GET /metrics, the registry in
//    the Prometheus text format 0.0.4;
//  - the probe listener (--health-probe-bind-address, default ":8081"): GET /healthz, 200 "ok"
//    (answering at all proves the reactor turns: the handler runs on it) or 500 naming the
//    long-running loops that have stopped and why (the liveness check), and GET /readyz, 200 "ok"
//    or 503 with the engine's plain-text reason ("caches not synced: ...").
// Every other path answers 404, every method but GET and HEAD 405. The same server also carries the
// admission webhook (engine/webhook.hpp): POST routes, and TLS with a certificate that may change
// while it runs (each new connection takes the one current when it is accepted).
//
// Guarantees: one coroutine per connection, never a blocking call on the reactor; HTTP/1.1
// keep-alive; a request must arrive whole within the read timeout (which is also the keep-alive
// idle limit), so a slow or silent client costs one socket until then and never delays others;
// headers and bodies beyond their limits are refused (431, 413) and the connection closed; past
// `max_connections` new connections are closed at once. Not thread-safe: call every member on the
// reactor (or before it runs / after it stopped).
//
// Wiring (engine), e.g. in the run command before the sources start:
//   metrics::Registry registry;  Metrics metrics(registry);
//   HttpServer metrics_server(executor, "--metrics-bind-address");
//   serve_metrics(metrics_server, registry);
//   if (auto r = metrics_server.start(flag_value); !r.ok()) throw StartupError(r.error());
//   HttpServer probe_server(executor, "--health-probe-bind-address");
//   serve_probes(probe_server, [&]() -> std::optional<std::string> { ...nullopt once caches synced... });
//   if (auto r = probe_server.start(flag_value); !r.ok()) throw StartupError(r.error());
#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace stowage::metrics {
class Registry;
}
namespace boost::asio::ssl {
class context;
}

namespace stowage::engine {

inline constexpr std::string_view kMetricsBindAddressFlag = "--metrics-bind-address";
inline constexpr std::string_view kMetricsBindAddressDefault = ":8080";
inline constexpr std::string_view kHealthProbeBindAddressFlag = "--health-probe-bind-address";
inline constexpr std::string_view kHealthProbeBindAddressDefault = ":8081";

// A listen address in controller-runtime's (Go's net.Listen) form: ":8080" (every interface, IPv6
// and IPv4), "127.0.0.1:8080", "[::1]:8080", "localhost:8080". Port 0 picks a free port.
struct BindAddress {
  std::string host;  // "" = every interface; else an IP literal (IPv6 without brackets)
  std::uint16_t port = 0;
  std::string text() const;  // back in the flag's form: ":8080", "[::1]:8080"
};

// "0" (controller-runtime's way to disable a listener) and "" give nullopt. Host names other than
// "localhost" are refused (resolving one would block, and a listener wants a fixed address).
// Errors name the flag: `--metrics-bind-address "8080": expected [HOST]:PORT ...`.
Result<std::optional<BindAddress>, std::string> parse_bind_address(std::string_view text, std::string_view flag);

struct HttpServerOptions {
  std::chrono::milliseconds read_timeout{10000};   // whole request, and keep-alive idle time
  std::chrono::milliseconds write_timeout{10000};  // whole response
  std::size_t max_header_bytes = 8192;
  std::size_t max_body_bytes = 4096;  // GET and HEAD need none; a little is tolerated
  std::size_t max_connections = 64;
  // Set: every connection is TLS (the handshake within read_timeout), served with the context this
  // returns when the connection is accepted; nullptr closes the connection at once (no certificate yet).
  std::function<std::shared_ptr<boost::asio::ssl::context>()> tls;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

class HttpServer {
 public:
  // `flag` names this listener in errors and logs ("--metrics-bind-address").
  HttpServer(boost::asio::any_io_executor executor, std::string flag, HttpServerOptions options = {});
  ~HttpServer();  // stops
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Serves GET and HEAD of exactly `path` (a query string is ignored) with `handler`, on the reactor.
  void route(std::string path, std::function<HttpResponse()> handler);
  // The same, but `handler` runs on `elsewhere` (a thread pool), not on the reactor, and the
  // connection waits for it there: for answers that take long to build, such as /metrics with a
  // series per storage. The handler must be safe to run on that thread. Routes are set before start().
  void route_on(std::string path, boost::asio::any_io_executor elsewhere, std::function<HttpResponse()> handler);
  // Serves POST of exactly `path` with `handler`, given the request body (within max_body_bytes);
  // other methods on that path answer 405.
  void route_post(std::string path, std::function<HttpResponse(std::string_view body)> handler);

  // Parses `address` and starts listening; "0" leaves the server off and is Ok. A failure is a
  // value naming the address and the flag: "cannot listen on 127.0.0.1:8080 (--metrics-bind-address):
  // Address already in use; ...".
  Result<Ok, std::string> start(std::string_view address);
  // Closes the listener and every open connection. Idempotent.
  void stop();

  bool listening() const;
  std::uint16_t port() const;  // the bound port (the chosen one after ":0"); 0 when not listening

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// The engine's answer to /readyz: nullopt when ready, else why not (plain text, one line).
using ReadinessCheck = std::function<std::optional<std::string>()>;

// GET /metrics: `registry` (which must outlive the server) in the text format 0.0.4. With
// `render_on`, the text is built there (the registry is safe from any thread) and not on the
// reactor: at 10,000 storages it has 30,000 per-storage series, tens of milliseconds of work.
void serve_metrics(HttpServer& server, const metrics::Registry& registry);
void serve_metrics(HttpServer& server, const metrics::Registry& registry, boost::asio::any_io_executor render_on);
// The engine's answer to /healthz: nullopt when healthy, else what stopped (plain text, one line).
using HealthCheck = std::function<std::optional<std::string>()>;

// What the process's liveness registry (common/liveness.hpp) says: the default HealthCheck.
std::optional<std::string> process_liveness();

// GET /healthz and GET /readyz.
void serve_probes(HttpServer& server, ReadinessCheck ready, HealthCheck healthy = process_liveness);

}  // namespace stowage::engine
