#pragma once
// Azure credentials without an account key, the pure parts: which identity sources the process
// environment configures (discover_chain), the Microsoft Entra token request (client credentials,
// with a client secret or a federated client assertion), the managed-identity (IMDS) request, and the
// token replies. Nothing here does I/O (storage/azure_credentials.hpp fetches and caches).
//
// The chain, in DefaultAzureCredential's order (first configured wins):
//   1. environment service principal  AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET
//   2. workload identity              AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_FEDERATED_TOKEN_FILE (the AKS
//                                     webhook injects them; the token file is re-read for every exchange)
//   3. managed identity (IMDS)        always, last; AZURE_CLIENT_ID picks a user-assigned identity.
// Both Entra sources post to {AZURE_AUTHORITY_HOST, default https://login.microsoftonline.com/}
// {tenant}/oauth2/v2.0/token. IMDS is http://169.254.169.254, or AZURE_POD_IDENTITY_AUTHORITY_HOST:
// the variable the Azure SDKs (Python, Go/MSAL, .NET, JS) read to redirect IMDS. IDENTITY_ENDPOINT /
// IDENTITY_HEADER (App Service, Azure Arc) and MSI_ENDPOINT (Cloud Shell) are other protocols and are
// not supported. As in the AWS chain, a configured source that fails is not skipped for the next:
// a broken workload identity must not fall back to the node's managed identity.
//
// Guarantees: errors name the variable, the field or the step, never a secret, an assertion or a
// token; the parsers never throw and read at most kMaxTokenReplyBytes (fuzz/azure_identity_fuzz.cpp);
// a parsed access token is a usable bearer token (token68, at most kMaxAccessTokenBytes).
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "common/time_format.hpp"

namespace stowage::storage::azure {

inline constexpr std::string_view kStorageScope = "https://storage.azure.com/.default";  // Entra v2 scope
inline constexpr std::string_view kStorageResource = "https://storage.azure.com/";       // IMDS resource
inline constexpr std::string_view kDefaultAuthorityHost = "https://login.microsoftonline.com/";
inline constexpr std::string_view kDefaultImdsHost = "http://169.254.169.254";
inline constexpr std::string_view kAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
inline constexpr std::size_t kMaxTokenReplyBytes = 64 * 1024;  // Entra's replies are ~2-4 KiB
inline constexpr std::size_t kMaxAccessTokenBytes = 16 * 1024;

struct AccessToken {
  std::string token;
  WallClock::time_point expires_at;
};

// The variables the chain reads; an absent one reads as "". Tests build one by hand.
struct IdentityEnvironment {
  std::map<std::string, std::string> variables;
  std::string get(const std::string& name) const;
  static IdentityEnvironment from_process();  // getenv
};

enum class SourceKind { ServicePrincipal, WorkloadIdentity, ManagedIdentity };

// An Entra client-credentials grant: with a client secret (service principal) or with a client
// assertion read from a file (workload identity).
struct ClientCredentialSettings {
  std::string authority_host = std::string(kDefaultAuthorityHost);
  std::string tenant_id, client_id;
  std::string client_secret;   // service principal
  std::string assertion_file;  // workload identity: re-read for every exchange
};

struct ManagedIdentitySettings {
  std::string host = std::string(kDefaultImdsHost);  // scheme://host[:port], no path
  std::string client_id;                             // "" = the system-assigned identity
};

struct SourceSettings {
  SourceKind kind = SourceKind::ManagedIdentity;
  std::string name;    // "workload identity (AZURE_FEDERATED_TOKEN_FILE)": what logs and messages say
  std::string broken;  // configured but unusable ("AZURE_TENANT_ID ... is not a tenant id"): said to every storage
  std::optional<ClientCredentialSettings> client;
  std::optional<ManagedIdentitySettings> managed;
};

struct Chain {
  std::vector<SourceSettings> found;  // in chain order; the first is the one used
  const SourceSettings* active() const { return found.empty() ? nullptr : &found.front(); }
  std::vector<std::string> names() const;
};

Chain discover_chain(const IdentityEnvironment& env);

// Empty when `settings` can be used, else why not (naming `where`, e.g. "AZURE_TENANT_ID" or
// "storage secret demo/sp: AZURE_TENANT_ID"): a tenant is a GUID or a domain name (it becomes a path
// segment), a client id is not empty, the authority host is https (http only to a loopback address).
std::string client_credentials_problem(const ClientCredentialSettings& settings);

// "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token" (one slash between host and tenant
// whether or not AZURE_AUTHORITY_HOST ends with one).
std::string token_url(const ClientCredentialSettings& settings);

// The form body of the client-credentials grant for the storage scope, with `assertion` (a federated
// token) when not empty, else the settings' client secret.
std::string client_credentials_body(const ClientCredentialSettings& settings, std::string_view assertion);

// The IMDS request target: /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...[&client_id=...]
std::string imds_target(const ManagedIdentitySettings& settings);

// Whether a URL may carry credentials to an identity endpoint: https anywhere, plain http only to a
// loopback address (or, with `link_local_ok`, to 169.254.169.254). Empty when allowed, else why not.
std::string endpoint_problem(std::string_view url, bool link_local_ok);

// A token reply: Entra's {"access_token","expires_in":3599,...} or IMDS's {"access_token",
// "expires_in":"3599","expires_on":"1700000000",...} (numbers as strings). `now` anchors expires_in.
// The error names the field, never its value.
Result<AccessToken, std::string> parse_token_reply(std::string_view json, WallClock::time_point now);

// {"error":"invalid_client","error_description":"AADSTS700016: ...","error_codes":[...]} (Entra) or
// {"error":"invalid_request","error_description":"Identity not found"} (IMDS), cut to a readable
// length; nullopt when the body is not one.
struct OAuthError {
  std::string error, description;
};
std::optional<OAuthError> parse_oauth_error(std::string_view json);

}  // namespace stowage::storage::azure
