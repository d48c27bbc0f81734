// storage/gcs_auth: the JSON GCS authentication reads: the service-account key of a Secret, the
// token endpoint's reply (the key's token_uri may name any server), OAuth error replies and the JSON
// API's error bodies. Never throws; a token reply's lifetime fits the token cache's clock arithmetic.
#include <chrono>

#include "fuzz/fuzz_support.hpp"
#include "storage/gcs_auth.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view body = stowage::fuzz::text_of(data, size);
  (void)gcs::parse_service_account_key(body);
  auto reply = gcs::parse_token_reply(body);
  if (reply) {
    // What storage/gcs_token.cpp does with it: refresh_at = now + expires_in - margin.
    auto refresh_at = std::chrono::steady_clock::now() + reply.value().expires_in - std::chrono::seconds(60);
    (void)refresh_at;
  }
  (void)gcs::parse_oauth_error(body);
  (void)gcs::json_api_error_message(body);
  return 0;
}
