// storage/azure_identity: what the controller's own Azure identity endpoints answer (a Microsoft
// Entra token reply or error, the IMDS token JSON; AZURE_AUTHORITY_HOST and
// AZURE_POD_IDENTITY_AUTHORITY_HOST may name any server), and the environment's values. Never throws;
// a parsed token is always a usable bearer token (token68, at most kMaxAccessTokenBytes) expiring
// after `now`.
#include "fuzz/fuzz_support.hpp"
#include "common/header_values.hpp"
#include "storage/azure_identity.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view body = stowage::fuzz::text_of(data, size);
  const auto now = stowage::WallClock::now();
  auto token = azure::parse_token_reply(body, now);
  if (token) {
    stowage::fuzz::require(!stowage::http::check_bearer_token(token.value().token, azure::kMaxAccessTokenBytes),
                           "a token that is not a usable bearer token");
    stowage::fuzz::require(token.value().expires_at > stowage::WallClock::time_point{}, "a token without an expiry");
  }
  (void)azure::parse_oauth_error(body);
  (void)azure::endpoint_problem(body, true);
  azure::IdentityEnvironment env;
  for (const char* name : {"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_AUTHORITY_HOST",
                           "AZURE_POD_IDENTITY_AUTHORITY_HOST"})
    env.variables[name] = std::string(body);
  env.variables["AZURE_FEDERATED_TOKEN_FILE"] = "/t";
  auto chain = azure::discover_chain(env);
  stowage::fuzz::require(chain.active() != nullptr, "a chain without managed identity");
  for (const auto& s : chain.found)
    if (s.client && s.broken.empty()) {
      (void)azure::token_url(*s.client);
      (void)azure::client_credentials_body(*s.client, body);
    }
  return 0;
}
