#pragma once
// AWS credentials for the controller's own identity: the source the chain chose (aws_identity.hpp),
// fetched over the shared http::Client on the reactor and cached.
//
// A CredentialProvider hands S3Backend the keys to sign with. The one make_provider() builds
// guarantees:
//  - one source per process (the chain's first), cached: long-lived keys forever; temporary ones
//    until 5 minutes before their Expiration, or until half their lifetime when that is shorter (a
//    credential valid for 4 s is used for 2 s), and never after it;
//  - single-flight: however many storages ask while a fetch runs, one exchange happens and all of
//    them share its outcome, keys or error;
//  - a refresh that fails while the cached keys are still valid for more than 10 s keeps them (and
//    the next call tries again); otherwise the error reaches every waiting storage, naming the
//    source ("web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)") and the step, never a
//    token, a key or a secret;
//  - keys S3 refused (rejected()) are dropped, so the next call fetches fresh ones;
//  - files (the web identity token, the container authorization token) are re-read for every
//    exchange on the `files` executor (a thread pool), never on the reactor;
//  - instance metadata requests end after kImdsTimeout: a pod whose instance has a hop limit of 1
//    gets no answer at all, and the error says so.
// Assumes the callers share one executor (the reactor) or at least run one handler at a time each;
// waiters are woken on their own executors.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/http_client.hpp"
#include "storage/aws_identity.hpp"
#include "storage/backend.hpp"
#include "storage/retry.hpp"

namespace stowage::storage {
template <class V>
class RefreshingCache;  // storage/refreshing_cache.hpp
}  // namespace stowage::storage

namespace stowage::storage::aws {

class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // Keys that are valid now (with a session token when temporary), or why there are none.
  virtual boost::asio::awaitable<BackendResult<s3::Credentials>> credentials() = 0;
  // S3 refused `keys` (expired, revoked, unknown): forget them if they are still the cached ones.
  virtual void rejected(const s3::Credentials& keys) = 0;
  // The source's name, for messages: "web identity (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)".
  virtual const std::string& source_name() const = 0;
};

// One exchange with a source, no caching. Errors are BackendErrors without the source's name (the
// cache adds it).
class CredentialFetcher {
 public:
  virtual ~CredentialFetcher() = default;
  virtual boost::asio::awaitable<Result<TimedCredentials, BackendError>> fetch() = 0;
};

// The cache in front of one fetcher (see the module comment).
class CachingProvider final : public CredentialProvider {
 public:

  CachingProvider(std::string source_name, std::unique_ptr<CredentialFetcher> fetcher,
                  std::function<WallClock::time_point()> now = &WallClock::now);
  ~CachingProvider() override;

  boost::asio::awaitable<BackendResult<s3::Credentials>> credentials() override;
  void rejected(const s3::Credentials& keys) override;
  const std::string& source_name() const override { return name_; }

  std::uint64_t fetches() const;  // exchanges started (tests, metrics)

  // When keys fetched at `now` that expire at `expiration` are replaced (storage/refreshing_cache.hpp).
  static WallClock::time_point refresh_time(WallClock::time_point now, WallClock::time_point expiration);

 private:
  std::string name_;
  std::unique_ptr<CredentialFetcher> fetcher_;
  std::shared_ptr<RefreshingCache<s3::Credentials>> cache_;
};

inline constexpr std::chrono::seconds kImdsTimeout{5};

// The fetcher for one configured source. `files` runs the token-file reads.
std::unique_ptr<CredentialFetcher> make_fetcher(const SourceSettings& source, http::Client& client,
                                                boost::asio::any_io_executor files, RetryPolicy retry = {});

// The cached provider for the chain's first source; null when the chain found none.
std::shared_ptr<CredentialProvider> make_provider(const Chain& chain, http::Client& client,
                                                  boost::asio::any_io_executor files, RetryPolicy retry = {});

}  // namespace stowage::storage::aws
