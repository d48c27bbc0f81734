// S3Backend: see s3_backend.hpp for the addressing rules and the guarantees.
//
// The path of one operation: a Call (what to do to which key) -> execute() (where the bucket
// lives now, a freshly signed request per attempt through send_with_retries, one region
// correction) -> the operation reads the status it expects, and error_from() turns anything else
// into a BackendError that says what to fix.
//
// Store quirks handled here (tests/storage/s3_backend_test.cpp shows each against moto 5):
//  - moto re-signs the *decoded* query string, so any ListObjectsV2 `prefix` holding a '/' (not
//    only a trailing one) is answered SignatureDoesNotMatch although the signature is right. When a
//    prefixed listing is refused that way but the same listing with a '/'-free prefix (the first
//    path segment of the prefix) is accepted, the credentials are proven good: the backend
//    remembers the quirk, lists by that segment, keeps the keys under the real prefix client-side
//    and stops paging once the sorted keys have passed it. AWS never takes this path.
//  - HEAD answers carry no body, so a 403 on HEAD bucket cannot say whether the secret, the key id
//    or the permissions are wrong: check_access() then asks again with a one-key listing, whose
//    error body names the cause.
//  - stores without DeleteObjects (501 NotImplemented / 405): DeleteObject per key, in parallel.
#include "storage/s3_backend.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "storage/metadata.hpp"
#include "storage/object_wipe.hpp"
#include "storage/s3_xml.hpp"

namespace stowage::storage {
namespace asio = boost::asio;
namespace {

constexpr std::size_t kDefaultParallelRequests = 8;  // when the spec sets no maxConnections
constexpr std::size_t kMinDeleteBatch = 100;         // smaller DeleteObjects batches are not worth a request
constexpr std::size_t kMaxQuotedMessage = 200;

std::string trim_trailing_slashes(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_aws_host(std::string_view host) {
  return ends_with(host, ".amazonaws.com") || ends_with(host, ".amazonaws.com.cn");
}

// "s3.amazonaws.com", "s3.<region>.amazonaws.com" or "s3-<region>.amazonaws.com" (and .cn): the
// regional endpoints whose bucket host can be rebuilt for another region.
bool is_standard_aws_host(std::string_view host) {
  std::string_view rest = host;
  if (ends_with(rest, ".amazonaws.com.cn")) {
    rest.remove_suffix(std::string_view(".amazonaws.com.cn").size());
  } else if (ends_with(rest, ".amazonaws.com")) {
    rest.remove_suffix(std::string_view(".amazonaws.com").size());
  } else {
    return false;
  }
  if (rest == "s3") return true;
  if (rest.rfind("s3.", 0) == 0) return rest.find('.', 3) == std::string_view::npos;
  if (rest.rfind("s3-", 0) == 0) return rest.find('.') == std::string_view::npos && rest != "s3-external-1";
  return false;
}

// The region an AWS host names: "s3.eu-west-1.amazonaws.com", "bucket.s3.eu-west-1.amazonaws.com",
// "s3-eu-west-1.amazonaws.com", "s3.dualstack.eu-west-1.amazonaws.com"; nullopt for the global host.
std::optional<std::string> region_from_aws_host(std::string_view host) {
  if (!is_aws_host(host)) return std::nullopt;
  std::vector<std::string_view> labels;
  while (!host.empty()) {
    auto dot = host.find('.');
    labels.push_back(host.substr(0, dot));
    host = dot == std::string_view::npos ? std::string_view{} : host.substr(dot + 1);
  }
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::string_view label = labels[i];
    if (label.rfind("s3-", 0) == 0 && label != "s3-external-1" && label.find("fips") == std::string_view::npos)
      return std::string(label.substr(3));
    if (label != "s3" || i + 1 >= labels.size()) continue;
    std::size_t next = i + 1;
    if (labels[next] == "dualstack" && next + 1 < labels.size()) ++next;
    if (labels[next] != "amazonaws") return std::string(labels[next]);
  }
  return std::nullopt;
}

std::string quoted_message(std::string_view message) {
  std::string out(message.substr(0, kMaxQuotedMessage));
  if (message.size() > kMaxQuotedMessage) out += "...";
  return out;
}

bool success(const http::Response& r) { return r.status >= 200 && r.status < 300; }

// The S3 code for a status that came without an error body (HEAD, or a proxy in between).
std::string code_for_status(int status, bool object) {
  switch (status) {
    case 301: return "PermanentRedirect";
    case 307: return "TemporaryRedirect";
    case 400: return "BadRequest";
    case 403: return "Forbidden";
    case 404: return object ? "NoSuchKey" : "NoSuchBucket";
    case 409: return "Conflict";
    case 412: return "PreconditionFailed";
    case 501: return "NotImplemented";
    case 503: return "ServiceUnavailable";
    default: return "HTTP" + std::to_string(status);
  }
}

// The region the server says the bucket is in, when it says so.
// A region name as S3-compatible stores spell them ("eu-west-1", "fr-par", MinIO's "default"). The
// region goes into the Authorization header and the host name, so a server's hint that is anything
// else is ignored rather than signed into the next request.
bool plausible_region(std::string_view region) {
  if (region.empty() || region.size() > 64) return false;
  return std::all_of(region.begin(), region.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

std::optional<std::string> region_hint_unchecked(const http::Response& r) {
  if (r.status == 301 || r.status == 307 || r.status == 400) {
    if (auto h = r.header("x-amz-bucket-region"); !h.empty()) return h;
  }
  if (r.status < 300) return std::nullopt;
  auto body = s3::parse_error(r.body);
  if (!body) return std::nullopt;
  if (body->code != "AuthorizationHeaderMalformed" && body->code != "PermanentRedirect" &&
      body->code != "TemporaryRedirect")
    return std::nullopt;
  if (!body->region.empty()) return body->region;
  if (!body->endpoint.empty()) return region_from_aws_host(body->endpoint);
  return std::nullopt;
}

std::optional<std::string> region_hint(const http::Response& r) {
  auto region = region_hint_unchecked(r);
  if (region && !plausible_region(*region)) return std::nullopt;
  return region;
}

bool transient_response(const http::Response& r) {
  if (transient_status(r.status)) return true;
  auto body = s3::parse_error(r.body);
  return body && (transient_s3_code(body->code) || body->code == "ConditionalRequestConflict");
}

std::string list_query(std::size_t page_size, std::string_view prefix, std::string_view token) {
  std::string q = "list-type=2&encoding-type=url&max-keys=" + std::to_string(page_size);
  if (!prefix.empty()) q += "&prefix=" + http::uri_encode(prefix, false);
  if (!token.empty()) q += "&continuation-token=" + http::uri_encode(token, false);
  return q;
}

// Runs `work(item)` over `items`, at most `parallel` at once, and adds up what they removed. The
// first failure stops handing out items (those already started finish) and is the outcome's error;
// the count still includes what was removed. `work` must return an awaitable<DeleteOutcome> that
// owns its arguments (a member coroutine taking them by value).
template <class Item, class Work>
asio::awaitable<DeleteOutcome> sum_bounded(std::vector<Item> items, std::size_t parallel, Work work) {
  struct Shared {
    Shared(std::vector<Item> all, Work w) : items(std::move(all)), work(std::move(w)) {}
    std::vector<Item> items;
    Work work;
    std::size_t next = 0;
    DeleteOutcome outcome;
  };
  auto shared = std::make_shared<Shared>(std::move(items), std::move(work));
  auto worker = [](std::shared_ptr<Shared> state) -> asio::awaitable<void> {
    while (!state->outcome.error && state->next < state->items.size()) {
      Item item = std::move(state->items[state->next++]);
      auto done = co_await state->work(std::move(item));
      state->outcome.removed += done.removed;
      if (done.error && !state->outcome.error) state->outcome.error = std::move(done.error);
    }
  };

  const std::size_t workers = std::max<std::size_t>(1, std::min(parallel, shared->items.size()));
  auto executor = co_await asio::this_coro::executor;
  using Spawned = decltype(asio::co_spawn(executor, worker(shared), asio::deferred));
  std::vector<Spawned> spawned;
  for (std::size_t i = 0; i < workers; ++i) spawned.push_back(asio::co_spawn(executor, worker(shared), asio::deferred));
  auto group = asio::experimental::make_parallel_group(std::move(spawned));
  auto [order, exceptions] = co_await group.async_wait(asio::experimental::wait_for_all(), asio::use_awaitable);
  for (const auto& thrown : exceptions) {
    if (!thrown || shared->outcome.error) continue;
    try {
      std::rethrow_exception(thrown);
    } catch (const std::exception& e) {
      shared->outcome.error = BackendError{true, "InternalError", std::string("S3 delete: ") + e.what(), std::nullopt};
    } catch (...) {
      shared->outcome.error = BackendError{true, "InternalError", "S3 delete: unknown exception", std::nullopt};
    }
  }
  co_return std::move(shared->outcome);
}

}  // namespace

S3Backend::S3Backend(http::Client& client, S3Options options) : client_(client), options_(std::move(options)) {
  options_.endpoint = trim_trailing_slashes(options_.endpoint);
  options_.bucket = trim_trailing_slashes(options_.bucket);
  options_.prefix = trim_trailing_slashes(options_.prefix);
  if (options_.list_page_size == 0 || options_.list_page_size > 1000) options_.list_page_size = 1000;
  credentials_ = {options_.access_key_id, options_.secret_access_key, options_.session_token};
  key_ = metadata_key(options_.prefix);
  dir_ = key_.substr(0, key_.size() - kMetadataFile.size());

  std::optional<std::string> named_region;
  if (options_.endpoint.empty()) {
    aws_ = aws_standard_host_ = true;
  } else if (auto url = http::Url::parse(options_.endpoint); url.ok()) {
    aws_ = is_aws_host(url.value().host);
    aws_standard_host_ = aws_ && is_standard_aws_host(url.value().host);
    if (aws_) named_region = region_from_aws_host(url.value().host);
  }
  region_ = !options_.region.empty() ? options_.region : named_region.value_or("us-east-1");
}

std::string S3Backend::identity() const {
  std::string endpoint = options_.endpoint.empty() ? "https://s3.amazonaws.com" : options_.endpoint;
  std::string out = "s3:" + endpoint + "/" + options_.bucket;
  if (!dir_.empty()) out += "/" + dir_.substr(0, dir_.size() - 1);
  return out;
}

std::string S3Backend::metadata_location() const { return "s3://" + options_.bucket + "/" + key_; }

std::string S3Backend::endpoint_label() const {
  if (!options_.endpoint.empty()) return options_.endpoint;
  return "https://s3." + region_ + ".amazonaws.com";
}

S3Backend::Place S3Backend::place() const {
  Place where;
  http::Url endpoint;
  if (!options_.endpoint.empty()) endpoint = http::Url::parse(options_.endpoint).value();  // checked by execute()
  if (!aws_) {
    where.origin = endpoint;
    where.host = endpoint.host_header();
    where.path_prefix = trim_trailing_slashes(endpoint.path) + "/" + options_.bucket;
  } else {
    std::string service_host = endpoint.host;
    if (aws_standard_host_)
      service_host = "s3." + region_ + (ends_with(endpoint.host, ".cn") ? ".amazonaws.com.cn" : ".amazonaws.com");
    // Virtual-hosted, except for dotted bucket names: *.s3.<region>.amazonaws.com cannot cover them.
    const bool dotted = options_.bucket.find('.') != std::string::npos;
    where.origin.scheme = endpoint.scheme.empty() ? "https" : endpoint.scheme;
    where.origin.port = endpoint.port.empty() ? "443" : endpoint.port;
    where.origin.host = dotted ? service_host : options_.bucket + "." + service_host;
    where.origin.path = "/";
    where.host = where.origin.host_header();
    where.path_prefix = dotted ? "/" + options_.bucket : "";
  }
  if (!options_.connect_to.empty()) {
    if (auto to = http::Url::parse(options_.connect_to); to.ok()) where.origin = to.value();
  }
  return where;
}

std::string S3Backend::target(const Call& call, const Place& where) const {
  std::string path = where.path_prefix;
  if (!call.key.empty()) path += "/" + http::uri_encode(call.key, true);
  if (path.empty()) path = "/";
  if (!call.query.empty()) path += "?" + call.query;
  return path;
}

asio::awaitable<Result<http::Response, BackendError>> S3Backend::execute(const Call& call) {
  // The credentials become header values (see s3_signer.hpp): one that would inject a header or
  // could never be sent stops every call, naming the key and a position, never the value.
  if (options_.credential_provider) {
    auto keys = co_await options_.credential_provider->credentials();
    if (!keys) co_return Err(std::move(keys.error()));
    credentials_ = std::move(keys.value());
  }
  if (auto bad = s3::credentials_problem(credentials_))
    co_return Err(BackendError{false, "InvalidCredentials",
                               "S3 credentials: " + bad->to_string() +
                                   (options_.credential_provider
                                        ? " in what " + options_.credential_provider->source_name() + " returned"
                                        : ": fix the value in the storage's Secret (or the controller's environment)"),
                               std::nullopt});
  if (!options_.endpoint.empty()) {
    if (auto url = http::Url::parse(options_.endpoint); !url.ok())
      co_return Err(BackendError{false, "InvalidEndpoint", "S3 " + url.error(), std::nullopt});
  }
  if (!options_.connect_to.empty()) {
    if (auto url = http::Url::parse(options_.connect_to); !url.ok())
      co_return Err(BackendError{false, "InvalidEndpoint", "S3 connect-to " + url.error(), std::nullopt});
  }
  for (int round = 0;; ++round) {
    const Place where = place();
    http::TlsSettings tls = options_.tls;
    if (!options_.connect_to.empty() && tls.server_name.empty()) {
      const auto colon = where.host.rfind(':');
      tls.server_name = colon == std::string::npos ? where.host : where.host.substr(0, colon);
    }
    // Named locals, not temporaries in the co_await expression (GCC 12 destroys those twice).
    std::function<http::Request()> make_request = [this, &call, target = target(call, where), host = where.host,
                                                   region = region_]() {
      http::Request request{call.method, target, call.headers, call.body};
      s3::sign(request, credentials_, s3::SigningParams{host, region, "s3", WallClock::now()});
      return request;
    };
    std::function<bool(const http::Response&)> transient = transient_response;
    auto sent = co_await send_with_retries(client_, where.origin, tls, make_request, /*idempotent=*/true,
                                           options_.max_connections, options_.retry, transient);
    if (!sent.ok()) co_return Err(error_from(call, sent.error()));
    http::Response& response = sent.value();
    if (round == 0 && !success(response)) {
      if (auto corrected = region_hint(response); corrected && !corrected->empty() && *corrected != region_) {
        spdlog::info("S3 bucket `{}` is in region `{}`, not `{}`: using `{}` from now on", options_.bucket,
                     *corrected, region_, *corrected);
        region_ = *corrected;
        continue;
      }
    }
    co_return std::move(response);
  }
}

std::string S3Backend::check_credential(const std::string& variable) const {
  if (!options_.credential_provider) return "check " + variable;
  return "the credentials from " + options_.credential_provider->source_name() +
         " were refused; they are fetched again at the next attempt";
}

BackendError S3Backend::error_from(const Call& call, const http::Response& response) const {
  const auto body = s3::parse_error(response.body);
  BackendError e;
  e.code = body ? body->code : code_for_status(response.status, !call.key.empty());
  e.retry_after = retry_after(response);
  std::string request_id = body && !body->request_id.empty() ? body->request_id : response.header("x-amz-request-id");
  const std::string id = request_id.empty() ? "" : " (request id " + request_id + ")";
  const std::string bucket = "S3 bucket `" + options_.bucket + "`";
  const std::string endpoint = endpoint_label();
  const std::string& code = e.code;
  if (options_.credential_provider && (code == "SignatureDoesNotMatch" || code == "InvalidAccessKeyId" ||
                                       code == "InvalidToken" || code == "ExpiredToken" ||
                                       code == "TokenRefreshRequired"))
    options_.credential_provider->rejected(credentials_);

  if (code == "NoSuchBucket") {
    e.message = bucket + " does not exist at endpoint `" + endpoint + "`" + id;
  } else if (code == "SignatureDoesNotMatch") {
    e.message = "signature rejected by " + endpoint + ": " + check_credential("AWS_SECRET_ACCESS_KEY") + id;
  } else if (code == "InvalidAccessKeyId") {
    e.message = "access key id not known to " + endpoint + ": " + check_credential("AWS_ACCESS_KEY_ID") + id;
  } else if (code == "InvalidToken" || code == "ExpiredToken" || code == "TokenRefreshRequired") {
    e.message =
        "session token rejected by " + endpoint + " (" + code + "): " + check_credential("AWS_SESSION_TOKEN") + id;
  } else if (code == "AccessDenied" || code == "AllAccessDisabled" || code == "Forbidden") {
    e.message = "access denied to " + bucket + " at " + endpoint + " for " + call.operation +
                ": the credentials need " + call.permission + " on it" + id;
  } else if (code == "RequestTimeTooSkewed") {
    e.message = "the clock of this machine differs too much from " + endpoint + "'s: synchronise it (NTP)" + id;
  } else if (code == "AuthorizationHeaderMalformed" || code == "PermanentRedirect" || code == "TemporaryRedirect" ||
             code == "IllegalLocationConstraintException") {
    std::string other = body && !body->region.empty() ? body->region : response.header("x-amz-bucket-region");
    if (!plausible_region(other)) other.clear();  // the server's text: not quoted unless it is a region name
    e.message = bucket + " at " + endpoint + " is not in region `" + region_ + "`" +
                (other.empty() ? std::string() : " but in `" + other + "`") + ": set spec.storage.s3.region" + id;
  } else {
    e.transient = transient_response(response);
    e.message = "S3 " + call.operation + " at " + endpoint + " failed: HTTP " + std::to_string(response.status) + " " +
                code + (body && !body->message.empty() ? ": " + quoted_message(body->message) : std::string()) + id;
  }
  return e;
}

BackendError S3Backend::error_from(const Call& call, const http::HttpError& error) const {
  using Kind = http::HttpError::Kind;
  BackendError e;
  e.transient = error.transient();
  const std::string what = "S3 " + call.operation + " at " + endpoint_label();
  switch (error.kind) {
    case Kind::TlsVerify:
      e.code = "TLSVerifyFailed";
      e.message = error.message;
      if (e.message.find("CA_CERT_DATA") == std::string::npos)
        e.message += ": give the CA that signed it in CA_CERT_DATA, or set insecureTLS";
      break;
    case Kind::Tls:
      e.code = "TLSFailed";
      e.message = what + ": " + error.message +
                  " (check that the endpoint speaks TLS on that port; for a private CA give CA_CERT_DATA)";
      break;
    case Kind::Timeout: e.code = "Timeout"; e.message = what + " timed out: " + error.message; break;
    case Kind::Reset: e.code = "ConnectionReset"; e.message = what + ": " + error.message; break;
    case Kind::Resolve: e.code = "ResolveFailed"; e.message = what + ": " + error.message; break;
    case Kind::Connect: e.code = "ConnectFailed"; e.message = what + ": " + error.message; break;
    case Kind::Protocol: e.code = "BadResponse"; e.message = what + ": " + error.message; break;
    case Kind::TooLarge: e.code = "ResponseTooLarge"; e.message = what + ": " + error.message; break;
    case Kind::InvalidRequest: e.code = "InvalidRequest"; e.message = what + ": " + error.message; break;
  }
  return e;
}

asio::awaitable<BackendResult<MetadataState>> S3Backend::read_metadata() {
  seen_absent_.reset();
  const Call call{"read " + key_, "s3:GetObject", "GET", key_, "", {}, ""};
  auto answer = co_await execute(call);
  if (!answer.ok()) co_return Err(answer.error());
  const http::Response& response = answer.value();
  if (response.status == 404) {
    auto body = s3::parse_error(response.body);
    if (body && body->code == "NoSuchBucket") co_return Err(error_from(call, response));
    seen_absent_ = std::chrono::steady_clock::now();
    co_return MetadataState{};
  }
  if (!success(response)) co_return Err(error_from(call, response));
  MetadataState state;
  state.exists = true;
  state.meta = parse_metadata(response.body, state.invalid_reason);
  co_return state;
}

asio::awaitable<BackendResult<CreateOutcome>> S3Backend::create_metadata(std::string body) {
  // An existence check first: a store that ignores If-None-Match then still never overwrites on a
  // later call. A read that just found the key absent is that check; otherwise a HEAD.
  bool checked = seen_absent_ && std::chrono::steady_clock::now() - *seen_absent_ < std::chrono::seconds(30);
  seen_absent_.reset();
  if (!checked) {
    const Call head{"check " + key_, "s3:GetObject", "HEAD", key_, "", {}, ""};
    auto existing = co_await execute(head);
    if (!existing.ok()) co_return Err(existing.error());
    if (success(existing.value())) co_return CreateOutcome::AlreadyExists;
    // 404: absent. 403: maybe a write-only policy; the PUT's error body will say what is wrong.
    if (existing.value().status != 404 && existing.value().status != 403)
      co_return Err(error_from(head, existing.value()));
  }

  const Call put{"create " + key_,
                 "s3:PutObject",
                 "PUT",
                 key_,
                 "",
                 {{"If-None-Match", "*"}, {"Content-Type", "application/yaml"}},
                 std::move(body)};
  auto answer = co_await execute(put);
  if (!answer.ok()) co_return Err(answer.error());
  const http::Response& response = answer.value();
  if (success(response)) co_return CreateOutcome::Created;
  if (response.status == 412) co_return CreateOutcome::AlreadyExists;
  if (response.status == 409) {
    auto error = s3::parse_error(response.body);
    if (!error || error->code == "ConditionalRequestConflict") co_return CreateOutcome::AlreadyExists;
  }
  co_return Err(error_from(put, response));
}

asio::awaitable<BackendResult<Ok>> S3Backend::check_access() {
  const Call head{"check bucket", "s3:ListBucket", "HEAD", "", "", {}, ""};
  auto answer = co_await execute(head);
  if (!answer.ok()) co_return Err(answer.error());
  if (success(answer.value())) co_return Ok{};
  if (answer.value().status == 404) co_return Err(error_from(head, answer.value()));
  co_return co_await diagnose_forbidden(head);
}

// A HEAD refusal has no body; the same question as a one-key listing gets one that names the cause.
asio::awaitable<BackendResult<Ok>> S3Backend::diagnose_forbidden(const Call& head) {
  const Call list{head.operation, head.permission, "GET", "", "list-type=2&max-keys=1", {}, ""};
  auto answer = co_await execute(list);
  if (!answer.ok()) co_return Err(answer.error());
  if (success(answer.value())) co_return Ok{};
  co_return Err(error_from(list, answer.value()));
}

asio::awaitable<Result<std::vector<std::string>, BackendError>> S3Backend::list_page(const std::string& list_prefix,
                                                                                     std::string& token,
                                                                                     bool& truncated) {
  const Call call{"list objects", "s3:ListBucket", "GET", "", list_query(options_.list_page_size, list_prefix, token),
                  {},             ""};
  auto answer = co_await execute(call);
  if (!answer.ok()) co_return Err(answer.error());
  if (!success(answer.value())) co_return Err(error_from(call, answer.value()));
  auto page = s3::parse_list_objects_v2(answer.value().body);
  if (!page.ok())
    co_return Err(BackendError{true, "BadResponse", "S3 list objects at " + endpoint_label() + ": " + page.error(),
                               std::nullopt});
  truncated = page.value().truncated;
  token = page.value().next_continuation_token;
  co_return std::move(page.value().keys);
}

asio::awaitable<WipeReport> S3Backend::wipe(WipePlan plan) {
  ObjectStore& store = *this;
  DeleteProgress progress = delete_progress_;
  auto report = co_await wipe_objects(store, std::move(plan), std::move(progress));
  co_return report;
}

std::string S3Backend::object_directory() const { return dir_; }

std::string S3Backend::object_location(const std::string& key) const { return "s3://" + options_.bucket + "/" + key; }

asio::awaitable<BackendResult<MetadataState>> S3Backend::read_own_metadata() { return read_metadata(); }

bool S3Backend::bucket_missing(const BackendError& error) const { return error.code == "NoSuchBucket"; }

// One page under dir_: listed by the exact prefix, or (moto, see the top of this file) by its first
// path segment, keeping the keys under dir_ and ending the listing once the sorted keys passed it.
asio::awaitable<BackendResult<ObjectPage>> S3Backend::list_objects(std::string token) {
  const std::string first_segment = dir_.substr(0, dir_.find('/'));
  const bool exact = !slash_in_query_rejected_ || dir_.find('/') == std::string::npos;
  const std::string list_prefix = exact ? dir_ : first_segment;
  const bool first_page = token.empty();
  bool truncated = false;
  auto page = co_await list_page(list_prefix, token, truncated);
  if (!page.ok() && exact && first_page && page.error().code == "SignatureDoesNotMatch" &&
      list_prefix.find('/') != std::string::npos) {
    auto retry = co_await list_page(first_segment, token, truncated);
    if (retry.ok()) {
      spdlog::warn("{} rejects signed listings whose prefix holds '/': listing by `{}` and filtering instead",
                   endpoint_label(), first_segment);
      slash_in_query_rejected_ = true;
      page = std::move(retry);
    } else if (retry.error().code != "SignatureDoesNotMatch") {
      page = std::move(retry);  // past the signature check: its error (NoSuchBucket, ...) is the real one
    }
  }
  if (!page.ok()) co_return Err(page.error());

  ObjectPage out;
  bool passed = false;  // sorted keys have gone beyond every key under dir_
  for (auto& key : page.value()) {
    if (key.rfind(dir_, 0) == 0) {
      out.keys.push_back(std::move(key));
    } else if (key > dir_) {
      passed = true;
    }
  }
  if (truncated && !passed) out.next = std::move(token);
  co_return out;
}

// A ranged GET: at most limit + 1 bytes from a store that honours Range. 416 is an empty object
// (no byte 0 to start from).
asio::awaitable<BackendResult<std::optional<std::string>>> S3Backend::read_object(std::string key,
                                                                                    std::size_t limit) {
  const Call call{"read " + key, "s3:GetObject", "GET", key, "", {{"Range", "bytes=0-" + std::to_string(limit)}}, ""};
  auto answer = co_await execute(call);
  if (!answer.ok()) co_return Err(answer.error());
  http::Response& response = answer.value();
  if (success(response)) co_return std::optional<std::string>(std::move(response.body));
  if (response.status == 416) co_return std::optional<std::string>(std::string());
  if (response.status == 404) {
    auto body = s3::parse_error(response.body);
    if (!body || body->code != "NoSuchBucket") co_return std::optional<std::string>();
  }
  co_return Err(error_from(call, response));
}

std::size_t S3Backend::parallel_requests() const {
  return options_.max_connections ? options_.max_connections : kDefaultParallelRequests;
}

// One listing page's keys: split into DeleteObjects batches (at least kMinDeleteBatch keys each, at
// most 1000) so that up to parallel_requests() run at once.
asio::awaitable<DeleteOutcome> S3Backend::delete_objects(std::vector<std::string> keys) {
  const std::size_t parallel = parallel_requests();
  if (multi_delete_refused_) {
    auto one = [this](std::string key) { return delete_one(std::move(key)); };
    co_return co_await sum_bounded(std::move(keys), parallel, one);
  }
  const std::size_t per_batch =
      std::clamp<std::size_t>((keys.size() + parallel - 1) / parallel, kMinDeleteBatch, s3::kMaxDeleteKeys);
  std::vector<std::vector<std::string>> batches;
  for (std::size_t start = 0; start < keys.size(); start += per_batch) {
    const auto first = keys.begin() + static_cast<std::ptrdiff_t>(start);
    const auto last = keys.begin() + static_cast<std::ptrdiff_t>(std::min(keys.size(), start + per_batch));
    batches.emplace_back(std::make_move_iterator(first), std::make_move_iterator(last));
  }
  auto batch = [this](std::vector<std::string> keys) { return delete_batch(std::move(keys)); };
  co_return co_await sum_bounded(std::move(batches), parallel, batch);
}

asio::awaitable<DeleteOutcome> S3Backend::delete_batch(std::vector<std::string> keys) {
  std::string body = s3::delete_objects_body(keys);
  const Call call{"delete objects",
                  "s3:DeleteObject",
                  "POST",
                  "",
                  "delete",
                  {{"Content-MD5", s3::content_md5(body)}, {"Content-Type", "application/xml"}},
                  std::move(body)};
  auto answer = co_await execute(call);
  if (!answer.ok()) co_return DeleteOutcome{0, answer.error()};
  const http::Response& response = answer.value();
  if (!success(response)) {
    auto error = s3::parse_error(response.body);
    const std::string code = error ? error->code : code_for_status(response.status, false);
    if (response.status == 501 || response.status == 405 || code == "NotImplemented" || code == "MethodNotAllowed") {
      if (!multi_delete_refused_)
        spdlog::info("{} refuses DeleteObjects ({}): deleting object by object", endpoint_label(), code);
      multi_delete_refused_ = true;
      auto one = [this](std::string key) { return delete_one(std::move(key)); };
      co_return co_await sum_bounded(std::move(keys), parallel_requests(), one);
    }
    co_return DeleteOutcome{0, error_from(call, response)};
  }
  auto result = s3::parse_delete_result(response.body);
  if (!result.ok())
    co_return DeleteOutcome{0, BackendError{true, "BadResponse",
                                            "S3 delete objects at " + endpoint_label() + ": " + result.error(),
                                            std::nullopt}};
  const auto& failures = result.value().errors;
  if (failures.empty()) co_return DeleteOutcome{keys.size(), std::nullopt};
  const auto& first = failures.front();
  BackendError e;
  e.code = first.code.empty() ? "DeleteFailed" : first.code;
  e.transient = transient_s3_code(e.code);
  e.message = "S3 refused to delete " + std::to_string(failures.size()) + " of " + std::to_string(keys.size()) +
              " objects under `" + dir_ + "` in bucket `" + options_.bucket + "` at " + endpoint_label() +
              " (first: `" + first.key + "`: " + e.code +
              (first.message.empty() ? std::string() : ": " + quoted_message(first.message)) + ")";
  co_return DeleteOutcome{keys.size() - std::min(keys.size(), failures.size()), std::move(e)};
}

asio::awaitable<DeleteOutcome> S3Backend::delete_one(std::string key) {
  const Call call{"delete " + key, "s3:DeleteObject", "DELETE", key, "", {}, ""};
  auto answer = co_await execute(call);
  if (!answer.ok()) co_return DeleteOutcome{0, answer.error()};
  if (success(answer.value()) || answer.value().status == 404) co_return DeleteOutcome{1, std::nullopt};
  co_return DeleteOutcome{0, error_from(call, answer.value())};
}

}  // namespace stowage::storage
