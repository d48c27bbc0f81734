#pragma once
// GCS access tokens: one cache per identity, shared by every GCS backend that uses it.
//
// A TokenSource hands out an OAuth access token for one identity: a service-account key (a signed
// JWT traded at the key's token_uri, from a Secret or GOOGLE_APPLICATION_CREDENTIALS), an external
// account (workload identity federation: a subject token file traded at STS, then optionally for a
// service account's token at generateAccessToken), or the metadata server's default account (GKE
// workload identity, GCE). It guarantees:
//  - a token is reused until 5 minutes before it expires, or, when it lives 10 minutes or less,
//    until half its lifetime (a token valid for 4 s is used for 2 s), then refreshed (as the AWS
//    credentials are);
//  - an external account's subject token file is re-read for every exchange, on the `files`
//    executor (a thread pool), never on the reactor, and at most kMaxCredentialsFileBytes of it;
//  - at most one refresh is in flight: callers that arrive meanwhile wait for it and share its
//    outcome, token or error (so a bad key costs one exchange, not one per waiting storage);
//  - a token the storage API rejected (401) is dropped with invalidate(), so the next call refreshes;
//  - a token that could not be sent as a header (a control character, not RFC 6750 token68, over
//    kMaxAccessTokenBytes) is a permanent InvalidAccessToken error naming the endpoint, never cached;
//  - errors are BackendErrors that say what to fix and name the source (the Secret's key, the
//    GOOGLE_APPLICATION_CREDENTIALS file, the metadata server), never holding the key, a JWT or a token.
// Assumptions: each caller's executor runs its handlers one at a time (the reactor, or a strand):
// a waiter is woken by posting to its own executor. The state is behind a mutex, so sources may be
// shared across reactors.
//
// TokenRegistry maps an identity to its source so that 1,000 storages naming one Secret make one
// exchange an hour, not 1,000 — also when the engine makes a fresh backend for every reconcile: a
// source outlives its last backend by `idle` (an hour, a token's lifetime) and is then dropped,
// key and token with it. A rotated key (another private_key_id or private key) is another identity.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/backend.hpp"
#include "storage/gcs_auth.hpp"
#include "common/http_client.hpp"
#include "storage/retry.hpp"

namespace stowage::storage::gcs {

// A transport failure (no HTTP answer) as a BackendError: transient unless TLS or size, code from
// the failed phase ("Timeout", "ConnectFailed", ...), message `context: <what the client said>`.
BackendError transport_error(const http::HttpError& error, std::string_view context);

class TokenSource {
 public:
  // How long after it was issued a token that lives `lifetime` is replaced: storage::refresh_time's
  // rule (storage/refreshing_cache.hpp), the one AWS credentials and Azure tokens follow.
  static std::chrono::steady_clock::duration refresh_after(std::chrono::seconds lifetime);

  // `source` is what a refusal tells the user to check.
  static std::shared_ptr<TokenSource> for_service_account(ServiceAccountKey key,
                                                          std::string source = "GOOGLE_SERVICE_ACCOUNT_JSON_KEY");
  static std::shared_ptr<TokenSource> for_external_account(ExternalAccount account, std::string source,
                                                           boost::asio::any_io_executor files);
  static std::shared_ptr<TokenSource> for_metadata_server(std::string host);  // "" = metadata.google.internal

  TokenSource(const TokenSource&) = delete;
  TokenSource& operator=(const TokenSource&) = delete;

  // A usable access token: the cached one, or a fresh one fetched with `client`, retried per
  // `retry`. `tls` applies to the token endpoint (the metadata server is plain http).
  boost::asio::awaitable<BackendResult<std::string>> token(http::Client& client, http::TlsSettings tls,
                                                           RetryPolicy retry = {});

  // The storage API answered 401 to `rejected`: forget it if it is still the cached token.
  void invalidate(std::string_view rejected);

  // Who the tokens speak for, for messages: "service account `a@b.iam.gserviceaccount.com`" or
  // "the metadata server's default service account".
  std::string principal() const;
  // What to check when GCS refuses its tokens: "GOOGLE_SERVICE_ACCOUNT_JSON_KEY",
  // "GOOGLE_APPLICATION_CREDENTIALS file /path (external_account)", "the metadata server".
  const std::string& source() const { return source_; }
  const std::string& token_uri() const { return token_origin_; }  // where tokens come from (an origin URL or path)
  std::uint64_t fetches() const { return fetches_.load(); }       // exchanges sent (tests, metrics)

 private:
  struct Waiter;
  struct RefreshGuard;
  TokenSource() = default;

  boost::asio::awaitable<BackendResult<std::string>> fetch(http::Client& client, http::TlsSettings tls,
                                                           RetryPolicy retry);
  boost::asio::awaitable<BackendResult<std::string>> fetch_service_account(http::Client& client, http::TlsSettings tls,
                                                                           RetryPolicy retry);
  boost::asio::awaitable<BackendResult<std::string>> fetch_metadata(http::Client& client, RetryPolicy retry);
  boost::asio::awaitable<BackendResult<std::string>> fetch_external_account(http::Client& client,
                                                                            http::TlsSettings tls, RetryPolicy retry);
  boost::asio::awaitable<BackendResult<std::string>> impersonate(http::Client& client, http::TlsSettings tls,
                                                                 RetryPolicy retry, std::string federated_token);
  BackendResult<std::string> remember(TokenReply reply);

  std::optional<ServiceAccountKey> key_;       // a service account
  std::optional<ExternalAccount> external_;    // workload identity federation
  std::string metadata_host_;                  // neither: the metadata server
  std::string token_origin_;
  std::string source_;
  boost::asio::any_io_executor files_;  // where the subject token file is read

  mutable std::mutex mutex_;
  std::string token_;
  std::chrono::steady_clock::time_point refresh_at_{};
  bool refreshing_ = false;
  std::uint64_t generation_ = 0;  // completed (or abandoned) refreshes
  std::optional<BackendResult<std::string>> last_outcome_;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  std::atomic<std::uint64_t> fetches_{0};
};

class TokenRegistry {
 public:
  explicit TokenRegistry(std::chrono::steady_clock::duration idle = std::chrono::hours(1)) : idle_(idle) {}

  // The one the GcsBackend(client, options) constructor uses.
  static TokenRegistry& process_wide();

  // The source for this key: shared with every live backend using the same client_email,
  // private_key_id, private key and token_uri.
  std::shared_ptr<TokenSource> service_account(const ServiceAccountKey& key);
  std::shared_ptr<TokenSource> metadata_server(const std::string& host);

 private:
  std::shared_ptr<TokenSource> find_or_make(const std::string& id,
                                            const std::function<std::shared_ptr<TokenSource>()>& make);
  struct Entry {
    std::shared_ptr<TokenSource> source;
    std::chrono::steady_clock::time_point last_handed_out;
  };
  const std::chrono::steady_clock::duration idle_;
  std::mutex mutex_;
  std::map<std::string, Entry> sources_;
};

}  // namespace stowage::storage::gcs
