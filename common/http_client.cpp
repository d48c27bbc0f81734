// http::Client on Boost.Beast: pooled keep-alive connections per (origin, TLS settings, proxy),
// one coroutine per exchange, a timeout before every phase, errors turned into HttpError values.
// Through a proxy, open() connects to the proxy and asks it for a tunnel (CONNECT) before the TLS
// handshake; everything after that is the same as for a direct connection.
#include "common/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <list>
#include <map>
#include <optional>
#include <stdexcept>

#include <boost/system/system_error.hpp>

#include "common/crypto.hpp"
#include "common/header_values.hpp"
#include "common/url.hpp"

namespace stowage::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  bool reused = false;

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
};

// A kept-alive connection waiting in its pool for the next request, and since when.
struct IdleConnection {
  std::unique_ptr<Connection> connection;
  std::chrono::steady_clock::time_point since;
};

struct Waiter;

// The connections to one origin with one TLS identity and proxy. Invariants: `leased` slots are
// each held by one Slot (a request); every waiter and slot belongs to a request counted in `users`;
// so a pool with no user and no idle connection holds nothing, and is evicted.
struct Pool {
  std::string key;                        // Client::Impl::pools' key: a SHA-256 digest (pool_key)
  Url origin;
  TlsSettings settings;                   // server name, verify flag and proxy; no PEM text (see make_pool)
  std::optional<Proxy> proxy;             // the parsed settings.proxy_url; none = direct
  std::string where;                      // what errors name: the origin, and the proxy if any
  std::shared_ptr<ssl::context> context;  // null for http://
  std::optional<HttpError> unusable;      // a bad CA bundle or proxy URL: every request fails with it
  std::vector<IdleConnection> idle;       // oldest first
  std::size_t leased = 0;                 // slots held by requests (a connection in use, or being opened)
  std::size_t users = 0;                  // requests (send or stream) in progress on this pool
  std::list<Waiter*> waiters;             // requests waiting for a slot, first come first served
};

// A request's place in its pool's queue for a slot: the reactor's condition variable (a timer at
// time_point::max() that wake_one() cancels). However the request leaves the queue (with a slot,
// cancelled, or its frame destroyed), the destructor takes it out, and passes a wake-up it got but
// did not use on to the next waiter: a slot is never left free while others wait for it.
struct Waiter {
  Waiter(Pool& p, const asio::any_io_executor& executor)
      : pool(p), timer(executor, asio::steady_timer::time_point::max()) {}
  ~Waiter();
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;

  // Queues (at the front when it was woken before but a new request took the slot first) and
  // waits to be woken. A cancellation of the request throws operation_aborted, as any cancelled
  // co_await does.
  asio::awaitable<void> wait();
  void used() { woken = false; }  // the slot it was woken for is taken

  Pool& pool;
  asio::steady_timer timer;
  std::list<Waiter*>::iterator position;
  bool queued = false;
  bool woken = false;  // wake_one() chose it: a slot may be free
};

void wake_one(Pool& pool) {
  if (pool.waiters.empty()) return;
  Waiter* next = pool.waiters.front();
  pool.waiters.pop_front();
  next->queued = false;
  next->woken = true;
  next->timer.cancel();
}

Waiter::~Waiter() {
  if (queued)
    pool.waiters.erase(position);
  else if (woken)
    wake_one(pool);
}

asio::awaitable<void> Waiter::wait() {
  position = pool.waiters.insert(woken ? pool.waiters.begin() : pool.waiters.end(), this);
  queued = true;
  woken = false;
  co_await timer.async_wait(kTuple);  // operation_aborted both when woken and when cancelled
  if (!woken) throw boost::system::system_error(asio::error::operation_aborted, "waiting for a connection");
}

HttpError error(HttpError::Kind kind, std::string message) { return HttpError{kind, std::move(message)}; }

// Turns TCP keepalive on for a connected socket. Best effort: these options do not fail on a
// connected TCP socket on Linux, and a socket without them still works, only without the probes.
void enable_keepalive(tcp::socket& socket, const TcpKeepAlive& k) {
  if (!k.enabled) return;
  error_code ec;
  socket.set_option(asio::socket_base::keep_alive(true), ec);
  if (ec) return;
  const int fd = socket.native_handle();
  const int idle = static_cast<int>(std::max<std::int64_t>(k.idle.count(), 1));
  const int interval = static_cast<int>(std::max<std::int64_t>(k.interval.count(), 1));
  const int count = std::max(k.count, 1);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

// Classifies a failure of `phase` ("connect", "TLS handshake", "request") against `origin`.
HttpError classify(const error_code& ec, const std::string& phase, const std::string& origin) {
  std::string where = phase + " to " + origin;
  if (ec == beast::error::timeout) return error(HttpError::Kind::Timeout, where + " timed out");
  if (ec == bhttp::error::body_limit)
    return error(HttpError::Kind::TooLarge, "response from " + origin + " is larger than the client accepts");
  if (ec == asio::error::connection_refused) return error(HttpError::Kind::Connect, where + " refused");
  if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe || ec == asio::error::eof ||
      ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message || ec == ssl::error::stream_truncated)
    return error(HttpError::Kind::Reset, where + " was cut off (" + ec.message() + ")");
  if (ec.category() == asio::error::get_ssl_category())
    return error(HttpError::Kind::Tls, where + " failed: " + ec.message());
  if (std::string_view(ec.category().name()) == "beast.http")
    return error(HttpError::Kind::Protocol, "malformed HTTP response from " + origin + ": " + ec.message());
  if (ec == asio::error::host_not_found || ec == asio::error::host_not_found_try_again)
    return error(HttpError::Kind::Resolve, "cannot resolve " + origin + ": " + ec.message());
  return error(HttpError::Kind::Connect, where + " failed: " + ec.message());
}

std::shared_ptr<ssl::context> make_context(const TlsSettings& s, std::string& err) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  error_code ec;
  if (!s.client_cert_pem.empty()) {
    ctx->use_certificate_chain(asio::buffer(s.client_cert_pem), ec);
    if (!ec) ctx->use_private_key(asio::buffer(s.client_key_pem), ssl::context::pem, ec);
    if (ec) {
      err = "the client certificate or its key is not valid PEM, or they do not match (" + ec.message() + ")";
      return ctx;
    }
  }
  if (s.insecure) {
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer);
  if (!s.ca_pem.empty()) {
    // The given bundle replaces the system roots, as KubeStash does with CA_CERT_DATA.
    ctx->add_certificate_authority(asio::buffer(s.ca_pem), ec);
    if (ec) err = "CA_CERT_DATA is not a valid PEM certificate bundle (" + ec.message() + ")";
  } else {
    ctx->set_default_verify_paths(ec);
    if (ec) err = "cannot load the system's trusted certificates: " + ec.message();
  }
  return ctx;
}

// The pool key: a SHA-256 (OpenSSL EVP) of everything that decides whether a connection may carry
// a request: the origin, the verify flag, the server name, the CA bundle, the client certificate
// and key, and the proxy URL (its password too: a tunnel is authorised once, when it is opened).
// Each field goes in after its length, so two different identities never feed the digest the same
// bytes, and a rotated certificate is a new pool rather than a chance collision with the old one.
// Only the digest is kept: the key holds no key material, certificate or proxy password.
std::string pool_key(const Url& origin, const TlsSettings& tls, const std::string& proxy) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL cannot compute SHA-256 (out of memory, or no default provider)");
  auto field = [&](std::string_view value) {
    std::array<unsigned char, 8> length{};
    for (std::size_t i = 0; i < length.size(); ++i) length[i] = static_cast<unsigned char>(value.size() >> (8 * i));
    EVP_DigestUpdate(ctx.get(), length.data(), length.size());
    EVP_DigestUpdate(ctx.get(), value.data(), value.size());
  };
  for (std::string_view part : {std::string_view(origin.scheme), std::string_view(origin.host),
                                std::string_view(origin.port), std::string_view(tls.insecure ? "insecure" : "verify"),
                                std::string_view(tls.server_name), std::string_view(tls.ca_pem),
                                std::string_view(tls.client_cert_pem), std::string_view(tls.client_key_pem),
                                std::string_view(proxy)})
    field(part);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_DigestFinal_ex(ctx.get(), digest.data(), &size);
  return crypto::hex(std::string_view(reinterpret_cast<const char*>(digest.data()), size));
}

// "host:port" with IPv6 hosts bracketed: a CONNECT target and a proxy's name in messages.
std::string authority(const std::string& host, const std::string& port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + port;
}

// Names the certificate problem after a failed handshake ("self-signed certificate", ...).
std::string verify_problem(SSL* ssl) {
  long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return {};
  return X509_verify_cert_error_string(result);
}

// The last check before a request is written (see the module comment): what would let a caller's
// text end the request line or a header line early, or start a header of its own. The message
// names the part (the header by its name, or by its position when the name itself is bad), never
// a value.
std::optional<HttpError> unsafe_request(const Url& origin, const Request& r) {
  auto refused = [&](bool name_origin, const std::string& what) {
    std::string to = name_origin ? " to " + origin.origin() : std::string();
    return HttpError{HttpError::Kind::InvalidRequest, "request" + to + " not sent: " + what, true};
  };
  if (auto p = check_request_line_part(origin.host); p || origin.host.empty())
    return refused(false, "the host name " + (p ? p.describe() : std::string("is empty")));
  if (auto p = check_request_line_part(origin.port)) return refused(false, "the port " + p.describe());
  if (auto p = check_field_name(r.method)) return refused(true, "the method " + p.describe());
  if (auto p = check_request_line_part(r.target)) return refused(true, "the request target " + p.describe());
  for (std::size_t i = 0; i < r.headers.size(); ++i) {
    const auto& [name, value] = r.headers[i];
    if (auto p = check_field_name(name))
      return refused(true, "the name of header " + std::to_string(i + 1) + " " + p.describe());
    // No length limit here: the sources limit what they accept, and a server refuses what it finds too long.
    if (auto p = check_header_value(value, std::string::npos))
      return refused(true, "the value of header " + name + " " + p.describe());
  }
  return std::nullopt;
}

}  // namespace

// ---- Url, Response, encoding -------------------------------------------------------------------

Result<Url, std::string> Url::parse(std::string_view text) {
  // common/url.hpp checks for control characters and spaces first, and no message quotes the text:
  // such an "endpoint" may be anything pasted by mistake, and one with user info or a query holds
  // a credential (a password, a SAS signature).
  auto parsed = url::parse(text, "https");
  if (!parsed) return Err("endpoint " + parsed.error());
  const url::Parts& p = parsed.value();
  if (p.scheme != "http" && p.scheme != "https")
    return Err("endpoint has the scheme \"" + p.scheme + "\", which is not supported: write http:// or https://");
  // A credential here would travel in no header, but show in every error naming the endpoint.
  if (p.has_userinfo)
    return Err("endpoint has a user name or password before '@': put credentials in the storage's Secret");
  // A query would be signed (S3) or dropped silently (every other caller appends its own target).
  if (p.has_query || p.has_fragment)
    return Err("endpoint has a query or fragment ('?' or '#'): write SCHEME://HOST[:PORT][/PATH]");
  Url u;
  u.scheme = p.scheme;
  u.host = p.host;
  u.port = std::to_string(p.port_or_default());
  u.path = p.path.empty() ? "/" : p.path;
  return u;
}

std::string Url::host_header() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port = (scheme == "https" && port == "443") || (scheme == "http" && port == "80");
  return default_port ? h : h + ":" + port;
}

std::string Url::origin() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + ":" + port;
}

Result<Proxy, std::string> Proxy::parse(std::string_view text) {
  // No message below quotes the URL or a part of it (common/url.hpp names a scheme or a numeric
  // port at most, and checks for control characters first): it may hold a password.
  if (!url::has_scheme(text) && !check_request_line_part(text))
    return Err("proxy URL has no scheme: write http://HOST:PORT");
  auto parsed = url::parse(text, "");
  if (!parsed) return Err("proxy URL " + parsed.error());
  const url::Parts& u = parsed.value();
  if (u.scheme != "http") return Err("proxy scheme " + u.scheme + " is not supported; use an http:// proxy");
  Proxy p;  // a path, query or fragment means nothing to a proxy: ignored
  p.host = u.host;
  p.port = std::to_string(u.port_or_default());
  p.username = u.user;
  p.password = u.password;
  p.has_credentials = u.has_userinfo;
  return p;
}

std::string Proxy::label() const { return "proxy " + authority(host, port); }

std::string Response::header(std::string_view name) const {
  std::string n = lower(name);
  for (const auto& [k, v] : headers)
    if (k == n) return v;
  return {};
}

std::string uri_encode(std::string_view s, bool keep_slash) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() * 3 / 2);
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    }
  }
  return out;
}

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string decode(std::string_view s, bool plus_as_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (plus_as_space && s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}
}  // namespace

std::string percent_decode(std::string_view s) { return decode(s, false); }
std::string form_decode(std::string_view s) { return decode(s, true); }

// ---- Client ------------------------------------------------------------------------------------

struct Client::Impl : std::enable_shared_from_this<Impl> {
  asio::any_io_executor executor;
  ClientOptions options;
  std::map<std::string, std::unique_ptr<Pool>> pools;  // by pool_key
  Stats stats;  // the counters; Client::stats() counts the rest
  // When the oldest idle connection of any pool reaches the idle timeout: close_idle_connections()
  // does nothing before then.
  std::chrono::steady_clock::time_point next_idle_expiry = std::chrono::steady_clock::time_point::max();

  std::map<std::string, std::string> environment_choice;  // origin -> the environment's proxy ("" = none)
  static constexpr std::size_t kEnvironmentChoices = 1024;  // a bound: virtual-hosted buckets are origins too

  // The proxy the environment picks for an origin (ClientOptions::environment_proxies), worked out
  // once per origin rather than on every request.
  const std::string& environment_proxy(const Url& origin) {
    if (environment_choice.size() >= kEnvironmentChoices && !environment_choice.count(origin.origin()))
      environment_choice.clear();
    auto [it, fresh] = environment_choice.try_emplace(origin.origin());
    if (fresh) it->second = options.environment_proxies->proxy_for(origin);
    return it->second;
  }

  // ---- Pools and their lifetimes: the guarantees in the module comment rest on these three
  // guards, which give back what a request holds however it ends (returned, failed, cancelled,
  // thrown through, or its frame destroyed) — and on Waiter above.

  // A request's hold on its pool (Pool::users). The last user to leave a pool without an idle
  // connection evicts it; so does close_idle_connections() when it closes the last one.
  class PoolUse {
   public:
    PoolUse(Impl& impl, Pool& pool) : impl_(impl), pool(pool) { ++pool.users; }
    ~PoolUse() {
      --pool.users;
      impl_.evict_if_empty(pool);
    }
    PoolUse(const PoolUse&) = delete;
    PoolUse& operator=(const PoolUse&) = delete;

   private:
    Impl& impl_;

   public:
    Pool& pool;
  };

  // One of a pool's slots (see acquire()), with its connection once there is one. The destructor
  // gives it back: the connection to the idle list when keep() was called, else closed; then the
  // next waiter is woken.
  class Slot {
   public:
    Slot(Impl& impl, Pool& pool, std::unique_ptr<Connection> c = nullptr)
        : impl_(&impl), pool_(&pool), connection(std::move(c)) {
      ++pool.leased;
    }
    Slot(Slot&& other) noexcept
        : impl_(other.impl_),
          pool_(other.pool_),
          held_(std::exchange(other.held_, false)),
          reusable_(other.reusable_),
          connection(std::move(other.connection)) {}
    Slot& operator=(Slot&&) = delete;
    ~Slot() {
      if (held_) impl_->give_back(*pool_, std::move(connection), reusable_);
    }
    void keep() { reusable_ = true; }  // the exchange ended cleanly and the server keeps the connection open

   private:
    Impl* impl_;
    Pool* pool_;
    bool held_ = true;
    bool reusable_ = false;

   public:
    std::unique_ptr<Connection> connection;
  };

  PoolUse use_pool(const Url& origin, const TlsSettings& tls) {
    const bool from_environment = tls.proxy_url.empty() && options.environment_proxies;
    const std::string& proxy = from_environment ? environment_proxy(origin) : tls.proxy_url;
    std::string key = pool_key(origin, tls, proxy);
    auto& slot = pools[key];
    if (!slot) {
      TlsSettings settings = tls;
      settings.proxy_url = proxy;
      slot = make_pool(origin, settings);
      slot->key = std::move(key);
    }
    return PoolUse(*this, *slot);
  }

  void evict_if_empty(Pool& pool) {
    if (pool.users != 0 || !pool.idle.empty()) return;
    auto it = pools.find(pool.key);
    if (it != pools.end() && it->second.get() == &pool) pools.erase(it);
  }

  void give_back(Pool& pool, std::unique_ptr<Connection> connection, bool reusable) {
    --pool.leased;
    if (reusable && connection) {
      connection->buffer.clear();
      const auto now = std::chrono::steady_clock::now();
      pool.idle.push_back({std::move(connection), now});
      next_idle_expiry = std::min(next_idle_expiry, now + options.idle_connection_timeout);
    }
    wake_one(pool);
  }  // a connection not kept is closed here

  // Closes the connections idle for ClientOptions::idle_connection_timeout, and evicts the pools
  // that leaves empty. Run on every request, before each slot is taken and on every read of a
  // stream (a watch hears a bookmark about once a minute): O(1) until an idle connection is due.
  void close_idle_connections() {
    const auto now = std::chrono::steady_clock::now();
    if (now < next_idle_expiry) return;
    next_idle_expiry = std::chrono::steady_clock::time_point::max();
    for (auto it = pools.begin(); it != pools.end();) {
      Pool& pool = *it->second;
      auto fresh = std::find_if(pool.idle.begin(), pool.idle.end(), [&](const IdleConnection& c) {
        return c.since + options.idle_connection_timeout > now;
      });
      stats.idle_connections_closed += static_cast<std::uint64_t>(fresh - pool.idle.begin());
      pool.idle.erase(pool.idle.begin(), fresh);
      if (!pool.idle.empty())
        next_idle_expiry = std::min(next_idle_expiry, pool.idle.front().since + options.idle_connection_timeout);
      if (pool.users == 0 && pool.idle.empty())
        it = pools.erase(it);
      else
        ++it;
    }
  }

  static std::unique_ptr<Pool> make_pool(const Url& origin, const TlsSettings& tls) {
    auto pool = std::make_unique<Pool>();
    pool->origin = origin;
    pool->settings = tls;
    pool->where = origin.origin();
    if (!tls.proxy_url.empty()) {
      auto proxy = Proxy::parse(tls.proxy_url);
      if (!proxy.ok()) {
        pool->unusable = HttpError{HttpError::Kind::Connect, proxy.error(), true};
        return pool;
      }
      pool->proxy = std::move(proxy.value());
      pool->where += " via " + pool->proxy->label();
    }
    if (origin.scheme == "https") {
      std::string context_error;
      pool->context = make_context(tls, context_error);
      if (!context_error.empty()) pool->unusable = error(HttpError::Kind::Tls, context_error);
    }
    // The context holds what the PEM texts gave it: the pool keeps no copy of a key.
    pool->settings.ca_pem.clear();
    pool->settings.client_cert_pem.clear();
    pool->settings.client_key_pem.clear();
    return pool;
  }

  // Asks the proxy on `sock` for a tunnel to the origin (CONNECT, RFC 9110 9.3.6). Once it answers
  // 2xx the socket carries the origin's bytes. The exchange is bounded by the connect timeout.
  // http:// origins are tunnelled too (not sent in absolute form): one code path, so pooling,
  // timeouts and the stale-connection retry are the same for both. The cost: a proxy that allows
  // CONNECT only to port 443 (Squid's default) refuses plain-http origins on other ports (403).
  asio::awaitable<Result<Ok, HttpError>> open_tunnel(beast::tcp_stream& sock, const Proxy& proxy, const Url& o) {
    const std::string target = authority(o.host, o.port);
    bhttp::request<bhttp::empty_body> req{bhttp::verb::connect, target, 11};
    req.set(bhttp::field::host, target);
    if (proxy.has_credentials)
      req.set(bhttp::field::proxy_authorization,
              "Basic " + crypto::base64_encode(proxy.username + ":" + proxy.password));
    sock.expires_after(options.connect_timeout);
    auto [wec, wn] = co_await bhttp::async_write(sock, req, kTuple);
    if (wec) co_return Err(tunnel_error(wec, proxy, target));

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::empty_body> parser;
    parser.skip(true);  // an answer to CONNECT has no body: the tunnel starts right after the header
    sock.expires_after(options.connect_timeout);
    auto [rec, rn] = co_await bhttp::async_read(sock, buffer, parser, kTuple);
    if (rec) co_return Err(tunnel_error(rec, proxy, target));
    const auto& answer = parser.get();
    const int status = static_cast<int>(answer.result_int());
    if (status / 100 == 2) {
      // Neither TLS nor HTTP lets the origin speak first: bytes here are the proxy's, not the origin's.
      if (buffer.size() != 0)
        co_return Err(error(HttpError::Kind::Protocol, proxy.label() + " sent data after accepting CONNECT " + target +
                                                           ", before the origin spoke"));
      co_return Ok{};
    }
    std::string reason(answer.reason().substr(0, 80));
    std::string with_status = "with status " + std::to_string(status) + (reason.empty() ? "" : " (" + reason + ")");
    if (status == 407) {
      std::string hint = proxy.has_credentials ? "the user and password in the proxy URL were not accepted"
                                               : "give them in the proxy URL: http://USER:PASSWORD@HOST:PORT";
      co_return Err(HttpError{HttpError::Kind::Connect,
                              proxy.label() +
                                  " requires authentication (407 Proxy Authentication Required) for CONNECT " + target +
                                  ": " + hint,
                              true});
    }
    // 502/503/504: the proxy could not reach the origin, which is worth retrying as a refused
    // connect is. Any other answer is the proxy's policy (403, 405, ...): retrying will not help.
    if (status == 502 || status == 503 || status == 504)
      co_return Err(error(HttpError::Kind::Connect,
                          proxy.label() + " could not reach " + target + ": it answered CONNECT " + with_status));
    co_return Err(
        HttpError{HttpError::Kind::Connect, proxy.label() + " refused CONNECT " + target + " " + with_status, true});
  }

  static HttpError tunnel_error(const error_code& ec, const Proxy& proxy, const std::string& target) {
    std::string what = "CONNECT " + target + " through " + proxy.label();
    if (ec == beast::error::timeout) return error(HttpError::Kind::Timeout, what + " timed out");
    if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe || ec == asio::error::eof ||
        ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message)
      return error(HttpError::Kind::Reset,
                   proxy.label() + " closed the connection before answering CONNECT " + target);
    if (std::string_view(ec.category().name()) == "beast.http")
      return error(HttpError::Kind::Protocol, "malformed answer from " + proxy.label() + " to CONNECT " + target +
                                                  ": " + ec.message());
    return error(HttpError::Kind::Connect, what + " failed: " + ec.message());
  }

  // Opens a connection: resolve, connect, through a proxy the tunnel, and for https the TLS
  // handshake with SNI and name checks. Through a proxy, only the proxy's name is resolved here.
  asio::awaitable<Result<std::unique_ptr<Connection>, HttpError>> open(Pool& pool) {
    const Url& o = pool.origin;
    const std::string& host = pool.proxy ? pool.proxy->host : o.host;
    const std::string& port = pool.proxy ? pool.proxy->port : o.port;
    const std::string peer = pool.proxy ? pool.proxy->label() + " (for " + o.origin() + ")" : o.origin();
    tcp::resolver resolver(executor);
    auto [rec, endpoints] = co_await resolver.async_resolve(host, port, kTuple);
    if (rec) co_return Err(classify(rec, "resolve", peer));
    auto conn = std::make_unique<Connection>();
    if (pool.context) {
      conn->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(executor, *pool.context);
    } else {
      conn->plain = std::make_unique<beast::tcp_stream>(executor);
    }
    auto& sock = conn->lowest();
    sock.expires_after(options.connect_timeout);
    auto [cec, ep] = co_await sock.async_connect(endpoints, kTuple);
    if (cec) co_return Err(classify(cec, "connect", peer));
    enable_keepalive(sock.socket(), options.keepalive);
    ++stats.connections_opened;
    if (pool.proxy) {
      auto tunnel = co_await open_tunnel(sock, *pool.proxy, o);
      if (!tunnel.ok()) co_return Err(tunnel.error());
    }
    if (!conn->tls) co_return std::move(conn);

    std::string name = pool.settings.server_name.empty() ? o.host : pool.settings.server_name;
    SSL* native = conn->tls->native_handle();
    if (!is_ip_literal(name)) SSL_set_tlsext_host_name(native, name.c_str());
    if (!pool.settings.insecure) {
      X509_VERIFY_PARAM* param = SSL_get0_param(native);
      if (is_ip_literal(name))
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      else
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), 0);
    }
    sock.expires_after(options.handshake_timeout);
    auto [hec] = co_await conn->tls->async_handshake(ssl::stream_base::client, kTuple);
    if (hec) {
      std::string problem = verify_problem(native);
      if (!problem.empty())
        co_return Err(error(HttpError::Kind::TlsVerify, "TLS certificate of " + pool.where + " is not trusted (" +
                                                            problem +
                                                            "): give the CA in CA_CERT_DATA, or set insecureTLS"));
      co_return Err(classify(hec, "TLS handshake", pool.where));
    }
    co_return std::move(conn);
  }

  // A slot in the pool: its most recently used idle connection, else a new connection while fewer
  // than `limit` slots are leased, else a place in the queue until a slot is given back. A
  // cancelled wait throws operation_aborted and leaves nothing behind (see Waiter).
  asio::awaitable<Result<Slot, HttpError>> acquire(Pool& pool, std::size_t limit) {
    std::optional<Waiter> waiter;
    for (;;) {
      close_idle_connections();
      if (!pool.idle.empty() || pool.leased < limit) break;
      if (!waiter) waiter.emplace(pool, executor);
      co_await waiter->wait();
    }
    if (waiter) waiter->used();  // no co_await since the check above: the slot is still free
    if (!pool.idle.empty()) {
      auto connection = std::move(pool.idle.back().connection);
      pool.idle.pop_back();
      connection->reused = true;
      Slot reused(*this, pool, std::move(connection));
      co_return std::move(reused);
    }
    Slot fresh(*this, pool);
    auto opened = co_await open(pool);
    if (!opened.ok()) co_return Err(opened.error());  // ~Slot gives the slot back
    fresh.connection = std::move(opened.value());
    co_return std::move(fresh);
  }

  static bhttp::request<bhttp::string_body> build(const Url& o, const Request& r) {
    bhttp::request<bhttp::string_body> req;
    req.method_string(r.method);
    req.target(r.target);
    req.version(11);
    bool has_host = false;
    for (const auto& [k, v] : r.headers) {
      req.set(k, v);
      if (lower(k) == "host") has_host = true;
    }
    if (!has_host) req.set(bhttp::field::host, o.host_header());
    req.body() = r.body;
    if (!r.body.empty() || r.method == "PUT" || r.method == "POST") req.prepare_payload();
    req.keep_alive(true);
    return req;
  }

  template <class Stream>
  asio::awaitable<error_code> stream_body(Stream& s, Connection& conn, const Request& r, const Url& o,
                                          const std::function<void(const Response&)>& on_head,
                                          const std::function<bool(std::string_view)>& on_data,
                                          std::chrono::milliseconds idle) {
    auto req = build(o, r);
    conn.lowest().expires_after(options.request_timeout);
    auto [wec, wn] = co_await bhttp::async_write(s, req, kTuple);
    if (wec) co_return wec;
    bhttp::response_parser<bhttp::buffer_body> parser;
    parser.body_limit(boost::none);
    conn.lowest().expires_after(options.request_timeout);
    auto [hec, hn] = co_await bhttp::async_read_header(s, conn.buffer, parser, kTuple);
    if (hec) co_return hec;
    Response head;
    head.status = static_cast<int>(parser.get().result_int());
    for (const auto& f : parser.get()) head.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
    on_head(head);
    std::array<char, 16384> buf;
    while (!parser.is_done()) {
      parser.get().body().data = buf.data();
      parser.get().body().size = buf.size();
      conn.lowest().expires_after(idle);  // reset on every read: the idle timeout
      auto [ec, n] = co_await bhttp::async_read_some(s, conn.buffer, parser, kTuple);
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) co_return ec;
      close_idle_connections();
      std::size_t got = buf.size() - parser.get().body().size;
      if (got > 0 && !on_data(std::string_view(buf.data(), got))) co_return error_code{};
    }
    co_return error_code{};
  }

  asio::awaitable<Result<Ok, error_code>> stream_on(Connection& conn, const Url& o, const Request& r,
                                                    const std::function<void(const Response&)>& on_head,
                                                    const std::function<bool(std::string_view)>& on_data,
                                                    std::chrono::milliseconds idle) {
    error_code ec;  // if/else, not ?: — GCC 12 miscompiles co_await inside a conditional expression
    if (conn.tls)
      ec = co_await stream_body(*conn.tls, conn, r, o, on_head, on_data, idle);
    else
      ec = co_await stream_body(*conn.plain, conn, r, o, on_head, on_data, idle);
    if (ec) co_return Err(ec);
    co_return Ok{};
  }

  // Writes the request and reads the whole response on one connection.
  asio::awaitable<Result<std::pair<Response, bool>, error_code>> exchange(Connection& conn, const Url& o,
                                                                          const Request& r) {
    auto req = build(o, r);
    conn.lowest().expires_after(options.request_timeout);
    error_code ec;
    if (conn.tls)
      std::tie(ec, std::ignore) = co_await bhttp::async_write(*conn.tls, req, kTuple);
    else
      std::tie(ec, std::ignore) = co_await bhttp::async_write(*conn.plain, req, kTuple);
    if (ec) co_return Err(ec);

    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(options.max_body_bytes);
    if (r.method == "HEAD") parser.skip(true);
    if (conn.tls)
      std::tie(ec, std::ignore) = co_await bhttp::async_read(*conn.tls, conn.buffer, parser, kTuple);
    else
      std::tie(ec, std::ignore) = co_await bhttp::async_read(*conn.plain, conn.buffer, parser, kTuple);
    if (ec) co_return Err(ec);
    auto& res = parser.get();
    Response out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) out.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
    out.body = std::move(res.body());
    co_return std::make_pair(std::move(out), res.keep_alive());
  }
};

Client::Client(asio::any_io_executor executor, ClientOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->executor = std::move(executor);
  impl_->options = options;
}

Client::~Client() = default;

Client::Stats Client::stats() const {
  Stats out = impl_->stats;
  out.pools = impl_->pools.size();
  for (const auto& [key, pool] : impl_->pools) {
    out.idle_connections += pool->idle.size();
    out.leased_connections += pool->leased;
    out.waiters += pool->waiters.size();
  }
  return out;
}

asio::awaitable<HttpResult> Client::send(Url origin, TlsSettings tls, Request request, std::size_t max_connections) {
  if (auto refused = unsafe_request(origin, request)) co_return Err(*refused);
  auto impl = impl_;  // keeps the pools alive for the whole exchange (declared first: destroyed last)
  impl->close_idle_connections();
  Impl::PoolUse use = impl->use_pool(origin, tls);
  Pool& pool = use.pool;
  if (pool.unusable) co_return Err(*pool.unusable);
  std::size_t limit = max_connections ? max_connections : impl->options.default_max_connections;
  ++impl->stats.requests;
  // A kept-alive connection may have been closed by the server meanwhile: if a reused one fails
  // before any response arrives, the request goes once more on a fresh connection.
  for (int attempt = 0;; ++attempt) {
    auto acquired = co_await impl->acquire(pool, limit);
    if (!acquired.ok()) co_return Err(acquired.error());
    Impl::Slot slot = std::move(acquired.value());
    const bool reused = slot.connection->reused;
    auto result = co_await impl->exchange(*slot.connection, origin, request);
    if (result.ok()) {
      if (result.value().second) slot.keep();
      co_return std::move(result.value().first);
    }
    // From here the slot's connection is closed when `slot` goes (end of this iteration, or return).
    const auto& ec = result.error();
    bool stale = ec == asio::error::connection_reset || ec == asio::error::eof || ec == bhttp::error::end_of_stream ||
                 ec == asio::error::broken_pipe || ec == ssl::error::stream_truncated;
    if (reused && stale && attempt == 0) continue;
    co_return Err(classify(ec, "request", pool.where));
  }
}

asio::awaitable<Result<Ok, HttpError>> Client::stream(Url origin, TlsSettings tls, Request request,
                                                      std::function<void(const Response& head)> on_head,
                                                      std::function<bool(std::string_view data)> on_data,
                                                      std::chrono::milliseconds idle_timeout) {
  if (auto refused = unsafe_request(origin, request)) co_return Err(*refused);
  auto impl = impl_;
  impl->close_idle_connections();
  Impl::PoolUse use = impl->use_pool(origin, tls);  // the pool (its TLS context) outlives the stream
  Pool& pool = use.pool;
  if (pool.unusable) co_return Err(*pool.unusable);
  ++impl->stats.requests;
  auto opened = co_await impl->open(pool);  // never pooled (nor is its tunnel): a watch holds it for long
  if (!opened.ok()) co_return Err(opened.error());
  auto& conn = *opened.value();
  auto result = co_await impl->stream_on(conn, origin, request, on_head, on_data, idle_timeout);
  if (!result.ok()) co_return Err(classify(result.error(), "watch", pool.where));
  co_return Ok{};
}

}  // namespace stowage::http
