// The Azure token cache, the Entra and IMDS fetchers, and the service-principal registry (see
// azure_credentials.hpp).
//
// The single-flight refresh is aws_credentials.cpp's (itself gcs_token.cpp's): the first caller that
// finds no fresh token marks the cache refreshing and fetches; later callers park on a steady_timer of
// their own and are woken on their own executor when the fetch ends. A guard ends the refresh however
// the fetching coroutine leaves (returned, or its frame destroyed on cancellation): an abandoned
// refresh wakes the waiters with no outcome and one of them takes over. It is repeated rather than
// shared with the AWS cache because the two cache different things (keys, a token) and a template in
// a header would pull Asio's timers into every includer.
#include "storage/azure_credentials.hpp"

#include "storage/refreshing_cache.hpp"
#include "storage/server_words.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/header_values.hpp"
#include "storage/credential_endpoint.hpp"
#include "storage/gcs_token.hpp"  // gcs::transport_error: one wording for transport failures

namespace stowage::storage::azure {
namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

BackendError error(bool transient, std::string code, std::string message) {
  return BackendError{transient, std::move(code), std::move(message), std::nullopt};
}

struct FileProblem {
  std::string message;
};

// The federated token, read on `files` (the kubelet rewrites the projected file while the controller
// runs). Trailing whitespace is dropped, as the SDKs do.
asio::awaitable<Result<std::string, FileProblem>> read_assertion(asio::any_io_executor files, std::string path) {
  auto read = [path]() -> asio::awaitable<Result<std::string, FileProblem>> {
    const std::string what = "AZURE_FEDERATED_TOKEN_FILE names " + path;
    std::ifstream in(path, std::ios::binary);
    if (!in) co_return Err(FileProblem{what + ", which cannot be opened"});
    std::string token(64 * 1024 + 1, '\0');
    in.read(token.data(), static_cast<std::streamsize>(token.size()));
    token.resize(static_cast<std::size_t>(in.gcount()));
    if (token.size() > 64 * 1024) co_return Err(FileProblem{what + ", which is too large to be a token"});
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) co_return Err(FileProblem{what + ", which is empty"});
    co_return token;
  };
  co_return co_await asio::co_spawn(files, std::move(read), asio::use_awaitable);
}

class BrokenFetcher final : public TokenFetcher {
 public:
  explicit BrokenFetcher(std::string why) : why_(std::move(why)) {}
  asio::awaitable<Result<AccessToken, BackendError>> fetch() override {
    co_return Err(error(false, "AzureIdentityMisconfigured", why_));
  }

 private:
  std::string why_;
};

// ---- Entra client credentials: a client secret or a federated assertion ----

class ClientCredentialsFetcher final : public TokenFetcher {
 public:
  ClientCredentialsFetcher(ClientCredentialSettings settings, http::Client& client, asio::any_io_executor files,
                           RetryPolicy retry)
      : s_(std::move(settings)), client_(client), files_(std::move(files)), retry_(retry) {}

  asio::awaitable<Result<AccessToken, BackendError>> fetch() override {
    auto where = credential_endpoint(token_url(s_));
    if (!where) co_return Err(error(false, "InvalidAuthorityHost", "AZURE_AUTHORITY_HOST " + where.error()));
    std::string assertion;
    if (!s_.assertion_file.empty()) {
      auto read = co_await read_assertion(files_, s_.assertion_file);
      if (!read) co_return Err(error(false, "FederatedTokenUnreadable", read.error().message));
      assertion = std::move(read.value());
    }
    const std::string& sent_secret = assertion.empty() ? s_.client_secret : assertion;
    const std::string context = "Microsoft Entra token endpoint " + where.value().origin.origin() + "/" + s_.tenant_id;
    std::function<http::Request()> make_request =
        [request = form_post(where.value().target, client_credentials_body(s_, assertion))] { return request; };
    const http::TlsSettings tls;  // the system roots (SSL_CERT_FILE)
    auto sent =
        co_await send_with_retries(client_, where.value().origin, tls, std::move(make_request), true, 0, retry_);
    if (!sent) co_return Err(gcs::transport_error(sent.error(), context));
    const http::Response& response = sent.value();
    if (response.status >= 200 && response.status < 300) {
      auto reply = parse_token_reply(response.body, WallClock::now());
      if (!reply) co_return Err(error(true, "TokenEndpointBadReply", context + ": " + reply.error()));
      co_return std::move(reply.value());
    }
    auto oauth = parse_oauth_error(response.body);
    std::string said = oauth ? server_words(oauth->error + (oauth->description.empty() ? "" : ": " + oauth->description),
                                            sent_secret)
                             : "HTTP " + std::to_string(response.status);
    const bool transient = transient_status(response.status);
    const std::string fix = assertion.empty()
                                ? "check AZURE_CLIENT_SECRET and AZURE_CLIENT_ID"
                                : "check the federated identity credential of client " + s_.client_id +
                                      " (issuer and subject of this service account) and AZURE_FEDERATED_TOKEN_FILE";
    co_return Err(error(transient, transient ? "TokenEndpointUnavailable" : "TokenRefused",
                        context + " refused client " + s_.client_id + " (" + said + "): " + fix));
  }

 private:
  ClientCredentialSettings s_;
  http::Client& client_;
  asio::any_io_executor files_;
  RetryPolicy retry_;
};

// ---- Managed identity through IMDS ----

class ManagedIdentityFetcher final : public TokenFetcher {
 public:
  ManagedIdentityFetcher(ManagedIdentitySettings settings, http::Client& client)
      : s_(std::move(settings)), client_(client) {}

  asio::awaitable<Result<AccessToken, BackendError>> fetch() override {
    auto where = credential_endpoint(s_.host);
    if (!where)
      co_return Err(error(false, "InvalidImdsEndpoint", "AZURE_POD_IDENTITY_AUTHORITY_HOST " + where.error()));
    const std::string context = "instance metadata (IMDS) at " + where.value().origin.origin();
    http::Request request{"GET", imds_target(s_), {{"Metadata", "true"}, {"Accept", "application/json"}}, {}};
    auto sent = co_await send_within(client_, where.value().origin, std::move(request), kImdsTimeout);
    if (!sent) {
      BackendError e = gcs::transport_error(sent.error(), context);
      e.message += " (outside Azure, or where pods cannot reach 169.254.169.254, give the controller workload "
                   "identity or a Secret)";
      co_return Err(e);
    }
    const http::Response& response = sent.value();
    if (response.status == 200) {
      auto reply = parse_token_reply(response.body, WallClock::now());
      if (!reply) co_return Err(error(true, "ImdsBadReply", context + ": " + reply.error()));
      co_return std::move(reply.value());
    }
    auto oauth = parse_oauth_error(response.body);
    std::string said = "HTTP " + std::to_string(response.status) +
                       (oauth ? ": " + server_words(oauth->error + (oauth->description.empty() ? "" : ": " +
                                                                    oauth->description), {})
                              : std::string());
    // 400 "Identity not found": no identity assigned (or not the one AZURE_CLIENT_ID names).
    const bool transient = transient_status(response.status) || response.status == 404 || response.status == 410;
    co_return Err(error(transient, transient ? "ImdsUnavailable" : "ImdsRefused",
                        context + " gave no token (" + said + ")" +
                            (response.status == 400 ? ": assign a managed identity to the node"
                                                      " (or the one AZURE_CLIENT_ID names)"
                                                    : "")));
  }

 private:

  ManagedIdentitySettings s_;
  http::Client& client_;
};

}  // namespace

// ---- The cache (storage/refreshing_cache.hpp) ----

CachingTokenProvider::CachingTokenProvider(std::string source_name, std::unique_ptr<TokenFetcher> fetcher,
                                           std::function<WallClock::time_point()> now)
    : name_(std::move(source_name)), fetcher_(std::move(fetcher)) {
  TokenFetcher* source = fetcher_.get();
  auto fetch = [source]() -> asio::awaitable<BackendResult<Expiring<std::string>>> {
    auto fetched = co_await source->fetch();
    if (!fetched) co_return Err(std::move(fetched.error()));
    co_return Expiring<std::string>{std::move(fetched.value().token), fetched.value().expires_at};
  };
  cache_ = std::make_shared<RefreshingCache<std::string>>(
      CacheWording{"Azure token", name_, "AzureTokenExpired", "a token that has already expired"}, std::move(fetch),
      std::move(now));
}

CachingTokenProvider::~CachingTokenProvider() = default;

std::uint64_t CachingTokenProvider::fetches() const { return cache_->fetches(); }

WallClock::time_point CachingTokenProvider::refresh_time(WallClock::time_point now, WallClock::time_point expires_at) {
  return storage::refresh_time(now, expires_at);
}

void CachingTokenProvider::rejected(const std::string& token) {
  cache_->drop_if([&](const std::string& cached, const std::optional<WallClock::time_point>&) { return cached == token; });
}

asio::awaitable<BackendResult<std::string>> CachingTokenProvider::token() { return cache_->get(); }

std::unique_ptr<TokenFetcher> make_fetcher(const SourceSettings& source, http::Client& client,
                                           asio::any_io_executor files, RetryPolicy retry) {
  if (!source.broken.empty()) return std::make_unique<BrokenFetcher>(source.broken);
  if (source.client) return std::make_unique<ClientCredentialsFetcher>(*source.client, client, files, retry);
  if (source.managed) return std::make_unique<ManagedIdentityFetcher>(*source.managed, client);
  return std::make_unique<BrokenFetcher>("no Azure identity source is configured");
}

std::shared_ptr<TokenProvider> make_provider(const Chain& chain, http::Client& client, asio::any_io_executor files,
                                             RetryPolicy retry) {
  const SourceSettings* active = chain.active();
  if (!active) return nullptr;
  return std::make_shared<CachingTokenProvider>(active->name, make_fetcher(*active, client, std::move(files), retry));
}

std::shared_ptr<TokenProvider> ServicePrincipalRegistry::provider(const ClientCredentialSettings& settings,
                                                                  const std::string& name, http::Client& client,
                                                                  asio::any_io_executor files) {
  // The secret enters the key only as a digest: a rotated secret is another identity.
  const std::string id = settings.authority_host + '\n' + settings.tenant_id + '\n' + settings.client_id + '\n' +
                         crypto::hex(crypto::sha256(settings.client_secret)) + '\n' + name;
  const auto now = SteadyClock::now();
  std::lock_guard lock(mutex_);
  for (auto it = providers_.begin(); it != providers_.end();)
    it = now - it->second.last_handed_out > idle_ ? providers_.erase(it) : std::next(it);
  auto& entry = providers_[id];
  if (!entry.provider) {
    SourceSettings source;
    source.kind = SourceKind::ServicePrincipal;
    source.name = name;
    source.client = settings;
    entry.provider = std::make_shared<CachingTokenProvider>(name, make_fetcher(source, client, std::move(files)));
  }
  entry.last_handed_out = now;
  return entry.provider;
}

}  // namespace stowage::storage::azure
