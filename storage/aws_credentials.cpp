// The AWS credential cache and the four remote sources (see aws_credentials.hpp).
//
// The single-flight refresh is gcs_token.cpp's: the first caller that finds no fresh keys marks the
// cache refreshing and fetches; later callers park on a steady_timer of their own and are woken on
// their own executor when the fetch ends. A guard ends the refresh however the fetching coroutine
// leaves (returned, or its frame destroyed on cancellation): an abandoned refresh wakes the waiters
// with no outcome and one of them takes over.
#include "storage/aws_credentials.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "storage/credential_endpoint.hpp"
#include "storage/refreshing_cache.hpp"
#include "storage/server_words.hpp"
#include "storage/gcs_token.hpp"  // gcs::transport_error: one wording for transport failures

namespace stowage::storage::aws {
namespace asio = boost::asio;
using SteadyClock = std::chrono::steady_clock;

namespace {

BackendError error(bool transient, std::string code, std::string message) {
  return BackendError{transient, std::move(code), std::move(message), std::nullopt};
}

// A token file's content, read on `files` (a thread pool): the kubelet rewrites these files while
// the controller runs, and a read may touch a slow volume. Trailing whitespace (a newline from
// `echo`) is dropped, as the SDKs do.
struct FileProblem {
  std::string message;
};

asio::awaitable<Result<std::string, FileProblem>> read_token_file(asio::any_io_executor files, std::string path,
                                                                  std::string variable) {
  auto read = [path, variable]() -> asio::awaitable<Result<std::string, FileProblem>> {
    std::ifstream in(path, std::ios::binary);
    if (!in) co_return Err(FileProblem{variable + " names " + path + ", which cannot be opened"});
    // At most kMax + 1 bytes are read, so a wrong path (a device, a huge log) costs nothing.
    constexpr std::size_t kMax = 64 * 1024;
    std::string token(kMax + 1, '\0');
    in.read(token.data(), static_cast<std::streamsize>(token.size()));
    token.resize(static_cast<std::size_t>(in.gcount()));
    if (token.size() > kMax)
      co_return Err(FileProblem{variable + " names " + path + ", which is too large to be a token"});
    while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
    if (token.empty()) co_return Err(FileProblem{variable + " names " + path + ", which is empty"});
    co_return token;
  };
  co_return co_await asio::co_spawn(files, std::move(read), asio::use_awaitable);
}

// ---- Long-lived keys, and a source that cannot work ----

class StaticFetcher final : public CredentialFetcher {
 public:
  explicit StaticFetcher(s3::Credentials keys) : keys_(std::move(keys)) {}
  asio::awaitable<Result<TimedCredentials, BackendError>> fetch() override { co_return TimedCredentials{keys_, {}}; }

 private:
  s3::Credentials keys_;
};

class BrokenFetcher final : public CredentialFetcher {
 public:
  explicit BrokenFetcher(std::string why) : why_(std::move(why)) {}
  asio::awaitable<Result<TimedCredentials, BackendError>> fetch() override {
    co_return Err(error(false, "AwsIdentityMisconfigured", why_));
  }

 private:
  std::string why_;
};

// ---- STS AssumeRoleWithWebIdentity ----

class WebIdentityFetcher final : public CredentialFetcher {
 public:
  WebIdentityFetcher(WebIdentitySettings settings, http::Client& client, asio::any_io_executor files, RetryPolicy retry)
      : s_(std::move(settings)), client_(client), files_(std::move(files)), retry_(retry) {}

  asio::awaitable<Result<TimedCredentials, BackendError>> fetch() override {
    auto where = credential_endpoint(s_.sts_endpoint);
    if (!where)
      co_return Err(error(false, "InvalidStsEndpoint",
                          "the STS endpoint (AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL) " + where.error()));
    auto token = co_await read_token_file(files_, s_.token_file, "the web identity token file");
    if (!token) co_return Err(error(false, "WebIdentityTokenUnreadable", token.error().message));
    std::string session = s_.session_name;
    if (session.empty())
      session =
          "stowage-" +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(WallClock::now().time_since_epoch()).count());
    const std::string context = "STS AssumeRoleWithWebIdentity at " + where.value().origin.origin();
    std::function<http::Request()> make_request =
        [request = form_post(where.value().target, web_identity_request_body(s_.role_arn, session, token.value()),
                             "text/xml", "application/x-www-form-urlencoded; charset=utf-8")] { return request; };
    const http::TlsSettings tls;
    auto sent =
        co_await send_with_retries(client_, where.value().origin, tls, std::move(make_request), true, 0, retry_);
    if (!sent) co_return Err(gcs::transport_error(sent.error(), context));
    const http::Response& response = sent.value();
    if (response.status >= 200 && response.status < 300) {
      auto reply = parse_web_identity_reply(response.body);
      if (!reply) co_return Err(error(true, "StsBadReply", context + ": " + reply.error()));
      co_return std::move(reply.value());
    }
    auto sts = parse_sts_error(response.body);
    std::string code =
        sts && !sts->code.empty() ? server_words(sts->code, token.value()) : "HTTP " + std::to_string(response.status);
    std::string said = sts && !sts->message.empty() ? ": " + server_words(sts->message, token.value()) : "";
    bool transient =
        transient_status(response.status) || code == "IDPCommunicationError" || code.rfind("Throttling", 0) == 0;
    co_return Err(error(transient, transient ? "StsUnavailable" : "StsRefused",
                        context + " refused role " + s_.role_arn + " (" + code + said +
                            "): check the role's trust policy for this service account and the token file"));
  }

 private:
  WebIdentitySettings s_;
  http::Client& client_;
  asio::any_io_executor files_;
  RetryPolicy retry_;
};

// ---- Container credentials (ECS, EKS Pod Identity) ----

class ContainerFetcher final : public CredentialFetcher {
 public:
  ContainerFetcher(ContainerSettings settings, http::Client& client, asio::any_io_executor files, RetryPolicy retry)
      : s_(std::move(settings)), client_(client), files_(std::move(files)), retry_(retry) {}

  asio::awaitable<Result<TimedCredentials, BackendError>> fetch() override {
    auto where = credential_endpoint(s_.url);
    if (!where)
      co_return Err(error(false, "InvalidContainerCredentialsUri", "the container credentials URI " + where.error()));
    std::string authorization = s_.authorization;
    if (!s_.authorization_file.empty()) {
      auto read = co_await read_token_file(files_, s_.authorization_file, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
      if (!read) co_return Err(error(false, "ContainerTokenUnreadable", read.error().message));
      authorization = std::move(read.value());
    }
    if (auto bad = http::check_header_value(authorization, 16 * 1024))
      co_return Err(error(false, "InvalidContainerToken",
                          "the container authorization token " + bad.describe() +
                              " (AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN)"));
    const std::string context = "container credentials endpoint " + where.value().origin.origin();
    std::function<http::Request()> make_request = [target = where.value().target, authorization] {
      http::Request request{"GET", target, {{"Accept", "application/json"}}, {}};
      if (!authorization.empty()) request.headers.emplace_back("Authorization", authorization);
      return request;
    };
    const http::TlsSettings tls;
    auto sent =
        co_await send_with_retries(client_, where.value().origin, tls, std::move(make_request), true, 0, retry_);
    if (!sent) co_return Err(gcs::transport_error(sent.error(), context));
    const http::Response& response = sent.value();
    if (response.status >= 200 && response.status < 300) {
      auto reply = parse_credentials_json(response.body);
      if (!reply) co_return Err(error(true, "ContainerCredentialsBadReply", context + ": " + reply.error()));
      co_return std::move(reply.value());
    }
    bool transient = transient_status(response.status);
    co_return Err(
        error(transient, transient ? "ContainerCredentialsUnavailable" : "ContainerCredentialsRefused",
              context + " answered HTTP " + std::to_string(response.status) +
                  (response.status == 401 || response.status == 403
                       ? ": check AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE (or AWS_CONTAINER_AUTHORIZATION_TOKEN)"
                       : std::string())));
  }

 private:
  ContainerSettings s_;
  http::Client& client_;
  asio::any_io_executor files_;
  RetryPolicy retry_;
};

// ---- Instance metadata, IMDSv2 ----

class InstanceMetadataFetcher final : public CredentialFetcher {
 public:
  InstanceMetadataFetcher(InstanceMetadataSettings settings, http::Client& client)
      : s_(std::move(settings)), client_(client) {}

  asio::awaitable<Result<TimedCredentials, BackendError>> fetch() override {
    auto where = credential_endpoint(s_.endpoint);
    if (!where)
      co_return Err(error(false, "InvalidImdsEndpoint", "AWS_EC2_METADATA_SERVICE_ENDPOINT " + where.error()));
    const http::Url origin = where.value().origin;
    std::string base = where.value().origin.path;
    while (!base.empty() && base.back() == '/') base.pop_back();
    const std::string context = "instance metadata at " + origin.origin();

    auto token = co_await send_within(
        client_, origin, request("PUT", base + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds", "21600"}),
        kImdsTimeout);
    if (!token) {
      BackendError e = gcs::transport_error(token.error(), context + ": no session token");
      e.message +=
          " (from a pod, the instance's metadata hop limit must be 2 or more: "
          "aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2; "
          "or set AWS_EC2_METADATA_DISABLED=true and use another identity)";
      co_return Err(e);
    }
    if (token.value().status != 200) co_return Err(refused(context + " refused a session token", token.value().status));
    const std::string session = token.value().body;
    if (auto bad = http::check_header_value(session, 4096); bad || session.empty())
      co_return Err(error(true, "ImdsBadReply", context + ": the session token is not a usable header value"));
    const std::string roles_path = base + "/latest/meta-data/iam/security-credentials/";
    auto roles = co_await send_within(client_, origin, request("GET", roles_path, {"X-aws-ec2-metadata-token", session}),
                                      kImdsTimeout);
    if (!roles) co_return Err(gcs::transport_error(roles.error(), context));
    if (roles.value().status == 404)
      co_return Err(error(false, "ImdsNoRole", context + ": the instance has no IAM role (instance profile) attached"));
    if (roles.value().status != 200)
      co_return Err(refused(context + " refused the role listing", roles.value().status));
    const std::string role = first_role(roles.value().body);
    if (role.empty() || role.find('/') != std::string::npos || http::check_header_value(role, 256))
      co_return Err(error(false, "ImdsNoRole", context + ": the instance has no usable IAM role name"));
    auto creds = co_await send_within(
        client_, origin,
        request("GET", roles_path + http::uri_encode(role, false), {"X-aws-ec2-metadata-token", session}), kImdsTimeout);
    if (!creds) co_return Err(gcs::transport_error(creds.error(), context));
    if (creds.value().status != 200)
      co_return Err(refused(context + " refused the role's credentials", creds.value().status));
    auto reply = parse_credentials_json(creds.value().body);
    if (!reply) co_return Err(error(true, "ImdsBadReply", context + ": " + reply.error()));
    co_return std::move(reply.value());
  }

 private:
  static http::Request request(std::string method, std::string target, std::pair<std::string, std::string> header) {
    http::Request r;
    r.method = std::move(method);
    r.target = std::move(target);
    r.headers.push_back(std::move(header));
    return r;
  }

  static BackendError refused(std::string what, int status) {
    return error(transient_status(status), "ImdsRefused", std::move(what) + " (HTTP " + std::to_string(status) + ")");
  }


  InstanceMetadataSettings s_;
  http::Client& client_;
};

}  // namespace

// ---- The cache (storage/refreshing_cache.hpp) ----

CachingProvider::CachingProvider(std::string source_name, std::unique_ptr<CredentialFetcher> fetcher,
                                 std::function<WallClock::time_point()> now)
    : name_(std::move(source_name)), fetcher_(std::move(fetcher)) {
  CredentialFetcher* source = fetcher_.get();
  auto fetch = [source]() -> asio::awaitable<BackendResult<Expiring<s3::Credentials>>> {
    auto fetched = co_await source->fetch();
    if (!fetched) co_return Err(std::move(fetched.error()));
    co_return Expiring<s3::Credentials>{std::move(fetched.value().keys), fetched.value().expiration};
  };
  cache_ = std::make_shared<RefreshingCache<s3::Credentials>>(
      CacheWording{"AWS credentials", name_, "AwsCredentialsExpired", "credentials that have already expired"},
      std::move(fetch), std::move(now));
}

CachingProvider::~CachingProvider() = default;

std::uint64_t CachingProvider::fetches() const { return cache_->fetches(); }

WallClock::time_point CachingProvider::refresh_time(WallClock::time_point now, WallClock::time_point expiration) {
  return storage::refresh_time(now, expiration);
}

void CachingProvider::rejected(const s3::Credentials& keys) {
  // Long-lived keys (no expiry) are not refetched: they would be the same ones.
  cache_->drop_if([&](const s3::Credentials& cached, const std::optional<WallClock::time_point>& expires_at) {
    return expires_at && cached.access_key_id == keys.access_key_id && cached.session_token == keys.session_token;
  });
}

asio::awaitable<BackendResult<s3::Credentials>> CachingProvider::credentials() { return cache_->get(); }

std::unique_ptr<CredentialFetcher> make_fetcher(const SourceSettings& source, http::Client& client,
                                                asio::any_io_executor files, RetryPolicy retry) {
  if (!source.broken.empty()) return std::make_unique<BrokenFetcher>(source.broken);
  if (source.web_identity) return std::make_unique<WebIdentityFetcher>(*source.web_identity, client, files, retry);
  if (source.container) return std::make_unique<ContainerFetcher>(*source.container, client, files, retry);
  if (source.instance_metadata) return std::make_unique<InstanceMetadataFetcher>(*source.instance_metadata, client);
  return std::make_unique<StaticFetcher>(source.static_keys);
}

std::shared_ptr<CredentialProvider> make_provider(const Chain& chain, http::Client& client, asio::any_io_executor files,
                                                  RetryPolicy retry) {
  const SourceSettings* active = chain.active();
  if (!active) return nullptr;
  return std::make_shared<CachingProvider>(active->name, make_fetcher(*active, client, std::move(files), retry));
}

}  // namespace stowage::storage::aws
