// AzureBackend: Blob REST calls (Get/Put/Delete Blob, List Blobs, Get Container Properties) on
// the shared HTTP client, with the error mapping users act on. See azure_backend.hpp.
#include "storage/azure_backend.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "storage/azure_credentials.hpp"
#include "storage/azure_xml.hpp"
#include "storage/metadata.hpp"
#include "storage/object_wipe.hpp"

namespace stowage::storage {
namespace asio = boost::asio;
namespace {

constexpr std::size_t kDefaultDeleteParallelism = 8;

BackendError permanent(std::string code, std::string message) {
  return BackendError{false, std::move(code), std::move(message), std::nullopt};
}

// Credentials refused. Other 403s (AccountIsDisabled, InsufficientAccountPermissions) keep their
// own code and message.
bool is_auth_failure(int status, const std::string& code) {
  if (code.empty()) return status == 401 || status == 403;
  return code == "AuthenticationFailed" || code == "NoAuthenticationInformation" ||
         code == "InvalidAuthenticationInfo" || code.rfind("Authorization", 0) == 0;
}

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

// Azure's container naming rules; "$root", "$web" and "$logs" are the service's own containers.
bool valid_container_name(const std::string& name) {
  if (name == "$root" || name == "$web" || name == "$logs") return true;
  if (name.size() < 3 || name.size() > 63 || name.front() == '-' || name.back() == '-') return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c == '-' && name[i - 1] != '-');
    if (!ok) return false;
  }
  return true;
}

std::string azure_code(const http::Response& response) {
  std::string code = response.header("x-ms-error-code");
  return code.empty() ? azure::parse_error_body(response.body).code : code;
}

// The problem in the client's "TLS certificate of X is not trusted (PROBLEM): ..." message.
std::string tls_problem(const std::string& message) {
  auto open = message.find(" is not trusted (");
  if (open == std::string::npos) return {};
  open += 17;
  auto close = message.find("):", open);
  return close == std::string::npos ? std::string() : message.substr(open, close - open);
}

}  // namespace

struct AzureBackend::DeleteRun {
  explicit DeleteRun(asio::any_io_executor executor) : done(executor, asio::steady_timer::time_point::max()) {}
  std::vector<std::string> names;
  std::size_t next = 0;
  std::size_t deleted = 0;
  std::size_t running = 0;
  std::optional<BackendError> error;
  asio::steady_timer done;  // cancelled when the last worker ends
};

AzureBackend::AzureBackend(http::Client& client, AzureOptions options) : client_(client), options_(std::move(options)) {
  resolve();
}

// Works out endpoint, account and credential from the options; records the first problem.
void AzureBackend::resolve() {
  key_ = metadata_key(options_.prefix);
  directory_ = key_.substr(0, key_.size() - kMetadataFile.size());
  account_ = options_.storage_account;
  auto invalid = [this](std::string message) {
    if (!config_error_) config_error_ = permanent("InvalidConfiguration", std::move(message));
  };

  std::string account_key = options_.account_key;
  std::string sas = options_.sas_token;
  if (!options_.connection_string.empty()) {
    auto parsed = azure::parse_connection_string(options_.connection_string);
    if (!parsed.ok()) {
      invalid(parsed.error());  // names the key and the part, never a value
    } else {
      const auto& cs = parsed.value();
      endpoint_ = cs.blob_endpoint;
      if (!cs.account_name.empty()) {
        if (!account_.empty() && account_ != cs.account_name)
          invalid("the AccountName of AZURE_STORAGE_CONNECTION_STRING is not spec.storage.azure.storageAccount `" +
                  account_ + "`: make the two agree (or leave storageAccount empty)");
        account_ = cs.account_name;
      }
      if (!cs.account_key.empty() || !cs.sas_token.empty()) {
        account_key = cs.account_key;
        sas = cs.sas_token;
      }
    }
  } else if (account_.empty()) {
    invalid("spec.storage.azure.storageAccount is empty");
  }
  if (endpoint_.empty() && !options_.endpoint.empty()) {
    endpoint_ = options_.endpoint;
    for (auto at = endpoint_.find("{account}"); at != std::string::npos; at = endpoint_.find("{account}", at))
      endpoint_.replace(at, 9, account_), at += account_.size();
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
  }
  if (endpoint_.empty() && !account_.empty()) endpoint_ = "https://" + account_ + ".blob.core.windows.net";

  if (!endpoint_.empty()) {
    auto url = http::Url::parse(endpoint_);
    if (!url.ok()) {
      invalid("Azure blob endpoint: " + url.error());
    } else {
      origin_ = url.value();
      base_path_ = origin_.path;
      while (!base_path_.empty() && base_path_.back() == '/') base_path_.pop_back();
      if (account_.empty()) {  // path-style: the first segment; host-style: the first label
        std::string path = trim_slashes(base_path_);
        account_ = !path.empty() ? path.substr(0, path.find('/')) : origin_.host.substr(0, origin_.host.find('.'));
      }
    }
  }
  if (options_.container.empty())
    invalid("spec.storage.azure.container is empty");
  else if (!valid_container_name(options_.container))
    invalid("spec.storage.azure.container `" + options_.container +
            "` is not a valid container name: use 3-63 lower-case letters, digits and single hyphens, starting and "
            "ending with a letter or digit");

  if (!account_key.empty()) {
    auto key = azure::SharedKey::make(account_, account_key);
    if (key.ok())
      credential_ = std::move(key.value());
    else
      invalid("AZURE_ACCOUNT_KEY: " + key.error());
  } else if (!sas.empty()) {
    auto token = azure::normalize_sas_token(sas);
    if (token.ok())
      credential_ = std::move(token.value());
    else
      invalid("AZURE_SAS_TOKEN: " + token.error());
  } else if (options_.token_provider) {
    credential_ = Bearer{};
  }
}

std::string AzureBackend::identity() const {
  std::string dir = trim_slashes(directory_);
  return "azure:" + endpoint_ + "/" + options_.container + (dir.empty() ? "" : "/" + dir);
}

std::string AzureBackend::metadata_location() const {
  return "azure://" + account_ + "/" + options_.container + "/" + key_;
}

std::string AzureBackend::container_target() const {
  return base_path_ + "/" + http::uri_encode(options_.container, false);
}

std::string AzureBackend::blob_target(const std::string& key) const {
  return container_target() + "/" + http::uri_encode(key, true);
}

asio::awaitable<BackendResult<http::Response>> AzureBackend::send(
    std::string method, std::string target, std::vector<std::pair<std::string, std::string>> headers,
    std::string body) {
  std::string authorization;
  if (std::holds_alternative<Bearer>(credential_)) {
    auto token = co_await options_.token_provider->token();
    if (!token.ok()) co_return Err(std::move(token.error()));
    bearer_ = std::move(token.value());
    authorization = "Bearer " + bearer_;
  }
  // Built again for every attempt: x-ms-date, and so the signature, must be fresh.
  auto build = [this, method = std::move(method), target = std::move(target), headers = std::move(headers),
                body = std::move(body), authorization = std::move(authorization)]() {
    http::Request request{method, target, headers, body};
    request.headers.emplace_back("x-ms-date", azure::rfc1123_date(std::chrono::system_clock::now()));
    request.headers.emplace_back("x-ms-version", std::string(azure::kApiVersion));
    if (const auto* key = std::get_if<azure::SharedKey>(&credential_)) key->sign(request);
    if (const auto* sas = std::get_if<azure::SasToken>(&credential_)) azure::apply_sas(request, sas->query);
    if (!authorization.empty()) request.headers.emplace_back("Authorization", authorization);
    return request;
  };
  std::function<http::Request()> make_request = build;
  // Every Azure call made here is idempotent or guarded by If-None-Match: *.
  auto result = co_await send_with_retries(client_, origin_, options_.tls, make_request, true,
                                           options_.max_connections, options_.retry);
  if (!result.ok()) co_return Err(error_from(result.error()));
  co_return std::move(result.value());
}

BackendError AzureBackend::error_from(const http::HttpError& error) const {
  using Kind = http::HttpError::Kind;
  if (error.kind == Kind::TlsVerify) {
    std::string problem = tls_problem(error.message);
    return permanent("TLSVerificationFailed", "TLS certificate of " + endpoint_ + " is not trusted" +
                                                  (problem.empty() ? "" : " (" + problem + ")") +
                                                  ": put the CA that signed it in CA_CERT_DATA of the storage secret");
  }
  static constexpr const char* kCodes[] = {"ResolveFailed",   "ConnectFailed",    "TLSError",
                                           "TLSVerificationFailed", "Timeout", "ConnectionReset",
                                           "ProtocolError",   "ResponseTooLarge", "InvalidRequest"};
  static_assert(std::size(kCodes) == static_cast<std::size_t>(Kind::InvalidRequest) + 1, "one code per kind");
  if (!error.transient()) return permanent(kCodes[static_cast<int>(error.kind)], error.message);
  std::string hint = error.kind == Kind::Resolve ? " (check the storage account name `" + account_ + "`)" : "";
  return BackendError{true, kCodes[static_cast<int>(error.kind)],
                      "Azure endpoint " + endpoint_ + ": " + error.message + hint, std::nullopt};
}

BackendError AzureBackend::error_from(const http::Response& response, const std::string& doing) const {
  std::string code = azure_code(response);
  std::string request_id = response.header("x-ms-request-id");
  std::string detail = "HTTP " + std::to_string(response.status) + (code.empty() ? "" : " " + code) +
                       (request_id.empty() ? "" : ", request id " + request_id);
  if (is_auth_failure(response.status, code)) {
    std::string out_code = code.empty() ? "AuthenticationFailed" : code;
    if (std::holds_alternative<azure::SharedKey>(credential_))
      return permanent(out_code, "signature rejected by " + endpoint_ + " (" + detail + ", " + doing +
                                     "): check AZURE_ACCOUNT_KEY (or the SAS token's permissions and expiry)");
    if (std::holds_alternative<Bearer>(credential_)) {
      // The token itself refused (401, or AuthenticationFailed / InvalidAuthenticationInfo: expired,
      // revoked, another audience): a fresh one may do. AuthorizationPermissionMismatch is a missing role.
      const bool token_refused =
          response.status == 401 || code == "AuthenticationFailed" || code == "InvalidAuthenticationInfo";
      if (token_refused) options_.token_provider->rejected(bearer_);
      return permanent(out_code, "token from " + options_.token_provider->source_name() + " refused by " + endpoint_ +
                                     " (" + detail + ", " + doing + "): " +
                                     (token_refused ? "it is fetched again at the next attempt"
                                                    : "give the identity a data role on the account or container "
                                                      "(Storage Blob Data Contributor)"));
    }
    if (std::holds_alternative<azure::SasToken>(credential_))
      return permanent(out_code, "SAS token rejected by " + endpoint_ + " (" + detail + ", " + doing +
                                     "): check the SAS token's permissions (read, create, write, list, delete) "
                                     "and expiry, and that it is for account `" + account_ + "`");
    return permanent(out_code, endpoint_ + " refused a request without credentials (" + detail + ", " + doing +
                                   "): set AZURE_ACCOUNT_KEY or AZURE_SAS_TOKEN in the storage secret");
  }
  if (code == "ContainerNotFound")
    return permanent(code, "Azure container `" + options_.container + "` does not exist in account `" + account_ +
                               "` (" + endpoint_ + ", " + detail + "): create it or fix spec.storage.azure.container");
  std::string message = azure::parse_error_body(response.body).message;
  if (code == "ResourceNotFound" || code == "AccountIsDisabled")
    message += (message.empty() ? "" : " ") + std::string("(check the storage account `") + account_ + "`)";
  bool transient = transient_status(response.status);
  return BackendError{transient, code.empty() ? "HTTP" + std::to_string(response.status) : code,
                      "Azure endpoint " + endpoint_ + " answered " + detail + " while " + doing +
                          (message.empty() ? "" : ": " + message),
                      transient ? retry_after(response) : std::nullopt};
}

asio::awaitable<BackendResult<MetadataState>> AzureBackend::read_metadata() {
  if (config_error_) co_return Err(*config_error_);
  auto result = co_await send("GET", blob_target(key_), {}, {});
  if (!result.ok()) co_return Err(std::move(result.error()));
  const auto& response = result.value();
  if (response.status == 404) {
    std::string code = azure_code(response);
    if (code == "BlobNotFound" || code.empty()) co_return MetadataState{};
  }
  if (response.status != 200) co_return Err(error_from(response, "reading " + metadata_location()));
  MetadataState state;
  state.exists = true;
  state.meta = parse_metadata(response.body, state.invalid_reason);
  co_return state;
}

asio::awaitable<BackendResult<CreateOutcome>> AzureBackend::create_metadata(std::string body) {
  if (config_error_) co_return Err(*config_error_);
  std::vector<std::pair<std::string, std::string>> headers = {
      {"x-ms-blob-type", "BlockBlob"}, {"Content-Type", "application/yaml"}, {"If-None-Match", "*"}};
  auto result = co_await send("PUT", blob_target(key_), std::move(headers), std::move(body));
  if (!result.ok()) co_return Err(std::move(result.error()));
  const auto& response = result.value();
  if (response.status == 201 || response.status == 200) co_return CreateOutcome::Created;
  std::string code = azure_code(response);
  if (response.status == 412 || (response.status == 409 && code == "BlobAlreadyExists"))
    co_return CreateOutcome::AlreadyExists;
  co_return Err(error_from(response, "writing " + metadata_location()));
}

asio::awaitable<BackendResult<bool>> AzureBackend::delete_blob(const std::string& name) {
  std::vector<std::pair<std::string, std::string>> headers = {{"x-ms-delete-snapshots", "include"}};
  auto result = co_await send("DELETE", blob_target(name), std::move(headers), {});
  if (!result.ok()) co_return Err(std::move(result.error()));
  const auto& response = result.value();
  if (response.status == 202 || response.status == 200) co_return true;
  if (response.status == 404 && azure_code(response) == "BlobNotFound") co_return false;
  co_return Err(error_from(response, "deleting azure://" + account_ + "/" + options_.container + "/" + name));
}

asio::awaitable<void> AzureBackend::delete_worker(std::shared_ptr<DeleteRun> run) {
  while (run->next < run->names.size() && !run->error) {
    std::string name = run->names[run->next++];  // a copy: nothing in run is held across the await
    auto deleted = co_await delete_blob(name);
    if (!deleted.ok()) {
      if (!run->error) run->error = std::move(deleted.error());
    } else if (deleted.value()) {
      ++run->deleted;
    }
  }
}

asio::awaitable<WipeReport> AzureBackend::wipe(WipePlan plan) {
  ObjectStore& store = *this;
  DeleteProgress progress = delete_progress_;
  auto report = co_await wipe_objects(store, std::move(plan), std::move(progress));
  co_return report;
}

std::string AzureBackend::object_directory() const { return directory_; }

std::string AzureBackend::object_location(const std::string& key) const {
  return "azure://" + account_ + "/" + options_.container + "/" + key;
}

asio::awaitable<BackendResult<MetadataState>> AzureBackend::read_own_metadata() { return read_metadata(); }

bool AzureBackend::bucket_missing(const BackendError& error) const { return error.code == "ContainerNotFound"; }

asio::awaitable<BackendResult<ObjectPage>> AzureBackend::list_objects(std::string marker) {
  if (config_error_) co_return Err(*config_error_);
  std::string target = container_target() + "?restype=container&comp=list&prefix=" +
                       http::uri_encode(directory_, false);
  if (!marker.empty()) target += "&marker=" + http::uri_encode(marker, false);
  if (options_.list_page_size) target += "&maxresults=" + std::to_string(options_.list_page_size);
  auto listed = co_await send("GET", std::move(target), {}, {});
  if (!listed.ok()) co_return Err(std::move(listed.error()));
  const auto& response = listed.value();
  if (response.status != 200)  // 404 ContainerNotFound: bucket_missing()
    co_return Err(error_from(response, "listing azure://" + account_ + "/" + options_.container + "/" + directory_));
  auto page = azure::parse_blob_list(response.body);
  if (!page.ok()) co_return Err(permanent("InvalidResponse", "Azure endpoint " + endpoint_ + ": " + page.error()));
  if (!page.value().next_marker.empty() && page.value().next_marker == marker)
    co_return Err(
        permanent("InvalidResponse", "Azure endpoint " + endpoint_ + " returned the same List Blobs marker twice"));
  co_return ObjectPage{std::move(page.value().names), std::move(page.value().next_marker)};
}

// x-ms-range: at most limit + 1 bytes (416: an empty blob, it has no byte 0).
asio::awaitable<BackendResult<std::optional<std::string>>> AzureBackend::read_object(std::string key,
                                                                                       std::size_t limit) {
  if (config_error_) co_return Err(*config_error_);
  std::vector<std::pair<std::string, std::string>> headers = {{"x-ms-range", "bytes=0-" + std::to_string(limit)}};
  auto result = co_await send("GET", blob_target(key), std::move(headers), {});
  if (!result.ok()) co_return Err(std::move(result.error()));
  auto& response = result.value();
  if (response.status == 200 || response.status == 206) co_return std::optional<std::string>(std::move(response.body));
  if (response.status == 416) co_return std::optional<std::string>(std::string());
  if (response.status == 404 && azure_code(response) != "ContainerNotFound") co_return std::optional<std::string>();
  co_return Err(error_from(response, "reading azure://" + account_ + "/" + options_.container + "/" + key));
}

// One page's blobs, at most max_connections (default 8) deletes in flight; what was deleted is
// counted even when a delete failed.
asio::awaitable<DeleteOutcome> AzureBackend::delete_objects(std::vector<std::string> names) {
  if (config_error_) co_return DeleteOutcome{0, *config_error_};
  auto executor = co_await asio::this_coro::executor;
  const std::size_t parallelism = options_.max_connections ? options_.max_connections : kDefaultDeleteParallelism;
  auto run = std::make_shared<DeleteRun>(executor);
  run->names = std::move(names);
  std::size_t workers = std::min(parallelism, run->names.size());
  for (std::size_t i = 0; i < workers; ++i) {
    ++run->running;
    auto on_done = [run](std::exception_ptr failure) {
      if (failure && !run->error)
        run->error = BackendError{true, "InternalError", "Azure delete worker failed unexpectedly", std::nullopt};
      if (--run->running == 0) run->done.cancel();
    };
    asio::co_spawn(executor, delete_worker(run), on_done);
  }
  while (run->running > 0) co_await run->done.async_wait(asio::as_tuple(asio::use_awaitable));
  co_return DeleteOutcome{run->deleted, run->error};
}

asio::awaitable<BackendResult<Ok>> AzureBackend::check_access() {
  if (config_error_) co_return Err(*config_error_);
  bool sas = std::holds_alternative<azure::SasToken>(credential_);
  std::string target = container_target() + (sas ? "?restype=container&comp=list&maxresults=1&prefix=" +
                                                       http::uri_encode(directory_, false)
                                                 : "?restype=container");
  auto result = co_await send("GET", std::move(target), {}, {});
  if (!result.ok()) co_return Err(std::move(result.error()));
  if (result.value().status != 200)
    co_return Err(error_from(result.value(), "reading container `" + options_.container + "`"));
  co_return Ok{};
}

}  // namespace stowage::storage
