// GCS authentication, the pure parts: key-file parsing and its errors (which never echo the key),
// the JWT's structure and claims, its RS256 signature checked with OpenSSL against the public key,
// and the token, OAuth-error and JSON-API-error replies.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "common/crypto.hpp"
#include "storage/gcs_auth.hpp"

using namespace stowage;
using namespace stowage::storage::gcs;
namespace json = boost::json;

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey generate_rsa() { return Pkey(EVP_RSA_gen(2048)); }

std::string private_pem(EVP_PKEY* key) {  // PKCS#8, as Google issues it
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

// One key pair for the whole file (RSA generation is slow).
EVP_PKEY* test_key() {
  static Pkey key = generate_rsa();
  return key.get();
}

json::object key_object(const std::string& pem) {
  return json::object{{"type", "service_account"},
                      {"project_id", "demo-project"},
                      {"private_key_id", "0123456789abcdef"},
                      {"private_key", pem},
                      {"client_email", "stowage@demo-project.iam.gserviceaccount.com"},
                      {"client_id", "1234567890"},
                      {"auth_uri", "https://accounts.google.com/o/oauth2/auth"},
                      {"token_uri", "https://oauth2.googleapis.com/token"}};
}

std::string key_json(json::object o) { return json::serialize(o); }

std::string parse_error(const std::string& text) {
  auto parsed = parse_service_account_key(text);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().message;
}

std::string base64url_decode(std::string s) {
  for (char& c : s) {
    if (c == '-')
      c = '+';
    else if (c == '_')
      c = '/';
  }
  while (s.size() % 4 != 0) s += '=';
  auto out = crypto::base64_decode(s);
  REQUIRE(out.has_value());
  return *out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    auto p = s.find(sep, start);
    parts.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return parts;
    start = p + 1;
  }
}

bool verify_rs256(EVP_PKEY* key, const std::string& signing_input, const std::string& signature) {
  // Verify with the public half only, exported and re-imported, as a token server holds it.
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  Pkey pub(PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr));
  BIO_free(bio);
  REQUIRE(pub);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub.get()) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

}  // namespace

TEST_CASE("gcs auth: a service-account key file parses into what authentication needs") {
  auto parsed = parse_service_account_key(key_json(key_object(private_pem(test_key()))));
  REQUIRE(parsed.ok());
  CHECK(parsed.value().client_email == "stowage@demo-project.iam.gserviceaccount.com");
  CHECK(parsed.value().private_key_id == "0123456789abcdef");
  CHECK(parsed.value().token_uri == "https://oauth2.googleapis.com/token");
  CHECK(parsed.value().private_key.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);

  auto o = key_object(private_pem(test_key()));
  o.erase("token_uri");
  auto defaulted = parse_service_account_key(key_json(o));
  REQUIRE(defaulted.ok());
  CHECK(defaulted.value().token_uri == std::string(kDefaultTokenUri));
}

TEST_CASE("gcs auth: a bad key file is refused with the field named and the key never echoed") {
  const std::string pem = private_pem(test_key());
  const std::string body_of_key = pem.substr(40, 40);  // a piece of the base64 body

  CHECK(parse_error("{not json").find("GOOGLE_SERVICE_ACCOUNT_JSON_KEY: not valid JSON") == 0);
  CHECK(parse_error("[1,2]") == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: not a JSON object");
  CHECK(parse_error("").find("not valid JSON") != std::string::npos);

  for (const char* field : {"type", "client_email", "private_key", "private_key_id"}) {
    auto o = key_object(pem);
    o.erase(field);
    CHECK(parse_error(key_json(o)) == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `" + std::string(field) + "` is missing");
    o = key_object(pem);
    o[field] = 42;
    CHECK(parse_error(key_json(o)) ==
          "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `" + std::string(field) + "` is not a string");
  }

  auto o = key_object(pem);
  o["type"] = "authorized_user";
  CHECK(parse_error(key_json(o)).find("field `type` is not `service_account`") != std::string::npos);
  CHECK(parse_error(key_json(o)).find("authorized_user") == std::string::npos);  // nothing in the Secret is quoted

  o = key_object(pem);
  o["client_email"] = "";
  CHECK(parse_error(key_json(o)) == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `client_email` is empty");

  o = key_object(pem);
  o["token_uri"] = "ftp://example.com/token";
  CHECK(parse_error(key_json(o)) == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `token_uri` is not an http(s) URL");
  // token_uri is read by the endpoint parser: a scheme in any case, a port in range.
  o["token_uri"] = "HTTPS://oauth2.example:8443/token";
  CHECK(parse_service_account_key(key_json(o)).ok());
  o["token_uri"] = "https://oauth2.example:99999/token";
  CHECK(parse_error(key_json(o)) ==
        "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `token_uri` has the port \"99999\", which is not a number from 1 to "
        "65535");

  SECTION("a private key that does not load is named, not shown") {
    std::string broken = pem;
    broken.replace(100, 20, "!!!!!!!!!!!!!!!!!!!!");
    for (const std::string& bad : {broken, std::string("not a key at all"), pem.substr(0, pem.size() / 2)}) {
      o = key_object(bad);
      std::string message = parse_error(key_json(o));
      CHECK(message == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `private_key` is not a PEM RSA private key");
      CHECK(message.find(body_of_key) == std::string::npos);
      CHECK(message.find("BEGIN") == std::string::npos);
    }
  }

  SECTION("an EC key is not an RSA key") {
    Pkey ec(EVP_EC_gen("P-256"));
    REQUIRE(ec);
    o = key_object(private_pem(ec.get()));
    CHECK(parse_error(key_json(o)) ==
          "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `private_key` is not a PEM RSA private key");
  }
}

TEST_CASE("gcs auth: base64url has no padding and the URL-safe alphabet") {
  CHECK(base64url("") == "");
  CHECK(base64url("f") == "Zg");
  CHECK(base64url("fo") == "Zm8");
  CHECK(base64url("foo") == "Zm9v");
  CHECK(base64url("\xfb\xff") == "-_8");
  CHECK(base64url("\xfb\xef\xbe") == "----");
  CHECK(base64url("\xff\xff\xff") == "____");
}

TEST_CASE("gcs auth: the JWT has Google's header and claims and an RS256 signature the public key verifies") {
  auto key = parse_service_account_key(key_json(key_object(private_pem(test_key())))).value();
  auto jwt = make_jwt(key, 1700000000);
  REQUIRE(jwt.ok());
  const std::string& token = jwt.value();
  CHECK(token.find_first_of("+/= \n") == std::string::npos);

  auto parts = split(token, '.');
  REQUIRE(parts.size() == 3);
  json::value header = json::parse(base64url_decode(parts[0]));
  CHECK(header == json::parse(R"({"alg":"RS256","typ":"JWT","kid":"0123456789abcdef"})"));
  json::value claims = json::parse(base64url_decode(parts[1]));
  CHECK(claims == json::parse(R"({"iss":"stowage@demo-project.iam.gserviceaccount.com",
                                 "scope":"https://www.googleapis.com/auth/devstorage.read_write",
                                 "aud":"https://oauth2.googleapis.com/token",
                                 "iat":1700000000,"exp":1700003600})"));

  const std::string signing_input = parts[0] + "." + parts[1];
  const std::string signature = base64url_decode(parts[2]);
  CHECK(signature.size() == 256);  // RSA-2048
  CHECK(verify_rs256(test_key(), signing_input, signature));

  SECTION("a changed claim or another key does not verify") {
    std::string forged = base64url(R"({"iss":"attacker@example.com"})");
    CHECK_FALSE(verify_rs256(test_key(), parts[0] + "." + forged, signature));
    Pkey other = generate_rsa();
    CHECK_FALSE(verify_rs256(other.get(), signing_input, signature));
  }

  SECTION("RSASSA-PKCS1-v1_5 is deterministic: the same input signs the same") {
    CHECK(make_jwt(key, 1700000000).value() == token);
    CHECK(make_jwt(key, 1700000001).value() != token);
  }
}

TEST_CASE("gcs auth: a key that stops loading fails to sign with a message that names the step") {
  ServiceAccountKey key{"a@b.iam.gserviceaccount.com", "garbage", "id", std::string(kDefaultTokenUri)};
  auto jwt = make_jwt(key, 1700000000);
  REQUIRE_FALSE(jwt.ok());
  CHECK(jwt.error().message == "cannot load the service account's private key");
}

TEST_CASE("gcs auth: the token exchange body is the JWT-bearer grant form") {
  CHECK(token_request_body("aaa.bbb.ccc") ==
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=aaa.bbb.ccc");
}

TEST_CASE("gcs auth: token replies parse, malformed ones are errors that do not hold the token") {
  auto ok = parse_token_reply(R"({"access_token":"ya29.secret","expires_in":3599,"token_type":"Bearer"})");
  REQUIRE(ok.ok());
  CHECK(ok.value().access_token == "ya29.secret");
  CHECK(ok.value().expires_in == std::chrono::seconds(3599));
  CHECK(parse_token_reply(R"({"access_token":"t","expires_in":3599.0})").value().expires_in.count() == 3599);
  // Found by fuzz/gcs_json_fuzz.cpp (fuzz/corpus/gcs_json/huge-expires-in): a lifetime beyond a day is
  // a day; 4e19 used to overflow the conversion, 9223372036854775807 the token cache's clock.
  CHECK(parse_token_reply(R"({"access_token":"t","expires_in":39999999999999999599.0})").value().expires_in ==
        std::chrono::hours(24));
  CHECK(parse_token_reply(R"({"access_token":"t","expires_in":9223372036854775807})").value().expires_in ==
        std::chrono::hours(24));
  CHECK(parse_token_reply(R"({"access_token":"t","expires_in":18446744073709551615})").value().expires_in ==
        std::chrono::hours(24));
  CHECK_FALSE(parse_token_reply(R"({"access_token":"t","expires_in":-1e300})").ok());

  auto message = [](const std::string& body) {
    auto r = parse_token_reply(body);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("ya29") == std::string::npos);
    return r.error().message;
  };
  CHECK(message("<html>") == "the token reply is not a JSON object");
  CHECK(message(R"({"expires_in":3599})") == "the token reply has no access_token");
  CHECK(message(R"({"access_token":"ya29.secret"})") == "the token reply has no numeric expires_in");
  CHECK(message(R"({"access_token":"ya29.secret","expires_in":0})") == "the token reply's expires_in is not positive");
  CHECK(message(R"({"access_token":"ya29.secret","expires_in":10,"token_type":"MAC"})") ==
        "the token reply's token_type is not Bearer");
}

TEST_CASE("gcs auth: OAuth and JSON API error bodies are read") {
  auto e = parse_oauth_error(R"({"error":"invalid_grant","error_description":"Invalid JWT Signature."})");
  REQUIRE(e.has_value());
  CHECK(e->error == "invalid_grant");
  CHECK(e->description == "Invalid JWT Signature.");
  CHECK_FALSE(parse_oauth_error("Bad Gateway").has_value());
  CHECK_FALSE(parse_oauth_error(R"({"error":{"code":400}})").has_value());
  CHECK(parse_oauth_error(std::string(R"({"error":"x","error_description":")") + std::string(1000, 'd') + "\"}")
            ->description.size() < 400);

  const std::string not_found =
      R"({"error":{"code":404,"message":"The specified bucket does not exist.","errors":[{"reason":"notFound"}]}})";
  CHECK(json_api_error_message(not_found) == "The specified bucket does not exist.");
  CHECK(json_api_error_message(R"({"error":{"code":403,"errors":[{"reason":"forbidden"}]}})") == "forbidden");
  CHECK(json_api_error_message("No such object: b/o").empty());
}

TEST_CASE("gcs auth: the metadata-server request") {
  CHECK(metadata_origin("") == "http://metadata.google.internal");
  CHECK(metadata_origin("127.0.0.1:8080") == "http://127.0.0.1:8080");
  auto r = metadata_token_request();
  CHECK(r.method == "GET");
  CHECK(r.target == "/computeMetadata/v1/instance/service-accounts/default/token");
  bool flavor = false;
  for (const auto& [k, v] : r.headers) flavor = flavor || (k == "Metadata-Flavor" && v == "Google");
  CHECK(flavor);
}

// client_email, private_key_id and token_uri reach the token request (token_uri's host becomes its
// Host header): a control character there is refused with the field and the position.
TEST_CASE("gcs auth: key fields that reach the token request hold no control character") {
  const std::string pem = private_pem(test_key());
  auto o = key_object(pem);
  o["token_uri"] = "https://oauth2.example\r\nX-Injected: yes/token";
  CHECK(parse_error(key_json(o)) ==
        "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `token_uri` contains a control character (at byte 22)");
  o["token_uri"] = "https://oauth2.example /token";
  CHECK(parse_error(key_json(o)) == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `token_uri` contains a space (at byte 22)");
  o = key_object(pem);
  o["client_email"] = "sa@p.iam.gserviceaccount.com\n";
  CHECK(parse_error(key_json(o)) ==
        "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `client_email` contains a control character (at byte 28: a line "
        "break at the end)");
  o = key_object(pem);
  o["private_key_id"] = std::string(3000, 'a');
  CHECK(parse_error(key_json(o)) == "GOOGLE_SERVICE_ACCOUNT_JSON_KEY: field `private_key_id` is longer than 2048 bytes");
}

TEST_CASE("gcs auth: an access token must be an RFC 6750 bearer token before it becomes a header") {
  CHECK_FALSE(access_token_problem("ya29.a0AfH6SMBx-y_z~1+2/3=="));
  CHECK(access_token_problem("ya29.tok\r\nX-Injected: yes").describe() == "contains a control character (at byte 8)");
  CHECK(access_token_problem("ya29.tok en").kind == http::ValueProblem::Kind::NotToken68);
  CHECK(access_token_problem(std::string(kMaxAccessTokenBytes + 1, 'a')).kind == http::ValueProblem::Kind::TooLong);
  // Server text in messages is cut and cannot forge a log line.
  auto e = parse_oauth_error(R"({"error":"invalid_grant","error_description":"bad\n2025-01-01 [info] forged"})");
  REQUIRE(e.has_value());
  CHECK(e->description == "bad 2025-01-01 [info] forged");
}
