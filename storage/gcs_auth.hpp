#pragma once
// GCS authentication, the pure parts: the service-account key file, the RS256 JWT that is traded
// for an access token, the token-exchange and metadata-server requests, and their replies.
// Nothing here does I/O (the token cache that does is storage/gcs_token.hpp).
//
// Guarantees: every error names the field or the step that failed and never echoes the private
// key, a JWT or a token; the JWT is exactly what Google's token endpoint expects for a service
// account (storage-backends.md, "Google Cloud Storage"): header {"alg":"RS256","typ":"JWT",
// "kid":private_key_id}, claims iss/scope/aud/iat/exp with exp = iat + 3600, RSASSA-PKCS1-v1_5
// over SHA-256, base64url without padding.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/header_values.hpp"
#include "common/result.hpp"
#include "common/http_client.hpp"

namespace stowage::storage::gcs {

inline constexpr std::string_view kDefaultTokenUri = "https://oauth2.googleapis.com/token";
inline constexpr std::string_view kScope = "https://www.googleapis.com/auth/devstorage.read_write";
inline constexpr std::string_view kDefaultMetadataHost = "metadata.google.internal";
inline constexpr std::string_view kMetadataTokenPath = "/computeMetadata/v1/instance/service-accounts/default/token";
inline constexpr std::string_view kJwtBearerGrant = "urn:ietf:params:oauth:grant-type:jwt-bearer";
inline constexpr std::int64_t kJwtLifetimeSeconds = 3600;

// What went wrong, in words safe for a status or a log.
struct AuthError {
  std::string message;
};

// The fields of a service-account JSON key (the Secret's GOOGLE_SERVICE_ACCOUNT_JSON_KEY) that
// authentication needs.
struct ServiceAccountKey {
  std::string client_email;
  std::string private_key;     // PEM (PKCS#8 "BEGIN PRIVATE KEY" as Google issues it, or PKCS#1)
  std::string private_key_id;  // the JWT's kid
  std::string token_uri;       // the JWT's aud and where it is exchanged; kDefaultTokenUri when absent
};

// Parses and checks a key file: valid JSON object, "type" is "service_account", client_email,
// private_key (a loadable RSA key) and private_key_id present, token_uri an http(s) URL when given.
// client_email, private_key_id and token_uri reach the token request (the URL's host becomes the
// Host header): a control character in them (a space too in token_uri), or more than
// kMaxKeyFieldBytes, is refused with the field and the position.
// The error says which field is missing or wrong, e.g.
// "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `private_key` is not a PEM RSA private key"; it never
// quotes a field's value.
inline constexpr std::size_t kMaxKeyFieldBytes = 2048;  // Google's are < 100 bytes; a URL this long is no token endpoint
// `source` names where the key came from in every message (the Secret's key by default, or
// "GOOGLE_APPLICATION_CREDENTIALS file /path").
Result<ServiceAccountKey, AuthError> parse_service_account_key(
    std::string_view json, std::string_view source = "GOOGLE_SERVICE_ACCOUNT_JSON_KEY");

// ---- Application default credentials: the GOOGLE_APPLICATION_CREDENTIALS file ----

inline constexpr std::string_view kTokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange";
inline constexpr std::string_view kAccessTokenType = "urn:ietf:params:oauth:token-type:access_token";
inline constexpr std::string_view kCloudPlatformScope = "https://www.googleapis.com/auth/cloud-platform";
// The file and the subject token file are read whole; neither is ever near this (a key file is ~2.3 KiB,
// a projected service-account token ~1 KiB).
inline constexpr std::size_t kMaxCredentialsFileBytes = 64 * 1024;

// An `external_account` file (workload identity federation) with a file-sourced subject token:
//   {"type":"external_account","audience":"//iam.googleapis.com/projects/N/locations/global/
//    workloadIdentityPools/P/providers/R","subject_token_type":"urn:ietf:params:oauth:token-type:jwt",
//    "token_url":"https://sts.googleapis.com/v1/token","credential_source":{"file":"/var/run/.../token",
//    "format":{"type":"text"|"json","subject_token_field_name":"id_token"}},
//    "service_account_impersonation_url":"https://iamcredentials.googleapis.com/v1/projects/-/
//    serviceAccounts/SA:generateAccessToken"}
// URL-, executable- and AWS-sourced subject tokens are refused with a message saying so.
struct ExternalAccount {
  std::string audience;
  std::string subject_token_type;
  std::string token_url;              // the STS endpoint; https://sts.googleapis.com/v1/token when absent
  std::string subject_token_file;     // re-read for every exchange (the kubelet rotates it)
  std::string subject_token_field;    // "" = the file is the token (format text); else a JSON field name
  std::string impersonation_url;      // "" = the STS token is the access token
};

// What GOOGLE_APPLICATION_CREDENTIALS holds.
using ApplicationCredentials = std::variant<ServiceAccountKey, ExternalAccount>;

// Parses the file's text; `source` ("GOOGLE_APPLICATION_CREDENTIALS file /path") opens every
// message, which names the field and never quotes a value. Bounded: over kMaxCredentialsFileBytes is
// refused before parsing; every URL and name that reaches a request is checked like the key's fields.
Result<ApplicationCredentials, AuthError> parse_application_credentials(std::string_view text, std::string_view source);

// The subject token from the file's content: the trimmed text, or the string field of a JSON object.
// The error names the file's role and the field, never the content.
Result<std::string, AuthError> subject_token_from(const ExternalAccount& account, std::string_view content);

// application/x-www-form-urlencoded body of the STS exchange (RFC 8693), scope cloud-platform.
std::string sts_request_body(const ExternalAccount& account, std::string_view subject_token);

// JSON body of generateAccessToken: {"scope":[kScope],"lifetime":"3600s"}.
std::string impersonation_request_body();

// base64url (RFC 4648 section 5) without padding, as JWTs use it.
std::string base64url(std::string_view bytes);

// The signed assertion for `key`, issued at `issued_at` (seconds since the Unix epoch).
// Fails only when the private key cannot sign (the message names the step, not the key).
Result<std::string, AuthError> make_jwt(const ServiceAccountKey& key, std::int64_t issued_at);

// The form body of the token exchange: grant_type=...jwt-bearer&assertion=<jwt>.
std::string token_request_body(std::string_view jwt);

// A successful token reply {"access_token","expires_in","token_type":"Bearer"}.
struct TokenReply {
  std::string access_token;
  std::chrono::seconds expires_in{0};
};
// The error says what is missing; it never holds the token.
Result<TokenReply, AuthError> parse_token_reply(std::string_view body);

// {"accessToken":"...","expireTime":"RFC 3339"} -> a TokenReply with expires_in counted from `now`
// (capped like parse_token_reply's). The error says what is missing; it never holds the token.
Result<TokenReply, AuthError> parse_impersonation_reply(std::string_view body,
                                                        std::chrono::system_clock::time_point now);

// An access token goes into every request as "Authorization: Bearer <token>". Google documents
// access tokens of up to 2048 bytes; 8 KiB leaves room for growth and for other token servers
// while refusing a reply that is clearly not a token.
inline constexpr std::size_t kMaxAccessTokenBytes = 8 * 1024;
// What is wrong with a token before it becomes a header (RFC 6750 token68, no control character,
// at most kMaxAccessTokenBytes); empty (no problem) when it is usable.
http::ValueProblem access_token_problem(std::string_view token);

// An OAuth error reply {"error":"invalid_grant","error_description":"..."}; nullopt when the body
// is not one.
struct OAuthError {
  std::string error;
  std::string description;
};
std::optional<OAuthError> parse_oauth_error(std::string_view body);

// The GCS JSON API error body {"error":{"code":N,"message":...,"errors":[{"reason":...}]}}: its
// message (or reason), cut to a readable length; "" when the body is not one.
std::string json_api_error_message(std::string_view body);

// The metadata server (GKE workload identity, GCE): "http://" + host, where host is
// GCE_METADATA_HOST ("host" or "host:port") or kDefaultMetadataHost when empty.
std::string metadata_origin(std::string_view host);
// GET kMetadataTokenPath with Metadata-Flavor: Google.
http::Request metadata_token_request();

}  // namespace stowage::storage::gcs
