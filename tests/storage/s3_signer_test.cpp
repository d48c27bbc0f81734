// SigV4 against every published vector (AWS S3 API reference, single-chunk examples, and the
// generic suite's get-vanilla), plus the canonicalisation rules those vectors do not reach.
#include <catch2/catch.hpp>

#include <algorithm>

#include "common/crypto.hpp"
#include "storage/s3_signer.hpp"

using namespace stowage;
using namespace stowage::storage;
using namespace stowage::storage::s3;

namespace {

constexpr std::string_view kAccessKey = "AKIAIOSFODNN7EXAMPLE";
constexpr std::string_view kSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
constexpr std::string_view kDate = "20130524T000000Z";
constexpr std::string_view kHost = "examplebucket.s3.amazonaws.com";
constexpr std::string_view kEmptyHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

WallClock::time_point at(std::string_view rfc3339_text) { return *parse_rfc3339(rfc3339_text); }

// The whole pipeline from a canonical request to a signature, as the vectors are published.
std::string sign_with(const CanonicalRequest& canonical, std::string_view secret, std::string_view date,
                      std::string_view region, std::string_view service) {
  const std::string scope = credential_scope(date, region, service);
  const std::string key = signing_key(secret, date.substr(0, 8), region, service);
  return signature(key, string_to_sign(date, scope, canonical.text));
}

std::string header_of(const http::Request& request, std::string_view name) {
  for (const auto& [k, v] : request.headers)
    if (k == name) return v;
  return {};
}

}  // namespace

TEST_CASE("SigV4 vector: GET object with a Range header") {
  Headers headers = {{"Host", std::string(kHost)},
                     {"Range", "bytes=0-9"},
                     {"x-amz-content-sha256", std::string(kEmptyHash)},
                     {"x-amz-date", std::string(kDate)}};
  auto canonical = canonical_request("GET", "/test.txt", headers, kEmptyHash);
  CHECK(canonical.text ==
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        "x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
        "x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(canonical.signed_headers == "host;range;x-amz-content-sha256;x-amz-date");
  CHECK(crypto::hex(crypto::sha256(canonical.text)) ==
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  const std::string scope = credential_scope(kDate, "us-east-1", "s3");
  CHECK(scope == "20130524/us-east-1/s3/aws4_request");
  CHECK(string_to_sign(kDate, scope, canonical.text) ==
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972");
  CHECK(sign_with(canonical, kSecret, kDate, "us-east-1", "s3") ==
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("SigV4 vector: PUT object with a Date header, a storage class and a body") {
  const std::string body = "Welcome to Amazon S3.";
  CHECK(payload_hash(body) == "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  Headers headers = {{"Host", std::string(kHost)},
                     {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
                     {"x-amz-date", std::string(kDate)},
                     {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
                     {"x-amz-content-sha256", payload_hash(body)}};
  auto canonical = canonical_request("PUT", "/test$file.text", headers, payload_hash(body));
  CHECK(canonical.text.substr(0, canonical.text.find('\n', 4)) == "PUT\n/test%24file.text");
  CHECK(canonical.signed_headers == "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class");
  CHECK(sign_with(canonical, kSecret, kDate, "us-east-1", "s3") ==
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
  // An already-encoded target signs the same.
  CHECK(canonical_request("PUT", "/test%24file.text", headers, payload_hash(body)).text == canonical.text);
}

TEST_CASE("SigV4 vector: GET bucket lifecycle (a bare query parameter)") {
  Headers headers = {{"Host", std::string(kHost)},
                     {"x-amz-date", std::string(kDate)},
                     {"x-amz-content-sha256", std::string(kEmptyHash)}};
  auto canonical = canonical_request("GET", "/?lifecycle", headers, kEmptyHash);
  CHECK(canonical.text.rfind("GET\n/\nlifecycle=\n", 0) == 0);
  CHECK(canonical.signed_headers == "host;x-amz-content-sha256;x-amz-date");
  CHECK(sign_with(canonical, kSecret, kDate, "us-east-1", "s3") ==
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
}

TEST_CASE("SigV4 vector: list objects with max-keys and prefix") {
  Headers headers = {{"Host", std::string(kHost)},
                     {"x-amz-date", std::string(kDate)},
                     {"x-amz-content-sha256", std::string(kEmptyHash)}};
  auto canonical = canonical_request("GET", "/?max-keys=2&prefix=J", headers, kEmptyHash);
  CHECK(canonical.text.rfind("GET\n/\nmax-keys=2&prefix=J\n", 0) == 0);
  CHECK(sign_with(canonical, kSecret, kDate, "us-east-1", "s3") ==
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
  // The order the caller wrote the query in does not matter.
  CHECK(canonical_request("GET", "/?prefix=J&max-keys=2", headers, kEmptyHash).text == canonical.text);
}

TEST_CASE("SigV4 vector: generic suite get-vanilla (service \"service\")") {
  Headers headers = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", "20150830T123600Z"}};
  auto canonical = canonical_request("GET", "/", headers, kEmptyHash);
  CHECK(canonical.text ==
        "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(crypto::hex(crypto::sha256(canonical.text)) ==
        "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  CHECK(sign_with(canonical, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20150830T123600Z", "us-east-1",
                  "service") == "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

TEST_CASE("sign() reproduces the GET vector end to end and sets the headers S3 needs") {
  http::Request request{"GET", "/test.txt", {{"Range", "bytes=0-9"}}, ""};
  sign(request, Credentials{std::string(kAccessKey), std::string(kSecret), ""},
       SigningParams{kHost, "us-east-1", "s3", at("2013-05-24T00:00:00Z")});
  CHECK(header_of(request, "host") == kHost);
  CHECK(header_of(request, "x-amz-date") == kDate);
  CHECK(header_of(request, "x-amz-content-sha256") == kEmptyHash);
  CHECK(header_of(request, "x-amz-security-token").empty());
  CHECK(header_of(request, "authorization") ==
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST_CASE("sign() reproduces the PUT vector from a request with a body") {
  http::Request request{"PUT",
                        "/test$file.text",
                        {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, {"x-amz-storage-class", "REDUCED_REDUNDANCY"}},
                        "Welcome to Amazon S3."};
  sign(request, Credentials{std::string(kAccessKey), std::string(kSecret), ""},
       SigningParams{kHost, "us-east-1", "s3", at("2013-05-24T00:00:00Z")});
  CHECK(header_of(request, "x-amz-content-sha256") ==
        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  CHECK(header_of(request, "authorization").ends_with(
      "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"));
}

TEST_CASE("sign() signs a session token, leaves transport headers unsigned, and re-signs cleanly") {
  http::Request request{"PUT", "/bucket/key", {{"Content-Type", "application/yaml"}, {"User-Agent", "stowage"},
                                               {"Content-Length", "3"}}, "abc"};
  Credentials credentials{"ASIAEXAMPLE", "secret", "token-1"};
  SigningParams params{"127.0.0.1:9000", "eu-nl-1", "s3", at("2024-01-01T00:00:00Z")};
  sign(request, credentials, params);
  CHECK(header_of(request, "x-amz-security-token") == "token-1");
  const std::string first = header_of(request, "authorization");
  CHECK(first.find("Credential=ASIAEXAMPLE/20240101/eu-nl-1/s3/aws4_request") != std::string::npos);
  CHECK(first.find("SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token,") !=
        std::string::npos);

  // Signing again (a retry) replaces the earlier values instead of adding a second copy.
  params.now = at("2024-01-01T00:00:05Z");
  credentials.session_token.clear();
  sign(request, credentials, params);
  auto count = [&](std::string_view name) {
    return std::count_if(request.headers.begin(), request.headers.end(),
                         [&](const auto& h) { return h.first == name; });
  };
  CHECK(count("authorization") == 1);
  CHECK(count("x-amz-date") == 1);
  CHECK(count("host") == 1);
  CHECK(count("x-amz-security-token") == 0);
  CHECK(header_of(request, "x-amz-date") == "20240101T000005Z");
  CHECK(header_of(request, "authorization") != first);
}

TEST_CASE("canonical query: sorted by encoded name then value, re-encoded, bare keys as name=") {
  CHECK(canonical_query("") == "");
  CHECK(canonical_query("lifecycle") == "lifecycle=");
  CHECK(canonical_query("b=2&a=1&a=0") == "a=0&a=1&b=2");
  CHECK(canonical_query("list-type=2&continuation-token=x&prefix=p") == "continuation-token=x&list-type=2&prefix=p");
  CHECK(canonical_query("prefix=a b") == "prefix=a%20b");
  CHECK(canonical_query("prefix=a%20b") == "prefix=a%20b");
  CHECK(canonical_query("prefix=backup/demo/") == "prefix=backup%2Fdemo%2F");
  CHECK(canonical_query("prefix=backup%2fdemo") == "prefix=backup%2Fdemo");  // upper-case hex
  CHECK(canonical_query("token=a+b=c") == "token=a%2Bb%3Dc");                // '+' is literal, '=' in a value
  CHECK(canonical_query("k=~-._") == "k=~-._");
  CHECK(canonical_query("k=\xc3\xa9") == "k=%C3%A9");
  CHECK(canonical_query("Z=1&a=1") == "Z=1&a=1");  // byte order: upper case sorts first
  CHECK(canonical_query("delete&&x=1") == "delete=&x=1");
  CHECK(canonical_query("p=100%") == "p=100%25");  // a stray '%' is a literal
}

TEST_CASE("canonical URI: each byte encoded once, slashes kept") {
  CHECK(canonical_uri("") == "/");
  CHECK(canonical_uri("/") == "/");
  CHECK(canonical_uri("/bucket/backup/demo/metadata.yaml") == "/bucket/backup/demo/metadata.yaml");
  CHECK(canonical_uri("/bucket/a b") == "/bucket/a%20b");
  CHECK(canonical_uri("/bucket/a%20b") == "/bucket/a%20b");
  CHECK(canonical_uri("/bucket//double") == "/bucket//double");  // S3 does not normalise paths
  CHECK(canonical_uri("/bucket/a+b") == "/bucket/a%2Bb");
}

TEST_CASE("header canonicalisation: lower-cased names, trimmed values, repeats joined") {
  Headers headers = {{"X-Amz-Meta-B", "  two   words  "}, {"x-amz-meta-a", "1"}, {"X-AMZ-META-A", "2"}};
  auto canonical = canonical_request("GET", "/", headers, kEmptyHash);
  CHECK(canonical.text == "GET\n/\n\nx-amz-meta-a:1,2\nx-amz-meta-b:two words\n\nx-amz-meta-a;x-amz-meta-b\n" +
                              std::string(kEmptyHash));
}

TEST_CASE("amz_date, payload hash and Content-MD5") {
  CHECK(amz_date(at("2013-05-24T00:00:00Z")) == "20130524T000000Z");
  CHECK(amz_date(at("2024-12-31T23:59:58Z")) == "20241231T235958Z");
  CHECK(payload_hash("") == kEmptyHash);
  CHECK(content_md5("") == "1B2M2Y8AsgTpgAmY7PhCfg==");
  CHECK(content_md5("The quick brown fox jumps over the lazy dog") == "nhB9nTcrtoJr2B01QqQZ1g==");
}
