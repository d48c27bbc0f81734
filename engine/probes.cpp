// HttpServer on Boost.Beast: an accept loop and one coroutine per connection, both holding the
// shared Impl so that stop() or the server's destruction never leaves them pointing at freed state.
#include "engine/probes.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <map>

#include "common/liveness.hpp"
#include "common/metrics.hpp"

namespace stowage::engine {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string usage(std::string_view flag, std::string_view text, std::string_view problem) {
  return std::string(flag) + " \"" + std::string(text) + "\": " + std::string(problem) +
         "; expected [HOST]:PORT, e.g. :8080, 127.0.0.1:8080 or [::1]:8080, or 0 to disable";
}

// Parse errors answered before the connection closes; I/O errors and timeouts just close it.
bool is_parse_error(const error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

int status_for_parse_error(const error_code& ec) {
  if (ec == bhttp::error::header_limit) return 431;
  if (ec == bhttp::error::body_limit) return 413;
  return 400;
}

}  // namespace

// ---- addresses ---------------------------------------------------------------------------------

std::string BindAddress::text() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

Result<std::optional<BindAddress>, std::string> parse_bind_address(std::string_view text, std::string_view flag) {
  if (text.empty() || text == "0") return std::optional<BindAddress>{};
  BindAddress out;
  std::string_view port;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return Err(usage(flag, text, "unclosed '['"));
    out.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return Err(usage(flag, text, "missing port"));
    port = text.substr(close + 2);
    error_code ec;
    asio::ip::make_address_v6(out.host, ec);
    if (ec) return Err(usage(flag, text, "\"" + out.host + "\" is not an IPv6 address"));
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return Err(usage(flag, text, "missing port"));
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) return Err(usage(flag, text, "an IPv6 address needs brackets"));
    if (out.host == "localhost") out.host = "127.0.0.1";
    error_code ec;
    if (!out.host.empty()) asio::ip::make_address_v4(out.host, ec);
    if (ec) return Err(usage(flag, text, "the host must be an IP address or localhost"));
  }
  unsigned value = 0;
  auto [end, perr] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || perr != std::errc{} || end != port.data() + port.size() || value > 65535)
    return Err(usage(flag, text, "the port must be a number from 0 to 65535"));
  out.port = static_cast<std::uint16_t>(value);
  return std::optional<BindAddress>(std::move(out));
}

// ---- the server --------------------------------------------------------------------------------

struct HttpServer::Impl {
  asio::any_io_executor executor;
  std::string flag;
  HttpServerOptions options;
  tcp::acceptor acceptor;
  std::map<std::string, std::function<HttpResponse()>, std::less<>> routes;
  std::map<std::string, std::function<HttpResponse(std::string_view)>, std::less<>> post_routes;
  std::map<std::string, asio::any_io_executor, std::less<>> elsewhere;  // routes whose handler runs there
  std::map<std::uint64_t, beast::tcp_stream*> connections;  // open ones, for stop()
  std::uint64_t next_connection = 0;
  std::uint16_t port = 0;
  bool stopped = false;

  Impl(asio::any_io_executor ex, std::string f, HttpServerOptions o)
      : executor(ex), flag(std::move(f)), options(o), acceptor(ex) {}

  bhttp::response<bhttp::string_body> respond(const bhttp::request<bhttp::string_body>& req) {
    HttpResponse answer;
    std::string_view target = req.target();
    std::string_view path = target.substr(0, target.find('?'));
    auto route = routes.find(path);
    auto post_route = post_routes.find(path);
    const char* allow = "GET, HEAD";
    // A handler's bug costs one answer, not the connection.
    auto guarded = [&](std::string_view name, auto&& call) {
      try {
        answer = call();
      } catch (const std::exception& e) {
        spdlog::error("{}: the handler of {} failed: {}", flag, name, e.what());
        answer = {500, "text/plain; charset=utf-8", "internal error\n"};
      }
    };
    if (post_route != post_routes.end()) {
      allow = "POST";
      if (req.method() != bhttp::verb::post)
        answer = {405, "text/plain; charset=utf-8", "method not allowed: only POST\n"};
      else
        guarded(post_route->first, [&] { return post_route->second(req.body()); });
    } else if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
      answer = {405, "text/plain; charset=utf-8", "method not allowed: only GET and HEAD\n"};
    } else if (route == routes.end()) {
      answer = {404, "text/plain; charset=utf-8", "not found\n"};
    } else {
      guarded(route->first, [&] { return route->second(); });
    }
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(answer.status), req.version()};
    res.set(bhttp::field::content_type, answer.content_type);
    res.set(bhttp::field::cache_control, "no-store");
    if (answer.status == 405) res.set(bhttp::field::allow, allow);
    res.body() = std::move(answer.body);
    res.prepare_payload();
    if (req.method() == bhttp::verb::head) res.body().clear();  // Content-Length stays the GET's
    res.keep_alive(req.keep_alive());
    return res;
  }

  static bhttp::response<bhttp::string_body> refusal(int status) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(status), 11};
    res.set(bhttp::field::content_type, "text/plain; charset=utf-8");
    res.body() = std::string(bhttp::obsolete_reason(res.result())) + "\n";
    res.prepare_payload();
    res.keep_alive(false);
    return res;
  }

  // After a refusal, before closing: reads what the client is still sending, for a moment and up
  // to a bound. Closing with unread bytes makes the kernel send a reset, which can destroy the
  // refusal before the client reads it (Go's net/http lingers for the same reason).
  template <class Stream>
  static asio::awaitable<void> drain(Stream& stream) {
    error_code ignored;
    beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
    tcp.socket().shutdown(tcp::socket::shutdown_send, ignored);
    std::array<char, 16384> scratch;
    tcp.expires_after(std::chrono::seconds(1));
    for (std::size_t drained = 0; drained < (256u << 10);) {
      auto [ec, n] = co_await tcp.async_read_some(asio::buffer(scratch), kTuple);
      if (ec) break;
      drained += n;
    }
  }

  template <class Stream>
  static asio::awaitable<void> serve_requests(std::shared_ptr<Impl> impl, Stream& stream);
  static asio::awaitable<void> serve_connection(std::shared_ptr<Impl> impl, tcp::socket socket);
  static asio::awaitable<void> serve_tls_connection(std::shared_ptr<Impl> impl, tcp::socket socket,
                                                    std::shared_ptr<asio::ssl::context> context);
  static asio::awaitable<void> accept_connections(std::shared_ptr<Impl> impl);
};

// Keeps a connection in `connections` (for stop()) for as long as it lives.
struct ConnectionEntry {
  std::map<std::uint64_t, beast::tcp_stream*>& connections;
  std::uint64_t id;
  ConnectionEntry(std::map<std::uint64_t, beast::tcp_stream*>& all, std::uint64_t next, beast::tcp_stream& stream)
      : connections(all), id(next) {
    connections.emplace(id, &stream);
  }
  ~ConnectionEntry() { connections.erase(id); }
};

// One connection's requests: read a request (within the read timeout), answer it, repeat while the
// client keeps the connection alive.
template <class Stream>
asio::awaitable<void> HttpServer::Impl::serve_requests(std::shared_ptr<Impl> impl, Stream& stream) {
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  beast::flat_buffer buffer;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(impl->options.max_header_bytes));
    parser.body_limit(impl->options.max_body_bytes);
    tcp.expires_after(impl->options.read_timeout);
    auto [rec, rn] = co_await bhttp::async_read(stream, buffer, parser, kTuple);
    if (rec) {
      if (is_parse_error(rec)) {
        auto res = refusal(status_for_parse_error(rec));
        tcp.expires_after(impl->options.write_timeout);
        auto [wec, wn] = co_await bhttp::async_write(stream, res, kTuple);
        if (wec) spdlog::debug("{}: answering a malformed request failed: {}", impl->flag, wec.message());
        co_await drain(stream);
      }
      co_return;  // end of stream, timeout (the stream is closed already), reset, or stop()
    }
    std::string_view target = parser.get().target();
    auto away = impl->elsewhere.find(target.substr(0, target.find('?')));
    bhttp::response<bhttp::string_body> res;
    if (away == impl->elsewhere.end() || parser.get().method() == bhttp::verb::post) {
      res = impl->respond(parser.get());
    } else {
      const auto& req = parser.get();
      auto build = [impl, &req]() -> asio::awaitable<bhttp::response<bhttp::string_body>> {
        co_return impl->respond(req);  // on that executor; `req` lives in this frame meanwhile
      };
      res = co_await asio::co_spawn(away->second, build, asio::use_awaitable);
    }
    const bool keep_alive = res.keep_alive();
    tcp.expires_after(impl->options.write_timeout);
    auto [wec, wn] = co_await bhttp::async_write(stream, res, kTuple);
    if (wec || !keep_alive) co_return;
  }
}

asio::awaitable<void> HttpServer::Impl::serve_connection(std::shared_ptr<Impl> impl, tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  ConnectionEntry entry(impl->connections, impl->next_connection++, stream);
  co_await serve_requests(impl, stream);
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

// The same over TLS: the handshake within the read timeout, then the requests, then close_notify
// (within the write timeout; a client that has gone already makes it fail, which is fine).
asio::awaitable<void> HttpServer::Impl::serve_tls_connection(std::shared_ptr<Impl> impl, tcp::socket socket,
                                                             std::shared_ptr<asio::ssl::context> context) {
  beast::ssl_stream<beast::tcp_stream> stream(std::move(socket), *context);
  beast::tcp_stream& tcp = beast::get_lowest_layer(stream);
  ConnectionEntry entry(impl->connections, impl->next_connection++, tcp);
  tcp.expires_after(impl->options.read_timeout);
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::server, kTuple);
  if (hec) {
    spdlog::debug("{}: TLS handshake failed: {}", impl->flag, hec.message());
    co_return;
  }
  co_await serve_requests(impl, stream);
  if (!tcp.socket().is_open()) co_return;
  tcp.expires_after(impl->options.write_timeout);
  auto [sec] = co_await stream.async_shutdown(kTuple);
  (void)sec;
}

asio::awaitable<void> HttpServer::Impl::accept_connections(std::shared_ptr<Impl> impl) {
  for (;;) {
    auto [ec, socket] = co_await impl->acceptor.async_accept(kTuple);
    if (impl->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) {
      // Out of file descriptors and the like: say so, and give the system a moment.
      spdlog::warn("{}: accepting a connection failed: {}", impl->flag, ec.message());
      asio::steady_timer pause(impl->executor, std::chrono::milliseconds(100));
      auto [paused] = co_await pause.async_wait(kTuple);
      if (paused == asio::error::operation_aborted) co_return;
      continue;
    }
    if (impl->connections.size() >= impl->options.max_connections) {
      spdlog::debug("{}: {} connections open, refusing another", impl->flag, impl->connections.size());
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    const std::string flag = impl->flag;
    auto on_end = [flag](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("{}: a connection failed: {}", flag, ex.what());
      }
    };
    if (!impl->options.tls) {
      asio::co_spawn(impl->executor, serve_connection(impl, std::move(socket)), on_end);
      continue;
    }
    std::shared_ptr<asio::ssl::context> context = impl->options.tls();
    if (!context) {
      spdlog::debug("{}: no serving certificate yet, closing a connection", impl->flag);
      error_code ignored;
      socket.close(ignored);
      continue;
    }
    asio::co_spawn(impl->executor, serve_tls_connection(impl, std::move(socket), std::move(context)), on_end);
  }
}

HttpServer::HttpServer(asio::any_io_executor executor, std::string flag, HttpServerOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(flag), options)) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::route(std::string path, std::function<HttpResponse()> handler) {
  impl_->routes[std::move(path)] = std::move(handler);
}

void HttpServer::route_on(std::string path, asio::any_io_executor elsewhere, std::function<HttpResponse()> handler) {
  impl_->elsewhere[path] = std::move(elsewhere);
  impl_->routes[std::move(path)] = std::move(handler);
}

void HttpServer::route_post(std::string path, std::function<HttpResponse(std::string_view body)> handler) {
  impl_->post_routes[std::move(path)] = std::move(handler);
}

Result<Ok, std::string> HttpServer::start(std::string_view address) {
  auto parsed = parse_bind_address(address, impl_->flag);
  if (!parsed.ok()) return Err(parsed.error());
  if (!parsed.value()) {
    spdlog::info("{} is 0: not listening", impl_->flag);
    return Ok{};
  }
  if (impl_->acceptor.is_open()) return Err(impl_->flag + ": already listening");
  const BindAddress& where = *parsed.value();
  tcp::endpoint endpoint;
  bool dual_stack = where.host.empty();
  if (dual_stack)
    endpoint = tcp::endpoint(tcp::v6(), where.port);  // [::] also takes IPv4, as Go's ":8080" does
  else
    endpoint = tcp::endpoint(asio::ip::make_address(where.host), where.port);

  auto& acceptor = impl_->acceptor;
  error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (ec && dual_stack) {  // no IPv6 on this host: every IPv4 interface
    endpoint = tcp::endpoint(tcp::v4(), where.port);
    ec = {};
    acceptor.open(endpoint.protocol(), ec);
  }
  if (!ec && endpoint.protocol() == tcp::v6() && dual_stack) acceptor.set_option(asio::ip::v6_only(false), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    error_code ignored;
    acceptor.close(ignored);
    return Err("cannot listen on " + where.text() + " (" + impl_->flag + "): " + ec.message() +
               "; free the port or give " + impl_->flag + " another address (0 disables it)");
  }
  impl_->port = acceptor.local_endpoint(ec).port();
  impl_->stopped = false;
  spdlog::info("{}: listening on {}", impl_->flag, BindAddress{where.host, impl_->port}.text());
  const std::string flag = impl_->flag;
  asio::co_spawn(impl_->executor, Impl::accept_connections(impl_), [flag](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      spdlog::error("{}: the listener failed: {}", flag, ex.what());
    }
  });
  return Ok{};
}

void HttpServer::stop() {
  impl_->stopped = true;
  error_code ignored;
  impl_->acceptor.close(ignored);
  for (auto& [id, stream] : impl_->connections) stream->socket().close(ignored);
  impl_->port = 0;
}

bool HttpServer::listening() const { return impl_->acceptor.is_open(); }

std::uint16_t HttpServer::port() const { return impl_->port; }

// ---- the endpoints -----------------------------------------------------------------------------

void serve_metrics(HttpServer& server, const metrics::Registry& registry) {
  server.route("/metrics", [&registry] {
    return HttpResponse{200, std::string(metrics::Registry::kContentType), registry.expose()};
  });
}

void serve_metrics(HttpServer& server, const metrics::Registry& registry, asio::any_io_executor render_on) {
  server.route_on("/metrics", std::move(render_on), [&registry] {
    return HttpResponse{200, std::string(metrics::Registry::kContentType), registry.expose()};
  });
}

std::optional<std::string> process_liveness() {
  const auto& liveness = common::Liveness::process();
  if (liveness.healthy()) return std::nullopt;
  return liveness.describe();
}

void serve_probes(HttpServer& server, ReadinessCheck ready, HealthCheck healthy) {
  server.route("/healthz", [healthy = std::move(healthy)] {
    std::optional<std::string> problem = healthy ? healthy() : std::nullopt;
    if (!problem) return HttpResponse{200, "text/plain; charset=utf-8", "ok"};
    return HttpResponse{500, "text/plain; charset=utf-8", "unhealthy: " + *problem};
  });
  server.route("/readyz", [ready = std::move(ready)] {
    std::optional<std::string> reason = ready ? ready() : std::nullopt;
    if (!reason) return HttpResponse{200, "text/plain; charset=utf-8", "ok"};
    return HttpResponse{503, "text/plain; charset=utf-8", "not ready: " + *reason};
  });
}

}  // namespace stowage::engine
