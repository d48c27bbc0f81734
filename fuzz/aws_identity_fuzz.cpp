// storage/aws_identity: what the controller's own identity endpoints answer (an STS
// AssumeRoleWithWebIdentity reply or error, the container-credentials and instance-metadata JSON, the
// IMDS role listing; AWS_ENDPOINT_URL_STS and the full URI may name any server), and the shared
// credentials/config files; and the rule for credential endpoint URLs (storage/credential_endpoint).
// Never throws; parsed credentials always hold a key id and a secret, a web identity reply always a
// session token and an expiry, and an accepted endpoint a host and a target.
#include "fuzz/fuzz_support.hpp"
#include "storage/aws_identity.hpp"
#include "storage/credential_endpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace stowage::storage;
  std::string_view body = stowage::fuzz::text_of(data, size);
  auto sts = aws::parse_web_identity_reply(body);
  if (sts)
    stowage::fuzz::require(!sts.value().keys.session_token.empty() && sts.value().expiration.has_value(),
                           "a web identity reply without a session token or an expiry");
  (void)aws::parse_sts_error(body);
  auto json = aws::parse_credentials_json(body);
  if (json)
    stowage::fuzz::require(!json.value().keys.access_key_id.empty() && !json.value().keys.secret_access_key.empty(),
                           "credentials without a key id or a secret");
  (void)aws::parse_ini(body);
  (void)aws::container_uri_problem(body);
  (void)aws::first_role(body);
  aws::Environment env;
  env.config_file = std::string(body);
  env.credentials_file = std::string(body);
  env.variables["AWS_PROFILE"] = "x";
  (void)aws::discover_chain(env);
  auto endpoint = credential_endpoint(body);
  if (endpoint)
    stowage::fuzz::require(!endpoint.value().origin.host.empty() && endpoint.value().target.starts_with('/'),
                           "an endpoint without a host or a target");
  return 0;
}
