// TokenSource and TokenRegistry (see gcs_token.hpp).
//
// The single-flight refresh: the first caller that finds no fresh token marks the source
// refreshing and fetches; later callers park on a steady_timer of their own (a reactor's condition
// variable) and are woken, on their own executor, when the fetch ends. A RefreshGuard ends the
// refresh however the fetching coroutine leaves (returned, or its frame destroyed on cancellation),
// so waiters are never stranded: an abandoned refresh wakes them with no outcome and one of them
// takes over.
#include "storage/gcs_token.hpp"

#include "storage/server_words.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fstream>
#include <utility>

#include "common/crypto.hpp"
#include "common/url.hpp"
#include "storage/credential_endpoint.hpp"
#include "storage/refreshing_cache.hpp"
#include "storage/retry.hpp"

namespace stowage::storage::gcs {
namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::string_view kind_code(http::HttpError::Kind kind) {
  switch (kind) {
    case http::HttpError::Kind::Resolve:
      return "ResolveFailed";
    case http::HttpError::Kind::Connect:
      return "ConnectFailed";
    case http::HttpError::Kind::Tls:
      return "TlsFailed";
    case http::HttpError::Kind::TlsVerify:
      return "TlsVerifyFailed";
    case http::HttpError::Kind::Timeout:
      return "Timeout";
    case http::HttpError::Kind::Reset:
      return "ConnectionReset";
    case http::HttpError::Kind::Protocol:
      return "ProtocolError";
    case http::HttpError::Kind::TooLarge:
      return "ResponseTooLarge";
    case http::HttpError::Kind::InvalidRequest:
      return "InvalidRequest";
  }
  return "HttpError";
}

std::int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

BackendError error(bool transient, std::string code, std::string message,
                   std::optional<std::chrono::milliseconds> after = std::nullopt) {
  return BackendError{transient, std::move(code), std::move(message), after};
}

// A token that must not become a header (see access_token_problem): permanent, since the server
// answered and would answer the same; never cached, never quoted.
BackendError unusable_token(const std::string& source, const http::ValueProblem& problem) {
  return error(false, "InvalidAccessToken", source + " returned an access_token that " + problem.describe());
}

// The subject token file's content, read on `files` (a thread pool): the kubelet rewrites the file
// while the controller runs and a read may touch a slow volume. At most kMaxCredentialsFileBytes + 1
// bytes are read, so a wrong path (a device, a huge log) costs nothing.
asio::awaitable<Result<std::string, std::string>> read_subject_token_file(asio::any_io_executor files,
                                                                          std::string path) {
  auto read = [path]() -> asio::awaitable<Result<std::string, std::string>> {
    std::ifstream in(path, std::ios::binary);
    if (!in) co_return Err("the subject token file " + path + " (credential_source.file) cannot be opened");
    std::string content(kMaxCredentialsFileBytes + 1, '\0');
    in.read(content.data(), static_cast<std::streamsize>(content.size()));
    content.resize(static_cast<std::size_t>(in.gcount()));
    if (content.size() > kMaxCredentialsFileBytes)
      co_return Err("the subject token file " + path + " (credential_source.file) is too large to be a token");
    co_return content;
  };
  co_return co_await asio::co_spawn(files, std::move(read), asio::use_awaitable);
}

bool same_origin(const std::string& a, const std::string& b) {
  auto x = url::parse(a, "");
  auto y = url::parse(b, "");
  return x && y && x.value().scheme == y.value().scheme && x.value().host == y.value().host &&
         x.value().port_or_default() == y.value().port_or_default();
}

}  // namespace

BackendError transport_error(const http::HttpError& e, std::string_view context) {
  return error(e.transient(), std::string(kind_code(e.kind)), std::string(context) + ": " + e.message);
}

// A parked caller: its executor and its timer. Woken by moving the expiry to the past on the
// caller's own executor, which also covers a wake that lands before the wait starts.
struct TokenSource::Waiter {
  asio::any_io_executor executor;
  asio::steady_timer timer;
  explicit Waiter(asio::any_io_executor ex) : executor(ex), timer(ex, Clock::time_point::max()) {}
};

struct TokenSource::RefreshGuard {
  TokenSource& source;
  std::optional<BackendResult<std::string>> outcome;
  ~RefreshGuard() {
    std::vector<std::shared_ptr<Waiter>> waiters;
    {
      std::lock_guard lock(source.mutex_);
      source.refreshing_ = false;
      ++source.generation_;
      source.last_outcome_ = std::move(outcome);
      waiters.swap(source.waiters_);
    }
    for (auto& w : waiters) {
      auto wake = [w] { w->timer.expires_at(Clock::time_point::min()); };
      asio::post(w->executor, std::move(wake));
    }
  }
};

Clock::duration TokenSource::refresh_after(std::chrono::seconds lifetime) {
  const WallClock::time_point issued{};
  return std::chrono::duration_cast<Clock::duration>(storage::refresh_time(issued, issued + lifetime) - issued);
}

std::shared_ptr<TokenSource> TokenSource::for_service_account(ServiceAccountKey key, std::string source_name) {
  std::shared_ptr<TokenSource> source(new TokenSource());
  source->token_origin_ = key.token_uri;
  source->key_ = std::move(key);
  source->source_ = std::move(source_name);
  return source;
}

std::shared_ptr<TokenSource> TokenSource::for_external_account(ExternalAccount account, std::string source_name,
                                                               asio::any_io_executor files) {
  std::shared_ptr<TokenSource> source(new TokenSource());
  source->token_origin_ = account.token_url;
  source->external_ = std::move(account);
  source->source_ = std::move(source_name);
  source->files_ = std::move(files);
  return source;
}

std::shared_ptr<TokenSource> TokenSource::for_metadata_server(std::string host) {
  std::shared_ptr<TokenSource> source(new TokenSource());
  source->metadata_host_ = std::move(host);
  source->token_origin_ = metadata_origin(source->metadata_host_);
  source->source_ = "the metadata server " + source->token_origin_;
  return source;
}

std::string TokenSource::principal() const {
  if (key_) return "service account `" + key_->client_email + "`";
  if (external_)
    return external_->impersonation_url.empty() ? "the external account of " + source_
                                                : "the service account impersonated by " + source_;
  return "the metadata server's default service account";
}

void TokenSource::invalidate(std::string_view rejected) {
  std::lock_guard lock(mutex_);
  if (token_ == rejected) {
    token_.clear();
    refresh_at_ = {};
  }
}

asio::awaitable<BackendResult<std::string>> TokenSource::token(http::Client& client, http::TlsSettings tls,
                                                               RetryPolicy retry) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    std::shared_ptr<Waiter> waiter;
    std::uint64_t generation = 0;
    {
      std::lock_guard lock(mutex_);
      if (!token_.empty() && Clock::now() < refresh_at_) co_return token_;
      if (!refreshing_) {
        refreshing_ = true;
      } else {
        waiter = std::make_shared<Waiter>(executor);
        waiters_.push_back(waiter);
        generation = generation_;
      }
    }
    if (!waiter) {
      RefreshGuard guard{*this, std::nullopt};
      auto fetched = co_await fetch(client, std::move(tls), retry);
      guard.outcome = fetched;
      co_return fetched;
    }
    co_await waiter->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    {
      std::lock_guard lock(mutex_);
      // The refresh this caller waited for ended: share its outcome. (An abandoned one left none;
      // then go round, and this caller may become the one that refreshes.)
      if (generation_ != generation && last_outcome_) co_return *last_outcome_;
    }
    auto state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none)
      co_return Err(error(true, "Cancelled", "GCS token request cancelled"));
  }
}

asio::awaitable<BackendResult<std::string>> TokenSource::fetch(http::Client& client, http::TlsSettings tls,
                                                               RetryPolicy retry) {
  ++fetches_;
  if (key_) co_return co_await fetch_service_account(client, std::move(tls), retry);
  if (external_) co_return co_await fetch_external_account(client, std::move(tls), retry);
  co_return co_await fetch_metadata(client, retry);
}

BackendResult<std::string> TokenSource::remember(TokenReply reply) {
  std::lock_guard lock(mutex_);
  token_ = reply.access_token;
  // Good until 5 minutes before expiry, or half its lifetime when that comes first.
  refresh_at_ = Clock::now() + refresh_after(reply.expires_in);
  return std::move(reply.access_token);
}

asio::awaitable<BackendResult<std::string>> TokenSource::fetch_service_account(http::Client& client,
                                                                               http::TlsSettings tls,
                                                                               RetryPolicy retry) {
  const ServiceAccountKey& key = *key_;
  const std::string context = "GCS token exchange at " + key.token_uri;
  auto url = credential_endpoint(key.token_uri);
  if (!url)
    co_return Err(error(false, "InvalidServiceAccountKey",
                        source_ + ": field `token_uri` is not a valid URL (" + url.error() + ")"));
  auto jwt = make_jwt(key, unix_seconds());
  if (!jwt) co_return Err(error(false, "InvalidServiceAccountKey", source_ + ": " + jwt.error().message));

  std::string target = url.value().target;
  std::function<http::Request()> make_request = [request = form_post(target, token_request_body(jwt.value()))] {
    return request;
  };
  // Issuing a token twice is harmless, so the exchange is retried like an idempotent request.
  auto sent = co_await send_with_retries(client, url.value().origin, tls, std::move(make_request), true, 0, retry);
  if (!sent) co_return Err(transport_error(sent.error(), context));
  const http::Response& response = sent.value();

  if (response.status >= 200 && response.status < 300) {
    auto reply = parse_token_reply(response.body);
    if (!reply) co_return Err(error(true, "TokenExchangeBadReply", context + ": " + reply.error().message));
    if (auto bad = access_token_problem(reply.value().access_token))
      co_return Err(unusable_token("the token endpoint " + key.token_uri, bad));
    co_return remember(std::move(reply.value()));
  }
  auto oauth = parse_oauth_error(response.body);
  if (oauth && oauth->error == "invalid_grant")
    co_return Err(error(false, "InvalidGrant",
                        "GCS token exchange refused: check " + source_ + " (" +
                            (oauth->description.empty() ? oauth->error : oauth->description) + ")"));
  if (transient_status(response.status))
    co_return Err(error(true, "TokenExchangeUnavailable", context + " answered HTTP " + std::to_string(response.status),
                        retry_after(response)));
  std::string why = oauth ? oauth->error + (oauth->description.empty() ? "" : ": " + oauth->description)
                          : "HTTP " + std::to_string(response.status);
  co_return Err(error(
      false, "TokenExchangeRefused",
      "GCS token exchange refused (" + why + "): check " + source_ + " (" + key.client_email + ")"));
}

asio::awaitable<BackendResult<std::string>> TokenSource::fetch_metadata(http::Client& client, RetryPolicy retry) {
  const std::string origin = metadata_origin(metadata_host_);
  const std::string hint =
      "; without spec.storage.gcs.secretName the controller needs GOOGLE_APPLICATION_CREDENTIALS, GKE workload "
      "identity or a GCE service account (GCE_METADATA_HOST overrides the metadata server)";
  auto url = http::Url::parse(origin);
  if (!url) co_return Err(error(false, "BadMetadataHost", "GCE_METADATA_HOST is not a host[:port]: " + url.error()));
  std::function<http::Request()> make_request = [] { return metadata_token_request(); };
  const http::TlsSettings plain;  // a named local: GCC 12 destroys temporaries in a co_await expression twice
  auto sent = co_await send_with_retries(client, url.value(), plain, std::move(make_request), true, 0, retry);
  if (!sent) {
    BackendError e = transport_error(sent.error(), "GCS metadata server " + origin + " unreachable");
    e.message += hint;
    co_return Err(e);
  }
  const http::Response& response = sent.value();
  if (response.status >= 200 && response.status < 300) {
    auto reply = parse_token_reply(response.body);
    if (!reply)
      co_return Err(
          error(true, "MetadataServerBadReply", "GCS metadata server " + origin + ": " + reply.error().message));
    if (auto bad = access_token_problem(reply.value().access_token))
      co_return Err(unusable_token("the GCS metadata server " + origin, bad));
    co_return remember(std::move(reply.value()));
  }
  if (transient_status(response.status))
    co_return Err(error(true, "MetadataServerUnavailable",
                        "GCS metadata server " + origin + " answered HTTP " + std::to_string(response.status),
                        retry_after(response)));
  co_return Err(error(
      false, "MetadataServerRefused",
      "GCS metadata server " + origin + " refused a token (HTTP " + std::to_string(response.status) + ")" + hint));
}

// Workload identity federation: the subject token (re-read now) traded at STS for a federated
// token, which is the access token, or is traded once more at generateAccessToken for a service
// account's token when the file names service_account_impersonation_url.
asio::awaitable<BackendResult<std::string>> TokenSource::fetch_external_account(http::Client& client,
                                                                                http::TlsSettings tls,
                                                                                RetryPolicy retry) {
  const ExternalAccount& account = *external_;
  const std::string context = "GCS STS token exchange at " + account.token_url + " (" + source_ + ")";
  auto url = credential_endpoint(account.token_url);
  if (!url)
    co_return Err(error(false, "InvalidApplicationCredentials",
                        source_ + ": field `token_url` is not a valid URL (" + url.error() + ")"));
  auto content = co_await read_subject_token_file(files_, account.subject_token_file);
  if (!content) co_return Err(error(true, "SubjectTokenUnreadable", source_ + ": " + content.error()));
  auto subject = subject_token_from(account, content.value());
  if (!subject) co_return Err(error(true, "SubjectTokenUnreadable", source_ + ": " + subject.error().message));

  std::function<http::Request()> make_request =
      [request = form_post(url.value().target, sts_request_body(account, subject.value()))] { return request; };
  auto sent = co_await send_with_retries(client, url.value().origin, tls, std::move(make_request), true, 0, retry);
  if (!sent) co_return Err(transport_error(sent.error(), context));
  const http::Response& response = sent.value();
  if (response.status < 200 || response.status >= 300) {
    if (transient_status(response.status))
      co_return Err(error(true, "TokenExchangeUnavailable",
                          context + " answered HTTP " + std::to_string(response.status), retry_after(response)));
    auto oauth = parse_oauth_error(response.body);
    std::string why = oauth ? oauth->error + (oauth->description.empty() ? "" : ": " + oauth->description)
                            : "HTTP " + std::to_string(response.status);
    co_return Err(error(false, "TokenExchangeRefused",
                        redacted("GCS STS token exchange refused (" + why + "): check " + source_ +
                                    " (its audience and the subject token in " + account.subject_token_file + ")",
                                subject.value())));
  }
  auto reply = parse_token_reply(response.body);
  if (!reply) co_return Err(error(true, "TokenExchangeBadReply", context + ": " + reply.error().message));
  if (auto bad = access_token_problem(reply.value().access_token))
    co_return Err(unusable_token("the STS endpoint " + account.token_url, bad));
  if (account.impersonation_url.empty()) co_return remember(std::move(reply.value()));
  http::TlsSettings impersonation_tls = same_origin(account.impersonation_url, account.token_url) ? tls
                                                                                                  : http::TlsSettings{};
  co_return co_await impersonate(client, std::move(impersonation_tls), retry, std::move(reply.value().access_token));
}

asio::awaitable<BackendResult<std::string>> TokenSource::impersonate(http::Client& client, http::TlsSettings tls,
                                                                     RetryPolicy retry, std::string federated) {
  const ExternalAccount& account = *external_;
  const std::string context = "GCS service account impersonation at " + account.impersonation_url;
  auto url = credential_endpoint(account.impersonation_url);
  if (!url)
    co_return Err(error(false, "InvalidApplicationCredentials",
                        source_ + ": field `service_account_impersonation_url` is not a valid URL (" + url.error() +
                            ")"));
  std::function<http::Request()> make_request = [target = url.value().target, federated] {
    http::Request request;
    request.method = "POST";
    request.target = target;
    request.headers = {{"Content-Type", "application/json"},
                       {"Accept", "application/json"},
                       {"Authorization", "Bearer " + federated}};
    request.body = impersonation_request_body();
    return request;
  };
  auto sent = co_await send_with_retries(client, url.value().origin, tls, std::move(make_request), true, 0, retry);
  if (!sent) co_return Err(transport_error(sent.error(), context));
  const http::Response& response = sent.value();
  if (response.status < 200 || response.status >= 300) {
    if (transient_status(response.status))
      co_return Err(error(true, "ImpersonationUnavailable",
                          context + " answered HTTP " + std::to_string(response.status), retry_after(response)));
    std::string detail = json_api_error_message(response.body);
    co_return Err(error(false, "ImpersonationRefused",
                        redacted("GCS service account impersonation refused (HTTP " + std::to_string(response.status) +
                                    (detail.empty() ? "" : ": " + detail) + "): check " + source_ +
                                    " (service_account_impersonation_url) and that the pool's principal holds "
                                    "roles/iam.workloadIdentityUser on the service account",
                                federated)));
  }
  auto reply = parse_impersonation_reply(response.body, std::chrono::system_clock::now());
  if (!reply) co_return Err(error(true, "ImpersonationBadReply", context + ": " + reply.error().message));
  if (auto bad = access_token_problem(reply.value().access_token))
    co_return Err(unusable_token("the impersonation endpoint " + account.impersonation_url, bad));
  co_return remember(std::move(reply.value()));
}

TokenRegistry& TokenRegistry::process_wide() {
  static TokenRegistry registry;
  return registry;
}

std::shared_ptr<TokenSource> TokenRegistry::find_or_make(const std::string& id,
                                                         const std::function<std::shared_ptr<TokenSource>()>& make) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  for (auto it = sources_.begin(); it != sources_.end();) {  // drop sources no backend has used for `idle`
    bool unused = it->second.source.use_count() == 1 && now - it->second.last_handed_out >= idle_;
    if (unused && it->first != id)
      it = sources_.erase(it);
    else
      ++it;
  }
  Entry& entry = sources_[id];
  if (!entry.source) entry.source = make();
  entry.last_handed_out = now;
  return entry.source;
}

std::shared_ptr<TokenSource> TokenRegistry::service_account(const ServiceAccountKey& key) {
  // The private key enters the identity only as a hash, so a key file re-signed with another key
  // under the same id never borrows a token the first one earned.
  std::string id = "sa\n" + key.client_email + "\n" + key.private_key_id + "\n" + key.token_uri + "\n" +
                   crypto::hex(crypto::sha256(key.private_key));
  auto make = [&key] { return TokenSource::for_service_account(key); };
  return find_or_make(id, make);
}

std::shared_ptr<TokenSource> TokenRegistry::metadata_server(const std::string& host) {
  auto make = [&host] { return TokenSource::for_metadata_server(host); };
  return find_or_make("metadata\n" + host, make);
}

}  // namespace stowage::storage::gcs
