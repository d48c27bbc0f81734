#pragma once
// http::Client — the asynchronous HTTP(S) client the cloud backends (and next the Kubernetes
// client) use, on the caller's reactor (Boost.Beast + OpenSSL):
//  - per-origin keep-alive pools, bounded by a connection limit (the storage's maxConnections);
//    a request that finds every connection busy waits for one, in turn;
//  - bounded pools: a pool is keyed by a SHA-256 digest of its origin and whole TLS identity (CA
//    bundle, client certificate and key, verify flag, server name, proxy URL), so the key holds no
//    secret and two identities never share a connection. A connection idle for
//    ClientOptions::idle_connection_timeout (90 s) is closed, and a pool with no connection and no
//    request is evicted (a rotated client certificate, or one pool per bucket with virtual-hosted
//    addressing, leaves nothing behind). The client starts no timer of its own, so an io_context
//    with nothing else to do still returns from run(): idle connections are closed by a sweep at
//    every request and every read of a stream, so one may outlive its 90 s while the client is not
//    used at all;
//  - whatever ends a request (its result, an error, an exception, or a cancellation through its
//    cancellation slot — a terminal one, as Asio's awaitables filter by default), its slot and its
//    place in the queue are given back. A request cancelled while it waits for a slot ends with
//    Asio's operation_aborted exception, as any cancelled co_await does; one cancelled during the
//    exchange ends with the aborted operation's error value (or that exception, when the
//    cancellation lands between two operations), and its connection is closed;
//  - timeouts on connect, TLS handshake and the whole request/response exchange (send(): one
//    deadline from the first byte written to the last byte of the body read, so a body that stalls
//    half-way fails with Kind::Timeout too); stream(): the idle timeout between two reads;
//  - TCP keepalive on every connection (ClientOptions::keepalive), to the origin or to the proxy:
//    a peer that vanished without a FIN or RST (a half-open connection) makes the socket fail after
//    idle + interval x count (60 s by default) even while nothing is being sent;
//  - TLS verification on by default against the system roots, or against `ca_pem` alone when it is
//    given (KubeStash's CA_CERT_DATA replaces the roots), or off when `insecure` is set; SNI sent;
//  - plain http:// allowed (MinIO inside a cluster);
//  - an HTTP proxy per call (TlsSettings::proxy_url: the kubeconfig's clusters[].cluster.proxy-url,
//    as client-go honours it): every connection to the origin, https and http alike, is a tunnel
//    opened with `CONNECT host:port` (Proxy-Authorization: Basic when the URL has user info), then
//    for https the TLS handshake with the origin's SNI and verification inside it. Errors name the
//    proxy's host:port (never its password). An unreachable proxy, or one answering 502/503/504
//    (it could not reach the origin), is transient like a refused connect; 407 and other refusals
//    are not. Only http:// proxies: an https:// proxy needs TLS inside TLS, a second stream type
//    through every code path, for a setup kubeconfigs rarely use; https:// and socks5:// proxies
//    fail every call with a clear, non-transient error. Where the caller names no proxy, the one
//    ClientOptions::environment_proxies picks (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, as Go reads
//    them; see common/proxy_environment.hpp) is used, if given. Different proxies (or none) never
//    share a pool;
//  - errors are values: which phase failed, against which origin; a message never holds a header
//    value (signatures and tokens travel in headers);
//  - the last line of defence against header injection: a request whose method, target, host or
//    header names are not what HTTP allows there, or whose header values hold a control character
//    (CR, LF, NUL, ...; see common/header_values.hpp), is refused before a connection is even
//    chosen (Kind::InvalidRequest, permanent), with an error naming the header, never its value.
//    Callers check what they put in headers first, with messages naming their source; this check
//    protects every caller, future ones included, when they do not.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/proxy_environment.hpp"
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace stowage::http {

struct Url {
  std::string scheme;  // "http" | "https"
  std::string host;    // without brackets for IPv6
  std::string port;    // always set ("443"/"80" by default)
  std::string path;    // "/..." as given (may be empty: "/")

  // Parses "https://host[:port][/path]" (common/url.hpp); a URL without a scheme is taken as https.
  // Refused, with a message that never quotes the text: another scheme, user info (a credential),
  // a query or fragment, a port outside 1..65535 or a ':' without one, control characters, spaces.
  static Result<Url, std::string> parse(std::string_view text);
  std::string origin() const;           // "https://host:port"
  std::string host_header() const;      // "host" or "host:port" when the port is not the default
};

// An HTTP proxy, from a URL "http://[user:password@]host[:port]" (common/url.hpp; port 80 by
// default; a path, query or fragment is ignored, user and password are percent-decoded; a raw '@'
// in a password is taken as Go's net/url takes it: the last '@' ends the user info). Any other
// scheme is refused with
// "proxy scheme X is not supported; use an http:// proxy". Error texts never quote the URL (it may
// hold a password).
struct Proxy {
  std::string host;  // without brackets for IPv6
  std::string port;
  std::string username;
  std::string password;
  bool has_credentials = false;  // the URL had user info (then Proxy-Authorization is sent)

  static Result<Proxy, std::string> parse(std::string_view url);
  std::string label() const;  // "proxy 10.0.0.1:3128": what errors name, never the credentials
};

// How to reach an origin beyond its URL: TLS, and the proxy to tunnel through. Everything here is
// part of the pool key.
struct TlsSettings {
  // A constructor rather than an aggregate, so call sites may give only the leading fields.
  TlsSettings(std::string ca = {}, bool skip_verify = false, std::string name = {}, std::string cert = {},
              std::string key = {}, std::string proxy = {})
      : ca_pem(std::move(ca)),
        insecure(skip_verify),
        server_name(std::move(name)),
        client_cert_pem(std::move(cert)),
        client_key_pem(std::move(key)),
        proxy_url(std::move(proxy)) {}

  std::string ca_pem;       // PEM bundle that replaces the system roots when non-empty
  bool insecure = false;    // skip certificate verification (insecureTLS)
  std::string server_name;  // name to verify and send as SNI; empty = the URL's host
  std::string client_cert_pem;  // client certificate chain (mutual TLS), PEM; empty = none
  std::string client_key_pem;   // its private key, PEM
  // The proxy to tunnel through (see Proxy); empty = connect directly. Parsed once per pool: a URL
  // Proxy::parse refuses fails every call with that message (Kind::Connect, not transient).
  std::string proxy_url;
};

struct Request {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // origin-form, already encoded: "/bucket/key?list-type=2"
  std::vector<std::pair<std::string, std::string>> headers;  // Host/Content-Length added unless present
  std::string body;
};

struct Response {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string header(std::string_view name) const;  // first value, "" when absent (name case-insensitive)
};

struct HttpError {
  // InvalidRequest: refused before sending (see the module comment); never transient.
  enum class Kind { Resolve, Connect, Tls, TlsVerify, Timeout, Reset, Protocol, TooLarge, InvalidRequest };
  Kind kind = Kind::Protocol;
  std::string message;  // e.g. "TLS certificate of https://127.0.0.1:9000 not trusted: self-signed certificate"
  // Set where a kind that is usually worth retrying is not: a proxy that refuses the tunnel (407,
  // 403, ...) or a proxy URL the client cannot use (both Kind::Connect).
  bool permanent = false;
  bool transient() const {
    return !permanent && kind != Kind::Tls && kind != Kind::TlsVerify && kind != Kind::TooLarge &&
           kind != Kind::InvalidRequest;
  }
};

using HttpResult = Result<Response, HttpError>;

// TCP keepalive (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT): after `idle` without
// traffic the kernel sends a probe every `interval`; `count` unanswered probes fail the connection.
struct TcpKeepAlive {
  bool enabled = true;
  std::chrono::seconds idle{30};
  std::chrono::seconds interval{10};
  int count = 3;
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10000};  // TCP connect; through a proxy, also the CONNECT exchange
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds request_timeout{30000};
  std::size_t default_max_connections = 16;
  std::size_t max_body_bytes = 64u << 20;
  TcpKeepAlive keepalive;  // on every connection this client opens
  // A pooled connection unused this long is closed (see the module comment for when exactly).
  // 90 s is the IdleConnTimeout of Go's http.DefaultTransport.
  std::chrono::milliseconds idle_connection_timeout{90000};
  // When set, a request whose TlsSettings name no proxy takes the one these environment variables
  // pick for its origin (ProxyEnvironment::from_process() in the product; unset in most tests).
  std::shared_ptr<const ProxyEnvironment> environment_proxies;
};

class Client {
 public:
  explicit Client(boost::asio::any_io_executor executor, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request over a pooled connection to `origin` (only scheme/host/port are used). Pools are
  // keyed by origin and TLS settings (the proxy included). max_connections 0 = the default.
  boost::asio::awaitable<HttpResult> send(Url origin, TlsSettings tls, Request request,
                                          std::size_t max_connections = 0);

  // A streaming exchange on a connection (through a proxy, a tunnel) of its own (a watch): `on_head`
  // sees the status and headers, then `on_data` each piece of the (de-chunked) body as it arrives,
  // and may return false to stop. `idle_timeout` bounds the silence between two reads (it catches
  // half-open connections). Ends with Ok when the server ends the body (or on_data stopped it),
  // else with the error.
  boost::asio::awaitable<Result<Ok, HttpError>> stream(Url origin, TlsSettings tls, Request request,
                                                       std::function<void(const Response& head)> on_head,
                                                       std::function<bool(std::string_view data)> on_data,
                                                       std::chrono::milliseconds idle_timeout);

  // What the client holds, for tests and diagnostics (read-only).
  struct Stats {
    // Counters since the client was made.
    std::uint64_t connections_opened = 0;
    std::uint64_t requests = 0;
    std::uint64_t idle_connections_closed = 0;  // by the idle timeout
    // At the time of the call. Streams' connections are their own, in no pool count.
    std::size_t pools = 0;
    std::size_t idle_connections = 0;
    std::size_t leased_connections = 0;  // slots held by requests (a connection in use or being opened)
    std::size_t waiters = 0;             // requests waiting for a slot
  };
  Stats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// RFC 3986 percent-encoding of every byte except A-Z a-z 0-9 - . _ ~ (upper-case hex), keeping '/'
// when `keep_slash` (object keys in paths). The one encoder for S3, GCS and Azure.
std::string uri_encode(std::string_view s, bool keep_slash);

// Percent-decoding; a '%' not followed by two hex digits stays literal, '+' stays '+' (paths, SigV4).
std::string percent_decode(std::string_view s);
// Form decoding (query components, S3's encoding-type=url keys): as above, and '+' is a space.
std::string form_decode(std::string_view s);

}  // namespace stowage::http
