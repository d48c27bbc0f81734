// The GOOGLE_APPLICATION_CREDENTIALS file, the pure parts: which type it is, the external account's
// fields and their refusals (named, never quoting a value), the subject token's two formats, the STS
// form body and the generateAccessToken reply.
#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <variant>

#include "common/http_client.hpp"
#include "common/time_format.hpp"
#include "storage/gcs_auth.hpp"

using namespace stowage;
using namespace stowage::storage::gcs;
namespace json = boost::json;

namespace {

constexpr std::string_view kSource = "GOOGLE_APPLICATION_CREDENTIALS file /etc/adc.json";

json::object external() {
  return json::object{
      {"type", "external_account"},
      {"audience", "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"},
      {"subject_token_type", "urn:ietf:params:oauth:token-type:jwt"},
      {"token_url", "https://sts.googleapis.com/v1/token"},
      {"credential_source", json::object{{"file", "/var/run/secrets/gcp/token"}}}};
}

std::string error_of(const json::object& o) {
  auto parsed = parse_application_credentials(json::serialize(o), kSource);
  REQUIRE_FALSE(parsed.ok());
  return parsed.error().message;
}

}  // namespace

TEST_CASE("application credentials: an external_account file with a text subject token file") {
  auto parsed = parse_application_credentials(json::serialize(external()), kSource);
  REQUIRE(parsed.ok());
  const auto* account = std::get_if<ExternalAccount>(&parsed.value());
  REQUIRE(account != nullptr);
  CHECK(account->audience == "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k");
  CHECK(account->subject_token_file == "/var/run/secrets/gcp/token");
  CHECK(account->subject_token_field.empty());
  CHECK(account->impersonation_url.empty());
  CHECK(subject_token_from(*account, "eyJ.token.sig\n").value() == "eyJ.token.sig");

  // No token_url: Google's STS.
  auto o = external();
  o.erase("token_url");
  o["service_account_impersonation_url"] =
      "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:"
      "generateAccessToken";
  o["credential_source"].as_object()["format"] = json::object{{"type", "json"}, {"subject_token_field_name", "id"}};
  auto defaulted = parse_application_credentials(json::serialize(o), kSource);
  REQUIRE(defaulted.ok());
  const auto& a = std::get<ExternalAccount>(defaulted.value());
  CHECK(a.token_url == "https://sts.googleapis.com/v1/token");
  CHECK(a.subject_token_field == "id");
  CHECK(subject_token_from(a, R"({"id":"eyJ.t.s"})").value() == "eyJ.t.s");
  CHECK(subject_token_from(a, R"({"other":"eyJ.t.s"})").error().message ==
        "the subject token file /var/run/secrets/gcp/token has no string field `id`");
  CHECK(subject_token_from(a, "eyJ.t.s").error().message ==
        "the subject token file /var/run/secrets/gcp/token is not a JSON object (credential_source.format is json)");
}

TEST_CASE("application credentials: a service_account file is the key, with the file named in its errors") {
  auto o = external();
  o["type"] = "service_account";
  CHECK(error_of(o) == std::string(kSource) + ": field `client_email` is missing");
}

TEST_CASE("application credentials: what cannot be used is refused, naming the field, never quoting it") {
  CHECK(error_of(json::object{{"type", "authorized_user"}, {"refresh_token", "1//secret-refresh"}}) ==
        std::string(kSource) +
            ": field `type` is neither `service_account` nor `external_account` (user credentials from `gcloud auth "
            "application-default login` are not supported)");
  auto url_sourced = external();
  url_sourced["credential_source"] = json::object{{"url", "http://169.254.169.254/token"}};
  CHECK(error_of(url_sourced) == std::string(kSource) +
                                     ": a URL-sourced `credential_source` is not supported: use "
                                     "`credential_source.file`");
  auto executable = external();
  executable["credential_source"] = json::object{{"executable", json::object{{"command", "/bin/token"}}}};
  CHECK_THAT(error_of(executable), Catch::Contains("an executable `credential_source` is not supported"));
  auto aws = external();
  aws["credential_source"] = json::object{{"environment_id", "aws1"}};
  CHECK_THAT(error_of(aws), Catch::Contains("an AWS-sourced `credential_source` is not supported"));
  auto no_audience = external();
  no_audience.erase("audience");
  CHECK(error_of(no_audience) == std::string(kSource) + ": field `audience` is missing");
  auto injected = external();
  injected["token_url"] = "https://sts.example/v1/token\r\nX-Injected: yes";
  CHECK(error_of(injected) == std::string(kSource) + ": field `token_url` contains a control character (at byte 28)");
  auto not_http = external();
  not_http["service_account_impersonation_url"] = "ftp://iamcredentials.example/v1";
  CHECK(error_of(not_http) == std::string(kSource) +
                                  ": field `service_account_impersonation_url` is not an http(s) URL");
  auto bad_format = external();
  bad_format["credential_source"].as_object()["format"] = json::object{{"type", "xml"}};
  CHECK_THAT(error_of(bad_format), Catch::Contains("is neither `text` nor `json`"));
  auto json_without_field = external();
  json_without_field["credential_source"].as_object()["format"] = json::object{{"type", "json"}};
  CHECK_THAT(error_of(json_without_field), Catch::Contains("subject_token_field_name` is required for json"));

  auto huge = parse_application_credentials(std::string(kMaxCredentialsFileBytes + 1, ' '), kSource);
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.error().message == std::string(kSource) + ": larger than 64 KiB: not a credentials file");
  CHECK_THAT(parse_application_credentials("{", kSource).error().message, Catch::StartsWith(std::string(kSource) +
                                                                                            ": not valid JSON"));
}

TEST_CASE("application credentials: the STS form body and the generateAccessToken reply") {
  auto account = std::get<ExternalAccount>(parse_application_credentials(json::serialize(external()), kSource).value());
  std::string body = sts_request_body(account, "a.b+c/d=");
  CHECK(body ==
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
        "&audience=%2F%2Fiam.googleapis.com%2Fprojects%2F1%2Flocations%2Fglobal%2FworkloadIdentityPools%2Fp%2F"
        "providers%2Fk&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform"
        "&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
        "&subject_token=a.b%2Bc%2Fd%3D&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt");
  CHECK(impersonation_request_body() ==
        R"({"scope":["https://www.googleapis.com/auth/devstorage.read_write"],"lifetime":"3600s"})");

  auto now = *parse_rfc3339("2026-12-07T10:00:00Z");
  auto reply = parse_impersonation_reply(R"({"accessToken":"ya29.c.x","expireTime":"2026-12-07T11:00:00.5Z"})", now);
  REQUIRE(reply.ok());
  CHECK(reply.value().access_token == "ya29.c.x");
  CHECK(reply.value().expires_in == std::chrono::hours(1));
  CHECK(parse_impersonation_reply(R"({"accessToken":"ya29.c.x","expireTime":"2026-12-07T09:00:00Z"})", now)
            .error()
            .message == "the generateAccessToken reply's token has already expired");
  CHECK(parse_impersonation_reply(R"({"accessToken":"ya29.c.x","expireTime":"soon"})", now).error().message ==
        "the generateAccessToken reply's expireTime is not an RFC 3339 time");
  CHECK(parse_impersonation_reply(R"({"expireTime":"2026-12-07T11:00:00Z"})", now).error().message ==
        "the generateAccessToken reply has no accessToken");
  // A far expiry is capped at a day, like expires_in.
  CHECK(parse_impersonation_reply(R"({"accessToken":"t","expireTime":"2200-01-01T00:00:00Z"})", now)
            .value()
            .expires_in == std::chrono::hours(24));
}
