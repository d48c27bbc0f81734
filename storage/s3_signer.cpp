// AWS Signature Version 4: see s3_signer.hpp for the recipe and the guarantees.
#include "storage/s3_signer.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

#include "common/crypto.hpp"

namespace stowage::storage::s3 {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";

// Headers sign() leaves out of the signature: the transport or a proxy may add or rewrite them,
// and signing a header that changes on the way makes S3 answer SignatureDoesNotMatch.
constexpr std::array<std::string_view, 6> kUnsignedHeaders = {"authorization", "connection", "expect",
                                                              "user-agent",    "content-length", "transfer-encoding"};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// Trimmed, with every inner run of spaces and tabs collapsed to one space (SigV4's "Trimall").
std::string trim_all(std::string_view v) {
  std::string out;
  bool in_space = false;
  for (char c : v) {
    if (c == ' ' || c == '\t') {
      in_space = true;
      continue;
    }
    if (in_space && !out.empty()) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
  return out;
}



std::string reencode(std::string_view s, bool keep_slash) { return http::uri_encode(http::percent_decode(s), keep_slash); }

void set_header(http::Request& request, std::string_view name, std::string value) {
  std::erase_if(request.headers, [&](const auto& h) { return lower(h.first) == name; });
  request.headers.emplace_back(std::string(name), std::move(value));
}

}  // namespace

std::optional<CredentialProblem> credentials_problem(const Credentials& c) {
  const std::pair<std::string_view, http::ValueProblem> checks[] = {
      {"AWS_ACCESS_KEY_ID", http::check_header_value(c.access_key_id, kMaxAccessKeyIdBytes)},
      {"AWS_SECRET_ACCESS_KEY", http::check_header_value(c.secret_access_key, kMaxSecretAccessKeyBytes)},
      {"AWS_SESSION_TOKEN", http::check_header_value(c.session_token, kMaxSessionTokenBytes)},
  };
  for (const auto& [key, problem] : checks)
    if (problem) return CredentialProblem{std::string(key), problem};
  return std::nullopt;
}

std::string amz_date(WallClock::time_point t) {
  std::time_t secs = WallClock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string payload_hash(std::string_view body) { return crypto::hex(crypto::sha256(body)); }

std::string content_md5(std::string_view body) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(body.data(), body.size(), digest, &len, EVP_md5(), nullptr);
  return crypto::base64_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

std::string canonical_uri(std::string_view path) {
  if (path.empty()) return "/";
  return reencode(path, true);
}

std::string canonical_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string name = reencode(part.substr(0, eq), false);
    std::string value = eq == std::string_view::npos ? std::string() : reencode(part.substr(eq + 1), false);
    params.emplace_back(std::move(name), std::move(value));
  }
  std::sort(params.begin(), params.end());
  std::string out;
  for (const auto& [name, value] : params) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

CanonicalRequest canonical_request(std::string_view method, std::string_view target, const Headers& headers,
                                   std::string_view payload_hash) {
  auto question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query = question == std::string_view::npos ? std::string_view{} : target.substr(question + 1);

  // Sorted by lower-cased name; a stable sort keeps repeated headers in their order for joining.
  std::vector<std::pair<std::string, std::string>> sorted;
  for (const auto& [name, value] : headers) sorted.emplace_back(lower(name), trim_all(value));
  std::stable_sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.first < b.first; });

  std::string canonical_headers, signed_headers;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0 && sorted[i].first == sorted[i - 1].first) {
      canonical_headers.back() = ',';  // replace the previous line's '\n'
      canonical_headers += sorted[i].second + "\n";
      continue;
    }
    canonical_headers += sorted[i].first + ":" + sorted[i].second + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += sorted[i].first;
  }

  CanonicalRequest out;
  out.signed_headers = signed_headers;
  out.text.append(method).append("\n");
  out.text.append(canonical_uri(path)).append("\n");
  out.text.append(canonical_query(query)).append("\n");
  out.text.append(canonical_headers).append("\n");
  out.text.append(signed_headers).append("\n");
  out.text.append(payload_hash);
  return out;
}

std::string credential_scope(std::string_view amz_date, std::string_view region, std::string_view service) {
  std::string out(amz_date.substr(0, 8));
  out.append("/").append(region).append("/").append(service).append("/aws4_request");
  return out;
}

std::string string_to_sign(std::string_view amz_date, std::string_view scope, std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out.append("\n").append(amz_date).append("\n").append(scope).append("\n");
  out.append(crypto::hex(crypto::sha256(canonical_request)));
  return out;
}

std::string signing_key(std::string_view secret, std::string_view date8, std::string_view region,
                        std::string_view service) {
  std::string key = crypto::hmac_sha256("AWS4" + std::string(secret), date8);
  key = crypto::hmac_sha256(key, region);
  key = crypto::hmac_sha256(key, service);
  return crypto::hmac_sha256(key, "aws4_request");
}

std::string signature(std::string_view signing_key, std::string_view string_to_sign) {
  return crypto::hex(crypto::hmac_sha256(signing_key, string_to_sign));
}

std::string authorization(std::string_view access_key_id, std::string_view scope, std::string_view signed_headers,
                          std::string_view signature) {
  std::string out(kAlgorithm);
  out.append(" Credential=").append(access_key_id).append("/").append(scope);
  out.append(", SignedHeaders=").append(signed_headers);
  out.append(", Signature=").append(signature);
  return out;
}

void sign(http::Request& request, const Credentials& credentials, const SigningParams& params) {
  const std::string date = amz_date(params.now);
  const std::string hash = payload_hash(request.body);
  set_header(request, "host", std::string(params.host));
  set_header(request, "x-amz-date", date);
  set_header(request, "x-amz-content-sha256", hash);
  if (!credentials.session_token.empty()) {
    set_header(request, "x-amz-security-token", credentials.session_token);
  } else {
    std::erase_if(request.headers, [](const auto& h) { return lower(h.first) == "x-amz-security-token"; });
  }
  std::erase_if(request.headers, [](const auto& h) { return lower(h.first) == "authorization"; });

  Headers to_sign;
  for (const auto& header : request.headers) {
    const std::string name = lower(header.first);
    if (std::find(kUnsignedHeaders.begin(), kUnsignedHeaders.end(), name) == kUnsignedHeaders.end())
      to_sign.push_back(header);
  }
  const CanonicalRequest canonical = canonical_request(request.method, request.target, to_sign, hash);
  const std::string scope = credential_scope(date, params.region, params.service);
  const std::string key = signing_key(credentials.secret_access_key, date.substr(0, 8), params.region, params.service);
  const std::string sig = signature(key, string_to_sign(date, scope, canonical.text));
  request.headers.emplace_back("authorization",
                               authorization(credentials.access_key_id, scope, canonical.signed_headers, sig));
}

}  // namespace stowage::storage::s3
