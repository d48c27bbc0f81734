#pragma once
// Azure AD (Entra) access tokens for Blob storage: the source the chain chose (azure_identity.hpp),
// or a service principal from a storage's Secret, fetched over the shared http::Client on the
// reactor and cached. The shape is aws_credentials.hpp's; the cached thing is a bearer token.
//
// A TokenProvider hands AzureBackend the token to send as `Authorization: Bearer`. CachingTokenProvider
// guarantees:
//  - a token is reused until 5 minutes before it expires, or until half its lifetime when that is
//    shorter (a token valid for 4 s is used for 2 s), and never after it;
//  - single-flight: however many storages ask while an exchange runs, one exchange happens and all
//    of them share its outcome, token or error;
//  - a refresh that fails while the cached token is still valid for more than 10 s keeps it (the next
//    call tries again); otherwise the error reaches every waiting storage, naming the source
//    ("workload identity (AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE)") and the
//    step, never the token, the assertion or the secret;
//  - a token the storage refused (rejected()) is dropped, so the next call fetches a fresh one;
//  - the federated token file is re-read for every exchange on the `files` executor (a thread pool),
//    never on the reactor;
//  - an IMDS request ends after kImdsTimeout (off Azure nothing answers at 169.254.169.254).
// ServicePrincipalRegistry keeps one provider per (authority, tenant, client id, secret) so that many
// storages naming Secrets with the same service principal make one exchange, also when the engine
// makes a fresh backend for every reconcile; an entry unused for `idle` is dropped.
// Assumes the callers share one executor (the reactor) or at least run one handler at a time each;
// waiters are woken on their own executors.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/http_client.hpp"
#include "storage/azure_identity.hpp"
#include "storage/backend.hpp"
#include "storage/retry.hpp"

namespace stowage::storage {
template <class V>
class RefreshingCache;  // storage/refreshing_cache.hpp
}  // namespace stowage::storage

namespace stowage::storage::azure {

class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  // A token that is valid now, or why there is none.
  virtual boost::asio::awaitable<BackendResult<std::string>> token() = 0;
  // The storage refused `token` (401: expired, revoked, wrong audience): forget it if still cached.
  virtual void rejected(const std::string& token) = 0;
  // "workload identity (...)": for messages.
  virtual const std::string& source_name() const = 0;
};

// One exchange with a source, no caching. Errors do not name the source (the cache adds it).
class TokenFetcher {
 public:
  virtual ~TokenFetcher() = default;
  virtual boost::asio::awaitable<Result<AccessToken, BackendError>> fetch() = 0;
};

class CachingTokenProvider final : public TokenProvider {
 public:
  CachingTokenProvider(std::string source_name, std::unique_ptr<TokenFetcher> fetcher,
                       std::function<WallClock::time_point()> now = &WallClock::now);
  ~CachingTokenProvider() override;

  boost::asio::awaitable<BackendResult<std::string>> token() override;
  void rejected(const std::string& token) override;
  const std::string& source_name() const override { return name_; }

  std::uint64_t fetches() const;  // exchanges started (tests, metrics)

  // When a token fetched at `now` that expires at `expires_at` is replaced (storage/refreshing_cache.hpp).
  static WallClock::time_point refresh_time(WallClock::time_point now, WallClock::time_point expires_at);

 private:
  std::string name_;
  std::unique_ptr<TokenFetcher> fetcher_;
  std::shared_ptr<RefreshingCache<std::string>> cache_;
};

inline constexpr std::chrono::seconds kImdsTimeout{5};

// The fetcher for one source. `files` runs the federated token reads.
std::unique_ptr<TokenFetcher> make_fetcher(const SourceSettings& source, http::Client& client,
                                           boost::asio::any_io_executor files, RetryPolicy retry = {});

// The cached provider for the chain's first source; null when the chain found none.
std::shared_ptr<TokenProvider> make_provider(const Chain& chain, http::Client& client,
                                             boost::asio::any_io_executor files, RetryPolicy retry = {});

class ServicePrincipalRegistry {
 public:
  explicit ServicePrincipalRegistry(std::chrono::steady_clock::duration idle = std::chrono::hours(1)) : idle_(idle) {}

  // The provider for this service principal (settings checked by the caller), named `name`
  // ("service principal of storage secret demo/sp").
  std::shared_ptr<TokenProvider> provider(const ClientCredentialSettings& settings, const std::string& name,
                                          http::Client& client, boost::asio::any_io_executor files);

 private:
  struct Entry {
    std::shared_ptr<TokenProvider> provider;
    std::chrono::steady_clock::time_point last_handed_out;
  };
  const std::chrono::steady_clock::duration idle_;
  std::mutex mutex_;
  std::map<std::string, Entry> providers_;
};

}  // namespace stowage::storage::azure
