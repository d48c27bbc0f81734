// GCS authentication, the pure parts (see gcs_auth.hpp). OpenSSL EVP signs; Boost.JSON parses.
// Error texts are built from field names and fixed words only: the key file's contents never
// reach a message.
#include "storage/gcs_auth.hpp"

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <utility>

#include "common/crypto.hpp"
#include "common/time_format.hpp"
#include "common/url.hpp"

namespace stowage::storage::gcs {
namespace json = boost::json;
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

// Loads a PEM private key; a passphrase callback that refuses keeps OpenSSL from prompting.
Pkey load_private_key(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  auto no_passphrase = [](char*, int, int, void*) -> int { return 0; };
  return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
}

AuthError source_error(std::string_view source, std::string_view what) {
  return {std::string(source) + ": " + std::string(what)};
}

// A required string field, or an error naming it (and `source`, where the JSON came from).
Result<std::string, AuthError> string_field(const json::object& o, std::string_view name, bool required,
                                            std::string_view source) {
  const json::value* v = o.if_contains(name);
  if (v == nullptr || v->is_null()) {
    if (!required) return std::string();
    return Err(source_error(source, "field `" + std::string(name) + "` is missing"));
  }
  if (!v->is_string()) return Err(source_error(source, "field `" + std::string(name) + "` is not a string"));
  std::string s(v->as_string());
  if (s.empty() && required) return Err(source_error(source, "field `" + std::string(name) + "` is empty"));
  return s;
}

// A value that reaches a request (a header, a form field, a URL): no control character, bounded;
// a URL also without a space and http(s). The message names the field, never the value.
std::optional<AuthError> request_field_problem(std::string_view source, std::string_view name,
                                               const std::string& value, bool is_url) {
  http::ValueProblem bad = http::check_header_value(value, kMaxKeyFieldBytes);
  if (!bad && is_url) bad = http::check_request_line_part(value);
  if (bad) return source_error(source, "field `" + std::string(name) + "` " + bad.describe());
  if (!is_url) return std::nullopt;
  auto parsed = url::parse(value, "");
  if (!parsed) return source_error(source, "field `" + std::string(name) + "` " + parsed.error());
  if (parsed.value().scheme != "https" && parsed.value().scheme != "http")
    return source_error(source, "field `" + std::string(name) + "` is not an http(s) URL");
  return std::nullopt;
}

// A server's text made fit for a message: cut to `limit`, control characters (a line break that
// would forge a log line) turned into spaces. Token servers are named inside Secrets, so this text
// may come from anyone.
std::string cut(std::string s, std::size_t limit = 300) {
  if (s.size() > limit) s = s.substr(0, limit) + "...";
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return s;
}

std::optional<json::object> parse_object(std::string_view body) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

}  // namespace

Result<ServiceAccountKey, AuthError> parse_service_account_key(std::string_view text, std::string_view source) {
  auto key_error = [source](std::string_view what) { return source_error(source, what); };
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return Err(key_error("not valid JSON (" + ec.message() + ")"));
  if (!root.is_object()) return Err(key_error("not a JSON object"));
  const json::object& o = root.as_object();

  auto type = string_field(o, "type", true, source);
  if (!type) return Err(type.error());
  if (type.value() != "service_account")  // not quoted: nothing in the Secret is
    return Err(
        key_error("field `type` is not `service_account` (use a service-account key from the Cloud Console or "
                  "`gcloud iam service-accounts keys create`)"));

  ServiceAccountKey key;
  auto email = string_field(o, "client_email", true, source);
  if (!email) return Err(email.error());
  key.client_email = std::move(email.value());
  auto pem = string_field(o, "private_key", true, source);
  if (!pem) return Err(pem.error());
  key.private_key = std::move(pem.value());
  auto id = string_field(o, "private_key_id", true, source);
  if (!id) return Err(id.error());
  key.private_key_id = std::move(id.value());
  auto uri = string_field(o, "token_uri", false, source);
  if (!uri) return Err(uri.error());
  key.token_uri = uri.value().empty() ? std::string(kDefaultTokenUri) : std::move(uri.value());

  // These reach the token request (the JWT, the URL and its Host header).
  for (const auto& [name, value] : {std::pair<std::string_view, const std::string*>{"client_email", &key.client_email},
                                    {"private_key_id", &key.private_key_id},
                                    {"token_uri", &key.token_uri}}) {
    http::ValueProblem bad = http::check_header_value(*value, kMaxKeyFieldBytes);
    if (!bad && name == "token_uri") bad = http::check_request_line_part(*value);  // a URL: no space either
    if (bad) return Err(key_error("field `" + std::string(name) + "` " + bad.describe()));
  }
  // Split as every endpoint is (common/url.hpp: schemes in any case); the message never quotes it.
  auto token_uri = url::parse(key.token_uri, "");
  if (!token_uri) return Err(key_error("field `token_uri` " + token_uri.error()));
  if (token_uri.value().scheme != "https" && token_uri.value().scheme != "http")
    return Err(key_error("field `token_uri` is not an http(s) URL"));
  Pkey pkey = load_private_key(key.private_key);
  if (!pkey || EVP_PKEY_get_base_id(pkey.get()) != EVP_PKEY_RSA)
    return Err(key_error("field `private_key` is not a PEM RSA private key"));
  return key;
}

std::string base64url(std::string_view bytes) {
  std::string out = crypto::base64_encode(bytes);
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+')
      c = '-';
    else if (c == '/')
      c = '_';
  }
  return out;
}

Result<std::string, AuthError> make_jwt(const ServiceAccountKey& key, std::int64_t issued_at) {
  json::object header{{"alg", "RS256"}, {"typ", "JWT"}, {"kid", key.private_key_id}};
  json::object claims{{"iss", key.client_email},
                      {"scope", kScope},
                      {"aud", key.token_uri},
                      {"iat", issued_at},
                      {"exp", issued_at + kJwtLifetimeSeconds}};
  std::string signing_input = base64url(json::serialize(header)) + "." + base64url(json::serialize(claims));

  Pkey pkey = load_private_key(key.private_key);
  if (!pkey) return Err(AuthError{"cannot load the service account's private key"});
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::size_t size = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &size, reinterpret_cast<const unsigned char*>(signing_input.data()),
                     signing_input.size()) != 1)
    return Err(AuthError{"cannot sign the token request with the service account's private key"});
  std::string signature(size, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &size,
                     reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) != 1)
    return Err(AuthError{"cannot sign the token request with the service account's private key"});
  signature.resize(size);
  return signing_input + "." + base64url(signature);
}

// application/x-www-form-urlencoded: the grant type's colons are percent-encoded; a JWT is
// base64url segments joined by '.', all unreserved characters, so the assertion goes as it is.
std::string token_request_body(std::string_view jwt) {
  return "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=" + std::string(jwt);
}

Result<TokenReply, AuthError> parse_token_reply(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return Err(AuthError{"the token reply is not a JSON object"});
  const json::value* token = o->if_contains("access_token");
  if (token == nullptr || !token->is_string() || token->as_string().empty())
    return Err(AuthError{"the token reply has no access_token"});
  const json::value* type = o->if_contains("token_type");
  if (type != nullptr && type->is_string() && type->as_string() != "Bearer" && type->as_string() != "bearer")
    return Err(AuthError{"the token reply's token_type is not Bearer"});
  TokenReply reply;
  reply.access_token = std::string(token->as_string());
  // Capped at a day (Google's tokens live an hour) before any conversion: the token cache adds it to
  // the steady clock in nanoseconds, and a token server named in a Secret may answer 4e19.
  constexpr std::int64_t kMaxExpiresIn = 86'400;
  const json::value* expires = o->if_contains("expires_in");
  if (expires != nullptr && expires->is_int64())
    reply.expires_in = std::chrono::seconds(std::min(expires->as_int64(), kMaxExpiresIn));
  else if (expires != nullptr && expires->is_uint64())
    reply.expires_in = std::chrono::seconds(kMaxExpiresIn);  // beyond INT64_MAX
  else if (expires != nullptr && expires->is_double())
    reply.expires_in = std::chrono::seconds(static_cast<std::int64_t>(
        std::clamp(expires->as_double(), 0.0, static_cast<double>(kMaxExpiresIn))));
  else
    return Err(AuthError{"the token reply has no numeric expires_in"});
  if (reply.expires_in.count() <= 0) return Err(AuthError{"the token reply's expires_in is not positive"});
  return reply;
}

http::ValueProblem access_token_problem(std::string_view token) {
  return http::check_bearer_token(token, kMaxAccessTokenBytes);
}

std::optional<OAuthError> parse_oauth_error(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return std::nullopt;
  const json::value* error = o->if_contains("error");
  if (error == nullptr || !error->is_string()) return std::nullopt;
  OAuthError out{std::string(error->as_string()), {}};
  const json::value* description = o->if_contains("error_description");
  if (description != nullptr && description->is_string()) out.description = cut(std::string(description->as_string()));
  out.error = cut(std::move(out.error), 80);
  return out;
}

std::string json_api_error_message(std::string_view body) {
  auto o = parse_object(body);
  if (!o) return {};
  const json::value* error = o->if_contains("error");
  if (error == nullptr || !error->is_object()) return {};
  const json::object& e = error->as_object();
  if (const json::value* m = e.if_contains("message"); m != nullptr && m->is_string() && !m->as_string().empty())
    return cut(std::string(m->as_string()));
  if (const json::value* errors = e.if_contains("errors"); errors != nullptr && errors->is_array()) {
    for (const json::value& item : errors->as_array()) {
      if (!item.is_object()) continue;
      if (const json::value* r = item.as_object().if_contains("reason"); r != nullptr && r->is_string())
        return cut(std::string(r->as_string()));
    }
  }
  return {};
}

// ---- GOOGLE_APPLICATION_CREDENTIALS ----

namespace {

constexpr std::string_view kDefaultStsUrl = "https://sts.googleapis.com/v1/token";

Result<ExternalAccount, AuthError> parse_external_account(const json::object& o, std::string_view source) {
  ExternalAccount account;
  struct Field {
    std::string_view name;
    std::string* out;
    bool required, is_url;
  };
  const Field fields[] = {{"audience", &account.audience, true, false},
                          {"subject_token_type", &account.subject_token_type, true, false},
                          {"token_url", &account.token_url, false, true},
                          {"service_account_impersonation_url", &account.impersonation_url, false, true}};
  for (const Field& f : fields) {
    auto v = string_field(o, f.name, f.required, source);
    if (!v) return Err(v.error());
    *f.out = std::move(v.value());
    if (f.out->empty()) continue;
    if (auto bad = request_field_problem(source, f.name, *f.out, f.is_url)) return Err(*bad);
  }
  if (account.token_url.empty()) account.token_url = std::string(kDefaultStsUrl);

  const json::value* cs = o.if_contains("credential_source");
  if (cs == nullptr || !cs->is_object()) return Err(source_error(source, "field `credential_source` is not an object"));
  const json::object& c = cs->as_object();
  if (c.contains("environment_id"))
    return Err(source_error(source, "an AWS-sourced `credential_source` is not supported: use `credential_source.file`"));
  if (c.contains("executable"))
    return Err(source_error(source, "an executable `credential_source` is not supported: use `credential_source.file`"));
  if (c.contains("url") && !c.contains("file"))
    return Err(source_error(source, "a URL-sourced `credential_source` is not supported: use `credential_source.file`"));
  auto file = string_field(c, "file", true, source);
  if (!file) return Err(AuthError{source_error(source, "`credential_source.file` is missing or not a string").message});
  account.subject_token_file = std::move(file.value());
  if (account.subject_token_file.size() > kMaxKeyFieldBytes ||
      account.subject_token_file.find('\0') != std::string::npos)
    return Err(source_error(source, "field `credential_source.file` is not a usable path"));

  if (const json::value* format = c.if_contains("format"); format != nullptr && !format->is_null()) {
    if (!format->is_object()) return Err(source_error(source, "field `credential_source.format` is not an object"));
    const json::object& f = format->as_object();
    auto type = string_field(f, "type", false, source);
    if (!type) return Err(type.error());
    if (type.value() == "json") {
      auto name = string_field(f, "subject_token_field_name", true, source);
      if (!name)
        return Err(source_error(source, "`credential_source.format.subject_token_field_name` is required for json"));
      account.subject_token_field = std::move(name.value());
      if (account.subject_token_field.size() > kMaxKeyFieldBytes)
        return Err(source_error(source, "field `credential_source.format.subject_token_field_name` is too long"));
    } else if (!type.value().empty() && type.value() != "text") {
      return Err(source_error(source, "field `credential_source.format.type` is neither `text` nor `json`"));
    }
  }
  return account;
}

}  // namespace

Result<ApplicationCredentials, AuthError> parse_application_credentials(std::string_view text,
                                                                        std::string_view source) {
  if (text.size() > kMaxCredentialsFileBytes)
    return Err(source_error(source, "larger than " + std::to_string(kMaxCredentialsFileBytes / 1024) +
                                        " KiB: not a credentials file"));
  boost::system::error_code ec;
  json::value root = json::parse(text, ec);
  if (ec) return Err(source_error(source, "not valid JSON (" + ec.message() + ")"));
  if (!root.is_object()) return Err(source_error(source, "not a JSON object"));
  auto type = string_field(root.as_object(), "type", true, source);
  if (!type) return Err(type.error());
  if (type.value() == "service_account") {
    auto key = parse_service_account_key(text, source);
    if (!key) return Err(key.error());
    return ApplicationCredentials(std::move(key.value()));
  }
  if (type.value() == "external_account") {
    auto account = parse_external_account(root.as_object(), source);
    if (!account) return Err(account.error());
    return ApplicationCredentials(std::move(account.value()));
  }
  return Err(source_error(source, "field `type` is neither `service_account` nor `external_account` (user "
                                  "credentials from `gcloud auth application-default login` are not supported)"));
}

Result<std::string, AuthError> subject_token_from(const ExternalAccount& account, std::string_view content) {
  const std::string where = "the subject token file " + account.subject_token_file;
  std::string token;
  if (account.subject_token_field.empty()) {
    token = std::string(content);
  } else {
    auto o = parse_object(content);
    if (!o) return Err(AuthError{where + " is not a JSON object (credential_source.format is json)"});
    const json::value* v = o->if_contains(account.subject_token_field);
    if (v == nullptr || !v->is_string())
      return Err(AuthError{where + " has no string field `" + cut(account.subject_token_field, 80) + "`"});
    token = std::string(v->as_string());
  }
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) token.pop_back();
  if (token.empty()) return Err(AuthError{where + " holds no token"});
  return token;
}

std::string sts_request_body(const ExternalAccount& account, std::string_view subject_token) {
  auto enc = [](std::string_view v) { return http::uri_encode(v, false); };
  return "grant_type=" + enc(kTokenExchangeGrant) + "&audience=" + enc(account.audience) +
         "&scope=" + enc(kCloudPlatformScope) + "&requested_token_type=" + enc(kAccessTokenType) +
         "&subject_token=" + enc(subject_token) + "&subject_token_type=" + enc(account.subject_token_type);
}

std::string impersonation_request_body() {
  return json::serialize(json::object{{"scope", json::array{json::string(kScope)}}, {"lifetime", "3600s"}});
}

Result<TokenReply, AuthError> parse_impersonation_reply(std::string_view body,
                                                        std::chrono::system_clock::time_point now) {
  auto o = parse_object(body);
  if (!o) return Err(AuthError{"the generateAccessToken reply is not a JSON object"});
  const json::value* token = o->if_contains("accessToken");
  if (token == nullptr || !token->is_string() || token->as_string().empty())
    return Err(AuthError{"the generateAccessToken reply has no accessToken"});
  const json::value* expire = o->if_contains("expireTime");
  if (expire == nullptr || !expire->is_string())
    return Err(AuthError{"the generateAccessToken reply has no expireTime"});
  auto at = parse_rfc3339(std::string_view(expire->as_string()));
  if (!at) return Err(AuthError{"the generateAccessToken reply's expireTime is not an RFC 3339 time"});
  constexpr auto kMaxLifetime = std::chrono::hours(24);  // as parse_token_reply caps expires_in
  auto left = *at <= now ? std::chrono::seconds(0)
                         : std::chrono::duration_cast<std::chrono::seconds>(std::min<std::chrono::system_clock::duration>(
                               *at - now, kMaxLifetime));
  if (left.count() <= 0) return Err(AuthError{"the generateAccessToken reply's token has already expired"});
  return TokenReply{std::string(token->as_string()), left};
}

std::string metadata_origin(std::string_view host) {
  return "http://" + std::string(host.empty() ? kDefaultMetadataHost : host);
}

http::Request metadata_token_request() {
  http::Request request;
  request.method = "GET";
  request.target = std::string(kMetadataTokenPath);
  request.headers = {{"Metadata-Flavor", "Google"}, {"Accept", "application/json"}};
  return request;
}

}  // namespace stowage::storage::gcs
