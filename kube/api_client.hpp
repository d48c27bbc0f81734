#pragma once
// ApiClient — the Kubernetes REST client: kube::Api (get, list (one page), create, replace (PUT), patch,
// delete and watch) against the API server a ClientConfig names, over http::Client.
//
// Guarantees:
// - Errors are values (ApiError) that name the verb and the path; a 401 says the credentials were
//   refused, a 403 quotes the server's Status message (which names the RBAC verb and resource). No
//   token, password or key ever appears in a message.
// - Credentials: a bearer token (bearer_token, or token_file re-read when the last read is older
//   than kTokenFileRereadInterval, and once after a 401, after which the request is retried once),
//   basic auth, a client certificate (mutual TLS), or an exec credential plugin (config.exec): its
//   credential is cached until its expirationTimestamp; concurrent requests that find no fresh
//   credential share one run of the plugin; its token goes into `Authorization: Bearer`, its client
//   certificate and key into the TLS settings; a 401 to a request made with credential C forgets C
//   (unless a newer one has replaced it), and the request (or watch) is retried once with a new
//   one. A plugin failure is an ApiError of kind Credentials, sent nowhere. As in client-go, a
//   plain-HTTP server gets no credentials (and no plugin runs). CA, insecure-skip-verify and
//   tls-server-name come from the config.
// - Rate limit: every request, every watch opening and every retry after a 401 first takes a token
//   from a client-side token bucket (ApiClientOptions::qps / burst; kube/rate_limiter.hpp), waiting
//   on the reactor without blocking it, as client-go's rest client does.
// - A watch hands each event to the callback as soon as it has arrived, ends with Ok when the server
//   ends the body cleanly (timeoutSeconds) or the callback returns false; a broken stream is an
//   ApiError of kind Stream; a body silent for the idle timeout is closed and reported as a
//   Transport error with watch_idle set.
//
// Assumes: paths are API paths ("/api/v1/namespaces/ns/configmaps/x"), already encoded; the
// server's path prefix (ServerUrl::path) is put in front of them here. One reactor thread uses an
// ApiClient (the rate limiter and the exec credential state are not synchronised), and the
// ApiClient outlives the requests it started.
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http_client.hpp"
#include "common/result.hpp"
#include "kube/api.hpp"
#include "kube/client_config.hpp"
#include "kube/exec_credential.hpp"
#include "kube/exec_plugin.hpp"
#include "kube/rate_limiter.hpp"
#include "kube/watch_stream.hpp"

namespace stowage::kube {

// ApiError, ListOptions and WatchOptions: kube/api.hpp.

struct ApiClientOptions {
  // The client-side rate limit: controller-runtime's defaults, qps 20 and burst 30 (client-go's own
  // rest.Config defaults are 5 and 10). qps <= 0 turns the limit off.
  double qps = 20;
  int burst = 30;
  // The exec credential plugin's timeout (60 s) and output cap (1 MiB).
  ExecPluginOptions exec;
  // Called after each request with its HTTP status (nullopt when no response came), method and
  // duration (for a watch: until its headers arrived). For metrics; must not block.
  std::function<void(std::optional<int> status, std::string_view method, std::chrono::duration<double> took)>
      on_request;
};

class ApiClient final : public Api {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // `clock` says when token_file was last read (tests move it); the rate limiter and the exec
  // credential cache use the real clocks.
  ApiClient(http::Client& http, ClientConfig config, ApiClientOptions options = {},
            Clock clock = [] { return std::chrono::steady_clock::now(); });
  ApiClient(http::Client& http, ClientConfig config, Clock clock);
  ~ApiClient() override;
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  Awaitable<boost::json::value> get(std::string path) override;
  // The parsed body of one page (a *List object; metadata.continue says whether more follow).
  Awaitable<boost::json::value> list(std::string path, ListOptions options = {}) override;
  Awaitable<boost::json::value> create(std::string collection_path, boost::json::value object) override;
  // PUT (the "update" verb): the object replaces the stored one whole. With metadata.resourceVersion
  // set, a stale one is a 409 Conflict (optimistic concurrency, as client-go's Update).
  Awaitable<boost::json::value> replace(std::string path, boost::json::value object) override;
  // content_type: kMergePatch or kJsonPatch (or application/strategic-merge-patch+json).
  Awaitable<boost::json::value> patch(std::string path, std::string content_type, boost::json::value body) override;
  // The server's answer: the object (finalizers pending) or a Status. delete_options, when not
  // null, is a meta/v1 DeleteOptions body (e.g. {"preconditions":{"uid":...}}: a 409 if the object
  // by that name is no longer the one meant).
  Awaitable<boost::json::value> remove(std::string path, boost::json::value delete_options = nullptr) override;
  Awaitable<Ok> watch(std::string path, WatchOptions options, std::function<bool(WatchEvent)> on_event) override;

  const ClientConfig& config() const { return config_; }
  const ApiClientOptions& options() const { return options_; }

 private:
  struct Call {
    std::string verb;    // for messages: get, list, create, update, patch, delete, watch
    std::string method;  // HTTP
    std::string path;    // API path, for messages
    std::string query;   // "" or "?a=b&..."
    std::string body;
    std::string content_type;
    std::string accept;
    // The answer's tree in one shared monotonic resource (a list page: its items go to the
    // handlers and are dropped, the whole page's memory with the last of them).
    bool one_block = false;
  };
  // What one attempt sends: the request, the TLS settings, and the exec credential used (if any).
  struct Attempt {
    http::Request request;
    http::TlsSettings tls;
    std::optional<ExecCredential> credential;
  };
  struct ExecRun;  // one run of the exec plugin, awaited by every request that needs its result

  Awaitable<boost::json::value> exchange(Call call);
  // Takes a rate-limiter token, gets the credentials (running the exec plugin when needed) and
  // builds the request.
  Awaitable<Attempt> prepare(const Call& call);
  // The fresh cached exec credential, or the result of a plugin run (shared with concurrent callers).
  Awaitable<ExecCredential> exec_credential(const Call& call);
  bool sends_credentials() const;
  http::Request make_request(const Call& call, const ExecCredential* credential);
  // After a 401 to `attempt`: whether to retry it (the credential was forgotten, or token_file re-read).
  bool renew_after_unauthorized(const Attempt& attempt);
  // The token to send now (re-reading token_file when due); "" when none.
  std::string current_token();
  // After a 401: re-reads token_file; true when a token was read (then the request is retried).
  bool reread_token_after_unauthorized();
  ApiError status_error(const Call& call, const http::Response& response) const;

  http::Client& http_;
  ClientConfig config_;
  ApiClientOptions options_;
  Clock clock_;
  RateLimiter limiter_;
  ExecCredentialCache exec_cache_;
  // The plugin run in flight, if any, in a slot of its own: a run outlives this client when the
  // reactor is destroyed after it (its guard then finds the slot gone, not a dangling client).
  struct ExecSlot {
    std::shared_ptr<ExecRun> run;
  };
  std::shared_ptr<ExecSlot> exec_slot_ = std::make_shared<ExecSlot>();
  http::Url origin_;
  http::TlsSettings tls_;
  std::mutex token_mutex_;
  std::string token_;
  std::optional<std::chrono::steady_clock::time_point> token_read_at_;
};

}  // namespace stowage::kube
