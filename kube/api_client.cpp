#include "kube/api_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "common/crypto.hpp"
#include "kube/json_slices.hpp"

namespace stowage::kube {

namespace json = boost::json;
namespace asio = boost::asio;

namespace {

constexpr std::size_t kMaxErrorBody = 64 * 1024;

std::string reason_phrase(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
  }
}

// The server's delay, capped at a day: callers convert it to milliseconds, which a huge value (any
// int64 the server sends) would overflow.
constexpr std::int64_t kMaxRetryAfterSeconds = 86'400;

std::optional<std::chrono::seconds> parse_retry_after(const http::Response& r, const ApiStatus& status) {
  if (auto s = r.header("retry-after"); !s.empty()) {
    char* end = nullptr;
    long v = std::strtol(s.c_str(), &end, 10);
    if (end && *end == '\0' && v >= 0) return std::chrono::seconds(std::min<std::int64_t>(v, kMaxRetryAfterSeconds));
  }
  if (status.retry_after_seconds > 0)
    return std::chrono::seconds(std::min(status.retry_after_seconds, kMaxRetryAfterSeconds));
  return std::nullopt;
}

void add_param(std::string& query, std::string_view name, std::string_view value) {
  query += query.empty() ? '?' : '&';
  query += name;
  query += '=';
  query += http::uri_encode(value, false);
}

http::Url origin_of(const ServerUrl& server) {
  http::Url u;
  u.scheme = server.scheme.empty() ? "https" : server.scheme;
  u.host = server.host;
  u.port = std::to_string(server.port ? server.port : (u.scheme == "http" ? 80 : 443));
  u.path = "/";
  return u;
}

std::string first_line(std::string_view text, std::size_t limit = 200) {
  auto nl = text.find('\n');
  if (nl != std::string_view::npos) text = text.substr(0, nl);
  if (text.size() > limit) return std::string(text.substr(0, limit)) + "...";
  return std::string(text);
}

}  // namespace

// One run of the exec plugin. The request that starts it runs it; the others wait on `done`, a
// timer at max() that is cancelled to wake them all (the reactor's condition variable).
struct ApiClient::ExecRun {
  explicit ExecRun(asio::any_io_executor ex) : done(std::move(ex), asio::steady_timer::time_point::max()) {}
  asio::steady_timer done;
  std::optional<ExecPluginResult> result;
};

ApiClient::ApiClient(http::Client& http, ClientConfig config, ApiClientOptions options, Clock clock)
    : http_(http),
      config_(std::move(config)),
      options_(std::move(options)),
      clock_(std::move(clock)),
      limiter_(options_.qps, options_.burst),
      origin_(origin_of(config_.server)),
      tls_(config_.ca_pem, config_.insecure_skip_tls_verify, config_.tls_server_name, config_.client_certificate_pem,
           config_.client_key_pem, config_.proxy_url),
      token_(config_.bearer_token) {
  if (!config_.token_file.empty() && !config_.bearer_token.empty()) token_read_at_ = clock_();
}

ApiClient::ApiClient(http::Client& http, ClientConfig config, Clock clock)
    : ApiClient(http, std::move(config), ApiClientOptions{}, std::move(clock)) {}

ApiClient::~ApiClient() = default;

std::string ApiClient::current_token() {
  std::lock_guard lock(token_mutex_);
  if (!config_.token_file.empty()) {
    auto now = clock_();
    if (!token_read_at_ || now - *token_read_at_ >= kTokenFileRereadInterval) {
      token_read_at_ = now;
      if (auto t = config_.read_token_file(); t.ok()) token_ = std::move(t.value());
      // On failure the last good token stays in use (as in client-go).
    }
  }
  return token_;
}

bool ApiClient::reread_token_after_unauthorized() {
  if (config_.token_file.empty()) return false;
  std::lock_guard lock(token_mutex_);
  token_read_at_ = clock_();
  auto t = config_.read_token_file();
  if (!t.ok()) return false;
  token_ = std::move(t.value());
  return true;
}

bool ApiClient::sends_credentials() const { return config_.server.is_https() || config_.server.scheme.empty(); }

http::Request ApiClient::make_request(const Call& call, const ExecCredential* credential) {
  http::Request r;
  r.method = call.method;
  r.target = config_.server.path + call.path + call.query;
  r.headers.emplace_back("Accept", call.accept.empty() ? std::string("application/json") : call.accept);
  r.headers.emplace_back("User-Agent", "stowage");
  if (!call.content_type.empty()) r.headers.emplace_back("Content-Type", call.content_type);
  if (sends_credentials()) {
    std::string token = credential ? credential->token : current_token();
    if (!token.empty()) {
      r.headers.emplace_back("Authorization", "Bearer " + token);
    } else if (!config_.username.empty() || !config_.password.empty()) {
      r.headers.emplace_back("Authorization", "Basic " + crypto::base64_encode(config_.username + ":" + config_.password));
    }
  }
  r.body = call.body;
  return r;
}

namespace {
ApiError credentials_error(const std::string& verb, const std::string& path, const ExecPluginError& err) {
  ApiError e;
  e.kind = ApiError::Kind::Credentials;
  e.message = verb + " " + path + ": " + err.message;
  e.credentials_transient = err.transient();
  return e;
}
}  // namespace

ApiClient::Awaitable<ExecCredential> ApiClient::exec_credential(const Call& call) {
  if (const ExecCredential* cached = exec_cache_.get(WallClock::now())) co_return *cached;
  std::shared_ptr<ExecRun> run = exec_slot_->run;
  if (run) {
    while (!run->result) co_await run->done.async_wait(asio::as_tuple(asio::use_awaitable));
  } else {
    asio::any_io_executor executor = co_await asio::this_coro::executor;
    run = std::make_shared<ExecRun>(executor);
    exec_slot_->run = run;
    // Whatever ends this run (its result, or this coroutine being destroyed), the waiters wake up
    // and the next request may start a new run. The guard may run after this client is gone (the
    // frame is destroyed with the reactor): it touches only what it holds itself.
    struct Publish {
      std::weak_ptr<ExecSlot> slot;
      std::shared_ptr<ExecRun> run;
      std::string command;
      ~Publish() {
        if (!run->result)
          run->result = Err(
              ExecPluginError{ExecPluginError::Kind::Failed, "exec plugin " + command + " was abandoned midway", 0, 0});
        if (auto s = slot.lock(); s && s->run == run) s->run.reset();
        run->done.cancel();
      }
    } publish{exec_slot_, run, config_.exec->command};
    ExecPluginResult outcome = co_await run_exec_plugin(*config_.exec, config_, options_.exec);
    if (outcome.ok()) exec_cache_.store(outcome.value());
    run->result = std::move(outcome);
  }
  if (!run->result->ok()) co_return Err(credentials_error(call.verb, call.path, run->result->error()));
  co_return run->result->value();
}

ApiClient::Awaitable<ApiClient::Attempt> ApiClient::prepare(const Call& call) {
  const bool granted = co_await limiter_.acquire();
  if (!granted) {
    ApiError e;
    e.kind = ApiError::Kind::Transport;
    e.message = call.verb + " " + call.path + ": cancelled while waiting for the client-side rate limiter";
    co_return Err(e);
  }
  Attempt attempt;
  attempt.tls = tls_;
  if (config_.exec && sends_credentials()) {
    auto credential = co_await exec_credential(call);
    if (!credential.ok()) co_return Err(credential.error());
    attempt.credential = std::move(credential.value());
    if (!attempt.credential->client_certificate_pem.empty()) {
      attempt.tls.client_cert_pem = attempt.credential->client_certificate_pem;
      attempt.tls.client_key_pem = attempt.credential->client_key_pem;
    }
  }
  attempt.request = make_request(call, attempt.credential ? &*attempt.credential : nullptr);
  co_return attempt;
}

bool ApiClient::renew_after_unauthorized(const Attempt& attempt) {
  if (attempt.credential) {
    // Forget it unless a newer one has replaced it meanwhile; either way the retry gets a newer one.
    exec_cache_.invalidate(*attempt.credential);
    return true;
  }
  return reread_token_after_unauthorized();
}

ApiError ApiClient::status_error(const Call& call, const http::Response& response) const {
  ApiError e;
  e.kind = ApiError::Kind::Status;
  e.http_status = response.status;
  boost::system::error_code ec;
  json::value body = json::parse(response.body, ec);
  bool is_status = !ec && body.is_object() && body.as_object().contains("kind") &&
                   body.as_object().at("kind") == "Status";
  if (is_status) e.status = parse_api_status(body);
  e.retry_after = parse_retry_after(response, e.status);
  std::string where = call.verb + " " + call.path + ": ";
  std::string code = "HTTP " + std::to_string(response.status);
  if (auto phrase = reason_phrase(response.status); !phrase.empty()) code += " " + phrase;
  std::string detail = is_status ? e.status.message : first_line(response.body);
  if (response.status == 401) {
    std::string what = "credentials";
    if (config_.exec)
      what = "credential from exec plugin " + config_.exec->command;
    else if (!config_.token_file.empty())
      what = "bearer token from " + config_.token_file;
    else if (!config_.bearer_token.empty())
      what = "bearer token";
    else if (!config_.username.empty())
      what = "basic-auth credentials of user \"" + config_.username + "\"";
    else if (!config_.client_certificate_pem.empty())
      what = "client certificate";
    else
      what = "anonymous request (no credentials configured)";
    e.message = where + "the API server refused the " + what + " (" + code + ")";
  } else if (response.status == 403) {
    e.message = where + "forbidden (" + code + ")" + (detail.empty() ? "" : ": " + detail);
  } else {
    e.message = where + code + (detail.empty() ? "" : ": " + detail);
  }
  if (e.retry_after) e.message += " (retry after " + std::to_string(e.retry_after->count()) + "s)";
  return e;
}

namespace {
ApiError transport_error(const std::string& verb, const std::string& path, const http::HttpError& err) {
  ApiError e;
  e.kind = ApiError::Kind::Transport;
  e.message = verb + " " + path + ": " + err.message;
  e.transport_transient = err.transient();
  return e;
}
}  // namespace

ApiClient::Awaitable<json::value> ApiClient::exchange(Call call) {
  for (int tries = 0;; ++tries) {
    auto prepared = co_await prepare(call);
    if (!prepared.ok()) co_return Err(prepared.error());
    Attempt& attempt = prepared.value();
    auto sent_at = std::chrono::steady_clock::now();
    auto result = co_await http_.send(origin_, attempt.tls, std::move(attempt.request));
    if (options_.on_request) {
      std::optional<int> status;
      if (result.ok()) status = result.value().status;
      options_.on_request(status, call.method, std::chrono::steady_clock::now() - sent_at);
    }
    if (!result.ok()) co_return Err(transport_error(call.verb, call.path, result.error()));
    const http::Response& response = result.value();
    if (response.status == 401 && tries == 0 && renew_after_unauthorized(attempt)) continue;
    if (response.status < 200 || response.status >= 300) co_return Err(status_error(call, response));
    if (response.body.empty()) co_return json::value();
    // A list page is ~600 KB: parsed in slices of about a millisecond, the reactor turning between two.
    JsonSliceOptions parse;
    if (call.one_block)  // a BackupStorage page's tree is ~2.8 times its text: one block (rounded up to 2^n)
      parse.storage = json::make_shared_resource<json::monotonic_resource>(3 * response.body.size());
    auto body = co_await parse_json_in_slices(response.body, std::move(parse));
    if (!body.ok()) {
      ApiError e;
      e.kind = ApiError::Kind::Decode;
      e.http_status = response.status;
      e.message = call.verb + " " + call.path + ": the answer (HTTP " + std::to_string(response.status) +
                  ", " + std::to_string(response.body.size()) + " bytes) is not JSON: " + body.error().to_string();
      co_return Err(e);
    }
    co_return std::move(body.value());
  }
}

ApiClient::Awaitable<json::value> ApiClient::get(std::string path) {
  Call call{"get", "GET", std::move(path), "", "", "", "", false};
  co_return co_await exchange(std::move(call));
}

ApiClient::Awaitable<json::value> ApiClient::list(std::string path, ListOptions options) {
  std::string query;
  if (options.limit > 0) add_param(query, "limit", std::to_string(options.limit));
  if (!options.continue_token.empty()) add_param(query, "continue", options.continue_token);
  if (!options.resource_version.empty()) add_param(query, "resourceVersion", options.resource_version);
  if (!options.label_selector.empty()) add_param(query, "labelSelector", options.label_selector);
  if (!options.field_selector.empty()) add_param(query, "fieldSelector", options.field_selector);
  Call call{"list", "GET", std::move(path), std::move(query), "", "", std::move(options.accept), true};
  co_return co_await exchange(std::move(call));
}

ApiClient::Awaitable<json::value> ApiClient::create(std::string collection_path, json::value object) {
  Call call{"create", "POST", std::move(collection_path), "", json::serialize(object), "application/json", "", false};
  co_return co_await exchange(std::move(call));
}

ApiClient::Awaitable<json::value> ApiClient::replace(std::string path, json::value object) {
  Call call{"update", "PUT", std::move(path), "", json::serialize(object), "application/json", "", false};
  co_return co_await exchange(std::move(call));
}

ApiClient::Awaitable<json::value> ApiClient::patch(std::string path, std::string content_type, json::value body) {
  Call call{"patch", "PATCH", std::move(path), "", json::serialize(body), std::move(content_type), "", false};
  co_return co_await exchange(std::move(call));
}

ApiClient::Awaitable<json::value> ApiClient::remove(std::string path, json::value delete_options) {
  std::string body = delete_options.is_null() ? std::string() : json::serialize(delete_options);
  std::string content_type = body.empty() ? std::string() : std::string("application/json");
  Call call{"delete", "DELETE", std::move(path), "", std::move(body), std::move(content_type), "", false};
  co_return co_await exchange(std::move(call));
}

ApiClient::Awaitable<Ok> ApiClient::watch(std::string path, WatchOptions options,
                                          std::function<bool(WatchEvent)> on_event) {
  std::string query;
  add_param(query, "watch", "1");
  if (!options.resource_version.empty()) add_param(query, "resourceVersion", options.resource_version);
  if (options.timeout_seconds > 0) add_param(query, "timeoutSeconds", std::to_string(options.timeout_seconds));
  if (options.allow_bookmarks) add_param(query, "allowWatchBookmarks", "true");
  if (!options.label_selector.empty()) add_param(query, "labelSelector", options.label_selector);
  if (!options.field_selector.empty()) add_param(query, "fieldSelector", options.field_selector);
  Call call{"watch", "GET", std::move(path), std::move(query), "", "", std::move(options.accept), false};

  std::chrono::milliseconds idle = options.idle_timeout;
  if (idle.count() <= 0) {
    if (options.timeout_seconds > 0)
      idle = std::chrono::seconds(options.timeout_seconds + 30);
    else
      idle = std::chrono::minutes(5);
  }

  for (int tries = 0;; ++tries) {
    auto prepared = co_await prepare(call);
    if (!prepared.ok()) co_return Err(prepared.error());
    Attempt& attempt = prepared.value();
    // Shared by the callbacks below; lives in this coroutine frame for the whole stream.
    http::Response head;
    bool success = false;
    bool stopped = false;  // the caller's on_event returned false
    WatchStreamSplitter splitter;
    std::optional<WatchStreamError> stream_error;

    auto opened_at = std::chrono::steady_clock::now();
    std::function<void(const http::Response&)> on_head = [&head, &success, this, opened_at](const http::Response& h) {
      head.status = h.status;
      head.headers = h.headers;
      success = h.status >= 200 && h.status < 300;
      if (options_.on_request) options_.on_request(h.status, "GET", std::chrono::steady_clock::now() - opened_at);
    };
    std::function<bool(std::string_view)> on_data = [&](std::string_view data) -> bool {
      if (!success) {
        if (head.body.size() < kMaxErrorBody) head.body.append(data.substr(0, kMaxErrorBody - head.body.size()));
        return true;
      }
      WatchStreamFeed fed = splitter.feed(data);
      for (auto& event : fed.events) {
        if (!on_event(std::move(event))) {
          stopped = true;
          return false;
        }
      }
      if (fed.error) {
        stream_error = fed.error;
        return false;
      }
      return true;
    };

    auto result = co_await http_.stream(origin_, attempt.tls, std::move(attempt.request), on_head, on_data, idle);
    if (stopped) co_return Ok{};
    if (stream_error) {
      ApiError e;
      e.kind = ApiError::Kind::Stream;
      e.http_status = head.status;
      e.message = call.verb + " " + call.path + ": broken watch stream: " + stream_error->to_string();
      co_return Err(e);
    }
    if (!result.ok()) {
      ApiError e = transport_error(call.verb, call.path, result.error());
      // Past a 2xx head only the idle timeout bounds a read (http::Client::stream).
      if (success && result.error().kind == http::HttpError::Kind::Timeout) {
        e.watch_idle = true;
        e.message = call.verb + " " + call.path + ": no byte for " + std::to_string(idle.count()) +
                    " ms (idle timeout); the connection was closed";
      }
      co_return Err(e);
    }
    if (!success) {
      if (head.status == 401 && tries == 0 && renew_after_unauthorized(attempt)) continue;
      co_return Err(status_error(call, head));
    }
    if (auto end = splitter.finish()) {
      ApiError e;
      e.kind = ApiError::Kind::Stream;
      e.http_status = head.status;
      e.message = call.verb + " " + call.path + ": broken watch stream: " + end->to_string();
      co_return Err(e);
    }
    co_return Ok{};
  }
}

}  // namespace stowage::kube
