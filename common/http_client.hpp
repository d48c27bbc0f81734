#pragma once
// http::Client — the asynchronous HTTP(S) client the cloud backends (and next the Kubernetes
// client) use, on the caller's reactor (Boost.Beast + OpenSSL):
//  - per-origin keep-alive pools, bounded by a connection limit (the storage's maxConnections);
//    a request that finds every connection busy waits for one;
//  - timeouts on connect, TLS handshake and the whole request/response exchange;
//  - TLS verification on by default against the system roots, or against `ca_pem` alone when it is
//    given (KubeStash's CA_CERT_DATA replaces the roots), or off when `insecure` is set; SNI sent;
//  - plain http:// allowed (MinIO inside a cluster);
//  - errors are values: which phase failed, against which origin; a message never holds a header
//    value (signatures and tokens travel in headers).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace stowage::http {

struct Url {
  std::string scheme;  // "http" | "https"
  std::string host;    // without brackets for IPv6
  std::string port;    // always set ("443"/"80" by default)
  std::string path;    // "/..." as given (may be empty: "/")

  // Parses "https://host[:port][/path]"; a URL without a scheme is taken as https.
  static Result<Url, std::string> parse(std::string_view text);
  std::string origin() const;           // "https://host:port"
  std::string host_header() const;      // "host" or "host:port" when the port is not the default
};

struct TlsSettings {
  // A constructor rather than an aggregate, so call sites may give only the leading fields.
  TlsSettings(std::string ca = {}, bool skip_verify = false, std::string name = {}, std::string cert = {},
              std::string key = {})
      : ca_pem(std::move(ca)),
        insecure(skip_verify),
        server_name(std::move(name)),
        client_cert_pem(std::move(cert)),
        client_key_pem(std::move(key)) {}

  std::string ca_pem;       // PEM bundle that replaces the system roots when non-empty
  bool insecure = false;    // skip certificate verification (insecureTLS)
  std::string server_name;  // name to verify and send as SNI; empty = the URL's host
  std::string client_cert_pem;  // client certificate chain (mutual TLS), PEM; empty = none
  std::string client_key_pem;   // its private key, PEM
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
  enum class Kind { Resolve, Connect, Tls, TlsVerify, Timeout, Reset, Protocol, TooLarge };
  Kind kind = Kind::Protocol;
  std::string message;  // e.g. "TLS certificate of https://127.0.0.1:9000 not trusted: self-signed certificate"
  bool transient() const { return kind != Kind::Tls && kind != Kind::TlsVerify && kind != Kind::TooLarge; }
};

using HttpResult = Result<Response, HttpError>;

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds handshake_timeout{10000};
  std::chrono::milliseconds request_timeout{30000};
  std::size_t default_max_connections = 16;
  std::size_t max_body_bytes = 64u << 20;
};

class Client {
 public:
  explicit Client(boost::asio::any_io_executor executor, ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One request over a pooled connection to `origin` (only scheme/host/port are used). Pools are
  // keyed by origin and TLS settings. max_connections 0 = the default.
  boost::asio::awaitable<HttpResult> send(Url origin, TlsSettings tls, Request request,
                                          std::size_t max_connections = 0);

  // A streaming exchange on a connection of its own (a watch): `on_head` sees the status and headers,
  // then `on_data` each piece of the (de-chunked) body as it arrives, and may return false to stop.
  // `idle_timeout` bounds the silence between two reads (it catches half-open connections). Ends
  // with Ok when the server ends the body (or on_data stopped it), else with the error.
  boost::asio::awaitable<Result<Ok, HttpError>> stream(Url origin, TlsSettings tls, Request request,
                                                       std::function<void(const Response& head)> on_head,
                                                       std::function<bool(std::string_view data)> on_data,
                                                       std::chrono::milliseconds idle_timeout);

  struct Stats {
    std::uint64_t connections_opened = 0;
    std::uint64_t requests = 0;
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
