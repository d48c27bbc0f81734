// GcsBackend (see gcs_backend.hpp): the JSON API calls, their authentication, and what each
// answer means for the reconciler.
//
// Every request is built by send(): fetch a token (unless emulator mode), sign the request with it,
// hand it to send_with_retries, and on a 401 drop the token and go once more with a fresh one. The
// operations then read the status: 2xx is the result, and status_error() turns the rest into an
// actionable BackendError.
#include "storage/gcs_backend.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <functional>
#include <utility>

#include "common/url.hpp"
#include "storage/gcs_auth.hpp"
#include "storage/metadata.hpp"
#include "storage/object_wipe.hpp"

namespace stowage::storage {
namespace asio = boost::asio;
namespace json = boost::json;
namespace {

// Deletes in flight at once during WipeOut (bounded further by max_connections).
constexpr std::size_t kDeleteWidth = 8;

BackendError permanent(std::string code, std::string message) {
  return BackendError{false, std::move(code), std::move(message), std::nullopt};
}

std::string enc(std::string_view s) { return http::uri_encode(s, false); }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool is_success(const http::Response& r) { return r.status >= 200 && r.status < 300; }

// A 404 that is about the bucket rather than the object ("The specified bucket does not exist.").
bool gcs_bucket_missing(const http::Response& r) {
  return r.status == 404 &&
         lower(gcs::json_api_error_message(r.body)).find("bucket does not exist") != std::string::npos;
}

}  // namespace

// The state of one page's deletes, shared by its workers (all on the caller's executor).
struct GcsBackend::DeleteRun {
  std::vector<std::string> names;
  std::size_t next = 0;
  std::size_t deleted = 0;
  std::size_t running = 0;
  std::optional<BackendError> error;
  asio::steady_timer done;
  DeleteRun(std::vector<std::string> n, asio::any_io_executor ex)
      : names(std::move(n)), done(ex, asio::steady_timer::time_point::max()) {}
};

GcsBackend::GcsBackend(http::Client& client, GcsOptions options)
    : GcsBackend(client, std::move(options), gcs::TokenRegistry::process_wide()) {}

GcsBackend::GcsBackend(http::Client& client, GcsOptions options, gcs::TokenRegistry& tokens)
    : client_(client), options_(std::move(options)) {
  endpoint_ = options_.endpoint.empty() ? std::string(kGcsDefaultEndpoint) : options_.endpoint;
  // STORAGE_EMULATOR_HOST is conventionally "host:port": Google's libraries then speak plain http.
  if (options_.emulator && !url::has_scheme(endpoint_)) endpoint_ = "http://" + endpoint_;
  while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  key_ = metadata_key(options_.prefix);
  dir_ = key_.substr(0, key_.size() - kMetadataFile.size());

  auto url = http::Url::parse(endpoint_);
  if (!url) {
    setup_error_ = permanent("InvalidEndpoint", "GCS endpoint: " + url.error());
    return;
  }
  origin_ = url.value();
  base_path_ = url.value().path;
  while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
  if (options_.bucket.empty()) {
    setup_error_ = permanent("InvalidSpec", "spec.storage.gcs.bucket is empty: name the bucket");
    return;
  }
  if (options_.emulator) return;  // no authentication
  if (options_.service_account_json.empty()) {
    tokens_ = options_.own_identity ? options_.own_identity : tokens.metadata_server(options_.metadata_host);
    return;
  }
  auto key = gcs::parse_service_account_key(options_.service_account_json);
  if (!key) {
    setup_error_ = permanent("InvalidServiceAccountKey", key.error().message);
    return;
  }
  tokens_ = tokens.service_account(key.value());
}

std::string GcsBackend::identity() const {
  std::string prefix = dir_.empty() ? dir_ : dir_.substr(0, dir_.size() - 1);
  return "gcs:" + endpoint_ + "/" + options_.bucket + "/" + prefix;
}

std::string GcsBackend::metadata_location() const { return "gs://" + options_.bucket + "/" + key_; }

std::string GcsBackend::principal() const {
  if (tokens_) return tokens_->principal();
  return "no credentials (emulator mode)";
}

std::string GcsBackend::object_path(const std::string& name) const {
  return base_path_ + "/storage/v1/b/" + enc(options_.bucket) + "/o/" + enc(name);
}

// The token endpoint gets the storage endpoint's TLS settings (a private CA, insecureTLS) only
// when it is the same server; Google's own token URI is verified against the system roots.
http::TlsSettings GcsBackend::token_tls() const {
  auto url = url::parse(tokens_->token_uri(), "");  // a token_uri may carry a query (see gcs_token.cpp)
  if (!url || !origin_) return {};
  const url::Parts& u = url.value();
  const bool same = u.scheme == origin_->scheme && u.host == origin_->host &&
                    std::to_string(u.port_or_default()) == origin_->port;
  return same ? options_.tls : http::TlsSettings{};
}

asio::awaitable<BackendResult<std::string>> GcsBackend::access_token() {
  http::TlsSettings tls = token_tls();  // named, not a temporary in the co_await expression (GCC 12)
  co_return co_await tokens_->token(client_, std::move(tls), options_.retry);
}

asio::awaitable<BackendResult<http::Response>> GcsBackend::send(ApiCall call, bool idempotent, std::string what) {
  if (setup_error_) co_return Err(*setup_error_);
  for (int attempt = 0;; ++attempt) {
    std::string token;
    if (tokens_) {
      auto got = co_await access_token();
      if (!got) co_return Err(got.error());
      token = std::move(got.value());
    }
    std::function<http::Request()> make_request = [call, token] {
      http::Request request;
      request.method = call.method;
      request.target = call.target;
      request.body = call.body;
      request.headers.emplace_back("Accept", "application/json");
      if (!call.content_type.empty()) request.headers.emplace_back("Content-Type", call.content_type);
      for (const auto& header : call.headers) request.headers.push_back(header);
      if (!token.empty()) request.headers.emplace_back("Authorization", "Bearer " + token);
      return request;
    };
    auto sent = co_await send_with_retries(client_, *origin_, options_.tls, std::move(make_request), idempotent,
                                           options_.max_connections, options_.retry);
    if (!sent) co_return Err(gcs::transport_error(sent.error(), "GCS " + what));
    if (sent.value().status == 401 && tokens_ && attempt == 0) {
      spdlog::debug("GCS {}: access token rejected; fetching a new one", what);
      tokens_->invalidate(token);
      continue;
    }
    co_return std::move(sent.value());
  }
}

BackendError GcsBackend::status_error(const http::Response& response, const std::string& what) const {
  const std::string detail = gcs::json_api_error_message(response.body);
  const std::string status = "HTTP " + std::to_string(response.status) + (detail.empty() ? "" : ": " + detail);
  const std::string& bucket = options_.bucket;
  switch (response.status) {
    case 401:
      if (!tokens_)
        return permanent("Unauthenticated", "GCS endpoint " + endpoint_ +
                                                " requires credentials, but emulator mode "
                                                "(STORAGE_EMULATOR_HOST) sends none (" +
                                                status + ")");
      return permanent("Unauthenticated", "GCS rejected the access token of " + principal() + " for the " + what +
                                              " (" + status + "): check " + tokens_->source());
    case 403:
      return permanent("PermissionDenied", "GCS denied " + principal() + " access to bucket `" + bucket + "` (" +
                                               status + "): grant it roles/storage.objectAdmin on the bucket");
    case 404:
      return permanent("BucketNotFound", "GCS bucket `" + bucket + "` does not exist");
    default:
      break;
  }
  if (transient_status(response.status))
    return BackendError{true, response.status == 429 ? "Throttled" : "Unavailable",
                        "GCS answered the " + what + " with " + status, retry_after(response)};
  return permanent("UnexpectedStatus", "GCS answered the " + what + " with " + status);
}

asio::awaitable<BackendResult<MetadataState>> GcsBackend::read_metadata() {
  ApiCall call{"GET", object_path(key_) + "?alt=media", "", "", {}};
  const std::string what = "read of " + metadata_location();
  auto sent = co_await send(std::move(call), true, what);
  if (!sent) co_return Err(sent.error());
  const http::Response& response = sent.value();
  if (response.status == 404 && !gcs_bucket_missing(response)) co_return MetadataState{};
  if (!is_success(response)) co_return Err(status_error(response, what));
  MetadataState state;
  state.exists = true;
  state.meta = parse_metadata(response.body, state.invalid_reason);
  co_return state;
}

// ifGenerationMatch=0: the upload succeeds only while no live object has the name. That makes a
// retry safe too; the price is that a retry after a lost success reports AlreadyExists for what is
// in fact our own object — which the reconciler then reads back as a valid metadata.yaml.
asio::awaitable<BackendResult<CreateOutcome>> GcsBackend::create_metadata(std::string body) {
  ApiCall call{"POST",
               base_path_ + "/upload/storage/v1/b/" + enc(options_.bucket) + "/o?uploadType=media&name=" + enc(key_) +
                   "&ifGenerationMatch=0",
               std::move(body), "application/yaml", {}};
  const std::string what = "create of " + metadata_location();
  auto sent = co_await send(std::move(call), true, what);
  if (!sent) co_return Err(sent.error());
  if (sent.value().status == 412) co_return CreateOutcome::AlreadyExists;
  if (!is_success(sent.value())) co_return Err(status_error(sent.value(), what));
  co_return CreateOutcome::Created;
}

// A bucket's metadata needs storage.buckets.get, which roles/storage.objectAdmin (what KubeStash's
// docs grant) lacks; a 403 there is settled by listing the prefix, the permission WipeOut needs.
asio::awaitable<BackendResult<Ok>> GcsBackend::check_access() {
  const std::string what = "access check of bucket `" + options_.bucket + "`";
  ApiCall bucket_call{"GET", base_path_ + "/storage/v1/b/" + enc(options_.bucket), "", "", {}};
  auto sent = co_await send(std::move(bucket_call), true, what);
  if (!sent) co_return Err(sent.error());
  if (is_success(sent.value())) co_return Ok{};
  if (sent.value().status != 403) co_return Err(status_error(sent.value(), what));

  ApiCall list_call{
      "GET", base_path_ + "/storage/v1/b/" + enc(options_.bucket) + "/o?prefix=" + enc(dir_) + "&maxResults=1", "", "", {}};
  auto listed = co_await send(std::move(list_call), true, what);
  if (!listed) co_return Err(listed.error());
  if (!is_success(listed.value())) co_return Err(status_error(listed.value(), what));
  co_return Ok{};
}

asio::awaitable<WipeReport> GcsBackend::wipe(WipePlan plan) {
  ObjectStore& store = *this;
  DeleteProgress progress = delete_progress_;
  auto report = co_await wipe_objects(store, std::move(plan), std::move(progress));
  co_return report;
}

std::string GcsBackend::object_directory() const { return dir_; }

std::string GcsBackend::object_location(const std::string& key) const {
  return "gs://" + options_.bucket + "/" + key;
}

asio::awaitable<BackendResult<MetadataState>> GcsBackend::read_own_metadata() { return read_metadata(); }

bool GcsBackend::bucket_missing(const BackendError& error) const { return error.code == "BucketNotFound"; }

asio::awaitable<BackendResult<ObjectPage>> GcsBackend::list_objects(std::string token) {
  const std::string what = "listing of gs://" + options_.bucket + "/" + dir_;
  std::string target = base_path_ + "/storage/v1/b/" + enc(options_.bucket) + "/o?prefix=" + enc(dir_) +
                       "&fields=" + enc("items(name),nextPageToken");
  if (options_.list_page_size > 0) target += "&maxResults=" + std::to_string(options_.list_page_size);
  if (!token.empty()) target += "&pageToken=" + enc(token);
  ApiCall call{"GET", std::move(target), "", "", {}};
  auto sent = co_await send(std::move(call), true, what);
  if (!sent) co_return Err(sent.error());
  if (!is_success(sent.value())) co_return Err(status_error(sent.value(), what));  // 404: BucketNotFound

  boost::system::error_code ec;
  json::value page = json::parse(sent.value().body, ec);
  if (ec || !page.is_object())
    co_return Err(BackendError{true, "BadReply", "GCS answered the " + what + " with a body that is not JSON", {}});
  ObjectPage out;
  if (const json::value* items = page.as_object().if_contains("items"); items != nullptr && items->is_array()) {
    for (const json::value& item : items->as_array()) {
      const json::value* name = item.is_object() ? item.as_object().if_contains("name") : nullptr;
      if (name != nullptr && name->is_string()) out.keys.emplace_back(name->as_string());
    }
  }
  if (const json::value* next = page.as_object().if_contains("nextPageToken"); next != nullptr && next->is_string())
    out.next = std::string(next->as_string());
  co_return out;
}

// alt=media with a Range: at most limit + 1 bytes (416: an empty object, it has no byte 0).
asio::awaitable<BackendResult<std::optional<std::string>>> GcsBackend::read_object(std::string key,
                                                                                     std::size_t limit) {
  const std::string what = "read of gs://" + options_.bucket + "/" + key;
  ApiCall call{"GET", object_path(key) + "?alt=media", "", "", {{"Range", "bytes=0-" + std::to_string(limit)}}};
  auto sent = co_await send(std::move(call), true, what);
  if (!sent) co_return Err(sent.error());
  http::Response& response = sent.value();
  if (is_success(response)) co_return std::optional<std::string>(std::move(response.body));
  if (response.status == 416) co_return std::optional<std::string>(std::string());
  if (response.status == 404 && !gcs_bucket_missing(response)) co_return std::optional<std::string>();
  co_return Err(status_error(response, what));
}

asio::awaitable<BackendResult<bool>> GcsBackend::delete_object(std::string name) {
  const std::string what = "delete of gs://" + options_.bucket + "/" + name;
  ApiCall call{"DELETE", object_path(name), "", "", {}};
  auto sent = co_await send(std::move(call), true, what);
  if (!sent) co_return Err(sent.error());
  if (sent.value().status == 404) co_return false;  // gone already (a retried delete, a concurrent WipeOut)
  if (!is_success(sent.value())) co_return Err(status_error(sent.value(), what));
  co_return true;
}

// Workers take names from the shared list until it is empty or one delete failed; the caller waits
// on the run's timer, which the last worker to finish cancels.
// What was deleted is counted even when a delete failed.
asio::awaitable<DeleteOutcome> GcsBackend::delete_objects(std::vector<std::string> names) {
  if (names.empty()) co_return DeleteOutcome{};
  auto executor = co_await asio::this_coro::executor;
  std::size_t limit = options_.max_connections > 0 ? std::min(options_.max_connections, kDeleteWidth) : kDeleteWidth;
  auto run = std::make_shared<DeleteRun>(std::move(names), executor);
  run->running = std::min(limit, run->names.size());
  for (std::size_t i = 0, n = run->running; i < n; ++i) {
    auto finished = [run](std::exception_ptr e) {
      if (e && !run->error) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          run->error = BackendError{true, "InternalError", std::string("GCS delete failed: ") + x.what(), {}};
        } catch (...) {
          run->error = BackendError{true, "InternalError", "GCS delete failed", {}};
        }
      }
      if (--run->running == 0) run->done.cancel();
    };
    asio::co_spawn(executor, delete_worker(run), std::move(finished));
  }
  while (run->running > 0) co_await run->done.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return DeleteOutcome{run->deleted, run->error};
}

asio::awaitable<void> GcsBackend::delete_worker(std::shared_ptr<DeleteRun> run) {
  while (run->next < run->names.size() && !run->error) {
    std::string name = run->names[run->next++];
    auto deleted = co_await delete_object(std::move(name));
    if (!deleted) {
      if (!run->error) run->error = deleted.error();
    } else if (deleted.value()) {
      ++run->deleted;
    }
  }
}

}  // namespace stowage::storage
