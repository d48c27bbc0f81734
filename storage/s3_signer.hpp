#pragma once
// AWS Signature Version 4 for S3 (and any SigV4 service), as pure functions.
//
// Source: AWS S3 API reference, "Signature Calculations for the Authorization Header: Transferring
// Payload in a Single Chunk". The pieces are exposed one by one so each can be checked against the
// published vectors (tests/storage/s3_signer_test.cpp):
//
//   canonical request = METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n PayloadHash
//   string to sign    = AWS4-HMAC-SHA256 \n <amz date> \n <scope> \n hex(sha256(canonical request))
//   signing key       = HMAC chain over "AWS4"+secret -> yyyymmdd -> region -> service -> "aws4_request"
//
// Guarantees: the canonical URI and query are derived from the request target whether or not the
// caller already percent-encoded it (each part is decoded, then re-encoded with http::uri_encode),
// so what is signed is what S3 recomputes; every header present when sign() runs is signed, except
// the few a proxy or the transport may rewrite (see kUnsignedHeaders in the .cpp). Nothing here logs
// or returns the secret; the signature only ever travels in the Authorization header.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/header_values.hpp"
#include "common/time_format.hpp"
#include "common/http_client.hpp"

namespace stowage::storage::s3 {

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // temporary credentials (STS): sent, signed, as x-amz-security-token
};

// Limits on the credentials, checked before any request is built (credentials_problem):
//  - the access key id goes into every Authorization header; AWS's are at most 128 characters (IAM
//    API), other stores' shorter: 1 KiB is far beyond any real one and catches a file pasted by mistake;
//  - the secret key never travels (it keys the HMAC), but a control character in it is always a
//    mistake (a line break from `echo`) that S3 would only answer with SignatureDoesNotMatch; same limit;
//  - the session token travels as x-amz-security-token; S3 refuses requests whose headers pass
//    8 KiB in all, so a longer token could never be sent.
inline constexpr std::size_t kMaxAccessKeyIdBytes = 1024;
inline constexpr std::size_t kMaxSecretAccessKeyBytes = 1024;
inline constexpr std::size_t kMaxSessionTokenBytes = 8 * 1024;

// What is wrong with one credential, by the name users know it by (the Secret key and environment
// variable), never its value: to_string() is "AWS_ACCESS_KEY_ID contains a control character (at byte 4)".
struct CredentialProblem {
  std::string key;  // "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY" or "AWS_SESSION_TOKEN"
  http::ValueProblem problem;
  std::string to_string() const { return key + " " + problem.describe(); }
};

// The first credential that holds a control character or is too long; nullopt when all are usable.
// (Missing or empty ones are the caller's business: it knows whether they are required.)
std::optional<CredentialProblem> credentials_problem(const Credentials& credentials);

using Headers = std::vector<std::pair<std::string, std::string>>;

// "20130524T000000Z" (UTC, ISO 8601 basic format).
std::string amz_date(WallClock::time_point t);

// hex(sha256(body)): the x-amz-content-sha256 value.
std::string payload_hash(std::string_view body);

// base64(md5(body)): the Content-MD5 value (DeleteObjects requires one).
std::string content_md5(std::string_view body);

// The path part of a target, each segment decoded and re-encoded ("/test$file.text" ->
// "/test%24file.text"); "" becomes "/".
std::string canonical_uri(std::string_view path);

// The query part of a target (without '?'): parameters decoded and re-encoded, sorted by encoded
// name then value; a bare name signs as "name=". "max-keys=2&prefix=J" stays as it is.
std::string canonical_query(std::string_view query);

struct CanonicalRequest {
  std::string text;            // the canonical request itself
  std::string signed_headers;  // "host;range;x-amz-content-sha256;x-amz-date"
};

// Builds the canonical request over exactly `headers` (names lower-cased, values trimmed with inner
// runs of spaces collapsed, repeated names joined with ','), for a target "path[?query]".
CanonicalRequest canonical_request(std::string_view method, std::string_view target, const Headers& headers,
                                   std::string_view payload_hash);

// "20130524/us-east-1/s3/aws4_request".
std::string credential_scope(std::string_view amz_date, std::string_view region, std::string_view service);

std::string string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request);

// The raw 32-byte signing key.
std::string signing_key(std::string_view secret, std::string_view date8, std::string_view region,
                        std::string_view service);

// Lower-case hex HMAC of the string to sign.
std::string signature(std::string_view signing_key, std::string_view string_to_sign);

// "AWS4-HMAC-SHA256 Credential=<key>/<scope>, SignedHeaders=<list>, Signature=<sig>".
std::string authorization(std::string_view access_key_id, std::string_view scope, std::string_view signed_headers,
                          std::string_view signature);

struct SigningParams {
  std::string_view host;     // the Host header value the server will see ("bucket.s3.eu-west-1.amazonaws.com")
  std::string_view region;   // "us-east-1"
  std::string_view service;  // "s3"
  WallClock::time_point now;
};

// Signs `request` in place: sets Host, x-amz-date, x-amz-content-sha256 (of the body) and, with a
// session token, x-amz-security-token (replacing any earlier values, so a request can be re-signed
// per attempt), then adds Authorization over every header present (minus kUnsignedHeaders).
void sign(http::Request& request, const Credentials& credentials, const SigningParams& params);

}  // namespace stowage::storage::s3
