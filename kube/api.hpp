#pragma once
// Api — the Kubernetes API operations the rest of stowage uses: get, list (one page), create,
// replace (PUT), patch, delete and watch, by API path. ApiClient (kube/api_client.hpp) implements it
// against an API server; tests put an in-process fake behind it (tests/support/fake_api.hpp).
//
// Contract (what every implementation keeps and every caller may rely on):
// - Errors are values (ApiError) naming the verb and the path, never a credential; `transient()`
//   says whether the same request may succeed later.
// - A watch hands each event to the callback as it arrives, in the server's order; it ends with Ok
//   when the server ends it or the callback returns false, and ends (Ok or an error) when the
//   awaiting coroutine is cancelled.
// - Paths are API paths ("/api/v1/namespaces/ns/configmaps/x"), already encoded.
//
// Assumes: one reactor thread uses an Api, and the Api outlives the requests it started.
#include <boost/asio/awaitable.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/result.hpp"
#include "kube/watch_stream.hpp"

namespace stowage::kube {

inline constexpr const char* kMergePatch = "application/merge-patch+json";
inline constexpr const char* kJsonPatch = "application/json-patch+json";

struct ApiError {
  enum class Kind {
    Transport,  // no HTTP answer: resolve/connect/TLS/timeout/reset (http_status 0)
    Status,     // the server answered with a non-2xx status (status holds its Status, if any)
    Stream,     // a watch body that is not a stream of events (WatchStreamSplitter's error)
    Decode,     // a 2xx answer whose body is not JSON
    // No credential to send: the exec plugin failed (message: ExecPluginError's, after the verb and
    // path); no request was sent (http_status 0).
    Credentials,
  };
  Kind kind = Kind::Transport;
  int http_status = 0;  // 0 for a transport error
  ApiStatus status;     // the server's Status (empty when the body was not one)
  std::string message;  // "list /api/v1/namespaces/ns/secrets: ..." (never a credential)
  std::optional<std::chrono::seconds> retry_after;  // Retry-After or details.retryAfterSeconds
  bool transport_transient = false;  // Transport only: whether the failure may pass (not a TLS one)
  // Transport only: a watch that the server had answered (2xx) sent no byte for its idle timeout
  // (WatchOptions::idle_timeout): a stalled or half-open connection, which this client closed.
  bool watch_idle = false;
  // Credentials only: whether the plugin may succeed later (it failed, was killed or timed out) or
  // needs a person (not found, not executable, needs a terminal, output of the wrong shape).
  bool credentials_transient = false;

  // Worth retrying as is: transient transport failures, 408/429/500/502/503/504, broken watch
  // streams, transient plugin failures.
  bool transient() const;
};

struct ListOptions {
  std::int64_t limit = 0;            // 0 = no limit
  std::string continue_token;        // from the previous page's metadata.continue
  std::string resource_version;      // "" = most recent
  std::string label_selector;
  std::string field_selector;
  std::string accept;                // "" = application/json
};

struct WatchOptions {
  std::string resource_version;      // "" = start at the most recent
  std::int64_t timeout_seconds = 0;  // 0 = the server's default
  bool allow_bookmarks = false;
  std::string label_selector;
  std::string field_selector;
  std::string accept;                // "" = application/json
  // Longest silence between two reads; 0 = timeout_seconds + 30 s, or 5 minutes without one.
  std::chrono::milliseconds idle_timeout{0};
};

class Api {
 public:
  template <class T>
  using Awaitable = boost::asio::awaitable<Result<T, ApiError>>;

  virtual ~Api() = default;

  virtual Awaitable<boost::json::value> get(std::string path) = 0;
  // The parsed body of one page (a *List object; metadata.continue says whether more follow).
  virtual Awaitable<boost::json::value> list(std::string path, ListOptions options = {}) = 0;
  virtual Awaitable<boost::json::value> create(std::string collection_path, boost::json::value object) = 0;
  // PUT (the "update" verb): the object replaces the stored one whole. With metadata.resourceVersion
  // set, a stale one is a 409 Conflict (optimistic concurrency, as client-go's Update).
  virtual Awaitable<boost::json::value> replace(std::string path, boost::json::value object) = 0;
  // content_type: kMergePatch or kJsonPatch (or application/strategic-merge-patch+json).
  virtual Awaitable<boost::json::value> patch(std::string path, std::string content_type,
                                              boost::json::value body) = 0;
  // The server's answer: the object (finalizers pending) or a Status. delete_options, when not
  // null, is a meta/v1 DeleteOptions body (e.g. {"preconditions":{"uid":...}}: a 409 if the object
  // by that name is no longer the one meant).
  virtual Awaitable<boost::json::value> remove(std::string path, boost::json::value delete_options = nullptr) = 0;
  virtual Awaitable<Ok> watch(std::string path, WatchOptions options, std::function<bool(WatchEvent)> on_event) = 0;
};

}  // namespace stowage::kube
