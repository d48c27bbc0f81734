// storage/gcs_auth: the GOOGLE_APPLICATION_CREDENTIALS file (a service-account key or an
// external_account), the subject token file in both formats, and the STS and generateAccessToken
// replies (token_url and service_account_impersonation_url may name any server). Never throws; the
// parsers refuse what is over their bounds; a reply's lifetime fits the token cache's arithmetic.
#include <chrono>
#include <variant>

#include "fuzz/fuzz_support.hpp"
#include "storage/gcs_auth.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view body = stowage::fuzz::text_of(data, size);
  auto parsed = gcs::parse_application_credentials(body, "GOOGLE_APPLICATION_CREDENTIALS file /fuzz");
  if (parsed) {
    if (auto* account = std::get_if<gcs::ExternalAccount>(&parsed.value())) {
      auto token = gcs::subject_token_from(*account, body);
      (void)gcs::sts_request_body(*account, token ? token.value() : std::string());
    }
  }
  gcs::ExternalAccount json_format;
  json_format.subject_token_field = "id_token";
  (void)gcs::subject_token_from(json_format, body);
  auto now = std::chrono::system_clock::now();
  if (auto reply = gcs::parse_impersonation_reply(body, now)) {
    // What storage/gcs_token.cpp does with it: refresh_at = now + a part of expires_in.
    auto refresh_at = std::chrono::steady_clock::now() + reply.value().expires_in / 2;
    (void)refresh_at;
  }
  (void)gcs::parse_token_reply(body);
  return 0;
}
